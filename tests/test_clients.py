# tests/test_clients.py — owned by the test harness (tests/, .ci/, scripts/).
#
# Real-client tests: redis-py (RESP2 and RESP3) basic operations, redis-cli as a
# subprocess (one-shot commands, stdin scripts compared with the oracle's
# output, --pipe mass insertion, -c against a standalone and a single-node
# cluster server), and the connection facts transcripts compare only by shape
# (HELLO fields, CLIENT ID uniqueness).

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import redis as redispy

from lib.resp import encode_command

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def cli(server, *args, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [REDIS_CLI, "-h", server.host, "-p", str(server.port), *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=timeout,
    )


# ---------------------------------------------------------------------------
# redis-py


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_basic(server, protocol):
    r = redispy.Redis(host=server.host, port=server.port, protocol=protocol, socket_timeout=10)
    try:
        assert r.ping() is True
        assert r.set("k", "v") is True
        assert r.get("k") == b"v"
        assert r.get("missing") is None
        assert r.set("k", "v2", nx=True) is None
        assert r.set("k", "v3", xx=True, get=True) == b"v"
        assert r.mset({"a": 1, "b": 2}) is True
        assert r.mget("a", "b", "missing") == [b"1", b"2", None]
        assert r.incr("counter") == 1
        assert r.incrby("counter", 41) == 42
        assert r.decr("counter") == 41
        assert r.incrbyfloat("f", 1.5) == 1.5
        assert r.append("k", "!") == 3
        assert r.strlen("k") == 3
        assert r.getrange("k", 0, 1) == b"v3"
        assert r.setrange("k", 0, "V") == 3
        assert r.exists("k", "a", "missing") == 2
        assert r.expire("k", 100) is True
        assert 99 <= r.ttl("k") <= 100
        assert r.persist("k") is True
        assert r.ttl("k") == -1
        assert r.type("k") == b"string"
        assert r.rename("k", "k2") is True
        assert r.getdel("k2") == b"V3!"
        assert r.setbit("bits", 7, 1) == 0
        assert r.bitcount("bits") == 1
        assert r.bitfield("bf").set("u8", 0, 200).incrby("u8", 0, 100).execute() == [0, 44]
        assert sorted(r.keys("*")) == sorted([b"a", b"b", b"counter", b"f", b"bits", b"bf"])
        assert sorted(r.scan_iter(count=2)) == sorted(r.keys("*"))
        assert r.dbsize() == 6
        assert r.delete("a", "b", "missing") == 2
        with pytest.raises(redispy.ResponseError, match="wrong kind|not an integer"):
            r.incr("f")
        with pytest.raises(redispy.ResponseError, match="wrong number of arguments"):
            r.execute_command("GET")
        p = r.pipeline(transaction=False)
        for i in range(100):
            p.set(f"p{i}", i)
            p.get(f"p{i}")
        out = p.execute()
        assert out[1::2] == [str(i).encode() for i in range(100)]
        assert r.flushdb() is True
        assert r.dbsize() == 0
        name = r.client_setname("tester")
        assert name is True and r.client_getname() in ("tester", b"tester")
    finally:
        r.close()


def test_redis_py_decode_responses_and_binary(server):
    r = redispy.Redis(host=server.host, port=server.port, decode_responses=True)
    rb = redispy.Redis(host=server.host, port=server.port)
    try:
        assert r.set("ünïcødé", "värde") is True
        assert r.get("ünïcødé") == "värde"
        blob = bytes(range(256))
        assert rb.set(blob, blob) is True
        assert rb.get(blob) == blob
    finally:
        r.close()
        rb.close()


# ---------------------------------------------------------------------------
# connection facts compared field by field


def _hello_fields(server, proto: int) -> dict:
    with server.conn() as c:
        r = c.call("HELLO", str(proto)).to_py()
    if isinstance(r, list):
        r = dict(zip(r[0::2], r[1::2]))
    return r


@pytest.mark.parametrize("proto", [2, 3])
def test_hello_fields(pair, proto):
    a = _hello_fields(pair[0], proto)
    b = _hello_fields(pair[1], proto)
    assert isinstance(b.pop(b"id"), int)
    a.pop(b"id")
    assert b == a


def test_client_ids_unique_and_increasing(server):
    # Redis documents: if a connection's ID is greater than another's, it was
    # established later. Each connection here completes a round trip before
    # the next one is opened.
    ids, conns = [], []
    for _ in range(5):
        c = server.conn()
        ids.append(c.call("CLIENT", "ID").to_py())
        conns.append(c)
    assert ids == sorted(ids) and len(set(ids)) == 5
    # CLIENT INFO / HELLO agree with CLIENT ID
    info = conns[0].call("CLIENT", "INFO").value.decode()
    assert f"id={ids[0]} " in info
    for c in conns:
        c.close()


# ---------------------------------------------------------------------------
# redis-cli


def test_redis_cli_oneshot(server):
    assert cli(server, "PING").stdout == b"PONG\n"
    assert cli(server, "SET", "k", "hello world").stdout == b"OK\n"
    assert cli(server, "GET", "k").stdout == b"hello world\n"
    assert cli(server, "INCR", "n").stdout == b"1\n"
    assert cli(server, "GET", "nokey").stdout == b"\n"
    assert cli(server, "--no-raw", "GET", "nokey").stdout == b"(nil)\n"
    assert cli(server, "--no-raw", "MGET", "k", "nokey").stdout == b'1) "hello world"\n2) (nil)\n'
    assert b"wrong number of arguments" in cli(server, "GET").stdout


CLI_SCRIPT = b"""\
SET a 1
GET a
INCR a
INCRBYFLOAT a 0.5
MSET x 1 y 2
MGET x y z
SET "with space" "\\x00\\xff"
GET "with space"
STRLEN "with space"
EXPIRE a 100
PERSIST a
TTL a
TYPE a
GET
DEL a x y
LCS x y
HELLO 3
GET nokey
MGET x nokey
CONFIG GET maxmemory
BITFIELD bf SET u8 0 255 GET u8 0
"""


@pytest.mark.parametrize("mode", ["--no-raw", "--raw"])
def test_redis_cli_script_output_matches(pair, mode):
    """The same stdin script through redis-cli prints the same output."""
    outs = []
    for s in pair:
        p = cli(s, mode, stdin=CLI_SCRIPT)
        out = p.stdout
        # HELLO prints the connection id; blank it out.
        out = re.sub(rb'"id" => \(integer\) \d+', b'"id" => <id>', out)
        out = re.sub(rb"\nid([\n ])\d+\n", rb"\nid\1<id>\n", out)
        outs.append((p.returncode, out))
    assert outs[1] == outs[0]


def test_redis_cli_pipe_mass_insertion(server):
    n = 20_000
    data = b"".join(encode_command("SET", f"key:{i}", f"value:{i}") for i in range(n))
    data += b"".join(encode_command("INCR", "counter") for _ in range(100))
    p = cli(server, "--pipe", stdin=data, timeout=120)
    assert p.returncode == 0, p.stderr
    tail = p.stdout.decode().strip().splitlines()[-1]
    assert tail == f"errors: 0, replies: {n + 100}", p.stdout
    with server.conn() as c:
        assert c.call_raw("DBSIZE") == b":%d\r\n" % (n + 1)
        assert c.call_raw("GET", "key:12345") == b"$11\r\nvalue:12345\r\n"
        assert c.call_raw("GET", "counter") == b"$3\r\n100\r\n"


def test_redis_cli_pipe_counts_errors(server):
    data = encode_command("SET", "a", "1") + encode_command("INCR", "a", "extra") + encode_command("GET")
    p = cli(server, "--pipe", stdin=data)
    assert p.stdout.decode().strip().splitlines()[-1] == "errors: 2, replies: 3"


def test_redis_cli_cluster_flag_against_standalone(server):
    assert cli(server, "-c", "SET", "foo", "bar").stdout == b"OK\n"
    assert cli(server, "-c", "GET", "foo").stdout == b"bar\n"
    assert cli(server, "-c", "MSET", "a", "1", "b", "2").stdout == b"OK\n"


@pytest.mark.parametrize("kind", ["redis", "cinnabar"])
def test_redis_cli_cluster_flag_against_single_node_cluster(make_server, kind):
    s = make_server(kind, cluster=True)
    assert cli(s, "-c", "SET", "foo", "bar").stdout == b"OK\n"
    assert cli(s, "-c", "GET", "foo").stdout == b"bar\n"
    assert cli(s, "-c", "CLUSTER", "KEYSLOT", "foo").stdout == b"12182\n"
    p = cli(s, "--cluster", "check", f"{s.host}:{s.port}")
    assert p.returncode == 0, p.stdout + p.stderr
    assert b"[OK] All 16384 slots covered." in p.stdout


# ---------------------------------------------------------------------------
# introspection output that monitoring tools parse


def _client_info_fields(server, resp: int) -> list[tuple[str, str]]:
    with server.conn() as c:
        if resp == 3:
            c.call("HELLO", "3")
        c.call("CLIENT", "SETNAME", "probe")
        c.call("SELECT", "2")
        line = c.call("CLIENT", "INFO").value.decode().strip()
    return [tuple(kv.split("=", 1)) for kv in line.split(" ")]


@pytest.mark.parametrize("resp", [2, 3])
def test_client_info_fields(pair, resp):
    a = _client_info_fields(pair[0], resp)
    b = _client_info_fields(pair[1], resp)
    assert [k for k, _ in b] == [k for k, _ in a], "CLIENT INFO field names/order differ"
    stable = {"name", "db", "flags", "sub", "psub", "ssub", "multi", "user", "redir", "resp", "cmd", "events"}
    assert {k: v for k, v in b if k in stable} == {k: v for k, v in a if k in stable}


def _info_sections(server, section="everything") -> dict[str, list[str]]:
    with server.conn() as c:
        text = c.call("INFO", section).value.decode()
    sections, cur = {}, None
    for line in text.split("\r\n"):
        if line.startswith("# "):
            cur = line[2:]
            sections[cur] = []
        elif line and cur is not None:
            sections[cur].append(line.split(":", 1)[0])
    return sections


def test_info_sections_and_fields(pair):
    a = _info_sections(pair[0])
    b = _info_sections(pair[1])
    assert list(b) == list(a), "INFO section list differs"
    missing = {sec: [f for f in fields if f not in b.get(sec, [])] for sec, fields in a.items()}
    missing = {k: v for k, v in missing.items() if v}
    assert not missing, f"INFO fields missing in cinnabar-server: {missing}"


@pytest.mark.parametrize("section", ["server", "clients", "memory", "stats", "keyspace", "cluster", "replication"])
def test_info_single_section(pair, section):
    a = _info_sections(pair[0], section)
    b = _info_sections(pair[1], section)
    assert list(b) == list(a)
