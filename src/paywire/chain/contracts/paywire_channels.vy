# pragma version ~=0.4.3
# pragma evm-version shanghai
"""
@title Paywire Channels
@notice Unidirectional payment channels in one ERC-20 token: a payer deposits, then signs
        cumulative vouchers (EIP-712 `Voucher(bytes32 channelId,uint128 maxClaimableAmount)`,
        x402 batch-settlement's type) as it is served; the payee claims, on the latest
        voucher, the total it actually charged (at most the voucher's maximum) whenever it
        likes, many channels in one transaction if it likes, and may close the channel
        cooperatively (claim, refund the rest to the payer). A payer whose payee is gone requests a withdrawal and, after
        CHALLENGE_PERIOD_S, takes back what was not claimed; until then (and until the
        withdrawal is executed) the payee's claims still succeed, so the payee always has
        the whole challenge period to claim what it is owed.
@dev    One deployment per token (TOKEN is immutable): a channel needs no token slot, a batch
        of claims pays the payee with one transfer, and the EIP-712 domain (this contract,
        this chain) names the token implicitly.
        The token is trusted (chosen by the deployer: paywire's stablecoin or USDC). Every
        function still follows checks-effects-interactions: its token calls come after all
        its state is written, so a re-entering token would only see settled state. A token
        that takes a fee on transfer is not supported (the deposit recorded would exceed
        what arrived).
        Channel ids are keccak256(chain id, this contract, token, payer, payee, salt): the
        payer picks a random salt and can compute the id (and sign vouchers for it) before
        the open is mined; nobody else can open a channel with the payer's id, and an id is
        never reused (a closed channel keeps its record), so an old voucher never pays twice.
        A channel is three storage slots, packed by hand (Vyper does not pack): the payer
        with the withdrawal request time and the closed flag; the payee; the deposit with
        the claimed total (uint128 each, as the paywire ledger's amounts). A claim reads
        the three and writes one, already warm.
        Signatures must be 65 bytes, low-s (EIP-2) with v in {27, 28}. The evm version is
        Shanghai so the same bytecode runs on ganache.
"""

from ethereum.ercs import IERC20


struct Channel:
    payer: address
    payee: address
    deposit: uint256
    # The cumulative amount already paid to the payee.
    claimed: uint256
    # When the payer asked to withdraw (0: it did not).
    withdraw_requested_at: uint256
    closed: bool


event ChannelOpened:
    channel_id: indexed(bytes32)
    payer: indexed(address)
    payee: indexed(address)
    deposit: uint256


event ChannelToppedUp:
    channel_id: indexed(bytes32)
    amount: uint256
    deposit: uint256


event Claimed:
    channel_id: indexed(bytes32)
    payee: indexed(address)
    amount: uint256
    claimed: uint256


event WithdrawalRequested:
    channel_id: indexed(bytes32)
    payer: indexed(address)
    available_at: uint256


event ChannelClosed:
    channel_id: indexed(bytes32)
    claimed: uint256
    refunded: uint256
    cooperative: bool


MAX_BATCH: constant(uint256) = 64
# A challenge period longer than a year locks a payer's funds for no reason.
MAX_CHALLENGE_PERIOD_S: constant(uint256) = 31_622_400
MAX_DEPOSIT: constant(uint256) = 2**128 - 1
SIGNATURE_BYTES: constant(uint256) = 65

# The packed head of a channel: payer (bits 0-159), withdrawal request time (160-223),
# closed (bit 224).
ADDRESS_MASK: constant(uint256) = 2**160 - 1
TIME_MASK: constant(uint256) = 2**64 - 1
CLOSED_BIT: constant(uint256) = 2**224

EIP712_DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
VOUCHER_TYPEHASH: public(constant(bytes32)) = keccak256(
    "Voucher(bytes32 channelId,uint128 maxClaimableAmount)"
)
NAME: constant(String[16]) = "Paywire Channels"
VERSION: constant(String[1]) = "1"
# The largest s of a canonical signature: half the order of secp256k1 (EIP-2).
SECP256K1_HALF_N: constant(uint256) = (
    57896044618658097711785492504343953926418782139537452191302581570759080747168
)

TOKEN: public(immutable(address))
CHALLENGE_PERIOD_S: public(immutable(uint256))
DEPLOY_CHAIN_ID: immutable(uint256)
DEPLOY_DOMAIN_SEPARATOR: immutable(bytes32)

