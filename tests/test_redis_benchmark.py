# tests/test_redis_benchmark.py — redis-benchmark (Debian's, 7.0.15) runs its default test list
# and the foundation subset against cinnabar-server with no errors. A functional check, not a
# benchmark: request counts are small and no timing is asserted (bench/compare measures speed).

from __future__ import annotations

import shutil
import subprocess

import pytest


def run_benchmark(port: int, *extra: str) -> str:
    cp = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", "2000", "-c", "20", "--csv", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    out = cp.stdout.decode(errors="replace")
    assert cp.returncode == 0, out[-3000:]
    return out


@pytest.mark.skipif(shutil.which("redis-benchmark") is None, reason="redis-benchmark not installed")
@pytest.mark.parametrize("extra", [(), ("-t", "set,get,incr,mset"), ("-t", "set,get", "-P", "16")], ids=["default", "foundation", "pipelined"])
def test_redis_benchmark_runs_without_errors(make_server, extra):
    s = make_server("cinnabar")
    out = run_benchmark(s.port, *extra)
    lines = [l for l in out.splitlines() if l.startswith('"')]
    assert len(lines) >= 2, out  # header + at least one test
    assert "ERR" not in out and "Error" not in out and "error" not in out.lower(), out[-3000:]
    tests = {l.split(",")[0].strip('"') for l in lines[1:]}
    if not extra:
        for name in ("PING_INLINE", "SET", "GET", "INCR", "LPUSH", "RPOP", "SADD", "HSET", "SPOP", "ZADD",
                     "ZPOPMIN", "LRANGE_100 (first 100 elements)", "MSET (10 keys)"):
            assert name in tests, (name, sorted(tests))
    assert s.ping_ok()
