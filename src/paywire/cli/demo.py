"""`paywire demo` (placeholder, being written)."""


def demo_command() -> None:
    """A short tour of paywire."""
