"""A real two-node Docker Swarm, each node in a network namespace of its own.

Node 1 (the manager) lives in the network namespace ``cicd-swarm1``, node 2 (the
worker) in ``cicd-swarm2``; a veth pair joins them on 10.231.0.0/24, a range that
exists only inside the two namespaces: nothing is added to the host namespace's
addresses or routes (the network rule of DESIGN.md), and the namespaces have no
route to anywhere else. Each node runs its own containerd and dockerd, started with
``nsenter --net`` (``ip netns exec`` remounts ``/sys``, and dockerd then finds no
devices cgroup): containerd and its shims live in the node's namespace, so a
``--network host`` container or service task does too. Overlay and local bridge
networks (``ingress``, ``docker_gwbridge``) take their ranges from 10.232.0.0/16.

A ``docker-registry`` (Debian's distribution 2.8) listens on 10.231.0.1:5000 inside
node 1's namespace; both engines trust it over plain HTTP. The busybox image of
:mod:`tools.testinfra.docker` is imported into both engines and pushed to it.

The kernel of the CI machine has no IPVS: the ingress routing mesh and service VIPs
do not work, so services use host networking and ``--mode global``.

``python3 -m tools.testinfra swarm-up`` / ``swarm-down`` (CI's ``.ci/run``); the
``swarm`` fixture (:mod:`tools.testinfra.fixtures`) only checks that it is up.
Standard library only.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.testinfra.docker import (
    BUSYBOX,
    BUSYBOX_TAG,
    DEFAULT_STATE_DIR,
    DOCKERD_NETWORK_FLAGS,
    build_busybox_image,
    docker_argv,
    docker_ok,
    mounts_under,
)
from tools.testinfra.process import (
    alive,
    comm,
    detach,
    kill_pidfile,
    read_pid,
    run,
    succeeds,
    tail,
)

#: The manager's and the worker's network namespaces (``ip netns`` names).
MANAGER_NETNS = "cicd-swarm1"
WORKER_NETNS = "cicd-swarm2"
#: Where ``ip netns add`` puts a namespace: what ``nsenter --net=`` enters.
NETNS_DIR = Path("/run/netns")
#: The veth pair: one end in each namespace.
MANAGER_VETH = "cicdsw1"
WORKER_VETH = "cicdsw2"
#: The nodes' link: a private range that exists only inside the two namespaces.
PREFIX_LENGTH = 24
MANAGER_ADDR = "10.231.0.1"
WORKER_ADDR = "10.231.0.2"
#: Swarm's raft/control port.
SWARM_PORT = 2377
#: Overlay networks (``ingress`` and the tests' own): one /24 each from here.
OVERLAY_POOL = "10.232.0.0/17"
#: Local bridge networks (``docker_gwbridge``): dockerd's default pool is
#: 172.17.0.0/16 and up, which could shadow real networks of the machine.
LOCAL_POOL = "base=10.232.128.0/17,size=24"
#: The image registry in the manager's namespace, trusted over plain HTTP.
REGISTRY = f"{MANAGER_ADDR}:5000"
REGISTRY_BINARY = Path("/usr/bin/docker-registry")
#: The busybox image as the registry serves it (pushed by :func:`up`).
REGISTRY_IMAGE = f"{REGISTRY}/{BUSYBOX_TAG}"
#: The nodes' directories under ``<state dir>/swarm``, manager first.
NODES = ("node1", "node2")
#: The node label :func:`up` sets to ``node1``/``node2``: a service constraint like
#: ``node.labels.cicd.node==node2`` (both nodes have the host's hostname).
NODE_LABEL = "cicd.node"
#: Without it, a service task pulls its image from the registry even when the
#: engine has it (then ``docker import``-ed images never run).
DOCKERD_ENV = {"DOCKER_SERVICE_PREFER_OFFLINE_IMAGE": "1"}
#: The skip reason of the tests that need the swarm.
NEEDS_SWARM = (
    "needs a two-node Docker Swarm in network namespaces: run `PYTHONPATH=. python3 "
    "-m tools.testinfra swarm-up` (Debian: docker.io, docker-registry) — CI's "
    ".ci/run does"
)

Say = Callable[[str], None]


@dataclass(frozen=True)
class Swarm:
    """Where the swarm's parts are, for the tests.

    Attributes:
        manager_socket: Node 1's dockerd socket (``docker -H unix://...``).
        worker_socket: Node 2's dockerd socket.
        manager_netns: Node 1's network namespace (``nsenter --net=...``).
        worker_netns: Node 2's network namespace.
        manager_addr: Node 1's address on the nodes' link.
        worker_addr: Node 2's address on the nodes' link.
        registry: The registry, ``host:port``, for image names.
        image: The busybox image present in both engines.
    """

    manager_socket: str
    worker_socket: str
    manager_netns: Path
    worker_netns: Path
    manager_addr: str = MANAGER_ADDR
    worker_addr: str = WORKER_ADDR
    registry: str = REGISTRY
    image: str = BUSYBOX_TAG


def swarm_dir(state_dir: Path = DEFAULT_STATE_DIR) -> Path:
    """The swarm's own directory under the test infrastructure's state dir."""
    return state_dir / "swarm"


def node_dir(state_dir: Path, index: int) -> Path:
    """Node ``index``'s directory (0: the manager, 1: the worker)."""
    return swarm_dir(state_dir) / NODES[index]


