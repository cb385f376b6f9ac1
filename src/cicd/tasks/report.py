"""The delivery dashboard: ``invoke report``."""

from __future__ import annotations

from typing import Any

from invoke.tasks import task

from cicd.tasks.boundary import reported
from cicd.tasks.documents import emit_json, host_row
from cicd.tasks.hosts import env_names, targets


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
        import os
        from pathlib import Path

        from cicd.core.errors import CicdError, UsageError, clip
        from cicd.reporting.report import format_text, gather, write_html

        window = int(days) if days.strip().isdigit() else 0
        if window < 1:
            raise UsageError(
                "--days must be a whole number of days, at least 1, "
                f"got {clip(days, 40)!r}"
            )
        page = Path(html) if html else None
        if page is not None and page.is_dir():
            raise UsageError(f"--html names a directory, not a file: {html}")
        repository = os.environ.get("GITHUB_REPOSITORY", "").strip()
        if publish and (page is None or not repository):
            raise UsageError(
                "--publish needs --html PATH and GITHUB_REPOSITORY=OWNER/NAME "
                "(set in GitHub Actions)"
            )
        names = [env] if env else env_names()
        pairs = []
        for name in names:
            first = targets(c, name)[0]
            pairs.append((first, gather(first, days=window)))
        reports = [found for _, found in pairs]
        written = None
        if page is not None:
            try:
                written = write_html(reports, page)
            except OSError as error:
                raise UsageError(
                    f"cannot write --html {html}: {error.strerror or error}"
                ) from None
        published = None
        if publish and written:
            from cicd.reporting.report import PublishFailed, publish as push_page

            try:
                published = push_page(
                    written,
                    repository=repository,
                    token=os.environ.get("GITHUB_TOKEN", "").strip(),
                    server=os.environ.get("GITHUB_SERVER_URL", "https://github.com"),
                )
            except PublishFailed as error:
                raise CicdError(str(error)) from None
        if json:
            rows = [host_row(t, **found.as_dict()) for t, found in pairs]
            emit_json(
                "report",
                rows,
                env=env or None,
                days=window,
                html=str(written) if written else None,
                published=published,
            )
            return
        print(format_text(reports))
        if written:
            print(f"\ndashboard written to {written}")
        if published:
            print(published)
