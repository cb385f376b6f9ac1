"""Backups read back, listed, verified and restored: real tar, supervisord and app.

Production is deployed with the stand-in app, its ``shared/`` directory holds data,
and the backup is taken by the function a production deploy calls
(:func:`cicd.host.backup.back_up`). Everything after that runs through the CLI as a
user would: ``invoke backup.list``, ``backup.verify``, ``backup.restore``, and a
restore killed at each of its fail points, settled by the next command.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from cicd.core.errors import CicdError
from cicd.core.progress import Timeline
from cicd.host.backup import back_up, last_restore_check, restore_check
from cicd.pipeline.restore import POINTS
from cicd.reporting.notify import Notifier
from cicd.pipeline.deploy import deploy_preprod
from cicd.host.target import Target
from cicd.transport.runner import Runner
from tools.testinfra.sshd import SshFleet
from tests.conftest import Project, invoke
from tests.integration.test_faults import killed, ok, said

pytestmark = pytest.mark.slow


def ledger(project: Project) -> list[dict[str, object]]:
    """Production's ledger, parsed."""
    path = project.root / "prod" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def shared(project: Project) -> Path:
    """Production's persistent data."""
    return project.root / "prod" / "shared"


def contents(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path → text)."""
    return {
        str(p.relative_to(folder)): p.read_text()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def taken(project: Project, app_env: str = "") -> tuple[str, Path]:
    """Deploy v1 to prod, fill ``shared/``, take a backup: its stamp and archive.

    ``app_env``: the app's secrets file as it is backed up (none when empty).
    """
    v1 = project.repo.commit("v1")
    prod = project.target("prod")
    deploy_preprod([prod], v1, Notifier(prod))
    (shared(project) / "db").mkdir(parents=True)
    (shared(project) / "ratings.db").write_text("precious")
    (shared(project) / "db" / "recipes.csv").write_text("id,name\n1,soup\n")
    if app_env:
        (shared(project) / "app.env").write_text(app_env)
    back_up(prod, v1, Timeline(lambda line: None))
    (archive,) = (project.root / "prod" / "backups").glob("*.tar.gz")
    return archive.name.split("-")[0], archive


def damage(project: Project) -> None:
    """What a bad day does to the data: a file changed, one added."""
    (shared(project) / "ratings.db").write_text("damaged")
    (shared(project) / "stray.tmp").write_text("junk")


def leftovers(project: Project) -> list[str]:
    """What a restore must not leave behind: scratch directories, intent, lock."""
    env = project.root / "prod"
    names = [".restore-staged", ".restore-old", ".restore-check", "intent", "lock"]
    return [n for n in names if (env / n).exists()]


ORIGINAL = {"db/recipes.csv": "id,name\n1,soup\n", "ratings.db": "precious"}
DAMAGED = {**ORIGINAL, "ratings.db": "damaged", "stray.tmp": "junk"}


def test_a_backup_is_read_back_whole_and_listed_with_its_figures(
    project: Project,
) -> None:
    stamp, archive = taken(project)
    (event,) = [e for e in ledger(project) if e["event"] == "backup"]
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert str(event["detail"]).endswith(
        f"sha256={digest} files=2 bytes={archive.stat().st_size} data=23"
    ), event

    listed = invoke("backup.list", "--env", "prod", "--json")
    assert listed.returncode == 0, said(listed)
    (host,) = json.loads(listed.stdout)["hosts"]
    (row,) = host["backups"]
    assert (row["stamp"], row["files"], row["sha256"]) == (stamp, 2, digest)
    assert row["bytes"] == archive.stat().st_size and row["verified"], row

    table = invoke("backup.list", "--env", "prod")
    assert table.returncode == 0, said(table)
    header, line = table.stdout.splitlines()
    assert header.split() == ["STAMP", "RELEASE", "SIZE", "FILES", "SHA256", "VERIFIED"]
    assert line.startswith(stamp) and digest[:12] in line, line

    checked = invoke("backup.verify", "--env", "prod")
    assert checked.returncode == 0, said(checked)
    assert f"{stamp} verified: 2 files" in checked.stdout, checked.stdout


def test_a_restore_puts_the_data_back_and_restarts_the_app_on_it(
    project: Project,
) -> None:
    stamp, _ = taken(project)
    damage(project)
    done = invoke("backup.restore", "--env", "prod", "--from", stamp)
    assert done.returncode == 0, said(done)
    assert f"restored {stamp}" in done.stdout and "ready after" in done.stdout
    assert contents(shared(project)) == ORIGINAL
    assert leftovers(project) == []
    assert requests.get(project.url("prod"), timeout=5).text.strip() == "v1 ok"
    events = ledger(project)
    restored = [e for e in events if e["event"] == "restore"]
    assert [e["outcome"] for e in restored] == ["ok"], restored
    # The app was restarted on the restored data, after it was put back.
    after = events[events.index(restored[0]) :]
    assert any(
        e["event"] == "health" and f"restore {stamp}" in str(e.get("detail"))
        for e in after
    ), after
    # A restore put into service proves the backup restores.
    days = last_restore_check(project.target("prod").state())
    assert days is not None and days < 0.01


def test_a_restore_check_restores_into_scratch_and_leaves_the_data_alone(
    project: Project,
) -> None:
    stamp, archive = taken(project)
    prod = project.target("prod")
    assert last_restore_check(prod.state()) is None
    damage(project)
    checked = restore_check(prod, stamp)
    assert (checked.stamp, checked.files, checked.data_bytes) == (stamp, 2, 23)
    assert contents(shared(project)) == DAMAGED  # the live data is not touched
    assert leftovers(project) == []
    days = last_restore_check(prod.state())
    assert days is not None and days < 0.01

    archive.write_bytes(archive.read_bytes()[:-40])
    with pytest.raises(CicdError, match="is corrupt"):
        restore_check(prod, stamp)
    assert leftovers(project) == []
    last = ledger(project)[-1]
    assert (last["event"], last["outcome"]) == ("restore", "failed"), last


def test_data_the_app_cannot_start_on_is_put_back_and_the_app_restarted(
    project: Project,
) -> None:
    project.write(deadline=1.5)
    # Backed up with a secrets file the app's loader refuses: it cannot start.
    stamp, _ = taken(project, app_env="this is no KEY=VALUE line\n")
    (shared(project) / "app.env").write_text("GREETING=hello\n")
    damage(project)
    before = contents(shared(project))
    failed = invoke("backup.restore", "--env", "prod", "--from", stamp)
    assert failed.returncode == 1, said(failed)
    assert f"did not get ready on the data of {stamp}" in failed.stderr
    assert "the previous data is back" in failed.stderr
    assert contents(shared(project)) == before
    assert leftovers(project) == []
    assert requests.get(project.url("prod"), timeout=5).text.strip() == "v1 ok"
    outcomes = [e["outcome"] for e in ledger(project) if e["event"] == "restore"]
    assert outcomes == ["ok", "failed"]


def truncate(archive: Path) -> None:
    """Cut an archive in half, as a full disk or a killed copy would."""
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])


def replace_content(archive: Path) -> None:
    """Put another valid archive in its place: readable, but not the one recorded."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"forged"
        info = tarfile.TarInfo("shared/ratings.db")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(gzip.compress(buffer.getvalue()))


