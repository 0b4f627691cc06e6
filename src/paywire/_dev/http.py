"""Serving ASGI apps on loopback for tests, benchmarks and the demo (not public API).

`ServedApps.start(app)` runs uvicorn in a thread on a free port and returns its URL;
`close()` stops them all. `start_paywire(args, ready_path)` runs the `paywire` command in a
child process and waits until `ready_path` answers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx
import uvicorn
from starlette.types import ASGIApp

START_TIMEOUT_S = 30.0
"""How long a server may take to accept connections (a child process imports a lot)."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServedApps:
    """ASGI apps served by uvicorn in threads, on loopback."""

    def __init__(self) -> None:
        self._servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(self, app: ASGIApp, *, log_level: str = "warning") -> str:
        """Serve `app`; return its base URL once it accepts connections."""
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        self._servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        for server, _ in self._servers:
            server.should_exit = True
        for _, thread in self._servers:
            thread.join(timeout=10)
        self._servers.clear()


@contextmanager
def served(app: ASGIApp, *, log_level: str = "warning") -> Iterator[str]:
    """Serve one app for the duration of the block; yields its base URL."""
    apps = ServedApps()
    try:
        yield apps.start(app, log_level=log_level)
    finally:
        apps.close()


def start_paywire(args: Sequence[str], ready_path: str) -> tuple[subprocess.Popen[bytes], str]:
    """Run ``paywire <args> --port <free port>`` in a child process (this environment);
    return it and its URL once `ready_path` answers 200. Raises RuntimeError with the
    child's output if it does not start."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from paywire.cli import main; main()", *args, "--port", str(port)],
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if httpx.get(url + ready_path).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"paywire {' '.join(args)} did not start: {output[-2000:]}")
        time.sleep(0.05)
