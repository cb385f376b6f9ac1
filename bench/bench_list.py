"""``list``: ``invoke --list`` on the real tasks.py against a one-task tasks.py.

Both run as ``python -m invoke --search-root DIR --list`` in a fresh process,
alternately, so the ratio measures only what loading the task collection costs.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

from common import REPO_ROOT, Metric, clean_env, log, median, run, timed

ROUNDS = 10

EMPTY_TASKS = textwrap.dedent('''\
    """One empty task: the floor of `invoke --list`."""
    from invoke import task


    @task
    def noop(c):
        """Do nothing."""
    ''')


def bench_list() -> list[Metric]:
    """Ratio of the real task list's load time to an empty one's."""
    empty = Path(tempfile.mkdtemp(prefix="cicd-bench-list-"))
    (empty / "tasks.py").write_text(EMPTY_TASKS)
    env = clean_env()
    real_times, empty_times = [], []

    def argv(root: Path) -> list[str]:
        return [sys.executable, "-m", "invoke", "--search-root", str(root), "--list"]

    try:
        run(argv(REPO_ROOT), env=env)  # warm the page cache and the bytecode
        run(argv(empty), env=env)
        log(f"list: {ROUNDS} rounds of real and empty")
        for _ in range(ROUNDS):
            real_times.append(timed(lambda: run(argv(REPO_ROOT), env=env))[0])
            empty_times.append(timed(lambda: run(argv(empty), env=env))[0])
    finally:
        shutil.rmtree(empty, ignore_errors=True)
    real, floor = median(real_times), median(empty_times)
    return [
        Metric(
            "list",
            "invoke --list, real tasks.py",
            real,
            ROUNDS,
            samples=real_times,
            meaning="python -m invoke --search-root REPO --list",
        ),
        Metric(
            "list",
            "invoke --list, one empty task",
            floor,
            ROUNDS,
            samples=empty_times,
            meaning="the floor: interpreter + invoke itself",
        ),
        Metric(
            "list",
            "ratio real / empty",
            real / floor,
            ROUNDS,
            unit="x",
            value=real / floor,
            limit=1.5,
            target="<= 1.5",
            meaning="median real / median empty",
        ),
    ]
