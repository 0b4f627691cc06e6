"""Acceptance checks: what decides whether a delivered task result is accepted.

    check = check_from_json({"kind": "schema", "schema": {"type": "object"}})
    given = CheckInput.for_result(task_id, principal, description, result_text)
    try:
        verdict = await check.decide(given)     # Verdict(accepted=..., reason=..., ...)
    except CheckUndecided:
        ...                                      # leave the task open, move no money

Four kinds, each with a strict JSON form (``{"kind": ..., ...}``, `check_from_json`):

- ``approval`` (`ApprovalCheck`): the principal's EIP-712-signed decision (`SignedApproval`,
  `sign_approval`) on this task and this result's digest;
- ``schema`` (`SchemaCheck`): the result is JSON valid against a JSON Schema (2020-12),
  nothing fetched;
- ``command`` (`CommandCheck`): a program reading the result on stdin exits 0 in time;
- ``judge`` (`JudgeCheck`): a model asked through the paid LLM gateway answers YES.

Three outcomes, kept apart: a `Verdict` (accepted or not: the caller settles the task); a
`CheckUndecided` (the check could not decide: the caller leaves the task open, moves no
money, and may try again); an `InvalidTask` (the input can never decide: an approval signed
by someone else, for another task or result, or malformed; a check that cannot be built).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import ClassVar, Protocol

from paywire._json import loads as load_json
from paywire.ledger.model import JsonValue
from paywire.tasks._checks_base import (
    MAX_CHECK_JSON_DEPTH,
    MAX_CHECK_KIND_CHARS,
    MAX_CHECKED_DESCRIPTION_CHARS,
    MAX_DETAIL_JSON_BYTES,
    MAX_REASON_CHARS,
    MAX_RESULT_BYTES,
    CheckInput,
    CheckUndecided,
    Verdict,
    check_json_text,
    expect_fields,
    result_digest,
    show,
)
from paywire.tasks._checks_command import (
    DEFAULT_COMMAND_TIMEOUT_S,
    MAX_COMMAND_TIMEOUT_S,
    CommandCheck,
)
from paywire.tasks._checks_judge import (
    DEFAULT_JUDGE_MAX_TOKENS,
    JUDGE_SYSTEM_PROMPT,
    MAX_JUDGE_MAX_TOKENS,
    JudgeCheck,
    JudgeLLM,
    judge_messages,
)
from paywire.tasks._checks_schema import SchemaCheck
from paywire.tasks._checks_signed import (
    APPROVAL_DOMAIN,
    APPROVAL_MESSAGE,
    InvalidApproval,
    SignedApproval,
    sign_approval,
)
from paywire.tasks.model import MAX_CHECK_JSON_BYTES, InvalidTask

MAX_CHECK_TEXT_BYTES = 4 * MAX_CHECK_JSON_BYTES
"""A check given as JSON text, before parsing: room for indentation and spaces; the
compact form must still fit `MAX_CHECK_JSON_BYTES`."""


class AcceptanceCheck(Protocol):
    """What decides on a delivered result: a `kind`, a JSON form, and `decide`."""

    @property
    def kind(self) -> str:
        """The check's kind, the ``"kind"`` of its JSON form."""
        ...

    def to_json(self) -> dict[str, JsonValue]:
        """The check's JSON form, which `check_from_json` reads back."""
        ...

    async def decide(self, given: CheckInput) -> Verdict:
        """The verdict on `given`'s result; `CheckUndecided` if it cannot decide now,
        `InvalidTask` if what it was given can never decide."""
        ...


