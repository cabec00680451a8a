# tests/test_notifications.py — keyspace notifications (`notify-keyspace-events`) compared
# between redis-server 7.0.15 and cinnabar-server. A subscriber PSUBSCRIBEs `__key*__:*` and a
# writer runs each scenario's commands; after each scenario the writer PUBLISHes a sentinel on a
# channel the pattern does not match, so the subscriber knows that every event of the scenario
# has arrived (Pub/Sub delivery to one client is ordered) — no sleeps. The exact sequence of
# (channel, message) pairs must be the same for both servers.

from __future__ import annotations

import time

import pytest

from lib.wait import wait_for

SENTINEL = "notify-test-sentinel"
PATTERN = "__key*__:*"
RANDOM_REPLIES = {"SPOP"}

# (name, notify-keyspace-events flags, commands). Every scenario starts from an empty keyspace
# (FLUSHALL emits no event). "@wait-expired k" waits (condition + deadline) until the TTL of
# `k` set by the previous commands has certainly passed, without touching the key.
SCENARIOS: list[tuple[str, str, list[list[str]]]] = [
    ("set", "KEA", [["SET", "k", "v"], ["SET", "k", "v2", "EX", "100"], ["SET", "k", "v3", "PX", "100000"],
                    ["SET", "k", "v", "KEEPTTL"], ["SET", "k", "v", "NX"], ["SET", "k", "v", "XX", "GET"],
                    ["SET", "n", "v", "XX"], ["SET", "k", "v", "EXAT", "1"], ["SET", "k2", "v", "PXAT", "99999999999999"]]),
    ("setnx-setex", "KEA", [["SETNX", "a", "1"], ["SETNX", "a", "2"], ["SETEX", "b", "100", "x"],
                            ["PSETEX", "c", "100000", "y"], ["GETSET", "a", "3"], ["GETSET", "z", "3"]]),
    ("mset", "KEA", [["MSET", "a", "1", "b", "2"], ["MSETNX", "c", "1", "d", "2"], ["MSETNX", "c", "1", "e", "2"]]),
    ("getex-getdel", "KEA", [["SET", "a", "1"], ["GETEX", "a", "EX", "100"], ["GETEX", "a", "PERSIST"],
                             ["GETEX", "a"], ["GETEX", "a", "PXAT", "1"], ["SET", "b", "1"], ["GETDEL", "b"],
                             ["GETDEL", "b"]]),
    ("incr", "KEA", [["INCR", "i"], ["INCRBY", "i", "5"], ["DECR", "i"], ["DECRBY", "i", "2"],
                     ["INCRBYFLOAT", "f", "1.5"], ["INCR", "f"], ["SET", "s", "abc"], ["INCR", "s"]]),
    ("append-setrange", "KEA", [["APPEND", "a", "x"], ["APPEND", "a", "y"], ["SETRANGE", "b", "2", "zz"],
                                ["SETRANGE", "b", "0", ""], ["SETRANGE", "c", "0", ""]]),
    ("bits", "KEA", [["SETBIT", "b", "7", "1"], ["SETBIT", "b", "7", "1"], ["SET", "x", "ab"],
                     ["BITOP", "AND", "d", "b", "x"], ["BITOP", "OR", "d", "nx1", "nx2"],
                     ["BITFIELD", "bf", "SET", "u8", "0", "255"], ["BITFIELD", "bf", "GET", "u8", "0"],
                     ["BITFIELD", "bf", "INCRBY", "u8", "0", "1", "GET", "u4", "0"], ["BITFIELD_RO", "bf", "GET", "u8", "0"]]),
    ("del-unlink", "KEA", [["MSET", "a", "1", "b", "2", "c", "3"], ["DEL", "a", "b", "nx"], ["UNLINK", "c", "nx"],
                           ["DEL", "nx"]]),
    ("rename", "KEA", [["SET", "a", "1"], ["RENAME", "a", "b"], ["SET", "c", "1"], ["RENAME", "b", "c"],
                       ["RENAMENX", "c", "d"], ["SET", "e", "1"], ["RENAMENX", "d", "e"], ["RENAME", "d", "d"]]),
    ("copy-move", "KEA", [["SET", "a", "1"], ["COPY", "a", "b"], ["COPY", "a", "b"], ["COPY", "a", "b", "REPLACE"],
                          ["COPY", "a", "c", "DB", "1"], ["MOVE", "a", "2"], ["SET", "d", "1"], ["MOVE", "d", "2"],
                          ["SELECT", "2"], ["DEL", "a", "d"], ["SELECT", "0"]]),
    ("expire", "KEA", [["SET", "a", "1"], ["EXPIRE", "a", "100"], ["PEXPIRE", "a", "100000"],
                       ["EXPIREAT", "a", "99999999999"], ["PEXPIREAT", "a", "99999999999999"],
                       ["EXPIRE", "a", "100", "NX"], ["EXPIRE", "a", "200", "GT"], ["PERSIST", "a"], ["PERSIST", "a"],
                       ["EXPIRE", "nx", "100"], ["EXPIRE", "a", "-1"], ["SET", "b", "1"], ["PEXPIREAT", "b", "1"],
                       ["SET", "c", "1"], ["EXPIRE", "c", "0"]]),
    ("lazy-expire", "KEA", [["DEBUG", "SET-ACTIVE-EXPIRE", "0"], ["SET", "a", "1", "PX", "1"],
                            ["SET", "b", "1", "PX", "1"], ["SET", "c", "1", "PX", "1"], ["@wait-expired"],
                            ["GET", "a"], ["SET", "b", "2"], ["LPUSH", "c", "x"],
                            ["DEBUG", "SET-ACTIVE-EXPIRE", "1"]]),
    ("lazy-expire-new", "KEAn", [["DEBUG", "SET-ACTIVE-EXPIRE", "0"], ["SET", "b", "1", "PX", "1"],
                                 ["@wait-expired"], ["SET", "b", "2"], ["DEBUG", "SET-ACTIVE-EXPIRE", "1"]]),
    ("lists", "KEA", [["LPUSH", "l", "a", "b"], ["RPUSH", "l", "c"], ["LPUSHX", "l", "d"], ["RPUSHX", "l", "e"],
                      ["LPUSHX", "nx", "d"], ["LINSERT", "l", "BEFORE", "a", "z"], ["LINSERT", "l", "BEFORE", "q", "z"],
                      ["LSET", "l", "0", "w"], ["LREM", "l", "0", "z"], ["LREM", "l", "0", "nope"],
                      ["LTRIM", "l", "0", "2"], ["LPOP", "l"], ["RPOP", "l", "1"], ["LPOP", "l", "5"], ["LPOP", "l"],
                      ["RPUSH", "m", "1", "2"], ["LTRIM", "m", "5", "10"]]),
    ("lmove", "KEA", [["RPUSH", "s", "1", "2", "3"], ["LMOVE", "s", "d", "LEFT", "RIGHT"],
                      ["LMOVE", "s", "d", "RIGHT", "LEFT"], ["RPOPLPUSH", "s", "d"], ["LMOVE", "d", "d", "LEFT", "LEFT"],
                      ["LMPOP", "2", "nx", "d", "LEFT", "COUNT", "2"], ["LMPOP", "1", "d", "RIGHT", "COUNT", "9"]]),
    ("blocking-lists", "KEA", [["RPUSH", "s", "1", "2"], ["BLPOP", "s", "1"], ["BRPOP", "s", "1"],
                               ["RPUSH", "s", "1"], ["BLMOVE", "s", "d", "LEFT", "LEFT", "1"],
                               ["BRPOPLPUSH", "d", "e", "1"], ["BLMPOP", "1", "1", "e", "LEFT"]]),
    ("hashes", "KEA", [["HSET", "h", "a", "1", "b", "2"], ["HSET", "h", "a", "1"], ["HMSET", "h", "c", "3"],
                       ["HSETNX", "h", "a", "x"], ["HSETNX", "h", "d", "x"], ["HINCRBY", "h", "n", "2"],
                       ["HINCRBYFLOAT", "h", "f", "1.5"], ["HDEL", "h", "a", "zz"], ["HDEL", "h", "zz"],
                       ["HDEL", "h", "b", "c", "d", "n", "f"]]),
    ("sets", "KEA", [["SADD", "s", "a", "b", "c"], ["SADD", "s", "a"], ["SREM", "s", "a", "zz"], ["SREM", "s", "zz"],
                     ["SADD", "t", "b", "x"], ["SMOVE", "s", "t", "b"], ["SMOVE", "s", "u", "c"], ["SMOVE", "t", "t", "x"],
                     ["SPOP", "t"], ["SADD", "p", "1", "2", "3"], ["SPOP", "p", "2"], ["SPOP", "p", "5"],
                     ["SADD", "q", "1", "2", "3"], ["SPOP", "q", "0"]]),
    ("set-stores", "KEA", [["SADD", "a", "1", "2", "3"], ["SADD", "b", "2", "3", "4"],
                           ["SINTERSTORE", "d", "a", "b"], ["SUNIONSTORE", "d", "a", "b"], ["SDIFFSTORE", "d", "a", "b"],
                           ["SINTERSTORE", "d", "a", "nx"], ["SINTERSTORE", "d", "a", "nx"], ["SDIFFSTORE", "e", "a", "a"]]),
    ("zsets", "KEA", [["ZADD", "z", "1", "a", "2", "b", "3", "c"], ["ZADD", "z", "1", "a"], ["ZADD", "z", "5", "a"],
                      ["ZADD", "z", "INCR", "1", "a"], ["ZADD", "z", "NX", "1", "a"], ["ZINCRBY", "z", "2", "b"],
                      ["ZREM", "z", "a", "zz"], ["ZREM", "z", "zz"], ["ZADD", "z", "0", "m", "0", "n", "0", "o"],
                      ["ZADD", "x", "0", "m", "0", "n"], ["ZREMRANGEBYLEX", "x", "[m", "[n"], ["ZREMRANGEBYLEX", "x", "[m", "[n"], ["ZREMRANGEBYSCORE", "z", "0", "0"],
                      ["ZREMRANGEBYRANK", "z", "0", "0"], ["ZREMRANGEBYRANK", "z", "5", "9"],
                      ["ZADD", "y", "1", "a", "2", "b", "3", "c"], ["ZPOPMIN", "y"], ["ZPOPMAX", "y", "5"], ["ZPOPMIN", "y"],
                      ["ZADD", "y", "1", "a", "2", "b"], ["ZMPOP", "1", "y", "MIN", "COUNT", "1"],
                      ["ZMPOP", "1", "y", "MAX", "COUNT", "5"], ["ZREMRANGEBYSCORE", "z", "-inf", "+inf"]]),
    ("zset-blocking", "KEA", [["ZADD", "y", "1", "a", "2", "b", "3", "c"], ["BZPOPMIN", "y", "1"], ["BZPOPMAX", "y", "1"],
                              ["BZMPOP", "1", "1", "y", "MIN"]]),
    ("zset-stores", "KEA", [["ZADD", "a", "1", "x", "2", "y"], ["ZADD", "b", "3", "y", "4", "w"],
                            ["ZUNIONSTORE", "d", "2", "a", "b"], ["ZINTERSTORE", "d", "2", "a", "b"],
                            ["ZDIFFSTORE", "d", "2", "a", "b"], ["ZINTERSTORE", "d", "2", "a", "nx"],
                            ["ZINTERSTORE", "d", "2", "a", "nx"], ["ZRANGESTORE", "r", "a", "0", "-1"],
                            ["ZRANGESTORE", "r", "a", "5", "9"], ["ZRANGESTORE", "r", "a", "5", "9"]]),
    ("sort-store", "KEA", [["RPUSH", "l", "3", "1", "2"], ["SORT", "l", "STORE", "d"], ["SORT", "nx", "STORE", "d"],
                           ["SORT", "nx", "STORE", "d"], ["SORT", "l"]]),
    ("flush", "KEA", [["SET", "a", "1"], ["FLUSHDB"], ["SET", "a", "1"], ["FLUSHALL"]]),
    ("new-keys", "KEAn", [["SET", "a", "1"], ["SET", "a", "2"], ["LPUSH", "l", "x"], ["LPUSH", "l", "y"],
                          ["HSET", "h", "f", "v"], ["SADD", "s", "m"], ["ZADD", "z", "1", "m"], ["INCR", "i"],
                          ["APPEND", "ap", "x"], ["SETBIT", "b", "1", "1"], ["RENAME", "a", "r"], ["COPY", "r", "c"],
                          ["MOVE", "c", "1"], ["SINTERSTORE", "st", "s", "s"], ["SORT", "l", "STORE", "so"],
                          ["LMOVE", "l", "l2", "LEFT", "LEFT"], ["SMOVE", "s", "s2", "m"], ["MSET", "m1", "1", "m2", "2"],
                          ["ZUNIONSTORE", "zu", "1", "z"], ["BITOP", "NOT", "bo", "b"], ["HINCRBY", "h2", "f", "1"],
                          ["SETRANGE", "sr", "1", "x"], ["GETSET", "gs", "1"], ["SETEX", "se", "100", "1"],
                          ["SELECT", "1"], ["DEL", "c"], ["SELECT", "0"]]),
    ("keymiss", "KEm", [["GET", "nx"], ["SET", "a", "1"], ["GET", "a"], ["MGET", "a", "nx1", "nx2"], ["STRLEN", "nx"],
                        ["LRANGE", "nx", "0", "-1"], ["LLEN", "nx"], ["HGET", "nx", "f"], ["HGETALL", "nx"],
                        ["SMEMBERS", "nx"], ["SISMEMBER", "nx", "m"], ["ZSCORE", "nx", "m"], ["ZRANGE", "nx", "0", "-1"],
                        ["EXISTS", "nx"], ["TYPE", "nx"], ["TTL", "nx"], ["GETRANGE", "nx", "0", "1"],
                        ["SUNION", "nx", "a2"], ["INCR", "nx"], ["GETBIT", "nx", "1"]]),
    ("classes", "Kg", [["SET", "a", "1"], ["DEL", "a"], ["LPUSH", "l", "x"], ["EXPIRE", "l", "100"]]),
    ("classes-ev", "E$", [["SET", "a", "1"], ["DEL", "a"], ["LPUSH", "l", "x"], ["APPEND", "a", "x"]]),
    ("multi", "KEA", [["MULTI"], ["SET", "a", "1"], ["LPUSH", "l", "1"], ["EXEC"]]),
]


