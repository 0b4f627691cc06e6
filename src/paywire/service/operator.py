"""The operator's HTTP service: the facilitator, and the door between chain and ledger.

    GET  /supported, POST /verify, POST /settle   x402's facilitator API
    GET  /chain                                   the chain, token and reserve in use
    POST /deposit   {authorization, signature}    a wallet's signed ReceiveWithAuthorization
    POST /withdraw  {request, signature}          a wallet's signed Withdrawal
    POST /faucet    {address, amount, ledger}     demo chain only: virtual funds
    GET  /reserves                                the reserves check
    POST /rpc                                     the local chain over JSON-RPC (demo)
    POST /mandates/revoke, /mandates/status       mandates (`paywire.service.mandates`)
    /tasks, /tasks/{id}/...                       tasks (`paywire.service.tasks`)

Every refusal is JSON `{"error": <code>, "message": ...}` with a 4xx status; a chain that
has not confirmed yet answers 202 (`pending`: retry with the same request).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from paywire import _json
from paywire.errors import InvalidInput, NotFound, PaywireError
from paywire.protocol.facilitator import Facilitator
from paywire.protocol.headers import MAX_JSON_DEPTH
from paywire.protocol.withdrawal import WithdrawalRequest
from paywire.service.facilitator_app import facilitator_app
from paywire.service.mandates import mandates_app
from paywire.service.tasks import JudgeSource, task_routes

if TYPE_CHECKING:
    from paywire.chain import Chain, Reserve, Token
    from paywire.ledger import Ledger

MAX_BODY_BYTES = 16 * 1024
"""A deposit or withdrawal request is under 1 KB."""

MAX_FAUCET_ATOMIC = 1_000_000 * 10**6
"""The faucet hands out at most a million dollars of virtual funds a call."""


@dataclass(frozen=True, slots=True)
class ChainDesk:
    """The operator's side of one chain: the token it accepts and its reserve."""

    chain: Chain
    token: Token
    reserve: Reserve

    def info(self) -> dict[str, Any]:
        return {
            "network": self.chain.network,
            "chainId": self.chain.chain_id,
            "token": self.token.address,
            "name": self.token.name,
            "version": self.token.version,
            "symbol": self.token.symbol,
            "decimals": self.token.decimals,
            "asset": self.reserve.asset.code,
            "reserve": self.reserve.address,
            "demo": self.chain.is_demo,
        }


