# tests/test_concurrency.py — owned by the test harness (tests/, .ci/, scripts/).
#
# Atomicity under concurrent clients. Redis executes commands one at a time;
# a multi-threaded server must give the same observable results. Each test
# runs several client threads with pipelined requests and checks outcomes that
# are deterministic whatever the interleaving (exact counters, exactly one
# winner, all-or-nothing multi-key writes). Bounded in count and time; run on
# both servers (ids [redis] / [cinnabar]).

from __future__ import annotations

import threading

from lib.resp import RespConnection, encode_command

THREADS = 8


def _run_threads(server, work, n=THREADS):
    errors, results = [], [None] * n

    def runner(i):
        try:
            with RespConnection(server.host, server.port, timeout=60) as c:
                results[i] = work(i, c)
        except Exception as e:  # reported in the main thread
            errors.append(e)

    ts = [threading.Thread(target=runner, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts), "client threads did not finish"
    assert not errors, errors
    return results


def _pipeline(c, cmds):
    c.send_raw(b"".join(encode_command(*cmd) for cmd in cmds))
    return [c.read_raw() for _ in cmds]


def test_concurrent_incr_is_exact(server):
    per = 3000

    def work(i, c):
        out = _pipeline(c, [("INCR", "counter")] * per)
        vals = [int(r[1:-2]) for r in out]
        assert vals == sorted(vals), "a client saw its own INCRs out of order"
        _pipeline(c, [("INCRBY", f"{{h}}n{j % 4}", 2) for j in range(per)])
        return vals

    results = _run_threads(server, work)
    with server.conn() as c:
        assert c.call_raw("GET", "counter") == b"$%d\r\n%d\r\n" % (len(str(THREADS * per)), THREADS * per)
        total = sum(int(c.call("GET", f"{{h}}n{j}").value) for j in range(4))
        assert total == THREADS * per * 2
    seen = sorted(v for vals in results for v in vals)
    assert seen == list(range(1, THREADS * per + 1)), "INCR replies are not a permutation of 1..N"


def test_concurrent_incrbyfloat_and_append(server):
    per = 500

    def work(i, c):
        _pipeline(c, [("INCRBYFLOAT", "f", "0.5")] * per)
        _pipeline(c, [("APPEND", "log", f"{i}")] * per)

    _run_threads(server, work)
    with server.conn() as c:
        assert c.call("GET", "f").value == str(THREADS * per // 2).encode()
        assert c.call("STRLEN", "log").to_py() == THREADS * per


def test_setnx_and_getdel_have_one_winner(server):
    rounds = 300

    barrier = threading.Barrier(THREADS, timeout=60)

    def work(i, c):
        wins_setnx = _pipeline(c, [("SETNX", f"lock:{r}", i) for r in range(rounds)])
        barrier.wait()  # every SETNX is done before any GETDEL starts
        wins_getdel = _pipeline(c, [("GETDEL", f"lock:{r}") for r in range(rounds)])
        return [w == b":1\r\n" for w in wins_setnx], [g != b"$-1\r\n" for g in wins_getdel]

    results = _run_threads(server, work)
    for r in range(rounds):
        assert sum(res[0][r] for res in results) == 1, f"SETNX lock:{r} had != 1 winner"
        assert sum(res[1][r] for res in results) == 1, f"GETDEL lock:{r} returned the value != 1 time"


def test_msetnx_is_all_or_nothing(server):
    rounds = 300

    def work(i, c):
        # every client races for the same key groups, each with its own value
        return _pipeline(c, [("MSETNX", f"{{g{r}}}a", i, f"{{g{r}}}b", i, f"{{g{r}}}c", i) for r in range(rounds)])

    results = _run_threads(server, work)
    with server.conn() as c:
        for r in range(rounds):
            assert sum(res[r] == b":1\r\n" for res in results) == 1
            vals = c.call("MGET", f"{{g{r}}}a", f"{{g{r}}}b", f"{{g{r}}}c").to_py()
            assert len(set(vals)) == 1, f"MSETNX group {r} mixed writers: {vals}"


def test_mset_readers_never_see_torn_writes(server):
    rounds = 400
    stop = threading.Event()
    torn = []

    def reader():
        with RespConnection(server.host, server.port, timeout=60) as c:
            while not stop.is_set():
                vals = c.call("MGET", "{m}x", "{m}y", "{m}z").to_py()
                if len(set(vals)) != 1:
                    torn.append(vals)

    rt = threading.Thread(target=reader, daemon=True)
    with server.conn() as c:
        c.call_raw("MSET", "{m}x", 0, "{m}y", 0, "{m}z", 0)
    rt.start()

    def work(i, c):
        _pipeline(c, [("MSET", "{m}x", f"{i}.{r}", "{m}y", f"{i}.{r}", "{m}z", f"{i}.{r}") for r in range(rounds)])

    try:
        _run_threads(server, work, n=4)
    finally:
        stop.set()
        rt.join(30)
    assert not torn, f"MGET saw a half-applied MSET: {torn[:3]}"


def test_many_connections_each_answered(server):
    conns = [server.conn() for _ in range(200)]
    try:
        for i, c in enumerate(conns):
            c.send_command("SET", f"c{i}", i)
        for c in conns:
            assert c.read_raw() == b"+OK\r\n"
        for i, c in enumerate(conns):
            c.send_command("GET", f"c{(i + 1) % 200}")
        for i, c in enumerate(conns):
            assert c.read_reply().value == str((i + 1) % 200).encode()
    finally:
        for c in conns:
            c.close()
