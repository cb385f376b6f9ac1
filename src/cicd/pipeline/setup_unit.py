"""``setup``'s systemd unit: ``cicd-supervisord.service``, written then verified.

The unit keeps supervisord up across reboots. It is written where the unit
directory is writable (else staged under the root for a root to install) and
verified with ``systemd-analyze``; systemctl is never run: the command that
enables it is printed for a root.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from cicd.commands import files, systemd
from cicd.commands.prepare import chmod, writable_dir
from cicd.pipeline.setup_check import SetupRun, last_line

if TYPE_CHECKING:
    from cicd.host.target import Target

#: The command that enables the unit once it is installed.
ENABLE = f"{systemd.ENABLE}   # as root, once"


def check_unit(run: SetupRun, t: Target, program: str, conf: str) -> None:
    """Write (or report) cicd-supervisord.service, then verify it.

    Args:
        run: The run the checks go to.
        t: The environment whose root the unit serves.
        program: The supervisord command line (its path resolved).
        conf: supervisord's config file.
    """
    options = run.options
    text = systemd.supervisord_unit(program, conf, root=t.paths.root, user=options.user)
    written = _install_unit(run, t, text)
    if written:
        _verify_unit(run, t, written)


def _install_unit(run: SetupRun, t: Target, text: str) -> str:
    """Install the unit (or say why not); returns the file to verify ("" if none)."""
    options, name = run.options, "systemd unit"
    installed = systemd.unit_path(options.unit_dir)
    current = t.runner.run(files.read(installed), check=False).stdout
    as_user = f" (User={options.user})" if options.user else " (as root: see --user)"
    if current == text:
        run.ok(name, f"{installed} is up to date{as_user}")
        return installed
    if options.check:
        problem = "differs from what setup writes" if current else "not installed"
        run.missing(name, f"{installed} {problem}", options.command, blocking=False)
        return installed if current else ""
    if t.runner.ok(writable_dir(options.unit_dir)):
        t.runner.run(files.write_atomic(installed, text))
        t.runner.run(chmod("0644", installed))
        run.fixed(name, f"{installed} written{as_user}", ENABLE, blocking=False)
        return installed
    staged = systemd.unit_path(t.paths.supervisor)
    t.runner.run(files.write_atomic(staged, text))
    run.missing(
        name,
        f"{options.unit_dir} is not writable here: written to {staged} "
        "for a root to install (meanwhile deploys start supervisord "
        "detached)",
        f"{systemd.install_line(staged, options.unit_dir)}   # as root",
        ENABLE,
        blocking=False,
    )
    return staged


def _verify_unit(run: SetupRun, t: Target, path: str) -> None:
    """``systemd-analyze verify`` the unit at ``path``, where the machine has it."""
    name = "systemd unit verify"
    if not t.runner.ok(files.which("systemd-analyze")):
        run.skipped(name, "systemd-analyze not found: the unit was not verified")
        return
    result = t.runner.run(systemd.verify(path), check=False)
    if result.ok:
        run.ok(name, f"systemd-analyze verify {path}")
        return
    run.missing(
        name,
        f"systemd-analyze verify {path}: {last_line(result)}",
        f"systemd-analyze verify {shlex.quote(path)}",
        blocking=False,
    )
