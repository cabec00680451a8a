# tests/test_cluster_mixed.py — a mixed cluster: three real redis-server
# 7.0.15 nodes and three cinnabar-server nodes on one cluster bus.
#
# Every node runs from its own dir with the walkthrough's five lines
# (cluster-node-timeout 2000 to keep failure detection short; real nodes add
# `save ""`). Topology (both directions of every relation):
#
#   R1 real      master 0-5461          C2 cinnabar  replica of R1
#   C1 cinnabar  master 5462-10922      R3 real      replica of C1
#   R2 real      master 10923-16383     C3 cinnabar  replica of R2
#
# R1 MEETs the Cinnabar nodes and C1 MEETs the real ones. Checked: everyone
# converges on the same node table and slot map; keys in every slot range are
# written/read through `redis-cli -c` starting from either kind; SIGSTOP of a
# Cinnabar node is detected (`fail`) by the real nodes and SIGCONT clears it,
# and the reverse; finally automatic failover across kinds (a real replica
# replaces a Cinnabar master, a Cinnabar replica replaces a real master).
# Teardown always SIGCONTs and kills every node.

from __future__ import annotations

import pytest

from lib_cluster import (
    NodePool,
    attach_logs,
    check_nodes_line,
    dump_nodes,
    keys_for_slots,
    out,
    redis_cli,
    topology_signature,
    wait_until,
)

NODE_TIMEOUT = 2000
FAIL_DEADLINE = 20.0  # 10 x node timeout
CONVERGE = 30.0


class Mixed:
    def __init__(self):
        self.pool = NodePool(prefix="cinnabar-mixed-")
        self.by_name = {}
        self.ids = {}
        self.done: set[str] = set()

    def __getitem__(self, name):
        return self.by_name[name]

    @property
    def nodes(self):
        return list(self.by_name.values())

    def real(self):
        return [n for n in self.nodes if n.kind == "redis"]

    def cinnabar(self):
        return [n for n in self.nodes if n.kind == "cinnabar"]

    def require(self, *steps):
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.skip(f"prerequisite step(s) {missing} did not pass")


@pytest.fixture(scope="module")
def mx():
    m = Mixed()
    try:
        layout = [("R1", "redis"), ("C1", "cinnabar"), ("R2", "redis"), ("C2", "cinnabar"), ("R3", "redis"), ("C3", "cinnabar")]
        nodes = m.pool.add_block([k for _, k in layout], node_timeout=NODE_TIMEOUT,
                                 extra_for=lambda kind: ['save ""'] if kind == "redis" else [])
        for (name, kind), n in zip(layout, nodes):
            n.name = f"{name}({kind}:{n.port})"
            m.by_name[name] = n
        yield m
    finally:
        m.pool.close()


@pytest.fixture(autouse=True)
def _logs(request, mx):
    attach_logs(request, mx.nodes)


def flags_of(observer, target_id):
    for x in observer.nodes():
        if x["id"] == target_id:
            return x["flags"]
    return None


def test_01_meet_and_converge(mx):
    r1, c1 = mx["R1"], mx["C1"]
    for n in (mx["C2"], mx["C3"]):
        assert r1.call("CLUSTER", "MEET", "127.0.0.1", n.port) == b"OK"
    for n in (mx["R2"], mx["R3"]):
        assert c1.call("CLUSTER", "MEET", "127.0.0.1", n.port) == b"OK"
    assert c1.call("CLUSTER", "MEET", "127.0.0.1", r1.port) == b"OK"

    def converged():
        ids = None
        for n in mx.nodes:
            ns = n.nodes()
            if len(ns) != 6 or any(
                "handshake" in x["flags"] or "noaddr" in x["flags"] or x["link"] != "connected" or x["ip"] != "127.0.0.1"
                for x in ns
            ):
                return False
            s = {x["id"] for x in ns}
            if ids is None:
                ids = s
            elif s != ids:
                return False
        return True

    wait_until(converged, CONVERGE, "all six nodes (3 real, 3 Cinnabar) to list the same six connected nodes",
               state=lambda: dump_nodes(mx.nodes))
    mx.ids = {name: n.myid() for name, n in mx.by_name.items()}
    for n in mx.nodes:
        assert n.call("CLUSTER", "INFO").decode().count("cluster_known_nodes:6") == 1
    mx.done.add("meet")


