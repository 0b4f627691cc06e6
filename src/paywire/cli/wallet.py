"""`paywire wallet`: keys in encrypted keystore files (placeholder, being written)."""

import typer

wallet_app = typer.Typer(help="Keys: create, list and show wallets.", no_args_is_help=True)
