"""Which requests cost what: ``{"GET /search": "$0.001", "POST /jobs/*": "0.05 USDC"}``.

A route is an optional method and a path pattern: ``*`` matches within one path segment,
``**`` across segments; the first route that matches wins, in the order given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from paywire.errors import InvalidInput
from paywire.money import DEFAULT_DOLLAR_ASSET, Amount, parse_amount

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MAX_ROUTES = 1024
"""A price table larger than this is a configuration mistake."""

PriceLike = str | Amount


@dataclass(frozen=True, slots=True)
class PricedRoute:
    method: str | None
    pattern: str
    price: Amount
    regex: re.Pattern[str]

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and bool(self.regex.fullmatch(path))


def _compile(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*|\*)", pattern)
    regex = "".join(
        ".*" if part == "**" else "[^/]*" if part == "*" else re.escape(part) for part in parts
    )
    return re.compile(regex)


def parse_routes(routes: Mapping[str, PriceLike]) -> list[PricedRoute]:
    """Parse a price table; raises `InvalidInput` naming the bad route."""
    if len(routes) > MAX_ROUTES:
        raise InvalidInput(f"at most {MAX_ROUTES} priced routes")
    parsed = []
    for spec, price in routes.items():
        verb, _, pattern = spec.strip().rpartition(" ")
        method = verb.strip().upper() or None
        if method is not None and method not in METHODS:
            raise InvalidInput(f"route {spec!r}: unknown method {method!r}")
        if not pattern.startswith("/"):
            raise InvalidInput(f"route {spec!r}: the path must start with '/'")
        amount = price if isinstance(price, Amount) else parse_amount(price, DEFAULT_DOLLAR_ASSET)
        if amount.atomic <= 0:
            raise InvalidInput(f"route {spec!r}: the price must be above zero")
        parsed.append(PricedRoute(method, pattern, amount, _compile(pattern)))
    return parsed


def match(routes: list[PricedRoute], method: str, path: str) -> PricedRoute | None:
    """The first priced route for a request, if any."""
    for route in routes:
        if route.matches(method, path):
            return route
    return None
