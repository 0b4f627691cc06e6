"""`paywire serve` on JSON-RPC chains from a config file, and `paywire pay` paying on them.

The "remote" node is paywire's JSON-RPC bridge over an in-process chain (the Vyper token on
py-evm), served by uvicorn on loopback and presented as an ordinary chain (no demo flag):
the facilitator reaches it only over HTTP, as it would reach Base or a testnet.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cli_runs import cli
from paywire._dev.http import ServedApps, free_port, served
from paywire.chain import LOCAL_CHAIN_ID, LocalChain, Token, rpc_bridge
from paywire.cli import run
from paywire.cli._operator import connect_chains, operator_service
from paywire.cli.config import (
    CONFIG_ENV,
    ChainConfig,
    ConfigError,
    DepositsConfig,
    ServeConfig,
    TokenConfig,
    config_path,
    load_config,
    parse_config,
)
from paywire.crypto import PrivateKey
from paywire.crypto.keystore import KeyStore
from paywire.ledger import Ledger, LedgerError, open_ledger
from paywire.protocol import RemoteFacilitator, evm_account_id
from paywire.server import PaymentMiddleware

PASSPHRASE = "test passphrase"
TOKEN_A = "0x" + "11" * 20
TOKEN_B = "0x" + "22" * 20
GAS_WEI = 10**18
PRICE = 1_000  # $0.001 in USDC atomic units


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run a command that must fail with an operating error: exit 1, one line, no trace."""
    code = run(list(args))
    out, err = capsys.readouterr()
    assert code == 1, f"paywire {' '.join(args)} exited {code}: {out}{err}"
    assert "Traceback" not in out + err
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAYWIRE_HOME", str(tmp_path))
    monkeypatch.setenv("PAYWIRE_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("PAYWIRE_LIGHT_KDF", "1")
    monkeypatch.setenv("COLUMNS", "500")  # no wrapping of the one-line errors
    monkeypatch.delenv("PAYWIRE_DB", raising=False)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def chain() -> LocalChain:
    return LocalChain()


@pytest.fixture(scope="module")
def token(chain: LocalChain) -> Token:
    return chain.deploy_token(chain.operator.address)


@pytest.fixture(scope="module")
def node(chain: LocalChain) -> Iterator[str]:
    """The chain's JSON-RPC endpoint over real HTTP, passing for an ordinary chain."""
    apps = ServedApps()
    yield apps.start(rpc_bridge(chain, demo=False)) + "/rpc"
    apps.close()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def chain_toml(rpc_url: str, chain_id: int, *tokens: str, extra: str = "") -> str:
    listed = ", ".join(f'"{token}"' for token in tokens)
    return f'[[chains]]\nrpc_url = "{rpc_url}"\nchain_id = {chain_id}\ntokens = [{listed}]\n{extra}'


# ----- parsing --------------------------------------------------------------------------------


def test_a_full_config_parses_into_frozen_dataclasses(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "paywire.toml"
    text = f"""
[ledger]
url = "books.db"

[facilitator]
key = "settler"

[[chains]]
name = "base-sepolia"
rpc_url = "https://sepolia.base.org"
chain_id = 84532
confirmations = 3
tokens = ["{TOKEN_A}", {{ address = "{TOKEN_B}", asset = "EURC" }}]

[[chains]]
rpc_url = "http://127.0.0.1:8545/v1/key"
chain_id = 31337
tokens = ["{TOKEN_A}"]

[deposits]
chain_id = 84532
token = "{TOKEN_B}"
from_block = 123
"""
    config = parse_config(text, path)
    checksummed_a = TokenConfig(_checksum(TOKEN_A)).address
    assert config == ServeConfig(
        path=path,
        ledger_url=f"sqlite:///{tmp_path.absolute() / 'etc' / 'books.db'}",
        facilitator_key="settler",
        chains=(
            ChainConfig(
                "https://sepolia.base.org",
                84532,
                (TokenConfig(checksummed_a), TokenConfig(_checksum(TOKEN_B), "EURC")),
                3,
                "base-sepolia",
                0,
            ),
            ChainConfig(
                "http://127.0.0.1:8545/v1/key", 31337, (TokenConfig(checksummed_a),), 1, None, 1
            ),
        ),
        deposits=DepositsConfig(84532, _checksum(TOKEN_B), 123),
    )
    assert config.chains[0].network == "eip155:84532"
    assert config.chains[1].shown_url() == "http://127.0.0.1:8545"  # no path: it may hold a key
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.chains[0].chain_id = 1  # type: ignore[misc]


def _checksum(address: str) -> str:
    from paywire.crypto import parse_address

    return parse_address(address)


def test_an_empty_config_and_the_other_ledger_urls(tmp_path: Path) -> None:
    path = tmp_path / "paywire.toml"
    assert parse_config("", path) == ServeConfig(path)
    postgres = parse_config('[ledger]\nurl = "postgresql://pw@db/paywire"\n', path)
    assert postgres.ledger_url == "postgresql://pw@db/paywire"
    absolute = parse_config('[ledger]\nurl = "sqlite:////var/books.db"\n[facilitator]\n', path)
    assert (absolute.ledger_url, absolute.facilitator_key) == ("sqlite:////var/books.db", None)


def test_the_config_file_is_the_flag_else_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    assert config_path(None) is None
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "env.toml"))
    assert config_path(None) == tmp_path / "env.toml"
    assert config_path(tmp_path / "flag.toml") == tmp_path / "flag.toml"
    monkeypatch.setenv(CONFIG_ENV, "")
    assert config_path(None) is None


