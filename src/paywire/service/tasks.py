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
    POST /tasks/{id}/decide               {result, approval?}: anyone; the task's check decides

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

``decide`` runs the task's acceptance check on the delivered result (its text, whose
SHA-256 an agent delivered; at most the body's limit) and settles by the verdict; an
``approval`` check takes the principal's `paywire.tasks.checks.SignedApproval` JSON, a
``judge`` check needs the operator to have a judge client (``task_routes(judge=...)``):
without one, or when the check cannot decide, the answer is 409 ``check_undecided`` and
nothing moved. It needs no signature: the check decides, not the caller. The answer adds
``"verdict"``.

A task id may hold ``/`` (``/tasks/a/b/take`` is ``take`` on task ``a/b``); a task whose
id ends in ``/books`` is read through its books' ``task`` only.

Every refusal is JSON ``{"error": <code>, "message": ...}``: 400 for a malformed request,
402 when the principal's wallet cannot cover the budget, 403 when the signature does not
prove the actor or the actor may not do the action, 404 for an unknown task or action, 409
for an action the task's state does not allow now, 413 for a body past
`MAX_TASK_BODY_BYTES`, 503 when the ledger is unavailable.
"""

from __future__ import annotations

import asyncio
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
from paywire.money import Amount
from paywire.service._tasks_json import (
    OPEN_ACTIONS,
    books_json,
    info_json,
    task_from_json,
    task_json,
)
from paywire.service._tasks_params import (
    HttpError,
    param_asset,
    param_atomic,
    param_check,
    param_fee,
    param_fields,
    param_mandate,
    param_shares,
    param_text,
)
from paywire.tasks import (
    MAX_AGENTS,
    AgentNotAllowed,
    InvalidTask,
    Task,
    TaskBook,
    TaskError,
)
from paywire.tasks.checks import JudgeLLM, SignedApproval
from paywire.tasks.requests import (
    SIGNED_ACTIONS,
    InvalidTaskRequest,
    SignedTaskRequest,
    TaskRequestRefused,
)

if TYPE_CHECKING:
    from paywire.ledger import Ledger, Transfer

MAX_TASK_BODY_BYTES = 64 * 1024
"""A task request is a few KB; a take with its mandate the largest."""

MAX_BODY_DEPTH = 24
"""How deep a request body may nest (its params are a string, parsed on their own)."""


MAX_QUERY_CHARS = 200
"""An address in the query string is 42 characters."""


DECIDE = "decide"
"""The action that runs the task's acceptance check (no signature: the check decides)."""

ACTIONS = frozenset(SIGNED_ACTIONS - {"post"}) | frozenset(OPEN_ACTIONS) | {DECIDE}
"""The actions of ``POST /tasks/{id}/<action>``."""

INVALID_REQUEST = "invalid_request"


class NotPrincipal(TaskError):
    """A signed request for an action only the task's principal may take."""

    code = "task_not_principal"


# --- JSON forms ---------------------------------------------------------------------------------


