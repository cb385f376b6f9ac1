"""Unit tests of the haproxy builders, its runtime API client and the slots' files.

No haproxy here: the runtime API is a small stand-in on a unix socket that keeps
each server's state the way haproxy reports it (``show servers state``: operational
state 2 is up; admin bits 0x01 maintenance, 0x04 the config's ``disabled``, 0x08
drain), checked against real haproxy 2.6 output. The config is validated by the
real ``haproxy -c`` when haproxy is installed. Real switches under load are the
integration tests' (tests/integration/test_bluegreen.py).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from invoke import Context

from cicd.commands import haproxy as hx
from cicd.core.config import from_table
from cicd.core.errors import CicdError
from cicd.host import proxy as proxy_module
from cicd.host.proxy import Proxy, ProxyDown
from cicd.transport.runner import Runner
from cicd.core.decisions import other
from cicd.host.slots import Slots
from cicd.host.target import Target

#: What haproxy 2.6 printed for a backend with blue up and green disabled.
SHOWN = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight \
srv_iweight srv_time_since_last_change srv_check_status srv_check_result \
srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id \
srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr \
srv_agent_addr srv_agent_port
3 be_preprod 1 blue 127.0.0.1 2 0 1 1 1 15 3 2 6 0 0 0 - 18991 - 0 0 - - 0
3 be_preprod 2 green 127.0.0.1 0 5 1 1 2 1 0 0 14 0 0 0 - 18992 - 0 0 - - 0
"""


def test_parse_and_route_read_haproxys_own_answer() -> None:
    servers = hx.parse_servers(SHOWN)
    assert servers == {"blue": (2, 0), "green": (0, 5)}
    assert hx.routed(servers) == ["blue"]
    # After `set server ... state ready` haproxy keeps bit 0x04 set: still routed.
    assert hx.routed({"blue": (0, 1), "green": (2, 4)}) == ["green"]
    # A slot failing a check this second is still the one routed to.
    assert hx.routed({"blue": (0, 0), "green": (0, 5)}) == ["blue"]
    assert hx.describe(2, 0) == "up"
    assert hx.describe(0, 0) == "down"
    assert hx.describe(2, 8) == "drained"
    assert hx.describe(0, 5) == "maint"


def servers(live: str | None) -> list[hx.Server]:
    return [
        hx.Server("blue", "127.0.0.1", 18500, live == "blue"),
        hx.Server("green", "127.0.0.1", 28500, live == "green"),
    ]


def test_a_fragment_disables_the_other_slot_and_names_its_structure() -> None:
    blue = hx.env_conf("preprod", "127.0.0.1", 8500, "/_stcore/health", servers("blue"))
    green = hx.env_conf(
        "preprod", "127.0.0.1", 8500, "/_stcore/health", servers("green")
    )
    assert "bind 127.0.0.1:8500" in blue
    assert "server blue 127.0.0.1:18500\n" in blue
    assert "server green 127.0.0.1:28500 disabled" in blue
    assert "option httpchk GET /_stcore/health" in blue
    # Which slot is live is no change of structure (no reload needed)...
    assert hx.structure(blue) == hx.structure(green) != ""
    # ...a new port is.
    moved = hx.env_conf("preprod", "127.0.0.1", 8600, "/_stcore/health", servers(None))
    assert hx.structure(moved) != hx.structure(blue)
    assert "server blue 127.0.0.1:18500 disabled" in moved
    assert hx.structure("# no digest here\n") == ""


def test_global_config_quotes_paths_and_keeps_websockets_open() -> None:
    conf = hx.global_conf("/srv/my root/proxy/haproxy.sock")
    assert "stats socket '/srv/my root/proxy/haproxy.sock' mode 600 level admin" in conf
    assert "timeout tunnel 1h" in conf and "option redispatch" in conf
    assert hx.quote("/a/$HOME") == "'/a/$HOME'"  # never expanded by haproxy


def test_socket_path_moves_to_tmp_when_too_long_for_a_unix_socket() -> None:
    assert hx.socket_path("/srv/x/proxy") == "/srv/x/proxy/haproxy.sock"
    long = "/srv/" + "d" * 120
    path = hx.socket_path(long)
    assert path.startswith("/tmp/cicd-haproxy-") and path == hx.socket_path(long)


