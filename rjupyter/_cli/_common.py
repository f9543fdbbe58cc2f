"""What the command line's commands share: the group, global flags, options, and the notebook.

Every command is a :class:`Command`: it takes the global flags (``-v``, ``-q``) anywhere on the
line, folds the hidden old spellings of its options into the new ones, and rejects options that
exclude each other. Nothing in the library imports the command line.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
from rich.console import Console

from .. import __version__
from .._launch._slurm import Slurm
from .._notebook import RemoteNotebook
from ._complete import complete_host
from ._profiles import (
    APP,
    EXCLUSIVE_KEYS,
    HOST_KEY_POLICY,
    NODE_HOST_KEY_POLICY,
    PORT,
    SECONDS,
    SLURM,
    load_profile,
)
from ._ui import Progress, prompt_answers, prompt_passphrase

__all__ = [
    "Command",
    "alias",
    "apply",
    "cli",
    "connect_kwargs",
    "connection_options",
    "console",
    "environment_options",
    "host_argument",
    "merge",
    "notebook_for",
    "said",
    "server_options",
    "timeout_of",
]

console = Console(stderr=True, highlight=False)
_UNSET: tuple[object, ...] = (None, (), False)


def _count_verbose(ctx: click.Context, _: click.Parameter, value: int) -> None:
    state = ctx.ensure_object(dict)
    state["verbose"] = state.get("verbose", 0) + (value or 0)


def _set_quiet(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    state = ctx.ensure_object(dict)
    state["quiet"] = state.get("quiet", False) or value


def _global_params() -> list[click.Parameter]:
    """``-v`` and ``-q``: accepted before and after the command name, and added up."""
    return [
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            callback=_count_verbose,
            help="-v logs steps, -vv debug and tracebacks (global; anywhere on the line).",
        ),
        click.Option(
            ["-q", "--quiet"],
            is_flag=True,
            expose_value=False,
            callback=_set_quiet,
            help="Print only the URL / JSON (global; anywhere on the line).",
        ),
    ]


class AliasOption(click.Option):
    """A hidden old spelling of an option: its value goes to ``alias_of``."""

    def __init__(self, *args: Any, alias_of: str, **kwargs: Any) -> None:
        kwargs["hidden"] = True
        super().__init__(*args, **kwargs)
        self.alias_of = alias_of


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def apply(func: Callable[..., Any], decorators: list[Decorator]) -> Callable[..., Any]:
    """``func`` under ``decorators``, the first one outermost (as when written above it)."""
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def alias(old: str, new: str, **kwargs: Any) -> Decorator:
    """Accept ``old`` (hidden) as another spelling of the option whose parameter is ``new``."""
    dest = "alias_" + old.lstrip("-").replace("-", "_")
    return click.option(old, dest, cls=AliasOption, alias_of=new, **kwargs)


class Command(click.Command):
    """A command with the global flags, old spellings folded in, and exclusive options checked.

    Args:
        exclusive: Groups of parameter names of which at most one may be given.
    """

    def __init__(self, *args: Any, exclusive: Sequence[Sequence[str]] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_params())
        self.exclusive = tuple(tuple(group) for group in exclusive)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        for param in self.params:
            if isinstance(param, AliasOption) and param.name is not None:
                self._fold(ctx, param)
        for group in self.exclusive:
            given = [name for name in group if ctx.params.get(name) not in _UNSET]
            if len(given) > 1:
                raise click.UsageError(
                    f"{' and '.join(self._flag(n) for n in given)} exclude each other; give one",
                    ctx,
                )
        return rest

    def _fold(self, ctx: click.Context, param: AliasOption) -> None:
        assert param.name is not None
        value = ctx.params.pop(param.name, None)
        if value in _UNSET:
            return
        if ctx.params.get(param.alias_of) not in _UNSET:
            raise click.UsageError(
                f"{param.opts[0]} is the old name of {self._flag(param.alias_of)}; give one", ctx
            )
        ctx.params[param.alias_of] = value

    def _flag(self, name: str) -> str:
        for param in self.params:
            if param.name == name and not isinstance(param, AliasOption):
                return max(param.opts, key=len) if param.opts else name
        return name

    def invoke(self, ctx: click.Context) -> Any:
        _configure_logging(ctx.ensure_object(dict).get("verbose", 0))
        return super().invoke(ctx)


class Group(click.Group):
    """The ``rjupyter`` group: its commands are :class:`Command`s."""

    command_class = Command


def host_argument(func: Callable[..., Any]) -> Callable[..., Any]:
    """HOST, completed from ssh_config ``Host`` names and profile tables."""
    return click.argument("host", shell_complete=complete_host)(func)


def connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command that connects takes (like ssh's -F, -i, -J)."""
    config_file = click.Path(dir_okay=False)
    return apply(
        func,
        [
            click.option("-F", "--ssh-config", type=config_file, help="SSH config file (ssh -F)."),
            click.option(
                "-i", "--identity-file", type=config_file, help="Private key to try first."
            ),
            click.option("-J", "--jump", help="Jump host(s), like ssh -J."),
            click.option(
                "--host-key-policy",
                type=HOST_KEY_POLICY,
                help="Unknown host keys: reject (default), accept-new, or no checking.",
            ),
            click.option(
                "--timeout",
                type=SECONDS,
                help="Seconds to connect and get ready (more than 0; default 60, 30 to list).",
            ),
        ],
    )


