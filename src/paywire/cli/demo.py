"""`paywire demo`: a guided tour of the books, run with the real CLI on a real SQLite file.

Every step is a `paywire` command, printed and then run in this process, in a demo folder
(``./.paywire-demo`` by default) that the tour empties first; the export and the ledger it
leaves behind can be inspected after. Keys are encrypted with a demo passphrase and the
light KDF: nothing here is meant to hold real money.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from paywire.cli._common import console
from paywire.errors import PaywireError


class DemoFailed(PaywireError):
    """The tour's step did not go as it should."""

    code = "demo_failed"


DEMO_PASSPHRASE = "demo passphrase, not for real funds"  # noqa: S105 (a public demo value)


MAX_DEMO_TASKS = 50
"""A bigger run is for looking at the books, not a load test (see bench/)."""

MAX_DEMO_WRITERS = 8


def demo_command(
    folder: Path = typer.Option(
        Path(".paywire-demo"), "--dir", help="The demo's folder (emptied first; keeps the report)."
    ),
    seed: int = typer.Option(7, "--seed", help="Derives every key and the model's sampling."),
    tasks: int = typer.Option(
        1, "--tasks", min=1, max=MAX_DEMO_TASKS, help="Tasks posted and worked one after another."
    ),
    writers: int = typer.Option(
        1, "--writers", min=1, max=MAX_DEMO_WRITERS, help="Writer sub-agents per task."
    ),
    threads: int = typer.Option(2, "--threads", min=1, max=16, help="CPU threads for the model."),
    max_tokens: int = typer.Option(
        48, "--max-tokens", min=8, max=512, help="Most tokens the writer asks per completion."
    ),
    tour: bool = typer.Option(
        False, "--tour", help="Instead: a guided tour of the ledger with the CLI's commands."
    ),
) -> None:
    """The closed loop: a principal funds a task in escrow, agents do the work paying per
    request and per AI token (the real local model), a model judges the result, the escrow
    is split, providers settle to the chain; then the books, verified and audited. Leaves
    a Markdown report in --dir. A bigger run: --tasks 5 --writers 3."""
    if tour:
        _tour(folder)
        return
    from rich.table import Table as RichTable

    from paywire.demo import DemoOptions, Table, run_demo

    started = time.perf_counter()

    def say(line: str) -> None:
        clock = f"[dim]{time.perf_counter() - started:5.1f}s[/] "
        shown = f"[bold]{line}[/]" if line.startswith("step") else line
        console.print(clock + shown, highlight=False)

    def show(table: Table) -> None:
        shown = RichTable(title=table.title, title_justify="left")
        for column in table.columns:
            shown.add_column(column)
        for row in table.rows:
            shown.add_row(*row)
        console.print(shown)

    options = DemoOptions(
        folder=folder,
        seed=seed,
        tasks=tasks,
        writers=writers,
        threads=threads,
        max_tokens=max_tokens,
        passphrase=DEMO_PASSPHRASE,
    )
    with _environment(folder):
        result = run_demo(options, say, show)
    console.print(
        f"\n[bold green]The loop closed[/] in {result.outcome.timings.get('total', 0):.1f} s: "
        f"books verified and audited. Report: {result.report}\n"
        f"Explore the books: PAYWIRE_HOME={folder} PAYWIRE_PASSPHRASE='{DEMO_PASSPHRASE}' "
        "paywire serve --chain none, then paywire task show research-1"
    )


def _tour(folder: Path) -> None:
    """A short tour of the ledger: wallets, accounts, payments, holds, idempotent retries,
    refused overdrafts, signed checkpoints, proofs, verification and an offline audit."""
    from paywire.demo import prepare_folder

    prepare_folder(folder)
    started = time.perf_counter()
    with _environment(folder):
        tour = _Tour(folder)
        tour.run()
    console.print(
        f"\n[bold green]Tour complete[/] in {time.perf_counter() - started:.1f} s. "
        f"The ledger and its export are in {folder}/ "
        f"(try: PAYWIRE_HOME={folder} paywire ledger history alice)."
    )


