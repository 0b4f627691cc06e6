"""`paywire wallet`: keys in encrypted keystore v3 files under ``<home>/keys``.

A private key is never taken on the command line (it would land in the shell history) and
never printed unless asked for with ``--private-key``. Heavy modules (eth_account, via the
keystore) are imported inside the commands, so ``paywire --help`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from paywire.cli import _common
from paywire.errors import InvalidInput

if TYPE_CHECKING:
    from paywire.crypto.keystore import KeyStore

LIGHT_KDF_ENV = "PAYWIRE_LIGHT_KDF"
"""Set to 1 to encrypt new keys with the light scrypt cost (demos and CI, not real funds)."""

MAX_PRIVATE_KEY_FILE_BYTES = 4096
"""A private key file holds 64 hex digits; a larger file is something else."""

wallet_app = typer.Typer(help="Keys: create, list and show wallets.", no_args_is_help=True)

_PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="Read the passphrase from this file (else $PAYWIRE_PASSPHRASE, else a prompt).",
        show_default=False,
    ),
]
_LightKdf = Annotated[
    bool,
    typer.Option(
        "--light-kdf",
        help=f"Cheap scrypt (n=2**12) for demos and tests; also ${LIGHT_KDF_ENV}=1.",
    ),
]


def _light_kdf(flag: bool) -> bool:
    return flag or os.environ.get(LIGHT_KDF_ENV, "").strip().lower() in {"1", "true", "yes"}


def _store(*, light_kdf: bool = False) -> KeyStore:
    from paywire.crypto.keystore import KeyStore

    return KeyStore(_common.home_dir() / "keys", light_kdf=light_kdf)


def _line(text: str) -> None:
    """One plain line on stdout: no markup, no wrapping of long paths."""
    _common.console.print(text, markup=False, soft_wrap=True)


def _warn(text: str) -> None:
    _common.err_console.print(f"warning: {text}", markup=False, soft_wrap=True)


@wallet_app.command("new")
def new_command(
    name: Annotated[str, typer.Argument(help="Name of the new key (a-z, 0-9, '.', '_', '-').")],
    passphrase_file: _PassphraseFile = None,
    light_kdf: _LightKdf = False,
) -> None:
    """Create a new key, encrypted with a passphrase."""
    from paywire.crypto.keystore import check_key_name

    store = _store(light_kdf=_light_kdf(light_kdf))
    check_key_name(name)  # before asking for a passphrase
    passphrase = _common.read_passphrase(confirm=True, passphrase_file=passphrase_file)
    info = store.create(name, passphrase)
    _line(f"created key {info.name}")
    _line(f"address  {info.address}")
    _line(f"file     {info.path}")
    if store.light_kdf:
        _warn("light key derivation: fine for demos and tests, too weak for real funds")


@wallet_app.command("list")
def list_command() -> None:
    """List stored keys and their addresses (no passphrase needed)."""
    from rich import box
    from rich.table import Table

    store = _store()
    keys, problems = store.scan()
    for problem in problems:
        _warn(f"skipped {problem.path}: {problem.reason}")
    if not keys:
        _line(f"no keys in {store.directory}; create one with: paywire wallet new NAME")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("address", no_wrap=True)
    for info in keys:
        table.add_row(info.name, info.address)
    _common.console.print(table)


@wallet_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="Name of the key.")],
    private_key: Annotated[
        bool,
        typer.Option(
            "--private-key",
            help="Also decrypt and print the private key (anyone who sees it owns the funds).",
        ),
    ] = False,
    passphrase_file: _PassphraseFile = None,
) -> None:
    """Show a key's address and file; its private key only with --private-key."""
    store = _store()
    info = store.info(name)
    _line(f"name     {info.name}")
    _line(f"address  {info.address}")
    _line(f"file     {info.path}")
    if private_key:
        passphrase = _common.read_passphrase(confirm=False, passphrase_file=passphrase_file)
        key = store.load(name, passphrase)
        _warn("printing a private key: anyone who sees it controls this wallet's funds")
        _line(f"private  {key.to_hex()}")


@wallet_app.command("import")
def import_command(
    name: Annotated[str, typer.Argument(help="Name to store the key under.")],
    private_key_file: Annotated[
        Path,
        typer.Option(
            "--private-key-file",
            help="File holding the private key as 64 hex digits (never pass a key as an "
            "argument: it would stay in the shell history).",
            show_default=False,
        ),
    ],
    passphrase_file: _PassphraseFile = None,
    light_kdf: _LightKdf = False,
) -> None:
    """Store an existing private key, encrypted with a passphrase."""
    from paywire.crypto.keys import PrivateKey
    from paywire.crypto.keystore import check_key_name

    store = _store(light_kdf=_light_kdf(light_kdf))
    check_key_name(name)
    key = PrivateKey.from_hex(_read_private_key_file(private_key_file))
    passphrase = _common.read_passphrase(confirm=True, passphrase_file=passphrase_file)
    info = store.import_key(name, key, passphrase)
    _line(f"imported key {info.name}")
    _line(f"address  {info.address}")
    _line(f"file     {info.path}")
    if store.light_kdf:
        _warn("light key derivation: fine for demos and tests, too weak for real funds")


def _read_private_key_file(path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_PRIVATE_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise InvalidInput(f"cannot read private key file {path}: {error.strerror}") from None
    if len(data) > MAX_PRIVATE_KEY_FILE_BYTES:
        raise InvalidInput(f"{path} is too large to be a private key file")
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} does not hold a private key in hex") from None
