"""Production: a typed confirmation, production's own checks, a backup first.

``deploy.prod`` deploys a sha CI validated on preprod (by default preprod's last
validated one) after the typed confirmation ``DEPLOY``. It refuses a sha CI has not
validated, or one rolled back in production, unless forced with a reason that the
ledger and the notification record (:func:`decide_prod`, which ``--plan`` asks
too). Then the pre-flight (:mod:`cicd.pipeline.preflight`) checks preprod, its
pages, its log, the backups and the deploy window before anything changes. The
deploy itself is :func:`cicd.pipeline.deploy.run_deploy`'s, with a backup of
persistent data before the switch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cicd.core import messages
from cicd.core.errors import UsageError, clip
from cicd.core.messages import short
from cicd.host.lock import REASON_LIMIT
from cicd.pipeline.deploy import DeployProfile, DeployResult, run_deploy
from cicd.pipeline.preflight import (
    Preflight,
    PreflightRefused,
    forced_items,
    run_preflight,
)
from cicd.transport.parallel import results_by_host

if TYPE_CHECKING:
    from cicd.core.ledger import Event
    from cicd.core.state import EnvState
    from cicd.host.target import Target
    from cicd.reporting.notify import Notifier

#: What ``--confirm`` must say, exactly.
CONFIRMATION = "DEPLOY"


@dataclass(frozen=True)
class ProdDecision:
    """Which sha ``deploy.prod`` deploys, or why it refuses.

    Computed by :func:`decide_prod` for the run and for ``--plan`` alike.

    Attributes:
        sha: The full sha chosen (None: there was nothing to choose).
        refused: The one-line refusal, "" when the deploy goes ahead.
        detail: The refusal's ``detail`` in the ledger.
        forced: What ``--force`` overrides ("" when nothing is overridden).
    """

    sha: str | None
    refused: str = ""
    detail: str = ""
    forced: str = ""


def check_reason(force: bool, reason: str) -> str:
    """The ``--reason`` on one line and bounded; ``--force`` requires one.

    Every override of production's checks is on purpose, so the ledger and the
    notification say why.

    Raises:
        UsageError: ``--force`` without a reason; nothing was changed.
    """
    reason = clip(" ".join(reason.split()), REASON_LIMIT)
    if force and not reason:
        raise UsageError(
            '--force needs --reason "...": say why production\'s checks are '
            "overridden (it goes into the ledger and the notification); nothing "
            "was changed"
        )
    return reason


def _rolled_back(event: Event) -> str:
    """When, by whom and why a release was marked bad in production, in words."""
    detail = clip(event.detail.partition("\n")[0], 80)
    rolled = detail.startswith("rolled back")
    said = "was rolled back in prod" if rolled else "was marked bad in prod"
    if event.time:
        said += f" on {event.time[:16].replace('T', ' ')} UTC"
    if event.actor:
        said += f" by {clip(event.actor, 40)}"
    why = detail.removeprefix("rolled back").strip(" :()") if rolled else detail
    return said + (f" ({why})" if why else "")


def decide_prod(
    preprod: EnvState,
    prod: Sequence[EnvState],
    sha: str | None,
    *,
    force: bool,
) -> ProdDecision:
    """Choose production's sha and apply its checks: one rule for a run and a plan.

    A release rolled back in production (marked bad there, as every rollback marks
    the release it abandons) is never the default, even when it is still preprod's
    last validated sha; redeploying it takes ``--sha`` and ``--force`` (and the
    reason :func:`check_reason` requires). A sha CI has not validated on preprod
    takes ``--force``.

    Args:
        preprod: Preprod's state: its validated sha is the default.
        prod: Production's state on every host.
        sha: The full sha named with ``--sha``, or None for the default.
        force: ``--force`` was given.

    Returns:
        The decision: the sha, and why it is refused or what is forced.
    """
    chosen = sha or preprod.validated
    if not chosen:
        return ProdDecision(
            None,
            refused="preprod has no CI-validated sha yet; pass --sha (and --force "
            '--reason "..." if CI has not validated it)',
            detail="no validated sha on preprod",
        )
    forced = []
    bad = next((e for e in (s.marked_bad(chosen) for s in prod) if e), None)
    if bad is not None:
        refusal = _refuse_rolled_back(chosen, bad, named=sha is not None, force=force)
        if refusal is not None:
            return refusal
        forced.append("rolled back in prod")
    if not preprod.is_good(chosen):
        if not force:
            return ProdDecision(
                chosen,
                refused=f"sha {short(chosen)} has not been validated by CI on preprod "
                '(or was marked bad); pass --force --reason "..." to deploy it anyway',
                detail="not validated by CI",
            )
        forced.append("not validated by CI")
    return ProdDecision(chosen, forced=", ".join(forced))


def _refuse_rolled_back(
    chosen: str, bad: Event, *, named: bool, force: bool
) -> ProdDecision | None:
    """Refuse a release rolled back in production, unless named and forced."""
    if not named:
        return ProdDecision(
            chosen,
            refused=f"{short(chosen)}, preprod's last CI-validated sha, "
            f"{_rolled_back(bad)}: deploy a newer validated sha with --sha SHA, "
            f"or redeploy this one on purpose with --sha {short(chosen)} "
            '--force --reason "..."',
            detail="default skipped: rolled back in prod",
        )
    if not force:
        return ProdDecision(
            chosen,
            refused=f"{short(chosen)} {_rolled_back(bad)}: to redeploy it on "
            'purpose pass --force --reason "..."',
            detail="rolled back in prod",
        )
    return None


def deploy_prod(
    hosts: list[Target],
    preprod: Target,
    revision: str | None,
    *,
    confirm: str,
    force: bool,
    notifier: Notifier,
    batch: int = 0,
    reason: str = "",
    seen: Callable[[Preflight], None] | None = None,
) -> DeployResult:
    """Deploy a CI-validated sha to production after a typed confirmation.

    Args:
        hosts: Production on every host (one for a single VM).
        preprod: The environment whose validated sha is the default.
        revision: The sha to deploy; defaults to preprod's last validated sha.
        confirm: Must be exactly ``DEPLOY``.
        force: Deploy a sha CI has not validated, one rolled back in production,
            or one whose pre-flight failed (recorded in the ledger).
        notifier: Where messages go.
        batch: Hosts activated at a time (0: all at once).
        reason: Why (``--reason``, required with ``force``): recorded and sent.
        seen: Given the pre-flight once it ran (for ``--json`` and the summary).

    Raises:
        UsageError: ``force`` without a reason, not confirmed, no sha, not
            validated, rolled back in production, or a failed pre-flight
            (:class:`PreflightRefused`); nothing changed.
        DeployFailed: Not ready; the previous production release runs again.
    """
    first = hosts[0]
    reason = check_reason(force, reason)
    _check_confirmation(hosts, confirm, notifier)
    # A revision that names no commit is bad input: one line, before anything
    # else is said.
    wanted = first.resolve(revision) if revision else None
    pre = preprod.state()
    # Production's history too: a release rolled back there is not the default.
    states = results_by_host(lambda t: t.state(), hosts)
    notifier.say(
        f"PREPROD {short(pre.current)} (validated {short(pre.validated)})  →  "
        f"PROD {short(states[first].current)}"
    )
    decision = decide_prod(pre, list(states.values()), wanted, force=force)
    if decision.refused or decision.sha is None:
        raise _refuse(
            hosts,
            decision.detail,
            f"{decision.refused}; nothing was changed",
            decision.sha,
        )
    sha = decision.sha
    check = _preflight(hosts, preprod, sha, force=force, notifier=notifier)
    (seen or (lambda _: None))(check)
    # Validated on preprod: production's own rollbacks may pick it again.
    validated_by = preprod.env if pre.is_good(sha) else None
    profile = _prod_profile(first, sha, decision, reason, batch, validated_by, check)
    return run_deploy(hosts, sha, notifier, profile)


def _preflight(
    hosts: list[Target], preprod: Target, sha: str, *, force: bool, notifier: Notifier
) -> Preflight:
    """Check the runtime's tools, then run the pre-flight, saying each item.

    Raises:
        PreflightRefused: An item failed and ``force`` was not given (recorded
            on every host, and sent).
    """
    results_by_host(lambda t: t.tools_runtime().preflight(), hosts)
    items = hosts[0].settings.preflight
    if items:
        # Its results are said once, in the start (or refusal) message.
        notifier.say(f"pre-flight of {short(sha)}: {', '.join(items)}")
    check = run_preflight(hosts, preprod, sha)
    if not check.ok and not force:
        notifier.send(messages.prod_refused(hosts[0].env, sha, check.lines()))
        raise _refuse(hosts, check.detail(), "", sha, PreflightRefused(check))
    return check


def _check_confirmation(hosts: list[Target], confirm: str, notifier: Notifier) -> None:
    """Refuse (and record) anything but the exact typed confirmation.

    Raises:
        UsageError: Not ``DEPLOY``; nothing changed.
    """
    if confirm != CONFIRMATION:
        notifier.send(messages.prod_cancelled(hosts[0].env, confirm, CONFIRMATION))
        raise _refuse(
            hosts,
            f"confirmation {confirm!r}",
            f"confirmation must be exactly {CONFIRMATION} (got {confirm!r}); "
            "nothing was changed",
        )


def _refuse(
    hosts: list[Target],
    detail: str,
    message: str,
    sha: str | None = None,
    error: UsageError | None = None,
) -> UsageError:
    """Record production's refusal on every host; the error to raise."""
    for target in hosts:
        target.ensure_dirs()
        target.event("refused", sha=sha, outcome="refused", detail=detail)
    return error or UsageError(message)


def _prod_profile(
    first: Target,
    sha: str,
    decision: ProdDecision,
    reason: str,
    batch: int,
    validated_by: str | None,
    check: Preflight,
) -> DeployProfile:
    """What production's deploy says and adds: backup, forced checks, reason."""
    forced = ", ".join(f for f in (decision.forced, forced_items(check)) if f)
    said = [f"forced: {forced}"] if forced else []
    return DeployProfile(
        started=messages.prod_started(
            first.env,
            sha,
            forced=forced,
            reason=reason,
            preflight=check.lines(),
        ),
        succeeded=messages.prod_succeeded(
            first.env, sha, first.settings.public_url or first.settings.url
        ),
        batch=batch,
        backup=True,
        detail="; ".join(said + ([f"reason: {reason}"] if reason else [])),
        validated_by=validated_by,
    )
