"""x402 `exact` on EVM chains (``eip155:<chainId>``): EIP-3009 ``transferWithAuthorization``.

The facilitator's side of the scheme x402 defines for stablecoins such as USDC, for one or
more tokens on one chain. The payload is the one the official SDK's client signs::

    {"signature": "0x<65 bytes>",
     "authorization": {"from", "to", "value", "validAfter", "validBefore", "nonce"}}

in the token's EIP-712 domain ``{name: extra.name, version: extra.version, chainId,
verifyingContract: asset}``.

**Verify** checks in the official facilitator's order: scheme, network, chain id, the
domain fields in ``extra``, recipient, value (== amount, x402 v2), the time window (with
the ledger network's clock-skew allowance), the signature (paywire's EIP-712 fast path,
libsecp256k1: no chain call), that the asset is a token this facilitator knows (whose
name and version are what ``extra`` says), then simulates ``transferWithAuthorization``
on the chain (``eth_call``): balance, nonce and the contract's own checks.

**Settle** sends ``transferWithAuthorization`` (paid by the facilitator's settling key),
waits for the receipt and checks its Transfer event, then records the payment in the
ledger. Replay protection is the token's ``authorizationState``: the chain refuses a
second use of a nonce, across processes. Within a process, settlements of one (token,
payer, nonce) are serialized, so N concurrent submissions send one transaction and
report one success. A transaction sent whose receipt is not seen in time answers
``settlement_pending``; settling the same payment again waits for that transaction
instead of sending another.

**Books.** Every settled EVM payment is also a ledger transfer, so an agent's spending is in
one place whatever the network: a debit of the payer's *mirror account*
``evm:<network>:<payer>:<ASSET>`` and a credit of the payee's ``evm:<network>:<payTo>:<ASSET>``,
both of kind EXTERNAL, under an id derived from (network, token, payer, nonce), with the
transaction hash in its metadata and the signed payload as its authorization. Mirror
accounts, not the wallets' ledger accounts: the money moved on chain, between addresses
the operator does not hold, so it is not a liability of the ledger. The ledger's wallet
accounts (``<address>:<ASSET>``) are what the operator owes against its reserves;
`check_reserves` counts only non-external accounts, so these records leave the reserves
check untouched, and no ledger balance moves that the chain did not move.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from x402.schemas import PaymentPayload, PaymentRequirements

from paywire.chain.eip3009 import Authorization as ChainAuthorization
from paywire.chain.eip3009 import token_domain
from paywire.chain.errors import (
    ChainError,
    TransactionPending,
    TransactionReverted,
    TransferMismatch,
)
from paywire.crypto import TRANSFER_WITH_AUTHORIZATION, TypedMessage, keccak256, parse_address
from paywire.crypto.keys import InvalidSignature, PrivateKey
from paywire.errors import InvalidInput, PaywireError
from paywire.ledger import (
    AccountKind,
    Ledger,
    LedgerError,
    NewAccount,
    Transfer,
    TransferCode,
    transfer,
)
from paywire.ledger.model import check_id
from paywire.money import Asset
from paywire.protocol import errors
from paywire.protocol.authorization import Authorization
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.ledger_network import (
    CLOCK_SKEW_S,
    MAX_RESOURCE_CHARS,
    MIN_VALIDITY_LEFT_S,
    Verified,
)

if TYPE_CHECKING:
    from paywire.chain.base import Chain
    from paywire.chain.token import Token

logger = logging.getLogger("paywire.evm")

SCHEME = "exact"
NETWORK_PREFIX = "eip155:"

# x402's EVM error reasons, as the official SDK names them (x402.mechanisms.evm.constants).
EVM_SIGNATURE = "invalid_exact_evm_payload_signature"
EVM_RECIPIENT = "invalid_exact_evm_payload_recipient_mismatch"
EVM_VALUE = "invalid_exact_evm_payload_authorization_value_mismatch"
EVM_VALID_BEFORE = "invalid_exact_evm_payload_authorization_valid_before"
EVM_VALID_AFTER = "invalid_exact_evm_payload_authorization_valid_after"
EVM_NONCE_USED = "invalid_exact_evm_nonce_already_used"
EVM_INSUFFICIENT_BALANCE = "invalid_exact_evm_insufficient_balance"
EVM_MISSING_DOMAIN = "missing_eip712_domain"
EVM_TOKEN_NAME = "invalid_exact_evm_token_name_mismatch"  # noqa: S105 (a reason, not a secret)
EVM_TOKEN_VERSION = "invalid_exact_evm_token_version_mismatch"  # noqa: S105
EVM_UNKNOWN_ASSET = "invalid_exact_evm_failed_to_get_asset_info"
EVM_SIMULATION_FAILED = "invalid_exact_evm_transaction_simulation_failed"
EVM_TRANSFER_EVENT = "invalid_exact_evm_transfer_event_mismatch"
TRANSACTION_FAILED = "transaction_failed"
SETTLEMENT_PENDING = "settlement_pending"
UNEXPECTED_VERIFY = "unexpected_verify_error"

PAYWIRE_LOCAL_CHAIN_ID = 131277322940537
"""paywire's in-process chain (`paywire.chain.LOCAL_CHAIN_ID`, eth-tester's fixed id),
repeated here so this module does not import web3."""

PAYWIRE_LOCAL_V1_NAME = "paywire-local"
"""The x402 version 1 network name of paywire's local chain (v1 names networks instead of
giving CAIP-2 ids; x402 has no name for this chain, so paywire picks this one)."""

V1_NETWORKS: Mapping[str, int] = {
    "base": 8453,
    "base-sepolia": 84532,
    "ethereum": 1,
    "polygon": 137,
    "polygon-amoy": 80002,
    "avalanche": 43114,
    "avalanche-fuji": 43113,
    "abstract": 2741,
    "abstract-testnet": 11124,
    "iotex": 4689,
    "sei": 1329,
    "sei-testnet": 1328,
    "peaq": 3338,
    "story": 1513,
    "educhain": 656476,
    "skale-base-sepolia": 1444673419,
    "megaeth": 4326,
    "monad": 143,
    "monad-testnet": 10143,
    "stable": 988,
    "stable-testnet": 2201,
    "celo": 42220,
    "flare": 14,
    PAYWIRE_LOCAL_V1_NAME: PAYWIRE_LOCAL_CHAIN_ID,
}
"""x402 version 1 network names and their chain ids: the official SDK's table
(``x402.mechanisms.evm.v1.constants``, copied because importing it loads web3) and
paywire's local chain."""

