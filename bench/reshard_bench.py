#!/usr/bin/env python3
"""bench/reshard_bench.py — `redis-cli --cluster reshard` speed and client stalls, Cinnabar vs Redis.

For each server kind (redis-server, then cinnabar-server; the order alternates per round), one at a
time on the same machine:

  1. Two cluster nodes A and B are started (own temp dirs, free ports on 127.0.0.1,
     `--cluster-enabled yes --appendonly no --save ''`); A gets slots 0-8191, B 8192-16383,
     CLUSTER MEET, wait for cluster_state:ok on both.
  2. N keys with V-byte values are written to A's slots (pipelined SETs).
  3. A probe process loops `GET` of keys in slots 4096-8191 (which stay on A) at ~1 ms pacing and
     records every request's latency: the longest single request is the longest stall a client
     of an *unmoved* slot saw during the move (Redis runs MIGRATE in its only thread; Cinnabar
     holds only the migrating slot's lock).
  4. `redis-cli --cluster reshard A --cluster-from A --cluster-to B --cluster-slots 4096
     --cluster-yes --cluster-pipeline P` moves slots 0-4095 (about half the keys); wall time and
     the two servers' CPU time (utime+stime from /proc) are measured.
  5. Checked: `redis-cli --cluster check` is clean and DBSIZE(A) + DBSIZE(B) == N.

Prints per-kind medians and Cinnabar/Redis ratios (and --json for the raw numbers).

Usage:
    python3 bench/reshard_bench.py --cinnabar target/release/cinnabar-server
    python3 bench/reshard_bench.py --cinnabar target/release/cinnabar-server --keys 400000 --rounds 3
Not a test: nothing here runs in the test suite. Results: docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
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
sys.path.insert(0, str(REPO / "tests"))

from redis.crc import key_slot  # noqa: E402  (the redis PyPI package, tests/requirements.txt)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A port p with p and p+10000 (the bus) free."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + 10000 > 65535:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", p + 10000))
            except OSError:
                continue
        return p


class Conn:
    """A minimal blocking RESP client (requests and replies as Python values)."""

    def __init__(self, port: int, timeout: float = 30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    @staticmethod
    def encode(*args) -> bytes:
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-"):
            return rest.decode() if t == b"+" else RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError(f"unexpected reply {line!r}")

    def call(self, *args):
        self.sock.sendall(self.encode(*args))
        r = self.read()
        if isinstance(r, RuntimeError):
            raise r
        return r

    def close(self):
        self.sock.close()


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (OSError, ConnectionError, RuntimeError):
            pass
        time.sleep(0.02)
    raise TimeoutError(what)


def start(binary: str, port: int, d: Path) -> subprocess.Popen:
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d), "--daemonize", "no",
            "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
            "--appendonly", "no", "--save", ""]
    p = subprocess.Popen(args, stdout=open(d / "log", "ab"), stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, start_new_session=True)

    def up():
        c = Conn(port, 1.0)
        try:
            return c.call("PING") == "PONG"
        finally:
            c.close()

    wait_for(up, 20, f"{binary} on {port} to answer PING")
    return p


def probe(port: int, keys: list, stop, q) -> None:
    """Paced GETs of keys that never move until `stop` is set; sends back every latency in ms."""
    c = Conn(port)
    lat = []
    i = 0
    while not stop.is_set():
        t = time.perf_counter()
        c.call("GET", keys[i % len(keys)])
        lat.append((time.perf_counter() - t) * 1000)
        i += 1
        time.sleep(0.001)
    q.put(lat)


def one_run(kind: str, binary: str, nkeys: int, value_bytes: int, pipeline: int) -> dict:
    d = Path(tempfile.mkdtemp(prefix=f"reshard-{kind}-"))
    procs = []
    try:
        pa, pb = free_port(), free_port()
        for p in (pa, pb):
            (d / str(p)).mkdir()
            procs.append(start(binary, p, d / str(p)))
        a, b = Conn(pa), Conn(pb)
        a.call("CLUSTER", "ADDSLOTSRANGE", 0, 8191)
        b.call("CLUSTER", "ADDSLOTSRANGE", 8192, 16383)
        a.call("CLUSTER", "MEET", "127.0.0.1", pb)
        wait_for(lambda: all("cluster_state:ok" in c.call("CLUSTER", "INFO").decode() for c in (a, b)), 30,
                 "cluster_state:ok")
        ida, idb = a.call("CLUSTER", "MYID").decode(), b.call("CLUSTER", "MYID").decode()
        # N keys on A, half of them in the slots that move (0-4095).
        keys, stay = [], []
        i = 0
        value = b"x" * value_bytes
        batch = []
        while len(keys) < nkeys:
            k = f"key:{i}".encode()
            i += 1
            s = key_slot(k)
            if s >= 8192:
                continue
            keys.append(k)
            if s >= 4096 and len(stay) < 10000:
                stay.append(k)
            batch.append(Conn.encode("SET", k, value))
            if len(batch) == 1000:
                a.sock.sendall(b"".join(batch))
                for _ in batch:
                    a.read()
                batch = []
        if batch:
            a.sock.sendall(b"".join(batch))
            for _ in batch:
                a.read()
        assert a.call("DBSIZE") == nkeys
        moved = sum(1 for k in keys if key_slot(k) < 4096)
        cpu0 = sum(cpu_s(p.pid) for p in procs)
        q, stop = mp.Queue(), mp.Event()
        pr = mp.Process(target=probe, args=(pa, stay, stop, q))
        pr.start()
        t0 = time.monotonic()
        cp = subprocess.run(["redis-cli", "--cluster", "reshard", f"127.0.0.1:{pa}", "--cluster-from", ida,
                             "--cluster-to", idb, "--cluster-slots", "4096", "--cluster-yes",
                             "--cluster-pipeline", str(pipeline)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
        wall = time.monotonic() - t0
        cpu = sum(cpu_s(p.pid) for p in procs) - cpu0
        stop.set()
        lat = q.get(timeout=60)
        pr.join()
        if cp.returncode != 0:
            raise RuntimeError(f"reshard failed ({kind}): {cp.stdout.decode()[-2000:]}")
        chk = subprocess.run(["redis-cli", "--cluster", "check", f"127.0.0.1:{pa}"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        text = chk.stdout.decode()
        if "[WARNING]" in text or "[ERR]" in text:
            raise RuntimeError(f"check not clean after reshard ({kind}):\n{text}")
        total = a.call("DBSIZE") + b.call("DBSIZE")
        if total != nkeys or b.call("DBSIZE") != moved:
            raise RuntimeError(f"{kind}: DBSIZE {total} (B {b.call('DBSIZE')}) after moving {moved} of {nkeys}")
        return {"wall_s": wall, "server_cpu_s": cpu, "moved_keys": moved, "keys_per_s": moved / wall,
                "probe": lat}
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cinnabar", default=str(REPO / "target/release/cinnabar-server"))
    ap.add_argument("--redis", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    ap.add_argument("--keys", type=int, default=200_000)
    ap.add_argument("--value-bytes", type=int, default=100)
    ap.add_argument("--pipeline", type=int, default=100, help="redis-cli --cluster-pipeline (keys per MIGRATE)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    kinds = {"redis": args.redis, "cinnabar": args.cinnabar}
    results = {"redis": [], "cinnabar": []}
    for rnd in range(args.rounds):
        order = ["redis", "cinnabar"] if rnd % 2 == 0 else ["cinnabar", "redis"]
        for kind in order:
            log(f"round {rnd + 1}/{args.rounds}: {kind}")
            r = one_run(kind, kinds[kind], args.keys, args.value_bytes, args.pipeline)
            lat = sorted(r.pop("probe"))
            r["probe_max_ms"] = lat[-1] if lat else float("nan")
            r["probe_p99_ms"] = lat[int(len(lat) * 0.99)] if lat else float("nan")
            r["probe_requests"] = len(lat)
            log(f"  {kind}: {r['wall_s']:.2f} s, {r['keys_per_s']:.0f} keys/s, server CPU {r['server_cpu_s']:.2f} s, "
                f"probe max {r['probe_max_ms']:.1f} ms p99 {r['probe_p99_ms']:.2f} ms ({r['probe_requests']} GETs)")
            results[kind].append(r)

    def med(kind, f):
        return statistics.median(x[f] for x in results[kind])

    print(f"\nreshard of 4096 slots ({results['redis'][0]['moved_keys']} of {args.keys} keys, "
          f"{args.value_bytes}-byte values, --cluster-pipeline {args.pipeline}), medians of {args.rounds} rounds:\n")
    print("| metric | Redis | Cinnabar | C/R |")
    print("|---|---:|---:|---:|")
    for f, label in [("wall_s", "wall time (s)"), ("keys_per_s", "keys moved per second"),
                     ("server_cpu_s", "CPU of both servers (s)"), ("probe_max_ms", "longest GET stall, unmoved slot (ms)"),
                     ("probe_p99_ms", "GET p99, unmoved slot (ms)")]:
        r, c = med("redis", f), med("cinnabar", f)
        print(f"| {label} | {r:,.2f} | {c:,.2f} | {c / r:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
