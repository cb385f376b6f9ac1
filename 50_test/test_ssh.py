"""The deploy host is reachable over SSH, and its host key is already known."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import require, scrub

from cicd.transport.ssh import connect, describe_failure


def test_ssh_host_is_reachable_with_known_host_key() -> None:
    """``true`` runs on CICD_SSH_HOST through a strictly host-key-checked connection.

    The host is an ssh_config alias or an address; CICD_SSH_CONFIG names the
    ssh_config file (default ~/.ssh/config). A host key missing from the
    known_hosts files is refused, never accepted: that fails the check.
    """
    host = require("CICD_SSH_HOST", optional=("CICD_SSH_CONFIG",))["CICD_SSH_HOST"]
    ssh_config = os.environ.get("CICD_SSH_CONFIG", "")
    if ssh_config and not Path(ssh_config).is_file():
        pytest.fail(f"CICD_SSH_CONFIG={ssh_config}: no such file", pytrace=False)
    connection = connect(host, ssh_config)
    problem = ""
    try:
        result = connection.run("true", hide=True, warn=True, in_stream=False)
    except Exception as error:  # paramiko and sockets raise many kinds
        problem = scrub(describe_failure(host, error))
    finally:
        connection.close()
    if problem:  # failed outside the except block: no chained traceback
        pytest.fail(problem, pytrace=False)
    assert result.ok, f"{host}: `true` exited {result.exited}: {result.stderr[-300:]}"
