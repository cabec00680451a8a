#!/usr/bin/env bash
# Stops (SIGTERM, clean shutdown) and removes the six containers started by up.sh.
#
#   deploy/docker/host-network/down.sh           # keep DATA_DIR: up.sh then restarts the same cluster
#   deploy/docker/host-network/down.sh --purge   # also delete DATA_DIR (nodes-*.conf, appendonly files)
#
# Uses the same NAME_PREFIX and DATA_DIR as up.sh. Only containers carrying up.sh's label are touched.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NAME_PREFIX="${NAME_PREFIX:-}"
DATA_DIR="${DATA_DIR:-$HERE/data}"
NAMES=(master_1 master_2 master_3 slave_1 slave_2 slave_3)
LABEL=cinnabar.layout=host-network

purge=0
case "${1:-}" in
    "") ;;
    --purge) purge=1 ;;
    *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

ours=()
for n in "${NAMES[@]}"; do
    c="$NAME_PREFIX$n"
    label="$(docker container inspect -f '{{index .Config.Labels "cinnabar.layout"}}' "$c" 2>/dev/null)" || continue
    if [[ "$label" == "${LABEL#*=}" ]]; then
        ours+=("$c")
    else
        echo "skipping container $c: not started by up.sh" >&2
    fi
done

if (( ${#ours[@]} )); then
    docker stop -t 10 "${ours[@]}" >/dev/null
    docker rm -v "${ours[@]}" >/dev/null
    echo ">>> removed ${ours[*]}"
fi

if (( purge )) && [[ -d "$DATA_DIR" ]]; then
    rm -rf -- "$DATA_DIR"
    echo ">>> removed $DATA_DIR"
fi
