"""Starting and stopping the remote Jupyter server over one SSH channel.

The launch script goes to ``/bin/sh -s`` on the channel's stdin, so neither the user's paths
nor anything secret appears in a remote command line. Every user string except ``setup`` lines is
quoted as data; a leading ``~`` becomes the remote home directory. The script prints its PID first
and at the end ``exec``s Jupyter, so that PID is the server's own. sshd makes each session's
process a session and process-group leader, so stopping signals the whole group: a ``setup``
command still running is stopped too. Kernels run in sessions of their own; Jupyter shuts them down
when it gets SIGTERM.
"""

from __future__ import annotations

import collections
import logging
import re
import shlex
import threading
from collections.abc import Sequence

import paramiko

from ._discovery import ERROR_MARKER, PID_MARKER, ServerInfo, StartupParser, redact
from ._errors import LaunchError, LaunchTimeout, RJupyterError
from ._ssh import Deadline

__all__ = ["APPS", "RemoteServer", "build_script", "remote_path"]

logger = logging.getLogger(__name__)

APPS = ("notebook", "lab", "server")
_TILDE_USER = re.compile(r"~[A-Za-z_][A-Za-z0-9_.-]*$")
_TAIL_LINES = 60
_REASONS = {
    "workdir": "the working directory {workdir!r} does not exist on the remote host (or is "
    "not a directory you may enter); create it or pass another workdir",
    "venv": "no virtual environment at {venv!r} on the remote host (no bin/activate there); "
    "create it (`python3 -m venv ...` and `pip install notebook`) or fix the venv path",
    "conda": "conda was not found on the remote host (looked at $CONDA_EXE, PATH and the usual "
    "install folders); pass setup=['source /path/to/conda.sh'] or use venv= instead",
    "conda-env": "conda could not activate the environment {conda_env!r} on the remote host; "
    "check `conda env list` there",
    "jupyter": "{jupyter!r} was not found on the remote host; install Jupyter there "
    "(`pip install notebook jupyterlab`), pass venv=/conda_env= to enter the environment "
    "that has it, or pass jupyter='/full/path/to/jupyter'",
}


def remote_path(path: str) -> str:
    """Quote ``path`` as one shell word, letting a leading ``~`` mean a home directory."""
    head, sep, rest = path.partition("/")
    if head == "~":
        prefix = '"$HOME"'
    elif _TILDE_USER.match(head):
        prefix = head
    else:
        return shlex.quote(path)
    return prefix + (sep + shlex.quote(rest) if rest else sep)


def build_script(
    *,
    app: str,
    port: int,
    workdir: str | None,
    venv: str | None,
    conda_env: str | None,
    setup: Sequence[str],
    jupyter: str,
) -> str:
    """The POSIX shell script that enters the environment and execs Jupyter.

    Raises:
        ValueError: ``app`` is not one of :data:`APPS`.
    """
    if app not in APPS:
        raise ValueError(f"app must be one of {', '.join(APPS)}; got {app!r}")
    lines = [
        f"rj_fail() {{ printf '%s %s\\n' {ERROR_MARKER} \"$1\" >&2; exit 97; }}",
        f"printf '%s %s\\n' {PID_MARKER} \"$$\" >&2",
    ]
    if workdir is not None:
        lines.append(f"cd -- {remote_path(workdir)} || rj_fail workdir")
    if venv is not None:
        lines += [
            f"VIRTUAL_ENV={remote_path(venv)}",
            '[ -f "$VIRTUAL_ENV/bin/activate" ] || rj_fail venv',
            'PATH="$VIRTUAL_ENV/bin:$PATH"',
            "export VIRTUAL_ENV PATH",
            "unset PYTHONHOME",
        ]
    if conda_env is not None:
        lines += _conda_lines(conda_env)
    for number, line in enumerate(setup, 1):
        lines += [line, f"[ $? -eq 0 ] || rj_fail setup:{number}"]
    command = remote_path(jupyter)
    lines += [
        f"command -v {command} >/dev/null 2>&1 || rj_fail jupyter",
        f"exec {command} {app} --no-browser --ip=127.0.0.1 --port={int(port)} "
        "--port-retries=50 </dev/null",
    ]
    return "\n".join(lines) + "\n"


def _conda_lines(env: str) -> list[str]:
    return [
        'rj_conda="${CONDA_EXE:-}"',
        '[ -n "$rj_conda" ] || rj_conda="$(command -v conda 2>/dev/null)"',
        'for rj_dir in "$HOME/miniforge3" "$HOME/mambaforge" "$HOME/miniconda3" '
        '"$HOME/anaconda3" /opt/conda; do',
        '  [ -n "$rj_conda" ] || { [ -x "$rj_dir/bin/conda" ] && rj_conda="$rj_dir/bin/conda"; }',
        "done",
        '[ -n "$rj_conda" ] || rj_fail conda',
        'eval "$("$rj_conda" shell.posix hook)" || rj_fail conda',
        f"conda activate {shlex.quote(env)} || rj_fail conda-env",
    ]


