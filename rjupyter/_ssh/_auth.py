"""Logging in on one transport: agent keys, key files, certificates, keyboard-interactive, password.

Everything is tried on the one TCP connection already open, in OpenSSH's order (publickey,
keyboard-interactive, password), following partial success (``AuthenticationMethods
publickey,keyboard-interactive``) until the server says the user is in.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import paramiko
from paramiko.pkey import PublicBlob

from .._errors import AuthenticationError
from .._paramiko._agent import open_agent
from ._hostcert import parse_host_certificate
from ._knownhosts import fingerprint
from ._liveness import note_handshake_round_trip

__all__ = ["AuthHandler", "Credentials", "authenticate", "strip_control"]

logger = logging.getLogger(__name__)

#: ``auth_handler(title, instructions, prompts)``: ``prompts`` are ``(prompt, echo)`` pairs; it
#: returns one answer per prompt (keyboard-interactive, e.g. a password then an OTP code).
AuthHandler = Callable[[str, str, list[tuple[str, bool]]], list[str]]
_ORDER = ("publickey", "keyboard-interactive", "password")
#: Terminal escape sequences: CSI (``ESC [ ... m``), OSC (``ESC ] ... BEL``, e.g. a window
#: title), and two-character ones.
_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-_])")


def strip_control(text: str) -> str:
    """Text from the server made safe to show on a terminal: escape sequences and every other
    control or invisible formatting character (bidi overrides included) removed; newlines and
    tabs kept. Keyboard-interactive titles, instructions and prompts pass through this before
    any ``auth_handler`` sees them."""
    text = _ESCAPE.sub("", text)
    return "".join(char for char in text if char in "\n\t" or char.isprintable())


@dataclass(frozen=True)
class Credentials:
    """What one host may be offered.

    Attributes:
        user: The login name.
        label: The host as named by the caller (messages).
        identity_files: Private key files, in order (missing ones are skipped).
        certificate_files: ``CertificateFile`` entries, paired with the keys they certify.
        identities_only: Offer only agent keys whose files are listed (``IdentitiesOnly``).
        agent_socket: The agent's socket, or None for no agent.
        password: For ``password`` (and a lone no-echo keyboard-interactive prompt).
        passphrase: For encrypted key files: text, or a callable given the key's path.
        handler: Answers keyboard-interactive prompts.
    """

    user: str
    label: str
    identity_files: tuple[str, ...] = ()
    certificate_files: tuple[str, ...] = ()
    identities_only: bool = False
    agent_socket: str | None = None
    password: str | None = field(default=None, repr=False)
    passphrase: str | Callable[[str], str] | None = field(default=None, repr=False)
    handler: AuthHandler | None = None


class _Attempts:
    """The bookkeeping of one login: what was tried, what the server allows now."""

    def __init__(self, transport: paramiko.Transport, credentials: Credentials) -> None:
        self.transport = transport
        self.credentials = credentials
        self.tried: list[str] = []
        self.allowed: list[str] = []
        self.handler_error: BaseException | None = None

    def attempt(self, label: str, call: Callable[[], list[str]]) -> bool:
        """Run one attempt; True once fully in. Partial success updates ``allowed``."""
        self.tried.append(label)
        try:
            remaining = call()
        except paramiko.BadAuthenticationType as exc:
            self.allowed = list(exc.allowed_types)
            return False
        except paramiko.AuthenticationException:
            return False
        if remaining:
            logger.debug("partial success with %s; the server now wants %s", label, remaining)
            self.allowed = list(remaining)
        return not remaining


def authenticate(transport: paramiko.Transport, credentials: Credentials) -> None:
    """Log in on ``transport``, trying every credential on this one connection.

    Raises:
        AuthenticationError: Nothing offered was accepted; it lists what was tried and what
            the server accepts.
        paramiko.SSHException: The connection failed meanwhile (the caller translates it).
    """
    attempts = _Attempts(transport, credentials)
    started = time.monotonic()
    try:
        transport.auth_none(credentials.user)
        return
    except paramiko.BadAuthenticationType as exc:
        attempts.allowed = list(exc.allowed_types)
    finally:
        # Two round trips (the service request, then "none") and next to no server work:
        # the link's first round-trip estimate, before any channel opens.
        note_handshake_round_trip(transport, (time.monotonic() - started) / 2)
    used: set[str] = set()
    while True:
        method = next((m for m in _ORDER if m in attempts.allowed and m not in used), None)
        if method is None:
            raise _failure(attempts)
        used.add(method)
        before = list(attempts.allowed)
        if _METHODS[method](attempts):
            return
        if attempts.handler_error is not None:
            raise attempts.handler_error
        if attempts.allowed != before:
            used.discard("keyboard-interactive")  # a new round may ask for another factor


def _failure(attempts: _Attempts) -> AuthenticationError:
    who = f"{attempts.credentials.user}@{attempts.credentials.label}"
    tried = ", ".join(attempts.tried) or "nothing"
    allowed = ", ".join(attempts.allowed) or "unknown"
    return AuthenticationError(
        f"{who} refused every credential offered (tried: {tried}; the server accepts: "
        f"{allowed}). Check that your public key is in the remote ~/.ssh/authorized_keys, "
        "pass identity_file=, password= or auth_handler=, or load the key into ssh-agent",
        host=attempts.credentials.label,
        methods_tried=tuple(attempts.tried),
        methods_allowed=tuple(attempts.allowed),
    )


# -- publickey ------------------------------------------------------------------------------


@contextmanager
def _agent_keys(credentials: Credentials) -> Iterator[list[paramiko.AgentKey]]:
    """The agent's keys, while the connection to the agent (which signs for them) stays open."""
    if credentials.agent_socket is None:
        yield []
        return
    try:
        agent = open_agent(credentials.agent_socket)  # never through os.environ
    except (paramiko.SSHException, OSError) as exc:
        logger.debug("ssh-agent at %s unavailable: %s", credentials.agent_socket, exc)
        agent = None
    if agent is None:
        yield []
        return
    try:
        yield list(agent.get_keys())
    finally:
        agent.close()


