"""Facilitator verify for x402 `exact` on EVM: paywire's `EvmExactScheme.verify` beside the
official x402 SDK facilitator's verify (`ExactEvmScheme`), on payloads signed by the SDK's
own client, in one run, in process and over JSON-RPC.

The SDK verifies in x402's order and ends with a simulation of
``transferWithAuthorization`` on the chain (``eth_call``) for every payment. paywire checks
the signature on its EIP-712 fast path and answers from its chain view (balances read once
per block per payer, spent nonces from the token's events, payments in flight held): no
chain call once the view knows the payer. Three paywire figures:

- *view, warm*: payments from a payer the view has read at this block (the usual case: an
  agent pays many times a block);
- *view, cold*: each payment from a payer the view has not read (one ``eth_call`` reading
  its balance);
- *simulate=True*: the view, then the same ``eth_call`` simulation as the SDK (the strict
  operator's setting).

Every payload is a new payment (a fresh nonce), verified once per view: the view holds
each one in flight, so verifying a payload twice would be a replay. A paywire figure is
measured in passes over the payloads, each pass on a new scheme whose view was started
(and, for *warm*, told about the payer) by one payment before the clock runs. The SDK keeps
no state, so it cycles through the same payloads.

The chain is paywire's in-process py-evm chain. The SDK's facilitator signer takes an RPC
URL; to compare on the same in-process chain, its web3 instance is pointed at the chain's
in-process provider (so neither side pays for HTTP). The same set is then measured over
the JSON-RPC bridge on loopback, each side through its own public API (`RpcChain`; the
SDK's `FacilitatorWeb3Signer`). py-evm runs the EVM in Python: a call costs ~2 ms here
where a real node answers in well under a millisecond, so the chain call dominates every
figure that makes one.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from eth_account import Account
from x402.mechanisms.evm.exact.client import ExactEvmScheme as ExactEvmClient
from x402.mechanisms.evm.exact.eip3009_utils import classify_eip3009_signature
from x402.mechanisms.evm.exact.facilitator import ExactEvmScheme as ExactEvmFacilitator
from x402.mechanisms.evm.signers import EthAccountSigner, FacilitatorWeb3Signer
from x402.mechanisms.evm.types import ExactEIP3009Payload
from x402.schemas import PaymentPayload, PaymentRequirements

from bench._harness import DEFAULT_SECONDS, Rate, measure, report
from paywire._dev.http import served
from paywire.chain import LocalChain, RpcChain, Token, rpc_bridge
from paywire.crypto import PrivateKey
from paywire.ledger import Ledger, open_ledger
from paywire.protocol import EvmExactScheme

WARM_PAYMENTS = max(200, int(2_000 * DEFAULT_SECONDS))
"""Payments of the one warm payer (SDK-signed, ~3,000/s): a pass of the warm view is
about a tenth of the time budget."""

COLD_PAYERS = 50
"""Payers of one payment each, each funded by a mint (a block: the local chain mines one
per transaction, each at least a second after its parent, so a long list would push its
clock ahead of the payments' validity). Every pass starts a new view, so each pass over
them is cold again."""

PRICE = 1_000


Verify = Callable[[PaymentPayload], object]


def _requirements(token: Token, payee: str) -> PaymentRequirements:
    return PaymentRequirements(
        scheme="exact",
        network=token.chain.network,
        asset=token.address,
        amount=str(PRICE),
        pay_to=payee,
        max_timeout_seconds=300,
        extra=token.extra,
    )


def _signed(payer: PrivateKey, wanted: PaymentRequirements, count: int) -> list[PaymentPayload]:
    """`count` payments by `payer`, signed by the official SDK's client."""
    client = ExactEvmClient(EthAccountSigner(Account.from_key(payer.to_hex())))
    return [
        PaymentPayload(accepted=wanted, payload=client.create_payment_payload(wanted))
        for _ in range(count)
    ]


def _cycling(
    facilitator: ExactEvmFacilitator, wanted: PaymentRequirements, payloads: list[PaymentPayload]
) -> Callable[[], object]:
    """The SDK's verify over the payloads, again and again (it keeps no state)."""
    cycle = itertools.cycle(payloads)

    def call() -> object:
        result = facilitator.verify(next(cycle), wanted)
        assert result.is_valid, result
        return result

    return call


def _passes(
    name: str, fresh: Callable[[], Verify], payloads: list[PaymentPayload], seconds: float
) -> Rate:
    """Verify each payload once per pass, each pass on a `fresh` verifier (set up untimed),
    until `seconds` of verifying are spent."""
    ops, spent = 0, 0.0
    while spent < seconds:
        verify = fresh()
        start = time.perf_counter()
        deadline = start + seconds - spent
        for paid in payloads:
            verify(paid)
            ops += 1
            if time.perf_counter() >= deadline:
                break
        spent += time.perf_counter() - start
    return Rate(name, ops, spent)


def _paywire(
    ledger: Ledger,
    token: Token,
    wanted: PaymentRequirements,
    first: PaymentPayload,
    *,
    simulate: bool,
) -> Callable[[], Verify]:
    """New schemes for `token`, each started by verifying `first` (untimed)."""

    def fresh() -> Verify:
        scheme = EvmExactScheme(ledger, [token], simulate=simulate)
        scheme.verify(first, wanted)
        return lambda paid: scheme.verify(paid, wanted)

    return fresh


VARIANTS: list[tuple[str, bool, str]] = [
    ("view, warm", False, "warm"),
    ("view, cold (new payer each)", False, "cold"),
    ("simulate=True", True, "warm"),
]
"""paywire's figures: a label, whether the scheme simulates, and which payments."""


def _verify_rates(
    ledger: Ledger,
    sides: list[tuple[str, Token, ExactEvmFacilitator]],
    wanted: PaymentRequirements,
    payments: dict[str, list[PaymentPayload]],
    seconds: float,
) -> list[Rate]:
    """For each (where, token as paywire reaches it, SDK facilitator reaching the same
    chain): the SDK's verify, then paywire's variants."""
    rates: list[Rate] = []
    first, warm = payments["first"][0], payments["warm"]
    for where, token, facilitator in sides:
        name = f"x402 SDK: ExactEvmScheme.verify, {where}"
        rates.append(measure(name, _cycling(facilitator, wanted, warm), seconds=seconds))
        for label, simulate, which in VARIANTS:
            fresh = _paywire(ledger, token, wanted, first, simulate=simulate)
            name = f"paywire: {label}, {where}"
            rates.append(_passes(name, fresh, payments[which], seconds))
    return rates


def main() -> None:
    chain = LocalChain(block_time_s=None)
    token = chain.deploy_token(chain.operator.address)
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    token.mint(chain.operator, payer.address, 10**15)
    wanted = _requirements(token, payee.address)
    signed = _signed(payer, wanted, WARM_PAYMENTS + 1)
    cold = [PrivateKey.generate() for _ in range(COLD_PAYERS)]
    for key in cold:
        token.mint(chain.operator, key.address, 10 * PRICE)
    payments = {
        "first": signed[:1],
        "warm": signed[1:],
        "cold": [paid for key in cold for paid in _signed(key, wanted, 1)],
    }
    seconds = DEFAULT_SECONDS
    with tempfile.TemporaryDirectory() as folder:
        ledger = open_ledger(f"sqlite:///{Path(folder) / 'books.db'}")
        try:
            sdk_signer = FacilitatorWeb3Signer(chain.operator.to_hex(), "http://127.0.0.1:9")
            sdk_signer._w3 = chain._w3  # the same in-process chain (see the module's docstring)
            with served(rpc_bridge(chain)) as base_url:
                remote = RpcChain(base_url + "/rpc", chain.chain_id, signer=chain.operator)
                sdk_rpc = FacilitatorWeb3Signer(chain.operator.to_hex(), base_url + "/rpc")
                sides = [
                    ("in process", token, ExactEvmFacilitator(sdk_signer)),
                    ("over JSON-RPC", remote.token(token.address), ExactEvmFacilitator(sdk_rpc)),
                ]
                rates = _verify_rates(ledger, sides, wanted, payments, seconds)
            rates += _signature_rates(ledger, chain, token, sdk_signer, wanted, payments["warm"])
        finally:
            ledger.close()
    report(
        "Facilitator verify, x402 exact on EVM (SDK-signed payloads, py-evm chain)",
        rates,
        baseline="x402 SDK: ExactEvmScheme.verify, in process",
        goal="paywire verify at least 4x the official SDK's",
    )
    by_name = {rate.name: rate.per_s for rate in rates}
    print()
    for where, _, _ in sides:
        theirs = by_name[f"x402 SDK: ExactEvmScheme.verify, {where}"]
        for label, _, _ in VARIANTS:
            ours = by_name[f"paywire: {label}, {where}"]
            print(f"paywire / SDK, {where}, {label}: {ours / theirs:.2f}x")
    ours = by_name[CHECKS]
    print(f"paywire / SDK, without a chain call: {ours / by_name[SDK_SIGNATURE]:.2f}x")


SDK_SIGNATURE = "x402 SDK: signature check alone (eth_account)"
CHECKS = "paywire: checks before the view (`check`)"


def _signature_rates(
    ledger: Ledger,
    chain: LocalChain,
    token: Token,
    sdk_signer: FacilitatorWeb3Signer,
    wanted: PaymentRequirements,
    payloads: list[PaymentPayload],
) -> list[Rate]:
    """The checks without a chain call: the SDK's signature check, paywire's `check`."""
    first = ExactEIP3009Payload.from_dict(payloads[0].payload)
    signature = bytes.fromhex(first.signature[2:]) if first.signature else b""

    def sdk_signature() -> object:
        classified = classify_eip3009_signature(
            sdk_signer,
            first.authorization,
            signature,
            chain.chain_id,
            token.address,
            token.name,
            token.version,
        )
        assert classified.valid
        return classified

    checker = EvmExactScheme(ledger, [token])
    cycle = itertools.cycle(payloads)
    return [
        measure(SDK_SIGNATURE, sdk_signature, seconds=DEFAULT_SECONDS),
        measure(CHECKS, lambda: checker.check(next(cycle), wanted), seconds=DEFAULT_SECONDS),
    ]
