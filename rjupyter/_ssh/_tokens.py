"""OpenSSH's ``%`` tokens and ``~`` in config values (``ssh_config(5)``, "TOKENS")."""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass

from ._localuser import home_of, local_home, local_uid, local_user_name

__all__ = ["TokenContext", "expand_tokens", "expand_user_path"]

#: The tokens OpenSSH expands in IdentityFile, UserKnownHostsFile, IdentityAgent, ...
ALL_TOKENS = "%CdhijkLlnpru"


@dataclass(frozen=True)
class TokenContext:
    """What the tokens stand for on one connection.

    Attributes:
        host: ``%h``, the host name connected to (after ``HostName``).
        original_host: ``%n``, the host as given.
        port: ``%p``.
        remote_user: ``%r``.
        key_alias: ``%k``, ``HostKeyAlias`` or else the host as given.
        jump: ``%j``, the ``ProxyJump`` value or empty.
    """

    host: str
    original_host: str = ""
    port: str = "22"
    remote_user: str = ""
    key_alias: str = ""
    jump: str = ""

    def value(self, token: str) -> str:
        """The text for one token letter."""
        long_name = socket.gethostname()
        simple = {
            "%": "%",
            "d": local_home(),
            "h": self.host,
            "i": local_uid(),
            "j": self.jump,
            "k": self.key_alias or self.original_host,
            "L": long_name.split(".")[0],
            "l": long_name,
            "n": self.original_host,
            "p": self.port,
            "r": self.remote_user,
            "u": local_user_name(),
        }
        if token == "C":  # noqa: S105 - a token letter, not a secret
            joined = f"{long_name}{self.host}{self.port}{self.remote_user}{self.jump}"
            return hashlib.sha1(joined.encode(), usedforsecurity=False).hexdigest()
        return simple[token]


def expand_tokens(text: str, context: TokenContext, allowed: str = ALL_TOKENS) -> str:
    """Replace ``%x`` tokens as OpenSSH does; ``%%`` is always allowed.

    Raises:
        ValueError: An unknown or unallowed token, or a lone ``%`` at the end.
    """
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "%":
            out.append(char)
            index += 1
            continue
        token = text[index + 1 : index + 2]
        if token != "%" and (not token or token not in allowed):  # noqa: S105
            raise ValueError(f"unknown token %{token} in {text!r}")
        out.append(context.value(token))
        index += 2
    return "".join(out)


def expand_user_path(path: str, home: str) -> str:
    """Expand a leading ``~`` (the local account's home, as ssh takes it) or ``~user``."""
    if not path.startswith("~"):
        return path
    name, _, rest = path[1:].partition("/")
    base = home if not name else home_of(name)
    return f"{base}/{rest}" if rest or path.endswith("/") else base
