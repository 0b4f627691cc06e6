"""`paywire mandate`: issue, delegate, show, list, status and revoke, driven through
`paywire.cli.run` as a user would, with real keystores, a real ledger and a real
facilitator settling payments under the chains the CLI wrote."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cli_runs import cli, one_error
from paywire._dev.http import ServedApps
from paywire.cli import run
from paywire.client import MANDATE_ENV, load_mandate
from paywire.client.direct import direct_payment
from paywire.crypto.keys import PrivateKey
from paywire.crypto.keystore import KeyStore
from paywire.ledger import AccountKind, Ledger, NewAccount, open_ledger, transfer
from paywire.ledger.names import wallet_account_id
from paywire.mandate import MandateChain
from paywire.money import USDC
from paywire.protocol import Facilitator
from paywire.service import operator_app

PASSPHRASE = "mandate test passphrase"
PRICE = 1_000  # $0.001


@pytest.fixture
def home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    monkeypatch.setenv("PAYWIRE_HOME", str(tmp_path))
    monkeypatch.setenv("PAYWIRE_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("PAYWIRE_LIGHT_KDF", "1")
    for name in ("PAYWIRE_DB", "PAYWIRE_OPERATOR_URL", MANDATE_ENV):
        monkeypatch.delenv(name, raising=False)
    for wallet in ("alice", "bot", "sub", "mallory"):
        cli(capsys, "wallet", "new", wallet)
    return tmp_path


def address(home: Path, wallet: str) -> str:
    return KeyStore(home / "keys").info(wallet).address


def key(home: Path, wallet: str) -> PrivateKey:
    return KeyStore(home / "keys").load(wallet, PASSPHRASE)


def issued(output: str) -> tuple[str, Path, str]:
    """The id, file and base64 that `issue` / `delegate` print."""
    mandate_id = re.search(r"(?:issued|delegated) mandate (0x[0-9a-f]{64})", output)
    path = re.search(r"written to (.+)", output)
    token = re.search(r"PAYWIRE_MANDATE=(\S+)", output)
    assert mandate_id and path and token, output
    return mandate_id[1], Path(path[1].strip()), token[1]


@pytest.fixture
def books(home: Path) -> Iterator[Ledger]:
    """The CLI's own ledger (``<home>/ledger.db``), with bot and sub funded with $1 each."""
    ledger = open_ledger(f"sqlite:///{home / 'ledger.db'}")
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    for wallet in ("bot", "sub"):
        owner = address(home, wallet)
        account = wallet_account_id(owner, "USDC")
        ledger.open_account(NewAccount(account, USDC, AccountKind.AGENT, owner=owner))
        ledger.submit(transfer(f"fund-{wallet}", "world", account, USDC.atomic(1_000_000)))
    yield ledger
    ledger.close()


def pay(facilitator: Facilitator, ledger: Ledger, payer: PrivateKey, chain: MandateChain) -> Any:
    """Settle one payment of PRICE under `chain`, as a client that skips its own checks."""
    payment = direct_payment(
        payer,
        ledger.network,
        PrivateKey.generate().address,
        USDC.atomic(PRICE),
        mandate=chain,
        check_mandate=False,
        resource="http://shop.example/search",
    )
    return asyncio.run(facilitator.settle(*payment))


def issue_for_bot(capsys: pytest.CaptureFixture[str], network: str, *more: str) -> str:
    return cli(
        capsys,
        "mandate",
        "issue",
        "--principal",
        "alice",
        "--agent",
        "bot",
        "--network",
        network,
        "--asset",
        "USDC",
        "--total",
        "$0.01",
        "--per-payment",
        "0.002 USDC",
        "--window",
        "1h=5000",
        "--purpose",
        "research :smile: [bold]x[/]",
        *more,
    )


def rows(report_text: str) -> dict[tuple[int, str], dict[str, Any]]:
    report = json.loads(report_text)
    return {(row["depth"], row["limitId"].rsplit(":", 1)[-1]): row for row in report["rows"]}


# --- issue, show, list -----------------------------------------------------------------------


