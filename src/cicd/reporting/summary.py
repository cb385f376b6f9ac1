"""GitHub Actions' job summary and ``::error::`` annotations, from a task's result.

A task computes its result once, as the ``--json`` document (see
:func:`cicd.tasks.documents.emit_json`); this module renders that same document as
Markdown for ``$GITHUB_STEP_SUMMARY`` (appended, as GitHub expects: several steps of
a job share the file) and a failure's one-line reason as a workflow command
(``::error title=...::reason``) when running in Actions. Without
``GITHUB_STEP_SUMMARY`` nothing is written; outside Actions nothing is annotated.

Everything that leaves here passes through :func:`cicd.core.redact.redact` first: a
summary is shown to everyone who can read the repository's runs.

CI's own summary job (``nox -s summary``) is rendered here too, from GitHub's
``toJSON(needs)`` and the tests job's JUnit reports (:func:`ci_summary`): on a push
to main a test skipped for a missing component fails it, so GitHub's CI runs every
tier that ``.ci/run`` runs. Standard library only: that job installs nothing but nox.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from xml.etree import ElementTree

from cicd.core.redact import redact

#: The variable naming the job's summary file (GitHub sets it for every step).
SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"
#: GitHub caps a step's summary at 1 MiB; ours stays far below, cells are clipped.
CELL = 300
OK, FAILED = "✅", "❌"
#: A skip reason saying a component is missing. The tiers' reasons start with
#: "needs" and say how to enable it (tools/testinfra's NEEDS_SSHD, NEEDS_DOCKER and
#: NEEDS_SWARM, "needs haproxy (apt-get install haproxy...)", "needs Chromium: ...",
#: "needs root ..."); pytest.importorskip's start with "could not import".
MISSING_COMPONENT = re.compile(r"(needs|could not import)\b", re.IGNORECASE)
#: The reasons listed in the summary (each with its count and first test).
SHOWN_REASONS = 20


def escape_data(text: str) -> str:
    """Escape a workflow command's message as GitHub's runner unescapes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (``:`` and ``,`` end it too)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(title: str, message: str) -> str:
    """The ``::error`` workflow command for ``message``, redacted and escaped."""
    return (
        f"::error title={escape_property(redact(title))}::"
        f"{escape_data(redact(message))}"
    )


def annotate(title: str, message: str, stream: TextIO | None = None) -> bool:
    """Print the ``::error`` annotation when running in GitHub Actions.

    Args:
        title: The annotation's title (the task and environment).
        message: The one-line reason.
        stream: Where to print (default stdout; the runner reads stderr too, which
            a ``--json`` task uses so that stdout stays one document).

    Returns:
        Whether it was printed.
    """
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return False
    print(annotation(title, message), file=stream or sys.stdout, flush=True)
    return True


def run_url() -> str:
    """The link to this CI/CD run, from the variables GitHub sets in every job."""
    server = os.environ.get("GITHUB_SERVER_URL", "").rstrip("/")
    repository = os.environ.get("GITHUB_REPOSITORY", "")
    run_id = os.environ.get("GITHUB_RUN_ID", "")
    if not (server and repository and run_id.isdigit()):
        return ""
    return f"{server}/{repository}/actions/runs/{run_id}"


def write(document: dict[str, Any], **extra: Any) -> bool:
    """Append the Markdown summary of a task's document to the job's summary.

    Args:
        document: The task's ``--json`` document (``task``, ``env``, ``ok``...).
        **extra: What the summary shows beside it: ``serving`` (host → sha),
            ``public_url``.

    Returns:
        Whether a summary was written (False without ``GITHUB_STEP_SUMMARY``).
    """
    path = os.environ.get(SUMMARY_VARIABLE, "")
    if not path:
        return False
    # A blank line first: the previous step's summary may end mid-paragraph.
    text = "\n" + redact(render(document, **extra))
    try:
        with open(path, "a", encoding="utf-8") as summary:
            summary.write(text)
    except OSError as error:
        # A summary is a courtesy: a full disk or a missing directory must not
        # fail the deploy it describes.
        print(
            f"warning: job summary not written ({error.strerror or error})",
            file=sys.stderr,
        )
        return False
    return True


