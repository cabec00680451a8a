# shellcheck shell=bash
# Shared helpers for deploy/docker/*/up.sh and check.sh: form a 3-master + 3-replica cluster
# with the host's redis-cli, exactly through the walkthrough's steps (CLUSTER MEET,
# CLUSTER ADDSLOTS {0..5461} / {5462..10922} / {10923..16383}, CLUSTER REPLICATE <master id>),
# waiting on conditions with deadlines rather than fixed sleeps.
#
# Callers set, before calling form_cluster / wait_cluster_ok:
#   CTL=(host:port x6)   where the host's redis-cli reaches node 1..6 (nodes 1-3 masters, 4-6 replicas)
#   MEET=(ip port x6)    the address nodes use to reach each other (the argument of CLUSTER MEET)
#   DEADLINE_S           seconds allowed for each wait (default 120)

REDIS_CLI="${REDIS_CLI:-redis-cli}"
DEADLINE_S="${DEADLINE_S:-120}"

log() { printf '>>> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# rcli host:port args... -> the reply, CRs stripped. Never hangs for long (redis-cli 7.0 has no
# timeout option of its own).
rcli() {
    local hp="$1"; shift
    timeout 10 "$REDIS_CLI" -h "${hp%:*}" -p "${hp##*:}" "$@" 2>&1 | tr -d '\r'
}

# wait_until "description" cmd args...: polls cmd until it succeeds or DEADLINE_S passes.
wait_until() {
    local what="$1"; shift
    local start=$SECONDS
    until "$@" >/dev/null 2>&1; do
        if (( SECONDS - start >= DEADLINE_S )); then
            printf 'error: timed out after %ss waiting for: %s\n' "$DEADLINE_S" "$what" >&2
            return 1
        fi
        sleep 0.2   # poll interval, not a wait for something to happen
    done
    log "$what ($(( SECONDS - start ))s)"
}

_is_ping() { [[ "$(rcli "$1" ping)" == PONG ]]; }
_info_field() { rcli "$1" cluster info | sed -n "s/^$2://p"; }
_knows_all() { [[ "$(_info_field "$1" cluster_known_nodes)" == "$2" ]] && ! rcli "$1" cluster nodes | grep -q -e handshake -e noaddr; }
_knows_id() { rcli "$1" cluster nodes | grep -q "^$2 "; }
_all_knows_all() { local hp; for hp in "${CTL[@]}"; do _knows_all "$hp" "${#CTL[@]}" || return 1; done; }

# Every node: cluster_state:ok, all 16384 slots ok, and it sees 3 masters with slots and 3 replicas.
_cluster_ok_everywhere() {
    local hp nodes
    for hp in "${CTL[@]}"; do
        [[ "$(_info_field "$hp" cluster_state)" == ok ]] || return 1
        [[ "$(_info_field "$hp" cluster_slots_ok)" == 16384 ]] || return 1
        nodes="$(rcli "$hp" cluster nodes)"
        [[ "$(grep -c -E '(master|slave) ' <<<"$nodes")" == 6 ]] || return 1
        [[ "$(grep -c -E '[ ,]slave ' <<<"$nodes")" == 3 ]] || return 1
        grep -q -e fail -e handshake <<<"$nodes" && return 1
    done
    return 0
}

# expect_ok "description" reply
expect_ok() { [[ "$2" == OK ]] || die "$1 returned: $2"; }

wait_nodes_up() {
    local hp
    for hp in "${CTL[@]}"; do
        wait_until "node $hp answers PING" _is_ping "$hp" || return 1
    done
}

form_cluster() {
    local n=${#CTL[@]} i id
    (( n == 6 )) || die "form_cluster expects 6 nodes"
    local first="${CTL[0]}"

    # 1. Handshake: node 1 meets the five others.
    for (( i = 1; i < n; i++ )); do
        expect_ok "CLUSTER MEET ${MEET[2*i]} ${MEET[2*i+1]}" \
            "$(rcli "$first" cluster meet "${MEET[2*i]}" "${MEET[2*i+1]}")"
        log "$first> CLUSTER MEET ${MEET[2*i]} ${MEET[2*i+1]}: OK"
    done
    wait_until "every node knows all $n nodes" _all_knows_all || return 1

    # 2. Slots: the walkthrough's three ranges, bash brace expansion as typed by the user.
    expect_ok "ADDSLOTS {0..5461}" "$(rcli "${CTL[0]}" cluster addslots {0..5461})"
    log "${CTL[0]}> CLUSTER ADDSLOTS {0..5461}: OK"
    expect_ok "ADDSLOTS {5462..10922}" "$(rcli "${CTL[1]}" cluster addslots {5462..10922})"
    log "${CTL[1]}> CLUSTER ADDSLOTS {5462..10922}: OK"
    expect_ok "ADDSLOTS {10923..16383}" "$(rcli "${CTL[2]}" cluster addslots {10923..16383})"
    log "${CTL[2]}> CLUSTER ADDSLOTS {10923..16383}: OK"

    # 3. Replicas: node 4 replicates node 1, 5 -> 2, 6 -> 3, using the masters' ids.
    for i in 0 1 2; do
        id="$(rcli "${CTL[i]}" cluster myid)"
        [[ "$id" =~ ^[0-9a-f]{40}$ ]] || die "CLUSTER MYID on ${CTL[i]} returned: $id"
        wait_until "${CTL[i+3]} knows master $id" _knows_id "${CTL[i+3]}" "$id" || return 1
        expect_ok "CLUSTER REPLICATE $id on ${CTL[i+3]}" "$(rcli "${CTL[i+3]}" cluster replicate "$id")"
        log "${CTL[i+3]}> CLUSTER REPLICATE $id: OK"
    done
}

wait_cluster_ok() {
    wait_until "cluster_state:ok on all ${#CTL[@]} nodes (3 masters, 3 replicas)" _cluster_ok_everywhere
}

# True if nodes-*.conf state exists for every node (a restart: the cluster is already formed).
# Usage: already_formed dir...
already_formed() {
    local d
    for d in "$@"; do compgen -G "$d/nodes*.conf" >/dev/null || return 1; done
}
