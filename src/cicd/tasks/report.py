"""The delivery dashboard: ``invoke report``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.tasks import task

from cicd.core.errors import CicdError, UsageError, clip
from cicd.tasks.boundary import reported
from cicd.tasks.documents import emit_json, host_row
from cicd.tasks.hosts import env_names, targets

if TYPE_CHECKING:
    from cicd.host.target import Target
    from cicd.reporting.dora import EnvReport


@task(
    help={
        "env": "One environment (default: all).",
        "html": "Also write the dashboard as one self-contained HTML page here.",
        "json": "Print the measures as JSON on stdout.",
        "days": "The window, in days back from now (default: 30).",
        "publish": "Also push the --html page to the gh-pages branch of "
        "$GITHUB_REPOSITORY as report/index.html (with $GITHUB_TOKEN).",
    }
)
def report(
    c: Any,
    env: str = "",
    html: str = "",
    json: bool = False,
    days: str = "30",
    publish: bool = False,
) -> None:
    """Show the four DORA measures and availability per day, per environment.

    Deployment frequency, lead time for changes (commit → serving), change failure
    rate (CI-failed, rolled-back or not-ready deploys / deploys), time to restore,
    and availability per day from the hourly monitor's checks (monitor.jsonl).
    Computed from what each environment records on its host; nothing is changed.
    With --html PATH the same figures, a timeline of deploys and rollbacks and the
    charts go to one HTML page that needs no network (inline SVG, no script);
    --publish puts it beside the documentation (the hourly health check does).
    """
    with reported("report" if json else "", env or None):
        window = _window(days)
        page = _page_path(html)
        repository = _repository_to_publish_to(publish, page)
        pairs = _gather(c, [env] if env else env_names(), window)
        reports = [found for _, found in pairs]
        written = _write_page(reports, html) if page is not None else None
        published = _publish_page(written, repository) if publish and written else ""
        if json:
            emit_json(
                "report",
                [host_row(t, **found.as_dict()) for t, found in pairs],
                env=env or None,
                days=window,
                html=str(written) if written else None,
                published=published or None,
            )
        else:
            _print_text(reports, written, published)


def _window(days: str) -> int:
    """``--days`` as a whole number of days, at least 1.

    Raises:
        UsageError: It is not one.
    """
    window = int(days) if days.strip().isdigit() else 0
    if window < 1:
        raise UsageError(
            "--days must be a whole number of days, at least 1, "
            f"got {clip(days, 40)!r}"
        )
    return window


def _page_path(html: str) -> Path | None:
    """Where ``--html`` writes the page; None without it.

    Raises:
        UsageError: It names a directory.
    """
    page = Path(html) if html else None
    if page is not None and page.is_dir():
        raise UsageError(f"--html names a directory, not a file: {html}")
    return page


def _repository_to_publish_to(publish: bool, page: Path | None) -> str:
    """``$GITHUB_REPOSITORY`` (``OWNER/NAME``), which ``--publish`` needs with --html.

    Raises:
        UsageError: ``--publish`` without ``--html`` or without the repository.
    """
    repository = os.environ.get("GITHUB_REPOSITORY", "").strip()
    if publish and (page is None or not repository):
        raise UsageError(
            "--publish needs --html PATH and GITHUB_REPOSITORY=OWNER/NAME "
            "(set in GitHub Actions)"
        )
    return repository


def _gather(c: Any, names: list[str], days: int) -> list[tuple[Target, EnvReport]]:
    """Each environment's report, read from its first host (all record the same)."""
    from cicd.reporting.report import gather

    pairs = []
    for name in names:
        first = targets(c, name)[0]
        pairs.append((first, gather(first, days=days)))
    return pairs


def _write_page(reports: list[EnvReport], html: str) -> Path:
    """Write the HTML page where ``--html`` says; its absolute path.

    Raises:
        UsageError: It cannot be written (the message says why).
    """
    from cicd.reporting.page import write_html

    try:
        return write_html(reports, Path(html))
    except OSError as error:
        raise UsageError(
            f"cannot write --html {html}: {error.strerror or error}"
        ) from None


def _publish_page(page: Path, repository: str) -> str:
    """Push the page to the repository's ``gh-pages``; what was done, in words.

    Raises:
        CicdError: It could not be pushed.
    """
    from cicd.reporting.publish import PublishFailed, publish

    try:
        return publish(
            page,
            repository=repository,
            token=os.environ.get("GITHUB_TOKEN", "").strip(),
            server=os.environ.get("GITHUB_SERVER_URL", "https://github.com"),
        )
    except PublishFailed as error:
        raise CicdError(str(error)) from None


def _print_text(reports: list[EnvReport], written: Path | None, published: str) -> None:
    """The measures as a table, then where the page went."""
    from cicd.reporting.report import format_text

    print(format_text(reports))
    if written:
        print(f"\ndashboard written to {written}")
    if published:
        print(published)
