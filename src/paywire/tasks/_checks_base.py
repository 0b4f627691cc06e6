"""What every acceptance check shares: its input, its verdict, "undecided", the limits,
and bounded JSON helpers. See `paywire.tasks.checks`."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from paywire.crypto.keys import InvalidAddress, parse_address
from paywire.errors import PaywireError
from paywire.ledger.model import MAX_METADATA_BYTES, MAX_METADATA_INT, JsonValue
from paywire.tasks._checks_signed import SignedApproval, check_digest
from paywire.tasks.model import MAX_CHECK_JSON_BYTES, InvalidTask, TaskError, check_task_id

MAX_RESULT_BYTES = 1024 * 1024
"""A result checked in process is text (UTF-8) of at most 1 MiB; bigger deliverables are
delivered by reference (a URL and its digest), and a check looks at the reference."""

MAX_CHECKED_DESCRIPTION_CHARS = MAX_METADATA_BYTES
"""A task's description lives in the hold's metadata, which holds no more than this
(whatever the bound on new descriptions, an older task's is checked too)."""

MAX_REASON_CHARS = 300
"""A verdict's reason is a line for humans; longer ones are cut (the detail says more)."""

MAX_DETAIL_TEXT_CHARS = 1000
"""One text in a verdict's detail (an output tail, an error message), cut past this."""

MAX_DETAIL_JSON_BYTES = 32 * 1024
"""A verdict's detail (exit code, output tails, the judge's answer) as ASCII JSON: two
texts of `MAX_DETAIL_TEXT_CHARS` at 12 bytes a character at worst (an emoji is two
``\\u`` escapes), and room for the rest."""

MAX_CHECK_JSON_DEPTH = 32
"""Nesting of a check's JSON: a schema two levels per data level nests a 15-level
document; deeper is a mistake or an attack on the validator's recursion."""

MAX_CHECK_KIND_CHARS = 32
"""A check's kind is a short name (``approval``, ``schema``...)."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class CheckUndecided(TaskError):
    """The check could not decide (the judge was unreachable or gave no verdict, the
    command was not found, the principal has not signed yet): leave the task open, move no
    money, and try again later. Not a rejection: a rejection is ``Verdict(accepted=False)``.

    `cost_atomic` is what trying cost anyway (a judge's answer that held no verdict is
    still charged), in the atomic units of the asset that paid for it."""

    code = "check_undecided"

    def __init__(self, message: str, *, cost_atomic: int = 0) -> None:
        super().__init__(message)
        self.cost_atomic = cost_atomic


def result_digest(text: str) -> str:
    """The digest a delivered result is known by: SHA-256 of its UTF-8 bytes, lower-case
    hex (64 digits, no ``0x``)."""
    return hashlib.sha256(_utf8(text, "the result")).hexdigest()


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidTask(f"{what} holds characters that are not valid UTF-8") from None


@dataclass(frozen=True, slots=True)
class CheckInput:
    """What a check looks at: the task, its principal, the delivered result (text and
    digest) and, for an approval check, the principal's signed decision.

    Build it with `for_result`, which computes the digest; the constructor checks that a
    given digest is the result's. `principal` is normalised to its checksummed form."""

    task_id: str
    principal: str
    description: str
    result: str
    result_digest: str
    approval: SignedApproval | None = None

    def __post_init__(self) -> None:
        try:
            check_task_id(self.task_id)
        except PaywireError as error:
            raise InvalidTask(error.message) from None
        try:
            object.__setattr__(self, "principal", parse_address(self.principal))
        except InvalidAddress as error:
            raise InvalidTask(f"the principal: {error.message}") from None
        if (
            not isinstance(self.description, str)
            or len(self.description) > MAX_CHECKED_DESCRIPTION_CHARS
        ):
            raise InvalidTask(
                f"the description is text of at most {MAX_CHECKED_DESCRIPTION_CHARS} characters"
            )
        if not isinstance(self.result, str):
            raise InvalidTask(f"the result is text, got {type(self.result).__name__}")
        if len(self.result) > MAX_RESULT_BYTES:  # before encoding: no 4x copy of a huge text
            raise InvalidTask(_too_large_result(len(self.result)))
        raw = _utf8(self.result, "the result")
        if len(raw) > MAX_RESULT_BYTES:
            raise InvalidTask(_too_large_result(len(raw)))
        check_digest(self.result_digest, "result_digest")
        if hashlib.sha256(raw).hexdigest() != self.result_digest:
            raise InvalidTask(
                "result_digest is not the SHA-256 of the result's UTF-8 bytes (a result "
                "altered in transit, or the digest of another one); use result_digest(text)"
            )
        if self.approval is not None and not isinstance(self.approval, SignedApproval):
            raise InvalidTask(f"approval is a SignedApproval, got {type(self.approval).__name__}")

    @classmethod
    def for_result(
        cls,
        task_id: str,
        principal: str,
        description: str,
        result: str,
        approval: SignedApproval | None = None,
    ) -> CheckInput:
        """The input for `result`, its digest computed."""
        if not isinstance(result, str):
            raise InvalidTask(f"the result is text, got {type(result).__name__}")
        if len(result) > MAX_RESULT_BYTES:
            raise InvalidTask(_too_large_result(len(result)))
        return cls(task_id, principal, description, result, result_digest(result), approval)


def _too_large_result(size: int) -> str:
    return (
        f"the result is {size} bytes or more; a result checked in process is at most "
        f"{MAX_RESULT_BYTES} bytes: deliver a bigger one by reference (a URL and its digest)"
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    """A check's decision on a delivered result: `accepted` or not, by which kind of
    `check`, a short `reason` for humans (cut to `MAX_REASON_CHARS`), what deciding cost
    (`cost_atomic`, such as a judge's model call) and a bounded JSON `detail`."""

    accepted: bool
    check: str
    reason: str
    cost_atomic: int = 0
    detail: dict[str, JsonValue] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.accepted, bool):
            raise InvalidTask(f"accepted is true or false, got {show(self.accepted)}")
        if (
            not isinstance(self.check, str)
            or not 0 < len(self.check) <= MAX_CHECK_KIND_CHARS
            or not self.check.isidentifier()
        ):
            raise InvalidTask(f"check is a kind name, got {show(self.check)}")
        if not isinstance(self.reason, str):
            raise InvalidTask(f"reason is text, got {show(self.reason)}")
        object.__setattr__(self, "reason", clip(self.reason, MAX_REASON_CHARS))
        if (
            not isinstance(self.cost_atomic, int)
            or isinstance(self.cost_atomic, bool)
            or not 0 <= self.cost_atomic < 2**63
        ):
            raise InvalidTask(
                f"cost_atomic is a whole number of atomic units, got {show(self.cost_atomic)}"
            )
        if not isinstance(self.detail, dict):
            raise InvalidTask(f"detail is a JSON object, got {show(self.detail)}")
        text = json_text(self.detail, "the verdict's detail", MAX_DETAIL_JSON_BYTES, 8)
        object.__setattr__(self, "detail", json.loads(text))  # a copy nobody else holds

    def to_json(self) -> dict[str, JsonValue]:
        """The verdict as a JSON object (to record with the task's settlement)."""
        return {
            "accepted": self.accepted,
            "check": self.check,
            "reason": self.reason,
            "cost_atomic": self.cost_atomic,
            "detail": json.loads(json.dumps(self.detail)),
        }

    @classmethod
    def from_json(cls, data: object) -> Verdict:
        """Read a verdict back from `to_json`'s form, strictly (`InvalidTask`)."""
        fields = expect_fields(
            data,
            "a verdict",
            required=("accepted", "check", "reason"),
            optional=("cost_atomic", "detail"),
        )
        detail = fields.get("detail", {})
        if not isinstance(detail, dict):
            raise InvalidTask(f"a verdict's detail is a JSON object, got {show(detail)}")
        return cls(
            accepted=fields["accepted"],  # type: ignore[arg-type]  # checked on construction
            check=fields["check"],  # type: ignore[arg-type]
            reason=fields["reason"],  # type: ignore[arg-type]
            cost_atomic=fields.get("cost_atomic", 0),  # type: ignore[arg-type]
            detail=detail,
        )


# --- helpers for the checks -------------------------------------------------------------------


def show(value: object) -> str:
    """A short rendering of a value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({type(value).__name__})"


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters (an ellipsis marks a cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def printable(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, control characters (other than newline and tab)
    replaced, so that it shows safely in JSON and logs."""
    return _CONTROL.sub("\ufffd", clip(text, limit))


def printable_tail(raw: bytes, limit: int) -> str:
    """The last `limit` characters of output bytes, decoded leniently, made `printable`."""
    return printable(raw[-4 * limit :].decode("utf-8", errors="replace")[-limit:], limit)


def json_text(value: object, what: str, max_bytes: int, max_depth: int) -> str:
    """Compact JSON text of `value`, which must be JSON as ledger metadata holds it (dicts
    with text keys, lists, text, 64-bit integers, booleans, null: no fractions) at most
    `max_depth` deep and `max_bytes` long (as ASCII JSON, the ledger's measure).

    Walked without recursion and with a running lower bound of its size (so it refuses
    nothing that fits, and `json.dumps` has the last word), so a hostile value (deep,
    huge, cyclic) is refused before `json.dumps` sees it."""
    stack: list[tuple[object, int]] = [(value, 1)]
    estimate = 0  # never more than the JSON text's length
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise InvalidTask(f"{what} nests deeper than {max_depth} levels")
        if isinstance(item, dict):
            estimate += 1 + len(item)  # braces and commas
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise InvalidTask(f"{what} has a key that is not text: {show(key)}")
                estimate += len(key) + 3  # quotes and colon
                stack.append((inner, depth + 1))
        elif isinstance(item, list | tuple):
            estimate += 1 + len(item)  # brackets and commas
            stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            estimate += len(item) + 2
        elif isinstance(item, float):
            raise InvalidTask(
                f"{what} holds the number {clip(repr(item), 40)}; it is kept in ledger "
                "metadata, which holds whole numbers only (money is integers): scale it to a "
                "whole number, or write it as text"
            )
        elif isinstance(item, int) and not isinstance(item, bool):
            if abs(item) > MAX_METADATA_INT:
                raise InvalidTask(f"{what} holds an integer past 64 bits; write it as text")
            estimate += 1
        elif item is None or isinstance(item, bool):
            estimate += 1
        else:
            raise InvalidTask(f"{what} holds {show(item)}, which is not a JSON value")
        if estimate > max_bytes:
            raise InvalidTask(f"{what} is larger than {max_bytes} bytes as JSON")
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (ValueError, UnicodeEncodeError) as error:  # a huge int, a lone surrogate
        raise InvalidTask(f"{what} is not JSON: {error}") from None
    if len(text) > max_bytes:  # ASCII (as the ledger writes metadata): characters are bytes
        raise InvalidTask(f"{what} is larger than {max_bytes} bytes as JSON")
    return text


def check_json_text(data: dict[str, JsonValue], what: str) -> str:
    """A check's JSON form as text, refused (`InvalidTask`) past `MAX_CHECK_JSON_BYTES` or
    `MAX_CHECK_JSON_DEPTH`: every check is built within what `check_from_json` reads."""
    return json_text(data, what, MAX_CHECK_JSON_BYTES, MAX_CHECK_JSON_DEPTH)


def expect_fields(
    data: object, what: str, *, required: Collection[str], optional: Collection[str] = ()
) -> Mapping[str, object]:
    """A JSON object with the `required` fields and perhaps the `optional` ones; anything
    else is refused (`InvalidTask`), naming the fields that would be right."""
    if not isinstance(data, dict):
        raise InvalidTask(f"{what} is a JSON object, got {show(data)}")
    known = (*required, *optional)
    unknown = sorted(show(key) for key in data if key not in known)
    if unknown:
        raise InvalidTask(
            f"{what} has no field {', '.join(unknown[:5])}; its fields are {', '.join(known)}"
        )
    missing = [key for key in required if key not in data]
    if missing:
        raise InvalidTask(f"{what} needs the field(s) {', '.join(missing)}")
    return data