def environment_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """How the remote environment is entered and where Jupyter runs (on HOST, or in a Slurm
    job): the same for every command that starts Jupyter (start, run, exec)."""
    return apply(
        func,
        [
            click.option("--workdir", help="Remote working directory."),
            alias("--dir", "workdir"),
            click.option("--venv", help="Remote virtual environment to enter."),
            click.option("--conda-env", help="Remote conda environment to activate."),
            alias("--conda", "conda_env"),
            click.option("--setup", multiple=True, help="Shell line to run first (repeatable)."),
            click.option("--jupyter", help="The jupyter command or path on the remote host."),
            click.option(
                "--login-shell/--no-login-shell",
                default=None,
                help="Run setup lines and Jupyter in your login environment (default; "
                "/etc/profile, module, conda) or in a plain /bin/sh.",
            ),
            click.option(
                "--slurm",
                type=SLURM,
                metavar="SBATCH_OPTIONS",
                help="Run Jupyter in a Slurm job submitted on HOST (a login node) with these "
                "sbatch options.",
            ),
            click.option(
                "--node-host-key-policy",
                type=NODE_HOST_KEY_POLICY,
                help="With --slurm: a compute node key neither known_hosts nor the login node "
                "knows: reject (default) or accept-new. Never changes the login node's check.",
            ),
            click.option(
                "--tcp",
                is_flag=True,
                default=None,
                help="Jupyter on a TCP port of HOST's loopback, not on a private Unix socket.",
            ),
        ],
    )


def server_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The server a fresh start asks for: app, ports, keep running, abandon watchdog."""
    return apply(
        func,
        [
            click.option("--app", type=APP, help="Front end (default notebook)."),
            click.option(
                "--remote-port", type=PORT, help="Remote port to ask for (default: any free one)."
            ),
            alias("--port", "remote_port", type=PORT),
            click.option("--local-port", type=PORT, help="Local port (default: any free one)."),
        ],
    )


def notebook_for(
    host: str,
    options: dict[str, Any],
    progress: Progress,
    *,
    app: str | None = None,
) -> RemoteNotebook:
    """A RemoteNotebook from merged flags and profile (not started)."""
    scheduler = options.get("slurm")
    assert scheduler is None or isinstance(scheduler, Slurm)
    node_policy = options.get("node_host_key_policy")
    if scheduler is not None and node_policy is not None:
        scheduler = dataclasses.replace(scheduler, node_host_key_policy=node_policy)
    return RemoteNotebook(
        host,
        scheduler=scheduler,
        app=app or options.get("app", "notebook"),
        remote_port=options.get("remote_port"),
        local_port=options.get("local_port"),
        unix_socket=False if options.get("tcp") else None,
        workdir=options.get("workdir"),
        venv=options.get("venv"),
        conda_env=options.get("conda_env"),
        setup=tuple(options.get("setup", ())),
        jupyter=options.get("jupyter", "jupyter"),
        login_shell=bool(options.get("login_shell", True)),
        keep_running=bool(options.get("keep_running")) and app is None,
        abandon_timeout=options.get("abandon_timeout", 1800.0),
        timeout=timeout_of(options, 60.0),
        progress=progress.step,
        **connect_kwargs(options, progress),
    )


def timeout_of(options: dict[str, Any], default: float) -> float:
    """The --timeout given (flag or profile), else ``default``; 0 never gets here (refused)."""
    value = options.get("timeout")
    return default if value is None else float(value)


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
    """Profile values for ``host``, overridden by every flag given on the command line.

    A flag replaces the profile's whole group of exclusive keys (``--conda-env`` drops a
    profile's ``venv``).
    """
    merged = load_profile(host)
    given = {key: value for key, value in flags.items() if value not in (None, ())}
    for group in EXCLUSIVE_KEYS:
        if any(key in given for key in group):
            for key in group:
                merged.pop(key, None)
    merged.update(given)
    return merged


@click.group(
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Run `rjupyter COMMAND --help` for the examples of each command. Exit status: 0 "
    "done, 1 a remote or other error, 2 a usage or profile error, 130 interrupted (Ctrl-C), "
    "255 the SSH connection failed (as ssh).",
    params=_global_params(),
)
@click.version_option(__version__, "-V", "--version", prog_name="rjupyter")
@click.pass_context
def cli(ctx: click.Context, /) -> None:
    """Remote Jupyter over SSH in one command: start, tunnel, attach, list, stop, run, exec."""
    state = ctx.ensure_object(dict)
    state.setdefault("verbose", 0)
    state.setdefault("quiet", False)


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
