"""Signed task requests: who asks for a task operation over HTTP, proven by a signature.

Over HTTP, a task operation names an actor (the principal posting, accepting, rejecting
or cancelling; an agent taking or delivering; the principal or a payee disputing), and the
actor proves it by signing an EIP-712 message in the domain ``{name: "paywire tasks",
version: "1"}``::

    TaskRequest(address actor,string action,string network,string taskId,
                bytes32 paramsHash,uint64 issuedAt)

- `action` is the operation (``post``, ``take``, ``deliver``, ``accept``, ``reject``,
  ``cancel``, ``dispute``), `taskId` the task, `network` the ledger's network
  (``paywire:<ledger-id>``): a request for one ledger cannot be replayed on another.
- `paramsHash` is keccak256 of the UTF-8 bytes of the request's ``params``, a JSON text
  sent as is (a string inside the request): what is hashed is exactly what was sent, with
  no canonical form to agree on.
- `issuedAt` is the signer's clock in Unix seconds; the server takes the request within
  `MAX_REQUEST_SKEW_S` of its own clock.

A request replayed within that window asks for the same operation again, which the task
book answers idempotently (the same post, take, delivery or settlement) or refuses (a
second dispute). This module proves the actor's address; the task book decides whether
that address may do the operation (`paywire.service.tasks`).

On the wire: ``{"request": {"actor", "action", "network", "taskId", "params",
"issuedAt"}, "signature": "0x<65 bytes hex>"}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paywire import _json
from paywire.crypto.eip712 import Eip712Domain, StructType, TypedMessage
from paywire.crypto.keys import (
    PrivateKey,
    keccak256,
    parse_address,
    parse_signature,
    verify_signer,
)
from paywire.errors import InvalidInput, PaywireError
from paywire.ledger.model import check_id

TASKS_DOMAIN = Eip712Domain(name="paywire tasks", version="1")
"""The EIP-712 domain every task request is signed in."""

TASK_REQUEST = StructType(
    "TaskRequest",
    {
        "TaskRequest": [
            {"name": "actor", "type": "address"},
            {"name": "action", "type": "string"},
            {"name": "network", "type": "string"},
            {"name": "taskId", "type": "string"},
            {"name": "paramsHash", "type": "bytes32"},
            {"name": "issuedAt", "type": "uint64"},
        ]
    },
)

TASK_REQUEST_MESSAGE = TypedMessage(TASKS_DOMAIN, TASK_REQUEST)

SIGNED_ACTIONS = frozenset({"post", "take", "deliver", "accept", "reject", "cancel", "dispute"})
"""Operations that need a signed request (``release`` and ``expire`` need none: anyone may
sweep a task once it is due)."""

MAX_REQUEST_SKEW_S = 300
"""How far a request's `issuedAt` may be from the server's clock, either way."""

MAX_PARAMS_CHARS = 48 * 1024
"""A request's params JSON text (a task mandate is the largest part, a few KB)."""

MAX_PARAMS_DEPTH = 16
"""How deep a request's params JSON may nest (an acceptance check is the deepest part)."""

MAX_NETWORK_CHARS = 100

_REQUEST_KEYS = frozenset({"actor", "action", "network", "taskId", "params", "issuedAt"})
_UINT64 = 2**64


class InvalidTaskRequest(InvalidInput):
    """A task request that is malformed (missing fields, bad types, params not JSON)."""

    code = "invalid_task_request"


class TaskRequestRefused(PaywireError):
    """A well-formed task request that does not prove what it claims."""

    code = "task_request_refused"


class TaskRequestWrongSigner(TaskRequestRefused):
    """The signature is not the actor's (another key signed, or the request was altered)."""

    code = "task_request_wrong_signer"


class TaskRequestStale(TaskRequestRefused):
    """`issuedAt` is further than `MAX_REQUEST_SKEW_S` from the server's clock."""

    code = "task_request_stale"


class TaskRequestMismatch(TaskRequestRefused):
    """The request is for another action, task or ledger than the one it was sent to."""

    code = "task_request_mismatch"


