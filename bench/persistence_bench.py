#!/usr/bin/env python3
"""bench/persistence_bench.py — `appendfsync always` throughput, Cinnabar vs redis-server.

Starts one redis-server and one cinnabar-server, each in its own temp dir with
`--appendonly yes --appendfsync always --save ''` on a free port of 127.0.0.1, then for every
round runs `redis-benchmark -t set -c CLIENTS -n REQUESTS -P 1 -r 100000 --csv` against both,
alternating which goes first (R,C then C,R ...). Prints ops/s per run, the medians, and the
Cinnabar/Redis ratio (median of the per-round ratios: paired runs are close in time, so the
noise of a shared machine mostly cancels). With --clients 1,8,50 each client count is a row.

Also reported per run: fsyncs are not observable from outside, but the AOF growth per request
(bytes written to appendonlydir / requests) is, so a server that skipped writing would show.

Usage:
    python3 bench/persistence_bench.py --cinnabar target/release/cinnabar-server
    python3 bench/persistence_bench.py --cinnabar target/release/cinnabar-server --clients 1,8,50 --rounds 5
Not a test: nothing here runs in the test suite. See bench/README.md for the other benchmarks.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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


def ping(port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def cmd(port: int, *args: str) -> bytes:
    payload = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(payload)
        return s.recv(1 << 16)


class Server:
    def __init__(self, kind: str, binary: str, base: Path):
        self.kind, self.binary = kind, binary
        self.dir = base / kind
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--daemonize", "no", "--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        self.logf = open(self.dir / "server.log", "wb")
        self.proc = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if ping(self.port):
                return
            try:
                self.proc.wait(timeout=0.02)  # wait on a state change, not a blind sleep
            except subprocess.TimeoutExpired:
                pass
        tail = (self.dir / "server.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"{self.kind} did not start on port {self.port}:\n{tail}")

    def aof_bytes(self) -> int:
        d = self.dir / "appendonlydir"
        return sum(p.stat().st_size for p in d.iterdir()) if d.is_dir() else 0

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                    self.proc.wait(timeout=15)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait(timeout=10)
            self.proc = None
            self.logf.close()


def run_set(rb: str, port: int, clients: int, requests: int, pipeline: int) -> float:
    argv = [rb, "-h", "127.0.0.1", "-p", str(port), "-t", "set", "-c", str(clients), "-n", str(requests),
            "-P", str(pipeline), "-r", "100000", "--csv"]
    cp = subprocess.run(argv, capture_output=True, timeout=max(120, requests / 100), stdin=subprocess.DEVNULL)
    if cp.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed ({cp.returncode}): {cp.stderr.decode(errors='replace')[-500:]}")
    rows = list(csv.reader(io.StringIO(cp.stdout.decode())))
    for row in rows[1:]:
        if row and row[0].upper().startswith("SET"):
            return float(row[1])
    raise RuntimeError(f"no SET row in redis-benchmark output:\n{cp.stdout.decode()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cinnabar", default=str(REPO / "target/release/cinnabar-server"))
    ap.add_argument("--redis", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    ap.add_argument("--redis-benchmark", default=shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark")
    ap.add_argument("--clients", default="50", help="comma-separated client counts (default 50)")
    ap.add_argument("--requests", type=int, default=50_000, help="requests per run (default 50000)")
    ap.add_argument("--pipeline", type=int, default=1, help="-P (default 1)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, AOF files)")
    args = ap.parse_args()

    # copy the candidate binary: others may rebuild target/release while we run
    base = Path(tempfile.mkdtemp(prefix="cinnabar-persist-bench-"))
    cin = base / "cinnabar-server"
    shutil.copy2(os.path.abspath(args.cinnabar), cin)
    servers = {"redis": Server("redis", args.redis, base), "cinnabar": Server("cinnabar", str(cin), base)}
    client_counts = [int(x) for x in args.clients.split(",") if x]
    results: dict[int, dict[str, list[float]]] = {c: {"redis": [], "cinnabar": []} for c in client_counts}
    ratios: dict[int, list[float]] = {c: [] for c in client_counts}
    aof_per_req: dict[str, list[float]] = {"redis": [], "cinnabar": []}
    try:
        for s in servers.values():
            s.start()
            log(f"{s.kind}: port {s.port}, dir {s.dir}")
        for s in servers.values():  # warm-up (also checks appendonly is really on)
            run_set(args.redis_benchmark, s.port, 8, 2000, 1)
            info = cmd(s.port, "INFO", "persistence").decode(errors="replace")
            if "aof_enabled:1" not in info:
                log(f"WARNING: {s.kind} reports no aof_enabled:1 — it is not writing an AOF")
        for rnd in range(args.rounds):
            order = ["redis", "cinnabar"] if rnd % 2 == 0 else ["cinnabar", "redis"]
            for c in client_counts:
                got = {}
                for kind in order:
                    s = servers[kind]
                    before = s.aof_bytes()
                    got[kind] = run_set(args.redis_benchmark, s.port, c, args.requests, args.pipeline)
                    aof_per_req[kind].append((s.aof_bytes() - before) / args.requests)
                    results[c][kind].append(got[kind])
                ratios[c].append(got["cinnabar"] / got["redis"])
                log(f"round {rnd + 1}/{args.rounds} -c {c}: redis {got['redis']:.0f} ops/s, "
                    f"cinnabar {got['cinnabar']:.0f} ops/s, ratio {got['cinnabar'] / got['redis']:.2f}")
    finally:
        for s in servers.values():
            s.stop()
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    print(f"\nappendfsync always, SET, -P {args.pipeline}, -n {args.requests}, {args.rounds} rounds (medians)")
    print(f"{'clients':>8} {'redis ops/s':>12} {'cinnabar ops/s':>15} {'ratio C/R':>10} {'range':>12}")
    for c in client_counts:
        r, k, q = results[c]["redis"], results[c]["cinnabar"], ratios[c]
        print(f"{c:>8} {statistics.median(r):>12.0f} {statistics.median(k):>15.0f} {statistics.median(q):>10.2f} "
              f"{min(q):>5.2f}-{max(q):<5.2f}")
    for kind, v in aof_per_req.items():
        print(f"{kind}: AOF bytes written per request (median) {statistics.median(v):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
