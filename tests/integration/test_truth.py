"""A ledger that survives torn writes, honest errors on faulty disks, bad input
everywhere, and a ledger that says what happened — as a user meets them, through the
CLI, with real git, supervisord and a local GitHub stand-in.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cicd.reporting.notify import Notifier
from cicd.pipeline.watch import watch
from tests.conftest import Project, invoke, invoke_argv
from tests.github_fake import FakeGitHub
from tests.integration.test_watch import deploy, events, github, use_github

__all__ = ["github"]  # the fixture, used by the verdict tests below

HOSTILE = {
    "shell": "$(touch pwned); `touch pwned` && touch pwned",
    "newline": "abc\nerror: forged second line",
    "10 kB": "f" * 10_000,
}


def ledger(project: Project, env: str = "preprod") -> Path:
    """The environment's ledger file."""
    return project.root / env / "ledger.jsonl"


def tree(root: Path) -> list[str]:
    """Every path under the root with its size: what 'nothing changed' compares."""
    if not root.exists():
        return []
    return sorted(
        f"{p.relative_to(root)} {p.stat().st_size if p.is_file() else '-'}"
        for p in root.rglob("*")
        if "supervisor" not in p.parts and "logs" not in p.parts
    )


# -- the ledger ------------------------------------------------------------------


@pytest.mark.slow
def test_an_append_never_joins_a_torn_last_line(project: Project) -> None:
    v1, v2 = project.repo.commit("v1"), project.repo.commit("v2")
    assert invoke("deploy.preprod", "--sha", v1).returncode == 0
    text = ledger(project).read_text()
    # A write cut short: the last line loses its end and its newline.
    ledger(project).write_text(text[: len(text) - 25])
    torn = len(text.splitlines())

    second = invoke("deploy.preprod", "--sha", v2)

    assert second.returncode == 0, second.stderr
    # Reported once: as a corrupt line by the deploy's read (or, when no reader
    # ran first, as torn by the append itself).
    assert second.stderr.count(f"line {torn} ") == 1
    lines = ledger(project).read_text().splitlines()
    started = [json.loads(line) for line in lines[torn:] if line.startswith("{")]
    assert any(e["event"] == "deploy" and e["sha"] == v2 for e in started)
    # Reported once: readers no longer warn about the fragment.
    status = invoke("status", "--env", "preprod")
    assert "skipped" not in status.stdout + status.stderr
    assert "skipped" not in invoke("releases").stderr


@pytest.mark.slow
def test_a_corrupt_line_is_reported_by_every_reader_until_a_writer_says_it(
    project: Project,
) -> None:
    v1, v2 = project.repo.commit("v1"), project.repo.commit("v2")
    assert invoke("deploy.preprod", "--sha", v1).returncode == 0
    with ledger(project).open("a") as handle:
        handle.write("garbage that is not JSON\n")
    line = len(ledger(project).read_text().splitlines())
    warning = f"ledger line {line} skipped"

    assert warning in invoke("releases").stderr
    assert warning in invoke("status", "--env", "preprod").stdout
    deployed = invoke("deploy.preprod", "--sha", v2)
    assert deployed.stderr.count(warning) == 1
    assert warning not in invoke("status", "--env", "preprod").stdout
    assert warning not in invoke("releases").stderr


# -- faulty disks ------------------------------------------------------------------


