"""`paywire task`: post, take, deliver and settle tasks through the operator's service.

A principal posts a task (`post`): its budget is held in escrow on the operator's ledger,
and one task mandate per allowed agent is signed and written to a file to hand over. An
agent takes the task with its mandate (`take`), pays for its work under it, and delivers
a result (`deliver`, the file's SHA-256). The principal then accepts (`accept`: expenses
reimbursed, the reward split by shares, the rest refunded), rejects or cancels; a payee
may `dispute` an acceptance in its dispute window. Anyone may `release` an acceptance once
its window ended, or `expire` a task nobody decided. `show` and `list` read the books.

Every write is signed here by the wallet (`--wallet NAME`) and sent to the operator
(``--operator-url``, $PAYWIRE_OPERATOR_URL); see `paywire.service.tasks`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from paywire.cli import _mandate_input as read
from paywire.cli import _mandate_options as opt
from paywire.cli import _task_client as client
from paywire.cli import _task_view as view
from paywire.cli._keys import PASSPHRASE_FILE, load_key
from paywire.cli._mandate_view import line
from paywire.errors import InvalidInput, PaywireError

task_app = typer.Typer(
    help="Tasks: a budget in escrow, agents who take and deliver, a principal who decides.",
    no_args_is_help=True,
)

TASK_ID = typer.Argument(..., help="The task id.")
JSON_OUT = typer.Option(False, "--json", help="Print the operator's JSON instead of tables.")
SHARES = typer.Option(
    None,
    "--share",
    help="A contributor's share of the reward, ADDRESS=PARTS or WALLET=PARTS (repeatable).",
    show_default=False,
)


def _print_json(data: Any) -> None:
    line(json.dumps(data, indent=2, sort_keys=True))


# --- the principal -----------------------------------------------------------------------------


@task_app.command("post")
def post_command(
    wallet: str = typer.Option(..., "--wallet", help="The principal's wallet (signs, pays)."),
    budget: str = typer.Option(..., "--budget", help="Held in escrow: '$2' or '2 USDC'."),
    reward: str = typer.Option(
        None,
        "--reward",
        help="Split among contributors on acceptance (default: the whole budget); the rest "
        "of the budget reimburses the agents' expenses.",
    ),
    deadline: str = typer.Option(..., "--deadline", help="How long agents have: 30m, 1h, 2d."),
    agents: list[str] = typer.Option(
        ..., "--agent", help="An agent allowed (address or wallet name; repeatable)."
    ),
    description: str = typer.Option(..., "--description", help="What is to be done."),
    check: Path = typer.Option(None, "--check", help="An acceptance check's JSON file."),
    dispute_window: str = typer.Option(
        None, "--dispute-window", help="How long an acceptance may be disputed before payout."
    ),
    task_id: str = typer.Option(None, "--id", help="The task id (default: a new one)."),
    mandates_dir: Path = typer.Option(
        Path(), "--mandates-dir", help="Where the agents' task mandates are written."
    ),
    operator_url: str = opt.OPERATOR_URL,
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Post a task: escrow the budget, and write one task mandate per agent."""
    from paywire.ledger import new_id
    from paywire.mandate import MandateChain
    from paywire.money import Amount
    from paywire.service.tasks import task_from_json
    from paywire.tasks import issue_task_mandate
    from paywire.tasks.model import check_task_id

    held = client.parse_money(budget, "--budget")
    paid = None if reward is None else client.parse_money(reward, "--reward", held.asset)
    params: dict[str, Any] = {
        "budget": str(held.atomic),
        "asset": held.asset.code,
        "deadlineSeconds": client.parse_deadline(deadline),
        "agents": [
            read.resolve_address(agent, "--agent") for agent in read.bounded(agents, "--agent")
        ],
        "description": description,
    }
    if paid is not None:
        params["reward"] = str(paid.atomic)
    window = client.parse_dispute_window(dispute_window)
    if window:
        params["disputeWindowSeconds"] = window
    checked = client.read_check(check)
    if checked is not None:
        params["check"] = checked
    task_id = task_id or new_id("task-")
    try:
        check_task_id(task_id)
    except PaywireError as error:
        raise InvalidInput(f"--id: {error}") from None
    operator = client.Operator(operator_url)
    key = load_key(wallet, passphrase_file)
    answer = operator.signed(key, "post", task_id, params)
    view.print_done("posted", answer)
    task = task_from_json(answer["task"])
    if task.allowance.atomic <= 0:
        line("no task mandates: the reward is the whole budget, nothing is left for expenses")
        return
    # The takers' mandates together stay within the allowance: each agent gets a part.
    part = task.allowance.atomic // len(task.document.agents)
    if part <= 0:
        line("no task mandates: the allowance is less than one unit per agent")
        return
    for agent in task.document.agents:
        share = Amount(part, task.budget.asset)
        chain = MandateChain((issue_task_mandate(key, task, agent, operator.network, total=share),))
        path = client.mandate_file(mandates_dir, task.id, agent)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8") as file:
                file.write(chain.to_json() + "\n")
        except FileExistsError:
            line(f"task mandate for {agent}: kept {path} (it exists)")
            continue
        except OSError as error:
            raise InvalidInput(f"cannot write {path}: {error.strerror}") from None
        line(f"task mandate for {agent}: {path}")


