"""The ``rjupyter`` command: a thin shell over the library.

Every behaviour lives in the library; this module parses flags (with per-host profiles), draws
progress and status, prompts on the terminal, and maps errors to one line and exit code 1 (130
after Ctrl-C). Nothing in the library imports it.
"""

from __future__ import annotations

import json
import sys
import threading
import webbrowser
from typing import Any

import click
from click.shell_completion import get_completion_class
from rich.console import Console
from rich.live import Live
from rich.table import Table

from .._errors import RJupyterError
from .._forward._tunnel import Tunnel
from .._launch._slurm import Slurm
from .._notebook import RemoteNotebook
from .._server._inventory import ServerRecord, list_servers, stop_server
from . import _run as _cli_run  # noqa: F401 - registers `run` and `exec`
from ._common import (
    cli,
    connect_kwargs,
    connection_options,
    console,
    environment_options,
    merge,
    notebook_for,
    said,
)
from ._ui import Progress, StatusLine, count_kernels

__all__ = ["main"]

START_EXAMPLES = """\b
Examples:
  rjupyter start gpu-box --venv ~/proj/.venv --dir ~/proj
  rjupyter start gpu-box --app lab --setup 'module load cuda/12'
  rjupyter start me@10.0.0.5:2222 --conda torch --json
  rjupyter start gpu-box            # with [hosts.gpu-box] in ~/.config/rjupyter/config.toml
  rjupyter start login-node --slurm "--partition=gpu --time=2:00:00 --gres=gpu:1"
"""


@cli.command(epilog=START_EXAMPLES)
@click.argument("host")
@click.option("--app", type=click.Choice(["notebook", "lab", "server"]), help="Front end.")
@click.option("--port", type=int, help="Remote port to ask for (default: any free one).")
@click.option("--local-port", type=int, help="Local port (default: any free one).")
@environment_options
@click.option("--open/--no-open", "open_", default=None, help="Open a browser (default: if any).")
@click.option("--keep-running", is_flag=True, default=None, help="Leave the server on exit.")
@click.option(
    "--slurm",
    metavar="SBATCH_OPTIONS",
    help="Run Jupyter in a Slurm job submitted on HOST (a login node) with these sbatch options.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line, then keep running.")
