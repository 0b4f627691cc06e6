"""x402 `exact` on the paywire ledger network (``paywire:<ledger-id>``).

Why not the SDK's EVM scheme: here the money is in the ledger, not in a token contract,
so settling is one ledger transfer (microseconds, no gas, no chain call on the request
path) instead of a transaction. The payload keeps x402's `exact` shape (an EIP-3009
``TransferWithAuthorization`` signed with EIP-712) so clients sign it the same way;
only the domain differs: ``{name: "paywire", version: "1", salt: keccak256(network "/"
asset)}``, which binds a signature to one ledger and one asset.

Settling writes the transfer with the payer's signed payload stored verbatim, under the
id ``x402:<payer>:<nonce>``: the ledger's idempotency makes a nonce spendable once, even
under concurrent submissions.

A payment may carry its payer's mandate chain (`paywire-mandate`): it is checked by the
`MandateGate`, and the transfer names the ledger spend limits of every mandate in the
chain, so the ledger refuses it, atomically, past any total or window (see
`paywire.protocol.mandate_gate`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from x402.schemas import PaymentPayload, PaymentRequirements

from paywire.crypto.eip712 import Eip712Domain
from paywire.crypto.keys import InvalidSignature, keccak256
from paywire.errors import PaywireError
from paywire.ledger import (
    AccountKind,
    AccountNotFound,
    ExceedsCredits,
    Ledger,
    LedgerError,
    LimitClosed,
    LimitExceeded,
    NewAccount,
    Transfer,
    TransferCode,
    transfer,
)
from paywire.ledger.model import JsonValue
from paywire.ledger.names import wallet_account_id
from paywire.money import KNOWN_ASSETS, Asset
from paywire.protocol import errors
from paywire.protocol.authorization import Authorization, transfer_message
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.mandate_gate import TASK_KEY, MandatedPayment, MandateGate, task_of

SCHEME = "exact"
NETWORK_PREFIX = "paywire:"
DOMAIN_NAME = "paywire"
DOMAIN_VERSION = "1"

CLOCK_SKEW_S = 30
"""How far a payer's clock may run ahead of ours for `validAfter`."""

MIN_VALIDITY_LEFT_S = 6
"""An authorization must stay valid at least this long, as x402's own facilitator asks:
a payment about to expire could expire between verify and settle."""

DOMAIN_CACHE_SIZE = 256
"""(network, asset) domains kept compiled; a facilitator serves a handful."""

MAX_RESOURCE_CHARS = 512
"""A resource URL kept in a transfer's metadata is cut to this length."""


def ledger_network(ledger_id: str) -> str:
    """The CAIP-2 style network id of a paywire ledger."""
    return NETWORK_PREFIX + ledger_id


def is_ledger_network(network: str) -> bool:
    return network.startswith(NETWORK_PREFIX)


@functools.lru_cache(maxsize=DOMAIN_CACHE_SIZE)
def ledger_domain(network: str, asset_code: str) -> Eip712Domain:
    """The EIP-712 domain a payment on `network` in `asset_code` is signed in."""
    salt = keccak256(f"{network}/{asset_code}".encode())
    return Eip712Domain(name=DOMAIN_NAME, version=DOMAIN_VERSION, salt=salt)


def payment_transfer_id(authorization: Authorization) -> str:
    """The ledger transfer a payment becomes; one per (payer, nonce)."""
    return f"x402:{authorization.payer}:{authorization.nonce.hex()}"


@dataclass(frozen=True, slots=True)
class Verified:
    """A payment that passed every check that does not need the ledger's state."""

    authorization: Authorization
    asset: Asset
    mandated: MandatedPayment | None = None


@dataclass(frozen=True, slots=True)
class Settled:
    """A payment written to the ledger."""

    transfer: Transfer
    authorization: Authorization
    leaf_hash: bytes


