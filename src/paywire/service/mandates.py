"""The operator's mandate endpoints: revoke a mandate, read what a chain has spent.

    POST /mandates/revoke  {chain, revocation}   -> {"closed": [limit ids], "mandate": id}
    POST /mandates/status  {chain}               -> {"principal", "agent", "mandates", "rows"}
    GET  /mandates/status?chain=<base64>         the same, for small chains

`chain` is a `MandateChain` and `revocation` a `SignedRevocation`, each in its base64url
form. A revocation must be signed by the revoked mandate's issuer or by the issuer of one
of its ancestors in `chain` (the principal, or an agent that delegated it); the operator
then closes the mandate's ledger spend limits, so every payment under it, or under any
mandate below it, is refused (``mandate_revoked``) from the next write on.

A status row is one ledger spend limit of one mandate: its total or one of its rolling
windows, with its cap, what was spent (in the window ending now, for a window) and what
is left, as decimal strings of atomic units. Limits no payment has touched yet read as
unused. Limits of EVM tokens are not held by the ledger (``"ledger": false``): on a chain
the client enforces its mandate.

Every refusal is JSON ``{"error": <code>, "message": ...}``: 400 for a bad request or a
refused revocation, 503 when the ledger is unavailable; never a 500.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paywire.errors import PaywireError
from paywire.service.facilitator_app import MAX_BODY_BYTES, _read

if TYPE_CHECKING:
    from paywire.ledger import Ledger
    from paywire.mandate import MandateChain, SignedRevocation
    from paywire.mandate._ledger import LedgerMandates
    from paywire.protocol.facilitator import Facilitator

MAX_QUERY_CHARS = 16 * 1024
"""A chain given in the query string of GET /mandates/status (larger ones: POST)."""

INVALID_REQUEST = "invalid_request"


class RevokerNotAllowed(PaywireError):
    """A revocation signed by someone who is neither the mandate's issuer nor the issuer
    of one of its ancestors."""

    code = "mandate_revoker_not_allowed"


class MandateNotInChain(PaywireError):
    """A revocation of a mandate that is not in the chain given with it."""

    code = "mandate_not_in_chain"


class _Refused(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def check_links(chain: MandateChain) -> None:
    """The chain's signatures and links, from the root down, whatever the time: every
    signature is its issuer's, the first mandate is a root, and each child names its
    parent and is within it. Raises the `MandateChainInvalid` that says where it breaks."""
    from paywire.mandate import MandateChainBroken, check_delegation

    parent = None
    for signed in chain.mandates:
        signed.verify()
        if parent is None and not signed.mandate.is_root:
            raise MandateChainBroken(
                "the chain does not start at a root (the principal's mandate)",
                mandate_id=signed.id,
                field="parent",
            )
        if parent is not None:
            check_delegation(parent, signed.mandate)
        parent = signed.mandate


def status_report(mandates: LedgerMandates, chain: MandateChain) -> dict[str, Any]:
    """Spent and remaining for every ledger spend limit of every mandate of `chain`, as
    JSON (amounts as decimal strings of atomic units)."""
    from paywire.mandate._ledger import limit_ids

    ids = chain.ids
    rows: list[dict[str, Any]] = []
    for mandate, limit, statuses in mandates.status(chain):
        found = {status.id: status for status in statuses}
        caps = [(limit.total_atomic, None), *((w.limit_atomic, w.window_s) for w in limit.windows)]
        for limit_id, (cap, window_s) in zip(limit_ids(mandate, limit), caps, strict=True):
            status = found.get(limit_id)
            used = status.used_atomic if status is not None else 0
            rows.append(
                {
                    "mandate": mandate.id,
                    "depth": ids.index(mandate.id),
                    "agent": mandate.agent,
                    "network": limit.network,
                    "asset": limit.asset,
                    "limit": "total" if window_s is None else "window",
                    "windowSeconds": window_s,
                    "limitId": limit_id,
                    "cap": str(status.cap_atomic if status is not None else cap),
                    "spent": str(used),
                    "remaining": str(status.remaining_atomic if status is not None else cap),
                    "perPayment": str(limit.per_payment_atomic),
                    "closed": status.closed if status is not None else False,
                    "opened": status is not None,
                    "ledger": not limit.asset.startswith("0x"),
                }
            )
    return {
        "principal": chain.principal,
        "agent": chain.agent,
        "mandates": list(ids),
        "rows": rows,
    }


def revoke(
    mandates: LedgerMandates, chain: MandateChain, revocation: SignedRevocation
) -> dict[str, Any]:
    """Check `revocation` against `chain` and close the revoked mandate's ledger limits."""
    from paywire.mandate import verify_revocation

    mandates.verify_chain(chain)
    revocation.verify()
    target_id = revocation.revocation.mandate_id
    if target_id not in chain.ids:
        raise MandateNotInChain(
            f"mandate {target_id} is not in the chain given: give the chain from the "
            "principal's mandate down to it"
        )
    if not verify_revocation(revocation, chain):
        index = chain.ids.index(target_id)
        allowed = list(dict.fromkeys(m.issuer for m in list(chain)[: index + 1]))
        raise RevokerNotAllowed(
            f"{revocation.revocation.revoker} may not revoke mandate {target_id}: only its "
            f"issuer or the issuer of a mandate above it may ({', '.join(allowed)})"
        )
    closed = mandates.revoke(chain, revocation)
    return {"mandate": target_id, "closed": closed}


