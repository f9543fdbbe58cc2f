"""Which host key types this paramiko can verify (its private table of key types)."""

from __future__ import annotations

import paramiko

__all__ = ["verifiable_key_types"]


def verifiable_key_types(options: paramiko.SecurityOptions) -> set[str]:
    """Every host key type ``options.key_types`` may be set to: paramiko's table of key types
    (``Transport._key_info``), or, where a release moved it, the types offered by default."""
    table = getattr(paramiko.Transport, "_key_info", None)
    if isinstance(table, dict):
        return {str(name) for name in table}
    return set(options.key_types)
