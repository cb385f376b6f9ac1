"""After a reboot only what serves runs; ``status`` says when nothing serves.

A reboot is reproduced as it happens: supervisord and every process under it (the
apps, haproxy) SIGKILLed, then either ``invoke start`` or a supervisord started on
its files alone, in the foreground, as the systemd unit runs it. Everything is real:
supervisord from PyPI, Debian's haproxy, the stand-in app in a real git repository.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cicd.commands.supervisor import CLEAN_PATH
from tests.conftest import Project, invoke
from tests.integration.test_bluegreen import kill_tree, slot_of, slot_pid, use_local_ci
from tests.integration.test_deploy import deploy, get, ledger
from tests.integration.test_setup import wait_refused

SUPERVISORD = str(Path(sys.executable).parent / "supervisord")
SUPERVISORCTL = str(Path(sys.executable).parent / "supervisorctl")

needs_haproxy = pytest.mark.skipif(
    shutil.which("haproxy", path=CLEAN_PATH) is None,
    reason="needs haproxy (apt-get install haproxy)",
)
pytestmark = pytest.mark.slow


@pytest.fixture
def bluegreen(project: Project) -> Project:
    """The project, deploying blue/green behind haproxy."""
    project.write(proxy="haproxy")
    return project


def reboot(project: Project) -> None:
    """Kill supervisord and everything under it, as a reboot does."""
    pidfile = project.root / "supervisor" / "supervisord.pid"
    kill_tree(int(pidfile.read_text()))
    wait_refused(project.url())


def other(slot: str) -> str:
    """The other slot."""
    return "green" if slot == "blue" else "blue"


def program_file(project: Project, program: str) -> str:
    """The content of a program's file under supervisord's conf.d."""
    return (project.root / "supervisor" / "conf.d" / f"{program}.conf").read_text()


def states(project: Project) -> dict[str, str]:
    """Every program's state, as ``supervisorctl status`` says it."""
    conf = project.root / "supervisor" / "supervisord.conf"
    out = subprocess.run(
        [SUPERVISORCTL, "-c", str(conf), "status"], capture_output=True, text=True
    ).stdout
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if line}


@needs_haproxy
def test_after_a_ci_failure_rollback_a_reboot_starts_only_the_live_slot(
    project: Project,
) -> None:
    use_local_ci(project, "true")
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    assert invoke("watch", "--sha", v1).returncode == 0  # validated
    first = slot_of(project)
    use_local_ci(project, "false")
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    watched = invoke("watch", "--sha", v2)  # CI fails: back to v1's slot
    assert watched.returncode == 0, watched.stderr + watched.stdout
    assert slot_of(project) == first and slot_pid(project, other(first)) is None
    # What a supervisord starting on these files alone would start: v1's slot.
    assert "autostart=true" in program_file(project, f"app-preprod-{first}")
    assert "autostart=false" in program_file(project, f"app-preprod-{other(first)}")

    reboot(project)
    down = invoke("status")
    assert down.returncode == 1, down.stdout + down.stderr
    assert (
        f"  preprod: DOWN — {v1[:7]} is deployed but nothing serves it: haproxy is "
        "not running (`invoke start` starts it again)" in down.stdout
    ), down.stdout
    assert "prod: DOWN" not in down.stdout.replace("preprod: DOWN", "")
    assert down.stderr.strip() == "nothing serves: preprod"
    document = json.loads(invoke("status", "--json").stdout)
    assert document["ok"] is False and document["error"] == "nothing serves: preprod"
    rows = {row["env"]: row for row in document["hosts"]}
    assert rows["preprod"]["down"] == "haproxy is not running"
    assert rows["prod"]["down"] is None  # never deployed: not a failure

    started = invoke("start")
    assert started.returncode == 0, started.stdout + started.stderr
    line, skipped = started.stdout.splitlines()
    assert re.match(
        rf"preprod: {v1[:7]} started on the {first} slot \(was DOWN\), ready after "
        rf"\d+\.\ds; the {other(first)} slot \({v2[:7]}, rejected by CI\) left "
        r"stopped; haproxy was not running \(DOWN\); started it$",
        line,
    ), line
    assert skipped == "prod: never deployed: skipped"
    assert slot_pid(project, other(first)) is None
    assert get(project.url()) == "v1 ok"
    assert invoke("status").returncode == 0