MAX_CHAIN_ID = 2**53 - 1
"""Chain ids fit a JSON number (as `RpcChain` requires)."""

MAX_DOMAIN_TEXT_CHARS = 64
"""``extra.name`` and ``extra.version`` are short labels (the token stores String[64])."""

MAX_PENDING_SETTLEMENTS = 10_000
"""Sent transactions whose receipt was not seen in time, remembered (oldest dropped) so a
retried settle waits for them instead of sending again."""

MESSAGE_CACHE_SIZE = 256
"""(name, version, chain, token) EIP-712 domains kept compiled; a facilitator sees few."""


# ----- networks ----------------------------------------------------------------------------


def is_evm_network(network: str) -> bool:
    """Whether `network` is a CAIP-2 EVM network (``eip155:<chainId>``)."""
    return evm_chain_id(network) is not None


def evm_chain_id(network: str) -> int | None:
    """The chain id of ``eip155:<chainId>`` (None for anything else)."""
    if not network.startswith(NETWORK_PREFIX):
        return None
    digits = network[len(NETWORK_PREFIX) :]
    if not digits.isdigit() or not digits.isascii() or len(digits) > 16 or digits[0] == "0":
        return None
    chain_id = int(digits)
    return chain_id if chain_id <= MAX_CHAIN_ID else None


def network_from_v1(name: str) -> str | None:
    """The CAIP-2 network of an x402 version 1 network name (``base-sepolia`` ->
    ``eip155:84532``), or None if the name is not one paywire knows."""
    chain_id = V1_NETWORKS.get(name)
    return None if chain_id is None else f"{NETWORK_PREFIX}{chain_id}"


def v1_network_name(network: str) -> str | None:
    """The x402 version 1 name of a CAIP-2 EVM network, if it has one."""
    chain_id = evm_chain_id(network)
    return next((name for name, known in V1_NETWORKS.items() if known == chain_id), None)


