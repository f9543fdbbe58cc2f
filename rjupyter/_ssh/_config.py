"""ssh_config resolution: ``ssh -G`` when OpenSSH is installed, else a parser that answers alike.

Both resolvers return a :class:`ResolvedConfig`: the keywords rjupyter uses, spelled and valued
the way ``ssh -G`` prints them (lowercase keys; ``IdentityFile`` and ``CertificateFile`` still
holding their ``~`` and ``%`` tokens, known_hosts files and ``IdentityAgent`` expanded). The test
corpus compares the two field by field.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._localuser import local_home, local_user_name
from ._tokens import TokenContext, expand_tokens, expand_user_path

__all__ = [
    "DEFAULT_IDENTITIES",
    "FIELDS",
    "ConfigError",
    "ResolvedConfig",
    "check_config_file",
    "check_names",
    "match_pattern_list",
    "parse_config",
    "resolve_config",
    "split_jump",
    "ssh_g",
]

logger = logging.getLogger(__name__)

SYSTEM_CONFIG = "/etc/ssh/ssh_config"
#: The keywords rjupyter reads, as ``ssh -G`` prints them.
FIELDS = (
    "hostname", "user", "port", "identityfile", "identitiesonly", "identityagent",
    "certificatefile", "proxyjump", "proxycommand", "connecttimeout", "serveraliveinterval",
    "serveralivecountmax", "stricthostkeychecking", "userknownhostsfile",
    "globalknownhostsfile", "hostkeyalias", "compression", "hashknownhosts",
)  # fmt: skip
_MULTI = frozenset({"identityfile", "certificatefile"})
_LISTS = frozenset({"userknownhostsfile", "globalknownhostsfile"})
DEFAULT_IDENTITIES = (
    "~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ecdsa_sk", "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk", "~/.ssh/id_xmss", "~/.ssh/id_dsa",
)  # fmt: skip
_CHECKING = {"yes": "true", "true": "true", "no": "false", "false": "false", "off": "false"}
_MAX_INCLUDE_DEPTH = 16
_SSH_G_TIMEOUT = 20.0


class ConfigError(ValueError):
    """The SSH config cannot be read or resolved (the caller turns it into SSHConnectError)."""


@dataclass
class ResolvedConfig:
    """The options OpenSSH would use for one host (only the keywords in :data:`FIELDS`).

    Attributes:
        values: Keyword to values; :data:`_MULTI` keywords may hold several.
        original_host: The host as given (``%n``).
    """

    values: dict[str, list[str]] = field(default_factory=dict)
    original_host: str = ""

    def get(self, key: str, default: str = "") -> str:
        """The first value of ``key``, or ``default``."""
        found = self.values.get(key)
        return found[0] if found else default

    def all(self, key: str) -> list[str]:
        """Every value of ``key`` (for ``IdentityFile`` and ``CertificateFile``)."""
        return list(self.values.get(key, []))


def resolve_config(
    host: str,
    *,
    config: str | os.PathLike[str] | None,
    user: str | None = None,
    port: int | None = None,
) -> ResolvedConfig:
    """Resolve ``host`` as ``ssh`` would: with ``ssh -G`` when it is installed, else the parser.

    Args:
        host: The alias or host name as the user wrote it (without user and port).
        config: The config file (like ``ssh -F``); None reads ``~/.ssh/config`` and the system one.
        user: A user given with the host (like ``ssh -l``); it wins over ``User``.
        port: A port given with the host (like ``ssh -p``); it wins over ``Port``.

    Raises:
        ConfigError: The config file is missing (when named), unreadable or invalid.
    """
    if config is not None and not Path(os.path.expanduser(config)).is_file():
        raise ConfigError(
            f"SSH config file {str(config)!r} does not exist; pass the path of an existing "
            "file or leave ssh_config unset"
        )
    check_names(host, user)
    if config is not None:
        check_config_file(os.path.expanduser(config))
    if shutil.which("ssh") is not None:
        return ssh_g(host, config=config, user=user, port=port)
    return parse_config(host, config=config, user=user, port=port)


_HOST_METACHARACTERS = frozenset("'`\"$\\;&<>|(){}")
_USER_METACHARACTERS = frozenset("'`\";&<>|(){}")


def check_names(host: str, user: str | None) -> None:
    """Refuse the host and user names OpenSSH (9.6+) refuses on its command line.

    ``%h`` and ``%r`` are expanded into ``ProxyCommand`` and ``Match exec``, which a local shell
    runs: a name holding shell metacharacters would run commands (the CVE-2023-51385 class).

    Raises:
        ConfigError: A name holds a shell metacharacter, whitespace or a control character, or
            starts with ``-``.
    """
    bad_host = host.startswith("-") or any(
        char in _HOST_METACHARACTERS or char.isspace() or not char.isprintable() for char in host
    )
    if bad_host:
        raise ConfigError(
            f"the host name {host!r} holds characters no host name has (shell metacharacters, "
            "spaces, control characters or a leading -); check the host you passed"
        )
    if user is not None and (
        user.startswith("-")
        or user.endswith("\\")
        or any(char in _USER_METACHARACTERS or not char.isprintable() for char in user)
    ):
        raise ConfigError(
            f"the user name {user!r} holds shell metacharacters or control characters; check "
            "the user you passed"
        )


def check_config_file(path: str) -> None:
    """Refuse a config file that others could have written, as OpenSSH refuses
    ``~/.ssh/config``: owned by someone else than you or root, or writable by group or others.

    Raises:
        ConfigError: The file is not safe to follow (its ``ProxyCommand`` and ``Match exec``
            lines run commands as you).
    """
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"cannot read the SSH config file {path}: {exc}") from exc
    if info.st_uid not in (0, os.getuid()) or info.st_mode & 0o022:
        raise ConfigError(
            f"Bad owner or permissions on {path}: others could change the commands it runs. "
            f"Make it yours and writable by you only (`chmod go-w {path}`)"
        )


def ssh_g(
    host: str,
    *,
    config: str | os.PathLike[str] | None,
    user: str | None = None,
    port: int | None = None,
) -> ResolvedConfig:
    """Ask OpenSSH itself: run ``ssh -G`` and read back the keywords in :data:`FIELDS`.

    Raises:
        ConfigError: ssh rejected the config, or did not answer in time.
    """
    argv = ["ssh", "-G"]
    argv += ["-F", os.path.expanduser(config)] if config is not None else []
    argv += ["-l", user] if user else []
    argv += ["-p", str(port)] if port else []
    argv += ["--", host]
    logger.debug("resolving %s with %s", host, argv)
    try:
        result = subprocess.run(  # noqa: S603 - an argv list, no shell
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_SSH_G_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"`ssh -G {host}` failed: {exc}") from exc
    if result.returncode != 0:
        raise ConfigError(f"`ssh -G {host}` rejected the SSH config: {result.stderr.strip()}")
    resolved = ResolvedConfig(original_host=host)
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key in FIELDS:
            resolved.values.setdefault(key, []).append(value)
    return resolved


# -- the parser -----------------------------------------------------------------------------


def _split_line(line: str) -> tuple[str, list[str]]:
    """``Keyword args`` or ``Keyword=args`` -> (lowercase keyword, arguments unquoted)."""
    stripped = line.strip()
    keyword, separator, rest = stripped.partition("=")
    if " " in keyword or "\t" in keyword or not separator:
        keyword, _, rest = stripped.replace("\t", " ").partition(" ")
        rest = rest.lstrip()
        rest = rest[1:] if rest.startswith("=") else rest
    try:
        arguments = shlex.split(rest, comments=False, posix=True)
    except ValueError as exc:
        raise ConfigError(f"unbalanced quotes in {line.strip()!r}") from exc
    return keyword.strip().lower(), arguments


def match_pattern_list(name: str, patterns: Sequence[str]) -> bool:
    """OpenSSH's pattern lists: any positive pattern matches and no ``!`` pattern does.

    ``Host`` takes one pattern per word; ``Match`` criteria split their word on commas first.
    """
    found = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if _wildcard(pattern[1:] if negated else pattern).fullmatch(name):
            if negated:
                return False
            found = True
    return found


def _wildcard(pattern: str) -> re.Pattern[str]:
    """OpenSSH patterns know only ``*`` and ``?`` (``[`` is a plain character)."""
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile("".join(parts), re.DOTALL)


@dataclass
class _State:
    """The values gathered so far, and what Host/Match lines compare against."""

    host: str
    original_host: str
    values: dict[str, list[str]]
    final: bool
    want_final: bool = False
    home: str = field(default_factory=local_home)


class _Parser:
    def __init__(self, state: _State, run_exec: Callable[[str], bool]) -> None:
        self.state = state
        self.run_exec = run_exec

    def read(self, path: str, *, user_file: bool, depth: int = 0, never: bool = False) -> None:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise ConfigError(f"cannot read SSH config {path!r}: {exc.strerror}") from exc
        active = not never
        for number, raw in enumerate(text.splitlines(), 1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            keyword, arguments = _split_line(raw)
            if keyword == "host":
                active = not never and match_pattern_list(self.state.original_host, arguments)
            elif keyword == "match":
                active = not never and self._match(arguments, f"{path}:{number}")
            elif keyword == "include":
                self._include(arguments, user_file, depth, never=never or not active)
            elif active:
                self._set(keyword, arguments)

    def _include(self, arguments: list[str], user_file: bool, depth: int, *, never: bool) -> None:
        if depth >= _MAX_INCLUDE_DEPTH:
            raise ConfigError("SSH config Include nested too deeply")
        base = os.path.join(self.state.home, ".ssh") if user_file else "/etc/ssh"
        for argument in arguments:
            pattern = expand_user_path(argument, self.state.home)
            pattern = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
            for path in sorted(glob.glob(pattern)):
                self.read(path, user_file=user_file, depth=depth + 1, never=never)

    def _match(self, arguments: list[str], where: str) -> bool:
        result = True
        words = list(arguments)
        while words:
            word = words.pop(0)
            negate, criterion = word.startswith("!"), word.lstrip("!").lower()
            if criterion == "all":
                matched = True
            elif criterion in ("canonical", "final"):
                self.state.want_final = True
                matched = self.state.final
            else:
                if not words:
                    raise ConfigError(f"{where}: Match {criterion} needs an argument")
                matched = self._criterion(criterion, words.pop(0), where)
            result = result and (matched != negate)
        return result

    def _criterion(self, criterion: str, argument: str, where: str) -> bool:
        values = self.state.values
        patterns = argument.split(",")
        if criterion == "host":
            return match_pattern_list(self.state.host, patterns)
        if criterion == "originalhost":
            return match_pattern_list(self.state.original_host, patterns)
        if criterion == "user":
            return match_pattern_list(values.get("user", [local_user_name()])[0], patterns)
        if criterion == "localuser":
            return match_pattern_list(local_user_name(), patterns)
        if criterion == "exec":
            return self.run_exec(expand_tokens(argument, self._tokens(), "%hLlnpru"))
        raise ConfigError(f"{where}: Match {criterion} is not supported")

    def _tokens(self) -> TokenContext:
        values = self.state.values
        return TokenContext(
            host=self.state.host,
            original_host=self.state.original_host,
            port=values.get("port", ["22"])[0],
            remote_user=values.get("user", [local_user_name()])[0],
        )

    def _set(self, keyword: str, arguments: list[str]) -> None:
        values = self.state.values
        if keyword in _MULTI:
            values.setdefault(keyword, []).extend(arguments[:1])
        elif keyword in ("proxyjump", "proxycommand"):
            if "proxyjump" not in values and "proxycommand" not in values:
                joined = " ".join(arguments) if keyword == "proxycommand" else arguments[0]
                values[keyword] = [joined]
        elif keyword in _LISTS:
            values.setdefault(keyword, [" ".join(arguments)])
        elif keyword in FIELDS and arguments:
            values.setdefault(keyword, [arguments[0]])


def _run_exec(command: str) -> bool:
    shell = os.environ.get("SHELL") or "/bin/sh"
    completed = subprocess.run(  # noqa: S603 - the user's own Match exec line, as ssh runs it
        [shell, "-c", command], stdin=subprocess.DEVNULL, capture_output=True, check=False
    )
    return completed.returncode == 0


def parse_config(
    host: str,
    *,
    config: str | os.PathLike[str] | None,
    user: str | None = None,
    port: int | None = None,
    run_exec: Callable[[str], bool] = _run_exec,
) -> ResolvedConfig:
    """Resolve ``host`` by reading the config files the way ``ssh`` does (no ``ssh`` needed).

    Covers ``Include`` (globs, relative to ``~/.ssh`` or ``/etc/ssh``), ``Host`` pattern lists
    with ``*``, ``?`` and ``!``, ``Match all/host/originalhost/user/localuser/exec/final``,
    first-value-wins, and the token expansions ``ssh -G`` applies.

    Raises:
        ConfigError: A file cannot be read or holds something this parser does not understand.
    """
    values: dict[str, list[str]] = {}
    if user:
        values["user"] = [user]
    if port:
        values["port"] = [str(port)]
    state = _State(host=host, original_host=host, values=values, final=False)
    files = _config_files(config, state.home)
    for path, user_file in files:
        _Parser(state, run_exec).read(path, user_file=user_file)
    if state.want_final:
        state.host = _hostname(state)
        state.final = True
        for path, user_file in files:
            _Parser(state, run_exec).read(path, user_file=user_file)
    return _finish(state)


def _config_files(config: str | os.PathLike[str] | None, home: str) -> list[tuple[str, bool]]:
    if config is not None:
        return [(expand_user_path(os.fspath(config), home), True)]
    files = [(os.path.join(home, ".ssh", "config"), True), (SYSTEM_CONFIG, False)]
    found = [(path, user_file) for path, user_file in files if os.path.isfile(path)]
    if found and found[0][1]:
        check_config_file(found[0][0])  # as ssh checks ~/.ssh/config
    return found


def _hostname(state: _State) -> str:
    configured = state.values.get("hostname")
    if not configured:
        return state.host.lower()
    return expand_tokens(configured[0], TokenContext(host=state.host), "%h").lower()


def split_jump(hop: str) -> tuple[str | None, str, int | None]:
    """``[ssh://][user@]host[:port]`` (``[v6]:port`` too) -> (user, host, port)."""
    hop = hop.removeprefix("ssh://")
    user, _, rest = hop.rpartition("@")
    host, port = rest, None
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = int(tail[1:]) if tail.startswith(":") else None
    elif rest.count(":") == 1:
        host, _, number = rest.partition(":")
        port = int(number)
    return user or None, host, port


def _dump_jump(chain: str) -> str:
    """ProxyJump as ``ssh -G`` prints it: the hops verbatim but the last one rebuilt."""
    *extra, last = chain.split(",")
    user, host, port = split_jump(last)
    bracket = ":" in host or host.strip("0123456789.") == ""
    text = f"{user + '@' if user else ''}{f'[{host}]' if bracket else host}"
    text += f":{port}" if port else ""
    return ",".join([*extra, text])


def _finish(state: _State) -> ResolvedConfig:
    """Fill in OpenSSH's defaults and expand what ``ssh -G`` prints expanded."""
    values = state.values
    hostname = _hostname(state)
    defaults: Mapping[str, str] = {
        "user": local_user_name(),
        "port": "22",
        "identitiesonly": "no",
        "compression": "no",
        "hashknownhosts": "no",
        "connecttimeout": "none",
        "serveraliveinterval": "0",
        "serveralivecountmax": "3",
        "stricthostkeychecking": "ask",
        "userknownhostsfile": "~/.ssh/known_hosts ~/.ssh/known_hosts2",
        "globalknownhostsfile": "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2",
    }
    resolved = {key: list(found) for key, found in values.items()}
    resolved["hostname"] = [hostname]
    for key, default in defaults.items():
        resolved.setdefault(key, [default])
    resolved.setdefault("identityfile", list(DEFAULT_IDENTITIES))
    checking = resolved["stricthostkeychecking"][0].lower()
    resolved["stricthostkeychecking"] = [_CHECKING.get(checking, checking)]
    for key in ("identitiesonly", "compression", "hashknownhosts"):
        resolved[key] = [resolved[key][0].lower()]
    context = TokenContext(
        host=hostname,
        original_host=state.original_host,
        port=resolved["port"][0],
        remote_user=resolved["user"][0],
        key_alias=resolved.get("hostkeyalias", [state.original_host])[0],
        jump=resolved.get("proxyjump", [""])[0],
    )
    for key in _LISTS:
        paths = resolved[key][0].split()
        expanded = [expand_tokens(expand_user_path(p, state.home), context) for p in paths]
        resolved[key] = [" ".join(expanded)]
    if "identityagent" in resolved:
        agent = resolved["identityagent"][0]
        if agent not in ("none", "SSH_AUTH_SOCK") and not agent.startswith("$"):
            resolved["identityagent"] = [
                expand_tokens(expand_user_path(agent, state.home), context)
            ]
    if resolved.get("proxyjump") == ["none"]:
        del resolved["proxyjump"]
    elif "proxyjump" in resolved:
        resolved["proxyjump"] = [_dump_jump(resolved["proxyjump"][0])]
    if resolved.get("proxycommand") == ["none"]:
        del resolved["proxycommand"]
    return ResolvedConfig(values=resolved, original_host=state.original_host)
