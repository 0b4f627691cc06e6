"""`paywire demo`: the closed loop, end to end, on one machine (see `paywire.demo._story`).

A principal funds an agent through the chain and signs a mandate; posts a task whose
budget goes into escrow; an orchestrator agent takes it, hires a writer sub-agent, buys
searches per request and completions per AI token from the real local model; the result
is judged by a model through the paid gateway; the escrow is split; the providers claim
and settle to the chain; the books are printed, the ledger verified and its export
audited offline; a Markdown report is left behind.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from paywire.demo._report import Table, balances_table, flows_table, task_tables, write_report
from paywire.demo._stack import FEES_ACCOUNT
from paywire.demo._story import DemoOptions, Outcome, Story
from paywire.errors import PaywireError

MARKER = ".paywire-demo"
"""A file that marks a folder as the demo's own, so the demo never empties anything else."""

REPORT_NAME = "report.md"

__all__ = ["DemoFailed", "DemoOptions", "DemoResult", "Table", "run_demo"]


class DemoFailed(PaywireError):
    code = "demo_failed"


class DemoResult:
    def __init__(
        self, outcome: Outcome, tables: list[Table], checks: list[str], report: Path
    ) -> None:
        self.outcome = outcome
        self.tables = tables
        self.checks = checks
        self.report = report


def prepare_folder(folder: Path) -> None:
    if folder.exists():
        if not (folder / MARKER).exists():
            raise DemoFailed(
                f"{folder} exists and is not a paywire demo folder; pick another --dir"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("This folder belongs to `paywire demo`, which empties it.\n")


def run_demo(
    options: DemoOptions, say: Callable[[str], None], show: Callable[[Table], None]
) -> DemoResult:
    """Run the loop in `options.folder` (emptied first); `say` reports progress, `show`
    prints a table. Raises `DemoFailed` if any check fails."""
    from paywire.ledger.export import audit_export

    prepare_folder(options.folder)
    lines: list[str] = []

    def tell(line: str) -> None:
        lines.append(line)
        say(line)

    story = Story(options, tell)
    outcome = story.run()
    stack = story.stack
    assert stack is not None
    ledger, asset, cast = stack.ledger, stack.asset, story.cast
    names = cast.names()
    try:
        started = time.perf_counter()
        tell("step 6: the books, from the ledger; then the checks")
        checkpoint = ledger.log.checkpoint(cast.operator)
        verified = ledger.log.verify()
        export = options.folder / "ledger-export.jsonl"
        with export.open("wb") as out:
            summary = ledger.log.export(out)
        audited = audit_export(export, operator=cast.operator.address)
        tables: list[Table] = []
        for task_id, books in outcome.books.items():
            tables += task_tables(books, names, outcome.verdicts.get(task_id, ""))
        wallets = [f"{address}:{asset.code}" for address in names]
        wallets.append(FEES_ACCOUNT)
        tables.append(flows_table(ledger, [w for w in wallets if _exists(ledger, w)], names, asset))
        on_chain = {address: stack.desk.token.balance_of(address) for address in names}
        tables.append(balances_table(ledger, names, asset, on_chain))
        for table in tables:
            show(table)
        conserved = all(total == 0 for total in audited.assets.values())
        unbalanced = [
            f"{task_id}: {problem}"
            for task_id, books in outcome.books.items()
            for problem in books.problems()
        ]
        checks = [
            f"checkpoint signed by the operator at tree size {checkpoint.tree_size}",
            f"ledger verified: {verified.entries} log entries replayed, every balance re-derived: "
            + ("OK" if verified.ok else f"FAILED ({verified.first_problem})"),
            f"export audited offline ({summary.entries} entries in {export.name}): "
            + (
                "OK, every debit authorized, value conserved"
                if audited.ok and conserved
                else f"FAILED ({audited.first_problem})"
            ),
            "every task's books add up (the escrow paid out what it posted, the rest refunded)"
            if not unbalanced
            else f"books that do not add up: {'; '.join(unbalanced)}",
            f"{outcome.paid_calls} paid calls; the loop took "
            f"{outcome.timings.get('total', 0):.1f} s",
        ]
        for check in checks:
            tell("  " + check)
        report = options.folder / REPORT_NAME
        write_report(
            report, "paywire demo: the closed loop", lines, tables, checks, outcome.results
        )
        outcome.timings["books"] = time.perf_counter() - started
        if not (verified.ok and audited.ok and conserved) or unbalanced:
            raise DemoFailed("the ledger did not verify: see the report")
        return DemoResult(outcome, tables, checks, report)
    finally:
        ledger.close()


def _exists(ledger: object, account_id: str) -> bool:
    from paywire.ledger import AccountNotFound, Ledger

    assert isinstance(ledger, Ledger)
    try:
        ledger.account(account_id)
    except AccountNotFound:
        return False
    return True
