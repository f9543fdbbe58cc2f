"""The POSIX shell that runs on the remote host: launch, stop, heartbeat and inventory scripts.

Pure text, no I/O: every script is sent to ``/bin/sh -s`` on a channel's stdin, so nothing in it
shows up in a remote command line. User strings are quoted as data (``setup`` lines excepted, which
are shell code by design); a leading ``~`` means the remote home directory.

The server runs detached from the SSH session, under a small supervisor in a session of its own
(``setsid``) that owns a private run directory ``$XDG_STATE_HOME/rjupyter/<id>`` (mode 0700):
``log`` (the server's output), ``pid``, ``sup`` (the supervisor's PID), ``status`` (exit status,
once it ended), ``keep`` (started with keep_running) and ``heartbeat``. Unless the server is kept
running, a watchdog in the supervisor stops it when rjupyter's heartbeat stays away for the
abandon timeout — so a client that died without cleaning up leaves no server behind for long.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from ._startup import (
    ELSEWHERE_MARKER,
    ERROR_MARKER,
    EXIT_MARKER,
    PID_MARKER,
    RUN_MARKER,
    SHELL_MARKER,
    STOPPED_MARKER,
)

__all__ = [
    "ALIVE_SCRIPT",
    "APPS",
    "INVENTORY_SCRIPT",
    "LISTEN_SCRIPT",
    "LOG_LIMIT",
    "STATE_DIR",
    "STOP_SCRIPT",
    "WATCH_SCRIPT",
    "abandon_step",
    "build_script",
    "environment_lines",
    "heartbeat_script",
    "preamble_lines",
    "remote_path",
    "server_command",
    "socket_lines",
    "whole",
]

APPS = ("notebook", "lab", "server")
#: ``~user`` as the whole first component; matched with ``fullmatch`` only (``$`` would let a
#: trailing newline through, and the line after it would run).
_TILDE_USER = re.compile(r"~[A-Za-z_][A-Za-z0-9_.-]*")
STATE_DIR = '"${XDG_STATE_HOME:-$HOME/.local/state}/rjupyter"'
#: The remote server log is cut past this many bytes (its start is kept).
LOG_LIMIT = 8 << 20
#: How often (s) the supervisor looks at the log of a server without an abandon watchdog.
_LOG_STEP = 30

#: Shell functions that tell whether a PID is still the process rjupyter recorded. A PID alone
#: proves nothing: the process may have ended and its number gone to another. ``rj_started`` is
#: the start time (clock ticks since boot, field 22 of /proc/PID/stat; ``ps -o lstart`` where
#: there is no /proc), which with the owner and the boot id names one process for good.
_PROCESS_FUNCTIONS = """\
rj_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/stat" ]; then ! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null
  else case "$(ps -o stat= -p "$1" 2>/dev/null)" in *Z*) return 1;; esac; fi
}
rj_children() { ps -A -o pid= -o ppid= 2>/dev/null | awk -v p="$1" '$2 == p { print $1 }'; }
rj_started() {
  if [ -r "/proc/$1/stat" ]; then
    rj_s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    rj_s=${rj_s##*) }; set -f; set -- $rj_s; set +f; printf '%s\\n' "${20}"
  else ps -o lstart= -p "$1" 2>/dev/null; fi
}
rj_owner() {
  if [ -d "/proc/$1" ]; then stat -c %u "/proc/$1" 2>/dev/null
  else ps -o uid= -p "$1" 2>/dev/null | tr -d ' '; fi
}
rj_cmdline() {
  if [ -r "/proc/$1/cmdline" ]; then tr '\\0' ' ' < "/proc/$1/cmdline"
  else ps -o args= -p "$1" 2>/dev/null; fi
}
rj_host() { uname -n; }
rj_boot() {
  cat /proc/sys/kernel/random/boot_id 2>/dev/null || sysctl -n kern.boottime 2>/dev/null
}
rj_ours() {
  [ -n "$1" ] && rj_alive "$1" && [ "$(rj_owner "$1")" = "$(id -u)" ] || return 1
  if [ -n "$2" ]; then [ "$(rj_started "$1")" = "$2" ]
  else [ -n "${3:-}" ] && rj_cmdline "$1" | grep -q -- "$3"; fi
}
"""

# Runs detached: $1 run dir, $2 abandon seconds (0: never), $3 watchdog step, $4 log limit
# (bytes), then the command. The watchdog also keeps the log under the limit: past it, the
# log's start is kept in log.start (the runtime file's path is there) and the log is emptied.
_SUPERVISOR = f"""\
run=$1 abandon=$2 step=$3 limit=$4; shift 4
{_PROCESS_FUNCTIONS}rj_started "$$" > "$run/sup.start"
echo "$$" > "$run/sup"
"$@" >> "$run/log" 2>&1 < /dev/null &
pid=$!
rj_started "$pid" > "$run/pid.start"
echo "$pid" > "$run/pid.new" && mv "$run/pid.new" "$run/pid"
start=$(cat "$run/pid.start")
( idle=0
  while [ ! -e "$run/status" ] && rj_ours "$pid" "$start"; do
    sleep "$step"
    if [ "$(wc -c < "$run/log" 2>/dev/null || echo 0)" -gt "$limit" ]; then
      [ -e "$run/log.start" ] || head -c 65536 "$run/log" > "$run/log.start"
      : > "$run/log"
      printf '[rjupyter] the server log passed %s bytes and was cut (its start: %s)\\n' \\
        "$limit" "$run/log.start" >> "$run/log"
    fi
    [ "$abandon" -gt 0 ] || continue
    if [ -e "$run/heartbeat" ]; then rm -f "$run/heartbeat"; idle=0
    else idle=$((idle + step)); fi
    if [ "$idle" -ge "$abandon" ]; then
      ( : > "$run/abandoned" ) 2>/dev/null  # a run dir that is gone must not stop the kill
      rj_ours "$pid" "$start" && kill -TERM "$pid"; break
    fi
  done ) &
watch=$!
rj_started "$watch" > "$run/watch.start"; echo "$watch" > "$run/watch"
wait "$pid"
echo "$?" > "$run/status"
[ -e "$run/abandoned" ] && rm -rf -- "$run"
"""

#: Stops one server. Args: launching shell PID, run dir, server PID, grace seconds, runtime
#: file, the server's start time as the inventory saw it, and the launch's run id; any may be
#: empty. The launching shell's group goes first (a setup line still running, or a launch cut
#: short before it printed anything: found by its run id; a run id whose launch has not made
#: its run dir yet gets a `cancelled` one, and that launch stands down). Nothing is
#: signalled that is not verifiably the recorded process (owner, start time recorded at launch;
#: the command line where no start time was recorded). A run dir of another host (a home
#: shared between hosts) is left alone: the script prints its host and exits 3. A run dir
#: from before a reboot names no live process. SIGTERM first (Jupyter then shuts its kernels
#: down), SIGKILL after the grace period, then any kernel it left, the supervisor and its
#: watchdog; then removes the run dir, and the runtime file if the server could not.
STOP_SCRIPT = f"""\
shell=$1 run=$2 pid=$3 grace=$4 runtime=$5 start=${{6:-}} id=${{7:-}}
{_PROCESS_FUNCTIONS}nap() {{ sleep 0.1 2>/dev/null || sleep 1; }}
wait_gone() {{ n=0; while rj_alive "$1" && [ "$n" -lt "$2" ]; do nap; n=$((n + 1)); done; }}
sup= sup_start= watch= watch_start= shell_start=
if [ -z "$run" ] && [ -n "$id" ]; then
  state={STATE_DIR}; run="$state/$id"
  if (umask 077 && mkdir -p "$state" && mkdir "$run") 2>/dev/null; then
    : > "$run/cancelled"
    n=0; while [ -e "$run" ] && [ "$n" -lt 20 ]; do nap; n=$((n + 1)); done
    rm -rf -- "$run"
    printf '%s\\n' {STOPPED_MARKER}
    exit 0
  fi
  [ -z "$shell" ] && shell=$(cat "$run/shell" 2>/dev/null)
  shell_start=$(cat "$run/shell.start" 2>/dev/null)
fi
# The launching shell's group first (a setup line still running; a launch cut short), and only
# once it is gone the server's records: it cannot start a supervisor after that.
if [ -n "$shell" ] && {{ [ -z "$shell_start" ] || rj_ours "$shell" "$shell_start"; }}; then
  kill -TERM "-$shell" 2>/dev/null || kill -TERM "$shell" 2>/dev/null
  wait_gone "$shell" 50
fi
if [ -n "$run" ] && [ -d "$run" ]; then
  if [ -s "$run/host" ] && [ "$(cat "$run/host")" != "$(rj_host)" ]; then
    printf '%s %s\\n' {ELSEWHERE_MARKER} "$(cat "$run/host")"; exit 3
  fi
  [ -z "$pid" ] && pid=$(cat "$run/pid" 2>/dev/null)
  [ -z "$start" ] && start=$(cat "$run/pid.start" 2>/dev/null)
  sup=$(cat "$run/sup" 2>/dev/null); sup_start=$(cat "$run/sup.start" 2>/dev/null)
  watch=$(cat "$run/watch" 2>/dev/null); watch_start=$(cat "$run/watch.start" 2>/dev/null)
  if [ -s "$run/boot" ] && [ "$(cat "$run/boot")" != "$(rj_boot)" ]; then pid= sup=; fi
fi
if [ -n "$pid" ] && {{ [ -z "$run" ] || [ ! -e "$run/status" ]; }} \\
    && rj_ours "$pid" "$start" jupyter; then
  kids=
  for kid in $(rj_children "$pid"); do
    kids="$kids $kid:$(rj_started "$kid")"
  done
  kill -TERM "$pid" 2>/dev/null
  wait_gone "$pid" "$((grace * 10))"
  rj_ours "$pid" "$start" && kill -KILL "$pid" 2>/dev/null && wait_gone "$pid" 50
  for kid in $kids; do
    rj_ours "${{kid%%:*}}" "${{kid#*:}}" && kill -TERM "${{kid%%:*}}" 2>/dev/null
  done
  for kid in $kids; do
    wait_gone "${{kid%%:*}}" 30
    rj_ours "${{kid%%:*}}" "${{kid#*:}}" && kill -KILL "${{kid%%:*}}" 2>/dev/null
  done
fi
# The supervisor's group (its watchdog, which may outlive it), while a member is verifiably ours.
if [ -n "$sup" ] && {{ rj_ours "$sup" "$sup_start" rjupyter-supervisor \\
    || rj_ours "$watch" "$watch_start"; }}; then
  kill -TERM "-$sup" 2>/dev/null || kill -TERM "$sup" "$watch" 2>/dev/null
  wait_gone "$sup" 30
fi
gone=yes; [ -n "$pid" ] && rj_ours "$pid" "$start" jupyter && gone=
if [ -n "$gone" ] && [ -n "$runtime" ] && [ -e "$runtime" ]; then
  rm -f -- "$runtime" "${{runtime%.json}}-open.html"
fi
[ -n "$run" ] && rm -rf -- "$run"
[ -n "$gone" ] || exit 1
printf '%s\\n' {STOPPED_MARKER}
"""

#: Follows a running server until it ends, then prints its exit status. Args: run dir, server
#: PID (either may be empty). With a run dir, the supervisor's end is the server's end and the
#: status is the one it recorded; else the PID is watched. Its stdin stays open while rjupyter
#: watches: when the channel closes (the notebook closed, or the connection dropped), the watch
#: ends too, so no watcher outlives its notebook. Sent through :func:`whole`.
WATCH_SCRIPT = f"""\
run=$1 pid=$2
{_PROCESS_FUNCTIONS}nap() {{ sleep 0.5 2>/dev/null || sleep 1; }}
watched=$pid
[ -n "$run" ] && [ -s "$run/sup" ] && watched=$(cat "$run/sup")
[ -n "$watched" ] || exit 0
exec 3<&0
cat <&3 >/dev/null 2>&1 & rj_eof=$!
exec 3<&-
while kill -0 "$rj_eof" 2>/dev/null && rj_alive "$watched"; do
  nap
done
kill -0 "$rj_eof" 2>/dev/null || exit 0
kill "$rj_eof" 2>/dev/null
status=; [ -n "$run" ] && status=$(cat "$run/status" 2>/dev/null)
[ -n "$run" ] && [ -r "$run/log" ] && tail -n 20 -- "$run/log"
printf '%s %s\\n' {EXIT_MARKER} "$status" >&2
"""

#: Exits 0 while the server is alive: $1 its PID, $2 its run dir (may be empty).
ALIVE_SCRIPT = f"""\
{_PROCESS_FUNCTIONS}start=
[ -n "$2" ] && start=$(cat "$2/pid.start" 2>/dev/null)
rj_ours "$1" "$start" jupyter
"""

#: Lists the user's servers: this host (name, boot id, uid); rjupyter's run dirs with the host
#: and boot each was started on and the server's recorded start time; Jupyter runtime files;
#: and the state, owner, start time (ticks and epoch seconds) and command line of each PID they
#: name. Extra runtime dirs may be given as arguments.
INVENTORY_SCRIPT = f"""\
{_PROCESS_FUNCTIONS}state={STATE_DIR}
printf 'RJ-HOST %s\\t%s\\t%s\\n' "$(rj_host)" "$(rj_boot)" "$(id -u)"
btime=$(sed -n 's/^btime //p' /proc/stat 2>/dev/null); hz=$(getconf CLK_TCK 2>/dev/null)
pids=
for run in "$state"/*; do
  [ -d "$run" ] || continue
  pid=$(cat "$run/pid" 2>/dev/null); pids="$pids $pid"
  keep=; [ -e "$run/keep" ] && keep=keep
  runtime=$(cat "$run/log.start" "$run/log" 2>/dev/null \\
    | grep -o 'file://[^ ]*/jpserver-[0-9]*-open.html' | head -n 1)
  printf 'RJ-RUN %s\\t%s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$run" "$pid" "$keep" "$runtime" \\
    "$(cat "$run/host" 2>/dev/null)" "$(cat "$run/boot" 2>/dev/null)" \\
    "$(cat "$run/pid.start" 2>/dev/null)"
  [ -n "$runtime" ] && set -- "$@" "$(dirname "${{runtime#file://}}")"
done
seen=
default="${{XDG_DATA_HOME:-$HOME/.local/share}}/jupyter/runtime"
for dir in "${{JUPYTER_RUNTIME_DIR:-}}" "$default" "$@"; do
  [ -n "$dir" ] && [ -d "$dir" ] || continue
  case "$seen" in *"|$dir|"*) continue;; esac
  seen="$seen|$dir|"
  for file in "$dir"/jpserver-*.json "$dir"/nbserver-*.json; do
    [ -f "$file" ] || continue
    mtime=$(stat -c %Y "$file" 2>/dev/null || stat -f %m "$file" 2>/dev/null || echo 0)
    printf 'RJ-FILE %s\\t%s\\t' "$file" "$mtime"
    tr -d '\\n' < "$file"; printf '\\n'
    pid=${{file##*server-}}; pids="$pids ${{pid%.json}}"
  done
done
for pid in $pids; do
  if [ -r "/proc/$pid/stat" ]; then state=$(sed 's/.*) \\(.\\).*/\\1/' "/proc/$pid/stat")
  else state=$(ps -o stat= -p "$pid" 2>/dev/null | cut -c 1); fi
  [ -n "$state" ] || continue
  started=$(rj_started "$pid"); epoch=
  [ -n "$btime" ] && [ -n "$hz" ] && [ -n "$started" ] && epoch=$((btime + started / hz))
  printf 'RJ-PROC %s\\t%s\\t%s\\t%s\\t%s\\t%s\\n' "$pid" "$state" "$(rj_owner "$pid")" \\
    "$started" "$epoch" "$(rj_cmdline "$pid")"
done
"""


#: Waits (up to ~10 s) until something listens on TCP port $1 (hex) on the remote host, reading
#: /proc/net/tcp rather than connecting, so no refused connection is logged anywhere. Exits 0 at
#: once where there is no /proc/net/tcp.
LISTEN_SCRIPT = """\
[ -r /proc/net/tcp ] || exit 0
n=0
while [ "$n" -lt 200 ]; do
  grep -q ":$1 00000000:0000 0A" /proc/net/tcp /proc/net/tcp6 2>/dev/null && exit 0
  sleep 0.05 2>/dev/null || sleep 1
  n=$((n + 1))
done
exit 1
"""


def remote_path(path: str) -> str:
    """Quote ``path`` as one shell word, letting a leading ``~`` mean a home directory.

    Raises:
        ValueError: ``path`` holds a NUL character (no path can).
    """
    if "\0" in path:
        raise ValueError(f"a remote path cannot hold a NUL character: {path!r}")
    head, sep, rest = path.partition("/")
    if head == "~":
        prefix = '"$HOME"'
    elif _TILDE_USER.fullmatch(head):
        prefix = head
    else:
        return shlex.quote(path)
    return prefix + (sep + shlex.quote(rest) if rest else sep)


def abandon_step(abandon: float) -> int:
    """How often (s) the watchdog looks for a heartbeat; rjupyter beats twice as often."""
    return int(min(60, max(1, abandon // 6)))


def heartbeat_script(run_dir: str) -> str:
    """Tells the watchdog that the client is still there."""
    return f": > {shlex.quote(run_dir + '/heartbeat')}\n"


def build_script(
    *,
    app: str,
    port: int,
    workdir: str | None,
    venv: str | None,
    conda_env: str | None,
    setup: Sequence[str],
    jupyter: str,
    run_id: str = "x",
    abandon: float = 0,
    keep: bool = False,
    log_limit: int = LOG_LIMIT,
    unix_socket: bool = False,
) -> str:
    """The script that enters the environment and starts Jupyter under the supervisor (on a
    Unix socket in the run dir with ``unix_socket``, see :func:`socket_lines`).

    It prints its own PID (to stop a setup line still running), the run dir, the server's PID,
    then follows the server's output until the server ends, and prints its exit status. The
    run dir records the host, the boot and the owner, so that a home shared between hosts never
    has one host act on another's servers.

    Raises:
        ValueError: ``app`` is not one of :data:`APPS`, or ``run_id`` is not alphanumeric.
    """
    if not run_id.isalnum():
        raise ValueError(f"run_id must be alphanumeric; got {run_id!r}")
    server = server_command(app, jupyter, port, unix_socket=unix_socket)
    abandon_seconds = 0 if keep else int(abandon)
    step = abandon_step(abandon) if abandon_seconds else _LOG_STEP
    lines = [
        *preamble_lines(),
        # The run dir comes first, named by the client's run id, so that a launch cut short
        # before it printed anything can still be found and stopped (STOP_SCRIPT's run id).
        f"rj_state={STATE_DIR}",
        f'rj_run="$rj_state/{run_id}"',
        'if ! (umask 077 && mkdir -p "$rj_state" && mkdir "$rj_run"); then',
        '  [ -e "$rj_run/cancelled" ] && { rm -rf -- "$rj_run"; exit 98; }',
        "  rj_run=; rj_fail rundir",
        "fi",
        'echo "$$" > "$rj_run/shell"; rj_started "$$" > "$rj_run/shell.start"',
        'uname -n > "$rj_run/host"; id -u > "$rj_run/uid"',
        'cat /proc/sys/kernel/random/boot_id > "$rj_run/boot" 2>/dev/null',
        f"printf '%s %s\\n' {RUN_MARKER} \"$rj_run\" >&2",
        *environment_lines(
            workdir=workdir, venv=venv, conda_env=conda_env, setup=setup, jupyter=jupyter
        ),
        *(socket_lines("$rj_run", port) if unix_socket else []),
        ': > "$rj_run/heartbeat"',
        # The log exists before anyone follows it: `tail -f` gives up on a missing file.
        ': > "$rj_run/log"',
        *([': > "$rj_run/keep"'] if keep else []),
        "rj_setsid=; command -v setsid >/dev/null 2>&1 && rj_setsid=setsid",
        f"$rj_setsid /bin/sh -c {shlex.quote(_SUPERVISOR)} rjupyter-supervisor "
        f'"$rj_run" {abandon_seconds} {step} {int(log_limit)} {server} '
        "</dev/null >/dev/null 2>&1 &",
        "rj_n=0",
        'while [ ! -s "$rj_run/pid" ] || [ ! -s "$rj_run/sup" ]; do',
        "  rj_n=$((rj_n + 1)); [ $rj_n -gt 300 ] && rj_fail supervisor",
        "  sleep 0.02 2>/dev/null || sleep 1",
        "done",
        f'printf \'%s %s\\n\' {PID_MARKER} "$(cat "$rj_run/pid")" >&2',
        'rj_sup=$(cat "$rj_run/sup")',
        'if tail --pid="$$" -n 0 /dev/null >/dev/null 2>&1; then',
        '  tail -n +1 -f --pid="$rj_sup" "$rj_run/log"',
        "else",
        '  tail -n +1 -f "$rj_run/log" & rj_tail=$!',
        '  while kill -0 "$rj_sup" 2>/dev/null; do sleep 1; done',
        '  kill "$rj_tail"',
        "fi",
        f'printf \'%s %s\\n\' {EXIT_MARKER} "$(cat "$rj_run/status" 2>/dev/null)" >&2',
    ]
    return whole(lines)


def whole(lines: Sequence[str]) -> str:
    """The script as one function called on its last line: ``/bin/sh -s`` runs nothing of it
    unless all of it arrived, and no command in it reads the rest of the script from stdin."""
    body = "".join(f"{line}\n" for line in lines)
    return f'rj_main() {{\n{body}}}\nrj_main "$@"\n'


def server_command(app: str, jupyter: str, port: int, *, unix_socket: bool = False) -> str:
    """The command that starts Jupyter on the loopback at ``port`` (or the next free one); with
    ``unix_socket``, where :func:`socket_lines` said (``$rj_listen``).

    Raises:
        ValueError: ``app`` is not one of :data:`APPS`.
    """
    if app not in APPS:
        raise ValueError(f"app must be one of {', '.join(APPS)}; got {app!r}")
    command = remote_path(jupyter)
    listen = '"$rj_listen"' if unix_socket else f"--port={int(port)}"
    return f"{command} {app} --no-browser --ip=127.0.0.1 {listen} --port-retries=50"


def socket_lines(run_dir: str, port: int) -> list[str]:
    """Shell lines that set ``$rj_listen``: a Unix socket in ``run_dir`` (a shell word; private,
    0700), or ``port`` where the socket's path would be too long for ``sun_path``. A server too
    old to know ``ServerApp.sock`` listens on a TCP port instead: its URL tells which."""
    return [
        f"rj_listen=--port={int(port)}",
        f'rj_sock="{run_dir}/jupyter.sock"',
        'if [ "${#rj_sock}" -le 100 ]; then rj_listen="--ServerApp.sock=$rj_sock"; fi',
    ]


def preamble_lines() -> list[str]:
    """The first lines of every launch: the process functions, ``rj_fail`` (print a reason
    code, remove the run dir if there is one yet, exit 97) and the shell's PID (its group runs
    the setup lines)."""
    return [
        *_PROCESS_FUNCTIONS.splitlines(),
        f"rj_fail() {{ printf '%s %s\\n' {ERROR_MARKER} \"$1\" >&2; "
        '[ -n "${rj_run:-}" ] && rm -rf -- "$rj_run"; exit 97; }',
        f"printf '%s %s\\n' {SHELL_MARKER} \"$$\" >&2",
    ]


def environment_lines(
    *,
    workdir: str | None,
    venv: str | None,
    conda_env: str | None,
    setup: Sequence[str],
    jupyter: str,
) -> list[str]:
    """Shell lines that enter the environment and check that ``jupyter`` is there; they
    follow :func:`preamble_lines` (which defines ``rj_fail``)."""
    lines: list[str] = []
    if workdir is not None:
        lines.append(f"cd -- {remote_path(workdir)} || rj_fail workdir")
    if venv is not None:
        lines += [
            f"VIRTUAL_ENV={remote_path(venv)}",
            '[ -f "$VIRTUAL_ENV/bin/activate" ] || rj_fail venv',
            'PATH="$VIRTUAL_ENV/bin:$PATH"',
            "export VIRTUAL_ENV PATH",
            "unset PYTHONHOME",
        ]
    if conda_env is not None:
        lines += _conda_lines(conda_env)
    for number, line in enumerate(setup, 1):
        # Not on the script's stdin: a line that reads stdin (cat, read, ssh, python -) would
        # eat the rest of the script where /bin/sh reads it byte by byte (bash).
        lines += ["{", line, f"}} </dev/null; [ $? -eq 0 ] || rj_fail setup:{number}"]
    lines.append(f"command -v {remote_path(jupyter)} >/dev/null 2>&1 || rj_fail jupyter")
    return lines


def _conda_lines(env: str) -> list[str]:
    return [
        'rj_conda="${CONDA_EXE:-}"',
        '[ -n "$rj_conda" ] || rj_conda="$(command -v conda 2>/dev/null)"',
        'for rj_dir in "$HOME/miniforge3" "$HOME/mambaforge" "$HOME/miniconda3" '
        '"$HOME/anaconda3" /opt/conda; do',
        '  [ -n "$rj_conda" ] || { [ -x "$rj_dir/bin/conda" ] && rj_conda="$rj_dir/bin/conda"; }',
        "done",
        '[ -n "$rj_conda" ] || rj_fail conda',
        'eval "$("$rj_conda" shell.posix hook)" || rj_fail conda',
        f"conda activate {shlex.quote(env)} || rj_fail conda-env",
    ]
