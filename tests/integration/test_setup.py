"""``invoke setup`` and ``invoke start`` as an operator runs them on a VM.

Everything is real: the tasks run in a subprocess, supervisord from PyPI runs the
stand-in app, ``systemd-analyze`` verifies the unit when the machine has it, and the
unit's own ``ExecStart`` line is what starts supervisord in one test (as systemd
would, with an empty environment). Only systemctl is left out: setup never runs it.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import Project, invoke

SUPERVISORCTL = str(Path(sys.executable).parent / "supervisorctl")
UNIT = "cicd-supervisord.service"


def status_lines(output: str) -> list[str]:
    """The check lines of setup's output (before the fix list)."""
    return [
        line
        for line in output.split("\nto do by hand:")[0].splitlines()
        if line.split(" ", 1)[0] in ("ok", "fixed", "missing", "skipped")
    ]


def wait_refused(url: str, timeout: float = 20) -> None:
    """Wait until nothing answers at ``url``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
        except requests.ConnectionError:
            return
        time.sleep(0.05)
    raise AssertionError(f"{url} still answers")


def kill_supervisord_and_apps(project: Project) -> None:
    """SIGKILL supervisord and its apps, as a runner's orphan cleanup or OOM would."""
    conf = project.root / "supervisor" / "supervisord.conf"
    app = subprocess.run(
        [SUPERVISORCTL, "-c", str(conf), "pid", "app-preprod"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    daemon = (project.root / "supervisor" / "supervisord.pid").read_text().strip()
    for pid in (daemon, app):
        os.kill(int(pid), signal.SIGKILL)
    wait_refused(project.url())


@pytest.mark.slow
def test_check_then_setup_then_nothing_left_to_do(
    project: Project, tmp_path: Path
) -> None:
    units = tmp_path / "units"
    units.mkdir()
    # Run as the service user (--user is who runs it): its home gets the record.
    home = {"HOME": str(tmp_path / "home")}
    checked = invoke("setup", "--check", "--unit-dir", str(units), env=home)
    assert checked.returncode == 1, checked.stderr
    assert f"missing  root: {project.root} does not exist" in checked.stdout
    # The to-do names the tool by its path: the service user's PATH lacks it.
    tool = Path(sys.executable).parent
    assert f"  {tool / 'cicd'} setup --unit-dir {units}" in checked.stdout
    assert checked.stderr.strip().startswith("setup: missing: root, ")
    assert not project.root.exists() and not any(units.iterdir())

    user = getpass.getuser()
    done = invoke("setup", "--unit-dir", str(units), "--user", user, env=home)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = status_lines(done.stdout)
    for expected in (
        f"fixed    root: {project.root} created",
        "fixed    preprod: directories: created releases, logs, backups, shared",
        f"fixed    prod: app.env: {project.root}/prod/shared/app.env created empty",
        "fixed    supervisor config: written",
        f"fixed    systemd unit: {units / UNIT} written (User={user})",
        f"fixed    this user: ~/.local/bin/{{cicd,invoke,fab}} -> {tool}",
    ):
        assert any(line.startswith(expected) for line in lines), (expected, lines)
    assert (
        "systemctl daemon-reload && systemctl enable --now cicd-supervisord"
        in done.stdout
    )
    assert done.stdout.rstrip().endswith("setup: done")
    unit = (units / UNIT).read_text()
    assert f"User={user}" in unit and " -n -c " in unit

    for name in ("cicd", "invoke", "fab"):
        assert os.readlink(tmp_path / "home/.local/bin" / name) == str(tool / name)
    # The record names this configuration: `cicd` finds it from anywhere.
    recorded = (tmp_path / "home/.config/cicd/config.toml").read_text()
    assert f'config = "{os.environ["CICD_CONFIG"]}"' in recorded
    status = subprocess.run(
        [str(tool / "cicd"), "status", "--json"],
        capture_output=True,
        text=True,
        cwd="/",
        env={**os.environ, **home, "CICD_CONFIG": ""},
    )
    # (Without it, from / and with no CICD_CONFIG: "no configuration found".)
    assert json.loads(status.stdout)["error"] is None, status.stdout

    again = invoke(
        "setup", "--check", "--unit-dir", str(units), "--user", user, env=home
    )
    assert again.returncode == 0, again.stdout
    assert all(line.startswith("ok ") for line in status_lines(again.stdout))
    assert "to do by hand" not in again.stdout
    assert again.stdout.rstrip().endswith("setup: everything is in place")


def test_a_unit_dir_that_is_not_writable_is_not_a_failure(project: Project) -> None:
    result = invoke("setup", "--unit-dir", "/nonexistent/systemd/system")
    assert result.returncode == 0, result.stderr
    assert "missing  systemd unit: /nonexistent/systemd/system is not writable" in (
        result.stdout
    )
    staged = project.root / "supervisor" / UNIT
    assert staged.is_file()
    install = shlex.join(
        ["install", "-m", "0644", str(staged), f"/nonexistent/systemd/system/{UNIT}"]
    )
    assert f"  {install}   # as root" in result.stdout
    checked = invoke("setup", "--check", "--unit-dir", "/nonexistent/systemd/system")
    assert checked.returncode == 1 and "setup: missing: systemd unit" in checked.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "staging"], "unknown environment 'staging'"),
        (["--user", "x; touch pwned"], "is not a user name"),
        (["--check", "--unit-dir", "relative/dir"], "must be an absolute path"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    project: Project, tmp_path: Path, args: list[str], message: str
) -> None:
    result = invoke("setup", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert result.stdout == ""
    assert not project.root.exists() and list(tmp_path.glob("pwned")) == []


@pytest.mark.slow
def test_the_unit_starts_a_supervisord_that_deploys_use(
    project: Project, tmp_path: Path
) -> None:
    units = tmp_path / "units"
    units.mkdir()
    assert invoke("setup", "--unit-dir", str(units)).returncode == 0
    unit = (units / UNIT).read_text().splitlines()
    exec_start = next(line for line in unit if line.startswith("ExecStart="))
    directory = next(line for line in unit if line.startswith("WorkingDirectory="))
    # As systemd runs it: in the foreground, in the root, with no inherited
    # environment at all (no job variables, no tokens).
    daemon = subprocess.Popen(
        shlex.split(exec_start.removeprefix("ExecStart=")),
        cwd=directory.removeprefix("WorkingDirectory="),
        env={"PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        conf = project.root / "supervisor" / "supervisord.conf"
        deadline = time.monotonic() + 20
        while subprocess.run(
            [SUPERVISORCTL, "-c", str(conf), "pid"], capture_output=True
        ).returncode:
            assert daemon.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        sha = project.repo.commit("v1")
        deployed = invoke("deploy.preprod", "--sha", sha)
        assert deployed.returncode == 0, deployed.stderr
        assert requests.get(project.url(), timeout=5).text == "v1 ok\n"
        started = invoke("start")
        assert started.returncode == 0, started.stderr
        assert f"preprod: {sha[:7]} already running, ready after" in started.stdout
        # The app is the foreground supervisord's child: the unit's daemon serves it.
        assert daemon.poll() is None
        pid = (project.root / "supervisor" / "supervisord.pid").read_text().strip()
        assert int(pid) == daemon.pid
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


@pytest.mark.slow
def test_start_brings_the_apps_back_after_supervisord_was_killed(
    project: Project,
) -> None:
    sha = project.repo.commit("v1")
    deployed = invoke("deploy.preprod", "--sha", sha)
    assert deployed.returncode == 0, deployed.stderr
    kill_supervisord_and_apps(project)

    started = invoke("start")
    assert started.returncode == 0, started.stdout + started.stderr
    lines = started.stdout.splitlines()
    assert lines[0].startswith(f"preprod: {sha[:7]} started (was DOWN), ready after")
    assert lines[1] == "prod: never deployed: skipped"
    assert requests.get(project.url(), timeout=5).text == "v1 ok\n"
    ledger = (project.root / "preprod" / "ledger.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in ledger][-2:]
    assert [(e["event"], e["sha"], e["outcome"]) for e in events] == [
        ("restart", sha, "ok"),
        ("health", sha, "ok"),
    ]
    assert events[0]["detail"] == "start: the runtime was DOWN"

    again = invoke("start", "--env", "preprod")
    assert again.returncode == 0
    assert again.stdout.startswith(f"preprod: {sha[:7]} already running")


@pytest.mark.slow
def test_start_exits_1_when_an_app_does_not_get_ready(project: Project) -> None:
    sha = project.repo.commit("v1")
    assert invoke("deploy.preprod", "--sha", sha).returncode == 0
    assert invoke("down").returncode == 0
    # The release can no longer start (a disk fault, a hand edit): start says so.
    (project.root / "preprod" / "current" / "app" / "server.py").unlink()
    project.write(deadline=2)
    result = invoke("start", "--env", "preprod")
    assert result.returncode == 1, result.stdout
    assert result.stdout.startswith(f"preprod: {sha[:7]} NOT READY: not ready after")
    assert result.stderr.strip() == "not ready: preprod"
    assert invoke("start", "--env", "nope").returncode == 2
    project.write(preprod='runtime = { supervisord = "/nowhere/supervisord" }')
    result = invoke("start")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "preprod: error: supervisord not found on "
        f"{os.uname().nodename}: /nowhere/supervisord (install the 'supervisor' "
        "package, or set tool.cicd.runtime.supervisord)",
        "prod: never deployed: skipped",
    ]


def test_fleet_hosts_are_checked_in_known_hosts(
    project: Project, tmp_path: Path
) -> None:
    (tmp_path / "ssh_config").write_text(
        f"Host *\n  UserKnownHostsFile {tmp_path / 'known_hosts'}\n"
    )
    project.write(extra='hosts = ["127.0.0.9:2222"]\nssh_config = "ssh_config"\n')
    result = invoke("setup", "--check", "--env", "prod")
    assert result.returncode == 1
    assert status_lines(result.stdout) == [
        f"missing  prod@127.0.0.9:2222: no key for 127.0.0.9 port 2222 in "
        f"{tmp_path / 'known_hosts'}: SSH to it is refused (a key is never accepted "
        "blindly)"
    ]
    assert (
        f"  ssh-keyscan -H -p 2222 127.0.0.9 >> {tmp_path / 'known_hosts'}   # after "
        in result.stdout
    )
    assert result.stderr.strip() == "setup: missing: prod@127.0.0.9:2222"
    assert not project.root.exists()