@pytest.fixture
def read_only(project: Project) -> object:
    """Make preprod's directory read-only with a bind mount (skip where refused)."""
    env_dir = project.root / "preprod"

    def mount() -> None:
        done = subprocess.run(
            ["mount", "--bind", "-o", "ro", str(env_dir), str(env_dir)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"a read-only bind mount is not permitted here: {done.stderr}")
        probe = env_dir / ".probe"
        try:
            probe.write_text("x")
        except OSError:
            return
        probe.unlink()
        subprocess.run(["umount", str(env_dir)], check=False)
        pytest.skip("the bind mount did not become read-only (needs root)")

    yield mount
    subprocess.run(["umount", str(env_dir)], capture_output=True, check=False)


@pytest.mark.slow
def test_a_read_only_target_is_an_os_error_not_a_lock(
    project: Project, read_only: object
) -> None:
    v1, v2 = project.repo.commit("v1"), project.repo.commit("v2")
    assert invoke("deploy.preprod", "--sha", v1).returncode == 0
    read_only()  # type: ignore[operator]
    before = tree(project.root)

    for args in (["deploy.preprod", "--sha", v2], ["rollback", "--env", "preprod"]):
        result = invoke(*args)
        assert result.returncode == 1, (args, result.stderr)
        (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
        assert "Read-only file system" in line and str(project.root) in line
        assert "locked by" not in line and "sh -c" not in line
    lock = invoke("lock.status", "--env", "preprod")
    assert lock.returncode == 0 and "free" in lock.stdout
    assert tree(project.root) == before


# -- bad input, everywhere ------------------------------------------------------


TASKS = [
    ["deploy.preprod", "--sha", "{v}"],
    ["deploy.prod", "--confirm", "DEPLOY", "--sha", "{v}"],
    ["deploy.prod", "--confirm", "{v}"],
    ["rollback", "--to", "{v}"],
    ["rollback", "--env", "{v}"],
    ["watch", "--sha", "{v}"],
    ["watch.verdict", "--sha", "{v}", "--run-id", "1"],
    ["watch.verdict", "--sha", "deadbeef", "--run-id", "{v}"],
    ["status", "--env", "{v}"],
    ["releases", "--env", "{v}"],
    ["health", "--env", "{v}"],
    ["lock.release", "--env", "{v}"],
    ["setup", "--env", "{v}", "--check"],
]


@pytest.mark.parametrize("kind", sorted(HOSTILE))
@pytest.mark.parametrize("task", TASKS, ids=lambda task: " ".join(task[:2]))
def test_hostile_values_get_exit_2_one_short_line_and_change_nothing(
    project: Project, tmp_path: Path, task: list[str], kind: str
) -> None:
    project.repo.commit("v1")
    value = HOSTILE[kind]
    before = tree(project.root)
    args = [value if word == "{v}" else word for word in task]

    result = invoke(*args, cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert len(errors[0]) <= 420
    # A newline in a value never makes a second line of output.
    assert not any(
        line.startswith("error: forged") for line in result.stderr.split("\n")
    )
    assert not list(tmp_path.glob("pwned"))
    # Even a --confirm: one that is no word at all is refused by the shared rule
    # before anything is read, so nothing is recorded (a wrong word, "deploy", is
    # audited in prod's ledger: see test_cli).
    assert tree(project.root) == before


def test_a_hostile_fab_host_is_bad_input(tmp_path: Path, project: Project) -> None:
    fab = Path(sys.executable).with_name("fab")
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [str(fab), "--search-root", str(repo), "-H", "$(touch pwned)", "status"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "not a valid host" in result.stderr
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("args", [["deplyo.preprod"], ["status", "--bogus"]])
def test_a_mistyped_task_or_flag_is_exit_2(args: list[str]) -> None:
    result = invoke(*args)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: No idea what")


@pytest.mark.slow
def test_a_closed_pipe_ends_quietly(project: Project) -> None:
    for version in ("v1", "v2"):
        sha = project.repo.commit(version)
        assert invoke("deploy.preprod", "--sha", sha).returncode == 0
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before the first line is written
    done = subprocess.run(
        invoke_argv("releases"),
        stdout=writer,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    os.close(writer)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert done.returncode == 141


# -- the ledger says what happened ------------------------------------------------


@pytest.mark.slow
def test_a_superseded_failure_is_said_once_and_redeploying_it_warns(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github)
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    github.set_run(v1, "completed", "success")
    target = project.target()
    watch([target], v1, Notifier(target))
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    v3 = project.repo.commit("v3")
    deploy(project, v3)
    github.set_run(v2, "completed", "failure")

    assert watch([project.target()], v2, Notifier(project.target())) == "failure"

    (verdict,) = [e for e in events(project, "ci") if e["sha"] == v2][-1:]
    assert verdict["outcome"] == "superseded"
    assert f"superseded by {v3[:7]}" in str(verdict["detail"])
    assert [e["sha"] for e in events(project, "marked_bad")] == [v2]
    # A CI failure that rolls back marks the sha bad once, not twice.
    github.set_run(v3, "completed", "failure")
    assert watch([project.target()], v3, Notifier(project.target())) == "failure"
    assert [e["sha"] for e in events(project, "marked_bad")] == [v2, v3]
    again = invoke("deploy.preprod", "--sha", v3)
    assert f"{v3[:7]} was marked bad" in again.stderr


def test_a_broken_stale_lock_is_said_on_the_console(project: Project) -> None:
    sha = project.repo.commit("v1")
    lock = project.root / "preprod" / "lock"
    lock.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    details = {"actor": "ada", "host": socket.gethostname(), "pid": dead.pid}
    (lock / "details").write_text(json.dumps({**details, "why": "deploy"}))

    result = invoke("deploy.preprod", "--sha", sha)

    assert result.returncode == 0, result.stderr
    assert "broke the stale lock of ada" in result.stderr


# -- serving truth ---------------------------------------------------------------


@pytest.mark.slow
def test_a_hand_switched_current_is_a_drift_that_status_repair_ends(
    project: Project,
) -> None:
    v1, v2 = project.repo.commit("v1"), project.repo.commit("v2")
    for sha in (v1, v2):
        assert invoke("deploy.preprod", "--sha", sha).returncode == 0
    current = project.root / "preprod" / "current"
    # Someone switches the link by hand and restarts nothing.
    current.unlink()
    current.symlink_to(project.root / "preprod" / "releases" / v1)

    (row,) = json.loads(invoke("status", "--env", "preprod", "--json").stdout)["hosts"]
    assert (row["current"], row["serving"], row["drift"]) == (v1, v2, True)
    health = invoke("health", "--env", "preprod")
    assert health.returncode == 1 and "drift: current is" in health.stdout

    repaired = invoke("status", "--repair", "--env", "preprod")

    assert repaired.returncode == 0, repaired.stderr
    assert f"restarted {v1[:7]}" in repaired.stdout
    (row,) = json.loads(invoke("status", "--env", "preprod", "--json").stdout)["hosts"]
    assert (row["current"], row["serving"], row["drift"]) == (v1, v1, False)
    assert invoke("health", "--env", "preprod").returncode == 0


@pytest.mark.slow
def test_an_unfinished_switch_to_a_release_that_cannot_start_is_undone(
    project: Project,
) -> None:
    project.write(deadline=3)
    v1 = project.repo.commit("v1")
    v2 = project.repo.commit("v2", mode="crash")
    assert invoke("deploy.preprod", "--sha", v1).returncode == 0
    killed = invoke("deploy.preprod", "--sha", v2, env={"CICD_FAILPOINT": "switched"})
    assert killed.returncode in (-9, 137)

    repaired = invoke("status", "--repair", "--env", "preprod")

    assert repaired.returncode == 0, repaired.stderr
    assert f"back on {v1[:7]}" in repaired.stdout
    (row,) = json.loads(invoke("status", "--env", "preprod", "--json").stdout)["hosts"]
    assert (row["current"], row["serving"], row["healthy"]) == (v1, v1, True)
    assert v2 in [e["sha"] for e in events(project, "marked_bad")]
    assert not (project.root / "preprod" / "intent").exists()
