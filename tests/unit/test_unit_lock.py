"""Lock holders: how they are described, and when a lock is stale."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from cicd.core.lock_details import describe, is_stale, process_alive


def test_describe_names_the_holder() -> None:
    details = {
        "actor": "grace",
        "host": "ci-1",
        "pid": 42,
        "time": "2026-11-26T10:00:00Z",
        "why": "deploy",
        "sha": "a" * 40,
    }
    line = describe(details)
    assert line.startswith("grace on ci-1 (pid 42) since 2026-11-26T10:00:00Z: deploy")
    assert line.endswith("a" * 12)
    assert describe({"raw": "garbled"}) == "garbled"


def test_a_lock_is_stale_only_when_its_process_here_is_gone() -> None:
    here = socket.gethostname()
    assert not is_stale({"host": here, "pid": os.getpid()})
    assert not is_stale({"host": "elsewhere", "pid": 999999})
    assert not is_stale({"host": here, "pid": "nope"})
    assert not is_stale({"host": here, "pid": 0})
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    assert is_stale({"host": here, "pid": finished.pid})


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    # Not waited for yet: the exited child is a zombie until reaped.
    while process_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not process_alive(child.pid)
    child.wait()
    assert not process_alive(child.pid)


def test_describe_says_a_holder_whose_process_is_gone_is_stale() -> None:
    here = socket.gethostname()
    details = {"actor": "root", "host": here, "time": "T", "why": "deploy"}
    live = describe({**details, "pid": os.getpid()})
    assert "STALE" not in live
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead = describe({**details, "pid": finished.pid})
    assert dead.startswith(f"root on {here} (pid {finished.pid}) since T: deploy")
    assert dead.endswith(
        f" — STALE: pid {finished.pid} is gone on this host (the next deploy, "
        "rollback or verdict breaks it)"
    )
    # Elsewhere, nothing here can tell: shown as a holder.
    assert "STALE" not in describe({**details, "host": "elsewhere", "pid": 1})
