"""The operator's task endpoints: `paywire.tasks.TaskBook` over HTTP.

    GET  /tasks/_info                     the network, the signing domain and type, the skew
    POST /tasks                           post a task          (signed by the principal)
    GET  /tasks?principal=&agent=         tasks posted by a principal, taken by an agent
    GET  /tasks/{id}                      the task
    GET  /tasks/{id}/books                its books (amounts: decimal strings, atomic units)
    POST /tasks/{id}/take                 {request, signature}  an allowed agent
    POST /tasks/{id}/deliver              {request, signature}  an agent who took it
    POST /tasks/{id}/accept|reject|cancel {request, signature}  the principal
    POST /tasks/{id}/dispute              {request, signature}  the principal or a payee
    POST /tasks/{id}/release|expire       no body: anyone, once due

Every write but ``release`` and ``expire`` carries a `paywire.tasks.requests` signed
request whose ``params`` (JSON text) hold the action's parameters:

- post: ``budget`` (atomic units, decimal text), ``asset`` (the code of the principal's
  wallet account), ``deadlineSeconds``, ``agents`` (addresses), ``description``, and
  optionally ``reward`` (atomic), ``check`` (an acceptance check's JSON, any kind of
  `paywire.tasks.checks.REMOTE_CHECK_KINDS`: not ``command``) and ``disputeWindowSeconds``;
  the task id is the request's ``taskId``;
- take: optionally ``mandate`` (the task mandate's JSON: a signed mandate or a one-mandate
  chain, see `paywire.tasks.issue_task_mandate`);
- deliver: ``resultDigest``, optionally ``shares`` (address -> whole parts);
- accept: optionally ``shares`` and ``fee`` (``{"account", "amount"}``, a fees account);
- dispute: ``reason``; reject and cancel: none.

Unknown params are refused. Writes answer ``{"task": {...}, "transfers": [ids]}``.

A task id may hold ``/`` (``/tasks/a/b/take`` is ``take`` on task ``a/b``); a task whose
id ends in ``/books`` is read through its books' ``task`` only.

Every refusal is JSON ``{"error": <code>, "message": ...}``: 400 for a malformed request,
402 when the principal's wallet cannot cover the budget, 403 when the signature does not
prove the actor or the actor may not do the action, 404 for an unknown task or action, 409
for an action the task's state does not allow now, 413 for a body past
`MAX_TASK_BODY_BYTES`, 503 when the ledger is unavailable.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paywire import _json
from paywire.errors import InvalidInput, NotFound, PaywireError
from paywire.ledger.model import NS_PER_S
from paywire.money import MAX_ATOMIC, Amount, Asset
from paywire.tasks import (
    MAX_AGENTS,
    AgentNotAllowed,
    Delivery,
    InvalidTask,
    Task,
    TaskBook,
    TaskBooks,
    TaskDocument,
    TaskError,
    TaskState,
)
from paywire.tasks.checks import REMOTE_CHECK_KINDS, AcceptanceCheck, check_from_json
from paywire.tasks.requests import (
    MAX_REQUEST_SKEW_S,
    SIGNED_ACTIONS,
    TASK_REQUEST,
    TASKS_DOMAIN,
    InvalidTaskRequest,
    SignedTaskRequest,
    TaskRequestRefused,
)

if TYPE_CHECKING:
    from paywire.ledger import Ledger, Transfer
    from paywire.mandate import MandateChain, SignedMandate

MAX_TASK_BODY_BYTES = 64 * 1024
"""A task request is a few KB; a take with its mandate the largest."""

MAX_BODY_DEPTH = 24
"""How deep a request body may nest (its params are a string, parsed on their own)."""

MAX_SHARE_PARTS = 10**12
"""A share's whole parts (parts are proportions: nobody needs a trillion)."""

MAX_QUERY_CHARS = 200
"""An address in the query string is 42 characters."""

OPEN_ACTIONS = ("release", "expire")
"""Actions that need no signature: they only carry out what is already due."""

ACTIONS = frozenset(SIGNED_ACTIONS - {"post"}) | frozenset(OPEN_ACTIONS)
"""The actions of ``POST /tasks/{id}/<action>``."""

INVALID_REQUEST = "invalid_request"

_ATOMIC_TEXT = re.compile(r"[1-9][0-9]{0,38}")


