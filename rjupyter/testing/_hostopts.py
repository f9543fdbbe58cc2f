"""What a lab host may require beyond keys: PAM (a password and a TOTP code), certificates.

Keyboard-interactive with two prompts needs PAM: sshd runs under a per-host name (a symlink to
sshd), so PAM reads a per-host service file `/etc/pam.d/rjl-<lab>-<n>` that asks for the
account's password (pam_unix) and then a TOTP code (pam_google_authenticator). The service file
is removed when the host stops.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import logging
import secrets
import struct
import time
from pathlib import Path

from ._errors import LabError
from ._procs import run_command
from ._sshd import config_path

__all__ = [
    "AUTH_METHODS",
    "PAM_DIR",
    "HostOptions",
    "remove_pam_service",
    "sign_host_key",
    "totp_code",
    "write_pam_service",
]

logger = logging.getLogger(__name__)

AUTH_METHODS = ("publickey", "password", "keyboard-interactive")
PAM_DIR = Path("/etc/pam.d")
PAM_MODULE = "pam_google_authenticator.so"
_TOTP_STEP = 30


@dataclasses.dataclass(frozen=True)
class HostOptions:
    """How `Lab.add_host` sets up one host's sshd beyond the defaults.

    Attributes:
        auth_methods: sshd's `AuthenticationMethods`, e.g. `"publickey,keyboard-interactive"`.
        trusted_user_ca: A CA public key whose user certificates sshd accepts.
        host_certificate: Present the ed25519 host key with a certificate from the lab's host CA.
        reachable_from: Name of the host whose namespace alone can reach this one.
    """

    auth_methods: str = "publickey"
    trusted_user_ca: Path | None = None
    host_certificate: bool = False
    reachable_from: str | None = None

    def __post_init__(self) -> None:
        methods = self.auth_methods.split(",")
        if not methods or any(method not in AUTH_METHODS for method in methods):
            raise ValueError(
                f"auth_methods takes a comma-separated list of {', '.join(AUTH_METHODS)}; "
                f"got {self.auth_methods!r}"
            )

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods named in `auth_methods`."""
        return tuple(self.auth_methods.split(","))

    @property
    def needs_pam(self) -> bool:
        """Whether sshd runs with `UsePAM yes` (keyboard-interactive is PAM's on Linux)."""
        return "keyboard-interactive" in self.methods

    @property
    def needs_root(self) -> bool:
        """Whether the options need a dedicated user, PAM or namespaces (root)."""
        return self.auth_methods != "publickey" or self.reachable_from is not None


def totp_code(secret: str, at: float | None = None) -> str:
    """The 6-digit TOTP code (RFC 6238, SHA-1, 30 s) for a base32 `secret` at time `at`."""
    counter = int((time.time() if at is None else at) // _TOTP_STEP)
    digest = hmac.new(base64.b32decode(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


def write_pam_service(service: str, secret_file: Path) -> tuple[Path, str]:
    """Write `/etc/pam.d/<service>`: the password, then a TOTP code; and a fresh TOTP secret.

    Returns:
        The service file and the base32 secret (also written to `secret_file`, mode 0600).

    Raises:
        LabError: The PAM module for TOTP codes is not installed, or the file exists.
    """
    if not _module_installed():
        raise LabError(f"{PAM_MODULE} missing: install libpam-google-authenticator")
    secret = base64.b32encode(secrets.token_bytes(10)).decode()
    secret_file.write_text(f'{secret}\n" TOTP_AUTH\n')
    secret_file.chmod(0o600)
    path = PAM_DIR / service
    module = f"{PAM_MODULE} secret={config_path(secret_file)} user=root echo_verification_code"
    lines = [
        "# rjupyter test lab: removed when the lab host stops",
        "auth required pam_unix.so",
        f"auth required {module}",
        "account required pam_unix.so",
        "session required pam_permit.so",
    ]
    try:
        with path.open("x") as stream:
            stream.write("\n".join(lines) + "\n")
    except FileExistsError as exc:
        raise LabError(f"{path} exists already: is another lab using the same id?") from exc
    logger.debug("wrote PAM service %s", path)
    return path, secret


def _module_installed() -> bool:
    return any(
        any(Path(root).glob(pattern))
        for root in ("/lib", "/usr/lib")
        for pattern in (f"security/{PAM_MODULE}", f"*/security/{PAM_MODULE}")
    )


def remove_pam_service(path: Path) -> None:
    """Remove a service file `write_pam_service` wrote (only lab files under `PAM_DIR`)."""
    if path.parent == PAM_DIR and path.name.startswith("rjl-"):
        path.unlink(missing_ok=True)


def sign_host_key(ca_key: Path, public_key: Path, identity: str, principals: list[str]) -> Path:
    """Certify a host's public key with `ca_key`, valid from 5 minutes ago for one day.

    Returns:
        The certificate (`<key>-cert.pub`, beside the key).

    Raises:
        LabError: ssh-keygen failed.
    """
    run_command(
        [
            *("ssh-keygen", "-q", "-s", str(ca_key), "-I", identity, "-h"),
            *("-n", ",".join(principals), "-V", "-5m:+1d", str(public_key)),
        ],
        what=f"sign the host key {public_key.name}",
    )
    return public_key.with_name(public_key.name.removesuffix(".pub") + "-cert.pub")
