"""The main job on the embedded default: the whole pipeline on this machine.

``nox -s demo`` runs :func:`main`. In a scratch clone of this repository it deploys
HEAD to preprod (supervisord, 127.0.0.1:8500), lets the local CI watcher validate it,
commits a change that breaks a test and deploys it (deploy first: it goes live), lets
the watcher see CI fail and roll back automatically, then deploys the validated sha to
production with the typed confirmation (backup, readiness on 127.0.0.1:8501). It ends
with a timeline, the status table, and how to open and stop the two apps.

Everything lives under ``.cicd/demo/`` (git-ignored); dependency environments are kept
between runs, so a second run is much faster. The clone is of committed HEAD:
uncommitted changes are not part of the demo.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from invoke.context import Context

from cicd.core import config
from cicd.pipeline.deploy import deploy_preprod
from cicd.pipeline.production import deploy_prod
from cicd.core.messages import short
from cicd.core.errors import CicdError
from cicd.checks.traffic import Load
from cicd.reporting.notify import Notifier
from cicd.transport.runner import Runner
from cicd.pipeline.status import env_status, format_status
from cicd.host.target import Target
from cicd.pipeline.watch import start_detached
from cicd.pipeline.watch_journal import load_journal

KEPT_BETWEEN_RUNS = ("venvs", "ci-envs")


@dataclass(frozen=True)
class Breakage:
    """The commit that breaks a test: replace ``old`` by ``new`` in ``path``."""

    path: str = "10_preprod/src/mangetamain/queries.py"
    old: str = "(SELECT avg(rating) FILTER (WHERE rating > 0) FROM interactions)"
    new: str = "(SELECT avg(rating) FROM interactions)"
    message: str = "demo: count reviews without stars in the average"


@dataclass(frozen=True)
class Plan:
    """What the demo runs on: by default this checkout, the app and ports 8500/8501.

    Attributes:
        checkout: The git repository cloned into the scratch source.
        root: The demo's target root.
        ports: Preprod and prod ports on 127.0.0.1.
        ci_command: The local CI command run on each release.
        breakage: The change that makes CI fail.
        top_config: TOML key lines added to the ``[tool.cicd]`` table.
        health_config: TOML key lines added to ``[tool.cicd.health]``.
        extra_config: TOML tables appended to the configuration.
        verdict_timeout: Longest wait for a CI verdict, in seconds.
    """

    checkout: Path
    root: Path
    ports: tuple[int, int] = (8500, 8501)
    # The app's own gate; the project's full gate (`nox -s lint tests`, the
    # default for real use) takes a few minutes on a small machine.
    ci_command: str = "nox --envdir {envdir} -s app"
    breakage: Breakage = field(default_factory=Breakage)
    top_config: str = ""
    health_config: str = ""
    extra_config: str = ""
    verdict_timeout: float = 900.0

    def config_text(self) -> str:
        """The demo's configuration: the embedded default with a faster CI."""
        preprod, prod = self.ports
        return (
            "# Written by `nox -s demo`: the embedded default, faster local CI.\n"
            f'[tool.cicd]\nroot = "."\nsource = "source"\n{self.top_config}\n\n'
            f"[tool.cicd.health]\ndeadline = 120\n{self.health_config}\n\n"
            f'[tool.cicd.ci]\nprovider = "local"\ncommand = "{self.ci_command}"\n'
            "poll_interval = 1\ndeadline = 900\n\n"
            f"[tool.cicd.env.preprod]\nport = {preprod}\n\n"
            f"[tool.cicd.env.prod]\nport = {prod}\n" + self.extra_config
        )


@dataclass
class Step:
    """One line of the demo's timeline (and what the users' load saw meanwhile)."""

    name: str
    seconds: float = 0.0
    outcome: str = "failed"
    load: str = ""


def switch_mode(target: Target) -> str:
    """One line: blue/green behind haproxy, or in-place restarts and how to change."""
    if target.is_proxied():
        return (
            "switches: blue/green behind haproxy — the new release gets ready on the "
            "idle slot before haproxy routes to it (no request should fail)"
        )
    return (
        "switches: in place (haproxy not found: each deploy and rollback is a few "
        "seconds down; `apt-get install haproxy` makes them zero-downtime)"
    )


@contextmanager
def users_load(url: str) -> Iterator[Load]:
    """A light, bounded load on the app across a deploy or rollback: 4 users."""
    with Load(url, workers=4, seconds=900, pause=0.02) as load:
        yield load


