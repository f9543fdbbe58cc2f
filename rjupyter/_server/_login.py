"""The user's login environment around a remote script (pure text, no I/O).

sshd runs a command through the user's login shell as ``SHELL -c``, which is *not* a login
shell: ``/etc/profile``, ``/etc/profile.d`` (where Lmod defines ``module`` and conda its hook) and
the user's profile files are not read. :func:`login_script` wraps a complete ``/bin/sh`` script
so that it runs in the environment of a login:

- a **POSIX login shell** (sh, bash, dash, ksh, mksh, ash, yash, posh; zsh in its ``sh``
  emulation) is started as a login shell (``-l``) and runs the script itself, so the
  functions its profiles define (``module``, ``ml``, ``conda``) work in ``setup`` lines;
- **any other login shell** (tcsh, csh, fish ...) cannot run a POSIX script: it is started as a
  login shell only to hand over its exported variables (it ``exec``\\ s ``/bin/sh -c 'export
  -p'``); the script then runs in ``/bin/sh`` with them. Its aliases and functions are of
  another language and are not carried over; where the profiles exported ``MODULESHOME`` (Lmod,
  Environment Modules), ``module`` is defined from ``$MODULESHOME/init/sh``.

The script is never on a command line: it reaches the login shell on file descriptor 3 (a
here-document), and the profiles run with ``/dev/null`` as their stdin, so a profile that
reads its input cannot eat the script; the script itself then gets back the channel's stdin
(a follow script ends when it closes). What the profiles print (banners, ``fortune``) comes
before the script's first marker, where :class:`~._startup.StartupParser` ignores everything
but markers.
"""

from __future__ import annotations

import secrets

from ._startup import ERROR_MARKER, LOGIN_FAILED

__all__ = ["POSIX_SHELLS", "login_script"]

#: Login shells that run the script themselves (by the last component of their path).
POSIX_SHELLS = (
    *("sh", "bash", "dash", "ash", "ksh", "ksh93", "mksh", "lksh", "pdksh", "oksh"),
    *("yash", "posh", "busybox"),
)

#: Reads the script from fd 3, closes it (nothing started later inherits it), gives the script
#: back the stdin it was sent with (kept on fd 4 while the profiles ran on /dev/null), defines
#: ``module`` where the profiles left only ``MODULESHOME``, and runs the script.
_READ = (
    "rj_s=$(cat <&3) && exec 3<&- <&4 4<&- || exit 96; command -v module >/dev/null 2>&1 || "
    '{ [ -r "${MODULESHOME:-}/init/sh" ] && . "$MODULESHOME/init/sh"; }; eval "$rj_s"'
)


def login_script(script: str) -> str:
    """``script`` (a whole ``/bin/sh`` script; its arguments pass through) run in the login
    environment of the remote user's login shell. See the module docstring."""
    end = f"RJUPYTER-SCRIPT-{secrets.token_hex(8)}"
    mark = f"RJUPYTER-ENV-{secrets.token_hex(8)}"
    posix = "|".join(POSIX_SHELLS)
    export = f"exec /bin/sh -c 'echo {mark}; export -p'"
    lines = [
        "rj_login() {",
        'rj_shell=$(getent passwd "$(id -un)" 2>/dev/null | cut -d: -f7)',
        '[ -n "$rj_shell" ] || rj_shell=${SHELL:-/bin/sh}',
        '[ -x "$rj_shell" ] || rj_shell=/bin/sh',
        f"rj_read='{_READ}'",
        'case "${rj_shell##*/}" in',
        f'  {posix}) set -- "$rj_shell" -l -c "$rj_read" rjupyter "$@";;',
        '  zsh) set -- "$rj_shell" -l -c "emulate -R sh; $rj_read" rjupyter "$@";;',
        "  *)",
        '    case "${rj_shell##*/}" in',
        # csh and tcsh take no -l with -c: a leading '-' in argv[0] makes them login shells,
        # as login(1) and sshd start them (bash's `exec -a` sets it).
        '      csh|tcsh) rj_env=$(bash -c \'exec -a "-${0##*/}" "$0" -c "$1"\' '
        f'"$rj_shell" "{export}" </dev/null);;',
        f'      *) rj_env=$("$rj_shell" -l -c "{export}" </dev/null);;',
        "    esac",
        '    case "$rj_env" in',
        f'      *{mark}*) eval "${{rj_env#*{mark}}}" || rj_env=;;',
        "      *) rj_env=;;",
        "    esac",
        '    if [ -z "$rj_env" ]; then',
        f"      printf '%s %s\\n' {ERROR_MARKER} {LOGIN_FAILED} >&2; exit 97",
        "    fi",
        '    set -- /bin/sh -c "$rj_read" rjupyter "$@";;',
        "esac",
        f"exec \"$@\" 3<<'{end}' 4<&0 </dev/null",
        script.rstrip("\n"),
        end,
        "}",
        'rj_login "$@"',
    ]
    return "\n".join(lines) + "\n"
