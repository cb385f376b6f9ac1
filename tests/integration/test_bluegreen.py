"""Zero-downtime blue/green behind a real haproxy, under a real supervisord.

Each environment gets two slots on private ports; haproxy (Debian's, one per root,
run by the root's supervisord) listens on the public port. The stand-in app answers
``v1 ok``; a bounded load of keep-alive clients runs across every switch and counts
failures.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from cicd.pipeline.activation import DeployFailed
from cicd.checks.traffic import Load
from cicd.reporting.notify import Notifier
from cicd.pipeline.rollback import rollback
from tests.conftest import Project, free_port, invoke
from tests.integration.test_deploy import deploy, get, ledger
from tests.integration.test_ssh import fab, fleet_config
from tools.testinfra.sshd import SshFleet

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("haproxy") is None,
        reason="needs haproxy (apt-get install haproxy, or "
        "CICD_DEV_TASKS=1 invoke infra.up)",
    ),
]


@pytest.fixture
def bluegreen(project: Project) -> Project:
    """The project, deploying blue/green behind haproxy."""
    project.write(proxy="haproxy")
    return project


def slot_of(project: Project, env: str = "preprod") -> str:
    """The slot ``<env>/live`` names."""
    return (project.root / env / "live").read_text().strip()


def slot_pid(project: Project, slot: str, env: str = "preprod") -> int | None:
    """The pid of a slot's app process, or None when it does not run."""
    ctl = Path(os.sys.executable).parent / "supervisorctl"
    conf = project.root / "supervisor" / "supervisord.conf"
    out = subprocess.run(
        [str(ctl), "-c", str(conf), "pid", f"app-{env}-{slot}"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return int(out) if out.isdigit() and out != "0" else None


def test_deploy_and_rollback_under_load_fail_no_request(bluegreen: Project) -> None:
    v1 = bluegreen.repo.commit("v1")
    deploy(bluegreen, v1)
    assert get(bluegreen.url()) == "v1 ok"
    first = slot_of(bluegreen)
    v2 = bluegreen.repo.commit("v2")
    with Load(bluegreen.url(), workers=8, seconds=60) as load:
        time.sleep(0.3)
        deploy(bluegreen, v2)
        time.sleep(0.3)
        assert get(bluegreen.url()) == "v2 ok"
        target = bluegreen.target()
        rollback([target], Notifier(target), to=v1)
        time.sleep(0.3)
    tally = load.tally
    assert tally.sent > 100 and tally.failed == 0, tally.line()
    assert get(bluegreen.url()) == "v1 ok"
    # The rollback was only a switch back to the slot still running v1.
    assert slot_of(bluegreen) == first
    events = ledger(bluegreen)
    restarts = [e for e in events if e["event"] == "restart"]
    assert [e["sha"] for e in restarts] == [v1, v2]
    status = invoke("status", "--env", "preprod", "--json")
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    row = document["hosts"][0] if "hosts" in document else document
    assert row["serving"] == v1 and not row["drift"]


def test_a_release_that_never_gets_ready_is_never_routed_to(
    bluegreen: Project,
) -> None:
    v1 = bluegreen.repo.commit("v1")
    deploy(bluegreen, v1)
    broken = bluegreen.repo.commit("v2", mode="error")
    bluegreen.write(proxy="haproxy", deadline=1.5)
    with Load(bluegreen.url(), workers=4, seconds=60) as load:
        with pytest.raises(DeployFailed, match="never routed to"):
            deploy(bluegreen, broken)
    assert load.tally.failed == 0 and load.tally.sent > 20, load.tally.line()
    assert get(bluegreen.url()) == "v1 ok"
    events = ledger(bluegreen)
    assert not [e for e in events if e["event"] == "switch" and e["sha"] == broken]
    bad = [e for e in events if e["event"] == "marked_bad"]
    assert bad and bad[-1]["sha"] == broken
    last = [e for e in events if e["event"] == "deploy"][-1]
    assert last["outcome"] == "failed"


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant, as a crash or a reboot would."""
    children = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout.split()
    os.kill(pid, signal.SIGKILL)
    for child in children:
        kill_tree(int(child))


def test_haproxy_killed_is_restarted_by_the_next_command(bluegreen: Project) -> None:
    v1 = bluegreen.repo.commit("v1")
    deploy(bluegreen, v1)
    pidfile = bluegreen.root / "supervisor" / "supervisord.pid"
    kill_tree(int(pidfile.read_text()))
    time.sleep(0.3)
    with pytest.raises(requests.ConnectionError):
        requests.get(bluegreen.url(), timeout=2)
    health = invoke("health", "--env", "preprod")
    assert health.returncode == 1
    assert "haproxy is not running" in health.stdout + health.stderr
    v2 = bluegreen.repo.commit("v2")
    done = invoke("deploy.preprod", "--sha", v2)
    assert done.returncode == 0, done.stderr + done.stdout
    said = done.stdout + done.stderr
    assert "haproxy was not running" in said or "haproxy started" in said, said
    assert get(bluegreen.url()) == "v2 ok"


def upgrade(port: int) -> socket.socket:
    """Open an upgraded (websocket-like) connection through haproxy."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn.sendall(
        b"GET /_stcore/stream HTTP/1.1\r\nHost: x\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert b" 101 " in conn.recv(4096).split(b"\r\n")[0] + b" "
    return conn


def ask(conn: socket.socket) -> bytes:
    """One exchange over the upgraded connection ("" when it was closed)."""
    try:
        conn.sendall(b"ping\n")
        return conn.recv(4096).strip()
    except OSError:
        return b""


def test_a_websocket_open_across_a_switch_is_drained(bluegreen: Project) -> None:
    """An upgraded connection stays on the old slot; its reconnect reaches the new."""
    port = bluegreen.ports["preprod"]
    deploy(bluegreen, bluegreen.repo.commit("v1"))
    old = slot_of(bluegreen)
    held = upgrade(port)
    assert ask(held) == b"v1 ok"
    deploy(bluegreen, bluegreen.repo.commit("v2"))
    assert slot_of(bluegreen) != old
    # Drained, not cut: the open session still talks to v1, kept warm.
    assert ask(held) == b"v1 ok"
    assert slot_pid(bluegreen, old) is not None
    # Once the warm slot retires, the session ends and its reconnect lands on v2.
    target = bluegreen.target()
    assert target.slots.retire() is not None
    assert ask(held) == b""
    again = upgrade(port)
    assert ask(again) == b"v2 ok"
    again.close()


def use_local_ci(project: Project, command: str) -> None:
    """Blue/green, with a local CI command as the verdict."""
    project.write(
        f"""
        [tool.cicd.ci]
        provider = "local"
        command = "{command}"
        deadline = 60
        """,
        proxy="haproxy",
    )


def test_ci_failure_switches_back_to_the_warm_slot_with_no_restart(
    project: Project,
) -> None:
    use_local_ci(project, "true")
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    assert invoke("watch", "--sha", v1).returncode == 0  # CI passes: validated
    first = slot_of(project)
    warm_pid = slot_pid(project, first)
    use_local_ci(project, "false")
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    assert slot_pid(project, first) == warm_pid  # v1 kept running, warm
    with Load(project.url(), workers=8, seconds=60) as load:
        time.sleep(0.2)
        started = time.monotonic()
        watched = invoke("watch", "--sha", v2)
        seconds = time.monotonic() - started
        time.sleep(0.2)
    assert watched.returncode == 0, watched.stderr + watched.stdout
    assert load.tally.failed == 0 and load.tally.sent > 50, load.tally.line()
    assert get(project.url()) == "v1 ok"
    # The same process serves v1 again: a switch back, no restart.
    assert slot_of(project) == first and slot_pid(project, first) == warm_pid
    second = "green" if first == "blue" else "blue"
    assert slot_pid(project, second) is None  # the failed release was stopped
    assert seconds < 60


def test_ci_pass_stops_the_previous_slot(project: Project) -> None:
    use_local_ci(project, "true")
    deploy(project, project.repo.commit("v1"))
    first = slot_of(project)
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    assert slot_pid(project, first) is not None
    watched = invoke("watch", "--sha", v2)
    assert watched.returncode == 0, watched.stderr
    assert "stopped the" in watched.stdout + watched.stderr
    assert slot_pid(project, first) is None
    assert get(project.url()) == "v2 ok"


@pytest.mark.parametrize(
    ("point", "serves"), [("restarted", "v1"), ("ready", "v1"), ("switched", "v2")]
)
def test_an_interrupted_switch_is_settled_by_the_next_command(
    bluegreen: Project, point: str, serves: str
) -> None:
    v1 = bluegreen.repo.commit("v1")
    deploy(bluegreen, v1)
    v2 = bluegreen.repo.commit("v2")
    killed = invoke("deploy.preprod", "--sha", v2, env={"CICD_FAILPOINT": point})
    assert killed.returncode in (-9, 137), killed.stderr
    assert (bluegreen.root / "preprod" / "intent").exists()
    assert get(bluegreen.url()) == "v1 ok"  # haproxy never left v1
    with Load(bluegreen.url(), workers=4, seconds=60) as load:
        repaired = invoke("status", "--repair", "--env", "preprod")
    assert repaired.returncode == 0, repaired.stderr + repaired.stdout
    assert load.tally.failed == 0, load.tally.line()
    assert not (bluegreen.root / "preprod" / "intent").exists()
    assert get(bluegreen.url()) == f"{serves} ok"
    status = invoke("status", "--env", "preprod", "--json")
    document = json.loads(status.stdout)
    row = document["hosts"][0] if "hosts" in document else document
    assert not row["drift"] and row["healthy"], row


def test_a_fleet_switches_one_host_at_a_time_over_ssh(
    project: Project, ssh_hosts: Callable[[int], SshFleet]
) -> None:
    """Two hosts over real sshd, batch = 1: each host behind its own haproxy."""
    fleet = ssh_hosts(2)
    names = [host.name for host in fleet.hosts]
    fleet_config(project, fleet, batch=1, proxy="haproxy")
    port = project.ports["preprod"]
    urls = [f"http://{host.address}:{port}/" for host in fleet.hosts]
    v1 = project.repo.commit("v1")
    first = invoke("deploy.preprod", "--sha", v1)
    assert first.returncode == 0, first.stderr
    v2 = project.repo.commit("v2")
    with (
        Load(urls[0], workers=4, seconds=120) as one,
        Load(urls[1], workers=4, seconds=120) as two,
    ):
        second = invoke("deploy.preprod", "--sha", v2)
    assert second.returncode == 0, second.stderr
    for load in (one, two):
        assert load.tally.failed == 0 and load.tally.sent > 20, load.tally.line()
    assert [requests.get(url, timeout=5).text.strip() for url in urls] == ["v2 ok"] * 2
    switches = []
    for name in names:
        lines = (project.root / name / "preprod" / "ledger.jsonl").read_text()
        events = [json.loads(line) for line in lines.splitlines()]
        switches += [(e["time"], name) for e in events if e["event"] == "switch"]
    # batch = 1: h1 switched (and got ready) before h2 started its switch.
    assert [name for _, name in sorted(switches)][-2:] == names
    rolled = fab(fleet, "-H", names[0], "rollback", "--env", "preprod", "--to", v1)
    assert rolled.returncode == 0, rolled.stderr
    assert requests.get(urls[0], timeout=5).text.strip() == "v1 ok"
    assert "switching back" in rolled.stdout + rolled.stderr


def test_status_shows_both_slots_and_which_is_routed(bluegreen: Project) -> None:
    v1 = bluegreen.repo.commit("v1")
    deploy(bluegreen, v1)
    v2 = bluegreen.repo.commit("v2")
    deploy(bluegreen, v2)
    table = invoke("status", "--env", "preprod")
    assert table.returncode == 0, table.stderr
    line = next(x for x in table.stdout.splitlines() if "slots:" in x)
    live = slot_of(bluegreen)
    assert f"{live} {v2[:7]} RUNNING (routed)" in line, line
    assert f"{v1[:7]} RUNNING (warm until" in line, line
    document = json.loads(invoke("status", "--env", "preprod", "--json").stdout)
    row = document["hosts"][0] if "hosts" in document else document
    assert row["slots"]["routed"] == live
    assert row["slots"][live] == {"release": v2, "state": "RUNNING"}


def test_the_warm_window_ends_at_the_next_command_or_at_once(
    project: Project,
) -> None:
    project.write(preprod="proxy.warm = 0.5", proxy="haproxy")
    deploy(project, project.repo.commit("v1"))
    first = slot_of(project)
    deploy(project, project.repo.commit("v2"))
    assert slot_pid(project, first) is not None  # warm, for 0.5 s
    time.sleep(0.6)  # past the window: the next command stops the warm slot
    done = invoke("deploy.preprod", "--sha", project.repo.commit("v3"))
    assert done.returncode == 0, done.stderr
    assert "its warm window ended" in done.stdout + done.stderr
    project.write(preprod="proxy.warm = 0", proxy="haproxy")
    before = slot_of(project)
    deploy(project, project.repo.commit("v4"))
    assert slot_pid(project, before) is None  # warm = 0: stopped at once


def test_moving_from_in_place_to_blue_green_under_load(project: Project) -> None:
    """The first switch behind haproxy: the in-place app serves until the new slot
    is ready; then haproxy takes its port — the one moment requests fail (about a
    second here: supervisord stops the old app and starts haproxy in one update)."""
    deploy(project, project.repo.commit("v1"))  # in place
    project.write(proxy="haproxy")
    with Load(project.url(), workers=4, seconds=60) as load:
        done = invoke("deploy.preprod", "--sha", project.repo.commit("v2"))
    assert done.returncode == 0, done.stderr
    assert "the app run in place stops" in done.stdout + done.stderr
    assert get(project.url()) == "v2 ok"
    assert load.tally.outage < 10.0, load.tally.line()  # ~1 s measured, unloaded
    conf = project.root / "supervisor" / "conf.d"
    assert not (conf / "app-preprod.conf").exists()


def test_a_crashing_release_is_never_routed_to_and_its_log_is_shown(
    bluegreen: Project,
) -> None:
    deploy(bluegreen, bluegreen.repo.commit("v1"))
    bluegreen.write(proxy="haproxy", deadline=1.5)
    crash = bluegreen.repo.commit("v2", mode="crash")
    done = invoke("deploy.preprod", "--sha", crash)
    assert done.returncode == 1
    said = done.stdout + done.stderr
    assert "never routed to" in said, said
    assert "lines of the preprod app's log" in said and "crashing at start" in said
    assert get(bluegreen.url()) == "v1 ok"


def log_block(said: str) -> list[str]:
    """The lines of the "Last N lines of the preprod app's log" block of a failure."""
    head = "lines of the preprod app's log:\n```\n"
    assert head in said, said
    return said.split(head, 1)[1].split("\n```", 1)[0].splitlines()


def test_a_failed_releases_log_tail_shows_its_lines_not_the_slots_previous_ones(
    bluegreen: Project,
) -> None:
    deploy(bluegreen, bluegreen.repo.commit("v1"))
    deploy(bluegreen, bluegreen.repo.commit("v2"))
    # v1 stays warm on the idle slot, where the next release starts: what it
    # wrote there is in that slot's log (the stand-in app itself is quiet).
    idle = "green" if slot_of(bluegreen) == "blue" else "blue"
    log = bluegreen.root / "preprod" / "logs" / f"app-{idle}.log"
    with log.open("a") as app:
        app.write("".join(f"v1 served request {n}\n" for n in range(30)))
    bluegreen.write(proxy="haproxy", deadline=1.5)
    crash = bluegreen.repo.commit("v3", mode="crash")

    done = invoke("deploy.preprod", "--sha", crash)

    assert done.returncode == 1, done.stderr
    said = done.stdout + done.stderr
    assert f"on the {idle} slot, never routed to" in said, said
    shown = log_block(said)
    # Only v3's own attempts (supervisord restarts it): none of v1's lines.
    assert shown and set(shown) == {"crashing at start, as a broken release would"}
    assert "v1 served" in log.read_text()  # still in the file, for a person
    assert get(bluegreen.url()) == "v2 ok"


def test_new_slot_ports_are_applied_at_the_switch_with_no_failed_request(
    bluegreen: Project,
) -> None:
    deploy(bluegreen, bluegreen.repo.commit("v1"))
    bluegreen.slot_ports["preprod"] = (free_port(), free_port())
    bluegreen.write(proxy="haproxy")
    with Load(bluegreen.url(), workers=8, seconds=60) as load:
        done = invoke("deploy.preprod", "--sha", bluegreen.repo.commit("v2"))
    assert done.returncode == 0, done.stderr
    assert "applied at the switch" in done.stdout + done.stderr
    assert load.tally.failed == 0 and load.tally.sent > 50, load.tally.line()
    assert get(bluegreen.url()) == "v2 ok"
    fragment = (bluegreen.root / "proxy" / "conf.d" / "preprod.cfg").read_text()
    assert all(str(port) in fragment for port in bluegreen.slot_ports["preprod"])


def test_a_second_environment_joins_the_running_haproxy_seamlessly(
    bluegreen: Project,
) -> None:
    deploy(bluegreen, bluegreen.repo.commit("v1"))
    v2 = bluegreen.repo.commit("v2")
    with Load(bluegreen.url(), workers=8, seconds=60) as load:
        done = invoke(
            "deploy.prod",
            "--confirm",
            "DEPLOY",
            "--sha",
            v2,
            "--force",
            "--reason",
            "test",
        )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "haproxy reloaded: it serves prod" in done.stdout + done.stderr
    assert load.tally.failed == 0 and load.tally.sent > 20, load.tally.line()
    assert get(bluegreen.url("prod")) == "v2 ok"
    assert get(bluegreen.url()) == "v1 ok"


def test_a_failed_blue_green_rollback_leaves_nothing_unfinished(
    bluegreen: Project,
) -> None:
    crash = bluegreen.repo.commit("v1", mode="crash")
    good = bluegreen.repo.commit("v2")
    bluegreen.write(proxy="haproxy", deadline=1.5)
    deploy(bluegreen, good)
    bluegreen.target().export(crash)  # a kept release that cannot start
    failed = invoke("rollback", "--to", crash)
    assert failed.returncode == 1, failed.stderr
    assert "never routed to" in failed.stdout + failed.stderr
    assert not (bluegreen.root / "preprod" / "intent").exists()
    status = invoke("status", "--env", "preprod")
    assert status.returncode == 0 and "unfinished" not in status.stdout
    assert get(bluegreen.url()) == "v2 ok"


def test_a_switch_cut_short_with_both_slots_routed_is_finished(
    bluegreen: Project,
) -> None:
    deploy(bluegreen, bluegreen.repo.commit("v1"))
    v2 = bluegreen.repo.commit("v2")
    deploy(bluegreen, v2)
    live = slot_of(bluegreen)
    warm = "green" if live == "blue" else "blue"
    proxy = bluegreen.target().slots.proxy
    proxy.api(f"set server be_preprod/{warm} state ready")  # as a killed run left it
    assert bluegreen.target().slots.routed() is None  # two routed: none is "the" one
    repaired = invoke("status", "--repair", "--env", "preprod")
    assert repaired.returncode == 0, repaired.stderr + repaired.stdout
    assert "kept " + live in repaired.stdout + repaired.stderr
    assert bluegreen.target().slots.routed() == live
    assert get(bluegreen.url()) == "v2 ok"


def test_repair_after_haproxy_died_restarts_nothing_that_still_runs(
    bluegreen: Project,
) -> None:
    deploy(bluegreen, bluegreen.repo.commit("v1"))
    deploy(bluegreen, bluegreen.repo.commit("v2"))
    live = slot_of(bluegreen)
    pid = slot_pid(bluegreen, live)
    ctl = Path(os.sys.executable).parent / "supervisorctl"
    conf = bluegreen.root / "supervisor" / "supervisord.conf"
    subprocess.run([str(ctl), "-c", str(conf), "stop", "proxy"], check=True)
    assert "haproxy" in invoke("health", "--env", "preprod").stdout
    repaired = invoke("status", "--repair", "--env", "preprod")
    assert repaired.returncode == 0, repaired.stderr + repaired.stdout
    assert "haproxy was not running" in repaired.stdout + repaired.stderr
    assert slot_of(bluegreen) == live and slot_pid(bluegreen, live) == pid
    assert get(bluegreen.url()) == "v2 ok"


def test_start_leaves_the_serving_slot_alone(bluegreen: Project) -> None:
    deploy(bluegreen, bluegreen.repo.commit("v1"))
    live = slot_of(bluegreen)
    pid = slot_pid(bluegreen, live)
    bluegreen.write('[tool.cicd.runtime.environment]\nEXTRA = "1"\n', proxy="haproxy")
    started = invoke("start", "--env", "preprod")
    assert started.returncode == 0, started.stderr + started.stdout
    assert slot_pid(bluegreen, live) == pid  # not restarted for a config change
    assert get(bluegreen.url()) == "v1 ok"
