"""Builders for the systemd unit that keeps the embedded supervisord up across reboots.

:func:`supervisord_unit` returns the unit's text (a pure function: no I/O); the other
builders return commands and the hand-run command lines ``invoke setup`` prints.
systemctl itself is never run by cicd: enabling a system service is a root's decision.
"""

from __future__ import annotations

import re
import shlex
from posixpath import join

from cicd.commands import Command, cmd
from cicd.core.errors import UsageError

#: The unit's file name, the same on every VM.
UNIT_NAME = "cicd-supervisord.service"

#: Where system units live; ``invoke setup --unit-dir`` overrides it.
UNIT_DIR = "/etc/systemd/system"

#: What a root runs once the unit is in place (cicd never runs systemctl).
ENABLE = "systemctl daemon-reload && systemctl enable --now cicd-supervisord"

#: A user name or numeric id as systemd's ``User=`` accepts it.
_USER = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]+)$")

#: Words systemd takes as they are in a command line (no quotes needed).
_PLAIN = re.compile(r"^[A-Za-z0-9_@+=:,./-]+$")


def check_user(user: str) -> str:
    """Return ``user`` when it is a valid ``User=`` value.

    Raises:
        UsageError: Not a user name or numeric id.
    """
    if not _USER.match(user):
        raise UsageError(
            f"--user {user!r} is not a user name (letters, digits, _ . -) or a uid"
        )
    return user


def _specifiers(value: str) -> str:
    # systemd expands %x specifiers in most settings and $VAR in command lines.
    return value.replace("%", "%%")


def _line_value(value: str, setting: str) -> str:
    if "\n" in value or "\r" in value:
        raise UsageError(f"{setting} cannot hold a line break: {value!r}")
    return _specifiers(value)


def exec_word(word: str) -> str:
    """One word of an ``ExecStart=`` line, quoted the way systemd reads it.

    systemd splits command lines on spaces, honours double quotes with C-style
    backslash escapes, expands ``%`` specifiers and ``$VAR``: each is escaped, so the
    word reaches the program exactly as given.
    """
    value = _line_value(word, "ExecStart=").replace("$", "$$")
    if _PLAIN.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def supervisord_unit(supervisord: str, conf: str, *, root: str, user: str = "") -> str:
    """Return the text of ``cicd-supervisord.service``.

    supervisord runs in the foreground (``-n``) under systemd, which restarts it
    whenever it exits (``Restart=always``, never giving up) and starts it at boot, so
    the apps of every environment outlive CI jobs and reboots. The unit sets no
    environment at all: nothing of a CI job (its ``RUNNER_TRACKING_ID``, its tokens)
    reaches supervisord, and each app reads its own secrets from
    ``<root>/<env>/shared/app.env``.

    Args:
        supervisord: The supervisord command (an absolute path; several words allowed,
            as in ``tool.cicd.runtime.supervisord``).
        conf: The supervisord.conf cicd writes under ``<root>/supervisor``.
        root: The target root, the service's working directory.
        user: The account that runs supervisord and the apps (``User=``); empty: the
            service manager's default (root).

    Returns:
        The unit file's content.

    Raises:
        UsageError: A value systemd could not read back (a line break, a bad user).
    """
    words = [*shlex.split(supervisord), "-n", "-c", conf]
    exec_start = " ".join(exec_word(word) for word in words)
    lines = [
        "# Written by `invoke setup` (cicd); rewritten by the next run: do not edit.",
        "# The embedded supervisord, in the foreground, for every environment of",
        f"# {_line_value(root, 'the root')}.",
        "[Unit]",
        f"Description=cicd supervisord: the apps under {_line_value(root, 'the root')}",
        "Wants=network-online.target",
        "After=network-online.target",
        # Restart forever: a supervisord started by hand still holding the socket
        # makes a start fail; the unit takes over as soon as that one is gone.
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={exec_start}",
        f"WorkingDirectory={_line_value(root, 'WorkingDirectory=')}",
    ]
    if user:
        lines.append(f"User={check_user(user)}")
    lines += [
        "Restart=always",
        "RestartSec=5",
        # supervisord gets SIGTERM and stops its programs in order; what is left
        # after the timeout is killed.
        "KillMode=mixed",
        "TimeoutStopSec=30",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def unit_path(unit_dir: str) -> str:
    """Path of the unit in ``unit_dir``."""
    return join(unit_dir, UNIT_NAME)


def verify(path: str) -> Command:
    """``systemd-analyze verify PATH``: exits non-zero when the unit is unusable."""
    return cmd("systemd-analyze", "verify", path)


def install_line(staged: str, unit_dir: str) -> str:
    """The command a root runs to put a staged unit in place (printed, never run)."""
    return shlex.join(["install", "-m", "0644", staged, unit_path(unit_dir)])
