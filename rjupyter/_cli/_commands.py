"""``rjupyter start``, ``tunnel``, ``attach``, ``list``, ``stop`` and ``completion``.

Every behaviour lives in the library; these parse flags (with per-host profiles), draw progress
and status, and print what a script reads on stdout.
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

from .._forward._forwards import Forward as RemoteForward
from .._forward._tunnel import Tunnel
from .._notebook import RemoteNotebook
from .._server._inventory import ServerRecord, list_servers, stop_server, stop_servers
from ._common import (
    alias,
    cli,
    connect_kwargs,
    connection_options,
    console,
    environment_options,
    host_argument,
    merge,
    notebook_for,
    said,
    server_options,
    timeout_of,
)
from ._forwards import FORWARD, Forward, forward_option, forwards_from
from ._profiles import IDLE_SECONDS, PORT
from ._ui import Progress, StatusLine, count_kernels

__all__ = ["attach", "completion", "list_command", "start", "stop", "tunnel"]

START_EXAMPLES = """\b
Examples:
  rjupyter start gpu-box --venv ~/proj/.venv --workdir ~/proj
  rjupyter start gpu-box --app lab --setup 'module load cuda/12'
  rjupyter start me@10.0.0.5:2222 --conda-env torch --json
  rjupyter start gpu-box            # with [hosts.gpu-box] in ~/.config/rjupyter/config.toml
  rjupyter start login-node --slurm "--partition=gpu --time=2:00:00 --gres=gpu:1"
  rjupyter start gpu-box -L 6006          # TensorBoard's port too, over the same login
"""


@cli.command(epilog=START_EXAMPLES, exclusive=[("venv", "conda_env")])
@host_argument
@server_options
@environment_options
@click.option("--open/--no-open", "open_", default=None, help="Open a browser (default: if any).")
@click.option("--keep-running", is_flag=True, default=None, help="Leave the server on exit.")
@click.option(
    "--abandon-timeout",
    type=IDLE_SECONDS,
    help="Seconds without this command after which the server stops itself (0: never).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line, then keep running.")
@forward_option
@connection_options
@click.pass_context
def start(ctx: click.Context, /, host: str, **flags: Any) -> None:
    """Start Jupyter on HOST, tunnel to it, and keep it up until Ctrl-C."""
    options = merge(host, {"open": flags.pop("open_"), **flags})
    quiet = ctx.obj["quiet"] or options.get("as_json")
    with Progress(console, quiet=bool(quiet)) as progress:
        notebook = notebook_for(host, options, progress)
        notebook.start()
    _serve(ctx, notebook, options)


def _open_forwards(notebook: RemoteNotebook, wanted: tuple[Forward, ...]) -> list[RemoteForward]:
    """Open each ``-L`` over the notebook's login (the notebook closes them)."""
    return [
        notebook.forward(
            each.remote_port,
            local_port=each.local_port,
            remote_host=each.remote_host or "127.0.0.1",
        )
        for each in wanted
    ]


def _serve(ctx: click.Context, notebook: RemoteNotebook, options: dict[str, Any]) -> None:
    """Print the URL (or JSON), maybe open a browser, show the status line until Ctrl-C.

    The notebook is started; this closes it however it ends (Ctrl-C, SIGTERM, an error).
    """
    try:
        forwards = _open_forwards(notebook, tuple(options.get("forwards", ())))
        if options.get("as_json"):
            facts = {
                "url": notebook.url,
                "base_url": notebook.base_url,
                "local_port": notebook.local_port,
                "remote_port": notebook.remote_port,
                "remote_socket": notebook.remote_socket,
                "pid": notebook.remote_pid,
                "host": notebook.host,
                "app": notebook.app,
                "forwards": [
                    {"local_port": each.local_port, "remote": each.remote} for each in forwards
                ],
            }
            click.echo(json.dumps(facts))
            sys.stdout.flush()
            threading.Event().wait()
        click.echo(notebook.url)
        sys.stdout.flush()
        if options.get("open", _has_browser()):
            notebook.open_browser()  # never the URL on a browser's command line
        if ctx.obj["quiet"]:
            threading.Event().wait()
        _status_until_interrupted(notebook, forwards)
    finally:
        handle = notebook.close()
        if handle is not None and not ctx.obj["quiet"]:
            console.print(str(handle))


