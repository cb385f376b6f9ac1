"""``invoke logs``: the app's last lines, and following them, as an operator runs it.

The app's output is real: supervisord writes what the stand-in app prints (here, a
release that crashes at start) to the environment's log file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Project, invoke, invoke_argv
from tests.integration.test_ssh import (
    Hosts,
    fab,
    fab_argv,
    fleet_config,
    host_tables,
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lines", "0"], "--lines must be a whole number above 0, got '0'"),
        (["--lines", "-3"], "--lines must be a whole number above 0, got '-3'"),
        (["-l", "ten"], "--lines must be a whole number above 0, got 'ten'"),
        (["--env", "staging"], "unknown environment 'staging'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    project: Project, args: list[str], message: str
) -> None:
    result = invoke("logs", *args)

    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {message}")
    assert result.stdout == ""
    assert not project.root.exists()  # nothing made, nothing changed


def test_an_environment_that_never_ran_says_so(project: Project) -> None:
    result = invoke("logs", "--env", "prod")

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "prod: the app has written nothing yet" in result.stderr


@pytest.mark.slow
def test_logs_show_why_a_release_crashed_and_follow_new_lines(
    project: Project,
) -> None:
    project.write(deadline=2)
    good = project.repo.commit("v1")
    assert invoke("deploy.preprod", "--sha", good).returncode == 0
    crash = project.repo.commit("v2", mode="crash")
    assert invoke("deploy.preprod", "--sha", crash).returncode == 1

    shown = invoke("logs", "--lines", "5")

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert 0 < len(lines) <= 5
    assert "crashing at start, as a broken release would" in shown.stdout

    log = project.root / "preprod" / "logs" / "app.log"
    with log.open("a") as app:
        app.write("one\ntwo\n")
    process = subprocess.Popen(
        invoke_argv("logs", "-f", "-l", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's job
    )
    try:
        assert process.stdout is not None
        assert [process.stdout.readline() for _ in range(2)] == ["one\n", "two\n"]
        time.sleep(0.3)
        with log.open("a") as app:
            app.write("three, written while followed\n")
        assert process.stdout.readline() == "three, written while followed\n"
    finally:
        # Ctrl-C in a terminal interrupts the whole foreground job.
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_a_failed_deploy_shows_the_log_lines_of_its_release_only(
    project: Project,
) -> None:
    project.write(deadline=1.5)
    assert invoke("deploy.preprod", "--sha", project.repo.commit("v1")).returncode == 0
    log = project.root / "preprod" / "logs" / "app.log"
    with log.open("a") as app:
        app.write("".join(f"v1 served request {n}\n" for n in range(30)))
    crash = project.repo.commit("v2", mode="crash")

    failed = invoke("deploy.preprod", "--sha", crash)

    assert failed.returncode == 1, failed.stderr
    said = failed.stdout + failed.stderr
    head = "lines of the preprod app's log:\n```\n"
    assert head in said, said
    shown = said.split(head, 1)[1].split("\n```", 1)[0].splitlines()
    assert shown and set(shown) == {"crashing at start, as a broken release would"}
    # `invoke logs` shows the whole file: each release's start is marked in it.
    whole = invoke("logs", "--lines", "200").stdout
    assert "v1 served request 29" in whole
    assert f"--- cicd: start of release {crash} at " in whole


def test_follow_refuses_several_configured_hosts(
    project: Project, tmp_path: Path
) -> None:
    project.write(preprod='hosts = ["vm1", "vm2"]')

    result = invoke("logs", "--follow")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --follow follows one host and preprod has 2: "
        "fab -H vm1 logs --env preprod --follow"
    ]


def test_fab_shows_and_follows_the_hosts_log_over_ssh(
    project: Project, ssh_hosts: Hosts
) -> None:
    fleet = ssh_hosts(1)
    host_tables(project, fleet)
    sha = project.repo.commit("v1")
    assert fab(fleet, "-H", "h1", "deploy.preprod", "--sha", sha).returncode == 0
    log = project.root / "h1" / "preprod" / "logs" / "app.log"
    with log.open("a") as app:
        app.write("on h1\n")

    shown = fab(fleet, "-H", "h1", "logs", "--lines", "1")

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "on h1\n"
    assert fab(fleet, "-H", "h1", "logs", "--lines", "0").returncode == 2

    process = subprocess.Popen(
        [*fab_argv(fleet), "-H", "h1", "logs", "-f", "-l", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().rstrip("\r\n") == "on h1"
        time.sleep(0.3)
        with log.open("a") as app:
            app.write("later on h1\n")
        assert process.stdout.readline().rstrip("\r\n") == "later on h1"
    finally:
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    assert "Traceback" not in stderr
    # Ctrl-C reached the command on the host too: no tail is left behind there.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and tails_of(log):
        time.sleep(0.1)
    assert not tails_of(log)


def tails_of(log: Path) -> list[str]:
    """The ``tail`` processes that follow ``log``."""
    found = subprocess.run(
        ["pgrep", "-f", f"tail -n 1 -F -- {log}"], capture_output=True, text=True
    )
    return found.stdout.split()


def test_a_fleet_shows_each_hosts_lines_under_its_name(
    project: Project, ssh_hosts: Hosts
) -> None:
    fleet = ssh_hosts(2)
    fleet_config(project, fleet)
    sha = project.repo.commit("v1")
    assert invoke("deploy.preprod", "--sha", sha).returncode == 0
    for host in fleet.hosts:
        log = project.root / host.name / "preprod" / "logs" / "app.log"
        with log.open("a") as app:
            app.write(f"on {host.name}\n")

    shown = invoke("logs", "--lines", "1")

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "==> h1 <==\non h1\n==> h2 <==\non h2\n"