class RemoteServer:
    """One Jupyter server process on the remote host, tied to the channel that started it."""

    def __init__(self, transport: paramiko.Transport, *, host: str, options: dict[str, str]):
        self._transport = transport
        self._host = host
        self._options = options
        self._parser = StartupParser()
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._found = threading.Event()
        self._channel: paramiko.Channel | None = None
        self._reader: threading.Thread | None = None
        self.info: ServerInfo | None = None

    @property
    def pid(self) -> int | None:
        """The server's PID on the remote host, once it printed it."""
        return self._parser.pid

    @property
    def exited(self) -> bool:
        """True once the remote process has ended (or its channel is gone)."""
        channel = self._channel
        return channel is None or channel.exit_status_ready() or channel.closed

    def output_tail(self) -> str:
        """The last lines of remote output, tokens redacted."""
        secret = self.info.token if self.info else ""
        return redact("\n".join(self._tail), secret)

    def start(self, script: str, deadline: Deadline) -> ServerInfo:
        """Send the script and wait until the server printed its PID and token URL.

        Raises:
            LaunchError: The script refused to go on, or Jupyter exited early.
            LaunchTimeout: Nothing usable was printed before the deadline.
        """
        channel = self._transport.open_session(timeout=deadline.remaining(0.1))
        self._channel = channel
        channel.set_combine_stderr(True)
        channel.exec_command("exec /bin/sh -s")
        channel.sendall(script.encode())
        channel.shutdown_write()
        self._reader = threading.Thread(
            target=self._read, name=f"rjupyter-output-{self._host}", daemon=True
        )
        self._reader.start()
        self._found.wait(deadline.remaining())
        if self.info is not None:
            return self.info
        if self.exited:
            raise self._early_exit_error()
        raise LaunchTimeout(
            f"Jupyter on {self._host} did not report a URL within {deadline.seconds:.0f} s; "
            "it has been stopped. Raise timeout if the host is slow, or check the output below",
            host=self._host,
            output_tail=self.output_tail(),
        )

    def _read(self) -> None:
        channel = self._channel
        assert channel is not None
        pending = b""
        try:
            while True:
                data = channel.recv(32768)
                if not data:
                    break
                pending += data
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._take_line(raw.decode(errors="replace").rstrip("\r"))
            if pending:
                self._take_line(pending.decode(errors="replace"))
        except (OSError, EOFError, paramiko.SSHException) as exc:
            logger.debug("remote output of %s ended: %s", self._host, exc)
        finally:
            channel.status_event.wait(5.0)
            self._found.set()

    def _take_line(self, line: str) -> None:
        self._tail.append(line)
        if self.info is None:
            self.info = self._parser.feed(line)
            if self.info is not None:
                self._found.set()
        if logger.isEnabledFor(logging.DEBUG):
            secret = self.info.token if self.info else ""
            logger.debug("[%s] %s", self._host, redact(line, secret))

    def _early_exit_error(self) -> LaunchError:
        channel = self._channel
        status = channel.exit_status if channel and channel.exit_status_ready() else None
        code = self._parser.error_code
        if code is not None and code.startswith("setup:"):
            number = int(code.partition(":")[2])
            line = self._options.get(f"setup:{number}", "")
            reason = f"setup line {number} ({line!r}) failed on the remote host; fix or remove it"
        elif code in _REASONS:
            reason = _REASONS[code].format(**self._options)
        elif self._parser.masked_url_seen:
            reason = (
                "the server started with a token rjupyter cannot read (set in your Jupyter "
                "config or JUPYTER_TOKEN) or with no token at all; remove that setting so the "
                "server generates its own token"
            )
        else:
            reason = f"Jupyter exited before it was ready (exit status {status})"
        return LaunchError(
            f"cannot start Jupyter on {self._host}: {reason}",
            host=self._host,
            exit_status=status,
            output_tail=self.output_tail(),
        )

    def stop(self, grace: float = 10.0) -> None:
        """Stop exactly this server by its PID (SIGTERM, then SIGKILL) and wait until it is gone.

        A clean SIGTERM makes Jupyter shut its kernels down before it exits.

        Raises:
            RJupyterError: The server could not be stopped (e.g. the connection is gone).
        """
        channel = self._channel
        if channel is None:
            return
        try:
            if not self.exited and self.pid is not None:
                for signal_name, wait in (("TERM", grace), ("KILL", 5.0)):
                    self._signal(signal_name)
                    if channel.status_event.wait(wait):
                        break
                if not channel.exit_status_ready():
                    raise RJupyterError(
                        f"Jupyter (pid {self.pid}) on {self._host} did not stop; "
                        f"check with `ps -p {self.pid}` there and stop it by hand"
                    )
        finally:
            channel.close()
            if self._reader is not None:
                self._reader.join(5.0)

    def _signal(self, name: str) -> None:
        pid = int(self.pid or 0)
        command = f"kill -{name} -- -{pid} 2>/dev/null || kill -{name} {pid}"
        try:
            channel = self._transport.open_session(timeout=10.0)
            try:
                channel.exec_command(command)
                channel.status_event.wait(10.0)
            finally:
                channel.close()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise RJupyterError(
                f"cannot stop Jupyter (pid {self.pid}) on {self._host}: the SSH connection "
                f"failed ({exc}); log in and run `kill {self.pid}` there"
            ) from exc
        logger.debug("sent SIG%s to remote pid %s on %s", name, self.pid, self._host)
