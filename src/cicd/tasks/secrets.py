"""``secrets.reload``: the app reads its own secrets (``shared/app.env``) again."""

from __future__ import annotations

from typing import Any

from invoke.tasks import task

from cicd.tasks import options
from cicd.tasks.boundary import lock_waiting, reported
from cicd.tasks.hosts import notifier, targets


@task(
    help={
        "env": "The environment whose app.env was edited (required).",
        "lock_wait": options.LOCK_WAIT,
    }
)
def reload(c: Any, env: str = "", lock_wait: str = "") -> None:
    """Restart the app so it reads <root>/<env>/shared/app.env again (after an edit).

    The app loads app.env only when it starts. Behind haproxy there is no downtime:
    the current release starts on the idle slot, every readiness check passes
    there, haproxy switches to it, then the old instance is stopped (a previous
    release kept warm on that slot gives way; a rollback to it starts it again).
    In place (no haproxy) the app restarts and is down until ready; the output says
    so. Under the environment's lock; the ledger records a restart "secrets
    reload". The file is never read nor printed by this task.

    Exit codes: 0 ready; 1 the new instance never got ready (behind haproxy the old
    one keeps serving and nothing was switched; the app's last log lines say why,
    e.g. a line of app.env that is not KEY=VALUE); 2 bad input (no or unknown
    --env, never deployed), nothing changed; 3 locked by another run.

    Examples: invoke secrets.reload --env prod; fab -H vm secrets.reload --env prod.
    """
    with reported():
        from cicd.core.errors import UsageError
        from cicd.pipeline.start import reload_env

        if not env:
            raise UsageError("--env is required: the environment whose app.env changed")
        hosts = targets(c, env)
        with lock_waiting(lock_wait):
            done = reload_env(hosts, notifier(hosts[0], hosts))
        for line in done:
            print(line, flush=True)