def _load_file_key(path: str, credentials: Credentials, notes: list[str]) -> paramiko.PKey | None:
    try:
        return paramiko.PKey.from_path(path)
    except (paramiko.PasswordRequiredException, TypeError):
        # paramiko 3+ lets cryptography's TypeError ("Key is password-protected, but password
        # was not provided") through for encrypted OpenSSH-format keys.
        pass
    except (OSError, ValueError, paramiko.SSHException) as exc:
        notes.append(f"unreadable key {path} ({type(exc).__name__})")
        return None
    secret = credentials.passphrase
    if secret is None:
        notes.append(f"encrypted key {path} (no passphrase given)")
        return None
    try:
        text = secret(path) if callable(secret) else secret
        # paramiko hands the password to cryptography, which takes bytes only.
        return paramiko.PKey.from_path(path, text.encode())  # type: ignore[arg-type]
    except (OSError, ValueError, TypeError, paramiko.SSHException):
        notes.append(f"encrypted key {path} (wrong passphrase)")
        return None


def _publickey(attempts: _Attempts) -> bool:
    credentials = attempts.credentials
    notes: list[str] = []
    offered: set[bytes] = set()
    files = [path for path in credentials.identity_files if os.path.isfile(path)]
    wanted_public = {_public_blob(path) for path in files} - {None}
    with _agent_keys(credentials) as agent_keys:
        for agent_key in agent_keys:
            if credentials.identities_only and agent_key.asbytes() not in wanted_public:
                continue
            offered.add(agent_key.asbytes())
            label = f"publickey agent {agent_key.get_name()} {fingerprint(agent_key.asbytes())}"
            if attempts.attempt(label, partial(_auth_key, attempts, agent_key)):
                return True
            if "publickey" not in attempts.allowed:
                return False
    for path in files:
        if _public_blob(path) in offered:
            continue
        key = _load_file_key(path, credentials, notes)
        if key is None:
            continue
        for candidate in _certified(key, credentials):
            label = f"publickey {path}" + (" (certificate)" if candidate.public_blob else "")
            if attempts.attempt(label, partial(_auth_key, attempts, candidate)):
                return True
            if "publickey" not in attempts.allowed:
                return False
    attempts.tried += [f"skipped {note}" for note in notes]
    return False


