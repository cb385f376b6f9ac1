"""``app``: the real Streamlit app's cold start and deploy; ``demo``: ``nox -s demo``.

app
    The embedded default's runtime settings (Streamlit command of 10_preprod, its
    requirements venv, supervisord) on a temporary root and free ports (never
    8500/8501). The source is a clone of this repository's HEAD plus an empty
    commit, so two shas share one tree and one venv. Both are deployed once
    (venv built: not timed), then:

    - cold start: ``supervisorctl restart`` → ``/_stcore/health`` answers ``ok``,
      median of 5;
    - deploy: ``invoke deploy.preprod`` alternating between the two shas, against
      bench/baseline_deploy.sh running the same Streamlit command with the same venv
      on its own supervisord, median of 5: the deploy ratio with the real app.

demo (opt-in, long)
    Wall time of ``nox -s demo`` with warm caches (a first run warms them when
    ``.cicd/demo`` has no kept venvs), then ``nox -s down``. It uses 127.0.0.1:8500
    and :8501 and ``.cicd/demo`` under the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from typing import Any

from bench_deploy import ShellBaseline
from common import (
    BIN,
    REPO_ROOT,
    BenchError,
    Metric,
    Project,
    clean_env,
    git,
    log,
    median,
    run,
    timed,
)

ROUNDS = 5
HEALTH = "/_stcore/health"
#: The embedded default's command (cicd.core.config.STREAMLIT_COMMAND) for the baseline.
STREAMLIT = (
    "{venv}/bin/python -m streamlit run src/mangetamain/app.py --server.port {port}"
    " --server.address 127.0.0.1 --server.headless true"
    " --browser.gatherUsageStats false"
)


def bench_app() -> list[Metric]:
    """Streamlit cold start to healthy under supervisord, and its deploy ratio."""
    project = Project("app", app_repo=False)
    shell = None
    try:
        project.repo = project.dir / "source"
        git(project.dir, "clone", "-q", "--no-hardlinks", str(REPO_ROOT), "source")
        shas = {"A": git(project.repo, "rev-parse", "HEAD")}
        git(project.repo, "commit", "-q", "--allow-empty", "-m", "bench: same tree")
        shas["B"] = git(project.repo, "rev-parse", "HEAD")
        fast = project.dir / "cicd-poll-0.1.toml"
        for path, interval in ((project.config_path, 0.5), (fast, 0.1)):
            path.write_text(textwrap.dedent(f"""\
                # The embedded default (Streamlit app of 10_preprod, its requirements
                # venv, supervisord), on a temporary root and free ports.
                [tool.cicd]
                root = "{project.root}"
                source = "{project.repo}"

                # The deploy's mechanics are measured, not the page smoke.
                [tool.cicd.smoke]
                on_deploy = false

                [tool.cicd.health]
                deadline = 180
                interval = {interval}
                checks = [{{ path = "{HEALTH}", body_contains = "ok" }}]

                [tool.cicd.notify]
                discord = false

                # In place: the restart-to-ready figure is the point here.
                [tool.cicd.proxy]
                kind = "none"

                [tool.cicd.env.preprod]
                port = {project.ports["preprod"]}

                [tool.cicd.env.prod]
                port = {project.ports["prod"]}
                """))
        log(f"app: first deploys of HEAD {shas['A'][:7]} (builds the venv; not timed)")
        first = project.invoke("deploy.preprod", "--sha", shas["A"], timeout=900)
        project.invoke("deploy.preprod", "--sha", shas["B"], timeout=300)
        boots = []
        for index in range(ROUNDS):
            log(f"app: restart {index + 1}/{ROUNDS}")
            boots.append(project.boot("ok", path=HEALTH))
        venv = os.path.realpath(project.root / "preprod" / "current" / ".venv")
        shell = ShellBaseline(
            project,
            STREAMLIT.replace("{venv}", venv),
            app_dir="10_preprod",
            environment='PYTHONPATH="src"',
            path=HEALTH,
        )
        for name in ("A", "B"):
            shell.deploy(shas[name], "ok")
        # Each round: cicd deploys A polling readiness every 0.1 s (as the shell
        # does), the shell deploys A or B, cicd deploys B with the default 0.5 s.
        walls, shells, default_walls = [], [], []
        for index in range(ROUNDS):
            log(f"app: deploy round {index + 1}/{ROUNDS}")
            walls.append(
                timed(
                    lambda: run(
                        project.invoke_argv("deploy.preprod", "--sha", shas["A"]),
                        env=project.env(fast),
                    )
                )[0]
            )
            name = "AB"[index % 2]
            shells.append(shell.deploy(shas[name], "ok")[0])
            default_walls.append(project.invoke("deploy.preprod", "--sha", shas["B"]))
        rendered = _rendered(project)
    finally:
        if shell:
            shell.close()
        project.close()
    boot, wall, sh = median(boots), median(walls), median(shells)
    return [
        Metric(
            "app",
            "Streamlit cold start to healthy",
            boot,
            ROUNDS,
            samples=boots,
            meaning="supervisorctl restart -> /_stcore/health = ok (polled every "
            f"0.02 s); the untimed first deploy (venv build) took {first:.0f} s",
        ),
        Metric(
            "app",
            "invoke deploy.preprod, Streamlit",
            wall,
            ROUNDS,
            samples=walls,
            meaning=f"readiness polled every 0.1 s; overhead {wall - boot:.2f} s "
            "over the cold start",
        ),
        Metric(
            "app",
            "  same, default 0.5 s readiness",
            median(default_walls),
            ROUNDS,
            samples=default_walls,
            meaning=f"same rounds; overhead {median(default_walls) - boot:.2f} s, "
            f"ratio {median(default_walls) / sh:.2f}x",
        ),
        Metric(
            "app",
            "shell baseline, Streamlit",
            sh,
            ROUNDS,
            samples=shells,
            meaning="bench/baseline_deploy.sh, same command and venv",
        ),
        Metric(
            "app",
            "ratio deploy / shell, Streamlit",
            wall / sh,
            ROUNDS,
            unit="x",
            value=wall / sh,
            limit=1.2,
            target="<= 1.2",
            meaning="the deploy ratio with the real app (both poll every 0.1 s)",
        ),
        *rendered,
    ]


#: The text the embedded default's rendered-page condition waits for.
HEADING = "Mangetamain"


def _rendered(project: Project) -> list[Metric]:
    """The rendered-page check on the running app, against Chromium's own start.

    Each round does what readiness does: it starts the browser, restarts the app
    (Chromium boots meanwhile), and once ``/_stcore/health`` answers, times the
    condition (the page watched until it shows the heading): the cost a deploy
    pays after the app answers. Then the same while busy loops hold every CPU, as
    ``nox`` running beside it would: a healthy app must still pass. And once per
    round a browser started only then, as the check did before (``render``).
    """
    from cicd.checks.browser import Browser, find_chromium, render

    binary = find_chromium()
    if binary is None:
        return [
            Metric(
                "app",
                "rendered-page check",
                0.0,
                0,
                meaning="skipped: Chromium not found (apt-get install chromium)",
            )
        ]
    url = f"http://127.0.0.1:{project.ports['preprod']}/"

    def render_with(browser: Browser) -> Any:
        return browser.render(url, HEADING, 30.0)

    starts = []
    for _ in range(ROUNDS):
        starts.append(
            timed(
                lambda: run(
                    [
                        binary,
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--dump-dom",
                        "about:blank",
                    ]
                )
            )[0]
        )
    quiet, loaded, failures, fresh = [], [], [], []
    for index in range(ROUNDS * 2):
        busy = []
        if index >= ROUNDS:  # bounded: killed at the end of the round
            busy = [
                subprocess.Popen(["sh", "-c", "while :; do :; done"])
                for _ in range(os.cpu_count() or 2)
            ]
        try:
            log(f"app: rendered-page check {index + 1}/{ROUNDS * 2}")
            with Browser() as browser:
                project.boot("ok", path=HEALTH)
                seen = render_with(browser)
            if not busy:
                fresh.append(render(url, HEADING, 30.0).seconds)
        finally:
            for process in busy:
                process.kill()
                process.wait()
        (loaded if busy else quiet).append(seen.seconds)
        if not seen.ok:
            failures.append(seen.reason)
    start, check = median(starts), median(quiet)
    late = median(fresh)
    return [
        Metric(
            "app",
            "Chromium start-up (baseline)",
            start,
            ROUNDS,
            samples=starts,
            meaning=f"{binary} --headless --dump-dom about:blank, start to exit",
        ),
        Metric(
            "app",
            "rendered-page check after the app answers",
            check,
            ROUNDS,
            samples=quiet,
            value=check,
            limit=1.5,
            target="<= 1.5 s",
            meaning=f"browser started, restart, /_stcore/health ok, then the "
            f"condition rendered_contains={HEADING!r} as readiness runs it; "
            f"{check - start:+.2f} s against Chromium's own start-up",
        ),
        Metric(
            "app",
            "  same, a browser started after the app answers",
            late,
            ROUNDS,
            samples=fresh,
            meaning="render(): Chromium's start-up is then paid after the app "
            "answers (how the check ran before readiness started it ahead)",
        ),
        Metric(
            "app",
            "  same, both CPUs busy",
            median(loaded),
            ROUNDS,
            samples=loaded,
            meaning=f"{os.cpu_count() or 2} busy loops during each round",
        ),
        Metric(
            "app",
            "rendered-page false failures",
            float(len(failures)),
            ROUNDS * 2,
            unit="",
            value=float(len(failures)),
            limit=0,
            target="= 0",
            meaning="rounds where a healthy app failed the condition"
            + (f": {failures[0]}" if failures else ""),
        ),
    ]


def _outer_env() -> dict[str, str]:
    """The caller's environment without this session's venv (for a nested nox)."""
    env = clean_env()
    env.pop("VIRTUAL_ENV", None)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p != str(BIN)]
    env["PATH"] = os.pathsep.join(path)
    return env


def bench_demo() -> list[Metric]:
    """``nox -s demo`` with warm caches, then ``nox -s down``."""
    env = _outer_env()
    nox = shutil.which("nox", path=env["PATH"])
    argv = [nox] if nox else [os.environ.get("PYTHON", "python3"), "-m", "nox"]
    demo = REPO_ROOT / ".cicd" / "demo"
    warmed = False

    def nox_run(*args: str, timeout: float = 1800) -> None:
        result = subprocess.run(
            [*argv, *args],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise BenchError(
                f"nox {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
            )

    try:
        if not ((demo / "venvs").is_dir() and (demo / "ci-envs").is_dir()):
            log("demo: cold caches: a first, untimed run warms them")
            nox_run("-s", "demo")
            warmed = True
        log("demo: timed run of nox -s demo")
        wall, _ = timed(lambda: nox_run("-s", "demo"))
    finally:
        log("demo: nox -s down")
        nox_run("-s", "down", timeout=300)
    steps = ""
    timeline = demo / "timeline.json"
    if timeline.exists():
        try:
            steps = "; ".join(
                f"{s['name'].split(' (')[0][:40]} {s['seconds']:.1f}s"
                for s in json.loads(timeline.read_text())
            )
        except (ValueError, KeyError, TypeError):
            steps = ""
    return [
        Metric(
            "demo",
            "nox -s demo, warm caches",
            wall,
            1,
            meaning=("after a warm-up run; " if warmed else "caches already warm; ")
            + (f"steps: {steps}" if steps else ""),
        )
    ]
