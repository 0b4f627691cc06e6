"""Assets and amounts: money is integers.

An `Amount` is a whole number of an asset's atomic units (for USDC, 10**-6 dollars), tagged
with its `Asset`. Human text such as ``"$0.01"`` or ``"0.01 USDC"`` is parsed once, at the
edge, by `parse_amount`, with exact integer arithmetic: no floats anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from paywire.errors import InvalidInput

MAX_ATOMIC = 2**128 - 1
"""The largest amount of one transfer or balance: u128, as in TigerBeetle and EVM tokens."""

MAX_DECIMALS = 30
"""Asset precision bound; ETH's 18 is the largest in use, 30 leaves room without silliness."""

MAX_AMOUNT_TEXT_CHARS = 100
"""Longest amount text we parse; 2**128 has 39 digits, so anything longer is hostile."""

_ASSET_CODE = re.compile(r"[A-Z][A-Z0-9]{0,11}")
_AMOUNT_TEXT = re.compile(
    r"(?P<dollar>\$)?(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?(?:\s+(?P<code>[A-Za-z][A-Za-z0-9]*))?"
)


class InvalidAmount(InvalidInput):
    """Amount text that cannot be parsed, or an amount outside its bounds."""

    code = "invalid_amount"


class AssetMismatch(InvalidInput):
    """Two amounts, or an amount and an account, are of different assets."""

    code = "asset_mismatch"


@dataclass(frozen=True, slots=True)
class Asset:
    """A unit of value: a ticker-like `code` and how many `decimals` its atomic unit has."""

    code: str
    decimals: int

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not _ASSET_CODE.fullmatch(self.code):
            raise InvalidInput(
                f"asset code {self.code!r} must be 1-12 upper-case letters or digits, "
                "starting with a letter (e.g. USDC)"
            )
        if (
            not isinstance(self.decimals, int)
            or isinstance(self.decimals, bool)
            or not 0 <= self.decimals <= MAX_DECIMALS
        ):
            raise InvalidInput(
                f"asset {self.code} decimals must be an integer from 0 to {MAX_DECIMALS}"
            )

    def atomic(self, atomic: int) -> Amount:
        """An amount of this asset from atomic units."""
        return Amount(atomic, self)

    def parse(self, text: str) -> Amount:
        """Parse human text (``"0.01"``, ``"$0.01"``, ``"0.01 USDC"``) as this asset.

        Unlike `parse_amount`, a bare number here is in whole units (``"1.5"`` is 1.5 USDC),
        because the asset is already known.
        """
        return _parse(text, self, bare_is_atomic=False)

    def __str__(self) -> str:
        return self.code


USDC = Asset("USDC", 6)
EURC = Asset("EURC", 6)
ETH = Asset("ETH", 18)

KNOWN_ASSETS: dict[str, Asset] = {asset.code: asset for asset in (USDC, EURC, ETH)}
"""Assets paywire knows by code; others can be declared with `Asset(code, decimals)`."""

DOLLAR_ASSETS = frozenset({"USDC"})
"""Assets that a ``$`` price may denote: dollar stablecoins."""

DEFAULT_DOLLAR_ASSET = USDC
"""What ``"$0.01"`` means when no asset is given."""


@dataclass(frozen=True, slots=True)
class Amount:
    """A signed whole number of atomic units of one asset.

    Amounts may be negative or zero as results of arithmetic (a net balance); a transfer
    checks its own bound (``0 < amount <= MAX_ATOMIC``).
    """

    atomic: int
    asset: Asset

    def __post_init__(self) -> None:
        if not isinstance(self.atomic, int) or isinstance(self.atomic, bool):
            raise InvalidAmount(f"an amount is a whole number of atomic units, not {self.atomic!r}")
        if abs(self.atomic) > MAX_ATOMIC:
            raise InvalidAmount(
                f"amount {self.atomic} is past the bound of {MAX_ATOMIC} atomic units (2^128 - 1)"
            )

    def _same_asset(self, other: Amount) -> None:
        if self.asset != other.asset:
            raise AssetMismatch(f"cannot combine {self.asset.code} with {other.asset.code}")

    def __add__(self, other: Amount) -> Amount:
        self._same_asset(other)
        return Amount(self.atomic + other.atomic, self.asset)

    def __sub__(self, other: Amount) -> Amount:
        self._same_asset(other)
        return Amount(self.atomic - other.atomic, self.asset)

    def __neg__(self) -> Amount:
        return Amount(-self.atomic, self.asset)

    def __lt__(self, other: Amount) -> bool:
        self._same_asset(other)
        return self.atomic < other.atomic

    def __le__(self, other: Amount) -> bool:
        self._same_asset(other)
        return self.atomic <= other.atomic

    def __gt__(self, other: Amount) -> bool:
        self._same_asset(other)
        return self.atomic > other.atomic

    def __ge__(self, other: Amount) -> bool:
        self._same_asset(other)
        return self.atomic >= other.atomic

    def to_decimal(self) -> Decimal:
        """The amount in whole units, exactly (for display and interchange, never for math)."""
        # From text, not scaleb: Decimal arithmetic rounds at the context's 28 digits.
        return Decimal(self.format())

    def format(self) -> str:
        """Whole units with trailing zeros trimmed, e.g. ``0.01``."""
        return format_atomic(self.atomic, self.asset.decimals)

    def __str__(self) -> str:
        return f"{self.format()} {self.asset.code}"


