"""``restore``: a backup of a 100 MB data directory taken, verified and restored.

The stand-in app deployed to prod under a real supervisord (in place); its
``shared/`` directory filled with :data:`MEGABYTES` MB in 100 files, half random
bytes (what gzip cannot shrink: photos, compressed exports) and half text-like
(what it can: CSV, SQLite pages). The backup is taken by the function a production
deploy calls (:func:`cicd.host.backup.back_up`: archive, then read back whole),
then, median of :data:`ROUNDS`, as a user runs them:

- ``invoke backup.verify --env prod``: the archive read back whole, compared;
- ``invoke backup.restore --env prod --from STAMP``: verified, extracted beside the
  live data, swapped in, the app restarted in place and ready — the data damaged
  before each round, and checked restored after.

Wall times of the whole command (a fresh Python process each).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from common import Metric, Project, log, median, timed

ROUNDS = 3
MEGABYTES = 100


def fill(folder: Path, megabytes: int) -> None:
    """``megabytes`` MB of data in 1 MB files: half random, half repetitive text."""
    folder.mkdir(parents=True, exist_ok=True)
    line = b"42,Ratatouille,vegetables,slow-cooked,4.5,2019-06-01\n"
    text = (line * (2**20 // len(line) + 1))[: 2**20]
    for index in range(megabytes):
        data = os.urandom(2**20) if index % 2 else text
        (folder / f"part-{index:03d}.bin").write_bytes(data)


def bench_restore() -> list[Metric]:
    """Take, verify and restore a backup of a 100 MB data directory."""
    from invoke import Context

    from cicd.core import config
    from cicd.core.progress import Timeline
    from cicd.host.backup import back_up
    from cicd.host.target import Target
    from cicd.pipeline.deploy import deploy_preprod
    from cicd.reporting.notify import Notifier
    from cicd.transport.runner import Runner

    project = Project("restore")
    try:
        project.write_standin_config()
        sha = project.commit("v1")
        prod = Target(Runner(Context()), config.load(project.config_path), "prod")
        deploy_preprod([prod], sha, Notifier(prod))
        data = project.root / "prod" / "shared" / "data"
        fill(data, MEGABYTES)
        log(f"restore: taking a backup of {MEGABYTES} MB")
        took, _ = timed(lambda: back_up(prod, sha, Timeline(lambda line: None)))
        (archive,) = (project.root / "prod" / "backups").glob("*.tar.gz")
        stamp = archive.name.split("-")[0]
        verifies, restores = [], []
        for index in range(ROUNDS):
            log(f"restore: round {index + 1}/{ROUNDS}")
            verifies.append(project.invoke("backup.verify", "--env", "prod"))
            (data / "part-000.bin").write_bytes(b"damaged")
            restores.append(
                project.invoke("backup.restore", "--env", "prod", "--from", stamp)
            )
            if (data / "part-000.bin").stat().st_size != 2**20:
                raise RuntimeError("the restore did not put the data back")
        size = archive.stat().st_size / 1e6
    finally:
        project.close()
    return [
        Metric(
            "restore",
            f"backup taken and read back ({MEGABYTES} MB, archive {size:.0f} MB)",
            took,
            1,
            samples=[took],
            meaning="back_up(): tar -czf, then tar -tzv and sha256sum of the archive",
        ),
        Metric(
            "restore",
            f"backup.verify, {MEGABYTES} MB",
            median(verifies),
            ROUNDS,
            samples=verifies,
            meaning="invoke backup.verify --env prod, wall time",
        ),
        Metric(
            "restore",
            f"backup.restore, {MEGABYTES} MB data directory",
            median(restores),
            ROUNDS,
            samples=restores,
            meaning="invoke backup.restore --env prod --from STAMP: verify, "
            "extract, swap, restart in place, ready; wall time",
        ),
    ]


if __name__ == "__main__":
    # Alone: python bench/bench_restore.py (the repository root on PYTHONPATH).
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    for metric in bench_restore():
        print(f"{metric.name}: median {metric.median:.2f} s {metric.samples}")
