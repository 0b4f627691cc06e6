"""The books of EVM payments: each settled payment is also a ledger transfer.

A debit of the payer's *mirror account* ``evm:<network>:<payer>:<ASSET>`` and a credit of
the payee's ``evm:<network>:<payTo>:<ASSET>``, both of kind EXTERNAL, under an id derived
from (network, token, payer, nonce), with the transaction hash in its metadata and the
signed payload as its authorization. Mirror accounts, not the wallets' ledger accounts:
the money moved on chain, between addresses the operator does not hold, so it is not a
liability of the ledger. The ledger's wallet accounts (``<address>:<ASSET>``) are what
the operator owes against its reserves; `check_reserves` counts only non-external
accounts, so these records leave the reserves check untouched, and no ledger balance
moves that the chain did not move.

A payment carrying its payer's mandate chain (`paywire-mandate`) that names a task is
recorded with ``{"task": <id>}`` (the leaf's task id, else the nearest ancestor's: see
`mandate_gate.chain_task`), as on the ledger network, so the per-task books count it. On
a chain no mandate limit is enforced (the token moves the money): the tag needs a chain
that verifies now (signatures, links, validity) and ends at the payer's key, so a payer
can name only a task it was given; a chain that does not is ignored, never refused.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from x402.schemas import PaymentPayload

from paywire.crypto import keccak256, parse_address
from paywire.errors import PaywireError
from paywire.ledger import (
    AccountKind,
    Ledger,
    LedgerError,
    NewAccount,
    Transfer,
    TransferCode,
    transfer,
)
from paywire.ledger.model import JsonValue
from paywire.ledger.names import evm_account_id
from paywire.money import Asset
from paywire.protocol.authorization import Authorization
from paywire.protocol.evm_exact.checks import Checked
from paywire.protocol.evm_exact.networks import SCHEME
from paywire.protocol.ledger_network import MAX_RESOURCE_CHARS
from paywire.protocol.mandate_extension import mandate_of
from paywire.protocol.mandate_gate import TASK_KEY, chain_task

logger = logging.getLogger("paywire.evm")


def evm_payment_id(network: str, token: str, payer: str, nonce: bytes) -> str:
    """The ledger transfer id of the EVM payment (network, token, payer, nonce): one per
    EIP-3009 authorization (nonces are per token contract, so the token is part of it).
    Hashed, because the four together pass the ledger's 128-character id limit."""
    text = f"{network}/{parse_address(token)}/{parse_address(payer)}/".encode()
    return f"x402-evm:{keccak256(text + nonce).hex()}"


def payer_task(payload: PaymentPayload, payer: str, now_s: int) -> str | None:
    """The task of the mandate chain `payload` carries, if that chain verifies at `now_s`
    and its leaf is `payer`'s; None otherwise (no chain, no task, or not the payer's)."""
    try:
        chain = mandate_of(payload)
        if chain is None or chain.agent.lower() != payer.lower():
            return None
        task = chain_task(chain)
        if task is not None:
            chain.verify(now_s, principal=chain.principal)
    except PaywireError:
        return None
    return task


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


class EvmBooks:
    """Writes settled EVM payments of `network` to `ledger`, between mirror accounts."""

    def __init__(
        self, ledger: Ledger, network: str, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.ledger = ledger
        self.network = network
        self._clock = clock
        self._opened: set[str] = set()

    def record(
        self,
        checked: Checked,
        payload: PaymentPayload,
        tx_hash: str,
        block_number: int,
        resource: str | None,
    ) -> tuple[Transfer | None, bytes | None]:
        """The payment's ledger transfer and its leaf hash; (None, None), logged as an
        error, if the ledger refused it (the chain settled: the record can be written
        again, under the same id)."""
        authorization, known = checked.authorization, checked.known
        asset = known.asset
        metadata: dict[str, JsonValue] = {
            "scheme": SCHEME,
            "network": self.network,
            "token": known.token.address,
            "tx": tx_hash,
            "block": block_number,
        }
        if resource:
            metadata["resource"] = resource[:MAX_RESOURCE_CHARS]
        task = payer_task(payload, authorization.payer, int(self._clock()))
        if task:
            metadata[TASK_KEY] = task
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
