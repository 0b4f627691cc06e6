"""`ReserveBase`: what `Reserve` is built on: the reserve's key, token, asset and ledger
account, its deposit watcher's cursor, and its wallets' accounts."""

from __future__ import annotations

import threading

from paywire.chain.errors import ChainError
from paywire.chain.reserve._accounts import _address, open_wallet_account
from paywire.chain.reserve._cursor import CursorStore, MemoryCursor
from paywire.chain.token._authorization import Token
from paywire.crypto import PrivateKey
from paywire.ledger import AccountKind, Ledger, NewAccount
from paywire.ledger.names import reserve_account_id, wallet_account_id
from paywire.money import Asset

# ----- the reserve ------------------------------------------------------------------------------


class ReserveBase:
    """What `Reserve` is built on: the reserve itself and its wallets' accounts."""

    def __init__(
        self,
        ledger: Ledger,
        token: Token,
        key: PrivateKey,
        *,
        asset: Asset | None = None,
        confirmations: int | None = None,
        cursor: CursorStore | None = None,
        start_block: int = 0,
    ) -> None:
        if not isinstance(key, PrivateKey):
            raise ChainError("a reserve needs its address's PrivateKey")
        self.ledger = ledger
        self.token = token
        self.chain = token.chain
        self.key = key
        self.address = key.address
        """The reserve's on-chain address."""
        self.asset = asset if asset is not None else Asset(token.symbol.upper(), token.decimals)
        if self.asset.decimals != token.decimals:
            raise ChainError(
                f"asset {self.asset.code} has {self.asset.decimals} decimals, "
                f"the token {token.decimals}: one atomic unit must be one token unit"
            )
        self.confirmations = self.chain.confirmations if confirmations is None else confirmations
        if not isinstance(start_block, int) or start_block < 0:
            raise ChainError("start_block must be a block number (0 or more)")
        self.account_id = reserve_account_id(self.chain.network, token.address)
        """The ledger's external account mirroring this reserve."""
        ledger.open_account(
            NewAccount(self.account_id, self.asset, AccountKind.EXTERNAL, owner=self.address)
        )
        self._cursor = cursor if cursor is not None else MemoryCursor()
        self._cursor_key = f"deposits:{self.chain.network}:{token.address}:{self.address}"
        self._start_block = start_block
        self._opened: set[str] = set()
        self._scan_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Reserve({self.asset.code} at {self.address} on {self.chain.network})"

    def wallet_account(self, address: str) -> str:
        """The ledger account of wallet `address` in this asset (opened if needed)."""
        checked = _address(address)
        account_id = wallet_account_id(checked, self.asset.code)
        if account_id not in self._opened:
            open_wallet_account(self.ledger, checked, self.asset)
            self._opened.add(account_id)
        return account_id