def test_02_slots_and_replicas_same_map_everywhere(mx):
    mx.require("meet")
    for name, (a, b) in (("R1", (0, 5461)), ("C1", (5462, 10922)), ("R2", (10923, 16383))):
        assert mx[name].call("CLUSTER", "ADDSLOTSRANGE", a, b) == b"OK", name
    for rep, mas in (("C2", "R1"), ("R3", "C1"), ("C3", "R2")):
        wait_until(lambda: any(x["id"] == mx.ids[mas] and x["slots"] for x in mx[rep].nodes()), CONVERGE,
                   f"{rep} to see {mas}'s slots", state=lambda: mx[rep].cluster_nodes())
        assert mx[rep].call("CLUSTER", "REPLICATE", mx.ids[mas]) == b"OK", f"CLUSTER REPLICATE on {rep}"

    expected = sorted(
        [
            (mx.ids["R1"], "master", "-", ("0-5461",)),
            (mx.ids["C1"], "master", "-", ("5462-10922",)),
            (mx.ids["R2"], "master", "-", ("10923-16383",)),
            (mx.ids["C2"], "slave", mx.ids["R1"], ()),
            (mx.ids["R3"], "slave", mx.ids["C1"], ()),
            (mx.ids["C3"], "slave", mx.ids["R2"], ()),
        ]
    )

    def same_map():
        return all(topology_signature(n.nodes()) == expected for n in mx.nodes)

    wait_until(same_map, CONVERGE, "every node (both kinds) to report the same roles and slot map",
               state=lambda: dump_nodes(mx.nodes))

    def all_ok():
        return all(n.info().get("cluster_state") == "ok" and n.info().get("cluster_size") == "3" for n in mx.nodes)

    wait_until(all_ok, CONVERGE, "cluster_state:ok, cluster_size:3 on every node",
               state=lambda: {n.name: n.info() for n in mx.nodes})
    mx.done.add("formed")


def test_03_nodes_lines_well_formed_on_both_kinds(mx):
    mx.require("formed")
    ids = set(mx.ids.values())
    for n in mx.nodes:
        for x in n.nodes():
            assert check_nodes_line(x["line"], ids) == [], f"{n.name}: {x['line']!r}: {check_nodes_line(x['line'], ids)}"
    # Real and Cinnabar observers agree on every field but the timing ones.
    def stable_fields(n):
        return sorted((x["id"], x["addr"], ",".join(f for f in x["flags"] if f != "myself"), x["master"], x["config_epoch"], x["link"], tuple(x["slot_specs"])) for x in n.nodes())

    ref = stable_fields(mx["R1"])
    for n in mx.nodes:
        assert stable_fields(n) == ref, f"{n.name} disagrees with R1:\n{dump_nodes([mx['R1'], n])}"


@pytest.fixture(scope="module")
def slot_keys():
    slots = [0, 1, 247, 5460, 5461, 5462, 6918, 8000, 10921, 10922, 10923, 11441, 13000, 16382, 16383]
    slots += list(range(300, 16384, 1200))
    return keys_for_slots(slots)


@pytest.mark.parametrize("writer,reader", [("R1", "C1"), ("C1", "R2"), ("C3", "R3")])
def test_04_keys_every_range_via_redis_cli_from_either_kind(mx, slot_keys, writer, reader):
    mx.require("formed")
    w, r = mx[writer], mx[reader]
    items = sorted(slot_keys.items())
    script = "".join(f"set {k} {writer}-{s}\n" for s, k in items)
    cp = redis_cli("-c", "-p", w.port, stdin=script)
    lines = [ln for ln in out(cp).splitlines() if not ln.startswith("-> Redirected")]
    assert cp.returncode == 0 and lines == ["OK"] * len(items), f"redis-cli -c -p {w.port} ({writer}) sets:\n{out(cp)}"
    cp = redis_cli("-c", "-p", r.port, stdin="".join(f"get {k}\n" for _, k in items))
    lines = [ln for ln in out(cp).splitlines() if not ln.startswith("-> Redirected")]
    assert lines == [f"{writer}-{s}" for s, _ in items], f"redis-cli -c -p {r.port} ({reader}) gets:\n{out(cp)}"
    # each key is stored on its slot's master, whichever kind it is
    owners = {"R1": (0, 5461), "C1": (5462, 10922), "R2": (10923, 16383)}
    for s, k in items:
        owner = next(name for name, (a, b) in owners.items() if a <= s <= b)
        assert mx[owner].call("GET", k) == f"{writer}-{s}".encode(), f"GET {k} directly on owner {owner}"


