"""The page smoke on a new release, before users get it.

Readiness checks ask one URL; a Streamlit page that raises only when it is chosen
in the sidebar passes them. So a deploy opens every page of the new release in a
browser (:func:`cicd.checks.page_smoke.smoke_pages`): behind haproxy on the new
slot before the switch (a page that fails means the release is never routed to),
in place right after the restart (the previous release is then put back). Rollbacks
and repairs go back to a release that was smoked when it was deployed, and skip it.

It runs where the pipeline runs: over SSH the slot's address is the host's
loopback, out of this machine's reach, so it is skipped there, as it is without
Chromium or with no page configured (``smoke.pages``, ``smoke.on_deploy``); the
production pre-flight is where a missing browser counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cicd.checks.browser import find_chromium
from cicd.checks.page_smoke import smoke_pages
from cicd.core.messages import short

if TYPE_CHECKING:
    from cicd.core.progress import Timeline
    from cicd.core.settings import EnvSettings
    from cicd.host.target import Target


class PageSmokeFailed(Exception):
    """A page of the new release failed its smoke; the message names it."""


def smoke_planned(settings: EnvSettings, remote: bool) -> bool:
    """Whether a deploy here smokes the new release's pages (see the module)."""
    smoke = settings.smoke
    return (
        smoke.on_deploy
        and bool(smoke.pages)
        and not remote
        and find_chromium() is not None
    )


def smoke_release(target: Target, sha: str, base_url: str, timeline: Timeline) -> None:
    """Open every page of ``sha`` at ``base_url``; say each page's load time.

    Raises:
        PageSmokeFailed: A page raised, showed the wrong text or loaded too slowly
            (the first such page, its reason and its exception, in one line).
    """
    smoke = target.settings.smoke
    label = f"smoke the pages of {short(sha)} in a browser"
    with timeline.step("smoke", label):
        results = smoke_pages(base_url, smoke.pages, max_load=smoke.max_load)
        for result in results:
            timeline.say(f"  {result.line()}")
        failed = [result for result in results if not result.ok]
        if failed:
            first = failed[0]
            raised = f" ({first.exception})" if first.exception else ""
            raise PageSmokeFailed(
                f"page smoke: {first.page}: {first.reason}{raised}"
                + (
                    f"; {len(failed) - 1} more page(s) failed"
                    if len(failed) > 1
                    else ""
                )
            )
    timeline.did("smoke")
