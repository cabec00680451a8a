# tests/lib/transcript.py — owned by the test harness (tests/, .ci/, scripts/).
#
# Differential transcripts: tests/transcripts/*.txt hold only commands; each
# file is replayed in lockstep against a fresh redis-server (the oracle) and a
# fresh cinnabar-server, and every reply must be byte-identical unless a named
# exception directive says otherwise. The format is documented in
# tests/transcripts/README.md. Summary:
#
#   # comment                      (whole-line comments only)
#   SET "a b" "\x00\xff"           one command, redis-cli quoting (sdssplitargs)
#
#   File-level (before the first command):
#   @cluster                       start both servers with cluster-enabled yes
#                                  (single node owning all 16384 slots)
#   @config NAME ARGS...           extra server directive for both servers
#
#   Steps:
#   @resp3 / @resp2                HELLO 3 / HELLO 2 on the current connection
#                                  (reply compared by shape only)
#   @conn NAME                     switch to connection NAME (opened lazily)
#   @reconnect                     close and reopen the current connection
#   @raw "BYTES"                   send raw bytes, read and compare ONE reply
#   @raw-n N "BYTES"               send raw bytes, read and compare N replies
#   @raw-noreply "BYTES"           send raw bytes, read nothing
#   @read                          read and compare one more reply
#   @expect-close                  read until the server closes the connection;
#                                  the bytes seen and the close must match
#   @wait-until "REPLY" CMD ARGS   poll CMD on both servers (deadline 10 s) until
#                                  its raw reply equals REPLY (condition, not sleep)
#
#   Named exceptions / modifiers for the NEXT command only:
#   @noreply                       the command must produce no reply
#                                  (CLIENT REPLY OFF/SKIP); nothing is read
#   @ignore-value                  compare reply shape only (types, nulls,
#                                  aggregate lengths), not the values
#   @sort                          compare the aggregate's elements as a multiset
#   @sort-pairs                    like @sort for flat k/v arrays and maps: pairs
#                                  are sorted as units
#   @range N                       numeric leaves may differ by at most N
#                                  (TTL/PTTL and other clock-dependent replies)
#   @allow-diff REASON...          documented divergence: both replies are read,
#                                  a difference is reported but not a failure
#
# `@sleep-ms` (or any sleep) is deliberately not supported.

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from .resp import EOF, TIMEOUT, Reply, RespConnection, encode_command, parse_reply
from .wait import poll_until

# ---------------------------------------------------------------------------
# redis-cli style argument splitting (port of sdssplitargs)


class TranscriptError(Exception):
    pass


_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "b": b"\b", "a": b"\a"}
_HEX = set("0123456789abcdefABCDEF")


def split_args(line: str) -> list[bytes]:
    """Split a line like redis-cli / sdssplitargs does. Raises on bad quoting."""
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in " \t\r\n\0":
            i += 1
        if i >= n:
            return args
        cur = bytearray()
        inq = insq = False
        while True:
            if inq:
                if i >= n:
                    raise TranscriptError("unbalanced double quotes")
                c = line[i]
                if c == "\\" and i + 3 < n + 0 and line[i + 1] == "x" and line[i + 2] in _HEX and line[i + 3] in _HEX:
                    cur.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == "\\" and i + 1 < n:
                    i += 1
                    cur += _ESCAPES.get(line[i], line[i].encode())
                elif c == '"':
                    if i + 1 < n and line[i + 1] not in " \t\r\n\0":
                        raise TranscriptError("closing quote must be followed by a space")
                    i += 1
                    break
                else:
                    cur += c.encode()
            elif insq:
                if i >= n:
                    raise TranscriptError("unbalanced single quotes")
                c = line[i]
                if c == "\\" and i + 1 < n and line[i + 1] == "'":
                    i += 1
                    cur += b"'"
                elif c == "'":
                    if i + 1 < n and line[i + 1] not in " \t\r\n\0":
                        raise TranscriptError("closing quote must be followed by a space")
                    i += 1
                    break
                else:
                    cur += c.encode()
            else:
                if i >= n:
                    break
                c = line[i]
                if c in " \t\r\n\0":
                    break
                if c == '"':
                    inq = True
                elif c == "'":
                    insq = True
                else:
                    cur += c.encode()
            i += 1
        args.append(bytes(cur))


# ---------------------------------------------------------------------------
# Parsing transcript files

MODIFIERS = {"@noreply", "@ignore-value", "@sort", "@sort-pairs", "@range", "@allow-diff"}
STEPS = {"@resp3", "@resp2", "@conn", "@reconnect", "@raw", "@raw-n", "@raw-noreply", "@read", "@expect-close", "@wait-until"}
FILE_LEVEL = {"@cluster", "@config"}


