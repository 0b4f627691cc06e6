"""How the ledger names the accounts of on-chain identities.

A wallet address holds one ledger account per asset, whether it pays or is paid:
``<checksummed address>:<ASSET>``, e.g. ``0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B:USDC``.
The operator's reserve on a chain is one external account per (network, token):
``reserve:<network>:<token address>``. A payment settled on an EVM chain (x402 `exact`)
is recorded between *mirror* accounts, external, one per (network, address, asset):
``evm:<network>:<checksummed address>:<ASSET>``.
"""

from __future__ import annotations

from paywire.crypto.keys import parse_address
from paywire.ledger.model import check_id


def wallet_account_id(address: str, asset_code: str) -> str:
    """The ledger account of a wallet address for one asset (the address is checksummed
    first, so every spelling of one address names one account)."""
    return check_id(f"{parse_address(address)}:{asset_code}", "wallet account id")


def reserve_account_id(network: str, token: str) -> str:
    """The external account mirroring the operator's reserve of `token` on `network`."""
    return check_id(f"reserve:{network}:{token}", "reserve account id")


def evm_account_id(network: str, address: str, asset_code: str) -> str:
    """The ledger's EXTERNAL mirror account of `address` on an EVM `network`:
    ``evm:<network>:<checksummed address>:<ASSET>``."""
    return check_id(f"evm:{network}:{parse_address(address)}:{asset_code}", "EVM account id")
