"""Production's pre-flight, driven through ``invoke deploy.prod`` as a person types it.

Real git, a real supervisord serving the stand-in app (the real Streamlit app and a
real Chromium where the page smoke is involved), the real ledger: a sha preprod
does not serve is refused, an error line in preprod's log is quoted, a deploy
window that is not now refuses until ``--force --reason``, ``--plan --json`` shows
the items and changes nothing, and ``invoke report`` counts the refusals.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cicd.checks.browser import find_chromium
from cicd.core.window import DAYS
from cicd.pipeline.deploy import deploy_preprod
from cicd.reporting.notify import Notifier
from tests.conftest import REPO_ROOT, Project, env_ledger, git, invoke, validate

#: The conftest's configuration turns the pre-flight off for every other test.
OFF = "preflight = []  # the pre-flight has its own tests: test_preflight.py"


def configure(
    project: Project, items: list[str], prod: str = "", extra: str = ""
) -> None:
    """The conftest's configuration with these pre-flight items and prod keys."""
    project.write()
    text = project.config_path.read_text()
    assert OFF in text
    text = text.replace(OFF, f"preflight = {json.dumps(items)}")
    project.config_path.write_text(
        text + textwrap.dedent(prod) + textwrap.dedent(extra)
    )


def to_preprod(project: Project, sha: str) -> None:
    """Deploy ``sha`` to preprod and record CI's success for it."""
    target = project.target("preprod")
    deploy_preprod([target], sha, Notifier(target))
    validate(project, sha)


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The task's one ``error:`` line."""
    lines = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def prod_current(project: Project) -> Path:
    return project.root / "prod" / "current"


def not_today() -> str:
    """A whole day three days from now, in UTC: a window that is not now."""
    return DAYS[(datetime.now(UTC).weekday() + 3) % 7]


