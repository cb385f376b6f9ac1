"""The "rendered page contains TEXT" health condition, checked in headless Chromium.

Measured on Streamlit: the raw HTML is the same static shell for every app (its title
is "Streamlit", no app text), and ``/_stcore/health`` answers ``ok`` even when the
app's script raises at import. Only a browser that runs the page's JavaScript sees
what a user sees: the app's heading, or Streamlit's exception box.

Chromium is optional: without it the condition is skipped with a note saying how to
enable it, and the other checks still decide.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from typing import NamedTuple

CHROMIUM_VARIABLE = "CICD_CHROMIUM"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
#: Virtual time the page gets to connect its websocket and render, in ms.
BUDGET_MS = 8000
SKIPPED = "rendered-page check skipped: Chromium not found (apt-get install chromium)"
#: Flags that keep Chromium quiet and off the network (only the app's URL is loaded).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--mute-audio",
)


def find_chromium() -> str | None:
    """Path of a Chromium binary: ``$CICD_CHROMIUM``, else the first on PATH."""
    if chosen := os.environ.get(CHROMIUM_VARIABLE):
        return shutil.which(chosen)
    for name in CANDIDATES:
        if path := shutil.which(name):
            return path
    return None


def chromium_argv(binary: str, url: str, profile: str, budget_ms: int) -> list[str]:
    """The command that prints ``url``'s DOM once rendered."""
    return [
        binary,
        *FLAGS,
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        "--dump-dom",
        url,
    ]


def visible_text(dom: str) -> str:
    """The text of the page's body, without scripts, styles and tags."""
    body = dom[dom.find("<body") :] if "<body" in dom else dom
    body = re.sub(r"<(script|style|noscript)\b.*?</\1>", " ", body, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", body)
    return re.sub(r"\s+", " ", text).strip()


def judge(dom: str, expected: str) -> str | None:
    """Why a rendered page fails the condition, or None when it passes."""
    if "stException" in dom:
        match = re.search(r"stException.*?>(.*?)</", dom, flags=re.S)
        shown = re.sub(r"\s+", " ", match.group(1)).strip()[:120] if match else ""
        return "the app shows an exception" + (f": {shown}" if shown else "")
    if expected not in visible_text(dom):
        return f"rendered page does not show {expected!r}"
    return None


class Rendered(NamedTuple):
    """What the browser saw: :mod:`cicd.health` turns it into a check result."""

    ok: bool
    reason: str
    seconds: float
    fatal: bool = False
    note: str = ""


def render(url: str, expected: str, timeout: float) -> Rendered:
    """Render ``url`` in headless Chromium and look for the ``expected`` text."""
    started = time.monotonic()
    binary = find_chromium()
    if binary is None:
        return Rendered(True, "skipped", 0.0, note=SKIPPED)
    with tempfile.TemporaryDirectory(prefix="cicd-chromium-") as profile:
        argv = chromium_argv(binary, url, profile, BUDGET_MS)
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=max(timeout, BUDGET_MS / 1000 + 15),
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return Rendered(False, "browser timed out", time.monotonic() - started)
    seconds = time.monotonic() - started
    if done.returncode != 0 or "<body" not in done.stdout:
        reason = f"page did not load in the browser (exit {done.returncode})"
        return Rendered(False, reason, seconds)
    problem = judge(done.stdout, expected)
    fatal = bool(problem and problem.startswith("the app shows an exception"))
    return Rendered(problem is None, problem or "ok", seconds, fatal=fatal)
