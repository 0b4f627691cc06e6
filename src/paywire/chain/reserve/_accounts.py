"""The reserve's conventions in the ledger: a wallet's agent account, the id of a
deposit's ledger transfer, the EIP-3009 nonce of a withdrawal."""

from __future__ import annotations

from paywire.chain._checks import check_address
from paywire.crypto import keccak256
from paywire.ledger import AccountKind, Ledger, NewAccount
from paywire.ledger.model import check_id
from paywire.ledger.names import wallet_account_id
from paywire.money import Asset

_NONCE_DOMAIN = b"paywire-withdrawal\x00"


# ----- account conventions --------------------------------------------------------------------


def open_wallet_account(ledger: Ledger, address: str, asset: Asset) -> str:
    """Open (idempotently) the agent account of wallet `address` in `asset`; its id.

    Opened exactly as the ledger network's facilitator opens a payee's account, so both
    may open it first."""
    checked = _address(address)
    account_id = wallet_account_id(checked, asset.code)
    ledger.open_account(NewAccount(account_id, asset, AccountKind.AGENT, owner=checked))
    return account_id


def deposit_transfer_id(network: str, tx_hash: str, log_index: int) -> str:
    """The ledger transfer id (idempotency key) of the deposit in one Transfer log."""
    return check_id(f"deposit:{network}:{tx_hash.lower()}:{log_index}", "deposit id")


def withdrawal_nonce(network: str, reserve: str, withdrawal_id: str) -> bytes:
    """The EIP-3009 nonce of a withdrawal: one per (chain, reserve, withdrawal id), so the
    chain's ``authorizationState`` says whether that withdrawal was paid."""
    text = f"{network}\x00{reserve}\x00{withdrawal_id}".encode()
    return keccak256(_NONCE_DOMAIN + text)


def _address(value: object) -> str:
    return check_address(value)
