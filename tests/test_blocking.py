# tests/test_blocking.py — blocking list/zset commands and optimistic transactions with several
# concurrent clients, run against both redis-server 7.0.15 and cinnabar-server (the same
# assertions must hold for both). Each scenario repeats ROUNDS times in one test so that order
# and wake-up bugs show up reliably; every wait is a condition with a deadline.

from __future__ import annotations

import threading

import pytest

from lib.wait import wait_for

ROUNDS = 20


def blocked_clients(s) -> int:
    with s.conn() as c:
        info = c.call("INFO", "clients").to_py()
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("blocked_clients:"):
            return int(line.split(":", 1)[1])
    return -1


def wait_blocked(s, n: int) -> None:
    wait_for(lambda: blocked_clients(s) == n, 10, f"{n} blocked clients")


def test_blpop_serves_waiters_in_arrival_order(server):
    for r in range(ROUNDS):
        key = f"q{r}"
        waiters = [server.conn() for _ in range(3)]
        try:
            for i, w in enumerate(waiters):
                w.send_command("BLPOP", key, "0")
                wait_blocked(server, i + 1)
            with server.conn() as p:
                assert p.call_raw("RPUSH", key, "a", "b", "c") == b":3\r\n"
            got = [w.read_raw(timeout=10) for w in waiters]
            assert got == [
                f"*2\r\n${len(key)}\r\n{key}\r\n$1\r\n{v}\r\n".encode() for v in "abc"
            ], f"round {r}"
            wait_blocked(server, 0)
        finally:
            for w in waiters:
                w.close()


def test_blocked_client_woken_by_exec_and_rename(server):
    for r in range(ROUNDS):
        with server.conn() as w, server.conn() as p:
            # Push inside MULTI/EXEC.
            w.send_command("BRPOP", f"m{r}", "5")
            wait_blocked(server, 1)
            assert p.call_raw("MULTI") == b"+OK\r\n"
            assert p.call_raw("RPUSH", f"m{r}", "x") == b"+QUEUED\r\n"
            assert p.call_raw("EXEC") == b"*1\r\n:1\r\n"
            assert w.read_raw(timeout=10) == f"*2\r\n${len(f'm{r}')}\r\nm{r}\r\n$1\r\nx\r\n".encode()
            # A list that appears through RENAME.
            w.send_command("BLPOP", f"dst{r}", "5")
            wait_blocked(server, 1)
            assert p.call_raw("RPUSH", f"src{r}", "v") == b":1\r\n"
            assert p.call_raw("RENAME", f"src{r}", f"dst{r}") == b"+OK\r\n"
            assert w.read_raw(timeout=10) == f"*2\r\n${len(f'dst{r}')}\r\ndst{r}\r\n$1\r\nv\r\n".encode()
            wait_blocked(server, 0)


def test_blocking_timeouts_unblock_and_multi(server):
    with server.conn() as w, server.conn() as p:
        # Fractional timeout on a missing key.
        assert w.call_raw("BLPOP", "none", "0.05", timeout=10) == b"*-1\r\n"
        # Redis 7.0 answers a timed-out BLMOVE with a null *array*.
        assert w.call_raw("BLMOVE", "none", "d", "LEFT", "RIGHT", "0.05", timeout=10) == b"*-1\r\n"
        # Inside MULTI a blocking command answers at once.
        assert w.call_raw("MULTI") == b"+OK\r\n"
        assert w.call_raw("BLPOP", "none", "0") == b"+QUEUED\r\n"
        assert w.call_raw("BLMOVE", "none", "d", "LEFT", "RIGHT", "0") == b"+QUEUED\r\n"
        assert w.call_raw("EXEC", timeout=10) == b"*2\r\n*-1\r\n$-1\r\n"
        # CLIENT UNBLOCK, as timeout and as error.
        wid = w.call("CLIENT", "ID").to_py()
        for mode, want in (("TIMEOUT", b"*-1\r\n"), ("ERROR", b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n")):
            w.send_command("BLPOP", "none", "0")
            wait_blocked(server, 1)
            assert p.call_raw("CLIENT", "UNBLOCK", str(wid), mode) == b":1\r\n"
            assert w.read_raw(timeout=10) == want
        assert p.call_raw("CLIENT", "UNBLOCK", str(wid)) == b":0\r\n"
        # Errors.
        assert w.call_raw("BLPOP", "k", "-1") == b"-ERR timeout is negative\r\n"
        assert w.call_raw("BLPOP", "k", "abc") == b"-ERR timeout is not a float or out of range\r\n"
        # BZPOPMIN wakes on ZADD.
        w.send_command("BZPOPMIN", "z", "5")
        wait_blocked(server, 1)
        assert p.call_raw("ZADD", "z", "1.5", "m") == b":1\r\n"
        assert w.read_raw(timeout=10) == b"*3\r\n$1\r\nz\r\n$1\r\nm\r\n$3\r\n1.5\r\n"


def test_watch_multi_exec_concurrent_increments(server):
    """Optimistic locking: N clients each add `per_client` to a counter through
    WATCH/GET/MULTI/SET/EXEC with retries; no increment may be lost."""
    n_clients, per_client = 4, 25
    errors: list[BaseException] = []

    def worker():
        try:
            with server.conn() as c:
                done = 0
                while done < per_client:
                    assert c.call_raw("WATCH", "counter") == b"+OK\r\n"
                    v = c.call("GET", "counter").to_py()
                    cur = int(v) if v is not None else 0
                    assert c.call_raw("MULTI") == b"+OK\r\n"
                    assert c.call_raw("SET", "counter", str(cur + 1)) == b"+QUEUED\r\n"
                    r = c.call_raw("EXEC")
                    if r == b"*1\r\n+OK\r\n":
                        done += 1
                    else:
                        assert r == b"*-1\r\n", r
        except BaseException as e:  # surfaced below
            errors.append(e)

    for _ in range(ROUNDS // 4):
        with server.conn() as c:
            c.call_raw("DEL", "counter")
        threads = [threading.Thread(target=worker) for _ in range(n_clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors[0]
        with server.conn() as c:
            assert c.call("GET", "counter").to_py() == str(n_clients * per_client).encode()


@pytest.mark.parametrize("cmd", ["BLPOP", "BRPOP"])
def test_blpop_serves_existing_data_without_blocking(server, cmd):
    with server.conn() as c:
        assert c.call_raw("RPUSH", "l", "1", "2") == b":2\r\n"
        want = b"*2\r\n$1\r\nl\r\n$1\r\n1\r\n" if cmd == "BLPOP" else b"*2\r\n$1\r\nl\r\n$1\r\n2\r\n"
        assert c.call_raw(cmd, "missing", "l", "0") == want
        assert c.call_raw("SET", "s", "x") == b"+OK\r\n"
        assert c.call_raw(cmd, "s", "0").startswith(b"-WRONGTYPE")
