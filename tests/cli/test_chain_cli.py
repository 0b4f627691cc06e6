"""`paywire serve` with its local chain, and `faucet`, `deposit`, `withdraw`,
`ledger verify --reserves` against it: the door between the chain and the ledger."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli_runs import cli
from paywire._dev.http import start_paywire
from paywire.crypto.keystore import KeyStore


@pytest.fixture
def operator_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[str]:
    monkeypatch.setenv("PAYWIRE_HOME", str(tmp_path))
    monkeypatch.setenv("PAYWIRE_PASSPHRASE", "test passphrase")
    monkeypatch.setenv("PAYWIRE_LIGHT_KDF", "1")
    monkeypatch.delenv("PAYWIRE_DB", raising=False)
    cli(capsys, "wallet", "new", "operator")
    cli(capsys, "ledger", "init")
    try:
        process, url = start_paywire(["serve"], "/chain")
    except RuntimeError as error:
        pytest.fail(str(error))
    monkeypatch.setenv("PAYWIRE_OPERATOR_URL", url)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_faucet_deposit_withdraw_and_reserves(
    operator_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "wallet", "new", "alice")
    alice = KeyStore(tmp_path / "keys").info("alice").address
    account = f"{alice}:USDC"
    chain = httpx.get(f"{operator_url}/chain").json()
    assert chain["demo"] is True and chain["decimals"] == 6

    assert "minted $10" in cli(capsys, "faucet", "alice", "--amount", "$10")
    assert "deposited $4" in cli(capsys, "deposit", "--wallet", "alice", "--amount", "$4")
    balance = json.loads(cli(capsys, "ledger", "balance", account, "--json"))
    assert balance[0]["available"] == "4000000"
    cli(capsys, "faucet", "alice", "--amount", "$1", "--ledger")
    balance = json.loads(cli(capsys, "ledger", "balance", account, "--json"))
    assert balance[0]["available"] == "5000000"

    out = cli(capsys, "withdraw", "--wallet", "alice", "--amount", "$2.5", "--id", "w-1")
    assert "withdrew $2.5" in out
    time.sleep(1.1)  # the retry is signed anew, with a later validBefore
    again = cli(capsys, "withdraw", "--wallet", "alice", "--amount", "$2.5", "--id", "w-1")
    assert "withdrew" in again  # the same id: reported, not paid twice
    assert "other terms" in cli(
        capsys, "withdraw", "--wallet", "alice", "--amount", "$1", "--id", "w-1", expect=1
    )
    balance = json.loads(cli(capsys, "ledger", "balance", account, "--json"))
    assert balance[0]["available"] == "2500000"

    out = cli(capsys, "ledger", "verify", "--reserves")
    assert "reserves USDC" in out and "OK" in out

    # Refusals: one line, no traceback, nothing moved.
    assert "refused" in cli(capsys, "deposit", "--wallet", "alice", "--amount", "$100", expect=1)
    assert "refused" in cli(capsys, "withdraw", "--wallet", "alice", "--amount", "$100", expect=1)
    cli(capsys, "faucet", "alice", "--amount", "$0", expect=1)
    cli(capsys, "faucet", "0xnotanaddress", "--amount", "$1", expect=1)
    cli(capsys, "deposit", "--wallet", "nobody", "--amount", "$1", expect=1)
    balance = json.loads(cli(capsys, "ledger", "balance", account, "--json"))
    assert balance[0]["available"] == "2500000"
    assert "OK" in cli(capsys, "ledger", "verify", "--reserves")


def test_a_forged_withdrawal_is_refused(operator_url: str, tmp_path: Path) -> None:
    from paywire.chain.eip3009 import token_domain
    from paywire.crypto.keys import PrivateKey
    from paywire.protocol.withdrawal import WithdrawalRequest

    chain = httpx.get(f"{operator_url}/chain").json()
    domain = token_domain(chain["name"], chain["version"], chain["chainId"], chain["token"])
    victim, thief = PrivateKey.generate(), PrivateKey.generate()
    httpx.post(
        f"{operator_url}/faucet",
        json={"address": victim.address, "amount": "1000000", "ledger": True},
    ).raise_for_status()
    request = WithdrawalRequest(victim.address, thief.address, 1_000_000, "steal-1", 2**40)
    forged = {"request": request.to_json(), "signature": "0x" + request.sign(domain, thief).hex()}
    response = httpx.post(f"{operator_url}/withdraw", json=forged)
    assert response.status_code == 400
    assert "not signed by" in response.json()["message"]
    for body in (b"not json", b"[]", b"{" * 100, b"x" * 20_000):
        bad = httpx.post(f"{operator_url}/withdraw", content=body)
        assert bad.status_code == 400


def test_an_unreachable_operator_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PAYWIRE_HOME", str(tmp_path))
    out = cli(
        capsys,
        "faucet",
        "0x" + "11" * 20,
        "--amount",
        "$1",
        "--operator-url",
        "http://127.0.0.1:9",
        expect=1,
    )
    assert "is `paywire serve` running?" in out
