"""The payer's side of channels: `ChannelPayer` (open, sign vouchers, follow the charged
total) and httpx transports that pay a provider's `batch-settlement` 402s with it.

    channel = await ChannelPayer.open_ledger(payer, requirements, deposit_atomic=1_000_000)
    header = channel.next_voucher(max_increase_atomic=5_000)    # PAYMENT-SIGNATURE
    response = await http.post(url, headers={"PAYMENT-SIGNATURE": header}, json=...)
    channel.settled(response)      # the charged total from PAYMENT-RESPONSE, or a resync

    # or let a transport do all of it (the first 402 opens the channel):
    async with httpx.AsyncClient(transport=ChannelTransport(payer, deposit_atomic=10**6)) as c:
        await c.post(url, json=...)

Each voucher is the charged total the provider last reported, plus what is in flight,
plus this request's maximum (the 402's ``amount``); it never passes the deposit. A voucher
the provider finds behind (the corrective 402, ``channel_voucher_behind``) carries the
channel's state; the payer takes the provider's charged total only if the provider shows
a voucher this payer signed that covers it (``extra.voucherState``), so a provider can
never make the payer sign past what it already agreed to. Per-request maxima stay within
the `Payer`'s ``max_per_payment`` and its mandate (`Payer.check_mandate`); the deposit is
bounded by the mandate's limits at the facilitator (a hold naming them). Charges are
counted against the mandate as they are reported (`Payer.record_payment`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo

from paywire.client.payer import MandateDeclined, Payer, PaymentDeclined
from paywire.crypto.eip712 import Eip712Domain
from paywire.crypto.keys import InvalidSignature
from paywire.errors import PaywireError
from paywire.mandate import MandateLimitExceeded
from paywire.money import KNOWN_ASSETS, Amount, Asset
from paywire.protocol.channel.ledger_wire import sign_open
from paywire.protocol.channel.wire import (
    CHANNEL_EXTENSION,
    SCHEME,
    VOUCHER_TYPE,
    ledger_channel_domain,
    sign_voucher,
    typed,
)
from paywire.protocol.headers import (
    PAYMENT_REQUIRED,
    PAYMENT_RESPONSE,
    PAYMENT_SIGNATURE,
    decode_payment_required,
    decode_settle_response,
    encode,
)
from paywire.protocol.mandate_extension import with_mandate

DEFAULT_TTL_S = 3600
"""A ledger channel's life unless told otherwise."""

OPEN_TIMEOUT_S = 10.0