class Steps:
    """The demo's timeline: each step's name, duration and outcome."""

    def __init__(self) -> None:
        self.done: list[Step] = []

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time a step; the block sets ``outcome`` on the yielded record."""
        print(f"\n==> {name}", file=sys.stderr, flush=True)
        record = Step(name)
        started = time.monotonic()
        try:
            yield record
        finally:
            record.seconds = time.monotonic() - started
            self.done.append(record)


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


def prepare(plan: Plan) -> Path:
    """Stop a previous demo, reset its state (keeping caches), clone the checkout."""
    root = plan.root
    conf = root / "supervisor" / "supervisord.conf"
    if conf.exists():
        ctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(conf)]
        subprocess.run([*ctl, "shutdown"], capture_output=True)
        deadline = time.monotonic() + 20
        while any(map(port_taken, plan.ports)) and time.monotonic() < deadline:
            time.sleep(0.2)
    if root.exists():
        for child in root.iterdir():
            if child.name in KEPT_BETWEEN_RUNS:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    root.mkdir(parents=True, exist_ok=True)
    for port in plan.ports:
        if port_taken(port):
            raise CicdError(
                f"port {port} on 127.0.0.1 is in use by another program; stop it "
                "(nox -s down stops the apps this project started)"
            )
    source = root / "source"
    try:
        git(root, "clone", "--quiet", "--no-hardlinks", str(plan.checkout), str(source))
    except subprocess.CalledProcessError as error:
        raise CicdError(
            f"cannot clone {plan.checkout}: {error.stderr.strip() or 'git failed'} "
            "(run the demo from the project's git checkout)"
        ) from None
    (root / "cicd.toml").write_text(plan.config_text())
    return source


def wait_for_verdict(target: Target, sha: str, timeout: float) -> dict[str, Any]:
    """Wait until the detached watcher of ``sha`` has acted on its verdict."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        journal = load_journal(target, sha)
        if journal and journal.get("state") == "done":
            return journal
        time.sleep(0.25)
    raise CicdError(f"no CI verdict for {short(sha)} after {timeout:g}s")


def run(plan: Plan) -> tuple[list[Step], list[dict[str, Any]] | None]:
    """Run the demo's steps; return the timeline and, on success, the status rows."""
    steps = Steps()
    try:
        with steps.step(f"prepare a scratch clone under {plan.root.name}/") as step:
            source = prepare(plan)
            step.outcome = "ok"
        settings = config.load(plan.root / "cicd.toml")
        preprod = Target(Runner(Context()), settings, "preprod")
        prod = Target(Runner(Context()), settings, "prod")
        good = git(source, "rev-parse", "HEAD")
        print(f"\n{switch_mode(preprod)}", file=sys.stderr)
        deploy_and_validate(steps, plan, preprod, good)
        bad = commit_breakage(source, plan.breakage)
        deploy_and_roll_back(steps, plan, preprod, bad, good=good)
        deploy_to_prod(steps, plan, preprod, prod)
    except CicdError as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return steps.done, None
    return steps.done, [env_status(preprod), env_status(prod)]


def deploy_and_validate(steps: Steps, plan: Plan, preprod: Target, good: str) -> None:
    """Deploy HEAD to preprod and wait for the CI watcher to validate it.

    Raises:
        CicdError: The deploy failed, or CI did not pass on HEAD.
    """
    where = f"127.0.0.1:{plan.ports[0]}"
    with steps.step(f"deploy HEAD {short(good)} to preprod ({where})") as step:
        result = deploy_preprod([preprod], good, Notifier(preprod))
        step.outcome = f"{result.outcome} in {result.seconds:.1f}s"
    start_detached(preprod, good)
    with steps.step(f"CI watcher (local CI) on {short(good)}") as step:
        journal = wait_for_verdict(preprod, good, plan.verdict_timeout)
        step.outcome = f"CI {journal['verdict']}"
        if journal["verdict"] != "success":
            raise CicdError(
                f"CI did not pass on HEAD ({journal.get('detail')}); see "
                f"{preprod.paths.logs}/ci-{good}.log"
            )
        step.outcome += " → validated"


def commit_breakage(source: Path, breakage: Breakage) -> str:
    """Commit the change that breaks a test in the scratch clone; return its sha."""
    broken = source / breakage.path
    broken.write_text(broken.read_text().replace(breakage.old, breakage.new, 1))
    git(source, "commit", "-qam", breakage.message)
    return git(source, "rev-parse", "HEAD")


