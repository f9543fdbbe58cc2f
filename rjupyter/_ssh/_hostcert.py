"""OpenSSH host certificates (``PROTOCOL.certkeys``): parse one and check it as ``ssh`` does.

paramiko negotiates ``*-cert-v01@openssh.com`` host keys and checks the server's signature with
the certified key, but it does not look at the certificate itself; this module does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import paramiko

__all__ = ["HostCertificate", "parse_host_certificate"]

_SUFFIX = "-cert-v01@openssh.com"
_HOST_CERT = 2
# Public key fields after the nonce, per key type: "s" a string, "m" an mpint.
_KEY_FIELDS = {"ssh-ed25519": "s", "ssh-rsa": "mm", "ecdsa-sha2-nistp256": "ss"}
_KEY_FIELDS |= {"ecdsa-sha2-nistp384": "ss", "ecdsa-sha2-nistp521": "ss"}


@dataclass(frozen=True)
class HostCertificate:
    """The parts of a host certificate that decide whether to trust it.

    Attributes:
        key_type: The certified key's type, e.g. ``"ssh-ed25519"``.
        key_blob: The certified (plain) public key blob.
        cert_type: 1 for user, 2 for host certificates.
        principals: The host names it is valid for (empty: any).
        valid_after: Seconds since the epoch.
        valid_before: Seconds since the epoch.
        ca_blob: The signing CA's public key blob.
        signature_valid: Whether the CA's signature over the certificate verifies.
    """

    key_type: str
    key_blob: bytes
    cert_type: int
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    ca_blob: bytes
    signature_valid: bool

    def problem(self, principal: str, now: float | None = None) -> str:
        """Why ``ssh`` would refuse this certificate for ``principal``; empty when it is fine."""
        now = time.time() if now is None else now
        if not self.signature_valid:
            return "carries a certificate whose CA signature does not verify"
        if self.cert_type != _HOST_CERT:
            return "is a user certificate, not a host certificate"
        if not self.valid_after <= now < self.valid_before:
            return "carries a certificate that is expired or not yet valid"
        if self.principals and principal not in self.principals:
            listed = ", ".join(self.principals)
            return f"carries a certificate for {listed}, not for {principal}"
        return ""


def parse_host_certificate(key: paramiko.PKey) -> HostCertificate | None:
    """The certificate the server presented, or None for a plain host key.

    Raises:
        paramiko.SSHException: The certificate is malformed (the caller translates it).
    """
    blob = key.public_blob
    if blob is None or not blob.key_type.endswith(_SUFFIX):
        return None
    data = blob.key_blob
    message = paramiko.Message(data)
    cert_name = message.get_text()
    key_type = cert_name[: -len(_SUFFIX)]
    message.get_string()  # nonce
    plain = paramiko.Message()
    plain.add_string(key_type)
    for kind in _KEY_FIELDS[key_type]:
        if kind == "s":
            plain.add_string(message.get_string())
        else:
            plain.add_mpint(message.get_mpint())
    message.get_int64()  # serial
    cert_type = message.get_int()
    message.get_string()  # key id
    principals = paramiko.Message(message.get_string())
    names = []
    while principals.get_remainder():
        names.append(principals.get_text())
    valid_after, valid_before = message.get_int64(), message.get_int64()
    for _ in range(3):  # critical options, extensions, reserved
        message.get_string()
    ca_blob = message.get_string()
    signed = data[: message.packet.tell()]
    signature = message.get_string()
    ca_type = paramiko.Message(ca_blob).get_text()
    ca_key = paramiko.PKey.from_type_string(ca_type, ca_blob)
    return HostCertificate(
        key_type=key_type,
        key_blob=plain.asbytes(),
        cert_type=cert_type,
        principals=tuple(names),
        valid_after=valid_after,
        valid_before=valid_before,
        ca_blob=ca_blob,
        signature_valid=bool(ca_key.verify_ssh_sig(signed, paramiko.Message(signature))),
    )
