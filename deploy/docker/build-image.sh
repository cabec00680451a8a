#!/usr/bin/env bash
# Builds the static cinnabar-server and cinnabar binaries and the FROM-scratch image.
#
#   deploy/docker/build-image.sh            # -> image cinnabar:latest
#   IMAGE=cinnabar:dev deploy/docker/build-image.sh
#   SKIP_CARGO=1 deploy/docker/build-image.sh   # reuse binaries already built
#
# No registry is needed: the image is FROM scratch and only COPYs our own binaries.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
IMAGE="${IMAGE:-cinnabar:latest}"
TRIPLE=x86_64-unknown-linux-gnu
BIN_REL="target/$TRIPLE/release"
BIN_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/$TRIPLE/release"
BINS=(cinnabar-server cinnabar)

log() { printf '>>> %s\n' "$*"; }
die() { printf 'build-image: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
cd "$ROOT"

if [[ "${SKIP_CARGO:-0}" != 1 ]]; then
    log "cargo build-static -p cinnabar-server -p cinnabar-cli (release, --target $TRIPLE, +crt-static)"
    # RUSTFLAGS from the environment would override the alias' target rustflags; drop them.
    env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS \
        cargo build-static -p cinnabar-server -p cinnabar-cli
fi

# Verify both binaries are static: the image has no libc, no loader, nothing.
for b in "${BINS[@]}"; do
    f="$BIN_DIR/$b"
    [[ -x "$f" ]] || die "$f is missing (run without SKIP_CARGO=1)"
    if readelf -lW "$f" | grep -q 'Requesting program interpreter'; then
        die "$f has a program interpreter: it is dynamically linked"
    fi
    if readelf -dW "$f" | grep -q '(NEEDED)'; then
        die "$f needs shared libraries: $(readelf -dW "$f" | grep '(NEEDED)' | tr -s ' ' | cut -d' ' -f6- | tr '\n' ' ')"
    fi
    if command -v file >/dev/null; then
        log "$b: $(file -b "$f" | cut -d, -f1-2,4)"
    else
        log "$b: static (no interpreter, no NEEDED entries)"
    fi
done

# The Dockerfile copies from target/$TRIPLE/release in the build context (the repository root,
# filtered by .dockerignore). With a CARGO_TARGET_DIR elsewhere, stage a minimal context instead.
CONTEXT="$ROOT"
STAGE=""
if [[ "$(cd "$BIN_DIR" && pwd -P)" != "$(cd "$ROOT" && pwd -P)/$BIN_REL" ]]; then
    STAGE="$(mktemp -d)"
    trap 'rm -rf "$STAGE"' EXIT
    mkdir -p "$STAGE/$BIN_REL" "$STAGE/deploy/docker"
    cp "${BINS[@]/#/$BIN_DIR/}" "$STAGE/$BIN_REL/"
    cp -r "$ROOT/deploy/docker/rootfs" "$STAGE/deploy/docker/"
    CONTEXT="$STAGE"
fi

log "docker build -t $IMAGE (FROM scratch, legacy builder)"
# The legacy builder works with no registry and without buildx (its deprecation banner is only
# shown if the build fails).
if ! out="$(DOCKER_BUILDKIT=0 docker build -f "$ROOT/deploy/docker/Dockerfile" -t "$IMAGE" "$CONTEXT" 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "docker build failed"
fi

# Smoke test: the entrypoint runs in the empty image.
ver="$(docker run --rm "$IMAGE" --version)" || die "image $IMAGE does not run"
log "built $IMAGE ($(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.1f MB", $1/1e6}')): $ver"
