"""`paywire ledger ...`, `paywire audit` and `paywire demo`, driven as a user would.

Every failure must be one line on stderr and a non-zero exit: never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paywire.cli import run


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAYWIRE_HOME", str(tmp_path))
    monkeypatch.setenv("PAYWIRE_PASSPHRASE", "test passphrase")
    monkeypatch.setenv("PAYWIRE_LIGHT_KDF", "1")
    monkeypatch.delenv("PAYWIRE_DB", raising=False)
    return tmp_path


def ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = run(list(args))
    out, err = capsys.readouterr()
    assert code == 0, f"paywire {' '.join(args)} failed: {err}"
    return out


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = run(list(args))
    out, err = capsys.readouterr()
    assert code != 0, f"paywire {' '.join(args)} should fail"
    assert "Traceback" not in out + err
    assert err.strip(), "a refusal says why on stderr"
    return err


@pytest.fixture
def books(home: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    ok(capsys, "ledger", "init")
    ok(capsys, "ledger", "account", "open", "world", "--kind", "external")
    ok(capsys, "ledger", "account", "open", "alice", "--kind", "agent", "--owner", "0xA11CE")
    ok(capsys, "ledger", "account", "open", "shop", "--kind", "provider")
    ok(capsys, "ledger", "transfer", "--from", "world", "--to", "alice", "--amount", "$5")
    return home


def test_a_full_session(books: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ok(
        capsys,
        "ledger",
        "transfer",
        "--from",
        "alice",
        "--to",
        "shop",
        "--amount",
        "0.25",
        "--id",
        "p1",
        "--meta",
        "task=t1",
        "--meta",
        "tokens=120",
        "--json",
    )
    moved = json.loads(out)
    assert moved["amount"] == "250000" and moved["metadata"] == {"task": "t1", "tokens": 120}
    again = json.loads(
        ok(
            capsys,
            "ledger",
            "transfer",
            "--from",
            "alice",
            "--to",
            "shop",
            "--amount",
            "0.25",
            "--id",
            "p1",
            "--meta",
            "task=t1",
            "--meta",
            "tokens=120",
            "--json",
        )
    )
    assert again["replayed"] is True and again["log_index"] == moved["log_index"]
    ok(
        capsys,
        "ledger",
        "transfer",
        "--from",
        "alice",
        "--to",
        "shop",
        "--amount",
        "1 USDC",
        "--hold",
        "--timeout",
        "60",
        "--id",
        "h1",
    )
    ok(capsys, "ledger", "post", "h1", "--amount", "$0.5")
    balances = json.loads(ok(capsys, "ledger", "balance", "alice", "shop", "--json"))
    assert [b["posted"] for b in balances] == ["4250000", "750000"]
    assert "p1" in ok(capsys, "ledger", "history", "alice")
    listed = json.loads(ok(capsys, "ledger", "account", "list", "--json"))
    assert [a["id"] for a in listed] == ["alice", "shop", "world"]
    assert "available" in ok(capsys, "ledger", "account", "show", "alice")
    assert "signed by 0x" in ok(capsys, "ledger", "checkpoint")
    proof = json.loads(ok(capsys, "ledger", "proof", "p1"))
    assert proof["verified"] is True
    assert "OK" in ok(capsys, "ledger", "verify")
    export = books / "out.jsonl"
    ok(capsys, "ledger", "export", str(export))
    report = json.loads(ok(capsys, "audit", str(export), "--json"))
    assert report["ok"] is True and report["assets"] == {"USDC": "0"}


def test_void_and_wallet_owner(books: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "wallet", "new", "bob")
    ok(capsys, "ledger", "account", "open", "bob", "--owner", "bob")
    shown = json.loads(ok(capsys, "ledger", "account", "show", "bob", "--json"))
    assert shown["owner"].startswith("0x")  # the wallet name became its address
    ok(
        capsys,
        "ledger",
        "transfer",
        "--from",
        "alice",
        "--to",
        "bob",
        "--amount",
        "1",
        "--hold",
        "--id",
        "h2",
    )
    assert "released" in ok(capsys, "ledger", "void", "h2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["ledger", "transfer", "--from", "alice", "--to", "shop", "--amount", "$500"],
            "overdrawn",
        ),
        (["ledger", "transfer", "--from", "ghost", "--to", "shop", "--amount", "1"], "ghost"),
        (["ledger", "transfer", "--from", "alice", "--to", "alice", "--amount", "1"], "different"),
        (
            ["ledger", "transfer", "--from", "alice", "--to", "shop", "--amount", "-1"],
            "cannot read",
        ),
        (["ledger", "transfer", "--from", "alice", "--to", "shop", "--amount", "0"], "more than 0"),
        (
            ["ledger", "transfer", "--from", "alice", "--to", "shop", "--amount", "1e9"],
            "cannot read",
        ),
        (
            ["ledger", "transfer", "--from", "alice", "--to", "shop", "--amount", "0.0000001"],
            "finer",
        ),
        (["ledger", "transfer", "--from", "alice", "--to", "shop", "--amount", "1 EURC"], "EURC"),
        (
            [
                "ledger",
                "transfer",
                "--from",
                "alice",
                "--to",
                "shop",
                "--amount",
                "1",
                "--timeout",
                "5",
            ],
            "--hold",
        ),
        (
            [
                "ledger",
                "transfer",
                "--from",
                "alice",
                "--to",
                "shop",
                "--amount",
                "1",
                "--meta",
                "nokey",
            ],
            "key=value",
        ),
        (
            [
                "ledger",
                "transfer",
                "--from",
                "alice",
                "--to",
                "shop",
                "--amount",
                "1",
                "--id",
                "bad id",
            ],
            "transfer id",
        ),
        (
            [
                "ledger",
                "transfer",
                "--from",
                "alice",
                "--to",
                "shop",
                "--amount",
                "1",
                "--meta",
                "x=" + "y" * 5000,
            ],
            "metadata",
        ),
        (["ledger", "post", "nothing"], "does not exist"),
        (["ledger", "void", "nothing"], "does not exist"),
        (["ledger", "balance", "ghost"], "ghost"),
        (["ledger", "history", "ghost"], "ghost"),
        (["ledger", "account", "open", "x", "--kind", "wizard"], "unknown account kind"),
        (["ledger", "account", "open", "x", "--asset", "DOGE"], "unknown asset"),
        (["ledger", "account", "open", "x", "--asset", "X:many"], "decimals"),
        (["ledger", "account", "open", "alice", "--kind", "escrow"], "already exists"),
        (["ledger", "account", "list", "--kind", "wizard"], "unknown kind"),
        (["ledger", "proof", "ghost"], "does not exist"),
        (["ledger", "checkpoint", "--operator", "nobody"], "nobody"),
    ],
)
def test_refusals_are_one_clear_line(
    books: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    err = refused(capsys, *args)
    assert message in err
    assert len(err.strip().splitlines()) <= 3  # one logical line (a long one may wrap)


def test_usage_errors_exit_2(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["ledger", "transfer"]) == 2
    assert run(["ledger", "bogus"]) == 2
    capsys.readouterr()


def test_bad_store_urls(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "unknown ledger URL scheme" in refused(capsys, "ledger", "--db", "mysql://x/y", "verify")
    blocked = home / "file"
    blocked.write_text("not a folder")
    refused(capsys, "ledger", "--db", f"sqlite:///{blocked}/x.db", "verify")
    (home / "junk.db").write_bytes(b"this is not a database" * 100)
    refused(capsys, "ledger", "--db", str(home / "junk.db"), "verify")


def test_export_needs_a_checkpoint_key(books: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "checkpoint" in refused(
        capsys, "ledger", "export", str(books / "x.jsonl"), "--no-checkpoint"
    )
    assert not (books / "x.jsonl").exists()


def test_wrong_passphrase_is_refused(
    books: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYWIRE_PASSPHRASE", "wrong")
    refused(capsys, "ledger", "checkpoint")


def test_audit_refusals(books: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "cannot read" in refused(capsys, "audit", str(books / "missing.jsonl"))
    garbage = books / "garbage.jsonl"
    garbage.write_bytes(b"\x00\xff" * 1000)
    assert "header" in refused(capsys, "audit", str(garbage))
    ok(capsys, "ledger", "export", str(books / "good.jsonl"))
    assert "invalid_address" not in refused(
        capsys, "audit", str(books / "good.jsonl"), "--operator", "0x" + "11" * 20
    )
    assert "address" in refused(capsys, "audit", str(books / "good.jsonl"), "--operator", "zz")


def test_verify_reports_a_broken_store(books: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    db = sqlite3.connect(books / "ledger.db")
    db.execute("UPDATE accounts SET credits_posted = '999' WHERE id = 'alice'")
    db.commit()
    db.close()
    assert "failed its audit" in refused(capsys, "ledger", "verify")


def test_demo_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = ok(capsys, "demo", "--tour")
    assert "Tour complete" in out
    assert (tmp_path / ".paywire-demo" / "books.jsonl").exists()
    out = ok(capsys, "demo", "--tour")  # runs again over its own folder
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")
    refused(capsys, "demo", "--tour", "--dir", str(tmp_path / "mine"))
    assert (tmp_path / "mine" / "precious.txt").exists()