class LedgerExactScheme:
    """The facilitator's side of `exact` on one paywire ledger."""

    scheme = SCHEME

    def __init__(
        self,
        ledger: Ledger,
        *,
        assets: Mapping[str, Asset] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.network = ledger_network(ledger.ledger_id)
        self._assets = dict(KNOWN_ASSETS if assets is None else assets)
        self._clock = clock
        self._opened: set[str] = set()
        self.mandates = MandateGate(ledger, self._assets, clock=clock)

    def extra(self) -> dict[str, str]:
        """What clients need to sign: the EIP-712 domain's name and version."""
        return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION}

    def check(
        self,
        payload: PaymentPayload,
        requirements: PaymentRequirements,
        resource: str | None = None,
    ) -> Verified:
        """Every check that needs no ledger write, in x402's order: scheme, network, the
        accepted terms, recipient, value, time window, signature; then the mandate, if the
        payment carries one or its payer needs one (`resource` is the URL paid for)."""
        if requirements.scheme != SCHEME or payload.accepted.scheme != SCHEME:
            raise PaymentProblem(errors.UNSUPPORTED_SCHEME, "only the exact scheme is supported")
        if requirements.network != self.network or payload.accepted.network != self.network:
            raise PaymentProblem(
                errors.NETWORK_MISMATCH,
                f"this facilitator settles on {self.network}, not {payload.accepted.network}",
            )
        asset = self._assets.get(requirements.asset)
        if asset is None:
            raise PaymentProblem(
                errors.INVALID_REQUIREMENTS, f"asset {requirements.asset!r} is not known here"
            )
        accepted = payload.accepted
        if (accepted.asset, accepted.amount, accepted.pay_to) != (
            requirements.asset,
            requirements.amount,
            requirements.pay_to,
        ):
            raise PaymentProblem(
                errors.INVALID_REQUIREMENTS,
                "the payment accepts other terms (asset, amount or payTo) than these",
            )
        authorization = Authorization.from_payload(payload.payload)
        if authorization.payee.lower() != requirements.pay_to.lower():
            raise PaymentProblem(
                errors.EXACT_RECIPIENT, f"the authorization pays {authorization.payee}"
            )
        if str(authorization.value) != requirements.amount:
            raise PaymentProblem(
                errors.EXACT_VALUE,
                f"the authorization is for {authorization.value}, the price is "
                f"{requirements.amount} atomic units",
            )
        self._check_window(authorization, requirements.max_timeout_seconds)
        domain = ledger_domain(self.network, asset.code)
        try:
            transfer_message(domain).verify(
                authorization.message(), authorization.signature, authorization.payer
            )
        except (InvalidSignature, PaywireError) as error:
            raise PaymentProblem(
                errors.EXACT_SIGNATURE, f"the signature is not the payer's: {error}"
            ) from None
        mandated = self.mandates.check(
            payload,
            network=self.network,
            asset=requirements.asset,
            payer=authorization.payer,
            payee=authorization.payee,
            amount=authorization.value,
            payer_account=wallet_account_id(authorization.payer, asset.code),
            resource=resource,
        )
        return Verified(authorization, asset, mandated)

    async def _warm(self, payload: PaymentPayload, requirements: PaymentRequirements) -> None:
        """The payer's one ledger read of the mandate gate, off the event loop (a
        malformed payload is left for `check` to refuse)."""
        asset = self._assets.get(requirements.asset)
        try:
            payer = Authorization.from_payload(payload.payload).payer
            account = wallet_account_id(payer, asset.code) if asset is not None else None
        except (PaywireError, ValueError, TypeError, KeyError):
            return
        if account is not None:
            await self.mandates.warm(account)

    def _check_window(self, authorization: Authorization, max_timeout_s: int) -> None:
        now = int(self._clock())
        if authorization.valid_after > now + CLOCK_SKEW_S:
            raise PaymentProblem(
                errors.EXACT_VALID_AFTER,
                f"the authorization is not valid before {authorization.valid_after} "
                f"(now {now}; clocks may differ by {CLOCK_SKEW_S} s)",
            )
        if authorization.valid_before < now + MIN_VALIDITY_LEFT_S:
            raise PaymentProblem(
                errors.EXACT_VALID_BEFORE,
                f"the authorization expired or expires within {MIN_VALIDITY_LEFT_S} s "
                f"(validBefore {authorization.valid_before}, now {now})",
            )
        if authorization.valid_before > now + max_timeout_s + CLOCK_SKEW_S:
            raise PaymentProblem(
                errors.EXACT_VALID_BEFORE,
                f"the authorization stays valid longer than the {max_timeout_s} s allowed",
            )

    def verify(self, payload: PaymentPayload, requirements: PaymentRequirements) -> Verified:
        """`check`, then the payer's balance and the nonce (a read: settle decides)."""
        verified = self.check(payload, requirements)
        authorization = verified.authorization
        if verified.mandated is not None:
            self.mandates.check_now(verified.mandated, authorization.value)
        account_id = wallet_account_id(authorization.payer, verified.asset.code)
        try:
            available = self.ledger.balance(account_id).available
        except AccountNotFound:
            raise PaymentProblem(
                errors.INSUFFICIENT_FUNDS,
                f"{authorization.payer} has no {verified.asset.code} on this ledger; deposit first",
            ) from None
        if available < authorization.value:
            raise PaymentProblem(
                errors.INSUFFICIENT_FUNDS,
                f"{authorization.payer} has {available} atomic units available, "
                f"the payment is {authorization.value}",
            )
        try:
            self.ledger.transfer(payment_transfer_id(authorization))
        except LedgerError:
            return verified
        raise PaymentProblem(errors.EXACT_NONCE_USED, "this authorization was already used")

    async def settle(
        self,
        payload: PaymentPayload,
        requirements: PaymentRequirements,
        *,
        resource: str | None = None,
    ) -> Settled:
        """Write the payment to the ledger, atomically with the payer's bound and its
        mandates' limits."""
        await self._warm(payload, requirements)
        verified = self.check(payload, requirements, resource)
        authorization, asset = verified.authorization, verified.asset
        limits: tuple[str, ...] = ()
        if verified.mandated is not None:
            await self.mandates.prepare(verified.mandated, self.network, requirements.asset)
            limits = verified.mandated.limits
        payee_account = wallet_account_id(authorization.payee, asset.code)
        if payee_account not in self._opened:
            await self._open(payee_account, authorization.payee, asset)
        metadata: dict[str, JsonValue] = {"scheme": SCHEME}
        if resource:
            metadata["resource"] = resource[:MAX_RESOURCE_CHARS]
        meter = _meter_detail(requirements)
        if meter is not None:
            metadata["meter"] = meter
        task = task_of(verified.mandated)
        if task:
            metadata[TASK_KEY] = task  # the per-task books find a task's payments by it
        request = transfer(
            payment_transfer_id(authorization),
            wallet_account_id(authorization.payer, asset.code),
            payee_account,
            asset.atomic(authorization.value),
            code=TransferCode.PAYMENT,
            metadata=metadata,
            authorization=json.dumps(
                payload.model_dump(by_alias=True, exclude_none=True), separators=(",", ":")
            ),
            limits=limits,
        )
        try:
            done = await self.ledger.asubmit(request)
        except (LimitExceeded, LimitClosed) as error:
            raise self.mandates.refusal(error) from None
        except ExceedsCredits as error:
            raise PaymentProblem(errors.INSUFFICIENT_FUNDS, str(error)) from None
        except AccountNotFound:
            raise PaymentProblem(
                errors.INSUFFICIENT_FUNDS,
                f"{authorization.payer} has no {asset.code} on this ledger; deposit first",
            ) from None
        except LedgerError as error:
            if error.code == "idempotency_conflict":
                raise PaymentProblem(
                    errors.EXACT_NONCE_USED, "this authorization was already used"
                ) from None
            raise PaymentProblem(errors.SETTLEMENT_FAILED, str(error)) from None
        if done.replayed:
            raise PaymentProblem(errors.EXACT_NONCE_USED, "this authorization was already used")
        return Settled(done, authorization, self.ledger.leaf_hash(done.log_index))

    async def _open(self, account_id: str, owner: str, asset: Asset) -> None:
        # A payee's wallet account opens on its first payment (opening is idempotent).
        request = NewAccount(account_id, asset, AccountKind.AGENT, owner=owner)
        try:
            await asyncio.to_thread(self.ledger.open_account, request)
        except LedgerError as error:
            raise PaymentProblem(
                errors.SETTLEMENT_FAILED, f"cannot open the payee's account: {error}"
            ) from None
        self._opened.add(account_id)


MAX_METER_DETAIL_BYTES = 2048
"""A price's metering detail (model, tokens, unit prices) kept with the payment; larger is
not a meter record."""


def _meter_detail(requirements: PaymentRequirements) -> dict[str, JsonValue] | None:
    """The metering detail a provider priced this payment with (``extra["meter"]``, as the
    paid LLM gateway quotes it), kept in the transfer's metadata so the books can say what
    was bought; the provider's declaration, bounded, JSON only."""
    meter = (requirements.extra or {}).get("meter")
    if not isinstance(meter, dict):
        return None
    try:
        size = len(json.dumps(meter, separators=(",", ":"), allow_nan=False))
    except (TypeError, ValueError):
        return None
    if size > MAX_METER_DETAIL_BYTES:
        return None
    return cast("dict[str, JsonValue]", meter)
