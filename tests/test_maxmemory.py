# tests/test_maxmemory.py — the memory limit: `maxmemory` with every `maxmemory-policy`.
#
# Each test runs against redis-server 7.0.15 and cinnabar-server. The two servers account
# memory differently (jemalloc size classes vs requested bytes, query buffers), so the tests
# set limits relative to each server's own `used_memory` and check behaviour, not byte
# counts: the exact -OOM / -EXECABORT replies, which commands are refused, which keys are
# evicted (LRU keeps the recently used, volatile-* only touches keys with a TTL, volatile-ttl
# the soonest to expire), that memory stays near the limit, and INFO / OBJECT replies.

from __future__ import annotations

from lib.wait import wait_for

OOM = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
OK = b"+OK\r\n"


def used_memory(c) -> int:
    text = c.call("INFO", "memory").to_py().decode()
    return int(next(ln.split(":", 1)[1] for ln in text.splitlines() if ln.startswith("used_memory:")))


def info_field(c, section: str, field: str) -> str:
    text = c.call("INFO", section).to_py().decode()
    return next(ln.split(":", 1)[1] for ln in text.splitlines() if ln.startswith(field + ":"))


def fill(c, prefix: str, n: int, value: bytes, ex: int | None = None) -> None:
    for i in range(n):
        if ex is None:
            c.send_command("SET", f"{prefix}:{i}", value)
        else:
            c.send_command("SET", f"{prefix}:{i}", value, "EX", str(ex))
    for _ in range(n):
        r = c.read_reply()
        assert r.raw == OK, r.raw


def test_noeviction_refuses_denyoom_commands(server):
    with server.conn() as c:
        assert c.call_raw("CONFIG", "SET", "maxmemory-policy", "noeviction") == OK
        fill(c, "k", 100, b"v" * 100)
        # A limit far below the dataset: every denyoom command is refused, the rest runs.
        assert c.call_raw("CONFIG", "SET", "maxmemory", "1") == OK
        assert c.call_raw("SET", "new", "v") == OOM
        assert c.call_raw("INCR", "counter") == OOM
        assert c.call_raw("LPUSH", "l", "x") == OOM
        assert c.call_raw("GET", "k:1") == b"$100\r\n" + b"v" * 100 + b"\r\n"
        assert c.call_raw("DEL", "k:2") == b":1\r\n"
        assert c.call_raw("EXPIRE", "k:3", "100") == b":1\r\n"
        assert c.call_raw("DBSIZE") == b":99\r\n"
        # In MULTI every queued command is refused (queueing costs memory); EXEC aborts.
        assert c.call_raw("MULTI") == OK
        assert c.call_raw("GET", "k:1") == OOM
        assert c.call_raw("EXEC") == b"-EXECABORT Transaction discarded because of previous errors.\r\n"
        # An empty transaction is fine; DISCARD always is.
        assert c.call_raw("MULTI") == OK
        assert c.call_raw("EXEC") == b"*0\r\n"
        assert c.call_raw("MULTI") == OK
        assert c.call_raw("DISCARD") == OK
        assert info_field(c, "memory", "maxmemory") == "1"
        assert info_field(c, "memory", "maxmemory_human") == "1B"
        assert info_field(c, "memory", "maxmemory_policy") == "noeviction"
        assert info_field(c, "stats", "evicted_keys") == "0"
        # errorstats count the refusals under OOM.
        assert "errorstat_OOM:count=" in c.call("INFO", "errorstats").to_py().decode()
        # Lifting the limit lets writes through again.
        assert c.call_raw("CONFIG", "SET", "maxmemory", "0") == OK
        assert c.call_raw("SET", "new", "v") == OK
        assert c.call_raw("DBSIZE") == b":100\r\n"


def test_exec_with_a_denyoom_command_queued_before_the_limit(server):
    """A transaction queued under the limit but executed over it: EXEC itself is refused
    (its queue holds a denyoom command) with EXECABORT naming the OOM error."""
    with server.conn() as c, server.conn() as admin:
        fill(c, "k", 50, b"v" * 100)
        assert c.call_raw("MULTI") == OK
        assert c.call_raw("SET", "t", "1") == b"+QUEUED\r\n"
        assert admin.call_raw("CONFIG", "SET", "maxmemory", "1") == OK
        assert c.call_raw("EXEC") == (
            b"-EXECABORT Transaction discarded because of: "
            b"OOM command not allowed when used memory > 'maxmemory'.\r\n"
        )
        assert c.call_raw("GET", "t") == b"$-1\r\n"
        # A read-only transaction queued before the limit still runs.
        assert admin.call_raw("CONFIG", "SET", "maxmemory", "0") == OK
        assert c.call_raw("MULTI") == OK
        assert c.call_raw("GET", "k:1") == b"+QUEUED\r\n"
        assert admin.call_raw("CONFIG", "SET", "maxmemory", "1") == OK
        assert c.call_raw("EXEC") == b"*1\r\n$100\r\n" + b"v" * 100 + b"\r\n"
        assert admin.call_raw("CONFIG", "SET", "maxmemory", "0") == OK


