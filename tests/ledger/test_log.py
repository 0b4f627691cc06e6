"""The transparency log: checkpoints, proofs, verify, export and the offline audit."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from paywire.crypto.keys import PrivateKey
from paywire.ledger import (
    AccountKind,
    Ledger,
    LedgerError,
    NewAccount,
    hold,
    post,
    transfer,
    void,
)
from paywire.ledger.export import audit_export
from paywire.money import USDC

USD = USDC.atomic


@pytest.fixture
def operator() -> PrivateKey:
    return PrivateKey.generate()


def busy_ledger(ledger: Ledger, clock) -> None:  # type: ignore[no-untyped-def]
    """A ledger with one of everything: accounts, transfers, holds posted, voided, expired."""
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount("alice", USDC, AccountKind.AGENT, metadata={"team": "r&d"}))
    ledger.open_account(NewAccount("bob", USDC, AccountKind.PROVIDER, owner="0xB0B"))
    ledger.submit(transfer("fund", "world", "alice", USD(10_000)))
    ledger.submit(
        transfer(
            "pay",
            "alice",
            "bob",
            USD(1_234),
            metadata={"task": "t1", "tokens": {"in": 10, "out": 20}},
            authorization='{"sig":"0xabc","note":"caf\u00e9 \\"quoted\\""}',
        )
    )
    ledger.submit(hold("h1", "alice", "bob", USD(500), timeout_s=10))
    ledger.submit(post("p1", "h1", USD(300)))
    ledger.submit(hold("h2", "alice", "bob", USD(100)))
    ledger.submit(void("v2", "h2"))
    ledger.submit(hold("h3", "alice", "bob", USD(50), timeout_s=1))
    clock.advance(2)
    ledger.expire_due()
    ledger.submit_linked(
        [transfer("l1", "alice", "bob", USD(1)), transfer("l2", "bob", "alice", USD(1))]
    )


def test_verify_passes_and_counts(ledger: Ledger, clock, operator: PrivateKey) -> None:  # type: ignore[no-untyped-def]
    busy_ledger(ledger, clock)
    ledger.log.checkpoint(operator)
    report = ledger.log.verify()
    assert report.ok, report.problems
    assert report.accounts == 3
    assert report.transfers == 10  # with the ledger's own h3~expire
    assert report.checkpoints == 1
    assert report.assets == {"USDC": 0}
    assert report.operator == operator.address
    assert report.balances["alice"] == ledger.balance("alice")


def test_checkpoints_and_proofs(ledger: Ledger, clock, operator: PrivateKey) -> None:  # type: ignore[no-untyped-def]
    busy_ledger(ledger, clock)
    first = ledger.log.checkpoint(operator)
    assert ledger.log.checkpoint(operator) == first  # nothing new: the same checkpoint
    assert first.signer() == operator.address
    assert first.root_hash == ledger.head().root_hash
    ledger.submit(transfer("later", "alice", "bob", USD(5)))
    second = ledger.log.checkpoint(operator)
    assert second.tree_size == first.tree_size + 1
    assert ledger.log.checkpoints() == [first, second]
    for tid in ("fund", "pay", "h1", "p1", "h3~expire", "l2", "later"):
        proof = ledger.log.inclusion_proof(tid)
        assert proof.tree_size == second.tree_size
        assert proof.root_hash == second.root_hash
        assert proof.verify()
    old = ledger.log.inclusion_proof("fund", tree_size=first.tree_size)
    assert old.root_hash == first.root_hash and old.verify()
    consistency = ledger.log.consistency_proof(first.tree_size, second.tree_size)
    assert consistency.old_root == first.root_hash
    assert consistency.new_root == second.root_hash
    assert consistency.verify()
    with pytest.raises(LedgerError):
        ledger.log.inclusion_proof("later", tree_size=first.tree_size)
    with pytest.raises(LedgerError):
        ledger.log.checkpoint(PrivateKey.generate())  # another key cannot sign this ledger


def test_empty_log_has_nothing_to_checkpoint(ledger: Ledger, operator: PrivateKey) -> None:
    with pytest.raises(LedgerError, match="empty"):
        ledger.log.checkpoint(operator)
    with pytest.raises(LedgerError, match="checkpoint"):
        ledger.log.export(io.BytesIO())


def export_file(ledger: Ledger, operator: PrivateKey, path: Path) -> bytes:
    ledger.log.checkpoint(operator)
    with path.open("wb") as out:
        ledger.log.export(out)
    return path.read_bytes()


def test_export_audits_offline(ledger: Ledger, clock, operator: PrivateKey, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    busy_ledger(ledger, clock)
    ledger.log.checkpoint(operator)
    ledger.submit(transfer("after", "alice", "bob", USD(7)))
    path = tmp_path / "log.jsonl"
    data = export_file(ledger, operator, path)
    lines = data.splitlines()
    assert lines[0].startswith(b'{"format":"paywire-ledger-export"')
    assert sum(b'"type":"checkpoint"' in line for line in lines) == 2
    report = audit_export(path, operator=operator.address)
    assert report.ok, report.problems
    assert report.entries == ledger.head().size
    assert report.balances["bob"] == ledger.balance("bob")
    wrong = audit_export(path, operator=PrivateKey.generate().address)
    assert not wrong.ok


def test_every_changed_byte_of_an_export_is_detected(
    ledger: Ledger, operator: PrivateKey, tmp_path: Path
) -> None:
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount("a", USDC))
    ledger.submit(transfer("f", "world", "a", USD(100), metadata={"k": "v"}))
    ledger.submit(hold("h", "a", "world", USD(30), timeout_s=60))
    ledger.submit(post("p", "h", USD(20)))
    path = tmp_path / "log.jsonl"
    data = export_file(ledger, operator, path)
    header_end = data.index(b"\n") + 1
    tampered = tmp_path / "tampered.jsonl"
    for position in range(len(data)):
        for mask in (0x01, 0x20):
            changed = bytearray(data)
            changed[position] ^= mask
            tampered.write_bytes(bytes(changed))
            try:
                report = audit_export(tampered, operator=operator.address)
            except LedgerError:
                assert position < header_end  # only a broken header stops the audit at once
                continue
            assert not report.ok, f"byte {position} ^ {mask:#x} went unnoticed"
            if position >= header_end:
                assert report.first_problem is not None


def test_audit_names_the_first_wrong_entry(
    ledger: Ledger, operator: PrivateKey, tmp_path: Path
) -> None:
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount("a", USDC))
    for n in range(5):
        ledger.submit(transfer(f"t{n}", "world", "a", USD(10)))
    path = tmp_path / "log.jsonl"
    lines = export_file(ledger, operator, path).split(b"\n")
    lines[4] = lines[4].replace(b'"amount":"10"', b'"amount":"11"')  # entry 3, line 4
    path.write_bytes(b"\n".join(lines))
    report = audit_export(path, operator=operator.address)
    assert not report.ok
    problem = report.first_problem
    assert problem is not None
    # The changed entry replays fine on its own; the signed root catches it.
    assert problem.index == 3 and problem.line == 5
    assert "leaf the ledger recorded" in problem.message


def test_overdraft_smuggled_into_an_export_is_named(tmp_path: Path, operator: PrivateKey) -> None:
    """A forged log, with its leaf hashes recomputed, still breaks the ledger's rules."""
    from paywire.ledger import open_ledger

    with open_ledger(f"sqlite:///{tmp_path / 'a.db'}") as ledger:
        ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
        ledger.open_account(NewAccount("a", USDC))
        ledger.open_account(NewAccount("b", USDC))
        ledger.submit(transfer("t0", "world", "a", USD(10)))
        ledger.submit(transfer("t1", "a", "b", USD(10)))
        good = export_file(ledger, operator, tmp_path / "good.jsonl")
    # Rebuild a ledger whose t1 moves 11, then re-sign: the rules, not the root, refuse it.
    forged_lines = good.split(b"\n")
    entry = forged_lines[5][len(b'{"entry":') : forged_lines[5].index(b',"leaf":')]
    entry = entry.replace(b'"amount":"10"', b'"amount":"11"')
    leaf = hashlib.sha256(b"\0" + entry).hexdigest().encode()
    forged_lines[5] = b'{"entry":' + entry + b',"leaf":"' + leaf + b'"}'
    (tmp_path / "forged.jsonl").write_bytes(b"\n".join(forged_lines[:6]) + b"\n")
    report = audit_export(tmp_path / "forged.jsonl", operator=operator.address)
    assert not report.ok
    assert report.first_problem is not None
    assert report.first_problem.index == 4
    assert "overdrawn" in report.first_problem.message