@pytest.mark.slow
def test_a_sha_preprod_does_not_serve_is_refused_and_counted_by_the_report(
    project: Project,
) -> None:
    configure(project, ["serving", "logs"])
    served = project.repo.commit("v1")
    to_preprod(project, served)
    other = project.repo.commit("v2")
    validate(project, other)  # validated, yet preprod never served it

    refused = invoke("deploy.prod", "--confirm", "DEPLOY", "--sha", other)

    assert refused.returncode == 2, refused.stderr
    said = error_line(refused)
    assert f"pre-flight failed for {other[:7]}" in said
    assert f"preprod serves {served[:7]}, not {other[:7]}" in said
    assert "nothing was changed" in said
    output = refused.stdout + refused.stderr
    assert "✗ serving" in output
    assert f"– logs     not read: preprod does not serve {other[:7]}" in output
    assert not prod_current(project).exists()
    events = env_ledger(project)
    assert [e["event"] for e in events] == ["refused"]
    assert events[0]["sha"] == other
    assert events[0]["detail"] == "pre-flight failed: serving"

    report = invoke("report", "--env", "prod", "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["hosts"][0]["refused_preflights"] == 1
    text = invoke("report", "--env", "prod")
    assert "Refused pre-flights     1" in text.stdout


@pytest.mark.slow
def test_the_plan_of_a_sha_nothing_serves_shows_the_refusal_and_changes_nothing(
    project: Project,
) -> None:
    configure(project, ["serving", "smoke"])
    sha = project.repo.commit("v1")
    validate(project, sha)  # CI passed, but preprod never ran it

    plan = invoke("deploy.prod", "--plan", "--json")

    assert plan.returncode == 0, plan.stderr
    document = json.loads(plan.stdout)
    serving, smoke = document["preflight"]["items"]
    assert serving["ok"] is False
    assert serving["figure"].startswith(f"preprod serves nothing, not {sha[:7]}")
    assert smoke["ok"] is None and smoke["figure"].startswith("not run: ")
    refused = document["hosts"][0]["refused"]
    assert refused.startswith(f"pre-flight failed for {sha[:7]} (serving: ")
    assert env_ledger(project) == [] and not prod_current(project).exists()


@pytest.mark.slow
def test_an_error_line_in_preprods_log_since_the_sha_started_is_quoted(
    project: Project,
) -> None:
    configure(project, ["serving", "logs"])
    log = Path(project.target("preprod").paths.app_log)
    old = project.repo.commit("v0")
    to_preprod(project, old)
    with log.open("a") as written:  # the previous release's error: not counted
        written.write("ERROR mangetamain: v0 could not read its data\n")
    sha = project.repo.commit("v1")
    to_preprod(project, sha)

    plan = invoke("deploy.prod", "--plan", "--json")
    assert plan.returncode == 0, plan.stderr
    logs = json.loads(plan.stdout)["preflight"]["items"][1]
    assert logs["item"] == "logs" and logs["ok"] is True, logs
    assert "none matches smoke.log_errors" in logs["figure"]

    with log.open("a") as written:  # as the app would print it
        written.write("Traceback (most recent call last):\n")
        written.write('  File "views.py", line 12, in render\n')
    refused = invoke("deploy.prod", "--confirm", "DEPLOY")

    assert refused.returncode == 2, refused.stderr
    said = error_line(refused)
    assert f"since {sha[:7]} started" in said
    assert "'Traceback (most recent call last):'" in said
    assert "v0 could not read" not in said
    assert not prod_current(project).exists()
    assert env_ledger(project)[-1]["detail"] == "pre-flight failed: logs"


@pytest.mark.slow
def test_outside_the_window_refuses_and_force_with_a_reason_deploys_recorded(
    project: Project,
) -> None:
    day = not_today()
    configure(project, ["window"], prod=f'window = "{day} 00:00-24:00 UTC"\n')
    sha = project.repo.commit("v1")
    to_preprod(project, sha)

    refused = invoke("deploy.prod", "--confirm", "DEPLOY")

    assert refused.returncode == 2, refused.stderr
    said = error_line(refused)
    assert f"window: {DAYS[datetime.now(UTC).weekday()]} " in said
    assert f"outside {day} 00:00-24:00 UTC (opens {day} " in said
    assert not prod_current(project).exists()
    assert env_ledger(project)[-1]["detail"] == "pre-flight failed: window"

    without_reason = invoke("deploy.prod", "--confirm", "DEPLOY", "--force")
    assert without_reason.returncode == 2
    assert "--force needs --reason" in error_line(without_reason)

    summary = project.root.parent / "summary.md"
    forced = invoke(
        "deploy.prod",
        "--confirm",
        "DEPLOY",
        "--force",
        "--reason",
        "the data fix cannot wait",
        "--json",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )

    assert forced.returncode == 0, forced.stderr
    document = json.loads(forced.stdout)
    assert document["outcome"] == "deployed" and document["sha"] == sha
    assert document["preflight"]["failed"] == ["window"]
    assert "✗ window" in forced.stderr + forced.stdout
    assert f"- pre-flight window: ✗ {DAYS[datetime.now(UTC).weekday()]} " in (
        summary.read_text()
    )
    assert prod_current(project).resolve().name == sha
    started = [e for e in env_ledger(project) if e["event"] == "deploy"][0]
    assert started["detail"] == (
        "forced: pre-flight: window; reason: the data fix cannot wait"
    )


@pytest.mark.slow
def test_plan_json_shows_every_item_and_changes_nothing_then_the_run_checks_a_restore(
    project: Project,
) -> None:
    configure(project, ["serving", "logs", "window"])
    first = project.repo.commit("v1")
    to_preprod(project, first)
    assert invoke("deploy.prod", "--confirm", "DEPLOY").returncode == 0
    shared = project.root / "prod" / "shared"
    shared.mkdir(exist_ok=True)
    (shared / "ratings.csv").write_text("recipe,rating\n1,5\n")
    sha = project.repo.commit("v2")
    to_preprod(project, sha)
    assert invoke("deploy.prod", "--confirm", "DEPLOY").returncode == 0  # a backup
    configure(project, ["serving", "logs", "backup", "window"])
    newer = project.repo.commit("v3")
    to_preprod(project, newer)
    before = {
        env: (project.root / env / "ledger.jsonl").read_bytes()
        for env in ("preprod", "prod")
    }

    plan = invoke("deploy.prod", "--plan", "--json")

    assert plan.returncode == 0, plan.stderr
    document = json.loads(plan.stdout)
    assert document["plan"] is True and document["sha"] == newer
    preflight = document["preflight"]
    assert preflight["ok"] is True and preflight["plan"] is True
    items = {i["item"]: i for i in preflight["items"]}
    assert list(items) == ["serving", "logs", "backup", "window"]
    assert f"preprod serves {newer[:7]}" in items["serving"]["figure"]
    assert "restore never: the deploy tries one first" in items["backup"]["figure"]
    assert items["window"]["figure"] == 'none set (window = ""): any time'
    for env, content in before.items():
        assert (project.root / env / "ledger.jsonl").read_bytes() == content
    assert prod_current(project).resolve().name == sha
    text = invoke("deploy.prod", "--plan")
    assert text.stdout.startswith(f"pre-flight of {newer[:7]} (")
    assert "  ✓ backup " in text.stdout
    assert text.stdout.rstrip().endswith("nothing was changed (--plan)")

    ran = invoke("deploy.prod", "--confirm", "DEPLOY", "--json")

    assert ran.returncode == 0, ran.stderr
    backup = json.loads(ran.stdout)["preflight"]["items"][2]
    assert backup["ok"] is True, backup
    assert "read back (" in backup["figure"]
    assert (
        "restore tried now (" in backup["figure"]
        and "the last was never" in backup["figure"]
    )
    restores = [e for e in env_ledger(project) if e["event"] == "restore"]
    assert len(restores) == 1 and restores[0]["outcome"] == "ok"


@pytest.mark.slow
def test_preprod_serving_the_sha_but_failing_its_health_now_is_refused(
    project: Project,
) -> None:
    configure(project, ["serving", "logs"])
    sha = project.repo.commit("v1")
    to_preprod(project, sha)
    # Preprod's health as it is asked now: its page no longer says what it must.
    configure(
        project,
        ["serving", "logs"],
        extra="""
        [tool.cicd.env.preprod.health]
        checks = [{ path = "/", body_contains = "v2 ok" }]
        """,
    )

    refused = invoke("deploy.prod", "--confirm", "DEPLOY")

    assert refused.returncode == 2, refused.stderr
    said = error_line(refused)
    assert f"preprod serves {sha[:7]} (deployed " in said
    assert "health fails now: " in said and "body does not contain 'v2 ok'" in said
    assert not prod_current(project).exists()


@pytest.mark.slow
def test_a_truncated_backup_refuses_and_a_recent_restore_check_is_not_repeated(
    project: Project,
) -> None:
    configure(project, ["backup"])
    shared = project.root / "prod" / "shared"
    for version in ("v1", "v2", "v3"):
        to_preprod(project, project.repo.commit(version))
        ran = invoke("deploy.prod", "--confirm", "DEPLOY", "--json")
        assert ran.returncode == 0, ran.stderr
        figure = json.loads(ran.stdout)["preflight"]["items"][0]["figure"]
        if version == "v1":  # nothing to back up or restore yet
            assert figure.startswith("no backup yet: the deploy takes the first")
            shared.mkdir(exist_ok=True)
            (shared / "ratings.csv").write_text("recipe,rating\n1,5\n")
        elif version == "v2":
            assert "restore tried now" in figure, figure
        else:  # checked minutes ago: within backup.restore_check
            assert figure.endswith("restore checked 0.0 days ago (within 7 days)")
    plan = json.loads(invoke("deploy.prod", "--plan", "--json").stdout)
    assert plan["preflight"]["items"][0]["figure"].endswith(
        "restore checked 0.0 days ago (within 7 days)"
    )
    newest = sorted((project.root / "prod" / "backups").iterdir())[-1]
    newest.write_bytes(newest.read_bytes()[:-40])  # cut short, as a full disk does
    to_preprod(project, project.repo.commit("v4"))

    refused = invoke("deploy.prod", "--confirm", "DEPLOY")

    assert refused.returncode == 2, refused.stderr
    said = error_line(refused)
    assert f"backup: {newest.name} " in said, said
    assert env_ledger(project)[-1]["detail"] == "pre-flight failed: backup"
    plan = json.loads(invoke("deploy.prod", "--plan", "--json").stdout)
    item = plan["preflight"]["items"][0]
    assert item["ok"] is False and "verify " in item["figure"]


# -- the real app, in a real browser ------------------------------------------------

STREAMLIT = (
    "{python} -m streamlit run src/mangetamain/app.py --server.port {port}"
    " --server.address 127.0.0.1 --server.headless true"
    " --browser.gatherUsageStats false"
)
REAL_APP = f"""
[tool.cicd.env.preprod.runtime]
command = "{STREAMLIT}"
[tool.cicd.env.prod.runtime]
command = "{STREAMLIT}"
[tool.cicd.smoke]
on_deploy = false
[tool.cicd.health]
deadline = 60
interval = 0.5
checks = [
    {{ path = "/_stcore/health", body_contains = "ok" }},
    {{ path = "/", rendered_contains = "Mangetamain", timeout = 30 }},
]
"""


def real_app(project: Project) -> tuple[str, str]:
    """The real app in the source, then a commit whose Seasonality page raises.

    The configuration runs it under Streamlit in both environments, with the
    pre-flight's serving, smoke and logs items. Returns (good, bad).
    """
    app = project.repo.path / "app"
    shutil.copytree(
        REPO_ROOT / "10_preprod", app, ignore=shutil.ignore_patterns("tests", ".*")
    )
    git(project.repo.path, "add", "-A")
    git(project.repo.path, "commit", "-qm", "the real app")
    good = git(project.repo.path, "rev-parse", "HEAD")
    views = app / "src" / "mangetamain" / "views.py"
    views.write_text(
        views.read_text().replace(
            "def render_seasonality(get: Getter) -> None:\n",
            "def render_seasonality(get: Getter) -> None:\n"
            "    raise RuntimeError('seasonality is broken')\n",
        )
    )
    git(project.repo.path, "commit", "-qam", "Seasonality raises when chosen")
    bad = git(project.repo.path, "rev-parse", "HEAD")
    project.write()
    text = project.config_path.read_text()
    # The top-level [tool.cicd.health] of the conftest is replaced by the app's.
    health, proxy = text.index("[tool.cicd.health]"), text.index("[tool.cicd.proxy]")
    text = text[:health] + text[proxy:]
    project.config_path.write_text(
        text.replace(OFF, 'preflight = ["serving", "smoke", "logs"]') + REAL_APP
    )
    return good, bad


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="needs Chromium: apt install it")
def test_a_page_that_raises_on_preprod_is_refused_and_the_fixed_one_deploys(
    project: Project,
) -> None:
    good, bad = real_app(project)
    to_preprod(project, bad)  # "/" renders: only choosing Seasonality raises

    refused = invoke("deploy.prod", "--confirm", "DEPLOY", "--json", timeout=300)

    assert refused.returncode == 2, refused.stderr
    document = json.loads(refused.stdout)
    assert document["ok"] is False and "pre-flight failed" in document["error"]
    smoke = document["preflight"]["items"][1]
    pages = {p["page"]: p for p in smoke["pages"]}
    assert smoke["ok"] is False and set(pages) == {
        "Ratings",
        "Seasonality",
        "Weekend effect",
    }
    assert pages["Ratings"]["ok"] and pages["Weekend effect"]["ok"], pages
    assert not pages["Seasonality"]["ok"]
    assert "seasonality is broken" in pages["Seasonality"]["exception"]
    assert not prod_current(project).exists()

    to_preprod(project, good)
    deployed = invoke("deploy.prod", "--confirm", "DEPLOY", "--json", timeout=300)

    assert deployed.returncode == 0, deployed.stderr
    preflight = json.loads(deployed.stdout)["preflight"]
    assert preflight["ok"] is True, preflight
    smoke = preflight["items"][1]
    assert smoke["figure"].startswith("3/3 pages ok, slowest ")
    assert all(0 < p["seconds"] <= 10 for p in smoke["pages"])
    assert prod_current(project).resolve().name == good