@pytest.mark.parametrize(
    ("spoil", "why"),
    [
        (truncate, "is corrupt: it cannot be read to its end"),
        (replace_content, "was altered"),
    ],
)
def test_a_bad_archive_fails_verify_and_restore_and_nothing_changes(
    project: Project, spoil: object, why: str
) -> None:
    stamp, archive = taken(project)
    damage(project)
    spoil(archive)  # type: ignore[operator]
    pid = app_pid(project)
    checked = invoke("backup.verify", "--env", "prod", "--from", stamp)
    assert checked.returncode == 1, said(checked)
    assert why in checked.stderr and len(checked.stderr.strip().splitlines()) == 1
    refused = invoke("backup.restore", "--env", "prod", "--from", stamp)
    assert refused.returncode == 1, said(refused)
    assert why in refused.stderr and "Traceback" not in refused.stderr
    assert contents(shared(project)) == DAMAGED
    assert leftovers(project) == [] and app_pid(project) == pid
    assert not [e for e in ledger(project) if e["event"] == "restore"]
    listed = json.loads(invoke("backup.list", "--env", "prod", "--json").stdout)
    assert listed["hosts"][0]["backups"][0]["failed"], listed


def app_pid(project: Project) -> str:
    """The pid of production's app under supervisord (it changes on a restart)."""
    import sys

    ctl = Path(sys.executable).parent / "supervisorctl"
    conf = project.root / "supervisor" / "supervisord.conf"
    out = subprocess.run(
        [str(ctl), "-c", str(conf), "pid", "app-prod"], capture_output=True, text=True
    )
    return out.stdout.strip()


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--from", "yesterday"], 2, "invalid backup stamp 'yesterday'"),
        ([], 2, "needs --from STAMP"),
        (["--env", "nowhere", "--from", "20260101T000000Z"], 2, "unknown environment"),
        (["--from", "20260101T000000Z"], 1, "no backup 20260101T000000Z"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    project: Project, args: list[str], code: int, words: str
) -> None:
    taken(project)
    damage(project)
    env = [] if "--env" in args else ["--env", "prod"]
    result = invoke("backup.restore", *env, *args)
    assert result.returncode == code, said(result)
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert contents(shared(project)) == DAMAGED and leftovers(project) == []


