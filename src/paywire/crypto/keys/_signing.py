"""secp256k1 private keys and signatures: signing digests, recovering and checking signers."""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import FrozenInstanceError

from coincurve import PrivateKey as _CurveKey
from coincurve import PublicKey as _CurvePublicKey

from paywire.crypto.keys._address import _checksum, address_bytes
from paywire.crypto.keys._keccak import keccak256
from paywire.errors import InvalidInput, PaywireError

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
"""The order of secp256k1's group: private keys and signature scalars live in [1, n)."""

SECP256K1_HALF_N = SECP256K1_N // 2
"""The largest `s` a canonical (low-s, EIP-2) signature may carry."""

DIGEST_BYTES = 32
"""What a signature signs: a 32-byte digest (an EIP-712 hash), never a raw message."""

SIGNATURE_BYTES = 65
"""``r || s || v``: 32 + 32 + 1 bytes."""

PRIVATE_KEY_BYTES = 32
"""A secp256k1 scalar."""

SIGNATURE_TEXT_CHARS = 2 + 2 * SIGNATURE_BYTES
"""``0x`` and 130 hex digits: the only length `parse_signature` accepts."""

_ZERO32 = bytes(32)
_N_BYTES = SECP256K1_N.to_bytes(32, "big")
_HALF_N_BYTES = SECP256K1_HALF_N.to_bytes(32, "big")
# v as sent -> the recovery id byte libsecp256k1 expects; anything else is refused.
_RECOVERY_ID = {27: b"\x00", 28: b"\x01", 0: b"\x00", 1: b"\x01"}
_HEX64 = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")
_HEX130 = re.compile(r"[0-9a-fA-F]{130}")


class InvalidSignature(PaywireError):
    """A signature that is malformed, malleable (high s) or recovers no public key."""

    code = "invalid_signature"


class WrongSigner(InvalidSignature):
    """A valid signature, by someone other than the expected signer."""

    code = "wrong_signer"


class InvalidPrivateKey(InvalidInput):
    """Bytes or text that are not a secp256k1 private key (messages never echo the secret)."""

    code = "invalid_private_key"


# --- private keys ---------------------------------------------------------------------------


