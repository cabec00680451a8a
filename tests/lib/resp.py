# tests/lib/resp.py — owned by the test harness (tests/, .ci/, scripts/).
#
# Raw RESP client used by the differential tests.
#
# * encode_command(*args)  -> bytes of a RESP array of bulk strings.
# * parse_reply(buf, pos)  -> (Reply, end) or raises Incomplete; a full RESP2 +
#   RESP3 parser: + - : $ * _ , # ! = ( % ~ > | including null forms
#   ($-1, *-1), nested aggregates, attributes (| map followed by the real
#   reply) and RESP3 streamed strings/aggregates ($? ;N  and *? ... .).
# * RespConnection         -> socket client that sends commands / raw bytes
#   and reads back ONE complete reply as the exact raw bytes the server sent,
#   so replies can be compared byte for byte.
#
# No sleeps are used for synchronisation: reads block on the socket with a
# deadline.

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

CRLF = b"\r\n"

# Reply type bytes.
LINE_TYPES = b"+-:_,#("          # payload is the rest of the line
BULK_TYPES = b"$!="              # length-prefixed payload
AGG_TYPES = b"*%~>|"             # count-prefixed children

# Sentinels for "no reply": the connection was closed, or nothing arrived in time.
EOF = b"<EOF>"
TIMEOUT = b"<TIMEOUT>"


class Incomplete(Exception):
    """The buffer does not (yet) hold a complete reply."""


class ProtocolViolation(Exception):
    """The bytes can never become a valid RESP reply."""


@dataclass
class Reply:
    """A parsed reply. `raw` is the exact bytes it was parsed from.

    type:  one of the RESP type characters ('+', '-', ':', '$', '*', ...).
    value: bytes for scalar types (None for null bulk / null array / '_'),
           list[Reply] for aggregates (maps: flat k, v, k, v list).
    attrs: attribute Reply ('|') that preceded this reply, if any.
    """

    type: str
    value: object
    raw: bytes = b""
    attrs: "Reply | None" = None
    children: list = field(default_factory=list)

    @property
    def is_null(self) -> bool:
        return self.value is None

    @property
    def is_error(self) -> bool:
        return self.type in ("-", "!")

    @property
    def is_aggregate(self) -> bool:
        return self.type in "*%~>|"

    def shape(self):
        """Type-only structure used by @ignore-value comparisons."""
        if self.value is None:
            return (self.type, None)
        if self.is_aggregate:
            return (self.type, tuple(c.shape() for c in self.value))
        return (self.type,)

    def to_py(self):
        """Convenience conversion to plain python values (for assertions)."""
        if self.value is None:
            return None
        if self.type == ":":
            return int(self.value)
        if self.type == "*" or self.type == "~" or self.type == ">":
            return [c.to_py() for c in self.value]
        if self.type in "%|":
            vals = self.value
            return {vals[i].to_py(): vals[i + 1].to_py() for i in range(0, len(vals), 2)}
        if self.type == "#":
            return self.value == b"t"
        return self.value

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Reply({self.raw!r})"


def _readline(buf: bytes, pos: int) -> tuple[bytes, int]:
    end = buf.find(CRLF, pos)
    if end < 0:
        raise Incomplete
    return buf[pos:end], end + 2


def _parse_int(line: bytes, what: str) -> int:
    try:
        return int(line)
    except ValueError:
        raise ProtocolViolation(f"bad {what}: {line!r}") from None


