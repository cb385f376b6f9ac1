"""Unit tests of the compose and supervisor runtimes, without docker or supervisord.

Docker cannot run on the machine these tests were written on, and unit tests must be
fast, so the task context is a fake: it records every shell line the runner renders
and answers it the way the real program would (a tiny in-memory file store, a
``docker compose`` that answers ``version``, a ``supervisorctl`` state machine). The
tests assert what a user would see: which program ran with which arguments and
environment, the state reported, and the error messages. Real supervisord runs are
left to the integration tests.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cicd.commands import cmd, compose
from cicd.commands.supervisor import START_MARK
from cicd.core.config import from_table
from cicd.core.errors import CicdError, CommandFailed
from cicd.transport.runner import Runner
from cicd.runtime.compose import ComposeRuntime
from cicd.runtime.supervisor import SupervisorRuntime
from cicd.host.target import Target

SHA = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Raw:
    """What invoke's ``run`` returns: output and exit status."""

    stdout: str = ""
    stderr: str = ""
    exited: int = 0


Handler = Callable[[list[str]], Raw | None]


class FakeContext:
    """A task context that records shell lines and answers them with a handler.

    Args:
        handler: Answers one parsed line; ``None`` means success with no output.
    """

    def __init__(self, handler: Handler | None = None) -> None:
        self.handler = handler
        self.lines: list[str] = []
        self.kwargs: list[dict[str, Any]] = []

    def run(self, line: str, **kwargs: Any) -> Raw:
        """Record ``line`` and return the handler's answer."""
        self.lines.append(line)
        self.kwargs.append(kwargs)
        answer = self.handler(shlex.split(line)) if self.handler else None
        return answer or Raw()

    @property
    def argvs(self) -> list[list[str]]:
        """Every recorded line, split like the shell would."""
        return [shlex.split(line) for line in self.lines]