class NotPrincipal(TaskError):
    """A signed request for an action only the task's principal may take."""

    code = "task_not_principal"


class _HttpError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


# --- JSON forms ---------------------------------------------------------------------------------


def task_json(task: Task, network: str) -> dict[str, Any]:
    """A task as JSON: amounts as decimal strings of atomic units, times in Unix seconds."""
    document = task.document
    accepting: dict[str, Any] | None = None
    if task.accepting is not None:
        rows = task.accepting.get("payouts")
        accepting = {
            "releaseAt": int(str(task.accepting.get("release_at", 0))) // NS_PER_S,
            "payouts": [
                {"account": str(row[0]), "amount": str(row[1]), "label": str(row[3])}
                for row in (rows if isinstance(rows, list) else [])
                if isinstance(row, list) and len(row) == 4
            ],
        }
    return {
        "id": task.id,
        "network": network,
        "state": str(task.state),
        "principal": document.principal,
        "description": document.description,
        "asset": task.budget.asset.code,
        "decimals": task.budget.asset.decimals,
        "budget": str(task.budget.atomic),
        "reward": str(document.reward.atomic),
        "allowance": str(task.allowance.atomic),
        "agents": list(document.agents),
        "deadlineSeconds": document.deadline_s,
        "disputeWindowSeconds": document.dispute_window_s,
        "check": document.check,
        "postedAt": task.posted_at // NS_PER_S,
        "deadlineAt": task.deadline_at // NS_PER_S,
        "reviewEndAt": task.review_end_at // NS_PER_S,
        "takers": list(task.takers),
        "mandates": dict(task.mandates),
        "deliveries": {
            agent: {
                "resultDigest": delivery.result_digest,
                "shares": dict(delivery.shares),
                "at": delivery.at // NS_PER_S,
            }
            for agent, delivery in task.deliveries.items()
        },
        "accepting": accepting,
    }


def task_from_json(data: object) -> Task:
    """A `Task` back from `task_json` (times to the second): what a client needs to sign
    task mandates (`paywire.tasks.issue_task_mandate`). `InvalidInput` if malformed."""
    try:
        assert isinstance(data, dict)
        asset = Asset(str(data["asset"]), int(data["decimals"]))
        document = TaskDocument(
            principal=str(data["principal"]),
            description=str(data["description"]),
            deadline_s=int(data["deadlineSeconds"]),
            agents=tuple(str(agent) for agent in data["agents"]),
            reward=Amount(int(data["reward"]), asset),
            check=data.get("check"),
            dispute_window_s=int(data.get("disputeWindowSeconds", 0)),
        )
        deliveries = {
            str(agent): Delivery(
                str(agent),
                str(item["resultDigest"]),
                {str(k): int(v) for k, v in dict(item.get("shares", {})).items()},
                int(item.get("at", 0)) * NS_PER_S,
            )
            for agent, item in dict(data.get("deliveries", {})).items()
        }
        return Task(
            id=str(data["id"]),
            document=document,
            budget=Amount(int(data["budget"]), asset),
            posted_at=int(data["postedAt"]) * NS_PER_S,
            deadline_at=int(data["deadlineAt"]) * NS_PER_S,
            state=TaskState(str(data["state"])),
            takers=tuple(str(agent) for agent in data.get("takers", [])),
            deliveries=deliveries,
            mandates={str(k): str(v) for k, v in dict(data.get("mandates", {})).items()},
        )
    except (AssertionError, KeyError, TypeError, ValueError, PaywireError) as error:
        raise InvalidInput(f"not a task's JSON ({type(error).__name__}: {error})") from None


