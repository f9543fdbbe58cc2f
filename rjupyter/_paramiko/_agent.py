"""An ssh-agent at an explicit socket path, without touching ``os.environ``.

``paramiko.Agent()`` only reads ``SSH_AUTH_SOCK`` from the process environment, so asking the
agent a host's ``IdentityAgent`` names meant setting and restoring that variable around each
login — process-global state that two concurrent logins (or a keeper thread reconnecting)
restore over each other. Here the socket is connected directly and handed to paramiko's agent
protocol (``AgentSSH._connect``, an internal): guarded, so that a paramiko without it makes
rjupyter log in without the agent (logged once) instead of failing.
"""

from __future__ import annotations

import logging
import socket
import threading

import paramiko
import paramiko.agent

__all__ = ["open_agent"]

logger = logging.getLogger(__name__)

_warned = threading.Event()


def open_agent(path: str) -> paramiko.Agent | None:
    """The agent listening on the Unix socket ``path``, its keys listed; None when this
    paramiko offers no way to use it (a WARNING says so once). Close it when done.

    Raises:
        OSError: The socket cannot be reached.
        paramiko.SSHException: The agent did not answer as an agent.
    """
    connect = getattr(paramiko.agent.AgentSSH, "_connect", None)
    if connect is None:
        if not _warned.is_set():
            _warned.set()
            logger.warning(
                "paramiko %s has no AgentSSH._connect: rjupyter cannot use ssh-agent; keys "
                "are taken from files only",
                paramiko.__version__,
            )
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
        agent = paramiko.Agent.__new__(paramiko.Agent)
        paramiko.agent.AgentSSH.__init__(agent)
        connect(agent, sock)
    except BaseException:
        sock.close()
        raise
    return agent
