"""The main job on the embedded default: the whole pipeline on this machine.

``nox -s demo`` runs :func:`main`. In a scratch clone of this repository it deploys
HEAD to preprod (supervisord, 127.0.0.1:8500), lets the local CI watcher validate it,
commits a change that breaks a test and deploys it (deploy first: it goes live), lets
the watcher see CI fail and roll back automatically, then deploys the validated sha to
production with the typed confirmation (backup, readiness on 127.0.0.1:8501). It ends
with a timeline, the status table, and how to open and stop the two apps.

Everything lives under ``.cicd/demo/`` (git-ignored); dependency environments are kept
between runs, so a second run is much faster.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from invoke.context import Context

from cicd import config
from cicd.deploy import deploy_preprod, deploy_prod, short
from cicd.errors import CicdError
from cicd.notify import Notifier
from cicd.runner import Runner
from cicd.status import env_status, format_status
from cicd.target import Target
from cicd.watch import load_journal, start_detached

#: The change that breaks a test: averages start counting reviews without stars.
BREAK_FILE = "10_preprod/src/mangetamain/queries.py"
BREAK_FROM = "(SELECT avg(rating) FILTER (WHERE rating > 0) FROM interactions)"
BREAK_TO = "(SELECT avg(rating) FROM interactions)"
KEPT_BETWEEN_RUNS = ("venvs", "ci-envs")
WATCH_TIMEOUT = 900.0

CONFIG = """\
# Written by `nox -s demo`: the embedded default, with a faster local CI.
[tool.cicd]
root = "."
source = "source"

[tool.cicd.health]
deadline = 120

[tool.cicd.ci]
provider = "local"
# The app's own gate (lint and tests of what is deployed). The project's full gate,
# `nox -s lint tests`, is the default for real use; it takes a few minutes here.
command = "nox --envdir {envdir} -s app"
poll_interval = 1
deadline = 900
"""


@dataclass
class Step:
    """One line of the demo's timeline."""

    name: str
    seconds: float
    outcome: str


def say(text: str) -> None:
    """Print a demo headline."""
    print(f"\n==> {text}", file=sys.stderr, flush=True)


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return its output."""
    identity = ["-c", "user.name=cicd demo", "-c", "user.email=demo@localhost"]
    return subprocess.run(
        ["git", *identity, *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def port_taken(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def prepare(checkout: Path, root: Path) -> Path:
    """Stop a previous demo, reset its state (keeping caches), clone the checkout."""
    conf = root / "supervisor" / "supervisord.conf"
    if conf.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "supervisor.supervisorctl",
                "-c",
                str(conf),
                "shutdown",
            ],
            capture_output=True,
        )
        deadline = time.monotonic() + 20
        while (port_taken(8500) or port_taken(8501)) and time.monotonic() < deadline:
            time.sleep(0.2)
    if root.exists():
        for child in root.iterdir():
            if child.name not in KEPT_BETWEEN_RUNS:
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    root.mkdir(parents=True, exist_ok=True)
    for port in (8500, 8501):
        if port_taken(port):
            raise CicdError(
                f"port {port} on 127.0.0.1 is in use by another program; stop it "
                "(nox -s down stops the apps this project started)"
            )
    source = root / "source"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(checkout), str(source)],
        check=True,
    )
    (root / "cicd.toml").write_text(CONFIG)
    return source


def wait_for_verdict(target: Target, sha: str) -> dict[str, object]:
    """Wait until the detached watcher of ``sha`` has acted on its verdict."""
    deadline = time.monotonic() + WATCH_TIMEOUT
    while time.monotonic() < deadline:
        journal = load_journal(target, sha)
        if journal and journal.get("state") == "done":
            return journal
        time.sleep(0.5)
    raise CicdError(f"no CI verdict for {short(sha)} after {WATCH_TIMEOUT:g}s")


class Steps:
    """The demo's timeline: each step's name, duration and outcome."""

    def __init__(self) -> None:
        self.done: list[Step] = []

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time a step; the block sets ``outcome`` on the yielded record."""
        say(name)
        record = Step(name, 0.0, "failed")
        started = time.monotonic()
        try:
            yield record
        finally:
            record.seconds = time.monotonic() - started
            self.done.append(record)


