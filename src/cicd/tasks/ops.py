"""Tasks on running environments: rollback, status, releases, logs, down."""

from __future__ import annotations

import sys
from typing import Any

from invoke.tasks import task
from invoke.exceptions import Exit

from cicd.tasks import options
from cicd.tasks.boundary import lock_waiting, reported
from cicd.tasks.documents import emit_json, finish, host_row, on_github
from cicd.tasks.hosts import (
    env_names,
    env_targets,
    first_env_target,
    notifier,
    targets,
    task_settings,
)


@task(
    help={
        "env": "Environment to roll back (default: preprod).",
        "to": "A kept release (sha or prefix). Default: the newest validated, not bad.",
        "json": options.JSON,
        "lock_wait": options.LOCK_WAIT,
        "plan": options.PLAN,
    }
)
def rollback(
    c: Any,
    env: str = "preprod",
    to: str = "",
    json: bool = False,
    lock_wait: str = "",
    plan: bool = False,
) -> None:
    """Roll back to a kept release: switch, restart, wait until ready.

    Needs no network: the release and its dependencies are already on the host. The
    abandoned release is marked bad so no later rollback picks it.
    """
    with reported("rollback" if json else "", env, summary="rollback"):
        from cicd.pipeline.rollback import rollback as do_rollback

        hosts = targets(c, env)
        if plan:
            from cicd.pipeline.plan import plan_rollback
            from cicd.tasks.documents import show_plan as show
            from cicd.pipeline.rollback import check_to

            check_to(to)
            show(plan_rollback(hosts, to or None), "rollback", json)
            return
        with lock_waiting(lock_wait):
            done = do_rollback(hosts, notifier(hosts[0], hosts), to=to or None)
        rows = [host_row(t, **r.as_dict()) for t, r in zip(hosts, done)]
        # The summary's before → after: what was abandoned, and the longest host.
        facts: dict[str, Any] = on_github(hosts)
        if facts and done:
            facts.update(
                abandoned=done[0].abandoned, seconds=max(r.seconds for r in done)
            )
        finish(
            "rollback",
            rows,
            json=json,
            env=env,
            github=facts,
            sha=done[0].sha if done else None,
        )


@task(
    help={
        "env": options.ENV_ONE_OR_ALL,
        "json": options.JSON,
        "repair": "Under the lock, complete or undo an unfinished switch and end a "
        "drift (restart what current names) before showing the status.",
    }
)
def status(c: Any, env: str = "", json: bool = False, repair: bool = False) -> None:
    """Show each environment: current and serving sha, previous, validated, health.

    SERVING is asked of the running process (or container), not of the current
    symlink; a mark (!) and a failed health say they differ. --repair fixes that.

    Exits 1 when an environment that was deployed is served by nothing (its app, or
    haproxy, is down: after a reboot, `invoke start` brings it back); its line says
    so, and with --json the document has "ok": false and each row's "down" says
    why. An environment never deployed is not a failure.
    """
    down: list[str] = []
    with reported("status" if json else "", env or None):
        from cicd.pipeline.status import env_status, format_status

        settings = task_settings(c)
        if repair:
            from cicd.host import lock
            from cicd.pipeline.repair import repair as do_repair

            for name in env_names(settings, only=env):
                hosts = targets(c, name, settings)
                with lock.hold(hosts, "repair"):
                    for t in hosts:
                        done = do_repair(t, notifier(t), thorough=True)
                        said = f"{name}: {done or 'nothing to repair'}"
                        # With --json, stdout is the JSON document alone.
                        print(said, file=sys.stderr if json else sys.stdout)
        rows = [env_status(t) for t in env_targets(c, env, settings)]
        envs = [row["env"] for row in rows]
        down = [
            row["env"] + (f"@{row['host']}" if envs.count(row["env"]) > 1 else "")
            for row in rows
            if row["down"]
        ]
        error = f"nothing serves: {', '.join(down)}" if down else None
        if json:
            emit_json("status", rows, env=env or None, ok=not down, error=error)
        else:
            print(format_status(rows))
    if down:
        raise Exit(f"nothing serves: {', '.join(down)}", code=1)


@task(help={"env": options.ENV_PREPROD, "json": options.JSON})
def releases(c: Any, env: str = "preprod", json: bool = False) -> None:
    """List kept releases, newest first: when and by whom deployed, CI, flags, subject.

    Flags: current, previous, validated, bad. The commit's link is shown when the
    GitHub repository is known (ci.repository or $GITHUB_REPOSITORY), and the CI
    run's when the watcher recorded one.
    """
    with reported("releases" if json else "", env):
        from cicd.reporting.audit import format_releases
        from cicd.pipeline.status import releases_rows

        hosts = targets(c, env)

        def warn(line: str) -> None:
            print(line, file=sys.stderr)

        by_host = [(t, releases_rows(t, warn)) for t in hosts]
        if json:
            rows = [host_row(t, releases=found) for t, found in by_host]
            emit_json("releases", rows, env=env)
            return
        for t, found in by_host:
            if len(hosts) > 1:
                print(f"{t.runner.host}:")
            for line in format_releases(found):
                print(line)
            if not found:
                print(f"{env}: no releases")


@task(
    help={
        "env": options.ENV_PREPROD,
        "follow": "Then print each new line as the app writes it, until Ctrl-C.",
        "lines": "How many of the last lines to print (default: 50).",
    }
)
def logs(c: Any, env: str = "preprod", follow: bool = False, lines: str = "50") -> None:
    """Print the app's last log lines; with -f, follow them (here or with fab -H).

    Under supervisord it is the app's output file (<env>/logs/app.log, or the live
    slot's behind haproxy); under compose, the container's log. With configured
    hosts each host's lines come under its name; follow one with fab -H HOST logs -f.
    """
    with reported():
        from cicd.core.errors import CicdError, UsageError, clip
        from cicd.core.redact import redact

        count = int(lines) if lines.strip().isdigit() else 0
        if count <= 0:
            raise UsageError(
                f"--lines must be a whole number above 0, got {clip(lines, 40)!r}"
            )
        hosts = targets(c, env)
        if follow and len(hosts) > 1:
            raise UsageError(
                f"--follow follows one host and {env} has {len(hosts)}: "
                f"fab -H {hosts[0].runner.host} logs --env {env} --follow"
            )
        for t in hosts:
            if len(hosts) > 1:
                print(f"==> {t.runner.host} <==", flush=True)
            if follow:
                exited = t.runner.stream(t.live_runtime().follow(count))
                if exited:
                    raise CicdError(f"{env}: following the log ended (exit {exited})")
                continue
            text = redact(t.live_runtime().logs(count))
            if text:
                sys.stdout.write(text if text.endswith("\n") else text + "\n")
            else:
                print(f"{env}: the app has written nothing yet", file=sys.stderr)


@task
def down(c: Any) -> None:
    """Stop supervisord and every app it runs (the embedded local runtime)."""
    with reported():
        from cicd.runtime.supervisor import SupervisorRuntime

        t = first_env_target(c)
        # haproxy runs under the root's supervisord too, whatever the runtime.
        if t.settings.runtime.kind == "supervisor" or t.is_proxied():
            where = t.paths.supervisor
            if SupervisorRuntime(t.runner, t.settings, t.paths).shutdown():
                print(f"supervisord stopped ({where}) with every app it ran")
            else:
                print(f"nothing running under {where}")
        else:
            print("nothing to stop: the runtime is not supervisor")
