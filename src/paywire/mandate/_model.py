"""The mandate document: `Window`, `AssetLimit`, `Mandate`, and their EIP-712 encoding.

Every value is checked and put in canonical form when built (addresses checksummed, lists
sorted), so one mandate has one encoding and one id whatever order its parts were given in.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from paywire.crypto.eip712 import Eip712Domain, StructType, TypedMessage
from paywire.crypto.keys import address_bytes
from paywire.mandate._errors import InvalidMandate
from paywire.mandate._fields import (
    check_address,
    check_asset,
    check_bytes32,
    check_int,
    check_network_pattern,
    check_text,
    network_matches,
    parse_origin,
    patterns_overlap,
    show,
)
from paywire.money import MAX_ATOMIC

MANDATE_VERSION = 1
"""The document format this code writes and reads (``"v"`` in JSON, ``version`` when signed)."""

MAX_ASSET_LIMITS = 16
"""Asset limits in one mandate: a budget names a handful of (asset, network) pairs."""

MAX_WINDOWS = 6
"""Rolling windows per asset limit: minute, hour, day, week, month cover budgets people write."""

MAX_PAYEES = 64
"""Allowed payee addresses: a longer allow-list is a directory, better left empty (any)."""

MAX_ORIGINS = 32
"""Allowed URL origins, for the same reason as MAX_PAYEES."""

MAX_NETWORKS = 16
"""Allowed networks or namespace patterns (``eip155:*``); a handful are in use."""

MAX_PURPOSE_CHARS = 512
"""The purpose is shown to the human who signs: a paragraph, not a contract."""

MAX_TASK_ID_CHARS = 128
"""A task id is an identifier (a UUID is 36 characters), not a description."""

MAX_VALIDITY_S = 366 * 24 * 3600
"""A mandate lives at most a year (and a day): a forgotten budget must not live forever."""

MIN_WINDOW_S = 1
"""Times are whole seconds, so no window is shorter than one."""

MAX_WINDOW_S = MAX_VALIDITY_S
"""A window longer than a mandate can live is its total: refused as a likely mistake."""

MAX_TIME_S = 253_402_300_799
"""Largest time a mandate may name (9999-12-31T23:59:59Z); fits uint64 and JSON's 2**53."""

ZERO_ID = bytes(32)
"""The `parent` of a root mandate."""

NONCE_BYTES = 32

# EIP-712 domain of mandates and revocations. No chainId: a mandate governs payments on
# several networks at once (the paywire ledger and EVM chains), so binding its signature to
# one chain would be wrong; no verifyingContract: no contract checks it, the facilitator
# does; no salt: the name already separates it from every other paywire message (receipts
# sign as "paywire receipt", ledger payments with a per-network salt), and a fixed salt
# would add nothing a name does not. The type hashes separate mandates from revocations.
MANDATE_DOMAIN = Eip712Domain(name="paywire-mandate", version="1")
"""The EIP-712 domain mandates and revocations are signed in."""

MANDATE_TYPES = {
    "Mandate": [
        {"name": "version", "type": "uint16"},
        {"name": "issuer", "type": "address"},
        {"name": "agent", "type": "address"},
        {"name": "parent", "type": "bytes32"},
        {"name": "limits", "type": "AssetLimit[]"},
        {"name": "payees", "type": "address[]"},
        {"name": "origins", "type": "string[]"},
        {"name": "networks", "type": "string[]"},
        {"name": "validAfter", "type": "uint64"},
        {"name": "validBefore", "type": "uint64"},
        {"name": "purpose", "type": "string"},
        {"name": "taskId", "type": "string"},
        {"name": "nonce", "type": "bytes32"},
    ],
    "AssetLimit": [
        {"name": "network", "type": "string"},
        {"name": "asset", "type": "string"},
        {"name": "total", "type": "uint128"},
        {"name": "perPayment", "type": "uint128"},
        {"name": "windows", "type": "Window[]"},
    ],
    "Window": [
        {"name": "seconds", "type": "uint32"},
        {"name": "limit", "type": "uint128"},
    ],
}

