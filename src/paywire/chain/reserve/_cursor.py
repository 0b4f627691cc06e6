"""Where the deposit watcher remembers the next block to scan: in memory, or in a small
JSON file."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Protocol

# ----- the watcher's cursor -----------------------------------------------------------------


class CursorStore(Protocol):
    """Where the deposit watcher remembers the next block to scan.

    A cursor that lags is harmless (rescanned deposits are credited once); one that runs
    ahead would skip deposits, so a store must never return more than it was given.
    """

    def load(self, key: str) -> int | None: ...

    def save(self, key: str, next_block: int) -> None: ...


class MemoryCursor:
    """A cursor kept in memory (the process's lifetime; a restart rescans from the start)."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}
        self._lock = threading.Lock()

    def load(self, key: str) -> int | None:
        with self._lock:
            return self._values.get(key)

    def save(self, key: str, next_block: int) -> None:
        with self._lock:
            self._values[key] = next_block


class FileCursor:
    """A cursor kept in a small JSON file (written atomically), e.g. next to the ledger."""

    MAX_FILE_BYTES = 1024 * 1024
    """A cursor file past this is not ours; it is ignored (the scan starts over, safely)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def load(self, key: str) -> int | None:
        with self._lock:
            value = self._read().get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def save(self, key: str, next_block: int) -> None:
        with self._lock:
            values = self._read()
            values[key] = next_block
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as file:
                    json.dump(values, file, sort_keys=True)
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise

    def _read(self) -> dict[str, object]:
        try:
            if self.path.stat().st_size > self.MAX_FILE_BYTES:
                return {}
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}
