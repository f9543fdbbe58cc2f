"""Starting, watching and stopping the remote Jupyter server over the SSH connection.

The launch script (see ``_scripts``) goes to ``/bin/sh -s`` on a channel's stdin and starts the
server detached under a supervisor, then follows its output on that channel until it ends. A
dropped connection therefore does not end the server; rjupyter still knows its PID and run
directory and stops exactly that server later, over whatever connection is current.
"""

from __future__ import annotations

import collections
import logging
import posixpath
import threading
from collections.abc import Callable

import paramiko

from .._deadline import Deadline
from .._errors import HeartbeatError, LaunchError, LaunchTimeout, RJupyterError, SSHConnectError
from .._ssh._connection import ConnectionSlot
from ._scripts import (
    ALIVE_SCRIPT,
    LISTEN_SCRIPT,
    STOP_SCRIPT,
    WATCH_SCRIPT,
    heartbeat_script,
    whole,
)
from ._startup import ELSEWHERE_MARKER, STOPPED_MARKER, ServerInfo, StartupParser, redact

__all__ = ["MAX_LINE", "RemoteServer", "command_word", "failure_reason"]

logger = logging.getLogger(__name__)

_TAIL_LINES = 60
_TAIL_WIDTH = 2000
#: Bytes of one line of remote output kept at most; the rest of a longer line is dropped.
MAX_LINE = 1 << 16
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
    "rundir": "cannot create rjupyter's run directory under $XDG_STATE_HOME (or "
    "~/.local/state) on the remote host; check that your home directory is writable",
    "supervisor": "the server's supervisor did not start on the remote host",
    "login-shell": "your login shell could not be started as a login shell to hand over its "
    "environment (see its output below); fix its profile files, or pass login_shell=False "
    "(--no-login-shell) to run in a plain /bin/sh",
}


#: Waits (up to ~10 s) until the Unix socket $1 exists (Jupyter binds it after printing its URL).
_SOCKET_SCRIPT = """\
n=0
while [ "$n" -lt 200 ]; do
  [ -S "$1" ] && exit 0
  sleep 0.05 2>/dev/null || sleep 1
  n=$((n + 1))
done
exit 1
"""


def failure_reason(parser: StartupParser, options: dict[str, str]) -> tuple[str, int | None]:
    """Why a launch failed, from what its output said: (a sentence, the exit status)."""
    status_text = parser.exit_status
    status: int | None = int(status_text) if status_text and status_text.isdigit() else None
    code = parser.error_code
    if code is not None:
        status = 97
    if code is not None and code.startswith("setup:"):
        number = int(code.partition(":")[2])
        word = command_word(options.get(f"setup:{number}", ""))
        reason = f"setup line {number} ({word} ...) failed on the remote host; fix or remove it"
    elif code in _REASONS:
        reason = _REASONS[code].format(**options)
    elif not parser.started:
        reason = (
            "the launch script never ran: the remote shell ended first (a login profile that "
            "exits or execs another shell does this; see the output below). Fix the profile, "
            "or pass login_shell=False (--no-login-shell) to skip the profiles"
        )
    elif parser.masked_url_seen:
        reason = (
            "the server started with a token rjupyter cannot read (set in your Jupyter "
            "config or JUPYTER_TOKEN) or with no token at all; remove that setting so the "
            "server generates its own token"
        )
    else:
        reason = f"Jupyter exited before it was ready (exit status {status_text})"
    return reason, status


def command_word(line: str) -> str:
    """The command a shell line runs, to name it in a message without its arguments (which may
    hold a secret, as in ``export HF_TOKEN=...``); assignments are not shown at all."""
    for word in line.split():
        name, equals, _ = word.partition("=")
        if equals and name.isidentifier():
            continue  # an assignment before the command (X=1 cmd)
        return posixpath.basename(word)[:40] or word[:40]
    return "an assignment"


