# tests/test_cluster_pubsub.py — Pub/Sub across the cluster bus, as Redis 7.0
# (cluster-spec §1.3 PUBLISH / PUBLISHSHARD, §4.5):
#
# * PUBLISH on any node reaches subscribers (channel and pattern, RESP2 and RESP3)
#   on every other node, exactly once; the reply counts local receivers only.
# * SPUBLISH is routed like a key (MOVED from a node outside the slot's shard,
#   SSUBSCRIBE too) and reaches the shard's nodes only: the master and its
#   replicas get a bus PUBLISHSHARD, the other shards get nothing (checked with
#   the CLUSTER INFO message counters behind a PUBLISH barrier on the same links).
# * A slot leaving the node drops its shard-channel subscribers with a
#   SUNSUBSCRIBE push (removeChannelsInSlot).
# * A mixed cluster (real redis-server 7.0 nodes + Cinnabar nodes), both ways.
#
# Two module-scoped clusters: six Cinnabar nodes (M1 M2 M3, R1a R1b replicas of
# M1, R2 replica of M2) and a mixed one (real master RM + Cinnabar replica CR,
# Cinnabar master CM + real replica RR). With CINNABAR_SERVER=redis-server every
# node is real and the test validates itself against the oracle. No fixed
# sleeps: every wait is a condition or a blocking read with a deadline.

from __future__ import annotations

import pytest
from redis.crc import key_slot

from lib.resp import RespConnection, encode_command
from lib_cluster import (
    NodePool,
    attach_logs,
    dump_nodes,
    form_cluster,
    slot_ranges,
    wait_until,
)

CONVERGE = 40.0
MSG_WAIT = 10.0  # seconds a subscriber waits for one message


def channel_in(lo: int, hi: int, prefix: str) -> tuple[str, int]:
    """A channel name (with a hash tag) whose slot is in [lo, hi]."""
    i = 0
    while True:
        name = f"{prefix}{{t{i}}}"
        s = key_slot(name.encode())
        if lo <= s <= hi:
            return name, s
        i += 1


class Sub:
    """A subscriber connection that reads pushes with a deadline."""

    def __init__(self, node, resp3: bool = False, readonly: bool = False):
        self.node = node
        self.c = RespConnection(node.host, node.port, timeout=MSG_WAIT)
        if resp3:
            r = self.c.call("HELLO", "3")
            assert not r.is_error, r
        if readonly:
            assert self.c.call("READONLY").to_py() == b"OK"

    def subscribe(self, verb: str, *channels):
        """(S|P)SUBSCRIBE: one confirmation per channel; returns them as python lists."""
        self.c.send_command(verb, *channels)
        out = []
        for _ in channels:
            r = self.c.read_reply()
            if r.is_error:
                return r.value.decode()
            out.append(r.to_py())
        return out

    def call(self, *args):
        return self.c.call(*args)

    def next(self, timeout: float = MSG_WAIT):
        r = self.c.read_reply(timeout)
        return r.type, r.to_py()

    def close(self):
        self.c.close()


def call_readonly(node, *args):
    """`args` on a READONLY connection (python value, or the error text)."""
    with RespConnection(node.host, node.port, timeout=MSG_WAIT) as c:
        assert c.call("READONLY").to_py() == b"OK"
        r = c.call(*args)
        return r.value.decode() if r.is_error else r.to_py()


def info_counter(node, name: str) -> int:
    return int(node.info().get(f"cluster_stats_messages_{name}", "0"))


def wait_links_connected(nodes, timeout: float = CONVERGE) -> None:
    def ok():
        for n in nodes:
            for x in n.nodes():
                if "myself" not in x["flags"] and x["link"] != "connected":
                    return False
        return True

    wait_until(ok, timeout, "every bus link connected", state=lambda: dump_nodes(nodes))


def publish_barrier(publisher, others, channel: str = "barrier") -> None:
    """PUBLISH once on `publisher` and wait until every node in `others` counted it
    (bus messages from one node to another travel on one link, in order)."""
    before = {n.port: info_counter(n, "publish_received") for n in others}
    assert publisher.call("PUBLISH", channel, "x") == 0
    for n in others:
        wait_until(
            lambda n=n: info_counter(n, "publish_received") > before[n.port],
            MSG_WAIT,
            f"{n.name} to receive the barrier PUBLISH",
        )


