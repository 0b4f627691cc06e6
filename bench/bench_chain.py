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
    main_channels()


# ----- payment channels ---------------------------------------------------------------------


def _channel_gas(chain: LocalChain, token: Token) -> list[tuple[str, int]]:
    from paywire.chain import ChannelContract
    from paywire.chain.compile import paywire_channels

    deployed = chain.deploy(
        chain.operator, paywire_channels(), ("address", "uint256"), (token.address, 60)
    )
    assert deployed.contract_address is not None
    figures = [("deploy the channel contract", deployed.gas_used)]
    channels = ChannelContract(chain, deployed.contract_address)
    payer, payee = _payer(chain, token), PrivateKey.generate()
    for key in (payer, payee):
        chain.fund(key.address, 10**18)
    token.approve(payer, channels.address, 2**256 - 1)

    def open_channel() -> bytes:
        return channels.open(payer, payee.address, 10**6, approve=False).channel_id

    opened = channels.open(payer, payee.address, 10**6, approve=False)
    figures.append(("open", opened.receipt.gas_used))
    cid = opened.channel_id
    figures.append(("top_up", channels.top_up(payer, cid, 10**6, approve=False).gas_used))
    claim = channels.claim(payee, channels.sign_voucher(payer, cid, 100))
    figures.append(("claim, the channel's first (payee's first funds)", claim.receipt.gas_used))
    claim = channels.claim(payee, channels.sign_voucher(payer, cid, 200))
    figures.append(("claim, a later one", claim.receipt.gas_used))
    for count in (10, 50):
        ids = [open_channel() for _ in range(count)]
        for when, cumulative in (("first", 10), ("later", 20)):
            vouchers = [channels.sign_voucher(payer, i, cumulative) for i in ids]
            gas = channels.claim_many(payee, vouchers).receipt.gas_used
            figures.append(
                (f"claim_many of {count}, {when} claims ({gas // count:,}/voucher)", gas)
            )
    closed = channels.close(payee, cid, channels.sign_voucher(payer, cid, 300))
    figures.append(("close with a voucher (claim + refund)", closed.receipt.gas_used))
    figures.append(
        ("close without a voucher (refund)", channels.close(payee, open_channel()).receipt.gas_used)
    )
    cid = open_channel()
    channels.claim(payee, channels.sign_voucher(payer, cid, 5))
    figures.append(("request_withdrawal", channels.request_withdrawal(payer, cid).gas_used))
    chain.advance_time(61)
    figures.append(("withdraw (after a claim)", channels.withdraw(payer, cid).receipt.gas_used))
    return figures


def main_channels() -> None:
    """Payment channels: the payee's voucher check (the hot path, no chain call) and the gas
    of each contract call."""
    from paywire.chain import ChannelContract
    from paywire.chain.channels import check_voucher

    chain = LocalChain(block_time_s=None)
    token = chain.deploy_token(chain.operator.address)
    channels = ChannelContract.deploy(chain, token, challenge_period_s=60)
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    token.mint(chain.operator, payer.address, 10**9)
    for key in (payer, payee):  # a simulated claim comes from the payee: it pays for gas
        chain.fund(key.address, 10**18)
    channel = channels.channel(channels.open(payer, payee.address, 10**9).channel_id)
    vouchers = itertools.cycle(
        [channels.sign_voucher(payer, channel.channel_id, n) for n in range(1, SAMPLES + 1)]
    )

    def sign() -> object:
        return channels.sign_voucher(payer, channel.channel_id, 1)

    def check() -> object:
        check_voucher(next(vouchers), channel, channels.domain)
        return None

    def simulate() -> object:
        return channels.simulate_claim(payee.address, next(vouchers))

    cases: list[tuple[str, Callable[[], object]]] = [
        ("sign a voucher (payer)", sign),
        ("check a voucher off chain (payee, per request)", check),
        ("simulate a claim (eth_call on py-evm)", simulate),
    ]
    report(
        "Payment channels: vouchers",
        [measure(name, call, seconds=DEFAULT_SECONDS) for name, call in cases],
        baseline="sign a voucher (payer)",
    )
    print("\n## Gas per channel contract call (receipts on the local chain)")
    for label, gas in _channel_gas(chain, token):
        print(f"{label:<58} {gas:>12,}")
