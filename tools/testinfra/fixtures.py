"""A pytest plugin of real components: a Docker engine, the busybox image, sshd hosts.

And a two-node Docker Swarm (:func:`swarm`), which only ``swarm-up`` provisions.

Registered for every test by ``pytest_plugins = ("tools.testinfra.fixtures",)`` in
``tests/conftest.py``. Each fixture skips with the way to get the component when it
is absent; ``python3 -m tools.testinfra up`` (or ``CICD_DEV_TASKS=1 invoke infra.up``,
or CI's ``.ci/run``) provides all of them but the swarm (``swarm-up``, also in
``.ci/run``).

It also marks the tests that need them (:func:`pytest_collection_modifyitems`): a
test using a fleet fixture is ``sshd``, one using the engine or the swarm is
``docker``, and those, with the ``act`` ones, are ``slow``: ``nox -s quick`` leaves
them to the full run.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tools.testinfra import docker, sshd
from tools.testinfra.sshd import SshFleet
from tools.testinfra.swarm import NEEDS_SWARM, Swarm, describe, swarm_ok

#: The fixtures that start a component, and the marker each gives its tests.
COMPONENT_FIXTURES = {
    "ssh_hosts": "sshd",
    "module_ssh_hosts": "sshd",
    "docker_engine": "docker",
    "busybox_image": "docker",
    "swarm": "docker",
}
#: Tests with one of these markers need a heavy real component: they are also slow.
HEAVY_MARKERS = ("sshd", "docker", "act")
#: Serialises engine start and image import across pytest-xdist workers.
LOCK = Path(tempfile.gettempdir()) / "cicd-testinfra.lock"


@contextmanager
def _locked(path: Path = LOCK) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[str]:
    """The socket of a Docker engine that answers ``docker info``.

    Skips when none answers. With ``CICD_TEST_START_DOCKERD=1`` it starts one
    instead (as ``python3 -m tools.testinfra up`` would) and stops it at the end of
    the session, except under pytest-xdist, where other workers may still use it:
    ``python3 -m tools.testinfra down`` stops it then.
    """
    started = False
    if not docker.docker_ok():
        if os.environ.get("CICD_TEST_START_DOCKERD") != "1":
            pytest.skip(docker.NEEDS_DOCKER)
        with _locked():
            started = docker.start_dockerd()
    yield docker.DOCKER_SOCKET
    if started and "PYTEST_XDIST_WORKER" not in os.environ:
        docker.stop_dockerd()


@pytest.fixture(scope="session")
def busybox_image(docker_engine: str) -> str:
    """The tag of the local busybox image, imported once if missing."""
    with _locked():
        docker.build_busybox_image(docker.BUSYBOX_TAG)
    return docker.BUSYBOX_TAG


@pytest.fixture(scope="session")
def swarm() -> Swarm:
    """The two-node Docker Swarm in network namespaces, as ``swarm-up`` made it.

    Skips unless the manager lists 2 Ready nodes. It never starts or stops the
    swarm (``python3 -m tools.testinfra swarm-up`` does, outside pytest): every
    pytest-xdist worker only checks, and tests share it, so a test removes the
    services, containers and images it creates.
    """
    if not swarm_ok(docker.DEFAULT_STATE_DIR):
        pytest.skip(NEEDS_SWARM)
    return describe(docker.DEFAULT_STATE_DIR)


def _fleets(
    factory: pytest.TempPathFactory,
) -> Iterator[Callable[[int], SshFleet]]:
    if not sshd.SSHD.exists():
        pytest.skip(sshd.NEEDS_SSHD)
    fleets: list[SshFleet] = []

    def start(count: int = 1) -> SshFleet:
        fleet = sshd.start_fleet(count, factory.mktemp("ssh"))
        fleets.append(fleet)
        return fleet

    try:
        yield start
    finally:
        for fleet in fleets:
            fleet.stop()


@pytest.fixture
def ssh_hosts(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[int], SshFleet]]:
    """Start N simulated hosts, all stopped after the test.

    ``fleet = ssh_hosts(3)``: host ``h1`` is an sshd on 127.0.0.2, ``h2`` on
    127.0.0.3..., each on a free high port with its own host key; one user key logs
    in everywhere. The fleet gives ``hosts`` (:class:`tools.testinfra.sshd.SshHost`),
    ``ssh_config`` (for ``fab -S FILE -H h1`` or ``ssh -F FILE h1``),
    ``known_hosts`` (every host key), and ``connection(name)``: a Fabric Connection
    that refuses unknown host keys.
    """
    yield from _fleets(tmp_path_factory)


@pytest.fixture(scope="module")
def module_ssh_hosts(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[int], SshFleet]]:
    """Like :func:`ssh_hosts`, for a whole module (stopped after its last test)."""
    yield from _fleets(tmp_path_factory)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that needs a heavy real component.

    A test using a fleet fixture (:func:`ssh_hosts`, :func:`module_ssh_hosts`) gets
    ``sshd``, one using :func:`docker_engine`, :func:`busybox_image` or
    :func:`swarm` gets ``docker``; every test marked ``sshd``, ``docker`` or ``act``
    then gets ``slow``. A new test of that kind thus never slips into ``nox -s
    quick``.
    """
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        for name, marker in COMPONENT_FIXTURES.items():
            if name in fixtures and item.get_closest_marker(marker) is None:
                item.add_marker(marker)
        heavy = any(item.get_closest_marker(m) for m in HEAVY_MARKERS)
        if heavy and item.get_closest_marker("slow") is None:
            item.add_marker("slow")
