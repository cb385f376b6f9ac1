"""Status of environments, computed from the ledger, links and files; never stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cicd.host import intent
from cicd.core.config_schema import SLOTS
from cicd.checks.health import run_round
from cicd.core.lock_details import describe, is_stale
from cicd.core import table
from cicd.core.messages import short
from cicd.core.table import Column
from cicd.runtime.swarm import SwarmRuntime

if TYPE_CHECKING:
    from cicd.host.target import Target

#: ``invoke status``' table.
STATUS_COLUMNS = (
    Column("ENV", 8),
    Column("CURRENT", 8),
    Column("SERVING", 8),
    Column("PREVIOUS", 8),
    Column("VALIDATED", 9),
    Column("RUNTIME", 12),
    Column("HEALTH", 6),
    Column("LOCK"),
)


def health_line(target: Target, *, timeout: float = 3.0) -> tuple[bool, str]:
    """Run each check once: whether all pass, and the reasons.

    A drift (the app runs another release than ``current`` names) or an unfinished
    switch fails health too: what answers is not what status says runs.
    """
    results = run_round(target.settings.health.checks, target.fetcher(), timeout)
    failed = [f"{r.check.url}: {r.reason}" for r in results if not r.ok]
    truth = serving_problem(target)
    if truth:
        failed.insert(0, truth)
    notes = sorted({r.note for r in results if r.note})
    return not failed, "; ".join(failed or ["ok"] + notes)


def serving_problem(target: Target) -> str | None:
    """Why what serves is not what ``current`` says, or None when they agree."""
    pending = intent.read(target.context)
    if pending:
        return (
            f"unfinished switch {intent.describe(pending)} "
            f"(invoke status --repair --env {target.env})"
        )
    current = target.current()
    if current is None:
        return None
    if target.is_proxied() and target.slots.routed() is None:
        return target.slots.proxy_problem()
    serving = target.serving()
    if serving != current:
        return (
            f"drift: current is {short(current)} but {short(serving)} serves "
            f"(invoke status --repair --env {target.env})"
        )
    return None


#: What a runtime says of an app that serves (or is about to, or rolls over).
UP_STATES = ("RUNNING", "STARTING", "UPDATING")


def outage(target: Target, current: str | None) -> str | None:
    """Why nothing serves a deployed environment, or None.

    None too for an environment never deployed: nothing is meant to serve it.
    Behind haproxy: haproxy down, or routing to no running slot; else the app's
    state (DOWN when supervisord itself is down).
    """
    if not current:
        return None
    from cicd.pipeline.activation import in_place

    if target.is_proxied() and target.slots.proxy.configured():
        return target.slots.outage()
    state = in_place(target).status()
    return None if state in UP_STATES else f"the app is {state}"


def env_status(target: Target, *, events: int = 5) -> dict[str, Any]:
    """Everything a person asks about one environment, as a dict.

    ``down`` says why nothing serves an environment that was deployed (None when
    something does, or when it never was).
    """
    state = target.state()
    healthy, health = health_line(target) if state.current else (False, "not deployed")
    serving = target.serving() if state.current else None
    return {
        "env": target.env,
        "host": target.runner.host,
        "url": target.settings.url,
        "current": state.current,
        "serving": serving,
        "drift": bool(state.current) and serving != state.current,
        "previous": state.previous,
        "validated": state.validated,
        "runtime": target.live_runtime().status() if state.current else "NOT DEPLOYED",
        "healthy": healthy,
        "health": health,
        "down": outage(target, state.current),
        "lock": describe(state.lock) if state.lock else None,
        # Its holder's process is gone (on this host): the next run breaks it.
        "lock_stale": state.lock is not None and is_stale(state.lock),
        "releases": len(state.releases),
        "last_events": [
            {
                "time": e.time,
                "event": e.event,
                "sha": e.sha,
                "outcome": e.outcome,
                "detail": e.detail,
            }
            for e in state.events[-events:]
        ],
        "warnings": list(state.warnings),
        "slots": slots_status(target) if state.current else None,
        "swarm": swarm_status(target) if state.current else None,
    }


def swarm_status(target: Target) -> list[dict[str, Any]] | None:
    """The swarm runtime: each service's image, its update, each task's node.

    Blue/green: both slots' services. None for the other runtimes.
    """
    if target.settings.runtime.kind != "swarm":
        return None
    from cicd.pipeline.activation import in_place

    runtimes = [in_place(target)]
    if target.is_proxied():
        slots = [target.slots.runtime(slot) for slot in SLOTS]
        # The service run in place, until the first switch behind haproxy.
        runtimes = slots if target.slots.proxy.configured() else runtimes + slots
    return [r.describe() for r in runtimes if isinstance(r, SwarmRuntime)]


def format_swarm(env: str, services: list[dict[str, Any]]) -> str:
    """A line per service: ``preprod swarm blue: 2/2 tasks run app:a1b2c3d (n1, n2)``.

    A slot's service that does not exist (stopped, or never started) is left out.
    """
    lines = []
    for swarm in services:
        tasks = swarm["tasks"]
        if swarm["slot"] and not tasks and not swarm["image"]:
            continue
        running = [t for t in tasks if t["state"].startswith("Running")]
        images = sorted({t["image"] for t in running})
        nodes = ", ".join(sorted(t["node"] for t in running)) or "no node"
        shown = " + ".join(images) or swarm["image"] or "nothing"
        update = f"; update {swarm['update']}" if swarm["update"] else ""
        name = f"swarm {swarm['slot']}" if swarm["slot"] else "swarm"
        lines.append(
            f"  {env} {name}: {len(running)}/{len(tasks)} tasks run {shown} "
            f"({nodes}){update}"
        )
    return "\n".join(lines)


def slots_status(target: Target) -> dict[str, Any] | None:
    """Behind haproxy: each slot's release and state, which one is routed, the warm.

    None when the environment restarts in place.
    """
    if not target.is_proxied():
        return None
    slots = target.slots
    warm = slots.warm() or {}
    until = warm.get("until")
    return {
        "routed": slots.routed(),
        **{
            slot: {
                "release": slots.release(slot),
                "state": slots.runtime(slot).status(),
            }
            for slot in SLOTS
        },
        "warm_until": (
            datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if isinstance(until, (int, float))
            else None
        ),
    }


def format_slots(env: str, slots: dict[str, Any]) -> str:
    """One line: ``preprod slots: blue a1b2c3d RUNNING (routed) · green ...``."""
    parts = []
    for slot in SLOTS:
        info = slots[slot]
        if info["release"] is None:
            parts.append(f"{slot} unused")
            continue
        role = (
            "routed"
            if slots["routed"] == slot
            else (
                ("warm until " + slots["warm_until"][11:19])
                if slots["warm_until"] and info["state"] == "RUNNING"
                else ""
            )
        )
        parts.append(
            f"{slot} {short(info['release'])} {info['state']}"
            + (f" ({role})" if role else "")
        )
    return f"  {env} slots: " + " · ".join(parts)


def format_status(rows: list[dict[str, Any]]) -> str:
    """Render status dicts as a readable table plus recent events."""
    lines = table.lines(
        STATUS_COLUMNS,
        [
            [
                row["env"],
                short(row["current"]),
                short(row["serving"]) + ("!" if row["drift"] else ""),
                short(row["previous"]),
                short(row["validated"]),
                row["runtime"],
                "ok" if row["healthy"] else "FAIL",
                row["lock"] or "-",
            ]
            for row in rows
        ],
    )
    for row in rows:
        if row.get("slots"):
            lines.append(format_slots(row["env"], row["slots"]))
        if row.get("swarm") and (shown := format_swarm(row["env"], row["swarm"])):
            lines.append(shown)
        if row.get("down"):
            lines.append(
                f"  {row['env']}: DOWN — {short(row['current'])} is deployed but "
                f"nothing serves it: {row['down']} (`invoke start` starts it again)"
            )
        if not row["healthy"] and row["current"]:
            lines.append(f"  {row['env']} health: {row['health']}")
        for warning in row["warnings"]:
            lines.append(f"  {row['env']} warning: {warning}")
        if row["last_events"]:
            lines.append(f"  {row['env']} last events:")
            for e in row["last_events"]:
                text = " · ".join(str(e["detail"]).split("\n"))
                detail = f" — {text}" if text else ""
                lines.append(
                    f"    {e['time'][:19]} {e['event']:<10} {short(e['sha'])} "
                    f"{e['outcome']}{detail}"
                )
    return "\n".join(lines)


def releases_rows(
    target: Target, warn: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """The kept releases, newest first: flags, date, actor, subject, CI and links.

    Args:
        target: The environment on one host.
        warn: Where corrupt ledger lines are reported, as ``status`` does.
    """
    from cicd.reporting.audit import release_facts

    state = target.state()
    if warn is not None:
        for warning in state.warnings:
            warn(f"warning: {target.env}: {warning}")
    return [
        {
            "sha": sha,
            "current": sha == state.current,
            "previous": sha == state.previous,
            "validated": sha in state.validated_all,
            "bad": sha in state.bad,
            **release_facts(target, state, sha),
        }
        for sha in state.releases
    ]
