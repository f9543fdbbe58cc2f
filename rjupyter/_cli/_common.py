"""What the command line's commands share: the group, logging, options, and the notebook.

Nothing in the library imports the command line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from .. import __version__
from .._launch._slurm import Slurm
from .._notebook import RemoteNotebook
from ._profiles import load_profile
from ._ui import Progress, prompt_answers, prompt_passphrase

__all__ = [
    "cli",
    "connect_kwargs",
    "connection_options",
    "console",
    "environment_options",
    "merge",
    "notebook_for",
    "said",
]

console = Console(stderr=True, highlight=False)


def connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command that connects takes (like ssh's -F, -i, -J)."""
    for option in reversed(
        [
            click.option("-F", "--ssh-config", help="SSH config file (like ssh -F)."),
            click.option("-i", "--identity-file", help="Private key to try first."),
            click.option("-J", "--jump", help="Jump host(s), like ssh -J."),
            click.option(
                "--host-key-policy",
                type=click.Choice(["reject", "accept-new", "no"]),
                help="Unknown host keys: reject (default), accept-new, or no checking.",
            ),
            click.option("--timeout", type=float, help="Seconds to connect and get ready."),
        ]
    ):
        func = option(func)
    return func


def environment_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """How the remote environment is entered: the same for start, run and exec."""
    for option in reversed(
        [
            click.option("--dir", "dir_", help="Remote working directory."),
            click.option("--venv", help="Remote virtual environment to enter."),
            click.option("--conda", help="Remote conda environment to activate."),
            click.option("--setup", multiple=True, help="Shell line to run first (repeatable)."),
            click.option("--jupyter", help="The jupyter command or path on the remote host."),
        ]
    ):
        func = option(func)
    return func


def notebook_for(
    host: str,
    options: dict[str, Any],
    progress: Progress,
    *,
    app: str | None = None,
    scheduler: Slurm | None = None,
) -> RemoteNotebook:
    """A RemoteNotebook from merged flags and profile (not started)."""
    if options.get("venv") and options.get("conda"):
        raise click.UsageError("--venv and --conda exclude each other")
    return RemoteNotebook(
        host,
        scheduler=scheduler,
        app=app or options.get("app", "notebook"),
        remote_port=options.get("port"),
        local_port=options.get("local_port"),
        workdir=options.get("dir"),
        venv=options.get("venv"),
        conda_env=options.get("conda"),
        setup=tuple(options.get("setup", ())),
        jupyter=options.get("jupyter", "jupyter"),
        keep_running=bool(options.get("keep_running")) and app is None,
        abandon_timeout=options.get("abandon_timeout", 1800.0),
        timeout=options.get("timeout") or 60.0,
        progress=progress.step,
        **connect_kwargs(options, progress),
    )


def connect_kwargs(options: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
    interactive = sys.stdin.isatty()
    return {
        "ssh_config": options.get("ssh_config"),
        "identity_file": options.get("identity_file"),
        "jump": options.get("jump"),
        "host_key_policy": options.get("host_key_policy"),
        "auth_handler": prompt_answers(progress) if interactive else None,
        "passphrase": prompt_passphrase(progress) if interactive else None,
    }


def merge(host: str, flags: dict[str, Any]) -> dict[str, Any]:
    """Profile values for ``host``, overridden by every flag given on the command line."""
    merged = load_profile(host)
    merged.update({key: value for key, value in flags.items() if value not in (None, ())})
    return merged


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Run `rjupyter COMMAND --help` for the examples of each command.",
)
@click.version_option(__version__, "-V", "--version", prog_name="rjupyter")
@click.option("-v", "--verbose", count=True, help="-v logs steps, -vv debug and tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the URL / JSON (for scripts).")
@click.pass_context
def cli(ctx: click.Context, /, verbose: int, quiet: bool) -> None:
    """Remote Jupyter over SSH in one command: start, tunnel, attach, list, stop."""
    ctx.obj = {"verbose": verbose, "quiet": quiet}
    _configure_logging(verbose)


def _configure_logging(verbose: int) -> None:
    """-v: rjupyter's steps; -vv: debug (paramiko's too with -vvv). Default: rjupyter's warnings.

    Without -v, other libraries' log lines (paramiko reporting a refused forwarded connection
    while the server comes up, say) stay out of the terminal.
    """
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    if verbose:
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
        if verbose < 3:
            logging.getLogger("paramiko").setLevel(logging.WARNING)
        return
    root.addHandler(logging.NullHandler())
    handler.setFormatter(logging.Formatter("rjupyter: %(levelname)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    handler.addFilter(lambda record: not record.name.startswith("rjupyter._forward._forwarder"))
    logging.getLogger("rjupyter").addHandler(handler)


def said(ctx: click.Context, /, text: str) -> None:
    if not ctx.obj["quiet"]:
        click.echo(text)
