"""The browser smoke of every page: which pages, and the verdict on each.

The model only; :mod:`cicd.checks.page_smoke` drives the browser. A page is reached
either by choosing an entry of the app's own navigation (a sidebar radio option or
a multipage link, by its label) or by loading a URL path; it passes when it shows
its text, with no Streamlit exception box, within ``smoke.max_load`` seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: The original checklist's "acceptable performance (load time < 10s)".
DEFAULT_MAX_LOAD = 10.0
#: What a failed smoke says when there is no browser to run it.
NO_CHROMIUM = (
    "Chromium not found: install it (apt-get install chromium) or name its binary "
    "in CICD_CHROMIUM"
)
#: Longest quote of an exception kept in a result.
EXCEPTION_CHARS = 300


@dataclass(frozen=True)
class SmokePage:
    """One page a user can open, and what it must show.

    Attributes:
        label: The entry to choose in the app's navigation (a sidebar radio option
            or a multipage link, as it reads), or ``""`` for the page at ``path``
            itself.
        path: The URL path the app is loaded at before the entry is chosen.
        text: What the page must show once loaded (in the main area, not the
            sidebar); ``""``: only that it finishes with no exception box.
    """

    label: str = ""
    path: str = "/"
    text: str = ""

    @property
    def name(self) -> str:
        """The page as reports name it: its label, else its path."""
        return self.label or self.path

    @classmethod
    def from_mapping(cls, raw: Mapping[str, object]) -> SmokePage:
        """A page from one ``smoke.pages`` entry (``label``, ``path``, ``text``).

        Raises:
            ValueError: An unknown key, a value that is not a string, a path that
                does not start with ``/``, or an entry with neither label nor text
                nor path.
        """
        unknown = sorted(set(raw) - {"label", "path", "text"})
        if unknown:
            raise ValueError(
                f"unknown key {unknown[0]!r} in a smoke page (label, path, text)"
            )
        values = {key: raw[key] for key in ("label", "path", "text") if key in raw}
        for key, value in values.items():
            if not isinstance(value, str):
                raise ValueError(f"a smoke page's {key} must be a string: {value!r}")
        if not values:
            raise ValueError("a smoke page needs a label, a path or a text")
        page = cls(**values)  # type: ignore[arg-type]
        if not page.path.startswith("/"):
            raise ValueError(f"a smoke page's path must start with '/': {page.path!r}")
        return page


@dataclass(frozen=True)
class PageResult:
    """The verdict on one page.

    Attributes:
        page: The page's name (:attr:`SmokePage.name`).
        ok: It showed its text, no exception box, within the allowed time.
        seconds: Load time, from the navigation or the choice to the content
            (Streamlit done running the page's script).
        reason: ``"ok"``, or why it failed, in words.
        exception: The first line of Streamlit's exception box, if one showed.
    """

    page: str
    ok: bool
    seconds: float
    reason: str = "ok"
    exception: str = ""

    def line(self) -> str:
        """One line for a terminal: ``✓ Seasonality  1.23 s`` or ``✗ ... : why``."""
        mark = "✓" if self.ok else "✗"
        text = f"{mark} {self.page}  {self.seconds:.2f} s"
        return text if self.ok else f"{text}: {self.reason}"


def plan_pages(
    configured: Sequence[SmokePage], discovered: Iterable[str]
) -> list[SmokePage]:
    """The pages to visit: those the app lists, merged by label with configured ones.

    The app's order first (a discovered label takes its configured text and path
    when configured), then configured pages the app does not list, in their order:
    a configured label the app does not list fails later as "not found" rather than
    being dropped.
    """
    by_label = {page.label: page for page in configured if page.label}
    pages: list[SmokePage] = []
    seen: set[str] = set()
    for label in discovered:
        if label and label not in seen:
            seen.add(label)
            pages.append(by_label.get(label, SmokePage(label=label)))
    for page in configured:
        if not page.label or page.label not in seen:
            seen.add(page.label)
            pages.append(page)
    # Nothing listed, nothing configured: the page at the URL is still a page.
    return pages or [SmokePage()]


def first_line(text: str) -> str:
    """The first non-blank line of an exception box, spaces squeezed."""
    for line in text.splitlines():
        if squeezed := re.sub(r"\s+", " ", line).strip():
            return squeezed[:EXCEPTION_CHARS]
    return ""


def judge_page(
    page: SmokePage,
    *,
    seconds: float,
    shown: str,
    exception: str | None,
    finished: bool,
    max_load: float,
) -> PageResult:
    """The verdict on what the browser saw of ``page``.

    Args:
        page: The page and the text it must show.
        seconds: Time from the navigation or the choice to what was seen.
        shown: The page's visible text (its main area).
        exception: The text of Streamlit's exception box, or None.
        finished: Streamlit finished running the page's script (False: the wait
            ran out first).
        max_load: The most seconds a page may take (``smoke.max_load``).
    """
    if exception is not None:
        quoted = first_line(exception)
        reason = "the page shows an exception" + (f": {quoted}" if quoted else "")
        return PageResult(page.name, False, seconds, reason, quoted or "(no text)")
    if not finished:
        reason = f"still loading after {seconds:.1f} s"
        if page.text and page.text not in shown:
            reason += f" (does not show {page.text!r})"
        return PageResult(page.name, False, seconds, reason)
    if page.text and page.text not in shown:
        return PageResult(page.name, False, seconds, f"does not show {page.text!r}")
    if seconds > max_load:
        reason = f"loaded in {seconds:.2f} s, over smoke.max_load ({max_load:g} s)"
        return PageResult(page.name, False, seconds, reason)
    return PageResult(page.name, True, seconds)


def not_found(page: SmokePage, listed: Iterable[str]) -> PageResult:
    """The verdict on a configured page the app's navigation does not list."""
    entries = ", ".join(repr(label) for label in listed) or "none"
    reason = f"not in the app's navigation (it lists {entries})"
    return PageResult(page.name, False, 0.0, reason)


def browser_failure(reason: str) -> PageResult:
    """The one result of a smoke that could not run a browser: never a pass."""
    return PageResult("browser", False, 0.0, reason)


def summary(results: Sequence[PageResult]) -> str:
    """One line over every page: ``3/3 pages ok, slowest Ratings 1.20 s``."""
    passed = sum(result.ok for result in results)
    text = f"{passed}/{len(results)} pages ok"
    if results:
        slowest = max(results, key=lambda result: result.seconds)
        text += f", slowest {slowest.page} {slowest.seconds:.2f} s"
    return text
