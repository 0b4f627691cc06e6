"""A route's terms: the options a 402 offers, and which of them a payment accepted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from x402.schemas import PaymentPayload, PaymentRequirements
from x402.schemas.v1 import PaymentPayloadV1, PaymentRequiredV1, PaymentRequirementsV1

from paywire.crypto.keys import parse_address
from paywire.errors import PaywireError
from paywire.money import Amount
from paywire.protocol import errors
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.evm_exact import is_evm_network, network_from_v1, v1_network_name
from paywire.protocol.ledger_network import is_ledger_network

MAX_TOKEN_DECIMALS = 36
"""A token's decimals past this is a broken `/supported`, not a token."""


def offer(
    price: Amount,
    kinds: list[tuple[str, str, dict[str, Any]]],
    pay_to: str,
    max_timeout_s: int,
) -> list[PaymentRequirements]:
    """What a route priced `price` accepts: one option per facilitator kind (scheme,
    network, ``extra``) that can carry the price."""
    accepts = []
    for scheme, network, extra in kinds:
        if is_ledger_network(network):
            option = PaymentRequirements(
                scheme=scheme,
                network=network,
                asset=price.asset.code,
                amount=str(price.atomic),
                pay_to=pay_to,
                max_timeout_seconds=max_timeout_s,
                extra=extra,
            )
        elif is_evm_network(network):
            priced = evm_price(price, extra)
            if priced is None:
                continue
            asset, amount, domain = priced
            option = PaymentRequirements(
                scheme=scheme,
                network=network,
                asset=asset,
                amount=str(amount),
                pay_to=pay_to,
                max_timeout_seconds=max_timeout_s,
                extra=domain,
            )
        else:
            continue
        accepts.append(option)
    return accepts


def evm_price(price: Amount, extra: Mapping[str, Any]) -> tuple[str, int, dict[str, Any]] | None:
    """A route's price in an EVM token described by a `/supported` kind's ``extra``
    (``asset``, ``decimals``, ``assetCode``, ``name``, ``version``): the token address, the
    amount in its atomic units and the requirement's ``extra``; None if the token does not
    count as the price's asset or cannot carry the price exactly."""
    token, decimals, code = extra.get("asset"), extra.get("decimals"), extra.get("assetCode")
    name, version = extra.get("name"), extra.get("version")
    if not (
        isinstance(token, str)
        and isinstance(name, str)
        and isinstance(version, str)
        and isinstance(decimals, int)
        and not isinstance(decimals, bool)
        and 0 <= decimals <= MAX_TOKEN_DECIMALS
        and code == price.asset.code
    ):
        return None
    try:
        address = parse_address(token)
    except PaywireError:
        return None
    shift = decimals - price.asset.decimals
    if shift >= 0:
        amount = price.atomic * 10**shift
    elif price.atomic % 10**-shift == 0:
        amount = price.atomic // 10**-shift
    else:
        return None  # the token cannot express this price exactly
    return address, amount, {"name": name, "version": version}


def as_v2(
    payload: PaymentPayload | PaymentPayloadV1, accepts: list[PaymentRequirements]
) -> PaymentPayload:
    """A version 1 payment as version 2: its scheme and network pick the requirement (a v1
    EVM network name, such as ``base-sepolia``, stands for its chain's CAIP-2 id)."""
    if isinstance(payload, PaymentPayload):
        return payload
    network = network_from_v1(payload.network) or payload.network
    for requirements in accepts:
        if (requirements.scheme, requirements.network) == (payload.scheme, network):
            return PaymentPayload(accepted=requirements, payload=payload.payload)
    raise PaymentProblem(
        errors.INVALID_REQUIREMENTS,
        f"nothing here is paid with {payload.scheme} on {payload.network}",
    )


def matching(payload: PaymentPayload, accepts: list[PaymentRequirements]) -> PaymentRequirements:
    accepted = payload.accepted
    for requirements in accepts:
        if (
            requirements.scheme == accepted.scheme
            and requirements.network == accepted.network
            and requirements.asset == accepted.asset
            and requirements.amount == accepted.amount
            and requirements.pay_to.lower() == accepted.pay_to.lower()
        ):
            return requirements
    raise PaymentProblem(
        errors.INVALID_REQUIREMENTS,
        "the payment does not accept any of this route's terms (scheme, network, asset, "
        "amount, payTo)",
    )


def as_v1(
    error: str, accepts: list[PaymentRequirements], url: str, description: str | None
) -> PaymentRequiredV1:
    """The 402 in x402 version 1's form (the body, which v1 clients read; v2 clients read
    the `PAYMENT-REQUIRED` header): an EVM network by its v1 name where it has one."""
    return PaymentRequiredV1(
        error=error,
        accepts=[
            PaymentRequirementsV1(
                scheme=option.scheme,
                network=v1_network_name(option.network) or option.network,
                max_amount_required=option.amount,
                resource=url,
                description=description,
                mime_type="application/json",
                pay_to=option.pay_to,
                max_timeout_seconds=option.max_timeout_seconds,
                asset=option.asset,
                extra=option.extra,
            )
            for option in accepts
        ],
    )