def format_atomic(atomic: int, decimals: int) -> str:
    """Format atomic units as whole units with trailing zeros trimmed (``10000, 6 -> 0.01``)."""
    sign = "-" if atomic < 0 else ""
    whole, frac = divmod(abs(atomic), 10**decimals)
    if frac == 0 or decimals == 0:
        return f"{sign}{whole}"
    frac_text = str(frac).rjust(decimals, "0").rstrip("0")
    return f"{sign}{whole}.{frac_text}"


def parse_amount(
    text: str,
    asset: Asset | None = None,
    *,
    assets: dict[str, Asset] | None = None,
) -> Amount:
    """Parse an amount written by a person or a config file.

    - ``"$0.01"``: dollars, in `asset` if it is a dollar stablecoin, else in USDC;
    - ``"0.01 USDC"``: whole units of the named asset (looked up in `assets`, default
      `KNOWN_ASSETS`; it must equal `asset` when both are given);
    - ``"10000"``: atomic units of `asset`, which must then be given.

    Raises `InvalidAmount` with a message saying what to write instead.
    """
    return _parse(text, asset, bare_is_atomic=True, assets=assets)


def _parse(
    text: str,
    asset: Asset | None,
    *,
    bare_is_atomic: bool,
    assets: dict[str, Asset] | None = None,
) -> Amount:
    if not isinstance(text, str):
        raise InvalidAmount(f"an amount must be text, not {type(text).__name__}")
    if len(text) > MAX_AMOUNT_TEXT_CHARS:
        raise InvalidAmount(f"amount text is longer than {MAX_AMOUNT_TEXT_CHARS} characters")
    match = _AMOUNT_TEXT.fullmatch(text.strip())
    if match is None:
        raise InvalidAmount(
            f"cannot read {text!r} as an amount; write '$0.01', '0.01 USDC' or atomic units "
            "such as '10000'"
        )
    known = KNOWN_ASSETS if assets is None else assets
    code = match["code"]
    resolved: Asset
    if code is not None:
        if match["dollar"]:
            raise InvalidAmount(f"{text!r} has both '$' and an asset code; use one")
        named = known.get(code.upper())
        if named is None:
            raise InvalidAmount(f"unknown asset {code!r} in {text!r}; known: {', '.join(known)}")
        if asset is not None and named != asset:
            raise AssetMismatch(f"{text!r} is in {named.code}, expected {asset.code}")
        resolved = named
    elif match["dollar"]:
        if asset is not None and asset.code not in DOLLAR_ASSETS:
            raise AssetMismatch(f"{text!r} is in dollars but the asset is {asset.code}")
        resolved = asset or DEFAULT_DOLLAR_ASSET
    else:
        if asset is None:
            raise InvalidAmount(
                f"{text!r} has no unit; write '${text.strip()}' or '{text.strip()} USDC'"
            )
        resolved = asset
        if bare_is_atomic:
            if match["frac"] is not None:
                raise InvalidAmount(
                    f"{text!r} has no unit, so it is read as atomic units, which are whole; "
                    f"write '{text.strip()} {asset.code}' for whole units"
                )
            return _bounded(int(match["int"]), resolved, text)
    frac = match["frac"] or ""
    if len(frac) > resolved.decimals:
        raise InvalidAmount(
            f"{text!r} is finer than one atomic unit of {resolved.code} "
            f"({resolved.decimals} decimals)"
        )
    scale = 10**resolved.decimals
    atomic = int(match["int"]) * scale + int(frac.ljust(resolved.decimals, "0") or 0)
    return _bounded(atomic, resolved, text)


def _bounded(atomic: int, asset: Asset, text: str) -> Amount:
    if atomic > MAX_ATOMIC:
        raise InvalidAmount(f"{text!r} is past the bound of {MAX_ATOMIC} atomic units (2^128 - 1)")
    return Amount(atomic, asset)
