"""The fault matrix: a run killed (SIGKILL) at each fail point, then the next command.

Every case runs through the CLI as a user would (``invoke ...`` in a subprocess)
against real git, a real supervisord and the stand-in app; the watcher's CI is the
FakeGitHub on 127.0.0.1. The killed run gets ``CICD_FAILPOINT=<point>`` and dies at
that point (:mod:`cicd.transport.failpoints`); whatever the next command is — a deploy,
a
rollback, ``status --repair``, ``watch --resume`` — afterwards what serves is what
``current`` names, the app is healthy and answers, the lock is free and the ledger
says what was found and done.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer

from tests.conftest import Project, invoke
from tests.github_fake import REPOSITORY, FakeGitHub
from tests.integration.test_notify_cli import Discord

# Each case kills a run and waits for the next command: 7 to 10 s each.
pytestmark = pytest.mark.slow

TOKEN = "ghs_fake_token_for_fault_tests_0123456789"

#: Readiness deadline of every deploy here: a few seconds, so a case stays bounded.
HEALTH_DEADLINE = 5

#: The fail points of a deploy, in the order a deploy reaches them.
DEPLOY_POINTS = ("exported", "switched", "restarted", "ready")

#: A SIGKILLed child: -9 from subprocess, 137 when a shell reports it.
KILLED = (-9, 137)


# -- helpers ------------------------------------------------------------------


@pytest.fixture
def github(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> FakeGitHub:
    """A scripted GitHub API on 127.0.0.1; GITHUB_TOKEN set to a fake token."""
    fake = FakeGitHub(httpserver)
    fake.install()
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    return fake


def use_github(project: Project, github: FakeGitHub, proxy: str = "none") -> None:
    """Configure the project's CI provider as the fake GitHub (and ``proxy.kind``)."""
    project.write(
        f"""
        [tool.cicd.ci]
        provider = "github"
        repository = "{REPOSITORY}"
        api_url = "{github.api_url}"
        poll_interval = 0.1
        deadline = 20
        """,
        deadline=HEALTH_DEADLINE,
        proxy=proxy,
    )


def run(*args: str, point: str | None = None) -> subprocess.CompletedProcess[str]:
    """``invoke ARGS``; with ``point``, killed by its fail point."""
    env = {"CICD_FAILPOINT": point} if point else {"CICD_FAILPOINT": ""}
    return invoke(*args, env=env, timeout=90)


