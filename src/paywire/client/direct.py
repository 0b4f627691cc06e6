"""Paying a wallet directly on the paywire ledger network: an x402 `exact` payment with no
HTTP 402 in between, for moving value between wallets (funding an agent, a float for a
sub-agent) and for tools that settle payments themselves.

    payload, requirements = direct_payment(key, ledger_network, payee, parse_amount("$1"))
    settled = await facilitator.settle(payload, requirements)   # Facilitator or RemoteFacilitator

With a `mandate`, the payment carries its chain (the `paywire-mandate` extension) and the
facilitator counts it against the chain's limits, and, if the chain names a task, tags it
with that task; the client checks the payment against the chain first (each mandate's
rules, the payment alone: what was spent before is the facilitator's to count) unless
`check_mandate=False` (what a modified client would do: the facilitator refuses on its
own).
"""

from __future__ import annotations

from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo

from paywire.client.payer import Payer
from paywire.crypto.keys import PrivateKey, parse_address
from paywire.errors import InvalidInput
from paywire.mandate import MandateChain
from paywire.money import Amount
from paywire.protocol.ledger_network import DOMAIN_NAME, DOMAIN_VERSION, is_ledger_network
from paywire.protocol.mandate_extension import with_mandate

DEFAULT_VALIDITY_S = 300
"""How long a direct payment may wait to be settled."""

DEFAULT_RESOURCE = "paywire:transfer"
"""What a direct payment says it pays for, unless told (a URL, or a memo)."""


def direct_payment(
    key: PrivateKey,
    network: str,
    payee: str,
    amount: Amount,
    *,
    mandate: MandateChain | None = None,
    check_mandate: bool = True,
    resource: str = DEFAULT_RESOURCE,
    validity_s: int = DEFAULT_VALIDITY_S,
) -> tuple[PaymentPayload, PaymentRequirements]:
    """`key` signs a payment of `amount` to `payee` on the ledger `network`; returns what a
    facilitator's ``settle`` takes."""
    if not is_ledger_network(network) or network == "paywire:":
        raise InvalidInput(f"direct payments are on a paywire ledger network, not {network!r}")
    if not isinstance(amount, Amount) or amount.atomic <= 0:
        raise InvalidInput("a direct payment is a positive Amount")
    requirements = PaymentRequirements(
        scheme="exact",
        network=network,
        asset=amount.asset.code,
        amount=str(amount.atomic),
        pay_to=parse_address(payee),
        max_timeout_seconds=validity_s,
        extra={"name": DOMAIN_NAME, "version": DOMAIN_VERSION},
    )
    required = PaymentRequired(resource=ResourceInfo(url=resource), accepts=[requirements])
    checked = mandate if check_mandate else None
    payload = Payer.create(key, max_per_payment=amount, mandate=checked).pay(required, requirements)
    if mandate is not None and checked is None:
        payload = with_mandate(payload, mandate)
    return payload, requirements
