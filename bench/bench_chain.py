"""The EVM chain path: EIP-3009 simulation (verify) and settlement on the in-process chain,
in process and over the JSON-RPC bridge, and the gas each contract call uses.

The baseline is a plain ``balanceOf`` ``eth_call``: what any read of the chain costs here.
Simulation is paywire's `Token` (fixed selectors, eth_abi) beside a web3 contract object
making the same call, to show what skipping web3's contract layer buys. Settlement is
send + receipt + the check of the Transfer event. Figures are for py-evm, which runs the
EVM in Python: a real node answers a simulation in well under a millisecond.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from web3 import Web3

from bench._harness import DEFAULT_SECONDS, Rate, measure, report
from paywire._dev.http import served
from paywire.chain import LocalChain, RpcChain, Token, rpc_bridge
from paywire.chain.compile import paywire_usd
from paywire.crypto import PrivateKey

SAMPLES = 64
"""Signed authorizations cycled through by the simulations (all stay valid: not settled)."""


def _payer(chain: LocalChain, token: Token) -> PrivateKey:
    payer = PrivateKey.generate()
    token.mint(chain.operator, payer.address, 10**15)
    return payer


def _gas(chain: LocalChain, token: Token) -> list[tuple[str, int]]:
    payer, payee = _payer(chain, token), PrivateKey.generate()
    figures = []

    def settle(label: str) -> None:
        authorization = token.authorization(payer.address, payee.address, 1)
        receipt = token.transfer_with_authorization(
            authorization, token.sign_transfer(payer, authorization)
        )
        figures.append((label, receipt.gas_used))

    settle("transferWithAuthorization, payee's first funds")
    settle("transferWithAuthorization, payee already holds funds")
    operator = chain.operator
    chain.fund(payee.address, 10**18)
    authorization = token.authorization(payer.address, payee.address, 1)
    receipt = token.receive_with_authorization(
        authorization, token.sign_receive(payer, authorization), key=payee
    )
    figures.append(("receiveWithAuthorization (a deposit)", receipt.gas_used))
    nonce = token.authorization(payer.address, payee.address, 1).nonce
    receipt = token.cancel_authorization(payer.address, nonce, token.sign_cancel(payer, nonce))
    figures.append(("cancelAuthorization", receipt.gas_used))
    figures.append(("mint", token.mint(operator, payee.address, 1).gas_used))
    figures.append(("transfer (ERC-20)", token.transfer(payee, payer.address, 1).gas_used))
    deployed = chain.deploy(
        operator,
        paywire_usd(),
        ("string", "string", "string", "address"),
        ("Paywire USD", "USDC", "2", operator.address),
    )
    figures.append(("deploy the token", deployed.gas_used))
    return figures


def main() -> None:
    chain = LocalChain(block_time_s=None)
    token = chain.deploy_token(chain.operator.address)
    payer, payee = _payer(chain, token), PrivateKey.generate()
    samples = []
    for _ in range(SAMPLES):
        authorization = token.authorization(payer.address, payee.address, 1_000)
        samples.append((authorization, token.sign_transfer(payer, authorization)))
    cycle = itertools.cycle(samples)
    contract = Web3().eth.contract(abi=list(paywire_usd().abi))
    w3 = chain._w3

    def balance_of() -> object:
        return token.balance_of(payer.address)

    def simulate() -> object:
        simulation = token.simulate_transfer_with_authorization(*next(cycle))
        assert simulation.ok
        return simulation

    def simulate_web3_contract() -> object:
        authorization, signature = next(cycle)
        call = w3.eth.contract(address=token.address, abi=contract.abi)  # type: ignore[call-overload]
        v, r, s = signature[64], signature[:32], signature[32:64]
        return call.functions.transferWithAuthorization(
            authorization.from_,
            authorization.to,
            authorization.value,
            authorization.valid_after,
            authorization.valid_before,
            authorization.nonce,
            v,
            r,
            s,
        ).call({"from": chain.operator.address})

    def settle() -> object:
        authorization = token.authorization(payer.address, payee.address, 1)
        return token.transfer_with_authorization(
            authorization, token.sign_transfer(payer, authorization)
        )

    with served(rpc_bridge(chain)) as base_url:
        remote = RpcChain(base_url + "/rpc", chain.chain_id, signer=chain.operator)
        remote_token = remote.token(token.address)

        def simulate_over_http() -> object:
            simulation = remote_token.simulate_transfer_with_authorization(*next(cycle))
            assert simulation.ok
            return simulation

        def settle_over_http() -> object:
            authorization = remote_token.authorization(payer.address, payee.address, 1)
            return remote_token.transfer_with_authorization(
                authorization, remote_token.sign_transfer(payer, authorization)
            )

        cases: list[tuple[str, Callable[[], object]]] = [
            ("eth_call balanceOf (baseline)", balance_of),
            ("simulate transferWithAuthorization: paywire Token", simulate),
            ("simulate transferWithAuthorization: web3 contract", simulate_web3_contract),
            ("simulate over the JSON-RPC bridge (HTTP loopback)", simulate_over_http),
            ("settle: send + receipt + Transfer check", settle),
            ("settle over the JSON-RPC bridge (HTTP loopback)", settle_over_http),
        ]
        rates: list[Rate] = [measure(name, call, seconds=DEFAULT_SECONDS) for name, call in cases]
    report(
        "EVM chain (py-evm in process): EIP-3009 verify simulation and settlement",
        rates,
        baseline="eth_call balanceOf (baseline)",
    )
    print("\n## Gas per contract call (receipts on the local chain)")
    for label, gas in _gas(chain, token):
        print(f"{label:<58} {gas:>12,}")
