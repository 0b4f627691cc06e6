"""The root of paywire's exceptions.

Every error paywire raises on purpose is a `PaywireError`: it carries a stable,
machine-readable `code` (snake_case, like x402's error reasons) and a message a user can
act on. Anything else escaping paywire is a bug.
"""

from __future__ import annotations

from typing import ClassVar


class PaywireError(Exception):
    """An operating error: bad input, a refused operation, a missing resource."""

    code: ClassVar[str] = "paywire_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(PaywireError):
    """Input that can never be valid (malformed, out of bounds, too large)."""

    code = "invalid_input"


class NotFound(PaywireError):
    """A named thing (key, account, transfer) does not exist."""

    code = "not_found"
