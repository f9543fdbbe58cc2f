"""``main()``: run the command line and turn what happened into an exit status.

| status | meaning |
|---|---|
| 0 | done |
| 1 | an error on the remote side or here (Jupyter failed, a remote exception, ...) |
| 2 | a usage error: a bad flag or value, options that exclude each other, a bad profile |
| 130 | interrupted (Ctrl-C) |
| 255 | the SSH connection failed (unreachable, refused, authentication, host key), as ssh |
"""

from __future__ import annotations

import click

from .._errors import RJupyterError, SSHConnectError
from . import _commands, _run  # noqa: F401 - they register the commands on `cli`
from ._common import cli
from ._ui import terminal_restored

__all__ = [
    "EXIT_CONNECTION",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "main",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_CONNECTION = 255


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (see the module's table)."""
    state: dict[str, object] = {"verbose": 0, "quiet": False}
    with terminal_restored():
        try:
            cli.main(args=argv, prog_name="rjupyter", standalone_mode=False, obj=state)
        except (click.exceptions.Abort, KeyboardInterrupt):
            return EXIT_INTERRUPTED
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else EXIT_ERROR
        except (RJupyterError, ValueError, OSError) as exc:
            return _report(exc, state)
    return EXIT_OK


def _status(exc: BaseException) -> int:
    if isinstance(exc, SSHConnectError):
        return EXIT_CONNECTION
    if isinstance(exc, ValueError):  # the library's argument checks
        return EXIT_USAGE
    return EXIT_ERROR


def _report(exc: BaseException, state: dict[str, object]) -> int:
    """One line (more with -v); with -vv the traceback too."""
    verbose = state.get("verbose", 0)
    assert isinstance(verbose, int)
    if verbose > 1:
        raise exc
    first, *rest = str(exc).splitlines() or [type(exc).__name__]
    hint = " (run with -v for details)" if rest and not verbose else ""
    click.echo(f"rjupyter: error: {first}{hint}", err=True)
    for line in rest if verbose else []:
        click.echo(f"  {line}", err=True)
    return _status(exc)
