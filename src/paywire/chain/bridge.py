"""A JSON-RPC bridge: serve an in-process `LocalChain` over HTTP, as an Ethereum node would.

The local chain lives in one process's memory; `paywire serve` mounts this bridge so CLI
commands, the official x402 SDK and wallets in other processes reach that chain as an
`RpcChain` (or any web3 ``HTTPProvider``). It answers the methods a client needs to read
state, simulate, estimate and send signed transactions, and no more: no unlocked accounts
(``eth_sendTransaction``), no test controls (time travel, snapshots), no filters.

Results are rendered as JSON-RPC renders them: quantities as 0x-hex, byte strings as
0x-hex, camelCase keys. A revert is error code 3, ``execution reverted: <reason>``, with
the ``Error(string)`` payload as ``data``, as geth answers. Requests and batches are bounded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import anyio.to_thread
from eth_abi.abi import encode as abi_encode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paywire import _json
from paywire.chain.base._failures import ERROR_STRING_SELECTOR
from paywire.chain.local import LocalChain, dev_key
from paywire.chain.rpc import DEMO_METHOD

MAX_RPC_BODY_BYTES = 1024 * 1024
"""A request body past this is refused: the largest legitimate one, deploying the token
as a raw transaction, is ~12 KB of hex."""

MAX_RPC_BATCH = 100
"""Calls per JSON-RPC batch (geth's default limit is 1000; our clients send a handful)."""

MAX_METHOD_CHARS = 64
"""A method name past this is not one we serve; refuse before looking it up."""

MAX_ERROR_CHARS = 300
"""Error messages are cut here: enough to act on, never a dump of the request."""

DEFAULT_RPC_PATH = "/rpc"

ALLOWED_METHODS = frozenset(
    {
        "eth_chainId",
        "net_version",
        "web3_clientVersion",
        "eth_blockNumber",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_getBalance",
        "eth_getCode",
        "eth_getStorageAt",
        "eth_getTransactionCount",
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
        "eth_call",
        "eth_estimateGas",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_feeHistory",
        "eth_getLogs",
        "eth_sendRawTransaction",
        "eth_syncing",
        "eth_accounts",
    }
)
"""What the bridge answers (plus `DEMO_METHOD`); anything else is 'method not found'."""

# JSON-RPC error codes (the spec's, and geth's 3 for a revert).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
SERVER_ERROR = -32000
EXECUTION_REVERTED = 3

_QUANTITY_FIELDS = frozenset(
    {"value", "gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "nonce", "chainId"}
)
_SNAKE = re.compile(r"_([a-z])")
_HEX_QUANTITY = re.compile(r"0x[0-9a-fA-F]{1,64}")
_CALL_METHODS = frozenset({"eth_call", "eth_estimateGas"})
_CALL_SENDER = dev_key(0).address
# eth-tester charges an eth_call's gas to its sender, where geth charges nobody: a call
# that names no sender runs from a funded development account.
_LOGS_BLOOM_BYTES = 256


def rpc_route(chain: LocalChain, path: str = DEFAULT_RPC_PATH, *, demo: bool = True) -> Route:
    """A Starlette route answering JSON-RPC for `chain` at `path` (POST).

    With `demo` (the default) the bridge tells clients that this is paywire's local demo
    chain (`DEMO_METHOD`), so an `RpcChain` on it allows the faucet; without, it passes for
    an ordinary chain.
    """

    async def endpoint(request: Request) -> Response:
        return await _handle(chain, request, demo)

    return Route(path, endpoint, methods=["POST"])


def rpc_bridge(chain: LocalChain, *, path: str = DEFAULT_RPC_PATH, demo: bool = True) -> Starlette:
    """A small ASGI app serving `chain` over JSON-RPC at `path` (e.g. for uvicorn)."""
    return Starlette(routes=[rpc_route(chain, path, demo=demo)])


async def _handle(chain: LocalChain, request: Request, demo: bool) -> Response:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_RPC_BODY_BYTES):
        return _error_response(None, INVALID_REQUEST, "request body too large", status=413)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_RPC_BODY_BYTES:
            return _error_response(None, INVALID_REQUEST, "request body too large", status=413)
    try:
        payload = _json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _error_response(None, PARSE_ERROR, "parse error: the body is not JSON")
    if isinstance(payload, list):
        if not 1 <= len(payload) <= MAX_RPC_BATCH:
            return _error_response(
                None, INVALID_REQUEST, f"a batch holds 1 to {MAX_RPC_BATCH} calls"
            )
        answers = [await _answer(chain, item, demo) for item in payload]
        return JSONResponse(answers)
    return JSONResponse(await _answer(chain, payload, demo))


async def _answer(chain: LocalChain, call: object, demo: bool) -> dict[str, Any]:
    if not isinstance(call, dict):
        return _error(None, INVALID_REQUEST, "a call is a JSON object")
    call_id = call.get("id")
    if not (call_id is None or isinstance(call_id, str | int)) or isinstance(call_id, bool):
        return _error(None, INVALID_REQUEST, "id must be a string, a number or null")
    if isinstance(call_id, str) and len(call_id) > MAX_METHOD_CHARS:
        return _error(None, INVALID_REQUEST, "id is too long")
    method = call.get("method")
    params = call.get("params", [])
    if call.get("jsonrpc") != "2.0" or not isinstance(method, str):
        return _error(call_id, INVALID_REQUEST, 'a call needs "jsonrpc": "2.0" and a method')
    if not isinstance(params, list):
        return _error(call_id, INVALID_PARAMS, "params must be an array")
    if method == DEMO_METHOD and demo:
        return {"jsonrpc": "2.0", "id": call_id, "result": True}
    if len(method) > MAX_METHOD_CHARS or method not in ALLOWED_METHODS:
        shown = method[:MAX_METHOD_CHARS]
        return _error(call_id, METHOD_NOT_FOUND, f"the method {shown!r} is not served here")
    try:
        params = _inbound(method, params)
    except ValueError as bad:
        return _error(call_id, INVALID_PARAMS, str(bad))
    try:
        response = await anyio.to_thread.run_sync(chain.rpc_request, method, params)
    except Exception as error:  # eth-tester raises many types; each becomes a JSON-RPC error
        return _failure(call_id, error)
    if "error" in response:
        problem = response["error"]
        message = str(problem.get("message", "error") if isinstance(problem, Mapping) else problem)
        return _error(call_id, SERVER_ERROR, message)
    return {"jsonrpc": "2.0", "id": call_id, "result": _outbound(response.get("result"))}


def _inbound(method: str, params: list[Any]) -> list[Any]:
    """Shape params the way eth-tester takes them: quantities in transaction objects as
    ints, and a funded sender for calls that name none."""
    if method in _CALL_METHODS and params:
        transaction = params[0]
        if not isinstance(transaction, dict):
            raise ValueError("the first parameter must be a transaction object")
        shaped = dict(transaction)
        for key in _QUANTITY_FIELDS & shaped.keys():
            shaped[key] = _quantity(shaped[key], key)
        shaped.setdefault("from", _CALL_SENDER)
        return [shaped, *params[1:]]
    return params


def _quantity(value: object, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and _HEX_QUANTITY.fullmatch(value):
        return int(value, 16)
    raise ValueError(f"{name} must be a 0x-hex quantity of at most 256 bits")


def _outbound(value: object, key: str = "") -> Any:
    """A result as JSON-RPC writes it."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if key == "logsBloom":
            return "0x" + value.to_bytes(_LOGS_BLOOM_BYTES, "big").hex()
        return hex(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "0x" + bytes(value).hex()
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for name, item in value.items():
            camel = _SNAKE.sub(lambda match: match.group(1).upper(), str(name))
            if camel == "stateRoot" and "transactionHash" in value:
                continue  # eth-tester's receipt field; post-Byzantium receipts have none
            if camel == "data" and "nonce" in value and "gas" in value:
                camel = "input"  # a transaction object inside a full block
            out[camel] = _outbound(item, camel)
        return out
    if isinstance(value, list | tuple):
        return [_outbound(item) for item in value]
    return str(value)


def _failure(call_id: object, error: Exception) -> dict[str, Any]:
    message = str(error.args[0] if error.args else error)
    if type(error).__name__ == "TransactionFailed":
        reason = message.removeprefix("execution reverted:").strip()
        if reason == "execution reverted":
            reason = ""
        data = ERROR_STRING_SELECTOR + abi_encode(["string"], [reason]) if reason else b""
        text = f"execution reverted: {reason}" if reason else "execution reverted"
        return _error(call_id, EXECUTION_REVERTED, text, data="0x" + data.hex())
    return _error(call_id, SERVER_ERROR, f"{type(error).__name__}: {message}")


def _error(call_id: object, code: int, message: str, *, data: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message[:MAX_ERROR_CHARS]}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": call_id, "error": error}


def _error_response(call_id: object, code: int, message: str, *, status: int = 200) -> Response:
    return JSONResponse(_error(call_id, code, message), status_code=status)
