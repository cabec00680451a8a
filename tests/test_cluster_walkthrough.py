# tests/test_cluster_walkthrough.py — the user's walkthrough
# (shared/seed/redis-cluster-docker-walkthrough.md), verbatim, against six
# cinnabar-server processes, driven by the real redis-cli.
#
# Each node runs from its own directory with a redis.conf holding exactly the
# user's five lines. Two variants: a free block of ports from the harness'
# window, and the walkthrough's literal 8001-8006 (skipped when those ports or
# their bus ports 18001-18006 are taken).
#
# The steps are separate tests sharing one module-scoped cluster so a failure
# names the step; a step whose prerequisite failed is skipped (not failed).

from __future__ import annotations

import re
import time

import pytest

from lib_cluster import (
    NSLOTS,
    NodePool,
    attach_logs,
    check_nodes_line,
    dump_nodes,
    out,
    parse_info,
    parse_nodes,
    ports_free,
    redis_cli,
    topology_signature,
    wait_until,
)

CONVERGE = 30.0  # seconds; convergence normally takes < 3 s


class Walkthrough:
    def __init__(self, pool: NodePool, ports: list[int]):
        self.pool = pool
        self.ports = ports
        self.nodes = []
        self.ids: dict[int, str] = {}
        self.done: set[str] = set()

    def require(self, *steps: str) -> None:
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.skip(f"prerequisite step(s) {missing} did not pass")

    def cli(self, port: int, *args, stdin: str | None = None, cluster: bool = True, host: bool = False):
        pre = (["-c"] if cluster else []) + (["-h", "127.0.0.1"] if host else []) + ["-p", str(port)]
        cp = redis_cli(*pre, *args, stdin=stdin)
        assert cp.returncode == 0, f"redis-cli {' '.join(map(str, pre + list(args)))} exited {cp.returncode}: {cp.stderr!r}"
        return out(cp)

    def cli_nodes(self, port: int) -> str:
        return self.cli(port, "CLUSTER", "NODES")

    def cli_info(self, port: int) -> dict[str, str]:
        return parse_info(self.cli(port, "CLUSTER", "INFO"))


@pytest.fixture(scope="module", params=["free-ports", "ports-8001"])
def wt(request):
    if request.param == "ports-8001":
        ports = list(range(8001, 8007))
        if not ports_free(ports):
            pytest.skip("ports 8001-8006 or their bus ports 18001-18006 are in use")
    pool = NodePool(prefix="cinnabar-walkthrough-")
    try:
        if request.param == "ports-8001":
            w = Walkthrough(pool, ports)
            for p in ports:
                w.nodes.append(pool.add("cinnabar", p, node_timeout=5000))
        else:
            nodes = pool.add_block(["cinnabar"] * 6, node_timeout=5000)
            w = Walkthrough(pool, [n.port for n in nodes])
            w.nodes = nodes
        yield w
    finally:
        pool.close()


@pytest.fixture(autouse=True)
def _logs(request, wt):
    attach_logs(request, wt.nodes)


def test_01_config_is_the_users_five_lines(wt):
    for n in wt.nodes:
        assert n.conf_path.read_text().splitlines() == [
            f"port {n.port}",
            "cluster-enabled yes",
            f"cluster-config-file nodes-{n.port}.conf",
            "cluster-node-timeout 5000",
            "appendonly yes",
        ]
    wt.done.add("config")


def test_02_fresh_node_cluster_nodes(wt):
    """`redis-cli -c -p 8001` CLUSTER NODES: one line, empty ip before any MEET."""
    for n in wt.nodes:
        text = wt.cli_nodes(n.port)
        lines = text.splitlines()
        assert len(lines) == 1, f"fresh node {n.port}: CLUSTER NODES has {len(lines)} lines:\n{text}"
        m = re.fullmatch(r"([0-9a-f]{40}) :(\d+)@(\d+) myself,master - 0 0 0 connected", lines[0])
        assert m, f"fresh node {n.port}: got {lines[0]!r}, expected '<40 hex> :{n.port}@{n.bus_port} myself,master - 0 0 0 connected'"
        assert (int(m.group(2)), int(m.group(3))) == (n.port, n.bus_port)
        wt.ids[n.port] = m.group(1)
        assert n.nodes_conf.exists(), f"nodes-{n.port}.conf not created in {n.dir}"
    assert len(set(wt.ids.values())) == 6, "node ids must be unique"
    wt.done.add("fresh")


