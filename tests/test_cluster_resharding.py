# tests/test_cluster_resharding.py — resharding: open slots (SETSLOT
# IMPORTING/MIGRATING/STABLE/NODE), -ASK / -TRYAGAIN routing, ASKING, DUMP,
# RESTORE, RESTORE-ASKING, MIGRATE, and the real `redis-cli --cluster
# reshard / rebalance / add-node / del-node` driving them
# (shared/reference/cluster-spec.md §4.2-4.4, §5).
#
# Replies are checked as the exact RESP bytes real redis-server 7.0.15 sends
# (the strings of cluster-spec §4.3 / §5); the suite validates itself by
# running with CINNABAR_SERVER=/usr/bin/redis-server.
#
# Clusters (class-scoped, so at most one lives at a time; NodePool kills every
# process at teardown):
#   TestOpenSlots   3 masters + 1 replica of M0 (walkthrough split); a slot
#                   opened by hand M0 -> M1: routing, ASKING, SETSLOT errors,
#                   finishing the migration by hand; MIGRATE semantics and
#                   every data type on a second opened slot.
#   (function)      DUMP/RESTORE between a standalone redis-server and a
#                   standalone cinnabar-server, both ways; RESTORE errors.
#   TestReshard     3 masters + 3 replicas, 3,000 keys: `--cluster reshard`
#                   of 1000 slots M0 -> M1, the same 1000 back under a redis-py
#                   writer (SET/INCR, every acknowledged write checked),
#                   add-node + rebalance --cluster-use-empty-masters (the new
#                   master weighted 0.1, ~528 slots, to bound the run time),
#                   del-node after resharding its slots away. After each step:
#                   `--cluster check` clean, every key through RedisCluster and
#                   `redis-cli -c`, DBSIZE per master = keys in its slots,
#                   replicas at their master's DBSIZE and replication offset.
#   TestMixed       cinnabar, redis-server, cinnabar masters in one cluster:
#                   `--cluster reshard` of 400 slots (with every data type)
#                   from Cinnabar to redis-server and back.
# Known divergences are listed in known_failures.txt (test_04b, test_07b).
# No fixed sleeps: every wait is a deadline poll on a condition.

from __future__ import annotations

import re
import socket
import threading
import time

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

from lib import ports as _ports
from lib.resp import RespConnection
from lib_cluster import (
    NSLOTS,
    NodePool,
    RespError,
    attach_logs,
    dump_nodes,
    form_cluster,
    out,
    parse_info,
    redis_cli,
    wait_all_know,
    wait_cluster_ok,
    wait_same_topology,
    wait_until,
)

CONVERGE = 30.0
IP = "127.0.0.1"


# ---------------------------------------------------------------------------
# helpers


def tag_for(slot: int, prefix: str = "t") -> str:
    """A hash tag whose keys ({tag}...) hash to `slot`."""
    i = 0
    while key_slot(f"{prefix}{i}".encode()) != slot:
        i += 1
    return f"{prefix}{i}"


def err(msg: str) -> bytes:
    return b"-" + msg.encode() + b"\r\n"


def bulk(v: bytes | str) -> bytes:
    v = v.encode() if isinstance(v, str) else v
    return b"$%d\r\n%s\r\n" % (len(v), v)


OK = b"+OK\r\n"
NIL = b"$-1\r\n"
QUEUED = b"+QUEUED\r\n"
TRYAGAIN = err("TRYAGAIN Multiple keys request during rehashing of slot")


def conn(node, timeout: float = 10.0) -> RespConnection:
    return RespConnection(node.host, node.port, timeout=timeout, connect_timeout=2.0)


def raw(node, *args, asking: bool = False, timeout: float = 10.0) -> bytes:
    """One command on a fresh connection (optionally preceded by ASKING); exact reply bytes."""
    with conn(node, timeout) as c:
        if asking:
            a = c.call_raw("ASKING")
            assert a == OK, f"ASKING on {node.port}: {a!r}"
        return c.call_raw(*args)


class Q:
    """A connection returning plain python values; with asking=True every command is preceded by ASKING."""

    def __init__(self, node, asking: bool = False):
        self.c = conn(node)
        self.asking = asking

    def __call__(self, *args):
        if self.asking:
            a = self.c.call_raw("ASKING")
            assert a == OK, a
        r = self.c.call(*args)
        if r.is_error:
            raise RespError(r.value.decode(errors="replace"))
        return r.to_py()

    def close(self):
        self.c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Diff:
    """Collects (label, got, want) mismatches so one failure lists all of them."""

    def __init__(self):
        self.bad: list[str] = []
        self.n = 0

    def __call__(self, label: str, got: bytes, want: bytes) -> None:
        self.n += 1
        if got != want:
            self.bad.append(f"{label}\n      expected {want!r}\n      got      {got!r}")

    def done(self) -> None:
        assert not self.bad, f"{len(self.bad)} of {self.n} replies differ from redis-server 7.0.15:\n" + "\n".join(self.bad)


def populate(q, tag: str) -> list[str]:
    """Every data type in small and large encodings under {tag}; returns the key names."""
    k = lambda name: f"{{{tag}}}:{name}"  # noqa: E731
    q("SET", k("str"), "hello world")
    q("SET", k("int"), "1234567")
    q("SET", k("bigstr"), bytes(range(256)) * 80)
    q("RPUSH", k("list"), "a", "b", "c", "1", "2")
    q("RPUSH", k("biglist"), *[f"item-{i}" for i in range(2000)], "y" * 10000, "-17")
    q("HSET", k("hash"), "f1", "v1", "f2", "2", "f3", "")
    q("HSET", k("bighash"), *[x for i in range(700) for x in (f"field-{i}", f"value-{i}" * (1 + i % 5))])
    q("SADD", k("intset"), "1", "2", "3", "-5", "100000")
    q("SADD", k("set"), "a", "b", "c")
    q("SADD", k("bigset"), *[f"member-{i}" for i in range(700)])
    q("SADD", k("bigintset"), *[str(i * 7) for i in range(700)])
    q("ZADD", k("zset"), "1", "a", "2.5", "b", "-3", "c", "inf", "d")
    q("ZADD", k("bigzset"), *[x for i in range(300) for x in (str(i * 0.5 - 20), f"m{i}")])
    q("SET", k("ttl"), "expiring", "PX", "100000")
    return [k(n) for n in ("str", "int", "bigstr", "list", "biglist", "hash", "bighash", "intset", "set",
                           "bigset", "bigintset", "zset", "bigzset", "ttl")]


class _Recorder:
    """Stands in for a connection when only populate()'s key names are wanted."""

    def __call__(self, *args):
        return None


def read_value(q, key: str):
    """Type-specific, encoding-independent read of a key: (type, content)."""
    t = q("TYPE", key)
    if t == b"string":
        return t, q("GET", key)
    if t == b"list":
        return t, q("LRANGE", key, 0, -1)
    if t == b"hash":
        v = q("HGETALL", key)
        return t, sorted(zip(v[::2], v[1::2]))
    if t == b"set":
        return t, sorted(q("SMEMBERS", key))
    if t == b"zset":
        return t, q("ZRANGE", key, 0, -1, "WITHSCORES")
    return t, None