class PrivateKey:
    """A secp256k1 private key (immutable). Its text forms show the address, never the secret.

    Build one with `generate`, `from_bytes` or `from_hex`; reveal the secret only with
    `to_hex` or `to_bytes`, on purpose.
    """

    __slots__ = ("__secret", "_signer", "address", "public_key_bytes")

    __secret: bytes
    _signer: _CurveKey

    address: str
    """The key's checksummed Ethereum address (computed once)."""
    public_key_bytes: bytes
    """The uncompressed public key without its 0x04 prefix: X || Y, 64 bytes (Ethereum's form)."""

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != PRIVATE_KEY_BYTES:
            raise InvalidPrivateKey("a private key is exactly 32 bytes")
        if secret == _ZERO32 or secret >= _N_BYTES:
            raise InvalidPrivateKey("a private key must be a number in [1, n) of secp256k1")
        signer = _CurveKey(secret)
        public = signer.public_key.format(compressed=False)[1:]
        set_attribute = object.__setattr__
        set_attribute(self, "_PrivateKey__secret", secret)
        set_attribute(self, "_signer", signer)
        set_attribute(self, "public_key_bytes", public)
        set_attribute(self, "address", _checksum(keccak256(public)[12:]))

    @classmethod
    def generate(cls) -> PrivateKey:
        """A new random key from the operating system's CSPRNG."""
        while True:
            candidate = secrets.token_bytes(PRIVATE_KEY_BYTES)
            if candidate != _ZERO32 and candidate < _N_BYTES:  # fails with p ~ 2**-128
                return cls(candidate)

    @classmethod
    def from_bytes(cls, secret: bytes) -> PrivateKey:
        """The key with these 32 bytes (big-endian scalar in [1, n))."""
        if not isinstance(secret, bytes | bytearray):
            raise InvalidPrivateKey(f"a private key is bytes, got {type(secret).__name__}")
        return cls(bytes(secret))

    @classmethod
    def from_hex(cls, text: str) -> PrivateKey:
        """The key written as 64 hex digits, with or without ``0x``."""
        if not isinstance(text, str) or not _HEX64.fullmatch(text):
            # Never echo the text: it may be a (slightly mangled) secret.
            raise InvalidPrivateKey("a private key is 64 hex digits, optionally after 0x")
        return cls(bytes.fromhex(text[-64:]))

    def to_bytes(self) -> bytes:
        """The 32 secret bytes. Anyone who sees them controls the key."""
        return self.__secret

    def to_hex(self) -> str:
        """The secret as ``0x`` + 64 hex digits. Anyone who sees it controls the key."""
        return "0x" + self.__secret.hex()

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a 32-byte digest: 65 bytes ``r || s || v``, low s, v in {27, 28}."""
        if not isinstance(digest, bytes) or len(digest) != DIGEST_BYTES:
            raise InvalidInput("a digest to sign is exactly 32 bytes (hash the message first)")
        # libsecp256k1 always produces low-s signatures; v is its recovery id, 0 or 1.
        signature: bytes = self._signer.sign_recoverable(digest, hasher=None)
        return signature[:64] + (b"\x1b" if signature[64] == 0 else b"\x1c")

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"a PrivateKey is immutable (cannot set {name})")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"a PrivateKey is immutable (cannot delete {name})")

    def __repr__(self) -> str:
        return f"PrivateKey(address={self.address})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateKey):
            return NotImplemented
        return hmac.compare_digest(self.__secret, other.__secret)

    def __hash__(self) -> int:
        return hash(self.address)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a PrivateKey is not picklable: keep it in a KeyStore instead")

    def __copy__(self) -> PrivateKey:
        return self  # immutable: a copy is the same key

    def __deepcopy__(self, memo: dict[int, object]) -> PrivateKey:
        return self


# --- signatures -----------------------------------------------------------------------------


def parse_signature(text: str) -> bytes:
    """A signature written as ``0x`` + 130 hex digits (65 bytes), as in x402 payloads.

    Only the shape is checked here; `recover_address` checks the values.
    """
    if not isinstance(text, str):
        raise InvalidSignature(f"a signature is text, got {type(text).__name__}")
    if len(text) != SIGNATURE_TEXT_CHARS or text[:2] != "0x" or not _HEX130.fullmatch(text, 2):
        shown = repr(text) if len(text) <= SIGNATURE_TEXT_CHARS else f"{len(text)} characters"
        raise InvalidSignature(
            f"a signature is 0x followed by 130 hex digits (65 bytes), got {shown}"
        )
    return bytes.fromhex(text[2:])


def _signature_problem(signature: bytes) -> str:
    """Why a 65-byte signature is refused (the slow path, after the quick checks failed)."""
    r, s, v = signature[:32], signature[32:64], signature[64]
    if v not in _RECOVERY_ID:
        return f"v is {v}; it must be 27 or 28 (or 0 or 1)"
    if r == _ZERO32 or r >= _N_BYTES:
        return "r is out of range (0 or not below the curve order)"
    if s == _ZERO32 or s >= _N_BYTES:
        return "s is out of range (0 or not below the curve order)"
    return "s is in the upper half of the curve order: a malleable signature (EIP-2)"


def recover_address_bytes(digest: bytes, signature: bytes) -> bytes:
    """The 20 address bytes of the key that made `signature` over `digest`.

    The checks of `recover_address`, without the checksummed text: for comparing with an
    expected signer's `address_bytes`.
    """
    if digest.__class__ is not bytes:
        digest = bytes(digest)
    if signature.__class__ is not bytes:
        signature = bytes(signature)
    if len(digest) != DIGEST_BYTES:
        raise InvalidInput(f"a digest is exactly 32 bytes, got {len(digest)}")
    if len(signature) != SIGNATURE_BYTES:
        raise InvalidSignature(f"a signature is exactly 65 bytes (r, s, v), got {len(signature)}")
    # Byte strings of equal length compare as big-endian numbers: no int conversion needed.
    recovery_id = _RECOVERY_ID.get(signature[64])
    r = signature[:32]
    s = signature[32:64]
    if recovery_id is None or r == _ZERO32 or r >= _N_BYTES or s == _ZERO32 or s > _HALF_N_BYTES:
        raise InvalidSignature(f"invalid signature: {_signature_problem(signature)}")
    try:
        public = _CurvePublicKey.from_signature_and_message(
            signature[:64] + recovery_id, digest, hasher=None
        )
    except ValueError:
        raise InvalidSignature("invalid signature: it recovers no public key") from None
    return keccak256(public.format(compressed=False)[1:])[12:]


def recover_address(digest: bytes, signature: bytes) -> str:
    """The checksummed address whose key made `signature` (65 bytes) over `digest` (32 bytes).

    Accepts v in {27, 28} or {0, 1}. Raises `InvalidSignature` for a malformed signature,
    r or s out of range, a high s (malleable), or one that recovers no key. Comparing the
    result with the expected signer is the caller's job.
    """
    return _checksum(recover_address_bytes(digest, signature))


def verify_signer(digest: bytes, signature: bytes, signer: str) -> None:
    """Check that `signer` (an address) made `signature` over `digest`.

    The hot path of a facilitator: compares address bytes, never builds checksummed text
    unless it fails. Raises `WrongSigner`, `InvalidSignature`, or `InvalidAddress`.
    """
    expected = address_bytes(signer)
    recovered = recover_address_bytes(digest, signature)
    if recovered != expected:
        raise WrongSigner(
            f"the signature was made by {_checksum(recovered)}, not by {_checksum(expected)}"
        )
