"""Production's pre-flight: the original checklist, checked before anything changes.

The original design ends its production section with a list a person ticked by
hand: preprod works, it was tested by hand, its logs are clean, its pages load in
under 10 s, a backup was made and verified; and "prefer Tuesday to Thursday
morning". ``deploy.prod`` checks each item (the ``preflight`` key chooses which)
before it takes the lock, and says one line per item with its figure::

    ✓ serving  preprod serves 3f9c2e1 (deployed 2026-12-07 10:12 UTC); health 2/2 pass
    ✓ smoke    3/3 pages ok, slowest Seasonality 1.84 s (at most 10 s)
    ✗ logs     line 41 of 212 since 3f9c2e1 started matches /ERROR/: ...
    ✓ backup   20261207T101500Z read back (12 files, sha256 0a1b2c3d4e5f); ...
    ✓ window   Tue 11:02 Europe/Paris, inside Tue-Thu 08:00-16:00 Europe/Paris

Any ✗ refuses the deploy (exit 2, nothing changed, a ``refused`` event whose detail
names the pre-flight and its failed items) unless ``--force --reason``. The
settings are production's (``smoke.*``, ``backup.restore_check``, ``window``); the
smoke and the log are preprod's, where the sha runs. ``--plan`` runs the same items
read-only: its backup item reads what the ledger recorded and runs no restore.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cicd.core.errors import CicdError, UsageError, clip
from cicd.core.messages import PREFLIGHT_REFUSED, short
from cicd.core.redact import redact
from cicd.core.smoke import PageResult, summary

if TYPE_CHECKING:
    from cicd.core.ledger import Event
    from cicd.core.state import EnvState
    from cicd.host.backup import Backup
    from cicd.host.target import Target

#: How many lines of preprod's app log (since the sha's start) are read at most.
LOG_LINES = 5000
#: Longest quote of a log line.
QUOTE = 160


@dataclass(frozen=True)
class Item:
    """One item of the pre-flight and what it found.

    Attributes:
        name: ``serving``, ``smoke``, ``logs``, ``backup`` or ``window``.
        ok: Passed (True), failed (False) or not checked (None: it depends on an
            item that failed).
        figure: What was measured or found, in words.
        pages: The smoke's result for each page.
    """

    name: str
    ok: bool | None
    figure: str
    pages: tuple[PageResult, ...] = ()

    @property
    def mark(self) -> str:
        """``✓``, ``✗``, or ``–`` when not checked."""
        return {True: "✓", False: "✗", None: "–"}[self.ok]

    def lines(self) -> list[str]:
        """The item's line, then one per smoked page."""
        head = f"{self.mark} {self.name:<7}  {self.figure}"
        return [head, *(f"    {page.line()}" for page in self.pages)]

    def as_dict(self) -> dict[str, Any]:
        """The item in ``--json``: name, ok, figure, and each page for the smoke."""
        shown: dict[str, Any] = {
            "item": self.name,
            "ok": self.ok,
            "figure": self.figure,
        }
        if self.pages:
            shown["pages"] = [
                {
                    "page": p.page,
                    "ok": p.ok,
                    "seconds": round(p.seconds, 3),
                    "reason": p.reason,
                    "exception": p.exception or None,
                }
                for p in self.pages
            ]
        return shown


@dataclass(frozen=True)
class Preflight:
    """The pre-flight of one sha: its items, in order.

    Attributes:
        sha: The sha production would deploy.
        items: What each item found.
        plan: Run for ``--plan`` (read-only) rather than for a deploy.
        seconds: How long it took.
    """

    sha: str
    items: tuple[Item, ...] = ()
    plan: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No item failed (one not checked is only so when another failed)."""
        return all(item.ok is not False for item in self.items)

    @property
    def failed(self) -> list[str]:
        """The names of the items that failed."""
        return [item.name for item in self.items if item.ok is False]

    def lines(self) -> list[str]:
        """The pre-flight as a person reads it: a heading, then one line per item."""
        if not self.items:
            return []
        verdict = "passed" if self.ok else f"failed: {', '.join(self.failed)}"
        head = f"pre-flight of {short(self.sha)} ({self.seconds:.1f}s): {verdict}"
        return [head] + [f"  {line}" for item in self.items for line in item.lines()]

    def detail(self) -> str:
        """The ``refused`` event's detail: the pre-flight and its failed items."""
        return f"{PREFLIGHT_REFUSED}: {', '.join(self.failed)}"

    def refusal(self) -> str:
        """The one-line error of a refused deploy."""
        said = "; ".join(f"{i.name}: {i.figure}" for i in self.items if i.ok is False)
        return (
            f"{PREFLIGHT_REFUSED} for {short(self.sha)} ({said}); nothing was "
            'changed (fix it, or pass --force --reason "..." to deploy anyway)'
        )

    def as_dict(self) -> dict[str, Any]:
        """The ``preflight`` key of ``--json``."""
        return {
            "ok": self.ok,
            "plan": self.plan,
            "seconds": round(self.seconds, 3),
            "failed": self.failed,
            "items": [item.as_dict() for item in self.items],
        }


