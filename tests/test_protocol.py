# tests/test_protocol.py — owned by the test harness (tests/, .ci/, scripts/).
#
# Protocol / bad-input tests that need more than a transcript can express:
# garbage bytes, malformed frames, huge bulk lengths, unterminated frames and
# abrupt closes, inline commands, 100k pipelined PINGs in one write, maxclients,
# and a client that never reads its replies (client-output-buffer-limit).
# Where redis-server defines an exact reply, the candidate's bytes are
# compared with the oracle's (the `pair` fixture); otherwise behaviour is
# asserted on both servers (the `server` fixture, ids [redis] / [cinnabar]).

from __future__ import annotations

import socket
import threading

import pytest

from lib.resp import EOF, TIMEOUT, RespConnection, encode_command
from lib.wait import poll_until, wait_for


def _exchange(server, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send payload, then read everything until the server closes the
    connection, or until a trailing PING marker is answered. Returns the
    bytes received (plus <EOF> if closed / <TIMEOUT>)."""
    marker = b"\r\nECHO __end_marker__\r\n"
    with RespConnection(server.host, server.port, timeout=timeout) as c:
        try:
            c.send_raw(payload + marker)
        except OSError:
            pass
        out = b""
        while True:
            r = c.read_raw(timeout=timeout)
            if r in (EOF, TIMEOUT):
                return out + r
            out += r
            if r == b"$14\r\n__end_marker__\r\n":
                return out


def _compare(pair, payload: bytes, timeout: float = 5.0):
    redis, cinnabar = pair
    a = _exchange(redis, payload, timeout)
    b = _exchange(cinnabar, payload, timeout)
    assert b == a, f"payload {payload[:80]!r}:\n  redis-server    : {a!r}\n  cinnabar-server : {b!r}"
    assert cinnabar.ping_ok(), "cinnabar-server stopped answering PING"
    return a


MALFORMED = {
    "star_minus_1": b"*-1\r\n",
    "star_abc": b"*abc\r\n",
    "star_empty": b"*\r\n",
    "dollar_minus_5": b"*1\r\n$-5\r\n",
    "dollar_abc": b"*1\r\n$abc\r\n",
    "dollar_empty": b"*1\r\n$\r\n",
    "colon_instead_of_dollar": b"*1\r\n:4\r\n",
    "plus_instead_of_dollar": b"*2\r\n$4\r\nECHO\r\n+abc\r\n",
    "multibulk_too_big": b"*2147483648\r\n",
    "bulk_beyond_proto_max": b"*1\r\n$536870913\r\n",
    "bulk_negative_huge": b"*1\r\n$-9223372036854775808\r\n",
    "bulk_overflow": b"*1\r\n$99999999999999999999\r\n",
    "unbalanced_inline_quotes": b'SET a "b\r\n',
    "inline_quote_not_followed_by_space": b'SET a "b"c\r\n',
    "inline_single_quote": b"SET a 'b\r\n",
    "high_bytes": b"\xff\xfe\xfd\r\n",
    "binary_garbage": bytes(range(1, 256)).replace(b"\n", b"") + b"\r\n",
    "crlf_only": b"\r\n\r\n\r\n",
    "lf_only": b"\n\n",
    "inline_ping_lf": b"PING\n",
    "inline_with_tabs": b"ECHO\tx\r\n",
    "inline_escapes": b'ECHO "\\x00\\xff\\t"\r\n',
    "inline_empty_quotes": b'ECHO ""\r\n',
    "inline_unknown": b"FOO bar baz\r\n",
    "resp_then_garbage": b"*1\r\n$4\r\nPING\r\n*x\r\n",
    "zero_args": b"*0\r\n",
    "nested_array_arg": b"*1\r\n*1\r\n$4\r\nPING\r\n",
}


@pytest.mark.parametrize("payload", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_input_matches_redis(pair, payload):
    _compare(pair, payload)


def test_garbage_fuzz_matches_redis(pair):
    """Deterministic pseudo-random garbage lines, one connection each."""
    import random

    rng = random.Random(20240607)
    alphabet = b"*$:+-\r\n0123456789abcPINGSET \"'\\x"
    for _ in range(60):
        n = rng.randint(1, 24)
        payload = bytes(rng.choice(alphabet) for _ in range(n))
        # Only well-delimited cases: force a final CRLF so both servers act now.
        _compare(pair, payload + b"\r\n", timeout=3.0)


def test_too_big_inline_request(pair):
    # More than 64 KiB without a newline -> "too big inline request" + close.
    _compare(pair, b"A" * (70 * 1024))


def test_big_mbulk_count_without_payload_then_close(server):
    # A huge multibulk count followed by EOF must not crash or pre-allocate.
    for payload in (b"*1048576\r\n", b"*1\r\n$536870912\r\n", b"*1000000\r\n$1\r\na\r\n"):
        c = server.conn()
        c.send_raw(payload)
        c.close()
    assert server.ping_ok()
    assert server.alive()


@pytest.mark.parametrize(
    "partial",
    [b"*2\r\n$3\r\nGET\r\n$3\r\nab", b"*1\r\n$4\r\nPING", b"*3\r\n", b"PING", b"*1\r\n$4\r\nPI", b"*1\r"],
    ids=["mid_bulk", "no_crlf", "header_only", "inline_no_newline", "half_bulk", "half_header"],
)
def test_unterminated_frame_then_close(server, partial):
    c = server.conn()
    c.send_raw(partial)
    c.close()
    # The server must drop that connection and keep serving the others.
    with server.conn() as o:
        assert o.call_raw("PING") == b"+PONG\r\n"
        assert o.call_raw("DBSIZE") == b":0\r\n"
    wait_for(lambda: _connected_clients(server) == 0, 10, "the half-written connection to be dropped")


def test_unterminated_frame_completed_later(server):
    with server.conn() as c:
        c.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhel")
        # No reply yet: the command is incomplete. Prove it with a second
        # connection observing that the key does not exist.
        with server.conn() as o:
            assert o.call_raw("EXISTS", "k") == b":0\r\n"
        c.send_raw(b"lo\r\n")
        assert c.read_raw() == b"+OK\r\n"
        assert c.call_raw("GET", "k") == b"$5\r\nhello\r\n"


def test_byte_at_a_time(server):
    with server.conn() as c:
        for b in encode_command("SET", "slow", "drip") + encode_command("GET", "slow") + b"PING\r\n":
            c.send_raw(bytes([b]))
        assert c.read_raw() == b"+OK\r\n"
        assert c.read_raw() == b"$4\r\ndrip\r\n"
        assert c.read_raw() == b"+PONG\r\n"


def test_100k_pipelined_pings_in_one_write(server):
    n = 100_000
    payload = b"*1\r\n$4\r\nPING\r\n" * (n // 2) + b"PING\r\n" * (n // 2)
    c = server.conn(timeout=60)
    errors = []

    def writer():
        try:
            c.sock.sendall(payload)  # one write call
        except OSError as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    expected = b"+PONG\r\n" * n
    got = bytearray()
    c.sock.settimeout(60)
    while len(got) < len(expected):
        chunk = c.sock.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    t.join(30)
    assert not errors, errors
    assert len(got) == len(expected), f"{got.count(b'+PONG')} of {n} PINGs answered"
    assert bytes(got) == expected
    assert c.call_raw("PING") == b"+PONG\r\n"


def test_large_value_roundtrip(server):
    value = bytes(range(256)) * (40 * 1024)  # 10 MiB, every byte value
    with server.conn(timeout=60) as c:
        assert c.call_raw("SET", "big", value) == b"+OK\r\n"
        assert c.call_raw("STRLEN", "big") == b":%d\r\n" % len(value)
        r = c.call("GET", "big")
        assert r.value == value
        assert c.call("GETRANGE", "big", 256 * 1024, 256 * 1024 + 255).value == bytes(range(256))


def test_many_arguments(server):
    n = 50_000
    args = ["MSET"]
    for i in range(n):
        args += [f"key:{i}", f"v{i}"]
    with server.conn(timeout=60) as c:
        assert c.call_raw(*args) == b"+OK\r\n"
        assert c.call_raw("DBSIZE") == b":%d\r\n" % n
        r = c.call("MGET", *[f"key:{i}" for i in range(0, n, 7)])
        assert r.to_py() == [f"v{i}".encode() for i in range(0, n, 7)]


def test_proto_max_bulk_len_config(make_server):
    """A lowered proto-max-bulk-len rejects bigger bulks with the same error."""
    pair = [make_server(kind, [("proto-max-bulk-len", "1mb")]) for kind in ("redis", "cinnabar")]
    _compare(pair, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n")
    _compare(pair, encode_command("SET", "k", b"x" * 1024))
    _compare(pair, encode_command("SETRANGE", "k", 1048576, "x"))
    _compare(pair, encode_command("APPEND", "k", b"y" * (1048576 - 1024)) + encode_command("APPEND", "k", "z"))


def _connected_clients(server) -> int:
    with RespConnection(server.host, server.port, timeout=5) as c:
        info = c.call("INFO", "clients").value.decode()
    for line in info.splitlines():
        if line.startswith("connected_clients:"):
            return int(line.split(":")[1]) - 1  # minus this observer
    raise AssertionError("no connected_clients in INFO clients")


def test_maxclients(make_server):
    replies = {}
    for kind in ("redis", "cinnabar"):
        s = make_server(kind, [("maxclients", "5")])
        conns = []
        for _ in range(5):
            c = s.conn()
            assert c.call_raw("PING") == b"+PONG\r\n"
            conns.append(c)
        extra = s.conn()
        try:
            data = extra.read_until_eof(timeout=10)
        except TimeoutError:
            data = extra.pending() + TIMEOUT
        replies[kind] = data
        # Freeing a slot lets a new client in.
        conns.pop().close()
        ok = poll_until(lambda: s.ping_ok(), 10)
        assert ok, f"{kind}: no slot freed after closing a client"
    assert replies["redis"] == b"-ERR max number of clients reached\r\n"
    assert replies["cinnabar"] == replies["redis"]


@pytest.mark.parametrize("kind", ["redis", "cinnabar"])
def test_client_that_never_reads_is_disconnected(make_server, kind):
    s = make_server(kind, [("client-output-buffer-limit", ["normal", "1mb", "0", "0"])])
    with s.conn() as setup:
        assert setup.call_raw("SET", "big", b"x" * 100_000) == b"+OK\r\n"
    rss_before = s.rss_kb()
    lazy = socket.create_connection((s.host, s.port))
    # ~100 MB of replies requested, none of them read.
    req = encode_command("GET", "big") * 1000
    lazy.settimeout(30)
    try:
        lazy.sendall(req)
    except OSError:
        pass  # the server may already have dropped us
    try:
        wait_for(lambda: _connected_clients(s) == 0, 20, "the non-reading client to be disconnected")
        assert s.alive() and s.ping_ok()
        grown_mb = (s.rss_kb() - rss_before) / 1024
        assert grown_mb < 64, f"{kind}: RSS grew by {grown_mb:.0f} MiB for a 1mb output limit"
    finally:
        lazy.close()
