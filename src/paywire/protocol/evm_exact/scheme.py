"""`EvmExactScheme`: the facilitator's side of x402 `exact` on one EVM chain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from x402.schemas import PaymentPayload, PaymentRequirements

from paywire.chain.errors import ChainError
from paywire.crypto import parse_address
from paywire.crypto.keys import PrivateKey
from paywire.errors import InvalidInput, PaywireError
from paywire.ledger import Ledger
from paywire.money import Asset
from paywire.protocol import errors
from paywire.protocol.errors import PaymentProblem
from paywire.protocol.evm_exact.books import EvmBooks, EvmSettled
from paywire.protocol.evm_exact.checks import Checked, KnownToken, check_payment
from paywire.protocol.evm_exact.networks import SCHEME
from paywire.protocol.evm_exact.settlement import Settler
from paywire.protocol.evm_exact.view import HEAD_POLL_S, NONCE_BACKFILL_BLOCKS, ChainView
from paywire.protocol.ledger_network import Verified

if TYPE_CHECKING:
    from paywire.chain.base import Chain
    from paywire.chain.token import Token


class EvmExactScheme:
    """The facilitator's side of `exact` for `tokens` (all on one chain).

    `ledger` receives the record of every settled payment. `signer` pays the gas of
    settlements (default: the chain's default signer, e.g. `LocalChain.operator` or
    `RpcChain`'s ``signer``). `assets` maps a token address to its ledger asset (default:
    the token's symbol and decimals, e.g. USDC with 6). `confirmations` and
    `receipt_timeout_s` default to the chain's.

    Verify answers from each token's `ChainView` (see `paywire.protocol.evm_exact.view`
    for what it sees and what it does not): no chain call on a warm view. `simulate`
    adds, after the view's checks, an ``eth_call`` of ``transferWithAuthorization`` per
    payment: the chain's own answer at its latest block, for operators who want it at the
    price of a call per verify. `head_poll_s` and `nonce_backfill_blocks` tune the views.
    Settlement always runs on the chain.
    """

    scheme = SCHEME
    blocking_verify = True
    """`verify` may call the chain: the facilitator runs it off the event loop."""

    def __init__(
        self,
        ledger: Ledger,
        tokens: Sequence[Token],
        *,
        signer: PrivateKey | None = None,
        assets: Mapping[str, Asset] | None = None,
        confirmations: int | None = None,
        receipt_timeout_s: float | None = None,
        simulate: bool = False,
        head_poll_s: float = HEAD_POLL_S,
        nonce_backfill_blocks: int = NONCE_BACKFILL_BLOCKS,
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
        self.simulate = simulate
        self._clock = clock
        by_address = {parse_address(address): asset for address, asset in (assets or {}).items()}
        self._tokens: dict[str, KnownToken] = {}
        self.views: dict[str, ChainView] = {}
        """Each token's view of the chain, by token address."""
        for token in tokens:
            asset = by_address.get(token.address) or _asset_of(token)
            if asset.decimals != token.decimals:
                raise InvalidInput(
                    f"asset {asset.code} has {asset.decimals} decimals, the token at "
                    f"{token.address} {token.decimals}: one atomic unit must be one token unit"
                )
            self._tokens[token.address] = KnownToken(token, asset)
            self.views[token.address] = ChainView(
                token,
                head_poll_s=head_poll_s,
                backfill_blocks=nonce_backfill_blocks,
                clock=clock,
            )
        self._books = EvmBooks(ledger, self.network, clock=clock)
        self._settler = Settler(
            self.signer, confirmations=confirmations, receipt_timeout_s=receipt_timeout_s
        )

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
        simulate: bool = False,
    ) -> EvmExactScheme:
        """The scheme for `tokens` (addresses) on the JSON-RPC chain at `rpc_url`, whose
        chain id must be `chain_id`; `signer` is the facilitator's settling key."""
        from paywire.chain.rpc import RpcChain

        chain = RpcChain(rpc_url, chain_id, signer=signer, confirmations=confirmations)
        return cls(
            ledger,
            [chain.token(address) for address in tokens],
            assets=assets,
            simulate=simulate,
        )

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

    def check(self, payload: PaymentPayload, requirements: PaymentRequirements) -> Checked:
        """Every check that needs no chain call, in x402's order; `PaymentProblem` with
        x402's reason on the first that fails."""
        return check_payment(
            payload,
            requirements,
            network=self.network,
            chain_id=self.chain_id,
            tokens=self._tokens,
            now=int(self._clock()),
        )

    def verify(self, payload: PaymentPayload, requirements: PaymentRequirements) -> Verified:
        """`check`, then the token's view: not a replay, not spent, covered by the payer's
        balance less its payments in flight here; the payment is then held in flight
        until it settles or expires. With `simulate`, ``transferWithAuthorization`` is
        then simulated on the chain too. A read: settlement decides."""
        checked = self.check(payload, requirements)
        view = self.views[checked.known.token.address]
        view.reserve(checked.authorization)
        if self.simulate:
            try:
                self._simulate(checked)
            except PaymentProblem:
                view.release(checked.authorization)
                raise
        return checked.verified

    def _simulate(self, checked: Checked) -> None:
        token = checked.known.token
        try:
            simulation = token.simulate_transfer_with_authorization(
                checked.on_chain(), checked.authorization.signature, sender=self.signer.address
            )
        except ChainError as error:
            raise PaymentProblem(
                errors.UNEXPECTED_VERIFY, f"cannot simulate the transfer on {self.network}: {error}"
            ) from None
        if not simulation.ok:
            raise PaymentProblem(
                simulation.code or errors.EVM_SIMULATION_FAILED,
                f"the transfer would fail on chain: {simulation.reason or 'reverted'}",
            )

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
        self, checked: Checked, payload: PaymentPayload, resource: str | None
    ) -> EvmSettled:
        view = self.views[checked.known.token.address]
        tx_hash, receipt = self._settler.settle(checked, view)
        done, leaf = self._books.record(checked, payload, tx_hash, receipt.block_number, resource)
        return EvmSettled(
            authorization=checked.authorization,
            network=self.network,
            token=checked.known.token.address,
            tx_hash=tx_hash,
            block_number=receipt.block_number,
            transfer=done,
            leaf_hash=leaf,
        )


def _asset_of(token: Token) -> Asset:
    try:
        return Asset(token.symbol.upper(), token.decimals)
    except PaywireError:
        raise InvalidInput(
            f"the token at {token.address} has symbol {token.symbol[:20]!r}, not an asset code; "
            "pass assets={address: Asset(...)}"
        ) from None
