"""`paywire gateway` as a user runs it: in its own process, in front of the local model,
paid through `paywire serve` (its own process too) per request and per token."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli_runs import cli
from paywire._dev.http import start_paywire
from paywire.client import PaidLLM
from paywire.crypto.keystore import KeyStore
from paywire.meter import local_model_available

PASSPHRASE = "test passphrase"
ASK = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAYWIRE_HOME", str(tmp_path))
    monkeypatch.setenv("PAYWIRE_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("PAYWIRE_LIGHT_KDF", "1")
    monkeypatch.delenv("PAYWIRE_DB", raising=False)
    return tmp_path


def test_bad_options_are_one_line_errors(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--upstream" in cli(capsys, "gateway", "--help")
    assert "nobody" in cli(capsys, "gateway", "--pay-to", "nobody", expect=1)
    address = "0x" + "12" * 20
    out = cli(capsys, "gateway", "--pay-to", address, "--upstream", "ftp://x", expect=1)
    assert "--upstream" in out
    out = cli(capsys, "gateway", "--pay-to", address, "--facilitator", "nowhere", expect=1)
    assert "--facilitator" in out
    missing = cli(capsys, "gateway", "--pay-to", address, "--price-book", "no.toml", expect=1)
    assert "no.toml" in missing


@pytest.fixture
def operator_url(home: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[str]:
    cli(capsys, "wallet", "new", "operator")
    cli(capsys, "ledger", "init")
    try:
        process, url = start_paywire(["serve", "--chain", "none"], "/health")
    except RuntimeError as error:
        pytest.fail(str(error))
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.mark.skipif(not local_model_available(), reason="the `llm` extra is not installed")
def test_the_gateway_command_serves_paid_tokens(
    home: Path, operator_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "wallet", "new", "agent")
    cli(capsys, "wallet", "new", "shop")
    keys = KeyStore(home / "keys")
    agent_address, shop = keys.info("agent").address, keys.info("shop").address
    cli(capsys, "ledger", "account", "open", "world", "--kind", "external")
    cli(capsys, "ledger", "account", "open", f"{agent_address}:USDC", "--owner", agent_address)
    wallet = f"{agent_address}:USDC"
    cli(capsys, "ledger", "transfer", "--from", "world", "--to", wallet, "--amount", "$1")
    process, url = start_paywire(
        ["gateway", "--pay-to", "shop", "--facilitator", operator_url], "/v1/models"
    )
    try:
        [model] = httpx.get(f"{url}/v1/models").json()["data"]
        assert model["id"] == "smollm2-135m-instruct"
        assert model["pricing"]["output_per_mtok"] == "0.4"  # the shipped price book
        agent = keys.load("agent", PASSPHRASE)
        with PaidLLM(agent, url, max_per_payment="$0.01") as exact:
            answer = exact.chat.completions.create(model="smollm2", messages=ASK, max_tokens=4)
            assert answer["paywire"]["scheme"] == "exact"
        with PaidLLM(agent, url, max_per_payment="$0.01", channel_deposit_atomic=10_000) as llm:
            tokens = llm.chat.completions.create(model="smollm2", messages=ASK, max_tokens=4)
            assert tokens["paywire"]["scheme"] == "batch-settlement"
    finally:
        process.terminate()  # the gateway claims what its channels charged as it stops
        process.wait(timeout=20)
        banner = process.stdout.read().decode() if process.stdout else ""
    assert "paywire gateway on" in banner and "channels      on" in banner
    paid = int(answer["paywire"]["charged"]) + int(tokens["paywire"]["charged"])
    balance = json.loads(cli(capsys, "ledger", "balance", f"{shop}:USDC", "--json"))
    assert balance[0]["posted"] == str(paid)  # exact at once, the channel's on its claim
