"""``preflight``: production's pre-flight of the real app, as ``deploy.prod`` runs it.

The app of 10_preprod deployed to preprod under Streamlit and supervisord, as
tests/integration/test_preflight.py deploys it (its helpers are reused), then
:data:`ROUNDS` pre-flights of that sha (``--plan``'s: read-only, so a round
changes nothing): serving (the runtime asked, health's checks with the rendered
page), the smoke of the three sidebar pages in a new Chromium, the app's log.
Median wall time of the whole pre-flight, and of each page's load time.

Skipped (with the reason) without Chromium.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench_fleet import BenchSkipped
from common import Metric, log, median, page_load_metrics, timed

ROUNDS = 3


def bench_preflight() -> list[Metric]:
    """The pre-flight of a sha preprod serves: serving, smoke of 3 pages, logs."""
    from cicd.checks.browser import find_chromium
    from cicd.pipeline.preflight import run_preflight
    from tests.conftest import AppRepo, Project, distinct_ports, git
    from tests.conftest import shutdown_supervisord
    from tests.integration.test_preflight import real_app, to_preprod

    if find_chromium() is None:
        raise BenchSkipped("Chromium not found (apt-get install chromium)")
    walls: list[float] = []
    loads: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-preflight-") as scratch:
        source = Path(scratch) / "source"
        source.mkdir()
        git(source, "init", "-q", "-b", "main")
        project = Project(
            Path(scratch) / "cicd.toml",
            Path(scratch) / "root",
            *distinct_ports(AppRepo(source)),
        )
        os.environ["CICD_CONFIG"] = str(project.config_path)
        try:
            good, _ = real_app(project)
            to_preprod(project, good)
            prod, preprod = [project.target("prod")], project.target("preprod")
            for index in range(ROUNDS):
                log(f"preflight: round {index + 1}/{ROUNDS}")
                wall, check = timed(
                    lambda: run_preflight(prod, preprod, good, plan=True)
                )
                if not check.ok:
                    raise RuntimeError(f"the intact app failed: {check.lines()}")
                walls.append(wall)
                for page in check.items[1].pages:
                    loads.setdefault(page.page, []).append(page.seconds)
        finally:
            shutdown_supervisord(project.root)
    metrics = [
        Metric(
            "preflight",
            "pre-flight, 3 pages, real app",
            median(walls),
            ROUNDS,
            samples=walls,
            meaning="run_preflight(): preprod's serving sha and health (rendered "
            "page included), the smoke of every page in Chromium, preprod's log",
        )
    ]
    return metrics + page_load_metrics("preflight", loads, ROUNDS, "smoke.max_load")
