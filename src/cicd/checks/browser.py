"""The "rendered page contains TEXT" health condition, checked in headless Chromium.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
no port, no extra package); the page is watched in real time until it shows the
text or Streamlit's exception box.

Measured on Streamlit: the raw HTML is the same static shell for every app (its title
is "Streamlit", no app text), and ``/_stcore/health`` answers ``ok`` even when the
app's script raises at import. Only a browser that runs the page's JavaScript sees
what a user sees: the app's heading, or Streamlit's exception box.

Chromium is optional: without it the condition is skipped with a note saying how to
enable it, and the other checks still decide.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import signal
import tempfile
import time
from typing import Any, NamedTuple

CHROMIUM_VARIABLE = "CICD_CHROMIUM"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
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
#: Seconds between two looks at the page while it renders.
LOOK_EVERY = 0.2
#: What the page shows: its visible text, and Streamlit's exception box if any.
LOOK = (
    "(() => { const e = document.querySelector("
    "'[data-testid=\"stException\"], .stException');"
    " return {exception: e ? e.innerText.slice(0, 300) : null,"
    " text: document.body ? document.body.innerText : ''}; })()"
)


def find_chromium() -> str | None:
    """Path of a Chromium binary: ``$CICD_CHROMIUM``, else the first on PATH."""
    if chosen := os.environ.get(CHROMIUM_VARIABLE):
        return shutil.which(chosen)
    for name in CANDIDATES:
        if path := shutil.which(name):
            return path
    return None


def chromium_argv(binary: str, profile: str) -> list[str]:
    """Chromium driven over the DevTools protocol on fds 3 and 4 (no port opened)."""
    return [
        binary,
        *FLAGS,
        f"--user-data-dir={profile}",
        "--remote-debugging-pipe",
        "about:blank",
    ]


def judge(text: str, exception: str | None, expected: str) -> str | None:
    """Why what the page shows fails the condition, or None when it passes."""
    if exception is not None:
        shown = re.sub(r"\s+", " ", exception).strip()[:120]
        return "the app shows an exception" + (f": {shown}" if shown else "")
    if expected not in text:
        return f"rendered page does not show {expected!r}"
    return None


class Rendered(NamedTuple):
    """What the browser saw: :mod:`cicd.checks.health` turns it into a check result."""

    ok: bool
    reason: str
    seconds: float
    fatal: bool = False
    note: str = ""


class BrowserGone(Exception):
    """Chromium closed its end of the DevTools pipe."""


class ProtocolError(BrowserGone):
    """Chromium answered a command with an error (the browser itself is still up)."""


class DevTools:
    """The Chrome DevTools protocol over the pipe ``--remote-debugging-pipe`` opens.

    Messages are JSON objects separated by NUL bytes, on fd 3 (to the browser) and
    fd 4 (from it); no network port, no websocket, nothing but the standard
    library.
    """

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self.to_browser = to_browser
        self.from_browser = from_browser
        self.buffer = b""
        self.last_id = 0

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        deadline: float,
    ) -> dict[str, Any]:
        """Send one command and wait for its answer (events are skipped).

        Raises:
            BrowserGone: The browser closed the pipe.
            ProtocolError: The browser answered with an error.
            TimeoutError: No answer by ``deadline`` (monotonic seconds).
        """
        self.last_id += 1
        message: dict[str, Any] = {"id": self.last_id, "method": method}
        message["params"] = params or {}
        if session:
            message["sessionId"] = session
        try:
            os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            raise BrowserGone("the browser closed the DevTools pipe") from None
        while True:
            reply = self._next(deadline)
            if reply.get("id") == self.last_id:
                if "error" in reply:
                    raise ProtocolError(str(reply["error"].get("message", reply)))
                result: dict[str, Any] = reply.get("result", {})
                return result

    def _next(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the browser did not answer in time")
            ready, _, _ = select.select([self.from_browser], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.from_browser, 65536)
            if not chunk:
                raise BrowserGone("the browser closed the DevTools pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        data: dict[str, Any] = json.loads(raw)
        return data


def render(url: str, expected: str, timeout: float) -> Rendered:
    """Load ``url`` in a headless Chromium started for it; see :meth:`Browser.render`.

    Readiness starts its :class:`Browser` ahead instead, so that Chromium's own
    start-up overlaps the app's boot.
    """
    if find_chromium() is None:
        return Rendered(True, "skipped", 0.0, note=SKIPPED)
    with Browser() as browser:
        return browser.render(url, expected, timeout)


class Browser:
    """A headless Chromium started at once, and driven when a page is to be judged.

    Started when readiness begins, it boots while the app does (about 0.7 s each
    here): the rendered-page condition then costs the page, not the browser. One
    browser serves every attempt of a readiness wait; a new tab per attempt.
    """

    def __init__(self) -> None:
        self.binary = find_chromium()
        self.pid = 0
        self.tools: DevTools | None = None
        self.failure = ""
        self.profile = tempfile.TemporaryDirectory(prefix="cicd-chromium-")
        if self.binary is not None:
            self._start(self.binary)

    def _start(self, binary: str) -> None:
        to_read, to_browser = os.pipe()
        from_browser, to_write = os.pipe()
        # The child's ends above fd 9, so mapping them onto 3 and 4 cannot
        # clobber one with the other.
        to_read, to_write = _above(to_read, 10), _above(to_write, 11)
        # The browser expects its ends on fds 3 and 4 (posix_spawn maps them; no
        # shell, which could not name fds above 9).
        try:
            self.pid = os.posix_spawn(
                binary,
                chromium_argv(binary, self.profile.name),
                _browser_environment(),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, to_read, 3),
                    (os.POSIX_SPAWN_DUP2, to_write, 4),
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                ],
                setsid=True,
            )
        except OSError as error:
            for fd in (to_browser, from_browser):
                os.close(fd)
            self.failure = f"the browser did not start ({error.strerror or error})"
            return
        finally:
            os.close(to_read)
            os.close(to_write)
        self.tools = DevTools(to_browser, from_browser)

    def render(self, url: str, expected: str, timeout: float) -> Rendered:
        """Load ``url`` in a new tab and watch it until it shows ``expected``.

        It looks every :data:`LOOK_EVERY` seconds, until the text or Streamlit's
        exception box appears or ``timeout`` seconds pass. Real time, not a
        virtual time budget: a page whose server is slow under load gets the time
        it needs, and a healthy page is judged as soon as it shows the text.
        """
        started = time.monotonic()
        if self.binary is None:
            return Rendered(True, "skipped", 0.0, note=SKIPPED)
        if self.tools is None:
            return Rendered(False, self.failure, 0.0)
        try:
            return _watch(self.tools, url, expected, started + timeout)
        except (BrowserGone, OSError, ValueError, KeyError, AttributeError) as error:
            reason = f"page did not load in the browser ({error})"
            if isinstance(error, (BrowserGone, OSError)):
                # Gone for good: the next attempt starts a new one.
                self.close()
                self.profile = tempfile.TemporaryDirectory(prefix="cicd-chromium-")
                self._start(self.binary)
            return Rendered(False, reason, time.monotonic() - started)

    def close(self) -> None:
        """End the browser and every process it started; remove its profile."""
        if self.tools is not None:
            os.close(self.tools.to_browser)
            os.close(self.tools.from_browser)
            self.tools = None
        if self.pid:
            _stop(self.pid)
            self.pid = 0
        self.profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _watch(tools: DevTools, url: str, expected: str, deadline: float) -> Rendered:
    started = time.monotonic()
    target = tools.call(
        "Target.createTarget", {"url": "about:blank"}, deadline=deadline
    )
    attached = tools.call(
        "Target.attachToTarget",
        {"targetId": target["targetId"], "flatten": True},
        deadline=deadline,
    )
    session = str(attached["sessionId"])
    tools.call("Page.navigate", {"url": url}, session=session, deadline=deadline)
    problem = f"rendered page does not show {expected!r}"
    while True:
        try:
            looked = tools.call(
                "Runtime.evaluate",
                {"expression": LOOK, "returnByValue": True},
                session=session,
                deadline=deadline,
            )
        except TimeoutError:
            break
        seen = looked.get("result", {}).get("value") or {}
        problem = (
            judge(str(seen.get("text") or ""), seen.get("exception"), expected) or ""
        )
        if not problem or problem.startswith("the app shows an exception"):
            break
        if time.monotonic() + LOOK_EVERY >= deadline:
            break
        time.sleep(LOOK_EVERY)
    seconds = time.monotonic() - started
    fatal = problem.startswith("the app shows an exception")
    try:  # one tab per attempt: the next one starts clean
        tools.call(
            "Target.closeTarget",
            {"targetId": target["targetId"]},
            deadline=time.monotonic() + 2,
        )
    except (BrowserGone, TimeoutError):
        pass
    return Rendered(not problem, problem or "ok", seconds, fatal=fatal)


def _browser_environment() -> dict[str, str]:
    """The browser needs a PATH, a HOME and a locale, never the caller's secrets."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "XDG_RUNTIME_DIR")
    return {name: os.environ[name] for name in keep if name in os.environ}


def _above(fd: int, lowest: int) -> int:
    """Move ``fd`` to a number at least ``lowest``; the old number is closed."""
    # Close-on-exec here; posix_spawn's dup2 onto 3 and 4 clears it in the browser.
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)
    os.close(fd)
    return moved


def _stop(pid: int, grace: float = 2.0) -> None:
    """End the browser and every process it started (its own session, its group).

    TERM first, a short grace, then KILL for whatever of the group is left — even
    when the leader already exited — and the leader is reaped.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                break
            time.sleep(0.02)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