def books_json(books: TaskBooks) -> dict[str, Any]:
    """A task's books as JSON: amounts as decimal strings of atomic units, AI tokens as
    numbers."""

    def amounts(values: Mapping[str, int]) -> dict[str, str]:
        return {key: str(value) for key, value in values.items()}

    task = books.task
    return {
        "task": task.id,
        "state": str(task.state),
        "asset": task.budget.asset.code,
        "decimals": task.budget.asset.decimals,
        "budget": str(task.budget.atomic),
        "reward": str(task.document.reward.atomic),
        "allowance": str(task.allowance.atomic),
        "spent": str(books.spent_atomic),
        "payments": len(books.spends),
        "spentByProvider": amounts(books.spent_by_provider),
        "spentByPayer": amounts(books.spent_by_payer),
        "reimbursable": amounts(books.reimbursable()),
        "models": {
            name: {
                "calls": use.calls,
                "inputTokens": use.input_tokens,
                "cachedInputTokens": use.cached_input_tokens,
                "outputTokens": use.output_tokens,
                "cost": str(use.amount_atomic),
            }
            for name, use in books.models.items()
        },
        "shares": amounts(books.shares),
        "expenses": amounts(books.expenses),
        "fee": str(books.fee_atomic),
        "refunded": str(books.refunded_atomic),
        "held": str(books.held_atomic),
        "paidToContributors": str(books.paid_to_contributors_atomic),
        "margin": str(books.margin_atomic),
    }


def info_json(network: str) -> dict[str, Any]:
    """What a client needs to sign task requests for this ledger (``GET /tasks/_info``)."""
    return {
        "network": network,
        "domain": TASKS_DOMAIN.to_json(),
        "primaryType": TASK_REQUEST.primary_type,
        "encodeType": TASK_REQUEST.encode_type,
        "maxSkewSeconds": MAX_REQUEST_SKEW_S,
        "signedActions": sorted(SIGNED_ACTIONS),
        "openActions": list(OPEN_ACTIONS),
    }


# --- params ------------------------------------------------------------------------------------


def _fields(
    params: Mapping[str, Any], action: str, required: tuple[str, ...], optional: tuple[str, ...]
) -> dict[str, Any]:
    unknown = sorted(set(params) - set(required) - set(optional))
    if unknown:
        shown = ", ".join(repr(key)[:40] for key in unknown[:5])
        raise InvalidTaskRequest(f"{action}: unknown params {shown}")
    missing = [key for key in required if key not in params]
    if missing:
        raise InvalidTaskRequest(f"{action}: missing params {', '.join(missing)}")
    return dict(params)


def _atomic(value: object, what: str) -> int:
    if not isinstance(value, str) or not _ATOMIC_TEXT.fullmatch(value) or int(value) > MAX_ATOMIC:
        raise InvalidTaskRequest(f"{what} is a decimal string of atomic units, 1 to 2^128-1")
    return int(value)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidTaskRequest(f"{what} is text")
    return value


def _shares(value: object) -> dict[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not 0 < len(value) <= MAX_AGENTS * 2:
        raise InvalidTaskRequest(
            f'shares maps 1 to {MAX_AGENTS * 2} addresses to whole parts, e.g. {{"0x..": 3}}'
        )
    for part in value.values():
        if not isinstance(part, int) or isinstance(part, bool) or not 0 < part <= MAX_SHARE_PARTS:
            raise InvalidTaskRequest(f"a share is a whole number of parts, 1 to {MAX_SHARE_PARTS}")
    return dict(value)


def _check(value: object) -> AcceptanceCheck | None:
    """An acceptance check from its JSON, of a kind safe to take from a principal the
    operator does not trust (no ``command`` check: it would run the principal's program)."""
    if value is None:
        return None
    return check_from_json(value, kinds=REMOTE_CHECK_KINDS)


def _mandate(value: object) -> SignedMandate | MandateChain | None:
    from paywire.mandate import MandateChain, SignedMandate

    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidTaskRequest("mandate is a task mandate's JSON object")
    if "chain" in value:
        return MandateChain.from_dict(value)
    return SignedMandate.from_dict(value)


def _fee(value: object, book: TaskBook, task: Task) -> tuple[str, Amount] | None:
    from paywire.ledger import AccountKind, AccountNotFound

    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"account", "amount"}:
        raise InvalidTaskRequest('fee is {"account": <fees account id>, "amount": <atomic>}')
    account_id = _text(value["account"], "fee.account")
    amount = Amount(_atomic(value["amount"], "fee.amount"), task.budget.asset)
    try:
        account = book.ledger.account(account_id)
    except AccountNotFound:
        raise InvalidTask(f"there is no fees account {account_id[:140]!r}") from None
    if account.kind is not AccountKind.FEES or account.asset != task.budget.asset:
        raise InvalidTask(
            f"{account_id[:140]!r} is not a fees account of {task.budget.asset.code}: a fee "
            "is paid to the operator's fees account"
        )
    return account_id, amount


