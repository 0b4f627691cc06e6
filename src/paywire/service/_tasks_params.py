"""Reading the params of signed task requests: strict, bounded, with errors naming the
field (see `paywire.service.tasks`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from paywire.money import MAX_ATOMIC, Amount, Asset
from paywire.tasks import (
    MAX_AGENTS,
    InvalidTask,
    Task,
    TaskBook,
)
from paywire.tasks.checks import REMOTE_CHECK_KINDS, AcceptanceCheck, check_from_json
from paywire.tasks.requests import (
    InvalidTaskRequest,
)

if TYPE_CHECKING:
    from paywire.mandate import MandateChain, SignedMandate

MAX_SHARE_PARTS = 10**12
"""A share's whole parts (parts are proportions: nobody needs a trillion)."""

_ATOMIC_TEXT = re.compile(r"[1-9][0-9]{0,38}")


class HttpError(Exception):
    """A refusal the task endpoints answer as it is (status, error code, message)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def param_fields(
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


def param_atomic(value: object, what: str) -> int:
    if not isinstance(value, str) or not _ATOMIC_TEXT.fullmatch(value) or int(value) > MAX_ATOMIC:
        raise InvalidTaskRequest(f"{what} is a decimal string of atomic units, 1 to 2^128-1")
    return int(value)


def param_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidTaskRequest(f"{what} is text")
    return value


def param_shares(value: object) -> dict[str, int] | None:
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


def param_check(value: object) -> AcceptanceCheck | None:
    """An acceptance check from its JSON, of a kind safe to take from a principal the
    operator does not trust (no ``command`` check: it would run the principal's program)."""
    if value is None:
        return None
    return check_from_json(value, kinds=REMOTE_CHECK_KINDS)


def param_mandate(value: object) -> SignedMandate | MandateChain | None:
    from paywire.mandate import MandateChain, SignedMandate

    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidTaskRequest("mandate is a task mandate's JSON object")
    if "chain" in value:
        return MandateChain.from_dict(value)
    return SignedMandate.from_dict(value)


def param_fee(value: object, book: TaskBook, task: Task) -> tuple[str, Amount] | None:
    from paywire.ledger import AccountKind, AccountNotFound

    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"account", "amount"}:
        raise InvalidTaskRequest('fee is {"account": <fees account id>, "amount": <atomic>}')
    account_id = param_text(value["account"], "fee.account")
    amount = Amount(param_atomic(value["amount"], "fee.amount"), task.budget.asset)
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


def param_asset(book: TaskBook, principal: str, code: object) -> Asset:
    from paywire.ledger import AccountNotFound
    from paywire.ledger.names import wallet_account_id

    code = param_text(code, "asset")
    try:
        return book.ledger.account(wallet_account_id(principal, code)).asset
    except AccountNotFound:
        raise HttpError(
            404,
            "wallet_not_found",
            f"{principal} has no {code[:20]} wallet account on this ledger: deposit first",
        ) from None


# --- actions -----------------------------------------------------------------------------------
