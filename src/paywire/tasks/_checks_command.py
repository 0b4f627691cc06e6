"""`CommandCheck`: a program decides, by its exit code, reading the result on stdin.

The command is the principal's (or the operator's) and is trusted as the operator trusts
them: it runs with the operator's rights. Only the result is hostile data, and it reaches
the command on stdin only, never through a shell or its arguments. A server that takes
checks from principals it does not trust should not accept this kind (see
`paywire.tasks.checks.REMOTE_CHECK_KINDS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from typing import ClassVar

from paywire.ledger.model import JsonValue
from paywire.tasks._checks_base import (
    MAX_DETAIL_TEXT_CHARS,
    CheckInput,
    CheckUndecided,
    Verdict,
    check_json_text,
    expect_fields,
    printable_tail,
    show,
)
from paywire.tasks.model import InvalidTask

DEFAULT_COMMAND_TIMEOUT_S = 10
"""A test suite or a linter over one result; a check that needs longer says so."""

MAX_COMMAND_TIMEOUT_S = 300
"""A check holds a task open while it runs: five minutes at most."""

MAX_ARGV_ITEMS = 64
"""A program and its options, not a list of inputs (those go on stdin)."""

MAX_ARG_CHARS = 1024
"""One argument (a path, an option, a short inline script); the whole check must also fit
`MAX_CHECK_JSON_BYTES`."""

MAX_OUTPUT_TAIL_BYTES = 8 * 1024
"""What is kept of each of stdout and stderr: the last bytes (the rest is read and
dropped, so that a command writing gigabytes neither blocks nor fills memory)."""

READ_CHUNK_BYTES = 64 * 1024
"""One read from a command's output pipe."""

COMMAND_PATH = "/usr/local/bin:/usr/bin:/bin"
"""Where a command named without a ``/`` is looked for, and the PATH it runs with."""


class _Tail:
    """The last `MAX_OUTPUT_TAIL_BYTES` of a stream and how many bytes it carried."""

    def __init__(self) -> None:
        self.kept = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.kept += chunk
        del self.kept[:-MAX_OUTPUT_TAIL_BYTES]

    def text(self) -> str:
        return printable_tail(bytes(self.kept), MAX_DETAIL_TEXT_CHARS)


async def _read(stream: asyncio.StreamReader | None, tail: _Tail) -> None:
    assert stream is not None
    while chunk := await stream.read(READ_CHUNK_BYTES):
        tail.add(chunk)


async def _feed(stream: asyncio.StreamWriter | None, data: bytes) -> None:
    assert stream is not None
    try:
        stream.write(data)
        await stream.drain()
        stream.close()
        await stream.wait_closed()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command did not read all of stdin: its exit code still decides


