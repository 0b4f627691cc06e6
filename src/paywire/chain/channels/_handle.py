"""`ChannelsHandle`: what `ChannelContract` is built on: the contract at an address (or
deployed), its settings and EIP-712 domain read once, its reads, and the calls beneath its
writes, encoded against fixed selectors with reverts mapped to typed errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode

from paywire.chain._checks import check_address
from paywire.chain.base._chain import Chain
from paywire.chain.base._values import Receipt
from paywire.chain.channels._errors import (
    ChannelRefused,
    InvalidChannelInput,
    UnknownChannel,
    channel_error,
)
from paywire.chain.channels._state import Channel, channel_from_words, check_channel_id
from paywire.chain.channels._voucher import CHANNELS_NAME, CHANNELS_VERSION, voucher_domain
from paywire.chain.compile import paywire_channels
from paywire.chain.errors import ChainError, NoSigner, TransactionReverted
from paywire.chain.token._authorization import Token
from paywire.crypto import PrivateKey, keccak256, to_checksum_address

DEFAULT_CHALLENGE_PERIOD_S = 24 * 3600
"""How long a payee has to claim once its payer asks to withdraw: a day, well past any
sensible interval between a payee's batches of claims."""

MAX_CHALLENGE_PERIOD_S = 366 * 24 * 3600
"""The contract's bound: a longer period locks the payer's funds for no reason."""


def _selector(signature: str) -> bytes:
    return keccak256(signature.encode("ascii"))[:4]


SELECTORS = {
    signature.split("(", 1)[0]: _selector(signature)
    for signature in (
        "TOKEN()",
        "CHALLENGE_PERIOD_S()",
        "VOUCHER_TYPEHASH()",
        "DOMAIN_SEPARATOR()",
        "name()",
        "version()",
        "channel(bytes32)",
        "channel_id(address,address,bytes32)",
        "voucher_digest(bytes32,uint128)",
        "open(address,uint256,bytes32)",
        "top_up(bytes32,uint256)",
        "claim(bytes32,uint128,uint128,bytes)",
        "claim_many(bytes32[],uint128[],uint128[],bytes[])",
        "close(bytes32,uint128,uint128,bytes)",
        "request_withdrawal(bytes32)",
        "withdraw(bytes32)",
    )
}
"""The 4-byte selectors of the channel contract's functions, by name."""

GAS_BOUNDS = {
    "open": 250_000,
    "top_up": 100_000,
    "claim": 150_000,
    "close": 150_000,
    "request_withdrawal": 60_000,
    "withdraw": 100_000,
}
"""Gas limits of the channel contract's calls on the local chain, about twice the most
measured (an open uses ~124k, a claim ~72k when it is the payee's first, a close ~68k):
unused gas is not paid."""

CLAIM_MANY_BASE_GAS = 80_000
CLAIM_MANY_GAS_PER_VOUCHER = 40_000
"""claim_many's gas limit: base plus per voucher (measured: ~36k + ~19.3k per voucher)."""


