"""``deploy.preprod`` and ``deploy.prod``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from invoke.tasks import task

from cicd.tasks import options
from cicd.tasks.boundary import lock_waiting, reported
from cicd.tasks.documents import finish, on_github
from cicd.tasks.hosts import (
    configured_fleet,
    notifier,
    resume_watches,
    targets,
    task_settings,
)

if TYPE_CHECKING:
    from cicd.pipeline.preflight import PreflightRefused


def _plan_prod(
    hosts: list[Any], preprod: Any, sha: str, force: bool, reason: str, json: bool
) -> None:
    """``deploy.prod --plan``: production's own checks, the pre-flight, the steps.

    The checks are the run's own (:func:`cicd.pipeline.production.decide_prod`,
    :func:`cicd.pipeline.preflight.run_preflight` read-only), so the plan refuses
    exactly what the run would.
    """
    from cicd.pipeline.production import check_reason, decide_prod
    from cicd.pipeline.preflight import run_preflight
    from cicd.core.errors import UsageError
    from cicd.transport.parallel import results_by_host
    from cicd.pipeline.plan import plan_deploy
    from cicd.tasks.documents import emit_json

    check_reason(force, reason)
    states = results_by_host(lambda t: t.state(), hosts)
    pre = preprod.state()
    decision = decide_prod(
        pre,
        list(states.values()),
        hosts[0].resolve(sha) if sha else None,
        force=force,
    )
    if decision.sha is None:
        raise UsageError(decision.refused)  # nothing to plan
    check = run_preflight(hosts, preprod, decision.sha, plan=True)
    refused = decision.refused or ("" if check.ok or force else check.refusal())
    plan = plan_deploy(
        hosts,
        decision.sha,
        backup=True,
        validated=pre.is_good(decision.sha),
        refused=refused,
    )
    if not json:
        print("\n".join([*check.lines(), plan.text()]))
        return
    emit_json(
        "deploy.prod",
        [host.as_dict() for host in plan.hosts],
        env=plan.env,
        plan=True,
        sha=plan.sha,
        notes=plan.notes,
        preflight=check.as_dict(),
    )


def _refused(error: PreflightRefused, json: bool) -> Exception:
    """A refused pre-flight: its document (``--json``, summary), then exit 2."""
    from invoke.exceptions import Exit

    from cicd.core.errors import clip
    from cicd.core.redact import redact
    from cicd.transport.runner import flush_all

    # What the pre-flight deferred (a scratch directory removed) runs first.
    flush_all()
    message = clip(redact(str(error)), 400)
    finish(
        "deploy.prod",
        [],
        json=json,
        env="prod",
        ok=False,
        error=message,
        exit_code=error.exit_code,
        preflight=error.preflight.as_dict(),
    )
    return Exit(f"error: {message}", code=error.exit_code)


def result_document(
    task_name: str,
    result: Any,
    *,
    json: bool = True,
    github: dict[str, Any] | None = None,
    **extra: Any,
) -> None:
    """Render a deploy's result: ``--json`` (one shape for all), job summary."""
    fields = result.as_dict()
    hosts = [{"env": fields["env"], **host} for host in fields.pop("hosts")]
    env = fields.pop("env")
    finish(task_name, hosts, json=json, env=env, github=github, **fields, **extra)


