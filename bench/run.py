"""Run the benchmarks of the pipeline and print a table of medians and ratios.

    python bench/run.py                  # every benchmark but demo (about 9 min)
    python bench/run.py exposure         # a bad commit's exposure window (1 min)
    python bench/run.py deploy rollback  # some of them, by name
    python bench/run.py demo             # opt-in: the whole `nox -s demo`, warm

Usually run as ``nox -s bench -- [NAMES]``. Each benchmark builds its own temporary
project (a git repository of a stand-in app, a config with a temp root and free
ports) and shuts down the supervisord it started. Figures are medians; each
target is checked against a baseline measured in the same run (the machine is
shared and noisy, so absolute times from another run mean little). Results go to
build/bench/results.json. The exit status is 0 even when a target is missed: a
benchmark is a measurement, not a test; it is 1 only when a benchmark could not run.
One whose component is absent here (fleet and compose-rollback need sshd, the latter
a Docker engine too) is skipped with the reason, and the status stays 0.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime

from common import REPO_ROOT, Metric, log

from bench_app import bench_app, bench_demo
from bench_compose import bench_compose_rollback
from bench_deploy import bench_deploy, bench_rollback
from bench_exposure import bench_exposure
from bench_fleet import BenchSkipped, bench_fleet
from bench_list import bench_list
from bench_locked import bench_locked
from bench_locked_app import bench_locked_app
from bench_preflight import bench_preflight
from bench_restore import bench_restore
from bench_runner import bench_runner
from bench_smoke import bench_smoke
from bench_swarm import bench_swarm
from bench_watch import bench_watch
from bench_zero_downtime import bench_zero_downtime

BENCHMARKS: dict[str, Callable[[], list[Metric]]] = {
    "deploy": bench_deploy,
    "rollback": bench_rollback,
    "list": bench_list,
    "watch": bench_watch,
    "exposure": bench_exposure,
    "runner": bench_runner,
    "app": bench_app,
    "fleet": bench_fleet,
    "compose-rollback": bench_compose_rollback,
    "zero-downtime": bench_zero_downtime,
    "swarm": bench_swarm,
    "locked": bench_locked,
    "locked-app": bench_locked_app,
    "smoke": bench_smoke,
    "preflight": bench_preflight,
    "restore": bench_restore,
    "demo": bench_demo,
}
OPT_IN = {"demo"}
RESULTS = REPO_ROOT / "build" / "bench" / "results.json"


def fmt(value: float, unit: str) -> str:
    """A figure with its unit."""
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:g} {unit}".strip()


def table(metrics: list[Metric]) -> str:
    """The results as an aligned text table."""
    rows = [("benchmark", "metric", "median", "n", "vs target", "result")]
    for m in metrics:
        versus = ""
        if m.limit is not None and m.value is not None:
            versus = f"{fmt(m.value, m.unit)} {m.target}"
        rows.append(
            (m.bench, m.name, fmt(m.median, m.unit), str(m.n), versus, m.verdict)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks (default: all but the opt-in ones)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run: {', '.join(BENCHMARKS)} "
        f"(default: all but {', '.join(sorted(OPT_IN))})",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    names = args.names or [n for n in BENCHMARKS if n not in OPT_IN]
    metrics: list[Metric] = []
    errors: dict[str, str] = {}
    skipped: dict[str, str] = {}
    seconds: dict[str, float] = {}
    started = time.monotonic()
    for name in names:
        log(f"== {name}")
        t0 = time.monotonic()
        try:
            metrics += BENCHMARKS[name]()
        except BenchSkipped as reason:  # a component is missing here: say which
            skipped[name] = str(reason)
            log(f"== {name} skipped: {reason}")
        except Exception as failure:  # report and go on with the next benchmark
            errors[name] = f"{type(failure).__name__}: {failure}"
            traceback.print_exc()
        seconds[name] = time.monotonic() - t0
        log(f"== {name} took {seconds[name]:.0f} s")
    total = time.monotonic() - started
    print()
    print(table(metrics))
    print()
    for m in metrics:
        if m.meaning:
            print(f"- {m.bench} / {m.name}: {m.meaning}")
    for name, message in skipped.items():
        print(f"- {name}: SKIPPED: {message}")
    for name, message in errors.items():
        print(f"- {name}: DID NOT RUN: {message}")
    print(f"\nTotal {total:.0f} s; results in {RESULTS.relative_to(REPO_ROOT)}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "time": datetime.now(UTC).isoformat(timespec="seconds"),
                "host": platform.node(),
                "python": platform.python_version(),
                "benchmarks": names,
                "seconds": {k: round(v, 1) for k, v in seconds.items()},
                "metrics": [m.as_dict() for m in metrics],
                "errors": errors,
                "skipped": skipped,
            },
            indent=2,
        )
        + "\n"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
