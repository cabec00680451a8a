# tests/test_cluster_rust_client.py — a third-party Rust client against a Cinnabar cluster:
# builds tests/rust-client (the `redis` crate's async cluster client, pinned to 1.8.1), forms a
# 3+3 cluster with `cinnabar cluster up` on free ports, and runs the client, which writes and
# reads 3,000 keys across all slot ranges plus a hash-tagged MSET/MGET.

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from lib.server import cinnabar_binary
from lib_cluster import cinnabar_cli_binary, free_port_block

ROOT = Path(__file__).resolve().parent.parent
CLIENT_DIR = ROOT / "tests" / "rust-client"


@pytest.fixture(scope="module")
def rust_client() -> Path:
    if shutil.which("cargo") is None:
        pytest.skip("cargo not available")
    cp = subprocess.run(
        ["cargo", "build", "--release", "--locked", "--manifest-path", str(CLIENT_DIR / "Cargo.toml")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=1200,
        stdin=subprocess.DEVNULL,
    )
    assert cp.returncode == 0, cp.stdout.decode(errors="replace")[-4000:]
    return CLIENT_DIR / "target" / "release" / "cinnabar-rust-client-check"


def test_redis_crate_cluster_client_reads_and_writes_all_slots(rust_client):
    ports = free_port_block(6)
    base = ports[0]
    work = tempfile.mkdtemp(prefix="cinnabar-rust-client-")
    cli = cinnabar_cli_binary()
    env = dict(os.environ)
    try:
        up = subprocess.run(
            [cli, "cluster", "up", "--dir", work, "--base-port", str(base), "--server-bin", cinnabar_binary()],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=180,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        assert up.returncode == 0, up.stdout.decode(errors="replace")[-3000:]
        run = subprocess.run(
            [str(rust_client), f"127.0.0.1:{base}", f"127.0.0.1:{base + 1}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert run.returncode == 0, run.stdout.decode(errors="replace")[-3000:]
        assert b"OK: 3000 keys" in run.stdout
    finally:
        subprocess.run([cli, "cluster", "down", "--dir", work], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60, stdin=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
