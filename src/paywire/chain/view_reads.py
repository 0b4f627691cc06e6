"""Reads for a facilitator's view of an EIP-3009 token: several ``eth_call`` answers in one
request, and the token's authorization events.

`call_many` makes one ``eth_call`` with no ``to``, whose data is creation code that makes
each call with ``STATICCALL`` and returns the 32-byte answers side by side (a "deployless
multicall", as viem does it): one request and one EVM run for a payer's balance and the
state of its nonce, on any node, with no contract to deploy. It reads at a given block
number, so every answer is the state of that one block. `token_reads` is its use for a
token (``balanceOf`` and ``authorizationState``).

`authorization_events` lists the token's ``AuthorizationUsed`` and
``AuthorizationCanceled`` events in a block range, one ``eth_getLogs`` per
`LOG_BLOCK_RANGE` blocks (on the in-process chain, read from py-evm's receipts directly,
in time linear in the range): how a view learns every nonce spent, block after block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from paywire.chain._checks import check_address, check_nonce
from paywire.chain.base import Chain
from paywire.chain.errors import ChainError, TransactionReverted
from paywire.crypto import keccak256, to_checksum_address

MAX_CALLS = 64
"""Calls per `call_many`: a view asks for two; the bound keeps the code and gas small."""

WORD = 32
"""Each call must answer at least one 32-byte word (a uint256, a bool); the first is kept."""

LOG_BLOCK_RANGE = 5_000
"""Blocks per ``eth_getLogs`` request: common endpoints refuse wider ranges."""

AUTHORIZATION_USED_TOPIC = keccak256(b"AuthorizationUsed(address,bytes32)")
AUTHORIZATION_CANCELED_TOPIC = keccak256(b"AuthorizationCanceled(address,bytes32)")

BALANCE_OF = keccak256(b"balanceOf(address)")[:4]
AUTHORIZATION_STATE = keccak256(b"authorizationState(address,bytes32)")[:4]

# EVM opcodes the multicall's creation code uses.
_PUSH1, _PUSH2, _PUSH20 = 0x60, 0x61, 0x73
_CODECOPY, _GAS, _STATICCALL, _ISZERO, _JUMPI, _JUMPDEST = 0x39, 0x5A, 0xFA, 0x15, 0x57, 0x5B
_RETURNDATASIZE, _GT, _RETURN, _DUP1, _REVERT = 0x3D, 0x11, 0xF3, 0x80, 0xFD
_PER_CALL_CODE = 47  # bytes of code per call (see `_multicall_code`)
_HEAD_CODE = 9  # PUSH2 size, PUSH2 offset, PUSH1 0, CODECOPY
_TAIL_CODE = 7  # PUSH2 size, PUSH2 offset, RETURN


@dataclass(frozen=True, slots=True)
class UsedNonce:
    """An EIP-3009 nonce the token marked used (or canceled) in block `block_number`."""

    authorizer: str
    nonce: bytes
    block_number: int
    canceled: bool


def call_many(chain: Chain, calls: Sequence[tuple[str, bytes]], *, block: int) -> list[bytes]:
    """The first 32-byte word each ``(contract, calldata)`` answers, all read in one
    ``eth_call`` on block number `block`. `ChainError` if any call reverts or answers
    less than a word."""
    if not 1 <= len(calls) <= MAX_CALLS:
        raise ChainError(f"call_many takes 1 to {MAX_CALLS} calls")
    if not isinstance(block, int) or isinstance(block, bool) or block < 0:
        raise ChainError("a block number is a whole number")
    code = _multicall_code([(check_address(to, "contract"), data) for to, data in calls])
    params: dict[str, Any] = {"data": code}
    sender = getattr(chain, "_call_sender", None)  # the local chain's funded caller
    if sender is not None:
        params["from"] = sender
    try:
        answer = bytes(chain._rpc(lambda w3: w3.eth.call(cast(Any, params), block)))
    except TransactionReverted:
        raise ChainError(
            "a read of the view reverted (a call failed or answered no word)"
        ) from None
    if len(answer) != WORD * len(calls):
        raise ChainError(f"the batched read answered {len(answer)} bytes, not {WORD * len(calls)}")
    return [answer[i : i + WORD] for i in range(0, len(answer), WORD)]


def token_reads(
    chain: Chain, token: str, payer: str, nonces: Sequence[bytes], *, block: int, balance: bool
) -> tuple[int | None, list[bool]]:
    """`payer`'s balance of `token` (if `balance`) and whether each of its `nonces` is used
    or canceled (``authorizationState``), as of block `block`, in one request."""
    owner = bytes.fromhex(check_address(payer, "payer")[2:]).rjust(WORD, b"\0")
    calls = [(token, AUTHORIZATION_STATE + owner + check_nonce(nonce)) for nonce in nonces]
    if balance:
        calls.insert(0, (token, BALANCE_OF + owner))
    words = call_many(chain, calls, block=block)
    held = int.from_bytes(words.pop(0), "big") if balance else None
    return held, [int.from_bytes(word, "big") != 0 for word in words]


def authorization_events(
    chain: Chain, token: str, *, from_block: int, to_block: int
) -> list[UsedNonce]:
    """The token's AuthorizationUsed and AuthorizationCanceled events in
    [from_block, to_block]."""
    address = check_address(token, "token address")
    if _in_process(chain):
        return _local_events(chain, address, max(0, from_block), to_block)
    topics = [["0x" + AUTHORIZATION_USED_TOPIC.hex(), "0x" + AUTHORIZATION_CANCELED_TOPIC.hex()]]
    found: list[UsedNonce] = []
    start = max(0, from_block)
    while start <= to_block:
        end = min(to_block, start + LOG_BLOCK_RANGE - 1)
        query = {"address": address, "fromBlock": start, "toBlock": end, "topics": topics}
        found.extend(_decoded(chain, query))
        start = end + 1
    return found


def _in_process(chain: Chain) -> bool:
    """Whether `chain` is paywire's in-process chain (eth-tester with py-evm)."""
    return getattr(chain, "_backend", None) is not None and hasattr(chain, "_tester")


