"""Every check of an EVM `exact` payment that needs no chain call, in x402's order.

Scheme, network, chain id, the terms accepted, the domain fields in ``extra``, recipient,
value (== amount, x402 v2), the time window (with the ledger network's clock-skew
allowance), the signature (paywire's EIP-712 fast path, libsecp256k1: low ``s`` only, as
the token requires), and that the asset is a token this facilitator knows (whose name and
version are what ``extra`` says). The first that fails raises `PaymentProblem` with x402's
reason.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from x402.schemas import PaymentPayload, PaymentRequirements

from paywire.chain.eip3009 import Authorization as ChainAuthorization
from paywire.chain.eip3009 import token_domain
from paywire.crypto import TRANSFER_WITH_AUTHORIZATION, TypedMessage, parse_address
from paywire.crypto.keys import InvalidSignature
from paywire.errors import PaywireError
from paywire.money import Asset
from paywire.protocol import errors
from paywire.protocol.authorization import Authorization
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.evm_exact.networks import SCHEME, evm_chain_id
from paywire.protocol.ledger_network import CLOCK_SKEW_S, MIN_VALIDITY_LEFT_S, Verified

if TYPE_CHECKING:
    from paywire.chain.token import Token

MAX_DOMAIN_TEXT_CHARS = 64
"""``extra.name`` and ``extra.version`` are short labels (the token stores String[64])."""

MESSAGE_CACHE_SIZE = 256
"""(name, version, chain, token) EIP-712 domains kept compiled; a facilitator sees few."""

ZERO_ADDRESS = "0x" + "0" * 40


@dataclass(frozen=True, slots=True)
class KnownToken:
    """A token this facilitator settles, with its ledger asset."""

    token: Token
    asset: Asset


@dataclass(frozen=True, slots=True)
class Checked:
    """A payment that passed every check that needs no chain call."""

    authorization: Authorization
    known: KnownToken

    @property
    def verified(self) -> Verified:
        return Verified(self.authorization, self.known.asset)

    def on_chain(self) -> ChainAuthorization:
        a = self.authorization
        return ChainAuthorization(
            from_=a.payer,
            to=a.payee,
            value=a.value,
            valid_after=a.valid_after,
            valid_before=a.valid_before,
            nonce=a.nonce,
        )


def check_payment(
    payload: PaymentPayload,
    requirements: PaymentRequirements,
    *,
    network: str,
    chain_id: int,
    tokens: Mapping[str, KnownToken],
    now: int,
) -> Checked:
    """`payload` checked against `requirements` for `tokens` on `network` at time `now`."""
    if requirements.scheme != SCHEME or payload.accepted.scheme != SCHEME:
        raise PaymentProblem(errors.UNSUPPORTED_SCHEME, "only the exact scheme is supported")
    if requirements.network != network or payload.accepted.network != network:
        raise PaymentProblem(
            errors.NETWORK_MISMATCH,
            f"this facilitator settles on {network}, not {payload.accepted.network}",
        )
    if evm_chain_id(requirements.network) != chain_id:
        raise PaymentProblem(errors.NETWORK_MISMATCH, f"chain id is not {chain_id}")
    accepted = payload.accepted
    if (
        accepted.asset.lower() != requirements.asset.lower()
        or accepted.amount != requirements.amount
        or accepted.pay_to.lower() != requirements.pay_to.lower()
    ):
        raise PaymentProblem(
            errors.INVALID_REQUIREMENTS,
            "the payment accepts other terms (asset, amount or payTo) than these",
        )
    name, version = domain_fields(requirements.extra)
    authorization = Authorization.from_payload(payload.payload)
    if authorization.payee.lower() != requirements.pay_to.lower():
        raise PaymentProblem(errors.EVM_RECIPIENT, f"the authorization pays {authorization.payee}")
    if authorization.payee == authorization.payer:
        raise PaymentProblem(errors.EVM_RECIPIENT, "a payer cannot pay itself")
    if authorization.payee == ZERO_ADDRESS:
        raise PaymentProblem(errors.EVM_RECIPIENT, "the token cannot pay the zero address")
    if str(authorization.value) != requirements.amount:
        raise PaymentProblem(
            errors.EVM_VALUE,
            f"the authorization is for {authorization.value}, the price is "
            f"{requirements.amount} atomic units",
        )
    check_window(authorization, requirements.max_timeout_seconds, now)
    try:
        token_address = parse_address(requirements.asset)
    except PaywireError:
        raise PaymentProblem(
            errors.INVALID_REQUIREMENTS, "the asset must be a token contract's address"
        ) from None
    try:
        transfer_message(name, version, chain_id, token_address).verify(
            authorization.message(), authorization.signature, authorization.payer
        )
    except (InvalidSignature, PaywireError) as error:
        raise PaymentProblem(
            errors.EVM_SIGNATURE, f"the signature is not the payer's: {error}"
        ) from None
    known = tokens.get(token_address)
    if known is None:
        raise PaymentProblem(
            errors.EVM_UNKNOWN_ASSET,
            f"{token_address} is not a token this facilitator settles on {network}",
        )
    if name != known.token.name:
        raise PaymentProblem(errors.EVM_TOKEN_NAME, f"the token's EIP-712 name is not {name!r}")
    if version != known.token.version:
        raise PaymentProblem(
            errors.EVM_TOKEN_VERSION, f"the token's EIP-712 version is not {version!r}"
        )
    return Checked(authorization, known)


def check_window(authorization: Authorization, max_timeout_s: int, now: int) -> None:
    """The ledger network's window and skew allowance; the chain checks its own clock too."""
    if authorization.valid_after > now + CLOCK_SKEW_S:
        raise PaymentProblem(
            errors.EVM_VALID_AFTER,
            f"the authorization is not valid before {authorization.valid_after} "
            f"(now {now}; clocks may differ by {CLOCK_SKEW_S} s)",
        )
    if authorization.valid_before < now + MIN_VALIDITY_LEFT_S:
        raise PaymentProblem(
            errors.EVM_VALID_BEFORE,
            f"the authorization expired or expires within {MIN_VALIDITY_LEFT_S} s "
            f"(validBefore {authorization.valid_before}, now {now})",
        )
    if authorization.valid_before > now + max_timeout_s + CLOCK_SKEW_S:
        raise PaymentProblem(
            errors.EVM_VALID_BEFORE,
            f"the authorization stays valid longer than the {max_timeout_s} s allowed",
        )


def domain_fields(extra: Mapping[str, Any] | None) -> tuple[str, str]:
    """``extra.name`` and ``extra.version``: the token's EIP-712 domain, as a client needs
    them to sign."""
    extra = extra or {}
    name, version = extra.get("name"), extra.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise PaymentProblem(
            errors.EVM_MISSING_DOMAIN,
            "the requirements' extra must give the token's name and version",
        )
    if len(name) > MAX_DOMAIN_TEXT_CHARS or len(version) > MAX_DOMAIN_TEXT_CHARS:
        raise PaymentProblem(
            errors.EVM_MISSING_DOMAIN,
            f"extra name and version are at most {MAX_DOMAIN_TEXT_CHARS} chars",
        )
    return name, version


@functools.lru_cache(maxsize=MESSAGE_CACHE_SIZE)
def transfer_message(name: str, version: str, chain_id: int, token: str) -> TypedMessage:
    """TransferWithAuthorization in a token's domain, compiled once."""
    return TypedMessage(token_domain(name, version, chain_id, token), TRANSFER_WITH_AUTHORIZATION)