def cluster_check(node) -> tuple[bool, str]:
    cp = redis_cli("--cluster", "check", f"{IP}:{node.port}", timeout=60)
    text = out(cp)
    clean = (
        cp.returncode == 0
        and "[OK] All nodes agree about slots configuration." in text
        and "[OK] All 16384 slots covered." in text
        and "[ERR]" not in text
        and "[WARNING]" not in text
    )
    return clean, text


def wait_check_clean(node, timeout: float = CONVERGE) -> str:
    box = {}

    def clean():
        ok, box["text"] = cluster_check(node)
        return ok

    wait_until(clean, timeout, f"`redis-cli --cluster check {IP}:{node.port}` to be clean (no open slots, all nodes agree)",
               state=lambda: box.get("text"))
    return box["text"]


def reshard(seed, src_id: str, dst_id: str, nslots: int, timeout: float = 240):
    cp = redis_cli("--cluster", "reshard", f"{IP}:{seed.port}", "--cluster-from", src_id, "--cluster-to", dst_id,
                   "--cluster-slots", nslots, "--cluster-yes", timeout=timeout)
    text = out(cp)
    assert cp.returncode == 0, (f"redis-cli --cluster reshard {src_id[:8]} -> {dst_id[:8]} ({nslots} slots) exited "
                                f"{cp.returncode}\nstdout (tail):\n{text[-3000:]}\nstderr:\n{cp.stderr.decode(errors='replace')}")
    moved = len(re.findall(r"^Moving slot \d+ from \S+ to \S+: ", text, re.M))
    assert moved == nslots, f"redis-cli reported {moved} 'Moving slot' lines, expected {nslots}:\n{text[-3000:]}"
    return text


def wait_distinct_epochs(nodes) -> None:
    """Wait until the masters' configEpoch collisions are resolved (distinct epochs, same view everywhere):
    which epoch a later SETSLOT NODE bump lands on is only deterministic after that."""
    def epochs(n):
        return sorted((x["id"], x["config_epoch"]) for x in n.nodes() if x["role"] == "master")

    def settled():
        views = [epochs(n) for n in nodes]
        return all(v == views[0] for v in views) and len({e for _, e in views[0]}) == len(views[0])

    wait_until(settled, CONVERGE, "the masters' configEpochs to be distinct and agreed", state=lambda: dump_nodes(nodes))


def myself_slots(node) -> set[int]:
    return next(x for x in node.nodes() if "myself" in x["flags"])["slots"]


# ---------------------------------------------------------------------------
# 1 + 2: a slot opened by hand; MIGRATE


class Small:
    def __init__(self):
        self.pool = NodePool(prefix="cinnabar-reshard-small-")
        self.m: list = []
        self.r = None
        self.ids: dict[int, str] = {}
        self.done: set[str] = set()
        self.epochs: dict = {}

    def id(self, node) -> str:
        return self.ids[node.port]

    def require(self, *steps):
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.skip(f"prerequisite step(s) {missing} did not pass")


@pytest.fixture(scope="class")
def small():
    s = Small()
    try:
        nodes = s.pool.add_block(["cinnabar"] * 4, node_timeout=5000)
        s.m, s.r = nodes[:3], nodes[3]
        for name, n in zip(("M0", "M1", "M2", "R0"), nodes):
            n.name = f"{name}({n.kind}:{n.port})"
        s.ids = form_cluster(s.m, {s.r: s.m[0]})
        wait_distinct_epochs(nodes)
        yield s
    finally:
        s.pool.close()


