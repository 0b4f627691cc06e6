"""Moving the demo's money as its users would: chain deposits and withdrawals through the
operator's HTTP API, and wallet-to-wallet payments on the ledger network (an x402 `exact`
payment signed by the payer and settled by the facilitator)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from paywire.client.direct import direct_payment
from paywire.crypto.keys import PrivateKey
from paywire.errors import PaywireError
from paywire.ledger import new_id
from paywire.mandate import MandateChain
from paywire.money import Amount
from paywire.protocol import RemoteFacilitator
from paywire.protocol.withdrawal import WithdrawalRequest
from paywire.service.operator import ChainDesk

TIMEOUT_S = 60.0
SIGNATURE_VALIDITY_S = 600


class DemoStepFailed(PaywireError):
    code = "demo_step_failed"


def post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(url, json=body, timeout=TIMEOUT_S)
    data = response.json()
    if response.status_code != 200 or not isinstance(data, dict):
        raise DemoStepFailed(f"{url} answered {response.status_code}: {data}")
    return data


def deposit(
    operator_url: str, desk: ChainDesk, key: PrivateKey, value_atomic: int
) -> dict[str, Any]:
    """The wallet signs a ``receiveWithAuthorization`` to the operator's reserve; the operator
    submits it on chain and credits the wallet's ledger account."""
    authorization, signature = desk.reserve.deposit_authorization(key, value_atomic)
    return post_json(
        f"{operator_url}/deposit",
        {"authorization": authorization.to_json(), "signature": "0x" + signature.hex()},
    )


def withdraw(
    operator_url: str, desk: ChainDesk, key: PrivateKey, value_atomic: int
) -> dict[str, Any]:
    """The wallet signs a withdrawal; the operator pays it on chain from its reserve."""
    request = WithdrawalRequest(
        wallet=key.address,
        to=key.address,
        value=value_atomic,
        id=new_id(),
        valid_before=int(time.time()) + SIGNATURE_VALIDITY_S,
    )
    signature = request.sign(desk.token.domain, key)
    return post_json(
        f"{operator_url}/withdraw",
        {"request": request.to_json(), "signature": "0x" + signature.hex()},
    )


def send(
    operator_url: str,
    network: str,
    key: PrivateKey,
    payee: str,
    amount: Amount,
    *,
    mandate: MandateChain | None = None,
    memo: str = "transfer",
) -> str:
    """Pay `payee` on the ledger network from `key`'s wallet; returns the transfer id."""
    return asyncio.run(_send(operator_url, network, key, payee, amount, mandate, memo))


async def _send(
    operator_url: str,
    network: str,
    key: PrivateKey,
    payee: str,
    amount: Amount,
    mandate: MandateChain | None,
    memo: str,
) -> str:
    facilitator = RemoteFacilitator(operator_url)
    try:
        payload, requirements = direct_payment(
            key, network, payee, amount, mandate=mandate, resource=f"paywire:{memo}"
        )
        settled = await facilitator.settle(payload, requirements)
        if not settled.success:
            raise DemoStepFailed(f"the payment to {payee} failed: {settled.error_reason}")
        return str(settled.transaction)
    finally:
        await facilitator.aclose()