def _certified(key: paramiko.PKey, credentials: Credentials) -> list[paramiko.PKey]:
    """``key`` with each certificate for it (``path-cert.pub``, CertificateFile), then bare."""
    found: list[paramiko.PKey] = []
    seen: set[bytes] = set()
    plain = _copy(key)
    plain.public_blob = None
    plain_blob = plain.asbytes()
    if key.public_blob is not None:
        found.append(key)
        seen.add(key.public_blob.key_blob)
    for cert_path in credentials.certificate_files:
        if not os.path.isfile(cert_path):
            continue
        candidate = _copy(key)
        try:
            candidate.load_certificate(cert_path)
            certificate = parse_host_certificate(candidate)  # parses user certificates too
        except (OSError, ValueError, KeyError, paramiko.SSHException):
            continue
        blob = candidate.public_blob
        if certificate is None or blob is None or blob.key_blob in seen:
            continue
        if certificate.key_blob != plain_blob:
            continue  # certifies another key
        found.append(candidate)
        seen.add(blob.key_blob)
    return [*found, plain]


def _copy(key: paramiko.PKey) -> paramiko.PKey:
    twin = object.__new__(type(key))
    twin.__dict__.update(key.__dict__)
    return twin


def _public_blob(path: str) -> bytes | None:
    try:
        with open(f"{path}.pub", encoding="ascii") as stream:
            blob: bytes = PublicBlob.from_string(stream.read()).key_blob
            return blob
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _auth_key(attempts: _Attempts, key: paramiko.PKey) -> list[str]:
    return list(attempts.transport.auth_publickey(attempts.credentials.user, key))


# -- keyboard-interactive and password -------------------------------------------------------


def _interactive(attempts: _Attempts) -> bool:
    credentials = attempts.credentials
    if credentials.handler is None and credentials.password is None:
        return False
    password_used = False

    def answer(title: str, instructions: str, prompts: Sequence[tuple[str, bool]]) -> list[str]:
        nonlocal password_used
        pairs = [(strip_control(str(prompt)), bool(echo)) for prompt, echo in prompts]
        if not pairs:
            return []
        try:
            if credentials.handler is not None:
                shown = (strip_control(str(title)), strip_control(str(instructions)))
                answers = [str(a) for a in credentials.handler(*shown, pairs)]
                if len(answers) != len(pairs):
                    raise ValueError(
                        f"auth_handler returned {len(answers)} answers for {len(pairs)} prompts"
                    )
                return answers
            if len(pairs) == 1 and not pairs[0][1] and not password_used:
                password_used = True
                return [credentials.password or ""]
            raise AuthenticationError(
                f"{credentials.label} asks {[p for p, _ in pairs]} by keyboard-interactive: "
                "pass auth_handler= to answer",
                host=credentials.label,
            )
        except BaseException as exc:  # handed back to the caller's thread below
            attempts.handler_error = exc
            attempts.transport.close()
            return [""] * len(pairs)

    label = "keyboard-interactive" + ("" if credentials.handler else " (password)")
    return attempts.attempt(
        label, lambda: list(attempts.transport.auth_interactive(credentials.user, answer))
    )


def _password(attempts: _Attempts) -> bool:
    credentials = attempts.credentials
    if credentials.password is None:
        return False
    password = credentials.password
    return attempts.attempt(
        "password",
        lambda: list(attempts.transport.auth_password(credentials.user, password, fallback=False)),
    )


_METHODS: dict[str, Callable[[_Attempts], bool]] = {
    "publickey": _publickey,
    "keyboard-interactive": _interactive,
    "password": _password,
}
