"""``setup``'s checks of where releases live: the root, then each environment's files.

The root must be absolute and outside any git checkout and the runner's workspace
(which is cleaned between jobs). Each environment gets its directories (``shared``
mode 0700) and ``shared/app.env``, the app's own secrets, created empty with mode
0600 and never overwritten nor read.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from posixpath import join
from typing import TYPE_CHECKING

from cicd.commands import files
from cicd.commands.prepare import (
    chmod,
    create_private_file,
    git_toplevel,
    inspect_env,
    is_dir,
    make_env_dirs,
)
from cicd.pipeline.setup_check import SetupRun

if TYPE_CHECKING:
    from cicd.host.target import Target

#: The root the docs and the example configuration use on a VM.
VM_ROOT = "/srv/mangetamain"

#: Directories of an environment created by setup (``shared`` gets mode 0700).
ENV_DIRS = ("releases", "logs", "backups", "shared")

#: The detail of the checks that wait for a usable root.
ROOT_FIRST = "fix the root first"


def check_root(run: SetupRun, t: Target, environ: Mapping[str, str]) -> bool:
    """The root check; returns whether the root can be used."""
    root = t.paths.root
    problem = _unusable_root(t, environ)
    if problem:
        run.missing("root", problem, _root_fix(t, environ))
        return False
    if t.runner.ok(is_dir(root)):
        run.ok("root", f"{root} (absolute, outside any git checkout)")
        return True
    if run.options.check:
        run.missing_until_run("root", f"{root} does not exist")
        return True
    if t.runner.ok(files.mkdirs(root)):
        run.fixed("root", f"{root} created")
        return True
    make_root = (
        f"install -d -m 0755 -o {run.options.user_word} {shlex.quote(root)}   # as root"
    )
    run.missing(
        "root",
        f"cannot create {root} as this user: create it for the service user",
        make_root,
        run.options.command,
    )
    return False


def _unusable_root(t: Target, environ: Mapping[str, str]) -> str:
    """Why the root must not be used (relative, in a workspace); "" if it may."""
    configured, root = t.settings.root, t.paths.root
    if not configured.startswith("/"):
        return (
            f"{configured!r} is relative (here: {root}): on a VM the root must "
            "be absolute, outside the runner's workspace, which every job cleans"
        )
    inside = [
        os.path.normpath(environ[v])
        for v in ("GITHUB_WORKSPACE", "RUNNER_WORKSPACE")
        if environ.get(v) and not t.runner.remote
    ]
    for workspace in inside:
        if root == workspace or root.startswith(workspace.rstrip("/") + "/"):
            return (
                f"{root} is inside the runner's workspace {workspace}, "
                "which every job cleans"
            )
    toplevel = t.runner.output(git_toplevel(root))
    if toplevel:
        return (
            f"{root} is inside the git checkout {toplevel}: releases and state "
            "must not live in a workspace"
        )
    return ""


def _root_fix(t: Target, environ: Mapping[str, str]) -> str:
    """How to give the environment a usable root: in the configuration file."""
    if environ.get("CICD_CONFIG"):
        where = str(t.all_settings.path or "the configuration file")
        return f'set root = "{VM_ROOT}" in {where} (the file CICD_CONFIG names)'
    return (
        f"cp 30_docker/cicd-vm.toml {VM_ROOT}/cicd.toml && "
        f'export CICD_CONFIG={VM_ROOT}/cicd.toml   # with root = "{VM_ROOT}"'
    )


def check_env(run: SetupRun, t: Target, root_ok: bool) -> None:
    """The environment's directories, then its app.env."""
    if not root_ok:
        run.skipped(f"{t.env}: directories", ROOT_FIRST)
        run.skipped(f"{t.env}: app.env", ROOT_FIRST)
        return
    p = t.paths
    dirs = [join(p.dir, d) for d in ENV_DIRS]
    lines = t.runner.output(inspect_env(p.shared, p.app_env, *dirs)).splitlines()
    absent = [line.split(" ", 1)[1] for line in lines if line.startswith("missing ")]
    modes = dict(line.split(" ", 1) for line in lines if not line.startswith("miss"))
    _check_dirs(run, t, dirs, absent, modes.get("shared", ""))
    _check_app_env(run, t, modes.get("app.env", ""))


def _check_dirs(
    run: SetupRun, t: Target, dirs: list[str], absent: list[str], shared_mode: str
) -> None:
    """The directories of ``t``'s environment (``absent`` of them are missing)."""
    p, name = t.paths, f"{t.env}: directories"
    listing = ", ".join(ENV_DIRS[:-1]) + ", shared (0700)"
    if not absent and shared_mode == "700":
        run.ok(name, f"{listing} in {p.dir}")
    elif run.options.check:
        problem = (
            "absent: " + ", ".join(os.path.basename(d) for d in absent)
            if absent
            else f"shared is mode {shared_mode}, expected 0700"
        )
        run.missing_until_run(name, problem)
    else:
        t.runner.run(make_env_dirs(p.shared, *dirs))
        done = (
            "created " + ", ".join(os.path.basename(d) for d in absent)
            if absent
            else f"shared made 0700 (was {shared_mode})"
        )
        run.fixed(name, f"{done} in {p.dir}")


def _check_app_env(run: SetupRun, t: Target, mode: str) -> None:
    """The app's secrets file: mode 0600 (``mode`` is "" while it does not exist)."""
    app_env, name = t.paths.app_env, f"{t.env}: app.env"
    secret = "its content is never read or printed"
    if mode == "600":
        run.ok(name, f"{app_env} (0600; {secret})")
    elif run.options.check and mode:
        run.missing(name, f"mode {mode}, expected 0600", f"chmod 0600 {app_env}")
    elif run.options.check:
        run.missing_until_run(name, f"{app_env} does not exist")
    elif mode:
        t.runner.run(chmod("0600", app_env))
        run.fixed(name, f"{app_env} made 0600 (was {mode}); {secret}")
    else:
        t.runner.run(create_private_file(app_env))
        run.fixed(
            name,
            f"{app_env} created empty (0600): the app's own secrets go there, "
            "as KEY=VALUE lines",
        )
