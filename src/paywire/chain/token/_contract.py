"""What paywire knows of the token contract: Paywire USD's labels; the selectors, argument
types, event topics and gas bounds of its calls; the checks of values passed to them;
and its Transfer event, decoded."""

from __future__ import annotations

from dataclasses import dataclass

from paywire.chain._checks import check_address, check_amount, check_nonce
from paywire.chain.base._values import Log
from paywire.chain.errors import ChainError
from paywire.crypto import keccak256, to_checksum_address

PAYWIRE_USD_NAME = "Paywire USD"
"""The local stablecoin's EIP-712 name (x402 ``extra.name``)."""

PAYWIRE_USD_SYMBOL = "USDC"
"""Its symbol: the ledger's dollar asset, so deposits land in ``<address>:USDC`` accounts."""

PAYWIRE_USD_VERSION = "2"
"""Its EIP-712 version (x402 ``extra.version``), "2" as USDC's."""

TOKEN_DECIMALS = 6
"""Atomic units per dollar: 10**6, as USDC."""

MAX_TOKEN_TEXT_BYTES = 64
"""Token name, symbol and version are short labels (the contract stores String[64])."""

TRANSFER_TOPIC = keccak256(b"Transfer(address,address,uint256)")
"""topic0 of the ERC-20 Transfer event."""

AUTHORIZATION_USED_TOPIC = keccak256(b"AuthorizationUsed(address,bytes32)")
"""topic0 of EIP-3009's AuthorizationUsed event."""

AUTHORIZATION_CANCELED_TOPIC = keccak256(b"AuthorizationCanceled(address,bytes32)")

_AUTH_TYPES = [
    "address",
    "address",
    "uint256",
    "uint256",
    "uint256",
    "bytes32",
    "uint8",
    "bytes32",
    "bytes32",
]


def _selector(signature: str) -> bytes:
    return keccak256(signature.encode("ascii"))[:4]


_SELECTORS = {
    name: _selector(signature)
    for name, signature in {
        "name": "name()",
        "symbol": "symbol()",
        "version": "version()",
        "decimals": "decimals()",
        "owner": "owner()",
        "totalSupply": "totalSupply()",
        "balanceOf": "balanceOf(address)",
        "allowance": "allowance(address,address)",
        "authorizationState": "authorizationState(address,bytes32)",
        "DOMAIN_SEPARATOR": "DOMAIN_SEPARATOR()",
        "transfer": "transfer(address,uint256)",
        "transferFrom": "transferFrom(address,address,uint256)",
        "approve": "approve(address,uint256)",
        "mint": "mint(address,uint256)",
        "transferWithAuthorization": "transferWithAuthorization("
        "address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
        "receiveWithAuthorization": "receiveWithAuthorization("
        "address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
        "cancelAuthorization": "cancelAuthorization(address,bytes32,uint8,bytes32,bytes32)",
    }.items()
}

GAS_BOUNDS = {
    "transferWithAuthorization": 150_000,
    "receiveWithAuthorization": 150_000,
    "cancelAuthorization": 100_000,
    "transfer": 100_000,
    "transferFrom": 100_000,
    "approve": 100_000,
    "mint": 100_000,
}
"""Gas limits for Paywire USD's calls on the local chain, about twice the most measured
(a cold transferWithAuthorization uses ~82k, a cold transfer ~52k): unused gas is not paid."""


def check_token_text(value: object, what: str, limit: int) -> str:
    """A token name, symbol or version: printable text of 1..`limit` bytes."""
    if (
        not isinstance(value, str)
        or not value
        or not value.isprintable()
        or len(value.encode("utf-8", "surrogatepass")) > min(limit, MAX_TOKEN_TEXT_BYTES)
    ):
        raise ChainError(f"the token {what} must be printable text of 1-{limit} bytes")
    return value


@dataclass(frozen=True, slots=True)
class TransferLog:
    """An ERC-20 Transfer event: `value` atomic units `from_` -> `to`."""

    from_: str
    to: str
    value: int
    block_number: int
    tx_hash: str
    log_index: int


def transfer_log(log: Log) -> TransferLog | None:
    """A Transfer event decoded from a log (None if the log is not one)."""
    if len(log.topics) != 3 or log.topics[0] != TRANSFER_TOPIC or len(log.data) != 32:
        return None
    return TransferLog(
        from_=to_checksum_address(log.topics[1][12:]),
        to=to_checksum_address(log.topics[2][12:]),
        value=int.from_bytes(log.data, "big"),
        block_number=log.block_number,
        tx_hash=log.tx_hash,
        log_index=log.log_index,
    )


def _addr(value: object) -> str:
    return check_address(value)


def _amt(value: object) -> int:
    return check_amount(value)


def _nonce(value: object) -> bytes:
    return check_nonce(value)


def _topic(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(_addr(address)[2:])