def node_socket(state_dir: Path, index: int) -> str:
    """Node ``index``'s dockerd socket."""
    return str(node_dir(state_dir, index) / "docker.sock")


def netns_path(name: str) -> Path:
    """The file of the network namespace ``name`` (made by ``ip netns add``)."""
    return NETNS_DIR / name


def describe(state_dir: Path = DEFAULT_STATE_DIR) -> Swarm:
    """Where the swarm that :func:`up` starts with ``state_dir`` is."""
    return Swarm(
        manager_socket=node_socket(state_dir, 0),
        worker_socket=node_socket(state_dir, 1),
        manager_netns=netns_path(MANAGER_NETNS),
        worker_netns=netns_path(WORKER_NETNS),
    )


# -- argv builders (pure) -------------------------------------------------------------


def in_netns(netns: Path | str, argv: Sequence[str]) -> list[str]:
    """Prefix ``argv`` with ``nsenter`` into the network namespace file ``netns``.

    Only the network namespace changes: mounts (``/sys``, cgroups) stay the host's,
    which dockerd needs.
    """
    return ["nsenter", f"--net={netns}", *argv]


def netns_add_argv(name: str) -> list[str]:
    """Build ``ip netns add NAME``."""
    return ["ip", "netns", "add", name]


def netns_delete_argv(name: str) -> list[str]:
    """Build ``ip netns delete NAME``."""
    return ["ip", "netns", "delete", name]


def veth_argv(
    name: str = MANAGER_VETH,
    netns: str = MANAGER_NETNS,
    peer: str = WORKER_VETH,
    peer_netns: str = WORKER_NETNS,
) -> list[str]:
    """Build the creation of the veth pair, each end directly in its namespace.

    Run from inside ``netns`` (``ip`` itself resolves ``peer_netns``), so the pair
    is never, even for a moment, a link of the host namespace.
    """
    command = ["ip", "link", "add", name, "type", "veth"]
    command += ["peer", "name", peer, "netns", peer_netns]
    return in_netns(netns_path(netns), command)


def addr_add_argv(netns: str, device: str, address: str) -> list[str]:
    """Build ``ip addr add ADDRESS/24 dev DEVICE`` inside ``netns``."""
    command = ["ip", "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", device]
    return in_netns(netns_path(netns), command)


