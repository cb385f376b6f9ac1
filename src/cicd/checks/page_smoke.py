"""The browser smoke of every page: each page a user can open, opened as a user would.

One headless Chromium (:class:`cicd.checks.browser.Browser`, the DevTools protocol
on a pipe) loads the app once, reads the navigation the app itself shows — the
options of the sidebar's radio and Streamlit's multipage links
(``[data-testid="stSidebarNav"] a``) — and visits every page: a radio option is
clicked, a link or a configured path is loaded. Each page is then watched until
Streamlit has finished running its script (the ``data-test-script-state`` of
``stApp`` back to ``notRunning`` after a run that began with the choice), and
judged by :func:`cicd.core.smoke.judge_page`: its text shown in the main area, no
exception box, its load time within ``max_load``.

Why watch the script's state, not only the text: during a rerun Streamlit keeps the
previous page's elements on screen (greyed, "stale") until the new ones replace
them, and the sidebar holds every page's label, so text alone could pass a page
that has not loaded or that raises a moment later.

Why the hand-written DevTools pipe and not Playwright (issue 20, item 5): measured
here on the real app with the same page-side scripts and the same Chromium
(``nox -s bench -- smoke`` measures both when Playwright is installed), the
three-page smoke took 6.05 s against Playwright 1.65's 6.21 s (median of 3), and
a browser started, a tab opened and closed 1.02 s against 1.73 s (median of 5),
Playwright's Node.js driver starting besides Chromium; the pipe needs no package,
Playwright 167 MB. The job is a few DevTools commands (navigate, evaluate), so the
library would save little code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cicd.checks.browser import (
    Browser,
    BrowserGone,
    DevTools,
    ProtocolError,
    find_chromium,
)
from cicd.core.smoke import (
    NO_CHROMIUM,
    PageResult,
    SmokePage,
    browser_failure,
    judge_page,
    not_found,
    plan_pages,
)

#: Seconds between two looks at a page while it loads: the load time's resolution.
LOOK_EVERY = 0.05
#: Seconds a page must stay unchanged once its script ended to count as loaded.
#: Measured on the app: elements keep arriving on screen up to 0.4 s after
#: Streamlit says the run ended (the sidebar, charts, tables render after it).
QUIET = 0.5
#: A desktop window: narrower, Streamlit folds its sidebar away.
WINDOW = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}
#: Counts the runs of the app's script that ended (``data-test-script-state`` left
#: ``running``), from the document's start or the click on, so that a run which
#: begins and ends between two looks is not missed.
WATCH_RUNS = (
    "if (!window.__cicdWatch) { window.__cicdEnded = 0;"
    " window.__cicdWatch = new MutationObserver((records) => {"
    " for (const record of records) { if (record.oldValue === 'running')"
    " { window.__cicdEnded += 1; } } });"
    " window.__cicdWatch.observe(document, {subtree: true, attributes: true,"
    " attributeOldValue: true, attributeFilter: ['data-test-script-state']}); }"
)
#: What the page shows: script state, exception box, main text, navigation.
LOOK = """(() => {
  const one = (selector, root) => (root || document).querySelector(selector);
  const app = one('[data-testid="stApp"]');
  const main = one('[data-testid="stMain"]') || document.body;
  const box = one('[data-testid="stException"], .stException');
  const side = one('[data-testid="stSidebar"]');
  const radio = side && one('[data-testid="stRadio"]', side);
  const labels = radio ? [...radio.querySelectorAll('[role="radiogroup"] label')] : [];
  return {
    left: !!window.__cicdLeft,
    state: app ? app.getAttribute('data-test-script-state') : null,
    ended: window.__cicdEnded || 0,
    exception: box ? box.innerText.slice(0, 2000) : null,
    text: main ? main.innerText : '',
    size: main ? main.getElementsByTagName('*').length : 0,
    options: labels.map((label) => [
      label.innerText.trim(), !!(one('input', label) || {}).checked]),
    links: [...document.querySelectorAll('[data-testid="stSidebarNav"] a')].map(
      (a) => [a.innerText.trim(), a.href, a.getAttribute('aria-current') === 'page']),
  };
})()"""
#: Clicks the sidebar radio's option whose label is the argument; false if none.
CHOOSE = """((wanted) => {
  const side = document.querySelector('[data-testid="stSidebar"]');
  const radio = side && side.querySelector('[data-testid="stRadio"]');
  const labels = radio ? radio.querySelectorAll('[role="radiogroup"] label') : [];
  for (const label of labels) {
    if (label.innerText.trim() === wanted) {
      %s
      window.__cicdEnded = 0;
      label.click();
      return true;
    }
  }
  return false;
})(%%s)""" % WATCH_RUNS


@dataclass(frozen=True)
class Look:
    """One look at the page: Streamlit's script state and what it shows.

    ``ended`` counts the script runs that ended since the document's start or
    the last click.

    ``left`` marks the document a navigation is leaving: until the new one
    replaces it, what it shows belongs to the previous page.
    """

    left: bool
    state: str | None
    ended: int
    exception: str | None
    text: str
    size: int
    options: dict[str, bool]  # radio option label -> checked
    links: dict[str, tuple[str, bool]]  # link label -> (href, current)

    @classmethod
    def of(cls, value: dict[str, Any]) -> Look:
        """The look from what :data:`LOOK` returned."""
        return cls(
            left=bool(value.get("left")),
            state=value.get("state"),
            ended=int(value.get("ended") or 0),
            exception=value.get("exception"),
            text=str(value.get("text") or ""),
            size=int(value.get("size") or 0),
            options={str(label): bool(on) for label, on in value.get("options", [])},
            links={
                str(label): (str(href), bool(on))
                for label, href, on in value.get("links", [])
            },
        )

    @property
    def screen(self) -> tuple[object, ...]:
        """What a user sees, to tell when it stops changing."""
        options, links = tuple(self.options.items()), tuple(self.links.items())
        return (self.text, self.size, self.exception, options, links)

    @property
    def labels(self) -> list[str]:
        """The pages the app lists: its multipage links, then its radio options."""
        return [*self.links, *self.options]

    def current(self, label: str) -> bool:
        """Whether ``label`` is the page shown now (checked option, current link)."""
        return self.options.get(label, False) or self.links.get(label, ("", False))[1]


@dataclass
class Tab:
    """One browser tab on the app, driven over the DevTools pipe.

    Attributes:
        tools: The browser's DevTools connection.
        timeout: Seconds each page may take before it is judged "still loading".
        session: The tab's DevTools session.
        url: The URL last loaded in the tab.
        last: The last look at it.
        unclaimed: That load's result, until a page claims it as its own.
    """

    tools: DevTools
    timeout: float
    session: str = ""
    url: str = ""
    last: Look | None = None
    unclaimed: tuple[Look, bool, float] | None = field(default=None, repr=False)

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """One DevTools command in this tab, with the page's timeout."""
        deadline = time.monotonic() + self.timeout
        return self.tools.call(method, params, session=self.session, deadline=deadline)

    def open(self) -> None:
        """Open the tab, a desktop-sized window."""
        deadline = time.monotonic() + self.timeout
        target = self.tools.call(
            "Target.createTarget", {"url": "about:blank"}, deadline=deadline
        )
        attached = self.tools.call(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            deadline=deadline,
        )
        self.session = str(attached["sessionId"])
        self.call("Emulation.setDeviceMetricsOverride", WINDOW)
        self.call("Page.enable", {})
        self.call("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH_RUNS})

    def look(self) -> Look:
        """What the page shows now (nothing yet while a navigation replaces it)."""
        try:
            answer = self.call(
                "Runtime.evaluate", {"expression": LOOK, "returnByValue": True}
            )
        except ProtocolError:  # e.g. the old document's context just went away
            answer = {}
        self.last = Look.of(answer.get("result", {}).get("value") or {})
        return self.last

    def load(self, url: str) -> tuple[Look, bool, float]:
        """Load ``url`` and wait until the app has run its script once.

        Returns:
            The last look, whether the script finished, and the seconds taken.

        Raises:
            PageDidNotLoad: The browser could not load the URL at all.
        """
        self.call("Runtime.evaluate", {"expression": "window.__cicdLeft = true"})
        started = time.monotonic()
        answer = self.call("Page.navigate", {"url": url})
        if error := answer.get("errorText"):
            raise PageDidNotLoad(f"{url} did not load: {error}")
        self.url = url
        self.unclaimed = self._wait(started, fresh=True)
        return self.unclaimed

    def choose(self, label: str) -> tuple[Look, bool, float]:
        """Click the sidebar option ``label`` and wait for the run it starts."""
        self.unclaimed = None
        started = time.monotonic()
        answer = self.call(
            "Runtime.evaluate",
            {"expression": CHOOSE % json.dumps(label), "returnByValue": True},
        )
        if not answer.get("result", {}).get("value"):
            raise PageDidNotLoad(f"the sidebar option {label!r} could not be clicked")
        return self._wait(started, fresh=False)

    def claim(self) -> tuple[Look, bool, float] | None:
        """The last load's result, once: the next page reusing it loads again."""
        claimed, self.unclaimed = self.unclaimed, None
        return claimed

    def _wait(self, started: float, *, fresh: bool) -> tuple[Look, bool, float]:
        """Look until the page is loaded: its script run ended, its screen still.

        Returns:
            The last look, whether the page loaded, and its load time: up to the
            first look that showed the final screen (the quiet time not counted).
        """
        # Streamlit may say "notRunning" before its first run has begun, and
        # still does right after a click: a run must have ended since, in the
        # new document (not the one a navigation is leaving).
        still: tuple[object, ...] | None = None
        since = 0.0
        while True:
            seen = self.look()
            seconds = time.monotonic() - started
            ran = seen.ended > 0 and not (fresh and seen.left)
            screen = seen.screen if seen.state == "notRunning" and ran else None
            if screen is None or screen != still:
                still, since = screen, seconds
            elif seconds - since >= QUIET:
                return seen, True, since
            if seconds + LOOK_EVERY >= self.timeout:
                return seen, False, seconds
            time.sleep(LOOK_EVERY)


class PageDidNotLoad(Exception):
    """The browser could not reach a page at all (refused, unknown host...)."""


def smoke_pages(
    base_url: str,
    pages: Sequence[SmokePage],
    *,
    max_load: float,
    timeout: float = 30.0,
) -> list[PageResult]:
    """Visit every page of the app at ``base_url`` in one browser; judge each.

    Args:
        base_url: The app's URL, e.g. ``http://127.0.0.1:8501/``.
        pages: The configured pages (``smoke.pages``); merged by label with those
            the app lists itself.
        max_load: The most seconds a page may take to load (``smoke.max_load``).
        timeout: Seconds each page is watched before it is judged "still loading";
            above ``max_load``, so that a slow page is reported with its time.

    Returns:
        One result per page, in the app's order; a single failed ``browser`` result
        when Chromium is missing or fails (never a silent pass).
    """
    if find_chromium() is None:
        return [browser_failure(NO_CHROMIUM)]
    results: list[PageResult] = []
    with Browser() as browser:
        if browser.tools is None:
            return [browser_failure(browser.failure)]
        tab = Tab(browser.tools, timeout)
        try:
            tab.open()
            _visit_all(tab, base_url, pages, max_load, results)
        except PageDidNotLoad as error:
            results.append(PageResult(base_url, False, 0.0, str(error)))
        except (BrowserGone, OSError, TimeoutError, ValueError, KeyError) as error:
            results.append(browser_failure(f"the browser failed: {error}"))
    return results


def _visit_all(
    tab: Tab,
    base_url: str,
    pages: Sequence[SmokePage],
    max_load: float,
    results: list[PageResult],
) -> None:
    """Load the app, list its pages, and judge each one into ``results``."""
    landing, _, _ = tab.load(_url(base_url, "/"))
    for page in plan_pages(pages, landing.labels):
        try:
            seen, finished, seconds = _reach(tab, base_url, page, landing)
            if seen is not None and not finished:
                seen, finished, seconds = _reach_again(tab, base_url, page, landing)
        except PageDidNotLoad as error:  # this page only: the others still count
            results.append(PageResult(page.name, False, 0.0, str(error)))
            continue
        if seen is None:
            results.append(not_found(page, tab.last.labels if tab.last else []))
            continue
        # An unfinished page may still show the previous page's exception box.
        exception = seen.exception if finished else None
        results.append(
            judge_page(
                page,
                seconds=seconds,
                shown=seen.text,
                exception=exception,
                finished=finished,
                max_load=max_load,
            )
        )


def _reach(
    tab: Tab, base_url: str, page: SmokePage, landing: Look
) -> tuple[Look | None, bool, float]:
    """Open ``page`` the way a user would; (None, ...) when the app lacks it.

    A link is followed, a path loaded, a radio option clicked (after loading its
    path). The page the app opens on is judged on that load, navigation to
    content, rather than loaded twice.
    """
    url = _url(base_url, page.path)
    if page.label in landing.links:
        url = landing.links[page.label][0]
    if not page.label or page.label in landing.links:
        if tab.url == url and (claimed := tab.claim()):
            return claimed
        return tab.load(url)
    seen = tab.last or landing
    if tab.url != url:
        seen, _, _ = tab.load(url)
    if page.label not in seen.options:
        return None, False, 0.0
    if seen.current(page.label):
        claimed = tab.claim()
        # Shown already but judged for another page: load it afresh.
        return claimed if claimed else tab.load(url)
    return tab.choose(page.label)


def _reach_again(
    tab: Tab, base_url: str, page: SmokePage, landing: Look
) -> tuple[Look | None, bool, float]:
    """Open a page still loading at the timeout once more, from a fresh load.

    Seen once in CI on a busy machine: a page whose script run the watch never
    saw end. A page that is really slow (or stuck) is slow again, and judged so.
    """
    tab.url, tab.unclaimed = "", None
    return _reach(tab, base_url, page, landing)


def _url(base_url: str, path: str) -> str:
    """``path`` under the app's URL, which may itself have a path (a proxy's)."""
    return base_url.rstrip("/") + path
