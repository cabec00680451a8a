# tests/test_cluster_failover_manual.py — CLUSTER FAILOVER [FORCE|TAKEOVER]
# (manual failover) on real processes, as redis-server 7.0.15 does it.
#
# Cluster A: six nodes of the candidate kind (CINNABAR_SERVER; the harness
# self-check runs it with redis-server), 3 masters + 3 replicas formed with
# MEET / ADDSLOTSRANGE / REPLICATE (lib_cluster.form_cluster):
#   * the error replies (on a master, bad option, too many arguments);
#   * default failover while a writer thread keeps writing through redis-py's
#     RedisCluster: the replica becomes master with the slots, the old master
#     its replica, the writer only saw brief redirects, and every acknowledged
#     write is readable afterwards; the Redis log lines of both sides;
#   * FORCE with the master SIGSTOPped (promoted before the failure detector
#     could have done it), the old master rejoins as a replica;
#   * TAKEOVER: promoted at once without an election.
# Cluster B (mixed): real redis-server 7.0.15 and Cinnabar nodes; a default
# failover of a real replica of a Cinnabar master and of a Cinnabar replica
# of a real master, keys checked.
# Nothing sleeps to synchronise; every node is killed at teardown.

from __future__ import annotations

import threading
import time

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

from lib_cluster import (
    NodePool,
    RespError,
    attach_logs,
    dump_nodes,
    form_cluster,
    wait_until,
)

NODE_TIMEOUT = 5000
DEADLINE = 30.0


class Cl:
    def __init__(self, prefix):
        self.pool = NodePool(prefix=prefix)
        self.nodes = []
        self.ids = {}
        self.ok = False

    def require(self):
        if not self.ok:
            pytest.skip("cluster formation failed")

    def by_id(self, nid):
        return next(n for n in self.nodes if self.ids[n.port] == nid)


@pytest.fixture(scope="module")
def cl():
    c = Cl("cinnabar-mf-")
    try:
        c.nodes = c.pool.add_block(["cinnabar"] * 6, node_timeout=NODE_TIMEOUT,
                                   extra_for=lambda kind: ['save ""'])
        c.ids = form_cluster(c.nodes[:3], {c.nodes[3]: c.nodes[0], c.nodes[4]: c.nodes[1], c.nodes[5]: c.nodes[2]})
        c.ok = True
        yield c
    finally:
        c.pool.close()


@pytest.fixture(autouse=True)
def _logs(request, cl):
    attach_logs(request, cl.nodes)


def shard_of(c, replica):
    """(replica, its master) as the replica sees it."""
    me = next(x for x in replica.nodes() if "myself" in x["flags"])
    assert me["role"] == "slave", me["line"]
    return replica, c.by_id(me["master"])


def wait_swapped(nodes, ids, heir, old, slots, timeout=DEADLINE):
    """Every node sees `heir` as master of `slots` and `old` as its replica."""
    hid, oid = ids[heir.port], ids[old.port]

    def done():
        for n in nodes:
            ns = {x["id"]: x for x in n.nodes()}
            h, o = ns[hid], ns[oid]
            if h["role"] != "master" or h["slots"] != slots or "fail" in h["flags"]:
                return False
            if o["role"] != "slave" or o["master"] != hid:
                return False
            if n.info().get("cluster_state") != "ok":
                return False
        return True

    wait_until(done, timeout, f"{heir.name} to be master of the slots with {old.name} as its replica",
               state=lambda: dump_nodes(nodes))


def caught_up(master, replica):
    """The replica processed the master's whole replication stream."""
    mo = int(_info(master, "replication")["master_repl_offset"])
    ro = int(_info(replica, "replication").get("slave_repl_offset", "-1"))
    return mo == ro


def offsets(master, replica):
    return (f"{master.name} master_repl_offset={_info(master, 'replication').get('master_repl_offset')} "
            f"{replica.name} slave_repl_offset={_info(replica, 'replication').get('slave_repl_offset')} "
            f"link={_info(replica, 'replication').get('master_link_status')}")


def _info(node, section):
    text = node.text("INFO", section)
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, _, v = line.strip().partition(":")
            out[k] = v
    return out


def keys_in(slots, n, prefix):
    out = []
    i = 0
    while len(out) < n:
        k = f"{prefix}:{i}"
        if key_slot(k.encode()) in slots:
            out.append(k)
        i += 1
    return out


