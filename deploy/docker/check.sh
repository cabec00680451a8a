#!/usr/bin/env bash
# End-to-end check of the Docker deployment, as the user would run it, with the host's redis-cli:
#   0. build the static binaries and the FROM-scratch image (build-image.sh)
#   1. host-network layout: up.sh (MEET, ADDSLOTS, REPLICATE, wait cluster_state:ok), then
#      `redis-cli -c` SET/GET of key:{10}:111, key:{test}:111, key:{hu}:111 with the
#      "-> Redirected to slot [...] located at 127.0.0.1:<port>" lines, a clean `docker stop`
#      (SIGTERM handled by PID 1: "ready to exit", exit code 0, within seconds), down.sh
#   2. compose layout: the same from the host, redirects to the nodes' bridge IPs, down.sh
# Exits non-zero on any failure and always removes the containers, networks and volumes it made.
#
#   deploy/docker/check.sh
#   SKIP_BUILD=1 deploy/docker/check.sh              # reuse an existing $IMAGE
#   CHECK_BASE_PORT=21001 CHECK_NET=172.28.250 deploy/docker/check.sh
# No registry is needed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib/cluster.sh
source "$HERE/lib/cluster.sh"

IMAGE="${IMAGE:-cinnabar:latest}"
TAG="cinnabar-check-$$"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/$TAG.XXXXXX")"
PASSED=0
FAILED=0

pass() { PASSED=$(( PASSED + 1 )); printf 'PASS %s\n' "$*"; }
fail() { FAILED=$(( FAILED + 1 )); printf 'FAIL %s\n' "$*" >&2; }
# check "description" "failure details" command...: pass or fail on the command's status.
check() {
    local what="$1" details="$2"; shift 2
    if "$@"; then pass "$what"; else fail "$what: $details"; fi
}
same() { [[ "$1" == "$2" ]]; }

# Environment shared by the up/down scripts of both layouts.
export IMAGE CINNABAR_IMAGE="$IMAGE"
export NAME_PREFIX="$TAG-" DATA_DIR="$WORK/host-network"
export COMPOSE_PROJECT_NAME="${TAG//-/}"
unset BASE_PORT CINNABAR_PORT_1 CINNABAR_PORT_2 CINNABAR_PORT_3 CINNABAR_PORT_4 CINNABAR_PORT_5 CINNABAR_PORT_6

cleanup() {
    local rc=$?
    set +e
    "$HERE/host-network/down.sh" --purge >/dev/null 2>&1
    "$HERE/compose/down.sh" --purge >/dev/null 2>&1
    # Anything left with our names (e.g. a half-started layout).
    docker ps -aq --filter "name=^$TAG-" | xargs -r docker rm -f -v >/dev/null 2>&1
    docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" | xargs -r docker rm -f -v >/dev/null 2>&1
    docker network ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" | xargs -r docker network rm >/dev/null 2>&1
    docker volume ls -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" | xargs -r docker volume rm >/dev/null 2>&1
    rm -rf -- "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() {
    if command -v ss >/dev/null; then
        if ss -Hltn "sport = :$1" | grep -q .; then return 1; fi
    elif (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        return 1
    fi
    return 0
}
# compose_container service: its container id (compose v1 and v2 name containers differently).
compose_container() {
    docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
        --filter "label=com.docker.compose.service=$1"
}

# Six consecutive ports, and their bus ports (+10000), all free and below the ephemeral range.
pick_base_port() {
    local base p ok tries
    for (( tries = 0; tries < 50; tries++ )); do
        base=$(( 20001 + (RANDOM % 200) * 10 ))
        ok=1
        for (( p = base; p < base + 6; p++ )); do
            if ! port_free "$p" || ! port_free $(( p + 10000 )); then ok=0; break; fi
        done
        (( ok )) && { echo "$base"; return 0; }
    done
    return 1
}

# A /24 for the compose bridge that overlaps no route and no docker network on this host.
pick_net() {
    local c used
    used="$(ip -4 route show; docker network ls -q |
        xargs docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' 2>/dev/null)"
    for c in 172.28.213 172.28.231 172.29.213 172.30.213 172.31.213 10.213.213 192.168.213; do
        grep -q -F "${c%.*}." <<<"$used" || { echo "$c"; return 0; }
    done
    return 1
}

# walkthrough_session first-node-port host-of-node-2 host-of-node-3: the walkthrough's part 4.
walkthrough_session() {
    local p1="$1" h2="$2" h3="$3" out want
    out="$(printf '%s\n' 'cluster keyslot key:{10}:111' 'cluster keyslot key:{test}:111' 'cluster keyslot key:{hu}:111' |
        timeout 30 redis-cli -c -p "$p1" 2>&1 | tr -d '\r')"
    want=$'247\n6918\n11441'
    check "CLUSTER KEYSLOT 247 / 6918 / 11441" "got [$out], want [$want]" same "$out" "$want"

    out="$(printf '%s\n' 'set key:{10}:111 value:{10}:111' 'set key:{test}:111 value:{test}:111' 'set key:{hu}:111 value:{hu}:111' |
        timeout 30 redis-cli -c -p "$p1" 2>&1 | tr -d '\r')"
    want="OK
