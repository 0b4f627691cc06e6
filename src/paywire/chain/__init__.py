"""EVM settlement: the stablecoin contract, chains (in-process and JSON-RPC), the token,
deposits, withdrawals and the reserves check.

- `compile`: Vyper contracts compiled by the `vyper` package, cached on disk.
- `LocalChain`: eth-tester with py-evm, in this process; `RpcChain`: any JSON-RPC endpoint;
  `rpc_bridge`: serves a `LocalChain` over JSON-RPC so other processes reach it.
- `Token`: an EIP-3009 stablecoin: balances, mint and faucet, EIP-3009 signing (paywire's
  fast EIP-712 path), simulation and settlement of ``transferWithAuthorization``.
- `Reserve`: the operator's reserve mirrored in the ledger: deposits (by
  ``receiveWithAuthorization`` or found by the watcher), withdrawals, `check_reserves`.
- `ChannelContract`, `Voucher`: payment channels (`paywire.chain.channels`): a deposit per
  channel, cumulative EIP-712 vouchers, claims in batches, withdrawal after a delay.

`paywire.chain.eip3009` (authorizations and their signatures) and `paywire.chain.errors`
do not import web3; the rest does (about a second), so they are imported on first use.
Everything here needs the ``chain`` extra (web3, eth-tester, py-evm, vyper).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from paywire.chain.eip3009 import (
    CANCEL_AUTHORIZATION,
    RECEIVE_WITH_AUTHORIZATION,
    Authorization,
    AuthorizationKind,
    new_nonce,
    recover_authorizer,
    sign_authorization,
    sign_cancel,
    split_signature,
    token_domain,
)
from paywire.chain.errors import (
    ChainError,
    ChainIdMismatch,
    ChainUnavailable,
    ContractCompileFailed,
    DepositRejected,
    FaucetRefused,
    InvalidAuthorization,
    InvalidChainInput,
    NoSigner,
    TransactionPending,
    TransactionReverted,
    TransferMismatch,
    WithdrawalFailed,
    WithdrawalPending,
)

if TYPE_CHECKING:
    from paywire.chain.base._chain import Chain
    from paywire.chain.base._values import Log, Receipt
    from paywire.chain.bridge import rpc_bridge, rpc_route
    from paywire.chain.channels._contract import ChannelContract
    from paywire.chain.channels._errors import (
        BadVoucherSignature,
        ChallengePeriodNotOver,
        ChannelClosed,
        ChannelRefused,
        NotPayee,
        NotPayer,
        UnknownChannel,
        VoucherBelowCharged,
        VoucherNotAboveClaimed,
        VoucherPastDeposit,
    )
    from paywire.chain.channels._state import Channel
    from paywire.chain.channels._voucher import Voucher, voucher_domain
    from paywire.chain.compile import (
        CompiledContract,
        compile_vyper,
        paywire_channels,
        paywire_usd,
    )
    from paywire.chain.local import LOCAL_CHAIN_ID, LocalChain, dev_key
    from paywire.chain.reserve._accounts import deposit_transfer_id, open_wallet_account
    from paywire.chain.reserve._check import AssetReserves, ReservesReport, check_reserves
    from paywire.chain.reserve._cursor import FileCursor, MemoryCursor
    from paywire.chain.reserve._deposits import Deposit, DepositScan
    from paywire.chain.reserve._reserve import Reserve
    from paywire.chain.reserve._withdrawals import Withdrawal
    from paywire.chain.rpc import RpcChain
    from paywire.chain.token._authorization import Simulation, Token, revert_code
    from paywire.chain.token._contract import TransferLog

_LAZY = {
    "Chain": "paywire.chain.base._chain",
    "Log": "paywire.chain.base._values",
    "Receipt": "paywire.chain.base._values",
    "rpc_bridge": "paywire.chain.bridge",
    "rpc_route": "paywire.chain.bridge",
    "BadVoucherSignature": "paywire.chain.channels._errors",
    "ChallengePeriodNotOver": "paywire.chain.channels._errors",
    "Channel": "paywire.chain.channels._state",
    "ChannelClosed": "paywire.chain.channels._errors",
    "ChannelContract": "paywire.chain.channels._contract",
    "ChannelRefused": "paywire.chain.channels._errors",
    "NotPayee": "paywire.chain.channels._errors",
    "NotPayer": "paywire.chain.channels._errors",
    "UnknownChannel": "paywire.chain.channels._errors",
    "Voucher": "paywire.chain.channels._voucher",
    "VoucherBelowCharged": "paywire.chain.channels._errors",
    "VoucherNotAboveClaimed": "paywire.chain.channels._errors",
    "VoucherPastDeposit": "paywire.chain.channels._errors",
    "voucher_domain": "paywire.chain.channels._voucher",
    "CompiledContract": "paywire.chain.compile",
    "compile_vyper": "paywire.chain.compile",
    "paywire_channels": "paywire.chain.compile",
    "paywire_usd": "paywire.chain.compile",
    "LOCAL_CHAIN_ID": "paywire.chain.local",
    "LocalChain": "paywire.chain.local",
    "dev_key": "paywire.chain.local",
    "AssetReserves": "paywire.chain.reserve._check",
    "Deposit": "paywire.chain.reserve._deposits",
    "DepositScan": "paywire.chain.reserve._deposits",
    "FileCursor": "paywire.chain.reserve._cursor",
    "MemoryCursor": "paywire.chain.reserve._cursor",
    "Reserve": "paywire.chain.reserve._reserve",
    "ReservesReport": "paywire.chain.reserve._check",
    "Withdrawal": "paywire.chain.reserve._withdrawals",
    "check_reserves": "paywire.chain.reserve._check",
    "deposit_transfer_id": "paywire.chain.reserve._accounts",
    "open_wallet_account": "paywire.chain.reserve._accounts",
    "RpcChain": "paywire.chain.rpc",
    "Simulation": "paywire.chain.token._authorization",
    "Token": "paywire.chain.token._authorization",
    "TransferLog": "paywire.chain.token._contract",
    "revert_code": "paywire.chain.token._authorization",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paywire.chain' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


__all__ = [
    "CANCEL_AUTHORIZATION",
    "LOCAL_CHAIN_ID",
    "RECEIVE_WITH_AUTHORIZATION",
    "AssetReserves",
    "Authorization",
    "AuthorizationKind",
    "BadVoucherSignature",
    "Chain",
    "ChainError",
    "ChainIdMismatch",
    "ChainUnavailable",
    "ChallengePeriodNotOver",
    "Channel",
    "ChannelClosed",
    "ChannelContract",
    "ChannelRefused",
    "CompiledContract",
    "ContractCompileFailed",
    "Deposit",
    "DepositRejected",
    "DepositScan",
    "FaucetRefused",
    "FileCursor",
    "InvalidAuthorization",
    "InvalidChainInput",
    "LocalChain",
    "Log",
    "MemoryCursor",
    "NoSigner",
    "NotPayee",
    "NotPayer",
    "Receipt",
    "Reserve",
    "ReservesReport",
    "RpcChain",
    "Simulation",
    "Token",
    "TransactionPending",
    "TransactionReverted",
    "TransferLog",
    "TransferMismatch",
    "UnknownChannel",
    "Voucher",
    "VoucherBelowCharged",
    "VoucherNotAboveClaimed",
    "VoucherPastDeposit",
    "Withdrawal",
    "WithdrawalFailed",
    "WithdrawalPending",
    "check_reserves",
    "compile_vyper",
    "deposit_transfer_id",
    "dev_key",
    "new_nonce",
    "open_wallet_account",
    "paywire_channels",
    "paywire_usd",
    "recover_authorizer",
    "revert_code",
    "rpc_bridge",
    "rpc_route",
    "sign_authorization",
    "sign_cancel",
    "split_signature",
    "token_domain",
    "voucher_domain",
]
