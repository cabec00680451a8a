# tests/test_persistence.py — issue 6 acceptance: AOF (Redis 7.0 multi-part:
# appenddirname, manifest, base + incr files), RDB snapshots, both against the
# real redis-server 7.0.15 ([redis] validates every expectation) and
# cinnabar-server ([cinnabar]).
#
#  1  appendfsync always: 8 clients, SIGKILL at a seeded random moment, restart
#     on the same dir: no acknowledged write lost, nothing doubled or half applied
#  2  appendfsync everysec: same; the acknowledged writes lost span <= ~2 s
#  3  torn tail of the last incr file (seeded random cuts): aof-load-truncated
#     yes loads the prefix (and keeps appending cleanly), no refuses to start;
#     a corrupted byte in the middle refuses to start naming the file
#  4  BGREWRITEAOF and BGSAVE under a continuous write load: nothing acknowledged
#     is lost; peak RSS and the longest PING stall are printed (not asserted)
#  5  cluster node (walkthrough config, appendonly yes) SIGKILLed and restarted:
#     same id, slots, data; cluster_state:ok
#  6  interop: AOF dirs (rdb preamble / no preamble / timestamps / fresh) and
#     dump.rdb written by one server load in the other, same data
#  7  replies: SAVE, BGSAVE, BGREWRITEAOF, LASTSAVE, CONFIG SET appendonly,
#     INFO persistence fields, DEBUG RELOAD, save points, file names
#  8  `cinnabar check-aof` / `cinnabar check-rdb` vs redis-check-aof / -rdb
#  9  the AOF's disk fills up (tmpfs): -MISCONF, recovery, nothing acknowledged lost
#
# Randomness is seeded: PERSIST_SEED=<n> overrides the per-test default seed
# (printed; run with -s to see it and the measurements).

from __future__ import annotations

import contextlib
import copy
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from lib.persist import (
    AckClient,
    DirServer,
    base_file,
    copy_files,
    dataset,
    diff_datasets,
    group_rss_kb,
    last_incr_file,
    mget_all,
    mutate_rich,
    parse_aof,
    pipeline,
    populate_rich,
    read_manifest,
    verify_ack_clients,
    vm_hwm_kb,
    wait_bgsave_done,
    wait_rewrite_done,
)
from lib.resp import RespConnection, encode_command
from lib.server import REDIS_SERVER, cinnabar_binary
from lib.wait import poll_until, wait_for

KINDS = ["redis", "cinnabar"]
REDIS_CHECK_AOF = shutil.which("redis-check-aof") or "/usr/bin/redis-check-aof"
REDIS_CHECK_RDB = shutil.which("redis-check-rdb") or "/usr/bin/redis-check-rdb"
AOF_DIR = "appendonlydir"


def is_redis(kind: str) -> bool:
    """True for redis-server itself (also the [cinnabar] side of a harness self-check)."""
    binary = {"redis": REDIS_SERVER, "cinnabar": cinnabar_binary()}[kind]
    return os.path.realpath(binary) == os.path.realpath(REDIS_SERVER)


def seed(default: int) -> int:
    s = int(os.environ.get("PERSIST_SEED", default))
    print(f"seed={s} (PERSIST_SEED={s} to repeat)")
    return s


class Servers:
    """Factory of DirServers under one temp dir; all stopped (and the dir
    removed unless KEEP_TEST_DIRS=1) at teardown."""

    def __init__(self, request):
        self.base = Path(tempfile.mkdtemp(prefix="cinnabar-persist-"))
        self.made: list[DirServer] = []
        self.n = 0
        lst = getattr(request.node, "_harness_servers", None)
        if lst is None:
            lst = []
            request.node._harness_servers = lst
        self.report = lst

    def home(self, label: str) -> Path:
        self.n += 1
        p = self.base / f"{self.n:03d}-{label}"
        p.mkdir(parents=True)
        return p

    def new(self, kind: str, directives=None, *, home: Path | None = None, data_dir: Path | None = None,
            label: str | None = None) -> DirServer:
        binary = {"redis": REDIS_SERVER, "cinnabar": cinnabar_binary()}[kind]
        home = home or self.home(label or kind)
        s = DirServer(kind, binary, home, directives, data_dir=data_dir, name=f"{kind}[{home.name}]")
        self.made.append(s)
        self.report.append(s)
        return s

    def forget(self, s: DirServer) -> None:
        """Stop s and delete its home (keeps a 100-case loop's disk use and failure report small)."""
        s.stop(grace=3)
        self.made.remove(s)
        if s in self.report:
            self.report.remove(s)
        shutil.rmtree(s.home, ignore_errors=True)

    def close(self):
        errs = []
        for s in self.made:
            try:
                s.stop(grace=3)
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                errs.append(e)
        if os.environ.get("KEEP_TEST_DIRS") != "1":
            shutil.rmtree(self.base, ignore_errors=True)
        if errs:
            raise errs[0]


@pytest.fixture
def servers(request):
    f = Servers(request)
    yield f
    f.close()


def ok(r) -> None:
    assert r.raw == b"+OK\r\n", r.raw


def bgrewriteaof(c) -> None:
    r = c.call("BGREWRITEAOF")
    assert r.raw == b"+Background append only file rewriting started\r\n", r.raw


# ===========================================================================
# 1 + 2: SIGKILL under 8 concurrent writers

NCLIENTS = 8
NKEYS = 50_000


