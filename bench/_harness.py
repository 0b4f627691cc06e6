"""A small timing harness: rates over a fixed wall-clock budget, ratios to a baseline.

Each benchmark measures its baseline in the same run (raw coincurve, raw SQLite, the
unpaid endpoint...), because the machines are shared and noisy: ratios travel, absolute
figures do not.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_SECONDS = float(os.environ.get("PAYWIRE_BENCH_SECONDS", "2.0"))
"""Wall-clock budget per measurement; PAYWIRE_BENCH_SECONDS shortens it for a smoke run."""


@dataclass(frozen=True)
class Rate:
    """One measured rate: `ops` operations in `seconds`."""

    name: str
    ops: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0


def measure(
    name: str,
    call: Callable[[], object],
    *,
    ops_per_call: int = 1,
    seconds: float | None = None,
) -> Rate:
    """Call `call` repeatedly for about `seconds` (after a short warm-up); return the rate."""
    budget = DEFAULT_SECONDS if seconds is None else seconds
    warmup_end = time.perf_counter() + min(0.2, budget / 10)
    while time.perf_counter() < warmup_end:
        call()
    calls = 0
    start = time.perf_counter()
    deadline = start + budget
    now = start
    while now < deadline:
        call()
        calls += 1
        now = time.perf_counter()
    return Rate(name, calls * ops_per_call, now - start)


def machine() -> str:
    """A one-line description of this machine for the report."""
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def report(title: str, rates: list[Rate], *, baseline: str, goal: str = "") -> None:
    """Print a table of rates, each with its ratio to the rate named `baseline`."""
    base = next(rate for rate in rates if rate.name == baseline)
    print(f"\n## {title}")
    if goal:
        print(f"goal: {goal}")
    print(f"{'what':<58} {'per second':>12} {'vs ' + baseline[:18]:>22}")
    for rate in rates:
        ratio = rate.per_s / base.per_s if base.per_s else 0.0
        print(f"{rate.name:<58} {rate.per_s:>12,.0f} {ratio:>21.2f}x")