@contextmanager
def _environment(folder: Path) -> Iterator[None]:
    """The demo's own settings, restored after: its home, passphrase and light KDF."""
    saved = {key: os.environ.get(key) for key in (*_DEMO_ENV, "PAYWIRE_HOME", "PAYWIRE_DB")}
    os.environ.update(_DEMO_ENV)
    os.environ["PAYWIRE_HOME"] = str(folder.resolve())
    os.environ.pop("PAYWIRE_DB", None)  # the demo's ledger is its own SQLite file
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_DEMO_ENV = {"PAYWIRE_PASSPHRASE": DEMO_PASSPHRASE, "PAYWIRE_LIGHT_KDF": "1"}


@contextmanager
def _search_api(folder: Path, pay_to: str) -> Iterator[str]:
    """A priced search API with an in-process facilitator over the demo's ledger, served
    on a loopback port for the duration of the block."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from paywire._dev.http import ServedApps
    from paywire.crypto.keystore import KeyStore
    from paywire.ledger import open_ledger
    from paywire.protocol import Facilitator
    from paywire.server import PaymentMiddleware

    async def search(request: Request) -> Response:
        query = request.query_params.get("q", "")
        return JSONResponse({"query": query, "results": [f"{query}: result {n}" for n in (1, 2)]})

    operator = KeyStore(folder / "keys").load("operator", DEMO_PASSPHRASE)
    ledger = open_ledger(f"sqlite:///{folder / 'ledger.db'}")
    app = Starlette(routes=[Route("/search", search)])
    app.add_middleware(
        PaymentMiddleware,
        routes={"GET /search": "$0.002"},
        pay_to=pay_to,
        facilitator=Facilitator.for_ledger(ledger, operator),
    )
    served = ServedApps()
    try:
        try:
            url = served.start(app, log_level="error")
        except RuntimeError as error:
            raise DemoFailed(f"the demo's search API did not start: {error}") from None
        yield url
    finally:
        served.close()
        ledger.close()


class _Tour:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.step = 0

    def say(self, title: str, why: str) -> None:
        self.step += 1
        console.print(f"\n[bold]{self.step}. {title}[/]")
        console.print(f"[dim]{why}[/]")

    def paywire(self, command: str, *, expect_failure: bool = False) -> None:
        from paywire.cli import run

        console.print(f"[bold cyan]$ paywire {command}[/]")
        code = run(shlex.split(command))
        if expect_failure and code == 0:
            raise DemoFailed(f"`paywire {command}` should have been refused")
        if not expect_failure and code != 0:
            raise DemoFailed(f"`paywire {command}` failed (exit {code})")

    def run(self) -> None:
        console.print(
            "[bold]paywire demo[/]: the books behind agent payments, on an embedded SQLite "
            f"ledger in {self.folder}/"
        )
        self.say(
            "Wallets",
            "Each party has a secp256k1 key in an encrypted keystore v3 file (scrypt). "
            "The operator's key signs the ledger's checkpoints.",
        )
        for name in ("operator", "alice", "search-api"):
            self.paywire(f"wallet new {name}")
        self.paywire("wallet list")

        self.say("A ledger", "Double-entry books whose journal is a Merkle transparency log.")
        self.paywire("ledger init")
        self.paywire("ledger account open world --kind external --asset USDC")
        self.paywire("ledger account open alice --kind agent --owner alice")
        self.paywire("ledger account open search-api --kind provider --owner search-api")
        self.paywire("ledger account list")

        self.say(
            "Funding",
            "Value enters through the external account (later: a chain deposit). Amounts are "
            "integers of atomic units: $5 is 5,000,000 USDC units.",
        )
        self.paywire(
            "ledger transfer --from world --to alice --amount '$5' --code 20 --id deposit-1 "
            "--meta source=faucet"
        )

        self.say("Paying per request", "Alice's agent pays a search API a fraction of a cent.")
        for n in (1, 2, 3):
            self.paywire(
                f"ledger transfer --from alice --to search-api --amount '$0.002' --code 10 "
                f"--id pay-{n} --meta task=t-42 --meta tool=search --meta request={n}"
            )

        self.say(
            "Retries are safe",
            "The same id with the same request returns the first result: nothing moves twice.",
        )
        self.paywire(
            "ledger transfer --from alice --to search-api --amount '$0.002' --code 10 "
            "--id pay-1 --meta task=t-42 --meta tool=search --meta request=1"
        )
        console.print("[dim]The same id with a different request is refused:[/]")
        self.paywire(
            "ledger transfer --from alice --to search-api --amount '$0.5' --code 10 --id pay-1",
            expect_failure=True,
        )

        self.say("Overdrafts are refused", "An agent wallet cannot go below zero, atomically.")
        self.paywire(
            "ledger transfer --from alice --to search-api --amount '$100'", expect_failure=True
        )

        self.say(
            "Holds",
            "Reserve now, settle later: the base of escrow and payment channels. Post part of "
            "a hold and the rest is released.",
        )
        self.paywire(
            "ledger transfer --from alice --to search-api --amount '$0.50' --hold "
            "--timeout 3600 --id hold-1 --meta task=t-42"
        )
        self.paywire("ledger balance alice")
        self.paywire("ledger post hold-1 --amount '$0.20' --id settle-1")
        self.paywire("ledger balance world alice search-api")
        self.paywire("ledger history alice")

        self.say(
            "Paying per request over HTTP 402 (x402 v2)",
            "A search API charges $0.002 a request with one middleware; alice's agent meets "
            "the 402, signs an EIP-712 authorization within its $0.01 limit, and retries. "
            "The facilitator settles it as a ledger transfer before the API answers, and "
            "signs a receipt.",
        )
        from paywire.crypto.keystore import KeyStore

        keys = KeyStore(self.folder / "keys")
        alice = keys.info("alice").address
        self.paywire(f"ledger account open {alice}:USDC --owner alice")
        self.paywire(f"ledger transfer --from alice --to {alice}:USDC --amount '$1' --id wallet-1")
        with _search_api(self.folder, keys.info("search-api").address) as url:
            self.paywire(f"pay {url}/search?q=agent+payments --wallet alice --max '$0.01'")
            self.paywire(
                f"pay {url}/search?q=too+expensive --wallet alice --max '$0.001'",
                expect_failure=True,
            )
        self.paywire(f"ledger history {alice}:USDC")

        self.say(
            "A signed checkpoint and a proof",
            "The operator signs the tree head (EIP-712); anyone can check that pay-1 is in it.",
        )
        self.paywire("ledger checkpoint")
        self.paywire("ledger proof pay-1")

        self.say("Verify", "Recompute every balance from the log and check the store against it.")
        self.paywire("ledger verify")

        self.say("Export and audit offline", "No database needed to check the books.")
        export = self.folder / "books.jsonl"
        self.paywire(f"ledger export {export}")
        from paywire.crypto.keystore import KeyStore

        operator = KeyStore(self.folder / "keys").info("operator").address
        self.paywire(f"audit {export} --operator {operator}")

        self.say(
            "Tampering is caught",
            "Change one digit of one amount in a copy of the export and audit it again.",
        )
        tampered = self.folder / "tampered.jsonl"
        lines = export.read_bytes().split(b"\n")
        target = next(n for n, line in enumerate(lines) if b'"id":"pay-2"' in line)
        lines[target] = lines[target].replace(b'"amount":"2000"', b'"amount":"2001"')
        tampered.write_bytes(b"\n".join(lines))
        self.paywire(f"audit {tampered} --operator {operator}", expect_failure=True)
