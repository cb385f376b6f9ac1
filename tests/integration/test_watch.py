"""The CI watcher against a real local HTTP server standing in for GitHub, real git
and a real supervisord: verdicts, rate limits, superseded deploys, kill -9 and resume.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from cicd.pipeline.deploy import deploy_preprod
from cicd.core.errors import CicdError, LockHeld
from cicd.core.lock_details import describe
from cicd.core.lock_details import holder as lock_holder
from cicd.reporting.notify import Notifier
from cicd.pipeline.watch import watch
from cicd.pipeline.watch_journal import load_journal
from tests.conftest import Project, invoke
from tests.github_fake import REPOSITORY, FakeGitHub

TOKEN = "ghs_fake_token_for_tests_0123456789"


@pytest.fixture
def github(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> FakeGitHub:
    """A scripted GitHub API on 127.0.0.1; GITHUB_TOKEN set to a fake token."""
    fake = FakeGitHub(httpserver)
    fake.install()
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    return fake


def use_github(
    project: Project, github: FakeGitHub, deadline: float = 20, extra: str = ""
) -> None:
    """Configure the project's CI provider as the fake GitHub."""
    project.write(f"""
        [tool.cicd.ci]
        provider = "github"
        repository = "{REPOSITORY}"
        api_url = "{github.api_url}"
        poll_interval = 0.1
        deadline = {deadline}
        {extra}
        """)


def use_local_ci(project: Project, command: str) -> None:
    """Configure local CI running ``command`` in a copy of the release."""
    project.write(f"""
        [tool.cicd.ci]
        provider = "local"
        command = "{command}"
        deadline = 60
        """)


def deploy(project: Project, sha: str) -> None:
    """Deploy ``sha`` to preprod."""
    target = project.target()
    deploy_preprod([target], sha, Notifier(target))


def body(project: Project) -> str:
    """What the preprod app answers."""
    return requests.get(project.url(), timeout=5).text.strip()


def events(project: Project, name: str) -> list[dict[str, object]]:
    """Ledger events of one kind."""
    path = project.root / "preprod" / "ledger.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [row for row in rows if row["event"] == name]


def later(seconds: float, action: object) -> threading.Timer:
    """Run ``action`` after ``seconds`` in a thread (CI progressing meanwhile)."""
    timer = threading.Timer(seconds, action)  # type: ignore[arg-type]
    timer.start()
    return timer


def test_success_marks_validated_with_few_counted_requests(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github)
    sha = project.repo.commit("v1")
    deploy(project, sha)
    github.set_run(sha, "queued")
    later(0.3, lambda: github.set_run(sha, "in_progress"))
    later(0.8, lambda: github.set_run(sha, "completed", "success"))
    target = project.target()
    assert watch([target], sha, Notifier(target)) == "success"
    assert (project.root / "preprod" / "validated").read_text().strip() == sha
    assert events(project, "validated")[-1]["sha"] == sha
    assert github.not_modified > 0
    assert github.counted <= 4
    assert github.authorizations == {f"Bearer {TOKEN}"}
    assert load_journal(target, sha)["state"] == "done"  # type: ignore[index]