def _status_until_interrupted(notebook: RemoteNotebook, forwards: list[RemoteForward]) -> None:
    line = StatusLine(
        console,
        host=notebook.host,
        local_port=notebook.local_port,
        remote=notebook.remote_socket or str(notebook.remote_port),
        forwards=[(each.local_port, str(each.remote)) for each in forwards],
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
  rjupyter tunnel gpu-box -L 8889         # like: ssh -N -L 127.0.0.1:ANY:localhost:8889 gpu-box
  rjupyter tunnel gpu-box -L 8888:8889    # local port 8888 to remote port 8889
  rjupyter tunnel gpu-box -L 8888:8889 -L 6006:6006      # several ports, one login
  rjupyter tunnel gpu-box -L 5432:db.internal:5432       # a host that gpu-box reaches
  rjupyter tunnel gpu-box -L 8080:/run/user/1000/app.sock # a Unix socket on gpu-box
"""


@cli.command(epilog=TUNNEL_EXAMPLES)
@host_argument
@click.argument("ports", nargs=-1, type=PORT, metavar="")
@click.option(
    "-L",
    "--forward",
    "forwards",
    type=FORWARD,
    multiple=True,
    metavar="[LOCAL:][HOST:]REMOTE",
    help="Forward local port LOCAL (default: any free one) to port REMOTE on HOST as seen from "
    "the remote host (default --remote-host), or to the Unix socket at path REMOTE there, like "
    "ssh -L. Repeatable.",
)
@click.option("--remote-host", default="127.0.0.1", help="Address to reach, seen from HOST.")
@click.option("--local-port", type=PORT, help="Local port of a single -L without LOCAL.")
@click.option(
    "--spare-channels",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Channels to keep open to each target ahead of new connections (each saves a new "
    "connection one round trip; a browser makes several per page). For HTTP servers: the "
    "target sees connections before any client makes them.",
)
@connection_options
@click.pass_context
def tunnel(ctx: click.Context, /, host: str, **flags: Any) -> None:
    """Forward local ports to ports on HOST (or reachable from it) until Ctrl-C.

    The old form `tunnel HOST REMOTE_PORT [LOCAL_PORT]` still works.
    """
    spares = flags.pop("spare_channels")
    options = merge(host, flags)
    _hold(ctx, host, forwards_from(ctx, flags), options, spares)


def _hold(
    ctx: click.Context, host: str, wanted: list[Forward], options: dict[str, Any], spares: int
) -> None:
    first, *more = wanted
    forward = Tunnel(
        host,
        first.remote_port,
        remote_host=first.remote_host,
        local_port=first.local_port,
        timeout=timeout_of(options, 30.0),
        spare_channels=spares,
        **connect_kwargs(options, None),
    )
    for each in more:
        forward.forward_also(
            each.remote_port,
            remote_host=each.remote_host,
            local_port=each.local_port,
            spare_channels=spares,
        )
    with forward:
        ports = [forward.local_port, *forward.more_local_ports]
        for port, each in zip(ports, wanted, strict=True):
            click.echo(f"http://127.0.0.1:{port}")
            if not ctx.obj["quiet"]:
                console.print(f"forwarding 127.0.0.1:{port} -> {host}:{each.remote}")
        sys.stdout.flush()
        if not ctx.obj["quiet"]:
            console.print("[dim]Ctrl-C stops the tunnel[/]")
        threading.Event().wait()


ATTACH_EXAMPLES = """\b
Examples:
  rjupyter attach gpu-box                 # the only server running there
  rjupyter attach gpu-box --pid 41234     # one of several (see: rjupyter list gpu-box)
  rjupyter attach login-node --job-id 1234 --json
"""


@cli.command(epilog=ATTACH_EXAMPLES, exclusive=[("port", "pid", "job_id")])
@host_argument
@click.option("--port", type=PORT, help="The server's port on HOST.")
@click.option("--pid", type=click.IntRange(min=1), help="The server's PID on HOST.")
@click.option(
    "--job-id",
    type=click.IntRange(min=0),
    help="The Slurm job running the server (HOST is the login node).",
)
@alias("--job", "job_id", type=click.IntRange(min=0))
@click.option("--local-port", type=PORT, help="Local port (default: any free one).")
@click.option(
    "--stop-on-close", is_flag=True, help="Stop the server (and its kernels) when this ends."
)
@alias("--stop-on-exit", "stop_on_close", is_flag=True)
@click.option("--open/--no-open", "open_", default=None, help="Open a browser (default: if any).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line, then keep running.")
@forward_option
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
            job_id=flags["job_id"],
            local_port=options.get("local_port"),
            stop_on_close=bool(flags["stop_on_close"]),
            timeout=timeout_of(options, 60.0),
            progress=progress.step,
            **connect_kwargs(options, progress),
        )
        notebook.start()
    _serve(ctx, notebook, options)


@cli.command(
    "list", epilog="\b\nExamples:\n  rjupyter list gpu-box\n  rjupyter list gpu-box --json"
)
@host_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@connection_options
def list_command(host: str, as_json: bool, **flags: Any) -> None:
    """List your Jupyter servers on HOST (stale runtime files are shown, never deleted)."""
    options = merge(host, flags)
    records = list_servers(host, timeout=timeout_of(options, 30.0), **connect_kwargs(options, None))
    if as_json:
        click.echo(json.dumps([_record_json(record) for record in records], indent=2))
        return
    table = Table("PID", "PORT", "APP", "STARTED", "BY", "STATE", "DIRECTORY", box=None)
    for record in records:
        started = record.started.astimezone().strftime("%Y-%m-%d %H:%M") if record.started else "?"
        state = "stale" if record.stale else ("kept" if record.keep_running else "running")
        table.add_row(
            str(record.pid),
            "socket" if record.socket else str(record.port),
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
        "socket": record.socket,
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
  rjupyter stop gpu-box --all-mine        # every running server of yours there, one login
"""


@cli.command(epilog=STOP_EXAMPLES, exclusive=[("port", "pid", "all_mine")])
@host_argument
@click.option("--port", type=PORT, help="Stop the server on this port.")
@click.option("--pid", type=click.IntRange(min=1), help="Stop the server with this PID.")
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
    if port is None and pid is None and not all_mine:
        raise click.UsageError("name what to stop: exactly one of --port, --pid, --all-mine", ctx)
    options = merge(host, flags)
    connect = {"timeout": timeout_of(options, 30.0), **connect_kwargs(options, None)}
    if all_mine:
        records = stop_servers(host, **connect)
        if not records:
            said(ctx, f"no running Jupyter servers of yours on {host}")
    else:
        records = [stop_server(host, pid=pid, port=port, **connect)]
    for record in records:
        where = f"socket {record.socket}" if record.socket else f"port {record.port}"
        said(ctx, f"stopped pid {record.pid} ({where}) on {host}")


@cli.command(
    epilog='\b\nExamples:\n  eval "$(rjupyter completion bash)"\n'
    "  rjupyter completion fish > ~/.config/fish/completions/rjupyter.fish"
)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (commands, flags, hosts, key files)."""
    completion_class = get_completion_class(shell)
    assert completion_class is not None
    click.echo(completion_class(cli, {}, "rjupyter", "_RJUPYTER_COMPLETE").source())
