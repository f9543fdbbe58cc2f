"""Real network faults for the session tests: packet drops and loss (nftables), added latency
(a userspace TCP proxy: this kernel has no netem). Each undoes itself when its block ends."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from rjupyter.testing import DelayProxy

__all__ = ["DelayProxy", "dropping"]


@contextmanager
def dropping(address: str, percent: int = 100) -> Iterator[None]:
    """Drop ``percent`` % of packets to and from ``address`` (in the root namespace)."""
    table = f"rjupyter_fault_{secrets.token_hex(4)}"
    match = "" if percent >= 100 else f"numgen random mod 100 < {percent} "
    rules = f"""
table inet {table} {{
    chain out {{ type filter hook output priority 0; ip daddr {address} {match}drop; }}
    chain in {{ type filter hook input priority 0; ip saddr {address} {match}drop; }}
}}
"""
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=True)
