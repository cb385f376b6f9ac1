"""The operator's tools through the CLI: audit, releases, manual locks and --lock-wait,
revisions resolved to full shas, and one JSON shape for every ``--json``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cicd.commands import files
from tests.conftest import Project, git, invoke, invoke_argv, wait_for_switch

#: The keys every ``--json`` document has, whatever the task.
COMMON = {"schema", "task", "env", "ok", "error", "hosts"}


def document(result: subprocess.CompletedProcess[str], task: str) -> dict[str, Any]:
    """Parse a task's ``--json`` output and check the common shape."""
    data = json.loads(result.stdout)
    assert COMMON <= set(data), data
    assert data["schema"] == 1 and data["task"] == task, data
    assert isinstance(data["hosts"], list), data
    for row in data["hosts"]:
        assert {"env", "host"} <= set(row), row
    return dict(data)


def ledger(project: Project, env: str = "preprod") -> list[dict[str, Any]]:
    """Every ledger event of ``env``."""
    path = project.root / env / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_bad_since_is_one_line_and_exit_2(project: Project) -> None:
    result = invoke("audit", "--since", "yesterday-ish")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--since 'yesterday-ish': expected an ISO date" in result.stderr


@pytest.mark.slow
def test_audit_and_releases_tell_who_did_what_when(project: Project) -> None:
    project.write("""
        [tool.cicd.ci]
        repository = "acme/mangetamain"
        """)
    v1 = project.repo.commit("v1", message="first cut of the app")
    v2 = project.repo.commit("v2", message="second cut")
    env = {"GITHUB_ACTOR": "ada", "GITHUB_SERVER_URL": ""}
    for sha in (v1, v2):
        assert invoke("deploy.preprod", "--sha", sha, env=env).returncode == 0

    table = invoke("audit", "--env", "preprod", "--since", "1h")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "preprod:"
    assert lines[1].split()[:8] == [
        "TIME",
        "(UTC)",
        "ACTOR",
        "HOST",
        "EVENT",
        "SHA",
        "OUTCOME",
        "DURATIONS",
    ]
    print(table.stdout)
    deploys = [line for line in lines if " deploy " in line and " ok " in line]
    assert len(deploys) == 2 and v2[:7] in deploys[1]
    # Each step's duration is shown (its value depends on the machine's load).
    assert re.search(r"restart \d+\.\ds", deploys[1]), deploys[1]
    assert all(
        " ada " in line and socket.gethostname()[:16] in line for line in deploys
    )

    future = invoke("audit", "--env", "preprod", "--since", "2099-01-01")
    assert future.returncode == 0 and "preprod: no events since 2099-01-01" in (
        future.stdout
    )
    data = document(invoke("audit", "--json", "--since", "2h"), "audit")
    assert data["env"] is None and data["since"]
    (preprod,) = [row for row in data["hosts"] if row["env"] == "preprod"]
    deployed = [e for e in preprod["events"] if e["event"] == "deploy"]
    assert [e["sha"] for e in deployed if e["outcome"] == "ok"] == [v1, v2]
    assert {"time", "actor", "host", "outcome", "durations"} <= set(
        preprod["events"][0]
    )

    listing = invoke("releases")
    assert listing.returncode == 0, listing.stderr
    first, link, second = listing.stdout.splitlines()[:3]
    assert first.startswith(v2[:12]) and "current" in first and "second cut" in first
    assert " ada " in first
    assert link.strip() == f"https://github.com/acme/mangetamain/commit/{v2}"
    assert second.startswith(v1[:12]) and "previous" in second
    rows = document(invoke("releases", "--json"), "releases")["hosts"][0]["releases"]
    assert [r["sha"] for r in rows] == [v2, v1]
    assert rows[1]["subject"] == "first cut of the app" and rows[1]["actor"] == "ada"
    assert rows[0]["deployed_at"].endswith("Z") and rows[0]["ci"] is None


