"""What a deploy or a rollback does on one host, decided from facts read there.

One computation for ``--plan`` and the run, as pyinfra has it: the plan reads a
host's facts (:func:`cicd.pipeline.plan.read_facts`) and prints the steps the
functions below return; the run asks the same functions at the same decision
points (which slot, reuse or export, nothing to do) and records, in the ledger's
``actions``, the name of each step it carried out. A test runs both on every
situation the plan covers and compares the names.

Everything here is pure: facts in, steps out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from cicd.core.config_schema import SLOTS
from cicd.core.lock_details import describe
from cicd.core.messages import short
from cicd.core.state import EnvState


@dataclass(frozen=True)
class Step:
    """One step of a deploy or rollback on one host.

    Attributes:
        action: Its name, as the ledger's ``actions`` records it (``export``,
            ``start-slot``, ``switch``...).
        text: What a person reads in ``--plan``.
    """

    action: str
    text: str


@dataclass(frozen=True)
class SlotFacts:
    """The blue/green slots of one environment on one host.

    Attributes:
        configured: haproxy already routes this environment (not the first switch).
        live: The slot haproxy routes to, else the last switch's choice (None:
            none yet, or haproxy is not configured).
        intended: The last switch's choice, even when haproxy is not configured.
        releases: The release each slot points at.
        ready: The slots whose instance answers every check now. Only the slots
            that run the release being deployed are probed: no other slot's
            readiness changes a decision.
        adopt: On a swarm run as one service before blue/green, that service's
            release: the blue slot adopts it as it runs (``live`` is then blue).
    """

    configured: bool
    live: str | None
    intended: str | None
    releases: dict[str, str | None]
    ready: frozenset[str] = frozenset()
    adopt: str | None = None


@dataclass(frozen=True)
class SlotChoice:
    """Where a release goes live behind haproxy.

    Attributes:
        how: ``serving`` (it already serves on the live slot: nothing to start),
            ``warm`` (it runs ready on the idle slot: switch back to it) or
            ``start`` (start it on ``slot``).
        slot: The slot it serves from afterwards.
    """

    how: str
    slot: str


@dataclass(frozen=True)
class HostFacts:
    """What one host says before a deploy or rollback (read, nothing changed).

    Attributes:
        host: The host's name.
        state: The environment's state, replayed from its ledger and files.
        unfinished: An unfinished switch, described ("" when there is none).
        exported: The release being deployed is already exported.
        serving_ready: The app answers its checks now (probed only when the
            release being deployed is already current and settled).
        slots: The blue/green slots, or None when the app runs in place.
        swarm: The app runs on a swarm (an image per sha; blue/green services
            behind haproxy, else one service rolled out node by node).
        checks: The readiness checks, in words.
        keep: Releases kept (``keep``).
        warm: Seconds a previous release stays warm after a deploy.
        persistent: What a production backup archives.
        source: Where releases are exported from.
        ports: Each slot's port.
        smoke_pages: Pages a deploy opens in a browser on the new release before
            users get it (0: no page smoke here, see
            :func:`cicd.pipeline.release_smoke.smoke_planned`).
        max_load: The slowest a page may load, in seconds (``smoke.max_load``).
    """

    host: str
    state: EnvState
    unfinished: str = ""
    exported: bool = False
    serving_ready: bool = False
    slots: SlotFacts | None = None
    swarm: bool = False
    checks: str = ""
    keep: int = 5
    warm: float = 0.0
    persistent: tuple[str, ...] = ()
    source: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    smoke_pages: int = 0
    max_load: float = 10.0


def other(slot: str) -> str:
    """The slot that is not ``slot``."""
    return SLOTS[1] if slot == SLOTS[0] else SLOTS[0]


def choose_slot(slots: SlotFacts, sha: str, *, fresh: bool = False) -> SlotChoice:
    """Where ``sha`` goes live: the slot that already serves it, a warm one, or new.

    Args:
        slots: The slots' facts.
        sha: The release going live.
        fresh: Start a new instance even though one serves (a restart that
            re-reads the app's files).
    """
    live = slots.live
    if not fresh:
        for slot in SLOTS:
            if slot != live and slots.releases.get(slot) == sha and slot in slots.ready:
                return SlotChoice("warm", slot)
        if live and slots.releases.get(live) == sha and live in slots.ready:
            return SlotChoice("serving", live)
    slot = other(live) if live else (slots.intended or SLOTS[0])
    return SlotChoice("start", other(live) if slot == live else slot)


def is_noop(facts: HostFacts, sha: str) -> bool:
    """Whether ``sha`` already serves, settled and answering: nothing to do."""
    state = facts.state
    return state.current == sha and state.settled and facts.serving_ready


def rollback_point(state: EnvState) -> str | None:
    """The release a failed deploy goes back to.

    A run killed mid-deploy leaves ``current`` unsettled: the rollback point is
    then the release that ran before that run's switch.
    """
    return state.current if state.settled else state.previous


def deployed(state: EnvState, sha: str, previous: str | None) -> EnvState:
    """The state after a deploy of ``sha`` whose rollback point is ``previous``."""
    releases = (sha, *(r for r in state.releases if r != sha))
    return replace(state, current=sha, previous=previous, releases=releases)


def doomed_releases(state: EnvState, keep: int) -> list[str]:
    """The releases pruning removes: all but the newest ``keep`` and those in use.

    Kept besides: current, previous and the last validated release.
    """
    if len(state.releases) <= keep:
        return []
    kept = set(state.releases[:keep])
    kept |= {s for s in (state.current, state.previous, state.validated) if s}
    return [sha for sha in state.releases if sha not in kept]


def deploy_steps(
    facts: HostFacts, sha: str, *, backup: bool = False, validated: bool = False
) -> list[Step]:
    """The steps of a deploy of ``sha`` on one host, in the order they run.

    Args:
        facts: The host's facts.
        sha: The release deployed.
        backup: Persistent data is archived first (production).
        validated: CI validated ``sha`` (production carries preprod's validation
            over, and a validated release is never pruned).
    """
    state = facts.state
    steps = _opening(facts)
    if is_noop(facts, sha):
        return steps + [Step("noop", f"{short(sha)} already serves: nothing to do")]
    if facts.exported:
        steps.append(Step("reuse", f"reuse releases/{short(sha)} (already exported)"))
    else:
        steps.append(
            Step(
                "export",
                f"export releases/{short(sha)} from {facts.source} and prepare its "
                "venv (reused when its requirements are unchanged)",
            )
        )
    if facts.swarm:
        steps.append(
            Step(
                "image",
                f"build the image of {short(sha)} and give it to the swarm's nodes",
            )
        )
    if backup:
        kept = ", ".join(facts.persistent) or "nothing"
        steps.append(Step("backup", f"back up {kept} into backups/"))
    steps += activation_steps(facts, sha, "deploy", rollback_point(state))
    steps.append(Step("record", "record the deploy in the ledger"))
    after = deployed(state, sha, rollback_point(state))
    if validated:
        after = replace(after, validated=sha)
    doomed = doomed_releases(after, facts.keep)
    if doomed:
        names = ", ".join(short(s) for s in doomed)
        steps.append(Step("prune", f"prune {len(doomed)} old release(s): {names}"))
    return steps


def rollback_steps(facts: HostFacts, sha: str) -> list[Step]:
    """The steps of a rollback to ``sha`` on one host, in the order they run."""
    state = facts.state
    steps = _opening(facts) + activation_steps(facts, sha, "rollback", state.current)
    if state.current and state.current != sha and state.current not in state.bad:
        steps.append(Step("mark-bad", f"mark {short(state.current)} bad"))
    steps.append(Step("record", "record the rollback in the ledger"))
    return steps


def activation_steps(
    facts: HostFacts, sha: str, op: str, running: str | None
) -> list[Step]:
    """How ``sha`` goes live on one host: in place, on the swarm, or blue/green.

    Args:
        facts: The host's facts.
        sha: The release going live.
        op: ``deploy`` or ``rollback`` (a deploy keeps the previous release warm).
        running: The release that serves until then.
    """
    if facts.slots is None:
        return _in_place(facts, sha, running) + _smoke(
            facts, op, "back to the previous"
        )
    slots = facts.slots
    choice = choose_slot(slots, sha)
    if choice.how == "serving":
        return [Step("already-serving", f"{short(sha)} already serves there")]
    steps = _adopt(slots.adopt)
    if choice.how == "warm":
        steps.append(
            Step(
                "switch-back",
                f"switch back to the {choice.slot} slot: {short(sha)} still answers "
                "there (no restart)",
            )
        )
    else:
        port = facts.ports.get(choice.slot, 0)
        steps += [
            Step(
                "start-slot",
                f"start {short(sha)} on the idle {choice.slot} slot (port {port})",
            ),
            Step(
                "readiness",
                f"readiness on the {choice.slot} slot: {facts.checks}; if not ready: "
                f"never routed to ({short(running)} serves throughout), marked bad",
            ),
        ]
        steps += _smoke(facts, op, "never routed to")
    live = slots.live
    first = (
        "; the first switch behind haproxy here: the app run in place stops and "
        "haproxy takes its port (a second or two)"
        if not slots.configured
        else ""
    )
    steps.append(
        Step("switch", f"switch haproxy {live or 'nothing'} → {choice.slot}{first}")
    )
    if live and live != choice.slot:
        steps.append(_after_switch(facts, live, op, running))
    return steps


def _adopt(single: str | None) -> list[Step]:
    """A swarm's single service of before blue/green becoming the blue slot."""
    if not single:
        return []
    return [
        Step(
            "adopt",
            f"the swarm's single service ({short(single)}, on the blue slot's "
            "port) becomes the blue slot as it runs; haproxy's config takes the "
            "blue/green shape at the switch (a seamless reload, no outage)",
        )
    ]


def _opening(facts: HostFacts) -> list[Step]:
    """Taking the lock, and settling an unfinished switch first."""
    state = facts.state
    held = f": HELD by {describe(state.lock)}" if state.lock else " (free)"
    steps = [Step("lock", f"take the {state.env} lock{held}")]
    if facts.unfinished:
        steps.append(
            Step("repair", f"settle an unfinished switch first: {facts.unfinished}")
        )
    return steps


def _in_place(facts: HostFacts, sha: str, running: str | None) -> list[Step]:
    switch = Step(
        "switch-current",
        f"switch current {short(running)} → {short(sha)}",
    )
    if facts.swarm:
        start = Step(
            "roll-out",
            f"roll {short(sha)} out on the swarm service, node by node",
        )
    else:
        start = Step("restart", "restart the app in place (down until it answers)")
    ready = Step(
        "readiness",
        f"readiness: {facts.checks}; if not ready: back to {short(running)}, "
        f"{short(sha)} marked bad",
    )
    return [switch, start, ready]


def keeps_warm(op: str, running: str | None, warm: float) -> bool:
    """Whether the slot that served before stays up after the switch.

    After a deploy the previous release stays warm for ``proxy.warm`` seconds (a
    rollback to it is then a switch back); after a rollback or a repair the
    abandoned release is stopped.
    """
    return op == "deploy" and bool(running) and warm > 0


def _smoke(facts: HostFacts, op: str, if_failed: str) -> list[Step]:
    """A deploy's page smoke of the new release, where one runs."""
    if op != "deploy" or not facts.smoke_pages:
        return []
    return [
        Step(
            "smoke",
            f"open the {facts.smoke_pages} page(s) in a browser, each within "
            f"{facts.max_load:g}s and with no exception; a page that fails: "
            f"{if_failed}, marked bad",
        )
    ]


def _after_switch(facts: HostFacts, live: str, op: str, running: str | None) -> Step:
    """What becomes of the slot that served before: kept warm, or stopped."""
    if keeps_warm(op, running, facts.warm):
        return Step(
            "keep-warm",
            f"keep {short(running)} warm on the {live} slot for {facts.warm:g}s",
        )
    return Step("stop-previous", f"stop the {live} slot")