def overflow(c, prefix: str, n: int, value: bytes) -> None:
    """Writes n more keys; every write must be accepted (eviction makes room)."""
    for i in range(n):
        r = c.call_raw("SET", f"{prefix}:{i}", value)
        assert r == OK, f"{prefix}:{i}: {r!r}"


def test_allkeys_lru_keeps_recently_used_keys(server):
    value = b"x" * 1000
    with server.conn() as c:
        fill(c, "cold", 1500, value)
        fill(c, "hot", 100, value)
        # The LRU clock has a one-second resolution (both servers): let the cold keys age.
        wait_for(lambda: c.call("OBJECT", "IDLETIME", "cold:0").to_py() >= 2, 10, "cold keys to age")
        for i in range(100):
            assert c.call("GET", f"hot:{i}").to_py() == value
        limit = used_memory(c) + 300_000
        assert c.call_raw("CONFIG", "SET", "maxmemory-policy", "allkeys-lru") == OK
        assert c.call_raw("CONFIG", "SET", "maxmemory", str(limit)) == OK
        overflow(c, "new", 1000, value)  # ~1 MB more than fits
        evicted = int(info_field(c, "stats", "evicted_keys"))
        assert evicted >= 500, evicted
        assert used_memory(c) <= limit + 100_000
        hot_left = sum(c.call("EXISTS", f"hot:{i}").to_py() for i in range(100))
        cold_left = sum(c.call("EXISTS", f"cold:{i}").to_py() for i in range(1500))
        assert hot_left >= 95, f"LRU evicted {100 - hot_left} of 100 recently used keys"
        assert cold_left <= 1500 - 400, cold_left
        assert c.call_raw("CONFIG", "SET", "maxmemory", "0") == OK


def test_allkeys_random_evicts_to_stay_under_the_limit(server):
    value = b"x" * 1000
    with server.conn() as c:
        fill(c, "a", 1000, value)
        limit = used_memory(c) + 200_000
        assert c.call_raw("CONFIG", "SET", "maxmemory-policy", "allkeys-random") == OK
        assert c.call_raw("CONFIG", "SET", "maxmemory", str(limit)) == OK
        overflow(c, "b", 1000, value)
        assert int(info_field(c, "stats", "evicted_keys")) >= 500
        assert used_memory(c) <= limit + 100_000
        assert c.call("DBSIZE").to_py() < 2000
        assert c.call_raw("CONFIG", "SET", "maxmemory", "0") == OK


def test_volatile_policies_only_evict_keys_with_a_ttl(server):
    value = b"x" * 1000
    with server.conn() as c:
        fill(c, "keep", 500, value)
        fill(c, "soon", 300, value, ex=1000)
        fill(c, "late", 300, value, ex=100_000)
        limit = used_memory(c) + 100_000
        assert c.call_raw("CONFIG", "SET", "maxmemory-policy", "volatile-ttl") == OK
        assert c.call_raw("CONFIG", "SET", "maxmemory", str(limit)) == OK
        overflow(c, "new", 250, value)  # needs ~250 evictions: fewer than the 300 "soon" keys
        assert sum(c.call("EXISTS", f"keep:{i}").to_py() for i in range(500)) == 500
        soon_left = sum(c.call("EXISTS", f"soon:{i}").to_py() for i in range(300))
        late_left = sum(c.call("EXISTS", f"late:{i}").to_py() for i in range(300))
        # volatile-ttl takes the soonest to expire first (sampling: most, not all).
        soon_gone, late_gone = 300 - soon_left, 300 - late_left
        assert soon_gone >= 100 and soon_gone >= 3 * late_gone, (soon_gone, late_gone)
        # With nothing volatile left to evict, volatile-random refuses like noeviction.
        assert c.call_raw("CONFIG", "SET", "maxmemory-policy", "volatile-random") == OK
        for p in ("soon", "late"):
            for i in range(300):
                c.call("PERSIST", f"{p}:{i}")
        for i in range(250):
            c.call("PERSIST", f"new:{i}")
        assert c.call_raw("CONFIG", "SET", "maxmemory", "1") == OK
        assert c.call_raw("SET", "x", "y") == OOM
        assert sum(c.call("EXISTS", f"keep:{i}").to_py() for i in range(500)) == 500
        assert c.call_raw("CONFIG", "SET", "maxmemory", "0") == OK


