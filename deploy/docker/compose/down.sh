#!/usr/bin/env bash
# Stops and removes the compose cluster (containers and network).
#
#   deploy/docker/compose/down.sh           # keep the node volumes: up.sh restarts the same cluster
#   deploy/docker/compose/down.sh --purge   # also remove the volumes (nodes.conf, appendonly files)
#
# Uses the same COMPOSE_PROJECT_NAME as up.sh (default cinnabar).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-cinnabar}"

args=(down --remove-orphans)
case "${1:-}" in
    "") ;;
    --purge) args+=(-v) ;;
    *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

if docker-compose version >/dev/null 2>&1; then COMPOSE=(docker-compose)
else COMPOSE=(docker compose); fi
"${COMPOSE[@]}" -f "$HERE/docker-compose.yml" "${args[@]}"
