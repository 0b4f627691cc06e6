"""The agent's side of a payment: pick an option it may pay, sign it, check the receipt.

`Payer` holds the agent's key and its spending rule (a per-payment maximum, per asset);
the transports in `paywire.client.transport` use it to answer 402s on their own.

It pays `exact` on the paywire ledger network (``paywire:*``, the default) and, when
allowed (``networks=["paywire:*", "eip155:*"]``), on EVM chains: an EIP-3009
``TransferWithAuthorization`` signed in the token's EIP-712 domain (``extra.name``,
``extra.version``, the chain id of ``eip155:<id>``, ``asset`` as the verifying contract),
as the official x402 client signs it. A token counts against the per-payment maximum of
the ledger asset it is mapped to by ``tokens={address: Asset}``; a token not in that
mapping is refused: the payer cannot know what it is worth.
"""

from __future__ import annotations

import fnmatch
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, SettleResponse

from paywire.chain.eip3009 import token_domain
from paywire.crypto.eip712 import Eip712Domain
from paywire.crypto.keys import PrivateKey, parse_address
from paywire.errors import PaywireError
from paywire.money import KNOWN_ASSETS, Amount, Asset, parse_amount
from paywire.protocol.authorization import sign_authorization
from paywire.protocol.evm_exact import MAX_DOMAIN_TEXT_CHARS, evm_chain_id
from paywire.protocol.idempotency import PAYMENT_IDENTIFIER, with_payment_id
from paywire.protocol.ledger_network import SCHEME, ledger_domain
from paywire.protocol.receipts import RECEIPT_EXTENSION, Receipt, check_receipt

DEFAULT_NETWORKS = ("paywire:*",)
"""Networks an agent pays on unless told otherwise (add ``"eip155:*"`` for EVM chains)."""

VALID_AFTER_SLACK_S = 60
"""validAfter is set this far in the past, so a server whose clock lags still accepts it."""

MAX_RECEIPTS_KEPT = 10_000
"""Receipts a Payer keeps in memory; the oldest are dropped past this."""

MAX_REMEMBERED_ROUTES = 1024
"""Priced routes whose terms a Payer remembers, to pay up front next time (LRU)."""


class PaymentDeclined(PaywireError):
    """The client would not pay: no option it can pay, or the price is past its limit."""

    code = "payment_declined"