class TestOpenSlots:
    SLOT = 1000  # opened M0 -> M1 by hand (cases 1)
    MSLOT = 2000  # opened M0 -> M1 for the MIGRATE cases

    @pytest.fixture(autouse=True)
    def _logs(self, request, small):
        attach_logs(request, small.pool.nodes)

    def open_slot(self, small, slot):
        m0, m1 = small.m[0], small.m[1]
        d = Diff()
        d(f"M1 CLUSTER SETSLOT {slot} IMPORTING <M0>", raw(m1, "CLUSTER", "SETSLOT", slot, "IMPORTING", small.id(m0)), OK)
        d(f"M0 CLUSTER SETSLOT {slot} MIGRATING <M1>", raw(m0, "CLUSTER", "SETSLOT", slot, "MIGRATING", small.id(m1)), OK)
        d.done()

    def test_01_open_slot_routing_and_asking(self, small):
        m0, m1, m2 = small.m
        s = self.SLOT
        tag = tag_for(s)
        kp, km, km2, kr, kr2 = (f"{{{tag}}}:{n}" for n in ("present", "missing", "missing2", "restored", "restored2"))
        kq = f"{{{tag}}}:queued"
        assert raw(m0, "SET", kp, "here") == OK
        assert raw(m0, "SET", kq, "soon gone") == OK
        self.open_slot(small, s)
        ask = err(f"ASK {s} {IP}:{m1.port}")
        moved = err(f"MOVED {s} {IP}:{m0.port}")
        d = Diff()
        # the source (migrating): present keys served, missing keys -> ASK, mixed multi-key -> TRYAGAIN
        d("M0 GET present", raw(m0, "GET", kp), bulk("here"))
        d("M0 EXISTS present", raw(m0, "EXISTS", kp), b":1\r\n")
        d("M0 GET missing", raw(m0, "GET", km), ask)
        d("M0 SET missing", raw(m0, "SET", km, "x"), ask)
        d("M0 MGET present missing", raw(m0, "MGET", kp, km), TRYAGAIN)
        d("M0 MGET missing missing2", raw(m0, "MGET", km, km2), ask)
        d("M0 MGET present present", raw(m0, "MGET", kp, kp), b"*2\r\n" + bulk("here") * 2)
        # a third master still redirects to the owner
        d("M2 GET missing", raw(m2, "GET", km), moved)
        # the target (importing): MOVED without ASKING
        d("M1 GET missing (no ASKING)", raw(m1, "GET", km), moved)
        d("M1 SET missing (no ASKING)", raw(m1, "SET", km, "x"), moved)
        d("M1 ASKING GET missing", raw(m1, "GET", km, asking=True), NIL)
        d("M1 ASKING SET missing", raw(m1, "SET", km, "there", asking=True), OK)
        d("M1 ASKING GET (now present)", raw(m1, "GET", km, asking=True), bulk("there"))
        d("M1 GET present-on-M1 without ASKING", raw(m1, "GET", km), moved)
        d("M1 ASKING MGET present missing2", raw(m1, "MGET", km, km2, asking=True), TRYAGAIN)
        d("M1 ASKING MGET missing missing2", raw(m1, "MGET", kp, km2, asking=True), TRYAGAIN)
        d("M1 ASKING MGET present present", raw(m1, "MGET", km, km, asking=True), b"*2\r\n" + bulk("there") * 2)
        d("M1 ASKING MGET single", raw(m1, "MGET", km, asking=True), b"*1\r\n" + bulk("there"))
        # ASKING is one-shot; ASKING ASKING keeps the flag for the next command
        with conn(m1) as c:
            d("[conn] ASKING", c.call_raw("ASKING"), OK)
            d("[conn] GET after ASKING", c.call_raw("GET", km), bulk("there"))
            d("[conn] second GET", c.call_raw("GET", km), moved)
            d("[conn] ASKING", c.call_raw("ASKING"), OK)
            d("[conn] ASKING again", c.call_raw("ASKING"), OK)
            d("[conn] GET after ASKING ASKING", c.call_raw("GET", km), bulk("there"))
            d("[conn] GET after that", c.call_raw("GET", km), moved)
            # a non-key command consumes the flag too
            d("[conn] ASKING", c.call_raw("ASKING"), OK)
            d("[conn] PING", c.call_raw("PING"), b"+PONG\r\n")
            d("[conn] GET after ASKING PING", c.call_raw("GET", km), moved)
        # ASKING holds through MULTI/EXEC, and is gone after EXEC
        with conn(m1) as c:
            d("[multi] ASKING", c.call_raw("ASKING"), OK)
            d("[multi] MULTI", c.call_raw("MULTI"), OK)
            d("[multi] GET", c.call_raw("GET", km), QUEUED)
            d("[multi] SET", c.call_raw("SET", km, "there2"), QUEUED)
            d("[multi] GET again", c.call_raw("GET", km), QUEUED)
            d("[multi] EXEC", c.call_raw("EXEC"), b"*3\r\n" + bulk("there") + OK + bulk("there2"))
            d("[multi] GET after EXEC", c.call_raw("GET", km), moved)
        # EXEC looks at the keys of every queued command: present + missing -> TRYAGAIN
        with conn(m1) as c:
            d("[multi2] ASKING", c.call_raw("ASKING"), OK)
            d("[multi2] MULTI", c.call_raw("MULTI"), OK)
            d("[multi2] GET", c.call_raw("GET", km), QUEUED)
            d("[multi2] GET missing", c.call_raw("GET", km2), QUEUED)
            d("[multi2] EXEC", c.call_raw("EXEC"), TRYAGAIN)
            d("[multi2] GET after EXEC", c.call_raw("GET", km), moved)
        # without ASKING the transaction is flagged and EXEC aborts
        with conn(m1) as c:
            d("[multi, no ASKING] MULTI", c.call_raw("MULTI"), OK)
            d("[multi, no ASKING] GET", c.call_raw("GET", km), moved)
            d("[multi, no ASKING] EXEC", c.call_raw("EXEC"),
              err("EXECABORT Transaction discarded because of previous errors."))
        # the source: EXEC decides with the keys as they are at EXEC time — a key present
        # when queued and gone before EXEC gets -ASK, and the transaction is discarded
        with conn(m0) as c:
            d("[src multi] MULTI", c.call_raw("MULTI"), OK)
            d("[src multi] GET queued", c.call_raw("GET", kq), QUEUED)
            d("[src multi] DEL from another client", raw(m0, "DEL", kq), b":1\r\n")
            d("[src multi] EXEC", c.call_raw("EXEC"), ask)
            d("[src multi] EXEC again", c.call_raw("EXEC"), err("ERR EXEC without MULTI"))
        # RESTORE-ASKING is accepted by the importing node without ASKING; RESTORE is not
        payload = Q(m0)("DUMP", kp)
        assert isinstance(payload, bytes) and len(payload) > 10
        d("M1 RESTORE-ASKING (no ASKING)", raw(m1, "RESTORE-ASKING", kr, 0, payload), OK)
        d("M1 RESTORE (no ASKING)", raw(m1, "RESTORE", kr2, 0, payload), moved)
        d("M1 ASKING RESTORE", raw(m1, "RESTORE", kr2, 0, payload, asking=True), OK)
        d("M1 ASKING GET restored", raw(m1, "GET", kr, asking=True), bulk("here"))
        d("M1 ASKING GET restored2", raw(m1, "GET", kr2, asking=True), bulk("here"))
        d("M0 GET restored (not on M0)", raw(m0, "GET", kr), ask)
        d("M1 CLUSTER COUNTKEYSINSLOT", raw(m1, "CLUSTER", "COUNTKEYSINSLOT", s), b":3\r\n")
        d("M0 CLUSTER COUNTKEYSINSLOT", raw(m0, "CLUSTER", "COUNTKEYSINSLOT", s), b":1\r\n")
        d("M0 CLUSTER GETKEYSINSLOT", raw(m0, "CLUSTER", "GETKEYSINSLOT", s, 10), b"*1\r\n" + bulk(kp))
        d.done()

        # CLUSTER NODES: the open slot shows on the myself lines only
        def specs(node):
            return {x["id"]: x["slot_specs"] for x in node.nodes()}

        got0, got1, got2 = specs(m0), specs(m1), specs(m2)
        id0, id1, id2 = small.id(m0), small.id(m1), small.id(m2)
        assert got0[id0] == ["0-5461", f"[{s}->-{id1}]"], f"M0 myself line: {got0[id0]}"
        assert got1[id1] == ["5462-10922", f"[{s}-<-{id0}]"], f"M1 myself line: {got1[id1]}"
        assert got0[id1] == ["5462-10922"] and got1[id0] == ["0-5461"], (got0, got1)
        assert got2[id0] == ["0-5461"] and got2[id1] == ["5462-10922"] and got2[id2] == ["10923-16383"], got2
        small.done.add("open")

    def test_02_setslot_errors(self, small):
        small.require("open")
        m0, m1, m2 = small.m
        r0 = small.r
        s = self.SLOT
        unknown = "0123456789abcdef0123456789abcdef01234567"
        d = Diff()
        d("M1 SETSLOT 10 MIGRATING (slot of M0)", raw(m1, "CLUSTER", "SETSLOT", 10, "MIGRATING", small.id(m2)),
          err("ERR I'm not the owner of hash slot 10"))
        d("M0 SETSLOT 10 IMPORTING (own slot)", raw(m0, "CLUSTER", "SETSLOT", 10, "IMPORTING", small.id(m1)),
          err("ERR I'm already the owner of hash slot 10"))
        d("M0 SETSLOT 10 MIGRATING unknown", raw(m0, "CLUSTER", "SETSLOT", 10, "MIGRATING", unknown),
          err(f"ERR I don't know about node {unknown}"))
        d("M1 SETSLOT 10 IMPORTING unknown", raw(m1, "CLUSTER", "SETSLOT", 10, "IMPORTING", unknown),
          err(f"ERR I don't know about node {unknown}"))
        d("M0 SETSLOT 10 MIGRATING <replica>", raw(m0, "CLUSTER", "SETSLOT", 10, "MIGRATING", small.id(r0)),
          err("ERR Target node is not a master"))
        d("M1 SETSLOT 10 IMPORTING <replica>", raw(m1, "CLUSTER", "SETSLOT", 10, "IMPORTING", small.id(r0)),
          err("ERR Target node is not a master"))
        d("M0 SETSLOT 10 NODE unknown", raw(m0, "CLUSTER", "SETSLOT", 10, "NODE", unknown),
          err(f"ERR Unknown node {unknown}"))
        d("M0 SETSLOT open NODE <M1> with keys", raw(m0, "CLUSTER", "SETSLOT", s, "NODE", small.id(m1)),
          err(f"ERR Can't assign hashslot {s} to a different node while I still hold keys for this hash slot."))
        d("R0 SETSLOT STABLE", raw(r0, "CLUSTER", "SETSLOT", s, "STABLE"), err("ERR Please use SETSLOT only with masters."))
        d("R0 SETSLOT NODE", raw(r0, "CLUSTER", "SETSLOT", s, "NODE", small.id(m1)),
          err("ERR Please use SETSLOT only with masters."))
        d("R0 SETSLOT MIGRATING", raw(r0, "CLUSTER", "SETSLOT", 10, "MIGRATING", small.id(m1)),
          err("ERR Please use SETSLOT only with masters."))
        bad_action = err("ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP")
        d("M0 SETSLOT BOGUS", raw(m0, "CLUSTER", "SETSLOT", s, "BOGUS"), bad_action)
        d("M0 SETSLOT MIGRATING (no id)", raw(m0, "CLUSTER", "SETSLOT", s, "MIGRATING"), bad_action)
        d("M0 SETSLOT STABLE extra", raw(m0, "CLUSTER", "SETSLOT", s, "STABLE", "extra"), bad_action)
        d("M0 SETSLOT 16384 STABLE", raw(m0, "CLUSTER", "SETSLOT", 16384, "STABLE"),
          err("ERR Invalid or out of range slot"))
        d("M0 SETSLOT -1 STABLE", raw(m0, "CLUSTER", "SETSLOT", -1, "STABLE"), err("ERR Invalid or out of range slot"))
        d("M0 SETSLOT x STABLE", raw(m0, "CLUSTER", "SETSLOT", "x", "STABLE"), err("ERR Invalid or out of range slot"))
        # errors changed nothing: the slot is still open on both sides
        d("M0 GET present still served", raw(m0, "GET", f"{{{tag_for(s)}}}:present"), bulk("here"))
        d.done()
        id0, id1 = small.id(m0), small.id(m1)
        assert f"[{s}->-{id1}]" in next(x for x in m0.nodes() if "myself" in x["flags"])["slot_specs"]
        assert f"[{s}-<-{id0}]" in next(x for x in m1.nodes() if "myself" in x["flags"])["slot_specs"]

    def test_03_finish_migration_by_hand(self, small):
        """cluster-spec §5.5 by hand: MIGRATE the remaining keys, then SETSLOT NODE on target, source, others."""
        small.require("open")
        m0, m1, m2 = small.m
        s = self.SLOT
        kp = f"{{{tag_for(s)}}}:present"
        small.epochs = {n.name: int(x["config_epoch"]) for x in m1.nodes() for n in small.m if x["id"] == small.id(n)}
        id0, id1 = small.id(m0), small.id(m1)
        d = Diff()
        d("M0 CLUSTER GETKEYSINSLOT", raw(m0, "CLUSTER", "GETKEYSINSLOT", s, 10), b"*1\r\n" + bulk(kp))
        d("M0 MIGRATE KEYS", raw(m0, "MIGRATE", IP, m1.port, "", 0, 5000, "KEYS", kp), OK)
        d("M0 CLUSTER GETKEYSINSLOT (empty)", raw(m0, "CLUSTER", "GETKEYSINSLOT", s, 10), b"*0\r\n")
        d("M0 GET migrated -> ASK", raw(m0, "GET", kp), err(f"ASK {s} {IP}:{m1.port}"))
        d("M1 SETSLOT NODE <M1>", raw(m1, "CLUSTER", "SETSLOT", s, "NODE", id1), OK)
        d("M0 SETSLOT NODE <M1>", raw(m0, "CLUSTER", "SETSLOT", s, "NODE", id1), OK)
        d("M2 SETSLOT NODE <M1>", raw(m2, "CLUSTER", "SETSLOT", s, "NODE", id1), OK)
        d("M1 GET (owner now, no ASKING)", raw(m1, "GET", kp), bulk("here"))
        d("M0 GET -> MOVED to M1", raw(m0, "GET", kp), err(f"MOVED {s} {IP}:{m1.port}"))
        d("M2 GET -> MOVED to M1", raw(m2, "GET", kp), err(f"MOVED {s} {IP}:{m1.port}"))
        d("M1 COUNTKEYSINSLOT", raw(m1, "CLUSTER", "COUNTKEYSINSLOT", s), b":4\r\n")
        d.done()
        want = {id0: ["0-999", "1001-5461"], id1: ["1000", "5462-10922"], small.id(m2): ["10923-16383"]}

        def agreed():
            for n in small.pool.nodes:
                got = {x["id"]: x["slot_specs"] for x in n.nodes() if x["role"] == "master"}
                if got != want:
                    return False
            return True

        wait_until(agreed, CONVERGE, "every node (replica too) to show slot 1000 on M1 and no open slot",
                   state=lambda: dump_nodes(small.pool.nodes))
        # the importing node took the slot without consensus: its configEpoch is now the unique maximum
        eps = {x["id"]: int(x["config_epoch"]) for x in m1.nodes() if x["role"] == "master"}
        assert all(eps[id1] > e for i, e in eps.items() if i != id1), (
            f"configEpochs after SETSLOT NODE as seen by M1: M1 {eps[id1]}, M0 {eps[id0]}, M2 {eps[small.id(m2)]} "
            f"(before the migration: {small.epochs}); the importing node must bump its configEpoch to the unique maximum")
        wait_check_clean(m2)

    # -- MIGRATE --------------------------------------------------------------

    def test_04_migrate_semantics(self, small):
        m0, m1, _ = small.m
        s = self.MSLOT
        tag = tag_for(s, "mig")
        k = lambda n: f"{{{tag}}}:{n}"  # noqa: E731
        # keys are created before the slot is opened (a SET of a missing key in a migrating slot is ASKed away)
        with Q(m0) as q0:
            for name in "abcde":
                assert q0("SET", k(name), f"v{name}") == b"OK"
            assert q0("SET", k("f"), "vf", "PX", 100000) == b"OK"
            populate(q0, tag)  # for test_05
        self.open_slot(small, s)
        ask = err(f"ASK {s} {IP}:{m1.port}")
        d = Diff()
        d("M0 SET missing -> ASK", raw(m0, "SET", k("new"), "x"), ask)
        # single key
        d("MIGRATE a", raw(m0, "MIGRATE", IP, m1.port, k("a"), 0, 5000), OK)
        d("M0 GET a -> ASK (gone)", raw(m0, "GET", k("a")), ask)
        d("M1 ASKING GET a", raw(m1, "GET", k("a"), asking=True), bulk("va"))
        d("M1 ASKING PTTL a (no ttl)", raw(m1, "PTTL", k("a"), asking=True), b":-1\r\n")
        # none of the keys exist -> NOKEY
        d("MIGRATE a again -> NOKEY", raw(m0, "MIGRATE", IP, m1.port, k("a"), 0, 5000), b"+NOKEY\r\n")
        d("MIGRATE KEYS none -> NOKEY", raw(m0, "MIGRATE", IP, m1.port, "", 0, 5000, "KEYS", k("x"), k("y")),
          b"+NOKEY\r\n")
        # KEYS form, missing keys skipped
        d("MIGRATE KEYS b c nothere", raw(m0, "MIGRATE", IP, m1.port, "", 0, 5000, "KEYS", k("b"), k("c"), k("nothere")), OK)
        d("M0 MGET b c -> ASK", raw(m0, "MGET", k("b"), k("c")), ask)
        d("M1 ASKING MGET b c", raw(m1, "MGET", k("b"), k("c"), asking=True), b"*2\r\n" + bulk("vb") + bulk("vc"))
        # COPY keeps the source key
        d("SET d d1 (present)", raw(m0, "SET", k("d"), "d1"), OK)
        d("MIGRATE COPY KEYS d", raw(m0, "MIGRATE", IP, m1.port, "", 0, 5000, "COPY", "KEYS", k("d")), OK)
        d("M0 GET d (copy kept)", raw(m0, "GET", k("d")), bulk("d1"))
        d("M1 ASKING GET d", raw(m1, "GET", k("d"), asking=True), bulk("d1"))
        # BUSYKEY: target has it, no REPLACE -> error, source untouched
        busy = err("ERR Target instance replied with error: BUSYKEY Target key name already exists.")
        d("SET d d2", raw(m0, "SET", k("d"), "d2"), OK)
        d("MIGRATE KEYS d (busy)", raw(m0, "MIGRATE", IP, m1.port, "", 0, 5000, "KEYS", k("d")), busy)
        d("MIGRATE d (busy, single form)", raw(m0, "MIGRATE", IP, m1.port, k("d"), 0, 5000), busy)
        d("MIGRATE d COPY (busy)", raw(m0, "MIGRATE", IP, m1.port, k("d"), 0, 5000, "COPY"), busy)
        d("M0 GET d (still there)", raw(m0, "GET", k("d")), bulk("d2"))
        d("M1 ASKING GET d (old value)", raw(m1, "GET", k("d"), asking=True), bulk("d1"))
        # REPLACE
        d("MIGRATE REPLACE KEYS d", raw(m0, "MIGRATE", IP, m1.port, "", 0, 5000, "REPLACE", "KEYS", k("d")), OK)
        d("M0 GET d -> ASK", raw(m0, "GET", k("d")), ask)
        d("M1 ASKING GET d (replaced)", raw(m1, "GET", k("d"), asking=True), bulk("d2"))
        # COPY REPLACE together
        d("MIGRATE e COPY", raw(m0, "MIGRATE", IP, m1.port, k("e"), 0, 5000, "COPY"), OK)
        d("SET e e2", raw(m0, "SET", k("e"), "e2"), OK)
        d("MIGRATE e COPY REPLACE", raw(m0, "MIGRATE", IP, m1.port, k("e"), 0, 5000, "COPY", "REPLACE"), OK)
        d("M0 GET e", raw(m0, "GET", k("e")), bulk("e2"))
        d("M1 ASKING GET e", raw(m1, "GET", k("e"), asking=True), bulk("e2"))
        d("M1 ASKING GET a", raw(m1, "GET", k("a"), asking=True), bulk("va"))
        # KEYS needs the empty key argument
        d("MIGRATE e KEYS e", raw(m0, "MIGRATE", IP, m1.port, k("e"), 0, 5000, "KEYS", k("e")),
          err("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string"))
        # TTL is carried over
        d("MIGRATE f", raw(m0, "MIGRATE", IP, m1.port, k("f"), 0, 5000), OK)
        d.done()
        pttl = Q(m1, asking=True)("PTTL", k("f"))
        assert 90000 < pttl <= 100000, f"PTTL of the migrated key on the target: {pttl}"
        small.done.add("migrate")

    # Unreachable targets. 7.0's connSocketBlockingConnect ignores the result of its aeWait, so only
    # a connect(2) that fails at once gives "connecting to the client"; a refusal or a connect
    # timeout surfaces on the first write: "writing to target instance".

    def test_04b_migrate_refused_target(self, small):
        small.require("migrate")
        m0 = small.m[0]
        k = f"{{{tag_for(self.MSLOT, 'mig')}}}:e"
        closed = _ports.free_port(with_bus=False)
        d = Diff()
        d("MIGRATE to a closed port", raw(m0, "MIGRATE", IP, closed, k, 0, 1000),
          err("IOERR error or timeout writing to target instance"))
        d("MIGRATE KEYS to a closed port", raw(m0, "MIGRATE", IP, closed, "", 0, 1000, "KEYS", k),
          err("IOERR error or timeout writing to target instance"))
        d("M0 GET e (kept after IOERR)", raw(m0, "GET", k), bulk("e2"))
        d.done()

    def test_04c_migrate_connect_fails_at_once(self, small):
        """A TCP connect(2) to a multicast address fails synchronously (ENETUNREACH)."""
        small.require("migrate")
        m0 = small.m[0]
        k = f"{{{tag_for(self.MSLOT, 'mig')}}}:e"
        d = Diff()
        d("MIGRATE to 224.0.0.1", raw(m0, "MIGRATE", "224.0.0.1", 6390, k, 0, 1000),
          err("IOERR error or timeout connecting to the client"))
        d("MIGRATE KEYS to 224.0.0.1", raw(m0, "MIGRATE", "224.0.0.1", 6390, "", 0, 1000, "KEYS", k),
          err("IOERR error or timeout connecting to the client"))
        d("M0 GET e (kept after IOERR)", raw(m0, "GET", k), bulk("e2"))
        d.done()

    def test_04d_migrate_connect_timeout(self, small):
        """A listener whose accept queue is full drops the SYN: the connect times out, and 7.0 answers
        with the write error (after waiting the timeout for the connect, then again for the write)."""
        small.require("migrate")
        m0 = small.m[0]
        k = f"{{{tag_for(self.MSLOT, 'mig')}}}:e"
        lsock = socket.socket()
        fill = []
        try:
            lsock.bind((IP, 0))
            lsock.listen(0)  # accept queue of one; never accepted
            for _ in range(3):
                s = socket.socket()
                s.setblocking(False)
                try:
                    s.connect(lsock.getsockname())
                except BlockingIOError:
                    pass
                fill.append(s)
            port = lsock.getsockname()[1]
            d = Diff()
            t0 = time.monotonic()
            d("MIGRATE to a full accept queue", raw(m0, "MIGRATE", IP, port, k, 0, 300),
              err("IOERR error or timeout writing to target instance"))
            elapsed = time.monotonic() - t0
            d("M0 GET e (kept after IOERR)", raw(m0, "GET", k), bulk("e2"))
            d.done()
            assert elapsed >= 0.25, f"MIGRATE ... 300 gave up after {elapsed:.3f}s"
        finally:
            for s in fill + [lsock]:
                s.close()

    def test_05_migrate_every_type(self, small):
        small.require("migrate")
        m0, m1, _ = small.m
        tag = tag_for(self.MSLOT, "mig")
        with Q(m0) as q0, Q(m1, asking=True) as q1:
            keys = populate(_Recorder(), tag)  # names only: created by test_04 before the slot was opened
            before = {k: read_value(q0, k) for k in keys}
            assert all(v[1] for v in before.values()), before
            r = raw(m0, "MIGRATE", IP, m1.port, "", 0, 10000, "KEYS", *keys)
            assert r == OK, f"MIGRATE KEYS <{len(keys)} keys of every type>: {r!r}"
            after = {k: read_value(q1, k) for k in keys}
            for key in keys:
                assert after[key] == before[key], f"{key} differs after MIGRATE: {before[key][0]} {str(before[key][1])[:200]} vs {str(after[key][1])[:200]}"
            pttl = q1("PTTL", keys[-1])
            assert 90000 < pttl <= 100000, pttl
            for key in keys:
                assert raw(m0, "EXISTS", key).startswith(b"-ASK "), f"{key} still on the source after MIGRATE"

    def test_09_slot_taken_by_update_drops_its_keys(self, small):
        """Redis's dirty slots: when an UPDATE (a higher configEpoch claim) takes a slot from a
        master that still holds keys there and keeps serving other slots, it deletes those
        keys. Cinnabar also replicates the deletions (as Redis 7.2 does); 7.0.15's
        delKeysInSlot does not, so its replica keeps them — checked as such in the oracle run."""
        from conftest import self_validation_mode

        replica_drops = not self_validation_mode()
        m0, _, m2 = small.m
        r0 = small.r
        s = 3000  # owned by M0, untouched by the cases above
        assert s in myself_slots(m0)
        keys = [f"{{{tag_for(s, 'dirty')}}}:{i}" for i in range(5)]
        # SETs and WAIT on one connection: WAIT covers the offset of this client's own last
        # write (c->woff), so on a fresh connection it would wait for nothing.
        with conn(m0) as c:
            for k in keys:
                assert c.call_raw("SET", k, "v") == OK
            assert c.call_raw("WAIT", 1, 5000) == b":1\r\n"
        assert raw(r0, "CLUSTER", "COUNTKEYSINSLOT", s) == b":5\r\n"
        # M2 takes the slot without consensus, with the highest configEpoch.
        assert raw(m2, "CLUSTER", "BUMPEPOCH").startswith(b"+BUMPED") or raw(m2, "CLUSTER", "BUMPEPOCH").startswith(b"+STILL")
        assert raw(m2, "CLUSTER", "SETSLOT", s, "NODE", small.id(m2)) == OK

        def moved_and_dropped():
            owner = next(x["id"] for x in m0.nodes() if s in x["slots"])
            return (owner == small.id(m2)
                    and raw(m0, "CLUSTER", "COUNTKEYSINSLOT", s) == b":0\r\n"
                    and (not replica_drops or raw(r0, "CLUSTER", "COUNTKEYSINSLOT", s) == b":0\r\n"))

        wait_until(moved_and_dropped, CONVERGE, f"M0 to lose slot {s} to M2 and drop its keys (replica too)",
                   state=lambda: (raw(m0, "CLUSTER", "COUNTKEYSINSLOT", s), raw(r0, "CLUSTER", "COUNTKEYSINSLOT", s),
                                  dump_nodes([m0])))
        assert "master" in next(x for x in m0.nodes() if "myself" in x["flags"])["flags"]
        assert raw(m0, "GET", keys[0]) == err(f"MOVED {s} {IP}:{m2.port}")
        if not replica_drops:  # redis-server 7.0.15: the replica still holds them
            assert raw(r0, "CLUSTER", "COUNTKEYSINSLOT", s) == b":5\r\n"


