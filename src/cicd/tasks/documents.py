"""The one ``--json`` document of every task, and the job summary made from it.

Every ``--json`` output is one document of one shape, whatever the task and the
number of hosts (see :func:`emit_json` and the task reference)::

    {"schema": 1, "task": "status", "env": "preprod", "ok": true, "error": null,
     "hosts": [{"env": "preprod", "host": "vm", ...}, ...], ...}
"""

from __future__ import annotations

import json as json_module
import os
import sys
from typing import TYPE_CHECKING, Any

from cicd.core.errors import CicdError

#: The version of the ``--json`` document's shape; raised on any incompatible change.
JSON_SCHEMA = 1

if TYPE_CHECKING:
    from cicd.host.target import Target
    from cicd.pipeline.plan import Plan


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
    finish(
        task, hosts, json=True, env=env, ok=ok, error=error, summarize=False, **fields
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
        print(json_module.dumps(made, indent=2, sort_keys=True), flush=True)
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