def test_builders_are_data() -> None:
    assert hx.check("haproxy", "/r/haproxy.cfg", "/r/conf.d").argv == (
        "haproxy",
        "-c",
        "-f",
        "/r/haproxy.cfg",
        "-f",
        "/r/conf.d",
    )
    api = hx.api("python3", "/r/haproxy.sock", "show info")
    assert api.argv[:2] == ("python3", "-c") and api.argv[3:] == (
        "/r/haproxy.sock",
        "show info",
    )
    assert hx.program_line("haproxy", "a.cfg", "conf.d") == (
        "haproxy -W -db -f a.cfg -f conf.d"
    )
    assert hx.set_state("be_prod", "green", "drain") == (
        "set server be_prod/green state drain"
    )
    assert hx.fragment_path("/r/proxy", "prod") == "/r/proxy/conf.d/prod.cfg"


@pytest.mark.skipif(
    shutil.which("haproxy") is None,
    reason="needs haproxy (apt-get install haproxy; CI's .ci/run installs it)",
)
def test_real_haproxy_accepts_the_generated_config(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "haproxy.cfg").write_text(hx.global_conf(str(tmp_path / "s.sock")))
    (tmp_path / "conf.d" / "preprod.cfg").write_text(
        hx.env_conf("preprod", "127.0.0.1", 8500, "/", servers("blue"))
    )
    argv = hx.check("haproxy", str(tmp_path / "haproxy.cfg"), str(tmp_path / "conf.d"))
    result = subprocess.run(argv.argv, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# -- the runtime API client, against a stand-in socket --------------------------


class FakeApi:
    """haproxy's runtime API for one backend: ``show``/``set server`` commands."""

    def __init__(self, path: str, backend: str) -> None:
        self.path, self.backend = path, backend
        self.state = {"blue": [2, 0], "green": [0, 5]}
        self.commands: list[str] = []
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)
        self.server.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                text = conn.recv(65536).decode().strip()
                conn.sendall(self.answer(text).encode())

    def answer(self, text: str) -> str:
        out = []
        for command in (c.strip() for c in text.split(";")):
            self.commands.append(command)
            words = command.split()
            if command.startswith("show servers state"):
                out.append("1\n# be_id be_name srv_id srv_name ...")
                for index, (name, (op, admin)) in enumerate(self.state.items()):
                    out.append(
                        f"3 {self.backend} {index + 1} {name} 127.0.0.1 {op} {admin} "
                        "1 1 0 15 3 0 6 0 0 0 - 1 - 0 0 - - 0"
                    )
            elif words[:2] == ["set", "server"]:
                name = words[2].split("/")[1]
                state = self.state[name]
                if words[-1] == "ready":
                    state[0], state[1] = 2, state[1] & 0x04
                elif words[-1] == "drain":
                    state[1] |= 0x08
                else:
                    state[0], state[1] = 0, (state[1] | 0x01) & ~0x08
            elif command == "show info":
                out.append("Name: HAProxy")
        return "\n".join(out) + "\n"

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def target(tmp_path: Path) -> Target:
    """Preprod behind haproxy, on a short root (a unix socket path must be short)."""
    table = {"root": str(tmp_path), "proxy": {"kind": "haproxy"}}
    return Target(Runner(Context()), from_table(table, project_dir=tmp_path), "preprod")


@pytest.fixture
def api(target: Target) -> Iterator[FakeApi]:
    proxy = Proxy(target.context)
    Path(proxy.fragments).mkdir(parents=True)
    fake = FakeApi(proxy.socket, proxy.backend)
    yield fake
    fake.close()


def test_route_enables_waits_then_drains_and_disables_the_old_slot(
    target: Target, api: FakeApi
) -> None:
    proxy = Proxy(target.context)
    assert proxy.routed() == "blue"
    api.commands.clear()
    proxy.route("green", "blue")
    assert api.commands[0] == "set server be_preprod/green state ready"
    assert api.commands[-2:] == [
        "set server be_preprod/blue state drain",
        "set server be_preprod/blue state maint",
    ]
    assert proxy.routed() == "green"
    fragment = Path(proxy.fragment).read_text()
    assert "server green 127.0.0.1:28500\n" in fragment
    assert "server blue 127.0.0.1:18500 disabled" in fragment