def render(
    document: dict[str, Any],
    *,
    serving: dict[str, str | None] | None = None,
    public_url: str = "",
) -> str:
    """The Markdown of one task's result: before → after, what serves, timings...

    Args:
        document: The task's ``--json`` document.
        serving: What each host serves (asked of the runtime), when known.
        public_url: The environment's public URL, when configured.

    Returns:
        A Markdown section ending with a blank line.
    """
    ok = bool(document.get("ok", True))
    task = str(document.get("task", "cicd"))
    env = document.get("env") or "all environments"
    lines = [f"### {OK if ok else FAILED} `{task}` · {env}", ""]
    if document.get("error"):
        lines += [f"**Failed:** {_cell(document['error'])}", ""]
    lines += _change(document)
    hosts = list(document.get("hosts") or [])
    if hosts or serving:
        lines += _hosts(hosts, serving or {})
    lines += _timings(document)
    lines += _checks(document, hosts)
    links = [
        ("CI/CD run", run_url()),
        ("CI run", str(document.get("url") or "")),
        ("Public URL", public_url),
    ]
    shown = [f"[{name}]({url})" for name, url in links if url]
    if shown:
        lines += ["**Links:** " + " · ".join(shown), ""]
    return "\n".join(lines) + "\n"


def _short(sha: Any) -> str:
    return f"`{str(sha)[:7]}`" if sha else "—"


def _cell(value: Any) -> str:
    """One line for a table cell or a sentence: no newline, no ``|``, clipped."""
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= CELL else text[: CELL - 1] + "…"


def _change(document: dict[str, Any]) -> list[str]:
    """The before → after line of a deploy or rollback, the verdict of a watch."""
    sha = document.get("sha")
    lines: list[str] = []
    if "previous" in document or "abandoned" in document:
        before = document.get("previous", document.get("abandoned"))
        outcome = document.get("outcome")
        said = f" ({_cell(outcome)})" if outcome else ""
        lines += [f"**Release:** {_short(before)} → {_short(sha)}{said}", ""]
    elif "verdict" in document:
        verdict = document.get("verdict") or "watching in the background"
        lines += [f"**CI verdict for {_short(sha)}:** {_cell(verdict)}", ""]
        if document.get("detail"):
            lines += [f"> {_cell(document['detail'])}", ""]
    return lines


def _hosts(hosts: list[dict[str, Any]], serving: dict[str, str | None]) -> list[str]:
    """A table of the hosts: what each serves and how it went."""
    keys = [k for k in ("outcome", "status", "sha", "ok") if any(k in h for h in hosts)]
    head = ["host", "serves", *keys]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = [str(h.get("host", "")) for h in hosts] or list(serving)
    for name, host in zip(names, hosts or [{}] * len(names)):
        cells = [_cell(name or "local"), _short(serving.get(name))]
        for key in keys:
            value = host.get(key)
            cells.append(
                _short(value)
                if key == "sha"
                else (OK if value else FAILED) if key == "ok" else _cell(value or "")
            )
        rows.append("| " + " | ".join(cells) + " |")
    return [*rows, ""]


def _timings(document: dict[str, Any]) -> list[str]:
    """Total seconds and the duration of each step."""
    durations: dict[str, Any] = dict(document.get("durations") or {})
    total = document.get("seconds")
    if total is None and not durations:
        return []
    parts = [f"{_cell(step)} {float(took):.1f} s" for step, took in durations.items()]
    said = f"{float(total):.1f} s" if total is not None else ""
    return [f"**Timings:** {said}" + (f" ({', '.join(parts)})" if parts else ""), ""]


def _checks(document: dict[str, Any], hosts: Iterable[dict[str, Any]]) -> list[str]:
    """The checks: failed CI jobs, health details, a deploy's detail."""
    items = [f"- failed: {_cell(job)}" for job in document.get("failed") or []]
    for item in (document.get("preflight") or {}).get("items", []):
        mark = {True: "✓", False: "✗"}.get(item["ok"], "–")
        items.append(f"- pre-flight {item['item']}: {mark} {_cell(item['figure'])}")
    for host in hosts:
        if "detail" in host and host.get("detail"):
            word = "ok" if host.get("ok", True) else "FAIL"
            checks = f", {host['checks']} checks" if host.get("checks") else ""
            items.append(f"- {_cell(host.get('host'))}: {word}{checks} — ")
            items[-1] += _cell(host["detail"])
        for cert in host.get("certificates") or []:
            if cert.get("days") is not None:
                items.append(f"- certificate: {int(cert['days'])} days left")
    if document.get("detail") and "verdict" not in document:
        items.append(f"- {_cell(document['detail'])}")
    return ["**Checks:**", *items, ""] if items else []


