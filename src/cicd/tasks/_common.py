"""What every task shares: building the Target, reporting errors with exit codes.

Every ``--json`` output is one document of one shape, whatever the task and the
number of hosts (see :func:`emit_json` and the task reference)::

    {"schema": 1, "task": "status", "env": "preprod", "ok": true, "error": null,
     "hosts": [{"env": "preprod", "host": "vm", ...}, ...], ...}
"""

from __future__ import annotations

import functools
import json as json_module
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from invoke.collection import Collection
from invoke.exceptions import Exit

from cicd.core.errors import CicdError, UsageError, clip
from cicd.core.inputs import check_environment, check_host, check_options
from cicd.core.redact import redact

#: What a process killed by a closed pipe exits with (128 + SIGPIPE).
BROKEN_PIPE = 141
#: The version of the ``--json`` document's shape; raised on any incompatible change.
JSON_SCHEMA = 1

if TYPE_CHECKING:
    from cicd.core.settings import Settings
    from cicd.pipeline.plan import Plan
    from cicd.reporting.notify import Notifier
    from cicd.host.target import Target
    from cicd.transport.runner import Runner


@contextmanager
def reported(
    json_task: str = "", env: str | None = None, *, summary: str = ""
) -> Iterator[None]:
    """Turn a :class:`~cicd.core.errors.CicdError` into a one-line message and code.

    The message is redacted and kept to one line of bounded length. A reader that
    closes the pipe early (``invoke releases | head``) ends the task quietly.

    Args:
        json_task: The task's name when it was asked for ``--json``: an error is
            then also the JSON document (``"ok": false``, ``"error"``, no hosts),
            so a script reading stdout always gets one document.
        env: The environment, for that document.
        summary: The task's name when its failure belongs in the job's summary and
            as an ``::error::`` annotation (deploy, verdict, rollback, monitor).
    """
    from cicd.transport.runner import flush_all

    try:
        yield
        # What the task deferred (an intent removed, ...) runs before it ends.
        flush_all()
        sys.stdout.flush()
    except CicdError as error:
        _flush_after(error)
        message = clip(redact(str(error)), 400)
        if summary:
            failed = document(summary, [], env=env, ok=False, error=message)
            report_to_github(failed, json=bool(json_task))
        if json_task:
            emit_json(
                json_task,
                [],
                env=env,
                ok=False,
                error=message,
                exit_code=error.exit_code,
            )
        raise Exit(f"error: {message}", code=error.exit_code) from None
    except BrokenPipeError:
        # Python would print a traceback at exit while flushing: point stdout at
        # /dev/null so nothing more is written, and end as a closed pipe does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise Exit(code=BROKEN_PIPE) from None


def guard(collection: Collection, prefix: str = "") -> None:
    """Check every task's options and the environment before its body runs.

    The task boundary of :mod:`cicd.core.inputs`: one rule for every task, so a new
    task or option is covered without a line of its own. A bad value ends the
    task with one line and exit 2 (and the ``--json`` document), before anything
    is read or changed.

    Args:
        collection: The collection, walked with its sub-collections.
        prefix: The collection's dotted name (``deploy.``).
    """
    for name, each in collection.tasks.items():
        if getattr(each.body, "guarded", False):
            continue
        full = prefix + name if collection.default != name else prefix.rstrip(".")
        each.body = _guarded(each.body, full or name)
    for name, sub in collection.collections.items():
        guard(sub, f"{prefix}{name}.")