class ChannelsHandle:
    """The channel contract at `address` on `chain`: its token (a `Token`), challenge
    period and EIP-712 `domain` are read once, here, and checked against the contract's
    own ``DOMAIN_SEPARATOR()``."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = check_address(address, "channel contract address")
        if not chain.code(self.address):
            raise ChainError(f"no contract at {self.address} on {chain.network}")
        try:
            name, version = self._read_text("name"), self._read_text("version")
            (token,) = abi_decode(["address"], self._call("TOKEN"))
            self.challenge_period_s = self._read_uint("CHALLENGE_PERIOD_S")
            """Seconds between a payer's withdrawal request and its withdrawal."""
        except TransactionReverted:
            raise ChainError(f"{self.address} is not a paywire channel contract") from None
        except ChainError:
            raise
        except Exception as error:  # eth_abi's decoding errors: answers of another shape
            raise ChainError(f"{self.address} is not a paywire channel contract: {error}") from None
        if (name, version) != (CHANNELS_NAME, CHANNELS_VERSION):
            raise ChainError(f"{self.address} is {name!r} version {version!r}, not paywire's")
        self.domain = voucher_domain(chain.chain_id, self.address)
        """The EIP-712 domain vouchers of this contract are signed under."""
        if self.domain_separator() != self.domain.separator:
            raise ChainError(f"the EIP-712 domain of {self.address} is not the expected one")
        self.token = Token(chain, to_checksum_address(str(token)))
        """The token every channel of this contract holds."""

    @classmethod
    def deploy(
        cls,
        chain: Chain,
        token: str | Token,
        *,
        challenge_period_s: int = DEFAULT_CHALLENGE_PERIOD_S,
        deployer: PrivateKey | None = None,
    ) -> Self:
        """Deploy a channel contract for `token` on `chain` (`deployer` pays the gas; on
        `LocalChain` it defaults to the funded operator)."""
        address = token.address if isinstance(token, Token) else check_address(token, "token")
        if (
            not isinstance(challenge_period_s, int)
            or isinstance(challenge_period_s, bool)
            or not 1 <= challenge_period_s <= MAX_CHALLENGE_PERIOD_S
        ):
            raise InvalidChannelInput(
                f"the challenge period is 1..{MAX_CHALLENGE_PERIOD_S} whole seconds"
            )
        key = deployer if deployer is not None else chain.default_signer()
        receipt = chain.deploy(
            key, paywire_channels(), ("address", "uint256"), (address, challenge_period_s)
        )
        if receipt.contract_address is None:
            raise ChainError(f"deployment {receipt.tx_hash} created no contract")
        return cls(chain, receipt.contract_address)

    def __repr__(self) -> str:
        return f"ChannelContract({self.token.symbol} at {self.address} on {self.chain.network})"

    # ----- reads ---------------------------------------------------------------------------

    def channel(self, channel_id: bytes) -> Channel:
        """The channel's state now (`UnknownChannel` if no channel has this id)."""
        found = self.find_channel(channel_id)
        if found is None:
            raise UnknownChannel(f"no channel 0x{channel_id.hex()} on {self.address}")
        return found

    def find_channel(self, channel_id: bytes) -> Channel | None:
        """The channel's state now, or None if no channel has this id."""
        data = self._call("channel", ["bytes32"], [check_channel_id(channel_id)])
        return channel_from_words(channel_id, data)

    def balance(self) -> int:
        """The token the contract holds: the sum of what its open channels have left."""
        return self.token.balance_of(self.address)

    def domain_separator(self) -> bytes:
        """The contract's own ``DOMAIN_SEPARATOR()`` (equals ``domain.separator``)."""
        (value,) = abi_decode(["bytes32"], self._call("DOMAIN_SEPARATOR"))
        return bytes(value)

    def voucher_digest_on_chain(self, channel_id: bytes, max_claimable_amount: int) -> bytes:
        """The digest the contract itself computes for a voucher (for checks and tests)."""
        data = self._call(
            "voucher_digest",
            ["bytes32", "uint128"],
            [check_channel_id(channel_id), max_claimable_amount],
        )
        (value,) = abi_decode(["bytes32"], data)
        return bytes(value)

    def withdrawable_at(self, channel: Channel) -> int | None:
        """When the payer may withdraw (unix seconds), or None while it has not asked."""
        if not channel.withdrawal_requested:
            return None
        return channel.withdraw_requested_at + self.challenge_period_s

    # ----- plumbing ------------------------------------------------------------------------

    def _signer(self, key: PrivateKey) -> PrivateKey:
        if not isinstance(key, PrivateKey):
            raise NoSigner("a channel call is sent by a paywire PrivateKey (payer or payee)")
        return key

    def _data(self, function: str, types: Sequence[str], args: Sequence[object]) -> bytes:
        return SELECTORS[function] + abi_encode(list(types), list(args))

    def _call(self, function: str, types: Sequence[str] = (), args: Sequence[object] = ()) -> bytes:
        return self.chain.call(self.address, self._data(function, types, args))

    def _read_uint(self, function: str) -> int:
        result = self._call(function)
        if len(result) != 32:
            raise ChainError(f"{function}() of {self.address} answered {len(result)} bytes")
        return int.from_bytes(result, "big")

    def _read_text(self, function: str) -> str:
        (value,) = abi_decode(["string"], self._call(function))
        return str(value)

    def _simulate(self, sender: str, data: bytes, *, index: int | None = None) -> bytes:
        """``eth_call`` of `data` from `sender`: the return data, or the typed refusal."""
        try:
            return self.chain.call(self.address, data, sender=sender)
        except ChannelRefused:
            raise
        except TransactionReverted as error:
            raise channel_error(error.reason, index=index) from None

    def _send(self, key: PrivateKey, data: bytes, gas_bound: int) -> str:
        """Broadcast `data` from `key` (simulated first: a refusal costs no gas)."""
        try:
            return self.chain.send(self._signer(key), self.address, data, gas_bound=gas_bound)
        except ChannelRefused:
            raise
        except TransactionReverted as error:
            raise channel_error(error.reason, tx_hash=error.tx_hash) from None

    def _confirm(
        self,
        tx_hash: str,
        sender: str,
        data: bytes,
        *,
        confirmations: int | None = None,
        timeout_s: float | None = None,
    ) -> Receipt:
        """The receipt of `tx_hash` once mined; a reverted one raises the typed error of its
        reason, found by running the same call again (a receipt carries no reason)."""
        receipt = self.chain.wait(tx_hash, confirmations=confirmations, timeout_s=timeout_s)
        if receipt.ok:
            return receipt
        reason = ""
        try:
            self.chain.call(self.address, data, sender=sender)
        except TransactionReverted as error:
            reason = error.reason
        raise channel_error(reason, tx_hash=tx_hash, what=f"transaction {tx_hash} reverted")

    def _transact(
        self, key: PrivateKey, function: str, types: Sequence[str], args: Sequence[object]
    ) -> Receipt:
        data = self._data(function, types, args)
        tx_hash = self._send(key, data, GAS_BOUNDS[function])
        return self._confirm(tx_hash, key.address, data)