def params_text(params: Mapping[str, Any]) -> str:
    """The JSON text a client sends as a request's params (compact, sorted keys; any text
    works, the hash is over what is sent)."""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """One operation on one task by one actor, before or after signing."""

    actor: str
    """The signer's checksummed address."""
    action: str
    network: str
    task_id: str
    params: str
    """The operation's parameters: a JSON object, as text."""
    issued_at: int
    """Unix seconds on the signer's clock."""

    @classmethod
    def create(
        cls,
        actor: str,
        action: str,
        network: str,
        task_id: str,
        params: Mapping[str, Any] | None = None,
        *,
        issued_at: int | None = None,
    ) -> TaskRequest:
        """A request issued now (or at `issued_at`), its params encoded by `params_text`."""
        return cls(
            actor=parse_address(actor),
            action=action,
            network=network,
            task_id=task_id,
            params=params_text(params or {}),
            issued_at=int(time.time()) if issued_at is None else issued_at,
        )

    @property
    def params_hash(self) -> bytes:
        """keccak256 of the params text's UTF-8 bytes."""
        return keccak256(self.params.encode("utf-8"))

    def message(self) -> dict[str, object]:
        """The EIP-712 message (``TaskRequest``) the actor signs."""
        return {
            "actor": self.actor,
            "action": self.action,
            "network": self.network,
            "taskId": self.task_id,
            "paramsHash": self.params_hash,
            "issuedAt": self.issued_at,
        }

    def digest(self) -> bytes:
        """What is signed: the EIP-712 digest of `message` in `TASKS_DOMAIN`."""
        return TASK_REQUEST_MESSAGE.digest(self.message())

    def sign(self, key: PrivateKey) -> SignedTaskRequest:
        """This request signed by `key` (the actor's)."""
        if key.address != self.actor:
            raise InvalidTaskRequest(
                f"the key of {key.address} cannot sign a request by {self.actor}"
            )
        return SignedTaskRequest(self, key.sign_digest(self.digest()))

    def to_json(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "action": self.action,
            "network": self.network,
            "taskId": self.task_id,
            "params": self.params,
            "issuedAt": self.issued_at,
        }

    @classmethod
    def from_json(cls, data: object) -> TaskRequest:
        """Parse the request object strictly (exactly its six fields); `InvalidTaskRequest`
        saying what is wrong."""
        if not isinstance(data, Mapping) or set(data) != _REQUEST_KEYS:
            raise InvalidTaskRequest(
                "a task request has exactly actor, action, network, taskId, params, issuedAt"
            )
        action, network, task_id = data["action"], data["network"], data["taskId"]
        params, issued_at = data["params"], data["issuedAt"]
        if not isinstance(action, str) or action not in SIGNED_ACTIONS:
            raise InvalidTaskRequest(f"action is one of {', '.join(sorted(SIGNED_ACTIONS))}")
        if (
            not isinstance(network, str)
            or not 0 < len(network) <= MAX_NETWORK_CHARS
            or not (network.isascii() and network.isprintable())
        ):
            raise InvalidTaskRequest(
                f"network is printable ASCII text of 1-{MAX_NETWORK_CHARS} characters"
            )
        if not isinstance(params, str) or len(params) > MAX_PARAMS_CHARS:
            raise InvalidTaskRequest(
                f"params is the JSON text of an object, at most {MAX_PARAMS_CHARS} characters"
            )
        try:
            params.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate escaped in the JSON body
            raise InvalidTaskRequest("params is not valid Unicode text") from None
        if (
            not isinstance(issued_at, int)
            or isinstance(issued_at, bool)
            or not 0 <= issued_at < _UINT64
        ):
            raise InvalidTaskRequest("issuedAt is a Unix time in whole seconds")
        try:
            actor = parse_address(str(data["actor"]))
            check_id(task_id, "taskId")
        except PaywireError as error:
            raise InvalidTaskRequest(f"task request: {error}") from None
        assert isinstance(task_id, str)
        return cls(actor, action, network, task_id, params, issued_at)

    def parsed_params(self) -> dict[str, Any]:
        """The params as a JSON object (`InvalidTaskRequest` if they are not one)."""
        try:
            value = _json.loads(self.params, max_depth=MAX_PARAMS_DEPTH)
        except ValueError:
            raise InvalidTaskRequest(
                f"params is not JSON (or nests deeper than {MAX_PARAMS_DEPTH} levels)"
            ) from None
        if not isinstance(value, dict):
            raise InvalidTaskRequest("params is the JSON text of an object")
        return value


