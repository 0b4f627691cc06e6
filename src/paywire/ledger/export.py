"""Export the log as JSON Lines, and audit such a file offline.

The file is a header line, then one line per log entry: the entry's exact bytes with the
leaf hash the ledger recorded for it, and each signed checkpoint on its own line right
after the entry that completes its tree. It ends with a checkpoint, so a signature covers
every entry. Change any byte and the audit fails; the recorded leaf hashes (which the
signed roots vouch for) let it name the entry that was changed:

    {"format":"paywire-ledger-export","ledger_id":"...","operator":"0x...","version":1}
    {"entry":{"asset":"USDC","decimals":6,...,"type":"account"},"leaf":"9f2c..."}
    {"entry":{"amount":"10000",...,"type":"transfer"},"leaf":"41ab..."}
    {"ledger_id":"...","root_hash":"...","signature":"0x...",...,"type":"checkpoint"}

Every line is canonical JSON (sorted keys, no spaces, ASCII escapes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from paywire import _json
from paywire.crypto.keys import parse_address
from paywire.errors import PaywireError
from paywire.ledger.audit import Auditor, AuditReport
from paywire.ledger.checkpoint import MAX_CHECKPOINT_LINE_BYTES, Checkpoint
from paywire.ledger.entries import MAX_ENTRY_BYTES, canonical_json
from paywire.ledger.errors import LedgerError
from paywire.ledger.ids import is_ledger_id

if TYPE_CHECKING:
    from paywire.ledger.log import TransparencyLog

EXPORT_FORMAT = "paywire-ledger-export"
EXPORT_VERSION = 1

MAX_LINE_BYTES = max(MAX_ENTRY_BYTES + 100, MAX_CHECKPOINT_LINE_BYTES) + 1
"""No valid line is longer; reading stops there, so a hostile file cannot exhaust memory."""

_CHECKPOINT_PREFIX = b'{"ledger_id":'


@dataclass(frozen=True, slots=True)
class ExportSummary:
    entries: int
    checkpoints: int
    covered_size: int


def export_log(log: TransparencyLog, out: BinaryIO) -> ExportSummary:
    """Write the log up to its latest checkpoint (sign one first with `log.checkpoint`)."""
    with log.reader() as reader:
        stored = reader.checkpoints()
        operator = reader.meta().get("operator")
        if not stored or operator is None:
            raise LedgerError("the log has no signed checkpoint; sign one before exporting")
        size = stored[-1].tree_size
        at_size = {checkpoint.tree_size: checkpoint for checkpoint in stored}
        header = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "ledger_id": log.ledger_id,
            "operator": operator,
        }
        out.write(canonical_json(header) + b"\n")
        leaves = reader.leaf_hashes(0, size)
        for (index, data), leaf in zip(reader.entries(0, size), leaves, strict=True):
            # The entry is canonical JSON already, so this line is canonical too.
            out.write(b'{"entry":' + data + b',"leaf":"' + leaf.hex().encode() + b'"}\n')
            checkpoint = at_size.get(index + 1)
            if checkpoint is not None:
                signed = Checkpoint(
                    log.ledger_id,
                    checkpoint.tree_size,
                    checkpoint.root_hash,
                    checkpoint.timestamp,
                    checkpoint.signature,
                )
                out.write(signed.to_line() + b"\n")
    return ExportSummary(size, len(stored), size)


def audit_export(path: str | Path, *, operator: str | None = None) -> AuditReport:
    """Audit an exported log with no database: see `Auditor` for what is checked.

    Pass the `operator` address you expect (from a source you trust) to check who signed;
    without it the file's own header is believed and the report says whom it trusted.
    """
    expected_operator = parse_address(operator) if operator is not None else None
    try:
        handle = Path(path).open("rb")  # noqa: SIM115 (closed by the with below)
    except OSError as error:
        raise LedgerError(f"cannot read {path}: {error.strerror}") from None
    with handle:
        first = handle.readline(MAX_LINE_BYTES + 1)
        header = _header(first)
        trusted = expected_operator or header["operator"]
        auditor = Auditor(header["ledger_id"], trusted)
        if expected_operator is not None and header["operator"] != expected_operator:
            auditor.problem(None, f"the file names operator {header['operator']}, not {operator}")
        line_number = 1
        while True:
            raw = handle.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            line_number += 1
            auditor.line = line_number
            if not raw.endswith(b"\n"):
                auditor.problem(auditor.size, f"line {line_number} is cut short or too long")
                break
            data = raw[:-1]
            if data.startswith(_CHECKPOINT_PREFIX):
                try:
                    checkpoint = Checkpoint.from_line(data)
                except PaywireError as error:
                    auditor.problem(None, f"line {line_number}: {error}")
                    break
                auditor.add_checkpoint(checkpoint)
            else:
                entry, leaf = _entry_line(data)
                if entry is None:
                    auditor.problem(auditor.size, f"line {line_number} is not an entry line")
                    break
                auditor.add_entry(entry, recorded_leaf=leaf)
            if not auditor.report.ok:
                break
    return auditor.finish(require_checkpoint=True)


def _entry_line(data: bytes) -> tuple[bytes | None, bytes | None]:
    """Split an entry line into the entry's bytes and its recorded leaf hash."""
    try:
        value = _json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(value, dict) or set(value) != {"entry", "leaf"}:
        return None, None
    if canonical_json(value) != data or not isinstance(value["leaf"], str):
        return None, None
    try:
        leaf = bytes.fromhex(value["leaf"])
    except ValueError:
        return None, None
    if len(leaf) != 32 or leaf.hex() != value["leaf"]:
        return None, None
    return canonical_json(value["entry"]), leaf


def _header(first: bytes) -> dict[str, Any]:
    def bad(why: str) -> LedgerError:
        return LedgerError(f"line 1 is not a paywire export header: {why}")

    if not first.endswith(b"\n"):
        raise bad("missing or too long")
    data = first[:-1]
    try:
        value = _json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise bad("not JSON") from None
    if not isinstance(value, dict) or set(value) != {"format", "version", "ledger_id", "operator"}:
        raise bad("wrong fields")
    if canonical_json(value) != data:
        raise bad("not in canonical form")
    if value["format"] != EXPORT_FORMAT or value["version"] != EXPORT_VERSION:
        raise bad(f"format {value['format']!r} version {value['version']!r} is not known")
    if not isinstance(value["ledger_id"], str) or not is_ledger_id(value["ledger_id"]):
        raise bad("malformed ledger id")
    if not isinstance(value["operator"], str):
        raise bad("malformed operator")
    try:
        if parse_address(value["operator"]) != value["operator"]:
            raise bad("operator address is not checksummed")
    except PaywireError:
        raise bad("malformed operator address") from None
    return value
