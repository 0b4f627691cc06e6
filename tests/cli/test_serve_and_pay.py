"""`paywire serve` in its own process, a provider using it, and `paywire pay` paying it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cli_runs import cli
from paywire._dev.http import ServedApps, start_paywire
from paywire.crypto.keystore import KeyStore
from paywire.protocol import RemoteFacilitator
from paywire.server import PaymentMiddleware


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAYWIRE_HOME", str(tmp_path))
    monkeypatch.setenv("PAYWIRE_PASSPHRASE", "test passphrase")
    monkeypatch.setenv("PAYWIRE_LIGHT_KDF", "1")
    monkeypatch.delenv("PAYWIRE_DB", raising=False)
    return tmp_path


@pytest.fixture
def facilitator_url(home: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[str]:
    cli(capsys, "wallet", "new", "operator")
    cli(capsys, "ledger", "init")
    try:
        process, url = start_paywire(["serve", "--chain", "none"], "/health")
    except RuntimeError as error:
        pytest.fail(str(error))
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_serve_and_pay(
    home: Path, facilitator_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "wallet", "new", "agent")
    cli(capsys, "wallet", "new", "shop")
    keys = KeyStore(home / "keys")
    agent, shop = keys.info("agent").address, keys.info("shop").address
    operator = keys.info("operator").address
    cli(capsys, "ledger", "account", "open", "world", "--kind", "external")
    cli(capsys, "ledger", "account", "open", f"{agent}:USDC", "--owner", agent)
    cli(capsys, "ledger", "transfer", "--from", "world", "--to", f"{agent}:USDC", "--amount", "$1")

    async def search(request: Request) -> Response:
        return JSONResponse({"results": ["paid content"]})

    app = Starlette(routes=[Route("/search", search)])
    app.add_middleware(
        PaymentMiddleware,
        routes={"GET /search": "$0.003"},
        pay_to=shop,
        facilitator=RemoteFacilitator(facilitator_url),
    )
    served = ServedApps()
    try:
        url = served.start(app) + "/search"
        out = cli(
            capsys, "pay", url, "--wallet", "agent", "--max", "$0.01", "--facilitator", operator
        )
        assert "paid content" in out and "paid 0.003 USDC" in out
        refused = cli(capsys, "pay", url, "--wallet", "agent", "--max", "$0.001", expect=1)
        assert "per-payment maximum" in refused
        cli(capsys, "pay", "ftp://nowhere", "--wallet", "agent", "--max", "$1", expect=1)
        cli(capsys, "pay", "http://127.0.0.1:9/x", "--wallet", "agent", "--max", "$1", expect=1)
        cli(capsys, "pay", url, "--wallet", "nobody", "--max", "$1", expect=1)
    finally:
        served.close()
    balances = cli(capsys, "ledger", "balance", f"{agent}:USDC", f"{shop}:USDC", "--json")
    assert '"997000"' in balances and '"3000"' in balances
    assert "OK" in cli(capsys, "ledger", "verify")
