# tests/test_scripting.py — Lua scripting beyond the reply transcripts
# (tests/transcripts/scripting_*.txt compare replies with redis-server 7.0 byte for byte):
#   * effects replication: a redis-server 7.0 replica of a Cinnabar master applies what
#     scripts wrote (the script itself is never propagated), including relative expiries,
#     SPOP, MULTI + EVAL, and redis.set_repl(redis.REPL_NONE);
#   * the AOF holds script effects: a restart loads the same data;
#   * atomicity across worker threads: concurrent read-modify-write scripts lose no update,
#     also when they reach undeclared keys in other slots while MSETs run;
#   * SCRIPT KILL stops a read-only busy script from another connection.

from __future__ import annotations

import threading

import pytest

from lib.resp import RespConnection
from lib.wait import wait_for
from test_persistence import servers  # noqa: F401 - fixture
from test_replication import assert_same, caught_up, info, link_up

COUNTER = "local v = tonumber(redis.call('GET', KEYS[1]) or '0'); redis.call('SET', KEYS[1], v + 1); return v + 1"


def test_script_effects_replicate_to_a_redis_replica(make_server):
    master = make_server("cinnabar")
    replica = make_server("redis", [("replicaof", ["127.0.0.1", str(master.port)])])
    mc, rc = master.conn(), replica.conn()
    wait_for(link_up(rc), 20, "the redis-server replica's link to come up")
    for i in range(100):
        r = mc.call("EVAL", COUNTER, "1", f"cnt{i % 10}")
        assert not r.is_error, r.raw
    body = ("redis.call('SADD', KEYS[1], 'a', 'b', 'c', 'd'); local m = redis.call('SPOP', KEYS[1]); "
            "redis.call('SET', KEYS[2], m, 'EX', 1000); redis.call('EXPIRE', KEYS[1], 500); "
            "redis.call('RPUSH', KEYS[3], 1, 2, 3); redis.call('LPOP', KEYS[3]); return m")
    popped = mc.call("EVAL", body, "3", "set", "popped", "list").to_py()
    assert popped in (b"a", b"b", b"c", b"d")
    # A transaction holding a script: effects in order, one MULTI/EXEC.
    mc.call("MULTI")
    mc.call("SET", "tx", "1")
    mc.call("EVAL", "return redis.call('INCRBY', KEYS[1], 10)", "1", "tx")
    mc.call("APPEND", "tx", "x")
    assert mc.call("EXEC").to_py() == [b"OK", 11, 3]
    # REPL_NONE: the write stays on the master.
    assert mc.call("EVAL", "redis.set_repl(redis.REPL_NONE); redis.call('SET', KEYS[1], 'local'); "
                   "redis.set_repl(redis.REPL_ALL); redis.call('SET', KEYS[2], 'everywhere')",
                   "2", "only-master", "both").is_error is False
    assert mc.call("WAIT", "1", "5000").to_py() == 1
    wait_for(caught_up(mc, rc), 10, "the replica to apply the script effects")
    assert rc.call("GET", "only-master").to_py() is None
    assert mc.call("GET", "only-master").to_py() == b"local"
    mc.call("DEL", "only-master")
    assert mc.call("WAIT", "1", "5000").to_py() == 1
    wait_for(caught_up(mc, rc), 10, "the replica to apply the DEL")
    assert_same(mc, rc)
    assert rc.call("GET", "popped").to_py() == popped
    assert 900 < rc.call("TTL", "popped").to_py() <= 1000
    assert rc.call("SCARD", "set").to_py() == 3
    assert rc.call("GET", "tx").to_py() == b"11x"
    assert rc.call("GET", "cnt3").to_py() == b"10"
    sha = mc.call("SCRIPT", "LOAD", COUNTER).to_py()
    assert rc.call("SCRIPT", "EXISTS", sha).to_py() == [0], "the script reached the replica"
    assert info(mc, "stats")["total_commands_processed"]


