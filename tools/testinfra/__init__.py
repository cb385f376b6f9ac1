"""Real components for the tests: Debian packages, dockerd, sshd hosts, stand-ins.

Everything here provisions *this* machine and listens on 127.0.0.0/8 only, or
inside the network namespaces it creates (the swarm's veth pair): the network rule
of DESIGN.md. Used by the tests (:mod:`tools.testinfra.fixtures`, a
pytest plugin), the benches, ``invoke infra.*`` (:mod:`tools.testinfra.tasks`, listed
only with ``CICD_DEV_TASKS=1``) and CI's ``.ci/run`` (``PYTHONPATH=. python3 -m
tools.testinfra up|down|swarm-up|swarm-down|local-env``).

Modules:

- :mod:`~tools.testinfra.process`: run a command, detach a daemon, stop a pidfile's
  process, find a free port.
- :mod:`~tools.testinfra.packages`: the Debian packages, installed without starting
  the services they ship.
- :mod:`~tools.testinfra.docker`: dockerd with no bridge, iptables or masquerading,
  and the busybox image made with ``docker import``.
- :mod:`~tools.testinfra.sshd`: one OpenSSH sshd per simulated host on 127.0.0.2,
  127.0.0.3..., the fleet's ssh_config and known_hosts, Fabric connections that
  check host keys.
- :mod:`~tools.testinfra.swarm`: a two-node Docker Swarm in two network namespaces
  joined by a veth pair (a containerd and a dockerd in each), and a registry in the
  manager's namespace (``swarm-up``, ``swarm-down``).
- :mod:`~tools.testinfra.standins`: the infra checks' local stand-ins (sshd, HTTP
  for GitHub, Discord and health, moto's S3) and their ``export`` lines.
- :mod:`~tools.testinfra.provision`: ``up`` and ``down``.
- ``__main__``: the command line above.
- :mod:`~tools.testinfra.fixtures` and :mod:`~tools.testinfra.tasks`: the pytest
  plugin and the ``infra.*`` invoke tasks (these two import pytest and invoke).

All but the last two use the standard library only (Fabric and
:mod:`cicd.transport.ssh` are
imported inside the functions that need them), so CI runs them before the project
is installed. Commands are built as argv lists by small pure functions, tested
without running anything (tests/unit/test_unit_testinfra.py), and run with
:mod:`subprocess`; what starts daemons is tested in
tests/integration/test_testinfra.py.
"""
