"""The operator's HTTP service: the facilitator API, deposits, withdrawals, the faucet,
mandates and tasks."""

from paywire.service.facilitator_app import facilitator_app
from paywire.service.operator import ChainDesk, operator_app
from paywire.service.tasks import tasks_app

__all__ = ["ChainDesk", "facilitator_app", "operator_app", "tasks_app"]