# ---------------------------------------------------------------------------
# 2b: DUMP / RESTORE across implementations


def test_06_dump_restore_cross_implementation(pair):
    """A payload DUMPed by one implementation RESTOREs on the other (both ways), every type and encoding."""
    redis, cinnabar = pair
    with Q(redis) as qr, Q(cinnabar) as qc:
        keys = populate(qr, "x")
        assert populate(qc, "x") == keys
        for src, dst, direction in ((qr, qc, "redis-server -> cinnabar"), (qc, qr, "cinnabar -> redis-server")):
            for k in keys:
                payload = src("DUMP", k)
                assert isinstance(payload, bytes), f"DUMP {k}: {payload!r}"
                # 7.0: RDB version 10, little endian, just before the CRC64
                assert payload[-10:-8] == b"\x0a\x00", f"{direction}: DUMP {k} RDB version bytes {payload[-10:-8]!r}"
                new = f"copy:{direction[:5]}:{k}"
                assert dst("RESTORE", new, 0, payload) == b"OK", f"{direction}: RESTORE {k}"
                assert read_value(dst, new) == read_value(src, k), f"{direction}: {k} differs after DUMP/RESTORE"
                assert dst("RESTORE", new, 50000, payload, "REPLACE") == b"OK"
                assert 40000 < dst("PTTL", new) <= 50000
                assert read_value(dst, new) == read_value(src, k)


