"""The `paywire` command.

`main` is the console entry point; `run` is the same with an argument list and an exit
code, for tests. Operating errors print one line and exit non-zero, never a traceback
(set ``PAYWIRE_DEBUG=1`` to see one for a bug).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

import typer

from paywire.cli import _common
from paywire.cli.chain import deposit_command, faucet_command, withdraw_command
from paywire.cli.demo import demo_command
from paywire.cli.gateway import gateway_command
from paywire.cli.ledger import ledger_app
from paywire.cli.log import audit_command
from paywire.cli.mandate import mandate_app
from paywire.cli.pay import pay_command
from paywire.cli.serve import serve_command
from paywire.cli.task import task_app
from paywire.cli.wallet import wallet_app
from paywire.errors import PaywireError

EXIT_ERROR = 1
"""An operating error: bad input, a refused operation, a failed check."""

EXIT_USAGE = 2
"""The command line itself is wrong (click's convention)."""

EXIT_INTERNAL = 70
"""A bug (EX_SOFTWARE from sysexits.h)."""

app = typer.Typer(
    name="paywire",
    help="paywire: wallets, mandates, HTTP 402 payments and verifiable books for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    home: str = typer.Option(
        None,
        "--home",
        envvar="PAYWIRE_HOME",
        help="Where paywire keeps keys and the embedded ledger (default ~/.paywire).",
        show_default=False,
    ),
) -> None:
    _common.set_home(home)


app.add_typer(wallet_app, name="wallet")
app.add_typer(ledger_app, name="ledger")
app.add_typer(mandate_app, name="mandate")
app.add_typer(task_app, name="task")
app.command("audit")(audit_command)
app.command("demo")(demo_command)
app.command("serve")(serve_command)
app.command("gateway")(gateway_command)
app.command("pay")(pay_command)
app.command("faucet")(faucet_command)
app.command("deposit")(deposit_command)
app.command("withdraw")(withdraw_command)


def run(args: Sequence[str]) -> int:
    """Run the command line with `args`; return the exit code instead of exiting."""
    try:
        app(args=list(args), prog_name="paywire", standalone_mode=False)
    except PaywireError as error:
        _common.print_error(str(error))
        return EXIT_ERROR
    except typer.Exit as done:
        return done.exit_code
    except typer.TyperException as error:  # usage errors: typer prints them with a hint
        show = getattr(error, "show", None)
        if callable(show):
            show()
        else:
            _common.print_error(error.format_message())
        return error.exit_code
    except typer.Abort:
        _common.print_error("aborted")
        return EXIT_ERROR
    except KeyboardInterrupt:
        _common.print_error("interrupted")
        return EXIT_ERROR
    except Exception as error:  # a bug: say so plainly, keep the traceback out of sight
        if os.environ.get("PAYWIRE_DEBUG"):
            traceback.print_exc()
        _common.print_error(
            f"internal error ({type(error).__name__}: {error}); "
            "this is a bug in paywire, set PAYWIRE_DEBUG=1 to see where"
        )
        return EXIT_INTERNAL
    return 0


def main() -> None:
    """The console entry point."""
    sys.exit(run(sys.argv[1:]))