# channel id -> payer | withdraw_requested_at << 160 | closed << 224 (0: no such channel)
heads: HashMap[bytes32, uint256]
# channel id -> payee
payees: HashMap[bytes32, address]
# channel id -> deposit | claimed << 128
amounts: HashMap[bytes32, uint256]


@deploy
def __init__(token: address, challenge_period_s: uint256):
    assert token.is_contract, "token is not a contract"
    assert challenge_period_s >= 1, "challenge period is zero"
    assert challenge_period_s <= MAX_CHALLENGE_PERIOD_S, "challenge period is over a year"
    TOKEN = token
    CHALLENGE_PERIOD_S = challenge_period_s
    DEPLOY_CHAIN_ID = chain.id
    DEPLOY_DOMAIN_SEPARATOR = self._separator()


# ----- reads -----------------------------------------------------------------------------


@pure
@external
def name() -> String[16]:
    return NAME


@pure
@external
def version() -> String[1]:
    return VERSION


@view
@external
def DOMAIN_SEPARATOR() -> bytes32:
    return self._domain_separator()


@view
@external
def channel(channel_id: bytes32) -> Channel:
    """
    @notice The channel's state (all zero for an unknown id).
    """
    head: uint256 = self.heads[channel_id]
    amounts: uint256 = self.amounts[channel_id]
    return Channel(
        payer=self._payer(head),
        payee=self.payees[channel_id],
        deposit=amounts & MAX_DEPOSIT,
        claimed=amounts >> 128,
        withdraw_requested_at=(head >> 160) & TIME_MASK,
        closed=head & CLOSED_BIT != 0,
    )


@view
@external
def channel_id(payer: address, payee: address, salt: bytes32) -> bytes32:
    return self._channel_id(payer, payee, salt)


@view
@external
def voucher_digest(channel_id: bytes32, max_claimable_amount: uint128) -> bytes32:
    return self._voucher_digest(channel_id, max_claimable_amount)


# ----- the payer ---------------------------------------------------------------------------


@external
def open(payee: address, amount: uint256, salt: bytes32) -> bytes32:
    """
    @notice Open a channel from the caller to `payee` with `amount` of the token (the caller
            must have approved this contract for it).
    """
    assert payee != empty(address), "payee is the zero address"
    assert payee != msg.sender, "payee is the payer"
    assert amount > 0, "deposit is zero"
    assert amount <= MAX_DEPOSIT, "deposit overflows"
    channel_id: bytes32 = self._channel_id(msg.sender, payee, salt)
    assert self.heads[channel_id] == 0, "channel exists"
    self.heads[channel_id] = convert(msg.sender, uint256)
    self.payees[channel_id] = payee
    self.amounts[channel_id] = amount
    log ChannelOpened(channel_id=channel_id, payer=msg.sender, payee=payee, deposit=amount)
    assert extcall IERC20(TOKEN).transferFrom(
        msg.sender, self, amount, default_return_value=True
    ), "token transfer failed"
    return channel_id


@external
def top_up(channel_id: bytes32, amount: uint256):
    """
    @notice Add `amount` to the caller's open channel (refused once a withdrawal is
            requested: the payee must know what is at stake during the challenge period).
    """
    assert amount > 0, "deposit is zero"
    head: uint256 = self._payer_head(channel_id)
    assert head >> 160 == 0, "withdrawal already requested"
    amounts: uint256 = self.amounts[channel_id]
    deposit: uint256 = amounts & MAX_DEPOSIT
    assert amount <= MAX_DEPOSIT - deposit, "deposit overflows"
    deposit = unsafe_add(deposit, amount)
    self.amounts[channel_id] = (amounts >> 128 << 128) | deposit
    log ChannelToppedUp(channel_id=channel_id, amount=amount, deposit=deposit)
    assert extcall IERC20(TOKEN).transferFrom(
        msg.sender, self, amount, default_return_value=True
    ), "token transfer failed"


@external
def request_withdrawal(channel_id: bytes32):
    """
    @notice Start the challenge period after which the caller (the payer) may withdraw what
            the payee has not claimed.
    """
    head: uint256 = self._payer_head(channel_id)
    assert head >> 160 == 0, "withdrawal already requested"
    # A timestamp fits 64 bits for the next 500 billion years.
    self.heads[channel_id] = head | (block.timestamp & TIME_MASK) << 160
    log WithdrawalRequested(
        channel_id=channel_id,
        payer=msg.sender,
        available_at=block.timestamp + CHALLENGE_PERIOD_S,
    )


