"""The operator's judge: pays the LLM gateway for the ``judge`` checks that
``POST /tasks/{id}/decide`` runs.

Each decision gets its own `PaidLLM` under a mandate the judge's key signs for itself that
names the task, so the judge's payment carries the task id into the ledger and its cost
shows in the task's books (spent per provider, AI tokens per model), as the issue of a
paid judge asks. The mandate caps one decision at `max_per_decision`: a judge cannot be
made to spend more on one task than that.
"""

from __future__ import annotations

import time

from paywire.client import PaidLLM
from paywire.crypto.keys import PrivateKey
from paywire.mandate import AssetLimit, Mandate, MandateChain, SignedMandate
from paywire.money import Amount

MANDATE_VALIDITY_S = 600
"""How long the judge's mandate for one decision lives."""


class GatewayJudge:
    """Judges through the paid LLM gateway at `base_url`, paying from `key`'s wallet on
    the ledger `network` (a factory: `judge(task_id)` is the client for one decision)."""

    def __init__(
        self, key: PrivateKey, base_url: str, network: str, max_per_decision: Amount
    ) -> None:
        self.key = key
        self.base_url = base_url
        self.network = network
        self.max_per_decision = max_per_decision

    def __call__(self, task_id: str) -> PaidLLM:
        now = int(time.time())
        mandate = Mandate(
            issuer=self.key.address,
            agent=self.key.address,
            limits=(
                AssetLimit(
                    self.network,
                    self.max_per_decision.asset.code,
                    self.max_per_decision.atomic,
                    self.max_per_decision.atomic,
                ),
            ),
            valid_after=now - 60,
            valid_before=now + MANDATE_VALIDITY_S,
            purpose=f"judge task {task_id}",
            task_id=task_id,
        )
        chain = MandateChain((SignedMandate.sign(mandate, self.key),))
        return PaidLLM(
            self.key, self.base_url, max_per_payment=self.max_per_decision, mandate=chain
        )