def _asset(book: TaskBook, principal: str, code: object) -> Asset:
    from paywire.ledger import AccountNotFound
    from paywire.ledger.names import wallet_account_id

    code = _text(code, "asset")
    try:
        return book.ledger.account(wallet_account_id(principal, code)).asset
    except AccountNotFound:
        raise _HttpError(
            404,
            "wallet_not_found",
            f"{principal} has no {code[:20]} wallet account on this ledger: deposit first",
        ) from None


# --- actions -----------------------------------------------------------------------------------


def _post(book: TaskBook, task_id: str, actor: str, params: Mapping[str, Any]) -> Task:
    fields = _fields(
        params,
        "post",
        ("budget", "asset", "deadlineSeconds", "agents", "description"),
        ("reward", "check", "disputeWindowSeconds"),
    )
    asset = _asset(book, actor, fields["asset"])
    agents = fields["agents"]
    if not isinstance(agents, list) or not all(isinstance(agent, str) for agent in agents):
        raise InvalidTaskRequest("agents is a list of addresses")
    if len(agents) > MAX_AGENTS:
        raise InvalidTask(f"a task allows 1 to {MAX_AGENTS} agents")
    reward = fields.get("reward")
    return book.post(
        task_id,
        actor,
        Amount(_atomic(fields["budget"], "budget"), asset),
        fields["deadlineSeconds"],
        agents,
        _text(fields["description"], "description"),
        None if reward is None else Amount(_atomic(reward, "reward"), asset),
        check=_check(fields.get("check")),
        dispute_window_s=fields.get("disputeWindowSeconds", 0),
    )


def _principal_task(book: TaskBook, task_id: str, actor: str, action: str) -> Task:
    task = book.task(task_id)
    if actor != task.document.principal:
        raise NotPrincipal(
            f"only the principal {task.document.principal} may {action} task {task_id!r}, "
            f"not {actor}"
        )
    return task


def _act(
    book: TaskBook, action: str, task_id: str, actor: str, params: Mapping[str, Any]
) -> list[Transfer]:
    """Run a signed action (the actor proven); the transfers it wrote, if any."""
    if action == "take":
        fields = _fields(params, action, (), ("mandate",))
        book.take(task_id, actor, _mandate(fields.get("mandate")))
        return []
    if action == "deliver":
        fields = _fields(params, action, ("resultDigest",), ("shares",))
        digest = _text(fields["resultDigest"], "resultDigest")
        book.deliver(task_id, actor, digest, _shares(fields.get("shares")))
        return []
    if action == "dispute":
        fields = _fields(params, action, ("reason",), ())
        book.dispute(task_id, actor, _text(fields["reason"], "reason"))
        return []
    task = _principal_task(book, task_id, actor, action)
    if action == "accept":
        fields = _fields(params, action, (), ("shares", "fee"))
        fee = _fee(fields.get("fee"), book, task)
        return book.accept(task_id, _shares(fields.get("shares")), fee=fee)
    _fields(params, action, (), ())
    if action == "reject":
        return book.reject(task_id)
    assert action == "cancel", action
    return book.cancel(task_id)


# --- HTTP --------------------------------------------------------------------------------------


def _status(error: PaywireError) -> int:
    if isinstance(error, TaskRequestRefused | AgentNotAllowed | NotPrincipal):
        return 403
    if isinstance(error, NotFound):
        return 404
    if error.code in ("exceeds_credits", "insufficient_funds"):
        return 402
    if error.code == "ledger_unavailable":
        return 503
    if isinstance(error, InvalidInput):
        return 400
    if isinstance(error, TaskError) or error.code == "idempotency_conflict":
        return 409
    return 400