@dataclass
class Step:
    lineno: int
    kind: str                 # "cmd" or a directive name
    args: list = field(default_factory=list)
    mods: dict = field(default_factory=dict)
    text: str = ""


@dataclass
class Transcript:
    path: Path
    steps: list[Step]
    cluster: bool = False
    config: list = field(default_factory=list)   # [(name, [args])]


def parse_transcript(path: Path | str) -> Transcript:
    path = Path(path)
    steps: list[Step] = []
    cluster = False
    config: list = []
    mods: dict = {}
    seen_step = False
    for lineno, raw_line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path.name}:{lineno}"
        try:
            toks = split_args(line)
        except TranscriptError as e:
            raise TranscriptError(f"{where}: {e}") from None
        if line.startswith("@"):
            d = toks[0].decode()
            rest = toks[1:]
            if d in ("@sleep", "@sleep-ms"):
                raise TranscriptError(f"{where}: {d} is forbidden: synchronise on conditions (@wait-until)")
            if d in FILE_LEVEL:
                if seen_step:
                    raise TranscriptError(f"{where}: {d} must come before the first command")
                if d == "@cluster":
                    cluster = True
                else:
                    if not rest:
                        raise TranscriptError(f"{where}: @config needs a directive name")
                    config.append((rest[0].decode(), [a.decode("utf-8", "surrogateescape") for a in rest[1:]]))
                continue
            if d in MODIFIERS:
                if d == "@range":
                    if len(rest) != 1:
                        raise TranscriptError(f"{where}: @range takes one number")
                    mods["range"] = float(rest[0])
                elif d == "@allow-diff":
                    if not rest:
                        raise TranscriptError(f"{where}: @allow-diff needs a reason")
                    mods["allow-diff"] = b" ".join(rest).decode()
                else:
                    mods[d[1:]] = True
                continue
            if d in STEPS:
                if d == "@raw-n":
                    if len(rest) != 2:
                        raise TranscriptError(f"{where}: @raw-n N \"BYTES\"")
                    rest = [int(rest[0]), rest[1]]
                elif d in ("@raw", "@raw-noreply") and len(rest) != 1:
                    raise TranscriptError(f"{where}: {d} takes exactly one quoted argument")
                elif d == "@conn" and len(rest) != 1:
                    raise TranscriptError(f"{where}: @conn NAME")
                elif d == "@wait-until" and len(rest) < 2:
                    raise TranscriptError(f"{where}: @wait-until \"REPLY\" CMD ARGS...")
                steps.append(Step(lineno, d, rest, mods, line))
                mods = {}
                seen_step = True
                continue
            raise TranscriptError(f"{where}: unknown directive {d}")
        if not toks:
            continue
        steps.append(Step(lineno, "cmd", toks, mods, line))
        mods = {}
        seen_step = True
    if mods:
        raise TranscriptError(f"{path.name}: modifiers {sorted(mods)} at end of file apply to nothing")
    return Transcript(path, steps, cluster, config)


# ---------------------------------------------------------------------------
# Comparison


def _num(r: Reply):
    if r.type in ":,(" or (r.type == "$" and r.value is not None):
        try:
            return float(r.value)
        except (TypeError, ValueError):
            return None
    return None


def _within(a: Reply, b: Reply, tol: float) -> bool:
    if a.type != b.type:
        return False
    if a.is_aggregate:
        if a.value is None or b.value is None:
            return a.value is None and b.value is None
        return len(a.value) == len(b.value) and all(_within(x, y, tol) for x, y in zip(a.value, b.value))
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        return abs(na - nb) <= tol
    return a.raw == b.raw


def _sorted_key(r: Reply, pairs: bool):
    if not r.is_aggregate or r.value is None:
        return (r.type, r.raw)
    kids = [c.raw for c in r.value]
    if pairs:
        items = sorted(zip(kids[0::2], kids[1::2]))
    else:
        items = sorted(kids)
    return (r.type, len(r.value), tuple(items))


def compare(a: bytes, b: bytes, mods: dict) -> bool:
    """True when replies a (redis) and b (cinnabar) match under `mods`."""
    if a == b:
        return True
    if a in (EOF, TIMEOUT) or b in (EOF, TIMEOUT):
        return False
    try:
        ra, _ = parse_reply(a)
        rb, _ = parse_reply(b)
    except Exception:
        return False
    if mods.get("ignore-value"):
        return ra.shape() == rb.shape()
    if mods.get("sort") or mods.get("sort-pairs"):
        return _sorted_key(ra, bool(mods.get("sort-pairs"))) == _sorted_key(rb, bool(mods.get("sort-pairs")))
    if "range" in mods:
        return _within(ra, rb, mods["range"])
    return False