def _guarded(body: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(body)
    def checked(c: Any, *args: Any, **kwargs: Any) -> Any:
        with reported(name if kwargs.get("json") is True else ""):
            check_options(kwargs)
            check_environment()
        return body(c, *args, **kwargs)

    checked.guarded = True  # type: ignore[attr-defined]
    return checked


def _flush_after(error: CicdError) -> None:
    """Run what a failed task deferred; a failure there is said, not raised."""
    from cicd.transport.runner import flush_all

    try:
        flush_all()
    except CicdError as late:
        if late is not error:
            print(f"warning: {clip(redact(str(late)), 400)}", file=sys.stderr)


def seconds(value: str, flag: str) -> float | None:
    """A number of seconds a user typed, or None when the flag was not given.

    Raises:
        UsageError: Not a number, or negative; nothing was changed.
    """
    if not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if number < 0:
        raise UsageError(f"{flag} must be 0 or more seconds, got {clip(value, 40)!r}")
    if not number >= 0 or number == float("inf"):
        raise UsageError(f"{flag} must be a number of seconds, got {clip(value, 40)!r}")
    return number


def task_settings(c: Any) -> Settings:
    """The configuration a task runs with: resolved once, then handed down.

    On this machine it is the project's (:func:`cicd.core.config.load`); under
    ``fab -H HOST``, the host's (:func:`host_settings`), which may take a round trip
    over SSH: a task resolves it once and passes it to :func:`targets`,
    :func:`target` and :func:`env_names`.
    """
    from cicd.core import config

    runner = _runner(c)
    return host_settings(runner) if runner.remote else config.load()


def _runner(c: Any) -> Runner:
    """The runner of this task's context; over SSH, checking the host's key first."""
    from cicd.transport.runner import Runner

    runner = Runner(c)
    if runner.remote:
        from cicd.transport.ssh import harden

        check_host(runner.host)
        harden(c)
    return runner


def target(c: Any, env: str, settings: Settings | None = None) -> Target:
    """Build the Target of ``env`` for this task's context (local or SSH).

    Args:
        c: The task's context.
        env: The environment.
        settings: The task's :func:`task_settings` (resolved here when not given).
    """
    from cicd.host.target import Target

    runner = _runner(c)
    return Target(runner, task_settings(c) if settings is None else settings, env)


def first_env_target(c: Any) -> Target:
    """The first configured environment's Target, for a task about the host itself.

    ``down`` and ``health --url`` act on no environment of their own: the first
    one's settings (the runtime, the monitor's rules, the notifier) are the host's.
    """
    settings = task_settings(c)
    return target(c, env_names(settings)[0], settings)


def host_settings(runner: Runner) -> Settings:
    """The configuration of a task run on a host over SSH (``fab -H HOST``).

    The configuration here, when there is one (``CICD_CONFIG``, or a
    ``[tool.cicd]`` table); otherwise the one the host's setup recorded
    (:mod:`cicd.host.record`). The root must be absolute either way: a relative one
    would be a directory guessed in the SSH user's home.

    Raises:
        UsageError: No configuration here nor recorded there, or a relative root;
            nothing was done on the host.
    """
    from cicd.core import config
    from cicd.host.record import remote_settings

    settings = config.load()
    if not settings.explicit:
        settings = remote_settings(runner)
    for name in sorted(settings.envs):
        root = settings.env(name, runner.host).root
        if not root.startswith("/"):
            raise UsageError(
                f"tool.cicd.env.{name}: root {clip(root, 60)!r} is relative: over SSH "
                f"it would be a directory guessed on {runner.host}; set an absolute "
                "root; nothing was done"
            )
    return settings


def targets(c: Any, env: str, settings: Settings | None = None) -> list[Target]:
    """The Targets of ``env``: one per configured host, or this context's only.

    Under ``fab -H HOST`` (or with no ``hosts`` configured) it is the context's own
    host; under ``invoke`` with ``hosts = [...]`` it is every host, over SSH.

    Args:
        c: The task's context.
        env: The environment.
        settings: The task's :func:`task_settings` (resolved here when not given).
    """
    from cicd.host.target import Target
    from cicd.transport.runner import Runner

    if settings is None:
        settings = task_settings(c)
    runner = _runner(c)
    if runner.remote:
        return [Target(runner, settings, env)]
    chosen = settings.env(env)
    if not chosen.hosts:
        return [Target(runner, settings, env)]
    from cicd.transport.ssh import connect

    ssh_config = chosen.ssh_config
    if ssh_config and not ssh_config.startswith(("/", "~")):
        ssh_config = str(settings.project_dir / ssh_config)
    return [
        Target(Runner(connect(check_host(name), ssh_config)), settings, env)
        for name in chosen.hosts
    ]


def configured_fleet(c: Any, hosts: list[Target]) -> list[Target] | None:
    """``hosts`` when they come from the configuration (not ``fab -H``), else None."""
    from cicd.transport.runner import Runner

    remote_context = Runner(c).remote
    return hosts if hosts[0].runner.remote and not remote_context else None


def env_names(settings: Settings | None = None, only: str = "") -> list[str]:
    """Names of the configured environments, or just ``only`` when a task names one.

    Args:
        settings: The task's :func:`task_settings` (this machine's when not given).
        only: The ``--env`` the user gave, empty for every environment.
    """
    from cicd.core import config

    if only:
        return [only]
    return sorted((config.load() if settings is None else settings).envs)


def host_label(t: Target) -> str:
    """``env`` on this machine, ``env@host`` over SSH: how a task's lines name it."""
    return t.env if not t.runner.remote else f"{t.env}@{t.runner.host}"


def lock_waiting(
    lock_wait: str, default: float | None = 0.0
) -> AbstractContextManager[None]:
    """Make the locks the block takes wait up to the ``--lock-wait`` the user typed.

    Args:
        lock_wait: The flag's text, empty when it was not given.
        default: The wait when it was not given; None leaves each lock its own (a
            verdict waits ``ci.lock_wait``).

    Returns:
        The context manager (:func:`cicd.host.lock.waiting`).

    Raises:
        UsageError: Not a number of seconds; nothing was changed.
    """
    from cicd.host import lock

    given = seconds(lock_wait, "--lock-wait")
    return lock.waiting(default if given is None else given)


def resume_watches(c: Any, hosts: list[Target], n: Notifier) -> list[str]:
    """Resume the environment's interrupted CI watches, in the background.

    A watch stopped by a kill, a reboot or a freeze is picked up by the next task
    that can: here, for this machine or the configured hosts; under ``fab -H``,
    ``invoke watch --resume`` on the host does it instead.

    Returns:
        The shas whose watch was resumed.
    """
    fleet = configured_fleet(c, hosts)
    if fleet is None and hosts[0].runner.remote:
        return []
    from cicd.pipeline import watch as ci_watch

    return ci_watch.resume(hosts, n, detach=True, configured=fleet is not None)


def notifier(t: Target, hosts: list[Target] | None = None) -> Notifier:
    """The notifier of an environment; its messages name ``hosts`` (over SSH)."""
    from cicd.reporting.notify import Notifier

    if hosts is None:
        return Notifier(t)
    return Notifier(t, hosts=[h.runner.host for h in hosts if h.runner.remote])


def host_row(t: Target, **fields: Any) -> dict[str, Any]:
    """One entry of a JSON document's ``hosts``: ``env`` and ``host``, then fields."""
    return {"env": t.env, "host": t.runner.host, **fields}


def emit_json(
    task: str,
    hosts: list[dict[str, Any]],
    *,
    env: str | None = None,
    ok: bool = True,
    error: str | None = None,
    **fields: Any,
) -> None:
    """Print a task's result as the one JSON document every ``--json`` prints.

    The shape does not depend on the number of hosts or environments: ``hosts`` is
    always a list of objects, each naming its ``env`` and ``host``.

    Args:
        task: The task's name (``deploy.preprod``, ``status``...).
        hosts: One object per host (and environment) the task looked at.
        env: The environment, or None when the task covered several.
        ok: Whether the task succeeded (its exit code is 0).
        error: The one-line error when it did not.
        **fields: The task's own top-level keys (documented per task).
    """
    _print_document(document(task, hosts, env=env, ok=ok, error=error, **fields))


def _print_document(made: dict[str, Any]) -> None:
    """Print a task's document on stdout, the whole of what ``--json`` prints."""
    print(
        json_module.dumps(made, indent=2, sort_keys=True), file=sys.stdout, flush=True
    )


def document(
    task: str,
    hosts: list[dict[str, Any]],
    *,
    env: str | None = None,
    ok: bool = True,
    error: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The one document of a task's result (see :func:`emit_json` for the fields)."""
    return {
        "schema": JSON_SCHEMA,
        "task": task,
        "env": env,
        "ok": ok,
        "error": error,
        "hosts": hosts,
        **fields,
    }


def finish(
    task: str,
    hosts: list[dict[str, Any]],
    *,
    json: bool,
    env: str | None = None,
    ok: bool = True,
    error: str | None = None,
    github: dict[str, Any] | None = None,
    summarize: bool = True,
    **fields: Any,
) -> dict[str, Any]:
    """Render a task's result once computed: ``--json``, job summary, annotation.

    Args:
        task: The task's name.
        hosts: One object per host, as :func:`emit_json` takes them.
        json: Whether ``--json`` was asked (then the document is printed).
        env: The environment, or None.
        ok: Whether the task succeeded.
        error: The one-line reason when it did not (annotated in Actions).
        github: What only the summary shows (``serving``, ``public_url``, and
            facts such as a verdict's ``detail``, ``url`` and ``failed`` jobs).
        summarize: Whether the result belongs in the job's summary.
        **fields: The task's own top-level keys.

    Returns:
        The document.
    """
    made = document(task, hosts, env=env, ok=ok, error=error, **fields)
    if json:
        _print_document(made)
    if summarize:
        report_to_github(made, json=json, **(github or {}))
    return made


def report_to_github(made: dict[str, Any], *, json: bool, **extra: Any) -> None:
    """Append the job summary and, on failure, print the ``::error`` annotation.

    Args:
        made: The task's document.
        json: Whether stdout carries the ``--json`` document (the annotation then
            goes to stderr, which the runner reads as well).
        **extra: ``serving``, ``public_url`` and summary-only facts.
    """
    from cicd.reporting import summary

    shown = {k: extra.pop(k) for k in ("serving", "public_url") if k in extra}
    summary.write({**made, **extra}, **shown)
    if not made.get("ok", True) and made.get("error"):
        title = f"{made['task']} {made.get('env') or ''}".strip()
        summary.annotate(title, str(made["error"]), sys.stderr if json else None)


def on_github(hosts: list[Target]) -> dict[str, Any]:
    """What serves on each host and the public URL, asked only for a summary.

    Asking the runtime costs a round trip per host: done only when the job has a
    summary file to show it in.
    """
    from cicd.reporting import summary

    if not os.environ.get(summary.SUMMARY_VARIABLE):
        return {}
    serving: dict[str, str | None] = {}
    for t in hosts:
        try:
            serving[t.runner.host] = t.serving()
        except CicdError:
            # A runtime that cannot say is shown as unknown, never a failed task.
            serving[t.runner.host] = None
    return {"serving": serving, "public_url": hosts[0].settings.public_url}


def show_plan(plan: Plan, task: str, as_json: bool) -> None:
    """Print a plan, as text or as the task's ``--json`` document."""
    if not as_json:
        print(plan.text())
        return
    emit_json(
        task,
        [host.as_dict() for host in plan.hosts],
        env=plan.env,
        plan=True,
        sha=plan.sha,
        notes=plan.notes,
    )
