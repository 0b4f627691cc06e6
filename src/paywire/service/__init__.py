"""The operator's HTTP service: the facilitator API (and, later, the ledger API)."""

from paywire.service.facilitator_app import facilitator_app

__all__ = ["facilitator_app"]
