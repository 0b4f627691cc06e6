"""`RpcChain`: any EVM chain behind a JSON-RPC endpoint over HTTP(S).

A production chain (Base, a testnet, ganache) or paywire's local chain hosted by
`paywire serve` through the bridge (`paywire.chain.bridge`). The endpoint's chain id is
read once and checked against the one configured, so a key never signs for the wrong chain.
"""

from __future__ import annotations

import re

from web3 import HTTPProvider, Web3

from paywire.chain.base._chain import DEFAULT_RECEIPT_TIMEOUT_S, Chain
from paywire.chain.errors import ChainError, ChainIdMismatch
from paywire.crypto import PrivateKey

RPC_TIMEOUT_S = 10.0
"""One JSON-RPC request's time limit: a healthy endpoint answers in milliseconds."""

MAX_URL_CHARS = 2048
"""An endpoint URL past this is a mistake (or a secret pasted in the wrong place)."""

MAX_CHAIN_ID = 2**53 - 1
"""Chain ids must fit a JSON number for wallets (EIP-2294 bounds them further)."""

DEMO_METHOD = "paywire_demo"
"""The JSON-RPC method the bridge answers with true; any other endpoint does not know it."""

_URL = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?")


class RpcChain(Chain):
    """An EVM chain at `url` (http or https).

    `chain_id`, when given, must be the endpoint's; `signer` is the key that pays for gas
    by default (the facilitator's or operator's key). `confirmations` is the depth `wait`
    requires by default.
    """

    def __init__(
        self,
        url: str,
        chain_id: int | None = None,
        *,
        signer: PrivateKey | None = None,
        confirmations: int = 1,
        receipt_timeout_s: float = DEFAULT_RECEIPT_TIMEOUT_S,
        request_timeout_s: float = RPC_TIMEOUT_S,
    ) -> None:
        if not isinstance(url, str) or len(url) > MAX_URL_CHARS or not _URL.fullmatch(url):
            raise ChainError(
                "an RPC endpoint is an http:// or https:// URL, e.g. http://127.0.0.1:4020/rpc"
            )
        if chain_id is not None and (
            not isinstance(chain_id, int)
            or isinstance(chain_id, bool)
            or not 1 <= chain_id <= MAX_CHAIN_ID
        ):
            raise ChainError(f"a chain id is an integer from 1 to {MAX_CHAIN_ID}")
        if not 0 < request_timeout_s <= 600:
            raise ChainError("request_timeout_s must be in (0, 600] seconds")
        self.url = url
        provider = HTTPProvider(url, request_kwargs={"timeout": request_timeout_s})
        w3 = Web3(provider, middleware=[])
        probe = Chain(
            w3, chain_id=chain_id or 1, demo=False, confirmations=1, receipt_timeout_s=1.0
        )
        actual = int(probe._rpc(lambda w3: w3.eth.chain_id))
        if chain_id is not None and actual != chain_id:
            raise ChainIdMismatch(
                f"the endpoint serves chain {actual}, not the configured {chain_id}; "
                "check the RPC URL and the chain id"
            )
        super().__init__(
            w3,
            chain_id=actual,
            demo=_is_demo(probe),
            confirmations=confirmations,
            receipt_timeout_s=receipt_timeout_s,
        )
        self._signer = signer
        # paywire's bridged local chain runs the gas rules paywire measured its bounds on.
        self.known_gas_rules = self.is_demo

    def default_signer(self) -> PrivateKey:
        if self._signer is None:
            return super().default_signer()
        return self._signer

    def __repr__(self) -> str:
        # The URL may carry an API key in its path or query: show only scheme and host.
        host = self.url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
        return f"RpcChain({self.network} at {self.url.split(':', 1)[0]}://{host})"


def _is_demo(chain: Chain) -> bool:
    """Whether the endpoint is paywire's bridge to a local demo chain."""
    try:
        answer = chain._rpc(lambda w3: w3.provider.make_request(DEMO_METHOD, []))  # type: ignore[arg-type]
    except ChainError:
        return False
    return isinstance(answer, dict) and answer.get("result") is True
