"""``--plan``: what a deploy or a rollback would do, step by step, host by host.

A plan reads what a run would read — each host's state (one round trip), whether
an unfinished switch waits, which slot haproxy routes to and whether the slots
that run the release answer — and changes nothing: no lock, no repair, no ledger
line, no notification. The steps come from :mod:`cicd.core.decisions`, the
functions the run itself asks at each decision point, and the run records the
names of the steps it carried out (the ledger's ``actions``): a test holds the two
equal in every situation a plan covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cicd.core import decisions
from cicd.core.decisions import HostFacts, Step
from cicd.core.messages import short
from cicd.host import intent
from cicd.pipeline.activation import already_ready
from cicd.pipeline.release_smoke import smoke_planned

if TYPE_CHECKING:
    from cicd.core.state import EnvState
    from cicd.host.target import Target


@dataclass
class HostPlan:
    """The steps one host would go through."""

    env: str
    host: str
    planned: list[Step] = field(default_factory=list)
    #: Why the run would stop before changing anything here, if it would.
    refused: str = ""

    @property
    def steps(self) -> list[str]:
        """The steps, in words."""
        return [step.text for step in self.planned]

    def as_dict(self) -> dict[str, Any]:
        """The JSON row of this host: the steps in words, and their names.

        ``actions`` are the names the run records in the ledger's ``actions``.
        """
        return {
            "env": self.env,
            "host": self.host,
            "steps": self.steps,
            "actions": [step.action for step in self.planned],
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


def read_facts(target: Target, sha: str, state: EnvState | None = None) -> HostFacts:
    """What the host says before ``sha`` is deployed or rolled back to there.

    Only reads: the state (unless given), an unfinished switch, the slots (probing
    those that run ``sha``), and whether the app answers when ``sha`` already
    serves.
    """
    state = state or target.state()
    pending = intent.read(target.context)
    settings = target.settings
    health = settings.health
    paths = ", ".join(c.url for c in health.checks)
    noop_possible = state.current == sha and state.settled
    return HostFacts(
        host=target.runner.host,
        state=state,
        unfinished=intent.describe(pending) if pending else "",
        exported=sha in state.releases,
        serving_ready=noop_possible and already_ready(target),
        slots=target.slots.facts(sha) if target.is_proxied() else None,
        swarm=settings.runtime.kind == "swarm",
        checks=(
            f"{len(health.checks)} check(s) ({paths}), {health.successes} passing "
            f"round(s) in a row, within {health.deadline:g}s"
        ),
        keep=settings.keep,
        warm=settings.proxy.warm,
        persistent=tuple(settings.persistent),
        source=settings.source,
        ports={slot: settings.proxy.slot_port(slot) for slot in ("blue", "green")},
        smoke_pages=(
            len(settings.smoke.pages)
            if smoke_planned(settings, target.runner.remote)
            else 0
        ),
        max_load=settings.smoke.max_load,
    )


def plan_deploy(
    hosts: list[Target],
    sha: str,
    *,
    backup: bool = False,
    validated: bool = False,
    refused: str = "",
) -> Plan:
    """The plan of a deploy of ``sha`` (already resolved) to ``hosts``.

    Args:
        hosts: The environment on every host.
        sha: The full sha.
        backup: Production: persistent data archived first.
        validated: CI validated ``sha`` (production carries it over).
        refused: Why the real run would refuse, if it would: production's checks,
            from :func:`cicd.pipeline.production.decide_prod`.
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
    facts = {target: read_facts(target, sha) for target in hosts}
    # As the run decides: nothing to do only when every host already serves it.
    if not all(decisions.is_noop(f, sha) for f in facts.values()):
        facts = {t: _not_serving(f) for t, f in facts.items()}
    if any(sha in f.state.bad for f in facts.values()):
        notes.append(f"warning: {short(sha)} was marked bad; it is deployed anyway")
    plans = []
    for target, host_facts in facts.items():
        host = HostPlan(target.env, target.runner.host, refused=refused)
        host.planned = decisions.deploy_steps(
            host_facts, sha, backup=backup, validated=validated
        )
        plans.append(host)
    return Plan("deploy", first.env, sha, plans, notes)


def _not_serving(facts: HostFacts) -> HostFacts:
    return replace(facts, serving_ready=False)


def plan_rollback(hosts: list[Target], to: str | None) -> Plan:
    """The plan of a rollback (to ``to``, or the newest validated release)."""
    from cicd.core.errors import CicdError, UsageError
    from cicd.pipeline.rollback import choose

    plans = []
    chosen: str | None = None
    for target in hosts:
        state = target.state()
        host = HostPlan(target.env, target.runner.host)
        try:
            sha = choose(state, to)
        except UsageError:
            raise  # a bad --to is bad input, plan or not: exit 2
        except CicdError as error:
            host.refused = str(error)
            plans.append(host)
            continue
        chosen = chosen or sha
        host.planned = decisions.rollback_steps(read_facts(target, sha, state), sha)
        plans.append(host)
    return Plan("roll back", hosts[0].env, chosen, plans)
