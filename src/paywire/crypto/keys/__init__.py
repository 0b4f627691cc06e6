"""secp256k1 keys, Ethereum addresses and signatures: the hot path of every paid request.

Hashing is Keccak-256 (Ethereum's, not FIPS SHA3-256). Signatures are 65 bytes
``r || s || v`` with ``v`` in {27, 28}. Recovery refuses malleable signatures (high ``s``,
as EIP-2 and OpenZeppelin's ECDSA do), so one authorization has exactly one valid signature.

Speed matters here: `recover_address` runs once per paid request. It checks the signature's
shape with byte comparisons, recovers with libsecp256k1 (coincurve) and hashes with
pycryptodome's Keccak called through a lean ctypes binding (three C calls instead of the
dozen Python steps of ``keccak.new(...).digest()``).

The parts: the Keccak binding (`_keccak`), addresses (`_address`), private keys and
signatures (`_signing`).
"""

from paywire.crypto.keys._address import (
    ADDRESS_BYTES,
    ADDRESS_CACHE_SIZE,
    ADDRESS_TEXT_CHARS,
    InvalidAddress,
    address_bytes,
    parse_address,
    to_checksum_address,
)
from paywire.crypto.keys._keccak import _fast_keccak as _fast_keccak
from paywire.crypto.keys._keccak import _keccak256_portable as _keccak256_portable
from paywire.crypto.keys._keccak import keccak256
from paywire.crypto.keys._signing import (
    DIGEST_BYTES,
    PRIVATE_KEY_BYTES,
    SECP256K1_HALF_N,
    SECP256K1_N,
    SIGNATURE_BYTES,
    SIGNATURE_TEXT_CHARS,
    InvalidPrivateKey,
    InvalidSignature,
    PrivateKey,
    WrongSigner,
    parse_signature,
    recover_address,
    recover_address_bytes,
    verify_signer,
)

__all__ = [
    "ADDRESS_BYTES",
    "ADDRESS_CACHE_SIZE",
    "ADDRESS_TEXT_CHARS",
    "DIGEST_BYTES",
    "PRIVATE_KEY_BYTES",
    "SECP256K1_HALF_N",
    "SECP256K1_N",
    "SIGNATURE_BYTES",
    "SIGNATURE_TEXT_CHARS",
    "InvalidAddress",
    "InvalidPrivateKey",
    "InvalidSignature",
    "PrivateKey",
    "WrongSigner",
    "address_bytes",
    "keccak256",
    "parse_address",
    "parse_signature",
    "recover_address",
    "recover_address_bytes",
    "to_checksum_address",
    "verify_signer",
]
