"""Start ``python -m cicd TASK...`` detached: it outlives the command and CI job.

The child runs in a new session with no stdin and its output appended to a log;
``RUNNER_TRACKING_ID`` is emptied so a GitHub runner's end-of-job cleanup does not
reap it. The CI watcher (``deploy.preprod --watch``) and the monitor's background
re-checker start this way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

from cicd.core.errors import CicdError

if TYPE_CHECKING:
    from cicd.host.target import Target


def spawn(task: list[str], log: str, target: Target) -> int:
    """Run ``python -m cicd TASK...`` detached, with this run's configuration.

    Args:
        task: The task and its arguments.
        log: Where its output is appended.
        target: Whose configuration (``CICD_CONFIG``) and directory it runs with.

    Returns:
        The child's pid.

    Raises:
        CicdError: The log cannot be opened (said in one line).
    """
    settings = target.all_settings
    env = {**os.environ, "RUNNER_TRACKING_ID": ""}
    # The step's file commands (its summary, outputs) end with the step: a child
    # that outlives it must not write to them, nor annotate a job that is over;
    # the job's own token dies with the job too.
    for name in (
        "GITHUB_STEP_SUMMARY",
        "GITHUB_OUTPUT",
        "GITHUB_ENV",
        "GITHUB_ACTIONS",
        "CICD_JOB_TOKEN",
    ):
        env.pop(name, None)
    if settings.path:
        env["CICD_CONFIG"] = str(settings.path)
    try:
        output = open(log, "ab")
    except OSError as error:
        raise CicdError(
            f"cannot start `{' '.join(task[:1])}` in the background: {log}: "
            f"{error.strerror or error}"
        ) from None
    with output:
        child = subprocess.Popen(
            [sys.executable, "-m", "cicd", *task],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=str(settings.project_dir),
        )
    return child.pid