def test_07_restore_errors(pair):
    for srv in pair:
        with conn(srv) as c:
            assert c.call_raw("RPUSH", "src", "a", "b") == b":2\r\n"
            payload = c.call("DUMP", "src").value
            d = Diff()
            name = srv.name
            d(f"{name} RESTORE ttl -1", c.call_raw("RESTORE", "n", -1, payload), err("ERR Invalid TTL value, must be >= 0"))
            bad = bytearray(payload)
            bad[2] ^= 0xFF
            d(f"{name} RESTORE flipped byte", c.call_raw("RESTORE", "n", 0, bytes(bad)),
              err("ERR DUMP payload version or checksum are wrong"))
            bad = bytearray(payload)
            bad[-1] ^= 0x01
            d(f"{name} RESTORE flipped CRC byte", c.call_raw("RESTORE", "n", 0, bytes(bad)),
              err("ERR DUMP payload version or checksum are wrong"))
            d(f"{name} RESTORE existing", c.call_raw("RESTORE", "src", 0, payload),
              err("BUSYKEY Target key name already exists."))
            past = int(time.time() * 1000) - 100000
            d(f"{name} RESTORE ABSTTL past", c.call_raw("RESTORE", "n", past, payload, "ABSTTL"), OK)
            d(f"{name} EXISTS after ABSTTL past", c.call_raw("EXISTS", "n"), b":0\r\n")
            d(f"{name} RESTORE REPLACE ABSTTL past", c.call_raw("RESTORE", "src", past, payload, "REPLACE", "ABSTTL"), OK)
            d(f"{name} EXISTS old key after REPLACE ABSTTL past", c.call_raw("EXISTS", "src"), b":0\r\n")
            future = int(time.time() * 1000) + 100000
            d(f"{name} RESTORE ABSTTL future", c.call_raw("RESTORE", "n", future, payload, "ABSTTL"), OK)
            d(f"{name} LRANGE restored", c.call_raw("LRANGE", "n", 0, -1), b"*2\r\n" + bulk("a") + bulk("b"))
            d(f"{name} DUMP missing", c.call_raw("DUMP", "nosuchkey"), NIL)
            d.done()
            pttl = c.call("PTTL", "n").to_py()
            assert 90000 < pttl <= 100000, f"{name}: PTTL after RESTORE ABSTTL: {pttl}"