class _Refused(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


async def _body(request: Request) -> dict[str, Any]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise _Refused(
                400, "invalid_request", f"the body is larger than {MAX_BODY_BYTES} bytes"
            )
    try:
        text = raw.decode("utf-8")
        data = _json.loads(text, max_depth=MAX_JSON_DEPTH)
    except ValueError:
        raise _Refused(400, "invalid_request", "the body is not a JSON object") from None
    if not isinstance(data, dict):
        raise _Refused(400, "invalid_request", "the body is not a JSON object")
    return data


def _status(error: PaywireError) -> int:
    code = error.code
    if code in ("transaction_pending", "settlement_pending", "withdrawal_pending"):
        return 202
    if code in ("exceeds_credits", "insufficient_funds"):
        return 402
    if code in ("idempotency_conflict",):
        return 409
    if code in ("chain_unavailable",):
        return 503
    if isinstance(error, NotFound):
        return 404
    return 400


def _handler(work: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(await work(request))
        except _Refused as refused:
            return JSONResponse(
                {"error": refused.error, "message": refused.message}, status_code=refused.status
            )
        except PaywireError as error:
            status = _status(error)
            key = "pending" if status == 202 else "error"
            return JSONResponse({key: error.code, "message": str(error)}, status_code=status)

    return endpoint


def _first_withdrawal(ledger: Ledger, withdrawal_id: str) -> str | None:
    """The signed request a withdrawal id was first made with, if it was."""
    from paywire.ledger import TransferNotFound

    try:
        held = ledger.transfer(f"withdrawal:{withdrawal_id}")
    except TransferNotFound:
        return None
    return held.authorization


def operator_app(
    facilitator: Facilitator,
    ledger: Ledger,
    desk: ChainDesk | None = None,
    *,
    clock: Callable[[], float] = time.time,
    judge: JudgeSource | None = None,
) -> Starlette:
    """The operator's ASGI app: the facilitator, the tasks (`judge` pays for judge checks),
    plus the chain routes when `desk` is set."""

    def need_desk() -> ChainDesk:
        if desk is None:
            raise _Refused(404, "no_chain", "this operator runs no chain")
        return desk

    async def chain_info(request: Request) -> Any:
        return need_desk().info()

    async def deposit(request: Request) -> Any:
        from paywire.chain import Authorization

        here = need_desk()
        body = await _body(request)
        authorization = Authorization.from_json(body.get("authorization", {}))
        signature = body.get("signature")
        if not isinstance(signature, str):
            raise _Refused(400, "invalid_request", "signature must be 0x-hex text")
        done = await run_in_threadpool(here.reserve.deposit, authorization, signature)
        account = here.reserve.wallet_account(authorization.from_)
        return {
            "transfer": done.transfer.id,
            "tx": done.tx_hash,
            "amount": str(done.value),
            "account": account,
            "available": str(ledger.balance(account).available),
        }

    async def withdraw(request: Request) -> Any:
        here = need_desk()
        body = await _body(request)
        withdrawal = WithdrawalRequest.from_json(body.get("request", {}))
        signature = body.get("signature")
        if not isinstance(signature, str):
            raise _Refused(400, "invalid_request", "signature must be 0x-hex text")
        withdrawal.check(here.token.domain, signature, int(clock()))
        record = json.dumps({"request": withdrawal.to_json(), "signature": signature})
        first = _first_withdrawal(ledger, withdrawal.id)
        if first is not None:
            # A retry may be signed anew (a later validBefore): the same withdrawal if its
            # terms are the same, so keep the first signed request as the hold has it.
            terms = json.loads(first)["request"]
            if (terms["wallet"], terms["to"], terms["value"]) != (
                withdrawal.wallet,
                withdrawal.to,
                str(withdrawal.value),
            ):
                raise _Refused(
                    409, "idempotency_conflict", f"withdrawal {withdrawal.id!r} had other terms"
                )
            record = first
        done = await run_in_threadpool(
            lambda: here.reserve.withdraw(
                withdrawal.id,
                withdrawal.wallet,
                withdrawal.value,
                to=withdrawal.to,
                authorization=record,
            )
        )
        return {
            "id": done.id,
            "to": done.to,
            "amount": str(done.value),
            "tx": done.tx_hash,
            "transfer": done.post.id,
        }

    async def faucet(request: Request) -> Any:
        from paywire.crypto.keys import parse_address

        here = need_desk()
        body = await _body(request)
        amount = body.get("amount")
        if not isinstance(amount, str) or not amount.isdigit():
            raise InvalidInput("amount is a decimal string of atomic units")
        value = int(amount)
        if not 0 < value <= MAX_FAUCET_ATOMIC:
            raise InvalidInput(f"the faucet hands out 1 to {MAX_FAUCET_ATOMIC} atomic units")
        address = parse_address(str(body.get("address", "")))
        if body.get("ledger"):
            done = await run_in_threadpool(here.reserve.faucet_deposit, address, value)
            account = here.reserve.wallet_account(address)
            return {
                "minted": str(value),
                "to": "ledger",
                "account": account,
                "tx": done.tx_hash,
                "available": str(ledger.balance(account).available),
            }
        receipt = await run_in_threadpool(here.token.faucet, address, value)
        return {"minted": str(value), "to": address, "tx": receipt.tx_hash}

    async def reserves(request: Request) -> Any:
        from paywire.chain import check_reserves

        here = need_desk()
        report = await run_in_threadpool(check_reserves, ledger, [here.reserve])
        return {
            "ok": report.ok,
            "problems": list(report.problems),
            "assets": [
                {
                    "asset": line.asset,
                    "liabilities": str(line.liabilities),
                    "inFlight": str(line.in_flight),
                    "onChain": str(line.on_chain),
                    "surplus": str(line.surplus),
                }
                for line in report.assets
            ],
        }

    routes: list[Route | Mount] = [
        Route("/chain", _handler(chain_info), methods=["GET"]),
        Route("/deposit", _handler(deposit), methods=["POST"]),
        Route("/withdraw", _handler(withdraw), methods=["POST"]),
        Route("/faucet", _handler(faucet), methods=["POST"]),
        Route("/reserves", _handler(reserves), methods=["GET"]),
    ]
    if desk is not None and desk.chain.is_demo:
        from paywire.chain import LocalChain, rpc_route

        if isinstance(desk.chain, LocalChain):
            routes.append(rpc_route(desk.chain, "/rpc"))
    routes.append(Mount("/mandates", app=mandates_app(facilitator, ledger)))
    routes += task_routes(ledger, clock=clock, judge=judge)
    routes.append(Mount("", app=facilitator_app(facilitator)))
    return Starlette(routes=routes)
