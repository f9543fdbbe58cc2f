"""How to reach a host: the connection options, from one source.

Five public callables connect — :class:`~rjupyter.RemoteNotebook`, ``RemoteNotebook.attach``,
:class:`~rjupyter.Tunnel`, :func:`~rjupyter.list_servers` and :func:`~rjupyter.stop_server` —
and each spells the same seven options out as keyword arguments (explicit signatures, as httpx
keeps them). Their types are the aliases below, their documentation is
:data:`CONNECTION_OPTION_DOCS`, and :func:`connect_options` is the one place that validates them
and builds :class:`ConnectOptions`; a test keeps the five signatures and docstrings in step.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ._auth import AuthHandler

__all__ = [
    "CONNECTION_OPTIONS",
    "CONNECTION_OPTION_DOCS",
    "CONNECT_TIMEOUT",
    "HOST_KEY_POLICIES",
    "START_TIMEOUT",
    "AuthHandler",
    "ConfigPath",
    "ConnectOptions",
    "JumpHosts",
    "Passphrase",
    "ProgressCallback",
    "connect_options",
]

ConfigPath = str | os.PathLike[str]
"""A file path: ``ssh_config``, ``identity_file``."""
Passphrase = str | Callable[[str], str]
"""A key passphrase, or a callable given the key file's path that returns it."""
JumpHosts = str | Sequence[str]
"""``"user@bastion:22"``, a comma-separated chain, a sequence of hops, or ``"none"``."""
ProgressCallback = Callable[[str, str], None]
"""``progress(step, detail)``: told of each step while connecting and starting."""

HOST_KEY_POLICIES = ("reject", "accept-new", "no")
#: Seconds for operations that only connect (Tunnel, list_servers, stop_server).
CONNECT_TIMEOUT = 30.0
#: Seconds for operations that connect and then start or find a server (RemoteNotebook).
START_TIMEOUT = 60.0

#: The connection options every public connecting callable takes, in signature order.
CONNECTION_OPTIONS = (
    "ssh_config",
    "identity_file",
    "password",
    "passphrase",
    "host_key_policy",
    "jump",
    "auth_handler",
)

#: Each option's line in a docstring's ``Args:`` section (the same in all five).
CONNECTION_OPTION_DOCS = {
    "ssh_config": "SSH config file to read (default ``~/.ssh/config``).",
    "identity_file": "A private key file to try first.",
    "password": "A password for password authentication.",
    "passphrase": "For encrypted keys: the passphrase, or a callable given the key's path.",
    "host_key_policy": '``"reject"``, ``"accept-new"`` or ``"no"``; None (default) follows '
    '``StrictHostKeyChecking`` in the SSH config, itself defaulting to ``"reject"``.',
    "jump": "Jump host(s) like ``ProxyJump``; None follows the SSH config.",
    "auth_handler": "``auth_handler(title, instructions, prompts)`` answers keyboard-interactive "
    "prompts (``prompts`` is a list of ``(prompt, echo)``); returns one answer each.",
}


@dataclass(frozen=True)
class ConnectOptions:
    """How to reach a host: everything that connects (RemoteNotebook, Tunnel, ...) takes these.

    Build it with :func:`connect_options`, which validates.

    Attributes:
        ssh_config: SSH config file to read (default ``~/.ssh/config`` and the system one).
        identity_file: A private key file to try first (on every hop).
        password: For password authentication (offered to the target host only).
        passphrase: For encrypted key files: the passphrase, or a callable that gets the key's
            path and returns it.
        host_key_policy: ``"reject"``, ``"accept-new"`` or ``"no"``; None takes
            ``StrictHostKeyChecking`` from the config (default ``"reject"``).
        jump: Jump host(s), like ``ProxyJump``: ``"user@bastion:22"``, a comma-separated chain
            or a sequence; ``"none"`` for none; None takes ``ProxyJump`` from the config.
        auth_handler: Answers keyboard-interactive prompts (see :data:`AuthHandler`), on every
            hop.
        progress: Told of each step: ``progress(step, detail)`` with step ``"connect"`` (detail
            ``host:port``) and ``"authenticate"`` (detail ``user@host``), for every hop.
    """

    ssh_config: ConfigPath | None = None
    identity_file: ConfigPath | None = None
    password: str | None = field(default=None, repr=False)
    passphrase: Passphrase | None = field(default=None, repr=False)
    host_key_policy: str | None = None
    jump: JumpHosts | None = None
    auth_handler: AuthHandler | None = None
    progress: ProgressCallback | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.host_key_policy not in (None, *HOST_KEY_POLICIES):
            raise ValueError(
                "host_key_policy must be 'reject', 'accept-new' or 'no'; "
                f"got {self.host_key_policy!r}"
            )


def connect_options(
    *,
    ssh_config: ConfigPath | None = None,
    identity_file: ConfigPath | None = None,
    password: str | None = None,
    passphrase: Passphrase | None = None,
    host_key_policy: str | None = None,
    jump: JumpHosts | None = None,
    auth_handler: AuthHandler | None = None,
    progress: ProgressCallback | None = None,
) -> ConnectOptions:
    """The validated :class:`ConnectOptions` of a public call's keyword arguments.

    Raises:
        ValueError: ``host_key_policy`` is not one of :data:`HOST_KEY_POLICIES`.
        TypeError: An option has the wrong type (a number for a path, a non-callable handler).
    """
    for name, value in (("ssh_config", ssh_config), ("identity_file", identity_file)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name} must be a path; got {type(value).__name__}")
    if passphrase is not None and not (isinstance(passphrase, str) or callable(passphrase)):
        raise TypeError("passphrase must be a string or a callable given the key's path")
    for name, function in (("auth_handler", auth_handler), ("progress", progress)):
        if function is not None and not callable(function):
            raise TypeError(f"{name} must be callable; got {type(function).__name__}")
    if jump is not None and not isinstance(jump, (str, Sequence)):
        raise TypeError(f"jump must be a string or a sequence of hosts; got {type(jump).__name__}")
    return ConnectOptions(
        ssh_config=ssh_config,
        identity_file=identity_file,
        password=password,
        passphrase=passphrase,
        host_key_policy=host_key_policy,
        jump=jump,
        auth_handler=auth_handler,
        progress=progress,
    )