def test_07b_restore_payload_shorter_than_footer(pair):
    """A payload shorter than the 10-byte version+CRC footer fails the footer check (verifyDumpPayload),
    before any decoding: the checksum error, not 'Bad data format'."""
    for srv in pair:
        with conn(srv) as c:
            d = Diff()
            for payload in (b"", b"xyz", b"\x00" * 9):
                d(f"{srv.name} RESTORE n 0 {payload!r}", c.call_raw("RESTORE", "n", 0, payload),
                  err("ERR DUMP payload version or checksum are wrong"))
            d.done()


# ---------------------------------------------------------------------------
# 3, 4, 5: redis-cli --cluster reshard / rebalance / add-node / del-node


NKEYS = 3000


def masters_replicas(nodes):
    """({port: node} of masters, {replica node: master node}) from the first reachable node's CLUSTER NODES."""
    by_port = {n.port: n for n in nodes}
    ns = nodes[0].nodes()
    by_id = {x["id"]: x for x in ns}
    masters = {x["port"]: by_port[x["port"]] for x in ns if x["role"] == "master" and x["port"] in by_port}
    reps = {by_port[x["port"]]: by_port[by_id[x["master"]]["port"]] for x in ns
            if x["role"] == "slave" and x["port"] in by_port and x["master"] in by_id}
    return masters, reps


