"""The values a mandate holds, checked one by one: networks, assets, origins, text, numbers.

Every checker takes the document field name (camelCase, as in the JSON and EIP-712 forms)
so that its `InvalidMandate` says where the bad value is.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

from paywire.crypto.keys import InvalidAddress, parse_address
from paywire.mandate._errors import InvalidMandate

MAX_NETWORK_CHARS = 41
"""A CAIP-2 id: a namespace of 3-8 characters, a colon, a reference of 1-32."""

MAX_ASSET_CHARS = 42
"""An asset is a code (at most 12 characters) or a token address (0x + 40 hex digits)."""

MAX_ORIGIN_CHARS = 300
"""``https://`` + a host name (at most 253 characters) + ``:`` + a port, with room to spare."""

_NETWORK = re.compile(r"(?P<ns>[-a-z0-9]{3,8}):(?P<ref>[-_a-zA-Z0-9]{1,32})")
_NETWORK_PATTERN = re.compile(r"(?P<ns>[-a-z0-9]{3,8}):(?P<ref>[-_a-zA-Z0-9]{1,32}|\*)")
_ASSET_CODE = re.compile(r"[A-Z][A-Z0-9]{0,11}")  # as `paywire.money.Asset` codes
_HOST_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def show(value: object) -> str:
    """A short rendering of a value for an error message (containers by their size only:
    a hostile one may be huge or deeply nested)."""
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} item" + ("" if len(value) == 1 else "s")
    if isinstance(value, dict):
        return f"an object with {len(value)} key" + ("" if len(value) == 1 else "s")
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} chars)"


def check_int(value: object, field: str, low: int, high: int, what: str = "") -> int:
    """An int (never a bool) in [low, high]."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidMandate(f"must be an integer, got {show(value)}", field)
    if not low <= value <= high:
        raise InvalidMandate(
            f"{value} is out of range: it must be from {low} to {high}{what}", field
        )
    return int(value)


def check_bytes32(value: object, field: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise InvalidMandate(f"must be 32 bytes, got {show(value)}", field)
    return value


def check_address(value: object, field: str) -> str:
    """The checksummed form of an address; a wrong EIP-55 checksum is refused."""
    if not isinstance(value, str):
        raise InvalidMandate(f"must be an address (0x + 40 hex digits), got {show(value)}", field)
    try:
        return parse_address(value)
    except InvalidAddress as error:
        raise InvalidMandate(error.message, field) from None


def check_network(value: object, field: str) -> str:
    """An exact CAIP-2 network id, such as ``eip155:8453`` or ``paywire:<ledger-id>``."""
    if not isinstance(value, str) or not _NETWORK.fullmatch(value):
        raise InvalidMandate(
            f"{show(value)} is not a CAIP-2 network id (namespace:reference, e.g. eip155:8453 "
            "or paywire:<ledger-id>)",
            field,
        )
    return value


def check_network_pattern(value: object, field: str) -> str:
    """A CAIP-2 network id, or ``namespace:*`` for every network of a namespace."""
    if not isinstance(value, str) or not _NETWORK_PATTERN.fullmatch(value):
        raise InvalidMandate(
            f"{show(value)} is not a CAIP-2 network id or pattern (e.g. eip155:8453, "
            "paywire:<ledger-id>, or eip155:* for every EVM chain)",
            field,
        )
    return value


def network_matches(pattern: str, network: str) -> bool:
    """Whether the exact `network` is one `pattern` names."""
    if pattern.endswith(":*"):
        return network.startswith(pattern[:-1])
    return pattern == network


def pattern_covers(outer: str, inner: str) -> bool:
    """Whether every network `inner` names is one `outer` names (both may be patterns)."""
    if outer.endswith(":*"):
        return inner.startswith(outer[:-1])
    return outer == inner


def patterns_overlap(first: str, second: str) -> bool:
    """Whether some network is named by both (with this grammar: one covers the other)."""
    return pattern_covers(first, second) or pattern_covers(second, first)


def check_asset(value: object, field: str) -> str:
    """An asset code (``USDC``, as on the paywire ledger) or a token address (as on EVM
    chains, checksummed)."""
    if isinstance(value, str) and _ASSET_CODE.fullmatch(value):
        return value
    if isinstance(value, str) and value[:2] == "0x":
        return check_address(value, field)
    hint = ""
    if isinstance(value, str) and _ASSET_CODE.fullmatch(value.upper()):
        hint = f" (write {value.upper()})"
    raise InvalidMandate(
        f"{show(value)} is not an asset: an upper-case code of 1-12 letters or digits "
        f"such as USDC, or a token address (0x + 40 hex digits){hint}",
        field,
    )


def parse_origin(value: object, field: str) -> str:
    """The canonical form of a URL origin: ``scheme://host[:port]``, lower case, the
    default port left out. Paths, queries, fragments and user names are refused: an
    origin does not restrict a path, and a path here would suggest that it does."""
    if not isinstance(value, str) or len(value) > MAX_ORIGIN_CHARS or not value.isascii():
        raise InvalidMandate(
            f"{show(value)} is not a URL origin such as https://api.example.com "
            f"(ASCII, at most {MAX_ORIGIN_CHARS} characters; write other hosts in punycode)",
            field,
        )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise InvalidMandate(f"{show(value)} is not a URL origin", field) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidMandate(f"{show(value)}: an origin is http:// or https://", field)
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidMandate(
            f"{show(value)} is more than an origin: write only scheme://host[:port] "
            "(a mandate restricts origins, not paths)",
            field,
        )
    host = _host(parts.hostname or "", value, field)
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


def _host(hostname: str, value: str, field: str) -> str:
    host = hostname.lower()
    if ":" in host:
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            raise InvalidMandate(f"{show(value)} has a malformed IPv6 host", field) from None
    if len(host) > 253 or not _HOST_NAME.fullmatch(host):
        raise InvalidMandate(f"{show(value)} has no valid host name", field)
    return host


def origin_of(url: str) -> str:
    """The origin (``scheme://host[:port]``) of an http or https URL, as mandates name
    origins; raises `InvalidMandate` for anything else."""
    if not isinstance(url, str) or len(url) > 8192:
        raise InvalidMandate(f"{show(url)} is not a URL", "origin")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidMandate(f"{show(url)} is not a URL", "origin") from None
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if port is not None:
        netloc += f":{port}"
    return parse_origin(f"{parts.scheme}://{netloc}", "origin")


def check_text(value: object, field: str, max_chars: int, *, multiline: bool) -> str:
    """Text of at most `max_chars` characters, without control characters (it is shown to
    people, in terminals too) and without characters UTF-8 cannot encode."""
    if not isinstance(value, str):
        raise InvalidMandate(f"must be text, got {show(value)}", field)
    if len(value) > max_chars:
        raise InvalidMandate(f"is {len(value)} characters, more than {max_chars}", field)
    allowed = "\n\t" if multiline else ""
    for char in value:
        category = unicodedata.category(char)
        if (category == "Cc" and char not in allowed) or category == "Cs":
            raise InvalidMandate(
                f"holds the control or surrogate character {char!r}; "
                + ("only newlines and tabs are allowed" if multiline else "write plain text"),
                field,
            )
    return value