def test_route_fails_clearly_when_haproxy_never_takes_the_slot_up(
    target: Target, api: FakeApi
) -> None:
    api.answer = lambda text: (  # type: ignore[method-assign]
        "1\n3 be_preprod 1 green 127.0.0.1 0 5 1 1 0 15 3 0 6 0 0 0 - 1 - 0 0 - - 0\n"
    )
    with pytest.raises(CicdError, match="did not take the green slot of preprod up"):
        Proxy(target.context).route("green", "blue", timeout=0.2)


def test_no_haproxy_is_said_in_one_line(target: Target) -> None:
    proxy = Proxy(target.context)
    assert proxy.routed() is None
    with pytest.raises(ProxyDown, match="haproxy is not running on"):
        proxy.api("show info")
    problem = Slots(target.context).proxy_problem()
    assert "nothing serves" in problem and "invoke start" in problem


def test_proxy_problem_names_each_slots_state(target: Target, api: FakeApi) -> None:
    api.state = {"blue": [0, 1], "green": [0, 5]}
    assert Slots(target.context).proxy_problem() == (
        "haproxy routes preprod to no slot (blue maint, green maint)"
    )


def test_slots_aim_the_checks_at_a_slot_and_remember_what_runs(
    target: Target,
) -> None:
    slots = Slots(target.context)
    assert other("blue") == "green" and other("green") == "blue"
    public = target.settings.health.checks[0].url
    assert public.startswith("http://127.0.0.1:8500/")
    aimed = slots.checks("green")[0].url
    assert aimed == public.replace(":8500/", ":28500/")
    assert slots.intended() is None and slots.release("blue") is None
    Path(target.paths.releases, "a" * 40).mkdir(parents=True)
    slots.point("blue", "a" * 40)
    assert slots.release("blue") == "a" * 40
    assert Path(target.paths.slot("blue")).resolve() == Path(
        target.paths.release("a" * 40)
    )


def test_a_warm_window_is_kept_until_it_ends(target: Target) -> None:
    slots = Slots(target.context)
    Path(target.paths.dir).mkdir(parents=True)
    said = slots.keep_warm("blue", "b" * 40, 60)
    assert "kept warm on the blue slot for 60s" in said
    assert slots.warm() == {
        "slot": "blue",
        "sha": "b" * 40,
        "until": pytest.approx(time.time() + 60, abs=5),
    }
    assert slots.retire_expired() is None  # not yet
    slots.keep_warm("blue", "b" * 40, 0.01)
    time.sleep(0.02)
    # Past its window: the warm file goes (no slot runs here to stop).
    assert slots.retire_expired() is None
    assert slots.warm() is None
    Path(target.paths.warm).write_text("{not json")
    assert slots.warm() is None


# -- the bounded load ------------------------------------------------------------


@pytest.fixture
def web() -> Iterator[tuple[str, list[int]]]:
    """A loopback HTTP server whose status code the test sets (200 at first)."""
    import http.server

    status = [200]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(status[0])
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/health", status
    server.shutdown()
    server.server_close()


def test_the_load_counts_requests_and_failures(web: tuple[str, list[int]]) -> None:
    from cicd.checks.traffic import Load

    url, status = web
    with Load(url, workers=2, seconds=5, pause=0.005) as load:
        time.sleep(0.3)
        status[0] = 503
        time.sleep(0.3)
        status[0] = 200
        time.sleep(0.3)
    tally = load.tally
    assert tally.sent > tally.failed > 0
    assert tally.errors == {"HTTP 503": tally.failed}
    assert 0.1 < tally.outage < 2
    assert tally.line().startswith(f"{tally.sent} requests, {tally.failed} failed")
    assert "503" in tally.line() and "longest outage" in tally.line()


def test_the_load_counts_refused_connections_and_only_targets_loopback() -> None:
    from cicd.core.errors import UsageError
    from cicd.checks.traffic import Load, Tally

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    with Load(f"http://127.0.0.1:{port}/", workers=1, seconds=0.3) as load:
        time.sleep(0.2)
    assert load.tally.failed == load.tally.sent > 0
    assert "ConnectionRefusedError" in load.tally.line()
    assert Tally().line() == "0 requests, 0 failed"
    with pytest.raises(UsageError, match="only targets loopback"):
        Load("http://192.0.2.1/")
    with pytest.raises(UsageError, match="only targets loopback"):
        Load("https://127.0.0.1/")