def test_03_meet(wt):
    wt.require("fresh")
    p1 = wt.ports[0]
    script = "".join(f"CLUSTER MEET 127.0.0.1 {p}\n" for p in wt.ports[1:])
    got = wt.cli(p1, stdin=script)
    assert got.splitlines() == ["OK"] * 5, f"CLUSTER MEET x5 via redis-cli -c -p {p1}: {got!r}"

    def six_masters():
        ns = parse_nodes(wt.cli_nodes(p1))
        ok = len(ns) == 6 and all(
            x["role"] == "master" and "handshake" not in x["flags"] and x["link"] == "connected" and x["ip"] == "127.0.0.1"
            for x in ns
        )
        return ns if ok else None

    ns = wait_until(six_masters, CONVERGE, f"CLUSTER NODES on {p1} to list 6 connected masters", state=lambda: wt.cli_nodes(p1))
    assert {x["id"] for x in ns} == set(wt.ids.values()), "node ids changed after MEET"
    me = [x for x in ns if "myself" in x["flags"]]
    assert len(me) == 1 and me[0]["addr"] == f"127.0.0.1:{p1}@{p1 + 10000}" and me[0]["flags"] == ["myself", "master"]
    for x in ns:
        assert x["addr"] == f"127.0.0.1:{x['port']}@{x['port'] + 10000}"
        assert wt.ids[x["port"]] == x["id"], f"port {x['port']} has id {x['id']}, was {wt.ids[x['port']]}"
        assert x["slot_specs"] == []
        assert check_nodes_line(x["line"], set(wt.ids.values())) == []

    # (redis 7.0 starts with cluster_size:1 and recomputes it only once the
    # 2 s writable delay after startup has passed, hence polling.)
    want = {"cluster_state": "fail", "cluster_slots_assigned": "0", "cluster_known_nodes": "6", "cluster_size": "0"}
    wait_until(lambda: {k: wt.cli_info(p1).get(k) for k in want} == want, CONVERGE,
               f"CLUSTER INFO on {p1} to show {want}", state=lambda: wt.cli_info(p1))

    # Every node learns every other one (gossip), like the later sessions on 8004-8006 show.
    def all_know_all():
        return all(len(parse_nodes(wt.cli_nodes(n.port))) == 6 for n in wt.nodes)

    wait_until(all_know_all, CONVERGE, "every node to know 6 nodes", state=lambda: dump_nodes(wt.nodes))
    wt.done.add("meet")


def test_04_meet_resolves_config_epochs(wt):
    """After the MEETs the transcript shows configEpochs 0..5 (collision resolution) and current_epoch 5:
    every node ends with a distinct configEpoch and current_epoch equal to the highest."""
    wt.require("meet")

    def distinct():
        for n in wt.nodes:
            ns = parse_nodes(wt.cli_nodes(n.port))
            epochs = [int(x["config_epoch"]) for x in ns]
            if len(set(epochs)) != 6:
                return False
            if wt.cli_info(n.port).get("cluster_current_epoch") != str(max(epochs)):
                return False
        return True

    wait_until(
        distinct,
        CONVERGE,
        "six distinct configEpochs on every node and cluster_current_epoch = the highest",
        state=lambda: dump_nodes(wt.nodes) + "\n" + "\n".join(f"{n.port}: current_epoch={wt.cli_info(n.port).get('cluster_current_epoch')}" for n in wt.nodes),
    )


