"""Which configuration a machine uses: the record ``setup`` writes for its user.

``cicd setup --user USER``, run as that user, writes ``~/.config/cicd/config.toml``::

    config = "/srv/mangetamain/cicd.toml"   # the configuration file of this machine
    tool = "/srv/mangetamain/tool"          # the venv cicd runs from

Two readers use it, so that nobody has to repeat where things are:

- ``cicd`` (or ``invoke``) on that machine, when ``CICD_CONFIG`` is not set and no
  ``[tool.cicd]`` table is found above the current directory;
- ``fab -H HOST TASK`` from a machine with no configuration of its own (a laptop):
  the task reads the record over SSH, then the configuration it names, and runs
  supervisord and Python from the recorded tool venv, as the VM's own tasks do.

A remote task never guesses: with no configuration here and no record there, it
says what to set and exits 2, having created nothing.
"""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from cicd.commands import Command, files, sh
from cicd.core.errors import ConfigError, UsageError
from cicd.core.record import RECORD, Record, parse

if TYPE_CHECKING:
    from cicd.core.settings import Settings
    from cicd.transport.runner import Runner


def read_command() -> Command:
    """Print the SSH user's record, or nothing when there is none."""
    return sh('f="$HOME/$1"; [ ! -f "$f" ] || cat -- "$f"', RECORD)


def write_command(record: Record) -> Command:
    """Write the record in the user's home, atomically (temp file, rename)."""
    return sh(
        'f="$HOME/$1"; mkdir -p -- "${f%/*}" && printf "%s" "$2" > "$f.tmp.$$" '
        '&& mv -f -- "$f.tmp.$$" "$f"',
        RECORD,
        record.text(),
    )


def link_tools_command(bin_dir: str, *names: str) -> Command:
    """Link the tool's programs into ``~/.local/bin``, on a login shell's PATH.

    Debian's and Ubuntu's ``~/.profile`` put ``~/.local/bin`` on PATH when it
    exists, so the next login finds ``cicd``, ``invoke`` and ``fab``.
    """
    return sh(
        'src="$1"; shift; d="$HOME/.local/bin"; mkdir -p -- "$d" && '
        'for n in "$@"; do ln -sfn -- "$src/$n" "$d/$n" || exit 1; done',
        bin_dir,
        *names,
    )


def linked_tools_command(bin_dir: str, *names: str) -> Command:
    """Exit 0 when every program is linked from ``~/.local/bin`` to ``bin_dir``."""
    return sh(
        'src="$1"; shift; for n in "$@"; do '
        '[ "$(readlink -- "$HOME/.local/bin/$n")" = "$src/$n" ] || exit 1; done',
        bin_dir,
        *names,
    )


def remote_settings(runner: Runner) -> Settings:
    """The configuration a host recorded for its SSH user, read over SSH.

    Raises:
        UsageError: The host has no record, or the file it names is missing; nothing
            was done on the host.
        ConfigError: The recorded configuration is invalid.
    """
    from cicd.core.config import CONFIG_VARIABLE, from_table
    from cicd.core.settings import merge as _merge  # the configuration's own rule

    host = runner.host
    text = runner.run(read_command()).stdout
    if not text.strip():
        raise UsageError(
            f"no configuration for {host}: none here ({CONFIG_VARIABLE} unset, no "
            f"[tool.cicd] table) and none recorded on {host} (~/{RECORD}); run "
            f"`cicd setup --user USER` there as its service user, or set "
            f"{CONFIG_VARIABLE} here; nothing was done"
        )
    record = parse(text, f"{host}:~/{RECORD}")
    content = runner.run(files.read(record.config)).stdout
    if not content.strip():
        raise UsageError(
            f"{host}: the configuration its setup recorded, {record.config}, is "
            "missing or empty; run `cicd setup` there again; nothing was done"
        )
    try:
        data = tomllib.loads(content)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{host}:{record.config}: invalid TOML: {error}") from None
    table = data.get("tool", {}).get("cicd", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{host}:{record.config}: [tool.cicd] must be a table")
    # The tool's programs are defaults: keys the file sets win.
    table = _merge(record.tool_defaults(), table)
    path = PurePosixPath(record.config)
    return from_table(table, project_dir=Path(path.parent), path=Path(path))