MANDATE_MESSAGE = TypedMessage(MANDATE_DOMAIN, StructType("Mandate", MANDATE_TYPES))
"""The `TypedMessage` a mandate is signed as (for wallets: `Mandate.typed_data`)."""


@dataclass(frozen=True, slots=True)
class Window:
    """A rolling-window limit: at most `limit_atomic` in any `window_s` consecutive seconds
    (the payments at times t with ``end - window_s < t <= end``, for every `end`)."""

    window_s: int
    limit_atomic: int

    def __post_init__(self) -> None:
        check_int(self.window_s, "seconds", MIN_WINDOW_S, MAX_WINDOW_S, " seconds")
        check_int(self.limit_atomic, "limit", 1, MAX_ATOMIC, " atomic units")

    def message(self) -> dict[str, object]:
        return {"seconds": self.window_s, "limit": self.limit_atomic}


@dataclass(frozen=True, slots=True)
class AssetLimit:
    """What may be spent of one asset on one network (or namespace pattern ``eip155:*``):
    `total_atomic` over the mandate's life, at most `per_payment_atomic` per payment, and
    at most each window's limit in any window of its length.

    `asset` is a code on the paywire ledger (``USDC``) or a token address on an EVM chain,
    as x402 payment requirements name assets.
    """

    network: str
    asset: str
    total_atomic: int
    per_payment_atomic: int
    windows: tuple[Window, ...] = ()

    def __post_init__(self) -> None:
        check_network_pattern(self.network, "network")
        object.__setattr__(self, "asset", check_asset(self.asset, "asset"))
        # A per-payment or window limit above the total is allowed: it does not bind, and
        # refusing it would make narrowing a child's total force edits of its other limits.
        check_int(self.total_atomic, "total", 1, MAX_ATOMIC, " atomic units")
        check_int(self.per_payment_atomic, "perPayment", 1, MAX_ATOMIC, " atomic units")
        windows: list[Window] = []
        for index, window in enumerate(_sequence(self.windows, "windows", MAX_WINDOWS)):
            if not isinstance(window, Window):
                raise InvalidMandate(f"must be a Window, got {show(window)}", f"windows[{index}]")
            windows.append(window)
        ordered = tuple(sorted(windows, key=lambda window: window.window_s))
        for before, after in itertools.pairwise(ordered):
            if before.window_s == after.window_s:
                raise InvalidMandate(f"two windows of {after.window_s} seconds", "windows")
        object.__setattr__(self, "windows", ordered)

    @property
    def key(self) -> tuple[str, str]:
        """(network, asset): what identifies this limit within its mandate."""
        return (self.network, self.asset)

    def describe(self) -> str:
        return f"{self.asset} on {self.network}"

    def message(self) -> dict[str, object]:
        return {
            "network": self.network,
            "asset": self.asset,
            "total": self.total_atomic,
            "perPayment": self.per_payment_atomic,
            "windows": [window.message() for window in self.windows],
        }