def read_events(sub, timeout: float = 10.0) -> list[tuple[str, bytes, bytes]]:
    """Events up to (excluding) the sentinel message."""
    events = []
    while True:
        r = sub.read_reply(timeout).to_py()
        if r[0] == b"message" and r[1] == SENTINEL.encode():
            return events
        assert r[0] == b"pmessage", r
        events.append((r[2].decode(), r[3]))


def wait_past(ms: int) -> None:
    deadline = time.time() * 1000 + ms
    wait_for(lambda: time.time() * 1000 > deadline, 5, "TTL passed")


def run_scenarios(server) -> dict[str, list]:
    out = {}
    with server.conn() as sub, server.conn() as w:
        assert sub.call("PSUBSCRIBE", PATTERN).to_py()[0] == b"psubscribe"
        assert sub.call("SUBSCRIBE", SENTINEL).to_py()[0] == b"subscribe"
        for name, flags, cmds in SCENARIOS:
            w.call("CONFIG", "SET", "notify-keyspace-events", "")
            w.call("FLUSHALL")
            w.call("CONFIG", "SET", "notify-keyspace-events", flags)
            replies = []
            for c in cmds:
                if c[0] == "@wait-expired":
                    wait_past(5)
                    continue
                raw = w.call(*c).raw
                # Random replies (SPOP) are not compared; their events are.
                replies.append(None if c[0] in RANDOM_REPLIES else raw)
            w.call("PUBLISH", SENTINEL, name)
            out[name] = (read_events(sub), replies)
    return out