@external
def withdraw(channel_id: bytes32):
    """
    @notice After the challenge period, close the channel and pay the caller (the payer)
            its deposit less what was claimed.
    """
    head: uint256 = self._payer_head(channel_id)
    requested: uint256 = (head >> 160) & TIME_MASK
    assert requested != 0, "no withdrawal requested"
    assert block.timestamp >= requested + CHALLENGE_PERIOD_S, "challenge period is not over"
    amounts: uint256 = self.amounts[channel_id]
    claimed: uint256 = amounts >> 128
    refund: uint256 = (amounts & MAX_DEPOSIT) - claimed
    self.heads[channel_id] = head | CLOSED_BIT
    log ChannelClosed(channel_id=channel_id, claimed=claimed, refunded=refund, cooperative=False)
    if refund > 0:
        assert extcall IERC20(TOKEN).transfer(
            msg.sender, refund, default_return_value=True
        ), "token transfer failed"


# ----- the payee ---------------------------------------------------------------------------


@external
def claim(
    channel_id: bytes32,
    max_claimable_amount: uint128,
    total_claimed: uint128,
    signature: Bytes[65],
) -> uint256:
    """
    @notice Collect `total_claimed` less what was already claimed, on the payer's voucher
            for up to `max_claimable_amount` (the payee claims what it charged, which may be
            less than the voucher allows).
    @return The amount paid to the caller (the payee).
    """
    amount: uint256 = self._claim(channel_id, max_claimable_amount, total_claimed, signature)
    assert extcall IERC20(TOKEN).transfer(
        msg.sender, amount, default_return_value=True
    ), "token transfer failed"
    return amount


@external
def claim_many(
    channel_ids: DynArray[bytes32, MAX_BATCH],
    max_claimable_amounts: DynArray[uint128, MAX_BATCH],
    totals_claimed: DynArray[uint128, MAX_BATCH],
    signatures: DynArray[Bytes[65], MAX_BATCH],
) -> uint256:
    """
    @notice Claim on many channels of the caller (the payee) at once, all or nothing: one
            refused claim reverts the batch. The payee is paid the total in one transfer.
    @return The total paid.
    """
    count: uint256 = len(channel_ids)
    assert count > 0, "no vouchers"
    assert (
        len(max_claimable_amounts) == count
        and len(totals_claimed) == count
        and len(signatures) == count
    ), "array lengths differ"
    total: uint256 = 0
    for i: uint256 in range(count, bound=MAX_BATCH):
        # Cannot overflow: each amount comes out of a deposit this contract holds.
        total = unsafe_add(
            total,
            self._claim(channel_ids[i], max_claimable_amounts[i], totals_claimed[i], signatures[i]),
        )
    assert extcall IERC20(TOKEN).transfer(
        msg.sender, total, default_return_value=True
    ), "token transfer failed"
    return total


@external
def close(
    channel_id: bytes32,
    max_claimable_amount: uint128,
    total_claimed: uint128,
    signature: Bytes[65],
):
    """
    @notice Close the channel cooperatively (the payee): collect `total_claimed` on the
            payer's voucher for up to `max_claimable_amount` and refund the rest of the
            deposit to the payer. With `total_claimed` equal to what was already claimed no
            voucher is needed (the signature may be empty).
    """
    head: uint256 = self._payee_head(channel_id)
    amounts: uint256 = self.amounts[channel_id]
    deposit: uint256 = amounts & MAX_DEPOSIT
    claimed: uint256 = amounts >> 128
    total: uint256 = convert(total_claimed, uint256)
    assert total <= deposit, "voucher exceeds the deposit"
    assert total >= claimed, "voucher is below the claimed total"
    payer: address = self._payer(head)
    amount: uint256 = unsafe_sub(total, claimed)
    refund: uint256 = unsafe_sub(deposit, total)
    if amount > 0:
        assert total <= convert(max_claimable_amount, uint256), "claim exceeds the voucher"
        self._check_voucher(channel_id, max_claimable_amount, signature, payer)
        self.amounts[channel_id] = total << 128 | deposit
        log Claimed(channel_id=channel_id, payee=msg.sender, amount=amount, claimed=total)
    self.heads[channel_id] = head | CLOSED_BIT
    log ChannelClosed(channel_id=channel_id, claimed=total, refunded=refund, cooperative=True)
    if amount > 0:
        assert extcall IERC20(TOKEN).transfer(
            msg.sender, amount, default_return_value=True
        ), "token transfer failed"
    if refund > 0:
        assert extcall IERC20(TOKEN).transfer(
            payer, refund, default_return_value=True
        ), "token transfer failed"


