"""A wallet's key for a command: the ``--passphrase-file`` option and the keystore read
(shared by `paywire serve`, `paywire pay`, deposits and withdrawals)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from paywire.cli import _common

if TYPE_CHECKING:
    from paywire.crypto.keys import PrivateKey

DEFAULT_OPERATOR = "operator"
"""The operator's wallet (it signs receipts and checkpoints) unless --operator names another."""

PASSPHRASE_FILE = typer.Option(
    None, "--passphrase-file", help="Read the wallet passphrase from this file."
)


def load_key(name: str, passphrase_file: Path | None) -> PrivateKey:
    from paywire.crypto.keystore import KeyStore

    store = KeyStore(_common.home_dir() / "keys")
    store.info(name)  # a clear error before any passphrase prompt
    return store.load(name, _common.read_passphrase(confirm=False, passphrase_file=passphrase_file))
