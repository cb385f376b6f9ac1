"""``hooks.install``: the original's pre-push advice, as a task."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any

from invoke.tasks import task

from cicd.tasks.boundary import reported

MARKER = "# installed by: invoke hooks.install"
HOOK = f"""#!/bin/sh
{MARKER}
# The fast lane before every push: lint, then the tests without the heavy real
# components (CI runs them all, with the coverage floor); skip once with --no-verify.
echo "pre-push: nox -s lint quick"
exec nox -s lint quick
"""


@task(help={"force": "Replace a pre-push hook that was not installed by this task."})
def install(c: Any, force: bool = False) -> None:
    """Install a git pre-push hook that runs `nox -s lint quick` (the fast lane)."""
    with reported():
        from cicd.core.errors import UsageError

        try:
            hooks = subprocess.run(
                ["git", "rev-parse", "--git-path", "hooks"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            raise UsageError("not inside a git repository") from None
        path = Path(hooks) / "pre-push"
        if path.exists() and MARKER not in path.read_text(errors="replace"):
            if not force:
                raise UsageError(
                    f"{path} exists and was not installed by this task; "
                    "pass --force to replace it"
                )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HOOK)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        print(f"installed {path}: every push runs `nox -s lint quick` first")
