"""What `paywire mandate` reads: amounts, durations, times, addresses, limits and mandate
chains (a file, base64 or JSON text, or an id); mandate files are in `_mandate_file`.

Every problem is an `InvalidInput` naming the flag or the file key to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from paywire.cli import _common
from paywire.errors import InvalidInput, PaywireError

if TYPE_CHECKING:
    from paywire.mandate import AssetLimit, MandateChain, Window
    from paywire.money import Asset

MAX_MANDATE_FILE_BYTES = 64 * 1024
"""A mandate file (TOML/JSON fields, or a chain) is a few KB; a larger file is a mistake."""

MAX_FLAG_ITEMS = 64
"""Repeated flags (--window, --payee, --origin) per command; the mandate has its own caps."""

DEFAULT_VALID_FOR = "30d"
"""How long an issued mandate lives unless --valid-for or --valid-until says otherwise."""

MANDATES_DIR = "mandates"
"""Where issued and delegated chains are written, under the paywire home."""

_DURATION = re.compile(r"([0-9]{1,12})\s*([smhdw]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_ID_PREFIX = re.compile(r"0x[0-9a-f]{4,64}")


@dataclass(slots=True)
class LimitSpec:
    """One asset limit as written by a person: text, parsed by `build_limit`."""

    network: str | None = None
    asset: str | None = None
    total: str | None = None
    per_payment: str | None = None
    windows: list[str] | None = None
    where: str = ""
    """Where it was written (a file key prefix), for error messages; "" for flags."""


@dataclass(slots=True)
class IssueSpec:
    """`paywire mandate issue` fields, from flags and/or a file (flags win)."""

    principal: str | None = None
    agent: str | None = None
    purpose: str | None = None
    task_id: str | None = None
    valid_for: str | None = None
    valid_until: str | None = None
    payees: list[str] | None = None
    origins: list[str] | None = None
    limits: list[LimitSpec] = field(default_factory=list)


# --- small values ----------------------------------------------------------------------------


def parse_duration(text: str, what: str, *, low: int, high: int) -> int:
    """``90s``, ``15m``, ``1h``, ``30d``, ``2w`` or bare seconds, within [low, high]."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(
            f"{what}: cannot read {str(text)[:40]!r} as a duration; write e.g. 3600s, 15m, "
            "1h, 24h, 30d or 2w"
        )
    seconds = int(match[1]) * _UNIT_S[match[2]]
    if not low <= seconds <= high:
        raise InvalidInput(f"{what}: {text.strip()} is {seconds} s; it must be {low} to {high} s")
    return seconds


