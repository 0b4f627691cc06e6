"""`paywire task`: post, take, deliver, accept, show and list through `paywire.cli.run`, as
a user would, with real keystores and the operator's service on loopback over a real SQLite
ledger; and what a user may get wrong (amounts, durations, shares, files, roles): one
clear line, exit code 1, no traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cli_runs import cli, one_error
from paywire._dev.http import ServedApps
from paywire.crypto.keys import PrivateKey
from paywire.crypto.keystore import KeyStore
from paywire.ledger import AccountKind, Ledger, NewAccount, open_ledger, transfer
from paywire.ledger.names import wallet_account_id
from paywire.mandate import MandateChain
from paywire.money import USDC
from paywire.protocol import Facilitator
from paywire.service import operator_app

PASSPHRASE = "task test passphrase"
FEES = "operator:fees:USDC"
FUNDED = 10_000_000


def address(home: Path, wallet: str) -> str:
    return KeyStore(home / "keys").info(wallet).address


@pytest.fixture
def home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    monkeypatch.setenv("PAYWIRE_HOME", str(tmp_path))
    monkeypatch.setenv("PAYWIRE_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("PAYWIRE_LIGHT_KDF", "1")
    monkeypatch.delenv("PAYWIRE_OPERATOR_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    for wallet in ("alice", "bot", "helper", "mallory"):
        cli(capsys, "wallet", "new", wallet)
    return tmp_path


@pytest.fixture
def ledger(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """The operator's ledger, alice funded with $10, served at $PAYWIRE_OPERATOR_URL."""
    books = open_ledger(f"sqlite:///{home / 'operator.db'}")
    books.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    books.open_account(NewAccount(FEES, USDC, AccountKind.FEES))
    for wallet in ("alice", "bot", "helper", "mallory"):
        owner = address(home, wallet)
        account = wallet_account_id(owner, "USDC")
        books.open_account(NewAccount(account, USDC, AccountKind.AGENT, owner=owner))
    alice = wallet_account_id(address(home, "alice"), "USDC")
    books.submit(transfer("fund-alice", "world", alice, USDC.atomic(FUNDED)))
    served = ServedApps()
    app = operator_app(Facilitator.for_ledger(books, PrivateKey.generate()), books)
    monkeypatch.setenv("PAYWIRE_OPERATOR_URL", served.start(app))
    yield books
    served.close()
    books.close()


def posted(capsys: pytest.CaptureFixture[str], home: Path, *more: str) -> str:
    return cli(
        capsys,
        "task",
        "post",
        "--wallet",
        "alice",
        "--budget",
        "$2",
        "--reward",
        "$1.5",
        "--deadline",
        "1h",
        "--agent",
        "bot",
        "--agent",
        address(home, "helper"),
        "--description",
        "write a poem about ledgers",
        "--mandates-dir",
        str(home / "handover"),
        *more,
    )


def balance(ledger: Ledger, home: Path, wallet: str) -> int:
    return ledger.balance(wallet_account_id(address(home, wallet), "USDC")).posted


def as_json(text: str) -> Any:
    return json.loads(text)