def link_up_argv(netns: str, device: str) -> list[str]:
    """Build ``ip link set DEVICE up`` inside ``netns``."""
    return in_netns(netns_path(netns), ["ip", "link", "set", device, "up"])


def link_delete_argv(netns: str, device: str) -> list[str]:
    """Build ``ip link delete DEVICE`` inside ``netns`` (a veth takes its peer)."""
    return in_netns(netns_path(netns), ["ip", "link", "delete", device])


def containerd_config(node: Path) -> str:
    """The config.toml of a node's containerd: every path under ``node``.

    Its own root, state and gRPC socket, so it never meets the host's containerd;
    no TCP, debug or metrics listener; the CRI plugin (Kubernetes) is off.
    """
    return (
        "version = 2\n"
        f'root = "{node / "containerd"}"\n'
        f'state = "{node / "containerd-state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        "\n[grpc]\n"
        f'  address = "{node / "containerd.sock"}"\n'
        '  tcp_address = ""\n'
        "\n[debug]\n"
        '  address = ""\n'
        "\n[metrics]\n"
        '  address = ""\n'
        "\n[plugins]\n"
        '  [plugins."io.containerd.internal.v1.opt"]\n'
        f'    path = "{node / "containerd-opt"}"\n'
    )


def containerd_argv(node: Path, netns: str) -> list[str]:
    """Build a node's containerd command, in the node's network namespace."""
    config = node / "containerd.toml"
    return in_netns(netns_path(netns), ["containerd", "--config", str(config)])


def swarm_dockerd_argv(node: Path, netns: str) -> list[str]:
    """Build a node's dockerd command, in the node's network namespace.

    The host's dockerd flags (vfs, no bridge, no iptables, no masquerading), its
    own containerd, paths and ``daemon.json`` (the host's ``/etc/docker`` is not
    read), local networks from :data:`LOCAL_POOL`, and the registry over HTTP.
    """
    command = [
        "dockerd",
        "--config-file",
        str(node / "daemon.json"),
        "--containerd",
        str(node / "containerd.sock"),
        "--storage-driver=vfs",
        *DOCKERD_NETWORK_FLAGS,
        "--default-address-pool",
        LOCAL_POOL,
        "--insecure-registry",
        REGISTRY,
        "--data-root",
        str(node / "docker"),
        "--exec-root",
        str(node / "exec"),
        "--pidfile",
        str(node / "dockerd.pid"),
        "-H",
        f"unix://{node / 'docker.sock'}",
    ]
    return in_netns(netns_path(netns), command)


def swarm_init_argv(socket_path: str) -> list[str]:
    """Build ``docker swarm init`` on the manager's address, with our pools."""
    return docker_argv(
        "swarm",
        "init",
        "--advertise-addr",
        MANAGER_ADDR,
        "--listen-addr",
        f"{MANAGER_ADDR}:{SWARM_PORT}",
        "--default-addr-pool",
        OVERLAY_POOL,
        "--default-addr-pool-mask-length",
        "24",
        socket_path=socket_path,
    )


def join_token_argv(socket_path: str) -> list[str]:
    """Build the manager's command printing the worker join token."""
    return docker_argv("swarm", "join-token", "-q", "worker", socket_path=socket_path)


def swarm_join_argv(socket_path: str, token: str) -> list[str]:
    """Build the worker's ``docker swarm join`` to the manager."""
    return docker_argv(
        "swarm",
        "join",
        "--token",
        token,
        "--advertise-addr",
        WORKER_ADDR,
        "--listen-addr",
        f"{WORKER_ADDR}:{SWARM_PORT}",
        f"{MANAGER_ADDR}:{SWARM_PORT}",
        socket_path=socket_path,
    )


def node_ls_argv(socket_path: str) -> list[str]:
    """Build ``docker node ls`` printing each node's status, one per line."""
    return docker_argv("node", "ls", "--format", "{{.Status}}", socket_path=socket_path)