@task_app.command("accept")
def accept_command(
    task_id: str = TASK_ID,
    wallet: str = typer.Option(..., "--wallet", help="The principal's wallet."),
    shares: list[str] = SHARES,
    fee: str = typer.Option(
        None,
        "--fee",
        help="The operator's fee, FEES_ACCOUNT=AMOUNT (e.g. operator:fees:USDC=$0.05).",
    ),
    operator_url: str = opt.OPERATOR_URL,
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Accept the delivery: reimburse expenses, split the reward, refund the rest."""
    from paywire.money import Asset

    params: dict[str, Any] = {}
    split = client.parse_shares(shares or [])
    if split is not None:
        params["shares"] = split
    operator = client.Operator(operator_url)
    if fee is not None:
        task = operator.task(task_id)
        params["fee"] = client.parse_fee(fee, Asset(str(task["asset"]), int(task["decimals"])))
    key = load_key(wallet, passphrase_file)
    view.print_done("accepted", operator.signed(key, "accept", task_id, params))


def _principal_command(action: str, verb: str, summary: str) -> None:
    def command(
        task_id: str = TASK_ID,
        wallet: str = typer.Option(..., "--wallet", help="The principal's wallet."),
        operator_url: str = opt.OPERATOR_URL,
        passphrase_file: Path = PASSPHRASE_FILE,
    ) -> None:
        operator = client.Operator(operator_url)
        key = load_key(wallet, passphrase_file)
        view.print_done(verb, operator.signed(key, action, task_id, {}))

    command.__doc__ = summary
    task_app.command(action)(command)


_principal_command(
    "reject", "rejected", "Refuse the delivery: reimburse expenses, refund the rest."
)
_principal_command("cancel", "cancelled", "Withdraw the task: reimburse expenses, refund the rest.")


# --- agents ------------------------------------------------------------------------------------


@task_app.command("take")
def take_command(
    task_id: str = TASK_ID,
    wallet: str = typer.Option(..., "--wallet", help="The agent's wallet."),
    mandate: Path = typer.Option(
        None, "--mandate", help="The task mandate file the principal handed over."
    ),
    operator_url: str = opt.OPERATOR_URL,
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Take a task (its spending under the mandate is reimbursed when it settles)."""
    params: dict[str, Any] = {}
    signed_mandate = client.read_mandate(mandate)
    if signed_mandate is not None:
        params["mandate"] = signed_mandate
    operator = client.Operator(operator_url)
    key = load_key(wallet, passphrase_file)
    view.print_done("took", operator.signed(key, "take", task_id, params))


@task_app.command("deliver")
def deliver_command(
    task_id: str = TASK_ID,
    wallet: str = typer.Option(..., "--wallet", help="The agent's wallet."),
    result: Path = typer.Option(..., "--result", help="The result file (its SHA-256 is sent)."),
    shares: list[str] = SHARES,
    operator_url: str = opt.OPERATOR_URL,
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Deliver a result, proposing how the reward is shared (default: all to this agent)."""
    params: dict[str, Any] = {"resultDigest": client.result_digest(result)}
    split = client.parse_shares(shares or [])
    if split is not None:
        params["shares"] = split
    operator = client.Operator(operator_url)
    key = load_key(wallet, passphrase_file)
    view.print_done("delivered", operator.signed(key, "deliver", task_id, params))
    line(f"  result sha256 {params['resultDigest']}")


@task_app.command("dispute")
def dispute_command(
    task_id: str = TASK_ID,
    wallet: str = typer.Option(..., "--wallet", help="The principal's or a payee's wallet."),
    reason: str = typer.Option(..., "--reason", help="Why the acceptance is disputed."),
    operator_url: str = opt.OPERATOR_URL,
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Dispute an acceptance within its dispute window: nothing is paid out."""
    operator = client.Operator(operator_url)
    key = load_key(wallet, passphrase_file)
    view.print_done("disputed", operator.signed(key, "dispute", task_id, {"reason": reason}))


# --- anyone ------------------------------------------------------------------------------------


@task_app.command("release")
def release_command(task_id: str = TASK_ID, operator_url: str = opt.OPERATOR_URL) -> None:
    """Pay out an acceptance whose dispute window has ended (no wallet needed)."""
    view.print_done("released", client.Operator(operator_url).sweep("release", task_id))


@task_app.command("expire")
def expire_command(task_id: str = TASK_ID, operator_url: str = opt.OPERATOR_URL) -> None:
    """Settle a task nobody decided in its review window (no wallet needed)."""
    view.print_done("expired", client.Operator(operator_url).sweep("expire", task_id))


@task_app.command("decide")
def decide_command(
    task_id: str = TASK_ID,
    result: Path = typer.Option(..., "--result", help="The delivered result file (UTF-8 text)."),
    approve: bool | None = typer.Option(
        None,
        "--approve/--refuse",
        help="For an approval check: the principal's decision, signed with --wallet.",
    ),
    wallet: str | None = typer.Option(None, "--wallet", help="The principal's wallet."),
    operator_url: str = opt.OPERATOR_URL,
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Run the task's acceptance check on the delivered result and settle by its verdict
    (a check that cannot decide moves nothing)."""
    text = client.read_result_text(result)
    body: dict[str, Any] = {"result": text}
    if approve is not None:
        from paywire.tasks.checks import result_digest, sign_approval

        if wallet is None:
            raise InvalidInput("--approve/--refuse signs with the principal's --wallet")
        key = load_key(wallet, passphrase_file)
        body["approval"] = sign_approval(key, task_id, result_digest(text), approve).to_json()
    answer = client.Operator(operator_url).call("POST", client.task_path(task_id) + "/decide", body)
    verdict = answer.get("verdict", {})
    view.print_done("decided", answer)
    decided = "accepted" if verdict.get("accepted") else "rejected"
    line(f"  verdict: {decided}, {verdict.get('reason')}")


@task_app.command("show")
def show_command(
    task_id: str = TASK_ID, as_json: bool = JSON_OUT, operator_url: str = opt.OPERATOR_URL
) -> None:
    """A task and its books: spending per provider, AI tokens per model, payouts."""
    operator = client.Operator(operator_url)
    task, books = operator.task(task_id), operator.books(task_id)
    if as_json:
        _print_json({"task": task, "books": books})
    else:
        view.print_show(task, books, _known_names())


def _known_names() -> dict[str, str]:
    """The keystore's wallets by address, to name the parties of a task's books."""
    from paywire.cli import _common
    from paywire.crypto.keystore import KeyStore

    try:
        found, _ = KeyStore(_common.home_dir() / "keys").scan()
    except (OSError, PaywireError):
        return {}
    return {info.address: info.name for info in found}


@task_app.command("list")
def list_command(
    principal: str = typer.Option(None, "--principal", help="Posted by (address or wallet)."),
    agent: str = typer.Option(None, "--agent", help="Taken by (address or wallet)."),
    as_json: bool = JSON_OUT,
    operator_url: str = opt.OPERATOR_URL,
) -> None:
    """Tasks posted by a principal, or taken by an agent (or all)."""
    who = read.resolve_address(principal, "--principal") if principal else None
    taker = read.resolve_address(agent, "--agent") if agent else None
    answer = client.Operator(operator_url).tasks(who, taker)
    if as_json:
        _print_json(answer)
    else:
        view.print_list(answer.get("tasks", []))


__all__ = ["task_app"]