def test_a_manual_lock_freezes_deploys_and_is_never_waited_for(
    project: Project,
) -> None:
    sha = project.repo.commit("v1")
    missing = invoke("lock.acquire", "--env", "preprod")
    assert missing.returncode == 2 and "--reason is required" in missing.stderr

    frozen = invoke(
        "lock.acquire",
        "--env",
        "preprod",
        "--reason",
        "db migration until 15:00",
        "--json",
        env={"GITHUB_ACTOR": "grace"},
    )
    assert frozen.returncode == 0, frozen.stderr
    data = document(frozen, "lock.acquire")
    assert data["hosts"][0]["holder"]["reason"] == "db migration until 15:00"
    # The process that took it is gone: a manual lock is not stale for all that.
    started = time.monotonic()
    refused = invoke("deploy.preprod", "--sha", sha, "--lock-wait", "30")
    assert time.monotonic() - started < 20  # did not wait out the 30 s
    assert refused.returncode == 3
    assert "preprod is frozen by a manual lock of grace" in refused.stderr
    assert "db migration until 15:00" in refused.stderr
    assert "invoke lock.release --env preprod" in refused.stderr
    rolled = invoke("rollback", "--json")
    assert rolled.returncode == 3
    error = document(rolled, "rollback")
    assert error["ok"] is False and "frozen" in error["error"] and not error["hosts"]
    assert not (project.root / "preprod" / "current").exists()

    held = document(invoke("lock.status", "--json", "--env", "preprod"), "lock.status")
    assert held["hosts"][0]["manual"] and held["hosts"][0]["locked"]
    lifted = invoke("lock.release", "--env", "preprod", "--json")  # no --force needed
    assert lifted.returncode == 0, lifted.stderr
    assert (
        "lifted a manual lock of grace"
        in document(lifted, "lock.release")["hosts"][0]["done"]
    )
    assert invoke("deploy.preprod", "--sha", sha).returncode == 0
    names = [e["event"] for e in ledger(project)]
    assert names.index("locked") < names.index("unlocked") < names.index("deploy")


