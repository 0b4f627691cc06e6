# pragma version ~=0.4.3
# pragma evm-version shanghai
"""
@title Paywire USD
@notice A dollar stablecoin with 6 decimals for paywire's local chain and tests:
        ERC-20, an EIP-712 domain, EIP-3009 transfers by signed authorization
        (transfer, receive, cancel), and a mint only the owner may call.
@dev    The evm version is Shanghai so the same bytecode runs on ganache. The
        EIP-712 domain is (name, version, chainId, verifyingContract) as USDC's;
        the chain id is read at run time, so a signature for another chain (or a
        fork) is refused. Signatures must be low-s (EIP-2) with v in {27, 28}.
"""

from ethereum.ercs import IERC20

implements: IERC20


event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256


event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256


event AuthorizationUsed:
    authorizer: indexed(address)
    nonce: indexed(bytes32)


event AuthorizationCanceled:
    authorizer: indexed(address)
    nonce: indexed(bytes32)


EIP712_DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
TRANSFER_WITH_AUTHORIZATION_TYPEHASH: constant(bytes32) = keccak256(
    "TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
)
RECEIVE_WITH_AUTHORIZATION_TYPEHASH: constant(bytes32) = keccak256(
    "ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"
)
CANCEL_AUTHORIZATION_TYPEHASH: constant(bytes32) = keccak256(
    "CancelAuthorization(address authorizer,bytes32 nonce)"
)
# The largest s of a canonical signature: half the order of secp256k1 (EIP-2).
# (0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0; a 64-digit hex literal
# would be a bytes32 in Vyper.)
SECP256K1_HALF_N: constant(uint256) = (
    57896044618658097711785492504343953926418782139537452191302581570759080747168
)

name: public(String[64])
symbol: public(String[32])
version: public(String[16])
owner: public(address)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
# EIP-3009: true once an (authorizer, nonce) was used or canceled.
authorizationState: public(HashMap[address, HashMap[bytes32, bool]])

NAME_HASH: immutable(bytes32)
VERSION_HASH: immutable(bytes32)
DEPLOY_CHAIN_ID: immutable(uint256)
DEPLOY_DOMAIN_SEPARATOR: immutable(bytes32)


@deploy
def __init__(name_: String[64], symbol_: String[32], version_: String[16], owner_: address):
    assert owner_ != empty(address), "owner is the zero address"
    self.name = name_
    self.symbol = symbol_
    self.version = version_
    self.owner = owner_
    NAME_HASH = keccak256(name_)
    VERSION_HASH = keccak256(version_)
    DEPLOY_CHAIN_ID = chain.id
    DEPLOY_DOMAIN_SEPARATOR = keccak256(
        abi_encode(EIP712_DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, chain.id, self)
    )


@view
@external
def decimals() -> uint8:
    return 6


@view
@external
def DOMAIN_SEPARATOR() -> bytes32:
    return self._domain_separator()