class PreflightRefused(UsageError):
    """The pre-flight failed and ``--force`` was not given: nothing changed."""

    def __init__(self, preflight: Preflight) -> None:
        super().__init__(preflight.refusal())
        self.preflight = preflight


@dataclass
class _Run:
    """What one pre-flight reads once and shares between its items."""

    hosts: list[Target]
    preprod: Target
    sha: str
    plan: bool
    now: datetime
    preprod_state: EnvState | None = None
    serving_ok: bool = True


def run_preflight(
    hosts: list[Target],
    preprod: Target,
    sha: str,
    *,
    plan: bool = False,
    now: datetime | None = None,
) -> Preflight:
    """Check each item of production's ``preflight`` for ``sha``, in order.

    Args:
        hosts: Production on every host (its settings choose the items).
        preprod: Preprod, where the sha must serve.
        sha: The full sha production would deploy.
        plan: Read only (``--plan``): the backup item runs no restore check and
            records nothing.
        now: The time the window is checked at (default: now).

    Returns:
        The pre-flight; it never raises for a failed item.
    """
    started = time.monotonic()
    run = _Run(hosts, preprod, sha, plan, now or datetime.now(UTC))
    items = tuple(CHECKS[name](run) for name in hosts[0].settings.preflight)
    return Preflight(sha, items, plan, time.monotonic() - started)


def _serving(run: _Run) -> Item:
    """Preprod serves the sha (asked of the runtime) and its health passes now."""
    from cicd.checks.health import run_round

    preprod = run.preprod
    try:
        served = preprod.serving()
        run.preprod_state = preprod.state()
    except CicdError as error:
        run.serving_ok = False
        return Item("serving", False, f"preprod cannot say what it serves: {error}")
    if served != run.sha:
        run.serving_ok = False
        return Item(
            "serving",
            False,
            f"preprod serves {short(served) if served else 'nothing'}, not "
            f"{short(run.sha)}: deploy it to preprod first",
        )
    when = _deployed_at(run.preprod_state, run.sha)
    health = preprod.settings.health
    results = run_round(health.checks, preprod.fetcher(), health.deadline)
    passed = sum(1 for r in results if r.ok)
    said = f"preprod serves {short(run.sha)}" + (f" (deployed {when})" if when else "")
    if passed < len(health.checks):
        failed = next(r for r in results if not r.ok)
        run.serving_ok = False
        return Item(
            "serving",
            False,
            f"{said}; health fails now: {failed.check.url}: {failed.reason}",
        )
    took = sum(r.seconds for r in results)
    return Item("serving", True, f"{said}; health {passed}/{passed} pass ({took:.2f}s)")


def _deployed_at(state: EnvState | None, sha: str) -> str:
    """When ``sha`` last went live on preprod, from its ledger (UTC, to the minute)."""
    event = _went_live(state, sha)
    return f"{event.time[:16].replace('T', ' ')} UTC" if event else ""


def _went_live(state: EnvState | None, sha: str) -> Event | None:
    """The ledger event of ``sha``'s last deploy, rollback or switch on preprod."""
    for event in reversed(state.events if state else ()):
        if event.sha == sha and event.outcome == "ok":
            if event.event in ("deploy", "rollback", "switch"):
                return event
    return None


def _smoke(run: _Run) -> Item:
    """Every page on preprod, in Chromium: its text, no exception, in time."""
    if not run.serving_ok:
        return Item("smoke", None, f"not run: preprod does not serve {short(run.sha)}")
    preprod = run.preprod
    if preprod.fetcher().remote:
        # As the rendered health check: Chromium runs here, the app listens there.
        return Item(
            "smoke",
            True,
            "skipped: preprod runs over SSH and Chromium here cannot reach it "
            "(run deploy.prod on the VM: fab -H HOST deploy.prod)",
        )
    from cicd.checks.page_smoke import smoke_pages

    smoke = run.hosts[0].settings.smoke
    pages = smoke_pages(preprod.settings.url, smoke.pages, max_load=smoke.max_load)
    ok = bool(pages) and all(page.ok for page in pages)
    figure = (
        f"{summary(pages)} (at most {smoke.max_load:g} s) on {preprod.settings.url}"
    )
    return Item("smoke", ok, figure, tuple(pages))