def node_id_argv(socket_path: str) -> list[str]:
    """Build the command printing the swarm node id of the engine at ``socket_path``."""
    return docker_argv("info", "--format", "{{.Swarm.NodeID}}", socket_path=socket_path)


def node_label_argv(socket_path: str, node_id: str, name: str) -> list[str]:
    """Build the manager's command labelling a node ``cicd.node=NAME``."""
    label = f"{NODE_LABEL}={name}"
    return docker_argv(
        "node", "update", "--label-add", label, node_id, socket_path=socket_path
    )


def registry_config(root: Path) -> str:
    """The registry's config.yml: plain HTTP on :data:`REGISTRY`, files in ``root``.

    No auth (only the two namespaces can reach it), no notifications, deletes
    allowed so tests can clean up.
    """
    return (
        "version: 0.1\n"
        "log:\n"
        "  level: info\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {root / 'data'}\n"
        "  delete:\n"
        "    enabled: true\n"
        "http:\n"
        f"  addr: {REGISTRY}\n"
    )


def registry_argv(root: Path) -> list[str]:
    """Build ``docker-registry serve``, in the manager's network namespace."""
    command = [str(REGISTRY_BINARY), "serve", str(root / "config.yml")]
    return in_netns(netns_path(MANAGER_NETNS), command)


def registry_probe_argv() -> list[str]:
    """Build a GET of the registry's ``/v2/`` from inside the manager's namespace.

    busybox's wget: the host namespace has no route to the registry, on purpose.
    No ``-T``: Debian 12's busybox 1.35 wget segfaults with it; the caller's
    timeout bounds it.
    """
    url = f"http://{REGISTRY}/v2/"
    command = [str(BUSYBOX), "wget", "-q", "-O", "/dev/null", url]
    return in_netns(netns_path(MANAGER_NETNS), command)


# -- checks ---------------------------------------------------------------------------