def split_env(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split ``env K=V ... prog args`` into the assignments and the program argv."""
    if not argv or argv[0] != "env":
        return {}, argv
    env: dict[str, str] = {}
    rest = argv[1:]
    while rest and "=" in rest[0]:
        name, _, value = rest.pop(0).partition("=")
        env[name] = value
    return env, rest


def script_call(argv: list[str], marker: str) -> list[str] | None:
    """Return the positional values of a ``sh -c SCRIPT sh ...`` line whose script
    contains ``marker``, else None."""
    if argv[:2] == ["sh", "-c"] and marker in argv[2]:
        return argv[4:]
    return None


def target_for(tmp_path: Path, context: FakeContext, **table: Any) -> Target:
    """Build the preprod Target of a configuration table, on a fake context.

    In-place restarts unless the table says otherwise: whether this machine has
    haproxy must not change what these tests see.
    """
    table.setdefault("proxy", {"kind": "none"})
    settings = from_table(table, project_dir=tmp_path)
    return Target(Runner(context), settings, "preprod")


# -- compose --------------------------------------------------------------------


def compose_host(
    *,
    docker: bool = True,
    v2: bool = True,
    v1: bool = False,
    current: str = f"releases/{SHA}",
    container: str = "",
    state: str = "running",
) -> Handler:
    """Return a handler that behaves like a host with the given docker setup."""

    def handler(argv: list[str]) -> Raw | None:
        env, argv = split_env(argv)
        if script_call(argv, "docker compose version") is not None:  # detect()
            found = (
                "v2" if v2 and docker else "v1" if v1 else "docker" if docker else ""
            )
            return Raw(stdout=found + "\n" if found else "")
        if (which := script_call(argv, "command -v")) is not None:
            found = {"docker": docker, "docker-compose": v1}.get(which[0], False)
            return Raw(exited=0 if found else 1)
        if script_call(argv, "readlink") is not None:
            return Raw(stdout=current + "\n" if current else "")
        if argv == ["docker", "compose", "version"]:
            return Raw(exited=0 if v2 else 1)
        if argv == ["docker-compose", "version"]:
            return Raw(exited=0 if v1 else 127)
        if "ps" in argv and "-q" in argv:
            return Raw(stdout=container + "\n" if container else "")
        if argv[:2] == ["docker", "inspect"]:
            return Raw(stdout=state + "\n")
        return None

    return handler


def compose_target(tmp_path: Path, context: FakeContext) -> Target:
    """Build a preprod Target whose runtime is compose."""
    return target_for(tmp_path, context, runtime={"kind": "compose"})


def test_compose_is_chosen_by_the_configuration(tmp_path: Path) -> None:
    target = compose_target(tmp_path, FakeContext(compose_host()))

    assert isinstance(target.live_runtime(), ComposeRuntime)


def test_compose_v2_is_detected_once(tmp_path: Path) -> None:
    context = FakeContext(compose_host(v2=True, v1=True))
    runtime = compose_target(tmp_path, context).live_runtime()
    assert isinstance(runtime, ComposeRuntime)

    assert runtime.program == ("docker", "compose")
    assert runtime.program == ("docker", "compose")
    assert context.argvs == [list(compose.detect().argv)]


def test_compose_is_detected_once_for_both_slots(tmp_path: Path) -> None:
    context = FakeContext(compose_host(v2=True, v1=True))
    target = compose_target(tmp_path, context)
    blue = ComposeRuntime(target.runner, target.settings, target.paths, "blue")
    green = ComposeRuntime(target.runner, target.settings, target.paths, "green")

    assert blue.program == green.program == ("docker", "compose")
    assert context.argvs == [list(compose.detect().argv)]
    assert (blue.project, green.project) == (
        "mangetamain-preprod-blue",
        "mangetamain-preprod-green",
    )


def test_compose_falls_back_to_docker_compose_v1(tmp_path: Path) -> None:
    context = FakeContext(compose_host(docker=False, v2=False, v1=True))
    runtime = compose_target(tmp_path, context).live_runtime()
    assert isinstance(runtime, ComposeRuntime)

    runtime.preflight()

    assert runtime.program == ("docker-compose",)


def test_compose_missing_is_a_clear_error(tmp_path: Path) -> None:
    target = compose_target(tmp_path, FakeContext(compose_host(v2=False, v1=False)))

    with pytest.raises(CicdError, match="docker compose not found") as caught:
        target.live_runtime().preflight()

    assert "docker-compose" in str(caught.value)


def test_compose_preflight_without_docker(tmp_path: Path) -> None:
    target = compose_target(tmp_path, FakeContext(compose_host(docker=False)))

    with pytest.raises(CicdError) as caught:
        target.live_runtime().preflight()

    assert "docker not found" in str(caught.value)
    assert "tool.cicd.runtime.kind" in str(caught.value)


def up_call(context: FakeContext) -> tuple[dict[str, str], list[str]]:
    """Return the environment and argv of the one ``up`` command that ran."""
    calls = [split_env(a) for a in context.argvs if "up" in split_env(a)[1]]
    assert len(calls) == 1, context.lines
    return calls[0]


def test_compose_restart_recreates_the_current_release(tmp_path: Path) -> None:
    context = FakeContext(compose_host())
    target = compose_target(tmp_path, context)
    release = f"{target.paths.dir}/releases/{SHA}"

    target.live_runtime().restart()

    env, argv = up_call(context)
    assert argv == [
        "docker",
        "compose",
        "-f",
        f"{release}/30_docker/docker-compose-preprod.yml",
        "-p",
        "mangetamain-preprod",
        "up",
        "--detach",
        "--force-recreate",
        "--no-deps",
        "--remove-orphans",
        "app",
    ]
    assert env == {
        "CICD_RELEASE": release,
        "CICD_ENV": "preprod",
        "CICD_PORT": "8500",
        "CICD_SHARED": target.paths.shared,
        # No requirements file on this fake host: the image keeps its default tag.
        "CICD_IMAGE_TAG": "latest",
        # The app's secrets: compose reads the file (env_file), never our env.
        "CICD_APP_ENV": target.paths.app_env,
    }


def test_compose_restart_keeps_an_absolute_current_target(tmp_path: Path) -> None:
    context = FakeContext(compose_host(current=f"/srv/app/releases/{SHA}"))

    compose_target(tmp_path, context).live_runtime().start()

    env, _ = up_call(context)
    assert env["CICD_RELEASE"] == f"/srv/app/releases/{SHA}"


def test_compose_restart_without_a_release(tmp_path: Path) -> None:
    context = FakeContext(compose_host(current=""))

    with pytest.raises(CicdError, match="preprod: no current release"):
        compose_target(tmp_path, context).live_runtime().restart()
    assert not any("up" in a for a in context.argvs)


@pytest.mark.parametrize(
    ("container", "state", "expected"),
    [
        ("c0ffee", "running", "RUNNING"),
        ("c0ffee", "exited", "EXITED"),
        ("", "", "DOWN"),
    ],
)
def test_compose_status(
    tmp_path: Path, container: str, state: str, expected: str
) -> None:
    context = FakeContext(compose_host(container=container, state=state))

    assert compose_target(tmp_path, context).live_runtime().status() == expected
    inspected = [a for a in context.argvs if a[:2] == ["docker", "inspect"]]
    expected_calls = [["docker", "inspect", "--format", "{{.State.Status}}", container]]
    assert inspected == (expected_calls if container else [])


def test_compose_stop_and_logs(tmp_path: Path) -> None:
    context = FakeContext(compose_host())
    runtime = compose_target(tmp_path, context).live_runtime()

    runtime.stop()
    runtime.logs(20)
    runtime.release_logs(20)  # each start recreates the container: its log alone

    commands = [split_env(a)[1][6:] for a in context.argvs[1:]]
    logs = ["logs", "--no-color", "--tail", "20", "app"]
    assert commands == [["stop", "app"], logs, logs]


# -- supervisor -----------------------------------------------------------------


@dataclass
class SupervisorHost:
    """A host with an in-memory file store and a supervisorctl state machine.

    Attributes:
        programs: Program names found on PATH.
        daemon: Whether supervisord is running.
        state: The app's state as supervisorctl reports it.
        spawns: How many times the app was (re)started.
        action_output: Overrides the output of ``start``/``restart``.
        files: Content of the files written through the runner.
    """

    programs: set[str] = field(default_factory=lambda: {"sv-d", "sv-ctl"})
    daemon: bool = False
    state: str = "STOPPED"
    spawns: int = 0
    action_output: Raw | None = None
    files: dict[str, str] = field(default_factory=dict)
    daemon_starts: list[list[str]] = field(default_factory=list)

    def spawn(self) -> None:
        """Record one (re)start of the app."""
        self.spawns += 1
        self.state = "RUNNING"

    def __call__(self, argv: list[str]) -> Raw | None:
        """Answer one command line like the real host would."""
        if (which := script_call(argv, "command -v")) is not None:
            missing = [program for program in which if program not in self.programs]
            return Raw(missing[0] + "\n" if missing else "", exited=int(bool(missing)))
        if (many := script_call(argv, 'echo "$m $i"')) is not None:
            marker, *names = many
            sections = (
                f"{marker} {i}\n{self.files.get(n, '')}\n" for i, n in enumerate(names)
            )
            return Raw("".join(sections))
        if (read := script_call(argv, "cat --")) is not None:
            return Raw(stdout=self.files.get(read[0], ""))
        if (write := script_call(argv, 'mv -f "$tmp"')) is not None:
            self.files[write[0]] = write[1]
            return None
        if (clean := script_call(argv, "env -i")) is not None and clean[1] == "sv-d":
            # Started through the clean-environment wrapper: PATH, then the argv.
            self.daemon_starts.append(clean[1:])
            self.daemon = True
            self.spawn()
            return None
        if argv[0] == "sv-ctl":
            return self.ctl(argv[3:])
        return None

    def ctl(self, args: list[str]) -> Raw:
        """Answer ``supervisorctl -c CONF ARGS``."""
        if not self.daemon:
            return Raw("unix:///x/supervisor.sock no such file\n", exited=4)
        command = args[0]
        if command == "pid":
            return Raw("4242\n")
        if command == "reread":
            return Raw("app-preprod: changed\n")
        if command == "update":
            self.spawn()
            return Raw("app-preprod: stopped\napp-preprod: updated process group\n")
        if command in ("start", "restart"):
            if self.action_output is not None:
                return self.action_output
            self.spawn()
            return Raw("app-preprod: stopped\napp-preprod: started\n")
        if command == "stop":
            self.state = "STOPPED"
            return Raw("app-preprod: stopped\n")
        if command == "status":
            exited = 0 if self.state == "RUNNING" else 3
            return Raw(
                f"app-preprod   {self.state}   pid 42, uptime 0:00:07\n", "", exited
            )
        return Raw(exited=2)


SUPERVISOR_TABLE: dict[str, Any] = {
    "runtime": {
        "supervisord": "sv-d --nodaemon",
        "supervisorctl": "sv-ctl",
        "environment": {"RATE": "50%"},
        "command": "{python} -m app --fill 100% --port {port}",
    }
}


def supervisor_target(tmp_path: Path, host: SupervisorHost) -> Target:
    """Build a preprod Target run by supervisord on the fake ``host``."""
    return target_for(tmp_path, FakeContext(host), **SUPERVISOR_TABLE)


@pytest.mark.parametrize("missing", ["supervisord", "supervisorctl"])
def test_supervisor_preflight_names_the_missing_program_and_key(
    tmp_path: Path, missing: str
) -> None:
    program = {"supervisord": "sv-d", "supervisorctl": "sv-ctl"}[missing]
    host = SupervisorHost(programs={"sv-d", "sv-ctl"} - {program})

    with pytest.raises(CicdError) as caught:
        supervisor_target(tmp_path, host).live_runtime().preflight()

    assert f"{missing} not found" in str(caught.value)
    assert f": {program} " in str(caught.value)
    assert f"tool.cicd.runtime.{missing}" in str(caught.value)


def test_supervisor_preflight_passes_when_both_are_installed(tmp_path: Path) -> None:
    target = supervisor_target(tmp_path, SupervisorHost())

    assert isinstance(target.live_runtime(), SupervisorRuntime)
    target.live_runtime().preflight()


def test_supervisor_restart_starts_the_daemon_once_with_its_config(
    tmp_path: Path,
) -> None:
    host = SupervisorHost()
    target = supervisor_target(tmp_path, host)
    conf = f"{target.paths.supervisor}/supervisord.conf"

    target.live_runtime().restart()

    assert host.daemon_starts == [["sv-d", "--nodaemon", "-c", conf]]
    assert host.spawns == 1
    assert "[supervisord]" in host.files[conf]
    assert target.live_runtime().status() == "RUNNING"


def test_supervisor_restart_restarts_a_running_app_exactly_once(
    tmp_path: Path,
) -> None:
    host = SupervisorHost()
    runtime = supervisor_target(tmp_path, host).live_runtime()
    runtime.restart()

    runtime.restart()
    runtime.restart()

    assert host.spawns == 3
    assert len(host.daemon_starts) == 1


def test_supervisor_restart_after_a_config_change_restarts_once(
    tmp_path: Path,
) -> None:
    host = SupervisorHost()
    supervisor_target(tmp_path, host).live_runtime().restart()
    changed = {**SUPERVISOR_TABLE, "env": {"preprod": {"port": 8600}}}
    context = FakeContext(host)

    target_for(tmp_path, context, **changed).live_runtime().restart()

    assert host.spawns == 2
    program = next(v for k, v in host.files.items() if k.endswith("app-preprod.conf"))
    assert "--port 8600" in program


def test_supervisor_restart_failure_is_an_error(tmp_path: Path) -> None:
    host = SupervisorHost()
    runtime = supervisor_target(tmp_path, host).live_runtime()
    runtime.restart()
    host.action_output = Raw("app-preprod: ERROR (spawn error)\n", exited=1)

    with pytest.raises(CicdError) as caught:
        runtime.restart()

    assert "restart app-preprod" in str(caught.value)
    assert "spawn error" in str(caught.value)


def test_supervisor_status(tmp_path: Path) -> None:
    host = SupervisorHost()
    runtime = supervisor_target(tmp_path, host).live_runtime()

    assert runtime.status() == "DOWN"
    runtime.start()
    assert runtime.status() == "RUNNING"
    runtime.stop()
    assert runtime.status() == "STOPPED"


def test_supervisor_program_conf(tmp_path: Path) -> None:
    host = SupervisorHost()
    target = supervisor_target(tmp_path, host)
    target.live_runtime().restart()
    current = target.paths.current

    text = host.files[f"{target.paths.supervisor}/conf.d/app-preprod.conf"]
    lines = text.splitlines()

    assert lines[0] == "[program:app-preprod]"
    assert f"directory={current}/10_preprod" in lines
    (command,) = [line for line in lines if line.startswith("command=")]
    # The app's own env file is loaded first, then the configured command runs.
    argv = shlex.split(command.removeprefix("command=").replace("%%", "%"))
    assert argv[:2] == ["/bin/sh", f"{target.paths.supervisor}/app-env.sh"]
    assert argv[2] == f"{target.paths.shared}/app.env"
    python = current + "/.venv/bin/python"
    assert argv[3:] == [python, "-m", "app", "--fill", "100%", "--port", "8500"]
    assert "startsecs=0" in lines
    assert "stopasgroup=true" in lines
    assert "autorestart=true" in lines
    assert f"stdout_logfile={target.paths.logs}/app.log" in lines
    assert (
        f'environment=CICD_ENV="preprod",CICD_SHARED="{target.paths.shared}",'
        'PYTHONPATH="src",RATE="50%%"'
    ) in lines


def test_supervisor_daemon_conf(tmp_path: Path) -> None:
    host = SupervisorHost()
    target = supervisor_target(tmp_path, host)
    target.live_runtime().restart()
    directory = target.paths.supervisor

    text = host.files[f"{directory}/supervisord.conf"]

    assert f"logfile={directory}/supervisord.log" in text
    assert f"pidfile={directory}/supervisord.pid" in text
    assert "[include]" in text and "conf.d/*.conf" in text
    assert "serverurl=unix://" in text


def test_supervisor_logs_tail_the_app_log(tmp_path: Path) -> None:
    context = FakeContext(lambda argv: Raw(stdout="line 1\nline 2\n"))
    target = target_for(tmp_path, context, **SUPERVISOR_TABLE)

    assert target.live_runtime().logs(2) == "line 1\nline 2\n"
    assert context.argvs[-1][4:] == [f"{target.paths.logs}/app.log", "2"]
    assert target.live_runtime().release_logs(3) == "line 1\nline 2\n"
    assert context.argvs[-1][4:7] == [f"{target.paths.logs}/app.log", "3", START_MARK]


# -- the runner the runtimes go through ----------------------------------------


def test_runner_renders_once_and_redacts_failures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "ghp_secretvalue123"
    monkeypatch.setenv("GITHUB_TOKEN", token)
    context = FakeContext(lambda argv: Raw(stderr=f"auth {token} refused\n", exited=5))
    runner = Runner(context, verbose=True)

    with pytest.raises(CommandFailed) as caught:
        runner.run(cmd("git", "fetch", f"https://{token}@h/r; x"))

    assert context.lines == [f"git fetch 'https://{token}@h/r; x'"]
    assert context.kwargs[0]["warn"] is True and context.kwargs[0]["hide"] is True
    assert token not in str(caught.value)
    assert "exit 5" in str(caught.value) and "auth *** refused" in str(caught.value)
    assert token not in capsys.readouterr().out
    assert runner.run(cmd("true"), check=False).exited == 5