def _kill_group(pid: int) -> None:
    """Kill the command and everything it started (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _executable(name: str) -> str:
    """The program to run: `name` as a path (relative to the caller's working folder) or
    found on `COMMAND_PATH`; `CheckUndecided` if there is none to run."""
    if "/" in name:
        path = os.path.abspath(name)
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise CheckUndecided(f"the command {path!r} is not an executable file")
        return path
    found = shutil.which(name, path=COMMAND_PATH)
    if found is None:
        raise CheckUndecided(
            f"the command {name!r} is not found on {COMMAND_PATH}; give its absolute path"
        )
    return found


@dataclass(frozen=True, slots=True)
class CommandCheck:
    """Accepts a result when ``argv`` (run directly, no shell), given the result on stdin,
    exits 0 within `timeout_s` seconds.

    It runs in a new temporary folder (its working folder, HOME and TMPDIR, removed
    afterwards), with a minimal environment (``PATH``, ``LANG``, and
    ``PAYWIRE_TASK_ID``/``PAYWIRE_RESULT_SHA256``), in its own process group, which is
    killed at the timeout (and once the command exits, so nothing it started lingers).
    A command that leaves a process holding its output open runs into the timeout."""

    kind: ClassVar[str] = "command"

    argv: tuple[str, ...]
    timeout_s: int = DEFAULT_COMMAND_TIMEOUT_S

    def __post_init__(self) -> None:
        argv = self.argv
        if not isinstance(argv, list | tuple) or not 0 < len(argv) <= MAX_ARGV_ITEMS:
            raise InvalidTask(f"argv is a list of 1 to {MAX_ARGV_ITEMS} texts, got {show(argv)}")
        for index, item in enumerate(argv):
            if not isinstance(item, str) or len(item) > MAX_ARG_CHARS or "\x00" in item:
                raise InvalidTask(
                    f"argv[{index}] is text of at most {MAX_ARG_CHARS} characters without "
                    f"NUL, got {show(item)}"
                )
        if not argv[0]:
            raise InvalidTask("argv[0] names the program to run; it is empty")
        object.__setattr__(self, "argv", tuple(argv))
        timeout = self.timeout_s
        if (
            not isinstance(timeout, int)
            or isinstance(timeout, bool)
            or not 0 < timeout <= MAX_COMMAND_TIMEOUT_S
        ):
            raise InvalidTask(
                f"timeout_s is whole seconds from 1 to {MAX_COMMAND_TIMEOUT_S}, got {show(timeout)}"
            )
        check_json_text(self.to_json(), "the command check")

    def to_json(self) -> dict[str, JsonValue]:
        """``{"kind": "command", "argv": [...], "timeout_s": 10}``."""
        return {"kind": self.kind, "argv": list(self.argv), "timeout_s": self.timeout_s}

    @classmethod
    def from_json(cls, data: object) -> CommandCheck:
        """Read `to_json`'s form strictly (`InvalidTask`); timeout_s may be left out."""
        fields = expect_fields(
            data, "a command check", required=("kind", "argv"), optional=("timeout_s",)
        )
        argv = fields["argv"]
        if not isinstance(argv, list):
            raise InvalidTask(f"argv is a list of texts, got {show(argv)}")
        timeout = fields.get("timeout_s", DEFAULT_COMMAND_TIMEOUT_S)
        return cls(tuple(argv), timeout)  # type: ignore[arg-type]  # checked on construction

    async def decide(self, given: CheckInput) -> Verdict:
        """Run the command on the result; exit 0 accepts, anything else (or the timeout)
        rejects. `CheckUndecided` if the program cannot be found or started."""
        program = _executable(self.argv[0])
        with tempfile.TemporaryDirectory(prefix="paywire-check-") as folder:
            env = {
                "PATH": COMMAND_PATH,
                "HOME": folder,
                "TMPDIR": folder,
                "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8",
                "PAYWIRE_TASK_ID": given.task_id,
                "PAYWIRE_RESULT_SHA256": given.result_digest,
            }
            argv = (program, *self.argv[1:])
            code, stdout, stderr = await self._run(argv, given.result.encode(), folder, env)
        detail: dict[str, JsonValue] = {
            "exit_code": code,
            "timed_out": code is None,
            "stdout_bytes": stdout.total,
            "stderr_bytes": stderr.total,
            "stdout_tail": stdout.text(),
            "stderr_tail": stderr.text(),
        }
        if code == 0:
            return Verdict(True, self.kind, "the command exited with 0", detail=detail)
        if code is None:
            reason = f"the command ran past its {self.timeout_s} s and was killed"
        elif code < 0:
            reason = f"the command was killed by signal {-code}"
        else:
            reason = f"the command exited with {code}"
        last_line = stderr.text().strip().rsplit("\n", 1)[-1]
        return Verdict(
            False, self.kind, reason + (f": {last_line}" if last_line else ""), detail=detail
        )

    async def _run(
        self, argv: tuple[str, ...], data: bytes, folder: str, env: dict[str, str]
    ) -> tuple[int | None, _Tail, _Tail]:
        """(exit code or None at the timeout, stdout tail, stderr tail)."""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=folder,
                env=env,
                start_new_session=True,
            )
        except OSError as error:
            raise CheckUndecided(
                f"the command {argv[0]!r} could not start: {error.strerror or error}"
            ) from None
        stdout, stderr = _Tail(), _Tail()
        work = [
            asyncio.ensure_future(_feed(process.stdin, data)),
            asyncio.ensure_future(_read(process.stdout, stdout)),
            asyncio.ensure_future(_read(process.stderr, stderr)),
        ]
        code: int | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                await asyncio.gather(*work)
                code = await process.wait()
        except TimeoutError:
            code = None
        finally:  # also when the caller is cancelled: nothing is left running
            _kill_group(process.pid)
            for task in work:
                task.cancel()
            await asyncio.gather(*work, return_exceptions=True)
            await process.wait()
        return code, stdout, stderr