def deploy_and_roll_back(
    steps: Steps, plan: Plan, preprod: Target, bad: str, *, good: str
) -> None:
    """Deploy the breaking commit under the users' load; CI fails, it rolls back.

    Raises:
        CicdError: The deploy failed, or preprod was not rolled back to ``good``.
    """
    users = f"http://127.0.0.1:{plan.ports[0]}/_stcore/health"
    with steps.step(f"deploy {short(bad)}, a commit that breaks a test") as step:
        with users_load(users) as load:
            result = deploy_preprod([preprod], bad, Notifier(preprod))
        step.outcome = f"{result.outcome}: live at once, CI pending"
        step.load = load.tally.line()
    start_detached(preprod, bad)
    with steps.step(f"CI watcher on {short(bad)}: failure, rollback") as step:
        with users_load(users) as load:
            journal = wait_for_verdict(preprod, bad, plan.verdict_timeout)
        running = preprod.current()
        step.outcome = f"CI {journal['verdict']} → running {short(running)}"
        step.load = load.tally.line()
        if running != good:
            raise CicdError(f"preprod was not rolled back to {short(good)}")


def deploy_to_prod(steps: Steps, plan: Plan, preprod: Target, prod: Target) -> None:
    """Deploy preprod's validated sha to prod with the typed confirmation."""
    with steps.step("deploy the validated sha to prod, --confirm DEPLOY") as step:
        result = deploy_prod(
            [prod],
            preprod,
            None,
            confirm="DEPLOY",
            force=False,
            notifier=Notifier(prod),
        )
        step.outcome = (
            f"{result.outcome} {short(result.sha)} on 127.0.0.1:{plan.ports[1]}"
        )


def report(plan: Plan, steps: list[Step], rows: list[dict[str, Any]] | None) -> None:
    """Print the timeline, the status table and what to do next."""
    print("\nTimeline")
    print(f"  {'step':<58} {'time':>7}  outcome")
    for step in steps:
        print(f"  {step.name:<58} {step.seconds:>6.1f}s  {step.outcome}")
        if step.load:
            print(f"  {'':<58} {'':>7}  users' load: {step.load}")
    total = sum(step.seconds for step in steps)
    print(f"  {'total':<58} {total:>6.1f}s")
    plan.root.mkdir(parents=True, exist_ok=True)
    (plan.root / "timeline.json").write_text(
        json.dumps([asdict(step) for step in steps], indent=2)
    )
    if rows is None:
        return
    print("\nStatus")
    print(format_status(rows))
    preprod, prod = plan.ports
    print(
        f"\nOpen the apps:  preprod http://127.0.0.1:{preprod}   "
        f"prod http://127.0.0.1:{prod}\n"
        f"Look around:    CICD_CONFIG={shown(plan.root / 'cicd.toml')} "
        f"{shown(tasks_program())} status   (any task of invoke --list)\n"
        "Stop them:      nox -s down   (stops supervisord and every app it started)"
    )


def tasks_program() -> Path:
    """The ``cicd`` program of this venv: the tasks, runnable from any directory.

    The demo runs in nox's venv, where the project (and so invoke) is installed; the
    shell that ran ``nox`` may have neither, so a bare ``invoke`` would not work.
    """
    return Path(sys.executable).parent / "cicd"


def shown(path: Path) -> str:
    """``path`` for a shell: relative to the working directory when under it, quoted."""
    import shlex

    try:
        return shlex.quote(str(path.relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(path))


def parse_ports(argv: list[str]) -> tuple[int, int]:
    """The demo's ports from ``--port-base N``: preprod on N, prod on N + 1.

    Raises:
        CicdError: Not a port (exit 2, one line).
    """
    value = "8500"
    if len(argv) == 2 and argv[0] == "--port-base":
        value = argv[1]
    elif len(argv) == 1 and argv[0].startswith("--port-base="):
        value = argv[0].partition("=")[2]
    elif argv:
        value = ""  # anything else is a mistake, said in one line
    base = int(value) if value.isdigit() else -1
    if not 1024 <= base <= 65534:
        from cicd.core.errors import UsageError

        raise UsageError(
            "usage: nox -s demo -- [--port-base N] (N from 1024 to 65534: preprod on "
            "127.0.0.1:N, prod on N+1)"
        )
    return base, base + 1


def main(argv: list[str] | None = None) -> int:
    """Run the demo on this checkout; return the process exit code.

    Args:
        argv: The demo's arguments (``nox -s demo -- ARGS``): ``--port-base N``.
    """
    try:
        ports = parse_ports(argv or [])
    except CicdError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    checkout = Path.cwd()
    plan = Plan(checkout=checkout, root=checkout / ".cicd" / "demo", ports=ports)
    steps, rows = run(plan)
    report(plan, steps, rows)
    if rows is not None:  # the delivery dashboard of what the demo just did
        from cicd.reporting.page import write_report

        page = write_report(plan.root / "cicd.toml", checkout / "build" / "report.html")
        print(f"Dashboard:      {page}")
    return 0 if rows is not None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
