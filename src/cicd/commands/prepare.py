"""Builders for ``invoke setup``: inspect and prepare a target host's directories.

Constant scripts with values as positional parameters, like every builder; the
checks that run them live in :mod:`cicd.pipeline.setup`.
"""

from __future__ import annotations

from cicd.commands import Command, cmd, sh


def inspect_env(shared: str, app_env: str, *dirs: str) -> Command:
    """Print ``missing DIR`` per absent directory, then the modes of shared and app.env.

    Output lines: ``missing PATH``, ``shared MODE``, ``app.env MODE`` (octal, as
    ``stat -c %a`` prints it); nothing about a path that does not exist.
    """
    return sh(
        's="$1"; e="$2"; shift 2; for d; do [ -d "$d" ] || echo "missing $d"; done; '
        '[ ! -d "$s" ] || echo "shared $(stat -c %a -- "$s")"; '
        '[ ! -e "$e" ] || echo "app.env $(stat -c %a -- "$e")"',
        shared,
        app_env,
        *dirs,
    )


def make_env_dirs(shared: str, *dirs: str) -> Command:
    """Create the directories and make ``shared`` private (0700)."""
    return sh(
        's="$1"; shift; mkdir -p -- "$@" "$s" && chmod 0700 -- "$s"', shared, *dirs
    )


def create_private_file(path: str) -> Command:
    """Create an empty file with mode 0600; an existing file is left untouched.

    ``set -C`` (noclobber) makes the creation fail rather than truncate a file that
    appeared meanwhile: the content is never overwritten. ``command :`` keeps a
    refused redirection from ending the shell (it would, on the special built-in
    ``:``), so a file that exists is success.
    """
    return sh(
        'umask 077 && set -C && { [ -f "$1" ] || command : > "$1" || [ -f "$1" ]; }',
        path,
    )


def chmod(mode: str, path: str) -> Command:
    """``chmod MODE PATH``."""
    return cmd("chmod", mode, "--", path)


def git_toplevel(path: str) -> Command:
    """Print the git work tree that holds ``path`` (or its nearest existing parent)."""
    return sh(
        'd="$1"; while [ ! -d "$d" ]; do d=$(dirname -- "$d"); done; '
        'git -C "$d" rev-parse --show-toplevel 2>/dev/null || true',
        path,
    )


def writable_dir(path: str) -> Command:
    """Exit 0 when ``path`` is a directory this user can write to."""
    return sh('[ -d "$1" ] && [ -w "$1" ]', path)


def command_path(program: str) -> Command:
    """Print the path ``program`` resolves to (``command -v``)."""
    return sh('command -v -- "$1"', program)


def is_dir(path: str) -> Command:
    """Exit 0 when ``path`` is a directory."""
    return cmd("test", "-d", path)


def docker_server_version() -> Command:
    """Print the Docker engine's version; fails when no engine answers."""
    return cmd("docker", "info", "--format", "{{.ServerVersion}}")