# ---------------------------------------------------------------------------
# all-Cinnabar cluster


class AllC:
    def __init__(self):
        self.pool = NodePool(prefix="cinnabar-pubsub-")
        self.by = {}
        self.ids = {}
        self.subs: list[Sub] = []

    def __getitem__(self, k):
        return self.by[k]

    @property
    def nodes(self):
        return list(self.by.values())

    def sub(self, name, resp3=False, readonly=False) -> Sub:
        s = Sub(self.by[name], resp3, readonly)
        self.subs.append(s)
        return s


@pytest.fixture(scope="module")
def allc():
    a = AllC()
    try:
        names = ["M1", "M2", "M3", "R1a", "R1b", "R2"]
        nodes = a.pool.add_block(["cinnabar"] * len(names))
        for name, n in zip(names, nodes):
            n.name = f"{name}({n.kind}:{n.port})"
            a.by[name] = n
        ids = form_cluster([a["M1"], a["M2"], a["M3"]], {a["R1a"]: a["M1"], a["R1b"]: a["M1"], a["R2"]: a["M2"]},
                           timeout=CONVERGE)
        a.ids = {name: ids[n.port] for name, n in a.by.items()}
        wait_links_connected(a.nodes)
        yield a
    finally:
        for s in a.subs:
            s.close()
        a.pool.close()


@pytest.fixture
def c6(request, allc):
    attach_logs(request, allc.nodes)
    return allc


def test_publish_reaches_every_node(c6):
    ch = "news"
    s_m1 = c6.sub("M1")
    assert s_m1.subscribe("SUBSCRIBE", ch) == [[b"subscribe", ch.encode(), 1]]
    s_m3 = c6.sub("M3", resp3=True)
    assert s_m3.subscribe("PSUBSCRIBE", "ne*") == [[b"psubscribe", b"ne*", 1]]
    s_r2 = c6.sub("R2")
    assert s_r2.subscribe("SUBSCRIBE", ch) == [[b"subscribe", ch.encode(), 1]]

    # Published on M2 (no local subscriber): the reply counts local receivers only.
    assert c6["M2"].call("PUBLISH", ch, "hello") == 0
    assert s_m1.next() == ("*", [b"message", b"news", b"hello"])
    assert s_m3.next() == (">", [b"pmessage", b"ne*", b"news", b"hello"])
    assert s_r2.next() == ("*", [b"message", b"news", b"hello"])

    # From a replica, with a binary message larger than a bus read chunk.
    big = bytes(range(256)) * 400 + b"\r\n\x00end"
    assert c6["R1a"].call("PUBLISH", ch, big) == 0
    for s in (s_m1, s_r2):
        assert s.next() == ("*", [b"message", b"news", big])
    assert s_m3.next() == (">", [b"pmessage", b"ne*", b"news", big])

    # Exactly once: the next thing each subscriber sees is the following message.
    assert c6["M2"].call("PUBLISH", ch, "second") == 0
    assert s_m1.next() == ("*", [b"message", b"news", b"second"])
    assert s_r2.next() == ("*", [b"message", b"news", b"second"])
    assert s_m3.next() == (">", [b"pmessage", b"ne*", b"news", b"second"])

    # A local subscriber is counted (and still gets it once).
    assert c6["M1"].call("PUBLISH", ch, "local") == 1
    assert s_m1.next() == ("*", [b"message", b"news", b"local"])
    assert s_r2.next() == ("*", [b"message", b"news", b"local"])