def test_haproxy_is_found_off_a_users_path(tmp_path: Path) -> None:
    """Debian's /usr/sbin/haproxy: looked up on supervisord's PATH too, in full."""
    from cicd.commands import files

    argv = files.locate("haproxy", "/usr/sbin:/sbin").argv
    assert argv[-2:] == ("/usr/sbin:/sbin", "haproxy")
    fake = tmp_path / "sbin"
    fake.mkdir()
    (fake / "haproxy").write_text("#!/bin/sh\n")
    (fake / "haproxy").chmod(0o755)
    runner = Runner(Context())
    found = runner.run(files.locate("haproxy", str(fake)), check=False).stdout.strip()
    assert found in (str(fake / "haproxy"), shutil.which("haproxy"))
    missing = runner.run(files.locate("no-such-haproxy", str(fake)), check=False)
    assert not missing.ok


# -- more of the engine, without haproxy: the stand-in API and files --------------


def test_ensure_does_nothing_when_config_is_as_wanted_and_haproxy_answers(
    target: Target, api: FakeApi
) -> None:
    proxy = Proxy(target.context)
    Path(proxy.conf).write_text(hx.global_conf(proxy.socket))
    Path(proxy.fragment).write_text(proxy.fragment_conf("blue"))
    program = Path(target.paths.supervisor) / "conf.d" / "proxy.conf"
    program.parent.mkdir(parents=True)
    program.write_text(proxy._program_conf())
    assert proxy.ensure("blue") == []
    assert api.commands == ["show info"]


def test_a_config_haproxy_refuses_is_one_clear_error(tmp_path: Path) -> None:
    table = {"root": str(tmp_path), "proxy": {"kind": "haproxy", "haproxy": "false"}}
    target = Target(
        Runner(Context()), from_table(table, project_dir=tmp_path), "preprod"
    )
    with pytest.raises(CicdError, match="haproxy refuses its config in .*: exit 1"):
        Proxy(target.context).ensure(None)


def test_a_reshaped_fragment_is_applied_by_a_reload_routing_to_the_new_slot(
    target: Target, api: FakeApi
) -> None:
    proxy = Proxy(target.context)
    proxy.haproxy = "true"  # `haproxy -c` passes
    proxy.reshaped = True
    port = target.settings.port_of("green")
    original = api.answer

    def with_ports(text: str) -> str:
        return original(text).replace(" 1 - 0 0 - - 0", f" {port} - 0 0 - - 0")

    api.answer = with_ports  # type: ignore[method-assign]
    api.state = {"blue": [0, 5], "green": [2, 0]}  # what the new worker reports
    proxy.route("green", "blue", timeout=2)
    assert not proxy.reshaped
    assert "server green 127.0.0.1:28500\n" in Path(proxy.fragment).read_text()


def test_a_half_done_switch_keeps_the_slot_it_chose(
    target: Target, api: FakeApi
) -> None:
    slots = Slots(target.context)
    Path(target.paths.dir).mkdir(parents=True, exist_ok=True)
    assert slots.finish_half_switch() is None  # one slot routed: nothing to do
    api.state = {"blue": [2, 0], "green": [2, 4]}
    Path(target.paths.live).write_text("green\n")
    said = slots.finish_half_switch()
    assert said == "haproxy routed to both slots (a switch cut short): kept green"
    assert slots.routed() == "green"
    # Nothing runs on the other slot here (no supervisord): nothing to stop.
    assert slots.retire() is None
    assert not Path(target.paths.warm).exists()


def test_status_shows_each_slot(target: Target, api: FakeApi) -> None:
    from cicd.pipeline.status import format_slots, slots_status

    Path(target.paths.dir).mkdir(parents=True, exist_ok=True)
    Path(target.paths.releases, "c" * 40).mkdir(parents=True)
    Slots(target.context).point("blue", "c" * 40)
    Slots(target.context).keep_warm("green", "d" * 40, 60)
    shown = slots_status(target)
    assert shown is not None and shown["routed"] == "blue"
    assert shown["blue"]["release"] == "c" * 40 and shown["green"]["release"] is None
    line = format_slots("preprod", shown)
    assert line.startswith("  preprod slots: blue ccccccc ")
    assert "(routed)" in line and "green unused" in line


