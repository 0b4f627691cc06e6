"""`paywire serve`: the operator's facilitator (x402 and the chain desk) on one port.

`paywire serve` runs on one of three kinds of chain (``--chain``):

- ``local``: an in-process demo chain with a test stablecoin, served at ``/rpc``;
- ``none``: the ledger network only;
- ``rpc``: the JSON-RPC chains of a config file (``--config`` or $PAYWIRE_CONFIG, see
  `paywire.cli.config`), each settled with ``exact`` (EIP-3009) by the facilitator's key.

Without ``--chain``, a config that lists ``[[chains]]`` means ``rpc``, else ``local``.
`serve_command` reads the config, reaches its chains (`paywire.cli._operator`), and prints
and serves the service `operator_service` builds. (`paywire pay` lives in `paywire.cli.pay`.)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from paywire.cli import _common
from paywire.cli._common import console
from paywire.cli._keys import DEFAULT_OPERATOR, PASSPHRASE_FILE, load_key
from paywire.cli._operator import CHAIN_MODES, connect_chains, operator_service
from paywire.cli.config import ServeConfig, config_path
from paywire.errors import InvalidInput

if TYPE_CHECKING:
    from paywire.crypto.keys import PrivateKey

DEFAULT_PORT = 4020
"""The facilitator's port unless --port says otherwise (x402 has no standard one)."""


DEPOSIT_CURSOR_FILE = "deposit-cursors.json"
"""Where, in the paywire home, `serve` keeps how far it scanned each reserve for deposits."""


def _chain_mode(flag: str | None, config: ServeConfig | None) -> str:
    """--chain, else ``rpc`` when the config lists chains, else ``local``."""
    has_chains = config is not None and bool(config.chains)
    if flag is None:
        return "rpc" if has_chains else "local"
    if flag not in CHAIN_MODES:
        raise InvalidInput(
            "--chain is 'local' (demo chain in process), 'none' (ledger network only) or "
            "'rpc' (the [[chains]] of --config)"
        )
    if flag == "rpc" and not has_chains:
        where = f"{config.path} has no [[chains]]" if config is not None else "no config given"
        raise InvalidInput(f"--chain rpc settles on the config's [[chains]]: {where}")
    if flag != "rpc" and has_chains:
        assert config is not None
        raise InvalidInput(
            f"--chain {flag} runs no JSON-RPC chain, but {config.path} lists [[chains]]: "
            "drop --chain (or use --chain rpc) to settle on them"
        )
    return flag


def _judge_key(gateway: str | None, wallet: str | None, passphrase_file: Path) -> PrivateKey | None:
    """The judge's key, when both --judge-gateway and --judge-wallet are given."""
    if gateway is None and wallet is None:
        return None
    if gateway is None or wallet is None:
        raise InvalidInput("--judge-gateway and --judge-wallet go together")
    if not gateway.startswith(("http://", "https://")) or len(gateway) > 2048:
        raise InvalidInput(f"--judge-gateway {gateway[:200]!r} is not an http(s) URL")
    return load_key(wallet, passphrase_file)


def _shown_ledger(url: str) -> str:
    """A ledger URL without its password."""
    if "://" not in url or "@" not in url.split("://", 1)[1].split("/", 1)[0]:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.split("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=65535),
    operator: str = typer.Option(
        None,
        "--operator",
        help="The facilitator's wallet (default: the config's facilitator key, else 'operator').",
        show_default=False,
    ),
    chain: str = typer.Option(
        None,
        "--chain",
        help="'local': an in-process EVM chain with a test stablecoin (demo mode, served "
        "at /rpc); 'none': the ledger network only; 'rpc': the JSON-RPC chains of the "
        "config. Default: 'rpc' if the config lists chains, else 'local'.",
        show_default=False,
    ),
    config_file: Path = typer.Option(
        None,
        "--config",
        help="The operator's TOML config (default: $PAYWIRE_CONFIG, else none).",
        show_default=False,
    ),
    judge_gateway: str = typer.Option(
        None,
        "--judge-gateway",
        help="An LLM gateway's URL (e.g. `paywire gateway`'s /v1) that judges tasks whose "
        "acceptance check is a model (POST /tasks/<id>/decide), paid by --judge-wallet.",
        show_default=False,
    ),
    judge_wallet: str = typer.Option(
        None, "--judge-wallet", help="The wallet that pays the judge's model.", show_default=False
    ),
    judge_max: str = typer.Option(
        "$0.01", "--judge-max", help="The most one decision may cost the judge's wallet."
    ),
    passphrase_file: Path = PASSPHRASE_FILE,
) -> None:
    """Run the operator's service: the facilitator (x402 /verify, /settle, /supported)
    over the ledger and its chains, deposits, withdrawals and the faucet, and tasks (a
    sweeper settles what falls due; --judge-gateway judges model-checked tasks)."""
    import uvicorn

    from paywire.cli.config import load_config
    from paywire.cli.ledger import ledger_url
    from paywire.ledger import open_ledger

    path = config_path(config_file)
    config = load_config(path) if path is not None else None
    mode = _chain_mode(chain, config)
    # The nodes first: a wrong chain id or a dead node fails before any passphrase prompt.
    chains = connect_chains(config) if config is not None and mode == "rpc" else []
    name = operator or (config.facilitator_key if config else None) or DEFAULT_OPERATOR
    key = load_key(name, passphrase_file)
    store = (config.ledger_url if config else None) or ledger_url()
    url = f"http://{host}:{port}"
    judge_key = _judge_key(judge_gateway, judge_wallet, passphrase_file)
    with open_ledger(store) as ledger:
        judge = None
        if judge_key is not None:
            from paywire.money import parse_amount
            from paywire.service._tasks_judge import GatewayJudge

            judge = GatewayJudge(judge_key, judge_gateway, ledger.network, parse_amount(judge_max))
        service = operator_service(
            ledger,
            key,
            url=url,
            chain=mode,
            chains=chains,
            deposits=config.deposits if config is not None else None,
            cursor_path=_common.home_dir() / DEPOSIT_CURSOR_FILE,
            ledger_shown=_shown_ledger(store),
            judge=judge,
        )
        if judge is not None:
            service.banner.append(
                f"  judge           {judge.key.address} through {judge_gateway}, at most "
                f"{judge.max_per_decision} a decision"
            )
        if config is not None:
            service.banner.insert(1, f"  config          {config.path}")
        for line in service.banner:
            console.print(line, markup=False)  # token names come from the chain
        with service.watching():
            uvicorn.run(service.app, host=host, port=port, log_level="warning")
