"""The embedded runtime: a real supervisord, started on demand, one program per env.

Its socket, config and logs live under ``<root>/supervisor``. The program runs in the
environment's ``current`` symlink, so switching a release and restarting the program
runs the new release; supervisord restarts the app if it crashes.

supervisord must outlive the command that starts it — on a CI runner, the job, whose
orphan cleanup kills every process carrying the job's ``RUNNER_TRACKING_ID``. So it
starts with a clean environment in a session of its own, and an app sees only
``runtime.environment`` plus its own secrets from ``<root>/<env>/shared/app.env``.
``invoke setup`` writes a systemd unit that runs the same supervisord across reboots.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from posixpath import join
from urllib.parse import urlsplit
from typing import TYPE_CHECKING

from cicd.commands import Command, files
from cicd.commands import supervisor as sv
from cicd.core.errors import CicdError

if TYPE_CHECKING:
    from cicd.core.settings import EnvSettings
    from cicd.core.layout import EnvPaths
    from cicd.transport.runner import Runner

#: Exit code of supervisorctl when it cannot reach supervisord.
UNREACHABLE = (4, 7)


class SupervisorRuntime:
    """Run an environment's app under the root's supervisord."""

    def __init__(
        self,
        runner: Runner,
        settings: EnvSettings,
        paths: EnvPaths,
        slot: str | None = None,
    ) -> None:
        self.runner = runner
        self.settings = settings
        self.paths = paths
        #: ``blue`` or ``green`` behind the proxy; None: the app restarted in place.
        self.slot = slot
        self.supervisord = settings.runtime.supervisord or self._default("supervisord")
        self.supervisorctl = settings.runtime.supervisorctl or self._default(
            "supervisorctl"
        )
        self.program = sv.app_program(settings.name, slot)
        self.conf = sv.conf_path(paths.supervisor)

    def _default(self, name: str) -> str:
        # Locally, prefer the copy installed beside this interpreter (a dependency
        # of cicd), so the embedded default needs nothing on PATH.
        if not self.runner.remote:
            candidate = Path(sys.executable).parent / name
            if candidate.exists():
                return str(candidate)
        return name

    def preflight(self) -> None:
        """Fail with a clear message when supervisord or supervisorctl is missing."""
        tools = self._tools()
        result = self.runner.run(files.which(*tools), check=False)
        if not result.ok:
            program = result.stdout.strip() or next(iter(tools))
            key = tools.get(program, "supervisord")
            raise CicdError(
                f"{key} not found on {self.runner.host}: {program} "
                "(install the 'supervisor' package, or set "
                f"tool.cicd.runtime.{key})"
            )

    def _tools(self) -> dict[str, str]:
        return {
            shlex.split(self.supervisord)[0]: "supervisord",
            shlex.split(self.supervisorctl)[0]: "supervisorctl",
        }

    def preflight_reads(self) -> list[Command]:
        """Where supervisord and supervisorctl are."""
        return [files.which(*self._tools())]

    def _ctl(self, *args: str) -> tuple[int, str]:
        if self.runner.here and not self.settings.runtime.supervisorctl:
            from cicd.runtime.supervisor_rpc import LocalControl

            self.runner.flush()  # supervisord reads the files deferred writes make
            answer = LocalControl(sv.socket_path(self.paths.supervisor)).call(args)
            if answer is not None:
                return answer
        result = self.runner.run(
            sv.ctl(self.supervisorctl, self.conf, *args), check=False
        )
        return result.exited, (result.stdout + result.stderr).strip()

    def write_config(self) -> list[str]:
        """Write supervisord's files (conf, env-file loader, program) that differ.

        One round trip to compare; nothing is written when both are up to date.
        The program starts with supervisord (``autostart``) only if it would serve:
        see :meth:`boots`.

        Returns:
            The paths written.
        """
        conf = self._program_conf(autostart=self.boots())
        written = self.write_programs({self.program_path: conf})
        self.runner.flush()
        return written

    def boots(self) -> bool:
        """Whether a supervisord starting afresh (a reboot) should start this program.

        Only what serves does: in place, an environment that was deployed; behind
        haproxy, the slot the last switch chose (``<env>/live``), holding a release.
        A never-deployed environment starts nothing (no "couldn't chdir").
        """
        if not self.runner.ok(files.exists(self.link)):
            return False
        return self.slot is None or (
            self.runner.output(files.read(self.paths.live)) == self.slot
        )

    def autostart_command(self, autostart: bool) -> Command:
        """The command that marks this program to start at boot, or not."""
        return sv.set_autostart((self.program_path, autostart))

    def set_autostart(self, autostart: bool) -> None:
        """Mark this program to start with a fresh supervisord, or not.

        Only the file's ``autostart=`` line changes (see
        :func:`cicd.commands.supervisor.set_autostart`); sent with the next command.
        """
        self.runner.defer(self.autostart_command(autostart))

    def write_programs(self, programs: dict[str, str]) -> list[str]:
        """Write supervisord's own files and these program files, where they differ.

        Returns:
            The paths written.
        """
        wanted = self._wanted(programs)
        sections = files.parse_snapshot(self.runner.run(files.read_all(*wanted)).stdout)
        stale = {
            path: content
            for index, (path, content) in enumerate(wanted.items())
            if sections.get(str(index), "") != content.strip("\n")
        }
        if stale:
            # Written with the supervisorctl call that follows (one round trip).
            self.runner.defer(
                files.mkdirs(join(self.paths.supervisor, "conf.d"), self.paths.logs)
            )
            for path, content in stale.items():
                self.runner.defer(files.write_atomic(path, content))
        return list(stale)

    def _wanted(self, programs: dict[str, str]) -> dict[str, str]:
        """The files of supervisord and these program files: path -> content."""
        return {
            self.conf: sv.daemon_conf(self.paths.supervisor),
            sv.loader_path(self.paths.supervisor): sv.APP_ENV_LOADER,
            **programs,
        }

    def restart_reads(self) -> list[Command]:
        """The comparison of supervisord's files that ``restart`` begins with."""
        return [
            files.read_all(*self._wanted({self.program_path: self._program_conf()}))
        ]

    @property
    def program_path(self) -> str:
        """This environment's program file under supervisord's conf.d."""
        return sv.program_path(self.paths.supervisor, self.program)

    def ensure_daemon(self, *, timeout: float = 10.0) -> bool:
        """Write the config files; start supervisord or reload a changed program.

        Returns:
            True when the program was (re)started as a side effect: supervisord
            autostarts it, and ``update`` restarts a program whose config changed.
        """
        return self.ensure_program(
            self.program, self.program_path, self._program_conf(), timeout=timeout
        )

    def ensure_program(
        self,
        program: str,
        path: str,
        conf: str,
        *,
        timeout: float = 10.0,
        removed: bool = False,
    ) -> bool:
        """Write one program's file (and supervisord's); start or reload as needed.

        Args:
            program: The program's name.
            path: Its file under ``conf.d``.
            conf: Its section.
            timeout: Longest wait for a supervisord started here.
            removed: Another program's file was just removed: one ``update`` stops
                that one and starts this one, back to back.

        Returns:
            True when the program was (re)started as a side effect.
        """
        if path not in self.write_programs({path: conf}) and not removed:
            return False
        if self._ctl("pid")[0] in UNREACHABLE:
            self._start_daemon(timeout)
            return True
        if removed:
            # Named groups only: a bare ``update`` would also apply every other
            # changed file, restarting a program whose file was edited since.
            _, changes = self._ctl("reread")
            gone = [
                line.split(":", 1)[0]
                for line in changes.splitlines()
                if line.endswith(": disappeared")
            ]
            exited, output = self._ctl("update", program, *gone)
        else:
            self._ctl("reread")
            exited, output = self._ctl("update", program)
        return exited == 0 and ("added" in output or "updated" in output)

    def _start_daemon(self, timeout: float) -> None:
        self.runner.run(sv.daemon(self.supervisord, self.conf))
        deadline = time.monotonic() + timeout
        while self._ctl("pid")[0] in UNREACHABLE:
            if time.monotonic() > deadline:
                raise CicdError(f"supervisord did not start within {timeout:g}s")
            time.sleep(0.05)

    @property
    def port(self) -> int:
        """The port this app instance listens on: its slot's, or the environment's."""
        return self.settings.port_of(self.slot)

    @property
    def address(self) -> str:
        """Where it listens: loopback behind the proxy, else where ``url`` points."""
        if self.slot:
            return "127.0.0.1"
        return urlsplit(self.settings.url).hostname or "127.0.0.1"

    @property
    def link(self) -> str:
        """The symlink to the release it runs: its slot's, or ``current``."""
        return self.paths.link(self.slot)

    def _program_conf(self, autostart: bool = True) -> str:
        # True whenever cicd starts the instance: the one that serves was then
        # always loaded with autostart=true, and flipping its file back to true
        # (a switch back to a warm slot) leaves nothing for `update` to apply.
        values = {
            "port": str(self.port),
            "address": self.address,
            "env": self.settings.name,
            "release": self.link,
            "venv": join(self.link, ".venv"),
            "shared": self.paths.shared,
            "python": join(self.link, ".venv", "bin", "python"),
        }
        # supervisord splits the command line like a shell: quote each value.
        command = self.settings.runtime.command.format(
            **{k: shlex.quote(v) for k, v in values.items()}
        )
        environment = {
            k: v.format(**values) for k, v in self.settings.runtime.environment.items()
        }
        environment.setdefault("CICD_ENV", self.settings.name)
        environment.setdefault("CICD_SHARED", self.paths.shared)
        return sv.program_conf(
            self.program,
            sv.with_app_env(
                sv.loader_path(self.paths.supervisor), self.paths.app_env, command
            ),
            directory=join(self.link, self.settings.app_dir),
            environment=environment,
            logfile=self.paths.app_log_of(self.slot),
            autostart=autostart,
        )

    def start(self) -> None:
        """Start the program if it is not running."""
        if not self.ensure_daemon() and self.status() != "RUNNING":
            self._action("start")

    def stop(self) -> None:
        """Stop the program (supervisord keeps running for the other environments)."""
        exited, _ = self._ctl("pid")
        if exited not in UNREACHABLE:
            self._ctl("stop", self.program)

    def restart(self) -> None:
        """Restart the program so it runs the release ``current`` points to now.

        One supervisorctl call in the usual case; supervisord is started on demand.
        """
        if self.ensure_daemon():
            return
        self._action("restart")

    def _action(self, action: str) -> None:
        self.program_action(action, self.program)

    def program_action(self, action: str, program: str) -> None:
        """``supervisorctl start|restart PROGRAM``; supervisord started on demand.

        Raises:
            CicdError: supervisorctl did not start it.
        """
        exited, output = self._ctl(action, program)
        if exited in UNREACHABLE and "no such process" not in output:
            # A fresh supervisord autostarts the program: nothing more to do.
            self._start_daemon(10.0)
            return
        if exited != 0 or "started" not in output:
            raise CicdError(f"supervisorctl {action} {program} failed: {output}")

    def signal(self, name: str, program: str) -> None:
        """Send a signal to a program (haproxy reloads on ``USR2``)."""
        self._ctl("signal", name, program)

    def status(self) -> str:
        """Return the program's state (RUNNING, STOPPED, FATAL...), or DOWN."""
        return self.program_status(self.program)

    def program_status(self, program: str) -> str:
        """A program's state (RUNNING, STOPPED, FATAL...), or DOWN."""
        exited, output = self._ctl("status", program)
        if exited in UNREACHABLE and "no such process" not in output:
            return "DOWN"
        words = output.split()
        if len(words) >= 2 and words[0] == program:
            return words[1]
        return "UNKNOWN"

    def serving(self) -> str:
        """The release directory the program's process runs in, or ``""``."""
        command = sv.serving_dir(self.supervisorctl, self.conf, self.program)
        return self.runner.run(command, check=False).stdout.strip()

    def logs(self, lines: int = 50) -> str:
        """Return the last lines of the app's log."""
        log = self.paths.app_log_of(self.slot)
        return self.runner.run(files.sh_tail(log, lines)).stdout

    def release_logs(self, lines: int = 50) -> str:
        """The last lines of the app's log written since its last release began.

        The log of a slot (or of the app in place) holds the lines of each release
        that ran there; the env-file loader marks each start in it.
        """
        log = self.paths.app_log_of(self.slot)
        return self.runner.run(sv.tail_since_start(log, lines)).stdout

    def follow(self, lines: int = 50) -> Command:
        """``tail -F`` of the app's log: its last lines, then each new one."""
        return files.follow(self.paths.app_log_of(self.slot), lines)

    def shutdown(self) -> bool:
        """Stop supervisord and every program it runs.

        Returns:
            Whether one was running (no config at all counts as none: instant).
        """
        exited, _ = self._ctl("pid")
        # 2: supervisorctl found no config file — nothing was ever started here.
        if exited in UNREACHABLE or exited == 2:
            return False
        self._ctl("shutdown")
        deadline = time.monotonic() + 30
        while self._ctl("pid")[0] not in UNREACHABLE and time.monotonic() < deadline:
            time.sleep(0.1)
        return True