def test_a_blue_green_plan_names_the_idle_slot(target: Target, api: FakeApi) -> None:
    from cicd.pipeline.plan import plan_deploy, plan_rollback

    Path(target.paths.dir).mkdir(parents=True, exist_ok=True)
    plan = plan_deploy([target], "e" * 40)
    steps = "\n".join(plan.hosts[0].steps)
    assert "switches: blue/green behind haproxy" in plan.notes
    assert "start eeeeeee on the idle green slot (port 28500)" in steps
    assert "switch haproxy blue → green" in steps
    assert "the app run in place stops" in steps  # no fragment yet: the first switch
    refused = plan_rollback([target], None)
    assert refused.hosts[0].refused.startswith("preprod: no kept release")
    assert refused.text().endswith("nothing was changed (--plan)")


def test_health_requests_over_ssh_are_made_by_the_hosts_python(
    web: tuple[str, list[int]],
) -> None:
    """The probe an SSH host runs, run here: the same script, the same answers."""
    import sys

    from cicd.checks.health import FetchError
    from cicd.checks.probe import RemoteFetcher

    url, status = web
    fetcher = RemoteFetcher(Runner(Context()), sys.executable)
    answer = fetcher.fetch(url, 5)
    assert (answer.status_code, answer.text) == (200, "ok")
    status[0] = 503
    assert fetcher.fetch(url, 5).status_code == 503
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError, match="connection refused"):
        fetcher.fetch(f"http://127.0.0.1:{port}/", 2)
    with pytest.raises(FetchError, match="probe failed on"):
        RemoteFetcher(Runner(Context()), "false").fetch(url, 2)


# -- in front of a swarm: a server per slot and node --------------------------------

NODES = [("vm1", "10.0.0.1"), ("vm2", "10.0.0.2")]


def test_in_front_of_a_swarm_each_slot_has_a_server_on_every_node(
    target: Target,
) -> None:
    proxy = Proxy(target.context, lambda: NODES)
    blue = proxy.fragment_conf("blue")
    assert "bind 127.0.0.1:8500" in blue  # haproxy keeps the public port
    for line in (
        "server blue-vm1 10.0.0.1:18500\n",
        "server blue-vm2 10.0.0.2:18500\n",
        "server green-vm1 10.0.0.1:28500 disabled\n",
        "server green-vm2 10.0.0.2:28500 disabled\n",
    ):
        assert line in blue
    nothing = proxy.fragment_conf(None)
    assert nothing.count(" disabled\n") == 4
    assert hx.structure(blue) == hx.structure(proxy.fragment_conf("green"))
    grown = Proxy(target.context, lambda: [*NODES, ("vm3", "10.0.0.3")])
    assert hx.structure(grown.fragment_conf("blue")) != hx.structure(blue)


class SwarmManager:
    """This machine, as a swarm's manager: ``docker node inspect`` lists ``nodes``.

    Every other command runs here for real (files, haproxy's lookup).
    """

    def __init__(self, nodes: str) -> None:
        self.nodes = nodes
        self.real = Context()

    def run(self, line: str, **kwargs: object) -> object:
        if "docker node inspect" in line:
            from tests.unit.test_unit_runtime import Raw

            return Raw(stdout=self.nodes)
        return self.real.run(line, **kwargs)


def test_two_swarm_nodes_with_one_hostname_get_servers_of_their_own(
    tmp_path: Path,
) -> None:
    table = {
        "root": str(tmp_path),
        "proxy": {"kind": "haproxy"},
        "runtime": {"kind": "swarm"},
    }
    manager = SwarmManager(  # cloned VMs: one hostname, two addresses
        "vm1 0.0.0.0 ready active 10.0.0.1:2377\n"
        "vm1 10.0.0.2 ready active -\n"
        "vm 2 10.0.0.3 ready active -\n"  # not a node line: 6 words
        "vm3 10.0.0.3 ready active -\n"
    )
    swarm = Target(Runner(manager), from_table(table, project_dir=tmp_path), "preprod")
    conf = Slots(swarm.context).proxy.fragment_conf("green")
    assert "server green-vm1-10.0.0.1 10.0.0.1:28500\n" in conf
    assert "server green-vm1-10.0.0.2 10.0.0.2:28500\n" in conf
    assert "server green-vm3 10.0.0.3:28500\n" in conf
    assert "server blue-vm1-10.0.0.1 10.0.0.1:18500 disabled\n" in conf
    assert conf.count("\n  server ") == 6
    # A node's name is made safe for haproxy's config; its slot is the first word.
    assert hx.server_name("blue", "vm 1/a") == "blue-vm_1_a"
    assert hx.server_name("blue", "") == "blue"
    assert hx.slot_of("green-vm1-10.0.0.1") == "green"


