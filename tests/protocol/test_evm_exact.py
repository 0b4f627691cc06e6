"""x402 `exact` on EVM through paywire's facilitator, in process: the Vyper EIP-3009 token on
a real py-evm chain, real signatures, a real ledger. Every refusal carries x402's reason."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequirements, ResourceInfo

from paywire.chain import LocalChain, Reserve, Token, check_reserves, token_domain
from paywire.client import Payer, PaymentDeclined
from paywire.crypto import Eip712Domain, PrivateKey
from paywire.ledger import AccountKind, Ledger, TransferCode
from paywire.money import USDC
from paywire.protocol import (
    EvmExactScheme,
    Facilitator,
    evm_account_id,
    evm_payment_id,
    network_from_v1,
    sign_authorization,
    v1_network_name,
)
from paywire.protocol.evm_exact import PAYWIRE_LOCAL_CHAIN_ID, V1_NETWORKS

pytestmark = pytest.mark.anyio

PRICE = 1_000  # $0.001 in USDC's atomic units


@pytest.fixture
def evm(ledger: Ledger, operator: PrivateKey, token: Token) -> Facilitator:
    """The ledger network and the module's chain, in one facilitator."""
    return Facilitator.for_networks(operator, ledger=ledger, tokens=[token])


@pytest.fixture
def payer(chain: LocalChain, token: Token) -> PrivateKey:
    """A wallet holding $1 of the token on chain."""
    key = PrivateKey.generate()
    token.mint(chain.operator, key.address, 1_000_000)
    return key


def requirements(token: Token, pay_to: str, amount: int = PRICE) -> PaymentRequirements:
    return PaymentRequirements(
        scheme="exact",
        network=token.chain.network,
        asset=token.address,
        amount=str(amount),
        pay_to=pay_to,
        max_timeout_seconds=300,
        extra=token.extra,
    )


def payment(
    token: Token,
    payer: PrivateKey,
    wanted: PaymentRequirements,
    *,
    domain: Eip712Domain | None = None,
    **fields: Any,
) -> PaymentPayload:
    """A payment for `wanted` signed by `payer` (in `domain`, with `fields` overridden)."""
    now = int(time.time())
    terms: dict[str, Any] = {
        "payee": wanted.pay_to,
        "value": int(wanted.amount),
        "valid_after": now - 60,
        "valid_before": now + 300,
    }
    terms.update(fields)
    authorization = sign_authorization(payer, domain or token.domain, **terms)
    return PaymentPayload(accepted=wanted, payload=authorization.to_payload())


async def test_supported_lists_the_ledger_network_and_each_token(
    evm: Facilitator, ledger: Ledger, operator: PrivateKey, chain: LocalChain, token: Token
) -> None:
    supported = evm.supported()
    by_network = {kind.network: kind for kind in supported.kinds}
    assert set(by_network) == {ledger.network, chain.network}
    assert by_network[chain.network].extra == {
        "name": "Paywire USD",
        "version": "2",
        "asset": token.address,
        "decimals": 6,
        "assetCode": "USDC",
    }
    assert supported.signers == {
        "paywire:*": [operator.address],
        "eip155:*": [chain.operator.address],
    }


