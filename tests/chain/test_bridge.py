"""The JSON-RPC bridge over real loopback HTTP: an `RpcChain`, web3 and the official x402
facilitator signer all reach the in-process chain through it."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from starlette.types import ASGIApp
from web3 import HTTPProvider, Web3

from paywire.chain import (
    Authorization,
    ChainError,
    ChainIdMismatch,
    ChainUnavailable,
    FaucetRefused,
    LocalChain,
    RpcChain,
    Token,
    TransactionReverted,
    dev_key,
    rpc_bridge,
)
from paywire.chain.bridge import MAX_RPC_BATCH, MAX_RPC_BODY_BYTES
from paywire.crypto import PrivateKey

Serve = Callable[[ASGIApp], str]


@pytest.fixture
def bridged(chain: LocalChain, serve: Serve) -> tuple[str, RpcChain]:
    url = serve(rpc_bridge(chain)) + "/rpc"
    return url, RpcChain(url, chain.chain_id, signer=dev_key(0))


def _rpc(url: str, body: object) -> httpx.Response:
    return httpx.post(url, content=json.dumps(body), timeout=10)


def test_rpc_chain_sees_the_local_chain(
    chain: LocalChain, token: Token, bridged: tuple[str, RpcChain]
) -> None:
    _, remote = bridged
    assert remote.chain_id == chain.chain_id and remote.network == chain.network
    assert remote.is_demo
    assert remote.block_number() == chain.block_number()
    assert abs(remote.timestamp() - chain.timestamp()) <= 2
    same = remote.token(token.address)
    assert (same.name, same.version, same.decimals) == ("Paywire USD", "2", 6)
    assert same.domain == token.domain
    assert remote.code(token.address) == chain.code(token.address)


def test_payment_settles_over_http(
    chain: LocalChain, token: Token, bridged: tuple[str, RpcChain]
) -> None:
    _, remote = bridged
    tok = remote.token(token.address)
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    tok.faucet(payer.address, 5_000_000)  # demo: allowed through the bridge
    authorization = tok.authorization(payer.address, payee.address, 1_000_000)
    signature = tok.sign_transfer(payer, authorization)
    assert tok.simulate_transfer_with_authorization(authorization, signature).ok
    receipt = tok.transfer_with_authorization(authorization, signature)
    assert receipt.ok
    assert token.balance_of(payee.address) == 1_000_000  # seen in-process too
    assert chain.receipt(receipt.tx_hash) == receipt
    # The revert reason crosses HTTP intact.
    simulation = tok.simulate_transfer_with_authorization(authorization, signature)
    assert simulation.code == "invalid_exact_evm_nonce_already_used"
    with pytest.raises(TransactionReverted, match="authorization is used") as raised:
        tok.transfer_with_authorization(authorization, signature)
    assert raised.value.reason == "authorization is used or canceled"
    # Logs too.
    (found,) = tok.transfers(
        from_block=receipt.block_number, to_block=receipt.block_number, to=payee.address
    )
    assert (found.from_, found.value, found.tx_hash) == (payer.address, 1_000_000, receipt.tx_hash)
    assert tok.authorization_used_log(payer.address, authorization.nonce) is not None


def test_deploy_over_http(bridged: tuple[str, RpcChain]) -> None:
    _, remote = bridged
    owner = PrivateKey.generate()
    deployed = remote.deploy_token(owner.address, name="Other USD", version="1")
    assert deployed.owner() == owner.address
    assert deployed.extra == {"name": "Other USD", "version": "1"}


def test_web3_http_provider_works_against_the_bridge(
    chain: LocalChain, token: Token, bridged: tuple[str, RpcChain]
) -> None:
    url, _ = bridged
    w3 = Web3(HTTPProvider(url))
    assert w3.eth.chain_id == chain.chain_id
    block = w3.eth.get_block("latest", full_transactions=True)
    assert block["number"] == chain.block_number()
    assert len(block["logsBloom"]) == 256
    erc20 = w3.eth.contract(
        address=Web3.to_checksum_address(token.address),
        abi=[
            {
                "name": "balanceOf",
                "type": "function",
                "stateMutability": "view",
                "inputs": [{"name": "a", "type": "address"}],
                "outputs": [{"name": "", "type": "uint256"}],
            }
        ],
    )
    holder = PrivateKey.generate()
    minted = token.mint(chain.operator, holder.address, 77)
    assert erc20.functions.balanceOf(holder.address).call() == 77
    # A call from a sender with no gas money answers as on geth (eth-tester alone refuses).
    assert erc20.functions.balanceOf(holder.address).call({"from": holder.address}) == 77
    assert w3.eth.get_balance(holder.address) == 0  # and the lent gas money is gone again
    receipt = w3.eth.get_transaction_receipt(minted.tx_hash)  # type: ignore[arg-type]
    assert receipt["status"] == 1 and receipt["logs"][0]["logIndex"] == 0
    transaction = w3.eth.get_transaction(minted.tx_hash)  # type: ignore[arg-type]
    assert transaction["from"] == chain.operator.address


def test_official_x402_client_and_facilitator_settle_through_the_bridge(
    chain: LocalChain, token: Token, bridged: tuple[str, RpcChain]
) -> None:
    """The x402 SDK's own EVM exact client signs, and its own facilitator verifies and
    settles, against the Vyper token on the local chain, reached over the bridge."""
    from eth_account import Account
    from x402.mechanisms.evm.exact.client import ExactEvmScheme as ExactClient
    from x402.mechanisms.evm.exact.facilitator import ExactEvmScheme as ExactFacilitator
    from x402.mechanisms.evm.signers import EthAccountSigner, FacilitatorWeb3Signer
    from x402.schemas.payments import PaymentPayload, PaymentRequirements

    url, _ = bridged
    operator = PrivateKey.generate()
    chain.fund(operator.address, 10**18)
    payer, payee = PrivateKey.generate(), PrivateKey.generate()
    token.mint(chain.operator, payer.address, 5_000_000)
    client = ExactClient(EthAccountSigner(Account.from_key(payer.to_hex())))
    facilitator = ExactFacilitator(FacilitatorWeb3Signer(operator.to_hex(), url))

    def requirements(amount: int) -> PaymentRequirements:
        return PaymentRequirements(
            scheme="exact",
            network=chain.network,
            amount=str(amount),
            asset=token.address,
            pay_to=payee.address,
            max_timeout_seconds=300,
            extra=token.extra,
        )

    wanted = requirements(1_000_000)
    inner = client.create_payment_payload(wanted)
    payload = PaymentPayload(x402_version=2, accepted=wanted, payload=inner)
    # paywire reads the SDK's payload as the SDK wrote it.
    authorization = Authorization.from_json(inner["authorization"])
    assert token.recover(authorization, inner["signature"]) == payer.address
    assert token.simulate_transfer_with_authorization(authorization, inner["signature"]).ok
    assert facilitator.verify(payload, wanted).is_valid
    settled = facilitator.settle(payload, wanted)
    assert settled.success and settled.network == chain.network
    assert token.balance_of(payee.address) == 1_000_000
    receipt = chain.receipt(settled.transaction)
    assert receipt is not None
    assert token.check_transfer(receipt, payer.address, payee.address, 1_000_000)
    # Its error reasons come through from the contract's revert reasons.
    replay = facilitator.verify(payload, wanted)
    assert replay.invalid_reason == "invalid_exact_evm_nonce_already_used"
    too_much = requirements(50_000_000)
    payload = PaymentPayload(
        x402_version=2, accepted=too_much, payload=client.create_payment_payload(too_much)
    )
    assert facilitator.verify(payload, too_much).invalid_reason == (
        "invalid_exact_evm_insufficient_balance"
    )


def test_bridge_without_demo_flag_refuses_the_faucet(
    chain: LocalChain, token: Token, serve: Serve
) -> None:
    url = serve(rpc_bridge(chain, demo=False)) + "/rpc"
    remote = RpcChain(url, signer=dev_key(0))
    assert not remote.is_demo
    with pytest.raises(FaucetRefused, match="demo mode with virtual funds"):
        remote.token(token.address).faucet(PrivateKey.generate().address, 1)


def test_wrong_chain_id_and_dead_endpoint(bridged: tuple[str, RpcChain]) -> None:
    url, remote = bridged
    with pytest.raises(ChainIdMismatch, match="serves chain"):
        RpcChain(url, remote.chain_id + 1)
    with pytest.raises(ChainUnavailable):
        RpcChain("http://127.0.0.1:9/rpc", request_timeout_s=2)
    for bad in ("ftp://x", "http://", "127.0.0.1:8545", "http://a b", "http://x/" + "a" * 3000):
        with pytest.raises(ChainError, match="URL"):
            RpcChain(bad)
    assert "rpc" not in repr(RpcChain(url + "?apikey=secret")).lower().replace("rpcchain", "")


def test_bridge_refuses_what_it_does_not_serve(bridged: tuple[str, RpcChain]) -> None:
    url, _ = bridged
    dev = dev_key(0).address
    # Unlocked accounts would let anyone spend the development keys' funds.
    answer = _rpc(
        url,
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_sendTransaction",
            "params": [{"from": dev, "to": dev, "value": "0x1"}],
        },
    ).json()
    assert answer["error"]["code"] == -32601
    for method in ("evm_mine", "evm_snapshot", "eth_sign", "x" * 1000):
        answer = _rpc(url, {"jsonrpc": "2.0", "id": 2, "method": method, "params": []}).json()
        assert answer["error"]["code"] == -32601
        assert len(answer["error"]["message"]) <= 300


def test_bridge_batches_and_bounds(chain: LocalChain, bridged: tuple[str, RpcChain]) -> None:
    url, _ = bridged
    call = {"jsonrpc": "2.0", "method": "eth_chainId", "params": []}
    answers = _rpc(url, [dict(call, id=1), dict(call, id="two")]).json()
    assert [a["id"] for a in answers] == [1, "two"]
    assert {a["result"] for a in answers} == {hex(chain.chain_id)}
    too_many = [dict(call, id=i) for i in range(MAX_RPC_BATCH + 1)]
    assert _rpc(url, too_many).json()["error"]["code"] == -32600
    assert _rpc(url, []).json()["error"]["code"] == -32600
    huge = httpx.post(url, content=b"[" + b" " * MAX_RPC_BODY_BYTES + b"]", timeout=10)
    assert huge.status_code == 413


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", -32700),
        (b"\xff\xfe", -32700),
        (b"42", -32600),
        (b'{"jsonrpc": "1.0", "id": 1, "method": "eth_chainId"}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1, "method": 5}', -32600),
        (b'{"jsonrpc": "2.0", "id": {}, "method": "eth_chainId"}', -32600),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": {}}', -32602),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [5]}', -32602),
        (
            b'{"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [{"value": "0xZZ"}]}',
            -32602,
        ),
        (
            b'{"jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": ["nope", 1]}',
            -32000,
        ),
        (
            b'{"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0x00"]}',
            -32000,
        ),
    ],
)
def test_bridge_answers_malformed_calls_with_json_rpc_errors(
    bridged: tuple[str, RpcChain], body: bytes, code: int
) -> None:
    url, _ = bridged
    response = httpx.post(url, content=body, timeout=10)
    assert response.status_code == 200
    assert response.json()["error"]["code"] == code


def test_revert_is_error_code_3_with_the_reason_payload(
    chain: LocalChain, token: Token, bridged: tuple[str, RpcChain]
) -> None:
    url, _ = bridged
    stranger = PrivateKey.generate()
    data = "0x40c10f19" + "00" * 12 + stranger.address[2:].lower() + "00" * 31 + "01"  # mint
    answer = _rpc(
        url,
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_call",
            "params": [{"from": stranger.address, "to": token.address, "data": data}, "latest"],
        },
    ).json()
    assert answer["error"]["code"] == 3
    assert answer["error"]["message"] == "execution reverted: caller is not the owner"
    assert answer["error"]["data"].startswith("0x08c379a0")