def test_lfu_policy_counts_accesses(server):
    with server.conn() as c:
        assert c.call_raw("SET", "k", "v") == OK
        # OBJECT FREQ needs an LFU policy, OBJECT IDLETIME an LRU one.
        assert c.call_raw("OBJECT", "FREQ", "k").startswith(b"-ERR An LFU maxmemory policy is not selected")
        assert c.call_raw("CONFIG", "SET", "maxmemory-policy", "allkeys-lfu") == OK
        assert c.call_raw("OBJECT", "IDLETIME", "k").startswith(b"-ERR An LFU maxmemory policy is selected")
        assert c.call_raw("SET", "fresh", "v") == OK
        assert c.call("OBJECT", "FREQ", "fresh").to_py() == 5  # LFU_INIT_VAL
        for _ in range(2000):
            c.send_command("GET", "fresh")
        for _ in range(2000):
            c.read_reply()
        freq = c.call("OBJECT", "FREQ", "fresh").to_py()
        # Logarithmic counter (lfu-log-factor 10): ~2,000 hits give about 20.
        assert 10 <= freq <= 40, freq
        # OBJECT FREQ itself does not count as an access.
        assert c.call("OBJECT", "FREQ", "fresh").to_py() == freq
        assert c.call_raw("OBJECT", "FREQ", "missing") == b"$-1\r\n"
        # RESTORE ... FREQ sets the counter.
        dump = c.call("DUMP", "fresh").to_py()
        assert c.call_raw("RESTORE", "copy", "0", dump, "FREQ", "77") == OK
        assert c.call("OBJECT", "FREQ", "copy").to_py() == 77
        assert c.call_raw("CONFIG", "SET", "maxmemory-policy", "noeviction") == OK


def test_allkeys_lfu_keeps_frequently_used_keys(server):
    value = b"x" * 1000
    with server.conn() as c:
        assert c.call_raw("CONFIG", "SET", "maxmemory-policy", "allkeys-lfu") == OK
        fill(c, "rare", 1500, value)
        fill(c, "freq", 100, value)
        for _ in range(20):
            for i in range(100):
                c.send_command("GET", f"freq:{i}")
            for i in range(100):
                c.read_reply()
        limit = used_memory(c) + 300_000
        assert c.call_raw("CONFIG", "SET", "maxmemory", str(limit)) == OK
        overflow(c, "new", 800, value)
        assert int(info_field(c, "stats", "evicted_keys")) >= 400
        freq_left = sum(c.call("EXISTS", f"freq:{i}").to_py() for i in range(100))
        assert freq_left >= 95, f"LFU evicted {100 - freq_left} of 100 frequently used keys"
        assert c.call_raw("CONFIG", "SET", "maxmemory", "0") == OK


def test_evictions_are_notified_and_invalidate_watch(server):
    value = b"x" * 1000
    with server.conn() as c, server.conn() as sub, server.conn() as w:
        assert c.call_raw("CONFIG", "SET", "notify-keyspace-events", "Ee") == OK
        sub.call("SUBSCRIBE", "__keyevent@0__:evicted")
        fill(c, "a", 200, value)
        assert w.call_raw("WATCH", "a:0", "a:1", "a:2", "a:3", "a:4") == OK
        assert c.call_raw("CONFIG", "SET", "maxmemory-policy", "allkeys-random") == OK
        assert c.call_raw("CONFIG", "SET", "maxmemory", "1") == OK
        # Every key goes (allkeys-random with an impossible limit). A round of evictions is
        # time-boxed (maxmemory-eviction-tenacity): if it runs out of time the command goes
        # through and the cron goes on evicting (Redis's eviction time proc) — so `b` may
        # be written, then evicted too. Once nothing is left to free, writes are refused.
        first = c.call_raw("SET", "b", "v")
        assert first in (OK, OOM), first
        wait_for(lambda: c.call_raw("DBSIZE") == b":0\r\n", 10, "every key to be evicted")
        assert c.call_raw("SET", "c", "v") == OOM
        expected = {f"a:{i}".encode() for i in range(200)} | ({b"b"} if first == OK else set())
        assert int(info_field(c, "stats", "evicted_keys")) == len(expected)
        got = set()
        while len(got) < len(expected):
            m = sub.read_reply(timeout=10).to_py()
            assert m[0] == b"message" and m[1] == b"__keyevent@0__:evicted", m
            got.add(m[2])
        assert got == expected
        assert c.call_raw("CONFIG", "SET", "maxmemory", "0") == OK
        assert w.call_raw("MULTI") == OK
        assert w.call_raw("SET", "a:0", "mine") == b"+QUEUED\r\n"
        assert w.call_raw("EXEC") == b"*-1\r\n"  # the watched keys were evicted
