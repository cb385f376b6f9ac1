"""CI's summary: job results, and the tests skipped for a missing component.

The JUnit reports here are written by hand in the shape pytest writes them
(``<skipped type="pytest.skip" message="REASON">FILE:LINE: REASON</skipped>``);
tests/workflows/test_ci_tiers.py runs real pytest and the summary step of ci.yml.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cicd.reporting.summary import (
    SHOWN_REASONS,
    Skip,
    ci_summary,
    junit_skips,
    strict,
)

SUCCESS = {"quality": {"result": "success"}, "tests": {"result": "success"}}
MAIN = {"event": "push", "ref": "refs/heads/main"}


def report(path: Path, *cases: str) -> Path:
    """A JUnit report of pytest's shape holding ``cases``."""
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
        + "".join(cases)
        + "</testsuite></testsuites>"
    )
    return path


def skipped(name: str, reason: str, kind: str = "pytest.skip") -> str:
    """One skipped test case, as pytest's junitxml writes it."""
    return (
        f'<testcase classname="tests.integration.test_x" name="{name}" time="0">'
        f'<skipped type="{kind}" message="{reason}">tests/x.py:3: {reason}</skipped>'
        "</testcase>"
    )


@pytest.mark.parametrize(
    ("reason", "missing"),
    [
        ("needs haproxy (apt-get install haproxy; CI's .ci/run installs it)", True),
        ("needs Chromium: apt-get install chromium", True),
        ("Needs root to mount a small tmpfs (CI's .ci/run runs as root)", True),
        ("could not import 'moto.server': No module named 'moto'", True),
        ("the bind mount did not become read-only (needs root)", False),
        ("a pyproject.toml of cicd sits above the temporary directory", False),
        ("uv is not here", False),
    ],
)
def test_a_reason_names_a_missing_component_when_it_says_what_is_needed(
    reason: str, missing: bool
) -> None:
    assert Skip("t", reason).missing_component is missing


def test_skips_are_read_from_junit_reports_and_an_xfail_is_not_one(
    tmp_path: Path,
) -> None:
    path = report(
        tmp_path / "cicd.xml",
        '<testcase classname="tests.unit.test_a" name="test_ok" time="0"/>',
        skipped("test_proxy", "needs haproxy"),
        skipped("test_bug", "needs a fix upstream", kind="pytest.xfail"),
        '<testcase classname="" name="tests/x.py" time="0">'
        "<skipped>could not import 'moto'</skipped></testcase>",
    )
    assert junit_skips([path]) == [
        Skip("tests.integration.test_x::test_proxy", "needs haproxy"),
        Skip("tests/x.py", "could not import 'moto'"),
    ]


@pytest.mark.parametrize("content", ["<testsuites><testsuite>", None])
def test_a_report_that_is_not_junit_xml_is_refused_in_one_line(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "cicd.xml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=r"cicd\.xml: not a JUnit XML report") as info:
        ci_summary(SUCCESS, [path], **MAIN)
    assert "\n" not in str(info.value)


def test_only_a_push_to_main_is_strict() -> None:
    assert strict("push", "refs/heads/main")
    assert not strict("pull_request", "refs/pull/7/merge")
    assert not strict("push", "refs/heads/feature")
    assert not strict("", "")


def test_skips_are_grouped_by_reason_most_frequent_first(tmp_path: Path) -> None:
    cases = [skipped(f"test_ssh_{i}", "needs OpenSSH sshd") for i in range(3)]
    cases += [skipped("test_proxy", "needs haproxy")]
    result = ci_summary(SUCCESS, [report(tmp_path / "r.xml", *cases)], **MAIN)
    listed = [line for line in result.markdown.splitlines() if " × " in line]
    assert listed == [
        "- 3 × needs OpenSSH sshd (e.g. `tests.integration.test_x::test_ssh_0`)",
        "- 1 × needs haproxy (e.g. `tests.integration.test_x::test_proxy`)",
    ]
    assert result.failures == [
        "4 tests skipped for a missing component, e.g. "
        "tests.integration.test_x::test_ssh_0: needs OpenSSH sshd"
    ]


def test_past_the_shown_reasons_the_rest_is_counted(tmp_path: Path) -> None:
    count = SHOWN_REASONS + 3
    cases = [skipped(f"test_{i}", f"needs tool{i}") for i in range(count)]
    pull = {"event": "pull_request", "ref": "refs/pull/1/merge"}
    result = ci_summary(SUCCESS, [report(tmp_path / "r.xml", *cases)], **pull)
    assert result.failures == []
    assert sum(" × needs tool" in line for line in result.markdown.splitlines()) == (
        SHOWN_REASONS
    )
    assert "- … and 3 more reasons" in result.markdown


def test_without_a_report_only_main_fails(tmp_path: Path) -> None:
    pull = ci_summary(SUCCESS, [], event="pull_request", ref="refs/pull/1/merge")
    assert pull.failures == []
    assert "No test report: the skipped tests cannot be checked." in pull.markdown
    assert ci_summary(SUCCESS, [], **MAIN).failures == [
        "no test report to check for skipped tiers"
    ]


def test_a_failed_job_fails_it_and_a_skip_naming_no_component_does_not(
    tmp_path: Path,
) -> None:
    needs = {**SUCCESS, "docs": {"result": "cancelled"}}
    path = report(tmp_path / "r.xml", skipped("test_mount", "cannot mount here"))
    result = ci_summary(needs, [path], **MAIN)
    assert result.failures == ["jobs not successful: docs"]
    assert result.markdown.splitlines() == [
        "| job | result |",
        "| --- | --- |",
        "| docs | cancelled |",
        "| quality | success |",
        "| tests | success |",
        "",
        "**Every tier ran:** no test skipped for a missing component.",
        "",
        "1 test skipped for another reason (naming no component).",
    ]