def test_a_swarm_slot_is_routed_when_its_node_servers_are(
    target: Target, api: FakeApi
) -> None:
    proxy = Proxy(target.context, lambda: NODES)
    # vm2's task fails haproxy's check right now: blue is still the routed slot.
    api.state = {
        "blue-vm1": [2, 0],
        "blue-vm2": [0, 0],
        "green-vm1": [0, 5],
        "green-vm2": [0, 5],
    }
    assert proxy.routed() == "blue"
    api.state["green-vm2"] = [2, 4]  # a switch cut short: both slots routed
    assert proxy.routed() is None
    assert hx.routed_slots(proxy.servers()) == ["blue", "green"]


def test_a_swarm_switch_readies_every_new_server_and_drains_every_old_one(
    target: Target, api: FakeApi
) -> None:
    proxy = Proxy(target.context, lambda: NODES)
    api.state = {
        "blue-vm1": [2, 0],
        "blue-vm2": [2, 0],
        "green-vm1": [0, 5],
        "green-vm2": [0, 5],
    }
    api.commands.clear()
    proxy.route("green", "blue")
    sets = [c for c in api.commands if c.startswith("set server")]
    assert sets == [
        "set server be_preprod/green-vm1 state ready",
        "set server be_preprod/green-vm2 state ready",
        "set server be_preprod/blue-vm1 state drain",
        "set server be_preprod/blue-vm1 state maint",
        "set server be_preprod/blue-vm2 state drain",
        "set server be_preprod/blue-vm2 state maint",
    ]
    assert proxy.routed() == "green"
    assert {n: hx.describe(*s) for n, s in proxy.servers().items()} == {
        "blue-vm1": "maint",
        "blue-vm2": "maint",
        "green-vm1": "up",
        "green-vm2": "up",
    }
    fragment = Path(proxy.fragment).read_text()
    assert "server green-vm2 10.0.0.2:28500\n" in fragment
    assert "server blue-vm2 10.0.0.2:18500 disabled\n" in fragment


def test_a_single_service_s_servers_route_no_slot(target: Target, api: FakeApi) -> None:
    """haproxy still has a swarm's single-service config: its servers, one per
    node, belong to no slot (the blue slot adopts that service at the next run)."""
    api.state = {"vm1": [2, 0], "vm2": [2, 0]}
    proxy = Proxy(target.context, lambda: NODES)
    assert hx.routed_slots(proxy.servers()) == []
    assert proxy.routed() is None


def test_a_swarm_fragment_reloads_at_once_only_when_its_live_tasks_listen(
    target: Target,
) -> None:
    """New nodes, or the single service taking the blue/green shape: reload now.
    New ports or a new check: the live tasks do not answer it yet, wait for the
    switch (as on one VM)."""
    proxy = Proxy(target.context, lambda: NODES)
    now = proxy.fragment_conf("blue")
    more = Proxy(target.context, lambda: [*NODES, ("vm9", "10.0.0.9")])
    assert hx.frame(more.fragment_conf("blue")) == hx.frame(now)
    single = hx.env_conf(
        "preprod",
        "127.0.0.1",
        target.settings.port,
        "/_stcore/health",
        [hx.Server("vm1", "10.0.0.1", target.settings.proxy.blue_port, True)],
    )
    assert not hx.slotted(single) and hx.slotted(now)
    assert proxy_module._live_listens(single, now)
    assert proxy_module._live_listens(now, more.fragment_conf("blue"))
    moved = now.replace(f":{target.settings.proxy.green_port}", ":39999")
    assert hx.frame(moved) != hx.frame(now)
    assert not proxy_module._live_listens(now, moved)