def log_has(node, text):
    return text in node.log_path.read_text(errors="replace")


def wait_log(node, text, timeout=DEADLINE):
    wait_until(lambda: log_has(node, text), timeout, f"{node.name} to log {text!r}",
               state=lambda: node.log_tail(30))


def write_keys(nodes, keys):
    rc = RedisCluster(host="127.0.0.1", port=nodes[0].port, socket_timeout=10)
    try:
        for k in keys:
            assert rc.set(k, f"v-{k}") is True
    finally:
        rc.close()


def assert_keys(nodes, want: dict):
    rc = RedisCluster(host="127.0.0.1", port=nodes[0].port, socket_timeout=10)
    try:
        missing = {k: v for k, v in want.items() if rc.get(k) != v.encode()}
    finally:
        rc.close()
    assert not missing, f"{len(missing)} of {len(want)} acknowledged keys lost, e.g. {list(missing.items())[:5]}"


class Writer(threading.Thread):
    """Writes unique keys in `slots` through RedisCluster; records what was acknowledged."""

    def __init__(self, nodes, slots, prefix):
        super().__init__(daemon=True)
        self.rc = RedisCluster(host="127.0.0.1", port=nodes[0].port, socket_timeout=10,
                               cluster_error_retry_attempts=10)
        self.keys = keys_in(slots, 5000, prefix)
        self.acked = {}  # key -> last acknowledged value
        self.acked_writes = 0
        self.errors = []
        self.stop = threading.Event()

    def run(self):
        # Cycles over its keys (new values each round) until stopped, so a slow failover
        # never finds the writer finished.
        try:
            rnd = 0
            while not self.stop.is_set():
                for k in self.keys:
                    if self.stop.is_set():
                        return
                    v = f"w-{k}-{rnd}"
                    try:
                        if self.rc.set(k, v) is True:
                            self.acked[k] = v
                            self.acked_writes += 1
                    except Exception as e:  # noqa: BLE001 - recorded, judged by the test
                        self.errors.append(repr(e))
                        self.acked.pop(k, None)  # outcome unknown: not checked afterwards
                rnd += 1
        finally:
            self.rc.close()

    def wait_acked(self, n, what):
        start = self.acked_writes
        wait_until(lambda: self.acked_writes >= start + n, DEADLINE, what,
                   state=lambda: f"acked writes={self.acked_writes} errors={self.errors[-5:]}")


# ---------------------------------------------------------------------------


def test_01_errors_match_redis(cl):
    cl.require()
    master, replica = cl.nodes[0], cl.nodes[3]
    with pytest.raises(RespError, match=r"^ERR You should send CLUSTER FAILOVER to a replica$"):
        master.call("CLUSTER", "FAILOVER")
    with pytest.raises(RespError, match=r"^ERR You should send CLUSTER FAILOVER to a replica$"):
        master.call("CLUSTER", "FAILOVER", "TAKEOVER")
    for n in (master, replica):
        with pytest.raises(RespError, match=r"^ERR syntax error$"):
            n.call("CLUSTER", "FAILOVER", "foo")
        with pytest.raises(RespError, match=r"^ERR unknown subcommand or wrong number of arguments for 'FAILOVER'\. Try CLUSTER HELP\.$"):
            n.call("CLUSTER", "FAILOVER", "FORCE", "extra")


def test_02_default_failover_under_writes_loses_nothing(cl):
    cl.require()
    replica, master = shard_of(cl, cl.nodes[3])
    slots = next(x for x in master.nodes() if "myself" in x["flags"])["slots"]
    before = keys_in(slots, 300, "pre2")
    write_keys(cl.nodes, before)
    w = Writer(cl.nodes, slots, "mf2")
    w.start()
    try:
        w.wait_acked(200, "the writer to get going")
        assert replica.call("CLUSTER", "FAILOVER") == b"OK"
        wait_swapped(cl.nodes, cl.ids, replica, master, slots)
        w.wait_acked(300, "the writer to continue on the new master")
    finally:
        w.stop.set()
        w.join(30)
    assert not w.is_alive()
    assert len(w.errors) <= 3, f"writer errors: {w.errors[:10]}"
    assert_keys(cl.nodes, {k: f"v-{k}" for k in before})
    assert_keys(cl.nodes, w.acked)
    rid, mid = cl.ids[replica.port], cl.ids[master.port]
    for line in (
        "Manual failover user request accepted.",
        "Received replication offset for paused master manual failover: ",
        "All master replication stream processed, manual failover can start.",
        "Start of election delayed for 0 milliseconds (rank #0, offset ",
        "Failover election won: I'm the new master.",
    ):
        wait_log(replica, line)
    wait_log(master, f"Manual failover requested by replica {rid}.")
    wait_log(master, f"Configuration change detected. Reconfiguring myself as a replica of {rid}")
    assert not log_has(replica, "Manual failover timed out.")
    assert mid