@connection_options
@click.pass_context
def start(ctx: click.Context, /, host: str, **flags: Any) -> None:
    """Start Jupyter on HOST, tunnel to it, and keep it up until Ctrl-C."""
    options = merge(host, {"dir": flags.pop("dir_"), "open": flags.pop("open_"), **flags})
    quiet = ctx.obj["quiet"] or options.get("as_json")
    try:
        scheduler = None if options.get("slurm") is None else Slurm.parse(options["slurm"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--slurm") from exc
    with Progress(console, quiet=bool(quiet)) as progress:
        notebook = notebook_for(host, options, progress, scheduler=scheduler)
        notebook.start()
    _serve(ctx, notebook, options)


def _serve(ctx: click.Context, notebook: RemoteNotebook, options: dict[str, Any]) -> None:
    """Print the URL (or JSON), maybe open a browser, show the status line until Ctrl-C.

    The notebook is started; this closes it however it ends (Ctrl-C, SIGTERM, an error).
    """
    try:
        if options.get("as_json"):
            facts = {
                "url": notebook.url,
                "local_port": notebook.local_port,
                "remote_port": notebook.remote_port,
                "pid": notebook.remote_pid,
                "host": notebook.host,
                "app": notebook.app,
            }
            click.echo(json.dumps(facts))
            sys.stdout.flush()
            threading.Event().wait()
        click.echo(notebook.url)
        sys.stdout.flush()
        if options.get("open", _has_browser()):
            notebook.open_browser()
        if ctx.obj["quiet"]:
            threading.Event().wait()
        _status_until_interrupted(notebook)
    finally:
        handle = notebook.close()
        if handle is not None and not ctx.obj["quiet"]:
            console.print(str(handle))


def _status_until_interrupted(notebook: RemoteNotebook) -> None:
    line = StatusLine(
        console,
        host=notebook.host,
        local_port=notebook.local_port,
        remote_port=notebook.remote_port,
    )
    console.print("[dim]Ctrl-C stops the notebook[/]")
    stop = threading.Event()
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        while not stop.wait(1.0):
            connected = notebook.connected
            kernels = count_kernels(notebook.base_url, notebook.token) if connected else None
            live.update(line.render(connected=connected, kernels=kernels))


def _has_browser() -> bool:
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    return type(browser).__name__ not in ("GenericBrowser",) or sys.platform == "darwin"


TUNNEL_EXAMPLES = """\b
Examples:
  rjupyter tunnel gpu-box 8889            # like: ssh -N -L 127.0.0.1:ANY:localhost:8889 gpu-box
  rjupyter tunnel gpu-box 8889 8888       # local port 8888 (the `jptt 8889 8888` alias)
"""


@cli.command(epilog=TUNNEL_EXAMPLES)
@click.argument("host")
@click.argument("remote_port", type=int)
@click.argument("local_port", type=int, required=False)
@click.option("--remote-host", default="127.0.0.1", help="Address to reach, seen from HOST.")
@connection_options
@click.pass_context
def tunnel(
    ctx: click.Context, /, host: str, remote_port: int, local_port: int | None, **flags: Any
) -> None:
    """Forward a local port to REMOTE_PORT on HOST until Ctrl-C."""
    options = merge(host, flags)
    with Tunnel(
        host,
        remote_port,
        remote_host=flags["remote_host"],
        local_port=local_port,
        timeout=options.get("timeout") or 30.0,
        **connect_kwargs(options, None),
    ) as forward:
        click.echo(f"http://127.0.0.1:{forward.local_port}")
        sys.stdout.flush()
        if not ctx.obj["quiet"]:
            console.print(
                f"forwarding 127.0.0.1:{forward.local_port} -> {host}:"
                f"{flags['remote_host']}:{remote_port} (Ctrl-C stops)"
            )
        threading.Event().wait()


ATTACH_EXAMPLES = """\b
Examples:
  rjupyter attach gpu-box                 # the only server running there
  rjupyter attach gpu-box --pid 41234     # one of several (see: rjupyter list gpu-box)
"""


@cli.command(epilog=ATTACH_EXAMPLES)
@click.argument("host")
@click.option("--port", type=int, help="The server's port on HOST.")
@click.option("--pid", type=int, help="The server's PID on HOST.")
@click.option("--job", help="The Slurm job running the server (HOST is the login node).")
@click.option("--local-port", type=int, help="Local port (default: any free one).")
@click.option("--stop-on-exit", is_flag=True, help="Stop the server when this command ends.")
@click.option("--open/--no-open", "open_", default=None, help="Open a browser (default: if any).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line, then keep running.")
@connection_options
@click.pass_context
def attach(ctx: click.Context, /, host: str, **flags: Any) -> None:
    """Tunnel to a Jupyter server already running on HOST; leave it running on exit."""
    options = merge(host, {"open": flags.pop("open_"), **flags})
    quiet = ctx.obj["quiet"] or options.get("as_json")
    with Progress(console, quiet=bool(quiet)) as progress:
        notebook = RemoteNotebook.attach(
            host,
            port=flags["port"],
            pid=flags["pid"],
            job_id=flags["job"],
            local_port=flags["local_port"],
            stop_on_close=flags["stop_on_exit"],
            timeout=options.get("timeout") or 60.0,
            progress=progress.step,
            **connect_kwargs(options, progress),
        )
        notebook.start()
    _serve(ctx, notebook, options)


@cli.command(
    "list", epilog="\b\nExamples:\n  rjupyter list gpu-box\n  rjupyter list gpu-box --json"
)
@click.argument("host")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@connection_options
def list_command(host: str, as_json: bool, **flags: Any) -> None:
    """List your Jupyter servers on HOST (stale runtime files are shown, never deleted)."""
    options = merge(host, flags)
    records = list_servers(
        host, timeout=options.get("timeout") or 30.0, **connect_kwargs(options, None)
    )
    if as_json:
        click.echo(json.dumps([_record_json(record) for record in records], indent=2))
        return
    table = Table("PID", "PORT", "APP", "STARTED", "BY", "STATE", "DIRECTORY", box=None)
    for record in records:
        started = record.started.astimezone().strftime("%Y-%m-%d %H:%M") if record.started else "?"
        state = "stale" if record.stale else ("kept" if record.keep_running else "running")
        table.add_row(
            str(record.pid),
            str(record.port),
            record.app or "?",
            started,
            "rjupyter" if record.managed else "hand",
            state,
            record.root_dir,
        )
    Console(highlight=False).print(table if records else f"no Jupyter servers on {host}")


def _record_json(record: ServerRecord) -> dict[str, Any]:
    return {
        "pid": record.pid,
        "port": record.port,
        "url": record.url,
        "root_dir": record.root_dir,
        "started": record.started.isoformat() if record.started else None,
        "app": record.app,
        "managed": record.managed,
        "stale": record.stale,
        "keep_running": record.keep_running,
    }


STOP_EXAMPLES = """\b
Examples:
  rjupyter stop gpu-box --pid 41234
  rjupyter stop gpu-box --port 8889
  rjupyter stop gpu-box --all-mine        # every running server of yours there
"""


@cli.command(epilog=STOP_EXAMPLES)
@click.argument("host")
@click.option("--port", type=int, help="Stop the server on this port.")
@click.option("--pid", type=int, help="Stop the server with this PID.")
@click.option("--all-mine", is_flag=True, help="Stop every running server of yours on HOST.")
@connection_options
@click.pass_context
def stop(
    ctx: click.Context,
    /,
    host: str,
    port: int | None,
    pid: int | None,
    all_mine: bool,
    **flags: Any,
) -> None:
    """Stop exactly the named Jupyter server(s) on HOST, and their kernels."""
    if [port is not None, pid is not None, all_mine].count(True) != 1:
        raise click.UsageError("name what to stop: exactly one of --port, --pid, --all-mine")
    options = merge(host, flags)
    connect = {"timeout": options.get("timeout") or 30.0, **connect_kwargs(options, None)}
    if all_mine:
        targets = [record.pid for record in list_servers(host, **connect) if not record.stale]
    else:
        targets = [pid] if pid is not None else []
    if not all_mine and port is not None:
        record = stop_server(host, port=port, **connect)
        said(ctx, f"stopped pid {record.pid} (port {record.port}) on {host}")
        return
    for target in targets:
        record = stop_server(host, pid=target, **connect)
        said(ctx, f"stopped pid {record.pid} (port {record.port}) on {host}")
    if all_mine and not targets:
        said(ctx, f"no running Jupyter servers of yours on {host}")


@cli.command(
    epilog='\b\nExamples:\n  eval "$(rjupyter completion bash)"\n'
    "  rjupyter completion fish > ~/.config/fish/completions/rjupyter.fish"
)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL."""
    completion_class = get_completion_class(shell)
    assert completion_class is not None
    click.echo(completion_class(cli, {}, "rjupyter", "_RJUPYTER_COMPLETE").source())


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0, 1 on errors, 130 after Ctrl-C)."""
    verbose = sum(arg.count("v") for arg in (argv or sys.argv[1:]) if arg.startswith("-v"))
    try:
        cli.main(args=argv, prog_name="rjupyter", standalone_mode=False)
    except click.exceptions.Abort:
        return 130
    except KeyboardInterrupt:
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (RJupyterError, ValueError, OSError) as exc:
        if verbose > 1:
            raise
        first, *rest = str(exc).splitlines() or [type(exc).__name__]
        hint = " (run with -v for details)" if rest and not verbose else ""
        click.echo(f"rjupyter: error: {first}{hint}", err=True)
        for line in rest if verbose else []:
            click.echo(f"  {line}", err=True)
        return 1
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0