@dataclass(slots=True)
class Payer:
    """An agent's key and the rule it pays by.

    `max_per_payment` caps any single payment (e.g. ``"$0.05"``); one per asset may be
    given as a sequence. `facilitators` maps network patterns to the facilitator address
    whose receipts to trust; without it, receipts are checked for a valid signature only.
    `tokens` maps EVM token addresses to the asset they count as (e.g. a USDC contract to
    `USDC`, 6 decimals: one atomic unit of the token is one of the asset).
    """

    key: PrivateKey
    max_per_payment: Sequence[Amount]
    networks: Sequence[str] = DEFAULT_NETWORKS
    facilitators: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    receipts: list[Receipt] = field(default_factory=list)
    pay_upfront: bool = True
    """Remember a route's terms after paying it, and pay the next request to it at once
    (one round trip instead of two; a 402 answer falls back to the usual exchange)."""
    tokens: Mapping[str, Asset] = field(default_factory=dict)
    _remembered: OrderedDict[str, tuple[PaymentRequired, PaymentRequirements]] = field(
        default_factory=OrderedDict
    )

    def remembered(self, route: str) -> tuple[PaymentRequired, PaymentRequirements] | None:
        """The terms last paid for `route` (``"GET https://host/path"``), if remembered."""
        if not self.pay_upfront:
            return None
        known = self._remembered.get(route)
        if known is not None:
            self._remembered.move_to_end(route)
        return known

    def remember(
        self, route: str, required: PaymentRequired, requirements: PaymentRequirements
    ) -> None:
        if self.pay_upfront:
            self._remembered[route] = (required, requirements)
            while len(self._remembered) > MAX_REMEMBERED_ROUTES:
                self._remembered.popitem(last=False)

    def forget(self, route: str) -> None:
        self._remembered.pop(route, None)

    @classmethod
    def create(
        cls,
        key: PrivateKey,
        *,
        max_per_payment: str | Amount | Sequence[str | Amount],
        networks: Sequence[str] = DEFAULT_NETWORKS,
        facilitators: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        tokens: Mapping[str, Asset] | None = None,
    ) -> Payer:
        limits = (
            [max_per_payment]
            if isinstance(max_per_payment, str | Amount)
            else list(max_per_payment)
        )
        parsed = [limit if isinstance(limit, Amount) else parse_amount(limit) for limit in limits]
        known = {parse_address(address): asset for address, asset in (tokens or {}).items()}
        return cls(key, parsed, tuple(networks), dict(facilitators or {}), clock, tokens=known)

    def _limit(self, asset: Asset) -> Amount | None:
        return next((limit for limit in self.max_per_payment if limit.asset == asset), None)

    def choose(self, required: PaymentRequired) -> PaymentRequirements:
        """The cheapest option this payer may pay; `PaymentDeclined` says why none is."""
        reasons = []
        affordable = []
        for option in required.accepts:
            if option.scheme != SCHEME:
                reasons.append(f"scheme {option.scheme!r} is not supported")
                continue
            if not any(fnmatch.fnmatchcase(option.network, pattern) for pattern in self.networks):
                reasons.append(f"network {option.network} is not allowed")
                continue
            if evm_chain_id(option.network) is not None:
                asset, refusal = self._token(option)
                if asset is None:
                    reasons.append(refusal)
                    continue
            else:
                asset = KNOWN_ASSETS.get(option.asset)
            limit = self._limit(asset) if asset else None
            if asset is None or limit is None:
                reasons.append(f"no spending limit is set for asset {option.asset!r}")
                continue
            if not option.amount.isdigit():
                reasons.append(f"price {option.amount!r} is not an amount")
                continue
            price = Amount(int(option.amount), asset)
            if price > limit:
                reasons.append(f"price {price} is past the per-payment maximum of {limit}")
                continue
            affordable.append((price.atomic, option))
        if not affordable:
            raise PaymentDeclined("will not pay: " + ("; ".join(reasons) or "nothing offered"))
        return min(affordable, key=lambda pair: pair[0])[1]

    def _token(self, option: PaymentRequirements) -> tuple[Asset | None, str]:
        """The asset an EVM option's token counts as, or why it cannot be paid."""
        where = f"token {option.asset[:42]!r} on {option.network}"
        try:
            address = parse_address(option.asset)
        except PaywireError:
            return None, f"{where} is not a contract address"
        asset = self.tokens.get(address)
        if asset is None:
            return None, f"{where} is not a known token (tokens={{address: Asset}} lists them)"
        name, version = (option.extra or {}).get("name"), (option.extra or {}).get("version")
        if not (
            isinstance(name, str)
            and isinstance(version, str)
            and 0 < len(name) <= MAX_DOMAIN_TEXT_CHARS
            and 0 < len(version) <= MAX_DOMAIN_TEXT_CHARS
        ):
            return None, f"{where} comes without its EIP-712 name and version in extra"
        return asset, ""

    def _domain(self, requirements: PaymentRequirements) -> Eip712Domain:
        chain_id = evm_chain_id(requirements.network)
        if chain_id is None:
            return ledger_domain(requirements.network, requirements.asset)
        extra = requirements.extra or {}
        try:
            return token_domain(
                str(extra["name"]), str(extra["version"]), chain_id, requirements.asset
            )
        except (KeyError, PaywireError) as error:
            raise PaymentDeclined(
                f"cannot sign for {requirements.asset} on {requirements.network}: {error}"
            ) from None

    def pay(self, required: PaymentRequired, requirements: PaymentRequirements) -> PaymentPayload:
        """Sign a payment for `requirements`, valid for their `maxTimeoutSeconds`, with a
        fresh payment id if the server takes x402's `payment-identifier` (so the same
        payment can be sent again after a lost answer, and is answered, not charged, twice).
        """
        now = int(self.clock())
        authorization = sign_authorization(
            self.key,
            self._domain(requirements),
            payee=requirements.pay_to,
            value=int(requirements.amount),
            valid_after=max(0, now - VALID_AFTER_SLACK_S),
            valid_before=now + requirements.max_timeout_seconds,
        )
        payment = PaymentPayload(
            accepted=requirements, payload=authorization.to_payload(), resource=required.resource
        )
        if PAYMENT_IDENTIFIER in (required.extensions or {}):
            payment = with_payment_id(payment)
        return payment

    def keep_receipt(self, settled: SettleResponse) -> Receipt | None:
        """Check and keep the receipt in a settlement response (None if it carries none)."""
        data = (settled.extensions or {}).get(RECEIPT_EXTENSION)
        if not isinstance(data, Mapping):
            return None
        receipt = Receipt.from_json(data)
        expected = next(
            (
                address
                for pattern, address in self.facilitators.items()
                if fnmatch.fnmatchcase(receipt.network, pattern)
            ),
            None,
        )
        check_receipt(receipt, expected)
        if receipt.payer.lower() != self.key.address.lower():
            raise PaymentDeclined(f"the receipt is for payer {receipt.payer}, not this wallet")
        self.receipts.append(receipt)
        del self.receipts[:-MAX_RECEIPTS_KEPT]
        return receipt
