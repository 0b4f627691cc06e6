"""`SignedApproval`: a principal's EIP-712-signed decision on one delivered result.

The principal signs ``TaskApproval(string taskId,bytes32 resultDigest,bool accept)`` in the
domain ``{name: "paywire tasks", version: "1"}``: no chainId (a task is settled on the
paywire ledger, whatever network its money came from), no verifyingContract (no contract
checks it, the operator does), no salt (the name separates it from every other paywire
message). The signature binds the decision to one task and one result: it cannot accept
another task, or a result swapped after the principal read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from paywire._json import loads as load_json
from paywire.crypto.eip712 import Eip712Domain, StructType, TypedMessage
from paywire.crypto.keys import (
    SIGNATURE_BYTES,
    InvalidSignature,
    PrivateKey,
    parse_signature,
    recover_address,
)
from paywire.errors import PaywireError
from paywire.ledger.model import JsonValue
from paywire.tasks.model import InvalidTask, check_task_id

APPROVAL_DOMAIN = Eip712Domain(name="paywire tasks", version="1")
"""The EIP-712 domain task approvals are signed in."""

APPROVAL_TYPES = {
    "TaskApproval": [
        {"name": "taskId", "type": "string"},
        {"name": "resultDigest", "type": "bytes32"},
        {"name": "accept", "type": "bool"},
    ]
}

APPROVAL_MESSAGE = TypedMessage(APPROVAL_DOMAIN, StructType("TaskApproval", APPROVAL_TYPES))
"""The `TypedMessage` an approval is signed as (for wallets: `SignedApproval.typed_data`)."""

MAX_APPROVAL_JSON_BYTES = 1024
"""An approval's JSON: a task id (80), a digest (64), a flag and a signature (132)."""

_APPROVAL_FIELDS = ("task_id", "result_digest", "accept", "signature")
_DIGEST = re.compile(r"[0-9a-f]{64}")


class InvalidApproval(InvalidTask):
    """An approval that does not decide this task's result: malformed, malleable, signed by
    someone other than the principal, or for another task or result. A refusal, not a
    verdict: nothing was decided."""

    code = "invalid_approval"


def check_digest(value: object, what: str) -> str:
    """A result digest: SHA-256 as 64 lower-case hex digits (no ``0x``)."""
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        shown = repr(value)[:80]
        raise InvalidTask(f"{what} is a SHA-256 as 64 lower-case hex digits, got {shown}")
    return value


@dataclass(frozen=True, slots=True)
class SignedApproval:
    """The principal's decision (`accept` or not) on the result with `result_digest` of
    task `task_id`, and the 65-byte signature (``r || s || v``) over it.

    Building one checks the shapes only; `signer` recovers who signed (and refuses a
    malformed or high-s signature); `ApprovalCheck` compares it with the principal."""

    task_id: str
    result_digest: str
    accept: bool
    signature: bytes

    def __post_init__(self) -> None:
        try:
            check_task_id(self.task_id)
        except PaywireError as error:
            raise InvalidApproval(f"the approval's task id: {error.message}") from None
        try:
            check_digest(self.result_digest, "the approval's result_digest")
        except InvalidTask as error:
            raise InvalidApproval(error.message) from None
        if not isinstance(self.accept, bool):
            raise InvalidApproval(f"accept is true or false, got {self.accept!r:.40}")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_BYTES:
            raise InvalidApproval(f"an approval's signature is {SIGNATURE_BYTES} bytes")

    def message(self) -> dict[str, object]:
        """The EIP-712 message (``taskId``, ``resultDigest``, ``accept``)."""
        return {
            "taskId": self.task_id,
            "resultDigest": bytes.fromhex(self.result_digest),
            "accept": self.accept,
        }

    @property
    def digest(self) -> bytes:
        """The EIP-712 digest the principal signed (32 bytes)."""
        return APPROVAL_MESSAGE.digest(self.message())

    def signer(self) -> str:
        """The checksummed address that signed; `InvalidApproval` for a signature that is
        malformed, malleable (high s) or recovers no key."""
        try:
            return recover_address(self.digest, self.signature)
        except InvalidSignature as error:
            raise InvalidApproval(f"the approval's signature is invalid: {error.message}") from None

    def typed_data(self) -> dict[str, object]:
        """The whole typed data, as a wallet's ``eth_signTypedData_v4`` takes it."""
        return APPROVAL_MESSAGE.full_message(
            {**self.message(), "resultDigest": "0x" + self.result_digest}
        )

    def to_json(self) -> dict[str, JsonValue]:
        """The JSON object: the fields, the signature as ``0x``-hex."""
        return {
            "task_id": self.task_id,
            "result_digest": self.result_digest,
            "accept": self.accept,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: object) -> SignedApproval:
        """Parse `to_json`'s form (an object, or its text of at most
        `MAX_APPROVAL_JSON_BYTES`) strictly; `InvalidApproval` names what is wrong. Does not
        check the signature: `signer` does."""
        if isinstance(data, str | bytes):
            if len(data) > MAX_APPROVAL_JSON_BYTES:
                raise InvalidApproval(f"an approval is at most {MAX_APPROVAL_JSON_BYTES} bytes")
            try:
                data = load_json(data)
            except ValueError:
                raise InvalidApproval("the approval is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidApproval(f"an approval is a JSON object, got {type(data).__name__}")
        unknown = sorted(repr(key)[:40] for key in data if key not in _APPROVAL_FIELDS)
        missing = [key for key in _APPROVAL_FIELDS if key not in data]
        if unknown or missing:
            raise InvalidApproval(
                f"an approval has exactly the fields {', '.join(_APPROVAL_FIELDS)}"
                + (f"; unknown: {', '.join(unknown[:5])}" if unknown else "")
                + (f"; missing: {', '.join(missing)}" if missing else "")
            )
        try:
            signature = parse_signature(data["signature"])
        except InvalidSignature as error:
            raise InvalidApproval(f"the approval's signature: {error.message}") from None
        return cls(data["task_id"], data["result_digest"], data["accept"], signature)


def sign_approval(
    key: PrivateKey, task_id: str, result_digest: str, accept: bool
) -> SignedApproval:
    """The principal's `key` signs its decision on the result `result_digest` (from
    `result_digest(text)`) of task `task_id`."""
    unsigned = SignedApproval(task_id, result_digest, accept, bytes(SIGNATURE_BYTES))
    return SignedApproval(task_id, result_digest, accept, key.sign_digest(unsigned.digest))
