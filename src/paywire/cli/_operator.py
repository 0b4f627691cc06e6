"""The operator's service, built from a config without serving it.

`connect_chains` reaches the JSON-RPC chains of a config (`paywire.cli.config`);
`operator_service` builds the whole service (app, facilitator, reserves, banner) on one of
three kinds of chain (``local``, ``none``, ``rpc``, see `paywire.cli.serve`), so it can be
tested in process; `paywire serve` prints and serves it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from paywire.cli.config import ChainConfig, DepositsConfig, ServeConfig, shown_url
from paywire.errors import InvalidInput, PaywireError

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from paywire.chain import Chain, Reserve, Token
    from paywire.crypto.keys import PrivateKey
    from paywire.ledger import Ledger
    from paywire.money import Asset
    from paywire.protocol import Facilitator
    from paywire.service import ChainDesk
    from paywire.service.tasks import JudgeSource

WATCHER_STOP_S = 10.0
"""How long stopping waits for a deposit watcher's scan in flight."""

CHAIN_MODES = ("local", "none", "rpc")


@dataclass(frozen=True, slots=True)
class ConnectedChain:
    """A configured chain, reached: its node answered with the configured chain id and
    every token is a contract there. `assets` maps each token's address to its asset."""

    config: ChainConfig
    chain: Chain
    tokens: tuple[Token, ...]
    assets: dict[str, Asset]


