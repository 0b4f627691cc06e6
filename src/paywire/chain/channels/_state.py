"""What the channel contract holds and says: a channel's state (`Channel`), its ids, and
its events decoded from logs. No web3 here."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paywire.chain._checks import check_address, check_amount
from paywire.chain.channels._errors import InvalidChannelInput
from paywire.chain.errors import ChainError
from paywire.crypto import address_bytes, keccak256, to_checksum_address

if TYPE_CHECKING:
    from paywire.chain.base._values import Log

CHANNEL_ID_BYTES = 32
"""A channel id is a bytes32 (keccak256 of who, to whom, where and a salt)."""

SALT_BYTES = 32
"""The payer's salt: random, so ids cannot be guessed before the channel is opened."""

CHANNEL_OPENED_TOPIC = keccak256(b"ChannelOpened(bytes32,address,address,uint256)")
CHANNEL_TOPPED_UP_TOPIC = keccak256(b"ChannelToppedUp(bytes32,uint256,uint256)")
CLAIMED_TOPIC = keccak256(b"Claimed(bytes32,address,uint256,uint256)")
WITHDRAWAL_REQUESTED_TOPIC = keccak256(b"WithdrawalRequested(bytes32,address,uint256)")
CHANNEL_CLOSED_TOPIC = keccak256(b"ChannelClosed(bytes32,uint256,uint256,bool)")


def new_salt() -> bytes:
    """A fresh random 32-byte salt for a channel id (the OS CSPRNG)."""
    return secrets.token_bytes(SALT_BYTES)


def check_channel_id(value: object) -> bytes:
    """`value` as a channel id: exactly 32 bytes."""
    if not isinstance(value, bytes) or len(value) != CHANNEL_ID_BYTES:
        raise InvalidChannelInput(f"a channel id is exactly {CHANNEL_ID_BYTES} bytes")
    return value


def compute_channel_id(
    chain_id: int, contract: str, token: str, payer: str, payee: str, salt: bytes
) -> bytes:
    """The id the contract gives the channel `payer` opens to `payee` with `salt`:
    keccak256(abi.encode(chainId, contract, token, payer, payee, salt))."""
    if not isinstance(salt, bytes) or len(salt) != SALT_BYTES:
        raise InvalidChannelInput(f"a channel salt is exactly {SALT_BYTES} bytes")
    words = [check_amount(chain_id, "chain id", error=InvalidChannelInput).to_bytes(32, "big")]
    for address in (contract, token, payer, payee):
        words.append(bytes(12) + address_bytes(check_address(address, error=InvalidChannelInput)))
    words.append(salt)
    return keccak256(b"".join(words))


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel as the contract holds it: `payer` deposited `deposit`, of which `claimed`
    went to `payee`; `withdraw_requested_at` is when the payer asked for the rest back
    (0: it did not); a `closed` channel is settled for good."""

    channel_id: bytes
    payer: str
    payee: str
    deposit: int
    claimed: int
    withdraw_requested_at: int
    closed: bool

    @property
    def remaining(self) -> int:
        """What the contract still holds for this channel (0 once it is closed)."""
        return 0 if self.closed else self.deposit - self.claimed

    @property
    def withdrawal_requested(self) -> bool:
        return self.withdraw_requested_at != 0


@dataclass(frozen=True, slots=True)
class ClaimedLog:
    """A Claimed event: `amount` paid to `payee`, bringing the channel's claimed total to
    `claimed`."""

    channel_id: bytes
    payee: str
    amount: int
    claimed: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True, slots=True)
class ClosedLog:
    """A ChannelClosed event: over its life the channel paid `claimed` to the payee and,
    at the end, `refunded` to the payer; `cooperative` when the payee closed it."""

    channel_id: bytes
    claimed: int
    refunded: int
    cooperative: bool
    tx_hash: str
    log_index: int


def _words(data: bytes, count: int) -> list[int] | None:
    if len(data) != 32 * count:
        return None
    return [int.from_bytes(data[i : i + 32], "big") for i in range(0, len(data), 32)]


def claimed_logs(logs: tuple[Log, ...], contract: str) -> list[ClaimedLog]:
    """The Claimed events of `contract` among `logs`, in order."""
    found = []
    for log in logs:
        if log.address != contract or len(log.topics) != 3 or log.topics[0] != CLAIMED_TOPIC:
            continue
        words = _words(log.data, 2)
        if words is None:
            continue
        found.append(
            ClaimedLog(
                channel_id=log.topics[1],
                payee=to_checksum_address(log.topics[2][12:]),
                amount=words[0],
                claimed=words[1],
                tx_hash=log.tx_hash,
                log_index=log.log_index,
            )
        )
    return found


def closed_log(logs: tuple[Log, ...], contract: str, channel_id: bytes) -> ClosedLog | None:
    """The ChannelClosed event of `channel_id` among `logs`, if there is one."""
    for log in logs:
        if (
            log.address == contract
            and len(log.topics) == 2
            and log.topics[0] == CHANNEL_CLOSED_TOPIC
            and log.topics[1] == channel_id
        ):
            words = _words(log.data, 3)
            if words is not None and words[2] in (0, 1):
                return ClosedLog(
                    channel_id=channel_id,
                    claimed=words[0],
                    refunded=words[1],
                    cooperative=bool(words[2]),
                    tx_hash=log.tx_hash,
                    log_index=log.log_index,
                )
    return None


def channel_from_words(channel_id: bytes, data: bytes) -> Channel | None:
    """A channel from the contract's ``channel(id)`` answer (None: no such channel)."""
    words = _words(data, 6)
    if words is None or words[5] not in (0, 1):
        raise ChainError(f"channel() answered {len(data)} bytes, not a channel")
    if words[0] == 0:
        return None
    return Channel(
        channel_id=channel_id,
        payer=to_checksum_address(words[0].to_bytes(32, "big")[12:]),
        payee=to_checksum_address(words[1].to_bytes(32, "big")[12:]),
        deposit=words[2],
        claimed=words[3],
        withdraw_requested_at=words[4],
        closed=bool(words[5]),
    )