def test_lock_wait_waits_for_a_deploy_lock_to_be_released(project: Project) -> None:
    sha = project.repo.commit("v1")
    lock = project.root / "preprod" / "lock"
    lock.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    details = {
        "actor": "ada",
        "host": socket.gethostname(),
        "pid": sleeper.pid,
        "why": "deploy",
        "time": "now",
        "sha": None,
    }
    (lock / "details").write_text(json.dumps(details))
    try:
        assert invoke("deploy.preprod", "--sha", sha).returncode == 3
        bad = invoke("deploy.preprod", "--sha", sha, "--lock-wait=-3")
        assert bad.returncode == 2 and "--lock-wait must be 0 or more" in bad.stderr
        waiting = subprocess.Popen(
            invoke_argv("deploy.preprod", "--sha", sha, "--lock-wait", "60"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)
        assert waiting.poll() is None  # still waiting
        sleeper.kill()  # the holder ends: its lock is stale, and broken
        sleeper.wait()
        _, stderr = waiting.communicate(timeout=120)
    finally:
        sleeper.kill()
    assert waiting.returncode == 0, stderr
    assert "preprod is locked by ada" in stderr and "waiting up to 60 s" in stderr
    wait_for_switch(project.root / "preprod" / "current", sha, timeout=5)


def test_only_one_of_two_runs_breaks_the_same_stale_lock(project: Project) -> None:
    """A run that judged a lock stale finds a fresh one there: it leaves it alone."""
    target = project.target()
    target.ensure_dirs()
    lock = Path(target.paths.lock)
    stale = json.dumps({"actor": "ada", "pid": 1})
    fresh = json.dumps({"actor": "bob", "pid": os.getpid()})
    lock.mkdir()
    (lock / "details").write_text(fresh)  # another run broke the stale one first
    grave = f"{lock}.grave"
    late = target.runner.run(
        files.break_lock(str(lock), stale, "{}", grave), check=False
    )
    assert late.exited == 3
    assert (lock / "details").read_text() == fresh and not Path(grave).exists()
    assert not (lock / ".breaking").exists()
    (lock / "details").write_text(stale)
    won = target.runner.run(
        files.break_lock(str(lock), stale, fresh, grave), check=False
    )
    assert won.exited == 0 and (lock / "details").read_text() == fresh


def test_a_breaker_killed_mid_way_does_not_block_the_lock_forever(
    project: Project,
) -> None:
    target = project.target()
    target.ensure_dirs()
    lock = Path(target.paths.lock)
    stale = json.dumps({"actor": "ada", "pid": 1})
    lock.mkdir()
    (lock / "details").write_text(stale)
    claim = lock / ".breaking"
    claim.mkdir()  # a breaker was killed right after claiming the lock
    grave = f"{lock}.grave"
    busy = target.runner.run(
        files.break_lock(str(lock), stale, "{}", grave), check=False
    )
    assert busy.exited == 3  # a fresh claim: another breaker may be at work
    old = time.time() - 120
    os.utime(claim, (old, old))
    won = target.runner.run(
        files.break_lock(str(lock), stale, "{}", grave), check=False
    )
    assert won.exited == 0 and (lock / "details").read_text() == "{}"
    assert not claim.exists()


@pytest.mark.slow
def test_two_runs_racing_on_a_stale_lock_end_with_one_holder(project: Project) -> None:
    lock = project.root / "preprod" / "lock"
    lock.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    details = {"actor": "ada", "host": socket.gethostname(), "pid": dead.pid}
    (lock / "details").write_text(json.dumps({**details, "why": "deploy"}))
    runs = [
        subprocess.Popen(
            invoke_argv("lock.acquire", "--reason", f"run {n}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    codes = sorted(run.wait(timeout=60) for run in runs)
    assert codes == [0, 3], [r.communicate() for r in runs]
    broken = [e for e in ledger(project) if e["event"] == "lock_broken"]
    assert len(broken) == 1
    assert [e["event"] for e in ledger(project)].count("locked") == 1


@pytest.mark.slow
def test_any_revision_is_resolved_once_and_recorded_in_full(project: Project) -> None:
    v1 = project.repo.commit("v1")
    git(project.repo.path, "tag", "v1.0")
    v2 = project.repo.commit("v2")
    head = invoke("deploy.preprod", "--sha", "HEAD", "--json")
    assert head.returncode == 0, head.stderr
    assert document(head, "deploy.preprod")["sha"] == v2
    assert f"HEAD is {v2}" in head.stderr
    tag = invoke("deploy.preprod", "--sha", "v1.0")
    assert tag.returncode == 0, tag.stderr
    branch = invoke("deploy.preprod", "--sha", "main~1")
    assert branch.returncode == 0  # v1 again: already serving
    short = invoke("deploy.preprod", "--sha", v2[:8])
    assert short.returncode == 0, short.stderr
    deploys = [
        e["sha"]
        for e in ledger(project)
        if e["event"] == "deploy" and e["outcome"] == "ok"
    ]
    assert deploys == [v2, v1, v2]
    unknown = invoke("deploy.preprod", "--sha", "no-such-branch")
    assert unknown.returncode == 2
    assert "revision no-such-branch is not a commit of" in unknown.stderr


@pytest.mark.slow
def test_every_json_has_one_shape_and_rollback_errors_are_json(
    project: Project,
) -> None:
    sha = project.repo.commit("v1")
    nothing = invoke("rollback", "--json")  # nothing deployed: nothing to roll back
    assert nothing.returncode == 1, nothing.stderr
    error = document(nothing, "rollback")
    assert error["ok"] is False and error["exit_code"] == 1
    assert "no kept release" in error["error"] and error["hosts"] == []
    assert "KeyError" not in nothing.stderr

    deployed = document(
        invoke("deploy.preprod", "--sha", sha, "--json"), "deploy.preprod"
    )
    assert deployed["ok"] and deployed["outcome"] == "deployed"
    assert deployed["hosts"] == [
        {"env": "preprod", "host": socket.gethostname(), "outcome": "deployed"}
    ]
    health = invoke("health", "--json")
    assert health.returncode == 1  # prod was never deployed
    checked = document(health, "health")
    assert checked["ok"] is False and "prod" in checked["error"]
    assert [(r["env"], r["ok"]) for r in checked["hosts"]] == [
        ("preprod", True),
        ("prod", False),
    ]
    status = document(invoke("status", "--json", "--env", "preprod"), "status")
    assert status["env"] == "preprod" and status["hosts"][0]["current"] == sha
    watched = invoke("watch", "--resume", "--json")
    assert document(watched, "watch")["resumed"] == []
    bad_wait = invoke("watch", "--sha", sha, "--lock-wait", "soon")
    assert bad_wait.returncode == 2 and "must be a number of seconds" in bad_wait.stderr


@pytest.mark.slow
def test_a_frozen_environment_keeps_its_verdict_until_the_lock_is_lifted(
    project: Project,
) -> None:
    project.write("""
        [tool.cicd.ci]
        provider = "local"
        command = "true"
        deadline = 60
        """)
    sha = project.repo.commit("v1")
    assert invoke("deploy.preprod", "--sha", sha).returncode == 0
    reason = "investigating a slow query"
    assert invoke("lock.acquire", "--reason", reason).returncode == 0

    watched = invoke("watch", "--sha", sha, "--lock-wait", "30")
    assert watched.returncode == 3, watched.stderr
    assert f"the CI verdict for {sha[:7]} waits" in watched.stderr
    assert "preprod is frozen by a manual lock of" in watched.stderr
    assert reason in watched.stderr
    validated = project.root / "preprod" / "validated"
    assert not validated.exists()

    lifted = document(invoke("lock.release", "--json"), "lock.release")
    assert lifted["resumed"] == [sha]  # the refused verdict is acted on now
    deadline = time.monotonic() + 60
    while not validated.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert validated.read_text().strip() == sha


def test_a_stale_lock_another_run_is_breaking_is_left_to_it(project: Project) -> None:
    from cicd.host import lock as locks
    from cicd.core.errors import LockHeld

    target = project.target()
    target.ensure_dirs()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = {"actor": "ada", "host": socket.gethostname(), "pid": dead.pid}
    path = Path(target.paths.lock)
    (path / ".breaking").mkdir(parents=True)  # claimed by a run still at work
    (path / "details").write_text(json.dumps({**stale, "why": "deploy"}))
    with pytest.raises(LockHeld, match="locked by ada"):
        locks.acquire(target, locks.holder("deploy", None))
    assert json.loads((path / "details").read_text())["actor"] == "ada"
    assert not (project.root / "preprod" / "ledger.jsonl").exists()  # nothing said


def test_a_verdict_for_a_sha_never_deployed_is_json_too(project: Project) -> None:
    project.write("""
        [tool.cicd.ci]
        provider = "github"
        repository = "acme/mangetamain"
        api_url = "http://127.0.0.1:9"
        """)
    sha = project.repo.commit("v1")
    args = ("watch.verdict", "--sha", sha, "--run-id", "7", "--json")
    data = document(invoke(*args, "--lock-wait", "5"), "watch.verdict")
    assert data["ok"] and data["verdict"] == "not-deployed" and data["sha"] == sha
    bad = invoke(*args, "--lock-wait", "later")
    assert bad.returncode == 2
    assert document(bad, "watch.verdict")["error"].startswith("--lock-wait must be")


@pytest.mark.slow
def test_a_branch_of_a_url_source_is_fetched_before_it_is_resolved(
    project: Project,
) -> None:
    v1 = project.repo.commit("v1")
    project.write(
        preprod=f'source = "file://{project.repo.path}"',
    )
    first = invoke("deploy.preprod", "--sha", "main")
    assert first.returncode == 0, first.stderr
    assert f"main is {v1}" in first.stderr
    v2 = project.repo.commit("v2")  # main moved on in the origin
    second = invoke("deploy.preprod", "--sha", "main")
    assert second.returncode == 0, second.stderr
    assert f"main is {v2}" in second.stderr
    assert os.readlink(project.root / "preprod" / "current") == f"releases/{v2}"
    mirror = project.root / "source.git"  # resolved in the mirror, fetched first
    assert git(mirror, "rev-parse", "main") == v2


def test_a_freeze_on_any_host_of_a_fleet_is_never_waited_for(
    project: Project, tmp_path: Path
) -> None:
    from cicd.host import lock as locks
    from cicd.transport.runner import Runner
    from cicd.host.target import Target
    from invoke.context import Context

    from cicd.core import config

    first = project.target()
    other = tmp_path / "other.toml"
    other.write_text(
        project.config_path.read_text().replace(str(project.root), f"{tmp_path}/h2")
    )
    second = Target(Runner(Context()), config.load(other), "preprod")
    assert second.paths.lock != first.paths.lock
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        first.ensure_dirs()
        busy = {**locks.holder("deploy", None), "pid": sleeper.pid}
        locks.acquire(first, busy)  # a live deploy on the first host...
        locks.freeze([second], "hands off")  # ...and a freeze on the second
        started = time.monotonic()
        with pytest.raises(locks.ManualLockHeld, match="hands off"):
            with locks.waiting(30):
                with locks.hold([first, second], "deploy"):
                    pass
        assert time.monotonic() - started < 10
        assert json.loads(Path(first.paths.lock, "details").read_text()) == busy
        # Both hosts held: refused as locked, each lock left to its holder.
        with pytest.raises(locks.ManualLockHeld):
            with locks.hold([second, second], "deploy"):
                pass
    finally:
        sleeper.kill()


@pytest.mark.slow
def test_watch_json_says_the_verdict(project: Project) -> None:
    project.write("""
        [tool.cicd.ci]
        provider = "local"
        command = "true"
        deadline = 60
        """)
    sha = project.repo.commit("v1")
    assert invoke("deploy.preprod", "--sha", sha).returncode == 0
    watched = invoke("watch", "--sha", "HEAD", "--json")
    assert watched.returncode == 0, watched.stderr
    data = document(watched, "watch")
    assert (data["sha"], data["verdict"], data["log"]) == (sha, "success", None)
    assert [row["env"] for row in data["hosts"]] == ["preprod"]