def parse_time(text: str, what: str) -> int:
    """Unix seconds, or an ISO 8601 date or date-time (UTC unless it names an offset)."""
    value = text.strip() if isinstance(text, str) else ""
    if value.isdigit() and len(value) <= 12:
        return int(value)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{what}: cannot read {value[:40]!r} as a time; write 2026-01-31, "
            "2026-01-31T18:00:00Z or Unix seconds"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def show_time(seconds: int) -> str:
    """A Unix time for people: ISO 8601 in UTC."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(seconds)


def show_duration(seconds: int) -> str:
    """A window length for people: the largest whole unit (``1h``, ``90m``, ``3600s`` ...)."""
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def resolve_address(text: str, what: str) -> str:
    """An address (0x + 40 hex digits), or the address of a wallet of this home."""
    from paywire.crypto.keys import parse_address
    from paywire.crypto.keystore import KeyStore

    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"{what}: give an address or a wallet name")
    value = text.strip()
    try:
        if value.startswith("0x"):
            return parse_address(value)
        return KeyStore(_common.home_dir() / "keys").info(value).address
    except PaywireError as error:
        raise InvalidInput(f"{what}: {error}") from None


def wallet_address(name: str) -> str:
    """The address of the wallet `name` (no passphrase needed)."""
    from paywire.crypto.keystore import KeyStore

    return KeyStore(_common.home_dir() / "keys").info(name).address


# --- limits ----------------------------------------------------------------------------------


def asset_of(text: str, what: str) -> tuple[str, Asset | None]:
    """The asset as the mandate names it, and how its amounts are valued: a code
    (``USDC``), a token address (amounts in atomic units), or ``0xTOKEN=USDC`` (a token
    valued as that asset, as `paywire pay --token` takes it)."""
    from paywire.crypto.keys import parse_address
    from paywire.money import KNOWN_ASSETS

    value = text.strip() if isinstance(text, str) else ""
    token, sep, code = value.partition("=")
    try:
        if token.startswith("0x"):
            address = parse_address(token)
            if not sep:
                return address, None
            asset = KNOWN_ASSETS.get(code.strip().upper())
            if asset is None:
                raise InvalidInput(f"the value asset is one of {', '.join(sorted(KNOWN_ASSETS))}")
            return address, asset
    except PaywireError as error:
        raise InvalidInput(f"{what}: {error}") from None
    if sep or not value:
        raise InvalidInput(
            f"{what}: {value[:60]!r} is not an asset; write a code such as USDC, a token "
            "address, or 0xTOKEN=USDC"
        )
    code = value.upper() if value.upper() in KNOWN_ASSETS else value
    return code, KNOWN_ASSETS.get(code)


def parse_money(text: str, asset: str, value_asset: Asset | None, what: str) -> int:
    """An amount above zero in atomic units: ``$5``, ``5 USDC``, or atomic units."""
    from paywire.money import parse_amount

    if not isinstance(text, str):
        raise InvalidInput(f"{what}: an amount is text such as '$5', '5 USDC' or '5000000'")
    if value_asset is None:
        if not text.strip().isdigit() or len(text.strip()) > 39:
            raise InvalidInput(
                f"{what}: amounts of {asset} are atomic units (a whole number); write the "
                "asset as 0xTOKEN=USDC to give them in dollars"
            )
        atomic = int(text.strip())
    else:
        try:
            atomic = parse_amount(text, value_asset).atomic
        except PaywireError as error:
            raise InvalidInput(f"{what}: {error}") from None
    if atomic <= 0:
        raise InvalidInput(f"{what}: the amount must be above zero")
    return atomic


def parse_window(text: str, asset: str, value_asset: Asset | None, what: str) -> Window:
    """``1h=$1``: a rolling window of that length and what may be spent in it."""
    from paywire.mandate import MAX_WINDOW_S, MIN_WINDOW_S, Window

    if not isinstance(text, str) or "=" not in text:
        raise InvalidInput(f"{what}: write a window as LENGTH=AMOUNT, e.g. 1h=$1 or 24h='5 USDC'")
    length, _, amount = text.partition("=")
    seconds = parse_duration(length, what, low=MIN_WINDOW_S, high=MAX_WINDOW_S)
    return Window(seconds, parse_money(amount, asset, value_asset, what))


def build_limit(spec: LimitSpec, flags: bool) -> AssetLimit:
    """An `AssetLimit` from its written fields (all but windows required)."""
    from paywire.mandate import AssetLimit, InvalidMandate

    def name(key: str) -> str:
        if flags:
            return "--" + key.replace("_", "-").removesuffix("s")
        return f"{spec.where}{key}"

    for key in ("network", "asset", "total", "per_payment"):
        if getattr(spec, key) is None:
            raise InvalidInput(f"{name(key)} is required")
    assert spec.asset is not None and spec.network is not None
    asset, value_asset = asset_of(spec.asset, name("asset"))
    total = parse_money(spec.total or "", asset, value_asset, name("total"))
    per_payment = parse_money(spec.per_payment or "", asset, value_asset, name("per_payment"))
    windows = [
        parse_window(text, asset, value_asset, name("windows"))
        for text in bounded(spec.windows or [], name("windows"))
    ]
    try:
        return AssetLimit(spec.network.strip(), asset, total, per_payment, tuple(windows))
    except InvalidMandate as error:
        key = {"perPayment": "per_payment", "seconds": "windows"}.get(error.field, error.field)
        raise InvalidInput(f"{name(key) if key else spec.where}: {error.reason}") from None


def bounded(items: list[str], what: str) -> list[str]:
    if len(items) > MAX_FLAG_ITEMS:
        raise InvalidInput(f"{what}: at most {MAX_FLAG_ITEMS} items")
    return items


# --- chains ----------------------------------------------------------------------------------


def mandates_dir() -> Path:
    return _common.home_dir() / MANDATES_DIR


def load_chain(source: str) -> tuple[MandateChain, Path | None]:
    """A mandate chain from a file, base64 or JSON text, or the id (or an id prefix of at
    least 4 hex digits) of a chain under ``<home>/mandates``; and its file, if any."""
    from paywire.mandate import MandateChain

    text = source.strip()
    path: Path | None = None
    if _is_file(text):
        path = Path(text)
    elif _ID_PREFIX.fullmatch(text.lower()):
        path = _find_by_id(text.lower())
    elif "/" in text or text.endswith((".json", ".toml")):
        raise InvalidInput(f"no such file: {text[:200]}")
    elif not text.startswith(("{", "eyJ")):  # a chain's base64 always starts with '{"'
        raise InvalidInput(
            f"{text[:60]!r} is neither a file, a mandate id under {mandates_dir()}, nor a "
            "mandate chain's base64 or JSON text"
        )
    if path is None:
        try:
            if text.startswith("{"):
                return MandateChain.from_json(text), None
            return MandateChain.from_base64(text), None
        except PaywireError as error:
            message = str(error)
            if "mandate chain" not in message:
                message = f"not a mandate chain: {message}"
            raise InvalidInput(message) from None
    data = read_bytes(path, "mandate chain")
    try:
        return MandateChain.from_json(data), path
    except PaywireError as error:
        raise InvalidInput(f"{path}: {error}") from None


def _is_file(text: str) -> bool:
    try:
        return len(text) < 4096 and Path(text).is_file()
    except OSError:  # a name too long to be a path: base64 text
        return False


def _find_by_id(prefix: str) -> Path:
    folder = mandates_dir()
    try:
        found = sorted(folder.glob(f"{prefix}*.json"))
    except OSError:
        found = []
    if len(found) == 1:
        return found[0]
    if not found:
        raise InvalidInput(f"no mandate chain with id {prefix} in {folder}")
    raise InvalidInput(f"{len(found)} mandate chains in {folder} start with {prefix}; give more")


def read_bytes(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_MANDATE_FILE_BYTES + 1)
    except OSError as error:
        raise InvalidInput(f"cannot read {what} {path}: {error.strerror}") from None
    if len(data) > MAX_MANDATE_FILE_BYTES:
        raise InvalidInput(f"{path} is larger than {MAX_MANDATE_FILE_BYTES} bytes")
    return data


def write_chain(chain: MandateChain, out: Path | None) -> Path:
    """Write `chain` as JSON to `out` (default ``<home>/mandates/<leaf id>.json``); an
    existing file is never overwritten."""
    path = out if out is not None else mandates_dir() / f"{chain.leaf.id}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as file:
            file.write(chain.to_json() + "\n")
    except FileExistsError:
        raise InvalidInput(f"{path} exists; choose another --out or remove it") from None
    except OSError as error:
        raise InvalidInput(f"cannot write {path}: {error.strerror}") from None
    return path