@dataclass(slots=True)
class ChannelPayer:
    """The payer's end of one channel (one provider, network and asset)."""

    payer: Payer
    requirements: PaymentRequirements
    channel_id: bytes
    domain: Eip712Domain
    deposit: int
    asset: Asset
    resource: str | None = None
    charged_total: int = 0
    in_flight: dict[int, int] = field(default_factory=dict)
    salt: bytes | None = None
    expiry: int | None = None
    open_url: str | None = None
    """Vouchers sent and not answered yet: their maximum -> this request's increase."""

    @property
    def channel_hex(self) -> str:
        return "0x" + self.channel_id.hex()

    # ----- opening --------------------------------------------------------------------------

    @staticmethod
    def open_payload(
        payer: Payer,
        requirements: PaymentRequirements,
        deposit_atomic: int,
        *,
        ttl_s: int = DEFAULT_TTL_S,
        expiry: int | None = None,
        salt: bytes | None = None,
        resource: str | None = None,
    ) -> PaymentPayload:
        """The signed request to open (or, with the same `salt` and more, top up) a ledger
        channel for `requirements` (a `batch-settlement` option of a 402)."""
        if requirements.scheme != SCHEME:
            raise PaymentDeclined(f"not a channel option: {requirements.scheme}")
        _check(payer, requirements, int(requirements.amount), resource)
        domain = ledger_channel_domain(requirements.network, requirements.asset)
        request = sign_open(
            payer.key,
            domain,
            receiver=requirements.pay_to,
            deposit=deposit_atomic,
            expiry=expiry if expiry is not None else int(payer.clock()) + ttl_s,
            salt=salt,
        )
        payment = PaymentPayload(
            accepted=requirements,
            payload=request.to_payload(),
            resource=ResourceInfo(url=resource) if resource else None,
        )
        return with_mandate(payment, payer.mandate) if payer.mandate is not None else payment

    @classmethod
    def opened(
        cls,
        payer: Payer,
        requirements: PaymentRequirements,
        state: Mapping[str, Any],
        *,
        resource: str | None = None,
        opened_with: PaymentPayload | None = None,
        open_url: str | None = None,
    ) -> ChannelPayer:
        """The channel a facilitator answered an open with (``POST /channels/open``)."""
        asset = KNOWN_ASSETS.get(requirements.asset)
        if asset is None:
            raise PaymentDeclined(f"asset {requirements.asset!r} is not known")
        sent = opened_with.payload if opened_with is not None else {}
        return cls(
            payer,
            requirements,
            bytes.fromhex(str(state["channelId"])[2:]),
            ledger_channel_domain(requirements.network, requirements.asset),
            int(state["deposit"]),
            asset,
            resource,
            charged_total=int(state.get("claimedTotal", 0)),
            salt=bytes.fromhex(str(sent["salt"])[2:]) if "salt" in sent else None,
            expiry=int(sent["expiry"]) if "expiry" in sent else None,
            open_url=open_url,
        )

    @classmethod
    async def open_ledger(
        cls,
        payer: Payer,
        requirements: PaymentRequirements,
        deposit_atomic: int,
        *,
        ttl_s: int = DEFAULT_TTL_S,
        open_url: str | None = None,
        client: httpx.AsyncClient | None = None,
        resource: str | None = None,
    ) -> ChannelPayer:
        """Open a ledger channel at the facilitator the 402 names (``extra.channelOpen``)
        or at `open_url`."""
        url = _open_url(requirements, open_url)
        payment = cls.open_payload(
            payer, requirements, deposit_atomic, ttl_s=ttl_s, resource=resource
        )
        http = client or httpx.AsyncClient(timeout=OPEN_TIMEOUT_S)
        try:
            response = await http.post(url, json=_open_body(payment))
        except httpx.HTTPError as error:
            raise PaymentDeclined(f"cannot open a channel at {url}: {error}") from None
        finally:
            if client is None:
                await http.aclose()
        return cls.opened(
            payer,
            requirements,
            _answer(response),
            resource=resource,
            opened_with=payment,
            open_url=url,
        )

    @classmethod
    def open_ledger_sync(
        cls,
        payer: Payer,
        requirements: PaymentRequirements,
        deposit_atomic: int,
        *,
        ttl_s: int = DEFAULT_TTL_S,
        open_url: str | None = None,
        client: httpx.Client | None = None,
        resource: str | None = None,
    ) -> ChannelPayer:
        """`open_ledger` for synchronous code."""
        url = _open_url(requirements, open_url)
        payment = cls.open_payload(
            payer, requirements, deposit_atomic, ttl_s=ttl_s, resource=resource
        )
        http = client or httpx.Client(timeout=OPEN_TIMEOUT_S)
        try:
            response = http.post(url, json=_open_body(payment))
        except httpx.HTTPError as error:
            raise PaymentDeclined(f"cannot open a channel at {url}: {error}") from None
        finally:
            if client is None:
                http.close()
        return cls.opened(
            payer,
            requirements,
            _answer(response),
            resource=resource,
            opened_with=payment,
            open_url=url,
        )

    @classmethod
    def open_evm(
        cls,
        payer: Payer,
        requirements: PaymentRequirements,
        contract: Any,
        deposit_atomic: int,
        *,
        resource: str | None = None,
    ) -> ChannelPayer:
        """Open a channel in paywire's channel contract (a `ChannelContract`; the payer's
        key pays the gas and approves the deposit)."""
        asset = payer.tokens.get(contract.token.address)
        if asset is None:
            raise PaymentDeclined(f"token {contract.token.address} is not a known token")
        _check(payer, requirements, int(requirements.amount), resource)
        opened = contract.open(payer.key, requirements.pay_to, deposit_atomic)
        return cls(
            payer, requirements, opened.channel_id, contract.domain, deposit_atomic, asset, resource
        )

    async def top_up(self, deposit_atomic: int, *, client: httpx.AsyncClient | None = None) -> None:
        """Raise a ledger channel's deposit to `deposit_atomic` in all (the payer signs
        the open again, same salt, larger deposit)."""
        if self.salt is None or self.expiry is None:
            raise PaymentDeclined("only a ledger channel opened here can be topped up here")
        payment = self.open_payload(
            self.payer,
            self.requirements,
            deposit_atomic,
            expiry=self.expiry,
            salt=self.salt,
            resource=self.resource,
        )
        url = _open_url(self.requirements, self.open_url)
        http = client or httpx.AsyncClient(timeout=OPEN_TIMEOUT_S)
        try:
            response = await http.post(url, json=_open_body(payment))
        except httpx.HTTPError as error:
            raise PaymentDeclined(f"cannot top the channel up at {url}: {error}") from None
        finally:
            if client is None:
                await http.aclose()
        self.deposit = max(self.deposit, int(_answer(response)["deposit"]))

    # ----- paying ---------------------------------------------------------------------------

    def payment(self, max_increase_atomic: int, *, url: str | None = None) -> PaymentPayload:
        """The signed payment of one request that may cost up to `max_increase_atomic`."""
        if max_increase_atomic < 1:
            raise PaymentDeclined("a request's maximum is at least 1 atomic unit")
        _check(self.payer, self.requirements, max_increase_atomic, url or self.resource)
        most = self.charged_total + sum(self.in_flight.values()) + max_increase_atomic
        while most in self.in_flight:  # one voucher per request in flight
            most += 1
        if most > self.deposit:
            raise PaymentDeclined(
                f"the channel's deposit of {self.deposit} does not cover {most}: top it up "
                "or open another"
            )
        voucher = sign_voucher(self.domain, self.payer.key, self.channel_id, most)
        self.in_flight[most] = max_increase_atomic
        accepted = self.requirements.model_copy(update={"amount": str(max_increase_atomic)})
        return PaymentPayload(accepted=accepted, payload=voucher.to_payload())

    def next_voucher(self, max_increase_atomic: int, *, url: str | None = None) -> str:
        """The `PAYMENT-SIGNATURE` header of the next request (see `payment`)."""
        return encode(self.payment(max_increase_atomic, url=url))

    def settled(self, response: httpx.Response) -> bool:
        """Read a provider's answer to a request paid by this channel: the charged total
        from `PAYMENT-RESPONSE`, or the channel's state from a corrective 402. True if the
        request was charged (or the channel resynced) and the answer is usable."""
        self._done(response.request.headers.get(PAYMENT_SIGNATURE))
        header = response.headers.get(PAYMENT_RESPONSE)
        if header is not None:
            try:
                settled = decode_settle_response(header)
            except PaywireError:
                return False
            state = (settled.extensions or {}).get(CHANNEL_EXTENSION)
            if settled.success and isinstance(state, Mapping):
                return self.observe(state)
        required = response.headers.get(PAYMENT_REQUIRED)
        if response.status_code == 402 and required is not None:
            try:
                return self.resync(decode_payment_required(required))
            except PaywireError:
                return False
        return False

    def observe(self, state: Mapping[str, Any], sent: PaymentPayload | None = None) -> bool:
        """Take the provider's report of this channel after a charge (`sent`: the payment
        it answers, no longer in flight)."""
        if sent is not None:
            self.done(sent)
        if str(state.get("channelId", "")).lower() != self.channel_hex:
            return False
        try:
            total, charged = int(state["chargedTotal"]), int(state.get("charged", 0))
            self.deposit = max(self.deposit, int(state.get("deposit", self.deposit)))
        except (KeyError, TypeError, ValueError):
            return False
        self.charged_total = max(self.charged_total, total)
        if charged > 0:
            paid = self.requirements.model_copy(update={"amount": str(charged)})
            self.payer.record_payment(paid, self.resource)
        return True

    def resync(self, required: PaymentRequired) -> bool:
        """Take the charged total of a corrective 402, if the provider proves it with a
        voucher this payer signed that covers it; True if resynced."""
        for option in required.accepts:
            extra = option.extra or {}
            state, voucher = extra.get("channelState"), extra.get("voucherState")
            if option.scheme != SCHEME or not isinstance(state, Mapping):
                continue
            if str(state.get("channelId", "")).lower() != self.channel_hex:
                continue
            try:
                charged = int(state["chargedCumulativeAmount"])
                deposit = int(state.get("balance", self.deposit))
            except (KeyError, TypeError, ValueError):
                return False
            if charged > self.charged_total and not self._signed_by_me(voucher, charged):
                return False
            self.charged_total = charged
            self.deposit = max(self.deposit, deposit)
            return True
        return False

    def _signed_by_me(self, voucher: object, charged: int) -> bool:
        if not isinstance(voucher, Mapping):
            return False
        try:
            most = int(voucher["signedMaxClaimable"])
            message = {"channelId": self.channel_id, "maxClaimableAmount": most}
            signer = typed(self.domain, VOUCHER_TYPE).recover(message, str(voucher["signature"]))
        except (KeyError, TypeError, ValueError, InvalidSignature, PaywireError):
            return False
        return signer == self.payer.key.address and charged <= most

    def done(self, sent: PaymentPayload) -> None:
        """`sent` was answered (or failed): its voucher is no longer in flight."""
        try:
            self.in_flight.pop(int(sent.payload["maxClaimableAmount"]), None)
        except (ValueError, KeyError, TypeError):
            return

    def _done(self, header: str | None) -> None:
        if header is None:
            return
        try:
            payload = json.loads(base64.b64decode(header))["payload"]
            self.in_flight.pop(int(payload["maxClaimableAmount"]), None)
        except (ValueError, KeyError, TypeError):
            return


