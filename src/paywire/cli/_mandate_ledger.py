"""`paywire mandate revoke` and `status`: through the operator's service, or on this
home's ledger with ``--local`` (the same code as the service: `paywire.service.mandates`)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from paywire.cli import _common
from paywire.cli import _mandate_input as read
from paywire.cli import _mandate_options as opt
from paywire.cli import _mandate_view as view
from paywire.cli._keys import PASSPHRASE_FILE, load_key
from paywire.errors import InvalidInput, PaywireError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from paywire.ledger import Ledger


@contextmanager
def _local_ledger(db: str | None) -> Iterator[Ledger]:
    from paywire.ledger import open_ledger

    url = db
    if url is None:
        path = _common.home_dir() / "ledger.db"
        if not path.exists():
            raise InvalidInput(
                f"no ledger at {path}: give --db, or leave out --local to ask the operator"
            )
        url = f"sqlite:///{path}"
    ledger = open_ledger(url)
    try:
        yield ledger
    finally:
        ledger.close()


def _operator(
    method: str, operator_url: str | None, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    from paywire.cli.chain import OperatorError, _call, _url

    answer = _call(method, _url(operator_url), path, body)
    if not isinstance(answer, dict):
        raise OperatorError(f"the operator's {path} answer is malformed")
    return answer


def revoke_command(
    chain_source: str = typer.Argument(..., help="The chain: file, base64 or JSON text, or id."),
    mandate_id: str = typer.Option(
        ..., "--mandate", help="The mandate to revoke: its id, or 'root' or 'leaf'."
    ),
    wallet: str = typer.Option(
        ..., "--wallet", help="The revoker's wallet: the mandate's issuer or an ancestor's."
    ),
    operator_url: str = opt.OPERATOR_URL,
    local: bool = opt.LOCAL,
    db: str = opt.DB,
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Revoke a mandate (and everything below it): its ledger limits close at once."""
    from paywire.mandate import MandateChain, Revocation, SignedRevocation
    from paywire.service.mandates import RevokerNotAllowed

    opt.one_of(operator_url, local or None, "--operator-url / --local")
    chain, _ = read.load_chain(chain_source)
    ids = chain.ids
    wanted = {"root": ids[0], "leaf": ids[-1]}.get(mandate_id.strip(), mandate_id.strip().lower())
    matches = [index for index, one in enumerate(ids) if one.startswith(wanted)]
    if len(wanted) < 10 or len(matches) != 1:
        raise InvalidInput(
            f"--mandate {mandate_id[:70]!r} is not one mandate of this chain (give its id, "
            f"'root' or 'leaf'; the chain holds {', '.join(ids)})"
        )
    index = matches[0]
    path = MandateChain(chain.mandates[: index + 1])  # the principal down to the target
    revoker = read.wallet_address(wallet)
    issuers = list(dict.fromkeys(mandate.issuer for mandate in path))
    if revoker not in issuers:
        raise RevokerNotAllowed(
            f"wallet {wallet} ({revoker}) may not revoke mandate {ids[index]}: only its "
            f"issuer or the issuer of a mandate above it may ({', '.join(issuers)})"
        )
    key = load_key(wallet, passphrase_file)
    revocation = SignedRevocation.sign(Revocation(ids[index], revoker, opt.now()), key)
    if local:
        from paywire.mandate._ledger import LedgerMandates
        from paywire.service.mandates import revoke

        with _local_ledger(db) as ledger:
            closed = revoke(LedgerMandates(ledger), path, revocation)["closed"]
    else:
        body = {"chain": path.to_base64(), "revocation": revocation.to_base64()}
        closed = _operator("POST", operator_url, "/mandates/revoke", body).get("closed")
        if not isinstance(closed, list):
            raise PaywireError("the operator's /mandates/revoke answer is malformed")
    below = len(chain) - 1 - index
    view.line(
        f"revoked mandate {ids[index]}"
        + (f" and with it the {below} mandate(s) below it in this chain" if below else "")
    )
    if closed:
        view.line(f"closed {len(closed)} ledger limit(s):")
        for limit_id in closed:
            view.line(f"  {limit_id}")
    else:
        view.line("no ledger limit to close: its limits are on EVM chains, enforced by clients")
    view.line(f"revocation {revocation.to_base64()}")


def status_command(
    chain_source: str = typer.Argument(..., help="The chain: file, base64 or JSON text, or id."),
    operator_url: str = opt.OPERATOR_URL,
    local: bool = opt.LOCAL,
    db: str = opt.DB,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Spent and remaining per mandate, per limit and window (cap, spent, remaining)."""
    from paywire.service.mandates import check_links, status_report

    opt.one_of(operator_url, local or None, "--operator-url / --local")
    chain, _ = read.load_chain(chain_source)
    check_links(chain)
    if local:
        from paywire.mandate._ledger import LedgerMandates

        with _local_ledger(db) as ledger:
            report = status_report(LedgerMandates(ledger), chain)
    else:
        report = _operator("POST", operator_url, "/mandates/status", {"chain": chain.to_base64()})
        _check_report(report)
    if as_json:
        import json

        _common.console.print_json(json.dumps(report))
        return
    view.print_status(report)


def _check_report(report: dict[str, Any]) -> None:
    """An operator's status answer, checked before it is shown."""
    rows = report.get("rows")
    good = isinstance(rows, list) and isinstance(report.get("mandates"), list)
    for row in rows if isinstance(rows, list) else []:
        window = row.get("windowSeconds") if isinstance(row, dict) else None
        good = good and (
            isinstance(row, dict)
            and isinstance(row.get("depth"), int)
            and isinstance(row.get("mandate"), str)
            and isinstance(row.get("asset"), str)
            and all(str(row.get(key, "")).isdigit() for key in ("cap", "spent", "remaining"))
            and (window is None or (isinstance(window, int) and window > 0))
        )
    if not good:
        raise PaywireError("the operator's /mandates/status answer is malformed")