# ---------------------------------------------------------------------------
# Running


class Side:
    """One server plus its named connections, as seen by the runner."""

    def __init__(self, label: str, server, read_timeout: float = 10.0):
        self.label = label
        self.server = server
        self.read_timeout = read_timeout
        self.conns: dict[str, RespConnection] = {}
        self.current = "default"

    @property
    def conn(self) -> RespConnection:
        c = self.conns.get(self.current)
        if c is None:
            c = RespConnection(self.server.host, self.server.port, timeout=self.read_timeout)
            self.conns[self.current] = c
        return c

    def reconnect(self) -> None:
        old = self.conns.pop(self.current, None)
        if old is not None:
            old.close()
        _ = self.conn

    def send(self, data: bytes) -> None:
        c = self.conn
        if c.closed:
            return
        try:
            c.send_raw(data)
        except OSError:
            c.closed = True

    def read(self) -> bytes:
        c = self.conn
        if c.closed and not c.pending():
            return EOF
        return c.read_raw()

    def read_until_close(self) -> bytes:
        c = self.conn
        try:
            data = c.read_until_eof(timeout=self.read_timeout)
        except TimeoutError:
            return c.pending() + TIMEOUT
        return data + EOF

    def close(self) -> None:
        for c in self.conns.values():
            c.close()
        self.conns.clear()


@dataclass
class Mismatch:
    lineno: int
    text: str
    a: bytes
    b: bytes
    note: str = ""

    def format(self, path: Path, la: str, lb: str) -> str:
        w = max(len(la), len(lb))
        s = f"{path}:{self.lineno}: {self.text}\n"
        if self.note:
            s += f"    ({self.note})\n"
        s += f"    {la:<{w}} : {self.a!r}\n    {lb:<{w}} : {self.b!r}"
        return s


