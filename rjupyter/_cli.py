"""The ``rjupyter`` command: a thin shell over the library.

Every behaviour lives in the library; this module parses flags (with per-host profiles), draws
progress and status, prompts on the terminal, and maps errors to one line and exit code 1 (130
after Ctrl-C). Nothing in the library imports it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import webbrowser
from collections.abc import Callable
from typing import Any

import click
from click.shell_completion import get_completion_class
from rich.console import Console
from rich.live import Live
from rich.table import Table

from . import __version__
from ._api import RemoteNotebook
from ._cli_ui import Progress, StatusLine, count_kernels, prompt_answers, prompt_passphrase
from ._errors import RJupyterError
from ._forward import Tunnel
from ._profiles import load_profile
from ._servers import ServerRecord, list_servers, stop_server
from ._slurm import Slurm

__all__ = ["main"]

_console = Console(stderr=True, highlight=False)


def _connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
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


def _connect_kwargs(options: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
    interactive = sys.stdin.isatty()
    return {
        "ssh_config": options.get("ssh_config"),
        "identity_file": options.get("identity_file"),
        "jump": options.get("jump"),
        "host_key_policy": options.get("host_key_policy"),
        "auth_handler": prompt_answers(progress) if interactive else None,
        "passphrase": prompt_passphrase(progress) if interactive else None,
    }


def _merge(host: str, flags: dict[str, Any]) -> dict[str, Any]:
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
    handler.addFilter(lambda record: not record.name.startswith("rjupyter._tunnel"))
    logging.getLogger("rjupyter").addHandler(handler)


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
@click.option("--dir", "dir_", help="Remote directory to serve.")
@click.option("--venv", help="Remote virtual environment to enter.")
@click.option("--conda", help="Remote conda environment to activate.")
@click.option("--setup", multiple=True, help="Shell line to run first (repeatable).")
@click.option("--jupyter", help="The jupyter command or path on the remote host.")
@click.option("--open/--no-open", "open_", default=None, help="Open a browser (default: if any).")
@click.option("--keep-running", is_flag=True, default=None, help="Leave the server on exit.")
@click.option(
    "--slurm",
    metavar="SBATCH_OPTIONS",
    help="Run Jupyter in a Slurm job submitted on HOST (a login node) with these sbatch options.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line, then keep running.")
@_connection_options
@click.pass_context
def start(ctx: click.Context, /, host: str, **flags: Any) -> None:
    """Start Jupyter on HOST, tunnel to it, and keep it up until Ctrl-C."""
    options = _merge(host, {"dir": flags.pop("dir_"), "open": flags.pop("open_"), **flags})
    if options.get("venv") and options.get("conda"):
        raise click.UsageError("--venv and --conda exclude each other")
    quiet = ctx.obj["quiet"] or options.get("as_json")
    try:
        scheduler = None if options.get("slurm") is None else Slurm.parse(options["slurm"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--slurm") from exc
    with Progress(_console, quiet=bool(quiet)) as progress:
        notebook = RemoteNotebook(
            host,
            scheduler=scheduler,
            app=options.get("app", "notebook"),
            remote_port=options.get("port"),
            local_port=options.get("local_port"),
            workdir=options.get("dir"),
            venv=options.get("venv"),
            conda_env=options.get("conda"),
            setup=tuple(options.get("setup", ())),
            jupyter=options.get("jupyter", "jupyter"),
            keep_running=bool(options.get("keep_running")),
            abandon_timeout=options.get("abandon_timeout", 1800.0),
            timeout=options.get("timeout") or 60.0,
            progress=progress.step,
            **_connect_kwargs(options, progress),
        )
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
            _console.print(str(handle))


def _status_until_interrupted(notebook: RemoteNotebook) -> None:
    line = StatusLine(
        _console,
        host=notebook.host,
        local_port=notebook.local_port,
        remote_port=notebook.remote_port,
    )
    _console.print("[dim]Ctrl-C stops the notebook[/]")
    stop = threading.Event()
    with Live(console=_console, refresh_per_second=2, transient=False) as live:
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
@_connection_options
@click.pass_context
def tunnel(
    ctx: click.Context, /, host: str, remote_port: int, local_port: int | None, **flags: Any
) -> None:
    """Forward a local port to REMOTE_PORT on HOST until Ctrl-C."""
    options = _merge(host, flags)
    with Tunnel(
        host,
        remote_port,
        remote_host=flags["remote_host"],
        local_port=local_port,
        timeout=options.get("timeout") or 30.0,
        **_connect_kwargs(options, None),
    ) as forward:
        click.echo(f"http://127.0.0.1:{forward.local_port}")
        sys.stdout.flush()
        if not ctx.obj["quiet"]:
            _console.print(
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
@_connection_options
@click.pass_context
def attach(ctx: click.Context, /, host: str, **flags: Any) -> None:
    """Tunnel to a Jupyter server already running on HOST; leave it running on exit."""
    options = _merge(host, {"open": flags.pop("open_"), **flags})
    quiet = ctx.obj["quiet"] or options.get("as_json")
    with Progress(_console, quiet=bool(quiet)) as progress:
        notebook = RemoteNotebook.attach(
            host,
            port=flags["port"],
            pid=flags["pid"],
            job_id=flags["job"],
            local_port=flags["local_port"],
            stop_on_close=flags["stop_on_exit"],
            timeout=options.get("timeout") or 60.0,
            progress=progress.step,
            **_connect_kwargs(options, progress),
        )
        notebook.start()
    _serve(ctx, notebook, options)


@cli.command(
    "list", epilog="\b\nExamples:\n  rjupyter list gpu-box\n  rjupyter list gpu-box --json"
)
@click.argument("host")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_connection_options
def list_command(host: str, as_json: bool, **flags: Any) -> None:
    """List your Jupyter servers on HOST (stale runtime files are shown, never deleted)."""
    options = _merge(host, flags)
    records = list_servers(
        host, timeout=options.get("timeout") or 30.0, **_connect_kwargs(options, None)
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
@_connection_options
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
    options = _merge(host, flags)
    connect = {"timeout": options.get("timeout") or 30.0, **_connect_kwargs(options, None)}
    if all_mine:
        targets = [record.pid for record in list_servers(host, **connect) if not record.stale]
    else:
        targets = [pid] if pid is not None else []
    if not all_mine and port is not None:
        record = stop_server(host, port=port, **connect)
        _said(ctx, f"stopped pid {record.pid} (port {record.port}) on {host}")
        return
    for target in targets:
        record = stop_server(host, pid=target, **connect)
        _said(ctx, f"stopped pid {record.pid} (port {record.port}) on {host}")
    if all_mine and not targets:
        _said(ctx, f"no running Jupyter servers of yours on {host}")


def _said(ctx: click.Context, /, text: str) -> None:
    if not ctx.obj["quiet"]:
        click.echo(text)


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