def said(result: subprocess.CompletedProcess[str]) -> str:
    """Everything a run printed, for assertion messages."""
    return (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


def ok(*args: str) -> subprocess.CompletedProcess[str]:
    """``invoke ARGS``, which must succeed."""
    result = run(*args)
    assert result.returncode == 0, said(result)
    return result


def killed(*args: str, point: str) -> subprocess.CompletedProcess[str]:
    """``invoke ARGS`` killed at ``point``: it must die of SIGKILL."""
    result = run(*args, point=point)
    assert result.returncode in KILLED, f"not killed at {point}: " + said(result)
    return result


def ledger(project: Project) -> list[dict[str, Any]]:
    """The preprod ledger, parsed."""
    path = project.root / "preprod" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def events(
    project: Project, name: str, since: int = 0, sha: str | None = None
) -> list[dict[str, Any]]:
    """Ledger events of one kind (from index ``since``; of one sha if given)."""
    return [
        e
        for e in ledger(project)[since:]
        if e["event"] == name and (sha is None or e.get("sha") == sha)
    ]


def story(project: Project, since: int = 0) -> str:
    """The ledger from ``since``, one line per event, for assertion messages."""
    return "\n".join(
        f"{e['event']:<12} {str(e.get('sha'))[:7]} prev={str(e.get('previous'))[:7]} "
        f"{e.get('outcome')} {e.get('detail') or ''}"
        for e in ledger(project)[max(since, 0) :]
    )


def intent_file(project: Project) -> Path:
    """Where an unfinished switch is recorded."""
    return project.root / "preprod" / "intent"


def status_row(project: Project) -> dict[str, Any]:
    """``invoke status --json --env preprod``: the preprod row."""
    result = ok("status", "--json", "--env", "preprod")
    (row,) = json.loads(result.stdout)["hosts"]
    return dict(row)


def status_table_columns(project: Project) -> list[str]:
    """``invoke status --env preprod``: the preprod line of the table, split."""
    result = ok("status", "--env", "preprod")
    lines = result.stdout.splitlines()
    assert lines and lines[0].split()[:3] == ["ENV", "CURRENT", "SERVING"], said(result)
    (line,) = [line for line in lines[1:] if line.startswith("preprod ")]
    return line.split()


def body(project: Project) -> str:
    """What the preprod app answers."""
    return requests.get(project.url(), timeout=5).text.strip()


def commit_versions(project: Project, *names: str) -> dict[str, str]:
    """Commit one version of the stand-in app per name: {sha: name}."""
    return {project.repo.commit(name): name for name in names}


def deployed_and_validated(project: Project) -> tuple[str, str, dict[str, str]]:
    """V1 deployed through the CLI and CI-validated; V2 committed, not deployed."""
    project.write(deadline=HEALTH_DEADLINE)
    versions = commit_versions(project, "v1", "v2")
    v1, v2 = list(versions)
    ok("deploy.preprod", "--sha", v1)
    target = project.target()
    target.set_validated(v1)
    target.event("validated", sha=v1)
    return v1, v2, versions


def assert_settled(project: Project, versions: dict[str, str]) -> dict[str, Any]:
    """What serves is what ``current`` names, healthy, unlocked, answering.

    Also case 4 of the matrix: the human table's SERVING equals CURRENT, no ``!``.

    Returns:
        The ``status --json`` row.
    """
    row = status_row(project)
    assert row["current"], row
    assert row["serving"] == row["current"], row
    assert row["drift"] is False, row
    assert row["healthy"] is True, row
    assert row["lock"] is None, row
    assert row["runtime"] == "RUNNING", row
    locks = json.loads(ok("lock.status", "--json", "--env", "preprod").stdout)
    assert [(r["env"], r["locked"]) for r in locks["hosts"]] == [("preprod", False)]
    assert not intent_file(project).exists()
    assert body(project) == f"{versions[row['current']]} ok"
    columns = status_table_columns(project)
    assert columns[1] == row["current"][:7], columns
    assert columns[2] == columns[1], f"SERVING is not CURRENT: {columns}"
    return row


def assert_left_unfinished(
    project: Project, point: str, old: str, new: str, since: int
) -> None:
    """What a run killed at ``point`` of a switch ``old → new`` left behind."""
    pending = json.loads(intent_file(project).read_text())
    assert (pending["from"], pending["to"]) == (old, new), pending
    row = status_row(project)
    assert row["current"] == new, row
    assert row["healthy"] is False, row  # an unfinished switch fails health
    assert "unfinished switch" in row["health"], row
    if point == "switched":
        assert row["serving"] == old and row["drift"] is True, row
    else:
        assert row["serving"] == new, row
    assert row["lock"], row  # the dead run's lock is still there
    assert not events(project, "repair", since)


# -- 1. a deploy killed at each point, then the next command ------------------


@pytest.mark.parametrize("point", DEPLOY_POINTS)
@pytest.mark.parametrize("then", ["deploy", "rollback", "status --repair"])
def test_deploy_killed_then_the_next_command_settles_it(
    project: Project, point: str, then: str
) -> None:
    v1, v2, versions = deployed_and_validated(project)
    before = len(ledger(project))
    killed("deploy.preprod", "--sha", v2, point=point)
    if point == "exported":
        assert not intent_file(project).exists()  # nothing was switched
        row = status_row(project)
        assert (row["current"], row["serving"]) == (v1, v1), row
        assert body(project) == "v1 ok"
    else:
        assert_left_unfinished(project, point, v1, v2, before)
    after_kill = len(ledger(project))

    if then == "deploy":
        ok("deploy.preprod", "--sha", v2)
        expected = v2
    elif then == "rollback":
        result = run("rollback", "--env", "preprod")
        if point == "exported":
            # V1 never stopped running: there is nothing older to go back to.
            assert result.returncode == 1, said(result)
            assert "no kept release is CI-validated" in result.stderr, said(result)
            expected = v1
        else:
            assert result.returncode == 0, said(result)
            expected = v1
    else:
        result = ok("status", "--repair", "--env", "preprod")
        if point == "exported":
            assert "preprod: nothing to repair" in result.stdout, said(result)
            expected = v1
        else:
            # V2 gets ready: the switch is completed, not undone, and the deploy's
            # story ends as the killed run would have ended it.
            assert "preprod: nothing to repair" not in result.stdout, said(result)
            expected = v2
            finished = events(project, "deploy", after_kill, sha=v2)
            assert [e["detail"] for e in finished] == ["completed by repair"]

    row = assert_settled(project, versions)
    assert row["current"] == expected, row

    # The ledger tells the story: the dead run's lock was broken, and an intent
    # left behind was repaired (an export alone needs no repair).
    assert events(project, "lock_broken", after_kill), ledger(project)[after_kill:]
    repairs = events(project, "repair", after_kill)
    if point == "exported":
        assert not repairs, repairs
    else:
        assert len(repairs) == 1, repairs
        assert repairs[0]["outcome"] == "ok", repairs
        assert repairs[0]["sha"] == v2, repairs  # completed: V2 was fine
    if then == "deploy":
        # Not none: the release that ran before the killed run's switch.
        assert row["previous"] == v1, story(project, before)
    if then == "rollback" and point != "exported":
        assert v2 in {e["sha"] for e in events(project, "marked_bad", after_kill)}
        assert events(project, "rollback", after_kill, sha=v1)


# -- 2. a rollback killed, then status --repair -------------------------------


@pytest.mark.parametrize("point", ["switched", "restarted"])
def test_rollback_killed_then_status_repair_settles_it(
    project: Project, point: str
) -> None:
    v1, v2, versions = deployed_and_validated(project)
    ok("deploy.preprod", "--sha", v2)
    assert body(project) == "v2 ok"
    before = len(ledger(project))
    killed("rollback", "--env", "preprod", point=point)
    assert_left_unfinished(project, point, v2, v1, before)
    after_kill = len(ledger(project))

    repaired = ok("status", "--repair", "--env", "preprod")
    assert "preprod: nothing to repair" not in repaired.stdout, said(repaired)

    row = assert_settled(project, versions)
    assert row["current"] == v1, row
    repairs = events(project, "repair", after_kill)
    assert len(repairs) == 1 and repairs[0]["sha"] == v1, repairs
    assert events(project, "lock_broken", after_kill)
    # The ledger finishes the rollback's story: v2 abandoned (bad), v1 rolled to.
    assert [e["sha"] for e in events(project, "marked_bad", after_kill)] == [v2]
    (rolled,) = events(project, "rollback", after_kill)
    assert (rolled["sha"], rolled["previous"]) == (v1, v2)


# -- 3. the watcher's rollback killed, then watch --resume --------------------


@pytest.mark.parametrize("point", ["verdict", "switched"])
def test_watchers_rollback_killed_then_resumed_acts_once(
    project: Project, github: FakeGitHub, point: str
) -> None:
    use_github(project, github)
    versions = commit_versions(project, "v1", "v2")
    v1, v2 = list(versions)
    ok("deploy.preprod", "--sha", v1)
    github.set_run(v1, "completed", "success", run_id=1)
    ok("watch", "--sha", v1)
    assert (project.root / "preprod" / "validated").read_text().strip() == v1
    ok("deploy.preprod", "--sha", v2)
    github.set_run(v2, "completed", "failure", run_id=2)
    github.jobs = [{"name": "tests", "conclusion": "failure", "steps": []}]

    killed("watch", "--sha", v2, point=point)
    journal_path = project.root / "preprod" / "watch" / f"{v2}.json"
    journal = json.loads(journal_path.read_text())
    # Killed after the verdict was recorded, while acting on it: "acting".
    state = "verdict" if point == "verdict" else "acting"
    assert journal["state"] == state and journal["verdict"] == "failure", journal
    if point == "switched":
        pending = json.loads(intent_file(project).read_text())
        assert (pending["from"], pending["to"]) == (v2, v1), pending

    resumed = ok("watch", "--resume")
    assert "resuming the watch" in resumed.stderr, said(resumed)

    row = assert_settled(project, versions)
    assert (row["current"], row["serving"]) == (v1, v1), row
    assert len(events(project, "marked_bad", sha=v2)) == 1, events(
        project, "marked_bad"
    )
    assert json.loads(journal_path.read_text())["state"] == "done"
    if point == "switched":
        assert events(project, "repair", sha=v1), ledger(project)

    again = ok("watch", "--resume")
    assert "no interrupted watch to resume" in again.stdout, said(again)
    assert len(events(project, "marked_bad", sha=v2)) == 1


# -- 3b. a rollback completed by a repair is told as a rollback ---------------

#: The ledger events that tell a verdict's story (a repair adds its own around them).
TOLD = ("ci", "marked_bad", "rollback", "validated", "deploy")


def watch_story(
    project: Project,
    github: FakeGitHub,
    discord: Discord,
    bad: str,
    good: str,
    run_id: int,
    point: str | None,
) -> tuple[list[tuple[str, str, str]], list[tuple[str, int]], str]:
    """Deploy ``bad``, fail its CI, watch it (killed at ``point``, then resumed).

    Returns:
        What the watch told, with the shas and the run's link named by role: the
        ledger's (event, outcome, sha) after the deploy, the Discord messages
        (text, colour) and ``invoke releases``' CI column for ``bad``.
    """
    ok("deploy.preprod", "--sha", bad)
    github.set_run(bad, "completed", "failure", run_id=run_id)
    since = len(ledger(project))
    sent = len(discord.bodies)
    hook = {**discord.env, "CICD_FAILPOINT": ""}
    if point is None:
        watched = invoke("watch", "--sha", bad, env=hook, timeout=90)
        assert watched.returncode == 0, said(watched)
    else:
        died = invoke("watch", "--sha", bad, env={**hook, "CICD_FAILPOINT": point})
        assert died.returncode in KILLED, said(died)
        watched = invoke("watch", "--resume", env=hook, timeout=90)
        assert watched.returncode == 0, said(watched)
        assert "resuming the watch" in watched.stderr, said(watched)
    assert "nothing rolled back" not in watched.stderr, said(watched)
    role = {bad: "BAD", good: "GOOD"}
    run = f"actions/runs/{run_id}"

    def named(text: str) -> str:
        return text.replace(bad[:7], "BAD").replace(good[:7], "GOOD").replace(run, "R")

    told = [
        (e["event"], e["outcome"], role.get(e["sha"], e["sha"]))
        for e in ledger(project)[since:]
        if e["event"] in TOLD
    ]
    messages = [
        (named(b["content"]), b["embeds"][0]["color"]) for b in discord.bodies[sent:]
    ]
    listed = json.loads(ok("releases", "--json", "--env", "preprod").stdout)
    (ci,) = [r["ci"] for r in listed["hosts"][0]["releases"] if r["sha"] == bad]
    return told, messages, ci


HAPROXY = pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")


@pytest.mark.parametrize(
    ("proxy", "point"),
    [
        ("none", "switched"),
        ("none", "restarted"),
        ("none", "ready"),
        # Behind haproxy the rollback is a switch back to the warm slot.
        pytest.param("haproxy", "ready", marks=HAPROXY),
        pytest.param("haproxy", "switched", marks=HAPROXY),
    ],
)
def test_a_rollback_completed_by_a_repair_is_told_as_an_uninterrupted_one(
    project: Project,
    github: FakeGitHub,
    httpserver: HTTPServer,
    proxy: str,
    point: str,
) -> None:
    use_github(project, github, proxy)
    discord = Discord(httpserver)
    versions = commit_versions(project, "v1", "v2", "v3")
    v1, v2, v3 = list(versions)
    ok("deploy.preprod", "--sha", v1)
    github.set_run(v1, "completed", "success", run_id=1)
    ok("watch", "--sha", v1)
    github.jobs = [{"name": "tests", "conclusion": "failure", "steps": []}]

    plain = watch_story(project, github, discord, v2, v1, 2, None)
    repaired = watch_story(project, github, discord, v3, v1, 3, point)

    assert plain[0] == [
        ("ci", "watching", "BAD"),
        ("ci", "failure", "BAD"),
        ("marked_bad", "bad", "BAD"),
        ("rollback", "ok", "GOOD"),
    ], story(project)
    assert len(plain[1]) == 1 and "Rolled back to GOOD" in plain[1][0][0], plain
    assert plain[2] == "bad"
    # The same events, messages and CI state, whatever the kill interrupted.
    assert repaired == plain, story(project)
    assert_settled(project, versions)
    (rolled,) = events(project, "rollback", sha=v1)[-1:]
    assert rolled["previous"] == v3, rolled
    assert rolled["detail"].startswith(f"CI failed for {v3[:7]}"), rolled
    # Behind haproxy "ready" comes before the switch: the resumed watcher switches.
    switched = proxy == "none" or point == "switched"
    assert ("completed by repair" in rolled["detail"]) is switched, rolled


# -- 3c. a killed run's lock is shown stale wherever the lock is shown --------


def test_a_killed_runs_lock_is_shown_stale_until_the_next_run_breaks_it(
    project: Project,
) -> None:
    v1, v2, versions = deployed_and_validated(project)
    killed("deploy.preprod", "--sha", v2, point="restarted")
    holder = json.loads((project.root / "preprod" / "lock" / "details").read_text())
    pid = holder["pid"]
    stale = (
        f"— STALE: pid {pid} is gone on this host (the next deploy, rollback or "
        "verdict breaks it)"
    )

    text = ok("lock.status", "--env", "preprod").stdout.strip()
    assert text.startswith(
        f"preprod: {holder['actor']} on {holder['host']} (pid {pid})"
    )
    assert text.endswith(stale), text
    (row,) = json.loads(ok("lock.status", "--json", "--env", "preprod").stdout)["hosts"]
    assert row["locked"] is True and row["holder"]["stale"] is True, row
    assert row["holder"]["pid"] == pid and row["description"].endswith(stale), row

    table = ok("status", "--env", "preprod").stdout
    (line,) = [x for x in table.splitlines() if x.startswith("preprod ")]
    assert line.endswith(stale), table
    status = status_row(project)
    assert status["lock_stale"] is True and status["lock"].endswith(stale), status

    # The next command breaks it; a free lock is stale no more.
    ok("status", "--repair", "--env", "preprod")
    assert status_row(project)["lock_stale"] is False
    free = json.loads(ok("lock.status", "--json", "--env", "preprod").stdout)
    assert free["hosts"][0]["locked"] is False, free
    assert_settled(project, versions)


# -- 4. the status table shows the drift, then its end ------------------------


def test_status_table_marks_drift_until_repaired(project: Project) -> None:
    v1, v2, versions = deployed_and_validated(project)
    killed("deploy.preprod", "--sha", v2, point="switched")
    columns = status_table_columns(project)
    assert columns[1] == v2[:7] and columns[2] == f"{v1[:7]}!", columns
    assert "FAIL" in columns, columns
    ok("status", "--repair", "--env", "preprod")
    columns = status_table_columns(project)
    assert columns[1] == columns[2] == v2[:7], columns
    assert "!" not in " ".join(columns) and "ok" in columns, columns
    assert_settled(project, versions)
