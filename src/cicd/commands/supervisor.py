"""Builders for the embedded supervisord: config files and ``supervisorctl``."""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping
from posixpath import join

from cicd.commands import Command, cmd, sh

#: The only variables supervisord (and so every app) inherits: a job's environment —
#: ``RUNNER_TRACKING_ID``, ``GITHUB_TOKEN``, ``DISCORD_WEBHOOK_URL`` — never reaches
#: them. HOME and the user come from the account that runs it.
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Loads the app's own secrets from an env file (``KEY=VALUE`` lines, ``#``
#: comments), each value taken literally — never evaluated — then runs the app. A
#: file of its own: supervisord cuts a command line at " ;" (an inline comment).
#:
#: It first writes a start mark (:data:`START_MARK`) naming the release it starts
#: into the app's log: a slot's (or the in-place app's) log holds the lines of
#: every release that ran there, and a failure's log tail shows only those of the
#: release that failed (:func:`tail_since_start`).
APP_ENV_LOADER = """\
# Written by cicd. Usage: sh app-env.sh ENV_FILE COMMAND...
here=$(pwd -P)
here=${here##*/releases/}
printf '%s%s at %s ---\\n' '--- cicd: start of release ' "${here%%/*}" \\
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
f="$1"
shift
if [ -f "$f" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*) continue ;; esac
    name="${line%%=*}"
    case "$name" in
      ''|[0-9]*|*[!A-Za-z0-9_]*)
        echo "app env file $f: not a KEY=VALUE line" >&2
        exit 78 ;;
    esac
    if [ "$name" = "$line" ]; then
      echo "app env file $f: not a KEY=VALUE line" >&2
      exit 78
    fi
    export "$line"
  done < "$f"
fi
exec "$@"
"""


#: How the loader's start mark begins; the release's name follows, then a space.
START_MARK = "--- cicd: start of release "

#: Keeps the last ``n`` lines after the last start of a release (a start mark
#: naming another release than the one before it empties what was kept; the
#: restarts of one release, a crash loop, keep adding). The marks are left out.
_SINCE_START = (
    'index($0, m) == 1 { r = substr($0, length(m) + 1); sub(/ .*/, "", r); '
    "if (r != last) { last = r; c = 0 }; next } "
    "{ kept[c % n] = $0; c++ } "
    "END { for (i = (c > n ? c - n : 0); i < c; i++) print kept[i % n] }"
)


def tail_since_start(log: str, lines: int) -> Command:
    """The last ``lines`` lines of an app's log written by the release started last.

    A log with no start mark (written before marks were) is tailed whole.
    """
    return sh(
        '[ ! -f "$1" ] || awk -v n="$2" -v m="$3" "$4" "$1"',
        log,
        str(max(lines, 1)),
        START_MARK,
        _SINCE_START,
    )


def _escape(value: str) -> str:
    # supervisord expands %(name)s in values; a literal % is written %%.
    return value.replace("%", "%%")


#: A unix socket path must fit in sockaddr_un (108 bytes on Linux).
SOCKET_PATH_LIMIT = 100


def socket_path(directory: str) -> str:
    """Path of supervisord's socket: in ``directory``, or in /tmp when that is too long.

    The /tmp name is derived from ``directory``, so every caller finds the same one.
    """
    path = join(directory, "supervisor.sock")
    if len(path.encode()) <= SOCKET_PATH_LIMIT:
        return path
    digest = hashlib.sha256(directory.encode()).hexdigest()[:16]
    return f"/tmp/cicd-supervisor-{digest}.sock"


def _quote_escape(value: str) -> str:
    # supervisord reads environment= with shlex: escape what ends a "..." string.
    return value.replace("\\", "\\\\").replace('"', '\\"')


def daemon_conf(directory: str) -> str:
    """Return supervisord.conf for a daemon whose files all live in ``directory``."""
    d = _escape(directory)
    sock = _escape(socket_path(directory))
    return (
        "; Written by cicd: the embedded runtime. Do not edit; it is rewritten.\n"
        "[unix_http_server]\n"
        f"file={sock}\n"
        "chmod=0700\n\n"
        "[supervisord]\n"
        f"logfile={d}/supervisord.log\n"
        "logfile_maxbytes=5MB\n"
        "logfile_backups=2\n"
        f"pidfile={d}/supervisord.pid\n"
        f"childlogdir={d}\n"
        # Its own directory, never the caller's: a CI job's workspace is cleaned
        # (and removed) between jobs.
        f"directory={d}\n\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = "
        "supervisor.rpcinterface:make_main_rpcinterface\n\n"
        "[supervisorctl]\n"
        f"serverurl=unix://{sock}\n\n"
        # Relative to this file: supervisord splits ``files`` on spaces.
        "[include]\n"
        "files = conf.d/*.conf\n"
    )