def test_03_force_with_the_master_stopped(cl):
    cl.require()
    replica, master = shard_of(cl, cl.nodes[4])
    slots = next(x for x in master.nodes() if "myself" in x["flags"])["slots"]
    keys = keys_in(slots, 300, "pre3")
    write_keys(cl.nodes, keys)
    wait_until(lambda: caught_up(master, replica), DEADLINE, "the replica to catch up before the master stops",
               state=lambda: offsets(master, replica))
    master.sigstop()
    try:
        t0 = time.monotonic()
        assert replica.call("CLUSTER", "FAILOVER", "FORCE") == b"OK"
        live = [n for n in cl.nodes if n is not master]
        rid = cl.ids[replica.port]
        wait_until(lambda: all({x["id"]: x for x in n.nodes()}[rid]["slots"] == slots for n in live),
                   DEADLINE, f"{replica.name} to own the slots", state=lambda: dump_nodes(live))
        # promoted by the forced election, not by failure detection (NT 5 s, then FAIL, then a delay)
        assert time.monotonic() - t0 < NODE_TIMEOUT / 1000, "FORCE took as long as an automatic failover"
    finally:
        master.sigcont()
    wait_swapped(cl.nodes, cl.ids, replica, master, slots)
    for line in ("Forced failover user request accepted.", "Start of election delayed for 0 milliseconds (rank #0, offset ",
                 "Failover election won: I'm the new master."):
        wait_log(replica, line)
    assert_keys(cl.nodes, {k: f"v-{k}" for k in keys})


def test_04_takeover(cl):
    cl.require()
    replica, master = shard_of(cl, cl.nodes[5])
    slots = next(x for x in master.nodes() if "myself" in x["flags"])["slots"]
    keys = keys_in(slots, 300, "pre4")
    write_keys(cl.nodes, keys)
    wait_until(lambda: caught_up(master, replica), DEADLINE, "the replica to catch up",
               state=lambda: offsets(master, replica))
    assert replica.call("CLUSTER", "FAILOVER", "TAKEOVER") == b"OK"
    me = wait_until(lambda: next(x for x in replica.nodes() if "myself" in x["flags"] and x["role"] == "master"),
                    5, f"{replica.name} to be master right after TAKEOVER")
    assert me["slots"] == slots
    wait_swapped(cl.nodes, cl.ids, replica, master, slots)
    wait_log(replica, "Taking over the master (user request).")
    epochs = {int(x["config_epoch"]) for x in replica.nodes() if x["role"] == "master"}
    assert len(epochs) == 3, f"masters' configEpochs must stay distinct: {epochs}"
    assert_keys(cl.nodes, {k: f"v-{k}" for k in keys})


def test_05_old_master_catches_up_then_fails_back(cl):
    """The demoted master of test_02 follows the new master's stream, then fails back with a
    default CLUSTER FAILOVER (a second election; the paused offset must be reached)."""
    cl.require()
    old_master = cl.nodes[0]
    me = next(x for x in old_master.nodes() if "myself" in x["flags"])
    if me["role"] != "slave":
        pytest.skip("test_02 did not demote it")
    replica, master = old_master, cl.by_id(me["master"])
    wait_until(lambda: caught_up(master, replica), DEADLINE, "the old master to catch up as a replica",
               state=lambda: offsets(master, replica))
    # The promoted replica kept a backlog of the old master's stream (replid2), so the old
    # master continued with a partial resync, as with Redis (PSYNC2).
    assert int(_info(master, "stats")["sync_partial_ok"]) >= 1, _info(master, "stats")
    slots = next(x for x in master.nodes() if "myself" in x["flags"])["slots"]
    keys = keys_in(slots, 200, "pre5")
    write_keys(cl.nodes, keys)
    assert replica.call("CLUSTER", "FAILOVER") == b"OK"
    wait_swapped(cl.nodes, cl.ids, replica, master, slots)
    assert_keys(cl.nodes, {k: f"v-{k}" for k in keys})