@task(
    help={
        "sha": options.SHA + "; default: $GITHUB_SHA.",
        "env": "Environment to deploy to (default: preprod).",
        "watch": "Then watch CI in the background; roll back if CI fails.",
        "json": options.JSON,
        "lock_wait": options.LOCK_WAIT,
        "plan": options.PLAN,
    }
)
def preprod(
    c: Any,
    sha: str = "",
    env: str = "preprod",
    watch: bool = False,
    json: bool = False,
    lock_wait: str = "",
    plan: bool = False,
) -> None:
    """Deploy a commit to preprod at once (deploy first, CI is watched afterwards).

    Validates the sha, takes the lock, exports releases/<sha> (or reuses it), switches
    `current`, restarts the app and waits until it is ready. If it never becomes ready
    the previous release is switched back and restarted, the new one is marked bad, and
    the task exits 1.
    """
    with reported("deploy.preprod" if json else "", env, summary="deploy.preprod"):
        from cicd.core.errors import UsageError
        from cicd.pipeline import watch as ci_watch
        from cicd.pipeline.deploy import deploy_preprod

        revision = sha or os.environ.get("GITHUB_SHA", "")
        if not revision:
            raise UsageError("--sha is required (or set GITHUB_SHA)")
        hosts = targets(c, env)
        if plan:
            from cicd.pipeline.plan import plan_deploy
            from cicd.tasks.documents import show_plan as show

            show(plan_deploy(hosts, hosts[0].resolve(revision)), "deploy.preprod", json)
            return
        n = notifier(hosts[0], hosts)
        with lock_waiting(lock_wait):
            result = deploy_preprod(
                hosts, revision, n, batch=hosts[0].settings.batch, watch=watch
            )
        # A watcher killed earlier (kill -9, reboot) is picked up by the next deploy.
        resume_watches(c, hosts, n)
        if watch:
            fleet = configured_fleet(c, hosts) is not None
            log = ci_watch.start_detached(hosts[0], result.sha, fleet=fleet)
            n.say(f"watching CI for {result.sha[:7]} in the background; log: {log}")
        result_document("deploy.preprod", result, json=json, github=on_github(hosts))


@task(
    help={
        "confirm": "Must be exactly DEPLOY; anything else cancels with exit 2.",
        "sha": options.SHA + ". Default: preprod's last CI-validated sha, unless "
        "it was rolled back in prod (then refused: name a sha).",
        "force": "Deploy a sha CI has not validated, one rolled back in prod "
        "(with --sha), or one whose pre-flight failed; needs --reason. Recorded "
        "in the ledger.",
        "reason": "Why (required with --force): recorded in the ledger and sent "
        "with the deploy's start message.",
        "json": options.JSON,
        "lock_wait": options.LOCK_WAIT,
        "plan": options.PLAN + " No --confirm needed.",
    }
)
def prod(
    c: Any,
    confirm: str = "",
    sha: str = "",
    force: bool = False,
    json: bool = False,
    lock_wait: str = "",
    plan: bool = False,
    reason: str = "",
) -> None:
    """Deploy a CI-validated sha to production, after typing DEPLOY.

    Prints the PREPROD and PROD shas first, runs the pre-flight (preprod serves the
    sha and is healthy, every page smoked in Chromium, preprod's log clean, the
    backup read back and a restore tried, the deploy window) and refuses with exit
    2 if an item fails, backs up the persistent data, then switches, restarts and
    checks readiness; on failure the previous production release is restored
    automatically. A release rolled back in production is never the default:
    redeploying it takes --sha, --force and --reason.
    """
    with reported("deploy.prod" if json else "", "prod", summary="deploy.prod"):
        from cicd.pipeline.preflight import PreflightRefused
        from cicd.pipeline.production import deploy_prod

        settings = task_settings(c)
        hosts = targets(c, "prod", settings)
        preprod_target = targets(c, "preprod", settings)[0]
        if plan:
            _plan_prod(hosts, preprod_target, sha, force, reason, json)
            return
        seen: list[Any] = []
        try:
            with lock_waiting(lock_wait):
                result = deploy_prod(
                    hosts,
                    preprod_target,
                    sha or None,
                    confirm=confirm,
                    force=force,
                    notifier=notifier(hosts[0], hosts),
                    batch=hosts[0].settings.batch,
                    reason=reason,
                    seen=seen.append,
                )
        except PreflightRefused as error:
            raise _refused(error, json) from None
        shown = {"preflight": seen[0].as_dict()} if seen else {}
        github = on_github(hosts)
        result_document("deploy.prod", result, json=json, github=github, **shown)