@pytest.mark.parametrize("kind", ["redis", "cinnabar"])
def test_script_effects_survive_an_aof_restart(servers, kind):
    s = servers.new(kind, {"appendonly": "yes"})
    s.start()
    with s.conn() as c:
        for i in range(50):
            assert not c.call("EVAL", COUNTER, "1", f"c{i % 5}").is_error
        c.call("EVAL", "redis.call('HSET', KEYS[1], 'f', ARGV[1]); redis.call('PEXPIRE', KEYS[1], 600000)",
               "1", "h", "v1")
    s.stop()
    s.start()
    with s.conn() as c:
        assert {k: c.call("GET", k).to_py() for k in ("c0", "c1", "c4")} == {
            "c0": b"10", "c1": b"10", "c4": b"10"}
        assert c.call("HGET", "h", "f").to_py() == b"v1"
        assert 500_000 < c.call("PTTL", "h").to_py() <= 600_000
        assert c.call("SCRIPT", "EXISTS", "a" * 40).to_py() == [0]


def test_concurrent_scripts_lose_no_update(make_server):
    s = make_server("cinnabar")
    n_threads, per_thread = 6, 150
    # KEYS[1] is declared; the script also reaches two undeclared keys in other slots.
    body = ("local v = tonumber(redis.call('GET', KEYS[1]) or '0'); redis.call('SET', KEYS[1], v + 1); "
            "local w = tonumber(redis.call('GET', 'undeclared:a') or '0'); redis.call('SET', 'undeclared:a', w + 1); "
            "redis.call('INCR', 'undeclared:zz'); return v + 1")
    errors: list[str] = []

    def worker(idx: int):
        try:
            with s.conn() as c:
                for _ in range(per_thread):
                    r = c.call("EVAL", body, "1", "shared")
                    if r.is_error:
                        errors.append(r.raw.decode(errors="replace"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    def mset_noise():
        with s.conn() as c:
            for i in range(300):
                c.call("MSET", f"noise{i}", "1", "unrelated", str(i))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    threads.append(threading.Thread(target=mset_noise))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a script client hung"
    assert not errors, errors[:5]
    c = s.conn()
    total = n_threads * per_thread
    assert c.call("GET", "shared").to_py() == str(total).encode()
    assert c.call("GET", "undeclared:a").to_py() == str(total).encode()
    assert c.call("GET", "undeclared:zz").to_py() == str(total).encode()


BUSY = b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"


def poll_script_kill(port: int, done: threading.Event, n: int = 12, wait_busy: bool = False):
    """From `n` connections: (optionally) GET until the reply is -BUSY, then SCRIPT KILL until
    `done`. A busy script occupies its Cinnabar worker thread, and the kernel spreads
    connections over the workers, so some of them land on another worker. Returns the
    replies seen and the threads."""
    seen: list[bytes] = []
    lock = threading.Lock()

    def poll():
        with RespConnection("127.0.0.1", port, timeout=60) as k:
            while wait_busy and not done.is_set():
                r = k.call("GET", "k")
                with lock:
                    seen.append(r.raw)
                if r.raw == BUSY:
                    break
                done.wait(0.02)
            while not done.is_set():
                r = k.call("SCRIPT", "KILL")
                with lock:
                    seen.append(r.raw)
                if not r.is_error:
                    return
                done.wait(0.02)

    threads = [threading.Thread(target=poll) for _ in range(n)]
    for t in threads:
        t.start()
    return seen, threads


@pytest.mark.parametrize("kind", ["redis", "cinnabar"])
def test_script_kill_stops_a_busy_read_only_script(make_server, kind):
    s = make_server(kind, [("busy-reply-threshold", ["100"])])
    runner = s.conn(timeout=60)
    runner.send_command("EVAL", "local i = 0 while true do i = i + 1 end", "0")
    done = threading.Event()
    seen, threads = poll_script_kill(s.port, done, wait_busy=True)
    try:
        reply = runner.read_reply()
    finally:
        done.set()
        for t in threads:
            t.join(60)
    assert reply.is_error
    assert reply.value.startswith(b"ERR Script killed by user with SCRIPT KILL... script: "), reply.raw
    # Other clients got -BUSY (Redis's exact text) while the script ran past the threshold,
    # then SCRIPT KILL stopped it.
    assert BUSY in seen, set(seen)
    assert b"+OK\r\n" in seen, set(seen)
    allowed = {b"+OK\r\n", b"-NOTBUSY No scripts in execution right now.\r\n", BUSY, b"$-1\r\n"}
    assert set(seen) <= allowed, set(seen)
    assert runner.call("EVAL", "return 7", "0").to_py() == 7
    assert runner.call("GET", "k").raw == b"$-1\r\n"


def test_script_kill_refuses_after_a_write(make_server):
    s = make_server("cinnabar")
    c = s.conn()
    assert c.call("SCRIPT", "KILL").raw == b"-NOTBUSY No scripts in execution right now.\r\n"
    runner = s.conn(timeout=60)
    runner.send_command("EVAL", "redis.call('SET', 'w', 1) local i = 0 while i < 100000000 do i = i + 1 end return i", "0")
    done = threading.Event()
    seen, threads = poll_script_kill(s.port, done)
    try:
        assert runner.read_reply().to_py() == 100000000
    finally:
        done.set()
        for t in threads:
            t.join(60)
    assert b"+OK\r\n" not in seen
    assert any(r.startswith(b"-UNKILLABLE Sorry the script already executed write commands") for r in seen), set(seen)
    assert c.call("GET", "w").to_py() == b"1"


@pytest.mark.parametrize("kind", ["redis", "cinnabar"])
def test_shutdown_nosave_ends_a_busy_script(make_server, kind):
    """A script looping forever while holding its key's slot (next to a volatile key the
    active expiry cycle wants): SHUTDOWN NOSAVE from another client still stops the server."""
    s = make_server(kind, [("busy-reply-threshold", ["100"])])
    with s.conn() as c:
        assert c.call("SET", "{t}ttl", "x", "EX", "1000").to_py() == b"OK"
        assert c.call("SET", "{t}k", "v").to_py() == b"OK"
    runner = s.conn(timeout=60)
    runner.send_command("EVAL", "redis.call('GET', KEYS[1]) local i = 0 while true do i = i + 1 end", "1", "{t}k")
    done = threading.Event()
    busy_seen = threading.Event()

    def shut():
        try:
            with RespConnection("127.0.0.1", s.port, timeout=60) as k:
                while not done.is_set():
                    r = k.call("GET", "{t}k")
                    if r.raw == BUSY:
                        busy_seen.set()
                        break
                    done.wait(0.02)
                k.send_command("SHUTDOWN", "NOSAVE")
                k.read_reply()
        except Exception:  # noqa: BLE001 - the server closes the connection as it exits
            pass

    threads = [threading.Thread(target=shut) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: s.proc.poll() is not None, 30, f"{kind} to exit after SHUTDOWN NOSAVE")
    finally:
        done.set()
        for t in threads:
            t.join(60)
        runner.close()
    assert busy_seen.is_set()


LIB = ("#!lua name=counters\n"
       "redis.register_function('bump', function(keys, args) return redis.call('INCRBY', keys[1], args[1]) end)\n"
       "redis.register_function{function_name='peek', callback=function(keys) return redis.call('GET', keys[1]) end,"
       " flags={'no-writes'}}")


def test_function_dump_restore_interoperate(make_server):
    """FUNCTION DUMP payloads are byte-identical to redis-server's and restore both ways."""
    r, c = make_server("redis"), make_server("cinnabar")
    rc, cc = r.conn(), c.conn()
    for conn in (rc, cc):
        assert conn.call("FUNCTION", "LOAD", LIB).to_py() == b"counters"
    dump_r, dump_c = rc.call("FUNCTION", "DUMP").to_py(), cc.call("FUNCTION", "DUMP").to_py()
    assert dump_r == dump_c
    for conn, payload in ((rc, dump_c), (cc, dump_r)):
        assert conn.call("FUNCTION", "RESTORE", payload).raw == b"-ERR Library counters already exists\r\n"
        assert conn.call("FUNCTION", "RESTORE", payload, "REPLACE").to_py() == b"OK"
        assert conn.call("FUNCTION", "FLUSH").to_py() == b"OK"
        assert conn.call("FUNCTION", "RESTORE", payload).to_py() == b"OK"
        assert conn.call("FCALL", "bump", "1", "n", "5").to_py() == 5
        assert conn.call("FCALL_RO", "peek", "1", "n").to_py() == b"5"


def test_functions_replicate(make_server):
    # A redis-server replica gets FUNCTION LOAD as a command and the FCALL effects.
    master = make_server("cinnabar")
    replica = make_server("redis", [("replicaof", ["127.0.0.1", str(master.port)])])
    mc, rc = master.conn(), replica.conn()
    wait_for(link_up(rc), 20, "the redis-server replica's link to come up")
    assert mc.call("FUNCTION", "LOAD", LIB).to_py() == b"counters"
    for _ in range(3):
        mc.call("FCALL", "bump", "1", "total", "2")
    assert mc.call("WAIT", "1", "5000").to_py() == 1
    wait_for(caught_up(mc, rc), 10, "the replica to apply FUNCTION LOAD and the effects")
    assert rc.call("GET", "total").to_py() == b"6"
    assert rc.call("FCALL_RO", "peek", "1", "total").to_py() == b"6"
    # A Cinnabar replica attached later gets the library through the RDB of its full sync.
    replica2 = make_server("cinnabar", [("replicaof", ["127.0.0.1", str(master.port)])])
    r2 = replica2.conn()
    wait_for(link_up(r2), 20, "the cinnabar replica's link to come up")
    wait_for(caught_up(mc, r2), 10, "the cinnabar replica to finish its full sync")
    assert r2.call("FCALL_RO", "peek", "1", "total").to_py() == b"6"
    assert r2.call("FUNCTION", "LIST").to_py()[0][1] == b"counters"


def test_functions_persist_in_the_rdb(servers):
    """SAVE + restart: the RDB file holds the library."""
    for kind in ("cinnabar", "redis"):
        s = servers.new(kind, {"appendonly": "no", "save": ""})
        s.start()
        with s.conn() as c:
            assert c.call("FUNCTION", "LOAD", LIB).to_py() == b"counters"
            assert c.call("SAVE").to_py() == b"OK"
        s.stop()
        s.start()
        with s.conn() as c:
            assert c.call("FCALL", "bump", "1", "x", "4").to_py() == 4, kind
            listing = c.call("FUNCTION", "LIST", "WITHCODE").to_py()
            assert listing[0][-1] == LIB.encode(), kind


BUSY_FN = b"-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n"


@pytest.mark.parametrize("kind", ["redis", "cinnabar"])
def test_function_kill_stops_a_busy_function(make_server, kind):
    """A function past busy-reply-threshold: others get the FUNCTION KILL flavour of -BUSY,
    SCRIPT KILL refuses (it is not an EVAL script), FUNCTION KILL stops it."""
    s = make_server(kind, [("busy-reply-threshold", ["100"])])
    with s.conn() as c:
        assert c.call("FUNCTION", "LOAD", "#!lua name=spin\nredis.register_function{function_name='spin', "
                      "callback=function() local i = 0 while true do i = i + 1 end end, flags={'no-writes'}}"
                      ).to_py() == b"spin"
    runner = s.conn(timeout=60)
    runner.send_command("FCALL", "spin", "0")
    done = threading.Event()
    seen: list[bytes] = []
    lock = threading.Lock()

    def poll():
        with RespConnection("127.0.0.1", s.port, timeout=60) as k:
            while not done.is_set():
                r = k.call("GET", "k")
                with lock:
                    seen.append(r.raw)
                if r.raw == BUSY_FN:
                    break
                done.wait(0.02)
            while not done.is_set():
                r = k.call("SCRIPT", "KILL")
                with lock:
                    seen.append(r.raw)
                r = k.call("FUNCTION", "KILL")
                with lock:
                    seen.append(r.raw)
                if not r.is_error:
                    return
                done.wait(0.02)

    threads = [threading.Thread(target=poll) for _ in range(12)]
    for t in threads:
        t.start()
    try:
        reply = runner.read_reply()
    finally:
        done.set()
        for t in threads:
            t.join(60)
    assert reply.is_error and reply.value.startswith(b"ERR Script killed by user with SCRIPT KILL... script: spin"), reply.raw
    assert BUSY_FN in seen, set(seen)
    assert b"-" + BUSY[1:].replace(b"SCRIPT KILL", b"FUNCTION KILL") in seen  # SCRIPT KILL's refusal
    assert b"+OK\r\n" in seen, set(seen)