# ----- malformed configs: exit 1, one line naming the file and the key ---------------------

GOOD_CHAIN = chain_toml("https://rpc.example", 84532, TOKEN_A)

MALFORMED = {
    "unknown section": ("[server]\nport = 1\n", "server: unknown key"),
    "unknown chain key": (GOOD_CHAIN + "rpc = 1\n", "chains[0].rpc: unknown key"),
    "unknown facilitator key": ('[facilitator]\nname = "x"\n', "facilitator.name: unknown key"),
    "missing chain id": (
        '[[chains]]\nrpc_url = "https://rpc.example"\ntokens = []\n',
        "chains[0].chain_id: missing",
    ),
    "missing tokens": (
        '[[chains]]\nrpc_url = "https://rpc.example"\nchain_id = 1\n',
        "chains[0].tokens: missing",
    ),
    "quoted chain id": (
        chain_toml("https://rpc.example", 1, TOKEN_A).replace("= 1", '= "1"'),
        "chains[0].chain_id: must be an integer, not a string",
    ),
    "fractional chain id": (
        chain_toml("https://rpc.example", 1, TOKEN_A).replace("= 1", "= 1.5"),
        "chains[0].chain_id: must be an integer, not a number with a fraction",
    ),
    "chain id zero": (chain_toml("https://rpc.example", 0, TOKEN_A), "chains[0].chain_id"),
    "boolean confirmations": (
        GOOD_CHAIN + "confirmations = true\n",
        "chains[0].confirmations: must be an integer, not a boolean",
    ),
    "no confirmations": (
        GOOD_CHAIN + "confirmations = 0\n",
        "chains[0].confirmations: must be from 1",
    ),
    "short address": (chain_toml("https://rpc.example", 1, "0x1234"), "chains[0].tokens[0]"),
    "bad checksum": (
        chain_toml("https://rpc.example", 1, "0x036CbD53842c5426634e7929541eC2318f3dCF7E"),
        "chains[0].tokens[0]",
    ),
    "token as a number": (
        '[[chains]]\nrpc_url = "https://rpc.example"\nchain_id = 1\ntokens = [7]\n',
        "chains[0].tokens[0]: must be an address",
    ),
    "tokens not a list": (
        f'[[chains]]\nrpc_url = "https://rpc.example"\nchain_id = 1\ntokens = "{TOKEN_A}"\n',
        "chains[0].tokens: must be a non-empty list",
    ),
    "token table with decimals": (
        f'[[chains]]\nrpc_url = "https://x.example"\nchain_id = 1\n'
        f'tokens = [{{ address = "{TOKEN_A}", decimals = 6 }}]\n',
        "chains[0].tokens[0].decimals: unknown key",
    ),
    "bad asset code": (
        f'[[chains]]\nrpc_url = "https://x.example"\nchain_id = 1\n'
        f'tokens = [{{ address = "{TOKEN_A}", asset = "usd c" }}]\n',
        "chains[0].tokens[0].asset",
    ),
    "token twice": (chain_toml("https://rpc.example", 1, TOKEN_A, TOKEN_A), "chains[0].tokens[1]"),
    "ftp node": (
        chain_toml("ftp://rpc.example", 1, TOKEN_A),
        "chains[0].rpc_url: must start with http",
    ),
    "no host": (chain_toml("http://", 1, TOKEN_A), "chains[0].rpc_url: has no host"),
    "bad port": (chain_toml("http://rpc.example:99999", 1, TOKEN_A), "chains[0].rpc_url"),
    "duplicate chain": (
        GOOD_CHAIN + chain_toml("https://other.example", 84532, TOKEN_B),
        "chains[1].chain_id: chain 84532 is already chains[0]",
    ),
    "chains as a table": (
        '[chains]\nrpc_url = "https://x"\n',
        "chains: must be an array of tables",
    ),
    "raw private key as the facilitator key": (
        '[facilitator]\nkey = "0x' + "ab" * 32 + '"\n',
        "facilitator.key: this looks like a raw private key",
    ),
    "raw private key without 0x": (
        GOOD_CHAIN + 'name = "' + "cd" * 32 + '"\n',
        "chains[0].name: this looks like a raw private key",
    ),
    "private_key entry": (
        '[facilitator]\nprivate_key = "hunter2"\n',
        "facilitator.private_key: never put a private key in the config",
    ),
    "passphrase entry": ('[facilitator]\npassphrase = "hunter2"\n', "facilitator.passphrase"),
    "facilitator key not a wallet name": (
        '[facilitator]\nkey = "My Key"\n',
        "facilitator.key: must be a wallet name",
    ),
    "facilitator key a number": ("[facilitator]\nkey = 7\n", "facilitator.key: must be a string"),
    "ledger scheme": ('[ledger]\nurl = "mysql://db/x"\n', "ledger.url: unknown URL scheme"),
    "deposits on an unknown chain": (
        GOOD_CHAIN + f'[deposits]\nchain_id = 1\ntoken = "{TOKEN_A}"\nfrom_block = 0\n',
        "deposits.chain_id: no [[chains]] entry",
    ),
    "deposits of an unlisted token": (
        GOOD_CHAIN + f'[deposits]\nchain_id = 84532\ntoken = "{TOKEN_B}"\nfrom_block = 0\n',
        "deposits.token",
    ),
    "deposits without a start block": (
        GOOD_CHAIN + f'[deposits]\nchain_id = 84532\ntoken = "{TOKEN_A}"\n',
        "deposits.from_block: missing",
    ),
    "not TOML": ("[[chains]\nrpc_url = 1\n", "not valid TOML"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_a_malformed_config_is_one_line_naming_file_and_key(
    case: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, expected = MALFORMED[case]
    path = write(home / "paywire.toml", text)
    message = refused(capsys, "serve", "--config", str(path))
    assert message.startswith(f"error: {path}: "), message
    assert expected in message, message
    assert "hunter2" not in message and "ab" * 32 not in message and "cd" * 32 not in message
    with pytest.raises(ConfigError):
        load_config(path)


def test_a_missing_or_oversized_config_file(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = home / "nowhere.toml"
    assert "cannot read the config file" in refused(capsys, "serve", "--config", str(missing))
    large = write(home / "large.toml", "# " + "x" * 70_000 + "\n")
    assert "not a config" in refused(capsys, "serve", "--config", str(large))


def test_the_flag_wins_over_the_environment(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = write(home / "env.toml", "[server]\n")
    from_flag = write(home / "flag.toml", "[client]\n")
    monkeypatch.setenv(CONFIG_ENV, str(from_env))
    assert f"{from_env}: server: unknown key" in refused(capsys, "serve")
    assert f"{from_flag}: client: unknown key" in refused(
        capsys, "serve", "--config", str(from_flag)
    )


def test_chain_modes_that_contradict_the_config(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "--chain rpc" in refused(capsys, "serve", "--chain", "rpc")
    with_chains = write(home / "chains.toml", GOOD_CHAIN)
    message = refused(capsys, "serve", "--config", str(with_chains), "--chain", "local")
    assert "lists [[chains]]" in message
    no_chains = write(home / "plain.toml", '[facilitator]\nkey = "operator"\n')
    assert "has no [[chains]]" in refused(
        capsys, "serve", "--config", str(no_chains), "--chain", "rpc"
    )
    assert "--chain is" in refused(capsys, "serve", "--chain", "mainnet")


# ----- the node: chain id, reachability, token contracts ---------------------------------------


def test_a_node_serving_another_chain(
    home: Path, node: str, token: Token, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(home / "paywire.toml", chain_toml(node, 84532, token.address))
    message = refused(capsys, "serve", "--config", str(path))
    assert f"{path}: chains[0].chain_id: the node at http://127.0.0.1:" in message
    assert f"serves chain {LOCAL_CHAIN_ID}, not the configured 84532" in message


def test_an_unreachable_node_never_shows_its_url_path(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v2/sEcReTaPiKeY"
    path = write(home / "paywire.toml", chain_toml(url, 84532, TOKEN_A))
    message = refused(capsys, "serve", "--config", str(path))
    assert f"chains[0].rpc_url: the node at http://127.0.0.1:{port} did not answer" in message
    assert "sEcReTaPiKeY" not in message


def test_a_token_address_without_a_contract(
    home: Path, node: str, token: Token, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(home / "paywire.toml", chain_toml(node, LOCAL_CHAIN_ID, token.address, TOKEN_B))
    message = refused(capsys, "serve", "--config", str(path))
    assert f"{path}: chains[0].tokens[1]: cannot use {_checksum(TOKEN_B)}" in message


def test_an_asset_code_of_other_decimals(
    home: Path, node: str, token: Token, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        f'[[chains]]\nrpc_url = "{node}"\nchain_id = {LOCAL_CHAIN_ID}\n'
        f'tokens = [{{ address = "{token.address}", asset = "ETH" }}]\n'
    )
    message = refused(capsys, "serve", "--config", str(write(home / "p.toml", text)))
    assert "chains[0].tokens[0]: the token has 6 decimals, asset ETH 18" in message


# ----- serving ---------------------------------------------------------------------------------


def test_serve_prints_the_chains_and_offers_them(
    home: Path,
    node: str,
    token: Token,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole command in process, uvicorn replaced by a look at the app it would run."""
    import uvicorn

    cli(capsys, "wallet", "new", "settler")
    settler = KeyStore(home / "keys").info("settler").address
    config = write(
        home / "paywire.toml",
        '[facilitator]\nkey = "settler"\n[ledger]\nurl = "books.db"\n'
        + chain_toml(node, LOCAL_CHAIN_ID, token.address, extra='name = "loopback"\n'),
    )
    seen: dict[str, object] = {}

    def fake_run(app: Starlette, *, host: str, port: int, log_level: str) -> None:
        with served(app) as base:
            seen["supported"] = httpx.get(f"{base}/supported").json()
            seen["chain"] = httpx.get(f"{base}/chain").status_code

    monkeypatch.setattr(uvicorn, "run", fake_run)
    out = cli(capsys, "serve", "--port", "4999", "--config", str(config))
    assert "paywire operator on http://127.0.0.1:4999" in out
    assert f"config          {config}" in out
    assert f"sqlite:///{home / 'books.db'}" in out
    assert f"eip155:{LOCAL_CHAIN_ID} (loopback) at http://127.0.0.1:" in out
    assert f"settling from {settler}" in out
    assert f"USDC at {token.address}" in out
    assert "holds no native coin" in out  # the settler has no gas yet: a warning, not an error
    supported = seen["supported"]
    assert isinstance(supported, dict)
    kinds = {(kind["scheme"], kind["network"]) for kind in supported["kinds"]}
    assert ("exact", f"eip155:{LOCAL_CHAIN_ID}") in kinds
    assert any(network.startswith("paywire:") for _, network in kinds)
    assert supported["signers"]["eip155:*"] == [settler]
    assert seen["chain"] == 404  # no [deposits]: no chain desk
    assert (home / "books.db").exists()


def test_end_to_end_payment_on_a_json_rpc_chain(
    home: Path,
    chain: LocalChain,
    token: Token,
    node: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A facilitator configured for the node, a provider behind PaymentMiddleware asking it
    over HTTP, and `paywire pay` signing EIP-3009 from the 402 alone: the money moves on
    chain, the payment is in the ledger, deposits to the reserve are credited."""
    settler = PrivateKey.generate()
    chain.fund(settler.address, GAS_WEI)
    cli(capsys, "wallet", "new", "agent")
    cli(capsys, "wallet", "new", "shop")
    keys = KeyStore(home / "keys")
    agent = keys.load("agent", PASSPHRASE)
    shop = keys.info("shop").address
    token.mint(chain.operator, agent.address, 1_000_000)
    chain.fund(agent.address, GAS_WEI)  # only for the deposit below: paying needs no gas
    start = chain.block_number()
    config = load_config(
        write(
            home / "paywire.toml",
            chain_toml(node, LOCAL_CHAIN_ID, token.address, extra="confirmations = 1\n")
            + f'[deposits]\nchain_id = {LOCAL_CHAIN_ID}\ntoken = "{token.address}"\n'
            f"from_block = {start}\n",
        )
    )
    apps = ServedApps()
    with open_ledger(f"sqlite:///{home / 'books.db'}") as ledger:
        service = operator_service(
            ledger,
            settler,
            url="http://127.0.0.1",
            chain="rpc",
            chains=connect_chains(config),
            deposits=config.deposits,
            cursor_path=home / "cursors.json",
        )
        try:
            facilitator = apps.start(service.app)
            supported = httpx.get(f"{facilitator}/supported").json()
            evm = [kind for kind in supported["kinds"] if kind["network"] == chain.network]
            assert [kind["extra"]["asset"] for kind in evm] == [token.address]
            info = httpx.get(f"{facilitator}/chain").json()
            assert (info["network"], info["demo"], info["reserve"]) == (
                chain.network,
                False,
                settler.address,
            )
            faucet = httpx.post(f"{facilitator}/faucet", json={"address": shop, "amount": "1000"})
            assert faucet.status_code == 400 and faucet.json()["error"] == "faucet_refused"

            async def item(request: Request) -> Response:
                return JSONResponse({"item": "paid on chain"})

            provider = Starlette(routes=[Route("/item", item)])
            provider.add_middleware(
                PaymentMiddleware,
                routes={"GET /item": "$0.001"},
                pay_to=shop,
                facilitator=RemoteFacilitator(facilitator),
            )
            url = apps.start(provider) + "/item"

            declined = refused(
                capsys, "pay", url, "--wallet", "agent", "--max", "$0.01", "--network", "eip155:*"
            )
            assert "not a known token" in declined  # a token is paid only when named
            out = cli(
                capsys,
                "pay",
                url,
                "--wallet",
                "agent",
                "--max",
                "$0.01",
                "--token",
                f"{token.address}=USDC",
                "--network",
                "eip155:*",
                "--facilitator",
                settler.address,
            )
            assert "paid on chain" in out
            assert f"paid 0.001 USDC to {shop} on {chain.network}" in out
            assert token.balance_of(shop) == PRICE
            assert token.balance_of(agent.address) == 1_000_000 - PRICE
            mirror = evm_account_id(chain.network, shop, "USDC")
            assert ledger.balance(mirror).credits_posted == PRICE

            # A plain transfer to the reserve is a deposit: the watcher credits it.
            token.transfer(agent, settler.address, 5_000)
            wallet = f"{agent.address}:USDC"
            with service.watching():
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if _available(ledger, wallet) == 5_000:
                        break
                    time.sleep(0.1)
            assert _available(ledger, wallet) == 5_000
            assert json.loads((home / "cursors.json").read_text())  # the scan position is kept
        finally:
            apps.close()


def _available(ledger: Ledger, account: str) -> int | None:
    try:
        return ledger.balance(account).available
    except LedgerError:
        return None


def test_pay_refuses_bad_token_flags(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://127.0.0.1:9/item"
    base = ("pay", url, "--wallet", "agent", "--max", "$0.01")
    assert "not an address" in refused(capsys, *base, "--token", "0x1234")
    assert "the asset is one of" in refused(capsys, *base, "--token", f"{TOKEN_A}=DOGE")
    assert "not a network pattern" in refused(capsys, *base, "--network", "eip155: 1")