def _ledger_mandates(facilitator: Facilitator, ledger: Ledger) -> LedgerMandates:
    """The facilitator's own view of mandates on `ledger` (same assets, shared caches),
    or a new one if it settles nothing on this ledger."""
    from paywire.mandate._ledger import LedgerMandates
    from paywire.protocol.ledger_network import LedgerExactScheme

    for handler in facilitator.handlers:
        if isinstance(handler, LedgerExactScheme) and handler.ledger is ledger:
            return handler.mandates.mandates
    return LedgerMandates(ledger)


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = await _read(request)
    except ValueError as error:  # too large, not UTF-8, too deep, not JSON
        message = "the body is not JSON" if isinstance(error, json.JSONDecodeError) else str(error)
        raise _Refused(400, INVALID_REQUEST, message) from None
    if not isinstance(data, dict):
        raise _Refused(400, INVALID_REQUEST, "the body is not a JSON object")
    return data


def _base64(value: object, name: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise _Refused(400, INVALID_REQUEST, f"{name} must be the base64 text of {what}")
    return value


def mandates_app(facilitator: Facilitator, ledger: Ledger) -> Starlette:
    """The mandate endpoints (mount it at ``/mandates``)."""
    from paywire.mandate import MandateChain, SignedRevocation

    mandates = _ledger_mandates(facilitator, ledger)

    def chain_of(value: object) -> MandateChain:
        return MandateChain.from_base64(_base64(value, "chain", "a mandate chain"))

    async def revoke_endpoint(request: Request) -> Response:
        body = await _body(request)
        chain = chain_of(body.get("chain"))
        revocation = SignedRevocation.from_base64(
            _base64(body.get("revocation"), "revocation", "a signed revocation")
        )
        return JSONResponse(await run_in_threadpool(revoke, mandates, chain, revocation))

    async def status_endpoint(request: Request) -> Response:
        if request.method == "GET":
            text = request.query_params.get("chain", "")
            if len(text) > MAX_QUERY_CHARS:
                raise _Refused(
                    400, INVALID_REQUEST, "the chain is too long for a query: POST it instead"
                )
            chain = chain_of(text)
        else:
            chain = chain_of((await _body(request)).get("chain"))
        await run_in_threadpool(check_links, chain)
        return JSONResponse(await run_in_threadpool(status_report, mandates, chain))

    def guarded(endpoint: Any) -> Any:
        async def handle(request: Request) -> Response:
            try:
                response: Response = await endpoint(request)
            except _Refused as refused:
                return JSONResponse(
                    {"error": refused.error, "message": refused.message},
                    status_code=refused.status,
                )
            except PaywireError as error:
                status = 503 if error.code == "ledger_unavailable" else 400
                return JSONResponse(
                    {"error": error.code, "message": str(error)}, status_code=status
                )
            return response

        return handle

    return Starlette(
        routes=[
            Route("/revoke", guarded(revoke_endpoint), methods=["POST"]),
            Route("/status", guarded(status_endpoint), methods=["GET", "POST"]),
        ]
    )


__all__ = [
    "MAX_BODY_BYTES",
    "MandateNotInChain",
    "RevokerNotAllowed",
    "check_links",
    "mandates_app",
    "revoke",
    "status_report",
]
