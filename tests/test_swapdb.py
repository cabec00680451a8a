# tests/test_swapdb.py — SWAPDB beyond what a transcript can show, on redis-server and
# cinnabar-server alike:
#   * a client blocked in BLPOP on db 1 is served when SWAPDB brings a list into db 1;
#   * the keys= / expires= counters of INFO keyspace follow the swapped data;
#   * a redis-server replica of a Cinnabar master ends with the same data after SWAPDBs
#     (plain, inside MULTI, and writes around them).

from __future__ import annotations

import pytest

from lib.wait import wait_for
from test_replication import assert_same, caught_up, info, link_up, pipeline, populate


def blocked_clients(conn) -> int:
    return int(info(conn, "clients")["blocked_clients"])


def keyspace(conn) -> dict[str, tuple[int, int]]:
    out = {}
    for db, fields in info(conn, "keyspace").items():
        kv = dict(f.split("=") for f in fields.split(","))
        out[db] = (int(kv["keys"]), int(kv["expires"]))
    return out


def test_blpop_served_by_swapdb(server):
    waiter = server.conn(timeout=10)
    assert waiter.call("SELECT", "1").to_py() == b"OK"
    waiter.send_command("BLPOP", "l", "5")
    c = server.conn()
    wait_for(lambda: blocked_clients(c) == 1, 10, "the BLPOP client to block")
    # A list in db 0 does not wake a client blocked on db 1 ...
    assert c.call("RPUSH", "l", "a", "b").to_py() == 2
    assert blocked_clients(c) == 1
    # ... until SWAPDB moves it there.
    assert c.call("SWAPDB", "0", "1").to_py() == b"OK"
    assert waiter.read_reply().to_py() == [b"l", b"a"]
    assert c.call("EXISTS", "l").to_py() == 0
    assert c.call("SELECT", "1").to_py() == b"OK"
    assert c.call("LRANGE", "l", "0", "-1").to_py() == [b"b"]
    assert blocked_clients(c) == 0


def test_blocked_on_missing_key_stays_blocked(server):
    waiter = server.conn(timeout=10)
    waiter.send_command("BLPOP", "nothing", "0")
    c = server.conn()
    wait_for(lambda: blocked_clients(c) == 1, 10, "the BLPOP client to block")
    assert c.call("SELECT", "4").to_py() == b"OK"
    assert c.call("SET", "other", "1").to_py() == b"OK"
    assert c.call("SWAPDB", "0", "4").to_py() == b"OK"
    assert blocked_clients(c) == 1
    assert c.call("SELECT", "0").to_py() == b"OK"
    assert c.call("RPUSH", "nothing", "x").to_py() == 1
    assert waiter.read_reply().to_py() == [b"nothing", b"x"]


def test_keyspace_counters_follow_the_swap(server):
    c = server.conn()
    pipeline(c, [("SET", f"p{i}", "v") for i in range(50)]
             + [("SET", f"t{i}", "v", "EX", "1000") for i in range(20)]
             + [("SELECT", "2")]
             + [("SET", f"q{i}", "v") for i in range(7)]
             + [("SET", f"u{i}", "v", "PX", "900000") for i in range(3)]
             + [("SELECT", "0")])
    assert keyspace(c) == {"db0": (70, 20), "db2": (10, 3)}
    assert c.call("SWAPDB", "2", "0").to_py() == b"OK"
    assert keyspace(c) == {"db0": (10, 3), "db2": (70, 20)}
    assert c.call("DBSIZE").to_py() == 10
    assert c.call("SWAPDB", "0", "11").to_py() == b"OK"
    assert keyspace(c) == {"db11": (10, 3), "db2": (70, 20)}
    assert c.call("DBSIZE").to_py() == 0
    # Counters keep working after the swap: deletes, expiry changes, new keys.
    assert c.call("SELECT", "2").to_py() == b"OK"
    assert c.call("DEL", "p1", "t1").to_py() == 2
    assert c.call("PERSIST", "t2").to_py() == 1
    assert c.call("SET", "new", "x", "EX", "100").to_py() == b"OK"
    assert keyspace(c) == {"db11": (10, 3), "db2": (69, 19)}
    assert c.call("FLUSHALL").to_py() == b"OK"
    assert keyspace(c) == {}


def test_redis_replica_of_cinnabar_master_after_swapdb(make_server):
    master = make_server("cinnabar")
    mc = master.conn()
    populate(mc, n=600)
    replica = make_server("redis", [("replicaof", ["127.0.0.1", str(master.port)])])
    rc = replica.conn()
    wait_for(link_up(rc), 20, "the redis-server replica's link to come up")
    wait_for(caught_up(mc, rc), 10, "the redis-server replica to catch up after the full sync")
    before = assert_same(mc, rc)
    pipeline(mc, [
        ("SWAPDB", "0", "3"),
        ("SET", "after-swap", "in-db0"),
        ("SELECT", "3"),
        ("INCR", "k1"),
        ("SET", "db3-new", "v", "EX", "500"),
        ("SELECT", "0"),
        ("MULTI",),
        ("SWAPDB", "3", "5"),
        ("SET", "in-multi", "1"),
        ("SWAPDB", "5", "3"),
        ("EXEC",),
        ("SWAPDB", "0", "0"),
    ])
    assert mc.call("WAIT", "1", "5000").to_py() == 1
    wait_for(caught_up(mc, rc), 10, "the redis-server replica to apply the SWAPDBs")
    assert assert_same(mc, rc) == before + 3
    for conn in (mc, rc):
        assert conn.call("SELECT", "3").to_py() == b"OK"
        assert conn.call("GET", "k1").to_py() == b"1001"
        assert conn.call("SELECT", "0").to_py() == b"OK"
        assert conn.call("GET", "after-swap").to_py() == b"in-db0"
    assert keyspace(mc) == keyspace(rc)