# ---------------------------------------------------------------------------
# mixed cluster: real redis-server 7.0.15 and Cinnabar on one bus


@pytest.fixture(scope="module")
def mixed():
    c = Cl("cinnabar-mf-mixed-")
    try:
        # R1 real master / C2 Cinnabar replica; C1 Cinnabar master / R3 real replica; R2 / C3.
        kinds = ["redis", "cinnabar", "redis", "cinnabar", "redis", "cinnabar"]
        c.nodes = c.pool.add_block(kinds, node_timeout=NODE_TIMEOUT, extra_for=lambda kind: ['save ""'])
        for n, name in zip(c.nodes, ["R1", "C1", "R2", "C2", "R3", "C3"]):
            n.name = f"{name}({n.kind}:{n.port})"
        r1, c1, r2, c2, r3, c3 = c.nodes
        c.ids = form_cluster([r1, c1, r2], {c2: r1, r3: c1, c3: r2})
        c.ok = True
        yield c
    finally:
        c.pool.close()


@pytest.mark.parametrize("replica_idx", [4, 3], ids=["real-replica-of-cinnabar-master", "cinnabar-replica-of-real-master"])
def test_06_mixed_default_failover(request, mixed, replica_idx):
    attach_logs(request, mixed.nodes)
    mixed.require()
    replica, master = shard_of(mixed, mixed.nodes[replica_idx])
    assert replica.kind != master.kind, (replica.name, master.name)
    slots = next(x for x in master.nodes() if "myself" in x["flags"])["slots"]
    keys = keys_in(slots, 300, f"mx{replica_idx}")
    write_keys(mixed.nodes, keys)
    w = Writer(mixed.nodes, slots, f"mxw{replica_idx}")
    w.start()
    try:
        w.wait_acked(100, "the writer to get going")
        assert replica.call("CLUSTER", "FAILOVER") == b"OK"
        wait_swapped(mixed.nodes, mixed.ids, replica, master, slots)
        w.wait_acked(100, "the writer to continue on the new master")
    finally:
        w.stop.set()
        w.join(30)
    assert len(w.errors) <= 3, f"writer errors: {w.errors[:10]}"
    wait_log(replica, "All master replication stream processed, manual failover can start.")
    wait_log(master, f"Manual failover requested by replica {mixed.ids[replica.port]}.")
    assert_keys(mixed.nodes, {k: f"v-{k}" for k in keys})
    assert_keys(mixed.nodes, w.acked)


def test_07_takeover_with_the_majority_of_masters_down(cl):
    """TAKEOVER needs no votes: with two of the three masters stopped (no majority to elect
    anybody) the replica still takes its master's slots with a bumped configEpoch at once;
    once the others return everybody agrees and no acknowledged key is lost."""
    cl.require()
    replica, master = shard_of(cl, cl.nodes[3])
    slots = next(x for x in master.nodes() if "myself" in x["flags"])["slots"]
    keys = keys_in(slots, 200, "pre7")
    write_keys(cl.nodes, keys)
    wait_until(lambda: caught_up(master, replica), DEADLINE, "the replica to catch up",
               state=lambda: offsets(master, replica))
    others = [n for n in cl.nodes if n is not master and n is not replica
              and next(x for x in n.nodes() if "myself" in x["flags"])["role"] == "master"]
    assert len(others) == 2, dump_nodes(cl.nodes)
    epoch_before = max(int(x["config_epoch"]) for x in replica.nodes())
    for n in others:
        n.sigstop()
    try:
        assert replica.call("CLUSTER", "FAILOVER", "TAKEOVER") == b"OK"
        me = wait_until(lambda: next((x for x in replica.nodes() if "myself" in x["flags"] and x["role"] == "master"),
                                     None), 5, f"{replica.name} to be master right after TAKEOVER")
        assert me["slots"] == slots
        assert int(me["config_epoch"]) > epoch_before, (me, epoch_before)
    finally:
        for n in others:
            n.sigcont()
    wait_swapped(cl.nodes, cl.ids, replica, master, slots)
    assert_keys(cl.nodes, {k: f"v-{k}" for k in keys})
