"""Finding and stopping the user's Jupyter servers on a host: list_servers, stop_server.

One remote script (``INVENTORY_SCRIPT``) reads rjupyter's run directories and Jupyter's runtime
files (``jpserver-<pid>.json``) and the state of each PID they name. Unlike ``jupyter server
list``, it deletes nothing: on a cluster with a shared home, a runtime file whose PID is not alive
*here* may belong to a server on another node, so it is reported as ``stale`` and left alone.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from .._deadline import Deadline
from .._errors import RJupyterError
from .._ssh._connection import ConnectionSlot, SSHConnection, open_connection
from .._ssh._options import (
    CONNECT_TIMEOUT,
    AuthHandler,
    ConfigPath,
    ConnectOptions,
    JumpHosts,
    Passphrase,
    connect_options,
)
from ._remote import RemoteServer
from ._scripts import APPS, INVENTORY_SCRIPT
from ._startup import ServerInfo

__all__ = [
    "ServerRecord",
    "find_server",
    "inventory",
    "list_servers",
    "parse_inventory",
    "server_from_record",
    "stop_server",
    "stop_servers",
]


_MODULES = {"jupyter_server": "server", "jupyterlab": "lab", "notebook": "notebook"}


def app_of(command: str) -> str | None:
    """Which front end a Jupyter command line runs (``.../jupyter-lab ...``, ``jupyter lab``,
    ``python -m jupyterlab``); None for anything else, kernels included."""
    words = [os.path.basename(word) for word in command.split()]
    if not words:
        return None  # no command line: a process that just ended (or a kernel thread)
    for word, following in zip(words, [*words[1:], ""], strict=True):
        if word.startswith("jupyter-") and word[8:] in APPS:
            return word[8:]
        if word == "jupyter" and following in APPS:
            return following
        if word == "-m" and following in _MODULES:
            return _MODULES[following]
    return None


@dataclass(frozen=True)
class ServerRecord:
    """A Jupyter server of yours on a remote host, as its runtime file describes it.

    Attributes:
        pid: Its process id on that host.
        port: The port it listens on (on the host's loopback, usually); None on a Unix socket.
        url: Its URL as the host sees it, without the token.
        root_dir: The directory it serves.
        started: When it started (its runtime file's time), if known.
        app: ``"lab"``, ``"notebook"`` or ``"server"`` when its command line says so.
        managed: True when rjupyter started it.
        stale: True when its PID is not a live Jupyter on this host (the runtime file was left
            behind, or the server runs on another machine sharing this home directory).
        keep_running: True when rjupyter started it with ``keep_running=True``.
        other_host: The host it was started on, when rjupyter's record says that is another
            machine sharing this home directory (it is then ``stale`` here); else None.
        socket: The Unix socket it listens on, or None on a TCP port.
    """

    pid: int
    port: int | None
    url: str
    root_dir: str
    started: datetime.datetime | None
    app: str | None
    managed: bool
    stale: bool
    keep_running: bool = False
    other_host: str | None = None
    socket: str | None = None
    runtime_file: str = field(default="", repr=False)
    run_dir: str | None = field(default=None, repr=False)
    base_url: str = field(default="/", repr=False)
    token: str = field(default="", repr=False)
    process_start: str = field(default="", repr=False)


@dataclass(frozen=True)
class _Run:
    """One of rjupyter's run dirs: where and when its server was started."""

    path: str
    keep: bool
    host: str
    boot: str
    start: str


@dataclass(frozen=True)
class _Process:
    """A process a record names, as the host saw it."""

    state: str
    uid: str
    start: str
    epoch: float | None
    command: str


@dataclass(frozen=True)
class _Here:
    """The host the inventory ran on."""

    host: str = ""
    boot: str = ""
    uid: str = ""


#: A process started this long after its runtime file was written is not the one it describes.
_CLOCK_SLACK = 60.0


def parse_inventory(output: str) -> list[ServerRecord]:
    """Turn the inventory script's output into records, newest first."""
    here = _Here()
    runs: dict[int, _Run] = {}
    processes: dict[int, _Process] = {}
    files: list[tuple[str, float, dict[str, object]]] = []
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        fields = rest.split("\t", 5 if kind == "RJ-PROC" else -1)  # a command line may hold tabs
        if kind == "RJ-HOST" and len(fields) == 3:
            here = _Here(*fields)
        elif kind == "RJ-RUN" and len(fields) >= 4 and fields[1].isdigit():
            host, boot, start = [*fields[4:], "", "", ""][:3]
            run = _Run(fields[0], fields[2] == "keep", host, boot, start)
            if int(fields[1]) not in runs or host == here.host:
                runs[int(fields[1])] = run
        elif kind == "RJ-PROC" and len(fields) == 6 and fields[0].isdigit():
            epoch = float(fields[4]) if fields[4].isdigit() else None
            processes[int(fields[0])] = _Process(fields[1], fields[2], fields[3], epoch, fields[5])
        elif kind == "RJ-FILE" and len(fields) >= 3:
            try:
                content = json.loads("\t".join(fields[2:]))
                mtime = float(fields[1])
            except ValueError:
                continue
            if isinstance(content, dict) and isinstance(content.get("pid"), int):
                files.append((fields[0], mtime, content))
    records = [
        _record(path, mtime, data, here=here, runs=runs, processes=processes)
        for path, mtime, data in files
    ]
    return sorted(records, key=lambda record: record.started or _EPOCH, reverse=True)


_EPOCH = datetime.datetime.fromtimestamp(0, tz=datetime.timezone.utc)


def _other_host(run: _Run | None, here: _Here) -> str | None:
    """The host a run dir was made on, when that is not this one."""
    if run is None or not run.host or not here.host or run.host == here.host:
        return None
    return run.host


def _alive(process: _Process | None, run: _Run | None, here: _Here, mtime: float) -> bool:
    """True when the PID is still the server its records describe, on this host."""
    if process is None or process.state in ("", "Z") or _other_host(run, here):
        return False
    if here.uid and process.uid != here.uid:
        return False  # another user's process under a reused PID
    if run is not None and run.boot and here.boot and run.boot != here.boot:
        return False  # started before a reboot
    if run is not None and run.start:
        return process.start == run.start  # the very process rjupyter started
    if app_of(process.command) is None:
        return False  # not a Jupyter server (a kernel's command line mentions jupyter too)
    return process.epoch is None or not mtime or process.epoch <= mtime + _CLOCK_SLACK


def _record(
    path: str,
    mtime: float,
    data: dict[str, object],
    *,
    here: _Here,
    runs: dict[int, _Run],
    processes: dict[int, _Process],
) -> ServerRecord:
    pid = int(str(data["pid"]))
    process = processes.get(pid)
    run = runs.get(pid)
    url = str(data.get("url", "")).split("?", 1)[0]
    sock = str(data.get("sock") or "") or None
    return ServerRecord(
        pid=pid,
        port=None if sock else int(str(data.get("port", 0))),
        socket=sock,
        url=url,
        root_dir=str(data.get("root_dir") or data.get("notebook_dir") or ""),
        started=datetime.datetime.fromtimestamp(mtime, tz=datetime.timezone.utc) if mtime else None,
        app=app_of(process.command) if process else None,
        managed=run is not None,
        stale=not _alive(process, run, here, mtime),
        keep_running=run is not None and run.keep,
        other_host=_other_host(run, here),
        runtime_file=path,
        run_dir=run.path if run is not None else None,
        base_url=str(data.get("base_url") or "/"),
        token=str(data.get("token") or ""),
        process_start=process.start if process is not None else "",
    )


def inventory(connection: SSHConnection, runtime_dirs: Sequence[str] = ()) -> list[ServerRecord]:
    """The servers on the connected host.

    Raises:
        SSHConnectError: The remote command failed.
    """
    _, output = connection.run(INVENTORY_SCRIPT, runtime_dirs)
    return parse_inventory(output)


def find_server(
    records: Sequence[ServerRecord], *, host: str, pid: int | None, port: int | None
) -> ServerRecord:
    """The one live server matching ``pid`` or ``port`` (or the only live one).

    Raises:
        RJupyterError: None matches, it is stale, or several match.
    """
    live = [record for record in records if not record.stale]
    if pid is not None or port is not None:
        matches = [r for r in records if r.pid == pid or (pid is None and r.port == port)]
        what = f"pid {pid}" if pid is not None else f"port {port}"
        if not matches:
            raise RJupyterError(
                f"no Jupyter server with {what} on {host}; rjupyter.list_servers({host!r}) "
                f"(or `rjupyter list {host}`) shows the running ones: {_summary(live)}"
            )
        alive = [record for record in matches if not record.stale]
        elsewhere = [record.other_host for record in matches if record.other_host]
        if not alive and elsewhere:
            raise RJupyterError(
                f"the Jupyter server with {what} was started on {elsewhere[0]}, not on {host} "
                f"(they share a home directory); name {elsewhere[0]} as the host to reach it"
            )
        if not alive:
            raise RJupyterError(
                f"the Jupyter server with {what} on {host} is not running (its runtime file "
                f"{matches[0].runtime_file} is stale, or it runs on another machine)"
            )
        return alive[0]
    if len(live) != 1:
        raise RJupyterError(
            f"{len(live)} running Jupyter servers on {host}; name one with pid= or port=: "
            f"{_summary(live)}"
        )
    return live[0]


def _summary(records: Sequence[ServerRecord]) -> str:
    return ", ".join(f"pid {r.pid} {_where(r)} ({r.root_dir})" for r in records) or "none"


def _where(record: ServerRecord) -> str:
    return f"socket {record.socket}" if record.socket else f"port {record.port}"


def server_from_record(connection: SSHConnection, record: ServerRecord) -> RemoteServer:
    """A handle on a running server, to tunnel to it or stop it."""
    if not record.token:
        raise RJupyterError(
            f"the server pid {record.pid} on {connection.host.name} has no token in its runtime "
            "file (password or no authentication); rjupyter only tunnels to token-protected servers"
        )
    info = ServerInfo(
        port=record.port or 0,
        path=record.base_url,
        token=record.token,
        pid=record.pid,
        run_dir=record.run_dir,
        socket=record.socket,
    )
    return RemoteServer(
        ConnectionSlot(connection),
        host=connection.host.name,
        info=info,
        runtime_file=record.runtime_file,
        process_start=record.process_start,
    )


def _connect(host: str, options: ConnectOptions, timeout: float) -> SSHConnection:
    return open_connection(host, options, Deadline(timeout))


def list_servers(
    host: str,
    *,
    ssh_config: ConfigPath | None = None,
    identity_file: ConfigPath | None = None,
    password: str | None = None,
    passphrase: Passphrase | None = None,
    host_key_policy: str | None = None,
    jump: JumpHosts | None = None,
    auth_handler: AuthHandler | None = None,
    runtime_dirs: Sequence[str] = (),
    timeout: float = CONNECT_TIMEOUT,
) -> list[ServerRecord]:
    """List your Jupyter servers on ``host``, newest first, without deleting anything.

    Reads Jupyter's runtime files (``$JUPYTER_RUNTIME_DIR``, ``~/.local/share/jupyter/runtime``
    and ``runtime_dirs``) and rjupyter's own records. Stale runtime files are listed with
    ``stale=True`` and left in place.

    Args:
        host: An alias from the SSH config, ``host``, ``user@host`` or ``user@host:port``.
        ssh_config: SSH config file to read (default ``~/.ssh/config``).
        identity_file: A private key file to try first.
        password: A password for password authentication.
        passphrase: For encrypted keys: the passphrase, or a callable given the key's path.
        host_key_policy: ``"reject"``, ``"accept-new"`` or ``"no"``; None (default) follows
            ``StrictHostKeyChecking`` in the SSH config, itself defaulting to ``"reject"``.
        jump: Jump host(s) like ``ProxyJump``; None follows the SSH config.
        auth_handler: ``auth_handler(title, instructions, prompts)`` answers keyboard-interactive
            prompts (``prompts`` is a list of ``(prompt, echo)``); returns one answer each.
        runtime_dirs: More directories to look for Jupyter runtime files in.
        timeout: Seconds allowed for connecting.

    Returns:
        The servers found, newest first.

    Raises:
        SSHConnectError: The host cannot be reached (and its subclasses).
    """
    options = connect_options(
        ssh_config=ssh_config,
        identity_file=identity_file,
        password=password,
        passphrase=passphrase,
        host_key_policy=host_key_policy,
        jump=jump,
        auth_handler=auth_handler,
    )
    connection = _connect(host, options, timeout)
    try:
        return inventory(connection, runtime_dirs)
    finally:
        connection.close()


def stop_server(
    host: str,
    *,
    pid: int | None = None,
    port: int | None = None,
    ssh_config: ConfigPath | None = None,
    identity_file: ConfigPath | None = None,
    password: str | None = None,
    passphrase: Passphrase | None = None,
    host_key_policy: str | None = None,
    jump: JumpHosts | None = None,
    auth_handler: AuthHandler | None = None,
    runtime_dirs: Sequence[str] = (),
    grace: float = 10.0,
    timeout: float = CONNECT_TIMEOUT,
) -> ServerRecord:
    """Stop exactly the server with this ``pid`` (or listening on ``port``) and its kernels.

    SIGTERM first (Jupyter shuts its kernels down), SIGKILL after ``grace`` seconds; returns
    once the server and its kernels are gone. Touches no other process.

    Args:
        host: An alias from the SSH config, ``host``, ``user@host`` or ``user@host:port``.
        pid: The server's PID on the host.
        port: The server's port on the host.
        ssh_config: SSH config file to read (default ``~/.ssh/config``).
        identity_file: A private key file to try first.
        password: A password for password authentication.
        passphrase: For encrypted keys: the passphrase, or a callable given the key's path.
        host_key_policy: ``"reject"``, ``"accept-new"`` or ``"no"``; None (default) follows
            ``StrictHostKeyChecking`` in the SSH config, itself defaulting to ``"reject"``.
        jump: Jump host(s) like ``ProxyJump``; None follows the SSH config.
        auth_handler: ``auth_handler(title, instructions, prompts)`` answers keyboard-interactive
            prompts (``prompts`` is a list of ``(prompt, echo)``); returns one answer each.
        runtime_dirs: More directories to look for Jupyter runtime files in.
        grace: Seconds between SIGTERM and SIGKILL.
        timeout: Seconds allowed for connecting.

    Returns:
        The record of the server that was stopped.

    Raises:
        ValueError: Neither or both of ``pid`` and ``port`` were given.
        RJupyterError: No running server matches, or it could not be stopped.
        SSHConnectError: The host cannot be reached (and its subclasses).
    """
    if (pid is None) == (port is None):
        raise ValueError("name the server to stop with exactly one of pid= or port=")
    options = connect_options(
        ssh_config=ssh_config,
        identity_file=identity_file,
        password=password,
        passphrase=passphrase,
        host_key_policy=host_key_policy,
        jump=jump,
        auth_handler=auth_handler,
    )
    connection = _connect(host, options, timeout)
    try:
        record = find_server(inventory(connection, runtime_dirs), host=host, pid=pid, port=port)
        _stop(connection, host, record, grace)
        return record
    finally:
        connection.close()


def _stop(connection: SSHConnection, host: str, record: ServerRecord, grace: float) -> None:
    RemoteServer(
        ConnectionSlot(connection),
        host=host,
        info=ServerInfo(
            port=record.port or 0, path="/", token="", pid=record.pid, run_dir=record.run_dir
        ),
        runtime_file=record.runtime_file,
        process_start=record.process_start,
    ).stop(grace)


def stop_servers(
    host: str,
    *,
    pids: Sequence[int] | None = None,
    ssh_config: ConfigPath | None = None,
    identity_file: ConfigPath | None = None,
    password: str | None = None,
    passphrase: Passphrase | None = None,
    host_key_policy: str | None = None,
    jump: JumpHosts | None = None,
    auth_handler: AuthHandler | None = None,
    runtime_dirs: Sequence[str] = (),
    grace: float = 10.0,
    timeout: float = CONNECT_TIMEOUT,
) -> list[ServerRecord]:
    """Stop several servers over one connection (one login, one 2FA prompt): those with these
    ``pids``, or with None every live server of yours on ``host``. As :func:`stop_server` for
    each, in turn; the arguments are as for :func:`stop_server`.

    Returns:
        The records of the servers stopped (none when nothing was running).

    Raises:
        RJupyterError: A named PID is not a running server, or one could not be stopped.
        SSHConnectError: The host cannot be reached (and its subclasses).
    """
    options = connect_options(
        ssh_config=ssh_config,
        identity_file=identity_file,
        password=password,
        passphrase=passphrase,
        host_key_policy=host_key_policy,
        jump=jump,
        auth_handler=auth_handler,
    )
    connection = _connect(host, options, timeout)
    try:
        records = inventory(connection, runtime_dirs)
        if pids is None:
            chosen = [record for record in records if not record.stale]
        else:
            chosen = [find_server(records, host=host, pid=pid, port=None) for pid in pids]
        for record in chosen:
            _stop(connection, host, record, grace)
        return chosen
    finally:
        connection.close()
