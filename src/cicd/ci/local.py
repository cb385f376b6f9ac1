"""Local CI: run a command (by default the project's own ``nox -s lint tests``).

The embedded default, so the whole pipeline runs on one machine with no GitHub. The
command runs in a scratch copy of the release, never in the release itself, which
stays immutable; exit 0 is success, anything else failure — except a command that
cannot start (not found, not executable: exit 127 or 126), which says nothing about
the commit and is inconclusive, with the reason.
"""

from __future__ import annotations

import shlex
from posixpath import join
from typing import TYPE_CHECKING

from cicd.ci import FAILURE, INCONCLUSIVE, SUCCESS, Poll
from cicd.commands import Command, files, sh
from cicd.core.redact import redact

if TYPE_CHECKING:
    from cicd.host.target import Target


class LocalProvider:
    """Run the CI command for a release on the target host.

    Args:
        target: The environment whose release is checked.
        command: Shell-free command template; ``{envdir}`` is a directory shared by
            every run, so nox reuses its virtualenvs.
        timeout: Seconds after which the run is inconclusive.
    """

    name = "local"

    def __init__(self, target: Target, command: str, *, timeout: float) -> None:
        self.target = target
        self.command = command
        self.timeout = timeout

    def wait_hint(self) -> float:
        """The local command runs to completion: no waiting between polls."""
        return 0.0

    def poll(self, sha: str) -> Poll:
        """Run the command once and turn its exit status into a verdict."""
        paths = self.target.paths
        release = paths.release(sha)
        workdir = join(paths.ci_work, sha)
        log = paths.ci_log(sha)
        envdir = paths.ci_envs
        runner = self.target.runner
        if not runner.ok(files.exists(release)):
            return Poll(INCONCLUSIVE, f"release {sha[:7]} is not on the host")
        runner.run(files.mkdirs(paths.logs, paths.ci_work, envdir))
        runner.run(files.remove(workdir))
        runner.run(copy_tree(release, workdir))
        argv = command_argv(self.command, envdir=envdir)
        result = runner.run(run_logged(workdir, argv, log, self.timeout), check=False)
        runner.run(files.remove(workdir))
        if result.exited == 124:
            return Poll(
                INCONCLUSIVE,
                f"CI command timed out after {self.timeout:g}s",
                log,
                settled=True,
            )
        if result.ok:
            return Poll(SUCCESS, "local CI passed", log)
        tail = redact(runner.run(files.sh_tail(log, 5)).stdout).strip().splitlines()
        if result.exited in CANNOT_START:
            reason = tail[-1] if tail else f"exit {result.exited}"
            return Poll(
                INCONCLUSIVE,
                f"the CI command could not start ({CANNOT_START[result.exited]}): "
                f"{reason}",
                log,
                settled=True,
            )
        return Poll(
            FAILURE, f"local CI failed (exit {result.exited})", log, tuple(tail[-3:])
        )


#: Exit statuses of ``timeout``/the shell when the command itself could not start.
CANNOT_START = {126: "not executable", 127: "not found"}


def command_argv(template: str, **values: str) -> list[str]:
    """Split the command template like a shell, then fill each word's placeholders.

    Splitting first keeps a value with spaces (a root such as ``/srv/my app``) one
    argument.
    """
    return [word.format(**values) for word in shlex.split(template)]


def copy_tree(source: str, destination: str) -> Command:
    """Copy a release into a scratch directory (the venv link is kept as a link)."""
    return sh('mkdir -p -- "$2" && cp -a -- "$1/." "$2/"', source, destination)


def run_logged(workdir: str, argv: list[str], log: str, timeout: float) -> Command:
    """Run ``argv`` (never evaluated by a shell) in ``workdir``, output in ``log``."""
    # The commit's own code runs here: it gets none of the pipeline's secrets.
    return sh(
        'cd "$1" && log="$2" && secs="$3" && shift 3 && '
        'timeout "$secs" env -u DISCORD_WEBHOOK_URL -u GITHUB_TOKEN '
        '-u CICD_GITHUB_TOKEN "$@" > "$log" 2>&1',
        workdir,
        log,
        str(int(timeout)),
        *argv,
    )
