"""`paywire audit` (placeholder, being written)."""


def audit_command() -> None:
    """Audit an exported ledger log offline."""
