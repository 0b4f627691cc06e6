"""`paywire ledger init|checkpoint|verify|export|proof` and `paywire audit`: the log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from paywire.cli import _common
from paywire.cli._common import console
from paywire.cli._keys import DEFAULT_OPERATOR, PASSPHRASE_FILE
from paywire.cli.ledger import ledger_app, ledger_url, open_cli_ledger, print_json
from paywire.errors import PaywireError

if TYPE_CHECKING:
    from paywire.crypto.keys import PrivateKey
    from paywire.ledger.audit import AuditReport


_OPERATOR = typer.Option(DEFAULT_OPERATOR, "--operator", help="The operator's wallet name.")


class AuditFailed(PaywireError):
    code = "audit_failed"


def _operator_key(name: str, passphrase_file: Path | None) -> PrivateKey:
    from paywire.crypto.keystore import KeyStore

    store = KeyStore(_common.home_dir() / "keys")
    store.info(name)  # fails with a clear message before asking for a passphrase
    return store.load(name, _common.read_passphrase(confirm=False, passphrase_file=passphrase_file))


@ledger_app.command("init")
def init(
    operator: str = _OPERATOR,
    passphrase_file: Path = PASSPHRASE_FILE,
    light_kdf: bool = typer.Option(
        False, "--light-kdf", envvar="PAYWIRE_LIGHT_KDF", help="Fast, weaker key encryption."
    ),
) -> None:
    """Create the ledger (if needed) and bind it to its operator's key."""
    from paywire.crypto.keystore import KeyStore
    from paywire.errors import NotFound

    keys = KeyStore(_common.home_dir() / "keys", light_kdf=light_kdf)
    try:
        info = keys.info(operator)
        created = False
    except NotFound:
        passphrase = _common.read_passphrase(confirm=True, passphrase_file=passphrase_file)
        info = keys.create(operator, passphrase)
        created = True
    with open_cli_ledger() as ledger:
        ledger.log.set_operator(info.address)
        console.print(f"ledger [bold]{ledger.ledger_id}[/] (network {ledger.network})")
    console.print(f"  store:    {ledger_url()}")
    console.print(f"  operator: {info.address} (wallet {operator!r}{', new' if created else ''})")


@ledger_app.command("checkpoint")
def checkpoint(operator: str = _OPERATOR, passphrase_file: Path = PASSPHRASE_FILE) -> None:
    """Sign the log's current head with the operator's key."""
    key = _operator_key(operator, passphrase_file)
    with open_cli_ledger() as ledger:
        signed = ledger.log.checkpoint(key)
    console.print(
        f"checkpoint: tree size [bold]{signed.tree_size}[/], root {signed.root_hash.hex()}"
    )
    console.print(f"  signed by {signed.signer()}")


@ledger_app.command("verify")
def verify(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    reserves: bool = typer.Option(
        False, "--reserves", help="Also check the ledger's liabilities against the chain."
    ),
    operator_url: str = typer.Option(
        None, "--operator-url", envvar="PAYWIRE_OPERATOR_URL", help="For --reserves."
    ),
) -> None:
    """Recompute every balance from the log and check the books and checkpoints
    (and, with --reserves, that the operator's reserves on chain cover the ledger)."""
    with open_cli_ledger() as ledger:
        report = ledger.log.verify()
    if reserves:
        from paywire.cli.chain import reserves_report

        _print_reserves(reserves_report(operator_url), as_json)
    _print_report(report, as_json, "ledger")


def _print_reserves(report: dict[str, object], as_json: bool) -> None:
    if as_json:
        print_json({"reserves": report})
    else:
        lines = report.get("assets")
        for line in lines if isinstance(lines, list) else []:
            console.print(
                f"reserves {line['asset']}: on chain {line['onChain']} + in flight "
                f"{line['inFlight']} vs liabilities {line['liabilities']} "
                f"(surplus {line['surplus']})"
            )
    if not report.get("ok"):
        raise AuditFailed(f"the reserves do not cover the ledger: {report.get('problems')}")


@ledger_app.command("export")
def export(
    path: str = typer.Argument(..., help="The file to write ('-' for standard output)."),
    sign: bool = typer.Option(
        True, "--checkpoint/--no-checkpoint", help="Sign a checkpoint of the head first."
    ),
    operator: str = _OPERATOR,
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Write the log, up to its latest checkpoint, as JSON Lines for `paywire audit`."""
    key = _operator_key(operator, passphrase_file) if sign else None
    with open_cli_ledger() as ledger:
        if key is not None:
            ledger.log.checkpoint(key)
        if path == "-":
            summary = ledger.log.export(sys.stdout.buffer)
            return
        target = Path(path)
        partial = target.with_name(target.name + ".partial")
        try:
            with partial.open("wb") as out:
                summary = ledger.log.export(out)
            partial.replace(target)
        except OSError as error:
            raise PaywireError(f"cannot write {path}: {error.strerror}") from None
    console.print(
        f"exported {_count(summary.entries, 'entry', 'entries')} and "
        f"{_count(summary.checkpoints, 'checkpoint')} to {path}"
    )


@ledger_app.command("proof")
def proof(
    transfer_id: str = typer.Argument(...),
    tree_size: int = typer.Option(None, "--tree-size", help="Default: the latest checkpoint."),
) -> None:
    """Print a transfer's inclusion proof (RFC 9162) as JSON."""
    with open_cli_ledger() as ledger:
        included = ledger.log.inclusion_proof(transfer_id, tree_size=tree_size)
    print_json(
        {
            "transfer_id": transfer_id,
            "log_index": included.log_index,
            "tree_size": included.tree_size,
            "leaf_hash": included.leaf_hash.hex(),
            "audit_path": [value.hex() for value in included.hashes],
            "root_hash": included.root_hash.hex(),
            "verified": included.verify(),
        }
    )


def audit_command(
    path: Path = typer.Argument(..., help="A file written by `paywire ledger export`."),
    operator: str = typer.Option(
        None, "--operator", help="The operator address you expect (from a source you trust)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Audit an exported ledger log offline, with no database: every entry replayed, every
    balance recomputed, every checkpoint's signature and consistency checked."""
    from paywire.ledger.export import audit_export

    report = audit_export(path, operator=operator)
    _print_report(report, as_json, str(path))


def _print_report(report: AuditReport, as_json: bool, what: str) -> None:
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "ledger_id": report.ledger_id,
                "operator": report.operator,
                "entries": report.entries,
                "accounts": report.accounts,
                "transfers": report.transfers,
                "checkpoints": report.checkpoints,
                "covered_size": report.covered_size,
                "root_hash": report.root_hash.hex(),
                "assets": {code: str(total) for code, total in report.assets.items()},
                "problems": [str(problem) for problem in report.problems],
            }
        )
    else:
        console.print(
            f"{what}: {_count(report.entries, 'entry', 'entries')} "
            f"({_count(report.accounts, 'account')}, {_count(report.transfers, 'transfer')}), "
            f"{_count(report.checkpoints, 'checkpoint')} signed by "
            f"{report.operator or 'nobody yet'}"
        )
        console.print(f"  root {report.root_hash.hex()} at size {report.entries}")
        for code, total in sorted(report.assets.items()):
            console.print(f"  {code}: postings sum to {total}")
        if report.ok:
            console.print(
                "[bold green]OK[/]: every entry replays, every balance and bound "
                "holds, every checkpoint is signed and consistent"
            )
    if not report.ok:
        first = report.first_problem
        raise AuditFailed(f"{what} failed its audit: {first}")


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number} {one if number == 1 else (many or one + 's')}"
