"""How web3's failures become paywire's typed errors: a revert carries the contract's
reason (`TransactionReverted`), an endpoint that does not answer is `ChainUnavailable`,
anything else the chain refuses is a `ChainError`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception, Web3RPCError

from paywire.chain.errors import ChainError, ChainUnavailable, TransactionReverted

T = TypeVar("T")

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
"""``Error(string)``: how a revert with a reason is encoded."""

# Where the in-process chain's errors come from (eth-tester, py-evm, their eth_utils checks).
_LOCAL_CHAIN_MODULES = frozenset({"eth_tester", "eth", "eth_utils"})


def revert_reason_from_data(data: bytes) -> str:
    """The reason of an ``Error(string)`` revert payload ("" for any other payload)."""
    if len(data) < 4 + 64 or data[:4] != ERROR_STRING_SELECTOR:
        return ""
    from eth_abi.abi import decode as abi_decode

    try:
        (reason,) = abi_decode(["string"], data[4:])
    except Exception:  # eth_abi raises several decoding errors; any means "no reason"
        return ""
    return str(reason)


def _translate(operation: Callable[[], T]) -> T:
    try:
        return operation()
    except ChainError:
        raise
    except ContractLogicError as error:
        reason = _reason_text(error.message or str(error))
        if not reason and isinstance(error.data, str) and error.data.startswith("0x"):
            try:
                reason = revert_reason_from_data(bytes.fromhex(error.data[2:]))
            except ValueError:
                reason = ""
        raise TransactionReverted(_reverted(reason), reason=reason) from None
    except (TimeExhausted, OSError) as error:  # requests' errors are OSErrors
        raise ChainUnavailable(f"the chain's RPC endpoint did not answer: {error}") from None
    except Web3RPCError as error:
        message = str(error.message if error.message else error)
        if "revert" in message:
            reason = _reason_text(message)
            raise TransactionReverted(_reverted(reason), reason=reason) from None
        raise ChainError(f"the chain refused the request: {message[:300]}") from None
    except Web3Exception as error:
        raise ChainError(f"web3 error: {str(error)[:300]}") from None
    except Exception as error:
        # eth-tester (the in-process chain) raises its own TransactionFailed for reverts.
        if type(error).__name__ == "TransactionFailed":
            reason = _reason_text(str(error))
            raise TransactionReverted(_reverted(reason), reason=reason) from None
        if type(error).__module__.split(".", 1)[0] in _LOCAL_CHAIN_MODULES:
            message = str(error)
            if "cannot afford" in message:
                raise ChainError(
                    "the sender cannot pay for gas: fund it with the chain's native coin "
                    f"({message[:200]})"
                ) from None
            raise ChainError(f"the local chain refused the request: {message[:300]}") from None
        raise


def _reverted(reason: str) -> str:
    return f"execution reverted: {reason}" if reason else "execution reverted (no reason given)"


def _reason_text(message: str) -> str:
    """The contract's reason out of an RPC message such as 'execution reverted: x'."""
    text = message.strip()
    for prefix in ("execution reverted:", "execution reverted", "VM Exception while processing"):
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
            break
    if text.startswith("revert"):
        text = text[len("revert") :].strip()
    return text
