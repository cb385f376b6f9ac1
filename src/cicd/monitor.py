"""Health monitoring with alert thresholds, as Gatus does, so alerts do not flap.

Each environment keeps a small state on its host (``<root>/<env>/monitor.json``).
After ``failures_to_alert`` consecutive failed checks the environment is DOWN and one
alert is sent; while it stays down, a reminder goes out at most every
``reminder_hours``; after ``successes_to_resolve`` consecutive passing checks it is UP
again and a "recovered" message is sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cicd.commands import files
from cicd.config import DEFAULTS, MonitorSettings

if TYPE_CHECKING:
    from cicd.notify import Notifier
    from cicd.target import Target

#: The built-in thresholds (``[tool.cicd.monitor]``): 3 failures, 2 passes, 6 h.
DEFAULT_RULES = MonitorSettings(**DEFAULTS["monitor"])


@dataclass
class MonitorState:
    """What the monitor remembers between runs."""

    status: str = "up"
    failures: int = 0
    successes: int = 0
    down_since: float = 0.0
    alerted_at: float = 0.0
    last_reason: str = ""


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


def run_monitor(
    target: Target,
    notifier: Notifier,
    *,
    retry_interval: float = 5.0,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bool, str]:
    """Check an environment, advance its monitor state and notify on transitions.

    A failing check is retried ``retry_interval`` seconds apart until it passes or
    the alert threshold is reached, so one run can alert on a real outage while a
    single blip alerts nobody.

    Returns:
        Whether the last check passed, and its reason.
    """
    from cicd.status import health_line

    state = load(target)
    while True:
        ok, reason = health_line(target)
        message = advance(
            state, ok, reason, clock(), target.env, target.settings.monitor
        )
        if message:
            notifier.send(message)
        if ok or state.status == "down":
            break
        sleep(retry_interval)
    save(target, state)
    return ok, reason