async def test_a_payment_settles_on_chain_and_in_the_books(
    evm: Facilitator,
    ledger: Ledger,
    operator: PrivateKey,
    chain: LocalChain,
    token: Token,
    payer: PrivateKey,
    provider: PrivateKey,
) -> None:
    wanted = requirements(token, provider.address)
    paid = payment(token, payer, wanted)
    assert (await evm.verify(paid, wanted)).is_valid
    settled = await evm.settle(paid, wanted, resource="http://shop/item")
    assert settled.success and settled.network == chain.network and settled.amount == "1000"
    assert token.balance_of(provider.address) == PRICE
    assert token.balance_of(payer.address) == 1_000_000 - PRICE
    receipt = chain.receipt(settled.transaction)
    assert receipt is not None and receipt.ok
    # The books: a movement between the two EXTERNAL mirror accounts.
    nonce = bytes.fromhex(paid.payload["authorization"]["nonce"][2:])
    record = ledger.transfer(evm_payment_id(chain.network, token.address, payer.address, nonce))
    assert record.debit_account_id == evm_account_id(chain.network, payer.address, "USDC")
    assert record.credit_account_id == f"evm:{chain.network}:{provider.address}:USDC"
    assert record.amount == USDC.atomic(PRICE) and record.code == TransferCode.PAYMENT
    assert record.metadata["tx"] == settled.transaction
    assert record.metadata["token"] == token.address
    assert record.metadata["resource"] == "http://shop/item"
    stored = json.loads(record.authorization or "{}")
    assert stored["payload"] == paid.payload  # the signed payload, verbatim
    assert ledger.account(record.debit_account_id).kind is AccountKind.EXTERNAL
    # The receipt is the facilitator's, names the transaction and points at the record.
    client = Payer.create(payer, max_per_payment="$1", facilitators={"eip155:*": operator.address})
    kept = client.keep_receipt(settled)
    assert kept is not None and kept.transaction == settled.transaction
    assert kept.log_index == record.log_index
    assert kept.leaf_hash == ledger.leaf_hash(record.log_index)
    assert kept.asset == token.address
    # Mirror accounts are not the ledger's liabilities: the reserves check ignores them.
    report = check_reserves(ledger, [Reserve(ledger, token, PrivateKey.generate())])
    [usdc] = report.assets
    assert (usdc.liabilities, usdc.on_chain) == (0, 0) and report.ok
    assert ledger.log.verify().ok


async def test_a_replayed_authorization_is_refused(
    evm: Facilitator, token: Token, payer: PrivateKey, provider: PrivateKey
) -> None:
    wanted = requirements(token, provider.address)
    paid = payment(token, payer, wanted)
    assert (await evm.settle(paid, wanted)).success
    again = await evm.settle(paid, wanted)
    assert not again.success and again.error_reason == "invalid_exact_evm_nonce_already_used"
    check = await evm.verify(paid, wanted)
    assert check.invalid_reason == "invalid_exact_evm_nonce_already_used"
    assert token.balance_of(provider.address) == PRICE


async def test_concurrent_settlements_of_one_authorization_settle_once(
    evm: Facilitator,
    ledger: Ledger,
    operator: PrivateKey,
    chain: LocalChain,
    token: Token,
    payer: PrivateKey,
) -> None:
    """Within a facilitator settlements of one authorization are serialized; between two
    (as two processes would be: their own locks, their own gas keys) the chain decides."""
    other_settler = PrivateKey.generate()
    chain.fund(other_settler.address, 10**18)
    other = Facilitator(operator, [EvmExactScheme(ledger, [token], signer=other_settler)])
    payee = PrivateKey.generate()
    wanted = requirements(token, payee.address)
    paid = payment(token, payer, wanted)
    attempts = [facilitator.settle(paid, wanted) for facilitator in (evm, other) * 4]
    results = await asyncio.gather(*attempts)
    successes = [result for result in results if result.success]
    assert len(successes) == 1
    assert {result.error_reason for result in results if not result.success} == {
        "invalid_exact_evm_nonce_already_used"
    }
    assert token.balance_of(payee.address) == PRICE
    mirror = evm_account_id(chain.network, payee.address, "USDC")
    assert ledger.balance(mirror).credits_posted == PRICE


async def test_insufficient_balance_on_chain(
    evm: Facilitator, chain: LocalChain, token: Token, provider: PrivateKey
) -> None:
    poor = PrivateKey.generate()
    token.mint(chain.operator, poor.address, PRICE - 1)
    wanted = requirements(token, provider.address)
    paid = payment(token, poor, wanted)
    verified = await evm.verify(paid, wanted)
    assert verified.invalid_reason == "invalid_exact_evm_insufficient_balance"
    assert verified.payer == poor.address
    settled = await evm.settle(paid, wanted)
    assert settled.error_reason == "invalid_exact_evm_insufficient_balance"
    assert settled.transaction == ""


