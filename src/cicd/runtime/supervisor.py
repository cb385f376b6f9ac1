"""The embedded runtime: a real supervisord, started on demand, one program per env.

Its socket, config and logs live under ``<root>/supervisor``. The program runs in the
environment's ``current`` symlink, so switching a release and restarting the program
runs the new release; supervisord restarts the app if it crashes.
"""

from __future__ import annotations

import shlex
import time
from posixpath import join
from typing import TYPE_CHECKING

from cicd.commands import files
from cicd.commands import supervisor as sv
from cicd.errors import CicdError

if TYPE_CHECKING:
    from cicd.config import EnvSettings
    from cicd.layout import EnvPaths
    from cicd.runner import Runner

#: Exit code of supervisorctl when it cannot reach supervisord.
UNREACHABLE = (4, 7)


class SupervisorRuntime:
    """Run an environment's app under the root's supervisord."""

    def __init__(
        self,
        runner: Runner,
        settings: EnvSettings,
        paths: EnvPaths,
        *,
        supervisord: str = "supervisord",
        supervisorctl: str = "supervisorctl",
        program_command: str = "",
    ) -> None:
        self.runner = runner
        self.settings = settings
        self.paths = paths
        self.supervisord = settings.runtime.supervisord or supervisord
        self.supervisorctl = settings.runtime.supervisorctl or supervisorctl
        self.program_command = program_command or settings.runtime.command
        self.program = f"app-{settings.name}"
        self.conf = sv.conf_path(paths.supervisor)

    def preflight(self) -> None:
        """Fail with a clear message when supervisord or supervisorctl is missing."""
        for tool, key in ((self.supervisord, "supervisord"), (self.supervisorctl, "supervisorctl")):
            program = shlex.split(tool)[0]
            if not self.runner.ok(files.which(program)):
                raise CicdError(
                    f"{key} not found on {self.runner.host}: {program} "
                    f"(install the 'supervisor' package, or set tool.cicd.runtime.{key})"
                )

    def _ctl(self, *args: str) -> tuple[int, str]:
        result = self.runner.run(sv.ctl(self.supervisorctl, self.conf, *args), check=False)
        return result.exited, (result.stdout + result.stderr).strip()

    def ensure_daemon(self, *, timeout: float = 10.0) -> None:
        """Write the config files and start supervisord if it is not running."""
        self.runner.run(files.mkdirs(join(self.paths.supervisor, "conf.d"), self.paths.logs))
        self._write_if_changed(self.conf, sv.daemon_conf(self.paths.supervisor))
        changed = self._write_if_changed(
            sv.program_path(self.paths.supervisor, self.program), self._program_conf()
        )
        exited, _ = self._ctl("pid")
        if exited in UNREACHABLE:
            self.runner.run(sv.daemon(self.supervisord, self.conf))
            deadline = time.monotonic() + timeout
            while (exited := self._ctl("pid")[0]) in UNREACHABLE:
                if time.monotonic() > deadline:
                    raise CicdError(f"supervisord did not start within {timeout:g}s")
                time.sleep(0.05)
        elif changed:
            self._ctl("reread")
            self._ctl("update", self.program)

    def _program_conf(self) -> str:
        values = {
            "port": str(self.settings.port),
            "env": self.settings.name,
            "release": self.paths.current,
            "venv": join(self.paths.current, ".venv"),
            "shared": self.paths.shared,
            "python": join(self.paths.current, ".venv", "bin", "python"),
        }
        command = self.program_command.format(**values)
        environment = {k: v.format(**values) for k, v in self.settings.runtime.environment.items()}
        environment.setdefault("CICD_ENV", self.settings.name)
        environment.setdefault("CICD_SHARED", self.paths.shared)
        return sv.program_conf(
            self.program,
            command,
            directory=join(self.paths.current, self.settings.app_dir),
            environment=environment,
            logfile=join(self.paths.logs, "app.log"),
        )

    def _write_if_changed(self, path: str, content: str) -> bool:
        if self.runner.run(files.read(path)).stdout == content:
            return False
        self.runner.run(files.write_atomic(path, content))
        return True

    def start(self) -> None:
        """Start the program if it is not running."""
        self.ensure_daemon()
        if self.status() != "RUNNING":
            self._checked("start", self.program)

    def stop(self) -> None:
        """Stop the program (supervisord keeps running for the other environments)."""
        exited, _ = self._ctl("pid")
        if exited not in UNREACHABLE:
            self._ctl("stop", self.program)

    def restart(self) -> None:
        """Restart the program so it runs the release ``current`` points to now."""
        self.ensure_daemon()
        self._checked("restart", self.program)

    def _checked(self, *args: str) -> None:
        exited, output = self._ctl(*args)
        if exited != 0 or "ERROR" in output:
            raise CicdError(f"supervisorctl {' '.join(args)} failed: {output}")

    def status(self) -> str:
        """Return the program's state (RUNNING, STOPPED, FATAL...), or DOWN."""
        exited, output = self._ctl("status", self.program)
        if exited in UNREACHABLE and "no such process" not in output:
            return "DOWN"
        words = output.split()
        if len(words) >= 2 and words[0] == self.program:
            return words[1]
        return "UNKNOWN"

    def logs(self, lines: int = 50) -> str:
        """Return the last lines of the app's log."""
        path = join(self.paths.logs, "app.log")
        return self.runner.run(files.sh_tail(path, lines)).stdout

    def shutdown(self) -> None:
        """Stop supervisord and every program it runs."""
        exited, _ = self._ctl("pid")
        if exited not in UNREACHABLE:
            self._ctl("shutdown")