@needs_haproxy
def test_a_supervisord_started_on_its_files_alone_starts_only_the_live_slot(
    bluegreen: Project,
) -> None:
    # As `invoke setup` does before any deploy: each environment's program file.
    for env in ("preprod", "prod"):
        runtime = bluegreen.target(env).live_runtime()
        runtime.write_config()  # type: ignore[attr-defined]
    v1 = bluegreen.repo.commit("v1")
    deploy(bluegreen, v1)
    first = slot_of(bluegreen)
    v2 = bluegreen.repo.commit("v2")
    deploy(bluegreen, v2)
    rolled = invoke("rollback", "--to", v1)  # by hand: v2 is stopped
    assert rolled.returncode == 0, rolled.stderr
    reboot(bluegreen)

    conf = bluegreen.root / "supervisor" / "supervisord.conf"
    # The unit's ExecStart: in the foreground, with nothing inherited.
    daemon = subprocess.Popen(
        [SUPERVISORD, "-n", "-c", str(conf)],
        cwd=bluegreen.root,
        env={"PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if get(bluegreen.url()) == "v1 ok":
                    break
            except OSError:
                pass
            assert daemon.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)  # anything else it would start has started by now
        tried = ("RUNNING", "STARTING", "BACKOFF", "FATAL", "EXITED")
        running = {name for name, s in states(bluegreen).items() if s in tried}
        assert running == {"proxy", f"app-preprod-{first}"}, states(bluegreen)
        log = (bluegreen.root / "supervisor" / "supervisord.log").read_text()
        assert "couldn't chdir" not in log  # prod, never deployed, starts nothing
        assert states(bluegreen)["app-prod-blue"] == "STOPPED"
        assert not (bluegreen.root / "prod" / "logs" / "app-blue.log").exists()
        started = invoke("start")
        assert started.returncode == 0, started.stdout + started.stderr
        assert started.stdout.splitlines()[0].startswith(
            f"preprod: {v1[:7]} already running on the {first} slot, ready after"
        )
        assert (
            f"; the {other(first)} slot ({v2[:7]}, rolled back) left stopped"
            in started.stdout
        ), started.stdout
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


@needs_haproxy
def test_start_brings_back_the_warm_slot_only_inside_its_window(
    bluegreen: Project,
) -> None:
    v1 = bluegreen.repo.commit("v1")
    deploy(bluegreen, v1)
    warm = slot_of(bluegreen)
    v2 = bluegreen.repo.commit("v2")
    deploy(bluegreen, v2)  # v1 stays warm on its slot (proxy.warm, 30 min)
    live = slot_of(bluegreen)
    pids = {slot: slot_pid(bluegreen, slot) for slot in (live, warm)}
    running = invoke("start", "--env", "preprod")  # nothing to do: all is up
    assert running.returncode == 0, running.stdout + running.stderr
    assert re.match(
        rf"preprod: {v2[:7]} already running on the {live} slot, ready after "
        rf"\d+\.\ds; the {warm} slot \({v1[:7]}, previous release\) kept warm "
        r"until \d\d:\d\d:\d\d UTC$",
        running.stdout,
    ), running.stdout
    assert {slot: slot_pid(bluegreen, slot) for slot in (live, warm)} == pids
    reboot(bluegreen)

    started = invoke("start", "--env", "preprod")
    assert started.returncode == 0, started.stdout + started.stderr
    assert re.match(
        rf"preprod: {v2[:7]} started on the {live} slot \(was DOWN\), ready after "
        rf"\d+\.\ds; the {warm} slot \({v1[:7]}, previous release\) started, warm "
        r"until \d\d:\d\d:\d\d UTC; haproxy",
        started.stdout,
    ), started.stdout
    assert slot_pid(bluegreen, warm) is not None
    restarts = [e for e in ledger(bluegreen) if e["event"] == "restart"][-2:]
    assert [(e["sha"], e["detail"]) for e in restarts] == [
        (v2, f"start: the {live} slot was DOWN"),
        (v1, f"start: kept warm on the {warm} slot"),
    ]
    # Still only the live slot starts at boot: the warm one is started by `start`.
    assert "autostart=false" in program_file(bluegreen, f"app-preprod-{warm}")

    # The window ends while the machine is down: the warm slot stays stopped.
    warm_file = bluegreen.root / "preprod" / "warm"
    details = json.loads(warm_file.read_text())
    warm_file.write_text(json.dumps({**details, "until": time.time() - 1}))
    reboot(bluegreen)
    started = invoke("start", "--env", "preprod")
    assert started.returncode == 0, started.stdout + started.stderr
    assert (
        f"; the {warm} slot ({v1[:7]}, previous release, warm window ended) left "
        "stopped" in started.stdout
    ), started.stdout
    assert slot_pid(bluegreen, warm) is None and not warm_file.exists()

    # Files an older cicd wrote (every slot autostart=true): both come back at
    # boot, and `start` stops the one that should not run.
    path = bluegreen.root / "supervisor" / "conf.d" / f"app-preprod-{warm}.conf"
    path.write_text(path.read_text().replace("autostart=false", "autostart=true"))
    reboot(bluegreen)
    started = invoke("start", "--env", "preprod")
    assert started.returncode == 0, started.stdout + started.stderr
    assert (
        f"; the {warm} slot ({v1[:7]}, previous release, not warm) stopped"
        in started.stdout
    ), started.stdout
    assert slot_pid(bluegreen, warm) is None
    assert "autostart=false" in path.read_text()
    assert get(bluegreen.url()) == "v2 ok"


def test_status_exits_1_when_a_deployed_environment_serves_nothing(
    project: Project,
) -> None:
    sha = project.repo.commit("v1")
    deploy(project, sha)
    assert invoke("status").returncode == 0
    assert invoke("down").returncode == 0
    table = invoke("status")
    assert table.returncode == 1, table.stdout + table.stderr
    assert (
        f"  preprod: DOWN — {sha[:7]} is deployed but nothing serves it: the app is "
        "DOWN (`invoke start` starts it again)" in table.stdout
    ), table.stdout
    assert table.stderr.strip() == "nothing serves: preprod"
    document = json.loads(invoke("status", "--env", "preprod", "--json").stdout)
    assert document["ok"] is False
    assert document["hosts"][0]["down"] == "the app is DOWN"
    assert invoke("status", "--env", "prod").returncode == 0  # never deployed
    assert invoke("start").returncode == 0
    document = json.loads(invoke("status", "--json").stdout)
    assert document["ok"] is True and document["error"] is None
    assert [row["down"] for row in document["hosts"]] == [None, None]


@needs_haproxy
def test_status_exits_1_when_haproxy_routes_to_a_slot_that_does_not_run(
    bluegreen: Project,
) -> None:
    v1 = bluegreen.repo.commit("v1")
    deploy(bluegreen, v1)
    live = slot_of(bluegreen)
    conf = bluegreen.root / "supervisor" / "supervisord.conf"
    subprocess.run(
        [SUPERVISORCTL, "-c", str(conf), "stop", f"app-preprod-{live}"], check=True
    )
    table = invoke("status", "--env", "preprod")
    assert table.returncode == 1, table.stdout + table.stderr
    assert f"nothing serves it: the {live} slot is STOPPED" in table.stdout
    started = invoke("start", "--env", "preprod")
    assert started.returncode == 0, started.stdout + started.stderr
    assert re.match(
        rf"preprod: {v1[:7]} started on the {live} slot \(was STOPPED\), ready "
        r"after \d+\.\ds$",  # the other slot never held a release: not named
        started.stdout,
    ), started.stdout
    assert invoke("status", "--env", "preprod").returncode == 0


@needs_haproxy
def test_start_puts_current_back_when_the_live_slot_holds_another_release(
    bluegreen: Project,
) -> None:
    v1 = bluegreen.repo.commit("v1")
    deploy(bluegreen, v1)
    v2 = bluegreen.repo.commit("v2")
    deploy(bluegreen, v2)
    live = slot_of(bluegreen)
    reboot(bluegreen)
    # A hand edit: ``live`` names the slot of v1 while ``current`` is v2.
    (bluegreen.root / "preprod" / "live").write_text(other(live) + "\n")
    started = invoke("start", "--env", "preprod")
    assert started.returncode == 0, started.stdout + started.stderr
    assert started.stdout.startswith(
        f"preprod: {v2[:7]} started on the {live} slot (was DOWN), ready after"
    ), started.stdout
    assert slot_of(bluegreen) == live and slot_pid(bluegreen, other(live)) is None
    assert get(bluegreen.url()) == "v2 ok"


@needs_haproxy
def test_start_keeps_an_app_run_in_place_until_a_deploy_moves_it_behind_haproxy(
    project: Project,
) -> None:
    sha = project.repo.commit("v1")
    deploy(project, sha)  # in place
    project.write(proxy="haproxy")  # haproxy installed since
    reboot(project)
    started = invoke("start", "--env", "preprod")
    assert started.returncode == 0, started.stdout + started.stderr
    assert started.stdout.startswith(f"preprod: {sha[:7]} started (was DOWN)")
    assert get(project.url()) == "v1 ok"
    assert not (project.root / "proxy").exists()
    # Not down: the app serves in place (health says haproxy does not run yet).
    assert invoke("status", "--env", "preprod").returncode == 0


@needs_haproxy
def test_start_settles_a_switch_a_killed_deploy_left_before_starting_anything(
    bluegreen: Project,
) -> None:
    deploy(bluegreen, bluegreen.repo.commit("v1"))
    v2 = bluegreen.repo.commit("v2")
    killed = invoke("deploy.preprod", "--sha", v2, env={"CICD_FAILPOINT": "switched"})
    assert killed.returncode in (-9, 137), killed.stderr
    intent = bluegreen.root / "preprod" / "intent"
    assert intent.exists()
    reboot(bluegreen)
    started = invoke("start", "--env", "preprod")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "unfinished switch" in started.stderr, started.stderr
    assert started.stdout.startswith(f"preprod: {v2[:7]} "), started.stdout
    assert not intent.exists()
    assert get(bluegreen.url()) == "v2 ok"
    assert invoke("status", "--env", "preprod").returncode == 0


@needs_haproxy
def test_a_supervisorctl_update_after_a_switch_never_restarts_what_serves(
    bluegreen: Project,
) -> None:
    """The autostart lines flipped at each switch are the only difference between a
    program's file and what supervisord loaded, and the slot that serves was always
    loaded with autostart=true: ``update`` leaves it alone."""
    conf = bluegreen.root / "supervisor" / "supervisord.conf"

    def update() -> None:
        subprocess.run([SUPERVISORCTL, "-c", str(conf), "update"], check=True)

    deploy(bluegreen, bluegreen.repo.commit("v1"))
    v2 = bluegreen.repo.commit("v2")
    deploy(bluegreen, v2)
    live = slot_of(bluegreen)
    pid = slot_pid(bluegreen, live)
    update()
    assert slot_pid(bluegreen, live) == pid
    # The warm slot's file says it does not start at boot: update stops it.
    assert slot_pid(bluegreen, other(live)) is None
    deploy(bluegreen, bluegreen.repo.commit("v3"))  # on the other slot; v2 warm
    pid = slot_pid(bluegreen, live)
    rolled = invoke("rollback", "--to", v2)  # a switch back to v2, still warm
    assert rolled.returncode == 0, rolled.stderr
    assert "switching back" in rolled.stdout + rolled.stderr
    assert slot_of(bluegreen) == live and slot_pid(bluegreen, live) == pid
    update()
    assert slot_pid(bluegreen, live) == pid
    assert get(bluegreen.url()) == "v2 ok"


@needs_haproxy
def test_start_says_what_it_started_in_each_environment_of_the_one_supervisord(
    bluegreen: Project,
) -> None:
    v1 = bluegreen.repo.commit("v1")
    v2 = bluegreen.repo.commit("v2")
    deploy(bluegreen, v1)
    for sha in (v1, v2):
        done = invoke(
            "deploy.prod",
            "--confirm",
            "DEPLOY",
            "--sha",
            sha,
            "--force",
            "--reason",
            "t",
        )
        assert done.returncode == 0, done.stdout + done.stderr
    assert invoke("rollback", "--env", "prod", "--to", v1).returncode == 0
    live = slot_of(bluegreen, "prod")
    reboot(bluegreen)
    started = invoke("start")
    assert started.returncode == 0, started.stdout + started.stderr
    preprod, prod = started.stdout.splitlines()
    # Starting preprod's haproxy started supervisord, and with it prod's live
    # slot: prod still says what the reboot had left it, DOWN.
    assert preprod.startswith(f"preprod: {v1[:7]} started on the ")
    assert preprod.endswith("; haproxy was not running (DOWN); started it")
    assert re.match(
        rf"prod: {v1[:7]} started on the {live} slot \(was DOWN\), ready after "
        rf"\d+\.\ds; the {other(live)} slot \({v2[:7]}, rolled back\) left stopped$",
        prod,
    ), prod
    assert get(bluegreen.url("prod")) == "v1 ok"
    assert slot_pid(bluegreen, other(live), "prod") is None
