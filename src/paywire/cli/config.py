"""The operator's config file (TOML): the ledger, the facilitator's key, JSON-RPC chains.

    [ledger]
    url = "postgresql://paywire@db.internal/paywire"   # optional

    [facilitator]
    key = "operator"              # a wallet name in the keystore, never a key

    [[chains]]
    name = "base-sepolia"         # optional, shown in the banner
    rpc_url = "https://sepolia.base.org"
    chain_id = 84532              # the node's eth_chainId must be this
    confirmations = 1             # optional, 1 (the including block) to 1000
    tokens = ["0x036CbD53842c5426634e7929541eC2318f3dCF7e"]   # or {address = ..., asset = "USDC"}

    [deposits]                    # optional: one reserve, watched for deposits
    chain_id = 84532
    token = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
    from_block = 12000000

`paywire serve` finds it with ``--config PATH``, else ``$PAYWIRE_CONFIG``, else runs
without one. Parsing is strict and needs no network: an unknown key, a wrong type, a bad
address or URL, a duplicate chain or a secret in the file is a `ConfigError` naming the
file, the key and what to do. Connecting to the nodes (chain id, token contracts) is
`paywire serve`'s step, with errors in the same form (`ConfigError.at`). The checks
themselves are `paywire.cli._config_parse`.

This lives in the CLI, not in `paywire.service`: a file, wallet names in the keystore and
errors that point into a file are the command line's edge. The service is built from
objects (a `Facilitator`, a `Ledger`, a `ChainDesk`), so an embedding program needs no file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from paywire.errors import InvalidInput

CONFIG_ENV = "PAYWIRE_CONFIG"
"""Environment variable naming the config file when ``--config`` is not given."""

MAX_CONFIG_BYTES = 64 * 1024
"""A config file past this is not a config file (a log, a key store, a database)."""

MAX_CHAINS = 32
"""``[[chains]]`` entries per file: one facilitator settling on more is a deployment problem."""

MAX_TOKENS_PER_CHAIN = 16
"""Tokens per chain: a chain has a handful of stablecoins worth accepting."""

MAX_URL_CHARS = 2048
"""An RPC or ledger URL past this is a mistake (as `RpcChain` bounds it)."""

MAX_NAME_CHARS = 64
"""A chain's display name."""

MAX_CONFIRMATIONS = 1000
"""The deepest confirmation count a chain accepts (`paywire.chain`'s bound)."""

MAX_CHAIN_ID = 2**53 - 1
"""Chain ids fit a JSON number (as `RpcChain` requires)."""

MAX_BLOCK = 2**63 - 1
"""A block number past this is not a block number."""

DEFAULT_CONFIRMATIONS = 1


class ConfigError(InvalidInput):
    """A config file that cannot be used: one line naming the file, the key and the fix."""

    code = "invalid_config"

    @classmethod
    def at(cls, path: Path, where: str, problem: str) -> ConfigError:
        """The error for key `where` (e.g. ``chains[0].chain_id``) of the file at `path`."""
        text = f"{path}: {where}: {problem}" if where else f"{path}: {problem}"
        return cls(" ".join(text.split()))  # one line, whatever the problem's text held


# ----- the parsed config -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenConfig:
    """A token a chain settles: its address (checksummed) and the ledger asset code it
    counts as (None: the token's own symbol)."""

    address: str
    asset: str | None = None


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """One ``[[chains]]`` entry: an EVM chain behind a JSON-RPC endpoint."""

    rpc_url: str
    chain_id: int
    tokens: tuple[TokenConfig, ...]
    confirmations: int = DEFAULT_CONFIRMATIONS
    name: str | None = None
    index: int = 0
    """Its position in the file (``chains[<index>]`` in error messages)."""

    @property
    def network(self) -> str:
        """The chain as a CAIP-2 network, as x402 names it."""
        return f"eip155:{self.chain_id}"

    @property
    def where(self) -> str:
        return f"chains[{self.index}]"

    def shown_url(self) -> str:
        """The endpoint without path, query or credentials (they may carry an API key)."""
        return shown_url(self.rpc_url)


@dataclass(frozen=True, slots=True)
class DepositsConfig:
    """``[deposits]``: the one token whose reserve (the facilitator's address) is watched
    for deposits, from which block."""

    chain_id: int
    token: str
    from_block: int


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """A parsed config file."""

    path: Path
    ledger_url: str | None = None
    facilitator_key: str | None = None
    chains: tuple[ChainConfig, ...] = ()
    deposits: DepositsConfig | None = None

    def error(self, where: str, problem: str) -> ConfigError:
        """A `ConfigError` pointing at key `where` of this file."""
        return ConfigError.at(self.path, where, problem)


# ----- finding and reading -----------------------------------------------------------------


def config_path(flag: str | Path | None) -> Path | None:
    """The config file to use: ``--config`` (`flag`), else ``$PAYWIRE_CONFIG``, else None."""
    if flag is not None and str(flag) != "":
        return Path(flag).expanduser()
    env = os.environ.get(CONFIG_ENV)
    return Path(env).expanduser() if env else None


def load_config(path: Path) -> ServeConfig:
    """Read and check the config file at `path` (no network: see `paywire serve`)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError.at(
            path, "", f"cannot read the config file ({reason}); check --config or ${CONFIG_ENV}"
        ) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError.at(path, "", f"larger than {MAX_CONFIG_BYTES // 1024} KiB: not a config")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError.at(path, "", "not UTF-8 text; save it as UTF-8") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> ServeConfig:
    """Check the TOML `text` of the config at `path` (used for messages and relative
    paths) and return it parsed."""
    # Imported here, not above: the parser builds this module's classes.
    from paywire.cli._config_parse import _Parser

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError.at(path, "", f"not valid TOML ({error}); fix the syntax there") from None
    return _Parser(path).config(document)


def shown_url(url: str) -> str:
    """`url` as safe to print: scheme and host (no credentials, path or query)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}" if parts.scheme and host else "(an endpoint)"
