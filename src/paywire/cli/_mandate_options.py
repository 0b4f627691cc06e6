"""The options and checks `paywire mandate issue` and `delegate` share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from paywire.cli import _mandate_input as read
from paywire.errors import InvalidInput

if TYPE_CHECKING:
    from paywire.mandate import Mandate

NETWORK = typer.Option(
    None, "--network", help="The network: paywire:<ledger-id>, eip155:8453, or eip155:*."
)
ASSET = typer.Option(None, "--asset", help="USDC, EURC, a token address, or 0xTOKEN=USDC.")
TOTAL = typer.Option(None, "--total", help="The most ever spent: '$5', '5 USDC' or atomic.")
PER_PAYMENT = typer.Option(None, "--per-payment", help="The most one payment may be.")
WINDOW = typer.Option(
    None, "--window", help="LENGTH=AMOUNT, e.g. 1h=$1 or 24h='3 USDC' (repeatable)."
)
PAYEE = typer.Option(None, "--payee", help="A payee allowed (address or wallet; repeatable).")
ORIGIN = typer.Option(None, "--origin", help="A URL origin allowed, e.g. https://api.x.com.")
VALID_FOR = typer.Option(None, "--valid-for", help="How long from now: 1h, 30d, 2w...")
VALID_UNTIL = typer.Option(
    None, "--valid-until", help="Until: 2026-01-31, 2026-01-31T18:00:00Z, or Unix seconds."
)
PURPOSE = typer.Option(None, "--purpose", help="What the budget is for (shown to people).")
TASK_ID = typer.Option(None, "--task-id", help="The task the budget is for.")
OUT = typer.Option(None, "--out", help="Where to write the chain (default: <home>/mandates).")
OPERATOR_URL = typer.Option(
    None,
    "--operator-url",
    help="The operator's service (default: $PAYWIRE_OPERATOR_URL, else http://127.0.0.1:4020).",
    show_default=False,
)
LOCAL = typer.Option(False, "--local", help="Use this home's ledger instead of the operator.")
DB = typer.Option(
    None,
    "--db",
    envvar="PAYWIRE_DB",
    help="With --local: the ledger store (default: ledger.db in the paywire home).",
    show_default=False,
)


def now() -> int:
    return int(time.time())


def required(value: str | None, flag: str, key: str) -> str:
    if value is None or not value.strip():
        raise typer.BadParameter(f"required (or {key} = ... in --from-file)", param_hint=flag)
    return value


def one_of(first: object, second: object, hint: str) -> None:
    if first is not None and second is not None and first is not False and second is not False:
        raise typer.BadParameter("give one or the other, not both", param_hint=hint)


def valid_before(valid_for: str | None, valid_until: str | None, start: int, where: str) -> int:
    """When the mandate ends: --valid-until, or --valid-for from `start` (default 30
    days). `where` is "" for flags, else the file's name, for messages."""
    from paywire.mandate import MAX_VALIDITY_S

    if valid_until is not None:
        name = f"{where}: valid_until" if where else "--valid-until"
        before = read.parse_time(valid_until, name)
        if before <= start:
            raise InvalidInput(f"{name}: {read.show_time(before)} is not in the future")
        return before
    name = f"{where}: valid_for" if where else "--valid-for"
    text = valid_for or read.DEFAULT_VALID_FOR
    return start + read.parse_duration(text, name, low=1, high=MAX_VALIDITY_S)


_FLAG_OF_FIELD = {
    "validBefore": "--valid-for/--valid-until",
    "validAfter": "--valid-until",
    "taskId": "--task-id",
    "purpose": "--purpose",
    "origins": "--origin",
    "payees": "--payee",
    "agent": "--agent",
}


def build_mandate(build: Callable[[], Mandate]) -> Mandate:
    """Build a mandate, its `InvalidMandate` said in the CLI's words."""
    from paywire.mandate import InvalidMandate

    try:
        mandate: Mandate = build()
    except InvalidMandate as error:
        field = error.field.split("[")[0]
        raise InvalidInput(f"{_FLAG_OF_FIELD.get(field, field)}: {error.reason}") from None
    return mandate