def _local_events(chain: Chain, address: str, from_block: int, to_block: int) -> list[UsedNonce]:
    """`authorization_events` read from py-evm's own blocks and receipts: eth-tester's
    ``eth_getLogs`` finds each receipt by scanning back from the head, so a range far from
    it costs the square of the chain's length; this costs the range's length."""
    wanted = bytes.fromhex(address[2:])
    topics = {
        int.from_bytes(AUTHORIZATION_USED_TOPIC, "big"): False,
        int.from_bytes(AUTHORIZATION_CANCELED_TOPIC, "big"): True,
    }
    found: list[UsedNonce] = []
    with chain._lock:
        evm: Any = chain._backend.chain  # type: ignore[attr-defined]
        last = min(to_block, int(evm.get_canonical_head().block_number))
        for number in range(from_block, last + 1):
            block = evm.get_canonical_block_by_number(number)
            if not block.transactions:
                continue
            for receipt in block.get_receipts(evm.chaindb):
                for log in receipt.logs:
                    if log.address != wanted or len(log.topics) != 3:
                        continue
                    canceled = topics.get(log.topics[0])
                    if canceled is None:
                        continue
                    found.append(
                        UsedNonce(
                            authorizer=to_checksum_address(log.topics[1].to_bytes(32, "big")[12:]),
                            nonce=log.topics[2].to_bytes(32, "big"),
                            block_number=number,
                            canceled=canceled,
                        )
                    )
    return found


def _decoded(chain: Chain, query: dict[str, Any]) -> list[UsedNonce]:
    raw = chain._rpc(lambda w3: w3.eth.get_logs(cast(Any, query)))
    return [event for event in map(_used_nonce, raw) if event is not None]


def block_timestamp(chain: Chain, number: int) -> int:
    """The timestamp of block `number` (unix seconds)."""
    block = chain._rpc(lambda w3: w3.eth.get_block(number))
    return int(block["timestamp"])


def _used_nonce(raw: Any) -> UsedNonce | None:
    topics = [bytes(topic) for topic in raw["topics"]]
    if len(topics) != 3 or topics[0] not in (
        AUTHORIZATION_USED_TOPIC,
        AUTHORIZATION_CANCELED_TOPIC,
    ):
        return None
    return UsedNonce(
        authorizer=to_checksum_address(topics[1][12:]),
        nonce=topics[2],
        block_number=int(raw["blockNumber"]),
        canceled=topics[0] == AUTHORIZATION_CANCELED_TOPIC,
    )


def _multicall_code(calls: Sequence[tuple[str, bytes]]) -> bytes:
    """Creation code that STATICCALLs each (target, calldata), reverts if one fails or
    answers less than a word, and returns the first word of each answer.

    Memory: the calldata, copied from the end of the code, from 0; the answers after it.
    """
    data = b"".join(calldata for _, calldata in calls)
    out = -(-len(data) // WORD) * WORD
    code_length = _HEAD_CODE + _PER_CALL_CODE * len(calls) + _TAIL_CODE
    fail = code_length  # the JUMPDEST after RETURN
    data_offset = code_length + 5  # JUMPDEST, PUSH1 0, DUP1, REVERT
    if data_offset + len(data) > 0xFFFF or out + WORD * len(calls) > 0xFFFF:
        raise ChainError("the batched read is too large")
    program = bytearray(
        [_PUSH2, *_u16(len(data)), _PUSH2, *_u16(data_offset), _PUSH1, 0, _CODECOPY]
    )
    start = 0
    for index, (target, calldata) in enumerate(calls):
        program += bytes([_PUSH1, WORD, _PUSH2, *_u16(out + WORD * index)])
        program += bytes([_PUSH2, *_u16(len(calldata)), _PUSH2, *_u16(start)])
        program += bytes([_PUSH20]) + bytes.fromhex(target[2:])
        program += bytes([_GAS, _STATICCALL, _ISZERO, _PUSH2, *_u16(fail), _JUMPI])
        program += bytes([_RETURNDATASIZE, _PUSH1, WORD, _GT, _PUSH2, *_u16(fail), _JUMPI])
        start += len(calldata)
    program += bytes([_PUSH2, *_u16(WORD * len(calls)), _PUSH2, *_u16(out), _RETURN])
    assert len(program) == fail
    program += bytes([_JUMPDEST, _PUSH1, 0, _DUP1, _REVERT])
    return bytes(program) + data


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "big")
