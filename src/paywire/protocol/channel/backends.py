"""Where a provider's channels live: `ChannelBackend`, and its ledger implementations.

A `ChannelBook` (the provider's side) reads a channel once (`channel`), then verifies
vouchers in memory; it calls its backend again only to claim. Backends:

- `LedgerChannelBackend`: the ledger network through a `LedgerChannels` in this process;
- `RemoteLedgerChannelBackend`: the same over HTTP, at a facilitator's ``/channels``;
- `paywire.protocol.channel.evm.EvmChannelBackend`: paywire's channel contract on a chain.

Claims on the ledger are signed by the receiver's key (which a backend holds); on a chain
the payee's key sends the claim transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from paywire.crypto.eip712 import Eip712Domain
from paywire.crypto.keys import PrivateKey
from paywire.errors import PaywireError
from paywire.money import Asset
from paywire.protocol.channel.ledger import LedgerChannels
from paywire.protocol.channel.ledger_state import OPEN, LedgerChannelState
from paywire.protocol.channel.ledger_wire import (
    MAX_CLAIMS_PER_BATCH,
    ClaimEntry,
    ClaimOutcome,
    sign_claims,
)
from paywire.protocol.channel.wire import CHANNEL_UNAVAILABLE, ledger_channel_domain
from paywire.protocol.errors import PaymentProblem

DEFAULT_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel as its backend holds it: `payer` deposited `deposit` for `receiver`, of
    which `claimed` was paid; unclaimed funds go back to the payer at `expires_at` (unix s;
    None while nothing is scheduled); vouchers are signed in `domain`."""

    channel_id: str
    network: str
    asset: Asset
    asset_id: str
    """The requirement's ``asset``: the ledger asset's code, or the token's address."""
    payer: str
    receiver: str
    deposit: int
    claimed: int
    expires_at: float | None
    closed: bool
    domain: Eip712Domain

    def to_json(self) -> dict[str, Any]:
        return {
            "channelId": self.channel_id,
            "network": self.network,
            "asset": {"code": self.asset.code, "decimals": self.asset.decimals},
            "assetId": self.asset_id,
            "payer": self.payer,
            "receiver": self.receiver,
            "deposit": str(self.deposit),
            "claimed": str(self.claimed),
            "expiresAt": self.expires_at,
            "closed": self.closed,
            "domain": self.domain.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChannelInfo:
        asset = data["asset"]
        expires = data.get("expiresAt")
        return cls(
            channel_id=str(data["channelId"]),
            network=str(data["network"]),
            asset=Asset(str(asset["code"]), int(asset["decimals"])),
            asset_id=str(data["assetId"]),
            payer=str(data["payer"]),
            receiver=str(data["receiver"]),
            deposit=int(data["deposit"]),
            claimed=int(data["claimed"]),
            expires_at=None if expires is None else float(expires),
            closed=bool(data["closed"]),
            domain=Eip712Domain.from_json(data["domain"]),
        )


class ChannelBackend(Protocol):
    """What a `ChannelBook` needs from where its channels live (one network, one asset,
    one receiver)."""

    network: str
    asset: Asset
    asset_id: str
    receiver: str
    domain: Eip712Domain
    max_claims: int
    """Claims per `claim` call."""
    withdraw_delay_s: int

    def requirements_extra(self) -> dict[str, Any]:
        """What a client needs to open a channel here (for a 402's ``extra``)."""
        ...

    async def channel(self, channel_id: str) -> ChannelInfo | None: ...

    async def claim(self, claims: Sequence[ClaimEntry]) -> list[ClaimOutcome]:
        """Claim (or close) each channel, one outcome per claim, in order; one refused
        claim costs the others nothing."""
        ...

    async def aclose(self) -> None: ...


def info_of(state: LedgerChannelState, asset: Asset) -> ChannelInfo:
    return ChannelInfo(
        channel_id=state.channel_id,
        network=state.network,
        asset=asset,
        asset_id=asset.code,
        payer=state.payer,
        receiver=state.receiver,
        deposit=state.deposit,
        claimed=state.claimed,
        expires_at=float(state.expiry),
        closed=state.status != OPEN,
        domain=ledger_channel_domain(state.network, state.asset),
    )


class LedgerChannelBackend:
    """Channels of the ledger network, through `channels` in this process; claims are
    signed by `receiver_key`. `open_url` is where clients open channels (a facilitator's
    ``/channels/open``), told to them in the 402's ``extra``."""

    max_claims = MAX_CLAIMS_PER_BATCH
    withdraw_delay_s = 0

    def __init__(
        self,
        channels: LedgerChannels,
        receiver_key: PrivateKey,
        *,
        asset: str = "USDC",
        open_url: str | None = None,
    ) -> None:
        self.channels = channels
        self._key = receiver_key
        self.network = channels.network
        self.asset = channels.asset(asset)
        self.asset_id = self.asset.code
        self.receiver = receiver_key.address
        self.domain = channels.domain(self.asset.code)
        self.open_url = open_url

    def requirements_extra(self) -> dict[str, Any]:
        return {"channelOpen": self.open_url} if self.open_url else {}

    async def channel(self, channel_id: str) -> ChannelInfo | None:
        state = await self.channels.state(channel_id)
        if state is None or state.asset != self.asset.code:
            return None
        return info_of(state, self.asset)

    async def claim(self, claims: Sequence[ClaimEntry]) -> list[ClaimOutcome]:
        batch = sign_claims(self._key, self.domain, self.asset.code, claims)
        return await self.channels.claim(batch)

    async def aclose(self) -> None:
        return None


class RemoteLedgerChannelBackend:
    """Channels of the ledger network at a facilitator over HTTP (``<url>/channels``).
    Build it with `connect`, which reads the facilitator's network and domain."""

    max_claims = MAX_CLAIMS_PER_BATCH
    withdraw_delay_s = 0

    def __init__(
        self,
        url: str,
        receiver_key: PrivateKey,
        *,
        network: str,
        asset: Asset,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._key = receiver_key
        self.network = network
        self.asset = asset
        self.asset_id = asset.code
        self.receiver = receiver_key.address
        self.domain = ledger_channel_domain(network, asset.code)
        self._client = client or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT_S)

    @classmethod
    async def connect(
        cls,
        url: str,
        receiver_key: PrivateKey,
        *,
        asset: str = "USDC",
        client: httpx.AsyncClient | None = None,
    ) -> RemoteLedgerChannelBackend:
        """The facilitator at `url` (its base URL), as told by ``GET /channels``."""
        http = client or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT_S)
        info = await _call(http, "GET", url.rstrip("/") + "/channels")
        known = info.get("assets", {}).get(asset) if isinstance(info, dict) else None
        if not isinstance(known, dict) or not isinstance(info.get("network"), str):
            raise PaymentProblem(CHANNEL_UNAVAILABLE, f"{url} has no {asset} channels", status=503)
        return cls(
            url,
            receiver_key,
            network=info["network"],
            asset=Asset(asset, int(known["decimals"])),
            client=http,
        )

    def requirements_extra(self) -> dict[str, Any]:
        return {"channelOpen": self.url + "/channels/open"}

    async def channel(self, channel_id: str) -> ChannelInfo | None:
        data = await _call(self._client, "GET", f"{self.url}/channels/{channel_id}", none=True)
        if data is None:
            return None
        try:
            state = LedgerChannelState(
                channel_id=str(data["channelId"]),
                network=str(data["network"]),
                asset=str(data["asset"]),
                payer=str(data["payer"]),
                receiver=str(data["receiver"]),
                deposit=int(data["deposit"]),
                claimed=int(data["claimedTotal"]),
                expiry=int(data["expiry"]),
                status=str(data["status"]),
                seq=0,
            )
        except (KeyError, TypeError, ValueError):
            raise PaymentProblem(
                CHANNEL_UNAVAILABLE, "the facilitator's channel is malformed", status=503
            ) from None
        if state.network != self.network or state.asset != self.asset.code:
            return None
        return info_of(state, self.asset)

    async def claim(self, claims: Sequence[ClaimEntry]) -> list[ClaimOutcome]:
        batch = sign_claims(self._key, self.domain, self.asset.code, claims)
        data = await _call(self._client, "POST", self.url + "/channels/claim", batch.to_json())
        outcomes = data.get("outcomes") if isinstance(data, dict) else None
        if not isinstance(outcomes, list) or len(outcomes) != len(claims):
            raise PaymentProblem(
                CHANNEL_UNAVAILABLE, "the facilitator's claim answer is malformed", status=503
            )
        return [ClaimOutcome.from_json(item) for item in outcomes]

    async def aclose(self) -> None:
        await self._client.aclose()


