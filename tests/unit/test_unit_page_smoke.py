"""The page smoke's model: which pages, the verdict on each, and no silent pass.

The browser itself, on the real app, is tests/integration/test_page_smoke.py.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from cicd.checks import browser
from cicd.checks.page_smoke import Look, smoke_pages
from cicd.core.smoke import (
    NO_CHROMIUM,
    PageResult,
    SmokePage,
    first_line,
    judge_page,
    plan_pages,
    summary,
)

RATINGS = SmokePage("Ratings", text="Rating distribution")
SEASONS = SmokePage("Seasonality", text="Recipes submitted per month of year")


def test_configured_and_listed_pages_are_merged_by_label_in_the_apps_order() -> None:
    home = SmokePage(path="/", text="Mangetamain")
    missing = SmokePage("Archive", text="Old")
    pages = plan_pages(
        [SEASONS, home, missing, RATINGS],
        ["Ratings", "Seasonality", "Weekend effect", "Ratings"],
    )
    assert pages == [
        RATINGS,  # configured text kept, the app's order
        SEASONS,
        SmokePage("Weekend effect"),  # listed only: no text, no exception box
        home,
        missing,  # configured but not listed: kept, to fail as not found
    ]


def test_with_nothing_listed_or_configured_the_page_at_the_url_is_smoked() -> None:
    assert plan_pages([], []) == [SmokePage(label="", path="/", text="")]
    assert SmokePage().name == "/" and RATINGS.name == "Ratings"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"label": "Ratings", "text": "Stars"}, SmokePage("Ratings", "/", "Stars")),
        ({"path": "/admin"}, SmokePage("", "/admin", "")),
    ],
)
def test_a_configured_page_is_read_from_its_entry(
    raw: dict[str, object], expected: SmokePage
) -> None:
    assert SmokePage.from_mapping(raw) == expected


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"label": "Ratings", "txt": "x"}, "unknown key 'txt' in a smoke page"),
        ({"label": 3}, "a smoke page's label must be a string: 3"),
        ({}, "a smoke page needs a label, a path or a text"),
        ({"path": "admin"}, "a smoke page's path must start with '/': 'admin'"),
    ],
)
def test_a_bad_page_entry_is_one_line(raw: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match="^" + error.replace("(", r"\(")):
        SmokePage.from_mapping(raw)


def judged(page: SmokePage = SEASONS, **seen: object) -> PageResult:
    """The verdict on a page that finished in 1.5 s showing its text, unless told."""
    facts: dict[str, object] = {
        "seconds": 1.5,
        "shown": "Seasonality\nRecipes submitted per month of year",
        "exception": None,
        "finished": True,
        "max_load": 10.0,
    }
    facts.update(seen)
    return judge_page(page, **facts)  # type: ignore[arg-type]


def test_a_page_that_shows_its_text_in_time_passes() -> None:
    result = judged()
    assert result == PageResult("Seasonality", True, 1.5, "ok", "")
    assert result.line() == "✓ Seasonality  1.50 s"


def test_an_exception_box_fails_the_page_quoting_its_first_line() -> None:
    box = "\n  ValueError:   attempt to get argmax\n\nTraceback:\nFile ..."
    result = judged(exception=box, shown="")
    assert not result.ok
    assert result.exception == "ValueError: attempt to get argmax"
    assert result.line() == (
        "✗ Seasonality  1.50 s: the page shows an exception: "
        "ValueError: attempt to get argmax"
    )
    assert judged(exception="").exception == "(no text)"


@pytest.mark.parametrize(
    ("seen", "reason"),
    [
        ({"seconds": 12.345}, "loaded in 12.35 s, over smoke.max_load (10 s)"),
        ({"shown": "Seasonality"}, "does not show 'Recipes submitted per month"),
        (
            {"finished": False, "seconds": 30.0, "shown": ""},
            "still loading after 30.0 s (does not show 'Recipes submitted",
        ),
        ({"finished": False, "seconds": 30.0, "max_load": 40}, "still loading"),
    ],
)
def test_a_slow_unfinished_or_wrong_page_fails_with_why(
    seen: dict[str, object], reason: str
) -> None:
    result = judged(**seen)
    assert not result.ok and result.reason.startswith(reason)


def test_a_listed_page_without_text_passes_when_it_finishes_cleanly() -> None:
    assert judged(SmokePage("Weekend effect"), shown="").ok


def test_summary_counts_the_pages_and_names_the_slowest() -> None:
    results = [judged(), judged(RATINGS, seconds=2.25, shown="Rating distribution")]
    assert summary(results) == "2/2 pages ok, slowest Ratings 2.25 s"
    assert summary([]) == "0/0 pages ok"
    assert first_line(" \n\n") == ""


def test_what_the_browser_saw_is_read_into_the_apps_navigation() -> None:
    look = Look.of(
        {
            "state": "notRunning",
            "ended": 2,
            "exception": None,
            "text": "Ratings",
            "options": [["Ratings", True], ["Seasonality", False]],
            "links": [["Home", "http://127.0.0.1:9/", False], ["Admin", "x", True]],
        }
    )
    assert look.labels == ["Home", "Admin", "Ratings", "Seasonality"]
    assert look.current("Ratings") and look.current("Admin")
    assert not look.current("Seasonality") and not look.current("Home")
    assert Look.of({}).labels == []


def test_without_chromium_the_smoke_fails_saying_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(browser.CHROMIUM_VARIABLE, "/nonexistent/chromium")
    results = smoke_pages("http://127.0.0.1:9/", [RATINGS], max_load=10)
    assert results == [PageResult("browser", False, 0.0, NO_CHROMIUM)]
    assert "apt-get install chromium" in results[0].line()


def test_a_browser_that_cannot_start_fails_the_smoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "chromium"
    binary.write_text("not an executable format")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(browser.CHROMIUM_VARIABLE, str(binary))
    [result] = smoke_pages("http://127.0.0.1:9/", [RATINGS], max_load=10)
    assert not result.ok and result.page == "browser"
    assert "the browser did not start" in result.reason


def test_a_browser_that_dies_fails_the_smoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "chromium"
    binary.write_text("#!/bin/sh\nexit 1\n")  # starts, then closes the pipe
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv(browser.CHROMIUM_VARIABLE, str(binary))
    [result] = smoke_pages("http://127.0.0.1:9/", [RATINGS], max_load=10, timeout=5)
    assert not result.ok and result.page == "browser"
    assert "the browser failed: the browser closed the DevTools pipe" in result.reason
