"""Running the `paywire` command in process, as the CLI tests do: its output, and the
checks every run shares (no traceback; a refusal is one `error:` line that never shows
the passphrase)."""

from __future__ import annotations

import os

import pytest

from paywire.cli import run


def cli(capsys: pytest.CaptureFixture[str], *args: str, expect: int = 0) -> str:
    """Run `paywire args`; its stdout and stderr, once the exit code is `expect`."""
    code = run(list(args))
    out, err = capsys.readouterr()
    assert code == expect, f"paywire {' '.join(args)}: {out}{err}"
    assert "Traceback" not in out + err
    return out + err


def one_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run a command that must fail: exit 1, one line on stderr, nothing else."""
    code = run(list(args))
    out, err = capsys.readouterr()
    assert code == 1, f"paywire {' '.join(args)}: {out}{err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err
    secret = os.environ.get("PAYWIRE_PASSPHRASE")
    assert not secret or secret not in out + err
    return lines[0]