#: Each fail point of a restore, in place and behind haproxy; behind haproxy also
#: inside the restart (the restart's own intent, completed by a repair).
KILLS = [(p, proxy) for p in POINTS for proxy in ("none", "haproxy")] + [
    ("switched", "haproxy"),
    ("restarted", "haproxy"),
]


@pytest.mark.parametrize(("point", "proxy"), KILLS)
def test_a_restore_killed_at_each_step_is_finished_or_undone_by_the_next_command(
    project: Project, point: str, proxy: str
) -> None:
    project.write(proxy=proxy, deadline=5)
    stamp, _ = taken(project)
    damage(project)
    killed("backup.restore", "--env", "prod", "--from", stamp, point=point)

    ok("status", "--repair", "--env", "prod")
    # Killed before the data was staged: undone; after: finished.
    expected = DAMAGED if point == "restore-extracted" else ORIGINAL
    assert contents(shared(project)) == expected
    assert not (project.root / "prod" / "intent").exists()
    assert not (project.root / "prod" / ".restore-staged").exists()
    assert not (project.root / "prod" / "lock").exists()
    assert requests.get(project.url("prod"), timeout=5).text.strip() == "v1 ok"
    outcomes = [e["outcome"] for e in ledger(project) if e["event"] == "restore"]
    assert outcomes == (["failed"] if point == "restore-extracted" else ["ok"])


def test_fab_lists_verifies_and_restores_over_ssh(
    project: Project, ssh_hosts: Callable[[int], SshFleet]
) -> None:
    from tests.integration.test_ssh import fab, host_tables

    fleet = ssh_hosts(1)
    host_tables(project, fleet)
    v1 = project.repo.commit("v1")
    # Deployed and backed up over SSH too: a Target on a Fabric Connection.
    prod = Target(Runner(fleet.connection("h1")), project.settings(), "prod")
    deploy_preprod([prod], v1, Notifier(prod))
    data = project.root / "h1" / "prod" / "shared"
    data.mkdir(parents=True, exist_ok=True)
    (data / "ratings.db").write_text("precious")
    back_up(prod, v1, Timeline(lambda line: None))
    (archive,) = (project.root / "h1" / "prod" / "backups").glob("*.tar.gz")
    stamp = archive.name.split("-")[0]

    listed = fab(fleet, "-H", "h1", "backup.list", "--env", "prod", "--json")
    assert listed.returncode == 0, listed.stderr
    (host,) = json.loads(listed.stdout)["hosts"]
    assert host["host"] == "h1" and host["backups"][0]["stamp"] == stamp, host
    checked = fab(fleet, "-H", "h1", "backup.verify", "--env", "prod")
    assert checked.returncode == 0 and f"{stamp} verified" in checked.stdout
    (data / "ratings.db").write_text("damaged")
    done = fab(fleet, "-H", "h1", "backup.restore", "--env", "prod", "--from", stamp)
    assert done.returncode == 0, done.stderr
    assert (data / "ratings.db").read_text() == "precious"
    assert requests.get(project.url("prod"), timeout=5).text.strip() == "v1 ok"

    truncate(archive)
    (data / "ratings.db").write_text("damaged")
    refused = fab(fleet, "-H", "h1", "backup.restore", "--env", "prod", "--from", stamp)
    assert refused.returncode == 1 and "is corrupt" in refused.stderr, refused.stderr
    assert (data / "ratings.db").read_text() == "damaged"


@pytest.mark.parametrize("point", ["restore-extracted", "restore-swapped"])
def test_a_power_loss_mid_restore_is_settled_by_start(
    project: Project, point: str
) -> None:
    from tests.integration.test_power_loss import power_loss

    stamp, _ = taken(project)
    damage(project)
    killed("backup.restore", "--env", "prod", "--from", stamp, point=point)
    power_loss(project)  # supervisord and the app die with the restore
    started = invoke("start", timeout=90, env={"CICD_FAILPOINT": ""})
    assert started.returncode == 0, said(started)
    expected = DAMAGED if point == "restore-extracted" else ORIGINAL
    assert contents(shared(project)) == expected
    assert leftovers(project) == []
    assert requests.get(project.url("prod"), timeout=5).text.strip() == "v1 ok"
