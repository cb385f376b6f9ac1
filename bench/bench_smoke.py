"""``smoke``: the browser smoke of every page on the real app, and Playwright beside it.

The app of 10_preprod, copied and served by Streamlit on a free port with its
sample data, as tests/integration/test_page_smoke.py serves it (its helpers are
reused; the bench session installs the app's locked dependencies). Then, median of
:data:`ROUNDS`:

- the smoke of the three sidebar pages (``cicd.checks.page_smoke.smoke_pages``:
  a new headless Chromium, the app loaded, each page chosen and judged), wall time,
  and each page's load time (navigation or choice to content);
- when Playwright's Python package is importable (it is no dependency: ``pip
  install playwright``, no browser download), the same job through Playwright
  driving the same system Chromium, with the same page-side logic (the script-run
  watch, the option click): the cost of the library against the hand-written
  DevTools pipe.

Skipped (with the reason) without Chromium.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_fleet import BenchSkipped
from common import Metric, log, median, page_load_metrics, timed

ROUNDS = 3


def bench_smoke() -> list[Metric]:
    """The three-page smoke on the real app; Playwright's when it is installed."""
    from cicd.checks.browser import find_chromium
    from cicd.checks.page_smoke import smoke_pages
    from tests.integration.test_page_smoke import PAGES, copy_app, streamlit

    binary = find_chromium()
    if binary is None:
        raise BenchSkipped("Chromium not found (apt-get install chromium)")
    walls: list[float] = []
    loads: dict[str, list[float]] = {page.name: [] for page in PAGES}
    playwright: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-smoke-") as scratch:
        with streamlit(copy_app(Path(scratch))) as url:
            smoke_pages(url, PAGES, max_load=10)  # warm: the data cache filled
            for index in range(ROUNDS):
                log(f"smoke: round {index + 1}/{ROUNDS}")
                wall, results = timed(lambda: smoke_pages(url, PAGES, max_load=10))
                failed = [r.line() for r in results if not r.ok]
                if failed:
                    raise RuntimeError(f"the intact app failed the smoke: {failed}")
                walls.append(wall)
                for result in results:
                    loads[result.page].append(result.seconds)
                if importlib.util.find_spec("playwright"):
                    playwright.append(_playwright_smoke(binary, url)[0])
    metrics = [
        Metric(
            "smoke",
            "smoke of 3 pages, real app",
            median(walls),
            ROUNDS,
            samples=walls,
            meaning="smoke_pages(): Chromium started, the app loaded, each "
            "sidebar page chosen and judged (text, no exception box, load time)",
        )
    ]
    metrics += page_load_metrics("smoke", loads, ROUNDS, "<= 10 s")
    metrics.append(_playwright_metric(walls, playwright))
    return metrics


def _playwright_metric(walls: list[float], samples: list[float]) -> Metric:
    """Playwright's wall time for the same job, or why it was not measured."""
    if not samples:
        return Metric(
            "smoke",
            "same job, Playwright",
            0.0,
            0,
            meaning="skipped: Playwright not installed (pip install playwright)",
        )
    ratio = median(samples) / median(walls)
    return Metric(
        "smoke",
        "same job, Playwright",
        median(samples),
        len(samples),
        samples=samples,
        meaning=f"Playwright {_version()} on the same Chromium; "
        f"{ratio:.2f}x the DevTools pipe's wall time",
    )


def _version() -> str:
    from importlib.metadata import version

    return version("playwright")


def _playwright_smoke(binary: str, url: str) -> tuple[float, dict[str, float]]:
    """The same three-page job through Playwright: (wall, load time by page).

    The page-side logic is smoke_pages' own (its LOOK, CHOOSE and WATCH_RUNS
    scripts, the same settle rule): only the driver differs.
    """
    from playwright.sync_api import sync_playwright

    from cicd.checks.page_smoke import CHOOSE, WATCH_RUNS, WINDOW
    from tests.integration.test_page_smoke import PAGES

    loads: dict[str, float] = {}
    started = time.monotonic()
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=binary, args=["--no-sandbox"])
        size = {"width": WINDOW["width"], "height": WINDOW["height"]}
        page: Any = browser.new_page(viewport=size)
        page.add_init_script(WATCH_RUNS)
        t0 = time.monotonic()
        page.goto(url, wait_until="commit")
        loads[PAGES[0].name] = _settled(page, t0)
        for smoke in PAGES[1:]:
            t0 = time.monotonic()
            page.evaluate(CHOOSE % json.dumps(smoke.label))
            loads[smoke.name] = _settled(page, t0)
            main = page.inner_text('[data-testid="stMain"]')
            if smoke.text not in main:
                raise RuntimeError(f"Playwright: {smoke.name} lacks {smoke.text!r}")
        browser.close()
    return time.monotonic() - started, loads


def _settled(page: Any, started: float, timeout: float = 30.0) -> float:
    """Tab._wait's rule through Playwright: the run ended, the screen still."""
    from cicd.checks.page_smoke import LOOK, LOOK_EVERY, QUIET, Look

    still: tuple[object, ...] | None = None
    since = 0.0
    while time.monotonic() - started < timeout:
        seen = Look.of(page.evaluate(LOOK))
        seconds = time.monotonic() - started
        ready = seen.state == "notRunning" and seen.ended > 0
        screen = seen.screen if ready else None
        if screen is None or screen != still:
            still, since = screen, seconds
        elif seconds - since >= QUIET:
            return since
        time.sleep(LOOK_EVERY)
    raise RuntimeError("Playwright: a page did not settle")