def _other_domain(token: Token, **change: Any) -> Eip712Domain:
    fields: dict[str, Any] = {
        "name": token.name,
        "version": token.version,
        "chain_id": token.chain.chain_id,
        "contract": token.address,
    }
    fields.update(change)
    return token_domain(fields["name"], fields["version"], fields["chain_id"], fields["contract"])


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("impostor", "invalid_exact_evm_payload_signature"),
        ("other chain id", "invalid_exact_evm_payload_signature"),
        ("other token contract", "invalid_exact_evm_payload_signature"),
        ("expired", "invalid_exact_evm_payload_authorization_valid_before"),
        ("expires too soon", "invalid_exact_evm_payload_authorization_valid_before"),
        ("valid too long", "invalid_exact_evm_payload_authorization_valid_before"),
        ("not yet valid", "invalid_exact_evm_payload_authorization_valid_after"),
        ("value mismatch", "invalid_exact_evm_payload_authorization_value_mismatch"),
        ("wrong payTo", "invalid_exact_evm_payload_recipient_mismatch"),
        ("no domain in extra", "missing_eip712_domain"),
        ("wrong token name", "invalid_exact_evm_token_name_mismatch"),
        ("unknown token", "invalid_exact_evm_failed_to_get_asset_info"),
        ("other network", "network_mismatch"),
        ("other scheme", "unsupported_scheme"),
        ("malformed", "invalid_payload"),
    ],
)
async def test_bad_payments_are_refused_with_x402_reasons(
    evm: Facilitator,
    token: Token,
    payer: PrivateKey,
    provider: PrivateKey,
    case: str,
    reason: str,
) -> None:
    wanted = requirements(token, provider.address)
    now = int(time.time())
    stranger = PrivateKey.generate().address
    makers: dict[str, Callable[[], tuple[PaymentPayload, PaymentRequirements]]] = {
        "impostor": lambda: _impostor(token, payer, wanted),
        "other chain id": lambda: (
            payment(token, payer, wanted, domain=_other_domain(token, chain_id=8453)),
            wanted,
        ),
        "other token contract": lambda: (
            payment(token, payer, wanted, domain=_other_domain(token, contract=stranger)),
            wanted,
        ),
        "expired": lambda: (payment(token, payer, wanted, valid_before=now - 1), wanted),
        "expires too soon": lambda: (payment(token, payer, wanted, valid_before=now + 2), wanted),
        "valid too long": lambda: (
            payment(token, payer, wanted, valid_before=now + 3600),
            wanted,
        ),
        "not yet valid": lambda: (payment(token, payer, wanted, valid_after=now + 120), wanted),
        "value mismatch": lambda: (payment(token, payer, wanted, value=PRICE - 1), wanted),
        "wrong payTo": lambda: (payment(token, payer, wanted, payee=stranger), wanted),
        "no domain in extra": lambda: _with(payment(token, payer, wanted), wanted, extra={}),
        "wrong token name": lambda: _renamed(token, payer, wanted),
        "unknown token": lambda: _with(
            payment(token, payer, wanted, domain=_other_domain(token, contract=stranger)),
            wanted,
            asset=stranger,
        ),
        "other network": lambda: _with(payment(token, payer, wanted), wanted, network="eip155:1"),
        "other scheme": lambda: _with(payment(token, payer, wanted), wanted, scheme="upto"),
        "malformed": lambda: (
            PaymentPayload(accepted=wanted, payload={"signature": "0x00", "authorization": {}}),
            wanted,
        ),
    }
    paid, terms = makers[case]()
    verified = await evm.verify(paid, terms)
    assert not verified.is_valid and verified.invalid_reason == reason, verified.invalid_message
    settled = await evm.settle(paid, terms)
    assert not settled.success and settled.error_reason == reason
    assert token.balance_of(provider.address) == 0


def _impostor(
    token: Token, payer: PrivateKey, wanted: PaymentRequirements
) -> tuple[PaymentPayload, PaymentRequirements]:
    forged = payment(token, PrivateKey.generate(), wanted)
    forged.payload["authorization"]["from"] = payer.address  # claims the payer's funds
    return forged, wanted


