"""``--plan``: what a deploy or a rollback would do, step by step, host by host.

A plan reads what a run would read — each host's state (one round trip), whether
the release is already exported, which slot haproxy routes to — and changes
nothing: no lock, no repair, no ledger line, no notification. Its steps are the
phases of :mod:`cicd.pipeline.deploy` and :mod:`cicd.pipeline.rollback` in the order
they run, so
``invoke deploy.preprod --sha X --plan`` reads like the log of the real run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cicd.host import intent
from cicd.commands import files
from cicd.core.lock_details import describe
from cicd.core.messages import short
from cicd.host.slots import other

if TYPE_CHECKING:
    from cicd.core.state import EnvState
    from cicd.host.target import Target


@dataclass
class HostPlan:
    """The steps one host would go through."""

    env: str
    host: str
    steps: list[str] = field(default_factory=list)
    #: Why the run would stop before changing anything here, if it would.
    refused: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON row of this host."""
        return {
            "env": self.env,
            "host": self.host,
            "steps": self.steps,
            "refused": self.refused or None,
        }


@dataclass
class Plan:
    """What a deploy or rollback would do on every host."""

    action: str
    env: str
    sha: str | None
    hosts: list[HostPlan]
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The plan as a person reads it; its last line says nothing changed."""
        lines = [f"plan: {self.action} {short(self.sha)} to {self.env}"]
        lines += [f"  {note}" for note in self.notes]
        for host in self.hosts:
            lines.append(f"  on {host.host}:")
            if host.refused:
                lines.append(f"    refused: {host.refused}")
            lines += [f"    {n}. {step}" for n, step in enumerate(host.steps, 1)]
        lines.append("nothing was changed (--plan)")
        return "\n".join(lines)


def _lock_step(state: EnvState) -> str:
    if state.lock:
        return f"take the {state.env} lock: HELD by {describe(state.lock)}"
    return f"take the {state.env} lock (free)"


def _repair_step(target: Target) -> str | None:
    pending = intent.read(target)
    if pending:
        return f"settle an unfinished switch first: {intent.describe(pending)}"
    return None


def _checks(target: Target) -> str:
    health = target.settings.health
    paths = ", ".join(c.url for c in health.checks)
    return (
        f"{len(health.checks)} check(s) ({paths}), {health.successes} passing "
        f"round(s) in a row, within {health.deadline:g}s"
    )


def _activation(target: Target, sha: str, state: EnvState, op: str) -> list[str]:
    """How ``sha`` would go live on this host: blue/green or in place."""
    if not target.is_proxied():
        return [
            f"switch current {short(state.current)} → {short(sha)} and restart "
            f"the app in place (down until it answers again)",
            f"readiness: {_checks(target)}; if not ready: back to "
            f"{short(state.current)}, {short(sha)} marked bad",
        ]
    slots = target.slots
    live = slots.routed() or slots.intended()
    warm = next(
        (
            slot
            for slot in ("blue", "green")
            if slot != live and slots.release(slot) == sha
        ),
        None,
    )
    steps = []
    if warm:
        steps.append(
            f"switch back to the {warm} slot if {short(sha)} still answers there "
            "(no restart), else start it again on that slot"
        )
        slot = warm
    else:
        slot = other(live) if live else "blue"
        port = target.settings.port_of(slot)
        steps.append(f"start {short(sha)} on the idle {slot} slot (port {port})")
    steps.append(
        f"readiness on the {slot} slot: {_checks(target)}; if not ready: never "
        f"routed to ({short(state.current)} serves throughout), marked bad"
    )
    window = target.settings.proxy.warm
    after = (
        f"keep {short(state.current)} warm on the {live} slot for {window:g}s"
        if op == "deploy" and live and state.current and window > 0
        else (f"stop the {live} slot" if live else "")
    )
    if not slots.proxy.configured():
        after += (
            "; the first switch behind haproxy here: the app run in place stops "
            "and haproxy takes its port (about a second)"
        )
    steps.append(
        f"switch haproxy {live or 'nothing'} → {slot}" + (f"; {after}" if after else "")
    )
    return steps


def plan_deploy(
    hosts: list[Target], sha: str, *, backup: bool = False, refused: str = ""
) -> Plan:
    """The plan of a deploy of ``sha`` (already resolved) to ``hosts``.

    Args:
        hosts: The environment on every host.
        sha: The full sha.
        backup: Production: persistent data archived first.
        refused: Why the real run would refuse, if it would: production's checks,
            from :func:`cicd.pipeline.deploy.decide_prod`.
    """
    first = hosts[0]
    mode = (
        "blue/green behind haproxy"
        if first.is_proxied()
        else "in place (no haproxy: a few seconds down)"
    )
    notes = [f"switches: {mode}"]
    if len(hosts) > 1:
        batch = first.settings.batch or len(hosts)
        notes.append(f"{len(hosts)} hosts, {batch} switched at a time, all or nothing")
    plans = []
    for target in hosts:
        state = target.state()
        host = HostPlan(target.env, target.runner.host, refused=refused)
        host.steps.append(_lock_step(state))
        repair = _repair_step(target)
        if repair:
            host.steps.append(repair)
        if state.current == sha and state.settled:
            host.steps.append(
                f"{short(sha)} already serves: nothing to do if it answers its checks"
            )
            plans.append(host)
            continue
        if sha in state.bad:
            host.steps.append(f"warn: {short(sha)} was marked bad; deployed anyway")
        exported = target.runner.ok(files.exists(target.paths.release(sha)))
        host.steps.append(
            f"reuse releases/{short(sha)} (already exported)"
            if exported
            else f"export releases/{short(sha)} from {target.settings.source} and "
            "prepare its venv (reused when its requirements are unchanged)"
        )
        if backup:
            kept = ", ".join(target.settings.persistent) or "nothing"
            host.steps.append(f"back up {kept} into backups/")
        host.steps += _activation(target, sha, state, "deploy")
        doomed = len(state.releases) + (0 if exported else 1) - target.settings.keep
        host.steps.append(
            "record the deploy in the ledger"
            + (f"; prune {doomed} old release(s)" if doomed > 0 else "")
        )
        plans.append(host)
    return Plan("deploy", first.env, sha, plans, notes)


def plan_rollback(hosts: list[Target], to: str | None) -> Plan:
    """The plan of a rollback (to ``to``, or the newest validated release)."""
    from cicd.core.errors import CicdError, UsageError
    from cicd.pipeline.rollback import choose

    plans = []
    chosen: str | None = None
    for target in hosts:
        state = target.state()
        host = HostPlan(target.env, target.runner.host)
        host.steps.append(_lock_step(state))
        repair = _repair_step(target)
        if repair:
            host.steps.append(repair)
        try:
            sha = choose(state, to)
        except UsageError:
            raise  # a bad --to is bad input, plan or not: exit 2
        except CicdError as error:
            host.refused = str(error)
            plans.append(host)
            continue
        chosen = chosen or sha
        host.steps += _activation(target, sha, state, "rollback")
        if state.current and state.current != sha:
            host.steps.append(f"mark {short(state.current)} bad; record the rollback")
        plans.append(host)
    return Plan("roll back", hosts[0].env, chosen, plans)
