"""``health``: the checks once, the hourly monitor's run, or the outside view.

By hand it checks each environment once; with ``--monitor`` (the hourly workflow)
the results feed the alert state kept on each host (:mod:`cicd.pipeline.monitor`);
with ``--url`` public URLs are checked from this machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from invoke.exceptions import Exit
from invoke.tasks import task

from cicd.tasks import options
from cicd.tasks.boundary import reported, seconds
from cicd.tasks.documents import finish, host_row
from cicd.tasks.hosts import env_targets, first_env_target, host_label, notifier

if TYPE_CHECKING:
    from cicd.host.target import Target


@task(
    name="health",
    help={
        "env": options.ENV_ONE_OR_ALL,
        "all": "Every configured environment (the default when --env is not given).",
        "monitor": "Keep alert state: alert after 3 failures, resolve after 2 passes.",
        "json": options.JSON,
        "url": "Public URLs to check from this machine instead (comma or space "
        "separated): the outside view of a VM.",
        "patience": "With --monitor: keep re-checking a down environment for up to "
        "this many seconds (what the background re-checker that a run starts "
        "while an environment is down does).",
    },
)
def health(
    c: Any,
    env: str = "",
    all: bool = False,
    monitor: bool = False,
    json: bool = False,
    url: str = "",
    patience: str = "",
) -> None:
    """Run the health checks once; exit 1 if any environment fails.

    With --monitor (the hourly workflow), results feed a Gatus-style state kept on
    each host: a failing check is retried (monitor.retry_interval apart), an alert
    goes to Discord after 3 consecutive failures, a reminder at most every 6 h while
    down; a down environment is re-checked within the run (monitor.retries), then
    by a re-checker in the background every monitor.retry_interval until the next
    run (monitor.patience), and "recovered" is said after 2 consecutive passes.
    Never-deployed environments are skipped; every check is kept in monitor.jsonl
    (for invoke report); https certificates with fewer than monitor.cert_days days
    left are alerted.

    With --url, public URLs are checked from here as a visitor would (confirmed
    failures alerted), so a VM that is down is noticed from outside.
    """
    summary = "health" if monitor else ""
    with reported("health" if json else "", env or None, summary=summary):
        wait = _patience(env, all, monitor, patience)
        if url:
            results = _check_public_urls(c, url, bool(env or all or monitor), json)
        else:
            results = _check_environments(c, env, monitor, wait, json)
        _render_health(results, env, json=json, monitor=monitor)


def _patience(env: str, all_envs: bool, monitor: bool, patience: str) -> float:
    """The seconds ``--patience`` gives, once the options are known to agree.

    Raises:
        UsageError: ``--env`` with ``--all``, or ``--patience`` without
            ``--monitor``; nothing was checked.
    """
    from cicd.core.errors import UsageError

    if env and all_envs:
        raise UsageError("give --env NAME or --all, not both")
    wait = seconds(patience, "--patience") or 0.0
    if wait and not monitor:
        raise UsageError("--patience takes seconds (0 or more), with --monitor")
    return wait


def _check_environments(
    c: Any, env: str, monitor: bool, wait: float, quiet: bool
) -> dict[str, dict[str, Any]]:
    """Check ``env`` (or every environment) on each host: one row per host label.

    With ``monitor`` the checks feed the alert state (and ``wait`` is the
    ``--patience``); ``quiet`` (``--json``) prints no line per host.
    """
    from cicd.pipeline.status import health_line

    results: dict[str, dict[str, Any]] = {}
    for t in env_targets(c, env):
        if monitor:
            ok, reason, skipped, extra = _monitor_host(t, wait, quiet)
        else:
            (ok, reason), skipped, extra = health_line(t), False, {}
        label = host_label(t)
        results[label] = host_row(t, **{**extra, "ok": ok, "detail": reason})
        if not quiet:
            word = "skipped" if skipped else "ok" if ok else "FAIL"
            print(f"{label}: {word} — {reason}")
    return results


def _monitor_host(
    t: Target, wait: float, quiet: bool
) -> tuple[bool, str, bool, dict[str, Any]]:
    """One monitor run on one host: checks, alert state, the re-checker's hand-over.

    Returns:
        Whether it passed, why, whether it was skipped (never deployed), and the
        row's fields: skipped, checks, status (up/down), certificates (days left).
    """
    from cicd.pipeline import monitor as health_monitor

    if not wait:
        # This run takes over from an earlier run's re-checker.
        health_monitor.stop_rechecker(t)
    done = health_monitor.run_monitor(t, notifier(t), patience=wait)
    if wait:
        from cicd.commands.files import remove

        t.runner.run(remove(t.paths.rechecker))
    elif done.status == "down" and not done.skipped:
        background = health_monitor.recheck_in_background(t)
        if background and not quiet:
            print(f"{t.env}: {background}")
    return done.ok, done.reason, done.skipped, done.as_dict()


def _render_health(
    results: dict[str, dict[str, Any]], env: str, *, json: bool, monitor: bool
) -> None:
    """Render the checks' document (``--json``, the monitor's summary).

    Raises:
        Exit: Code 1, naming what is unhealthy.
    """
    failed = [name for name, r in results.items() if not r["ok"]]
    unhealthy = f"unhealthy: {', '.join(failed)}" if failed else None
    if json or monitor:
        # The hourly monitor's job shows its checks; a health check by hand
        # inside another job leaves that job's summary alone.
        finish(
            "health",
            list(results.values()),
            json=json,
            env=env or None,
            ok=not failed,
            error=unhealthy,
            summarize=monitor,
        )
    if failed:
        raise Exit(unhealthy, code=1)


def _check_public_urls(c: Any, urls: str, mixed: bool, quiet: bool) -> dict[str, Any]:
    """Check public URLs from this machine (``health --url``): one row per URL."""
    from urllib.parse import urlsplit

    from cicd.core.errors import UsageError, clip
    from cicd.pipeline.outside import check_outside

    if mixed:
        raise UsageError(
            "--url checks public URLs from this machine: give it without --env, "
            "--all or --monitor"
        )
    listed = urls.replace(",", " ").split()
    for one in listed:
        if not one.startswith(("http://", "https://")):
            raise UsageError(f"--url: not an http(s) URL: {clip(one, 80)!r}")
    first = first_env_target(c)
    rows: dict[str, Any] = {}
    for found in check_outside(listed, notifier(first), first.settings.monitor):
        # env and host as in every JSON row: no environment, the URL's host.
        where = urlsplit(found.url).netloc
        rows[found.url] = {"env": None, "host": where, "url": found.url}
        rows[found.url].update(found.as_dict())
        if not quiet:
            cert = f"; {found.certificate.describe()}" if found.certificate else ""
            word = "ok" if found.ok else "FAIL"
            print(f"{found.url}: {word} — {found.reason}{cert}")
    return rows
