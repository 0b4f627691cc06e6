"""`paywire mandate`: issue, delegate, show, list, revoke and follow mandates.

A mandate is a budget a principal signs for an agent key (see `paywire.mandate`). `issue`
signs one with the principal's wallet and writes the chain (a one-mandate chain) to
``<home>/mandates/<id>.json``; `delegate` has an agent sign a narrower one for a
sub-agent, extending its chain. Hand a chain to an agent as a file or as the base64 text
printed (``PAYWIRE_MANDATE=...``). `revoke` and `status` talk to the operator's service
($PAYWIRE_OPERATOR_URL, `paywire.service.mandates`) or, with ``--local``, to this home's
ledger.

A chain argument is a file, the chain's base64 or JSON text, or the id (or its first 4+
hex digits) of a chain under ``<home>/mandates``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from paywire.cli import _common
from paywire.cli import _mandate_input as read
from paywire.cli import _mandate_options as opt
from paywire.cli import _mandate_view as view
from paywire.cli._keys import PASSPHRASE_FILE, load_key
from paywire.cli._mandate_delegate import delegate_command
from paywire.cli._mandate_file import merge, read_issue_file
from paywire.cli._mandate_ledger import revoke_command, status_command
from paywire.errors import PaywireError

if TYPE_CHECKING:
    from paywire.mandate import MandateChain

FILE_FORMAT = """
A --from-file mandate.toml (or .json) gives the same fields; flags given too override it;
unknown keys are refused:

    principal = "alice"               # the wallet that signs
    agent = "0x..."                   # an address or a wallet name
    purpose = "research for task 7"
    task_id = "task-7"
    valid_for = "30d"                 # or valid_until = "2026-01-31T00:00:00Z"
    payees = ["0x..."]                # default: any
    origins = ["https://api.example.com"]
    network = "paywire:<ledger-id>"   # one limit here, or several as [\\[limits]]
    asset = "USDC"                    # a code, a token address, or 0xTOKEN=USDC
    total = "$5"
    per_payment = "$0.10"
    windows = ["1h=$1", "24h=$3"]     # or { "1h" = "$1", "24h" = "$3" }
"""

mandate_app = typer.Typer(
    help="Mandates: budgets a principal signs for an agent, delegated only narrower.",
    no_args_is_help=True,
)


# --- issue -----------------------------------------------------------------------------------


@mandate_app.command("issue", epilog=FILE_FORMAT)
def issue_command(
    principal: str = typer.Option(None, "--principal", help="The principal's wallet (signs)."),
    agent: str = typer.Option(None, "--agent", help="The agent's address (or a wallet name)."),
    network: str = opt.NETWORK,
    asset: str = opt.ASSET,
    total: str = opt.TOTAL,
    per_payment: str = opt.PER_PAYMENT,
    windows: list[str] = opt.WINDOW,
    payees: list[str] = opt.PAYEE,
    origins: list[str] = opt.ORIGIN,
    valid_for: str = opt.VALID_FOR,
    valid_until: str = opt.VALID_UNTIL,
    purpose: str = opt.PURPOSE,
    task_id: str = opt.TASK_ID,
    from_file: Path = typer.Option(None, "--from-file", help="A mandate.toml or .json file."),
    out: Path = opt.OUT,
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Sign a mandate for an agent with the principal's wallet."""
    from paywire.mandate import Mandate, MandateChain, SignedMandate

    opt.one_of(valid_for, valid_until, "--valid-for / --valid-until")
    limit_flags = (network, asset, total, per_payment, windows or None)
    flags = read.IssueSpec(
        principal=principal,
        agent=agent,
        purpose=purpose,
        task_id=task_id,
        valid_for=valid_for,
        valid_until=valid_until,
        payees=payees or None,
        origins=origins or None,
        limits=[read.LimitSpec(*limit_flags)] if any(v is not None for v in limit_flags) else [],
    )
    spec = merge(read_issue_file(from_file), flags) if from_file else flags
    where = str(from_file) if from_file else ""
    principal_wallet = opt.required(spec.principal, "--principal", "principal")
    issuer = read.wallet_address(principal_wallet)
    agent_address = read.resolve_address(opt.required(spec.agent, "--agent", "agent"), "--agent")
    if not spec.limits:
        raise typer.BadParameter(
            "a mandate needs a limit: --network, --asset, --total and --per-payment "
            "(or [[limits]] in --from-file)",
            param_hint="--total",
        )
    limits = [read.build_limit(limit, flags=not limit.where) for limit in spec.limits]
    start = opt.now()
    mandate = opt.build_mandate(
        lambda: Mandate(
            issuer=issuer,
            agent=agent_address,
            limits=tuple(limits),
            valid_after=start,
            valid_before=opt.valid_before(spec.valid_for, spec.valid_until, start, where),
            purpose=spec.purpose or "",
            task_id=spec.task_id or "",
            payees=tuple(read.resolve_address(p, "--payee") for p in spec.payees or ()),
            origins=tuple(spec.origins or ()),
        )
    )
    key = load_key(principal_wallet, passphrase_file)
    chain = MandateChain((SignedMandate.sign(mandate, key),))
    view.print_issued("issued", chain, read.write_chain(chain, out), start)


# --- show and list ---------------------------------------------------------------------------


@mandate_app.command("show")
def show_command(
    chain_source: str = typer.Argument(..., help="A chain: file, base64 or JSON text, or id."),
) -> None:
    """A mandate chain, root first: limits, validity now, and its verification."""
    from paywire.service.mandates import check_links

    chain, path = read.load_chain(chain_source)
    now = opt.now()
    problems: dict[int, str] = {}
    for depth, signed in enumerate(chain.mandates):
        try:
            signed.verify()
        except PaywireError as error:
            problems[depth] = f"INVALID: {str(error).split(': ', 1)[-1]}"
    if path is not None:
        view.line(f"file {path}")
    view.print_chain(chain, now, problems)
    try:
        check_links(chain)
    except PaywireError as error:
        raise PaywireError(f"the chain does not verify: {error}") from None
    expired = [m for m in chain if not m.valid_after <= now < m.valid_before]
    verdict = "signatures and links verify"
    if expired:
        verdict += f"; {len(expired)} mandate(s) not valid now, so the chain cannot pay now"
    else:
        verdict += f"; valid now, until {read.show_time(min(m.valid_before for m in chain))}"
    view.line(verdict)


@mandate_app.command("list")
def list_command() -> None:
    """The chains under <home>/mandates."""

    folder = read.mandates_dir()
    try:
        paths = sorted(folder.glob("*.json"))
    except OSError:
        paths = []
    entries: list[tuple[Path, MandateChain]] = []
    for path in paths:
        try:
            entries.append((path, read.load_chain(str(path))[0]))
        except PaywireError as error:
            _common.err_console.print(
                f"warning: skipped {path.name}: {error}", markup=False, emoji=False, soft_wrap=True
            )
    if not entries:
        view.line(f"no mandates in {folder}; issue one with: paywire mandate issue --help")
        return
    entries.sort(key=lambda entry: entry[1].leaf.valid_before)
    view.print_list(entries, opt.now())


mandate_app.command("delegate")(delegate_command)
mandate_app.command("revoke")(revoke_command)
mandate_app.command("status")(status_command)

__all__ = ["FILE_FORMAT", "mandate_app"]