@dataclass(slots=True)
class OperatorService:
    """Everything `paywire serve` runs: the ASGI `app`, its `facilitator`, the chain desk
    (deposits, withdrawals, faucet, reserves) if any, the reserves whose deposits are
    watched, and the banner lines describing it."""

    app: Starlette
    facilitator: Facilitator
    desk: ChainDesk | None
    banner: list[str]
    watched: list[Reserve] = field(default_factory=list)
    ledger: Ledger | None = None
    """Its ledger, whose due tasks a sweeper settles (releases, expiries) while serving."""

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Watch the reserves for deposits (one thread each) and sweep the tasks that are
        due (one thread) for the duration of the block."""
        from paywire.tasks import TaskBook
        from paywire.tasks.sweep import run_sweeper

        stop = threading.Event()
        threads = [
            threading.Thread(target=reserve.watch, args=(stop,), daemon=True)
            for reserve in self.watched
        ]
        if self.ledger is not None:
            book = TaskBook(self.ledger)
            threads.append(threading.Thread(target=run_sweeper, args=(book, stop), daemon=True))
        for thread in threads:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=WATCHER_STOP_S)


def connect_chains(config: ServeConfig) -> list[ConnectedChain]:
    """Reach every chain of `config`: check each node's chain id and read each token.
    A node that does not answer, serves another chain, or lacks a token is a
    `ConfigError` pointing at the key to fix."""
    return [_connect(config, chain) for chain in config.chains]


def _connect(config: ServeConfig, entry: ChainConfig) -> ConnectedChain:
    from paywire.chain import ChainError, ChainIdMismatch, ChainUnavailable
    from paywire.chain.rpc import RpcChain
    from paywire.money import KNOWN_ASSETS, Asset

    where, node = entry.where, shown_url(entry.rpc_url)
    try:
        chain = RpcChain(entry.rpc_url, entry.chain_id, confirmations=entry.confirmations)
    except ChainIdMismatch as error:
        raise config.error(f"{where}.chain_id", f"the node at {node}: {error}") from None
    except ChainUnavailable:
        # Not the error's text: it repeats the URL, whose path may hold an API key.
        raise config.error(
            f"{where}.rpc_url",
            f"the node at {node} did not answer; check the URL and that the node is up",
        ) from None
    except ChainError as error:
        raise config.error(
            f"{where}.rpc_url", f"the node at {node} cannot be used: {_scrub(error, entry)}"
        ) from None
    tokens: list[Token] = []
    assets: dict[str, Asset] = {}
    for index, wanted in enumerate(entry.tokens):
        at = f"{where}.tokens[{index}]"
        try:
            token = chain.token(wanted.address)
        except ChainError as error:
            raise config.error(
                at,
                f"cannot use {wanted.address} on {chain.network} ({_scrub(error, entry)}); "
                "give the address of an EIP-3009 token on this chain",
            ) from None
        code = wanted.asset or token.symbol.upper()
        known = KNOWN_ASSETS.get(code)
        if known is not None and known.decimals != token.decimals:
            raise config.error(
                at,
                f"the token has {token.decimals} decimals, asset {code} {known.decimals}: "
                'one atomic unit must be one token unit; give another code (asset = "...")',
            )
        try:
            assets[token.address] = Asset(code, token.decimals)
        except PaywireError:
            raise config.error(
                at,
                f"the token's symbol {token.symbol[:20]!r} is not an asset code; give one: "
                f'{{address = "{token.address}", asset = "USDC"}}',
            ) from None
        tokens.append(token)
    return ConnectedChain(entry, chain, tuple(tokens), assets)


def _scrub(error: Exception, entry: ChainConfig) -> str:
    """A chain error's text, short, without the endpoint's path or query (an API key)."""
    from paywire.chain import ChainUnavailable

    if isinstance(error, ChainUnavailable):
        return "the node did not answer"
    text = str(error).replace(entry.rpc_url, entry.shown_url())
    secret = entry.rpc_url.removeprefix(entry.shown_url())
    if len(secret) > 1:
        text = text.replace(secret, "/...")
    return text[:200]


def operator_service(
    ledger: Ledger,
    key: PrivateKey,
    *,
    url: str,
    chain: str = "local",
    chains: Sequence[ConnectedChain] = (),
    deposits: DepositsConfig | None = None,
    cursor_path: Path | None = None,
    ledger_shown: str | None = None,
    judge: JudgeSource | None = None,
) -> OperatorService:
    """The operator's service on `ledger`, `key` signing receipts and settling on chain.

    `chain` is ``local`` (an in-process demo chain), ``none`` (the ledger network only)
    or ``rpc`` (the `chains` already connected, each with an `EvmExactScheme`; with
    `deposits`, that token's reserve at `key`'s address is watched, its scan position kept
    in `cursor_path`). `url` is where it will be served (for the banner).
    """
    from paywire.protocol import EvmExactScheme, Facilitator, LedgerExactScheme
    from paywire.service import operator_app

    if chain not in CHAIN_MODES:
        raise InvalidInput(f"--chain is one of {', '.join(CHAIN_MODES)}, not {chain!r}")
    if chain != "rpc" and (chains or deposits):
        raise InvalidInput(f"--chain {chain} runs no JSON-RPC chain; use --chain rpc")
    ledger.log.set_operator(key.address)
    banner = [
        f"paywire operator on {url}",
        f"  ledger network  {ledger.network} ({ledger_shown or 'in process'})",
        f"  receipts        signed by {key.address}",
        "  tasks           /tasks (signed requests); releases and expiries that fall due "
        "are swept every 30 s",
    ]
    if chain == "none":
        facilitator = Facilitator(key, [LedgerExactScheme(ledger)])
        app = operator_app(facilitator, ledger, judge=judge)
        return OperatorService(app, facilitator, None, banner, ledger=ledger)
    if chain == "local":
        desk = _local_desk(ledger, key)
        facilitator = Facilitator.for_networks(key, ledger=ledger, tokens=[desk.token])
        info = desk.info()
        banner += [
            f"  chain           {info['network']} in process (demo: virtual funds), "
            f"JSON-RPC at {url}/rpc",
            f"  token           {info['symbol']} at {info['token']} (x402 exact on this chain too)",
            f"  reserve         {info['reserve']}",
        ]
        app = operator_app(facilitator, ledger, desk, judge=judge)
        return OperatorService(app, facilitator, desk, banner, [desk.reserve], ledger=ledger)
    if not chains:
        raise InvalidInput(
            "--chain rpc needs a config with [[chains]] (--config FILE or $PAYWIRE_CONFIG)"
        )
    handlers: list[EvmExactScheme | LedgerExactScheme] = [LedgerExactScheme(ledger)]
    for connected in chains:
        handlers.append(
            EvmExactScheme(ledger, list(connected.tokens), signer=key, assets=connected.assets)
        )
        banner += _chain_banner(connected, key)
    facilitator = Facilitator(key, handlers)
    rpc_desk: ChainDesk | None = None
    watched: list[Reserve] = []
    if deposits is not None:
        rpc_desk = _rpc_desk(ledger, key, chains, deposits, cursor_path)
        watched.append(rpc_desk.reserve)
        banner.append(
            f"  deposits        {rpc_desk.reserve.asset.code} at {rpc_desk.token.address} to "
            f"reserve {rpc_desk.reserve.address}, watched from block {deposits.from_block}"
        )
    else:
        banner.append("  deposits        none ([deposits] in the config watches a reserve)")
    app = operator_app(facilitator, ledger, rpc_desk, judge=judge)
    return OperatorService(app, facilitator, rpc_desk, banner, watched, ledger=ledger)


def _chain_banner(connected: ConnectedChain, key: PrivateKey) -> list[str]:
    from paywire.chain import ChainError

    entry, chain = connected.config, connected.chain
    label = f" ({entry.name})" if entry.name else ""
    lines = [
        f"  chain           {chain.network}{label} at {entry.shown_url()}, "
        f"{entry.confirmations} confirmation{'s' if entry.confirmations != 1 else ''}, "
        f"settling from {key.address}"
    ]
    lines += [
        f"  token           {connected.assets[token.address].code} at {token.address} "
        f"({token.name} v{token.version}, x402 exact)"
        for token in connected.tokens
    ]
    try:
        gas = chain.native_balance(key.address)
    except ChainError:
        gas = None
    if gas == 0:
        lines.append(
            f"  warning         {key.address} holds no native coin on "
            f"{chain.network}: settlements there fail until it can pay for gas"
        )
    return lines


def _local_desk(ledger: Ledger, key: PrivateKey) -> ChainDesk:
    from paywire.chain import LocalChain, Reserve
    from paywire.service import ChainDesk

    local = LocalChain(operator=key)
    token = local.deploy_token(key.address)
    return ChainDesk(local, token, Reserve(ledger, token, key))


def _rpc_desk(
    ledger: Ledger,
    key: PrivateKey,
    chains: Sequence[ConnectedChain],
    deposits: DepositsConfig,
    cursor_path: Path | None,
) -> ChainDesk:
    from paywire.chain import FileCursor, MemoryCursor, Reserve
    from paywire.service import ChainDesk

    connected = next(item for item in chains if item.config.chain_id == deposits.chain_id)
    token = next(item for item in connected.tokens if item.address == deposits.token)
    cursor = FileCursor(cursor_path) if cursor_path is not None else MemoryCursor()
    reserve = Reserve(
        ledger,
        token,
        key,
        asset=connected.assets[token.address],
        cursor=cursor,
        start_block=deposits.from_block,
    )
    return ChainDesk(connected.chain, token, reserve)