@pytest.mark.parametrize(
    "mangle",
    [
        lambda data: data[: len(data) // 2],  # cut short
        lambda data: data.replace(b"\n", b"\r\n"),  # CRLF
        lambda data: data + b"\n",  # a blank line
        lambda data: data + b"x" * 40_000,  # a huge last line
        lambda data: b"",  # empty file
        lambda data: b"\xff\xfe" + data,  # not UTF-8
    ],
)
def test_malformed_exports_fail_cleanly(
    ledger: Ledger, operator: PrivateKey, tmp_path: Path, mangle
) -> None:  # type: ignore[no-untyped-def]
    ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
    ledger.open_account(NewAccount("a", USDC))
    ledger.submit(transfer("t0", "world", "a", USD(10)))
    data = export_file(ledger, operator, tmp_path / "log.jsonl")
    (tmp_path / "bad.jsonl").write_bytes(mangle(data))
    try:
        report = audit_export(tmp_path / "bad.jsonl", operator=operator.address)
    except LedgerError:
        return
    assert not report.ok


def test_verify_detects_a_tampered_store(tmp_path: Path, operator: PrivateKey) -> None:
    import sqlite3

    from paywire.ledger import open_ledger

    path = tmp_path / "books.db"
    with open_ledger(f"sqlite:///{path}") as ledger:
        ledger.open_account(NewAccount("world", USDC, AccountKind.EXTERNAL))
        ledger.open_account(NewAccount("a", USDC))
        ledger.submit(transfer("t0", "world", "a", USD(10)))
        ledger.log.checkpoint(operator)
        assert ledger.log.verify().ok
    tampering = [
        "UPDATE accounts SET credits_posted = '1000' WHERE id = 'a'",
        "UPDATE transfers SET amount = '9' WHERE id = 't0'",
        "UPDATE log SET entry = replace(entry, '\"10\"', '\"11\"') WHERE idx = 2",
        "UPDATE checkpoints SET root_hash = zeroblob(32)",
        "DELETE FROM log WHERE idx = 1",
        "UPDATE log_head SET frontier = zeroblob(64)",
    ]
    for statement in tampering:
        copy = tmp_path / "copy.db"
        copy.write_bytes(path.read_bytes())
        db = sqlite3.connect(copy)
        db.execute(statement)
        db.commit()
        db.close()
        with open_ledger(f"sqlite:///{copy}") as ledger:
            try:
                report = ledger.log.verify()
            except LedgerError:
                continue
            assert not report.ok, statement
        copy.unlink()