# ----- ERC-20 ---------------------------------------------------------------------------


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    allowed: uint256 = self.allowance[sender][msg.sender]
    # The largest allowance is unlimited and never spent down, as in OpenZeppelin's ERC-20.
    if allowed != max_value(uint256):
        assert allowed >= amount, "transfer amount exceeds allowance"
        self.allowance[sender][msg.sender] = unsafe_sub(allowed, amount)
    self._transfer(sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    assert spender != empty(address), "approve to the zero address"
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def mint(receiver: address, amount: uint256):
    assert msg.sender == self.owner, "caller is not the owner"
    assert receiver != empty(address), "mint to the zero address"
    assert amount <= max_value(uint256) - self.totalSupply, "mint exceeds the total supply bound"
    self.totalSupply = unsafe_add(self.totalSupply, amount)
    # Cannot overflow: a balance is at most the total supply.
    self.balanceOf[receiver] = unsafe_add(self.balanceOf[receiver], amount)
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


# ----- EIP-3009 -------------------------------------------------------------------------


@external
def transferWithAuthorization(
    sender: address,
    receiver: address,
    amount: uint256,
    validAfter: uint256,
    validBefore: uint256,
    nonce: bytes32,
    v: uint8,
    r: bytes32,
    s: bytes32,
):
    self._use_authorization(
        TRANSFER_WITH_AUTHORIZATION_TYPEHASH,
        sender,
        receiver,
        amount,
        validAfter,
        validBefore,
        nonce,
        v,
        r,
        s,
    )


@external
def receiveWithAuthorization(
    sender: address,
    receiver: address,
    amount: uint256,
    validAfter: uint256,
    validBefore: uint256,
    nonce: bytes32,
    v: uint8,
    r: bytes32,
    s: bytes32,
):
    # Only the payee may submit: nobody can front-run the payee's call with the signature.
    assert receiver == msg.sender, "caller must be the payee"
    self._use_authorization(
        RECEIVE_WITH_AUTHORIZATION_TYPEHASH,
        sender,
        receiver,
        amount,
        validAfter,
        validBefore,
        nonce,
        v,
        r,
        s,
    )


@external
def cancelAuthorization(authorizer: address, nonce: bytes32, v: uint8, r: bytes32, s: bytes32):
    assert not self.authorizationState[authorizer][nonce], "authorization is used or canceled"
    digest: bytes32 = self._digest(
        keccak256(abi_encode(CANCEL_AUTHORIZATION_TYPEHASH, authorizer, nonce))
    )
    assert self._recover(digest, v, r, s) == authorizer, "invalid signature"
    self.authorizationState[authorizer][nonce] = True
    log AuthorizationCanceled(authorizer=authorizer, nonce=nonce)


# ----- internals ------------------------------------------------------------------------


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "transfer to the zero address"
    balance: uint256 = self.balanceOf[sender]
    assert balance >= amount, "transfer amount exceeds balance"
    self.balanceOf[sender] = unsafe_sub(balance, amount)
    # Cannot overflow: a balance is at most the total supply.
    self.balanceOf[receiver] = unsafe_add(self.balanceOf[receiver], amount)
    log Transfer(sender=sender, receiver=receiver, value=amount)


@internal
def _use_authorization(
    typehash: bytes32,
    sender: address,
    receiver: address,
    amount: uint256,
    validAfter: uint256,
    validBefore: uint256,
    nonce: bytes32,
    v: uint8,
    r: bytes32,
    s: bytes32,
):
    assert block.timestamp > validAfter, "authorization is not yet valid"
    assert block.timestamp < validBefore, "authorization is expired"
    assert not self.authorizationState[sender][nonce], "authorization is used or canceled"
    digest: bytes32 = self._digest(
        keccak256(
            abi_encode(typehash, sender, receiver, amount, validAfter, validBefore, nonce)
        )
    )
    assert self._recover(digest, v, r, s) == sender, "invalid signature"
    self.authorizationState[sender][nonce] = True
    log AuthorizationUsed(authorizer=sender, nonce=nonce)
    self._transfer(sender, receiver, amount)


@view
@internal
def _domain_separator() -> bytes32:
    if chain.id == DEPLOY_CHAIN_ID:
        return DEPLOY_DOMAIN_SEPARATOR
    # After a fork to another chain id, signatures must name the new chain.
    return keccak256(abi_encode(EIP712_DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, chain.id, self))


@view
@internal
def _digest(struct_hash: bytes32) -> bytes32:
    return keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))


@pure
@internal
def _recover(digest: bytes32, v: uint8, r: bytes32, s: bytes32) -> address:
    assert convert(s, uint256) <= SECP256K1_HALF_N, "invalid signature 's' value"
    assert v == 27 or v == 28, "invalid signature 'v' value"
    signer: address = ecrecover(digest, v, r, s)
    # ecrecover answers the zero address for a signature that recovers no key.
    assert signer != empty(address), "invalid signature"
    return signer