class TranscriptResult:
    def __init__(self, path: Path, labels):
        self.path = path
        self.labels = labels
        self.mismatches: list[Mismatch] = []
        self.allowed: list[Mismatch] = []
        self.aborted: str | None = None
        self.steps_run = 0

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.aborted is None

    def summary(self) -> str:
        """Mismatch counts per command name, e.g. 'BITCOUNT x30, SET x2'."""
        counts: dict[str, int] = {}
        for m in self.mismatches:
            word = m.text.split()[0] if m.text else "?"
            word = word.upper() if not word.startswith("@") else word
            counts[word] = counts.get(word, 0) + 1
        return ", ".join(f"{k} x{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))

    def report(self, limit: int = 12) -> str:
        la, lb = self.labels
        out = []
        if self.mismatches:
            n = len(self.mismatches)
            out.append(f"{n} mismatching repl{'y' if n == 1 else 'ies'} in {self.path.name} ({la} vs {lb}); by command: {self.summary()}")
            for i, m in enumerate(self.mismatches[:limit]):
                out.append(("FIRST " if i == 0 else "") + m.format(self.path, la, lb))
            if n > limit:
                out.append(f"... and {n - limit} more (replay: python3 -m tests.lib.transcript --compare {self.path})")
        if self.aborted:
            out.append(f"ABORTED: {self.aborted}")
        if self.allowed:
            out.append(f"{len(self.allowed)} allowed difference(s) (@allow-diff):")
            for m in self.allowed:
                out.append(m.format(self.path, la, lb))
        return "\n".join(out)


def _wait_until(side: Side, expected: bytes, cmd: list[bytes], timeout: float = 10.0) -> bytes:
    """Poll `cmd` until its reply is `expected` (or the deadline passes)."""
    holder = [b""]

    def cond() -> bool:
        side.send(encode_command(*cmd))
        holder[0] = side.read()
        return holder[0] == expected or holder[0] in (EOF, TIMEOUT)

    poll_until(cond, timeout)
    return holder[0]


def _run_step(st: Step, sides: list[Side]) -> tuple[list[list[bytes]], dict, str]:
    """Execute one step on every side. Returns (replies per read, mods, note)."""
    mods = st.mods
    reads: list[list[bytes]] = []
    note = ""

    def send_all(data: bytes) -> None:
        for s in sides:
            s.send(data)

    if st.kind == "cmd":
        send_all(encode_command(*st.args))
        if not mods.get("noreply"):
            reads.append([s.read() for s in sides])
    elif st.kind in ("@resp3", "@resp2"):
        send_all(encode_command("HELLO", "3" if st.kind == "@resp3" else "2"))
        reads.append([s.read() for s in sides])
        mods = dict(mods, **{"ignore-value": True})
    elif st.kind == "@conn":
        for s in sides:
            s.current = st.args[0].decode()
            _ = s.conn
    elif st.kind == "@reconnect":
        for s in sides:
            s.reconnect()
    elif st.kind in ("@raw", "@raw-noreply", "@raw-n"):
        n = {"@raw": 1, "@raw-noreply": 0}.get(st.kind, st.args[0])
        send_all(st.args[-1])
        for _ in range(n):
            reads.append([s.read() for s in sides])
    elif st.kind == "@read":
        reads.append([s.read() for s in sides])
    elif st.kind == "@expect-close":
        reads.append([s.read_until_close() for s in sides])
        note = "bytes until close"
    elif st.kind == "@wait-until":
        expected = st.args[0]
        got = [_wait_until(s, expected, st.args[1:]) for s in sides]
        if any(g != expected for g in got):
            reads.append(got)
            note = f"condition {expected!r} not reached within the deadline"
    else:  # pragma: no cover
        raise TranscriptError(f"unhandled step {st.kind}")
    return reads, mods, note


def run_transcript(t: Transcript, a: Side, b: Side, max_mismatches: int = 200) -> TranscriptResult:
    """Replay `t` in lockstep on a (oracle) and b (candidate) and compare."""
    res = TranscriptResult(t.path, (a.label, b.label))
    for st in t.steps:
        res.steps_run += 1
        reads, mods, note = _run_step(st, [a, b])
        for ra, rb in reads:
            ok = False if note.startswith("condition") else compare(ra, rb, mods)
            if not ok:
                desc = note or ", ".join(f"@{k}" + ("" if v is True else f" {v}") for k, v in mods.items())
                m = Mismatch(st.lineno, st.text, ra, rb, desc)
                (res.allowed if "allow-diff" in mods else res.mismatches).append(m)
            if not ok and (ra == EOF) != (rb == EOF) and st.kind != "@expect-close":
                who = b if rb == EOF else a
                res.aborted = (f"line {st.lineno}: {who.label} closed the connection where the other side "
                               f"replied; the rest of the transcript would only repeat <EOF>"
                               + (f"; server log:\n{who.server.log_highlights()}" if who.server is not None else ""))
                return res
            if TIMEOUT in (ra, rb) or ra.endswith(TIMEOUT) or rb.endswith(TIMEOUT):
                res.aborted = f"line {st.lineno}: no reply within {a.read_timeout}s; replies would be out of sync from here"
                return res
        for side in (a, b):
            srv = side.server
            if srv is not None and not srv.alive():
                res.aborted = f"line {st.lineno}: {side.label} server process died; server log:\n{srv.log_highlights()}"
                return res
        if len(res.mismatches) >= max_mismatches:
            res.aborted = f"stopped after {max_mismatches} mismatches"
            return res
    return res


# ---------------------------------------------------------------------------
# CLI: show what redis answers for a transcript (to write/review transcripts)
#   python3 -m tests.lib.transcript [--server BIN] FILE...


def _main(argv: list[str]) -> int:
    """Replay transcripts against one server and print every reply, or with
    --compare against redis-server and CINNABAR_SERVER and print every
    mismatch (no limit)."""
    import argparse

    from .server import REDIS_SERVER, Server, cinnabar_binary

    p = argparse.ArgumentParser(description=_main.__doc__)
    p.add_argument("--server", default=REDIS_SERVER, help="server for the dump mode")
    p.add_argument("--compare", action="store_true", help="compare redis-server with $CINNABAR_SERVER")
    p.add_argument("files", nargs="+")
    ns = p.parse_args(argv)
    rc = 0
    for f in ns.files:
        t = parse_transcript(f)
        if ns.compare:
            with Server(REDIS_SERVER, list(t.config), cluster=t.cluster, name="redis") as ra, \
                 Server(cinnabar_binary(), list(t.config), cluster=t.cluster, name="cinnabar") as rb:
                a, b = Side("redis-server", ra), Side("cinnabar-server", rb)
                res = run_transcript(t, a, b)
                a.close()
                b.close()
            print(f"== {t.path.name}: {'OK' if res.ok else 'MISMATCH'}")
            if not res.ok or res.allowed:
                print(res.report(limit=10**9))
            rc |= 0 if res.ok else 1
            continue
        with Server(ns.server, list(t.config), cluster=t.cluster, name="dump") as srv:
            side = Side("dump", srv)
            for st in t.steps:
                reads, mods, note = _run_step(st, [side])
                print(f"{t.path.name}:{st.lineno}: {st.text}")
                for (r,) in reads:
                    print(f"    -> {r!r}")
                if note:
                    print(f"    !! {note}")
                if any(r[0] == TIMEOUT for r in reads):
                    break
            side.close()
    return rc


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