def test_spublish_reaches_the_shard_only(c6):
    lo, hi = slot_ranges(3)[0]
    ch, slot = channel_in(lo, hi, "orders")
    s_m1 = c6.sub("M1")
    assert s_m1.subscribe("SSUBSCRIBE", ch) == [[b"ssubscribe", ch.encode(), 1]]
    # Replicas of the owner serve SSUBSCRIBE (READONLY here; without it see
    # test_shard_commands_on_a_replica_need_no_readonly).
    s_r1a = c6.sub("R1a", readonly=True)
    assert s_r1a.subscribe("SSUBSCRIBE", ch) == [[b"ssubscribe", ch.encode(), 1]]
    s_r1b = c6.sub("R1b", resp3=True, readonly=True)
    assert s_r1b.subscribe("SSUBSCRIBE", ch) == [[b"ssubscribe", ch.encode(), 1]]

    others = [c6[n] for n in ("M2", "M3", "R2")]
    before = {n.port: info_counter(n, "publishshard_received") for n in c6.nodes}

    assert c6["M1"].call("SPUBLISH", ch, "o1") == 1
    assert s_m1.next() == ("*", [b"smessage", ch.encode(), b"o1"])
    assert s_r1a.next() == ("*", [b"smessage", ch.encode(), b"o1"])
    assert s_r1b.next() == (">", [b"smessage", ch.encode(), b"o1"])

    # Other shards: a PUBLISH sent after the SPUBLISH arrives on the same links, so once
    # they counted it they would have counted a PUBLISHSHARD too.
    publish_barrier(c6["M1"], others)
    for n in others:
        assert info_counter(n, "publishshard_received") == before[n.port], n.name
    for n in (c6["R1a"], c6["R1b"]):
        assert info_counter(n, "publishshard_received") == before[n.port] + 1, n.name

    # SPUBLISH on a replica of the owner: to its master and the other replica.
    assert call_readonly(c6["R1a"], "SPUBLISH", ch, "o2") == 1
    assert s_r1a.next() == ("*", [b"smessage", ch.encode(), b"o2"])
    assert s_m1.next() == ("*", [b"smessage", ch.encode(), b"o2"])
    assert s_r1b.next() == (">", [b"smessage", ch.encode(), b"o2"])
    publish_barrier(c6["R1a"], others)
    for n in others:
        assert info_counter(n, "publishshard_received") == before[n.port], n.name

    # Exactly once.
    assert c6["M1"].call("SPUBLISH", ch, "o3") == 1
    for s, t in ((s_m1, "*"), (s_r1a, "*"), (s_r1b, ">")):
        assert s.next() == (t, [b"smessage", ch.encode(), b"o3"])


def test_spublish_concurrent_with_slot_queries(c6):
    # SPUBLISH holds its channel's slot while CLUSTER COUNTKEYSINSLOT / GETKEYSINSLOT hold
    # the cluster state and read that slot: the two must not wait on each other (a
    # lock-order deadlock shows up as a read timeout; it needs the connections on
    # different worker threads, so one run catches it with some probability).
    lo, hi = slot_ranges(3)[0]
    ch, slot = channel_in(lo, hi, "busy")
    m1 = c6["M1"]
    n = 1000
    pubs = [RespConnection(m1.host, m1.port, timeout=MSG_WAIT) for _ in range(3)]
    qrys = [RespConnection(m1.host, m1.port, timeout=MSG_WAIT) for _ in range(2)]
    try:
        for c in pubs:
            c.send_raw(b"".join(encode_command("SPUBLISH", ch, str(i)) for i in range(n)))
        for i, c in enumerate(qrys):
            verb = "COUNTKEYSINSLOT" if i == 0 else "GETKEYSINSLOT"
            args = (slot,) if i == 0 else (slot, 10)
            c.send_raw(b"".join(encode_command("CLUSTER", verb, *args) for _ in range(n)))
        for c in pubs:
            for _ in range(n):
                assert c.read_reply().to_py() == 0
        for i, c in enumerate(qrys):
            for _ in range(n):
                assert c.read_reply().to_py() == (0 if i == 0 else [])
    finally:
        for c in pubs + qrys:
            c.close()


def test_spublish_on_a_wrong_node_is_moved(c6):
    lo, hi = slot_ranges(3)[0]
    ch, slot = channel_in(lo, hi, "moved")
    want = f"MOVED {slot} 127.0.0.1:{c6['M1'].port}"
    for name in ("M2", "M3", "R2"):
        r = c6[name].call_reply("SPUBLISH", ch, "m")
        assert r.is_error and r.value.decode() == want, (name, r)
        s = c6.sub(name)
        assert s.subscribe("SSUBSCRIBE", ch) == want
        # Still usable, not subscribed.
        assert s.call("PING").to_py() == b"PONG"
    # Plain PUBLISH has no key: accepted anywhere.
    assert c6["M2"].call("PUBLISH", ch, "m") == 0


