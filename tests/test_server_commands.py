# tests/test_server_commands.py — server and connection commands whose behaviour spans several
# connections or time (so they do not fit a single-connection transcript): CLIENT PAUSE/KILL,
# SLOWLOG, MONITOR, Pub/Sub delivery, DEBUG SLEEP, MEMORY USAGE, LASTSAVE, CONFIG REWRITE and
# the unix socket. Every test runs against redis-server 7.0.15 and cinnabar-server and checks
# the same exact replies on both; waits are conditions with deadlines.

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

from lib.resp import TIMEOUT, encode_command
from lib.wait import wait_for


def test_client_pause_write_holds_writes_only(server):
    with server.conn() as admin, server.conn() as w, server.conn() as r:
        assert w.call_raw("SET", "k", "v0") == b"+OK\r\n"
        assert admin.call_raw("CLIENT", "PAUSE", "60000", "WRITE") == b"+OK\r\n"
        # Reads go through during a WRITE pause.
        assert r.call_raw("GET", "k", timeout=5) == b"$2\r\nv0\r\n"
        # A write is held: no reply yet (checked with a short read timeout) ...
        w.send_command("SET", "k", "v1")
        assert w.read_raw(timeout=0.3) == TIMEOUT
        # ... until CLIENT UNPAUSE.
        assert admin.call_raw("CLIENT", "UNPAUSE") == b"+OK\r\n"
        assert w.read_raw(timeout=10) == b"+OK\r\n"
        assert r.call_raw("GET", "k") == b"$2\r\nv1\r\n"
        assert admin.call_raw("CLIENT", "PAUSE", "abc") == b"-ERR timeout is not an integer or out of range\r\n"
        assert admin.call_raw("CLIENT", "PAUSE", "10", "SOME") == (
            b"-ERR CLIENT PAUSE mode must be WRITE or ALL\r\n"
        )


def test_client_kill_by_id_and_addr(server):
    with server.conn() as admin, server.conn() as victim:
        vid = victim.call("CLIENT", "ID").to_py()
        assert admin.call_raw("CLIENT", "KILL", "ID", str(vid)) == b":1\r\n"
        assert victim.read_raw(timeout=5) == b"<EOF>"
        assert admin.call_raw("CLIENT", "KILL", "ID", str(vid)) == b":0\r\n"
        assert admin.call_raw("CLIENT", "KILL", "1.2.3.4:5") == b"-ERR No such client\r\n"
        assert admin.call_raw("CLIENT", "KILL", "ID", "0") == b"-ERR client-id should be greater than 0\r\n"
        assert admin.call_raw("CLIENT", "KILL", "BOGUS", "x") == b"-ERR syntax error\r\n"


def test_slowlog_records_and_resets(server):
    with server.conn() as c:
        assert c.call_raw("CONFIG", "SET", "slowlog-log-slower-than", "0") == b"+OK\r\n"
        assert c.call_raw("SLOWLOG", "RESET") == b"+OK\r\n"
        c.call_raw("SET", "a", "1")
        c.call_raw("GET", "a")
        n = c.call("SLOWLOG", "LEN").to_py()
        assert n >= 2
        entries = c.call("SLOWLOG", "GET", "3").to_py()
        assert len(entries) == 3
        assert all(len(e) == 6 for e in entries)
        # Newest first: SLOWLOG LEN itself, then GET a, then SET a 1.
        assert [e[3] for e in entries] == [[b"SLOWLOG", b"LEN"], [b"GET", b"a"], [b"SET", b"a", b"1"]]
        assert c.call_raw("SLOWLOG", "GET", "-2") == b"-ERR count should be greater than or equal to -1\r\n"
        assert c.call_raw("CONFIG", "SET", "slowlog-log-slower-than", "-1") == b"+OK\r\n"
        assert c.call_raw("SLOWLOG", "RESET") == b"+OK\r\n"
        c.call_raw("GET", "a")
        assert c.call_raw("SLOWLOG", "LEN") == b":0\r\n"


def test_monitor_sees_other_clients(server):
    with server.conn() as mon, server.conn() as c:
        assert mon.call_raw("MONITOR") == b"+OK\r\n"
        assert c.call_raw("SET", "a b", 'x"y') == b"+OK\r\n"
        line = mon.read_raw(timeout=10)
        assert line.startswith(b"+") and line.endswith(b'] "SET" "a b" "x\\"y"\r\n'), line


def test_pubsub_delivery_resp2_and_resp3(server):
    with server.conn() as sub, server.conn() as psub, server.conn() as pub:
        assert sub.call_raw("SUBSCRIBE", "news") == b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
        assert psub.call_raw("HELLO", "3").startswith(b"%7")
        assert psub.call_raw("PSUBSCRIBE", "n*") == b">3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:1\r\n"
        wait_for(lambda: pub.call("PUBSUB", "NUMPAT").to_py() == 1, 10, "pattern registered")
        assert pub.call_raw("PUBLISH", "news", "hello") == b":2\r\n"
        assert sub.read_raw(timeout=10) == b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
        assert psub.read_raw(timeout=10) == b">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
        assert pub.call_raw("PUBSUB", "NUMSUB", "news", "other") == b"*4\r\n$4\r\nnews\r\n:1\r\n$5\r\nother\r\n:0\r\n"
        assert pub.call_raw("PUBSUB", "CHANNELS", "ne*") == b"*1\r\n$4\r\nnews\r\n"
        assert sub.call_raw("UNSUBSCRIBE") == b"*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:0\r\n"
        assert pub.call_raw("PUBLISH", "news", "again") == b":1\r\n"


def test_debug_memory_lastsave(make_server):
    for kind in ("redis", "cinnabar"):
        s = make_server(kind, [("enable-debug-command", ["yes"])])
        with s.conn() as c:
            assert c.call_raw("DEBUG", "SLEEP", "0") == b"+OK\r\n"
            assert c.call_raw("MEMORY", "USAGE", "missing") == b"$-1\r\n"
            c.call_raw("SET", "k", "v" * 100)
            n = c.call("MEMORY", "USAGE", "k").to_py()
            assert isinstance(n, int) and 100 < n < 1000, (kind, n)
            assert isinstance(c.call("LASTSAVE").to_py(), int)
            assert c.call_raw("MEMORY", "USAGE", "k", "SAMPLES") == b"-ERR syntax error\r\n"


def test_config_rewrite_persists_changes(make_server):
    for kind in ("redis", "cinnabar"):
        s = make_server(kind)
        with s.conn() as c:
            assert c.call_raw("CONFIG", "SET", "maxclients", "123") == b"+OK\r\n"
            assert c.call_raw("CONFIG", "REWRITE") == b"+OK\r\n"
            path = c.call("INFO", "server").to_py().decode().split("config_file:")[1].split("\r\n")[0]
        text = Path(path).read_text()
        assert "maxclients 123" in text, (kind, text)


def test_unix_socket(make_server):
    d = tempfile.mkdtemp(prefix="cinnabar-sock-")
    for kind in ("redis", "cinnabar"):
        path = str(Path(d) / f"{kind}.sock")
        s = make_server(kind, [("unixsocket", [path]), ("unixsocketperm", ["700"])])
        wait_for(lambda: Path(path).exists(), 10, "unix socket file")
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        u.settimeout(10)
        u.connect(path)
        try:
            u.sendall(encode_command("PING"))
            assert u.recv(100) == b"+PONG\r\n"
        finally:
            u.close()
        assert s.ping_ok()
