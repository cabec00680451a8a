#!/usr/bin/env python3
"""bench/sync_persist_bench.py — full sync, BGSAVE and BGREWRITEAOF under load: memory and stalls, Cinnabar vs Redis.

For each server kind (redis-server, then cinnabar-server; the order alternates per round) on the
same machine, one at a time:

  1. A master is started (own temp dir, free port on 127.0.0.1) with
     `--save '' --appendonly yes --appendfsync everysec --auto-aof-rewrite-percentage 0
      --repl-diskless-sync-delay 0` and loaded with N keys (`key:<i>`, 16-byte values) by
     pipelined SETs over a raw socket.
  2. A probe client (separate process, so the measuring script's own threads cannot delay it)
     loops PING / GET key:<rand> / SET key:<rand> <16 bytes> (random existing keys: DBSIZE
     stays N, and writes land on random pages of the dataset, as a real workload's would),
     pacing ~1 ms between requests, and reports the longest single request (the longest
     stall) and the p99 per measured window. A 2 s idle window first gives the noise floor.
  3. Full sync: a fresh replica of the same kind (`--save '' --appendonly no`) gets
     `REPLICAOF 127.0.0.1 <master>`; measured until it reports master_link_status:up and
     DBSIZE == N (given up after --op-timeout, reported as FAILED). With --sync-probe ro the
     probe only reads (PING/GET/GET) during the full sync, so nothing is written to the
     replication stream while the RDB is being transferred.
  4. BGSAVE, then 5. BGREWRITEAOF on the master, each measured until INFO persistence says it
     finished (in-progress 0, counter advanced, status ok).
  For every operation: duration (wall clock, polled every 10 ms), the master's RSS before, the
  peak of the summed VmRSS of the master and its child processes (Redis forks; found through
  /proc/<pid>/task/*/children) sampled every 10 ms, the peak of the summed Pss
  (/proc/<pid>/smaps_rollup, sampled every 50 ms: counts pages shared by a fork parent and child
  once, i.e. the real physical memory, whereas summed RSS counts them twice), and the probe's
  longest stall and p99.

Prints one table with Cinnabar/Redis ratios (and --json for the raw numbers).

Usage:
    python3 bench/sync_persist_bench.py --cinnabar target/release/cinnabar-server
    python3 bench/sync_persist_bench.py --cinnabar target/release/cinnabar-server --keys 1000000 --rounds 2
Not a test: nothing here runs in the test suite. Results: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VALUE = b"v" * 16


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    for _ in range(200):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in (6379, 16379) and port + 10000 < 65536:
            return port
    raise RuntimeError("no free port")


def enc(*args) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


class Conn:
    """Minimal RESP client: one reply at a time (enough for INFO / DBSIZE / status replies)."""

    def __init__(self, port: int, timeout: float = 30.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(1 << 16)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.s.recv(1 << 16)
                if not chunk:
                    raise EOFError("connection closed")
                self.buf += chunk
            data, self.buf = self.buf[:n], self.buf[n + 2 :]
            return data
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError(f"unexpected reply line {line[:80]!r}")

    def call(self, *args):
        self.s.sendall(enc(*args))
        return self.reply()

    def close(self) -> None:
        self.s.close()


def parse_info(text) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    out = {}
    for line in str(text).splitlines():
        if ":" in line and not line.startswith("#"):
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


class Server:
    def __init__(self, kind: str, binary: str, base: Path, role: str, args: list[str]):
        self.kind, self.binary, self.role = kind, binary, role
        self.dir = base / f"{kind}-{role}"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.port = free_port()
        self.args = args
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--daemonize", "no", *self.args]
        self.logf = open(self.dir / "server.log", "wb")
        self.proc = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                c = Conn(self.port, timeout=1)
                try:
                    if c.call("PING") == "PONG":
                        c.close()
                        return self
                finally:
                    c.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=0.02)  # wait on a state change, not a blind sleep
            except subprocess.TimeoutExpired:
                pass
        tail = (self.dir / "server.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"{self.kind} {self.role} did not start on port {self.port}:\n{tail}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, *args):
        c = Conn(self.port)
        try:
            return c.call(*args)
        finally:
            c.close()

    def info(self, section: str) -> dict[str, str]:
        r = self.call("INFO", section)
        if isinstance(r, Exception):
            raise r
        return parse_info(r)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(timeout=10)
        self.proc = None
        self.logf.close()


def load_keys(port: int, n: int, chunk: int = 10000) -> float:
    """SET key:<i> <16 bytes> for i < n, pipelined in chunks; returns seconds."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    try:
        for base in range(0, n, chunk):
            m = min(chunk, n - base)
            s.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$16\r\n%s\r\n" % (len(k), k, VALUE)
                               for k in (b"key:%d" % i for i in range(base, base + m))))
            want, got = 5 * m, b""
            while len(got) < want:
                data = s.recv(1 << 20)
                if not data:
                    raise RuntimeError("server closed the connection while loading")
                got += data
            if got != b"+OK\r\n" * m:
                raise RuntimeError(f"unexpected replies while loading: {got[:200]!r}")
    finally:
        s.close()
    return time.monotonic() - t0