# ----- the books ---------------------------------------------------------------------------


def evm_account_id(network: str, address: str, asset_code: str) -> str:
    """The ledger's EXTERNAL mirror account of `address` on an EVM `network`:
    ``evm:<network>:<checksummed address>:<ASSET>``."""
    return check_id(f"evm:{network}:{parse_address(address)}:{asset_code}", "EVM account id")


def evm_payment_id(network: str, token: str, payer: str, nonce: bytes) -> str:
    """The ledger transfer id of the EVM payment (network, token, payer, nonce): one per
    EIP-3009 authorization (nonces are per token contract, so the token is part of it).
    Hashed, because the four together pass the ledger's 128-character id limit."""
    text = f"{network}/{parse_address(token)}/{parse_address(payer)}/".encode()
    return f"x402-evm:{keccak256(text + nonce).hex()}"


# ----- results -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvmSettled:
    """A payment settled on chain (`tx_hash`), and its record in the ledger.

    `transfer` is None only if the chain settled but the ledger refused the record (logged
    as an error: the record is idempotent and can be written again)."""

    authorization: Authorization
    network: str
    token: str
    tx_hash: str
    block_number: int
    transfer: Transfer | None
    leaf_hash: bytes | None


@dataclass(frozen=True, slots=True)
class _Known:
    """A token this facilitator settles, with its ledger asset."""

    token: Token
    asset: Asset


@dataclass(frozen=True, slots=True)
class _Checked:
    """A payment that passed every check that needs no chain call."""

    authorization: Authorization
    known: _Known

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


@functools.lru_cache(maxsize=MESSAGE_CACHE_SIZE)
def _transfer_message(name: str, version: str, chain_id: int, token: str) -> TypedMessage:
    """TransferWithAuthorization in a token's domain, compiled once."""
    return TypedMessage(token_domain(name, version, chain_id, token), TRANSFER_WITH_AUTHORIZATION)


class _KeyLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


# ----- the scheme --------------------------------------------------------------------------