def cli_get_lines(port: int, keys) -> list[str]:
    cp = redis_cli("-c", "-p", port, stdin="".join(f"GET {k}\n" for k in keys), timeout=120)
    assert cp.returncode == 0, f"redis-cli -c -p {port}: {cp.stderr!r}"
    return [ln for ln in out(cp).splitlines() if not ln.startswith("-> Redirected")]


def verify_data(nodes, expected: dict[str, str], seed=None, what: str = "", others=()) -> None:
    """Every key readable with its value through redis-py RedisCluster and `redis-cli -c`; DBSIZE of every
    master equals the number of expected keys (plus `others`, keys of other types) in the slots it owns;
    replicas caught up with their masters."""
    seed = seed or nodes[0]
    keys = sorted(expected)
    rc = RedisCluster(host=IP, port=seed.port, socket_timeout=20)
    try:
        got = rc.mget_nonatomic(keys)
    finally:
        rc.close()
    bad = [(k, expected[k], g) for k, g in zip(keys, got) if g != expected[k].encode()]
    assert not bad, f"{what}: {len(bad)} of {len(keys)} keys wrong through RedisCluster, e.g. {bad[:10]}"
    sample = keys[:: max(1, len(keys) // 300)]
    lines = cli_get_lines(seed.port, sample)
    assert lines == [expected[k] for k in sample], (
        f"{what}: redis-cli -c GETs differ: {[(k, expected[k], g) for k, g in zip(sample, lines) if g != expected[k]][:10]}")
    masters, reps = masters_replicas(nodes)
    per_master = {p: 0 for p in masters}
    owners = {}
    for p, m in masters.items():
        for s in myself_slots(m):
            owners[s] = p
    assert len(owners) == NSLOTS, f"{what}: masters' myself lines cover {len(owners)} slots"
    for k in list(keys) + list(others):
        per_master[owners[key_slot(k.encode())]] += 1
    dbsize = {p: m.call("DBSIZE") for p, m in masters.items()}
    assert dbsize == per_master, f"{what}: DBSIZE per master {dbsize}, expected (keys in the slots each owns) {per_master}"

    def repl_state():
        rows = []
        for r, m in reps.items():
            mi, ri = parse_info(m.text("INFO", "replication")), parse_info(r.text("INFO", "replication"))
            rows.append((r.name, m.name, m.call("DBSIZE"), r.call("DBSIZE"), mi.get("master_repl_offset"),
                         ri.get("slave_repl_offset"), ri.get("master_link_status")))
        return rows

    def caught_up():
        return all(md == rd and mo == ro and link == "up" for _, _, md, rd, mo, ro, link in repl_state())

    wait_until(caught_up, CONVERGE, f"{what}: every replica's DBSIZE and replication offset to equal its master's",
               state=lambda: "\n".join(map(str, repl_state())))


class Big:
    def __init__(self):
        self.pool = NodePool(prefix="cinnabar-reshard-big-")
        self.nodes: list = []
        self.ids: dict[int, str] = {}
        self.expected: dict[str, str] = {}
        self.done: set[str] = set()
        self.new = None

    def require(self, *steps):
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.skip(f"prerequisite step(s) {missing} did not pass")


@pytest.fixture(scope="class")
def big():
    b = Big()
    try:
        b.nodes = b.pool.add_block(["cinnabar"] * 6, node_timeout=5000)
        for name, n in zip(("M0", "M1", "M2", "R0", "R1", "R2"), b.nodes):
            n.name = f"{name}({n.kind}:{n.port})"
        b.ids = form_cluster(b.nodes[:3], dict(zip(b.nodes[3:], b.nodes[:3])))
        yield b
    finally:
        b.pool.close()


class TestReshard:
    @pytest.fixture(autouse=True)
    def _logs(self, request, big):
        attach_logs(request, big.pool.nodes)

    def test_10_reshard_keys_everywhere(self, big):
        m0, m1, m2 = big.nodes[:3]
        expected = {f"key:{i}": f"val:{i}" for i in range(NKEYS)}
        rc = RedisCluster(host=IP, port=m0.port, socket_timeout=20)
        try:
            rc.mset_nonatomic(expected)
        finally:
            rc.close()
        big.expected.update(expected)
        assert len({key_slot(k.encode()) for k in expected}) > 2500
        verify_data(big.nodes, big.expected, what="before resharding")
        wait_check_clean(m2)
        reshard(m2, big.ids[m0.port], big.ids[m1.port], 1000)
        text = wait_check_clean(m2)
        # redis-cli moves the source's lowest slots
        assert myself_slots(m0) == set(range(1000, 5462)), text
        assert myself_slots(m1) == set(range(1000)) | set(range(5462, 10923)), text
        wait_check_clean(big.nodes[3])  # from a replica too
        verify_data(big.nodes, big.expected, what="after `--cluster reshard` of 1000 slots")
        big.done.add("reshard")

    def test_11_reshard_under_load(self, big):
        big.require("reshard")
        m0, m1, m2 = big.nodes[:3]
        moving = sorted(myself_slots(m1))[:1000]  # redis-cli takes the source's lowest slots: 0-999, back to M0
        hot = keys_in_slots(moving[::4], "hot")  # 250 keys in slots that move
        cold = keys_in_slots(range(3, NSLOTS, 64), "cold")  # 256 keys all over the slot space
        base = list(hot.values()) + list(cold.values())
        last_set: dict[str, str] = {}
        incrs: dict[str, int] = {}
        errors: list[str] = []
        stop = threading.Event()
        ops = [0]

        def writer():
            rc = RedisCluster(host=IP, port=m0.port, socket_timeout=20)
            try:
                rnd = 0
                while not stop.is_set():
                    rnd += 1
                    for k in base:
                        v = f"r{rnd}"
                        try:
                            assert rc.set(f"{k}:s", v) is True
                            last_set[f"{k}:s"] = v
                        except Exception as e:  # noqa: BLE001 - recorded, asserted below
                            errors.append(f"SET {k}:s: {e!r}")
                        try:
                            n = rc.incr(f"{k}:c")
                            incrs[f"{k}:c"] = incrs.get(f"{k}:c", 0) + 1
                            if n != incrs[f"{k}:c"]:
                                errors.append(f"INCR {k}:c returned {n}, {incrs[f'{k}:c']} INCRs acknowledged so far")
                        except Exception as e:  # noqa: BLE001
                            errors.append(f"INCR {k}:c: {e!r}")
                        ops[0] += 2
            finally:
                rc.close()

        t = threading.Thread(target=writer, name="reshard-writer", daemon=True)
        t.start()
        try:
            wait_until(lambda: ops[0] >= 2 * len(base), 30, "the writer to finish a first round")
            before = ops[0]
            reshard(m2, big.ids[m1.port], big.ids[m0.port], 1000)
            during = ops[0] - before
            after_mark = ops[0]
            wait_until(lambda: ops[0] >= after_mark + 2 * len(base), 60, "the writer to finish a round after resharding")
        finally:
            stop.set()
            t.join(60)
        assert not t.is_alive(), "writer thread did not stop"
        assert during > 0, "the writer made no progress while redis-cli was resharding"
        assert not errors, f"{len(errors)} errors seen by the redis-py writer during resharding, e.g.:\n" + "\n".join(errors[:20])
        assert myself_slots(m0) == set(range(5462)), f"M0 should own 0-5461 again: {sorted(myself_slots(m0))[:5]}..."
        wait_check_clean(m0)
        for k, v in last_set.items():
            big.expected[k] = v
        for k, n in incrs.items():
            big.expected[k] = str(n)
        verify_data(big.nodes, big.expected, what=f"after resharding 1000 slots under load ({ops[0]} writes)")
        big.done.add("load")

    def test_12_add_node_and_rebalance_use_empty_masters(self, big):
        big.require("reshard")
        m0 = big.nodes[0]
        new = big.pool.add_block(["cinnabar"], node_timeout=5000)[0]
        new.name = f"M3({new.kind}:{new.port})"
        big.new = new
        cp = redis_cli("--cluster", "add-node", f"{IP}:{new.port}", f"{IP}:{m0.port}", timeout=60)
        assert cp.returncode == 0 and "[OK] New node added correctly." in out(cp), out(cp) + cp.stderr.decode(errors="replace")
        allnodes = big.nodes + [new]
        wait_all_know(allnodes, 7, CONVERGE)
        wait_same_topology(allnodes, CONVERGE)
        # the new master answers RESTORE-ASKING with CLUSTERDOWN until its own cluster_state is ok
        wait_cluster_ok(allnodes, CONVERGE)
        wait_check_clean(m0)
        # The new master gets weight 0.1 (~528 slots) instead of 1 (4096 slots) to keep the run time modest.
        weight = 0.1
        cp = redis_cli("--cluster", "rebalance", f"{IP}:{m0.port}", "--cluster-use-empty-masters",
                       "--cluster-weight", f"{new.myid()}={weight}", timeout=300)
        text = out(cp)
        assert cp.returncode == 0, f"rebalance exited {cp.returncode}:\n{text[-3000:]}\n{cp.stderr.decode(errors='replace')}"
        to_new = sum(int(n) for n in re.findall(rf"^Moving (\d+) slots from \S+ to {IP}:{new.port}$", text, re.M))
        assert to_new > 0, text[-3000:]
        wait_check_clean(m0)
        assert len(myself_slots(new)) == to_new, f"new master owns {len(myself_slots(new))} slots, redis-cli moved {to_new} to it"
        wait_same_topology(allnodes, CONVERGE)
        masters, _ = masters_replicas(allnodes)
        counts = {m.name: len(myself_slots(m)) for m in masters.values()}
        assert len(counts) == 4 and new.name in counts, counts
        want = {m.name: NSLOTS * (weight if m is new else 1) / (3 + weight) for m in masters.values()}
        assert all(abs(counts[n] - want[n]) <= want[n] * 0.02 + 1 for n in counts), f"slots per master after rebalance: {counts}, expected about {want}"
        verify_data(allnodes, big.expected, what="after add-node + rebalance --cluster-use-empty-masters")
        big.done.add("rebalance")

    def test_13_del_node_after_resharding_its_slots_away(self, big):
        big.require("rebalance")
        m0, new = big.nodes[0], big.new
        new_id = new.myid()
        n = len(myself_slots(new))
        reshard(m0, new_id, big.ids[m0.port], n)
        wait_check_clean(m0)
        assert myself_slots(new) == set()
        cp = redis_cli("--cluster", "del-node", f"{IP}:{m0.port}", new_id, timeout=60)
        text = out(cp)
        assert cp.returncode == 0, f"del-node exited {cp.returncode}:\n{text}\n{cp.stderr.decode(errors='replace')}"
        assert "Sending CLUSTER RESET SOFT to the deleted node." in text, text

        def forgotten():
            return all(len(x.nodes()) == 6 and new_id not in {y["id"] for y in x.nodes()} for x in big.nodes)

        wait_until(forgotten, CONVERGE, "the six remaining nodes to forget the deleted node", state=lambda: dump_nodes(big.nodes))
        mine = new.nodes()
        assert len(mine) == 1 and mine[0]["role"] == "master" and not mine[0]["slots"], f"deleted node after RESET SOFT:\n{new.cluster_nodes()}"
        wait_check_clean(m0)
        verify_data(big.nodes, big.expected, what="after del-node")
        new.stop()


def keys_in_slots(slots, prefix: str) -> dict[int, str]:
    """{slot: "{tag}"} with one hash tag per requested slot (a single pass over candidate tags)."""
    want = set(slots)
    found: dict[int, str] = {}
    i = 0
    while len(found) < len(want):
        tag = f"{prefix}{i}"
        s = key_slot(tag.encode())
        if s in want and s not in found:
            found[s] = f"{{{tag}}}"
        i += 1
    return found


# ---------------------------------------------------------------------------
# 6: a mixed cluster — Cinnabar and redis-server masters


class Mixed:
    def __init__(self):
        self.pool = NodePool(prefix="cinnabar-reshard-mixed-")
        self.nodes: list = []
        self.ids: dict[int, str] = {}


@pytest.fixture(scope="class")
def mixed():
    m = Mixed()
    try:
        m.nodes = m.pool.add_block(["cinnabar", "redis", "cinnabar"], node_timeout=5000,
                                   extra_for=lambda kind: ['save ""'] if kind == "redis" else [])
        for name, n in zip(("C0", "R1", "C2"), m.nodes):
            n.name = f"{name}({n.kind}:{n.port})"
        m.ids = form_cluster(m.nodes)
        yield m
    finally:
        m.pool.close()


class TestMixed:
    @pytest.fixture(autouse=True)
    def _logs(self, request, mixed):
        attach_logs(request, mixed.pool.nodes)

    def test_20_reshard_cinnabar_to_redis_server_and_back(self, mixed):
        c0, r1, c2 = mixed.nodes
        expected = {f"mx:{i}": f"mv:{i}" for i in range(1500)}
        rc = RedisCluster(host=IP, port=r1.port, socket_timeout=20)
        try:
            rc.mset_nonatomic(expected)
        finally:
            rc.close()
        # every type and encoding, in two slots that move (C0's lowest 400 slots)
        typed = []
        with Q(c0) as q:
            for slot in (5, 300):
                typed += populate(q, tag_for(slot, "ty"))
            before = {k: read_value(q, k) for k in typed}
        nslots = 400
        for src, dst in ((c0, r1), (r1, c0)):
            wait_check_clean(c2)
            reshard(c2, mixed.ids[src.port], mixed.ids[dst.port], nslots)
            wait_check_clean(c2)
            assert set(range(nslots)) <= myself_slots(dst), f"slots 0-{nslots - 1} not on {dst.name}"
            verify_data(mixed.nodes, expected, seed=c2, others=typed, what=f"after resharding {src.name} -> {dst.name}")
            with Q(dst) as q:
                for k in typed:
                    assert read_value(q, k) == before[k], f"{k} differs on {dst.name} after MIGRATE from {src.name}"
                pttl = q("PTTL", typed[-1])
                assert 0 < pttl <= 100000, f"PTTL of {typed[-1]} on {dst.name}: {pttl}"
        assert myself_slots(c0) == set(range(5462)), "C0 should own 0-5461 again"