def test_05_addslots(wt):
    wt.require("meet")
    ranges = [(0, 5461), (5462, 10922), (10923, 16383)]
    for port, (a, b) in zip(wt.ports[:3], ranges):
        # `redis-cli -h 127.0.0.1 -p 8001 cluster addslots {0..5461}` (bash brace expansion)
        got = wt.cli(port, "cluster", "addslots", *range(a, b + 1), cluster=False, host=True)
        assert got == "OK\n", f"cluster addslots {{{a}..{b}}} on {port}: {got!r}"

    want = {"cluster_state": "ok", "cluster_slots_assigned": "16384", "cluster_slots_ok": "16384", "cluster_size": "3", "cluster_known_nodes": "6"}

    def ok_everywhere():
        return all({k: wt.cli_info(n.port).get(k) for k in want} == want for n in wt.nodes)

    wait_until(ok_everywhere, CONVERGE, f"CLUSTER INFO {want} on every node",
               state=lambda: "\n".join(f"{n.port}: {wt.cli_info(n.port)}" for n in wt.nodes))

    p1 = wt.ports[0]
    expect_specs = {wt.ids[p]: [f"{a}-{b}"] for p, (a, b) in zip(wt.ports[:3], ranges)}

    def slots_shown():
        for n in wt.nodes:
            ns = parse_nodes(wt.cli_nodes(n.port))
            if {x["id"]: x["slot_specs"] for x in ns} != {i: expect_specs.get(i, []) for i in wt.ids.values()}:
                return False
        return True

    wait_until(slots_shown, CONVERGE, "every node's CLUSTER NODES to show 0-5461 / 5462-10922 / 10923-16383",
               state=lambda: dump_nodes(wt.nodes))
    for x in parse_nodes(wt.cli_nodes(p1)):
        assert check_nodes_line(x["line"], set(wt.ids.values())) == []
    wt.done.add("slots")


def test_06_replicate(wt):
    wt.require("slots")
    pairs = list(zip(wt.ports[3:], wt.ports[:3]))  # 8004->8001, 8005->8002, 8006->8003
    for rport, mport in pairs:
        mid = wt.ids[mport]
        # the walkthrough's session on the replica: look at CLUSTER NODES, then REPLICATE
        got = wt.cli(rport, stdin=f"CLUSTER NODES\nCLUSTER REPLICATE {mid}\n")
        lines = got.splitlines()
        assert lines[-1] == "OK", f"CLUSTER REPLICATE {mid} on {rport}: {got!r}"
        view = parse_nodes("\n".join(lines[:-1]))
        assert len(view) == 6, f"CLUSTER NODES on {rport} before REPLICATE:\n{got}"

    want = {wt.ids[r]: wt.ids[m] for r, m in pairs}

    def replicas_everywhere():
        for n in wt.nodes:
            ns = parse_nodes(wt.cli_nodes(n.port))
            got = {x["id"]: x["master"] for x in ns if x["role"] == "slave"}
            if got != want:
                return False
        return True

    wait_until(replicas_everywhere, CONVERGE, "three 'slave <master-id>' lines (8004->8001, 8005->8002, 8006->8003) on every node",
               state=lambda: dump_nodes(wt.nodes))
    # The last transcript: CLUSTER NODES on 8006 shows `myself,slave <8003's id>`.
    p6 = wt.ports[5]
    mine = [x for x in parse_nodes(wt.cli_nodes(p6)) if "myself" in x["flags"]][0]
    assert mine["flags"] == ["myself", "slave"] and mine["master"] == wt.ids[wt.ports[2]]
    wait_until(lambda: all(wt.cli_info(n.port).get("cluster_state") == "ok" for n in wt.nodes), CONVERGE,
               "cluster_state:ok after REPLICATE")
    wt.done.add("replicas")


def test_07_keyslot(wt):
    wt.require("fresh")
    p1 = wt.ports[0]
    for key, slot in (("key:{10}:111", 247), ("key:{test}:111", 6918), ("key:{hu}:111", 11441)):
        got = wt.cli(p1, "CLUSTER", "KEYSLOT", key)
        assert got == f"{slot}\n", f"redis-cli -c -p {p1} CLUSTER KEYSLOT {key}: got {got!r}, expected {slot}"
    # and in the interactive-style session (stdin), as typed in the walkthrough
    got = wt.cli(p1, stdin="CLUSTER KEYSLOT key:{10}:111\nCLUSTER KEYSLOT key:{test}:111\nCLUSTER KEYSLOT key:{hu}:111\n")
    assert got.splitlines() == ["247", "6918", "11441"]


