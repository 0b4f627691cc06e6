"""Payment channels: pay per AI token with one deposit and cumulative vouchers.

x402's `batch-settlement` scheme on both networks (see `wire` for the format and where it
differs from the SDK's):

- `LedgerChannels` (the facilitator's side, ledger network): open = a hold on the payer's
  balance, bounded by its mandates; claims and closes in linked ledger batches; expiry
  returns what was not claimed. Served over HTTP by `paywire.service.channels`.
- `ChannelBook` (the provider's side, any network): verifies vouchers in memory, writes the
  highest one durably before serving, charges what the work cost, claims in batches, and
  recovers from its SQLite file after a crash. Its backends: `LedgerChannelBackend` (in
  process), `RemoteLedgerChannelBackend` (HTTP), `EvmChannelBackend` (channel contract).
- The payer's side is `paywire.client.channels.ChannelPayer`.
"""

from typing import TYPE_CHECKING, Any

from paywire.protocol.channel.backends import (
    ChannelBackend,
    ChannelInfo,
    LedgerChannelBackend,
    RemoteLedgerChannelBackend,
)
from paywire.protocol.channel.book import ChannelBook
from paywire.protocol.channel.book_state import ChannelAuthorization, ChannelCharge
from paywire.protocol.channel.ledger import LedgerChannels
from paywire.protocol.channel.ledger_state import LedgerChannelState
from paywire.protocol.channel.ledger_wire import (
    ClaimBatch,
    ClaimEntry,
    ClaimOutcome,
    OpenChannelRequest,
    sign_claims,
    sign_open,
)
from paywire.protocol.channel.wire import (
    CHANNEL_EXTENSION,
    SCHEME,
    VOUCHER_BEHIND,
    ChannelProblem,
    SignedVoucher,
    corrective_accepts,
    ledger_channel_domain,
    ledger_channel_id,
    parse_voucher,
    sign_voucher,
)

if TYPE_CHECKING:
    from paywire.protocol.channel.evm import EvmChannelBackend


def __getattr__(name: str) -> Any:
    # The EVM backend imports web3 (through the chain layer): only when asked for.
    if name == "EvmChannelBackend":
        from paywire.protocol.channel.evm import EvmChannelBackend

        return EvmChannelBackend
    raise AttributeError(f"module 'paywire.protocol.channel' has no attribute {name!r}")


__all__ = [
    "CHANNEL_EXTENSION",
    "SCHEME",
    "VOUCHER_BEHIND",
    "ChannelAuthorization",
    "ChannelBackend",
    "ChannelBook",
    "ChannelCharge",
    "ChannelInfo",
    "ChannelProblem",
    "ClaimBatch",
    "ClaimEntry",
    "ClaimOutcome",
    "EvmChannelBackend",
    "LedgerChannelBackend",
    "LedgerChannelState",
    "LedgerChannels",
    "OpenChannelRequest",
    "RemoteLedgerChannelBackend",
    "SignedVoucher",
    "corrective_accepts",
    "ledger_channel_domain",
    "ledger_channel_id",
    "parse_voucher",
    "sign_claims",
    "sign_open",
    "sign_voucher",
]