def test_issue_writes_a_chain_an_agent_can_load(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = issue_for_bot(capsys, "paywire:*", "--valid-for", "7d", "--task-id", "t-1")
    mandate_id, path, token = issued(out)
    assert path == home / "mandates" / f"{mandate_id}.json"
    assert "total 0.01 USDC, per payment 0.002 USDC, 0.005 USDC per 1h" in out
    assert ":smile:" in out and "[bold]x[/]" in out  # shown as written, not as markup
    chain = MandateChain.from_json(path.read_text())
    assert chain.ids == (mandate_id,) and chain.principal == address(home, "alice")
    assert chain.agent == address(home, "bot")
    assert chain.leaf.valid_before - chain.leaf.valid_after == 7 * 86_400
    assert chain.leaf.task_id == "t-1"
    chain.verify(chain.leaf.valid_after, principal=address(home, "alice"))
    # The agent client reads it from the variable, as base64 or as a file path.
    monkeypatch.setenv(MANDATE_ENV, token)
    assert load_mandate() == chain
    monkeypatch.setenv(MANDATE_ENV, str(path))
    assert load_mandate() == chain

    shown = cli(capsys, "mandate", "show", mandate_id[:10])
    assert mandate_id in shown and "ok, by the issuer" in shown
    assert "signatures and links verify; valid now" in shown
    assert "signatures and links verify" in cli(capsys, "mandate", "show", token)
    listed = cli(capsys, "mandate", "list")
    assert mandate_id[:12] in listed and "research" in listed


def test_issue_from_a_toml_or_json_file(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "budget.toml"
    toml.write_text(
        'principal = "alice"\nagent = "bot"\npurpose = "from a file"\nvalid_for = "2d"\n'
        'payees = ["sub"]\norigins = ["https://API.example.com:443"]\n'
        '[[limits]]\nnetwork = "paywire:abc"\nasset = "USDC"\ntotal = "$2"\n'
        'per_payment = "0.5 USDC"\nwindows = { "1h" = "$1", "24h" = "$1.5" }\n'
        '[[limits]]\nnetwork = "eip155:*"\n'
        'asset = "0x036CbD53842c5426634e7929541eC2318f3dCF7e=USDC"\n'
        'total = "$1"\nper_payment = 1000\n'
    )
    _, path, _ = issued(cli(capsys, "mandate", "issue", "--from-file", str(toml)))
    mandate = MandateChain.from_json(path.read_text()).leaf
    assert mandate.payees == (address(home, "sub"),)
    assert mandate.origins == ("https://api.example.com",)
    assert mandate.valid_before - mandate.valid_after == 2 * 86_400
    ledger_limit = mandate.limit_for("paywire:abc", "USDC")
    token_limit = mandate.limit_for("eip155:8453", "0x036CbD53842c5426634e7929541eC2318f3dCF7e")
    assert ledger_limit is not None and token_limit is not None
    assert (ledger_limit.total_atomic, ledger_limit.per_payment_atomic) == (2_000_000, 500_000)
    assert [(w.window_s, w.limit_atomic) for w in ledger_limit.windows] == [
        (3600, 1_000_000),
        (86_400, 1_500_000),
    ]
    assert (token_limit.total_atomic, token_limit.per_payment_atomic) == (1_000_000, 1000)

    in_ten_days = datetime.fromtimestamp(time.time() + 10 * 86_400, UTC).isoformat()
    document = {
        "principal": "alice",
        "agent": address(home, "bot"),
        "network": "paywire:abc",
        "asset": "USDC",
        "total": "$1",
        "per_payment": "$0.5",
        "windows": ["1h=$0.75"],
        "valid_until": in_ten_days,
    }
    as_json = tmp_path / "budget.json"
    as_json.write_text(json.dumps(document))
    out = tmp_path / "out.json"
    cli(
        capsys,
        "mandate",
        "issue",
        "--from-file",
        str(as_json),
        "--total",
        "$0.9",
        "--out",
        str(out),
    )
    mandate = MandateChain.from_json(out.read_text()).leaf
    assert abs(mandate.valid_before - (mandate.valid_after + 10 * 86_400)) <= 5
    assert mandate.limits[0].total_atomic == 900_000  # the flag wins over the file
    assert mandate.limits[0].windows[0].limit_atomic == 750_000
    assert "exists" in one_error(
        capsys, "mandate", "issue", "--from-file", str(as_json), "--out", str(out)
    )

    as_json.write_text(json.dumps({**document, "budget": "$1"}))
    assert "unknown key 'budget'" in one_error(
        capsys, "mandate", "issue", "--from-file", str(as_json)
    )
    toml.write_text('principal = "alice"\nagent = [1\n')
    assert "not valid TOML" in one_error(capsys, "mandate", "issue", "--from-file", str(toml))


# --- delegate --------------------------------------------------------------------------------


def test_delegate_only_narrower(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root_id, root_path, _ = issued(issue_for_bot(capsys, "paywire:*"))
    base = ("mandate", "delegate", str(root_path), "--agent-wallet", "bot", "--to", "sub")

    wider = one_error(capsys, *base, "--total", "$0.02")
    assert "wider than its parent (--total)" in wider and "limits[0].total" in wider
    wider = one_error(capsys, *base, "--window", "1h=$1")
    assert "(--window)" in wider and "limits[0].windows" in wider
    wider = one_error(capsys, *base, "--valid-for", "300d")
    assert "(--valid-for/--valid-until)" in wider and "validBefore" in wider
    wider = one_error(capsys, *base, "--network", "eip155:1")
    assert "no limit for --asset/--network" in wider
    assert "only the parent's agent" in one_error(
        capsys, "mandate", "delegate", root_id, "--agent-wallet", "alice", "--to", "sub"
    )

    out = cli(capsys, *base, "--total", "$0.004", "--network", "paywire:abc", "--purpose", "sub")
    child_id, child_path, _ = issued(out)
    chain = MandateChain.from_json(child_path.read_text())
    assert chain.ids == (root_id, child_id) and chain.agent == address(home, "sub")
    child = chain.leaf
    assert child.issuer == address(home, "bot") and child.purpose == "sub"
    assert (child.limits[0].network, child.limits[0].total_atomic) == ("paywire:abc", 4000)
    assert child.limits[0].windows == chain.root.limits[0].windows  # inherited
    assert child.valid_before == chain.root.valid_before
    chain.verify(child.valid_after, principal=address(home, "alice"))
    assert "depth 1" in cli(capsys, "mandate", "show", child_id)
    listed = cli(capsys, "mandate", "list")
    assert root_id[:12] in listed and child_id[:12] in listed


# --- status and revoke, on the local ledger and through the operator ----------------------------


def test_status_and_revoke_on_the_local_ledger(
    home: Path, books: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    facilitator = Facilitator.for_ledger(books, PrivateKey.generate())
    bot, sub = key(home, "bot"), key(home, "sub")
    root_id, root_path, _ = issued(issue_for_bot(capsys, books.network))
    child_id, child_path, _ = issued(
        cli(
            capsys,
            "mandate",
            "delegate",
            root_id,
            "--agent-wallet",
            "bot",
            "--to",
            "sub",
            "--total",
            "$0.002",
        )
    )
    root = MandateChain.from_json(root_path.read_text())
    child = MandateChain.from_json(child_path.read_text())
    for _ in range(3):
        assert pay(facilitator, books, bot, root).success
    assert pay(facilitator, books, sub, child).success

    status = rows(cli(capsys, "mandate", "status", child_id, "--local", "--json"))
    assert (status[0, "total"]["spent"], status[0, "total"]["remaining"]) == ("4000", "6000")
    assert (status[0, "w3600"]["spent"], status[0, "w3600"]["remaining"]) == ("4000", "1000")
    assert (status[1, "total"]["spent"], status[1, "total"]["remaining"]) == ("1000", "1000")
    assert not any(row["closed"] for row in status.values())
    table = cli(capsys, "mandate", "status", child_id, "--local")
    assert "0.004 USDC" in table and "0.006 USDC" in table and "revoked" not in table

    # Only the issuers of the mandate and of its ancestors may revoke it.
    refused = one_error(
        capsys, "mandate", "revoke", child_id, "--mandate", "leaf", "--wallet", "mallory", "--local"
    )
    assert "may not revoke" in refused
    assert "may not revoke" in one_error(
        capsys, "mandate", "revoke", child_id, "--mandate", "root", "--wallet", "sub", "--local"
    )
    out = cli(
        capsys, "mandate", "revoke", child_id, "--mandate", child_id, "--wallet", "bot", "--local"
    )
    assert f"revoked mandate {child_id}" in out and "closed 2 ledger limit(s)" in out
    refused_payment = pay(facilitator, books, sub, child)
    assert refused_payment.error_reason == "mandate_revoked"
    assert pay(facilitator, books, bot, root).success  # the parent still holds

    out = cli(
        capsys, "mandate", "revoke", root_id, "--mandate", "root", "--wallet", "alice", "--local"
    )
    assert "closed 2 ledger limit(s)" in out
    assert pay(facilitator, books, bot, root).error_reason == "mandate_revoked"
    status = rows(cli(capsys, "mandate", "status", child_id, "--local", "--json"))
    assert all(row["closed"] for row in status.values())
    assert status[0, "total"]["spent"] == "5000" and status[0, "total"]["remaining"] == "0"
    assert "revoked" in cli(capsys, "mandate", "status", child_id, "--local")


def test_status_and_revoke_through_the_operator(
    home: Path, books: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    facilitator = Facilitator.for_ledger(books, PrivateKey.generate())
    served = ServedApps()
    url = served.start(operator_app(facilitator, books))
    try:
        root_id, root_path, token = issued(issue_for_bot(capsys, books.network))
        chain = MandateChain.from_json(root_path.read_text())
        bot = key(home, "bot")
        assert pay(facilitator, books, bot, chain).success
        assert pay(facilitator, books, bot, chain).success
        status = rows(cli(capsys, "mandate", "status", token, "--operator-url", url, "--json"))
        assert (status[0, "total"]["spent"], status[0, "total"]["remaining"]) == ("2000", "8000")
        assert (status[0, "w3600"]["cap"], status[0, "w3600"]["remaining"]) == ("5000", "3000")

        refused = one_error(
            capsys,
            "mandate",
            "revoke",
            root_id,
            "--mandate",
            "root",
            "--wallet",
            "bot",
            "--operator-url",
            url,
        )
        assert "may not revoke" in refused
        out = cli(
            capsys,
            "mandate",
            "revoke",
            root_id,
            "--mandate",
            "root",
            "--wallet",
            "alice",
            "--operator-url",
            url,
        )
        assert "closed 2 ledger limit(s)" in out
        assert pay(facilitator, books, bot, chain).error_reason == "mandate_revoked"
        assert "revoked" in cli(capsys, "mandate", "status", root_id, "--operator-url", url)
    finally:
        served.close()


# --- errors ----------------------------------------------------------------------------------

ISSUE = (
    "mandate",
    "issue",
    "--principal",
    "alice",
    "--agent",
    "bot",
    "--network",
    "paywire:abc",
    "--asset",
    "USDC",
    "--per-payment",
    "$1",
)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((*ISSUE, "--total", "five dollars"), "--total: cannot read"),
        ((*ISSUE, "--total", "$0"), "--total: the amount must be above zero"),
        ((*ISSUE, "--total", "$1", "--window", "1 fortnight=$1"), "--window: cannot read"),
        ((*ISSUE, "--total", "$1", "--window", "1h"), "LENGTH=AMOUNT"),
        ((*ISSUE, "--total", "$1", "--valid-for", "2y"), "--valid-for"),
        ((*ISSUE, "--total", "$1", "--valid-until", "2001-01-01"), "is not in the future"),
        ((*ISSUE, "--total", "$1", "--origin", "https://x.com/path"), "--origin"),
        ((*ISSUE, "--total", "$1", "--payee", "nobody"), "--payee"),
        ((*ISSUE, "--total", "$1", "--principal", "nobody"), "no key named nobody"),
        ((*ISSUE, "--total", "$1", "--agent", "0x1234"), "--agent"),
        ((*ISSUE, "--total", "$1", "--asset", "0x1234"), "--asset"),
        ((*ISSUE, "--total", "1.5"), "atomic units"),
        (("mandate", "show", "eyJub3QgYSBjaGFpbg"), "mandate chain is not valid JSON"),
        (("mandate", "show", "not-base64!"), "neither a file"),
        (("mandate", "show", "missing.json"), "no such file"),
        (("mandate", "show", '{"v": 1, "chain": []}'), "chain"),
        (("mandate", "show", "0xdeadbeef"), "no mandate chain with id"),
        (
            ("mandate", "status", "0xdeadbeef", "--operator-url", "http://127.0.0.1:9"),
            "no mandate chain with id",
        ),
    ],
)
def test_bad_input_is_one_line(
    home: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], says: str
) -> None:
    assert says in one_error(capsys, *args)


def test_more_errors_are_one_line(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root_id, path, token = issued(issue_for_bot(capsys, "paywire:abc"))
    unreachable = one_error(
        capsys, "mandate", "status", token, "--operator-url", "http://127.0.0.1:9"
    )
    assert "cannot reach the operator" in unreachable
    assert "is not one mandate of this chain" in one_error(
        capsys, "mandate", "revoke", root_id, "--mandate", "0x1234", "--wallet", "alice"
    )
    assert "no ledger at" in one_error(capsys, "mandate", "status", root_id, "--local")
    tampered = json.loads(path.read_text())
    tampered["chain"][0]["purpose"] = "something else"
    path.write_text(json.dumps(tampered))
    shown = run(["mandate", "show", str(path)])
    _, err = capsys.readouterr()
    assert shown == 1 and "the chain does not verify" in err and "signature" in err
    assert "signature" in one_error(
        capsys, "mandate", "status", str(path), "--operator-url", "http://127.0.0.1:9"
    )
    monkeypatch.setenv("PAYWIRE_PASSPHRASE", "not the passphrase")
    assert "wrong passphrase" in one_error(capsys, *ISSUE, "--total", "$1")
    # Usage errors exit 2, with click's usage text.
    for args in (
        (*ISSUE, "--total", "$1", "--valid-for", "1d", "--valid-until", "2099-01-01"),
        ("mandate", "status", root_id, "--local", "--operator-url", "http://x"),
        ("mandate", "issue", "--agent", "bot"),
    ):
        assert run(list(args)) == 2
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