def sigkill_workload(servers, kind: str, fsync: str, rng: random.Random):
    s = servers.new(kind, {"appendonly": "yes", "appendfsync": fsync})
    s.start()
    per = NKEYS // NCLIENTS
    ops_per_client = per + per // 10 + per // 10 + per // 50
    threshold = rng.randint(int(0.15 * ops_per_client * NCLIENTS), int(0.8 * ops_per_client * NCLIENTS))
    print(f"{kind}: appendfsync {fsync}: SIGKILL after {threshold} acknowledged operations "
          f"(of {ops_per_client * NCLIENTS} planned, {NKEYS} keys)")
    clients = [AckClient(s.host, s.port, cid, per, depth=rng.choice([1, 4, 8, 16])) for cid in range(NCLIENTS)]
    for c in clients:
        c.start()
    reached = poll_until(lambda: sum(c.acked for c in clients) >= threshold or any(c.errors for c in clients)
                         or all(not c.is_alive() for c in clients), timeout=180, interval=0.002)
    kill_t = time.monotonic()
    s.kill9()
    for c in clients:
        c.join(30)
        assert not c.is_alive(), f"client {c.cid} still running after the server was killed"
    errors = [e for c in clients for e in c.errors]
    assert not errors, f"{kind}: client errors before the kill: {errors[:5]}"
    assert reached, f"{kind}: only {sum(c.acked for c in clients)} operations acknowledged in 180 s"
    assert not all(c.done for c in clients), "every client finished before the kill: the kill was not 'while writing'"
    s.start()
    with s.conn() as conn:
        report = verify_ack_clients(conn, clients)
    report["kill_t"] = kill_t
    return s, clients, report


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_01_fsync_always_sigkill_loses_no_acknowledged_write(servers, kind):
    rng = random.Random(seed(6001))
    s, clients, rep = sigkill_workload(servers, kind, "always", rng)
    print(f"{kind}: acknowledged {rep['acked_total']} ops ({rep['acked_sets']} SETs of {rep['sent_sets']} sent), "
          f"INCR acked {rep['incr_acked']} sent {rep['incr_sent']} recovered {rep['counter']}, list {rep['list_len']}, "
          f"lost {len(rep['lost'])}")
    assert not rep["problems"], f"{kind}: inconsistent state after SIGKILL + restart: {rep['problems'][:10]}"
    assert not rep["lost"], (
        f"{kind}: appendfsync always lost {len(rep['lost'])} acknowledged writes, e.g. {rep['lost'][:5]}")
    assert rep["incr_acked"] <= rep["counter"] <= rep["incr_sent"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_02_fsync_everysec_sigkill_loses_at_most_about_a_second(servers, kind):
    rng = random.Random(seed(6002))
    s, clients, rep = sigkill_workload(servers, kind, "everysec", rng)
    lost = rep["lost"]
    if lost:
        first, last = lost[0][1], lost[-1][1]
        window = rep["kill_t"] - first
        print(f"{kind}: everysec: lost {len(lost)}/{rep['acked_total']} acknowledged ops "
              f"({100.0 * len(lost) / max(1, rep['acked_total']):.3f}%), acknowledged between "
              f"{rep['kill_t'] - first:.3f}s and {rep['kill_t'] - last:.3f}s before the SIGKILL (span {last - first:.3f}s)")
    else:
        window = 0.0
        print(f"{kind}: everysec: lost 0/{rep['acked_total']} acknowledged ops")
    assert not rep["problems"], f"{kind}: inconsistent state after SIGKILL + restart: {rep['problems'][:10]}"
    assert rep["counter"] <= rep["incr_sent"]
    assert window <= 2.5, (
        f"{kind}: appendfsync everysec lost writes acknowledged up to {window:.2f}s before the SIGKILL "
        f"({len(lost)} ops, first {lost[0][0]}); the guarantee is about one second")


# ===========================================================================
# 3: torn tail / corruption of the last incr file


class AofModel:
    """Replays a RESP AOF over a known starting state. Supports exactly the
    commands the torn-tail workload sends (as redis propagates them)."""

    def __init__(self, state: dict):
        self.state = state
        self.db = 0

    def apply(self, argv: list[bytes]) -> None:
        name = argv[0].upper()
        st = self.state
        if name == b"SELECT":
            self.db = int(argv[1])
        elif name == b"SET":
            assert len(argv) == 3, f"unexpected SET form in the AOF: {argv}"
            st[(self.db, argv[1])] = ("string", argv[2])
        elif name == b"INCR":
            t, v = st.get((self.db, argv[1]), ("string", b"0"))
            st[(self.db, argv[1])] = ("string", str(int(v) + 1).encode())
        elif name == b"RPUSH":
            t, v = st.get((self.db, argv[1]), ("list", []))
            st[(self.db, argv[1])] = ("list", v + list(argv[2:]))
        elif name == b"DEL":
            for k in argv[1:]:
                st.pop((self.db, k), None)
        else:
            raise AssertionError(f"command not expected in the AOF of the torn-tail workload: {argv[:3]}")


def torn_source(servers, kind: str, rng: random.Random):
    """A cleanly stopped server whose AOF is a base (200 keys, after BGREWRITEAOF)
    plus an incr file of ~1500 mixed writes. Returns (home, incr path, commit
    points {offset: expected dataset}, boundaries)."""
    s = servers.new(kind, {"appendonly": "yes"}, label=f"{kind}-torn-src")
    s.start()
    with s.conn() as c:
        pipeline(c, [("SET", f"b:{i}", f"base{i}") for i in range(200)] + [("RPUSH", "lst", "base")])
        bgrewriteaof(c)
        wait_rewrite_done(s)
        cmds = []
        for i in range(1500):
            r = rng.random()
            if r < 0.5:
                cmds.append(("SET", f"t:{i}", f"v{i}-" + "z" * rng.randint(0, 40)))
            elif r < 0.65:
                cmds.append(("INCR", "ctr"))
            elif r < 0.8:
                cmds.append(("RPUSH", "lst", str(i)))
            elif r < 0.85:
                cmds.append(("DEL", f"b:{rng.randrange(200)}"))
            elif r < 0.95:
                cmds += [("MULTI",), ("SET", f"ma:{i}", str(i)), ("INCR", "ctr"), ("SET", f"mb:{i}", str(i)), ("EXEC",)]
            else:
                cmds += [("SELECT", "2"), ("SET", f"d2:{i}", str(i)), ("SELECT", "0")]
        c.send_raw(b"".join(encode_command(*x) for x in cmds))
        for x in cmds:
            r = c.read_reply()
            assert not r.is_error, (x, r.raw)
        want_final = dataset(c)
    s.shutdown_clean()
    aof_dir = s.home / AOF_DIR
    incr = last_incr_file(aof_dir)
    base = base_file(aof_dir)
    assert base is not None and base.name.endswith(".base.rdb"), f"after BGREWRITEAOF the base should be an RDB: {read_manifest(aof_dir)}"
    data = incr.read_bytes()
    commands = parse_aof(data)
    # replay: commit points are offsets where the file may end cleanly
    start_state = {(0, f"b:{i}".encode()): ("string", f"base{i}".encode()) for i in range(200)}
    start_state[(0, b"lst")] = ("list", [b"base"])
    model = AofModel(start_state)
    commits = {0: copy.deepcopy(model.state)}
    pending = None
    for start, end, argv in commands:
        name = argv[0].upper()
        if name == b"MULTI":
            assert pending is None
            pending = []
            continue
        if name == b"EXEC":
            assert pending is not None
            for a in pending:
                model.apply(a)
            pending = None
            commits[end] = copy.deepcopy(model.state)
            continue
        if pending is not None:
            pending.append(argv)
            continue
        model.apply(argv)
        commits[end] = None  # filled lazily (deepcopy of 1500 states is slow)
    assert commands and commands[-1][1] == len(data)
    final = {(db, k): (t, v, -1) for (db, k), (t, v) in model.state.items()}
    probs = diff_datasets(want_final, final, 0)
    assert not probs, f"the AOF model disagrees with the server's own final state: {probs[:5]}"
    return s.home, incr, commands, len(data)


def expected_at(commands, cut: int, start_state: dict) -> tuple[dict, bool, bool]:
    """(dataset expected after loading the file cut at `cut`, truncated?, cut inside a MULTI block?)."""
    model = AofModel(copy.deepcopy(start_state))
    pending = None
    valid = 0
    committed = copy.deepcopy(model.state)
    for start, end, argv in commands:
        if end > cut:
            break
        name = argv[0].upper()
        if name == b"MULTI":
            pending = []
        elif name == b"EXEC":
            for a in pending:
                model.apply(a)
            pending = None
        elif pending is not None:
            pending.append(argv)
        else:
            model.apply(argv)
        if pending is None:
            valid = end
    truncated = valid != cut
    in_multi = pending is not None and truncated
    return {(db, k): (t, v, -1) for (db, k), (t, v) in model.state.items()}, truncated, in_multi


def torn_start_state():
    st = {(0, f"b:{i}".encode()): ("string", f"base{i}".encode()) for i in range(200)}
    st[(0, b"lst")] = ("list", [b"base"])
    return st


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_03_torn_tail_of_incr_file(servers, kind):
    rng = random.Random(seed(6003))
    home, incr, commands, size = torn_source(servers, kind, rng)
    ncases = 100 if kind == "cinnabar" else 10
    # a few cuts exactly on command boundaries (outside and inside a MULTI block),
    # the whole file, one byte short of it; the rest uniform
    clean_ends, multi_ends, open_multi = [], [], False
    for _, e, a in commands:
        name = a[0].upper()
        open_multi = (open_multi or name == b"MULTI") and name != b"EXEC"
        (multi_ends if open_multi else clean_ends).append(e)
    cuts = [rng.choice(clean_ends[len(clean_ends) // 4:]), rng.choice(multi_ends), size, size - 1]
    cuts += [rng.randrange(1, size) for _ in range(ncases - len(cuts))]
    rel = incr.relative_to(home)
    start_state = torn_start_state()
    summary = {"truncated": 0, "clean": 0}
    for n, cut in enumerate(cuts):
        want, truncated, in_multi = expected_at(commands, cut, start_state)
        summary["truncated" if truncated else "clean"] += 1
        what = f"{kind}: case {n}: {rel} cut at {cut}/{size}" + (" (inside a MULTI block)" if in_multi else "")
        # redis 7.0.15 truncates a torn MULTI block after its last complete command,
        # not before the MULTI: the next writes are appended inside the open
        # transaction and are dropped (or refused) at the following start. Cinnabar
        # must not copy that data loss; the check is skipped for redis-server only.
        check_append = truncated and n % 4 == 0 and not (is_redis(kind) and in_multi)
        # aof-load-truncated yes: starts with the prefix
        s = servers.new(kind, {"appendonly": "yes", "aof-load-truncated": "yes"}, label=f"cut{n}-yes")
        copy_files(home, s.home)
        os.truncate(s.home / rel, cut)
        s.start()
        log = s.log_text()
        with s.conn() as c:
            got = dataset(c)
            assert not diff_datasets(want, got, 0), f"{what}: loaded state differs: {diff_datasets(want, got, 0)[:5]}"
            if truncated:
                assert re.search("truncat", log, re.I) and incr.name in log, (
                    f"{what}: the log does not mention truncating {incr.name}:\n{log[-2000:]}")
                if check_append:
                    # the server keeps appending after the valid prefix: a restart with
                    # aof-load-truncated no must load it cleanly with the new write
                    ok(c.call("SET", "after:load", "1"))
        if check_append:
            s.shutdown_clean()
            s.set_directive("aof-load-truncated", "no")
            s.start()
            with s.conn() as c:
                want2 = dict(want)
                want2[(0, b"after:load")] = ("string", b"1", -1)
                got2 = dataset(c)
                assert not diff_datasets(want2, got2, 0), (
                    f"{what}: after the truncated load + one SET + restart: {diff_datasets(want2, got2, 0)[:5]}")
        s.stop()
        # aof-load-truncated no: refuses when truncated, starts when the cut is clean
        s2 = servers.new(kind, {"appendonly": "yes", "aof-load-truncated": "no"}, label=f"cut{n}-no")
        copy_files(home, s2.home)
        os.truncate(s2.home / rel, cut)
        rc, log2 = s2.start_expect_exit()
        if truncated:
            assert rc not in (None, 0), f"{what}: aof-load-truncated no: expected a refusal, got exit {rc}:\n{log2[-1500:]}"
            assert incr.name in log2, f"{what}: the refusal does not name {incr.name}:\n{log2[-1500:]}"
        else:
            assert rc is None, f"{what}: a clean cut must load with aof-load-truncated no (exit {rc}):\n{log2[-1500:]}"
        servers.forget(s)
        servers.forget(s2)
    print(f"{kind}: {len(cuts)} cuts: {summary}")
    assert summary["truncated"] and summary["clean"]


def flip(path: Path, offset: int, byte: bytes) -> None:
    b = bytearray(path.read_bytes())
    b[offset:offset + 1] = byte
    path.write_bytes(bytes(b))


@pytest.mark.parametrize("kind", KINDS)
def test_03b_corrupt_byte_refuses_to_start(servers, kind):
    rng = random.Random(seed(6033))
    home, incr, commands, size = torn_source(servers, kind, rng)
    rel = incr.relative_to(home)
    mid = [c for c in commands[len(commands) // 3: 2 * len(commands) // 3] if c[2][0].upper() == b"SET"]
    start, end, argv = mid[len(mid) // 2]
    data = incr.read_bytes()
    second_dollar = data.index(b"$", data.index(b"$", start) + 1)
    len_digit = data.index(b"$", start) + 1  # "$3" of SET -> "$9"
    cases = [
        ("'$' of the 2nd argument -> 'x'", rel, second_dollar, b"x"),
        ("'*' of a command -> '+'", rel, start, b"+"),
        ("length digit of argv[0] -> 9", rel, len_digit, b"9"),
    ]
    base = base_file(home / AOF_DIR)
    bsize = base.stat().st_size
    cases.append(("a byte in the middle of the base RDB", base.relative_to(home), bsize // 2, None))
    for label, relpath, off, byte in cases:
        for truncated_opt in ("yes", "no"):
            s = servers.new(kind, {"appendonly": "yes", "aof-load-truncated": truncated_opt}, label="corrupt")
            copy_files(home, s.home)
            p = s.home / relpath
            if byte is None:
                byte = bytes([p.read_bytes()[off] ^ 0x5A])
            flip(p, off, byte)
            rc, log = s.start_expect_exit()
            what = f"{kind}: {label} ({relpath} offset {off}), aof-load-truncated {truncated_opt}"
            lines = [ln for ln in log.splitlines() if relpath.name in ln or re.search("bad file format|corrupt|checksum|short read|invalid|unexpected|unknown", ln, re.I)]
            print(f"{what}: exit {rc}: " + " | ".join(ln.split(" ", 4)[-1] for ln in lines[-2:]))
            assert rc not in (None, 0), f"{what}: expected a refusal to start, got exit {rc}:\n{log[-1500:]}"
            if relpath == rel:
                assert incr.name in log, f"{what}: the error does not name {incr.name}:\n{log[-1500:]}"
                assert re.search(r"bad file format|corrupt|invalid|malformed|unknown command", log, re.I), (
                    f"{what}: no format error in the log (redis: 'Bad file format reading the append only file "
                    f"{incr.name}: make a backup ...'):\n{log[-1500:]}")
            servers.forget(s)


# ===========================================================================
# 4: BGREWRITEAOF and BGSAVE under a continuous write load

_MEASURE: dict[str, str] = {}


@pytest.fixture(scope="module")
def measurements(request):
    yield _MEASURE
    if _MEASURE:
        tr = request.config.pluginmanager.get_plugin("terminalreporter")
        line = "persistence under load: " + " || ".join(f"{k}: {v}" for k, v in sorted(_MEASURE.items()))
        if tr is not None:
            tr.write_line("")
            tr.write_line(line)
        else:
            print(line)


class Writer(threading.Thread):
    def __init__(self, host, port):
        super().__init__(daemon=True)
        self.host, self.port = host, port
        self.stop_ev = threading.Event()
        self.acked_sets = 0      # SET w:0 .. w:acked_sets-1 acknowledged
        self.sent_sets = 0
        self.incr_acked = 0
        self.incr_sent = 0
        self.error = None

    def run(self):
        try:
            with RespConnection(self.host, self.port, timeout=60) as c:
                i = 0
                while not self.stop_ev.is_set():
                    self.sent_sets += 1
                    self.incr_sent += 1
                    c.send_raw(b"".join([
                        b"*3\r\n$3\r\nSET\r\n$%d\r\nw:%d\r\n$%d\r\n%d\r\n" % (len(b"w:%d" % i), i, len(b"%d" % i), i),
                        b"*2\r\n$4\r\nINCR\r\n$2\r\nwc\r\n",
                    ]))
                    r1, r2 = c.read_reply(), c.read_reply()
                    if r1.raw != b"+OK\r\n" or r2.type != ":":
                        self.error = f"SET/INCR replies {r1.raw!r} {r2.raw!r}"
                        return
                    self.acked_sets = i + 1
                    self.incr_acked += 1
                    i += 1
        except Exception as e:  # noqa: BLE001
            self.error = repr(e)


class Prober(threading.Thread):
    def __init__(self, server: DirServer):
        super().__init__(daemon=True)
        self.s = server
        self.stop_ev = threading.Event()
        self.max_stall = 0.0
        self.peak_rss = 0
        self.n = 0
        self.error = None

    def run(self):
        try:
            with RespConnection(self.s.host, self.s.port, timeout=60) as c:
                while not self.stop_ev.is_set():
                    t0 = time.monotonic()
                    r = c.call("PING")
                    r2 = c.call("GET", "w:0")
                    dt = time.monotonic() - t0
                    if r.raw != b"+PONG\r\n" or r2.is_error:
                        self.error = f"PING/GET {r.raw!r} {r2.raw!r}"
                        return
                    self.max_stall = max(self.max_stall, dt)
                    self.n += 1
                    if self.n % 20 == 0:
                        self.peak_rss = max(self.peak_rss, group_rss_kb(self.s.pid))
        except Exception as e:  # noqa: BLE001
            self.error = repr(e)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_04_rewrite_and_bgsave_under_write_load(servers, kind, measurements):
    s = servers.new(kind, {"appendonly": "yes", "appendfsync": "always"})
    s.start()
    # a data set worth rewriting: 100k keys x 100 bytes
    with s.conn() as c:
        for a in range(0, 100_000, 1000):
            args = []
            for i in range(a, a + 1000):
                args += [f"pre:{i}", "p" * 90 + str(i)]
            ok(c.call("MSET", *args))
    rss0 = group_rss_kb(s.pid)
    w, p = Writer(s.host, s.port), Prober(s)
    w.start()
    p.start()
    try:
        wait_for(lambda: w.acked_sets >= 1000 or w.error, 60, "1000 writes before the rewrite")
        rw0 = int(s.info()["aof_rewrites"])
        t0 = time.monotonic()
        assert s.call("BGREWRITEAOF").raw == b"+Background append only file rewriting started\r\n"
        wait_for(lambda: int(s.info()["aof_rewrites"]) > rw0 and s.info()["aof_rewrite_in_progress"] == "0", 60,
                 "BGREWRITEAOF to finish")
        t_rewrite = time.monotonic() - t0
        info = s.info()
        assert info["aof_last_bgrewrite_status"] == "ok", info
        mark = w.acked_sets
        wait_for(lambda: w.acked_sets >= mark + 500 or w.error, 60, "500 more writes after the rewrite")
        before_bgsave_sets, before_bgsave_incr = w.acked_sets, w.incr_acked
        t0 = time.monotonic()
        assert s.call("BGSAVE").raw == b"+Background saving started\r\n"
        info = wait_bgsave_done(s)
        t_bgsave = time.monotonic() - t0
        assert info["rdb_last_bgsave_status"] == "ok", info
        mark = w.acked_sets
        wait_for(lambda: w.acked_sets >= mark + 500 or w.error, 60, "500 more writes after the BGSAVE")
    finally:
        w.stop_ev.set()
        p.stop_ev.set()
        w.join(30)
        p.join(30)
    assert w.error is None, w.error
    assert p.error is None, p.error
    hwm = vm_hwm_kb(s.pid)
    used_peak = s.info("memory").get("used_memory_peak")
    line = (f"rewrite {t_rewrite:.2f}s, bgsave {t_bgsave:.2f}s, max PING+GET stall {p.max_stall * 1000:.1f} ms "
            f"over {p.n} probes, RSS before {rss0 // 1024} MB, peak RSS (process + children) {p.peak_rss // 1024} MB, "
            f"VmHWM {hwm // 1024} MB, used_memory_peak {int(used_peak) // (1 << 20)} MB, {w.acked_sets} writes")
    measurements[kind] = line
    print(f"{kind}: {line}")
    s.kill9()
    s.start()
    with s.conn() as c:
        vals = mget_all(c, [f"w:{i}" for i in range(w.acked_sets)])
        missing = [k for k, v in vals.items() if v is None]
        assert not missing, f"{kind}: {len(missing)} acknowledged writes lost across rewrite + SIGKILL, e.g. {missing[:3]}"
        assert all(v == k[2:].encode() for k, v in vals.items())
        wc = int(c.call("GET", "wc").to_py())
        assert w.incr_acked <= wc <= w.incr_sent
        assert c.call("GET", "pre:99999").to_py() == b"p" * 90 + b"99999"
        assert c.call("DBSIZE").to_py() in (100_000 + w.acked_sets + 1, 100_000 + w.sent_sets + 1)
    # the BGSAVE snapshot holds everything acknowledged before BGSAVE was sent
    r = servers.new(kind, {"appendonly": "no"}, label=f"{kind}-bgsave-rdb")
    shutil.copy2(s.home / "dump.rdb", r.home / "dump.rdb")
    r.start()
    with r.conn() as c:
        n = c.call("DBSIZE").to_py()
        vals = mget_all(c, [f"w:{i}" for i in range(before_bgsave_sets)])
        missing = [k for k, v in vals.items() if v is None]
        assert not missing, f"{kind}: dump.rdb from BGSAVE misses {len(missing)} writes acknowledged before it, e.g. {missing[:3]}"
        wc = int(c.call("GET", "wc").to_py())
        assert before_bgsave_incr <= wc <= w.incr_sent
        assert 100_000 + before_bgsave_sets + 1 <= n <= 100_000 + w.sent_sets + 1


# ===========================================================================
# 5: a cluster node killed with SIGKILL keeps its data and its place


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_05_cluster_node_sigkill_restart_keeps_data_and_place(kind, request):
    from lib_cluster import NodePool, attach_logs, form_cluster, keys_for_slots, wait_cluster_ok, wait_same_topology

    pool = NodePool(prefix="cinnabar-persist-cluster-")
    try:
        nodes = pool.add_block([kind] * 6, node_timeout=5000, extra_for=lambda k: ("appendfsync always",))
        attach_logs(request, nodes)
        masters, reps = nodes[:3], nodes[3:]
        form_cluster(masters, dict(zip(reps, masters)), timeout=40)
        victim = masters[1]
        me = [x for x in victim.nodes() if "myself" in x["flags"]][0]
        slots = sorted(me["slots"])
        keys = keys_for_slots(slots[:: max(1, len(slots) // 300)][:300], prefix="p6")
        with RespConnection(victim.host, victim.port, timeout=30) as c:
            pipeline(c, [("SET", k, f"v{sl}") for sl, k in keys.items()])
        sig = wait_same_topology(nodes, 30)
        victim.kill9()
        victim.restart()
        assert victim.myid() == me["id"], "node id changed across SIGKILL + restart"
        me2 = [x for x in victim.nodes() if "myself" in x["flags"]][0]
        assert me2["slots"] == me["slots"] and "master" in me2["flags"], me2["line"]
        wait_cluster_ok(nodes, 30, size=3)
        assert wait_same_topology(nodes, 30) == sig
        with RespConnection(victim.host, victim.port, timeout=30) as c:
            vals = mget_all_cluster(c, keys)
        missing = [k for sl, k in keys.items() if vals[k] != f"v{sl}".encode()]
        assert not missing, f"{kind}: {len(missing)}/{len(keys)} keys lost across SIGKILL + restart (appendonly yes, always)"
    finally:
        pool.close()


def mget_all_cluster(c, keys: dict) -> dict:
    replies = pipeline(c, [("GET", k) for k in keys.values()])
    return {k: r.to_py() for k, r in zip(keys.values(), replies)}


# ===========================================================================
# 6: interop — files written by one server load in the other

PAIRS = [("redis", "redis"), ("redis", "cinnabar"), ("cinnabar", "redis"), ("cinnabar", "cinnabar")]
AOF_VARIANTS = {
    "preamble": {"aof-use-rdb-preamble": "yes"},
    "no-preamble": {"aof-use-rdb-preamble": "no"},
    "timestamps": {"aof-timestamp-enabled": "yes"},
    "fresh": {},
}


@pytest.mark.parametrize("variant", list(AOF_VARIANTS))
@pytest.mark.parametrize("writer,reader", PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_06_aof_interop(servers, writer, reader, variant):
    w = servers.new(writer, {"appendonly": "yes", **AOF_VARIANTS[variant]}, label=f"{writer}-aof-writer")
    w.start()
    with w.conn() as c:
        populate_rich(c)
        if variant == "timestamps":
            # redis writes a #TS annotation when the second changes: make the incr file hold two
            t = time.time()
            wait_for(lambda: int(time.time()) > int(t), 5, "the next second")
        elif variant != "fresh":
            ok(c.call("SET", "before:rewrite", "1"))
            assert c.call("BGREWRITEAOF").raw == b"+Background append only file rewriting started\r\n"
            wait_rewrite_done(w)
        mutate_rich(c)
        want = dataset(c)
    t0 = time.monotonic()
    w.shutdown_clean()
    aof_dir = w.home / AOF_DIR
    man = read_manifest(aof_dir)
    assert [e["type"] for e in man][:1] == ["b"] and man[-1]["type"] == "i", man
    base = base_file(aof_dir)
    incr = last_incr_file(aof_dir)
    if variant == "no-preamble":
        assert base.name.endswith(".base.aof") and base.read_bytes()[:1] == b"*", base
    else:
        assert base.name.endswith(".base.rdb") and base.read_bytes()[:5] == b"REDIS", base
    if variant == "timestamps":
        assert b"#TS:" in incr.read_bytes(), f"{incr} has no #TS: annotation"
    assert incr.stat().st_size > 0
    r = servers.new(reader, {"appendonly": "yes"}, label=f"{reader}-aof-reader")
    copy_files(w.home, r.home)
    r.start()
    with r.conn() as c:
        got = dataset(c)
    tol = int((time.monotonic() - t0) * 1000) + 2000
    probs = diff_datasets(want, got, tol)
    assert not probs, f"{writer} AOF ({variant}) loaded by {reader}: {len(probs)} differences: {probs[:8]}"
    assert len(got) > 600


@pytest.mark.parametrize("writer,reader", PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_06b_rdb_interop(servers, writer, reader):
    w = servers.new(writer, {"appendonly": "no"}, label=f"{writer}-rdb-writer")
    w.start()
    with w.conn() as c:
        populate_rich(c)
        mutate_rich(c)
        want = dataset(c)
        ok(c.call("SAVE"))
    t0 = time.monotonic()
    w.kill9()
    rdb = w.home / "dump.rdb"
    assert rdb.read_bytes()[:5] == b"REDIS"
    r = servers.new(reader, {"appendonly": "no"}, label=f"{reader}-rdb-reader")
    shutil.copy2(rdb, r.home / "dump.rdb")
    r.start()
    with r.conn() as c:
        got = dataset(c)
        assert int(r.info()["rdb_last_load_keys_loaded"]) == len(want)
    tol = int((time.monotonic() - t0) * 1000) + 2000
    probs = diff_datasets(want, got, tol)
    assert not probs, f"{writer} dump.rdb loaded by {reader}: {len(probs)} differences: {probs[:8]}"


# ===========================================================================
# 7: replies and files


@pytest.mark.parametrize("kind", KINDS)
def test_07_save_bgsave_lastsave(servers, kind):
    s = servers.new(kind, {"appendonly": "no"})
    s.start()
    with s.conn() as c:
        last0 = c.call("LASTSAVE").to_py()
        assert isinstance(last0, int) and abs(last0 - time.time()) < 60
        ok(c.call("SET", "a", "1"))
        assert int(s.info()["rdb_changes_since_last_save"]) >= 1
        # LASTSAVE has a one-second resolution: wait for the clock to pass it
        wait_for(lambda: time.time() >= last0 + 1.05, 5, "the wall clock to pass LASTSAVE")
        ok(c.call("SAVE"))
        last1 = c.call("LASTSAVE").to_py()
        assert last1 > last0, (last0, last1)
        info = s.info()
        assert info["rdb_changes_since_last_save"] == "0", info
        assert int(info["rdb_last_save_time"]) == last1
        assert (s.home / "dump.rdb").exists()
        ok(c.call("SET", "b", "2"))
        r = c.call("BGSAVE")
        assert r.raw == b"+Background saving started\r\n", r.raw
        info = wait_bgsave_done(s)
        assert info["rdb_last_bgsave_status"] == "ok"
        assert info["rdb_changes_since_last_save"] == "0", info
        assert int(info["rdb_saves"]) >= 2, info
        r = c.call("BGSAVE", "SCHEDULE")
        assert r.raw in (b"+Background saving started\r\n", b"+Background saving scheduled\r\n"), r.raw
        wait_bgsave_done(s)
        r = c.call("SAVE", "extra")
        assert r.is_error, r.raw
    s.kill9()
    s.start()  # loads dump.rdb
    assert s.call("MGET", "a", "b").to_py() == [b"1", b"2"]
    assert int(s.info()["rdb_last_load_keys_loaded"]) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_07_bgrewriteaof_replies_and_files(servers, kind):
    s = servers.new(kind, {"appendonly": "yes"})
    s.start()
    aof = s.home / AOF_DIR
    man0 = read_manifest(aof)
    assert [(e["file"], e["type"]) for e in man0] == [("appendonly.aof.1.base.rdb", "b"), ("appendonly.aof.1.incr.aof", "i")], man0
    with s.conn() as c:
        ok(c.call("SET", "x", "1"))
        r = c.call("BGREWRITEAOF")
        assert r.raw == b"+Background append only file rewriting started\r\n", r.raw
        info = wait_rewrite_done(s)
        assert info["aof_last_bgrewrite_status"] == "ok" and int(info["aof_rewrites"]) >= 1, info
        wait_for(lambda: [e["file"] for e in read_manifest(aof)] == ["appendonly.aof.2.base.rdb", "appendonly.aof.2.incr.aof"],
                 10, "manifest: base 2 + incr 2")
        # the superseded files are deleted
        wait_for(lambda: sorted(p.name for p in aof.iterdir()) == [
            "appendonly.aof.2.base.rdb", "appendonly.aof.2.incr.aof", "appendonly.aof.manifest"], 10,
            f"only the new files in {aof}")
        ok(c.call("SET", "y", "2"))
    s.kill9()
    s.start()
    assert s.call("MGET", "x", "y").to_py() == [b"1", b"2"]


@pytest.mark.parametrize("kind", KINDS)
def test_07_bgrewriteaof_with_appendonly_off_writes_a_base(servers, kind):
    s = servers.new(kind, {"appendonly": "no"})
    s.start()
    ok(s.call("SET", "x", "1"))
    assert s.call("BGREWRITEAOF").raw == b"+Background append only file rewriting started\r\n"
    wait_rewrite_done(s)
    man = read_manifest(s.home / AOF_DIR)
    assert [e["type"] for e in man] == ["b"], man
    assert (s.home / AOF_DIR / man[0]["file"]).exists()
    assert s.info()["aof_enabled"] == "0"


@pytest.mark.parametrize("kind", KINDS)
def test_07_config_set_appendonly_at_runtime(servers, kind):
    s = servers.new(kind, {"appendonly": "no", "appendfsync": "always"})
    s.start()
    with s.conn() as c:
        pipeline(c, [("SET", f"pre:{i}", str(i)) for i in range(500)])
        assert s.info()["aof_enabled"] == "0"
        assert not (s.home / AOF_DIR).exists()
        ok(c.call("CONFIG", "SET", "appendonly", "yes"))
        assert c.call("CONFIG", "GET", "appendonly").to_py() == [b"appendonly", b"yes"]
        info = wait_rewrite_done(s)
        assert info["aof_enabled"] == "1", info
        wait_for(lambda: (s.home / AOF_DIR / "appendonly.aof.manifest").exists(), 10, "the manifest")
        pipeline(c, [("SET", f"post:{i}", str(i)) for i in range(500)])
    s.kill9()
    s.set_directive("appendonly", "yes")
    s.start()
    with s.conn() as c:
        vals = mget_all(c, [f"pre:{i}" for i in range(500)] + [f"post:{i}" for i in range(500)])
        assert all(v is not None for v in vals.values()), [k for k, v in vals.items() if v is None][:5]
        ok(c.call("CONFIG", "SET", "appendonly", "no"))
        assert s.info()["aof_enabled"] == "0"
        r = c.call("CONFIG", "SET", "appendonly", "maybe")
        assert r.is_error, r.raw


@pytest.mark.parametrize("kind", KINDS)
def test_07_appendonly_off_then_on_again_starts_from_the_dataset(servers, kind):
    """yes → no → yes: the second AOF is built from the dataset of that moment; the files
    of the first one (which miss the writes made while the AOF was off) must not be
    replayed on top of it."""
    s = servers.new(kind, {"appendonly": "no"})
    s.start()
    with s.conn() as c:
        ok(c.call("CONFIG", "SET", "appendonly", "yes"))
        wait_rewrite_done(s)
        for _ in range(2):
            c.call("INCR", "n")
        ok(c.call("CONFIG", "SET", "appendonly", "no"))
        c.call("INCR", "n")
        ok(c.call("CONFIG", "SET", "appendonly", "yes"))
        info = wait_rewrite_done(s)
        assert info["aof_enabled"] == "1", info
        c.call("INCR", "n")
        ok(c.call("SET", "last", "x"))
    s.kill9()
    s.set_directive("appendonly", "yes")
    s.start()
    with s.conn() as c:
        assert c.call("GET", "n").to_py() == b"4"
        assert c.call("GET", "last").to_py() == b"x"


# Every field of redis 7.0.15's INFO persistence section.
INFO_PERSISTENCE_FIELDS = """
loading async_loading current_cow_peak current_cow_size current_cow_size_age current_fork_perc
current_save_keys_processed current_save_keys_total rdb_changes_since_last_save rdb_bgsave_in_progress
rdb_last_save_time rdb_last_bgsave_status rdb_last_bgsave_time_sec rdb_current_bgsave_time_sec rdb_saves
rdb_last_cow_size rdb_last_load_keys_expired rdb_last_load_keys_loaded aof_enabled aof_rewrite_in_progress
aof_rewrite_scheduled aof_last_rewrite_time_sec aof_current_rewrite_time_sec aof_last_bgrewrite_status
aof_rewrites aof_rewrites_consecutive_failures aof_last_write_status aof_last_cow_size module_fork_in_progress
module_fork_last_cow_size
""".split()
INFO_AOF_ON_FIELDS = "aof_current_size aof_base_size aof_pending_rewrite aof_buffer_length aof_pending_bio_fsync aof_delayed_fsync".split()


@pytest.mark.parametrize("kind", KINDS)
def test_07_info_persistence_fields(servers, kind):
    s = servers.new(kind, {"appendonly": "yes"})
    s.start()
    text = s.call("INFO", "persistence").to_py().decode()
    assert text.startswith("# Persistence\r\n"), text[:40]
    info = s.info()
    names = [ln.split(":", 1)[0] for ln in text.splitlines() if ":" in ln]
    missing = [f for f in INFO_PERSISTENCE_FIELDS + INFO_AOF_ON_FIELDS if f not in info]
    assert not missing, f"{kind}: INFO persistence lacks {missing}"
    assert names[: len(INFO_PERSISTENCE_FIELDS)] == INFO_PERSISTENCE_FIELDS, "field order differs from redis 7.0"
    assert info["loading"] == "0" and info["aof_enabled"] == "1" and info["rdb_bgsave_in_progress"] == "0"
    assert info["aof_last_bgrewrite_status"] == "ok" and info["rdb_last_bgsave_status"] == "ok"
    assert info["aof_last_write_status"] == "ok"
    s2 = servers.new(kind, {"appendonly": "no"})
    s2.start()
    i2 = s2.info()
    assert i2["aof_enabled"] == "0" and not any(f in i2 for f in INFO_AOF_ON_FIELDS), i2
    assert "persistence" in s2.call("INFO").to_py().decode().lower()


@pytest.mark.parametrize("kind", KINDS)
def test_07_debug_reload(servers, kind):
    s = servers.new(kind, {"appendonly": "no", "enable-debug-command": "yes"})
    s.start()
    with s.conn() as c:
        populate_rich(c, n=120)
        want = dataset(c)
        r = c.call("DEBUG", "RELOAD")
        if r.is_error and re.search(rb"unknown|not supported|syntax", r.raw, re.I):
            pytest.skip(f"DEBUG RELOAD not supported: {r.raw!r}")
        ok(r)
        got = dataset(c)
    assert not diff_datasets(want, got, 5000)
    assert (s.home / "dump.rdb").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_07_save_points(servers, kind):
    # save "" : no save points; a clean shutdown writes no dump.rdb
    s = servers.new(kind, {"save": ""}, label="nosave")
    s.start()
    assert s.call("CONFIG", "GET", "save").to_py() == [b"save", b""]
    ok(s.call("SET", "k", "v"))
    s.shutdown_clean()
    assert not (s.home / "dump.rdb").exists(), "save \"\" must disable the RDB written at shutdown"
    # a save point: the clean shutdown saves, the restart loads it
    s = servers.new(kind, [("save", "3600", "1")], label="save3600")
    s.start()
    assert s.call("CONFIG", "GET", "save").to_py() == [b"save", b"3600 1"]
    ok(s.call("SET", "k", "v"))
    s.shutdown_clean()
    assert (s.home / "dump.rdb").exists(), "a clean shutdown with save points must write dump.rdb"
    s.start()
    assert s.call("GET", "k").to_py() == b"v"
    # "1 1": the server saves by itself about a second after a change
    ok(s.call("CONFIG", "SET", "save", "1 1"))
    assert s.call("CONFIG", "GET", "save").to_py() == [b"save", b"1 1"]
    saves0 = int(s.info()["rdb_saves"])
    ok(s.call("SET", "k2", "v2"))
    wait_for(lambda: int(s.info()["rdb_saves"]) > saves0 and s.info()["rdb_changes_since_last_save"] == "0", 15,
             "a save triggered by the save point")
    ok(s.call("CONFIG", "SET", "save", ""))
    assert s.call("CONFIG", "GET", "save").to_py() == [b"save", b""]
    s.kill9()
    s.start()
    assert s.call("MGET", "k", "k2").to_py() == [b"v", b"v2"]


@pytest.mark.parametrize("kind", KINDS)
def test_07_save_directive_as_one_quoted_argument(servers, kind):
    """redis 7 splits a single argument of a multi-argument directive on spaces:
    `save "3600 1 300 100"` in a config file is the same as `save 3600 1 300 100`."""
    s = servers.new(kind, {"save": "3600 1 300 100"})
    s.start()
    assert s.call("CONFIG", "GET", "save").to_py() == [b"save", b"3600 1 300 100"]
    ok(s.call("CONFIG", "SET", "save", "900 1"))
    assert s.call("CONFIG", "GET", "save").to_py() == [b"save", b"900 1"]
    assert s.call("CONFIG", "SET", "save", "900").is_error


@pytest.mark.parametrize("kind", KINDS)
def test_07_file_names_honour_config(servers, kind):
    home = servers.home(f"{kind}-names")
    data = home / "data"
    s = servers.new(kind, {"appendonly": "yes", "dbfilename": "my.rdb", "appendfilename": "foo.aof",
                           "appenddirname": "aofs"}, home=home, data_dir=data)
    s.start()
    with s.conn() as c:
        assert c.call("CONFIG", "GET", "dir").to_py() == [b"dir", str(data).encode()]
        assert c.call("CONFIG", "GET", "dbfilename").to_py() == [b"dbfilename", b"my.rdb"]
        assert c.call("CONFIG", "GET", "appendfilename").to_py() == [b"appendfilename", b"foo.aof"]
        assert c.call("CONFIG", "GET", "appenddirname").to_py() == [b"appenddirname", b"aofs"]
        assert sorted(p.name for p in (data / "aofs").iterdir()) == ["foo.aof.1.base.rdb", "foo.aof.1.incr.aof", "foo.aof.manifest"]
        assert read_manifest(data / "aofs", "foo.aof")[-1] == {"file": "foo.aof.1.incr.aof", "seq": "1", "type": "i"}
        ok(c.call("SET", "a", "1"))
        ok(c.call("SAVE"))
        assert (data / "my.rdb").exists() and not (data / "dump.rdb").exists()
        bgrewriteaof(c)
        wait_rewrite_done(s)
        wait_for(lambda: sorted(p.name for p in (data / "aofs").iterdir()) == [
            "foo.aof.2.base.rdb", "foo.aof.2.incr.aof", "foo.aof.manifest"], 10, "rewritten foo.aof files")
        ok(c.call("SET", "b", "2"))
        r = c.call("CONFIG", "SET", "appenddirname", "other")
        assert r.is_error, r.raw  # immutable
    leftovers = [p.name for p in home.iterdir() if p.name not in ("data", "server.conf") and not p.name.startswith("server.")]
    assert not leftovers, f"files written outside dir: {leftovers}"
    s.kill9()
    s.start()
    assert s.call("MGET", "a", "b").to_py() == [b"1", b"2"]


# ===========================================================================
# 8: checkers


def cinnabar_cli() -> str:
    env = os.environ.get("CINNABAR_CLI")
    if env:
        return env
    return str(Path(cinnabar_binary()).with_name("cinnabar"))


def need_subcommand(sub: str) -> str:
    cli = cinnabar_cli()
    if not os.path.exists(cli):
        pytest.skip(f"{cli} does not exist")
    cp = subprocess.run([cli, sub, "--help"], capture_output=True, timeout=30)
    if cp.returncode != 0:
        pytest.skip(f"`cinnabar {sub}` does not exist yet (exit {cp.returncode}: {cp.stderr.decode(errors='replace')[:200]})")
    return cli


def run(argv, stdin=b"") -> tuple[int, str]:
    cp = subprocess.run(argv, input=stdin, capture_output=True, timeout=120)
    return cp.returncode, (cp.stdout + cp.stderr).decode(errors="replace")


def ok_up_to(out: str) -> list[str]:
    return re.findall(r"ok_up_to=(\d+)", out)


@pytest.fixture
def redis_aof_home(servers):
    s = servers.new("redis", {"appendonly": "yes"}, label="check-src")
    s.start()
    with s.conn() as c:
        populate_rich(c, n=300)
        bgrewriteaof(c)
        wait_rewrite_done(s)
        mutate_rich(c)
        ok(c.call("SAVE"))
    s.shutdown_clean()
    return s.home


def test_08_check_aof_matches_redis_check_aof(servers, redis_aof_home):
    cli = need_subcommand("check-aof")
    src = redis_aof_home / AOF_DIR
    incr = last_incr_file(src)
    data = incr.read_bytes()
    commands = parse_aof(data)
    mid_start = commands[len(commands) // 2][0]
    cases = {
        "good manifest": (lambda d: None, "appendonly.aof.manifest"),
        "good single incr file": (lambda d: None, incr.name),
        "truncated last incr": (lambda d: os.truncate(d / incr.name, len(data) - 7), "appendonly.aof.manifest"),
        "truncated incr file alone": (lambda d: os.truncate(d / incr.name, len(data) - 7), incr.name),
        "corrupt '*' mid file": (lambda d: flip(d / incr.name, mid_start, b"+"), "appendonly.aof.manifest"),
        "corrupt '$' mid file": (lambda d: flip(d / incr.name, data.index(b"$", mid_start), b"x"), incr.name),
    }
    for label, (mutate, target) in cases.items():
        results = {}
        for tool in ("redis", "cinnabar"):
            d = servers.home(f"chk-{tool}")
            shutil.copytree(src, d, dirs_exist_ok=True)
            mutate(d)
            argv = [REDIS_CHECK_AOF, str(d / target)] if tool == "redis" else [cli, "check-aof", str(d / target)]
            results[tool] = run(argv)
        (rc_r, out_r), (rc_c, out_c) = results["redis"], results["cinnabar"]
        print(f"check-aof {label}: redis exit {rc_r} / cinnabar exit {rc_c}")
        assert rc_c == rc_r, f"{label}: cinnabar check-aof exit {rc_c}, redis-check-aof {rc_r}\n--- redis:\n{out_r[-800:]}\n--- cinnabar:\n{out_c[-800:]}"
        if ok_up_to(out_r) and ok_up_to(out_c):
            assert ok_up_to(out_c) == ok_up_to(out_r), f"{label}: ok_up_to differs:\n{out_r[-600:]}\n---\n{out_c[-600:]}"
    # --fix on a truncated tail: both cut the file to the same length, and redis then loads it
    sizes = {}
    for tool in ("redis", "cinnabar"):
        d = servers.home(f"fix-{tool}")
        shutil.copytree(src, d / AOF_DIR)
        os.truncate(d / AOF_DIR / incr.name, len(data) - 7)
        target = str(d / AOF_DIR / "appendonly.aof.manifest")
        argv = [REDIS_CHECK_AOF, "--fix", target] if tool == "redis" else [cli, "check-aof", "--fix", target]
        rc, out = run(argv, stdin=b"y\n")
        assert rc == 0, f"{tool} --fix exit {rc}:\n{out[-800:]}"
        sizes[tool] = (d / AOF_DIR / incr.name).stat().st_size
        rs = servers.new("redis", {"appendonly": "yes", "aof-load-truncated": "no"}, home=d)
        rs.start()
        rs.stop()
    assert sizes["cinnabar"] == sizes["redis"], sizes


def test_08_check_rdb_matches_redis_check_rdb(servers, redis_aof_home):
    cli = need_subcommand("check-rdb")
    rdb = redis_aof_home / "dump.rdb"
    size = rdb.stat().st_size
    cases = {
        "good": lambda p: None,
        "truncated": lambda p: os.truncate(p, size - 100),
        "truncated to the header": lambda p: os.truncate(p, 9),
        "corrupt byte mid file": lambda p: flip(p, size // 2, bytes([rdb.read_bytes()[size // 2] ^ 0x5A])),
        "bad magic": lambda p: flip(p, 0, b"X"),
    }
    for label, mutate in cases.items():
        results = {}
        for tool in ("redis", "cinnabar"):
            d = servers.home(f"chkrdb-{tool}")
            p = d / "dump.rdb"
            shutil.copy2(rdb, p)
            mutate(p)
            argv = [REDIS_CHECK_RDB, str(p)] if tool == "redis" else [cli, "check-rdb", str(p)]
            results[tool] = run(argv)
        (rc_r, out_r), (rc_c, out_c) = results["redis"], results["cinnabar"]
        print(f"check-rdb {label}: redis exit {rc_r} / cinnabar exit {rc_c}")
        assert rc_c == rc_r, f"{label}: cinnabar check-rdb exit {rc_c}, redis-check-rdb {rc_r}\n--- redis:\n{out_r[-800:]}\n--- cinnabar:\n{out_c[-800:]}"
    rc, out = run([cli, "check-rdb", str(redis_aof_home / "nonexistent.rdb")])
    assert rc != 0, out


@contextlib.contextmanager
def small_disk(servers, label: str):
    """A 2 MB tmpfs as a data dir (skips when mounting is not allowed); every server is
    stopped and the tmpfs unmounted afterwards."""
    data = servers.home(label)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(data)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield data
    finally:
        for x in list(servers.made):
            x.stop(grace=3)
        subprocess.run(["umount", "-l", str(data)], capture_output=True)


def fill_disk(data: Path, leave_bytes: int = 64 * 1024) -> Path:
    """Fills the filesystem of `data` up to `leave_bytes` free; returns the filler file."""
    st = os.statvfs(data)
    filler = data / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave_bytes))
    return filler


@pytest.mark.parametrize("kind", KINDS)
def test_09_aof_disk_full_refuses_writes_then_recovers(servers, kind):
    """The AOF's filesystem fills up (a 2 MB tmpfs): Redis's behaviour with appendfsync
    everysec — the write that hit the error is still acknowledged, later writes (and PING) get
    `-MISCONF Errors writing to the AOF file: No space left on device`, reads keep working,
    INFO says aof_last_write_status:err. When space comes back the queued bytes are written,
    writes are accepted again, and after a restart every acknowledged write is there."""
    with small_disk(servers, f"{kind}-tmpfs") as data:
        s = servers.new(kind, [("appendonly", ["yes"]), ("appendfsync", ["everysec"]),
                               ("auto-aof-rewrite-percentage", ["0"])], data_dir=data)
        s.start()
        c = s.conn()
        filler = fill_disk(data)
        value = "v" * 4096
        acked: list[str] = []
        refused = None
        for i in range(200):
            r = c.call("SET", f"k{i}", value)
            if r.raw == b"+OK\r\n":
                acked.append(f"k{i}")
                continue
            refused = r.raw
            break
        assert refused == b"-MISCONF Errors writing to the AOF file: No space left on device\r\n", refused
        assert len(acked) >= 5, acked
        assert c.call("PING").raw == refused
        assert c.call("GET", acked[0]).raw == b"$4096\r\n" + value.encode() + b"\r\n"
        assert "aof_last_write_status:err" in c.call("INFO", "persistence").to_py().decode()
        # Space comes back: the pending bytes are written, writes are accepted again.
        filler.unlink()
        wait_for(lambda: c.call("SET", "probe", "1").raw == b"+OK\r\n", 15, "writes to be accepted again")
        assert "aof_last_write_status:ok" in c.call("INFO", "persistence").to_py().decode()
        acked.append("probe")
        s.stop()
        s.start()
        c = s.conn()
        for k in acked:
            got = c.call("EXISTS", k).raw
            assert got == b":1\r\n", f"{k} acknowledged but lost after restart"
        assert c.call("DBSIZE").to_py() == len(acked)
        print(f"[{kind}] {len(acked)} writes acknowledged, refused with {refused!r} once the disk was full")


@pytest.mark.parametrize("preamble", [False, True], ids=["commands", "rdb-preamble"])
@pytest.mark.parametrize("kind", KINDS)
def test_10_pre_7_0_single_aof_is_upgraded(servers, kind, preamble):
    """A Redis 6 data dir (a single `appendonly.aof`, commands or RDB preamble + commands)
    started with `appendonly yes`: the file moves into appendonlydir as the base named in a
    new manifest (Redis 7.0's aofUpgradePrepare), its data is loaded, and new writes go to
    a new incr file that survives a restart."""
    data = servers.home(f"{kind}-old-aof")
    commands = b"".join(encode_command(*c) for c in (
        ["SELECT", "0"], ["SET", "a", "1"], ["RPUSH", "l", "x", "y"], ["HSET", "h", "f", "v"],
        ["INCR", "a"], ["SELECT", "2"], ["SET", "other", "db2"]))
    old = commands
    if preamble:
        # The RDB part: a dump.rdb made by a server of the same kind, then commands after it.
        src = servers.new(kind, [("dbfilename", ["seed.rdb"])])
        src.start()
        c = src.conn()
        ok(c.call("SET", "from-rdb", "yes"))
        ok(c.call("SAVE"))
        src.stop()
        old = (src.data_dir / "seed.rdb").read_bytes() + commands
    (data / "appendonly.aof").write_bytes(old)
    s = servers.new(kind, [("appendonly", ["yes"])], data_dir=data)
    s.start()
    c = s.conn()
    assert c.call("GET", "a").to_py() == b"2"
    assert c.call("LRANGE", "l", "0", "-1").to_py() == [b"x", b"y"]
    assert c.call("HGET", "h", "f").to_py() == b"v"
    assert c.call("GET", "from-rdb").to_py() == (b"yes" if preamble else None)
    ok(c.call("SELECT", "2"))
    assert c.call("GET", "other").to_py() == b"db2"
    assert not (data / "appendonly.aof").exists()
    assert (data / AOF_DIR / "appendonly.aof").read_bytes() == old
    assert (data / AOF_DIR / "appendonly.aof.manifest").read_bytes() == (
        b"file appendonly.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n")
    ok(c.call("SET", "after", "upgrade"))
    s.stop()
    s.start()
    c = s.conn()
    ok(c.call("SELECT", "2"))
    assert c.call("GET", "after").to_py() == b"upgrade"
    assert c.call("GET", "other").to_py() == b"db2"


@pytest.mark.parametrize("kind", KINDS)
def test_09b_aof_disk_full_with_fsync_always_exits_without_acknowledging(servers, kind):
    """appendfsync always and a full disk: the server exits (status 1, "Can't recover from AOF
    write error when the AOF fsync policy is 'always'. Exiting...") instead of acknowledging
    a write it could not persist; restarted with space, every acknowledged write is there."""
    with small_disk(servers, f"{kind}-tmpfs-always") as data:
        s = servers.new(kind, [("appendonly", ["yes"]), ("appendfsync", ["always"]),
                               ("auto-aof-rewrite-percentage", ["0"])], data_dir=data)
        s.start()
        c = s.conn()
        filler = fill_disk(data)
        value = "v" * 4096
        acked: list[str] = []
        failure = None
        for i in range(200):
            try:
                r = c.call("SET", f"k{i}", value)
            except (ConnectionError, OSError, EOFError) as e:
                failure = e
                break
            assert r.raw == b"+OK\r\n", r.raw
            acked.append(f"k{i}")
        assert failure is not None, "the server acknowledged writes it could not persist"
        wait_for(lambda: s.proc.poll() is not None, 10, "the server to exit")
        assert s.proc.returncode == 1, s.proc.returncode
        assert "Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting..." in s.log_text()
        s.stop()
        filler.unlink()
        s.start()
        c = s.conn()
        for k in acked:
            assert c.call("EXISTS", k).raw == b":1\r\n", f"{k} acknowledged but lost"
        print(f"[{kind}] {len(acked)} writes acknowledged before the exit")


# ===========================================================================
# 11: clients during the start-up load

LOADING_ERR = b"-LOADING Redis is loading the dataset in memory\r\n"
INFO_LOADING_FIELDS = ("loading_start_time loading_total_bytes loading_rdb_used_mem loading_loaded_bytes "
                       "loading_loaded_perc loading_eta_seconds").split()


def slow_loading_server(servers, kind: str, nkeys: int, value_bytes: int, delay_us: int) -> DirServer:
    """A server with `nkeys` keys in its dump.rdb, relaunched with key-load-delay and returned
    once it answers -LOADING. Redis 7.0 serves clients between 2 MB chunks of an RDB load
    (loading-process-events-interval-bytes), so the file spans several chunks."""
    s = servers.new(kind, {"appendonly": "no", "save": "", "rdbcompression": "no"})
    s.start()
    value = "v" * value_bytes
    with s.conn() as c:
        for i in range(0, nkeys, 1000):
            for j in range(i, min(i + 1000, nkeys)):
                c.send_command("SET", f"k:{j}", value)
            for j in range(i, min(i + 1000, nkeys)):
                ok(c.read_reply())
        ok(c.call("SAVE"))
    s.stop()
    assert (s.data_dir / "dump.rdb").stat().st_size > 8 * 2**20
    s.set_directive("key-load-delay", str(delay_us))
    s.launch()
    state = {"s": "down"}

    def loading():
        state["s"] = s._ping_state()
        return state["s"] in ("loading", "ready", "exited")

    wait_for(loading, 60, f"{kind} to answer while loading")
    assert state["s"] == "loading", f"{kind}: expected to catch the load in progress, PING state {state['s']}"
    return s


@pytest.mark.parametrize("kind", KINDS)
def test_11_clients_are_served_during_the_startup_load(servers, kind):
    """As Redis: a starting server accepts clients while it loads its data; commands that may
    not run during a load get -LOADING, INFO says loading:1 with the progress fields in
    Redis's order (what INFO-based ready checks of client libraries read), and once the load
    is done everything is there."""
    nkeys = 40_000  # 16 MB: eight 2 MB chunks of ~5,000 keys, ~0.5 s each
    s = slow_loading_server(servers, kind, nkeys, value_bytes=400, delay_us=100)
    with s.conn() as c:
        assert c.call("GET", "k:1").raw == LOADING_ERR
        assert c.call("DBSIZE").raw == LOADING_ERR
        text = c.call("INFO", "persistence").to_py().decode()
        names = [ln.split(":", 1)[0] for ln in text.splitlines() if ":" in ln]
        info = dict(ln.split(":", 1) for ln in text.splitlines() if ":" in ln)
        assert info["loading"] == "1", text
        assert names[-len(INFO_LOADING_FIELDS):] == INFO_LOADING_FIELDS, names
        assert int(info["loading_total_bytes"]) == (s.data_dir / "dump.rdb").stat().st_size
        assert 0 <= int(info["loading_loaded_bytes"]) <= int(info["loading_total_bytes"])
        assert 0.0 <= float(info["loading_loaded_perc"]) <= 100.0
        assert int(info["loading_rdb_used_mem"]) > 0  # the RDB's used-mem aux field
        assert abs(int(info["loading_start_time"]) - time.time()) < 60
    wait_for(lambda: s._ping_state() == "ready", 120, f"{kind} to finish loading")
    with s.conn() as c:
        assert c.call("DBSIZE").to_py() == nkeys
        assert c.call("STRLEN", f"k:{nkeys - 1}").to_py() == 400
        text = c.call("INFO", "persistence").to_py().decode()
        assert "loading:0\r\n" in text and "loading_start_time" not in text, text


@pytest.mark.parametrize("kind", KINDS)
def test_11b_shutdown_during_the_startup_load_exits_at_once(servers, kind):
    """SHUTDOWN while loading exits without waiting for the load (and without saving the
    partial dataset): the dump.rdb is untouched."""
    # 40 MB, ~1,000 keys (2-3 s) per 2 MB chunk, a load of a minute or more
    s = slow_loading_server(servers, kind, 20_000, value_bytes=2_000, delay_us=2_000)
    rdb = s.data_dir / "dump.rdb"
    before = rdb.read_bytes()
    with s.conn() as c:
        c.send_command("SHUTDOWN")
        with contextlib.suppress(ConnectionError, OSError, EOFError):
            c.read_reply()  # the connection just closes
    wait_for(lambda: s.proc.poll() is not None, 15, f"{kind} to exit while loading")
    assert rdb.read_bytes() == before
    s.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_12_aof_disable_auto_gc_keeps_history_until_enabled(servers, kind):
    """aof-disable-auto-gc yes: rewrites keep the old base/incr files, listed in the manifest
    as history in Redis's order; CONFIG SET aof-disable-auto-gc no deletes them."""
    s = servers.new(kind, {"appendonly": "yes", "aof-disable-auto-gc": "yes"})
    s.start()
    c = s.conn()
    d = s.data_dir / AOF_DIR
    for i in range(2):
        ok(c.call("SET", f"k{i}", "v"))
        bgrewriteaof(c)
        wait_rewrite_done(s)
    want = (b"file appendonly.aof.3.base.rdb seq 3 type b\n"
            b"file appendonly.aof.2.incr.aof seq 2 type h\n"
            b"file appendonly.aof.2.base.rdb seq 2 type h\n"
            b"file appendonly.aof.1.incr.aof seq 1 type h\n"
            b"file appendonly.aof.1.base.rdb seq 1 type h\n"
            b"file appendonly.aof.3.incr.aof seq 3 type i\n")
    assert (d / "appendonly.aof.manifest").read_bytes() == want
    for n in ("1.base.rdb", "1.incr.aof", "2.base.rdb", "2.incr.aof"):
        assert (d / f"appendonly.aof.{n}").exists(), n
    ok(c.call("CONFIG", "SET", "aof-disable-auto-gc", "no"))
    wait_for(lambda: not (d / "appendonly.aof.1.base.rdb").exists()
             and (d / "appendonly.aof.manifest").read_bytes() == (
                 b"file appendonly.aof.3.base.rdb seq 3 type b\n"
                 b"file appendonly.aof.3.incr.aof seq 3 type i\n"), 10, "the history files to go")
    assert sorted(p.name for p in d.iterdir()) == [
        "appendonly.aof.3.base.rdb", "appendonly.aof.3.incr.aof", "appendonly.aof.manifest"]
    # The data survives a restart from what is left.
    s.stop()
    s.start()
    assert s.conn().call("MGET", "k0", "k1").to_py() == [b"v", b"v"]
