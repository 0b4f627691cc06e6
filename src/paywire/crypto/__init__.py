"""Keys, addresses, EIP-712 hashing and recovery (the fast path), encrypted keystores.

The keystore (`paywire.crypto.keystore`) is not imported here: it pulls in eth_account,
which the hot path does not need.
"""

from paywire.crypto.eip712 import (
    TRANSFER_WITH_AUTHORIZATION,
    Eip712Domain,
    InvalidTypedData,
    StructType,
    TypedMessage,
    digest_typed_data,
    recover_typed_data,
    typed_message_from_json,
)
from paywire.crypto.keys import (
    InvalidAddress,
    InvalidPrivateKey,
    InvalidSignature,
    PrivateKey,
    WrongSigner,
    address_bytes,
    keccak256,
    parse_address,
    parse_signature,
    recover_address,
    recover_address_bytes,
    to_checksum_address,
    verify_signer,
)

__all__ = [
    "TRANSFER_WITH_AUTHORIZATION",
    "Eip712Domain",
    "InvalidAddress",
    "InvalidPrivateKey",
    "InvalidSignature",
    "InvalidTypedData",
    "PrivateKey",
    "StructType",
    "TypedMessage",
    "WrongSigner",
    "address_bytes",
    "digest_typed_data",
    "keccak256",
    "parse_address",
    "parse_signature",
    "recover_address",
    "recover_address_bytes",
    "recover_typed_data",
    "to_checksum_address",
    "typed_message_from_json",
    "verify_signer",
]
