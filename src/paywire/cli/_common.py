"""What every CLI command shares: consoles, the home folder, passphrases."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console

from paywire.errors import InvalidInput

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

PASSPHRASE_ENV = "PAYWIRE_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)
"""Environment variable read for a key's passphrase when not typed (for scripts and CI)."""

MAX_PASSPHRASE_FILE_BYTES = 4096
"""A passphrase file larger than this is a mistake (a key file, a log), not a passphrase."""

_home: Path | None = None


def set_home(home: str | None) -> None:
    """Remember the `--home` option for this invocation."""
    global _home
    _home = Path(home).expanduser() if home else None


def home_dir() -> Path:
    """paywire's folder: `--home`, else $PAYWIRE_HOME, else ~/.paywire."""
    if _home is not None:
        return _home
    env = os.environ.get("PAYWIRE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".paywire"


def print_error(message: str) -> None:
    """One line on stderr, the way every command reports an operating error. The message
    is shown as is: brackets in it (``[ledger]``, a path) are text, not console markup."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, emoji=False)


def read_passphrase(*, confirm: bool, passphrase_file: Path | None = None) -> str:
    """A passphrase from a file, $PAYWIRE_PASSPHRASE, or the terminal, in that order."""
    if passphrase_file is not None:
        try:
            data = passphrase_file.read_bytes()
        except OSError as error:
            raise InvalidInput(
                f"cannot read passphrase file {passphrase_file}: {error.strerror}"
            ) from None
        if len(data) > MAX_PASSPHRASE_FILE_BYTES:
            raise InvalidInput(f"passphrase file {passphrase_file} is larger than 4 KiB")
        try:
            return data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise InvalidInput(f"passphrase file {passphrase_file} is not UTF-8 text") from None
    env = os.environ.get(PASSPHRASE_ENV)
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise InvalidInput(
            f"a passphrase is needed: set {PASSPHRASE_ENV}, pass --passphrase-file, "
            "or run in a terminal"
        )
    import getpass

    first = getpass.getpass("passphrase: ")
    if confirm and getpass.getpass("again: ") != first:
        raise InvalidInput("the two passphrases differ")
    return first