-> Redirected to slot [6918] located at $h2
OK
-> Redirected to slot [11441] located at $h3
OK"
    printf '%s\n' "$out" | sed 's/^/    /'
    check "redis-cli -c -p $p1 SET x3 with redirects to $h2 and $h3" "got [$out], want [$want]" same "$out" "$want"

    out="$(printf '%s\n' 'get key:{10}:111' 'get key:{test}:111' 'get key:{hu}:111' |
        timeout 30 redis-cli -c -p "$p1" 2>&1 | tr -d '\r')"
    want="value:{10}:111
-> Redirected to slot [6918] located at $h2
value:{test}:111
-> Redirected to slot [11441] located at $h3
value:{hu}:111"
    printf '%s\n' "$out" | sed 's/^/    /'
    check "redis-cli -c -p $p1 GET x3 with redirects to $h2 and $h3" "got [$out], want [$want]" same "$out" "$want"
}

# clean_stop container: docker stop must be quick (SIGTERM handled by PID 1) and clean.
clean_stop() {
    local c="$1" t0 dt code
    t0=$(date +%s%N)
    docker stop -t 10 "$c" >/dev/null
    dt=$(( ($(date +%s%N) - t0) / 1000000 ))
    code="$(docker inspect -f '{{.State.ExitCode}}' "$c")"
    if (( dt < 5000 )) && [[ "$code" == 0 ]] && docker logs "$c" 2>&1 | grep -q 'ready to exit'; then
        pass "docker stop $c: ${dt} ms, exit code 0, log says \"ready to exit\""
    else
        fail "docker stop $c: ${dt} ms, exit code $code, log tail: $(docker logs "$c" 2>&1 | tail -3)"
    fi
}

command -v docker >/dev/null || { echo "docker is required" >&2; exit 1; }
command -v redis-cli >/dev/null || { echo "redis-cli is required on the host" >&2; exit 1; }
start=$SECONDS

# --- 0. image ---------------------------------------------------------------------------------
if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
    docker image inspect "$IMAGE" >/dev/null || { echo "SKIP_BUILD=1 but no image $IMAGE" >&2; exit 1; }
else
    "$HERE/build-image.sh"
fi
pass "image $IMAGE built FROM scratch with static binaries"

# --- 1. host network: the walkthrough's layout ---------------------------------------------------
BASE="${CHECK_BASE_PORT:-$(pick_base_port)}" || { echo "no free port range found" >&2; exit 1; }
echo "=== host-network layout: BASE_PORT=$BASE (bus ports $(( BASE + 10000 ))..), containers ${NAME_PREFIX}master_1.."
if BASE_PORT="$BASE" "$HERE/host-network/up.sh"; then
    pass "host-network: up.sh formed the cluster, cluster_state:ok on all nodes"
    state="$(rcli "127.0.0.1:$BASE" cluster info | grep '^cluster_state:')"
    check "host-network: CLUSTER INFO on 127.0.0.1:$BASE says cluster_state:ok" "$state" same "$state" cluster_state:ok
    walkthrough_session "$BASE" "127.0.0.1:$(( BASE + 1 ))" "127.0.0.1:$(( BASE + 2 ))"
    clean_stop "${NAME_PREFIX}master_1"
else
    fail "host-network: up.sh"
    for n in master_1 master_2 master_3 slave_1 slave_2 slave_3; do
        echo "--- logs of $NAME_PREFIX$n"; { docker logs "$NAME_PREFIX$n" 2>&1 || true; } | tail -15
    done
fi
check "host-network: down.sh --purge" "failed" "$HERE/host-network/down.sh" --purge

# --- 2. compose: bridge network with static IPs, used from the host ----------------------------
NET="${CHECK_NET:-$(pick_net)}" || { echo "no free /24 found for the compose network" >&2; exit 1; }
PBASE="${CHECK_COMPOSE_PORT:-$(pick_base_port)}" || { echo "no free port range found" >&2; exit 1; }
export CINNABAR_NET="$NET" CINNABAR_PORT_BASE="$PBASE"
echo "=== compose layout: project $COMPOSE_PROJECT_NAME, subnet $NET.0/24, published 127.0.0.1:$PBASE.."
if "$HERE/compose/up.sh"; then
    pass "compose: up.sh formed the cluster, cluster_state:ok on all nodes"
    state="$(rcli "127.0.0.1:$PBASE" cluster info | grep '^cluster_state:')"
    check "compose: CLUSTER INFO on 127.0.0.1:$PBASE says cluster_state:ok" "$state" same "$state" cluster_state:ok
    walkthrough_session "$PBASE" "$NET.12:6379" "$NET.13:6379"
    # A client that starts at a node's bridge address directly, as a client container would.
    got="$(timeout 30 redis-cli -c -h "$NET.13" -p 6379 get 'key:{10}:111' 2>&1 | tr -d '\r')"
    check "compose: redis-cli -c -h $NET.13 -p 6379 GET key:{10}:111 (from a bridge address)" "got [$got]" \
        same "$got" 'value:{10}:111'
    clean_stop "$(compose_container node1)"
else
    fail "compose: up.sh"
    for i in 1 2 3 4 5 6; do
        echo "--- logs of node$i"; { docker logs "$(compose_container "node$i")" 2>&1 || true; } | tail -15
    done
fi
check "compose: down.sh --purge" "failed" "$HERE/compose/down.sh" --purge

echo "=== deploy/docker/check.sh: $(( SECONDS - start ))s"
echo "$PASSED passed, $FAILED failed"
(( FAILED == 0 ))
