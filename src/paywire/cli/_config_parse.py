"""The checks behind `paywire.cli.config.parse_config`: a parsed TOML document, key by
key, into a `ServeConfig`, or a `ConfigError` naming the key and the fix."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from paywire.cli.config import (
    DEFAULT_CONFIRMATIONS,
    MAX_BLOCK,
    MAX_CHAIN_ID,
    MAX_CHAINS,
    MAX_CONFIRMATIONS,
    MAX_NAME_CHARS,
    MAX_TOKENS_PER_CHAIN,
    MAX_URL_CHARS,
    ChainConfig,
    ConfigError,
    DepositsConfig,
    ServeConfig,
    TokenConfig,
)
from paywire.crypto.keys import parse_address
from paywire.crypto.keystore import KEY_NAME
from paywire.errors import PaywireError
from paywire.money import Asset

_SECTIONS = ("ledger", "facilitator", "chains", "deposits")
_LEDGER_KEYS = ("url",)
_FACILITATOR_KEYS = ("key",)
_CHAIN_KEYS = ("name", "rpc_url", "chain_id", "tokens", "confirmations")
_TOKEN_KEYS = ("address", "asset")
_DEPOSITS_KEYS = ("chain_id", "token", "from_block")

_RAW_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_SECRET_NAMES = frozenset(
    {
        "private_key",
        "privatekey",
        "private-key",
        "secret",
        "secret_key",
        "signing_key",
        "mnemonic",
        "seed",
        "seed_phrase",
    }
)
_PASSPHRASE_NAMES = frozenset({"passphrase", "password"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._:/()-]*")


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> ConfigError:
        return ConfigError.at(self.path, where, problem)

    def config(self, document: dict[str, Any]) -> ServeConfig:
        self.no_secrets(document, "")
        self.known(
            document,
            "",
            _SECTIONS,
            "sections are [ledger], [facilitator], [[chains]] and [deposits]",
        )
        ledger = self.table(document, "ledger")
        facilitator = self.table(document, "facilitator")
        deposits = self.table(document, "deposits")
        chains = self.chains(document.get("chains"))
        return ServeConfig(
            path=self.path,
            ledger_url=self.ledger_url(ledger) if ledger is not None else None,
            facilitator_key=self.facilitator_key(facilitator) if facilitator is not None else None,
            chains=chains,
            deposits=self.deposits(deposits, chains) if deposits is not None else None,
        )

    # ----- shape checks ------------------------------------------------------------------

    def no_secrets(self, value: object, where: str) -> None:
        """Refuse private keys and passphrases anywhere in the file, before anything else
        (and never repeat them in the message)."""
        if isinstance(value, Mapping):
            for name, item in value.items():
                shown = str(name)[:MAX_NAME_CHARS]
                here = f"{where}.{shown}" if where else shown
                lowered = str(name).lower()
                if lowered in _SECRET_NAMES:
                    raise self.fail(here, _NO_KEYS)
                if lowered in _PASSPHRASE_NAMES:
                    raise self.fail(
                        here,
                        "a passphrase does not belong in the config: give it with "
                        "--passphrase-file or $PAYWIRE_PASSPHRASE",
                    )
                self.no_secrets(item, here)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.no_secrets(item, f"{where}[{index}]")
        elif isinstance(value, str) and _RAW_KEY.fullmatch(value.strip()):
            raise self.fail(where, "this looks like a raw private key; " + _NO_KEYS)

    def known(
        self, table: Mapping[str, Any], where: str, keys: tuple[str, ...], hint: str = ""
    ) -> None:
        for name in table:
            if name not in keys:
                shown = name if len(name) <= MAX_NAME_CHARS else name[:MAX_NAME_CHARS] + "..."
                here = f"{where}.{shown}" if where else shown
                allowed = hint or "keys here are " + ", ".join(keys)
                raise self.fail(here, f"unknown key; the {allowed} (check the spelling)")

    def table(self, document: Mapping[str, Any], name: str) -> dict[str, Any] | None:
        value = document.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(name, f"must be a table: write it as a [{name}] section")
        return value

    def required(self, table: Mapping[str, Any], where: str, name: str, example: str) -> object:
        if name not in table:
            raise self.fail(f"{where}.{name}", f"missing; add e.g. {name} = {example}")
        return table[name]

    def integer(self, value: object, where: str, low: int, high: int, example: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(
                where, f"must be an integer, not {_kind(value)}; write it unquoted, e.g. {example}"
            )
        if not low <= value <= high:
            raise self.fail(where, f"must be from {low} to {high}, not {value}")
        return value

    def text(self, value: object, where: str, example: str) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"must be a string, not {_kind(value)}; e.g. {example}")
        return value

    def address(self, value: object, where: str) -> str:
        text = self.text(value, where, '"0x036CbD53842c5426634e7929541eC2318f3dCF7e"')
        try:
            return parse_address(text)
        except PaywireError as error:
            raise self.fail(where, str(error)) from None

    # ----- sections ----------------------------------------------------------------------

    def ledger_url(self, ledger: Mapping[str, Any]) -> str | None:
        self.known(ledger, "ledger", _LEDGER_KEYS)
        if "url" not in ledger:
            return None
        url = self.text(ledger["url"], "ledger.url", '"sqlite:///books.db"').strip()
        if (
            not url
            or len(url) > MAX_URL_CHARS
            or any(c.isspace() or not c.isprintable() for c in url)
        ):
            raise self.fail(
                "ledger.url",
                f"must be sqlite:///path, postgresql://... or a path, at most {MAX_URL_CHARS} "
                "characters without spaces",
            )
        if url.startswith(("postgresql://", "postgres://")):
            return url
        if "://" in url and not url.startswith("sqlite:///"):
            raise self.fail(
                "ledger.url", "unknown URL scheme; use sqlite:///path, postgresql://... or a path"
            )
        # A relative path is relative to the config file, not to where serve was started.
        file = Path(url.removeprefix("sqlite:///")).expanduser()
        if not file.is_absolute():
            file = self.path.parent.absolute() / file
        return f"sqlite:///{file}"

    def facilitator_key(self, facilitator: Mapping[str, Any]) -> str | None:
        self.known(facilitator, "facilitator", _FACILITATOR_KEYS)
        if "key" not in facilitator:
            return None
        name = self.text(facilitator["key"], "facilitator.key", '"operator"')
        if not KEY_NAME.fullmatch(name):
            raise self.fail(
                "facilitator.key",
                "must be a wallet name in the keystore (1-64 lower-case letters, digits, "
                "'.', '_' or '-'), e.g. \"operator\"",
            )
        return name

    def chains(self, value: object) -> tuple[ChainConfig, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.fail("chains", "must be an array of tables: write each as [[chains]]")
        if len(value) > MAX_CHAINS:
            raise self.fail("chains", f"at most {MAX_CHAINS} chains")
        chains = tuple(self.chain(item, index) for index, item in enumerate(value))
        seen: dict[int, int] = {}
        for chain in chains:
            first = seen.setdefault(chain.chain_id, chain.index)
            if first != chain.index:
                raise self.fail(
                    f"{chain.where}.chain_id",
                    f"chain {chain.chain_id} is already chains[{first}]; give one entry per "
                    "chain (list all its tokens there)",
                )
        return chains

    def chain(self, table: Mapping[str, Any], index: int) -> ChainConfig:
        where = f"chains[{index}]"
        self.known(table, where, _CHAIN_KEYS)
        rpc_url = self.rpc_url(
            self.required(table, where, "rpc_url", '"https://sepolia.base.org"'), where
        )
        chain_id = self.integer(
            self.required(table, where, "chain_id", "84532"),
            f"{where}.chain_id",
            1,
            MAX_CHAIN_ID,
            "chain_id = 84532",
        )
        tokens = self.tokens(self.required(table, where, "tokens", '["0x..."]'), where)
        confirmations = self.integer(
            table.get("confirmations", DEFAULT_CONFIRMATIONS),
            f"{where}.confirmations",
            1,
            MAX_CONFIRMATIONS,
            "confirmations = 2 (1 is the block that includes the transaction)",
        )
        name = None
        if "name" in table:
            name = self.text(table["name"], f"{where}.name", '"base-sepolia"')
            if len(name) > MAX_NAME_CHARS or not _NAME.fullmatch(name):
                raise self.fail(
                    f"{where}.name",
                    f'1-{MAX_NAME_CHARS} letters, digits, spaces and ._:/()- , e.g. "base"',
                )
        return ChainConfig(rpc_url, chain_id, tokens, confirmations, name, index)

    def rpc_url(self, value: object, where: str) -> str:
        here = f"{where}.rpc_url"
        url = self.text(value, here, '"https://sepolia.base.org"')
        problem = _url_problem(url)
        if problem:
            # Never echo the URL: it may carry an API key.
            raise self.fail(here, f"{problem}; write an http:// or https:// node URL")
        return url

    def tokens(self, value: object, where: str) -> tuple[TokenConfig, ...]:
        here = f"{where}.tokens"
        if not isinstance(value, list) or not value:
            raise self.fail(here, 'must be a non-empty list, e.g. tokens = ["0x..."]')
        if len(value) > MAX_TOKENS_PER_CHAIN:
            raise self.fail(here, f"at most {MAX_TOKENS_PER_CHAIN} tokens per chain")
        tokens: list[TokenConfig] = []
        for index, item in enumerate(value):
            at = f"{here}[{index}]"
            if isinstance(item, dict):
                self.known(item, at, _TOKEN_KEYS)
                address = self.address(
                    self.required(item, at, "address", '"0x..."'), f"{at}.address"
                )
                asset = None
                if "asset" in item:
                    asset = self.text(item["asset"], f"{at}.asset", '"USDC"')
                    try:
                        Asset(asset, 0)
                    except PaywireError:
                        raise self.fail(
                            f"{at}.asset",
                            "an asset code is 1-12 upper-case letters or digits, starting "
                            'with a letter, e.g. "USDC"',
                        ) from None
                token = TokenConfig(address, asset)
            elif isinstance(item, str):
                token = TokenConfig(self.address(item, at))
            else:
                raise self.fail(
                    at,
                    'must be an address or {address = "0x...", asset = "USDC"}, '
                    f"not {_kind(item)}",
                )
            if any(known.address == token.address for known in tokens):
                raise self.fail(at, f"token {token.address} is listed twice; list it once")
            tokens.append(token)
        return tuple(tokens)

    def deposits(self, table: Mapping[str, Any], chains: tuple[ChainConfig, ...]) -> DepositsConfig:
        self.known(table, "deposits", _DEPOSITS_KEYS)
        chain_id = self.integer(
            self.required(table, "deposits", "chain_id", "84532"),
            "deposits.chain_id",
            1,
            MAX_CHAIN_ID,
            "chain_id = 84532",
        )
        chain = next((chain for chain in chains if chain.chain_id == chain_id), None)
        if chain is None:
            raise self.fail(
                "deposits.chain_id",
                f"no [[chains]] entry has chain_id = {chain_id}; deposits are watched on a "
                "configured chain",
            )
        token = self.address(self.required(table, "deposits", "token", '"0x..."'), "deposits.token")
        if all(known.address != token for known in chain.tokens):
            raise self.fail(
                "deposits.token",
                f"{token} is not in {chain.where}.tokens; add it there or fix the address",
            )
        from_block = self.integer(
            self.required(table, "deposits", "from_block", "12000000"),
            "deposits.from_block",
            0,
            MAX_BLOCK,
            "from_block = 12000000 (the block the reserve started receiving deposits)",
        )
        return DepositsConfig(chain_id, token, from_block)


_NO_KEYS = (
    "never put a private key in the config: import it into the keystore "
    '(`paywire wallet import NAME`) and write [facilitator] key = "NAME"'
)


def _url_problem(url: str) -> str | None:
    if not url or len(url) > MAX_URL_CHARS:
        return f"must be 1 to {MAX_URL_CHARS} characters"
    if any(c.isspace() or not c.isprintable() for c in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a malformed port)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    return None


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a number with a fraction" if math.isfinite(value) else "not a number"
    names = {str: "a string", int: "an integer", list: "a list", dict: "a table"}
    return names.get(type(value), "a date or time")
