"""The browser smoke of every page, on the real Streamlit app in real Chromium.

The app of 10_preprod is copied and served by Streamlit (its synthetic sample data);
a broken copy has a Seasonality page that raises only when chosen in the sidebar
(its query's result emptied: ``idxmax`` of an empty column) and a Weekend effect page
that sleeps before it draws. ``/`` alone (the Ratings page) is fine in both, as the
rendered-page health check sees it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from cicd.checks.browser import Browser, find_chromium
from cicd.checks.page_smoke import Tab, smoke_pages
from cicd.core.smoke import PageResult, SmokePage
from tests.conftest import REPO_ROOT, free_port

pytestmark = [
    pytest.mark.skipif(
        find_chromium() is None,
        reason="needs Chromium: apt-get install chromium (CI's .ci/run installs it)",
    ),
    pytest.mark.slow,  # Streamlit and a real browser
]

#: The three sidebar pages of the app and a text each shows below its header.
PAGES = [
    SmokePage("Ratings", text="Rating distribution"),
    SmokePage("Seasonality", text="Recipes submitted per month of year"),
    SmokePage("Weekend effect", text="Number of ratings by weekday"),
]
#: How long the broken copy's Weekend effect page sleeps, and the limit it breaks.
SLEEP, MAX_LOAD = 8.0, 6.0


@contextmanager
def streamlit(app: Path, script: str = "src/mangetamain/app.py") -> Iterator[str]:
    """Serve ``app`` with Streamlit on a free port; yield its URL once healthy."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANGETAMAIN_")}
    env["PYTHONPATH"] = "src"
    argv = [sys.executable, "-m", "streamlit", "run", script]
    argv += ["--server.port", str(port), "--server.address", "127.0.0.1"]
    argv += ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
    argv += ["--server.fileWatcherType", "none"]
    process = subprocess.Popen(
        argv, cwd=app, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "_stcore/health", timeout=2).text == "ok":
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None, "Streamlit exited"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@contextmanager
def warm(app: Path) -> Iterator[str]:
    """Serve ``app`` once its first session has loaded the data into the cache.

    Tests and the benchmark judge pages, not the first load of the sample data
    (several seconds here, on a machine shared with other tests).
    """
    with streamlit(app) as url, Browser() as browser:
        assert browser.tools is not None, browser.failure
        tab = Tab(browser.tools, timeout=60)
        tab.open()
        tab.load(url)
        yield url


def copy_app(into: Path) -> Path:
    """A copy of the real app (its code and sample data) to serve or to break."""
    app = into / "app"
    shutil.copytree(
        REPO_ROOT / "10_preprod", app, ignore=shutil.ignore_patterns("tests", ".*")
    )
    return app


def break_pages(app: Path) -> None:
    """Seasonality raises when chosen; Weekend effect sleeps :data:`SLEEP` s first."""
    views = app / "src" / "mangetamain" / "views.py"
    source = views.read_text()
    edits = {
        'season = get("seasonality")': 'season = get("seasonality").iloc[0:0]',
        'st.header("Weekend effect")': f'__import__("time").sleep({SLEEP})\n'
        '    st.header("Weekend effect")',
    }
    for old, new in edits.items():
        assert old in source
        source = source.replace(old, new)
    views.write_text(source)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app, served."""
    with warm(copy_app(tmp_path_factory.mktemp("intact"))) as url:
        yield url


@pytest.fixture(scope="module")
def broken_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app with a page that raises when chosen and a slow page, served."""
    app = copy_app(tmp_path_factory.mktemp("broken"))
    break_pages(app)
    with warm(app) as url:
        yield url


def by_page(results: list[PageResult]) -> dict[str, PageResult]:
    """The results by page name."""
    return {result.page: result for result in results}


