"""Values crossing between paywire and web3: arguments checked and converted on the way
in (addresses, transaction hashes), typed results (`Log`, `Receipt`) on the way out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3

from paywire.chain._checks import check_address
from paywire.chain.errors import ChainError
from paywire.crypto import to_checksum_address

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


@dataclass(frozen=True, slots=True)
class Log:
    """An event log as a receipt or ``eth_getLogs`` reports it."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """A mined transaction's receipt: `ok` is its status, `gas_used` what it cost."""

    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    gas_used: int
    effective_gas_price: int
    contract_address: str | None
    logs: tuple[Log, ...]

    @property
    def ok(self) -> bool:
        return self.status == 1


def _address(value: object) -> str:
    return check_address(value)


def _cs(address: str) -> Any:
    """An address as web3's ChecksumAddress (already checksummed by `parse_address`)."""
    return Web3.to_checksum_address(address)


def _tx_hash(value: object) -> str:
    if (
        not isinstance(value, str)
        or len(value) != 66
        or not value.startswith("0x")
        or not all(c in "0123456789abcdefABCDEF" for c in value[2:])
    ):
        raise ChainError("a transaction hash is 0x and 64 hex digits")
    return value.lower()


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()


def _log(raw: Any) -> Log:
    return Log(
        address=to_checksum_address(str(raw["address"])),
        topics=tuple(bytes(topic) for topic in raw["topics"]),
        data=bytes(raw["data"]),
        block_number=int(raw["blockNumber"]),
        tx_hash=_hex(raw["transactionHash"]),
        log_index=int(raw["logIndex"]),
    )


def _receipt(raw: Any) -> Receipt:
    contract = raw.get("contractAddress")
    return Receipt(
        tx_hash=_hex(raw["transactionHash"]),
        block_number=int(raw["blockNumber"]),
        block_hash=_hex(raw["blockHash"]),
        status=int(raw["status"]),
        gas_used=int(raw["gasUsed"]),
        effective_gas_price=int(raw.get("effectiveGasPrice") or 0),
        contract_address=None if not contract else to_checksum_address(str(contract)),
        logs=tuple(_log(item) for item in raw["logs"]),
    )
