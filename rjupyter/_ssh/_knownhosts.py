"""known_hosts files as OpenSSH reads them, and the host-key policies.

Understands hashed names (``|1|salt|hash``), ``[host]:port``, patterns with ``*``, ``?`` and
``!``, ``@revoked`` and ``@cert-authority`` lines (host certificates signed by a listed CA).
paramiko's own ``HostKeys`` misreads marker lines, so this module reads the files itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko

from .._errors import HostKeyError
from ._config import match_pattern_list
from ._hostcert import HostCertificate, parse_host_certificate

__all__ = [
    "HostIdentity",
    "KnownHost",
    "OtherKnownHosts",
    "check_host_key",
    "fingerprint",
    "known_key_types",
    "load_known_hosts",
    "parse_known_hosts",
]

logger = logging.getLogger(__name__)

REVOKED = "@revoked"
CERT_AUTHORITY = "@cert-authority"


@dataclass(frozen=True)
class KnownHost:
    """One known_hosts line.

    Attributes:
        marker: ``""``, ``"@revoked"`` or ``"@cert-authority"``.
        patterns: The host field, e.g. ``"[h]:2222,10.0.0.1"`` or ``"|1|salt|hash"``.
        key_type: e.g. ``"ssh-ed25519"``.
        key_blob: The public key in SSH wire format.
        where: ``path:line`` for messages.
    """

    marker: str
    patterns: str
    key_type: str
    key_blob: bytes
    where: str

    def matches(self, name: str) -> bool:
        """Whether this line lists ``name`` (as written in known_hosts: ``[h]:p`` off port 22)."""
        if self.patterns.startswith("|1|"):
            salt, _, digest = self.patterns[3:].partition("|")
            try:
                mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
                return hmac.compare_digest(mac, base64.b64decode(digest))
            except ValueError:
                return False
        return match_pattern_list(name.lower(), self.patterns.lower().split(","))


def load_known_hosts(files: Sequence[str]) -> list[KnownHost]:
    """Read every line of the files that exist; unreadable lines are skipped with a log line."""
    entries = []
    for path in files:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        entries += parse_known_hosts(text, path)
    return entries


def parse_known_hosts(text: str, source: str) -> list[KnownHost]:
    """The lines of one known_hosts file's ``text`` (``source`` names it in messages)."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else ""
        if len(fields) < 3 or marker not in ("", REVOKED, CERT_AUTHORITY):
            logger.debug("skipping malformed known_hosts line %s:%d", source, number)
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except ValueError:
            logger.debug("skipping bad key in known_hosts line %s:%d", source, number)
            continue
        entries.append(KnownHost(marker, fields[0], fields[1], blob, f"{source}:{number}"))
    return entries