def _post(book: TaskBook, task_id: str, actor: str, params: Mapping[str, Any]) -> Task:
    fields = param_fields(
        params,
        "post",
        ("budget", "asset", "deadlineSeconds", "agents", "description"),
        ("reward", "check", "disputeWindowSeconds"),
    )
    asset = param_asset(book, actor, fields["asset"])
    agents = fields["agents"]
    if not isinstance(agents, list) or not all(isinstance(agent, str) for agent in agents):
        raise InvalidTaskRequest("agents is a list of addresses")
    if len(agents) > MAX_AGENTS:
        raise InvalidTask(f"a task allows 1 to {MAX_AGENTS} agents")
    reward = fields.get("reward")
    return book.post(
        task_id,
        actor,
        Amount(param_atomic(fields["budget"], "budget"), asset),
        fields["deadlineSeconds"],
        agents,
        param_text(fields["description"], "description"),
        None if reward is None else Amount(param_atomic(reward, "reward"), asset),
        check=param_check(fields.get("check")),
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
        fields = param_fields(params, action, (), ("mandate",))
        book.take(task_id, actor, param_mandate(fields.get("mandate")))
        return []
    if action == "deliver":
        fields = param_fields(params, action, ("resultDigest",), ("shares",))
        digest = param_text(fields["resultDigest"], "resultDigest")
        book.deliver(task_id, actor, digest, param_shares(fields.get("shares")))
        return []
    if action == "dispute":
        fields = param_fields(params, action, ("reason",), ())
        book.dispute(task_id, actor, param_text(fields["reason"], "reason"))
        return []
    task = _principal_task(book, task_id, actor, action)
    if action == "accept":
        fields = param_fields(params, action, (), ("shares", "fee"))
        fee = param_fee(fields.get("fee"), book, task)
        return book.accept(task_id, param_shares(fields.get("shares")), fee=fee)
    param_fields(params, action, (), ())
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
        raise HttpError(413, INVALID_REQUEST, f"the body is over {MAX_TASK_BODY_BYTES} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_TASK_BODY_BYTES:
            raise HttpError(413, INVALID_REQUEST, f"the body is over {MAX_TASK_BODY_BYTES} bytes")
    try:
        data = _json.loads(raw, max_depth=MAX_BODY_DEPTH)
    except ValueError:
        raise HttpError(400, INVALID_REQUEST, "the body is not JSON (UTF-8)") from None
    if not isinstance(data, dict):
        raise HttpError(400, INVALID_REQUEST, "the body is not a JSON object")
    return data


def _guarded(work: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(await work(request))
        except HttpError as refused:
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
        raise HttpError(400, INVALID_REQUEST, f"{name} is an address")
    return value


JudgeSource = Callable[[str], JudgeLLM]
"""Gives the client that pays the model of one task's ``judge`` check (by task id), e.g.
`paywire.service._tasks_judge.GatewayJudge`; closed after the decision if it can be."""


def task_routes(
    ledger: Ledger, *, clock: Callable[[], float] = time.time, judge: JudgeSource | None = None
) -> list[Route]:
    """The task routes on `ledger` (full paths under ``/tasks``), for an operator's app;
    `clock` (Unix seconds) checks a signed request's `issuedAt`; `judge` gives the client
    that pays for the model of a ``judge`` check that ``decide`` runs."""
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
            raise HttpError(
                404,
                "unknown_action",
                f"POST /tasks/<id>/<action>: the action is one of {', '.join(sorted(ACTIONS))}",
            )
        if action == DECIDE:
            return await _decide(request, task_id)
        if action in OPEN_ACTIONS:
            run_open = book.release if action == "release" else book.expire
            transfers = await run_in_threadpool(run_open, task_id)
            return await run_in_threadpool(answer, task_id, transfers)
        body = await _body(request)

        def run() -> dict[str, Any]:
            actor, params = signed(body, action, task_id)
            return answer(task_id, _act(book, action, task_id, actor, params))

        return await run_in_threadpool(run)

    async def _decide(request: Request, task_id: str) -> dict[str, Any]:
        body = await _body(request)
        unknown = set(body) - {"result", "approval"}
        if unknown:
            raise HttpError(400, INVALID_REQUEST, f"unknown fields: {', '.join(sorted(unknown))}")
        result = body.get("result")
        if not isinstance(result, str):
            raise HttpError(400, INVALID_REQUEST, "result is the delivered text")
        approval = None
        if body.get("approval") is not None:
            approval = SignedApproval.from_json(body["approval"])

        def run() -> dict[str, Any]:
            check = book.task(task_id).document.check or {}
            llm = judge(task_id) if judge is not None and check.get("kind") == "judge" else None
            try:
                decided = asyncio.run(book.decide(task_id, result, llm=llm, approval=approval))
            finally:
                close = getattr(llm, "close", None)
                if callable(close):
                    close()
            return answer(task_id, decided.transfers) | {"verdict": decided.verdict.to_json()}

        return await run_in_threadpool(run)

    return [
        Route("/tasks", _guarded(list_tasks), methods=["GET"]),
        Route("/tasks", _guarded(post_task), methods=["POST"]),
        Route("/tasks/_info", _guarded(info), methods=["GET"]),
        Route("/tasks/{task_id:path}/books", _guarded(books), methods=["GET"]),
        Route("/tasks/{task_id:path}/{action}", _guarded(act), methods=["POST"]),
        Route("/tasks/{task_id:path}", _guarded(show), methods=["GET"]),
    ]


def tasks_app(
    ledger: Ledger, *, clock: Callable[[], float] = time.time, judge: JudgeSource | None = None
) -> Starlette:
    """The task endpoints alone, as an ASGI app (the operator's app includes them)."""
    return Starlette(routes=task_routes(ledger, clock=clock, judge=judge))


__all__ = [
    "ACTIONS",
    "MAX_TASK_BODY_BYTES",
    "OPEN_ACTIONS",
    "JudgeSource",
    "NotPrincipal",
    "books_json",
    "info_json",
    "task_from_json",
    "task_json",
    "task_routes",
    "tasks_app",
]
