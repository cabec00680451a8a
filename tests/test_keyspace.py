# tests/test_keyspace.py — owned by the test harness (tests/, .ci/, scripts/).
#
# Keyspace behaviour that transcripts cannot compare byte for byte because the
# order or timing is implementation-defined: full SCAN iterations (every key
# returned, MATCH / TYPE / COUNT honoured, termination), KEYS on big keyspaces,
# RANDOMKEY, active expiry (keys vanish without being touched) and lazy
# expiry. Run on both servers (ids [redis] / [cinnabar]).

from __future__ import annotations

import pytest

from lib.wait import wait_for

N = 2000


def _fill(c, n=N, prefix="key"):
    args = ["MSET"]
    for i in range(n):
        args += [f"{prefix}:{i}", str(i)]
    assert c.call_raw(*args) == b"+OK\r\n"


def _scan_all(c, *opts, max_calls=100_000):
    seen, cursor, calls = [], b"0", 0
    while True:
        r = c.call("SCAN", cursor, *opts).to_py()
        assert isinstance(r, list) and len(r) == 2, r
        cursor, keys = r
        seen.extend(keys)
        calls += 1
        assert calls < max_calls, "SCAN did not terminate"
        if cursor == b"0":
            return seen, calls


@pytest.mark.parametrize("count", [None, 1, 10, 100, 10_000])
def test_scan_full_iteration(server, count):
    with server.conn() as c:
        _fill(c)
        opts = [] if count is None else ["COUNT", count]
        seen, calls = _scan_all(c, *opts)
        assert set(seen) == {f"key:{i}".encode() for i in range(N)}
        # duplicates are allowed by the SCAN contract, but not wildly many
        assert len(seen) < 2 * N
        if count == 10_000:
            assert calls <= 3


def test_scan_match_and_type(server):
    with server.conn() as c:
        _fill(c, 500, "a")
        _fill(c, 500, "b")
        seen, _ = _scan_all(c, "MATCH", "a:1*", "COUNT", 50)
        assert set(seen) == {f"a:{i}".encode() for i in range(500) if str(i).startswith("1")}
        seen, _ = _scan_all(c, "MATCH", "*", "TYPE", "string", "COUNT", 1000)
        assert len(set(seen)) == 1000
        seen, _ = _scan_all(c, "TYPE", "list")
        assert seen == []
        seen, _ = _scan_all(c, "MATCH", "nomatch*")
        assert seen == []


def test_scan_guarantee_under_concurrent_writes(server):
    """Keys present for the whole iteration must be returned."""
    with server.conn() as c, server.conn() as w:
        _fill(c, 1000, "stable")
        cursor, seen, step = b"0", set(), 0
        while True:
            cursor, keys = c.call("SCAN", cursor, "COUNT", 20).to_py()
            seen.update(keys)
            # grow (forcing rehash) and shrink the keyspace while iterating
            w.call_raw("MSET", *sum(([f"churn:{step}:{j}", "x"] for j in range(50)), []))
            if step % 3 == 0:
                w.call_raw("DEL", *[f"churn:{step - 3}:{j}" for j in range(50)])
            step += 1
            if cursor == b"0":
                break
            assert step < 10_000
        assert {f"stable:{i}".encode() for i in range(1000)} <= seen


@pytest.mark.parametrize("cmd,add", [("ZSCAN", "ZADD"), ("SSCAN", "SADD"), ("HSCAN", "HSET")])
def test_collection_scan_is_incremental_and_complete(server, cmd, add):
    """A large (hashtable / skiplist encoded) collection is scanned in steps (COUNT 10 gives
    a partial reply with a cursor), and every member present throughout is returned while
    members come and go between the calls."""
    def pair(i):
        return [str(i), f"m{i}"] if add == "ZADD" else ([f"m{i}", "v"] if add == "HSET" else [f"m{i}"])

    with server.conn() as c, server.conn() as w:
        for lo in range(0, 1000, 250):
            c.call_raw(add, "k", *sum((pair(i) for i in range(lo, lo + 250)), []))
        cursor, first = c.call(cmd, "k", "0", "COUNT", "10").to_py()
        assert cursor != b"0" and 0 < len(first) < 200, (cursor, len(first))
        cursor, seen, step = b"0", set(), 0
        while True:
            cursor, items = c.call(cmd, "k", cursor, "COUNT", "20").to_py()
            members = items if cmd == "SSCAN" else items[::2]
            seen.update(members)
            w.call_raw(add, "k", *sum((pair(2000 + step * 10 + j) for j in range(10)), []))
            w.call_raw("ZREM" if add == "ZADD" else ("HDEL" if add == "HSET" else "SREM"), "k",
                       *[f"m{2000 + (step - 2) * 10 + j}" for j in range(10)])
            step += 1
            if cursor == b"0":
                break
            assert step < 10_000
        assert {f"m{i}".encode() for i in range(1000)} <= seen


def test_keys_big_keyspace(server):
    with server.conn() as c:
        _fill(c)
        assert sorted(c.call("KEYS", "*").to_py()) == sorted(f"key:{i}".encode() for i in range(N))
        assert sorted(c.call("KEYS", "key:1?").to_py()) == sorted(f"key:{i}".encode() for i in range(10, 20))
        assert c.call_raw("DBSIZE") == b":%d\r\n" % N


def test_randomkey_returns_existing_keys(server):
    with server.conn() as c:
        _fill(c, 50)
        keys = {f"key:{i}".encode() for i in range(50)}
        got = {c.call("RANDOMKEY").value for _ in range(300)}
        assert got <= keys
        assert len(got) > 1, "RANDOMKEY always returned the same key"


def test_active_expiry_removes_untouched_keys(server):
    with server.conn() as c:
        _fill(c, 200, "tmp")
        _fill(c, 10, "keep")
        for i in range(200):
            c.send_command("PEXPIRE", f"tmp:{i}", 1)
        for _ in range(200):
            assert c.read_raw() == b":1\r\n"
        # No key is touched: only active expiry can bring DBSIZE down.
        wait_for(lambda: c.call_raw("DBSIZE") == b":10\r\n", 15, "active expiry to delete 200 keys")
        info = c.call("INFO", "keyspace").value
        assert b"db0:keys=10,expires=0" in info


def test_lazy_expiry_on_access(server):
    with server.conn() as c:
        assert c.call_raw("SET", "k", "v", "PX", 1) == b"+OK\r\n"
        wait_for(lambda: c.call_raw("GET", "k") == b"$-1\r\n", 10, "k to expire")
        assert c.call_raw("EXISTS", "k") == b":0\r\n"
        assert c.call_raw("TTL", "k") == b":-2\r\n"


def test_flushall_many_keys(server):
    with server.conn() as c:
        _fill(c, 20_000)
        for db in (1, 2):
            c.call_raw("SELECT", db)
            _fill(c, 100)
        c.call_raw("SELECT", 0)
        assert c.call_raw("FLUSHALL") == b"+OK\r\n"
        for db in (0, 1, 2):
            c.call_raw("SELECT", db)
            assert c.call_raw("DBSIZE") == b":0\r\n"
