"""Pure functions: what a launch prints -> server facts (markers, the token URL), and redaction.

Nothing here touches the network, so all of it is unit-tested without a server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "ELSEWHERE_MARKER",
    "ERROR_MARKER",
    "EXIT_MARKER",
    "LOGIN_FAILED",
    "NODE_MARKER",
    "PID_MARKER",
    "RUN_MARKER",
    "SHELL_MARKER",
    "STOPPED_MARKER",
    "ServerInfo",
    "StartupParser",
    "redact",
    "split_base_url",
]

#: Lines the remote scripts print, each followed by a value.
SHELL_MARKER = "RJUPYTER-SHELL"  # the launching shell's PID (its group runs the setup lines)
RUN_MARKER = "RJUPYTER-RUN"  # the server's private run directory
PID_MARKER = "RJUPYTER-PID"  # the server's PID
EXIT_MARKER = "RJUPYTER-EXIT"  # the server ended, with this exit status
ERROR_MARKER = "RJUPYTER-ERROR"  # the launch refused to go on, for this reason code
STOPPED_MARKER = "RJUPYTER-STOPPED"  # the stop script finished
ELSEWHERE_MARKER = "RJUPYTER-ELSEWHERE"  # the run dir belongs to this other host
#: The reason code the login wrapper prints when the login shell did not hand over its
#: environment (see ``_login``), before the launch script's first marker.
LOGIN_FAILED = "login-shell"
NODE_MARKER = "RJUPYTER-NODE"  # a batch job runs on this node (as the batch system names it)

_URL_RE = re.compile(
    r"(?P<scheme>https?)://(?P<host>\[[^\]\s]+\]|[^\s/:?]+):(?P<port>\d+)"
    r"(?P<path>/[^\s?]*)?(?:\?token=(?P<token>[^\s&]*))?"
)
#: jupyter_server on a Unix socket prints ``http+unix://`` and the path with ``/`` as ``%2F``.
_SOCKET_URL_RE = re.compile(
    r"http\+unix://(?P<socket>%2F[^\s/?]+)(?P<path>/[^\s?]*)?(?:\?token=(?P<token>[^\s&]*))?"
)
_RUNTIME_RE = re.compile(r"file://(?P<path>/\S*/(?:jp|nb)server-\d+)-open\.html")
_TOKEN_RE = re.compile(r"(token=)[^\s&\"']+")
_MASKED_TOKENS = {"", "...", "(token)", "<generated>"}


def redact(text: str, *secrets: str) -> str:
    """Hide tokens: every ``token=...`` value, and each given secret wherever it appears."""
    text = _TOKEN_RE.sub(r"\1<redacted>", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


def split_base_url(path: str) -> str:
    """The server's ``base_url`` from the path of the URL it printed.

    Jupyter prints ``base_url + default_url``: ``/tree`` (Notebook 7), ``/lab`` (Lab), ``/``
    (plain server), possibly under a custom base such as ``/user/me/lab``.
    """
    if not path:
        return "/"
    for suffix in ("/lab", "/tree"):
        if path.endswith(suffix):
            return path[: -len(suffix)] + "/"
    if path.endswith("/"):
        return path
    return path.rsplit("/", 1)[0] + "/"


@dataclass(frozen=True)
class ServerInfo:
    """What the remote server told us about itself.

    Attributes:
        port: The port it really listens on (it moves up when the asked one is taken); 0 on a
            Unix socket.
        path: The path of its start page, e.g. ``/tree`` or ``/lab``.
        token: The authentication token. Never log or print this.
        pid: The server's PID on the remote host.
        run_dir: rjupyter's private run directory for it (None for a server we did not start).
        socket: The path of the Unix socket it listens on, or None on a TCP port.
    """

    port: int
    path: str
    token: str = field(repr=False)
    pid: int
    run_dir: str | None = None
    socket: str | None = None

    @property
    def base_url(self) -> str:
        """The server's base URL path, ending in ``/``."""
        return split_base_url(self.path)


class StartupParser:
    """Reads the launch output line by line and collects PID, port, path and token.

    Args:
        gated: Read nothing before the launch script's first marker (:data:`SHELL_MARKER`)
            but that marker and the login wrapper's own failure (:data:`LOGIN_FAILED`): what a
            login shell's profiles print (banners, ``fortune``, a link with a token of its
            own, even a line that looks like a marker) comes before it and must not be taken
            for the launch's output.
    """

    def __init__(self, *, gated: bool = False) -> None:
        self.started = not gated
        self.pid: int | None = None
        self.shell_pid: int | None = None
        self.run_dir: str | None = None
        self.runtime_file: str | None = None
        self.error_code: str | None = None
        self.exit_status: str | None = None
        self.node = ""  # a batch job's node, as the batch system names it
        self.masked_url_seen = False
        self._url: tuple[int, str, str] | None = None
        self._socket: str | None = None

    def feed(self, line: str) -> ServerInfo | None:
        """Take one line; return the server's facts once both PID and token URL were seen."""
        stripped = line.strip()
        marker, _, value = stripped.partition(" ")
        if not self.started and not (marker == SHELL_MARKER and value.isdigit()):
            if marker == ERROR_MARKER and value == LOGIN_FAILED:
                self.error_code = value
            return None
        if marker in (PID_MARKER, SHELL_MARKER) and value.isdigit():
            setattr(self, "pid" if marker == PID_MARKER else "shell_pid", int(value))
            self.started = True
        elif marker == RUN_MARKER and value:
            self.run_dir = value
        elif marker == EXIT_MARKER:
            self.exit_status = value or "unknown"
        elif marker == ERROR_MARKER:
            self.error_code = value or "unknown"
        elif marker == NODE_MARKER:
            self.node = value
        else:
            runtime = _RUNTIME_RE.search(stripped)
            if runtime is not None and self.runtime_file is None:
                self.runtime_file = runtime.group("path") + ".json"
            elif self._url is None:
                self._take_url(stripped)
        return self.info

    def _take_url(self, line: str) -> None:
        on_socket = _SOCKET_URL_RE.search(line)
        match = on_socket or _URL_RE.search(line)
        if match is None or "://" not in line:
            return
        token = match.group("token")
        if token is None or token in _MASKED_TOKENS:
            # A URL without a usable token: the server uses a token we cannot see
            # (set by the user's config) or none at all. Remember, keep looking.
            self.masked_url_seen = True
            return
        if on_socket is not None:
            self._socket = on_socket.group("socket").replace("%2F", "/")
            self._url = (0, match.group("path") or "/", token)
        else:
            self._url = (int(match.group("port")), match.group("path") or "/", token)

    @property
    def info(self) -> ServerInfo | None:
        """The facts, once complete."""
        if self._url is None or self.pid is None:
            return None
        port, path, token = self._url
        return ServerInfo(
            port=port,
            path=path,
            token=token,
            pid=self.pid,
            run_dir=self.run_dir,
            socket=self._socket,
        )
