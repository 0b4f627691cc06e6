"""Private keys at rest: Ethereum keystore v3 files (scrypt + AES-128-CTR), one per name.

Files are the standard format geth, eth_account and most wallets read and write, so a key
can move between paywire and other tools. A `KeyStore` keeps named keys in one folder
(mode 0700) as ``<name>.json`` files (mode 0600), written atomically and never overwritten.
The address is stored in clear in each file (as keystore v3 does), so listing keys needs
no passphrase; it is checked against the key on every decryption.

eth_account does the cryptography; this module is imported only by what needs keys at rest
(the ``paywire wallet`` commands, an agent's wallet), never by the verification hot path.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from paywire import _json
from paywire.crypto.keys import InvalidAddress, InvalidPrivateKey, PrivateKey, parse_address
from paywire.errors import InvalidInput, NotFound, PaywireError

SCRYPT_N_STANDARD = 2**18
"""scrypt cost of new files: the keystore v3 standard (geth's default), ~256 MiB and ~1 s."""

SCRYPT_N_LIGHT = 2**12
"""scrypt cost in light mode (as geth's --lightkdf): for demos and tests, not for real funds."""

MAX_KEYSTORE_FILE_BYTES = 64 * 1024
"""A keystore v3 file is ~500 bytes; anything much larger is not one."""

MAX_SCRYPT_MEMORY_BYTES = 2**30
"""Refuse to decrypt files whose scrypt parameters need more memory (128 * r * n bytes):
a hostile file could otherwise exhaust memory. The standard needs 256 MiB."""

MAX_SCRYPT_P = 16
"""scrypt parallelism bound: time grows linearly with p; files in use have p = 1."""

MAX_PBKDF2_ROUNDS = 10_000_000
"""PBKDF2 iteration bound for imported pbkdf2 files (a few seconds of work)."""

MAX_PASSPHRASE_CHARS = 4096
"""Longest passphrase accepted; longer is a pasted file, not a passphrase."""

KEY_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
"""Key names: lower-case letters, digits, '.', '_', '-', 1-64 chars, not starting with a
punctuation mark (so never a hidden file, an option or a path)."""

_DKLEN = 32  # keystore v3 derives 32 bytes: 16 for AES-128, 16 for the MAC
_FILE_SUFFIX = ".json"


class InvalidKeyName(InvalidInput):
    """A key name outside `KEY_NAME`."""

    code = "invalid_key_name"


class KeyExists(PaywireError):
    """A key of that name already exists (keys are never overwritten)."""

    code = "key_exists"


class KeyNotFound(NotFound):
    """No key of that name in the store."""

    code = "key_not_found"


class WrongPassphrase(PaywireError):
    """The passphrase does not decrypt the key (the file's MAC does not match)."""

    code = "wrong_passphrase"


class InvalidKeystore(InvalidInput):
    """A file that is not a usable keystore v3 file."""

    code = "invalid_keystore"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A stored key, as far as it can be known without its passphrase."""

    name: str
    address: str
    path: Path


@dataclass(frozen=True, slots=True)
class KeyProblem:
    """A file in the key folder that could not be read as a key, and why."""

    path: Path
    reason: str


# --- the file format ------------------------------------------------------------------------


def encrypt_key(key: PrivateKey, passphrase: str, *, light_kdf: bool = False) -> dict[str, object]:
    """`key` as a keystore v3 document (scrypt, n = 2**18, or 2**12 with `light_kdf`)."""
    _check_passphrase(passphrase, new=True)
    from eth_account import Account  # heavy: imported only when a key is encrypted

    cost = SCRYPT_N_LIGHT if light_kdf else SCRYPT_N_STANDARD
    document: dict[str, object] = Account.encrypt(
        key.to_bytes(), passphrase, kdf="scrypt", iterations=cost
    )
    return document


def keystore_address(document: object) -> str:
    """The checksummed address a keystore v3 document claims, after checking its shape.

    Raises `InvalidKeystore` for anything that is not a keystore v3 document paywire would
    decrypt (including KDF parameters past the MAX_* bounds).
    """
    if not isinstance(document, Mapping):
        raise InvalidKeystore("a keystore is a JSON object")
    fields = {str(key).lower(): value for key, value in document.items()}
    if fields.get("version") != 3:
        raise InvalidKeystore(
            f"only keystore version 3 is supported, not {fields.get('version')!r}"
        )
    crypto = fields.get("crypto")
    if not isinstance(crypto, Mapping):
        raise InvalidKeystore("the keystore has no crypto section")
    crypto = {str(key).lower(): value for key, value in crypto.items()}
    if crypto.get("cipher") != "aes-128-ctr":
        raise InvalidKeystore(f"unsupported cipher {crypto.get('cipher')!r} (expected aes-128-ctr)")
    params = crypto.get("cipherparams")
    if not isinstance(params, Mapping):
        raise InvalidKeystore("the keystore has no cipherparams")
    _hex_field(params.get("iv"), "cipherparams.iv", 16)
    _hex_field(crypto.get("ciphertext"), "ciphertext", 32)
    _hex_field(crypto.get("mac"), "mac", 32)
    _check_kdf(crypto.get("kdf"), crypto.get("kdfparams"))
    address = fields.get("address")
    if not isinstance(address, str):
        raise InvalidKeystore("the keystore has no address field")
    try:
        return parse_address(address if address.startswith("0x") else "0x" + address)
    except InvalidAddress as error:
        raise InvalidKeystore(f"the keystore's address field is invalid: {error}") from None


def _hex_field(value: object, name: str, size: int | None) -> None:
    if not isinstance(value, str) or len(value) > 2 * 1024:
        raise InvalidKeystore(f"the keystore's {name} is missing or not hex")
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise InvalidKeystore(f"the keystore's {name} is not hex") from None
    if size is not None and len(raw) != size:
        raise InvalidKeystore(f"the keystore's {name} is {len(raw)} bytes, expected {size}")


def _positive_int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidKeystore(f"the keystore's kdfparams.{name} is not a positive integer")
    return value


def _check_kdf(kdf: object, params: object) -> None:
    if not isinstance(params, Mapping):
        raise InvalidKeystore("the keystore has no kdfparams")
    if params.get("dklen") != _DKLEN:
        raise InvalidKeystore(f"kdfparams.dklen must be {_DKLEN}")
    _hex_field(params.get("salt"), "kdfparams.salt", None)
    if kdf == "scrypt":
        n = _positive_int(params.get("n"), "n")
        r = _positive_int(params.get("r"), "r")
        p = _positive_int(params.get("p"), "p")
        if n < 2 or n & (n - 1):
            raise InvalidKeystore("kdfparams.n must be a power of 2")
        if 128 * r * n > MAX_SCRYPT_MEMORY_BYTES or p > MAX_SCRYPT_P:
            raise InvalidKeystore(
                f"scrypt parameters n={n}, r={r}, p={p} need more work than paywire allows "
                f"({MAX_SCRYPT_MEMORY_BYTES // 2**20} MiB, p <= {MAX_SCRYPT_P})"
            )
    elif kdf == "pbkdf2":
        rounds = _positive_int(params.get("c"), "c")
        if params.get("prf") != "hmac-sha256":
            raise InvalidKeystore("pbkdf2 keystores must use hmac-sha256")
        if rounds > MAX_PBKDF2_ROUNDS:
            raise InvalidKeystore(f"pbkdf2 with {rounds} rounds is more than {MAX_PBKDF2_ROUNDS}")
    else:
        raise InvalidKeystore(f"unsupported key derivation {kdf!r} (expected scrypt or pbkdf2)")


def decrypt_key(document: object, passphrase: str) -> PrivateKey:
    """The key in a keystore v3 document. Raises `WrongPassphrase` or `InvalidKeystore`."""
    _check_passphrase(passphrase, new=False)
    address = keystore_address(document)
    assert isinstance(document, Mapping)  # keystore_address checked it
    from eth_account import Account  # heavy: imported only when a key is decrypted

    try:
        secret = Account.decrypt(dict(document), passphrase)
    except ValueError as error:
        if "MAC mismatch" in str(error):
            raise WrongPassphrase("wrong passphrase: it does not decrypt this key") from None
        raise InvalidKeystore(f"the keystore cannot be decrypted: {error}") from None
    except (KeyError, TypeError) as error:
        raise InvalidKeystore(f"the keystore cannot be decrypted: {error!r}") from None
    try:
        key = PrivateKey.from_bytes(bytes(secret))
    except InvalidPrivateKey:
        raise InvalidKeystore("the keystore decrypts to something that is not a key") from None
    if key.address != address:
        raise InvalidKeystore(
            f"the keystore holds the key of {key.address} but claims {address}: "
            "the file was altered"
        )
    return key


def _check_passphrase(passphrase: object, *, new: bool) -> None:
    if not isinstance(passphrase, str):
        raise InvalidInput("a passphrase is text")
    if len(passphrase) > MAX_PASSPHRASE_CHARS:
        raise InvalidInput(f"a passphrase is at most {MAX_PASSPHRASE_CHARS} characters")
    if new and not passphrase:
        raise InvalidInput("the passphrase is empty: choose one that protects the key")


# --- the store ------------------------------------------------------------------------------


def check_key_name(name: object) -> str:
    """`name` if it is a valid key name, else `InvalidKeyName`."""
    if not isinstance(name, str) or not KEY_NAME.fullmatch(name):
        shown = repr(name)[:70]
        raise InvalidKeyName(
            f"key name {shown} is not valid: use 1-64 lower-case letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return name


class KeyStore:
    """Named private keys in a folder, one keystore v3 file each.

    Files are created with mode 0600 in a folder created with mode 0700, written whole
    (a temporary file, then linked into place, so a reader never sees half a key) and never
    overwritten, even by two processes racing for the same name (`KeyExists`).
    """

    def __init__(self, directory: Path, *, light_kdf: bool = False) -> None:
        self.directory = Path(directory)
        self.light_kdf = light_kdf
        """Whether new files use the light scrypt cost (`SCRYPT_N_LIGHT`)."""

    def path_of(self, name: str) -> Path:
        """Where the key `name` lives (or would)."""
        return self.directory / (check_key_name(name) + _FILE_SUFFIX)

    def create(self, name: str, passphrase: str) -> KeyInfo:
        """Generate a new key, store it under `name`, encrypted with `passphrase`."""
        return self.import_key(name, PrivateKey.generate(), passphrase)

    def import_key(self, name: str, key: PrivateKey, passphrase: str) -> KeyInfo:
        """Store an existing key under `name`, encrypted with `passphrase`."""
        path = self.path_of(name)
        if path.exists():  # fail before the (slow) key derivation; the link below is the guard
            raise KeyExists(f"a key named {name} already exists ({path}); choose another name")
        document = encrypt_key(key, passphrase, light_kdf=self.light_kdf)
        self._make_directory()
        _write_new(path, (json.dumps(document, indent=2) + "\n").encode("utf-8"), name)
        return KeyInfo(name, key.address, path)

    def info(self, name: str) -> KeyInfo:
        """The address and file of `name`, without decrypting it."""
        path = self.path_of(name)
        try:
            return KeyInfo(name, keystore_address(self._read(path, name)), path)
        except InvalidKeystore as error:
            raise InvalidKeystore(f"{path}: {error}") from None

    def load(self, name: str, passphrase: str) -> PrivateKey:
        """Decrypt the key `name`. Raises `KeyNotFound`, `WrongPassphrase`, `InvalidKeystore`."""
        path = self.path_of(name)
        try:
            return decrypt_key(self._read(path, name), passphrase)
        except InvalidKeystore as error:
            raise InvalidKeystore(f"{path}: {error}") from None

    def list(self) -> builtins.list[KeyInfo]:
        """Every readable key, sorted by name (unreadable files are skipped: see `scan`)."""
        return self.scan()[0]

    def scan(self) -> tuple[builtins.list[KeyInfo], builtins.list[KeyProblem]]:
        """Every readable key, sorted by name, and the ``.json`` files that are not keys."""
        keys: builtins.list[KeyInfo] = []
        problems: builtins.list[KeyProblem] = []
        try:
            paths = sorted(self.directory.glob("*" + _FILE_SUFFIX))
        except OSError as error:
            return keys, [KeyProblem(self.directory, f"cannot list the folder: {error.strerror}")]
        for path in paths:
            name = path.name[: -len(_FILE_SUFFIX)]
            if name.startswith("."):  # our own temporary files, or hidden files
                continue
            if not KEY_NAME.fullmatch(name):
                problems.append(KeyProblem(path, "the file name is not a valid key name"))
                continue
            try:
                keys.append(KeyInfo(name, keystore_address(self._read(path, name)), path))
            except (InvalidKeystore, KeyNotFound) as error:  # KeyNotFound: deleted meanwhile
                problems.append(KeyProblem(path, str(error)))
        return keys, problems

    def _read(self, path: Path, name: str) -> object:
        try:
            with path.open("rb") as file:
                data = file.read(MAX_KEYSTORE_FILE_BYTES + 1)
        except FileNotFoundError:
            raise KeyNotFound(
                f"no key named {name} in {self.directory} (see `paywire wallet list`)"
            ) from None
        except OSError as error:
            raise InvalidKeystore(f"cannot read the file: {error.strerror}") from None
        if len(data) > MAX_KEYSTORE_FILE_BYTES:
            raise InvalidKeystore(f"larger than a keystore file can be ({len(data)} bytes)")
        try:
            return _json.loads(data)
        except (ValueError, RecursionError):
            raise InvalidKeystore("not a JSON file") from None

    def _make_directory(self) -> None:
        if not self.directory.is_dir():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.directory.chmod(0o700)  # mkdir's mode is filtered by the umask


def _write_new(path: Path, data: bytes, name: str) -> None:
    """Write `data` to a new file at `path` (mode 0600), atomically, never replacing one."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(descriptor, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        try:
            # link() fails if `path` exists: unlike replace(), it cannot clobber a key that
            # another process wrote a moment ago.
            os.link(temporary, path)
        except FileExistsError:
            raise KeyExists(
                f"a key named {name} already exists ({path}); choose another name"
            ) from None
        except OSError:  # a file system without hard links: check, then replace
            if path.exists():
                raise KeyExists(
                    f"a key named {name} already exists ({path}); choose another name"
                ) from None
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Make the new directory entry durable (best effort: not every OS allows it)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