def _with(
    paid: PaymentPayload, wanted: PaymentRequirements, **change: Any
) -> tuple[PaymentPayload, PaymentRequirements]:
    terms = wanted.model_copy(update=change)
    return PaymentPayload(accepted=terms, payload=paid.payload), terms


def _renamed(
    token: Token, payer: PrivateKey, wanted: PaymentRequirements
) -> tuple[PaymentPayload, PaymentRequirements]:
    # Signed consistently in a domain named otherwise: not this token's domain.
    domain = _other_domain(token, name="Tether USD")
    terms = wanted.model_copy(update={"extra": {"name": "Tether USD", "version": token.version}})
    return PaymentPayload(
        accepted=terms, payload=payment(token, payer, terms, domain=domain).payload
    ), terms


async def test_a_transaction_not_confirmed_in_time_is_pending_then_settles_once(
    ledger: Ledger,
    operator: PrivateKey,
    chain: LocalChain,
    token: Token,
    payer: PrivateKey,
    provider: PrivateKey,
) -> None:
    # A deep confirmation and a short wait: the receipt is seen, the blocks on it are not.
    slow = Facilitator(
        operator, [EvmExactScheme(ledger, [token], confirmations=20, receipt_timeout_s=0.2)]
    )
    wanted = requirements(token, provider.address)
    paid = payment(token, payer, wanted)
    first = await slow.settle(paid, wanted)
    assert not first.success and first.error_reason == "settlement_pending"
    assert "settle the same payment again" in (first.error_message or "")
    assert token.balance_of(provider.address) == PRICE  # mined, not yet deep enough
    chain.mine(20)
    second = await slow.settle(paid, wanted)  # waits for that transaction, sends no other
    assert second.success
    assert second.transaction in (first.error_message or "")
    assert token.balance_of(provider.address) == PRICE
    third = await slow.settle(paid, wanted)
    assert third.error_reason == "invalid_exact_evm_nonce_already_used"


async def test_the_payer_signs_evm_payments_within_its_limit(
    chain: LocalChain, token: Token, payer: PrivateKey, provider: PrivateKey, evm: Facilitator
) -> None:
    wanted = requirements(token, provider.address, amount=5_000)
    required = PaymentRequired(resource=ResourceInfo(url="http://shop"), accepts=[wanted])
    evm_payer = Payer.create(
        payer, max_per_payment="$0.01", networks=["eip155:*"], tokens={token.address: USDC}
    )
    paid = evm_payer.pay(required, evm_payer.choose(required))
    assert (await evm.verify(paid, wanted)).is_valid
    with pytest.raises(PaymentDeclined, match="per-payment maximum"):
        Payer.create(
            payer, max_per_payment="$0.001", networks=["eip155:*"], tokens={token.address: USDC}
        ).choose(required)
    with pytest.raises(PaymentDeclined, match="not a known token"):
        Payer.create(payer, max_per_payment="$1", networks=["eip155:*"]).choose(required)
    with pytest.raises(PaymentDeclined, match="not allowed"):  # paywire:* unless told
        Payer.create(payer, max_per_payment="$1", tokens={token.address: USDC}).choose(required)
    bare = required.model_copy(update={"accepts": [wanted.model_copy(update={"extra": {}})]})
    with pytest.raises(PaymentDeclined, match="EIP-712 name and version"):
        evm_payer.choose(bare)


def test_version_one_network_names() -> None:
    from x402.mechanisms.evm.v1.constants import V1_NETWORK_CHAIN_IDS

    assert {name: V1_NETWORKS[name] for name in V1_NETWORK_CHAIN_IDS} == V1_NETWORK_CHAIN_IDS
    assert network_from_v1("base-sepolia") == "eip155:84532"
    assert network_from_v1("paywire-local") == f"eip155:{PAYWIRE_LOCAL_CHAIN_ID}"
    assert v1_network_name(f"eip155:{PAYWIRE_LOCAL_CHAIN_ID}") == "paywire-local"
    assert network_from_v1("nowhere") is None
    from paywire.chain import LOCAL_CHAIN_ID

    assert PAYWIRE_LOCAL_CHAIN_ID == LOCAL_CHAIN_ID
