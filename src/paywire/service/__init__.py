"""The operator's HTTP service: the facilitator API, deposits, withdrawals, the faucet."""

from paywire.service.facilitator_app import facilitator_app
from paywire.service.operator import ChainDesk, operator_app

__all__ = ["ChainDesk", "facilitator_app", "operator_app"]
