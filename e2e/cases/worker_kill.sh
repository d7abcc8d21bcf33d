#!/usr/bin/env bash
# One of two workers sharing the client port (SO_REUSEPORT) is SIGKILLed
# under load (issue 11, DESIGN §7), with the kernel's default and with
# net.ipv4.tcp_migrate_req=1 (docs/reliability.md).
# - Default: the kernel resets the connections in the dead worker's accept
#   queue, including ones made after the kill while the process is still
#   exiting (an ASan process takes a while to unmap its memory before its
#   sockets close). The case checks that every failure falls before the
#   process is gone and that the other worker serves everything after.
# - With tcp_migrate_req=1 the kernel moves that queue to the other worker:
#   only the requests the dead worker held fail.
# The case runs in its own network namespace (unshare: an unprivileged user
# namespace suffices) so it can set the sysctl without touching the host.
if [ -z "${E2E_NETNS:-}" ]; then
    E2E_NETNS=1 exec unshare --map-root-user --net \
        bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
fi
source "$(dirname "$0")/../lib.sh"

M1=$(free_port); M2=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
C=6 # concurrent clients, each request on its own connection
for m in m1:$M1 m2:$M2; do start_mock "${m%%:*}" "${m#*:}" --ttft-ms 5 --itl-ms 20; done
printf 'models:\n  - name: mock-model\n    endpoints: ["127.0.0.1:%s", "127.0.0.1:%s"]\n' "$M1" "$M2" \
    >"$E2E_DIR/gw.yaml"
start_controller ctl --config "$E2E_DIR/gw.yaml"
WFLAGS=(--access-log off)
start_worker w2 "$W" "${WFLAGS[@]}"

# In flight in a worker = the client connections it accepted and holds,
# counted by the kernel (a connection waiting in the accept queue has no pid).
conns_of() { ss -Htnp state established "( sport = :$W )" | grep -c "pid=$1,"; }
now() { date +%s.%N; }

# kill_worker_under_load NAME: starts worker NAME-w beside w2, kills it 2 s
# into the load NAME, and sets HELD (connections it held just before), KILLED,
# GONE (when its process was reaped), SENT and FAILED.
kill_worker_under_load() {
    start_worker "$1-w" "$W" "${WFLAGS[@]}"
    load_start "$1" --concurrency "$C" --max-tokens 10
    sleep 2
    # The kernel spreads connections by a hash: wait for one in this worker.
    # Stopped, it accepts nothing more, so the count is exact at the kill.
    for ((i = 0; i < 100; i++)); do
        kill -STOP "${E2E_PIDS[$1-w]}"
        HELD=$(conns_of "${E2E_PIDS[$1-w]}")
        [ "$HELD" -ge 1 ] && break
        kill -CONT "${E2E_PIDS[$1-w]}"
        sleep 0.05
    done
    KILLED=$(now)
    stop "$1-w" KILL
    GONE=$(now)
    sleep 2
    load_stop "$1"
    SENT=$(load_res "$1" sent); FAILED=$(load_res "$1" failed)
    expect_true "$1: the killed worker had requests in flight ($HELD)" test "$HELD" -ge 1
    expect_true "$1: traffic flowed ($SENT requests)" test "$SENT" -gt 50
}

# ---- the kernel's default: the accept queue is reset -------------------------
echo 0 >/proc/sys/net/ipv4/tcp_migrate_req
kill_worker_under_load default
e2e_table "one of two workers SIGKILLed, tcp_migrate_req=0 ($HELD client connections in it)" \
    "$SENT" "$FAILED" "<= $HELD + those queued to it until its sockets close"
failed_between() { jq -r --argjson a "$2" --argjson b "$3" 'select(.t > $a and .t <= $b) | .t' "$E2E_DIR/$1.failures" 2>/dev/null | wc -l; }
expect_eq "default: no failure before the kill" "$(failed_between default 0 "$KILLED")" 0
expect_eq "default: no failure once the killed worker is gone" "$(failed_between default "$(awk -v g="$GONE" 'BEGIN{printf "%.3f", g + 0.5}')" 1e12)" 0
traffic_after() {
    load_start after --concurrency "$C" --max-tokens 10
    sleep 2
    load_stop after
    expect_eq "$1: the surviving worker serves everything after" "$(load_res after failed)" 0
    expect_true "$1: and it did serve ($(load_res after sent) requests)" test "$(load_res after sent)" -gt 10
}
traffic_after default

# ---- tcp_migrate_req=1: the queue moves to the surviving worker ---------------
echo 1 >/proc/sys/net/ipv4/tcp_migrate_req
kill_worker_under_load migrate
e2e_table "one of two workers SIGKILLed, tcp_migrate_req=1 ($HELD client connections in it)" \
    "$SENT" "$FAILED" "<= $HELD"
expect_true "migrate: only the killed worker's in-flight requests fail ($FAILED <= $HELD)" \
    test "$FAILED" -le "$HELD"
expect_eq "migrate: each failure is a reset connection, not an error answer" \
    "$(jq -r .reason "$E2E_DIR/migrate.failures" 2>/dev/null | grep -c '^status_')" 0
traffic_after migrate
done_case
