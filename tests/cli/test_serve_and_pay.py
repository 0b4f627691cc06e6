"""`paywire serve` in its own process, a provider using it, and `paywire pay` paying it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paywire.cli import run
from paywire.crypto.keystore import KeyStore
from paywire.protocol import RemoteFacilitator
from paywire.server import PaymentMiddleware


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAYWIRE_HOME", str(tmp_path))
    monkeypatch.setenv("PAYWIRE_PASSPHRASE", "test passphrase")
    monkeypatch.setenv("PAYWIRE_LIGHT_KDF", "1")
    monkeypatch.delenv("PAYWIRE_DB", raising=False)
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *args: str, expect: int = 0) -> str:
    code = run(list(args))
    out, err = capsys.readouterr()
    assert code == expect, f"paywire {' '.join(args)}: {out}{err}"
    assert "Traceback" not in out + err
    return out + err


@pytest.fixture
def facilitator_url(home: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[str]:
    cli(capsys, "wallet", "new", "operator")
    cli(capsys, "ledger", "init")
    port = _port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from paywire.cli import main; main()",
            "serve",
            "--port",
            str(port),
        ],
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            output = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"paywire serve did not start: {output}")
        time.sleep(0.05)
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
    port = _port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        url = f"http://127.0.0.1:{port}/search"
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
        server.should_exit = True
        thread.join(timeout=10)
    balances = cli(capsys, "ledger", "balance", f"{agent}:USDC", f"{shop}:USDC", "--json")
    assert '"997000"' in balances and '"3000"' in balances
    assert "OK" in cli(capsys, "ledger", "verify")