def test_shard_commands_on_a_replica_need_no_readonly(c6):
    # 7.0 getNodeByQuery: a pubsub-shard command is served by a replica of the slot's
    # master like a READONLY read (`pubsubshard_included`).
    lo, hi = slot_ranges(3)[0]
    ch, slot = channel_in(lo, hi, "noro")
    s = c6.sub("R1a")
    assert s.subscribe("SSUBSCRIBE", ch) == [[b"ssubscribe", ch.encode(), 1]]
    assert c6["R1b"].call("SPUBLISH", ch, "n1") == 0
    assert s.next() == ("*", [b"smessage", ch.encode(), b"n1"])
    # Not on a replica of another master.
    r = c6["R2"].call_reply("SPUBLISH", ch, "n2")
    assert r.is_error and r.value.decode() == f"MOVED {slot} 127.0.0.1:{c6['M1'].port}"


def test_slot_leaving_drops_shard_subscribers(c6):
    lo, hi = slot_ranges(3)[2]
    ch_a, slot_a = channel_in(lo, hi, "leaving")
    ch_b, slot_b = channel_in(lo, hi, "staying")
    while slot_b == slot_a:
        ch_b, slot_b = channel_in(slot_a + 1, hi, "staying")
    s = c6.sub("M3")
    # (one slot per SSUBSCRIBE: several channels must share a slot, like keys)
    assert s.subscribe("SSUBSCRIBE", ch_a) == [[b"ssubscribe", ch_a.encode(), 1]]
    assert s.subscribe("SSUBSCRIBE", ch_b) == [[b"ssubscribe", ch_b.encode(), 2]]
    s2 = c6.sub("M3")
    assert s2.subscribe("SSUBSCRIBE", ch_a) == [[b"ssubscribe", ch_a.encode(), 1]]
    assert s2.call("PING").to_py() == [b"pong", b""], "RESP2 subscribed mode"
    s3 = c6.sub("M3", resp3=True)
    assert s3.subscribe("SSUBSCRIBE", ch_a) == [[b"ssubscribe", ch_a.encode(), 1]]

    m2, m3 = c6["M2"], c6["M3"]
    assert m2.call("CLUSTER", "SETSLOT", slot_a, "IMPORTING", c6.ids["M3"]) == b"OK"
    assert m3.call("CLUSTER", "SETSLOT", slot_a, "MIGRATING", c6.ids["M2"]) == b"OK"
    assert m2.call("CLUSTER", "SETSLOT", slot_a, "NODE", c6.ids["M2"]) == b"OK"
    assert m3.call("CLUSTER", "SETSLOT", slot_a, "NODE", c6.ids["M2"]) == b"OK"

    # Server-initiated unsubscribe, counting the client's remaining shard channels.
    assert s.next() == ("*", [b"sunsubscribe", ch_a.encode(), 1])
    assert s2.next() == ("*", [b"sunsubscribe", ch_a.encode(), 0])
    assert s3.next() == (">", [b"sunsubscribe", ch_a.encode(), 0])
    assert m3.call("PUBSUB", "SHARDNUMSUB", ch_a, ch_b) == [ch_a.encode(), 0, ch_b.encode(), 1]
    assert ch_a.encode() not in m3.call("PUBSUB", "SHARDCHANNELS")

    # The other channel still works, and the client's own view agrees.
    assert m3.call("SPUBLISH", ch_b, "still") == 1
    assert s.next() == ("*", [b"smessage", ch_b.encode(), b"still"])
    assert s.subscribe("SUNSUBSCRIBE", ch_b) == [[b"sunsubscribe", ch_b.encode(), 0]]
    # The RESP2 client lost its only shard channel: out of subscribed mode.
    assert s2.call("PING").to_py() == b"PONG"
    assert s3.call("PING").to_py() == b"PONG"

    # The slot is now served by M2.
    r = m3.call_reply("SPUBLISH", ch_a, "x")
    assert r.is_error and r.value.decode() == f"MOVED {slot_a} 127.0.0.1:{m2.port}"


# ---------------------------------------------------------------------------
# mixed cluster: real redis-server 7.0 and Cinnabar nodes


class Mixed(AllC):
    pass


@pytest.fixture(scope="module")
def mixed():
    m = Mixed()
    try:
        layout = [("RM", "redis"), ("CM", "cinnabar"), ("CR", "cinnabar"), ("RR", "redis")]
        nodes = m.pool.add_block([k for _, k in layout],
                                 extra_for=lambda kind: ['save ""'] if kind == "redis" else [])
        for (name, kind), n in zip(layout, nodes):
            n.name = f"{name}({kind}:{n.port})"
            m.by[name] = n
        ids = form_cluster([m["RM"], m["CM"]], {m["CR"]: m["RM"], m["RR"]: m["CM"]}, timeout=CONVERGE)
        m.ids = {name: ids[n.port] for name, n in m.by.items()}
        wait_links_connected(m.nodes)
        yield m
    finally:
        for s in m.subs:
            s.close()
        m.pool.close()