# ---------------------------------------------------------------------------
# probe client (separate process)


def _probe_main(port: int, nkeys: int, ctl) -> None:
    rng = random.Random(1)
    c = Conn(port, timeout=120)
    lat: list[float] = []
    errors = 0
    i = 0
    writes = True
    while True:
        if ctl.poll():
            msg = ctl.recv()
            if msg == "stop":
                break
            if msg in ("rw", "ro"):
                writes = msg == "rw"
                continue
            lat.sort()
            ctl.send({"n": len(lat), "max_ms": 1000 * lat[-1] if lat else 0.0,
                      "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))] if lat else 0.0, "errors": errors})
            lat, errors = [], 0
        k = b"key:%d" % rng.randrange(nkeys)
        args = (("PING",), ("GET", k), ("SET", k, VALUE) if writes else ("GET", k))[i % 3]
        i += 1
        t0 = time.perf_counter()
        r = c.call(*args)
        lat.append(time.perf_counter() - t0)
        if isinstance(r, Exception):
            errors += 1
        time.sleep(0.001)  # pacing only
    c.close()


class Probe:
    def __init__(self, port: int, nkeys: int):
        self.parent, child = mp.Pipe()
        self.proc = mp.Process(target=_probe_main, args=(port, nkeys, child), daemon=True)
        self.proc.start()

    def mode(self, m: str) -> None:
        """'rw': PING/GET/SET (default); 'ro': PING/GET/GET."""
        self.parent.send(m)

    def mark(self) -> dict:
        """Stats since the previous mark (and start a new window)."""
        self.parent.send("mark")
        if not self.parent.poll(120):
            raise RuntimeError("probe did not answer")
        return self.parent.recv()

    def stop(self) -> None:
        try:
            self.parent.send("stop")
        except OSError:
            pass
        self.proc.join(timeout=30)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


# ---------------------------------------------------------------------------
# memory sampler


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                try:
                    with open(f"/proc/{p}/task/{t}/children") as f:
                        todo.extend(int(x) for x in f.read().split())
                except OSError:
                    pass
        except OSError:
            pass
    return out


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Peak of summed VmRSS (every 10 ms) and summed Pss (every 50 ms) of pid and its children."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.stop_ev = threading.Event()
        self.peak_rss = self.peak_pss = 0
        self.max_procs = 1
        self.samples = 0

    def run(self) -> None:
        n = 0
        while not self.stop_ev.is_set():
            pids = _tree(self.pid)
            self.max_procs = max(self.max_procs, len(pids))
            self.peak_rss = max(self.peak_rss, sum(_status_kb(p, "VmRSS:") for p in pids))
            if n % 5 == 0:
                self.peak_pss = max(self.peak_pss, sum(_pss_kb(p) for p in pids))
            n += 1
            self.samples = n
            self.stop_ev.wait(0.01)

    def finish(self) -> None:
        self.stop_ev.set()
        self.join()


def poll(cond, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def measure(master: Server, probe: Probe, start, done, timeout: float, what: str) -> dict:
    rss0, pss0 = _status_kb(master.pid, "VmRSS:"), _pss_kb(master.pid)
    sm = Sampler(master.pid)
    sm.start()
    probe.mark()
    t0 = time.monotonic()
    start()
    failed = None
    try:
        poll(done, timeout, what)
    except RuntimeError as e:
        failed = str(e)
        log(f"FAILED: {e}")
    finally:
        dur = time.monotonic() - t0
        st = probe.mark()
        sm.finish()
    return {"failed": failed, "duration_s": dur, "rss_before_mb": rss0 / 1024, "peak_rss_mb": sm.peak_rss / 1024,
            "pss_before_mb": pss0 / 1024, "peak_pss_mb": sm.peak_pss / 1024, "stall_ms": st["max_ms"],
            "p99_ms": st["p99_ms"], "probe_requests": st["n"], "probe_errors": st["errors"],
            "max_procs": sm.max_procs}


# ---------------------------------------------------------------------------


def run_kind(kind: str, binary: str, base: Path, n: int, sync_probe: str, op_timeout: float) -> dict:
    res: dict = {}
    master = Server(kind, binary, base, "master", ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                                                    "--auto-aof-rewrite-percentage", "0",
                                                    "--repl-diskless-sync-delay", "0"])
    replica = Server(kind, binary, base, "replica", ["--save", "", "--appendonly", "no"])
    probe = None
    try:
        master.start()
        res["empty_rss_mb"] = _status_kb(master.pid, "VmRSS:") / 1024
        secs = load_keys(master.port, n)
        dbsize = master.call("DBSIZE")
        if dbsize != n:
            raise RuntimeError(f"{kind}: DBSIZE {dbsize} after loading {n} keys")
        log(f"{kind}: loaded {n} keys in {secs:.1f}s, RSS {_status_kb(master.pid, 'VmRSS:') / 1024:.0f} MB")
        probe = Probe(master.port, n)
        probe.mark()
        t_idle = time.monotonic()
        while time.monotonic() - t_idle < 2.0:  # a 2 s idle measuring window (noise floor)
            time.sleep(0.1)
        res["idle"] = {"stall_ms": (st := probe.mark())["max_ms"], "p99_ms": st["p99_ms"], "probe_requests": st["n"]}

        # 1. full sync
        replica.start()
        probe.mode(sync_probe)

        def synced():
            i = replica.info("replication")
            if i.get("master_link_status") != "up":
                return False
            r = replica.call("DBSIZE")
            return r == n

        res["full_sync"] = measure(master, probe, lambda: replica.call("REPLICAOF", "127.0.0.1", str(master.port)),
                                   synced, op_timeout, f"{kind} replica to sync (master_link_status:up, DBSIZE {n})")
        if res["full_sync"]["failed"]:
            ri = replica.info("replication")
            res["full_sync"]["failed"] += (f"; replica: master_link_status {ri.get('master_link_status')}, "
                                           f"master_sync_in_progress {ri.get('master_sync_in_progress')}, "
                                           f"DBSIZE {replica.call('DBSIZE')}; log tail: "
                                           + " | ".join((replica.dir / 'server.log').read_text(errors='replace').splitlines()[-2:]))
        mi = master.info("stats")
        res["full_sync"]["sync_full"] = int(mi.get("sync_full", "0"))
        replica.stop()
        probe.mode("rw")

        # 2. BGSAVE
        before = master.info("persistence")

        def bgsave():
            r = master.call("BGSAVE")
            if isinstance(r, Exception):
                raise r

        def bgsave_done():
            i = master.info("persistence")
            if i.get("rdb_bgsave_in_progress") != "0":
                return False
            if "rdb_saves" in i and int(i["rdb_saves"]) <= int(before.get("rdb_saves", "0")):
                return False
            if i.get("rdb_last_bgsave_status") != "ok":
                raise RuntimeError(f"{kind}: BGSAVE failed: {i}")
            return (master.dir / "dump.rdb").exists()

        res["bgsave"] = measure(master, probe, bgsave, bgsave_done, op_timeout, f"{kind} BGSAVE")
        res["bgsave"]["rdb_mb"] = (master.dir / "dump.rdb").stat().st_size / 1e6

        # 3. BGREWRITEAOF
        before = master.info("persistence")

        def rewrite():
            r = master.call("BGREWRITEAOF")
            if isinstance(r, Exception):
                raise r

        def rewrite_done():
            i = master.info("persistence")
            if i.get("aof_rewrite_in_progress") != "0" or i.get("aof_rewrite_scheduled", "0") != "0":
                return False
            if "aof_rewrites" in i and int(i["aof_rewrites"]) <= int(before.get("aof_rewrites", "0")):
                return False
            if i.get("aof_last_bgrewrite_status") != "ok":
                raise RuntimeError(f"{kind}: BGREWRITEAOF failed: {i}")
            return True

        res["bgrewriteaof"] = measure(master, probe, rewrite, rewrite_done, op_timeout, f"{kind} BGREWRITEAOF")
        if master.call("DBSIZE") != n:
            raise RuntimeError(f"{kind}: DBSIZE changed during the benchmark")
    finally:
        if probe is not None:
            probe.stop()
        replica.stop()
        master.stop()
    return res


ROWS = [
    ("duration_s", "duration s", "{:.2f}"),
    ("rss_before_mb", "master RSS before MB", "{:.0f}"),
    ("peak_rss_mb", "peak RSS (sum incl. children) MB", "{:.0f}"),
    ("extra_rss_mb", "peak RSS - before MB", "{:.0f}"),
    ("peak_pss_mb", "peak PSS (sum incl. children) MB", "{:.0f}"),
    ("extra_pss_mb", "peak PSS - before MB", "{:.0f}"),
    ("stall_ms", "longest probe stall ms", "{:.1f}"),
    ("p99_ms", "probe p99 ms", "{:.2f}"),
    ("max_procs", "processes (master + children)", "{:.0f}"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cinnabar", default=str(REPO / "target/release/cinnabar-server"))
    ap.add_argument("--redis", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    ap.add_argument("--keys", type=int, default=1_000_000, help="keys loaded into the master (default 1000000)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds; the server order alternates (default 1)")
    ap.add_argument("--sync-probe", choices=["rw", "ro"], default="rw",
                    help="probe during the full sync: rw = PING/GET/SET (default), ro = PING/GET only")
    ap.add_argument("--op-timeout", type=float, default=180, help="give up on one operation after this (s)")
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data files)")
    args = ap.parse_args()

    # copy the candidate binary: others may rebuild target/release while we run
    base = Path(tempfile.mkdtemp(prefix="cinnabar-sync-bench-"))
    cin = base / "cinnabar-server"
    shutil.copy2(os.path.abspath(args.cinnabar), cin)
    bins = {"redis": args.redis, "cinnabar": str(cin)}
    runs: dict[str, list[dict]] = {"redis": [], "cinnabar": []}
    t_start = time.time()
    try:
        for rnd in range(args.rounds):
            order = ["redis", "cinnabar"] if rnd % 2 == 0 else ["cinnabar", "redis"]
            for kind in order:
                log(f"round {rnd + 1}/{args.rounds}: {kind}, load average {os.getloadavg()[0]:.1f}")
                r = run_kind(kind, bins[kind], base, args.keys, args.sync_probe, args.op_timeout)
                runs[kind].append(r)
                for op in ("full_sync", "bgsave", "bgrewriteaof"):
                    m = r[op]
                    log(f"  {op}: {'FAILED ' if m['failed'] else ''}{m['duration_s']:.2f}s, RSS {m['rss_before_mb']:.0f} -> peak {m['peak_rss_mb']:.0f} MB "
                        f"(PSS peak {m['peak_pss_mb']:.0f}), stall {m['stall_ms']:.1f} ms, procs {m['max_procs']}")
    finally:
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    for kind in runs:
        for r in runs[kind]:
            for op in ("full_sync", "bgsave", "bgrewriteaof"):
                r[op]["extra_rss_mb"] = r[op]["peak_rss_mb"] - r[op]["rss_before_mb"]
                r[op]["extra_pss_mb"] = r[op]["peak_pss_mb"] - r[op]["pss_before_mb"]

    def med(kind, op, key):
        v = [r[op][key] for r in runs[kind] if not r[op]["failed"]]
        return statistics.median(v) if v else None

    print(f"\n{args.keys} keys (16-byte values), {args.rounds} round(s), probe during full sync: {args.sync_probe}; "
          f"medians; load average at the end "
          f"{os.getloadavg()[0]:.1f}; elapsed {time.time() - t_start:.0f}s")
    print(f"probe noise floor (2 s idle): longest stall redis {statistics.median(r['idle']['stall_ms'] for r in runs['redis']):.1f} ms, "
          f"cinnabar {statistics.median(r['idle']['stall_ms'] for r in runs['cinnabar']):.1f} ms")
    print(f"{'':14} {'metric':34} {'redis':>10} {'cinnabar':>10} {'C/R':>7}")
    for op in ("full_sync", "bgsave", "bgrewriteaof"):
        for key, label, fmt in ROWS:
            r, c = med("redis", op, key), med("cinnabar", op, key)
            ratio = f"{c / r:.2f}" if r and c is not None else "-"
            rs = fmt.format(r) if r is not None else "FAILED"
            cs = fmt.format(c) if c is not None else "FAILED"
            print(f"{op:14} {label:34} {rs:>10} {cs:>10} {ratio:>7}")
    for kind in runs:
        for i, r in enumerate(runs[kind]):
            for op in ("full_sync", "bgsave", "bgrewriteaof"):
                if r[op]["failed"]:
                    print(f"{kind} round {i + 1} {op} FAILED: {r[op]['failed']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"keys": args.keys, "rounds": args.rounds, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
