"""`paywire ledger` (placeholder, being written)."""

import typer

ledger_app = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)