def test_keyspace_events_match_redis(make_server):
    # DEBUG must be allowed: the lazy-expire scenarios switch active expiry off with DEBUG
    # SET-ACTIVE-EXPIRE 0. Without it both servers refused DEBUG (same reply), active expiry
    # stayed on, and whether a 1 ms key went by the cron cycle or by the next command was a
    # race on either server.
    debug = [("enable-debug-command", ["local"])]
    redis, cinnabar = make_server("redis", debug), make_server("cinnabar", debug)
    want = run_scenarios(redis)
    got = run_scenarios(cinnabar)
    for name, _, cmds in SCENARIOS:
        if ["DEBUG", "SET-ACTIVE-EXPIRE", "0"] in cmds:
            i = cmds.index(["DEBUG", "SET-ACTIVE-EXPIRE", "0"])
            assert want[name][1][i] == b"+OK\r\n", f"scenario {name}: DEBUG refused"
        assert got[name][1] == want[name][1], f"scenario {name}: replies differ"
        assert got[name][0] == want[name][0], f"scenario {name}: events differ"


def test_active_expiry_event(server):
    with server.conn() as sub, server.conn() as w:
        w.call("CONFIG", "SET", "notify-keyspace-events", "Ex")
        sub.call("PSUBSCRIBE", PATTERN)
        sub.call("SUBSCRIBE", SENTINEL)
        w.call("SET", "a", "1", "PX", "20")
        w.call("SET", "b", "1")
        # Never read the key: only the active expiry cycle can delete it.
        r = sub.read_reply(10).to_py()
        assert r == [b"pmessage", PATTERN.encode(), b"__keyevent@0__:expired", b"a"]
        w.call("DBSIZE")
        w.call("PUBLISH", SENTINEL, "x")
        assert read_events(sub) == []


def test_resp3_push_form(server):
    with server.conn() as sub, server.conn() as w:
        assert sub.call("HELLO", "3").type == "%"
        assert sub.call("SUBSCRIBE", "__keyevent@0__:set").type == ">"
        w.call("CONFIG", "SET", "notify-keyspace-events", "E$")
        w.call("SET", "k", "v")
        r = sub.read_reply(10)
        assert r.raw == b">3\r\n$7\r\nmessage\r\n$18\r\n__keyevent@0__:set\r\n$1\r\nk\r\n"


@pytest.mark.parametrize("value,expect", [("KEA", b"AKE"), ("gnm", b"gnm"), ("", b""), ("Kx$", b"$xK")])
def test_config_roundtrip(server, value, expect):
    with server.conn() as c:
        assert c.call("CONFIG", "SET", "notify-keyspace-events", value).raw == b"+OK\r\n"
        assert c.call("CONFIG", "GET", "notify-keyspace-events").to_py() == [b"notify-keyspace-events", expect]
        assert c.call("CONFIG", "SET", "notify-keyspace-events", "Q").is_error
