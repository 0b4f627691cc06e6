"""EVM networks as x402 names them: CAIP-2 ``eip155:<chainId>`` (version 2) and the names
of version 1 (``base-sepolia``), with paywire's local chain among them."""

from __future__ import annotations

from collections.abc import Mapping

SCHEME = "exact"
NETWORK_PREFIX = "eip155:"

PAYWIRE_LOCAL_CHAIN_ID = 131277322940537
"""paywire's in-process chain (`paywire.chain.LOCAL_CHAIN_ID`, eth-tester's fixed id),
repeated here so this module does not import web3."""

PAYWIRE_LOCAL_V1_NAME = "paywire-local"
"""The x402 version 1 network name of paywire's local chain (v1 names networks instead of
giving CAIP-2 ids; x402 has no name for this chain, so paywire picks this one)."""

V1_NETWORKS: Mapping[str, int] = {
    "base": 8453,
    "base-sepolia": 84532,
    "ethereum": 1,
    "polygon": 137,
    "polygon-amoy": 80002,
    "avalanche": 43114,
    "avalanche-fuji": 43113,
    "abstract": 2741,
    "abstract-testnet": 11124,
    "iotex": 4689,
    "sei": 1329,
    "sei-testnet": 1328,
    "peaq": 3338,
    "story": 1513,
    "educhain": 656476,
    "skale-base-sepolia": 1444673419,
    "megaeth": 4326,
    "monad": 143,
    "monad-testnet": 10143,
    "stable": 988,
    "stable-testnet": 2201,
    "celo": 42220,
    "flare": 14,
    PAYWIRE_LOCAL_V1_NAME: PAYWIRE_LOCAL_CHAIN_ID,
}
"""x402 version 1 network names and their chain ids: the official SDK's table
(``x402.mechanisms.evm.v1.constants``, copied because importing it loads web3) and
paywire's local chain."""

MAX_CHAIN_ID = 2**53 - 1
"""Chain ids fit a JSON number (as `RpcChain` requires)."""


def is_evm_network(network: str) -> bool:
    """Whether `network` is a CAIP-2 EVM network (``eip155:<chainId>``)."""
    return evm_chain_id(network) is not None


def evm_chain_id(network: str) -> int | None:
    """The chain id of ``eip155:<chainId>`` (None for anything else)."""
    if not network.startswith(NETWORK_PREFIX):
        return None
    digits = network[len(NETWORK_PREFIX) :]
    if not digits.isdigit() or not digits.isascii() or len(digits) > 16 or digits[0] == "0":
        return None
    chain_id = int(digits)
    return chain_id if chain_id <= MAX_CHAIN_ID else None


def network_from_v1(name: str) -> str | None:
    """The CAIP-2 network of an x402 version 1 network name (``base-sepolia`` ->
    ``eip155:84532``), or None if the name is not one paywire knows."""
    chain_id = V1_NETWORKS.get(name)
    return None if chain_id is None else f"{NETWORK_PREFIX}{chain_id}"


def v1_network_name(network: str) -> str | None:
    """The x402 version 1 name of a CAIP-2 EVM network, if it has one."""
    chain_id = evm_chain_id(network)
    return next((name for name, known in V1_NETWORKS.items() if known == chain_id), None)