def _wait_flag(mx, observers, target, want_fail: bool, what: str):
    tid = mx.ids[target]

    def cond():
        for o in observers:
            f = flags_of(o, tid)
            if f is None:
                return False
            if want_fail and "fail" not in f:
                return False
            if not want_fail and ("fail" in f or "fail?" in f):
                return False
        return True

    wait_until(cond, FAIL_DEADLINE, what,
               state=lambda: "\n".join(f"{o.name} sees {target}: {flags_of(o, tid)}" for o in observers))


@pytest.mark.parametrize(
    "target,detectors",
    [("C2", "real"), ("R3", "cinnabar")],
    ids=["sigstop-cinnabar-seen-by-real", "sigstop-real-seen-by-cinnabar"],
)
def test_05_sigstop_marks_fail_sigcont_clears(mx, target, detectors):
    mx.require("formed")
    node = mx[target]
    others = [n for n in mx.nodes if n is not node]
    primary = [n for n in others if n.kind == ("redis" if detectors == "real" else "cinnabar")]
    node.sigstop()
    try:
        _wait_flag(mx, primary, target, True, f"{detectors} nodes to flag SIGSTOPped {target} as fail")
        _wait_flag(mx, others, target, True, f"every other node to flag SIGSTOPped {target} as fail")
    finally:
        node.sigcont()
    _wait_flag(mx, others, target, False, f"fail flag on {target} to clear after SIGCONT")
    wait_until(lambda: all(n.info().get("cluster_state") == "ok" for n in mx.nodes), CONVERGE, "cluster_state:ok after SIGCONT")


def _wait_failover(mx, dead: str, heir: str, live):
    dead_id, heir_id = mx.ids[dead], mx.ids[heir]

    def promoted():
        for o in live:
            ns = {x["id"]: x for x in o.nodes()}
            h = ns.get(heir_id)
            if not h or h["role"] != "master" or not h["slots"]:
                return False
        return True

    wait_until(promoted, CONVERGE, f"{heir} to be promoted to master in place of SIGSTOPped {dead} on {[o.name for o in live]}",
               state=lambda: dump_nodes(live))
    wait_until(lambda: all(o.info().get("cluster_state") == "ok" for o in live), CONVERGE, "cluster_state:ok after failover",
               state=lambda: {o.name: o.info().get("cluster_state") for o in live})


def _wait_demoted(mx, old: str, heir: str):
    old_id, heir_id = mx.ids[old], mx.ids[heir]

    def demoted():
        for o in mx.nodes:
            x = {y["id"]: y for y in o.nodes()}.get(old_id)
            if not x or x["role"] != "slave" or x["master"] != heir_id or "fail" in x["flags"]:
                return False
        return True

    wait_until(demoted, CONVERGE, f"returning {old} to become a replica of {heir} on every node", state=lambda: dump_nodes(mx.nodes))


def test_06_failover_real_replica_replaces_cinnabar_master(mx):
    mx.require("formed")
    c1 = mx["C1"]
    live = [n for n in mx.nodes if n is not c1]
    c1.sigstop()
    try:
        _wait_failover(mx, "C1", "R3", live)
    finally:
        c1.sigcont()
    _wait_demoted(mx, "C1", "R3")
    mx.done.add("failover1")


def test_07_failover_cinnabar_replica_replaces_real_master(mx):
    mx.require("formed")
    # start from a healthy cluster whatever the previous test left behind
    wait_until(
        lambda: all(n.info().get("cluster_state") == "ok" and not any("fail" in x["flags"] or "fail?" in x["flags"] for x in n.nodes()) for n in mx.nodes),
        CONVERGE, "a healthy cluster (state ok, no fail flags) before the failover", state=lambda: dump_nodes(mx.nodes))
    r1 = mx["R1"]
    live = [n for n in mx.nodes if n is not r1]
    r1.sigstop()
    try:
        _wait_failover(mx, "R1", "C2", live)
    finally:
        r1.sigcont()
    _wait_demoted(mx, "R1", "C2")