async def _body(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_TASK_BODY_BYTES):
        raise _HttpError(413, INVALID_REQUEST, f"the body is over {MAX_TASK_BODY_BYTES} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_TASK_BODY_BYTES:
            raise _HttpError(413, INVALID_REQUEST, f"the body is over {MAX_TASK_BODY_BYTES} bytes")
    try:
        data = _json.loads(raw, max_depth=MAX_BODY_DEPTH)
    except ValueError:
        raise _HttpError(400, INVALID_REQUEST, "the body is not JSON (UTF-8)") from None
    if not isinstance(data, dict):
        raise _HttpError(400, INVALID_REQUEST, "the body is not a JSON object")
    return data


def _guarded(work: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(await work(request))
        except _HttpError as refused:
            return JSONResponse(
                {"error": refused.error, "message": refused.message}, status_code=refused.status
            )
        except PaywireError as error:
            return JSONResponse(
                {"error": error.code, "message": str(error)}, status_code=_status(error)
            )

    return endpoint


def _query_address(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_QUERY_CHARS:
        raise _HttpError(400, INVALID_REQUEST, f"{name} is an address")
    return value


def task_routes(ledger: Ledger, *, clock: Callable[[], float] = time.time) -> list[Route]:
    """The task routes on `ledger` (full paths under ``/tasks``), for an operator's app;
    `clock` (Unix seconds) checks a signed request's `issuedAt`."""
    book = TaskBook(ledger)
    network = ledger.network

    def answer(task_id: str, transfers: list[Transfer]) -> dict[str, Any]:
        return {
            "task": task_json(book.task(task_id), network),
            "transfers": [item.id for item in transfers],
        }

    def signed(body: Mapping[str, Any], action: str, task_id: str | None) -> tuple[str, Any]:
        request = SignedTaskRequest.from_json(body)
        params = request.verify(
            action=action,
            task_id=request.request.task_id if task_id is None else task_id,
            network=network,
            now_s=int(clock()),
        )
        return request.request.actor, params

    async def info(request: Request) -> Any:
        return info_json(network)

    async def list_tasks(request: Request) -> Any:
        principal = _query_address(request, "principal")
        agent = _query_address(request, "agent")

        def read() -> list[Task]:
            if principal is not None and agent is not None:
                from paywire.crypto.keys import parse_address

                taker = parse_address(agent)
                return [task for task in book.tasks(principal=principal) if taker in task.takers]
            return book.tasks(principal=principal, agent=agent)

        tasks = await run_in_threadpool(read)
        return {"network": network, "tasks": [task_json(task, network) for task in tasks]}

    async def post_task(request: Request) -> Any:
        body = await _body(request)

        def run() -> dict[str, Any]:
            actor, params = signed(body, "post", None)
            task_id = body["request"]["taskId"]
            _post(book, task_id, actor, params)
            return answer(task_id, [])

        return await run_in_threadpool(run)

    async def show(request: Request) -> Any:
        task_id = request.path_params["task_id"]
        task = await run_in_threadpool(book.task, task_id)
        return task_json(task, network)

    async def books(request: Request) -> Any:
        task_id = request.path_params["task_id"]
        return books_json(await run_in_threadpool(book.books, task_id))

    async def act(request: Request) -> Any:
        task_id, action = request.path_params["task_id"], request.path_params["action"]
        if action not in ACTIONS:
            raise _HttpError(
                404,
                "unknown_action",
                f"POST /tasks/<id>/<action>: the action is one of {', '.join(sorted(ACTIONS))}",
            )
        if action in OPEN_ACTIONS:
            run_open = book.release if action == "release" else book.expire
            transfers = await run_in_threadpool(run_open, task_id)
            return await run_in_threadpool(answer, task_id, transfers)
        body = await _body(request)

        def run() -> dict[str, Any]:
            actor, params = signed(body, action, task_id)
            return answer(task_id, _act(book, action, task_id, actor, params))

        return await run_in_threadpool(run)

    return [
        Route("/tasks", _guarded(list_tasks), methods=["GET"]),
        Route("/tasks", _guarded(post_task), methods=["POST"]),
        Route("/tasks/_info", _guarded(info), methods=["GET"]),
        Route("/tasks/{task_id:path}/books", _guarded(books), methods=["GET"]),
        Route("/tasks/{task_id:path}/{action}", _guarded(act), methods=["POST"]),
        Route("/tasks/{task_id:path}", _guarded(show), methods=["GET"]),
    ]


def tasks_app(ledger: Ledger, *, clock: Callable[[], float] = time.time) -> Starlette:
    """The task endpoints alone, as an ASGI app (the operator's app includes them)."""
    return Starlette(routes=task_routes(ledger, clock=clock))


__all__ = [
    "ACTIONS",
    "MAX_TASK_BODY_BYTES",
    "OPEN_ACTIONS",
    "NotPrincipal",
    "books_json",
    "info_json",
    "task_from_json",
    "task_json",
    "task_routes",
    "tasks_app",
]
