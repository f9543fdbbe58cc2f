"""What the user wrote for a host: ``alias``, ``host``, ``user@host``, ``user@host:port``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HostSpec", "parse_host_spec"]


@dataclass(frozen=True)
class HostSpec:
    """A host as written by a user: ``alias``, ``host``, ``user@host`` or ``user@host:port``."""

    host: str
    user: str | None = None
    port: int | None = None


def parse_host_spec(spec: str) -> HostSpec:
    """Split ``[user@]host[:port]`` (IPv6 as ``[::1]:22``).

    Raises:
        ValueError: The spec is empty or its port is not a number in 1..65535.
    """
    text = spec.strip()
    user: str | None = None
    if "@" in text:
        user, text = text.rsplit("@", 1)
        user = user or None
    port: int | None = None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _parse_port(rest[1:], spec)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _parse_port(port_text, spec)
    else:
        host = text
    if not host:
        raise ValueError(f"no host name in {spec!r}; expected [user@]host[:port] or an alias")
    return HostSpec(host=host, user=user, port=port)


def _parse_port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port in {spec!r}: {text!r} (expected 1..65535)")
    return int(text)
