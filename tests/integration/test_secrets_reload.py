"""``invoke secrets.reload``: the app reads ``shared/app.env`` again after an edit.

Behind a real haproxy the new instance starts on the idle slot and is switched to
once ready, under a bounded load that counts refused requests; in place the app
restarts. The stand-in app answers ``/env/NAME`` with the variable it started with.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from cicd.checks.traffic import Load
from tests.conftest import Project, invoke
from tests.integration.test_bluegreen import slot_of, slot_pid
from tests.integration.test_deploy import deploy, get, ledger
from tests.integration.test_reboot import bluegreen, needs_haproxy
from tests.integration.test_ssh import fab, fleet_config
from tools.testinfra.sshd import SshFleet

__all__ = ["bluegreen"]  # the fixture, found by name

SECRET = "s3cr3t-value-never-shown"

pytestmark = pytest.mark.slow


def write_app_env(project: Project, text: str, env: str = "preprod") -> None:
    """Edit ``shared/app.env`` as a person does (mode 0600)."""
    path = project.root / env / "shared" / "app.env"
    path.write_text(text)
    path.chmod(0o600)


@needs_haproxy
def test_reload_switches_to_a_new_instance_with_no_refused_request(
    bluegreen: Project,
) -> None:
    v1 = bluegreen.repo.commit("v1")
    deploy(bluegreen, v1)
    v2 = bluegreen.repo.commit("v2")
    deploy(bluegreen, v2)  # v1 kept warm on the idle slot
    live = slot_of(bluegreen)
    idle = "green" if live == "blue" else "blue"
    write_app_env(bluegreen, f"# rotated\nGREETING={SECRET}\n")
    assert get(bluegreen.url() + "env/GREETING") == ""  # read at start only
    with Load(bluegreen.url(), workers=4, seconds=60) as load:
        done = invoke("secrets.reload", "--env", "preprod")
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert load.tally.failed == 0 and load.tally.sent > 20, load.tally.line()
    assert SECRET not in said
    assert (
        f"preprod: {v2[:7]} restarted on the {idle} slot and switched to with no "
        "downtime, ready after" in done.stdout
    ), done.stdout
    assert f"the {live} slot stopped; {v1[:7]}, kept warm there, gave way" in said
    assert get(bluegreen.url() + "env/GREETING") == SECRET
    assert get(bluegreen.url()) == "v2 ok"
    assert slot_of(bluegreen) == idle and slot_pid(bluegreen, live) is None
    assert not (bluegreen.root / "preprod" / "warm").exists()
    events = ledger(bluegreen)
    restart = [e for e in events if e["event"] == "restart"][-1]
    assert restart["sha"] == v2 and "secrets reload" in str(restart["detail"])
    assert not [e for e in events if e["event"] == "switch" and e["previous"] == v2]
    status = invoke("status", "--env", "preprod", "--json")
    assert status.returncode == 0, status.stdout
    assert '"current": "' + v2 in status.stdout and '"drift": false' in status.stdout
    assert not (bluegreen.root / "preprod" / "intent").exists()


@needs_haproxy
def test_a_reload_that_never_gets_ready_leaves_the_old_instance_serving(
    bluegreen: Project,
) -> None:
    v1 = bluegreen.repo.commit("v1")
    deploy(bluegreen, v1)
    live = slot_of(bluegreen)
    pid = slot_pid(bluegreen, live)
    bluegreen.write(proxy="haproxy", deadline=1.5)
    write_app_env(bluegreen, f"GREETING={SECRET}\nthis line is {SECRET} too\n")
    with Load(bluegreen.url(), workers=2, seconds=60) as load:
        done = invoke("secrets.reload", "--env", "preprod")
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "never routed to" in said and f"{v1[:7]} served throughout" in said
    assert "not a KEY=VALUE line" in said  # the loader's words, not the line
    assert SECRET not in said
    assert load.tally.failed == 0, load.tally.line()
    assert slot_of(bluegreen) == live and slot_pid(bluegreen, live) == pid
    idle = "green" if live == "blue" else "blue"
    # Stopped (under load supervisord may still be ending its restart loop of the
    # crashing instance when the task returns: a few seconds at most).
    deadline = time.monotonic() + 5
    while slot_pid(bluegreen, idle) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert slot_pid(bluegreen, idle) is None
    conf = bluegreen.root / "supervisor" / "conf.d" / f"app-preprod-{idle}.conf"
    assert "autostart=false" in conf.read_text()
    assert get(bluegreen.url()) == "v1 ok"


def test_reload_in_place_restarts_the_app_and_says_it_was_down(
    project: Project,
) -> None:
    sha = project.repo.commit("v1")
    deploy(project, sha)
    write_app_env(project, f"GREETING={SECRET}\n")
    done = invoke("secrets.reload", "--env", "preprod")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(
        f"preprod: {sha[:7]} restarted in place, ready after"
    ), done.stdout
    assert "(no haproxy here: the app was down meanwhile)" in done.stdout
    assert SECRET not in done.stdout + done.stderr
    assert get(project.url() + "env/GREETING") == SECRET
    restart = [e for e in ledger(project) if e["event"] == "restart"][-1]
    assert "secrets reload" in str(restart["detail"])


def test_a_reload_in_place_that_never_gets_ready_exits_1(project: Project) -> None:
    sha = project.repo.commit("v1")
    deploy(project, sha)
    project.write(deadline=1.5)
    write_app_env(project, f"{SECRET} is no KEY=VALUE line\n")
    done = invoke("secrets.reload", "--env", "preprod")
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert "no haproxy here, nothing serves preprod now" in said
    assert "not a KEY=VALUE line" in said and SECRET not in said


def test_reload_refuses_bad_input_and_a_held_lock(project: Project) -> None:
    for args, code, words in (
        ([], 2, "--env is required"),
        (["--env", "staging"], 2, "unknown environment 'staging'"),
        (["--env", "prod"], 2, "prod was never deployed"),
    ):
        done = invoke("secrets.reload", *args)
        assert done.returncode == code and words in done.stderr, done.stderr
    assert not project.root.exists()
    deploy(project, project.repo.commit("v1"))
    assert (
        invoke("lock.acquire", "--env", "preprod", "--reason", "audit").returncode == 0
    )
    done = invoke("secrets.reload", "--env", "preprod")
    assert done.returncode == 3, done.stderr
    helped = invoke("--help", "secrets.reload")
    assert "shared/app.env" in helped.stdout and "no downtime" in helped.stdout


@needs_haproxy
def test_reload_over_ssh_host_after_host_and_with_fab(
    project: Project, ssh_hosts: Callable[[int], SshFleet]
) -> None:
    fleet = ssh_hosts(2)
    fleet_config(project, fleet, proxy="haproxy")
    port = project.ports["preprod"]
    urls = [f"http://{host.address}:{port}/" for host in fleet.hosts]
    deployed = invoke("deploy.preprod", "--sha", project.repo.commit("v1"))
    assert deployed.returncode == 0, deployed.stderr
    for index, host in enumerate(fleet.hosts):
        path = project.root / host.name / "preprod" / "shared" / "app.env"
        path.write_text(f"GREETING={SECRET}-{index}\n")
        path.chmod(0o600)
    with Load(urls[0], workers=2, seconds=120) as one:
        done = invoke("secrets.reload", "--env", "preprod")
    assert done.returncode == 0, done.stdout + done.stderr
    assert one.tally.failed == 0, one.tally.line()
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        f"preprod@{host.name}" for host in fleet.hosts
    ]
    assert [get(url + "env/GREETING") for url in urls] == [
        f"{SECRET}-0",
        f"{SECRET}-1",
    ]
    first = fleet.hosts[0]
    path = project.root / first.name / "preprod" / "shared" / "app.env"
    path.write_text("GREETING=again\n")
    done = fab(fleet, "-H", first.name, "secrets.reload", "--env", "preprod")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"preprod@{first.name}: "), done.stdout
    assert get(urls[0] + "env/GREETING") == "again"
    assert SECRET not in done.stdout + done.stderr
