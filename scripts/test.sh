#!/usr/bin/env bash
# scripts/test.sh — owned by the test harness (tests/, .ci/, scripts/).
#
# THE test command (README): ./scripts/test.sh [extra pytest args...]
#   1. installs what is missing (redis-server/redis-tools from Debian, the
#      pinned Python packages of tests/requirements.txt) — idempotent, no stdin
#   2. cargo build --release --workspace
#   3. cargo test --workspace --release
#   4. python3 -m pytest tests -q   with CINNABAR_SERVER (default
#      target/release/cinnabar-server) — a run that collects 0 tests FAILS.
# Exits non-zero on any failure.
#
# Environment knobs:
#   CINNABAR_SERVER=path   server binary under test (default target/release/cinnabar-server)
#   SKIP_CARGO=1           skip steps 2-3 (e.g. CINNABAR_SERVER=/usr/bin/redis-server
#                          SKIP_CARGO=1 ./scripts/test.sh  self-validates the harness)
#   SKIP_INSTALL=1         skip step 1
#   CINNABAR_KNOWN_FAILURES=0  ignore tests/known_failures.txt
#
# Tests only ever use their own free ports (12000-15999, bus +10000), never
# 6379, so the redis-server that Debian's package may auto-start as a service
# does not interfere.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
export DEBIAN_FRONTEND=noninteractive
# Some sandboxes hand over a closed/absent stdin; never read from it.
exec </dev/null

log() { printf '\n==> %s\n' "$*"; }

SUDO=()
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); fi

apt_install() {
    # Install Debian packages; run `apt-get update` only if the first attempt fails.
    if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "$@"; then
        "${SUDO[@]}" apt-get update
        "${SUDO[@]}" apt-get install -y --no-install-recommends "$@"
    fi
}

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    log "checking system packages"
    pkgs=()
    command -v redis-server >/dev/null 2>&1 || pkgs+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-tools)
    command -v python3 >/dev/null 2>&1 || pkgs+=(python3)
    python3 -m pip --version >/dev/null 2>&1 || pkgs+=(python3-pip)
    if [ ${#pkgs[@]} -gt 0 ]; then
        log "apt-get install ${pkgs[*]}"
        apt_install "${pkgs[@]}"
    fi
    ver=$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')
    case "$ver" in
        7.0.*) ;;
        *) echo "WARNING: oracle redis-server is $ver, the differential tests expect 7.0.x" >&2 ;;
    esac

    log "checking Python packages (tests/requirements.txt)"
    if ! python3 - "$ROOT/tests/requirements.txt" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
ok = True
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have != want:
        ok = False
sys.exit(0 if ok else 1)
PY
    then
        pipargs=(-q --disable-pip-version-check --no-input -r "$ROOT/tests/requirements.txt")
        # Debian's system python refuses plain pip installs (PEP 668).
        python3 -m pip install "${pipargs[@]}" \
            || python3 -m pip install --break-system-packages "${pipargs[@]}"
    fi
fi

if [ "${SKIP_CARGO:-0}" != 1 ]; then
    log "cargo build --release --workspace"
    cargo build --release --workspace
    log "cargo test --workspace --release"
    cargo test --workspace --release
fi

export CINNABAR_SERVER="${CINNABAR_SERVER:-$ROOT/target/release/cinnabar-server}"
export REDIS_SERVER="${REDIS_SERVER:-$(command -v redis-server)}"
export PYTHONDONTWRITEBYTECODE=1
log "pytest (CINNABAR_SERVER=$CINNABAR_SERVER, oracle $REDIS_SERVER)"
set +e
python3 -m pytest "$ROOT/tests" -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
    echo "ERROR: pytest collected no tests — refusing to treat that as success" >&2
    exit 1
fi
exit $rc
