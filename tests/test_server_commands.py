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


MEMORY_STATS_NAMES = (
    "peak.allocated total.allocated startup.allocated replication.backlog clients.slaves "
    "clients.normal cluster.links aof.buffer lua.caches functions.caches db.0 overhead.total "
    "keys.count keys.bytes-per-key dataset.bytes dataset.percentage peak.percentage "
    "allocator.allocated allocator.active allocator.resident allocator-fragmentation.ratio "
    "allocator-fragmentation.bytes allocator-rss.ratio allocator-rss.bytes rss-overhead.ratio "
    "rss-overhead.bytes fragmentation fragmentation.bytes").split()
MEMORY_STATS_DOUBLES = {"dataset.percentage", "peak.percentage", "allocator-fragmentation.ratio",
                        "allocator-rss.ratio", "rss-overhead.ratio", "fragmentation"}


def test_memory_stats_purge_malloc_stats(server):
    """MEMORY STATS has Redis 7.0's fields, order and types (RESP2 and RESP3; values are each
    server's own accounting); PURGE answers OK; MALLOC-STATS is what Redis says without
    jemalloc... for Cinnabar (Redis's own build has jemalloc and prints its report)."""
    with server.conn() as c:
        for i in range(100):
            c.call("SET", f"k{i}", "v" * 100)
        r = c.call("MEMORY", "STATS").to_py()
        names = [x.decode() for x in r[0::2]]
        assert names == MEMORY_STATS_NAMES, names
        vals = dict(zip(names, r[1::2]))
        for n in names:
            if n in MEMORY_STATS_DOUBLES:
                float(vals[n])  # RESP2: a bulk string holding a double
                assert isinstance(vals[n], bytes), (n, vals[n])
            elif n == "db.0":
                sub = vals[n]
                assert [x.decode() for x in sub[0::2]] == [
                    "overhead.hashtable.main", "overhead.hashtable.expires",
                    "overhead.hashtable.slot-to-keys"], sub
            else:
                assert isinstance(vals[n], int), (n, vals[n])
        assert vals["keys.count"] == 100
        assert vals["total.allocated"] >= vals["startup.allocated"] > 0
        assert vals["peak.allocated"] >= vals["total.allocated"]
        assert vals["dataset.bytes"] > 100 * 100
        assert c.call_raw("HELLO", "3").startswith(b"%")
        raw = c.call_raw("MEMORY", "STATS")
        assert raw.startswith(b"%28\r\n"), raw[:10]
        assert b"$18\r\ndataset.percentage\r\n," in raw  # a RESP3 double
        assert c.call_raw("MEMORY", "PURGE") == b"+OK\r\n"
        assert c.call_raw("MEMORY", "STATS", "x") == b"-ERR wrong number of arguments for 'memory|stats' command\r\n"
        assert c.call_raw("MEMORY", "PURGE", "x") == b"-ERR wrong number of arguments for 'memory|purge' command\r\n"
        text = c.call("MEMORY", "MALLOC-STATS").to_py()
        assert isinstance(text, bytes) and text
        help_lines = [x.decode() for x in c.call("MEMORY", "HELP").to_py()]
        for sub_name in ("MALLOC-STATS", "PURGE", "STATS", "USAGE <key> [SAMPLES <count>]"):
            assert sub_name in help_lines, help_lines


def help_entries(lines):
    """HELP reply lines grouped per subcommand: [(name, [lines])], the header first."""
    entries = []
    for ln in lines:
        if ln.startswith(" ") and entries:
            entries[-1][1].append(ln)
        else:
            name = ln.split(" ", 1)[0].lower()
            entries.append((name, [ln]))
    return entries


def test_help_replies_match_redis_for_implemented_subcommands(pair):
    """Every container command's HELP is Redis 7.0.15's text, byte for byte, less the entries
    of subcommands Cinnabar does not implement (which COMMAND INFO does not report either)."""
    redis, cinnabar = pair
    with redis.conn() as r, cinnabar.conn() as c:
        for cmd in ("client", "command", "config", "object", "slowlog", "pubsub", "memory"):
            want_entries = help_entries([x.decode() for x in r.call(cmd.upper(), "HELP").to_py()])
            kept = []
            for i, (name, lines) in enumerate(want_entries):
                if i == 0 or name == "help" or name.startswith("("):  # "(no subcommand)"
                    kept.extend(lines)
                    continue
                info = c.call("COMMAND", "INFO", f"{cmd}|{name}").to_py()
                if info and info[0] is not None:
                    kept.extend(lines)
            got = [x.decode() for x in c.call(cmd.upper(), "HELP").to_py()]
            assert got == kept, (cmd, got, kept)