def _logs(run: _Run) -> Item:
    """Preprod's app log since the sha started: no line that looks like an error."""
    if not run.serving_ok:
        return Item("logs", None, f"not read: preprod does not serve {short(run.sha)}")
    patterns = [re.compile(p) for p in run.hosts[0].settings.smoke.log_errors]
    try:
        text = run.preprod.live_runtime().release_logs(LOG_LINES)
    except CicdError as error:
        return Item("logs", False, f"preprod's app log cannot be read: {error}")
    lines = text.splitlines()
    since = _deployed_at(run.preprod_state, run.sha)
    where = f"since {short(run.sha)} started" + (
        f" (deployed {since})" if since else ""
    )
    for number, line in enumerate(lines, 1):
        for pattern in patterns:
            if pattern.search(line):
                quoted = clip(" ".join(redact(line).split()), QUOTE)
                return Item(
                    "logs",
                    False,
                    f"line {number} of {len(lines)} {where} matches "
                    f"/{pattern.pattern}/: {quoted!r}",
                )
    return Item(
        "logs", True, f"{len(lines)} lines {where}, none matches smoke.log_errors"
    )


def _backup(run: _Run) -> Item:
    """On every production host: the newest backup reads back, a restore was tried."""
    said: list[str] = []
    ok = True
    for target in run.hosts:
        prefix = f"{target.runner.host}: " if len(run.hosts) > 1 else ""
        try:
            text = _backup_of(target, run)
        except CicdError as error:
            ok = False
            text = str(error)
        said.append(prefix + text)
    return Item("backup", ok, "; ".join(said))


def _backup_of(target: Target, run: _Run) -> str:
    """One host's backup item, in words (raises :class:`CicdError` when it fails)."""
    from cicd.host import backup

    state = target.state()
    kept = backup.backups(target, state)
    limit = target.settings.backup.restore_check
    if not kept:
        # The first production deploy with persistent data takes the first one.
        return "no backup yet: the deploy takes the first one before its switch"
    newest = kept[0]
    if run.plan:
        return _backup_recorded(newest, backup.last_restore_check(state), limit)
    found = backup.verify(target, newest.stamp)
    said = f"{newest.stamp} read back ({found.files} files, sha256 {found.sha256[:12]})"
    age = backup.last_restore_check(state)
    if age is None or age > limit:
        tried = backup.restore_check(target, newest.stamp)
        return (
            f"{said}; restore tried now ({tried.files} files in {tried.seconds:.1f}s; "
            f"the last was {_days(age)})"
        )
    return f"{said}; restore checked {_days(age)} (within {limit:g} days)"


def _backup_recorded(newest: Backup, age: float | None, limit: float) -> str:
    """``--plan``'s backup item: what the ledger says, nothing read or restored.

    Raises:
        CicdError: The newest backup's last verification failed.
    """
    if newest.failed:
        raise CicdError(f"{newest.stamp}: {newest.failed}")
    checked = (
        "never read back"
        if not newest.verified
        else f"read back {newest.verified[:16]}"
    )
    said = f"{newest.stamp} {checked}"
    if age is None or age > limit:
        return f"{said}; restore {_days(age)}: the deploy tries one first"
    return f"{said}; restore checked {_days(age)} (within {limit:g} days)"


def _days(age: float | None) -> str:
    """``2.5 days ago``, or ``never``."""
    return "never" if age is None else f"{age:.1f} days ago"


def _window(run: _Run) -> Item:
    """Now is inside production's deploy window (or none is set)."""
    window = run.hosts[0].settings.deploy_window()
    if window is None:
        return Item("window", True, 'none set (window = ""): any time')
    return Item("window", window.contains(run.now), window.describe(run.now))


#: Each item's check, by name (the ``preflight`` key's choices).
CHECKS: dict[str, Callable[[_Run], Item]] = {
    "serving": _serving,
    "smoke": _smoke,
    "logs": _logs,
    "backup": _backup,
    "window": _window,
}


def forced_items(preflight: Preflight) -> str:
    """What ``--force`` overrides of a failed pre-flight ("" when it passed)."""
    return "" if preflight.ok else f"pre-flight: {', '.join(preflight.failed)}"