class EvmExactScheme:
    """The facilitator's side of `exact` for `tokens` (all on one chain).

    `ledger` receives the record of every settled payment. `signer` pays the gas of
    settlements (default: the chain's default signer, e.g. `LocalChain.operator` or
    `RpcChain`'s ``signer``). `assets` maps a token address to its ledger asset (default:
    the token's symbol and decimals, e.g. USDC with 6). `confirmations` and
    `receipt_timeout_s` default to the chain's.
    """

    scheme = SCHEME
    blocking_verify = True
    """`verify` calls the chain: the facilitator runs it off the event loop."""

    def __init__(
        self,
        ledger: Ledger,
        tokens: Sequence[Token],
        *,
        signer: PrivateKey | None = None,
        assets: Mapping[str, Asset] | None = None,
        confirmations: int | None = None,
        receipt_timeout_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not tokens:
            raise InvalidInput("an EVM exact scheme needs at least one token")
        chain: Chain = tokens[0].chain
        if any(token.chain.network != chain.network for token in tokens):
            raise InvalidInput("an EvmExactScheme serves one chain; make one per chain")
        self.ledger = ledger
        self.chain = chain
        self.network = chain.network
        self.chain_id = chain.chain_id
        self.signer = signer if signer is not None else chain.default_signer()
        self.confirmations = confirmations
        self.receipt_timeout_s = receipt_timeout_s
        self._clock = clock
        by_address = {parse_address(address): asset for address, asset in (assets or {}).items()}
        self._tokens: dict[str, _Known] = {}
        for token in tokens:
            asset = by_address.get(token.address) or _asset_of(token)
            if asset.decimals != token.decimals:
                raise InvalidInput(
                    f"asset {asset.code} has {asset.decimals} decimals, the token at "
                    f"{token.address} {token.decimals}: one atomic unit must be one token unit"
                )
            self._tokens[token.address] = _Known(token, asset)
        self._opened: set[str] = set()
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str, bytes], _KeyLock] = {}
        self._pending: OrderedDict[tuple[str, str, bytes], str] = OrderedDict()

    @classmethod
    def connect(
        cls,
        ledger: Ledger,
        rpc_url: str,
        *,
        chain_id: int,
        tokens: Sequence[str],
        signer: PrivateKey,
        confirmations: int = 1,
        assets: Mapping[str, Asset] | None = None,
    ) -> EvmExactScheme:
        """The scheme for `tokens` (addresses) on the JSON-RPC chain at `rpc_url`, whose
        chain id must be `chain_id`; `signer` is the facilitator's settling key."""
        from paywire.chain.rpc import RpcChain

        chain = RpcChain(rpc_url, chain_id, signer=signer, confirmations=confirmations)
        return cls(ledger, [chain.token(address) for address in tokens], assets=assets)

    # ----- what it offers --------------------------------------------------------------

    @property
    def tokens(self) -> list[Token]:
        return [known.token for known in self._tokens.values()]

    def asset_of(self, token: str) -> Asset | None:
        """The ledger asset of a token this scheme settles (None if it settles none there)."""
        known = self._tokens.get(token)
        return None if known is None else known.asset

    def extra(self) -> dict[str, Any]:
        """The first token's `extras` entry (see `extras` for all of them)."""
        return self.extras()[0]

    def extras(self) -> list[dict[str, Any]]:
        """One `/supported` kind's ``extra`` per token: the EIP-712 domain's ``name`` and
        ``version`` (what a client signs in), and what a provider needs to price in the
        token: its ``asset`` address, ``decimals`` and the ledger ``assetCode`` it counts as
        (so a route priced ``"$0.01"`` is offered in every dollar token)."""
        return [
            {
                "name": known.token.name,
                "version": known.token.version,
                "asset": known.token.address,
                "decimals": known.token.decimals,
                "assetCode": known.asset.code,
            }
            for known in self._tokens.values()
        ]

    # ----- verify ----------------------------------------------------------------------

    def check(self, payload: PaymentPayload, requirements: PaymentRequirements) -> _Checked:
        """Every check that needs no chain call, in x402's order; `PaymentProblem` with
        x402's reason on the first that fails."""
        if requirements.scheme != SCHEME or payload.accepted.scheme != SCHEME:
            raise PaymentProblem(errors.UNSUPPORTED_SCHEME, "only the exact scheme is supported")
        if requirements.network != self.network or payload.accepted.network != self.network:
            raise PaymentProblem(
                errors.NETWORK_MISMATCH,
                f"this facilitator settles on {self.network}, not {payload.accepted.network}",
            )
        if evm_chain_id(requirements.network) != self.chain_id:
            raise PaymentProblem(errors.NETWORK_MISMATCH, f"chain id is not {self.chain_id}")
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
        name, version = _domain_fields(requirements.extra)
        authorization = Authorization.from_payload(payload.payload)
        if authorization.payee.lower() != requirements.pay_to.lower():
            raise PaymentProblem(EVM_RECIPIENT, f"the authorization pays {authorization.payee}")
        if authorization.payee == authorization.payer:
            raise PaymentProblem(EVM_RECIPIENT, "a payer cannot pay itself")
        if str(authorization.value) != requirements.amount:
            raise PaymentProblem(
                EVM_VALUE,
                f"the authorization is for {authorization.value}, the price is "
                f"{requirements.amount} atomic units",
            )
        self._check_window(authorization, requirements.max_timeout_seconds)
        try:
            token_address = parse_address(requirements.asset)
        except PaywireError:
            raise PaymentProblem(
                errors.INVALID_REQUIREMENTS, "the asset must be a token contract's address"
            ) from None
        try:
            _transfer_message(name, version, self.chain_id, token_address).verify(
                authorization.message(), authorization.signature, authorization.payer
            )
        except (InvalidSignature, PaywireError) as error:
            raise PaymentProblem(
                EVM_SIGNATURE, f"the signature is not the payer's: {error}"
            ) from None
        known = self._tokens.get(token_address)
        if known is None:
            raise PaymentProblem(
                EVM_UNKNOWN_ASSET,
                f"{token_address} is not a token this facilitator settles on {self.network}",
            )
        if name != known.token.name:
            raise PaymentProblem(EVM_TOKEN_NAME, f"the token's EIP-712 name is not {name!r}")
        if version != known.token.version:
            raise PaymentProblem(
                EVM_TOKEN_VERSION, f"the token's EIP-712 version is not {version!r}"
            )
        return _Checked(authorization, known)

    def _check_window(self, authorization: Authorization, max_timeout_s: int) -> None:
        # The ledger network's window and skew allowance; the chain checks its own clock too.
        now = int(self._clock())
        if authorization.valid_after > now + CLOCK_SKEW_S:
            raise PaymentProblem(
                EVM_VALID_AFTER,
                f"the authorization is not valid before {authorization.valid_after} "
                f"(now {now}; clocks may differ by {CLOCK_SKEW_S} s)",
            )
        if authorization.valid_before < now + MIN_VALIDITY_LEFT_S:
            raise PaymentProblem(
                EVM_VALID_BEFORE,
                f"the authorization expired or expires within {MIN_VALIDITY_LEFT_S} s "
                f"(validBefore {authorization.valid_before}, now {now})",
            )
        if authorization.valid_before > now + max_timeout_s + CLOCK_SKEW_S:
            raise PaymentProblem(
                EVM_VALID_BEFORE,
                f"the authorization stays valid longer than the {max_timeout_s} s allowed",
            )

    def verify(self, payload: PaymentPayload, requirements: PaymentRequirements) -> Verified:
        """`check`, then ``transferWithAuthorization`` simulated on the chain (balance,
        nonce, the contract's checks). A read: settlement decides."""
        checked = self.check(payload, requirements)
        token = checked.known.token
        try:
            simulation = token.simulate_transfer_with_authorization(
                checked.on_chain(), checked.authorization.signature, sender=self.signer.address
            )
        except ChainError as error:
            raise PaymentProblem(
                UNEXPECTED_VERIFY, f"cannot simulate the transfer on {self.network}: {error}"
            ) from None
        if not simulation.ok:
            raise PaymentProblem(
                simulation.code or EVM_SIMULATION_FAILED,
                f"the transfer would fail on chain: {simulation.reason or 'reverted'}",
            )
        return checked.verified

    # ----- settle ----------------------------------------------------------------------

    async def settle(
        self,
        payload: PaymentPayload,
        requirements: PaymentRequirements,
        *,
        resource: str | None = None,
    ) -> EvmSettled:
        """Send the transfer, check its receipt, record it in the ledger."""
        checked = self.check(payload, requirements)
        return await asyncio.to_thread(self._settle, checked, payload, resource)

    def _settle(
        self, checked: _Checked, payload: PaymentPayload, resource: str | None
    ) -> EvmSettled:
        from paywire.chain.token import revert_code

        authorization, token = checked.authorization, checked.known.token
        on_chain = checked.on_chain()
        key = (token.address, authorization.payer, authorization.nonce)
        with self._exclusive(key):
            tx_hash = self._pending_tx(key)
            if tx_hash is None:
                try:
                    tx_hash = token.send_transfer_with_authorization(
                        on_chain, authorization.signature, key=self.signer
                    )
                except TransactionReverted as error:
                    raise PaymentProblem(
                        revert_code(error.reason),
                        f"the token refused the transfer: {error.reason or 'reverted'}",
                    ) from None
                except ChainError as error:
                    raise PaymentProblem(
                        TRANSACTION_FAILED, f"the chain did not take the transfer: {error}"
                    ) from None
            try:
                receipt = token.confirm_transfer(
                    tx_hash,
                    on_chain,
                    confirmations=self.confirmations,
                    timeout_s=self.receipt_timeout_s,
                )
            except TransactionPending:
                self._remember_pending(key, tx_hash)
                raise PaymentProblem(
                    SETTLEMENT_PENDING,
                    f"transaction {tx_hash} was sent but is not confirmed yet; settle the same "
                    "payment again to wait for it",
                ) from None
            except TransactionReverted as error:
                self._forget_pending(key)
                reason = revert_code(error.reason) if error.reason else TRANSACTION_FAILED
                raise PaymentProblem(
                    reason, f"transaction {tx_hash} reverted: {error.reason or 'no reason'}"
                ) from None
            except TransferMismatch as error:
                self._forget_pending(key)
                raise PaymentProblem(EVM_TRANSFER_EVENT, str(error)) from None
            except ChainError as error:
                # Sent, outcome unknown: as pending, so a retry looks at this transaction.
                self._remember_pending(key, tx_hash)
                raise PaymentProblem(
                    SETTLEMENT_PENDING,
                    f"transaction {tx_hash} was sent; its receipt could not be read ({error})",
                ) from None
            self._forget_pending(key)
        done, leaf = self._record(checked, payload, tx_hash, receipt.block_number, resource)
        return EvmSettled(
            authorization=authorization,
            network=self.network,
            token=token.address,
            tx_hash=tx_hash,
            block_number=receipt.block_number,
            transfer=done,
            leaf_hash=leaf,
        )

    def _record(
        self,
        checked: _Checked,
        payload: PaymentPayload,
        tx_hash: str,
        block_number: int,
        resource: str | None,
    ) -> tuple[Transfer | None, bytes | None]:
        authorization, known = checked.authorization, checked.known
        asset = known.asset
        metadata: dict[str, str | int] = {
            "scheme": SCHEME,
            "network": self.network,
            "token": known.token.address,
            "tx": tx_hash,
            "block": block_number,
        }
        if resource:
            metadata["resource"] = resource[:MAX_RESOURCE_CHARS]
        try:
            debit = self._open(authorization.payer, asset)
            credit = self._open(authorization.payee, asset)
            done = self.ledger.submit(
                transfer(
                    evm_payment_id(
                        self.network, known.token.address, authorization.payer, authorization.nonce
                    ),
                    debit,
                    credit,
                    asset.atomic(authorization.value),
                    code=TransferCode.PAYMENT,
                    metadata=metadata,
                    authorization=json.dumps(
                        payload.model_dump(by_alias=True, exclude_none=True),
                        separators=(",", ":"),
                    ),
                )
            )
            return done, self.ledger.leaf_hash(done.log_index)
        except (LedgerError, PaywireError) as error:
            logger.error(
                "EVM payment %s settled on %s but its ledger record failed: %s",
                tx_hash,
                self.network,
                error,
            )
            return None, None

    def _open(self, address: str, asset: Asset) -> str:
        account_id = evm_account_id(self.network, address, asset.code)
        if account_id not in self._opened:
            self.ledger.open_account(
                NewAccount(account_id, asset, AccountKind.EXTERNAL, owner=address)
            )
            self._opened.add(account_id)
        return account_id

    @contextmanager
    def _exclusive(self, key: tuple[str, str, bytes]) -> Iterator[None]:
        """One settlement at a time per (token, payer, nonce) in this process."""
        with self._guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = _KeyLock()
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._locks[key]

    def _pending_tx(self, key: tuple[str, str, bytes]) -> str | None:
        with self._guard:
            return self._pending.get(key)

    def _remember_pending(self, key: tuple[str, str, bytes], tx_hash: str) -> None:
        with self._guard:
            self._pending[key] = tx_hash
            while len(self._pending) > MAX_PENDING_SETTLEMENTS:
                self._pending.popitem(last=False)

    def _forget_pending(self, key: tuple[str, str, bytes]) -> None:
        with self._guard:
            self._pending.pop(key, None)


def _domain_fields(extra: Mapping[str, Any] | None) -> tuple[str, str]:
    """``extra.name`` and ``extra.version``: the token's EIP-712 domain, as a client needs
    them to sign."""
    extra = extra or {}
    name, version = extra.get("name"), extra.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise PaymentProblem(
            EVM_MISSING_DOMAIN, "the requirements' extra must give the token's name and version"
        )
    if len(name) > MAX_DOMAIN_TEXT_CHARS or len(version) > MAX_DOMAIN_TEXT_CHARS:
        raise PaymentProblem(
            EVM_MISSING_DOMAIN, f"extra name and version are at most {MAX_DOMAIN_TEXT_CHARS} chars"
        )
    return name, version


def _asset_of(token: Token) -> Asset:
    try:
        return Asset(token.symbol.upper(), token.decimals)
    except PaywireError:
        raise InvalidInput(
            f"the token at {token.address} has symbol {token.symbol[:20]!r}, not an asset code; "
            "pass assets={address: Asset(...)}"
        ) from None