# ----- internals ---------------------------------------------------------------------------


@internal
def _claim(
    channel_id: bytes32,
    max_claimable_amount: uint128,
    total_claimed: uint128,
    signature: Bytes[65],
) -> uint256:
    """Check a claim by msg.sender and record it; the amount to pay (no transfer here)."""
    head: uint256 = self._payee_head(channel_id)
    amounts: uint256 = self.amounts[channel_id]
    deposit: uint256 = amounts & MAX_DEPOSIT
    claimed: uint256 = amounts >> 128
    total: uint256 = convert(total_claimed, uint256)
    assert total <= deposit, "voucher exceeds the deposit"
    assert total <= convert(max_claimable_amount, uint256), "claim exceeds the voucher"
    assert total > claimed, "voucher is not above the claimed total"
    self._check_voucher(channel_id, max_claimable_amount, signature, self._payer(head))
    # total <= deposit < 2**128: it fits the upper half.
    self.amounts[channel_id] = total << 128 | deposit
    amount: uint256 = unsafe_sub(total, claimed)
    log Claimed(channel_id=channel_id, payee=msg.sender, amount=amount, claimed=total)
    return amount


@view
@internal
def _payer_head(channel_id: bytes32) -> uint256:
    """The head of an open channel whose payer is msg.sender."""
    head: uint256 = self.heads[channel_id]
    assert head != 0, "no such channel"
    assert head & CLOSED_BIT == 0, "channel is closed"
    assert self._payer(head) == msg.sender, "caller is not the payer"
    return head


@view
@internal
def _payee_head(channel_id: bytes32) -> uint256:
    """The head of an open channel whose payee is msg.sender."""
    head: uint256 = self.heads[channel_id]
    assert head != 0, "no such channel"
    assert head & CLOSED_BIT == 0, "channel is closed"
    assert self.payees[channel_id] == msg.sender, "caller is not the payee"
    return head


@pure
@internal
def _payer(head: uint256) -> address:
    return convert(convert(head & ADDRESS_MASK, uint160), address)


@view
@internal
def _check_voucher(
    channel_id: bytes32, max_claimable_amount: uint128, signature: Bytes[65], payer: address
):
    assert len(signature) == SIGNATURE_BYTES, "invalid signature length"
    r: bytes32 = extract32(signature, 0)
    s: bytes32 = extract32(signature, 32)
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    assert convert(s, uint256) <= SECP256K1_HALF_N, "invalid signature 's' value"
    assert v == 27 or v == 28, "invalid signature 'v' value"
    signer: address = ecrecover(self._voucher_digest(channel_id, max_claimable_amount), v, r, s)
    # ecrecover answers the zero address for a signature that recovers no key.
    assert signer != empty(address), "invalid signature"
    assert signer == payer, "invalid signature: not the payer's"


@view
@internal
def _channel_id(payer: address, payee: address, salt: bytes32) -> bytes32:
    return keccak256(abi_encode(chain.id, self, TOKEN, payer, payee, salt))


@view
@internal
def _voucher_digest(channel_id: bytes32, max_claimable_amount: uint128) -> bytes32:
    struct_hash: bytes32 = keccak256(
        abi_encode(VOUCHER_TYPEHASH, channel_id, max_claimable_amount)
    )
    return keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))


@view
@internal
def _domain_separator() -> bytes32:
    if chain.id == DEPLOY_CHAIN_ID:
        return DEPLOY_DOMAIN_SEPARATOR
    # After a fork to another chain id, vouchers must name the new chain.
    return self._separator()


@view
@internal
def _separator() -> bytes32:
    return keccak256(
        abi_encode(
            EIP712_DOMAIN_TYPEHASH, keccak256(NAME), keccak256(VERSION), chain.id, self
        )
    )
