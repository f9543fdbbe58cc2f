"""``-L [LOCAL:][HOST:]REMOTE`` (``rjupyter tunnel``, ``start``, ``attach``): the forwards asked
for, read as ``ssh -L``; REMOTE is a port, or the path of a Unix socket on the remote host."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

__all__ = ["FORWARD", "Forward", "ForwardSpec", "forward_option", "forwards_from"]


@dataclass(frozen=True)
class Forward:
    """One forward: a local port (None: any free one) to ``remote_host:remote_port``, or to
    the socket at path ``remote_port`` (a str).

    ``remote_host`` empty means the ``--remote-host`` given (default the remote's loopback).
    """

    local_port: int | None
    remote_host: str
    remote_port: int | str

    @property
    def remote(self) -> str:
        """``HOST:PORT`` or the socket's path, for messages."""
        if isinstance(self.remote_port, str):
            return self.remote_port
        return f"{self.remote_host or '127.0.0.1'}:{self.remote_port}"


class ForwardSpec(click.ParamType):  # type: ignore[type-arg]
    """``REMOTE``, ``LOCAL:REMOTE``, ``HOST:REMOTE`` or ``LOCAL:HOST:REMOTE`` (ports 1..65535);
    or ``[LOCAL:]/path/of/a/socket`` (OpenSSH's spelling for a remote Unix socket)."""

    name = "[LOCAL:][HOST:]REMOTE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Forward):
            return value
        head, colon, rest = str(value).partition(":")
        if str(value).startswith("/") or (colon and head.isdigit() and rest.startswith("/")):
            local, path = ("", str(value)) if str(value).startswith("/") else (head, rest)
            return Forward(
                local_port=self._port(local, value, param, ctx) if local else None,
                remote_host="",
                remote_port=path,
            )
        parts = str(value).split(":")
        if len(parts) == 3:
            local, host, remote = parts
        elif len(parts) == 2 and parts[0].isdigit():
            (local, remote), host = parts, ""
        elif len(parts) == 2:
            (host, remote), local = parts, ""
        elif len(parts) == 1:
            (remote,), local, host = parts, "", ""
        else:
            self.fail(f"{value!r} is not [LOCAL:][HOST:]REMOTE", param, ctx)
        return Forward(
            local_port=self._port(local, value, param, ctx) if local else None,
            remote_host=host,
            remote_port=self._port(remote, value, param, ctx),
        )

    def _port(
        self, text: str, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if not text.isdigit() or not 0 < int(text) < 65536:
            self.fail(f"{text!r} in {value!r} is not a port in 1..65535", param, ctx)
        return int(text)


FORWARD = ForwardSpec()

#: ``-L`` on ``start`` and ``attach``: more ports beside the notebook, over the same login.
forward_option = click.option(
    "-L",
    "--forward",
    "forwards",
    type=FORWARD,
    multiple=True,
    metavar="[LOCAL:]REMOTE",
    help="Also forward local port LOCAL (default: any free one) to port REMOTE on the remote "
    "loopback, or to the Unix socket at path REMOTE, over the same login (like ssh -L; e.g. "
    "TensorBoard's 6006). Repeatable.",
)


def forwards_from(ctx: click.Context, flags: dict[str, Any]) -> list[Forward]:
    """The forwards of ``-L`` (or the old ``REMOTE_PORT [LOCAL_PORT]``) with the defaults filled.

    Raises:
        click.UsageError: No forward, both forms, too many old-form ports, or ``--local-port``
            with a forward it cannot apply to.
    """
    forwards: list[Forward] = list(flags["forwards"])
    ports: tuple[int, ...] = flags["ports"]
    if ports and forwards:
        raise click.UsageError("give the ports with -L only (not also as arguments)", ctx)
    if len(ports) > 2:
        raise click.UsageError("the old form takes REMOTE_PORT [LOCAL_PORT]; use -L", ctx)
    if ports:
        forwards = [Forward(ports[1] if len(ports) == 2 else None, "", ports[0])]
    if not forwards:
        raise click.UsageError("name the port to forward: -L [LOCAL:][HOST:]REMOTE", ctx)
    local_port = flags["local_port"]
    if local_port is not None:
        if len(forwards) != 1 or forwards[0].local_port is not None:
            raise click.UsageError(
                "--local-port applies to a single -L REMOTE; write -L LOCAL:REMOTE instead", ctx
            )
        forwards = [Forward(local_port, forwards[0].remote_host, forwards[0].remote_port)]
    remote_host: str = flags["remote_host"]
    return [Forward(f.local_port, f.remote_host or remote_host, f.remote_port) for f in forwards]
