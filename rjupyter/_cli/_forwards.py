"""``rjupyter tunnel -L [LOCAL:][HOST:]REMOTE``: the forwards asked for, read as ``ssh -L``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

__all__ = ["FORWARD", "Forward", "ForwardSpec", "forwards_from"]


@dataclass(frozen=True)
class Forward:
    """One forward: a local port (None: any free one) to ``remote_host:remote_port``.

    ``remote_host`` empty means the ``--remote-host`` given (default the remote's loopback).
    """

    local_port: int | None
    remote_host: str
    remote_port: int


class ForwardSpec(click.ParamType):  # type: ignore[type-arg]
    """``REMOTE``, ``LOCAL:REMOTE``, ``HOST:REMOTE`` or ``LOCAL:HOST:REMOTE`` (ports 1..65535)."""

    name = "[LOCAL:][HOST:]REMOTE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Forward):
            return value
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