@dataclass(frozen=True, slots=True)
class Mandate:
    """An EIP-712 document by which `issuer` authorizes `agent` to spend, within limits.

    A root mandate is issued by a principal (a human or an organisation) and has a zero
    `parent`; a child is issued by its parent's agent and names the parent's id. Lists
    mean "any" when empty (`payees`, `origins`, `networks`); `limits` may not be empty:
    an asset without a limit may not be spent. Valid from `valid_after` (inclusive) to
    `valid_before` (exclusive), Unix seconds. `nonce` (random by default) makes two
    otherwise equal mandates distinct. Raises `InvalidMandate` naming the bad field.

    `id` is the EIP-712 digest, ``0x`` + 64 hex digits: what is signed, and what children
    and revocations name.
    """

    issuer: str
    agent: str
    limits: tuple[AssetLimit, ...]
    valid_after: int
    valid_before: int
    purpose: str = ""
    task_id: str = ""
    payees: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    parent: bytes = ZERO_ID
    nonce: bytes = field(default_factory=lambda: os.urandom(NONCE_BYTES))
    version: int = MANDATE_VERSION
    digest: bytes = field(init=False, repr=False, compare=False)
    """The EIP-712 digest (32 bytes); `id` is its hex form."""

    def __post_init__(self) -> None:
        set_attribute = object.__setattr__
        if self.version != MANDATE_VERSION or isinstance(self.version, bool):
            raise InvalidMandate(
                f"version {show(self.version)} is not supported; this paywire writes and "
                f"reads version {MANDATE_VERSION}",
                "v",
            )
        set_attribute(self, "issuer", check_address(self.issuer, "issuer"))
        set_attribute(self, "agent", check_address(self.agent, "agent"))
        check_bytes32(self.parent, "parent")
        check_bytes32(self.nonce, "nonce")
        set_attribute(self, "limits", _limits(self.limits))
        payees = [
            check_address(payee, f"payees[{index}]")
            for index, payee in enumerate(_sequence(self.payees, "payees", MAX_PAYEES))
        ]
        set_attribute(self, "payees", _unique_sorted(payees, "payees", key=address_bytes))
        origins = [
            parse_origin(origin, f"origins[{index}]")
            for index, origin in enumerate(_sequence(self.origins, "origins", MAX_ORIGINS))
        ]
        set_attribute(self, "origins", _unique_sorted(origins, "origins"))
        networks = [
            check_network_pattern(network, f"networks[{index}]")
            for index, network in enumerate(_sequence(self.networks, "networks", MAX_NETWORKS))
        ]
        set_attribute(self, "networks", _unique_sorted(networks, "networks"))
        _no_overlap(self.networks, "networks")
        after = check_int(self.valid_after, "validAfter", 0, MAX_TIME_S - 1)
        before = check_int(
            self.valid_before, "validBefore", after + 1, MAX_TIME_S, " (after validAfter)"
        )
        if before - after > MAX_VALIDITY_S:
            raise InvalidMandate(
                f"the mandate would be valid for {before - after} seconds, more than "
                f"{MAX_VALIDITY_S} (a year and a day); issue a new one when it runs out",
                "validBefore",
            )
        check_text(self.purpose, "purpose", MAX_PURPOSE_CHARS, multiline=True)
        check_text(self.task_id, "taskId", MAX_TASK_ID_CHARS, multiline=False)
        set_attribute(self, "digest", MANDATE_MESSAGE.digest(self.message()))

    @property
    def id(self) -> str:
        """The mandate's id: its EIP-712 digest as ``0x`` + 64 lower-case hex digits."""
        return "0x" + self.digest.hex()

    @property
    def is_root(self) -> bool:
        """Whether the mandate is issued by a principal (it has no parent)."""
        return self.parent == ZERO_ID

    @property
    def parent_id(self) -> str | None:
        """The parent's id, or None for a root mandate."""
        return None if self.is_root else "0x" + self.parent.hex()

    def limit_for(self, network: str, asset: str) -> AssetLimit | None:
        """The limit that governs `asset` on the exact `network`, if any (at most one does)."""
        for limit in self.limits:
            if limit.asset == asset and network_matches(limit.network, network):
                return limit
        return None

    def message(self) -> dict[str, object]:
        """The EIP-712 message (field names as in the type)."""
        return {
            "version": self.version,
            "issuer": self.issuer,
            "agent": self.agent,
            "parent": self.parent,
            "limits": [limit.message() for limit in self.limits],
            "payees": list(self.payees),
            "origins": list(self.origins),
            "networks": list(self.networks),
            "validAfter": self.valid_after,
            "validBefore": self.valid_before,
            "purpose": self.purpose,
            "taskId": self.task_id,
            "nonce": self.nonce,
        }

    def typed_data(self) -> dict[str, object]:
        """The whole typed data as ``eth_signTypedData_v4`` takes it, for a principal who
        signs in a wallet (bytes as 0x-hex, amounts as decimal text)."""
        message = self.message()
        message["parent"] = "0x" + self.parent.hex()
        message["nonce"] = "0x" + self.nonce.hex()
        message["limits"] = [
            {
                **limit.message(),
                "total": str(limit.total_atomic),
                "perPayment": str(limit.per_payment_atomic),
                "windows": [
                    {"seconds": w.window_s, "limit": str(w.limit_atomic)} for w in limit.windows
                ],
            }
            for limit in self.limits
        ]
        return MANDATE_MESSAGE.full_message(message)

    def delegate(
        self,
        agent: str,
        *,
        limits: Iterable[AssetLimit] | None = None,
        payees: Iterable[str] | None = None,
        origins: Iterable[str] | None = None,
        networks: Iterable[str] | None = None,
        valid_after: int | None = None,
        valid_before: int | None = None,
        purpose: str | None = None,
        task_id: str | None = None,
    ) -> Mandate:
        """An unsigned child mandate for `agent`, issued by this mandate's agent: what is
        not given is inherited (so the child starts exactly as wide as this one; narrow it).
        A fresh nonce is drawn. Sign it with the key of this mandate's agent."""
        return replace(
            self,
            issuer=self.agent,
            agent=agent,
            parent=self.digest,
            nonce=os.urandom(NONCE_BYTES),
            limits=self.limits if limits is None else tuple(limits),
            payees=self.payees if payees is None else tuple(payees),
            origins=self.origins if origins is None else tuple(origins),
            networks=self.networks if networks is None else tuple(networks),
            valid_after=self.valid_after if valid_after is None else valid_after,
            valid_before=self.valid_before if valid_before is None else valid_before,
            purpose=self.purpose if purpose is None else purpose,
            task_id=self.task_id if task_id is None else task_id,
        )