def program_conf(
    name: str,
    command: str,
    *,
    directory: str,
    environment: Mapping[str, str],
    logfile: str,
    autostart: bool = True,
) -> str:
    """Return the ``[program:NAME]`` section that runs one environment's app.

    ``directory`` is the environment's ``current`` symlink: supervisord changes into
    it at every spawn, so a restart after a switch runs the new release.
    ``autostart`` says whether a supervisord that starts afresh (a reboot) starts
    it: only what serves does (see :func:`set_autostart`).
    """
    env = ",".join(
        f'{key}="{_escape(_quote_escape(value))}"'
        for key, value in sorted(environment.items())
    )
    lines = [
        f"[program:{name}]",
        f"command={_escape(command)}",
        f"directory={_escape(directory)}",
        f"autostart={_flag(autostart)}",
        "autorestart=true",
        # Readiness is judged by HTTP checks, not by supervisord's start timer.
        "startsecs=0",
        "startretries=0",
        "stopsignal=TERM",
        "stopwaitsecs=10",
        "stopasgroup=true",
        "killasgroup=true",
        "redirect_stderr=true",
        f"stdout_logfile={_escape(logfile)}",
        "stdout_logfile_maxbytes=5MB",
        "stdout_logfile_backups=2",
    ]
    if env:
        lines.append(f"environment={env}")
    return "\n".join(lines) + "\n"


def _flag(value: bool) -> str:
    return "true" if value else "false"


def set_autostart(*changes: tuple[str, bool]) -> Command:
    """Rewrite the ``autostart=`` line of program files, and nothing else.

    What a fresh supervisord starts is what the files say, so each switch marks
    the slot that serves ``true`` and the others ``false``. Only that line
    changes, and only where it differs: a running program's file then differs
    from what supervisord loaded by that line at most, and a serving program was
    always loaded with ``autostart=true`` (it was started so), so a later
    ``supervisorctl update`` never restarts what serves. A missing file is left
    missing.

    Args:
        *changes: ``(program file, autostart)`` pairs.
    """
    args = [word for path, value in changes for word in (path, _flag(value))]
    return sh(
        'while [ $# -ge 2 ]; do f="$1"; v="$2"; shift 2; '
        '[ -f "$f" ] || continue; grep -qx "autostart=$v" "$f" && continue; '
        'tmp="$f.tmp.$$"; sed "s/^autostart=.*/autostart=$v/" "$f" > "$tmp" '
        '&& mv -f "$tmp" "$f" || exit 1; done',
        *args,
    )


def ctl(supervisorctl: str, conf: str, *args: str) -> Command:
    """``supervisorctl -c CONF ARGS...``; ``supervisorctl`` may hold several words."""
    return cmd(*shlex.split(supervisorctl), "-c", conf, *args)


def serving_dir(supervisorctl: str, conf: str, program: str) -> Command:
    """Print the working directory of the program's running process, if any.

    The program runs in ``current/<app_dir>``; the kernel resolves the symlink when
    the process starts, so its cwd names the release it really runs — whatever
    ``current`` says now.
    """
    return sh(
        'prog="$1"; shift; pid=$("$@" pid "$prog" 2>/dev/null) || true; '
        'case "$pid" in ""|0|*[!0-9]*) exit 0 ;; esac; '
        'readlink -- "/proc/$pid/cwd" || true',
        program,
        *shlex.split(supervisorctl),
        "-c",
        conf,
    )


def daemon(supervisord: str, conf: str) -> Command:
    """Start supervisord with a clean environment; it daemonizes and returns at once.

    ``env -i`` drops everything the caller had (on a CI runner: the job's
    ``RUNNER_TRACKING_ID``, whose holders the runner kills when the job ends, and
    the job's secrets); supervisord's own daemonizing ``setsid()`` leaves the job's
    session. Only PATH, HOME, USER and a UTF-8 locale are passed on.
    """
    return sh(
        'path="$1"; shift; exec env -i PATH="$path" HOME="${HOME:-/}" '
        'USER="${USER:-$(id -un)}" LANG=C.UTF-8 "$@"',
        CLEAN_PATH,
        *shlex.split(supervisord),
        "-c",
        conf,
    )


def loader_path(directory: str) -> str:
    """Path of the env-file loader (:data:`APP_ENV_LOADER`) in ``directory``."""
    return join(directory, "app-env.sh")


def with_app_env(loader: str, env_file: str, command: str) -> str:
    """Prefix a program's command line so it loads ``env_file`` first, if present.

    The file holds the app's own secrets (mode 0600, never printed); a missing file
    is no error.
    """
    return shlex.join(["/bin/sh", loader, env_file]) + " " + command


def app_program(env: str, slot: str | None = None) -> str:
    """The program that runs an environment's app: ``app-ENV`` or ``app-ENV-SLOT``."""
    return f"app-{env}-{slot}" if slot else f"app-{env}"


def conf_path(directory: str) -> str:
    """Path of supervisord.conf in ``directory``."""
    return join(directory, "supervisord.conf")


def program_path(directory: str, name: str) -> str:
    """Path of one program's config file."""
    return join(directory, "conf.d", f"{name}.conf")
