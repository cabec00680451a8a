#!/usr/bin/env bash
# The walkthrough's layout with Cinnabar: six containers on the host network (master_1..3 on
# ports 8001-8003, slave_1..3 on 8004-8006), each started from its own 800N/redis.conf, then
# formed with the host's redis-cli: CLUSTER MEET, CLUSTER ADDSLOTS, CLUSTER REPLICATE.
#
#   deploy/docker/host-network/up.sh
#   BASE_PORT=9001 deploy/docker/host-network/up.sh     # ports 9001-9006, bus ports 19001-19006
#
# Environment:
#   BASE_PORT    port of master_1 (default 8001); node N uses BASE_PORT+N-1, its bus +10000
#   IMAGE        image to run (default cinnabar:latest; build it with ../build-image.sh)
#   NAME_PREFIX  prefix for the container names (default none: master_1 ... slave_3)
#   DATA_DIR     where each node's working directory goes (default ./data next to this script):
#                DATA_DIR/<port>/ holds redis.conf (a copy of 800N/redis.conf, with the port
#                changed if BASE_PORT is not 8001), nodes-<port>.conf and the appendonly files
#   DEADLINE_S   seconds allowed for each wait (default 120)
#
# If every node already has its nodes-<port>.conf (containers removed by down.sh, data kept), the
# nodes are restarted and rejoin from that state; nothing is re-formed. `down.sh --purge` wipes it.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$HERE/../lib/cluster.sh"

BASE_PORT="${BASE_PORT:-8001}"
IMAGE="${IMAGE:-cinnabar:latest}"
NAME_PREFIX="${NAME_PREFIX:-}"
DATA_DIR="${DATA_DIR:-$HERE/data}"
NAMES=(master_1 master_2 master_3 slave_1 slave_2 slave_3)
LABEL=cinnabar.layout=host-network

if ! [[ "$BASE_PORT" =~ ^[0-9]+$ ]] || (( BASE_PORT < 1 || BASE_PORT + 5 + 10000 > 65535 )); then
    die "BASE_PORT must be a number from 1 to 55530 (bus ports are port+10000)"
fi
command -v "$REDIS_CLI" >/dev/null || die "redis-cli is not installed on the host"
docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE not found: run deploy/docker/build-image.sh"

for n in "${NAMES[@]}"; do
    if docker container inspect "$NAME_PREFIX$n" >/dev/null 2>&1; then
        die "container $NAME_PREFIX$n already exists: run $HERE/down.sh first"
    fi
done

# The ports (client and bus) must be free: with --net=host a clash would only show as a crash.
if command -v ss >/dev/null; then
    for (( i = 0; i < 6; i++ )); do
        for p in $(( BASE_PORT + i )) $(( BASE_PORT + i + 10000 )); do
            if ss -Hltn "sport = :$p" | grep -q .; then die "port $p is already in use"; fi
        done
    done
fi

CTL=(); MEET=(); DIRS=()
for (( i = 0; i < 6; i++ )); do
    port=$(( BASE_PORT + i ))
    src="$HERE/$(( 8001 + i ))/redis.conf"
    dir="$DATA_DIR/$port"
    mkdir -p "$dir"
    # The user's redis.conf, unchanged for BASE_PORT=8001; otherwise only the port and the
    # nodes file name follow the new port.
    sed -e "s/^port .*/port $port/" \
        -e "s/^cluster-config-file .*/cluster-config-file nodes-$port.conf/" "$src" >"$dir/redis.conf"
    CTL+=("127.0.0.1:$port"); MEET+=(127.0.0.1 "$port"); DIRS+=("$dir")
done

restart=0
if already_formed "${DIRS[@]}"; then
    restart=1
elif compgen -G "$DATA_DIR/*/nodes*.conf" >/dev/null; then
    die "$DATA_DIR holds cluster state for only some nodes: run $HERE/down.sh --purge first"
fi

# As the walkthrough: docker run -d --net=host --name master_1 -v .../8001/redis.conf:... cinnabar
# Here the node's whole directory is mounted as /data (the image's working directory), so the
# server can write nodes-<port>.conf and its appendonly files next to redis.conf. The container
# runs as the invoking user so those files belong to them.
for (( i = 0; i < 6; i++ )); do
    name="$NAME_PREFIX${NAMES[i]}"
    docker run -d --net=host --name "$name" --label "$LABEL" \
        --user "$(id -u):$(id -g)" \
        -v "${DIRS[i]}:/data" \
        "$IMAGE" /data/redis.conf >/dev/null
    log "started $name on port $(( BASE_PORT + i ))"
done

wait_nodes_up
if (( restart )); then
    log "nodes-<port>.conf found for every node: restarting the existing cluster, not re-forming it"
else
    form_cluster
fi
wait_cluster_ok
rcli "${CTL[0]}" cluster nodes | sort -k2
log "cluster is up: redis-cli -c -p $BASE_PORT"
