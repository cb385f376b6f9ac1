"""Health monitoring with alert thresholds, as Gatus does, so alerts do not flap.

Each environment keeps a small state on its host (``<root>/<env>/monitor.json``).
After ``failures`` consecutive failed checks the environment is DOWN and one alert is
sent; while it stays down, a reminder goes out at most every ``reminder`` seconds;
after ``successes`` consecutive passing checks it is UP again and a "recovered"
message is sent.

One run is bounded but not a single look: a failing check is confirmed (up to
``failures`` checks ``retry_interval`` apart), and a down environment is re-checked up
to ``retries`` more times, so "recovered" comes minutes after the app is back, not at
the next hourly run. An environment that was never deployed is skipped, said once.
Every check is appended to ``monitor.jsonl``, the history ``invoke report`` turns
into availability per day. The certificates of ``https`` URLs are read too: fewer
than ``cert_days`` days left is an alert of its own (at most once per ``reminder``).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from posixpath import join
from typing import TYPE_CHECKING, Any

from cicd.commands import files
from cicd.core.settings import MonitorSettings
from cicd.pipeline.outside import (
    DEFAULT_RULES,
    Certificate,
    certificate,
    https_urls,
    visit,
)

if TYPE_CHECKING:
    from cicd.reporting.notify import Notifier
    from cicd.host.target import Target

#: Why a never-deployed environment is not checked.
NOT_DEPLOYED = "never deployed (no current release)"


@dataclass
class MonitorState:
    """What the monitor remembers between runs."""

    status: str = "up"
    failures: int = 0
    successes: int = 0
    down_since: float = 0.0
    alerted_at: float = 0.0
    last_reason: str = ""
    cert_alerted_at: float = 0.0


@dataclass(frozen=True)
class MonitorResult:
    """The outcome of one monitor run on one environment."""

    ok: bool
    reason: str
    skipped: bool = False
    checks: int = 0
    status: str = "up"
    certificates: tuple[Certificate, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        """The result as ``--json`` prints it."""
        return {
            "ok": self.ok,
            "detail": self.reason,
            "skipped": self.skipped,
            "checks": self.checks,
            "status": self.status,
            "certificates": [asdict(c) for c in self.certificates],
        }


def advance(
    state: MonitorState,
    ok: bool,
    reason: str,
    now: float,
    env: str,
    rules: MonitorSettings = DEFAULT_RULES,
) -> str | None:
    """Feed one check result to the state machine.

    Args:
        state: The remembered state; updated in place.
        ok: Whether the check passed.
        reason: Why it failed (or ``ok``).
        now: Wall-clock seconds.
        env: Environment name, for messages.
        rules: The thresholds (``monitor.failures``, ``successes``, ``reminder``).

    Returns:
        The message to notify, or None when nothing is worth a notification.
    """
    name = env.upper()
    if ok:
        state.failures = 0
        state.successes += 1
        if state.status == "down" and state.successes >= rules.successes:
            down_for = _duration(now - state.down_since)
            state.status, state.down_since, state.alerted_at = "up", 0.0, 0.0
            return f"🟢 {name} recovered after {down_for} down"
        return None
    state.successes = 0
    state.failures += 1
    state.last_reason = reason
    if state.status == "up":
        if state.failures >= rules.failures:
            state.status, state.down_since, state.alerted_at = "down", now, now
            return (
                f"🔴 {name} is DOWN ({state.failures} failed checks in a row): {reason}"
            )
        return None
    if now - state.alerted_at >= rules.reminder:
        state.alerted_at = now
        since = datetime.fromtimestamp(state.down_since, UTC).strftime(
            "%Y-%m-%d %H:%M UTC"
        )
        return f"🔔 {name} still DOWN since {since}: {reason}"
    return None


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{max(minutes, 0)} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def state_path(target: Target) -> str:
    """Where an environment's monitor state lives on its host."""
    return target.paths.monitor


def load(target: Target) -> MonitorState:
    """Read the monitor state (a fresh one when absent or unreadable)."""
    text = target.runner.run(files.read(state_path(target))).stdout
    try:
        data = json.loads(text) if text.strip() else {}
        return MonitorState(
            **{k: v for k, v in data.items() if k in MonitorState.__annotations__}
        )
    except (ValueError, TypeError):
        return MonitorState()


def save(target: Target, state: MonitorState) -> None:
    """Write the monitor state atomically."""
    target.runner.run(files.mkdirs(target.paths.dir))
    target.runner.run(files.write_atomic(state_path(target), json.dumps(asdict(state))))


