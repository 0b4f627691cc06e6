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
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, SettleResponse

from paywire.chain.eip3009 import token_domain
from paywire.crypto.eip712 import Eip712Domain
from paywire.crypto.keys import PrivateKey, parse_address
from paywire.errors import PaywireError
from paywire.mandate import (
    MandateChain,
    MandateLimitExceeded,
    MemorySpendTracker,
    Payment,
    check_payment,
    origin_of,
)
from paywire.money import KNOWN_ASSETS, Amount, Asset, parse_amount
from paywire.protocol.authorization import sign_authorization
from paywire.protocol.evm_exact import MAX_DOMAIN_TEXT_CHARS, evm_chain_id
from paywire.protocol.idempotency import PAYMENT_IDENTIFIER, with_payment_id
from paywire.protocol.ledger_network import SCHEME, ledger_domain
from paywire.protocol.mandate_extension import with_mandate
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


class MandateDeclined(PaymentDeclined):
    """The client would not pay: its mandate does not allow it. `refusal` names the
    mandate, the limit and by how much the payment would break it."""

    code = "mandate_declined"

    def __init__(self, message: str, refusal: MandateLimitExceeded) -> None:
        super().__init__(message)
        self.refusal = refusal


@dataclass(slots=True)
class Payer:
    """An agent's key and the rule it pays by.

    `max_per_payment` caps any single payment (e.g. ``"$0.05"``); one per asset may be
    given as a sequence. `facilitators` maps network patterns to the facilitator address
    whose receipts to trust; without it, receipts are checked for a valid signature only.
    `tokens` maps EVM token addresses to the asset they count as (e.g. a USDC contract to
    `USDC`, 6 decimals: one atomic unit of the token is one of the asset).

    `mandate`, the agent's mandate chain (principal first, this key's mandate last), is
    checked before each payment, against what this payer has spent under it (`spending`),
    and travels with the payment for the facilitator to enforce. A payment the mandate
    does not allow is refused with `MandateDeclined`, naming the limit.
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
    mandate: MandateChain | None = None
    spending: MemorySpendTracker = field(default_factory=MemorySpendTracker)
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
        mandate: MandateChain | str | Path | None = None,
    ) -> Payer:
        """A payer; `mandate` is a chain, its JSON or base64 text, or a file holding one
        (see `load_mandate`)."""
        limits = (
            [max_per_payment]
            if isinstance(max_per_payment, str | Amount)
            else list(max_per_payment)
        )
        parsed = [limit if isinstance(limit, Amount) else parse_amount(limit) for limit in limits]
        known = {parse_address(address): asset for address, asset in (tokens or {}).items()}
        chain = load_mandate(mandate) if mandate is not None else None
        if chain is not None and chain.agent.lower() != key.address.lower():
            raise PaymentDeclined(
                f"the mandate is for agent {chain.agent}, not for this key ({key.address})"
            )
        return cls(
            key,
            parsed,
            tuple(networks),
            dict(facilitators or {}),
            clock,
            tokens=known,
            mandate=chain,
        )

    def _limit(self, asset: Asset) -> Amount | None:
        return next((limit for limit in self.max_per_payment if limit.asset == asset), None)

    def choose(self, required: PaymentRequired, url: str | None = None) -> PaymentRequirements:
        """The cheapest option this payer may pay for `url` (the URL requested: its origin
        is what a mandate's origins allow); `PaymentDeclined` says why none is."""
        reasons = []
        affordable = []
        refusals: list[MandateLimitExceeded] = []
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
            try:
                self.check_mandate(option, url)
            except MandateLimitExceeded as refusal:
                refusals.append(refusal)
                reasons.append(f"the mandate refuses: {refusal}")
                continue
            affordable.append((price.atomic, option))
        if not affordable:
            message = "will not pay: " + ("; ".join(reasons) or "nothing offered")
            if refusals:
                raise MandateDeclined(message, refusals[0])
            raise PaymentDeclined(message)
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

    def _mandate_payment(self, option: PaymentRequirements, url: str | None) -> Payment:
        origin = origin_of(url) if url is not None else None
        return Payment(
            option.network,
            option.asset,
            int(option.amount),
            option.pay_to,
            origin,
            int(self.clock()),
        )

    def check_mandate(self, option: PaymentRequirements, url: str | None = None) -> None:
        """Raise `MandateLimitExceeded` if the mandate does not allow paying `option` for
        `url` now, given what was spent under it."""
        if self.mandate is not None:
            check_payment(self.mandate, self._mandate_payment(option, url), self.spending)

    def record_payment(self, requirements: PaymentRequirements, url: str | None = None) -> None:
        """Count a settled payment against the mandate (what `check_mandate` sees)."""
        if self.mandate is not None:
            self.spending.record(self.mandate, self._mandate_payment(requirements, url))

    def pay(
        self,
        required: PaymentRequired,
        requirements: PaymentRequirements,
        url: str | None = None,
    ) -> PaymentPayload:
        """Sign a payment for `requirements`, valid for their `maxTimeoutSeconds`, with a
        fresh payment id if the server takes x402's `payment-identifier` (so the same
        payment can be sent again after a lost answer, and is answered, not charged, twice)
        and the mandate chain, if this payer has one (checked first: `MandateDeclined`).
        """
        if self.mandate is not None:
            try:
                self.check_mandate(requirements, url)
            except MandateLimitExceeded as refusal:
                message = f"will not pay: the mandate refuses: {refusal}"
                raise MandateDeclined(message, refusal) from None
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
        if self.mandate is not None:
            payment = with_mandate(payment, self.mandate)
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


MANDATE_ENV = "PAYWIRE_MANDATE"
"""Where an agent finds its mandate chain when none is given: the chain's base64 or JSON
text, or the path of a file holding it."""


def load_mandate(source: MandateChain | str | Path | None = None) -> MandateChain | None:
    """A mandate chain from `source` (a chain, JSON or base64 text, or a file path), or
    from ``$PAYWIRE_MANDATE`` when `source` is None (None if that is unset)."""
    if isinstance(source, MandateChain):
        return source
    if source is None:
        source = os.environ.get(MANDATE_ENV) or None
        if source is None:
            return None
    text = str(source).strip()
    if isinstance(source, Path) or _is_file(text):
        try:
            text = Path(text).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise PaymentDeclined(f"cannot read the mandate file {text}: {error}") from None
    if text.startswith("{"):
        return MandateChain.from_json(text)
    return MandateChain.from_base64(text)


def _is_file(text: str) -> bool:
    try:
        return len(text) < 4096 and Path(text).is_file()
    except OSError:  # a name too long to be a path: base64 text
        return False