def test_post_take_deliver_accept_show(
    capsys: pytest.CaptureFixture[str], home: Path, ledger: Ledger
) -> None:
    out = posted(capsys, home, "--id", "t1", "--dispute-window", "0")
    assert "posted task t1: open" in out
    bot, helper = address(home, "bot"), address(home, "helper")
    handover = home / "handover" / f"task-t1-{bot}.mandate.json"
    assert str(handover) in out and (home / "handover" / f"task-t1-{helper}.mandate.json").exists()
    chain = MandateChain.from_json(handover.read_text())
    assert chain.leaf.agent == bot and chain.leaf.task_id == "t1"
    assert chain.leaf.limits[0].total_atomic == 250_000  # the allowance, shared by two
    assert "kept" in posted(capsys, home, "--id", "t1")  # a retry keeps the files

    assert "took task t1: taken" in cli(
        capsys, "task", "take", "t1", "--wallet", "bot", "--mandate", str(handover)
    )
    result = home / "poem.txt"
    result.write_text("ledgers balance, always\n")
    out = cli(
        capsys,
        "task",
        "deliver",
        "t1",
        "--wallet",
        "bot",
        "--result",
        str(result),
        "--share",
        "bot=3",
        "--share",
        f"{helper}=1",
    )
    assert "delivered task t1: delivered" in out
    out = cli(capsys, "task", "accept", "t1", "--wallet", "alice", "--fee", f"{FEES}=$0.05")
    assert "accepted task t1: accepted" in out and "task:t1:accept" in out
    assert balance(ledger, home, "bot") == 1_125_000
    assert balance(ledger, home, "helper") == 375_000
    assert balance(ledger, home, "alice") == FUNDED - 1_550_000

    shown = cli(capsys, "task", "show", "t1")
    for text in ("task t1", "accepted", "$2.00", "$1.50", "$0.05", "$0.45", "books", "margin"):
        assert text in shown, text
    data = as_json(cli(capsys, "task", "show", "t1", "--json"))
    assert data["task"]["deliveries"][bot]["shares"] == {bot: 3, helper: 1}
    assert data["books"]["shares"] == {bot: "1125000", helper: "375000"}
    assert (data["books"]["fee"], data["books"]["refunded"]) == ("50000", "450000")

    listed = as_json(cli(capsys, "task", "list", "--principal", "alice", "--json"))
    assert [task["id"] for task in listed["tasks"]] == ["t1"]
    assert "t1" in cli(capsys, "task", "list", "--agent", "bot")
    assert "no tasks" in cli(capsys, "task", "list", "--agent", "mallory")


def test_reject_cancel_without_mandates(
    capsys: pytest.CaptureFixture[str], home: Path, ledger: Ledger
) -> None:
    out = cli(
        capsys,
        "task",
        "post",
        "--wallet",
        "alice",
        "--budget",
        "$1",
        "--deadline",
        "2h",
        "--agent",
        "bot",
        "--description",
        "count to ten",
        "--id",
        "t2",
    )
    assert "no task mandates" in out and not list(home.glob("task-*"))
    cli(capsys, "task", "take", "t2", "--wallet", "bot")
    assert "nothing was delivered" in one_error(capsys, "task", "reject", "t2", "--wallet", "alice")
    result = home / "result.txt"
    result.write_text("1 2 3 4 5 6 7 8 9 10")
    cli(capsys, "task", "deliver", "t2", "--wallet", "bot", "--result", str(result))
    assert "rejected task t2: rejected" in cli(capsys, "task", "reject", "t2", "--wallet", "alice")
    assert balance(ledger, home, "alice") == FUNDED
    posted(capsys, home, "--id", "t3")
    assert "cancelled" in cli(capsys, "task", "cancel", "t3", "--wallet", "alice")
    assert "already cancelled" in one_error(capsys, "task", "expire", "t3")