@dataclass(frozen=True)
class Skip:
    """A skipped test of a JUnit report: its id and pytest's reason."""

    test: str
    reason: str

    @property
    def missing_component(self) -> bool:
        """Whether the reason says a component is missing (see MISSING_COMPONENT)."""
        return bool(MISSING_COMPONENT.match(self.reason.strip()))


def junit_skips(paths: Iterable[str | Path]) -> list[Skip]:
    """The skipped tests of pytest's JUnit XML reports (an xfail is not a skip).

    Raises:
        ValueError: A file is missing or is not XML (one line: the file, why).
    """
    found: list[Skip] = []
    for path in paths:
        try:
            cases = ElementTree.parse(path).iter("testcase")
        except (OSError, ElementTree.ParseError) as error:
            raise ValueError(f"{path}: not a JUnit XML report ({error})") from None
        for case in cases:
            skipped = case.find("skipped")
            if skipped is None or skipped.get("type") == "pytest.xfail":
                continue
            names = (case.get("classname", ""), case.get("name", ""))
            reason = skipped.get("message") or skipped.text or ""
            found.append(
                Skip("::".join(n for n in names if n), " ".join(reason.split()))
            )
    return found


@dataclass(frozen=True)
class CiSummary:
    """CI's summary: the Markdown for the run's page and why the run fails."""

    markdown: str
    failures: list[str]


def strict(event: str, ref: str) -> bool:
    """Whether a skip for a missing component fails the run: a push to main."""
    return event == "push" and ref == "refs/heads/main"


def ci_summary(
    needs: dict[str, Any],
    reports: list[str | Path],
    *,
    event: str = "",
    ref: str = "",
) -> CiSummary:
    """The summary job of CI: each job's result, then tests skipped for a component.

    Args:
        needs: GitHub's ``toJSON(needs)``: ``{job: {"result": ...}}``.
        reports: The tests job's JUnit XML reports (its ``test-results`` artifact).
        event: ``GITHUB_EVENT_NAME``.
        ref: ``GITHUB_REF``.

    Returns:
        The Markdown, and the failures: a job that did not succeed; on a push to
        main, tests skipped for a missing component (or no report to tell).
        On a pull request such skips are listed, and the run is not failed for them.

    Raises:
        ValueError: A report is not JUnit XML.
    """
    lines = ["| job | result |", "| --- | --- |"]
    lines += [
        f"| {job} | {info.get('result')} |" for job, info in sorted(needs.items())
    ]
    failed = sorted(
        job for job, info in needs.items() if info.get("result") != "success"
    )
    failures = [f"jobs not successful: {', '.join(failed)}"] if failed else []
    on_main = strict(event, ref)
    if not reports:
        lines += ["", "No test report: the skipped tests cannot be checked."]
        if on_main:
            failures.append("no test report to check for skipped tiers")
        return CiSummary("\n".join(lines) + "\n", failures)
    skips = junit_skips(reports)
    missing = [skip for skip in skips if skip.missing_component]
    lines += ["", *_skipped(missing, len(skips) - len(missing), on_main)]
    if missing and on_main:
        first = missing[0]
        failures.append(
            f"{_tests(len(missing))} skipped for a missing component, e.g. "
            f"{first.test}: {first.reason}"
        )
    return CiSummary("\n".join(lines) + "\n", failures)


def _skipped(missing: list[Skip], others: int, on_main: bool) -> list[str]:
    """The skipped tests grouped by reason: count, reason, first test."""
    if not missing:
        lines = ["**Every tier ran:** no test skipped for a missing component."]
    else:
        said = "fails the run on main" if on_main else "reported; not failed on a PR"
        lines = [
            f"**{_tests(len(missing))} skipped for a missing component** ({said}):"
        ]
        by_reason: dict[str, list[str]] = {}
        for skip in missing:
            by_reason.setdefault(skip.reason, []).append(skip.test)
        ranked = sorted(by_reason.items(), key=lambda item: -len(item[1]))
        lines += [""] + [
            f"- {len(tests)} × {_cell(reason)} (e.g. `{_cell(tests[0])}`)"
            for reason, tests in ranked[:SHOWN_REASONS]
        ]
        if len(ranked) > SHOWN_REASONS:
            lines.append(f"- … and {len(ranked) - SHOWN_REASONS} more reasons")
    if others:
        lines += [
            "",
            f"{_tests(others)} skipped for another reason (naming no component).",
        ]
    return lines


def _tests(count: int) -> str:
    """``1 test``, ``2 tests``."""
    return f"{count} test" + ("" if count == 1 else "s")
