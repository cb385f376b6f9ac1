"""The job summary and ``::error::`` annotations rendered from a task's document."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from cicd.reporting import summary
from cicd.core.errors import CicdError
from cicd.tasks.boundary import reported
from cicd.tasks.documents import document, finish

TOKEN = "ghs_summary_secret_0123456789abcdef"


@pytest.fixture
def actions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """GitHub Actions' variables for one step; the summary file's path."""
    path = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(path))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.test")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/mangetamain")
    monkeypatch.setenv("GITHUB_RUN_ID", "4242")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    return path


def test_workflow_command_escaping_follows_the_runner() -> None:
    assert summary.escape_data("50%\r\nnext") == "50%25%0D%0Anext"
    assert summary.escape_property("a:b,c%") == "a%3Ab%2Cc%25"
    line = summary.annotation("deploy.preprod preprod", "100% down\nat 10:00, again")
    assert line == (
        "::error title=deploy.preprod preprod::100%25 down%0Aat 10:00, again"
    )
    assert "\n" not in line


def test_an_annotation_only_in_actions_and_redacted(
    actions: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    assert summary.annotate("rollback", f"token {TOKEN} refused", out)
    assert out.getvalue() == "::error title=rollback::token *** refused\n"
    monkeypatch.setenv("GITHUB_ACTIONS", "false")
    assert not summary.annotate("rollback", "no", out)


def test_nothing_is_written_without_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    made = finish("rollback", [], json=False, env="preprod", ok=False, error="boom")
    assert made["ok"] is False
    assert not summary.write(made)
    assert capsys.readouterr().out == ""
    assert not list(tmp_path.iterdir())


def test_a_failure_is_summarised_and_annotated_escaped(
    actions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    actions.write_text("earlier step\n")
    with pytest.raises(Exit):
        with reported("", "preprod", summary="deploy.preprod"):
            raise CicdError(f"50% of hosts\nnot ready (token {TOKEN})")
    out = capsys.readouterr().out
    assert out.startswith("::error title=deploy.preprod preprod::50%25 of hosts")
    assert TOKEN not in out
    text = actions.read_text()
    assert text.startswith("earlier step\n")  # appended, never overwritten
    assert "### ❌ `deploy.preprod` · preprod" in text
    # One line: the error's newline is shown, not obeyed.
    assert "**Failed:** 50% of hosts\\nnot ready (token ***)" in text
    assert "[CI/CD run](https://github.test/acme/mangetamain/actions/runs/4242)" in text
    assert TOKEN not in text


def test_with_json_the_annotation_leaves_stdout_to_the_document(
    actions: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Exit):
        with reported("rollback", "preprod", summary="rollback"):
            raise CicdError("nothing to roll back to")
    captured = capsys.readouterr()
    assert captured.out.lstrip().startswith("{")
    assert "::error title=rollback preprod::nothing to roll back to" in captured.err


def test_the_sections_of_a_deploy() -> None:
    made = document(
        "deploy.preprod",
        [{"env": "preprod", "host": "vm|1", "outcome": "deployed"}],
        env="preprod",
        sha="b" * 40,
        previous="a" * 40,
        outcome="deployed",
        seconds=3.21,
        durations={"export": 1.0, "ready": 2.2},
        detail="",
        url="https://github.test/run/1",
    )
    text = summary.render(
        made, serving={"vm|1": "b" * 40}, public_url="https://preprod.test"
    )
    assert "**Release:** `aaaaaaa` → `bbbbbbb` (deployed)" in text
    assert "| vm\\|1 | `bbbbbbb` | deployed |" in text
    assert "**Timings:** 3.2 s (export 1.0 s, ready 2.2 s)" in text
    assert "[Public URL](https://preprod.test)" in text
    assert "[CI run](https://github.test/run/1)" in text


def test_a_monitor_and_a_verdict_render_their_checks() -> None:
    monitor = document(
        "health",
        [
            {
                "host": "local",
                "ok": False,
                "detail": "status 502",
                "checks": 3,
                "status": "down",
                "certificates": [{"days": 12.5}],
            }
        ],
        ok=False,
        error="unhealthy: preprod",
    )
    text = summary.render(monitor)
    assert "### ❌ `health` · all environments" in text
    assert "- local: FAIL, 3 checks — status 502" in text
    assert "- certificate: 12 days left" in text
    assert "| local | — | down | ❌ |" in text
    verdict = document(
        "watch.verdict",
        [],
        env="preprod",
        sha="c" * 40,
        verdict="failure",
        detail="run 8 failure",
        failed=["tests › nox -s tests"],
    )
    text = summary.render(verdict)
    assert "**CI verdict for `ccccccc`:** failure" in text
    assert "> run 8 failure" in text and "- failed: tests › nox -s tests" in text


def test_an_unwritable_summary_warns_and_never_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "missing" / "s.md"))
    assert not summary.write(document("rollback", [], env="preprod"))
    assert "job summary not written" in capsys.readouterr().err
    monkeypatch.delenv("GITHUB_RUN_ID", raising=False)
    assert summary.run_url() == ""