def ready_nodes(state_dir: Path = DEFAULT_STATE_DIR) -> int:
    """How many nodes the manager lists as Ready (0 when it does not answer)."""
    try:
        result = run(node_ls_argv(node_socket(state_dir, 0)), check=False, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    if result.returncode != 0:
        return 0
    return result.stdout.split().count("Ready")


def swarm_ok(state_dir: Path = DEFAULT_STATE_DIR) -> bool:
    """Tell whether the manager answers ``docker node ls`` with 2 Ready nodes."""
    return ready_nodes(state_dir) == len(NODES)


def healthy(state_dir: Path = DEFAULT_STATE_DIR) -> bool:
    """Tell whether everything :func:`up` starts answers: swarm, both engines, images.

    More than :func:`swarm_ok` (what the fixture checks): also the worker's engine,
    the busybox image in both, and the registry.
    """
    sockets = [node_socket(state_dir, i) for i in range(len(NODES))]
    image = ("image", "inspect", BUSYBOX_TAG)
    return (
        swarm_ok(state_dir)
        and all(succeeds(docker_argv(*image, socket_path=s)) for s in sockets)
        and succeeds(registry_probe_argv(), timeout=10)
    )


def leftovers(state_dir: Path = DEFAULT_STATE_DIR) -> list[str]:
    """What of a swarm is present (namespaces, live daemons), healthy or not."""
    found = [
        name for name in (MANAGER_NETNS, WORKER_NETNS) if netns_path(name).exists()
    ]
    for pidfile, name in _pidfiles(state_dir):
        pid = read_pid(pidfile)
        if pid is not None and alive(pid) and comm(pid) == name:
            found.append(f"{name} {pid}")
    return found


def host_leaks(
    ranges: Sequence[str] = ("10.231.", "10.232."),
) -> list[str]:
    """Lines of the host namespace's addresses and routes that mention our ranges.

    Empty is the network rule holding: the swarm's ranges exist only inside its
    namespaces.
    """
    lines = run(["ip", "-4", "-o", "addr"]).stdout.splitlines()
    lines += run(["ip", "-4", "route", "show", "table", "all"]).stdout.splitlines()
    return [line for line in lines if any(r in line for r in ranges)]


# -- daemons ------------------------------------------------------------------------


def _pidfiles(state_dir: Path) -> list[tuple[Path, str]]:
    """Each daemon's pidfile and program name, in the order :func:`down` stops them.

    The registry first, then the dockerds (which stop their containers), then the
    containerds under them.
    """
    pidfiles = [(swarm_dir(state_dir) / "registry" / "registry.pid", "docker-registry")]
    nodes = [node_dir(state_dir, i) for i in range(len(NODES))]
    pidfiles += [(node / "dockerd.pid", "dockerd") for node in nodes]
    pidfiles += [(node / "containerd.pid", "containerd") for node in nodes]
    return pidfiles


def _socket_answers(path: Path) -> bool:
    """Whether something accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(2)
        try:
            client.connect(str(path))
        except OSError:
            return False
    return True


def _start(
    argv: Sequence[str],
    name: str,
    log: Path,
    pidfile: Path,
    ready: Callable[[], bool],
    *,
    env: dict[str, str] | None = None,
    writes_pidfile: bool = False,
    deadline: float = 60,
) -> None:
    """Start a daemon detached, record its pid, wait until ``ready()``.

    nsenter execs the daemon (no ``--fork``), so the pid is the daemon's: it goes to
    ``pidfile`` unless the daemon writes it itself (dockerd refuses to start when
    its pidfile exists).

    Raises:
        RuntimeError: It exited or was not ready in time (its log's tail included).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    process = detach(argv, log, env=env)
    if not writes_pidfile:
        pidfile.write_text(f"{process.pid}\n")
    limit = time.monotonic() + deadline
    while time.monotonic() < limit:
        if process.poll() is not None:
            raise RuntimeError(
                f"{name} exited {process.returncode}; {log}:\n{tail(log)}"
            )
        if ready():
            return
        time.sleep(0.1)
    kill_pidfile(pidfile, name)
    raise RuntimeError(
        f"{name} did not answer within {deadline:g} s; {log}:\n{tail(log)}"
    )


def _step(say: Say, started: float, line: str) -> None:
    say(f"{line} ({time.monotonic() - started:.2f} s)")


def _end_workload(state_dir: Path) -> int:
    """Remove every service and SIGKILL every container; return how many were killed.

    Otherwise each dockerd, on SIGTERM, gives every container its 10 s grace (a
    ``sleep`` as PID 1 ignores SIGTERM) and the swarm restarts failed tasks
    meanwhile: the services go first so nothing is rescheduled. Engines that do not
    answer are skipped (their daemons are stopped by pidfile anyway).
    """
    manager = node_socket(state_dir, 0)
    if docker_ok(manager):
        services = run(docker_argv("service", "ls", "-q", socket_path=manager))
        ids = services.stdout.split()
        if ids:
            run(docker_argv("service", "rm", *ids, socket_path=manager), check=False)
    killed = 0
    for index in range(len(NODES)):
        socket_path = node_socket(state_dir, index)
        if not docker_ok(socket_path):
            continue
        ids = run(docker_argv("ps", "-q", socket_path=socket_path)).stdout.split()
        if ids:
            run(docker_argv("kill", *ids, socket_path=socket_path), check=False)
            killed += len(ids)
    return killed


def up(state_dir: Path = DEFAULT_STATE_DIR, say: Say = print) -> bool:
    """Provision the two-node swarm; do nothing when it is already up and healthy.

    A partial or broken swarm (a namespace or daemon left over, a node not Ready)
    is torn down with :func:`down` and rebuilt. One line per step, with its time. A
    failure leaves what started in place, for its logs; :func:`down` cleans up.

    Args:
        state_dir: The test infrastructure's state directory (the swarm's is
            ``state_dir/swarm``).
        say: Where the step lines go.

    Returns:
        Whether a swarm was built (False: one was already up).

    Raises:
        RuntimeError: A command or daemon failed (with its output or log tail).
    """
    started = time.monotonic()
    swarm = describe(state_dir)
    if healthy(state_dir):
        _step(
            say, started, f"swarm: already up, 2 nodes Ready ({swarm_dir(state_dir)})"
        )
        return False
    found = leftovers(state_dir)
    if found or swarm_dir(state_dir).exists():
        say(f"swarm: partly there ({', '.join(found) or 'state only'}); rebuilding")
        down(state_dir, say)
    for binary in ("containerd", "dockerd", "nsenter", "ip", str(REGISTRY_BINARY)):
        if shutil.which(binary) is None:
            raise RuntimeError(
                f"{binary} is missing: run `python3 -m tools.testinfra up`"
            )

    started = time.monotonic()
    for name in (MANAGER_NETNS, WORKER_NETNS):
        run(netns_add_argv(name))
    run(veth_argv())
    ends = [
        (MANAGER_NETNS, MANAGER_VETH, MANAGER_ADDR),
        (WORKER_NETNS, WORKER_VETH, WORKER_ADDR),
    ]
    for netns, device, address in ends:
        run(addr_add_argv(netns, device, address))
        run(link_up_argv(netns, device))
        run(link_up_argv(netns, "lo"))
    _step(
        say,
        started,
        f"netns: {MANAGER_NETNS} ({MANAGER_VETH} {MANAGER_ADDR}/{PREFIX_LENGTH}) <-> "
        f"{WORKER_NETNS} ({WORKER_VETH} {WORKER_ADDR}/{PREFIX_LENGTH}), lo up",
    )

    netnses = (MANAGER_NETNS, WORKER_NETNS)
    for index, netns in enumerate(netnses):
        node = node_dir(state_dir, index)
        node.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        (node / "containerd.toml").write_text(containerd_config(node))
        grpc = node / "containerd.sock"
        _start(
            containerd_argv(node, netns),
            "containerd",
            node / "containerd.log",
            node / "containerd.pid",
            functools.partial(_socket_answers, grpc),
        )
        _step(say, started, f"{NODES[index]}: containerd in {netns}, socket {grpc}")
        started = time.monotonic()
        (node / "daemon.json").write_text("{}\n")
        socket_path = node_socket(state_dir, index)
        _start(
            swarm_dockerd_argv(node, netns),
            "dockerd",
            node / "dockerd.log",
            node / "dockerd.pid",
            functools.partial(docker_ok, socket_path),
            env=DOCKERD_ENV,
            writes_pidfile=True,
        )
        _step(say, started, f"{NODES[index]}: dockerd in {netns}, socket {socket_path}")

    started = time.monotonic()
    registry = swarm_dir(state_dir) / "registry"
    registry.mkdir(parents=True, exist_ok=True)
    (registry / "config.yml").write_text(registry_config(registry))
    _start(
        registry_argv(registry),
        "docker-registry",
        registry / "registry.log",
        registry / "registry.pid",
        lambda: succeeds(registry_probe_argv(), timeout=10),
    )
    _step(say, started, f"registry: {REGISTRY} in {MANAGER_NETNS}, data in {registry}")

    started = time.monotonic()
    run(swarm_init_argv(swarm.manager_socket))
    token = run(join_token_argv(swarm.manager_socket)).stdout.strip()
    run(swarm_join_argv(swarm.worker_socket, token))
    limit = time.monotonic() + 60
    while not swarm_ok(state_dir):
        if time.monotonic() > limit:
            listing = run(node_ls_argv(swarm.manager_socket), check=False).stdout
            raise RuntimeError(f"the worker is not Ready after 60 s:\n{listing}")
        time.sleep(0.2)
    # Both nodes share the host's hostname ("node.hostname==" cannot tell them
    # apart): a label per node gives services a placement constraint that can.
    for index, socket_path in enumerate((swarm.manager_socket, swarm.worker_socket)):
        node_id = run(node_id_argv(socket_path)).stdout.strip()
        run(node_label_argv(swarm.manager_socket, node_id, NODES[index]))
    _step(
        say,
        started,
        f"swarm: initialised on {MANAGER_ADDR}, worker joined; 2 Ready, labelled "
        f"{NODE_LABEL}=node1|node2",
    )

    started = time.monotonic()
    for socket_path in (swarm.manager_socket, swarm.worker_socket):
        build_busybox_image(BUSYBOX_TAG, socket_path)
    manager = swarm.manager_socket
    run(docker_argv("tag", BUSYBOX_TAG, REGISTRY_IMAGE, socket_path=manager))
    run(docker_argv("push", REGISTRY_IMAGE, socket_path=manager))
    run(docker_argv("pull", REGISTRY_IMAGE, socket_path=swarm.worker_socket))
    _step(
        say,
        started,
        f"image {BUSYBOX_TAG}: imported into both engines; pushed to {REGISTRY} "
        "from node1, pulled on node2",
    )

    leaks = host_leaks()
    if leaks:
        raise RuntimeError(
            "the host namespace has the swarm's ranges:\n" + "\n".join(leaks)
        )
    say("swarm: up; the host namespace has no 10.231.*/10.232.* address or route")
    return True


def down(state_dir: Path = DEFAULT_STATE_DIR, say: Say = print) -> bool:
    """Tear the swarm down: daemons, mounts, veth, namespaces, state. Idempotent.

    Removes the services and kills the containers, stops the registry, the dockerds
    and the containerds by pidfile, kills whatever is still inside the namespaces
    (a leftover shim), unmounts what the daemons left under the nodes' directories,
    deletes the veth pair and the namespaces, then ``state_dir/swarm`` (the next
    :func:`up` starts afresh).

    Returns:
        Whether anything was there to tear down.
    """
    started = time.monotonic()
    killed = _end_workload(state_dir)
    stopped = [
        name for pidfile, name in _pidfiles(state_dir) if kill_pidfile(pidfile, name)
    ]
    stray = []
    for name in (MANAGER_NETNS, WORKER_NETNS):
        if netns_path(name).exists():
            pids = run(["ip", "netns", "pids", name], check=False).stdout.split()
            for pid in map(int, pids):
                stray.append(f"{comm(pid) or '?'} {pid}")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    root = swarm_dir(state_dir)
    for point in mounts_under(root) if root.exists() else []:
        run(["umount", point], check=False)
    # rmtree must never descend into something still mounted.
    if root.exists() and mounts_under(root):
        raise RuntimeError(
            f"still mounted under {root}: {' '.join(mounts_under(root))}"
        )
    deleted = []
    if netns_path(MANAGER_NETNS).exists():
        # Deleting one end of a veth deletes its peer too.
        run(link_delete_argv(MANAGER_NETNS, MANAGER_VETH), check=False)
    for name in (MANAGER_NETNS, WORKER_NETNS):
        if netns_path(name).exists():
            run(netns_delete_argv(name))
            deleted.append(name)
    had_state = swarm_dir(state_dir).exists()
    shutil.rmtree(swarm_dir(state_dir), ignore_errors=True)
    if not (killed or stopped or stray or deleted or had_state):
        _step(say, started, "swarm: nothing to tear down")
        return False
    parts = [f"{killed} container(s) killed"] if killed else []
    parts.append(f"stopped {' '.join(stopped) or 'no daemon'}")
    if stray:
        parts.append(f"killed {', '.join(stray)} left in the namespaces")
    parts.append(f"deleted {' '.join(deleted) or 'no namespace'}")
    _step(say, started, f"swarm: down: {'; '.join(parts)}; state removed")
    return True