@dataclass(frozen=True, slots=True)
class ApprovalCheck:
    """Accepts or rejects as the principal decided, by an EIP-712 signature over
    ``TaskApproval(taskId, resultDigest, accept)`` (`SignedApproval`, given in
    `CheckInput.approval`)."""

    kind: ClassVar[str] = "approval"

    def to_json(self) -> dict[str, JsonValue]:
        """``{"kind": "approval"}``."""
        return {"kind": self.kind}

    @classmethod
    def from_json(cls, data: object) -> ApprovalCheck:
        """Read `to_json`'s form strictly (`InvalidTask`)."""
        expect_fields(data, "an approval check", required=("kind",))
        return cls()

    async def decide(self, given: CheckInput) -> Verdict:
        """The principal's decision. `CheckUndecided` while there is no approval;
        `InvalidApproval` (an `InvalidTask`) for one that is for another task or result,
        signed by someone other than the principal, malformed or malleable."""
        approval = given.approval
        if approval is None:
            raise CheckUndecided(
                f"no approval yet: the principal {given.principal} decides by signing "
                f"TaskApproval for task {given.task_id!r} and result {given.result_digest}"
            )
        if approval.task_id != given.task_id:
            raise InvalidApproval(
                f"the approval is for task {approval.task_id!r}, not for {given.task_id!r}"
            )
        if approval.result_digest != given.result_digest:
            raise InvalidApproval(
                f"the approval is for the result {approval.result_digest}, not for the one "
                f"delivered ({given.result_digest}): the result changed after it was signed, "
                "or the approval is for another delivery"
            )
        signer = approval.signer()
        if signer != given.principal:
            raise InvalidApproval(
                f"the approval is signed by {signer}, not by the task's principal "
                f"{given.principal}: only the principal decides"
            )
        reason = f"the principal {'accepted' if approval.accept else 'rejected'} the result"
        detail: dict[str, JsonValue] = {
            "signer": signer,
            "signature": "0x" + approval.signature.hex(),
        }
        return Verdict(approval.accept, self.kind, reason, detail=detail)


# Typed as readers of `AcceptanceCheck`: mypy proves that every kind is one.
_READERS: dict[str, Callable[[object], AcceptanceCheck]] = {
    ApprovalCheck.kind: ApprovalCheck.from_json,
    SchemaCheck.kind: SchemaCheck.from_json,
    CommandCheck.kind: CommandCheck.from_json,
    JudgeCheck.kind: JudgeCheck.from_json,
}

CHECK_KINDS = frozenset(_READERS)
"""Every kind `check_from_json` knows."""

REMOTE_CHECK_KINDS = frozenset(CHECK_KINDS - {CommandCheck.kind})
"""The kinds safe to take from a principal the operator does not trust: a ``command``
check runs a program of the principal's choosing with the operator's rights."""


def check_from_json(data: object, *, kinds: Collection[str] = CHECK_KINDS) -> AcceptanceCheck:
    """The check of a JSON form (an object, or its text), read strictly: at most
    `MAX_CHECK_JSON_BYTES` as compact JSON, a known kind among `kinds`, exactly that
    kind's fields. Raises `InvalidTask` saying what to fix."""
    if isinstance(data, str | bytes):
        if len(data) > MAX_CHECK_TEXT_BYTES:
            raise InvalidTask(
                f"a check is at most {MAX_CHECK_JSON_BYTES} bytes of compact JSON "
                f"({MAX_CHECK_TEXT_BYTES} as text), got {len(data)}"
            )
        try:
            data = load_json(data)
        except ValueError as error:
            raise InvalidTask(f"the check is not JSON: {str(error)[:200]}") from None
    if not isinstance(data, dict):
        raise InvalidTask(f'a check is a JSON object with a "kind", got {show(data)}')
    check_json_text(data, "the check")
    kind = data.get("kind")
    known = sorted(name for name in CHECK_KINDS if name in kinds)
    if not isinstance(kind, str) or kind not in known:
        said = "has no kind" if kind is None else f"has the kind {show(kind)}"
        extra = " (not taken here)" if isinstance(kind, str) and kind in CHECK_KINDS else ""
        raise InvalidTask(f"the check {said}{extra}; the kinds are {', '.join(known)}")
    return _READERS[kind](data)


__all__ = [
    "APPROVAL_DOMAIN",
    "APPROVAL_MESSAGE",
    "CHECK_KINDS",
    "DEFAULT_COMMAND_TIMEOUT_S",
    "DEFAULT_JUDGE_MAX_TOKENS",
    "JUDGE_SYSTEM_PROMPT",
    "MAX_CHECKED_DESCRIPTION_CHARS",
    "MAX_CHECK_JSON_BYTES",
    "MAX_CHECK_JSON_DEPTH",
    "MAX_CHECK_KIND_CHARS",
    "MAX_CHECK_TEXT_BYTES",
    "MAX_COMMAND_TIMEOUT_S",
    "MAX_DETAIL_JSON_BYTES",
    "MAX_JUDGE_MAX_TOKENS",
    "MAX_REASON_CHARS",
    "MAX_RESULT_BYTES",
    "REMOTE_CHECK_KINDS",
    "AcceptanceCheck",
    "ApprovalCheck",
    "CheckInput",
    "CheckUndecided",
    "CommandCheck",
    "InvalidApproval",
    "JudgeCheck",
    "JudgeLLM",
    "SchemaCheck",
    "SignedApproval",
    "Verdict",
    "check_from_json",
    "judge_messages",
    "result_digest",
    "sign_approval",
]