def parse_reply(buf: bytes, pos: int = 0) -> tuple[Reply, int]:
    """Parse one complete reply starting at buf[pos]. Returns (Reply, end)."""
    start = pos
    if pos >= len(buf):
        raise Incomplete
    t = buf[pos : pos + 1]
    ts = t.decode("latin-1")
    line, pos = _readline(buf, pos + 1)

    if t in b"+-:(":
        if t == b":":
            _parse_int(line, "integer")
        return Reply(ts, line, buf[start:pos]), pos
    if t == b"_":
        if line != b"":
            raise ProtocolViolation(f"bad null: {line!r}")
        return Reply(ts, None, buf[start:pos]), pos
    if t == b",":
        return Reply(ts, line, buf[start:pos]), pos
    if t == b"#":
        if line not in (b"t", b"f"):
            raise ProtocolViolation(f"bad boolean: {line!r}")
        return Reply(ts, line, buf[start:pos]), pos

    if t in b"$!=":
        if t == b"$" and line == b"?":
            # RESP3 streamed string: ;<len>\r\n<data>\r\n ... ;0\r\n
            chunks = []
            while True:
                if pos >= len(buf):
                    raise Incomplete
                if buf[pos : pos + 1] != b";":
                    raise ProtocolViolation("bad streamed string chunk")
                cl, pos = _readline(buf, pos + 1)
                n = _parse_int(cl, "chunk length")
                if n == 0:
                    break
                if len(buf) < pos + n + 2:
                    raise Incomplete
                chunks.append(buf[pos : pos + n])
                if buf[pos + n : pos + n + 2] != CRLF:
                    raise ProtocolViolation("chunk not CRLF-terminated")
                pos += n + 2
            return Reply(ts, b"".join(chunks), buf[start:pos]), pos
        n = _parse_int(line, "bulk length")
        if n == -1 and t == b"$":
            return Reply(ts, None, buf[start:pos]), pos
        if n < 0:
            raise ProtocolViolation(f"negative bulk length {n}")
        if len(buf) < pos + n + 2:
            raise Incomplete
        data = buf[pos : pos + n]
        if buf[pos + n : pos + n + 2] != CRLF:
            raise ProtocolViolation("bulk not CRLF-terminated")
        pos += n + 2
        return Reply(ts, data, buf[start:pos]), pos

    if t in b"*%~>|":
        children: list[Reply] = []
        if line == b"?":
            # RESP3 streamed aggregate, terminated by ".\r\n"
            while True:
                if pos >= len(buf):
                    raise Incomplete
                if buf[pos : pos + 1] == b".":
                    _, pos = _readline(buf, pos + 1)
                    break
                child, pos = parse_reply(buf, pos)
                children.append(child)
        else:
            n = _parse_int(line, "aggregate length")
            if n == -1 and t == b"*":
                return Reply(ts, None, buf[start:pos]), pos
            if n < 0:
                raise ProtocolViolation(f"negative aggregate length {n}")
            if t in b"%|":
                n *= 2
            for _ in range(n):
                child, pos = parse_reply(buf, pos)
                children.append(child)
        if t == b"|":
            # An attribute is followed by the reply it annotates.
            attrs = Reply(ts, children, buf[start:pos])
            real, pos = parse_reply(buf, pos)
            real.attrs = attrs
            real.raw = buf[start:pos]
            return real, pos
        return Reply(ts, children, buf[start:pos]), pos

    raise ProtocolViolation(f"unknown reply type {t!r} at offset {start}")


def parse_all(buf: bytes) -> list[Reply]:
    """Parse a buffer holding zero or more complete replies."""
    out, pos = [], 0
    while pos < len(buf):
        r, pos = parse_reply(buf, pos)
        out.append(r)
    return out


def _to_bytes(a) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, bytearray | memoryview):
        return bytes(a)
    if isinstance(a, str):
        return a.encode("utf-8")
    if isinstance(a, bool):
        raise TypeError("bool is ambiguous as a RESP argument")
    if isinstance(a, int | float):
        return repr(a).encode()
    raise TypeError(f"cannot encode {type(a).__name__} as RESP argument")


def encode_command(*args) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = _to_bytes(a)
        parts.append(b"$%d\r\n" % len(b))
        parts.append(b)
        parts.append(CRLF)
    return b"".join(parts)


class RespConnection:
    """A plain TCP RESP connection reading one complete reply at a time."""

    def __init__(self, host: str, port: int, timeout: float = 10.0, connect_timeout: float = 5.0):
        if port == 6379:
            # Debian's packaged redis-server service may listen there: a test
            # talking to it would be testing the wrong server.
            raise ValueError("tests never use port 6379 (the system redis service)")
        self.host, self.port = host, port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0
        self.closed = False  # set when the peer closed the connection

    # -- sending -------------------------------------------------------
    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_command(self, *args) -> None:
        self.sock.sendall(encode_command(*args))

    # -- receiving -----------------------------------------------------
    def _fill(self, deadline: float) -> bool:
        """Read more bytes. False on EOF; raises TimeoutError past deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError from None
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        if self.pos:
            self.buf = self.buf[self.pos :]
            self.pos = 0
        self.buf += chunk
        return True

    def read_reply(self, timeout: float | None = None) -> Reply:
        """Read exactly one complete reply. Raises EOFError / TimeoutError."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                reply, end = parse_reply(self.buf, self.pos)
                self.pos = end
                return reply
            except Incomplete:
                pass
            if not self._fill(deadline):
                raise EOFError(f"connection closed; {len(self.buf) - self.pos} unparsed bytes")

    def read_raw(self, timeout: float | None = None) -> bytes:
        """One complete reply as raw bytes, or the EOF / TIMEOUT sentinels."""
        try:
            return self.read_reply(timeout).raw
        except EOFError:
            return EOF
        except TimeoutError:
            return TIMEOUT

    def read_until_eof(self, timeout: float | None = None) -> bytes:
        """All remaining bytes until the server closes (TimeoutError past deadline)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while self._fill(deadline):
            pass
        rest = self.buf[self.pos :]
        self.buf, self.pos = b"", 0
        return rest

    def pending(self) -> bytes:
        return self.buf[self.pos :]

    def call(self, *args, timeout: float | None = None) -> Reply:
        self.send_command(*args)
        return self.read_reply(timeout)

    def call_raw(self, *args, timeout: float | None = None) -> bytes:
        self.send_command(*args)
        return self.read_raw(timeout)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
