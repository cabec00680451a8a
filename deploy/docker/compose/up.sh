#!/usr/bin/env bash
# Starts the six-node cluster of docker-compose.yml and forms it from the host with redis-cli:
# CLUSTER MEET (with the nodes' bridge IPs), ADDSLOTS {0..5461} / {5462..10922} / {10923..16383},
# CLUSTER REPLICATE, then waits for cluster_state:ok on every node.
#
#   deploy/docker/compose/up.sh
#   redis-cli -c -p 7001
#
# Environment (all optional):
#   COMPOSE_PROJECT_NAME  compose project name (default cinnabar): containers, network, volumes
#   CINNABAR_IMAGE        image (default cinnabar:latest; build it with ../build-image.sh)
#   CINNABAR_NET          first three octets of the bridge /24 (default 172.28.213)
#   CINNABAR_PORT_BASE    first published port on 127.0.0.1 (default 7001; nodes use +0..+5),
#                         or set CINNABAR_PORT_1..CINNABAR_PORT_6 one by one
#   DEADLINE_S            seconds allowed for each wait (default 120)
# If the cluster already exists (its volumes hold nodes.conf), it is just started again.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../lib/cluster.sh
source "$HERE/../lib/cluster.sh"

export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-cinnabar}"
export CINNABAR_IMAGE="${CINNABAR_IMAGE:-cinnabar:latest}"
export CINNABAR_NET="${CINNABAR_NET:-172.28.213}"
CINNABAR_PORT_BASE="${CINNABAR_PORT_BASE:-7001}"
[[ "$CINNABAR_NET" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "CINNABAR_NET must be three octets, e.g. 172.28.213"
for i in 1 2 3 4 5 6; do
    v="CINNABAR_PORT_$i"
    export "$v=${!v:-$(( CINNABAR_PORT_BASE + i - 1 ))}"
done

if docker-compose version >/dev/null 2>&1; then COMPOSE=(docker-compose)
elif docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose)
else die "neither docker-compose nor the docker compose plugin is installed"; fi
COMPOSE+=(-f "$HERE/docker-compose.yml")

command -v "$REDIS_CLI" >/dev/null || die "redis-cli is not installed on the host"
docker image inspect "$CINNABAR_IMAGE" >/dev/null 2>&1 ||
    die "image $CINNABAR_IMAGE not found: run deploy/docker/build-image.sh"

# Is this a restart of an existing cluster (volumes kept by `down.sh` without --purge)?
restart=0
if docker volume inspect "${COMPOSE_PROJECT_NAME}_node1" >/dev/null 2>&1; then restart=1; fi

log "${COMPOSE[*]} up -d (project $COMPOSE_PROJECT_NAME, subnet $CINNABAR_NET.0/24)"
if ! out="$("${COMPOSE[@]}" up -d 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "docker-compose up failed"
fi
[[ -n "$("${COMPOSE[@]}" ps -q)" ]] || die "docker-compose started nothing"

# The host reaches each node through its published loopback port; nodes reach each other (and
# are announced) at their static bridge IPs.
CTL=(); MEET=()
for i in 1 2 3 4 5 6; do
    v="CINNABAR_PORT_$i"
    CTL+=("127.0.0.1:${!v}")
    MEET+=("$CINNABAR_NET.1$i" 6379)
done

wait_nodes_up
if (( restart )) && [[ "$(_info_field "${CTL[0]}" cluster_known_nodes)" == 6 ]]; then
    log "existing cluster state found in the volumes: not re-forming it"
else
    form_cluster
fi
wait_cluster_ok
rcli "${CTL[0]}" cluster nodes | sort -k2
log "cluster is up: redis-cli -c -p ${CTL[0]##*:}   (or redis-cli -c -h $CINNABAR_NET.11 -p 6379)"
