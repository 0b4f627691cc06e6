"""Run every benchmark module in this folder (``python -m bench [name ...]``)."""

from __future__ import annotations

import datetime
import importlib
import sys
from pathlib import Path

from bench._harness import machine


def main(argv: list[str]) -> None:
    names = sorted(path.stem for path in Path(__file__).parent.glob("bench_*.py"))
    wanted = [name for name in names if not argv or any(arg in name for arg in argv)]
    print(f"# paywire benchmarks, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    for name in wanted:
        module = importlib.import_module(f"bench.{name}")
        module.main()


if __name__ == "__main__":
    main(sys.argv[1:])
