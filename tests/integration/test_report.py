"""``invoke report``: the delivery dashboard from a history made through the CLI, its
JSON and text, and its HTML page rendered by real headless Chromium.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from cicd.checks.browser import FLAGS, find_chromium, render
from cicd.reporting.page import write_report
from tests.conftest import Project, git, invoke
from tools.testinfra.sshd import SshFleet

pytestmark = pytest.mark.slow  # real deploys, rollbacks and a browser

QUICK_MONITOR = """
[tool.cicd.monitor]
failures = 1
successes = 1
retries = 0
retry_interval = 0.05
"""
NEEDS_CHROMIUM = pytest.mark.skipif(
    find_chromium() is None,
    reason="needs Chromium to render the dashboard: apt-get install chromium (or set "
    "CICD_CHROMIUM to a Chromium binary); CI's .ci/run installs it",
)


def ok(*args: str) -> str:
    """Run ``invoke ARGS``, assert it succeeded, return its stdout."""
    result = invoke(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def make_history(project: Project) -> tuple[str, str, str]:
    """A preprod history made as a user would: deploys, a rollback, a deploy that is
    never ready, an outage the monitor sees and its end. Returns the three shas."""
    project.write(QUICK_MONITOR)
    repo = project.repo
    v1 = repo.commit("v1")
    ok("deploy.preprod", "--sha", v1)
    ok("health", "--env", "preprod", "--monitor")
    v2 = repo.commit("v2")
    ok("deploy.preprod", "--sha", v2)
    ok("rollback", "--env", "preprod", "--to", v1)
    v3 = repo.commit("v3", mode="error")
    assert invoke("deploy.preprod", "--sha", v3).returncode == 1
    project.target().live_runtime().stop()
    assert invoke("health", "--env", "preprod", "--monitor").returncode == 1
    # Down for a while: the records' times have one-second resolution, and an
    # outage that starts and ends within the same second lasts 0 s.
    time.sleep(1.1)
    project.target().live_runtime().start()
    ok("health", "--env", "preprod", "--monitor")
    return v1, v2, v3


def test_report_measures_text_and_bad_input(project: Project, tmp_path: Path) -> None:
    v1, v2, v3 = make_history(project)
    document = json.loads(ok("report", "--env", "preprod", "--json"))
    assert document["task"] == "report" and document["ok"] is True
    (row,) = document["hosts"]
    assert row["env"] == "preprod"
    assert row["deploys"] == 2 and row["changes"] == 3
    assert row["failed_changes"] == 2
    assert row["change_failure_rate_percent"] == pytest.approx(66.7, abs=0.1)
    deploys = {d["sha"]: d for d in row["deploy_list"]}
    assert deploys[v1]["failed"] is None and deploys[v1]["lead_seconds"] >= 0
    assert deploys[v2]["failed"] == "rolled back"
    assert deploys[v2]["restored_seconds"] is not None
    assert deploys[v3]["failed"] == "not ready" and deploys[v3]["ok"] is False
    causes = [i["cause"] for i in row["incidents"]]
    assert f"{v2[:7]} rolled back" in causes and "outage" in causes
    assert all(i["end"] for i in row["incidents"])  # every one is over
    assert row["time_to_restore_median_seconds"] is not None
    assert row["lead_time_median_seconds"] is not None
    assert 0 < row["availability_percent"] < 100
    today = row["availability_per_day"][-1]
    assert today["percent"] == row["availability_percent"]
    kinds = {m["kind"] for m in row["timeline"]}
    assert {"deploy", "rollback", "failed", "down", "up"} <= kinds
    assert row["levels"]["failure"] == "low"

    text = ok("report")
    assert "preprod  (last 30 days" in text and "prod  (last 30 days" in text
    assert "Change failure rate     67 % (2 of 3: 1 not ready, 1 rolled back)" in text
    assert "Deployment frequency    2 deploys" in text
    assert "promised 99.9 %" in text  # prod: never deployed, never observed
    assert "Availability            –" in text

    ledger = project.root / "preprod" / "ledger.jsonl"
    before = ledger.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    for args in (
        ["--days", "0"],
        ["--env", "nowhere"],
        ["--html", str(out)],
        ["--days", "many"],
    ):
        result = invoke("report", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(out.iterdir()) == [] and ledger.read_bytes() == before
    failed = invoke("report", "--days", "0", "--json")
    assert json.loads(failed.stdout)["ok"] is False


@NEEDS_CHROMIUM
def test_the_dashboard_renders_in_headless_chromium(
    project: Project, tmp_path: Path
) -> None:
    v1, v2, _ = make_history(project)
    page = tmp_path / "site" / "report.html"
    out = ok("report", "--html", str(page))
    assert f"dashboard written to {page}" in out
    source = page.read_text()
    # Self-contained: no script, nothing to fetch (a URL in a check's reason is text).
    for fetching in ("<script", "src=", "href=", "<link", "url(", "@import"):
        assert fetching not in source, fetching
    url = page.as_uri()
    for text in ("Change failure rate", "Availability per day", v2[:12], "prod"):
        seen = render(url, text, 30)
        assert seen.ok, (text, seen.reason)
    png = screenshot(url, tmp_path / "shot.png")
    width, height, pixels = decode_png(png)
    assert (width, height) == (800, 1000)
    colours = set(pixels)
    assert len(colours) > 20, "the screenshot is blank"
    # The charts' own colours: deploy markers (green), the availability bar and the
    # failed deploy (red): drawn, not just present in the markup.
    drawn = sum(1 for p in pixels if near(p, (26, 127, 55)) or near(p, (207, 34, 46)))
    assert drawn > 300, "the charts were not drawn"

    demo_page = write_report(project.config_path, tmp_path / "demo.html")
    assert demo_page.read_text().count("<section") == 2  # preprod and prod


def near(pixel: tuple[int, int, int], colour: tuple[int, int, int]) -> bool:
    """Whether a pixel is (about) this colour."""
    return all(abs(a - b) <= 24 for a, b in zip(pixel, colour))


def screenshot(url: str, png: Path) -> Path:
    """A screenshot of ``url`` by headless Chromium (started as the project does)."""
    binary = find_chromium()
    assert binary is not None
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        subprocess.run(
            [
                binary,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                "--window-size=800,1000",
                f"--screenshot={png}",
                url,
            ],
            capture_output=True,
            timeout=90,
            check=True,
            env={"PATH": os.environ.get("PATH", ""), "HOME": profile},
        )
    return png


def decode_png(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB or RGBA PNG into (width, height, RGB pixels)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, idat = 8, b""
    width = height = channels = 0
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        chunk = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        offset += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + guess) & 0xFF
        pixels += [
            (line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels)
        ]
        previous = line
    return width, height, pixels


def test_report_over_ssh_reads_the_host_and_its_source(
    project: Project, ssh_hosts: Callable[[int], SshFleet]
) -> None:
    from tests.integration.test_ssh import fab, host_tables

    fleet = ssh_hosts(1)
    host_tables(project, fleet)
    v1 = project.repo.commit("v1")
    assert fab(fleet, "-H", "h1", "deploy.preprod", "--sha", v1).returncode == 0
    assert (
        fab(fleet, "-H", "h1", "health", "--env", "preprod", "--monitor").returncode
        == 0
    )
    shown = fab(fleet, "-H", "h1", "report", "--env", "preprod", "--json")
    assert shown.returncode == 0, shown.stderr
    (row,) = json.loads(shown.stdout)["hosts"]
    assert (row["host"], row["deploys"], row["availability_percent"]) == ("h1", 1, 100)
    (change,) = row["deploy_list"]
    assert change["sha"] == v1 and change["lead_seconds"] is not None  # git, on h1


def test_publish_pushes_the_page_beside_the_documentation(
    project: Project, tmp_path: Path
) -> None:
    server = tmp_path / "git server"
    site = server / "owner" / "site.git"
    site.parent.mkdir(parents=True)
    git(tmp_path, "init", "-q", "--bare", str(site))
    docs = tmp_path / "docs"
    docs.mkdir()
    git(docs, "init", "-q", "-b", "gh-pages")
    (docs / "index.html").write_text("the documentation")
    git(docs, "add", "-A")
    git(docs, "commit", "-qm", "docs")
    git(docs, "push", "-q", str(site), "gh-pages")
    env = {
        "GITHUB_REPOSITORY": "owner/site",
        "GITHUB_SERVER_URL": server.as_uri(),
        "GITHUB_TOKEN": "ghs_notARealToken123",
    }
    page = tmp_path / "out" / "index.html"
    first = invoke("report", "--html", str(page), "--publish", env=env)
    assert first.returncode == 0, first.stderr
    assert "published to owner/site gh-pages:report/index.html" in first.stdout
    assert "ghs_notARealToken123" not in first.stdout + first.stderr
    published = git(site, "show", "gh-pages:report/index.html")
    assert "Delivery dashboard" in published
    assert git(site, "show", "gh-pages:index.html") == "the documentation"  # kept
    first_page = page.read_text()
    again = invoke("report", "--html", str(page), "--publish", "--json", env=env)
    published = json.loads(again.stdout)["published"]
    if page.read_text() == first_page:
        assert published.endswith("already up to date"), published
    else:  # the page says when it was made (to the minute): a new minute changed it
        assert published == "published to owner/site gh-pages:report/index.html"

    lost = invoke(
        "report",
        "--html",
        str(page),
        "--publish",
        env={**env, "GITHUB_REPOSITORY": "owner/nowhere"},
    )
    assert lost.returncode == 1 and lost.stderr.startswith("error: cannot fetch")
    assert len(lost.stderr.strip().splitlines()) == 1
    fresh = server / "owner" / "fresh.git"
    git(tmp_path, "init", "-q", "--bare", str(fresh))  # no gh-pages branch yet
    made = invoke(
        "report",
        "--html",
        str(page),
        "--publish",
        env={**env, "GITHUB_REPOSITORY": "owner/fresh"},
    )
    assert made.returncode == 0, made.stderr
    assert "Delivery dashboard" in git(fresh, "show", "gh-pages:report/index.html")
    alone = invoke("report", "--publish", env=env)
    assert alone.returncode == 2 and "--publish needs --html" in alone.stderr
