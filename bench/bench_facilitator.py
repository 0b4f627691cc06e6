"""Facilitator verify for x402 `exact` on EVM: paywire's `EvmExactScheme.verify` beside the
official x402 SDK facilitator's verify (`ExactEvmScheme`), on the same payloads (signed by
the SDK's own client), in one run.

Both verify in x402's order and both end with a simulation of ``transferWithAuthorization``
on the chain (``eth_call``). paywire checks the signature on its EIP-712 fast path
(libsecp256k1, precomputed type hashes) and calls the token with fixed selectors; the SDK
hashes the typed data with eth_account and calls through a web3 contract object.

The chain is paywire's in-process py-evm chain. The SDK's facilitator signer takes an RPC
URL; to compare on the same in-process chain, its web3 instance is pointed at the chain's
in-process provider (so neither side pays for HTTP). The same pair is then measured over
the JSON-RPC bridge on loopback, each side through its own public API (`RpcChain`; the
SDK's `FacilitatorWeb3Signer`). The signature checks alone (no chain call) are measured
too: py-evm runs the EVM in Python, so a simulation costs milliseconds here and dominates
both sides, where a real node answers one in well under a millisecond.
"""

from __future__ import annotations

import itertools
import tempfile
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
from paywire.ledger import open_ledger
from paywire.protocol import EvmExactScheme

SAMPLES = 64
"""Signed payments cycled through (all stay valid: verify settles nothing)."""

PRICE = 1_000


def _payments(
    token: Token, payer: PrivateKey, payee: str
) -> tuple[PaymentRequirements, list[PaymentPayload]]:
    """`SAMPLES` payments signed by the official SDK's client, and what they pay for."""
    wanted = PaymentRequirements(
        scheme="exact",
        network=token.chain.network,
        asset=token.address,
        amount=str(PRICE),
        pay_to=payee,
        max_timeout_seconds=300,
        extra=token.extra,
    )
    client = ExactEvmClient(EthAccountSigner(Account.from_key(payer.to_hex())))
    payloads = [
        PaymentPayload(accepted=wanted, payload=client.create_payment_payload(wanted))
        for _ in range(SAMPLES)
    ]
    return wanted, payloads


def _verifier(
    verify: Callable[[PaymentPayload, PaymentRequirements], object],
    wanted: PaymentRequirements,
    payloads: list[PaymentPayload],
    ok: Callable[[object], bool],
) -> Callable[[], object]:
    cycle = itertools.cycle(payloads)

    def call() -> object:
        result = verify(next(cycle), wanted)
        assert ok(result), result
        return result

    return call


def _sdk_ok(result: object) -> bool:
    return bool(getattr(result, "is_valid", False))


def _paywire_ok(result: object) -> bool:
    return result is not None


def main() -> None:
    chain = LocalChain(block_time_s=None)
    token = chain.deploy_token(chain.operator.address)
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    token.mint(chain.operator, payer.address, 10**12)
    wanted, payloads = _payments(token, payer, payee.address)
    seconds = DEFAULT_SECONDS
    with tempfile.TemporaryDirectory() as folder:
        ledger = open_ledger(f"sqlite:///{Path(folder) / 'books.db'}")
        try:
            paywire = EvmExactScheme(ledger, [token])
            sdk_signer = FacilitatorWeb3Signer(chain.operator.to_hex(), "http://127.0.0.1:9")
            sdk_signer._w3 = chain._w3  # the same in-process chain (see the module's docstring)
            sdk = ExactEvmFacilitator(sdk_signer)
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

            cases: list[tuple[str, Callable[[], object]]] = [
                (
                    "x402 SDK: ExactEvmScheme.verify (in process)",
                    _verifier(sdk.verify, wanted, payloads, _sdk_ok),
                ),
                (
                    "paywire: EvmExactScheme.verify (in process)",
                    _verifier(paywire.verify, wanted, payloads, _paywire_ok),
                ),
            ]
            with served(rpc_bridge(chain)) as base_url:
                remote = RpcChain(base_url + "/rpc", chain.chain_id, signer=chain.operator)
                paywire_rpc = EvmExactScheme(ledger, [remote.token(token.address)])
                sdk_rpc = ExactEvmFacilitator(
                    FacilitatorWeb3Signer(chain.operator.to_hex(), base_url + "/rpc")
                )
                cases += [
                    (
                        "x402 SDK: verify over the JSON-RPC bridge",
                        _verifier(sdk_rpc.verify, wanted, payloads, _sdk_ok),
                    ),
                    (
                        "paywire: verify over the JSON-RPC bridge",
                        _verifier(paywire_rpc.verify, wanted, payloads, _paywire_ok),
                    ),
                ]
                cases += [
                    ("x402 SDK: signature check alone (eth_account)", sdk_signature),
                    (
                        "paywire: checks before the chain call (EvmExactScheme.check)",
                        _verifier(paywire.check, wanted, payloads, _paywire_ok),
                    ),
                ]
                rates: list[Rate] = [measure(name, call, seconds=seconds) for name, call in cases]
        finally:
            ledger.close()
    report(
        "Facilitator verify, x402 exact on EVM (same SDK-signed payloads, py-evm chain)",
        rates,
        baseline="x402 SDK: ExactEvmScheme.verify (in process)",
        goal="paywire verify at least 4x the official SDK's",
    )
    by_name = {rate.name: rate.per_s for rate in rates}
    pairs = [
        ("in process", "paywire: EvmExactScheme.verify (in process)", cases[0][0]),
        ("over JSON-RPC", "paywire: verify over the JSON-RPC bridge", cases[2][0]),
        ("without the chain call", cases[5][0], cases[4][0]),
    ]
    for label, ours, theirs in pairs:
        print(f"paywire / SDK, {label}: {by_name[ours] / by_name[theirs]:.2f}x")