async def _call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    *,
    none: bool = False,
) -> Any:
    """JSON from the facilitator; 404 is None when `none`; anything else unexpected is a
    `PaymentProblem` (``channel_unavailable``)."""
    try:
        response = await client.request(method, url, json=body)
    except httpx.HTTPError as error:
        raise PaymentProblem(
            CHANNEL_UNAVAILABLE, f"cannot reach the facilitator: {type(error).__name__}", status=503
        ) from None
    if none and response.status_code == 404:
        return None
    if len(response.content) > MAX_RESPONSE_BYTES:
        raise PaymentProblem(
            CHANNEL_UNAVAILABLE, "the facilitator's answer is too large", status=503
        )
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400 or data is None:
        reason = data.get("error") if isinstance(data, dict) else None
        message = data.get("message") if isinstance(data, dict) else None
        status = response.status_code if reason and response.status_code in (400, 402) else 503
        raise PaymentProblem(
            str(reason or CHANNEL_UNAVAILABLE),
            str(message or f"the facilitator answered HTTP {response.status_code}"),
            status=status,
        )
    return data


__all__ = [
    "ChannelBackend",
    "ChannelInfo",
    "LedgerChannelBackend",
    "PaywireError",
    "RemoteLedgerChannelBackend",
    "info_of",
]
