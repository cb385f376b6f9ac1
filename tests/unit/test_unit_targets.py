"""Which hosts a task acts on: this machine, ``fab -H``'s host, or configured hosts."""

from __future__ import annotations

from pathlib import Path

import pytest
from invoke import Context

from cicd.core import config as config_module
from cicd.tasks.hosts import configured_fleet, env_targets, targets, task_settings


def test_configured_hosts_become_ssh_targets_without_connecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "cicd.toml"
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        "Host h1\n  HostName 127.0.0.2\nHost h2\n  HostName 127.0.0.3\n"
    )
    config.write_text(
        '[tool.cicd.env.prod]\nhosts = ["h1", "h2"]\nssh_config = "ssh_config"\n'
        '[tool.cicd.host.h2]\nroot = "/srv/other"\n'
    )
    monkeypatch.setenv("CICD_CONFIG", str(config))
    fleet = targets(Context(), "prod")
    assert [t.runner.host for t in fleet] == ["h1", "h2"]
    assert all(t.runner.remote for t in fleet)
    assert fleet[1].paths.root == "/srv/other"  # per-host settings
    assert fleet[0].paths.root == ".cicd"  # remote: relative to the login directory
    assert configured_fleet(Context(), fleet) == fleet
    local = targets(Context(), "preprod")
    assert len(local) == 1 and not local[0].runner.remote
    assert configured_fleet(Context(), local) is None


def test_a_task_resolves_its_settings_once_for_every_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "cicd.toml"
    config.write_text('[tool.cicd.env.prod]\nhosts = ["h1", "h2"]\n')
    monkeypatch.setenv("CICD_CONFIG", str(config))
    loaded = []
    load = config_module.load
    monkeypatch.setattr(config_module, "load", lambda *a: loaded.append(a) or load(*a))
    every = env_targets(Context())
    assert len(loaded) == 1  # not once per environment nor per host
    assert [(t.env, t.runner.host) for t in every if t.runner.remote] == [
        ("prod", "h1"),
        ("prod", "h2"),
    ]
    assert {t.env for t in every} == set(task_settings(Context()).envs)
