"""Network namespaces for lab hosts: a netns, a veth pair and a /30 out of 10.254.0.0/16.

Every lab address lies in `LAB_RANGE`, for which an `unreachable` route is kept in the root
namespace, so traffic for a lab address that is not (or no longer) up stays on the machine
instead of leaving by the default route. The /30 links of live namespaces are more specific and win.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
from pathlib import Path

from ._errors import LabError
from ._procs import file_lock, run_command

__all__ = [
    "LAB_RANGE",
    "NETNS_PREFIX",
    "NetnsLink",
    "create_inner_link",
    "create_netns_link",
    "delete_netns_link",
    "lab_netns_names",
    "link_names",
    "remove_unreachable_route",
]

logger = logging.getLogger(__name__)

LAB_RANGE = ipaddress.IPv4Network("10.254.0.0/16")
NETNS_PREFIX = "rjl-"
NETNS_DIR = Path("/run/netns")
_LOCK_FILE = Path("/run/rjupyter-lab.lock")
_INNER_INTERFACE = "eth0"
#: The link between a host and a host behind it (in their two namespaces only, never the root
#: one: each pair of namespaces has its own, so one /30 serves them all).
INNER_SUBNET = ipaddress.IPv4Network("10.253.0.0/30")
_ROUTE_PROTO = "82"  # marks the route as the labs' own (any number no routing daemon uses)


@dataclasses.dataclass(frozen=True)
class NetnsLink:
    """A namespace joined by a veth pair to the root namespace (or to another lab namespace).

    Attributes:
        netns: Namespace name (`ip netns` name).
        root_interface: The veth end outside: in the root namespace, or in `outer_netns`.
        root_address: Address of `root_interface`.
        address: Address of the namespace's end (`eth0` inside it): the host's address.
        outer_netns: The namespace holding `root_interface`, or None for the root namespace.
            Nothing routes from the root namespace to such a host: only `outer_netns` reaches it.
    """

    netns: str
    root_interface: str
    root_address: str
    address: str
    outer_netns: str | None = None

    @property
    def netns_file(self) -> Path:
        """The bind mount that keeps the namespace alive."""
        return NETNS_DIR / self.netns


def _network_lock() -> contextlib.AbstractContextManager[None]:
    """Serialise address allocation and route changes between labs in different processes."""
    return file_lock(_LOCK_FILE)


def link_names(lab_id: str, index: int) -> tuple[str, str]:
    """Return (namespace, root interface) names for host number `index` of lab `lab_id`.

    The namespace is `rjl-<id>-<index>`; the interface `rjl<id>h<index>` fits the 15-character
    limit of interface names for up to 99999 hosts.
    """
    return f"{NETNS_PREFIX}{lab_id}-{index}", f"rjl{lab_id}h{index}"


def lab_netns_names() -> list[str]:
    """Return the names of all lab namespaces on the machine (this lab's and others')."""
    output = run_command(["ip", "netns", "list"], what="list network namespaces").stdout
    names = [line.split()[0] for line in output.splitlines() if line.strip()]
    return [name for name in names if name.startswith(NETNS_PREFIX)]


def _route_for_range() -> str:
    return run_command(
        ["ip", "route", "show", "exact", str(LAB_RANGE)], what="read the lab range's route"
    ).stdout.strip()


def _ensure_unreachable_route() -> None:
    """Make sure `LAB_RANGE` is routed `unreachable` in the root namespace (lock held).

    A route added here carries `proto 82`, marking it as the labs' own for
    `remove_unreachable_route`; an `unreachable` route someone else made is used as it is.

    Raises:
        LabError: The range is routed somewhere else (it would not be safe to use), or `ip` failed.
    """
    current = _route_for_range()
    if current.startswith("unreachable"):
        return
    if current:
        raise LabError(
            f"{LAB_RANGE} is already routed ({current!r}); the lab needs that range for its "
            "private links: remove the route or free the range"
        )
    run_command(
        ["ip", "route", "replace", "unreachable", str(LAB_RANGE), "proto", _ROUTE_PROTO],
        what="add the lab range's unreachable route",
    )
    logger.debug("added route unreachable %s", LAB_RANGE)


def remove_unreachable_route() -> None:
    """Remove the labs' `unreachable` route for `LAB_RANGE` once no lab namespace is left.

    Whichever lab tears down last removes it, also when another lab added it; a route that
    a lab did not add (no `proto 82`) is left alone.
    """
    with _network_lock():
        if lab_netns_names():
            logger.debug("keeping route for %s: other lab namespaces exist", LAB_RANGE)
            return
        route = _route_for_range().split()
        if route[:1] == ["unreachable"] and f"proto {_ROUTE_PROTO}" in " ".join(route):
            run_command(
                ["ip", "route", "del", "unreachable", str(LAB_RANGE), "proto", _ROUTE_PROTO],
                what="remove the lab range's unreachable route",
            )


def _free_subnet() -> ipaddress.IPv4Network:
    output = run_command(["ip", "-o", "-4", "addr", "show"], what="list addresses").stdout
    for netns in lab_netns_names():  # links between lab namespaces use the range too
        output += run_command(
            ["ip", "-n", netns, "-o", "-4", "addr", "show"], what="list addresses", check=False
        ).stdout
    used = set()
    for line in output.splitlines():
        fields = line.split()
        if "inet" in fields:
            interface = ipaddress.IPv4Interface(fields[fields.index("inet") + 1])
            if interface.ip in LAB_RANGE:
                used.add(ipaddress.IPv4Network((interface.ip, 30), strict=False))
    for subnet in LAB_RANGE.subnets(new_prefix=30):
        if subnet not in used:
            return subnet
    raise LabError(f"no free /30 left in {LAB_RANGE}: tear down old labs (ip netns list)")


def create_netns_link(netns: str, root_interface: str, outer_netns: str | None = None) -> NetnsLink:
    """Create namespace `netns` with `lo` up and a veth link to the root namespace.

    With `outer_netns`, the link goes to that namespace instead, and the root namespace has no
    route to the new one (the lab range is `unreachable` there).

    Also makes sure the lab range's `unreachable` route exists (see the module docstring).

    On failure, whatever was created is removed again before the error propagates.

    Args:
        netns: Name for the new namespace; must start with `NETNS_PREFIX` and not exist yet.
        root_interface: Name for the root end of the veth pair (at most 15 characters).

    Returns:
        The namespace and its addresses.

    Raises:
        ValueError: A name is invalid.
        LabError: An `ip` command failed, or the lab range is routed elsewhere.
    """
    if not netns.startswith(NETNS_PREFIX) or len(root_interface) > 15:
        raise ValueError(f"bad namespace or interface name: {netns!r}, {root_interface!r}")
    with _network_lock():
        # Route and namespace appear together: remove_unreachable_route (same lock) sees either
        # neither or the namespace, so it never takes the route from under a starting lab.
        _ensure_unreachable_route()
        subnet = _free_subnet()
        root_address, address = (str(host) for host in subnet.hosts())
        link = NetnsLink(netns, root_interface, root_address, address, outer_netns)
        run_command(["ip", "netns", "add", netns], what=f"create network namespace {netns}")
        try:
            _configure(link, subnet.prefixlen)
        except BaseException:
            delete_netns_link(link)
            raise
    logger.debug("namespace %s: %s <-> %s", netns, root_address, address)
    return link


def _outer_ip(link: NetnsLink) -> list[str]:
    return ["ip"] if link.outer_netns is None else ["ip", "-n", link.outer_netns]


def _configure(link: NetnsLink, prefix: int) -> None:
    in_ns = ["ip", "-n", link.netns]
    outer = _outer_ip(link)
    steps = [
        [
            *(*outer, "link", "add", link.root_interface, "type", "veth"),
            *("peer", "name", _INNER_INTERFACE, "netns", link.netns),
        ],
        [*outer, "addr", "add", f"{link.root_address}/{prefix}", "dev", link.root_interface],
        [*outer, "link", "set", link.root_interface, "up"],
        [*in_ns, "addr", "add", f"{link.address}/{prefix}", "dev", _INNER_INTERFACE],
        [*in_ns, "link", "set", _INNER_INTERFACE, "up"],
        [*in_ns, "link", "set", "lo", "up"],
    ]
    for argv in steps:
        run_command(argv, what=f"set up the network of namespace {link.netns}")


def create_inner_link(parent: NetnsLink, netns: str, parent_interface: str) -> NetnsLink:
    """Create namespace `netns` reachable only from `parent`'s namespace (a host behind it).

    The veth pair joins the two namespaces directly; the root namespace has no address on it
    and no route to it, so the caller reaches the new host only through the parent host.

    Returns:
        The link; its `root_interface` and `root_address` are the parent's end of the pair.

    Raises:
        ValueError: A name is invalid.
        LabError: An `ip` command failed.
    """
    if not netns.startswith(NETNS_PREFIX) or len(parent_interface) > 15:
        raise ValueError(f"bad namespace or interface name: {netns!r}, {parent_interface!r}")
    parent_address, address = (str(host) for host in INNER_SUBNET.hosts())
    link = NetnsLink(netns, parent_interface, parent_address, address)
    prefix = INNER_SUBNET.prefixlen
    in_parent, in_ns = ["ip", "-n", parent.netns], ["ip", "-n", netns]
    run_command(["ip", "netns", "add", netns], what=f"create network namespace {netns}")
    steps = [
        [
            *(*in_parent, "link", "add", parent_interface, "type", "veth"),
            *("peer", "name", _INNER_INTERFACE, "netns", netns),
        ],
        [*in_parent, "addr", "add", f"{parent_address}/{prefix}", "dev", parent_interface],
        [*in_parent, "link", "set", parent_interface, "up"],
        [*in_ns, "addr", "add", f"{address}/{prefix}", "dev", _INNER_INTERFACE],
        [*in_ns, "link", "set", _INNER_INTERFACE, "up"],
        [*in_ns, "link", "set", "lo", "up"],
    ]
    try:
        for argv in steps:
            run_command(argv, what=f"set up the network of namespace {netns}")
    except BaseException:
        delete_netns_link(link)
        raise
    logger.debug("namespace %s behind %s: %s <-> %s", netns, parent.netns, parent_address, address)
    return link


def delete_netns_link(link: NetnsLink) -> None:
    """Delete the veth pair and the namespace (each only if it still exists).

    The processes inside the namespace must be stopped first: deleting a namespace does not.
    """
    if link.outer_netns is not None:
        if (NETNS_DIR / link.outer_netns).exists():  # else the pair went with that namespace
            run_command(
                [*_outer_ip(link), "link", "del", link.root_interface],
                what=f"delete {link.root_interface}",
                check=False,
            )
    elif Path("/sys/class/net", link.root_interface).exists():
        run_command(
            ["ip", "link", "del", link.root_interface], what=f"delete {link.root_interface}"
        )
    if link.netns_file.exists():
        run_command(["ip", "netns", "del", link.netns], what=f"delete namespace {link.netns}")
