"""Lines of a remote script's output as they come, for a follow that never sleeps between looks.

A :class:`LineStream` reads one channel (stdout and stderr merged) and hands back the complete
lines that arrived within a short wait, so that its caller can act on each at once and still
check its deadlines (and see Ctrl-C) between reads.
"""

from __future__ import annotations

import paramiko

from .._errors import SSHConnectError
from .._server._remote import MAX_LINE

__all__ = ["LineStream"]


class LineStream:
    """The output of a running remote script, line by line.

    Args:
        channel: The script's channel (see ``SSHConnection.stream``).
        host: The host it runs on (for messages).

    Attributes:
        ended: True once the script's output ended.
    """

    def __init__(self, channel: paramiko.Channel, *, host: str) -> None:
        self._channel = channel
        self._host = host
        self._pending = b""
        self.ended = False

    def read(self, wait: float) -> list[str]:
        """The lines that arrived within ``wait`` seconds (none when nothing came); after the
        end, the last unterminated line once, then nothing.

        Raises:
            SSHConnectError: The connection failed.
        """
        if self.ended:
            return []
        self._channel.settimeout(wait)
        try:
            data = self._channel.recv(65536)
        except TimeoutError:
            return []
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise SSHConnectError(
                f"following the job on {self._host} failed: {exc or type(exc).__name__} "
                "(the SSH connection may be down)",
                host=self._host,
            ) from exc
        if not data:
            self.ended = True
            rest, self._pending = self._pending, b""
            return [rest.decode(errors="replace")] if rest else []
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        if len(self._pending) > MAX_LINE:  # a line that never ends: cut it
            lines.append(self._pending[:MAX_LINE])
            self._pending = b""
        return [line[:MAX_LINE].decode(errors="replace").rstrip("\r") for line in lines]

    def close(self) -> None:
        """Close the channel (the remote script sees its stdin end and stops); idempotent."""
        self._channel.close()