@pytest.mark.parametrize("conclusion", ["failure", "timed_out", "startup_failure"])
@pytest.mark.slow
def test_failure_rolls_back_to_the_last_validated_release(
    project: Project,
    github: FakeGitHub,
    conclusion: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    use_github(project, github)
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    github.set_run(v1, "completed", "success")
    target = project.target()
    watch([target], v1, Notifier(target))
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    github.jobs = [
        {
            "name": "tests",
            "conclusion": "failure",
            "steps": [
                {"name": "Set up", "conclusion": "success"},
                {"name": "nox -s tests", "conclusion": "failure"},
            ],
        },
        {"name": "quality", "conclusion": "success", "steps": []},
    ]
    github.set_run(v2, "completed", conclusion)
    assert watch([target], v2, Notifier(target)) == "failure"
    assert body(project) == "v1 ok"
    state = project.target().state()
    assert state.current == v1 and v2 in state.bad
    output = capfd.readouterr().err
    assert "tests › nox -s tests" in output
    assert "actions/runs/1" in output
    assert TOKEN not in output


@pytest.mark.slow
def test_rate_limit_then_success_waits_for_the_reset(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github)
    sha = project.repo.commit("v1")
    deploy(project, sha)
    github.set_run(sha, "completed", "success")
    reset_at = time.time() + 2
    limited = {"left": 1}

    def rate_limit(request: Request) -> Response | None:
        if limited["left"]:
            limited["left"] -= 1
            return Response(
                "rate limited",
                403,
                headers={
                    "x-ratelimit-remaining": "0",
                    "x-ratelimit-reset": str(int(reset_at)),
                },
            )
        return None

    github.interceptor = rate_limit
    target = project.target()
    started = time.monotonic()
    assert watch([target], sha, Notifier(target)) == "success"
    assert time.monotonic() - started >= reset_at - time.time() - 2.5
    assert github.requests == 2


@pytest.mark.slow
def test_server_errors_back_off_then_succeed(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github)
    sha = project.repo.commit("v1")
    deploy(project, sha)
    github.set_run(sha, "completed", "success")
    errors = {"left": 2}

    def flaky(request: Request) -> Response | None:
        if errors["left"]:
            errors["left"] -= 1
            return Response("oops", 500)
        return None

    github.interceptor = flaky
    target = project.target()
    assert watch([target], sha, Notifier(target)) == "success"
    assert github.requests == 3


@pytest.mark.slow
def test_api_down_for_the_whole_deadline_is_inconclusive_and_keeps_the_deploy(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github, deadline=1)
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    project.target().set_validated(v1)
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    github.server.stop()
    try:
        target = project.target()
        assert watch([target], v2, Notifier(target)) == "inconclusive"
    finally:
        github.server.start()
    assert body(project) == "v2 ok"
    assert not events(project, "rollback")


@pytest.mark.slow
def test_inconclusive_rolls_back_when_configured(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github, deadline=0.5, extra='on_inconclusive = "rollback"')
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    project.target().event("validated", sha=v1)
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    github.set_run(v2, "in_progress")
    target = project.target()
    assert watch([target], v2, Notifier(target)) == "inconclusive"
    assert body(project) == "v1 ok"


@pytest.mark.slow
def test_superseded_deploy_is_marked_bad_but_never_touched(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github)
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    project.target().event("validated", sha=v1)
    a = project.repo.commit("A")
    deploy(project, a)
    b = project.repo.commit("B")
    deploy(project, b)
    github.set_run(a, "completed", "failure")
    target = project.target()
    assert watch([target], a, Notifier(target)) == "failure"
    assert body(project) == "B ok"
    state = project.target().state()
    assert state.current == b and a in state.bad
    assert not events(project, "rollback")


@pytest.mark.slow
def test_local_ci_validates_or_rolls_back(project: Project) -> None:
    use_local_ci(project, "sh -c 'grep -q good app/version.txt'")
    v1 = project.repo.commit("good")
    deploy(project, v1)
    target = project.target()
    assert watch([target], v1, Notifier(target)) == "success"
    v2 = project.repo.commit("bad")
    deploy(project, v2)
    assert watch([target], v2, Notifier(target)) == "failure"
    assert body(project) == "good ok"
    releases = project.root / "preprod" / "releases"
    assert sorted(p.name for p in releases.iterdir()) == sorted([v1, v2])
    assert not (releases / v1 / ".nox").exists()  # CI ran in a scratch copy
    assert "ci-" in " ".join(os.listdir(project.root / "preprod" / "logs"))


@pytest.mark.slow
def test_detached_watcher_killed_then_resumed_acts_once(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github, deadline=60)
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    project.target().event("validated", sha=v1)
    v2 = project.repo.commit("v2")
    github.set_run(v2, "in_progress")
    result = invoke("deploy.preprod", "--sha", v2, "--watch")
    assert result.returncode == 0, result.stderr
    assert "in the background" in result.stderr
    journal = project.root / "preprod" / "watch" / f"{v2}.json"
    log = project.root / "preprod" / "logs" / f"watch-{v2}.log"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "in_progress" not in log.read_text():
        time.sleep(0.05)
    assert "watching CI" in log.read_text()  # the detached watcher logs to its file
    pid = json.loads(journal.read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    github.set_run(v2, "completed", "failure")
    resumed = invoke("watch", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the watch" in resumed.stderr
    assert body(project) == "v1 ok"
    again = invoke("watch", "--resume")
    assert "no interrupted watch" in again.stdout
    assert invoke("watch", "--sha", v2).returncode == 0  # already acted on: no-op
    assert len(events(project, "rollback")) == 1


@pytest.mark.slow
def test_two_watchers_racing_roll_back_once(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github)
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    project.target().event("validated", sha=v1)
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    github.set_run(v2, "completed", "failure")
    env = {"CICD_CONFIG": str(project.config_path)}
    argv = [sys.executable, "-m", "cicd", "watch", "--sha", v2]
    # A second watcher of the same sha (say, a rerun of the job) started at once.
    first = subprocess.Popen(argv, env={**os.environ, **env}, stderr=subprocess.PIPE)
    second = subprocess.Popen(argv, env={**os.environ, **env}, stderr=subprocess.PIPE)
    first.wait(60)
    second.wait(60)
    assert body(project) == "v1 ok"
    assert len(events(project, "rollback")) == 1
    assert project.target().state().current == v1


def test_watch_task_validates_input(project: Project) -> None:
    result = invoke("watch")
    assert result.returncode == 2 and "--sha is required" in result.stderr
    result = invoke("watch", "--sha=-not-a-sha")
    assert result.returncode == 2 and "must not start with '-'" in result.stderr


@pytest.mark.slow
def test_foreground_watch_prints_one_line_per_state_change(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github)
    sha = project.repo.commit("v1")
    deploy(project, sha)
    # CI moves on every third poll, whatever the machine's speed.
    script = iter(["queued"] * 3 + ["in_progress"] * 3 + ["completed"] * 99)

    def progress(request: Request) -> Response | None:
        if "head_sha" in request.args:
            status = next(script)
            github.set_run(sha, status, "success" if status == "completed" else None)
        return None

    github.interceptor = progress
    result = invoke("watch", "--sha", sha)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("  CI ")]
    assert [line.split(": ", 1)[1] for line in lines] == [
        "run 7 queued",
        "run 7 in_progress",
        "run 7 succeeded",
    ]
    assert "CI success" in result.stdout
    assert Path(project.root / "preprod" / "validated").read_text().strip() == sha


# -- the verdict job (workflow_run) ------------------------------------------


def verdict(*args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    """``invoke watch.verdict`` as the ci-verdict workflow runs it."""
    return invoke("watch.verdict", *args, env={"GITHUB_TOKEN": token})


@pytest.mark.slow
def test_cancelled_run_is_inconclusive_and_marks_nothing_bad(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github)
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    github.set_run(v1, "completed", "cancelled")
    target = project.target()
    assert watch([target], v1, Notifier(target)) == "inconclusive"
    assert body(project) == "v1 ok"
    assert not events(project, "marked_bad")


@pytest.mark.slow
def test_verdict_job_validates_then_the_watcher_finds_it_decided(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github)
    sha = project.repo.commit("v1")
    deploy(project, sha)
    github.set_run(sha, "completed", "success", run_id=41)
    github.tokens = {"fresh-job-token"}  # the deploy job's token has expired
    done = verdict("--sha", sha, "--run-id", "41", token="fresh-job-token")
    assert done.returncode == 0, done.stderr
    assert f"preprod: CI success for {sha[:7]}" in done.stdout
    assert (project.root / "preprod" / "validated").read_text().strip() == sha
    assert github.requests == 1  # the run, read once by id
    # The watcher (its token long dead) comes second: it changes nothing.
    target = project.target()
    assert watch([target], sha, Notifier(target)) == "success"
    again = verdict("--sha", sha, "--run-id", "41", token="fresh-job-token")
    assert "already decided by the verdict job: success" in again.stderr
    assert [e["outcome"] for e in events(project, "validated")] == ["ok"]


@pytest.mark.slow
def test_verdict_job_rolls_back_a_failed_sha_and_names_the_failed_job(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github)
    v1 = project.repo.commit("v1")
    deploy(project, v1)
    github.set_run(v1, "completed", "success", run_id=1)
    assert verdict("--sha", v1, "--run-id", "1").returncode == 0
    v2 = project.repo.commit("v2")
    deploy(project, v2)
    github.set_run(v2, "completed", "failure", run_id=2)
    github.jobs = [{"name": "tests", "conclusion": "failure", "steps": []}]
    done = verdict("--sha", v2, "--run-id", "2")
    assert done.returncode == 0, done.stderr
    assert "Failed: tests" in done.stderr + done.stdout
    assert body(project) == "v1 ok"
    state = project.target().state()
    assert state.current == v1 and v2 in state.bad
    # A re-run that passes validates the sha (recorded), without redeploying it.
    github.set_run(v2, "completed", "success", attempt=2, run_id=2)
    rerun = verdict("--sha", v2, "--run-id", "2")
    assert rerun.returncode == 0, rerun.stderr
    assert "re-run passed" in rerun.stderr + rerun.stdout
    state = project.target().state()
    assert v2 not in state.bad and state.current == v1
    assert any("re-run passed" in str(e["detail"]) for e in events(project, "ci"))


@pytest.mark.slow
def test_verdict_job_refuses_bad_input_and_ignores_undeployed_shas(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github)
    sha = project.repo.commit("v1")
    bad = verdict("--sha", sha, "--run-id", "12; rm -rf /")
    assert bad.returncode == 2 and "--run-id must be a number" in bad.stderr
    missing = verdict("--sha", sha)
    assert missing.returncode == 2
    never = verdict("--sha", sha, "--run-id", "5")
    assert never.returncode == 0
    assert "was never deployed here: nothing to decide" in never.stderr
    assert github.requests == 0


@pytest.mark.slow
def test_verdict_job_with_an_expired_token_fails_in_one_line(
    project: Project, github: FakeGitHub
) -> None:
    use_github(project, github)
    sha = project.repo.commit("v1")
    deploy(project, sha)
    github.set_run(sha, "completed", "success", run_id=3)
    github.tokens = set()
    done = verdict("--sha", sha, "--run-id", "3", token="expired-token")
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert "401" in line and "CICD_GITHUB_TOKEN" in line
    assert not (project.root / "preprod" / "validated").exists()


def test_a_missing_local_ci_tool_is_inconclusive_not_a_failure(
    project: Project,
) -> None:
    use_local_ci(project, "no-such-ci-tool --envdir {envdir}")
    sha = project.repo.commit("v1")
    deploy(project, sha)
    target = project.target()
    assert watch([target], sha, Notifier(target)) == "inconclusive"
    assert not events(project, "marked_bad")
    detail = [e["detail"] for e in events(project, "ci")][-1]
    assert "could not start (not found)" in str(detail)


# -- one watcher per sha ----------------------------------------------------------


def counting_ci(project: Project, runs: Path, seconds: float = 3) -> None:
    """Local CI that appends a line to ``runs`` each time it starts, then passes."""
    use_local_ci(
        project,
        f"sh -c 'echo run >> {runs}; sleep {seconds}; grep -q v1 app/version.txt'",
    )


def wait_for(what: Callable[[], bool], timeout: float = 60) -> None:
    """Wait until ``what()`` is true."""
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow
def test_deploy_watch_then_a_watch_by_hand_run_ci_once(
    project: Project, tmp_path: Path
) -> None:
    runs = tmp_path / "ci-runs"
    counting_ci(project, runs)
    sha = project.repo.commit("v1")
    started = invoke("deploy.preprod", "--sha", sha, "--watch")
    assert started.returncode == 0 and "in the background" in started.stderr

    by_hand = invoke("watch", "--sha", sha)

    log = project.root / "preprod" / "logs" / f"watch-{sha}.log"
    verdict = f"preprod: CI success for {sha[:7]}"
    wait_for(lambda: verdict in log.read_text())
    said = by_hand.stdout + by_hand.stderr + log.read_text()
    assert by_hand.returncode == 0, said
    assert by_hand.stdout.strip() == verdict
    assert "cp:" not in said and "File exists" not in said, said
    assert runs.read_text().splitlines() == ["run"], said  # one CI run
    # One of the two watched; the other said who and followed it to the verdict.
    assert said.count("following it to its verdict") == 1, said
    assert re.search(r"is already watched by \S+ on \S+ \(pid \d+\) since 20", said)
    assert len(events(project, "validated")) == 1
    assert [e["outcome"] for e in events(project, "ci")] == ["watching", "success"]
    assert not (project.root / "preprod" / "watch" / f"{sha}.watcher").exists()


@pytest.mark.slow
def test_two_watches_of_one_sha_started_together_run_ci_once(
    project: Project, tmp_path: Path
) -> None:
    runs = tmp_path / "ci-runs"
    counting_ci(project, runs)
    sha = project.repo.commit("v1")
    deploy(project, sha)
    argv = [sys.executable, "-m", "cicd", "watch", "--sha", sha]
    env = {**os.environ, "CICD_CONFIG": str(project.config_path)}
    both = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=90) for p in both]

    said = "\n".join(out.decode() + err.decode() for out, err in outputs)
    assert [p.returncode for p in both] == [0, 0], said
    assert runs.read_text().splitlines() == ["run"], said
    assert said.count("following it to its verdict") == 1, said
    assert said.count(f"preprod: CI success for {sha[:7]}") == 2, said
    assert "cp:" not in said
    assert len(events(project, "validated")) == 1


def test_a_second_watcher_follows_takes_over_from_a_dead_one_or_gives_up(
    project: Project, tmp_path: Path
) -> None:
    runs = tmp_path / "ci-runs"
    counting_ci(project, runs, seconds=0)
    sha = project.repo.commit("v1")
    deploy(project, sha)
    target = project.target()
    claim = project.root / "preprod" / "watch" / f"{sha}.watcher"
    claim.mkdir(parents=True)
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    holder = {**lock_holder("watch", sha), "pid": first.pid}
    (claim / "details").write_text(json.dumps(holder, sort_keys=True))
    said: list[str] = []
    notifier = Notifier(target)
    notifier.say = said.append  # type: ignore[method-assign]
    now = [0.0]

    def clock() -> float:
        return now[0]

    # No verdict from a live watcher by the deadline: exit 3, naming it.
    def wait(seconds: float) -> None:
        now[0] += 10_000

    with pytest.raises(LockHeld, match=rf"is watched by .*\(pid {first.pid}\)"):
        watch([target], sha, notifier, sleep=wait, clock=clock)
    assert said == [
        f"preprod: {sha[:7]} is already watched by {describe(holder)}; "
        "following it to its verdict"
    ]
    assert not runs.exists()

    # The watcher followed dies: its claim is broken and the watch goes on here.
    def die(seconds: float) -> None:
        first.kill()
        first.wait()

    said.clear()
    assert watch([target], sha, notifier, sleep=die, clock=clock) == "success"
    assert said[1].startswith(f"preprod: the watcher of {sha[:7]} is gone (")
    assert "STALE" in said[1] and said[1].endswith("): watching it here")
    assert runs.read_text().splitlines() == ["run"]
    assert not claim.exists()  # given back
    # Decided: a later watch says so at once.
    said.clear()
    assert watch([target], sha, notifier) == "success"
    assert said == [
        f"preprod: CI verdict for {sha[:7]} already decided by the watcher: success"
    ]


def test_a_claim_is_taken_once_and_a_refusing_disk_says_where(
    project: Project, tmp_path: Path
) -> None:
    from cicd.host import lock

    target = project.target()
    path = str(tmp_path / "watch" / "abc.watcher")
    mine = lock_holder("watch", "abc")
    assert lock.claim(target, path, mine) is None
    # A live holder (this process) is named, never broken.
    assert lock.claim(target, path, {**mine, "why": "other"}) == mine
    lock.unclaim(target, path)
    assert not Path(path).exists()
    # Under a file, mkdir fails and nobody holds it: the OS's words and the root.
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(CicdError, match=r"cannot write under .*/file.*: File exists"):
        lock.claim(target, str(blocked / "abc.watcher"), mine)