def test_every_sidebar_page_shows_its_text_with_its_load_time(app_url: str) -> None:
    home = SmokePage(text="Mangetamain")  # the page at the URL itself
    results = smoke_pages(app_url, [*PAGES, home], max_load=10)
    assert [r.page for r in results] == [
        "Ratings",
        "Seasonality",
        "Weekend effect",
        "/",
    ]
    assert all(r.ok for r in results), [r.line() for r in results]
    assert all(r.seconds > 0 for r in results)


def test_pages_the_app_lists_are_smoked_without_any_configuration(
    app_url: str,
) -> None:
    results = smoke_pages(app_url, [], max_load=10)
    assert [(r.page, r.ok) for r in results] == [
        ("Ratings", True),
        ("Seasonality", True),
        ("Weekend effect", True),
    ]


@pytest.fixture(scope="module")
def broken_results(broken_url: str) -> dict[str, PageResult]:
    """The smoke of the broken copy: its three pages and the page at its URL."""
    home = SmokePage(text="Rating distribution")  # what the health check loads
    return by_page(smoke_pages(broken_url, [*PAGES, home], max_load=MAX_LOAD))


def test_a_page_that_raises_only_when_chosen_is_reported_with_its_exception(
    broken_results: dict[str, PageResult],
) -> None:
    assert broken_results["/"].ok  # what the rendered-page health check sees
    seasons = broken_results["Seasonality"]
    assert not seasons.ok
    assert seasons.exception.startswith("ValueError: attempt to get argmax")
    assert seasons.reason == f"the page shows an exception: {seasons.exception}"
    assert broken_results["Ratings"].ok


def test_a_page_slower_than_max_load_is_reported_with_its_measured_time(
    broken_results: dict[str, PageResult],
) -> None:
    weekend = broken_results["Weekend effect"]
    assert not weekend.ok and weekend.seconds >= SLEEP
    assert weekend.reason == (
        f"loaded in {weekend.seconds:.2f} s, over smoke.max_load ({MAX_LOAD:g} s)"
    )
    assert weekend.exception == ""


def test_a_configured_page_the_app_does_not_list_fails(app_url: str) -> None:
    results = by_page(smoke_pages(app_url, [SmokePage("Archive")], max_load=10))
    assert results["Archive"] == PageResult(
        "Archive",
        False,
        0.0,
        "not in the app's navigation (it lists 'Ratings', 'Seasonality', "
        "'Weekend effect')",
    )


def test_an_app_that_does_not_answer_fails_the_smoke() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    [result] = smoke_pages(url, PAGES, max_load=10, timeout=10)
    assert not result.ok and result.page == url
    assert "did not load: net::ERR_CONNECTION_REFUSED" in result.reason


MULTIPAGE = {
    "home.py": 'import streamlit as st\nst.title("Welcome home")\n',
    "pages/1_Reports.py": 'import streamlit as st\nst.title("All the reports")\n',
    "pages/2_Admin.py": 'import streamlit as st\nst.title("Admin")\n'
    'raise KeyError("no admin table")\n',
}


def test_a_multipage_apps_links_are_each_followed(tmp_path: Path) -> None:
    for name, source in MULTIPAGE.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(source)
    with streamlit(tmp_path, "home.py") as url:
        pages = [SmokePage("Reports", text="All the reports")]
        results = smoke_pages(url, pages, max_load=10)
    assert [(r.page, r.ok) for r in results] == [
        ("home", True),
        ("Reports", True),
        ("Admin", False),
    ]
    assert results[2].exception.startswith("KeyError")


def test_a_page_still_loading_at_the_timeout_is_opened_once_more(
    broken_url: str,
) -> None:
    weekend = next(page for page in PAGES if page.label == "Weekend effect")
    started = time.monotonic()
    results = by_page(smoke_pages(broken_url, [weekend], max_load=1, timeout=3))
    took = time.monotonic() - started
    assert results["Weekend effect"].reason.startswith("still loading after 3.0 s")
    # Opened twice before it is judged: a run the watch missed is not a slow page.
    assert took >= 2 * 3