def fingerprint(key_blob: bytes) -> str:
    """The OpenSSH ``SHA256:...`` fingerprint of a public key blob."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")


def known_key_types(entries: Sequence[KnownHost], name: str) -> list[str]:
    """Host key algorithms to ask for first: those known for ``name`` (cert types for CAs)."""
    wanted: list[str] = []
    for entry in entries:
        if entry.marker == REVOKED or not entry.matches(name):
            continue
        if entry.marker == CERT_AUTHORITY:
            wanted += [
                "ssh-ed25519-cert-v01@openssh.com",
                "ecdsa-sha2-nistp256-cert-v01@openssh.com",
                "rsa-sha2-512-cert-v01@openssh.com",
                "rsa-sha2-256-cert-v01@openssh.com",
            ]
        elif entry.key_type == "ssh-rsa":
            wanted += ["rsa-sha2-512", "rsa-sha2-256"]
        else:
            wanted.append(entry.key_type)
    return list(dict.fromkeys(wanted))


@dataclass(frozen=True)
class HostIdentity:
    """Who the host should be, for the check: names and where to record a new key.

    Attributes:
        label: The host as the user named it (messages).
        lookup_name: The known_hosts name: ``HostKeyAlias``, or ``host``/``[host]:port``.
        principal: The name a host certificate must list (``HostKeyAlias`` or the host name).
        files: The known_hosts files, the first one written by ``accept-new``.
        policy: ``"reject"``, ``"accept-new"`` or ``"no"``.
        hash_names: ``HashKnownHosts``: ``accept-new`` writes the name hashed.
    """

    label: str
    lookup_name: str
    principal: str
    files: tuple[str, ...]
    policy: str
    hash_names: bool = False


@dataclass(frozen=True)
class OtherKnownHosts:
    """Known hosts to ask when the local files do not list the host at all: a compute node's
    key as the cluster knows it (its files read through the login node).

    Attributes:
        where: The files, for messages (``"the known hosts of login (...)"``).
        load: Reads them; called only when the local files do not list the host (for the
            check, and before it to ask for a key type they hold), so it should cache.
    """

    where: str
    load: Callable[[], list[KnownHost]]


def check_host_key(
    identity: HostIdentity,
    key: paramiko.PKey,
    entries: list[KnownHost],
    *,
    other: OtherKnownHosts | None = None,
) -> None:
    """Apply OpenSSH's rules to the key the server offered.

    The local ``entries`` decide first: a match is trusted, another key listed is a mismatch
    (fatal). Only a host they do not list at all is looked up in ``other`` (with the same
    rules) before the policy applies to an unknown key.

    Raises:
        HostKeyError: The key (or its CA) is revoked, the key changed (under every policy), or
            it is unknown under ``"reject"``.
    """
    certificate = parse_host_certificate(key)
    plain_blob = certificate.key_blob if certificate else key.asbytes()
    key_type = certificate.key_type if certificate else key.get_name()
    offered = fingerprint(plain_blob)
    if _trusted(identity, key_type, certificate, plain_blob, entries=entries, source="known_hosts"):
        return
    looked = ""
    if other is not None:
        if _trusted(
            identity, key_type, certificate, plain_blob, entries=other.load(), source=other.where
        ):
            logger.debug(
                "host key %s %s of %s found in %s", key_type, offered, identity.label, other.where
            )
            return
        looked = f", nor in {other.where}"
    if identity.policy == "no":
        logger.warning(
            "host key checking is off: accepting %s key %s for %s without verification",
            key_type,
            offered,
            identity.label,
        )
        return
    if identity.policy == "accept-new":
        _record(identity, key_type, plain_blob)
        return
    local = ", ".join(identity.files) or "no known_hosts file"
    raise _error(
        identity,
        key_type,
        offered,
        f"is not known (not in {local}{looked}). Verify that fingerprint with the host's "
        "administrator, then add it, e.g. by logging in once with `ssh` and answering yes, or "
        "pass host_key_policy='accept-new'",
        False,
    )


def _trusted(
    identity: HostIdentity,
    key_type: str,
    certificate: HostCertificate | None,
    plain_blob: bytes,
    *,
    entries: list[KnownHost],
    source: str,
) -> bool:
    """True when ``entries`` trust the key; False when they do not list the host at all.

    Raises:
        HostKeyError: The key or its CA is revoked, a certificate is not valid for the host,
            or another key is listed for it (a mismatch).
    """
    offered = fingerprint(plain_blob)
    listed = [entry for entry in entries if entry.matches(identity.lookup_name)]
    revoked = {entry.key_blob for entry in entries if entry.marker == REVOKED}
    if plain_blob in revoked or (certificate and certificate.ca_blob in revoked):
        raise _error(identity, key_type, offered, f"is REVOKED in {source}: refusing it", False)
    if certificate is not None and _certificate_trusted(identity, certificate, listed):
        logger.debug("host certificate of %s signed by a known CA", identity.label)
        return True
    plain = [entry for entry in listed if entry.marker == ""]
    if any(entry.key_blob == plain_blob for entry in plain):
        logger.debug("host key %s %s matches %s", key_type, offered, source)
        return True
    if not plain:
        return False
    where = plain[0].where
    path = where.rpartition(":")[0]
    remedy = (
        f"remove the old one with `ssh-keygen -R '{identity.lookup_name}' -f {path}` and connect "
        "again"
        if source == "known_hosts"
        else f"ask the cluster's administrators to correct {path}"
    )
    raise _error(
        identity,
        key_type,
        offered,
        f"differs from the key {source} holds ({where}). HOST KEY MISMATCH: someone may be "
        "intercepting the connection, or the host was reinstalled. If you are sure the new key "
        f"is right, {remedy}",
        True,
    )


def _certificate_trusted(
    identity: HostIdentity, certificate: HostCertificate, listed: list[KnownHost]
) -> bool:
    authorities = {entry.key_blob for entry in listed if entry.marker == CERT_AUTHORITY}
    if certificate.ca_blob not in authorities:
        return False
    problem = certificate.problem(identity.principal)
    if problem:
        raise _error(
            identity, certificate.key_type, fingerprint(certificate.key_blob), problem, True
        )
    return True


def _error(
    identity: HostIdentity, key_type: str, offered: str, what: str, changed: bool
) -> HostKeyError:
    return HostKeyError(
        f"the host key of {identity.label} ({identity.lookup_name}), {key_type} {offered}, {what}",
        host=identity.label,
        key_type=key_type,
        fingerprint=offered,
        changed=changed,
    )


def _record(identity: HostIdentity, key_type: str, blob: bytes) -> None:
    """Append the line OpenSSH's ``accept-new`` would write."""
    path = Path(identity.files[0])
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = _hashed(identity.lookup_name) if identity.hash_names else identity.lookup_name
    line = f"{name} {key_type} {base64.b64encode(blob).decode()}\n"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
    with os.fdopen(os.open(path, flags, 0o600), "a", encoding="ascii") as stream:
        stream.write(line)
    logger.warning(
        "added %s host key %s for %s to %s", key_type, fingerprint(blob), identity.label, path
    )


def _hashed(name: str) -> str:
    """``name`` as OpenSSH's ``HashKnownHosts yes`` writes it: ``|1|salt|HMAC-SHA1(salt, name)``."""
    salt = os.urandom(20)
    mac = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(mac).decode()}"