class RemoteServer:
    """One Jupyter server on the remote host: started by us, or found running (attach)."""

    def __init__(
        self,
        slot: ConnectionSlot,
        *,
        host: str,
        options: dict[str, str] | None = None,
        info: ServerInfo | None = None,
        runtime_file: str | None = None,
        run_id: str | None = None,
        process_start: str = "",
    ) -> None:
        self._slot = slot
        self._run_id = run_id
        self._process_start = process_start  # as the inventory saw it (no run dir to tell)
        self._on_end: Callable[[LaunchError], None] | None = None
        self._end_told = threading.Event()
        self._host = host
        self._options = options or {}
        self._parser = StartupParser(gated=info is None)  # a launch: profiles print first
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._found = threading.Event()
        self._channel: paramiko.Channel | None = None
        self._reader: threading.Thread | None = None
        self._runtime_file = runtime_file
        self.info = info

    @property
    def pid(self) -> int | None:
        """The server's PID on the remote host, once known."""
        return self.info.pid if self.info is not None else self._parser.pid

    @property
    def run_dir(self) -> str | None:
        """rjupyter's run directory for this server (None for one we did not start)."""
        return self.info.run_dir if self.info is not None else self._parser.run_dir

    @property
    def runtime_file(self) -> str | None:
        """The server's Jupyter runtime file, when known."""
        return self._runtime_file or self._parser.runtime_file

    @property
    def ended(self) -> bool:
        """True once the server is known to have ended (its watcher reported the exit)."""
        if self._parser.exit_status is not None:
            return True
        channel = self._channel
        return self.info is None and channel is not None and channel.closed

    def failure(self) -> LaunchError | None:
        """The error to raise once the server is known to have exited, else None."""
        if not self.ended:
            return None
        return LaunchError(
            f"Jupyter on {self._host} exited before it answered through the tunnel",
            host=self._host,
            output_tail=self.output_tail(),
        )

    def output_tail(self) -> str:
        """The last lines of remote output, tokens redacted."""
        secret = self.info.token if self.info else ""
        return redact("\n".join(self._tail), secret)

    def start(self, script: str, deadline: Deadline) -> ServerInfo:
        """Send the launch script; wait until the server printed its PID and token URL.

        Raises:
            LaunchError: The script refused to go on, or Jupyter exited early.
            LaunchTimeout: Nothing usable was printed before the deadline.
        """
        self._follow(self._slot.current.stream(script, timeout=deadline.remaining(0.1)))
        self._found.wait(deadline.remaining())
        if self.info is not None:
            return self.info
        if self.ended or self._parser.error_code is not None:
            raise self._early_exit_error()
        raise LaunchTimeout(
            f"Jupyter on {self._host} did not report a URL within {deadline.seconds:.0f} s; "
            "it has been stopped. Raise timeout if the host is slow, or check the output below",
            host=self._host,
            output_tail=self.output_tail(),
        )

    def _follow(self, channel: paramiko.Channel) -> None:
        """Read ``channel``'s output in a thread of its own, until it ends."""
        self._channel = channel
        self._reader = threading.Thread(
            target=self._read, args=(channel,), name=f"rjupyter-output-{self._host}", daemon=True
        )
        self._reader.start()

    def _read(self, channel: paramiko.Channel) -> None:
        pending = b""
        try:
            while data := channel.recv(32768):
                pending += data
                *lines, pending = pending.split(b"\n")
                if len(pending) > MAX_LINE:  # a line that never ends (\r progress bars)
                    logger.debug("[%s] a line of output passed %d bytes; cut", self._host, MAX_LINE)
                    lines.append(pending[:MAX_LINE])
                    pending = b""
                for raw in lines:
                    self._take_line(raw[:MAX_LINE].decode(errors="replace").rstrip("\r"))
            if pending:
                self._take_line(pending.decode(errors="replace"))
        except (OSError, EOFError, paramiko.SSHException) as exc:
            logger.debug("remote output of %s ended: %s", self._host, exc)
        finally:
            channel.close()
            self._found.set()

    def _take_line(self, line: str) -> None:
        self._tail.append(line if len(line) <= _TAIL_WIDTH else line[:_TAIL_WIDTH] + " [...]")
        if self.info is None:
            self.info = self._parser.feed(line)
            if self.info is not None or self._parser.error_code is not None:
                self._found.set()
        else:
            self._parser.feed(line)
        if logger.isEnabledFor(logging.DEBUG):
            secret = self.info.token if self.info else ""
            logger.debug("[%s] %s", self._host, redact(line, secret))
        if self.info is not None and self._parser.exit_status is not None:
            self._tell_end()

    def on_end(self, callback: Callable[[LaunchError], None]) -> None:
        """Call ``callback(error)`` once, when the running server is seen to exit (at once if it
        already has); :meth:`watch` makes sure it is followed."""
        self._on_end = callback
        if self.info is not None and self._parser.exit_status is not None:
            self._tell_end()

    def _tell_end(self) -> None:
        callback = self._on_end
        if callback is None or self._end_told.is_set():
            return
        self._end_told.set()
        error = self.ended_error()
        logger.warning("%s", error)
        try:
            callback(error)
        except Exception:
            logger.exception("the server-end callback failed")

    def ended_error(self) -> LaunchError:
        """The error that says the server exited after it started, with its status and output."""
        status_text = self._parser.exit_status or ""
        status = int(status_text) if status_text.isdigit() else None
        how = f"exit status {status}" if status is not None else "killed, or its status unknown"
        return LaunchError(
            f"the Jupyter server (pid {self.pid}) on {self._host} exited ({how}); its kernels "
            "are gone and the tunnel no longer forwards. Start a new RemoteNotebook",
            host=self._host,
            exit_status=status,
            output_tail=self.output_tail(),
        )

    def watch(self) -> None:
        """Follow the running server over the current connection (after a reconnect, or for a
        server found running), so that its end is seen within a second or two.

        Raises:
            SSHConnectError: The connection failed.
        """
        channel = self._channel
        if self.info is None or (channel is not None and not channel.closed):
            return
        args = [self.run_dir or "", str(self.pid or "")]
        watch = self._slot.current.stream(
            whole([WATCH_SCRIPT]), args, timeout=15.0, hold_stdin=True
        )
        self._follow(watch)

    def _early_exit_error(self) -> LaunchError:
        reason, status = failure_reason(self._parser, self._options)
        return LaunchError(
            f"cannot start Jupyter on {self._host}: {reason}",
            host=self._host,
            exit_status=status,
            output_tail=self.output_tail(),
        )

    def wait_listening(self, deadline: Deadline) -> None:
        """Return once the server's port is listening on the remote host (best effort).

        Jupyter prints its URL a moment before it listens; connecting through the tunnel in
        that moment would make paramiko log a refused channel (and a refused stream-local
        open would be taken for sshd forbidding them).

        Raises:
            SSHConnectError: The connection failed.
        """
        if self.info is None:
            return
        timeout = max(1.0, min(15.0, deadline.remaining()))
        if self.info.socket is not None:
            self._slot.current.run(_SOCKET_SCRIPT, [self.info.socket], timeout=timeout)
        else:
            self._slot.current.run(LISTEN_SCRIPT, [f"{self.info.port:04X}"], timeout=timeout)

    def alive(self) -> bool:
        """True while the server's process exists (asked over the current connection).

        Raises:
            SSHConnectError: The connection failed.
        """
        status, _ = self._slot.current.run(ALIVE_SCRIPT, [str(self.pid or 0), self.run_dir or ""])
        return status == 0

    def heartbeat(self) -> None:
        """Tell the server's watchdog that we are still here.

        Raises:
            SSHConnectError: The connection failed.
            HeartbeatError: The heartbeat could not be written (run dir removed, no space).
        """
        if self.run_dir is None:
            return
        status, output = self._slot.current.run(heartbeat_script(self.run_dir))
        if status != 0:
            raise HeartbeatError(
                f"cannot write the heartbeat into {self.run_dir} on {self._host} "
                f"({output.strip() or f'exit status {status}'}); without it the server stops "
                "itself after the abandon timeout. Check that the directory exists and the "
                "disk or quota has room"
            )

    def stop(self, grace: float = 10.0) -> None:
        """Stop exactly this server (and a setup line still running) and wait until it is gone.

        SIGTERM first, so Jupyter shuts its kernels down; SIGKILL after ``grace`` seconds; then
        any kernel left over, the supervisor, and rjupyter's run directory.

        Raises:
            RJupyterError: The server could not be stopped (e.g. the connection is gone); the
                message says how to stop it by hand.
        """
        # The launching shell (still following the output, or running a setup line) is ours
        # while its channel is open on this connection: its PID cannot have been reused.
        channel = self._channel
        shell = self._parser.shell_pid if channel is not None and not channel.closed else None
        args = [
            str(shell or ""),
            self.run_dir or "",
            str(self.pid or ""),
            str(int(grace)),
            self.runtime_file or "",
            self._process_start,
            self._run_id or "",
        ]
        try:
            if any(args[:3]) or self._run_id:
                status, output = self._slot.current.run(STOP_SCRIPT, args, timeout=grace + 20.0)
                if ELSEWHERE_MARKER in output:
                    other = output.split(ELSEWHERE_MARKER, 1)[1].split("\n", 1)[0].strip()
                    raise RJupyterError(
                        f"Jupyter (pid {self.pid}) was started on {other}, not on {self._host} "
                        f"(they share a home directory); stop it through {other}"
                    )
                if status != 0 or STOPPED_MARKER not in output:
                    raise RJupyterError(
                        f"Jupyter (pid {self.pid}) on {self._host} did not stop; check with "
                        f"`ps -p {self.pid}` there and stop it by hand"
                    )
                logger.debug("stopped remote pid %s on %s", self.pid, self._host)
        except SSHConnectError as exc:
            raise RJupyterError(
                f"cannot stop Jupyter (pid {self.pid}) on {self._host}: {exc}. It stops by itself "
                f"after the abandon timeout unless it was kept running; or log in and run "
                f"`kill {self.pid}` there"
            ) from exc
        finally:
            if self._channel is not None:
                self._channel.close()
            if self._reader is not None:
                self._reader.join(5.0)