def _sequence(value: object, field_name: str, most: int) -> tuple[object, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, tuple | list):
        raise InvalidMandate(f"must be a list, got {show(value)}", field_name)
    if len(value) > most:
        raise InvalidMandate(f"has {len(value)} items, more than {most}", field_name)
    return tuple(value)


def _unique_sorted(
    items: list[str], field_name: str, key: Callable[[str], bytes] | None = None
) -> tuple[str, ...]:
    ordered = sorted(items, key=key) if key is not None else sorted(items)
    for before, after in itertools.pairwise(ordered):
        if before == after:
            raise InvalidMandate(f"{after} is listed twice", field_name)
    return tuple(ordered)


def _no_overlap(patterns: tuple[str, ...], field_name: str) -> None:
    for index, first in enumerate(patterns):
        for second in patterns[index + 1 :]:
            if patterns_overlap(first, second):
                raise InvalidMandate(
                    f"{first} and {second} overlap; keep only the wider one", field_name
                )


def _limits(value: object) -> tuple[AssetLimit, ...]:
    limits = _sequence(value, "limits", MAX_ASSET_LIMITS)
    if not limits:
        raise InvalidMandate(
            "a mandate needs at least one asset limit (an asset without one may not be spent)",
            "limits",
        )
    for index, limit in enumerate(limits):
        if not isinstance(limit, AssetLimit):
            raise InvalidMandate(f"must be an AssetLimit, got {show(limit)}", f"limits[{index}]")
    checked = [limit for limit in limits if isinstance(limit, AssetLimit)]
    ordered = tuple(sorted(checked, key=lambda limit: (limit.asset, limit.network)))
    # At most one limit may govern a payment, so that "spent under this limit" is one number.
    for index, first in enumerate(ordered):
        for second in ordered[index + 1 :]:
            if first.asset == second.asset and patterns_overlap(first.network, second.network):
                raise InvalidMandate(
                    f"two limits govern {first.asset} on {first.network} and {second.network}; "
                    "networks of one asset's limits may not overlap",
                    "limits",
                )
    return ordered
