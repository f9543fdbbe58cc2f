"""Removing what crashed labs left behind: labs whose owning process died before teardown."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ._account import ACCOUNT_PATTERN, Account, delete_account, owner_is_alive
from ._cluster import remove_netns_etc
from ._errors import LabError
from ._network import (
    NETNS_PREFIX,
    NetnsLink,
    delete_netns_link,
    lab_netns_names,
    link_names,
    remove_unreachable_route,
)
from ._procs import netns_pids, stop_pids

try:
    import pwd
except ImportError:  # not on Windows; the lab needs Linux (Lab says so)
    pwd = None  # type: ignore[assignment]

__all__ = ["cleanup_stale_labs"]

logger = logging.getLogger(__name__)


def _stale_accounts() -> dict[str, Account]:
    stale = {}
    for entry in pwd.getpwall():
        if ACCOUNT_PATTERN.fullmatch(entry.pw_name) and not owner_is_alive(entry.pw_gecos):
            account = Account(
                entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), dedicated=True
            )
            stale[entry.pw_name.removeprefix("rjl")] = account
    return stale


def _remove_namespace(netns: str) -> None:
    lab_id, _, index = netns.removeprefix(NETNS_PREFIX).rpartition("-")
    _, root_interface = link_names(lab_id, int(index))
    link = NetnsLink(netns, root_interface, root_address="", address="")
    for _ in range(5):
        pids = netns_pids(link.netns_file)
        if not pids:
            break
        stop_pids(pids)
    delete_netns_link(link)
    remove_netns_etc(netns)


def cleanup_stale_labs() -> list[str]:
    """Tear down labs whose owner process is gone (killed before it could tear them down).

    A lab is stale when its user's comment names a process that no longer runs, or when its
    namespace has no user left. Its namespaces (and every process in them), its user (and every
    process of the user) and the user's home are removed, then the labs' `unreachable` route if no
    lab is left. Labs of live processes are untouched. Directory modes a lab changed stay changed.

    Returns:
        The ids of the labs cleaned up.

    Raises:
        LabError: Not root, or some removal failed (the message lists each).
    """
    if os.geteuid() != 0:
        raise LabError("cleaning up labs needs root (they are users and network namespaces)")
    accounts = _stale_accounts()
    live_ids = {
        entry.pw_name.removeprefix("rjl")
        for entry in pwd.getpwall()
        if ACCOUNT_PATTERN.fullmatch(entry.pw_name)
    } - set(accounts)
    failures = []
    cleaned = set()
    for netns in lab_netns_names():
        lab_id = netns.removeprefix(NETNS_PREFIX).rpartition("-")[0]
        if lab_id in live_ids:
            continue
        try:
            _remove_namespace(netns)
            cleaned.add(lab_id)
        except (LabError, ValueError, OSError) as exc:
            failures.append(f"namespace {netns}: {exc}")
    for lab_id, account in accounts.items():
        try:
            delete_account(account)
            shutil.rmtree(account.home, ignore_errors=True)
            cleaned.add(lab_id)
        except (LabError, OSError) as exc:
            failures.append(f"user {account.name}: {exc}")
    try:
        remove_unreachable_route()
    except LabError as exc:
        failures.append(f"route: {exc}")
    if failures:
        raise LabError("could not clean up every stale lab:\n" + "\n".join(failures))
    for lab_id in sorted(cleaned):
        logger.info("cleaned up stale lab %s", lab_id)
    return sorted(cleaned)