def test_mistakes_are_one_clear_line(
    capsys: pytest.CaptureFixture[str], home: Path, ledger: Ledger
) -> None:
    base = ["task", "post", "--wallet", "alice", "--agent", "bot", "--description", "x"]
    good = ["--budget", "$2", "--deadline", "1h"]
    for flags, says in (
        (["--budget", "two dollars", "--deadline", "1h"], "--budget"),
        (["--budget", "2", "--deadline", "1h"], "no unit"),
        (["--budget", "$0", "--deadline", "1h"], "above zero"),
        (["--budget", "$2", "--deadline", "soon"], "--deadline"),
        (["--budget", "$2", "--deadline", "0"], "--deadline"),
        (["--budget", "$2", "--deadline", "99999d"], "--deadline"),
        ([*good, "--reward", "1 EURC"], "--reward"),
        ([*good, "--reward", "$3"], "reward"),
        ([*good, "--dispute-window", "1y"], "--dispute-window"),
        ([*good, "--id", "no spaces"], "--id"),
        ([*good, "--check", "missing.json"], "--check"),
        ([*good, "--agent", "nobody"], "--agent"),
        (["--budget", "$20000", "--deadline", "1h"], "402"),
    ):
        assert says in one_error(capsys, *base, *flags), flags
    bad_check = home / "check.json"
    bad_check.write_text('{"kind": "command", "argv": ["true"]}')
    assert "--check" in one_error(capsys, *base, *good, "--check", str(bad_check))

    posted(capsys, home, "--id", "t1")
    assert "403" in one_error(capsys, "task", "accept", "t1", "--wallet", "bot")
    cli(capsys, "task", "take", "t1", "--wallet", "bot")
    result = home / "r.txt"
    result.write_text("r")
    deliver = ["task", "deliver", "t1", "--wallet", "alice", "--result", str(result)]
    assert "403" in one_error(capsys, *deliver)
    assert "--result" in one_error(capsys, *deliver[:-1], str(home / "none.txt"))
    for share in ("bot", "bot=x", "bot=0", "bot=99999999999999999", "nobody=1"):
        assert "--share" in one_error(capsys, *deliver, "--share", share), share
    accept = ["task", "accept", "t1", "--wallet", "alice"]
    assert "--fee" in one_error(capsys, *accept, "--fee", "nonsense")
    assert "--fee" in one_error(capsys, *accept, "--fee", f"{FEES}=$-1")
    junk = home / "junk.mandate.json"
    junk.write_text("{}")
    assert "--mandate" in one_error(
        capsys, "task", "take", "t1", "--wallet", "bot", "--mandate", str(junk)
    )
    assert "404" in one_error(capsys, "task", "show", "nope")
    assert "task id" in one_error(capsys, "task", "show", "no such id")
    assert "cannot reach" in one_error(
        capsys, "task", "show", "t1", "--operator-url", "http://127.0.0.1:9"
    )
    assert "wallet" in one_error(capsys, "task", "reject", "t1", "--wallet", "nobody").lower()


def test_decide_by_the_tasks_check(
    capsys: pytest.CaptureFixture[str], home: Path, ledger: Ledger
) -> None:
    (home / "approval.json").write_text('{"kind": "approval"}')
    posted(capsys, home, "--id", "t4", "--check", str(home / "approval.json"))
    cli(capsys, "task", "take", "t4", "--wallet", "bot")
    result = home / "poem.txt"
    result.write_text("debits on the left, credits on the right")
    cli(capsys, "task", "deliver", "t4", "--wallet", "bot", "--result", str(result))
    assert "no approval yet" in one_error(capsys, "task", "decide", "t4", "--result", str(result))
    assert "--wallet" in one_error(
        capsys, "task", "decide", "t4", "--result", str(result), "--approve"
    )
    other = home / "other.txt"
    other.write_text("not what was delivered")
    assert "not the one delivered" in one_error(
        capsys, "task", "decide", "t4", "--result", str(other), "--approve", "--wallet", "alice"
    )
    out = cli(
        capsys, "task", "decide", "t4", "--result", str(result), "--approve", "--wallet", "alice"
    )
    assert "decided task t4: accepted" in out and "verdict: accepted" in out
    assert balance(ledger, home, "bot") == 1_500_000


def test_serve_judge_options_are_checked(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    base = ["serve", "--chain", "none", "--operator", "alice"]
    says = one_error(capsys, *base, "--judge-gateway", "http://127.0.0.1:9/v1")
    assert "go together" in says
    says = one_error(capsys, *base, "--judge-gateway", "ftp://x", "--judge-wallet", "bot")
    assert "not an http(s) URL" in says
    says = one_error(capsys, *base, "--judge-wallet", "nobody", "--judge-gateway", "http://h")
    assert "nobody" in says