@pytest.fixture
def mx(request, mixed):
    attach_logs(request, mixed.nodes)
    return mixed


def test_mixed_publish_both_ways(mx):
    subs = {name: mx.sub(name) for name in ("RM", "CM", "CR", "RR")}
    for s in subs.values():
        assert s.subscribe("SUBSCRIBE", "mix") == [[b"subscribe", b"mix", 1]]
    for publisher in ("RM", "CM", "CR", "RR"):
        msg = f"from-{publisher}".encode()
        assert mx[publisher].call("PUBLISH", "mix", msg) == 1
        for name, s in subs.items():
            assert s.next() == ("*", [b"message", b"mix", msg]), (publisher, name)


def test_mixed_spublish_both_ways(mx):
    (lo0, hi0), (lo1, hi1) = slot_ranges(2)
    ch_r, slot_r = channel_in(lo0, hi0, "real")  # served by RM (+ Cinnabar replica CR)
    ch_c, slot_c = channel_in(lo1, hi1, "cinn")  # served by CM (+ real replica RR)

    s_cr = mx.sub("CR", readonly=True)
    assert s_cr.subscribe("SSUBSCRIBE", ch_r) == [[b"ssubscribe", ch_r.encode(), 1]]
    s_rr = mx.sub("RR", readonly=True)
    assert s_rr.subscribe("SSUBSCRIBE", ch_c) == [[b"ssubscribe", ch_c.encode(), 1]]
    before = {n.port: info_counter(n, "publishshard_received") for n in mx.nodes}

    # Real master -> Cinnabar replica; Cinnabar master -> real replica.
    assert mx["RM"].call("SPUBLISH", ch_r, "r1") == 0
    assert s_cr.next() == ("*", [b"smessage", ch_r.encode(), b"r1"])
    assert mx["CM"].call("SPUBLISH", ch_c, "c1") == 0
    assert s_rr.next() == ("*", [b"smessage", ch_c.encode(), b"c1"])
    # Replicas publishing to their masters' shard.
    s_rm = mx.sub("RM")
    assert s_rm.subscribe("SSUBSCRIBE", ch_r) == [[b"ssubscribe", ch_r.encode(), 1]]
    s_cm = mx.sub("CM")
    assert s_cm.subscribe("SSUBSCRIBE", ch_c) == [[b"ssubscribe", ch_c.encode(), 1]]
    assert call_readonly(mx["CR"], "SPUBLISH", ch_r, "r2") == 1
    assert s_rm.next() == ("*", [b"smessage", ch_r.encode(), b"r2"])
    assert s_cr.next() == ("*", [b"smessage", ch_r.encode(), b"r2"])
    assert call_readonly(mx["RR"], "SPUBLISH", ch_c, "c2") == 1
    assert s_cm.next() == ("*", [b"smessage", ch_c.encode(), b"c2"])
    assert s_rr.next() == ("*", [b"smessage", ch_c.encode(), b"c2"])

    # Nothing crossed shards.
    publish_barrier(mx["RM"], [mx["CM"], mx["RR"]])
    publish_barrier(mx["CR"], [mx["CM"], mx["RR"]])
    publish_barrier(mx["CM"], [mx["RM"], mx["CR"]])
    publish_barrier(mx["RR"], [mx["RM"], mx["CR"]])
    for name, got in (("RM", 1), ("CR", 1), ("CM", 1), ("RR", 1)):
        n = mx[name]
        assert info_counter(n, "publishshard_received") == before[n.port] + got, name

    # Wrong shard: MOVED, across kinds.
    r = mx["CM"].call_reply("SPUBLISH", ch_r, "x")
    assert r.is_error and r.value.decode() == f"MOVED {slot_r} 127.0.0.1:{mx['RM'].port}"
    r = mx["RM"].call_reply("SPUBLISH", ch_c, "x")
    assert r.is_error and r.value.decode() == f"MOVED {slot_c} 127.0.0.1:{mx['CM'].port}"