def test_08_set_get_via_stdin_session(wt):
    wt.require("slots")
    p1, p2, p3 = wt.ports[:3]
    got = wt.cli(p1, stdin="set key:{10}:111 value:{10}:111\nset key:{test}:111 value:{test}:111\nset key:{hu}:111 value:{hu}:111\n")
    assert got.splitlines() == [
        "OK",
        f"-> Redirected to slot [6918] located at 127.0.0.1:{p2}",
        "OK",
        f"-> Redirected to slot [11441] located at 127.0.0.1:{p3}",
        "OK",
    ], f"set session output:\n{got}"
    got = wt.cli(p1, stdin="get key:{10}:111\nget key:{test}:111\nget key:{hu}:111\n")
    assert got.splitlines() == [
        "value:{10}:111",
        f"-> Redirected to slot [6918] located at 127.0.0.1:{p2}",
        "value:{test}:111",
        f"-> Redirected to slot [11441] located at 127.0.0.1:{p3}",
        "value:{hu}:111",
    ], f"get session output:\n{got}"
    # The keys really live on the owning masters (plain, non -c connections).
    for port, key in ((p1, "key:{10}:111"), (p2, "key:{test}:111"), (p3, "key:{hu}:111")):
        assert wt.cli(port, "get", key, cluster=False) == key.replace("key", "value", 1) + "\n"
    # A non -c client asking the wrong node gets MOVED.
    got = wt.cli(p1, "get", "key:{test}:111", cluster=False)
    assert got == f"MOVED 6918 127.0.0.1:{p2}\n\n", f"redis-cli -p {p1} get key:{{test}}:111 (no -c): {got!r}"
    wt.done.add("data")


def test_09_set_get_via_argv(wt):
    wt.require("slots")
    p1, p2, p3 = wt.ports[:3]
    for key in ("key:{10}:111", "key:{test}:111", "key:{hu}:111"):
        val = "argv-" + key
        assert wt.cli(p1, "set", key, val) == "OK\n", f"redis-cli -c -p {p1} set {key} {val}"
        assert wt.cli(p1, "get", key) == val + "\n", f"redis-cli -c -p {p1} get {key}"
        # starting from the other masters too
        assert wt.cli(p2, "get", key) == val + "\n"
        assert wt.cli(p3, "get", key) == val + "\n"


def test_10_cluster_nodes_format_field_by_field(wt):
    wt.require("replicas")
    ids = set(wt.ids.values())
    now_ms = int(time.time() * 1000)
    views = []
    for n in wt.nodes:
        text = wt.cli_nodes(n.port)
        assert text.endswith("\n")
        ns = parse_nodes(text)
        views.append(topology_signature(ns))
        assert len(ns) == 6
        assert {x["id"] for x in ns} == ids
        mine = [x for x in ns if "myself" in x["flags"]]
        assert len(mine) == 1 and mine[0]["id"] == wt.ids[n.port], f"{n.port}: myself line {mine}"
        for x in ns:
            probs = check_nodes_line(x["line"], ids)
            assert probs == [], f"{n.port}: CLUSTER NODES line {x['line']!r}: {probs}"
            assert x["ip"] == "127.0.0.1" and x["cport"] == x["port"] + 10000
            assert x["link"] == "connected", f"{n.port}: {x['line']!r}"
            pong = int(x["pong_recv"])
            if "myself" not in x["flags"]:
                # pong-recv is a unix time in milliseconds (not seconds, not a counter)
                assert abs(pong - now_ms) < 120_000, f"{n.port}: pong-recv {pong} is not a recent ms timestamp (now {now_ms}): {x['line']!r}"
            ping = int(x["ping_sent"])
            assert ping == 0 or abs(ping - now_ms) < 120_000, f"ping-sent {ping}: {x['line']!r}"
        masters = [x for x in ns if x["role"] == "master"]
        assert sorted(x["slot_specs"][0] for x in masters) == ["0-5461", "10923-16383", "5462-10922"]
        assert len({x["config_epoch"] for x in masters}) == 3, f"{n.port}: masters' configEpochs not distinct"
        for r in (x for x in ns if x["role"] == "slave"):
            m = [x for x in ns if x["id"] == r["master"]][0]
            if "myself" not in r["flags"]:
                # a replica line shows its master's configEpoch (7.0 clusterGenNodeDescription)
                assert r["config_epoch"] == m["config_epoch"], f"{n.port}: replica {r['line']!r} epoch vs master {m['line']!r}"
    assert all(v == views[0] for v in views), "nodes disagree about the topology:\n" + dump_nodes(wt.nodes)
    assert sum(len(x["slots"]) for x in parse_nodes(wt.cli_nodes(wt.ports[0]))) == NSLOTS