@dataclass(frozen=True, slots=True)
class SignedTaskRequest:
    """A `TaskRequest` with its actor's 65-byte signature."""

    request: TaskRequest
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        """The HTTP body: ``{"request": {...}, "signature": "0x..."}``."""
        return {"request": self.request.to_json(), "signature": "0x" + self.signature.hex()}

    @classmethod
    def from_json(cls, body: object) -> SignedTaskRequest:
        """Parse an HTTP body (other keys in it are the endpoint's business)."""
        if not isinstance(body, Mapping) or "request" not in body:
            raise InvalidTaskRequest(
                'the body carries a signed request: {"request": {...}, "signature": "0x..."}'
            )
        request = TaskRequest.from_json(body["request"])
        signature = body.get("signature")
        if not isinstance(signature, str):
            raise InvalidTaskRequest("signature is the 0x-hex of 65 bytes")
        try:
            raw = parse_signature(signature)
        except PaywireError as error:
            raise InvalidTaskRequest(f"signature: {error}") from None
        return cls(request, raw)

    def verify(
        self,
        *,
        action: str,
        task_id: str,
        network: str,
        now_s: int,
        skew_s: int = MAX_REQUEST_SKEW_S,
    ) -> dict[str, Any]:
        """Check that this request is for `action` on `task_id` on `network`, issued within
        `skew_s` of `now_s`, and signed by its actor; return its params.

        Raises `TaskRequestMismatch`, `TaskRequestStale`, `TaskRequestWrongSigner` (all
        `TaskRequestRefused`) or `InvalidTaskRequest`."""
        request = self.request
        if request.action != action:
            raise TaskRequestMismatch(
                f"the request is signed for {request.action!r}, not {action!r}"
            )
        if request.task_id != task_id:
            raise TaskRequestMismatch(
                f"the request is signed for task {request.task_id!r}, not {task_id!r}"
            )
        if request.network != network:
            raise TaskRequestMismatch(
                f"the request is signed for {request.network[:MAX_NETWORK_CHARS]!r}; this "
                f"ledger is {network}"
            )
        if abs(now_s - request.issued_at) > skew_s:
            raise TaskRequestStale(
                f"the request was issued at {request.issued_at}, more than {skew_s} s from "
                f"the server's clock ({now_s}); sign it again (check the clock)"
            )
        try:
            verify_signer(request.digest(), self.signature, request.actor)
        except PaywireError:
            raise TaskRequestWrongSigner(
                f"the request is not signed by {request.actor} (another key signed it, or "
                "it was altered after signing)"
            ) from None
        return request.parsed_params()


def sign_task_request(
    key: PrivateKey,
    action: str,
    network: str,
    task_id: str,
    params: Mapping[str, Any] | None = None,
    *,
    issued_at: int | None = None,
) -> dict[str, Any]:
    """The HTTP body for `action` on `task_id`, signed by `key` now (a client's one call)."""
    request = TaskRequest.create(key.address, action, network, task_id, params, issued_at=issued_at)
    return request.sign(key).to_json()


__all__ = [
    "MAX_PARAMS_CHARS",
    "MAX_PARAMS_DEPTH",
    "MAX_REQUEST_SKEW_S",
    "SIGNED_ACTIONS",
    "TASKS_DOMAIN",
    "TASK_REQUEST",
    "InvalidTaskRequest",
    "SignedTaskRequest",
    "TaskRequest",
    "TaskRequestMismatch",
    "TaskRequestRefused",
    "TaskRequestStale",
    "TaskRequestWrongSigner",
    "params_text",
    "sign_task_request",
]