def _check(payer: Payer, requirements: PaymentRequirements, atomic: int, url: str | None) -> None:
    """A request's maximum within the payer's per-payment limit and mandate."""
    asset = KNOWN_ASSETS.get(requirements.asset) or payer.tokens.get(requirements.asset)
    limit = next((a for a in payer.max_per_payment if a.asset == asset), None)
    if asset is None or limit is None:
        raise PaymentDeclined(f"no spending limit is set for asset {requirements.asset!r}")
    if Amount(atomic, asset) > limit:
        raise PaymentDeclined(f"{Amount(atomic, asset)} is past the per-payment maximum of {limit}")
    try:
        payer.check_mandate(requirements.model_copy(update={"amount": str(atomic)}), url)
    except MandateLimitExceeded as refusal:
        raise MandateDeclined(f"will not pay: the mandate refuses: {refusal}", refusal) from None


def _open_url(requirements: PaymentRequirements, given: str | None) -> str:
    url = given or (requirements.extra or {}).get("channelOpen")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise PaymentDeclined("the provider names no place to open a channel (extra.channelOpen)")
    return url


def _open_body(payment: PaymentPayload) -> dict[str, Any]:
    return {"paymentPayload": payment.model_dump(by_alias=True, exclude_none=True)}


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code != 200 or not isinstance(data, dict):
        reason = data.get("error") if isinstance(data, dict) else None
        message = data.get("message") if isinstance(data, dict) else response.text[:200]
        raise PaymentDeclined(f"the channel was not opened: {reason}: {message}")
    return data