def history_line(env: str, at: float, ok: bool, reason: str, status: str) -> str:
    """One line of ``monitor.jsonl``: time, env, whether the check passed, and why."""
    return json.dumps(
        {
            "time": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "env": env,
            "ok": ok,
            "reason": reason[:300],
            "status": status,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


def run_monitor(
    target: Target,
    notifier: Notifier,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    patience: float = 0.0,
) -> MonitorResult:
    """Check an environment, advance its monitor state and notify on transitions.

    A failing check is retried ``retry_interval`` seconds apart until it passes or
    the alert threshold is reached, so one run can alert on a real outage while a
    single blip alerts nobody. While the environment is down it is re-checked up to
    ``retries`` more times — or, with ``patience`` (the background re-checker), for
    up to that many seconds — stopping as soon as it has recovered.

    Returns:
        The last check's outcome, how many checks were made, the certificates read.
    """
    from cicd.pipeline.status import health_line

    if target.current() is None:
        return MonitorResult(True, NOT_DEPLOYED, skipped=True)
    rules = target.settings.monitor
    state = load(target)
    target.runner.run(files.mkdirs(target.paths.dir))
    checks = 0
    rechecks = rules.retries
    until = clock() + patience
    while True:
        ok, reason = health_line(target)
        if ok and rules.urls:
            ok, reason = _public_round(rules.urls)
        now = clock()
        message = advance(state, ok, reason, now, target.env, rules)
        # Each check at once: a run cut short (a job's timeout) keeps what it saw.
        line = history_line(target.env, now, ok, reason, state.status)
        target.runner.run(files.append_lines(target.paths.monitor_history, line))
        checks += 1
        if message:
            notifier.send(message)
            save(target, state)  # a run cut short must not alert this again
        if state.status == "up":
            if ok:
                break  # healthy, or just recovered
        elif rechecks == 0 and clock() >= until:
            break
        elif rechecks:
            rechecks -= 1
        sleep(rules.retry_interval)
    certificates = tuple(_certificates(target))
    _alert_certificates(target, notifier, state, certificates, clock())
    save(target, state)
    return MonitorResult(ok, reason, False, checks, state.status, certificates)


def recheck_in_background(target: Target) -> str | None:
    """Keep re-checking a down environment in the background; say how, in a line.

    Starts ``python -m cicd health --env ENV --monitor --patience SECONDS`` in a
    session of its own (it outlives the CI job, as the watcher does), after
    stopping the one an earlier run left: one re-checker per environment, and the
    newest run takes over. Not over SSH: the next run checks again.

    Returns:
        What was done, or why not, in one line; None when ``monitor.patience`` is 0.
    """
    rules = target.settings.monitor
    if rules.patience <= 0:
        return None
    if target.runner.remote:
        return "re-checked at the next run (no background re-checker over SSH)"
    stop_rechecker(target)
    from cicd.host.detach import spawn

    log = join(target.paths.logs, "monitor-recheck.log")
    target.runner.run(files.mkdirs(target.paths.logs))
    argv = ["health", "--env", target.env, "--monitor"]
    pid = spawn([*argv, "--patience", f"{rules.patience:g}"], log, target)
    target.runner.run(files.write_atomic(target.paths.rechecker, f"{pid}\n"))
    return (
        f"re-checked every {rules.retry_interval:g}s in the background for up to "
        f"{rules.patience:g}s (pid {pid}, log {log})"
    )


def stop_rechecker(target: Target) -> None:
    """Stop the background re-checker an earlier run left, if it still runs."""
    text = target.runner.output(files.read(target.paths.rechecker))
    target.runner.run(files.remove(target.paths.rechecker))
    if not text.isdigit() or int(text) == os.getpid():
        return
    try:
        os.kill(int(text), signal.SIGTERM)
    except OSError:
        pass  # gone already, or not ours


def _certificates(target: Target) -> list[Certificate]:
    return [certificate(url) for url in https_urls(target)]


def _alert_certificates(
    target: Target,
    notifier: Notifier,
    state: MonitorState,
    certificates: Sequence[Certificate],
    now: float,
) -> None:
    """One alert for certificates about to expire, repeated at most every reminder."""
    rules = target.settings.monitor
    expiring = [c for c in certificates if c.below(rules.cert_days)]
    if not expiring:
        state.cert_alerted_at = 0.0
        return
    if state.cert_alerted_at and now - state.cert_alerted_at < rules.reminder:
        return
    state.cert_alerted_at = now
    said = "; ".join(c.describe() for c in expiring)
    notifier.send(
        f"🔐 {target.env.upper()}: {said} (alert under {rules.cert_days} days): "
        "renew it"
    )


def _public_round(urls: Sequence[str]) -> tuple[bool, str]:
    """Check public URLs as a visitor would; whether all answer, and why not."""
    failed = [f"{url}: {why}" for url in urls if (why := visit(url)) is not None]
    return not failed, "; ".join(failed) or "ok"