def main() -> int:
    """Run the demo; return the process exit code."""
    checkout = Path.cwd()
    root = checkout / ".cicd" / "demo"
    steps = Steps()
    try:
        with steps.step("prepare a scratch clone under .cicd/demo") as step:
            source = prepare(checkout, root)
            step.outcome = "ok"
        settings = config.load(root / "cicd.toml")
        preprod = Target(Runner(Context()), settings, "preprod")
        prod = Target(Runner(Context()), settings, "prod")
        good = git(source, "rev-parse", "HEAD")

        with steps.step(
            f"deploy HEAD {short(good)} to preprod (127.0.0.1:8500)"
        ) as step:
            result = deploy_preprod(preprod, good, Notifier(preprod))
            step.outcome = f"{result.outcome} in {result.seconds:.1f}s"
        start_detached(preprod, good)
        with steps.step(f"local CI watcher: nox -s app on {short(good)}") as step:
            journal = wait_for_verdict(preprod, good)
            step.outcome = f"CI {journal['verdict']}"
            if journal["verdict"] != "success":
                raise CicdError(
                    f"CI did not pass on HEAD ({journal.get('detail')}); see "
                    f"{root}/preprod/logs/ci-{good}.log"
                )
            step.outcome += " → validated"

        path = source / BREAK_FILE
        path.write_text(path.read_text().replace(BREAK_FROM, BREAK_TO, 1))
        git(
            source, "commit", "-qam", "demo: count reviews without stars in the average"
        )
        bad = git(source, "rev-parse", "HEAD")
        with steps.step(f"deploy {short(bad)}, a commit that breaks a test") as step:
            result = deploy_preprod(preprod, bad, Notifier(preprod))
            step.outcome = f"{result.outcome}: live at once, CI pending"
        start_detached(preprod, bad)
        with steps.step(f"local CI watcher on {short(bad)}: failure, rollback") as step:
            journal = wait_for_verdict(preprod, bad)
            running = preprod.current()
            step.outcome = f"CI {journal['verdict']} → running {short(running)}"
            if running != good:
                raise CicdError(f"preprod was not rolled back to {short(good)}")

        with steps.step("deploy the validated sha to prod, --confirm DEPLOY") as step:
            result = deploy_prod(
                prod,
                preprod,
                None,
                confirm="DEPLOY",
                force=False,
                notifier=Notifier(prod),
            )
            step.outcome = f"{result.outcome} {short(result.sha)} on 127.0.0.1:8501"
    except CicdError as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        report(steps.done, None)
        return 1
    report(steps.done, [env_status(preprod), env_status(prod)])
    return 0


def report(steps: list[Step], rows: list[dict[str, Any]] | None) -> None:
    """Print the timeline, the status table and what to do next."""
    out = sys.stdout
    print("\nTimeline", file=out)
    print(f"  {'step':<58} {'time':>7}  outcome", file=out)
    for step in steps:
        print(f"  {step.name:<58} {step.seconds:>6.1f}s  {step.outcome}", file=out)
    total = sum(step.seconds for step in steps)
    print(f"  {'total':<58} {total:>6.1f}s", file=out)
    if rows is None:
        return
    print("\nStatus", file=out)
    print(format_status(rows), file=out)
    print(
        "\nOpen the apps:  preprod http://127.0.0.1:8500   prod http://127.0.0.1:8501\n"
        "Look around:    CICD_CONFIG=.cicd/demo/cicd.toml invoke status | releases\n"
        "Stop them:      nox -s down   (stops supervisord and every app it started)",
        file=out,
    )
    (Path.cwd() / ".cicd" / "demo" / "timeline.json").write_text(
        json.dumps([step.__dict__ for step in steps], indent=2)
    )


if __name__ == "__main__":
    sys.exit(main())
