#!/usr/bin/env bash
# One of two workers sharing the client port (SO_REUSEPORT) is SIGKILLed
# under load (issue 11, DESIGN §7), with the kernel's default and with
# net.ipv4.tcp_migrate_req=1 (docs/reliability.md, "Several workers on one
# port"). The worker is first stopped (SIGSTOP) for a while: it accepts
# nothing more, so the connections it holds are counted exactly, and new
# connections hashed to it wait in its accept queue.
# - Default: the kernel resets that queue at the kill, so the queued
#   requests fail too, as do any made while the process is still exiting.
#   Every failure falls between the kill and the process being gone.
# - With tcp_migrate_req=1 the kernel moves the queue to the other worker:
#   only the requests the dead worker held fail.
# The case runs in its own network namespace (unshare; an unprivileged user
# namespace suffices) so it can set the sysctl without touching the host.
if [ -z "${E2E_NETNS:-}" ]; then
    unshare --map-root-user --net true 2>/dev/null ||
        { echo "worker_kill: skipped: no user and network namespaces here (unshare)"; exit 77; }
    E2E_NETNS=1 exec unshare --map-root-user --net \
        bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$@"
fi
source "$(dirname "$0")/../lib.sh"

MIGRATE=/proc/sys/net/ipv4/tcp_migrate_req
{ echo 1 >"$MIGRATE" && [ "$(cat "$MIGRATE")" = 1 ]; } 2>/dev/null ||
    skip_case "the kernel has no net.ipv4.tcp_migrate_req (Linux 5.14 or later)"

M1=$(free_port); M2=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
C=12 # concurrent clients, each request on its own connection
for m in m1:$M1 m2:$M2; do start_mock "${m%%:*}" "${m#*:}" --ttft-ms 5 --itl-ms 20; done
printf 'models:\n  - name: mock-model\n    endpoints: ["127.0.0.1:%s", "127.0.0.1:%s"]\n' "$M1" "$M2" \
    >"$E2E_DIR/gw.yaml"
start_controller ctl --config "$E2E_DIR/gw.yaml"
WFLAGS=(--access-log off)
start_worker w2 "$W" "${WFLAGS[@]}"

# The length of a worker's listen socket's accept queue.
queue_of() { ss -Hltnp "( sport = :$W )" | awk -v p="pid=$1," 'index($0, p) {print $2; f = 1} END {if (!f) print 0}'; }
now() { date +%s.%N; }

# kill_worker_under_load NAME: starts worker NAME-w beside w2, stops it 2 s
# into the load NAME, waits for connections to queue to it, kills it, and
# sets HELD, QUEUED (at the kill), KILLED, GONE (its process reaped), SENT
# and FAILED.
kill_worker_under_load() {
    local pid i
    start_worker "$1-w" "$W" "${WFLAGS[@]}"
    pid=${E2E_PIDS[$1-w]}
    load_start "$1" --concurrency "$C" --max-tokens 10
    sleep 2
    # The kernel spreads connections by a hash: stop it while it holds some
    # but leaves clients free to queue to it.
    for ((i = 0; i < 100; i++)); do
        kill -STOP "$pid"
        HELD=$(conns_held "$W" "$pid")
        [ "$HELD" -ge 1 ] && [ "$HELD" -le $((C - 3)) ] && break
        kill -CONT "$pid"
        sleep 0.05
    done
    for ((i = 0; i < 100; i++)); do
        QUEUED=$(queue_of "$pid")
        [ "$QUEUED" -ge 3 ] && break
        sleep 0.05
    done
    KILLED=$(now)
    stop "$1-w" KILL
    GONE=$(now)
    sleep 2
    load_stop "$1"
    SENT=$(load_res "$1" sent); FAILED=$(load_res "$1" failed)
    expect_true "$1: the killed worker held requests ($HELD)" test "$HELD" -ge 1
    expect_true "$1: and had connections queued to it ($QUEUED >= 3)" test "$QUEUED" -ge 3
    expect_true "$1: traffic flowed ($SENT requests)" test "$SENT" -gt 50
    expect_eq "$1: each failure is a cut connection or stream, not an error answer" \
        "$(jq -r .reason "$E2E_DIR/$1.failures" 2>/dev/null | grep -vcE '^(conn_|stream_error_event$)')" 0
}
failed_between() { jq -r --argjson a "$2" --argjson b "$3" 'select(.t > $a and .t <= $b) | .t' "$E2E_DIR/$1.failures" 2>/dev/null | wc -l; }
traffic_after() {
    load_start after --concurrency "$C" --max-tokens 10
    sleep 2
    load_stop after
    expect_eq "$1: the surviving worker serves everything after" "$(load_res after failed)" 0
    expect_true "$1: and it did serve ($(load_res after sent) requests)" test "$(load_res after sent)" -gt 10
}

# ---- the kernel's default: the accept queue is reset -------------------------
echo 0 >"$MIGRATE"
kill_worker_under_load default
e2e_table "one of two workers SIGKILLed, tcp_migrate_req=0 ($HELD held, $QUEUED queued)" \
    "$SENT" "$FAILED" "its held requests + its queue ($((HELD + QUEUED))) + those queued while it exits"
expect_true "default: the queued requests fail too ($FAILED >= $QUEUED queued)" test "$FAILED" -ge "$QUEUED"
expect_eq "default: no failure before the kill" "$(failed_between default 0 "$KILLED")" 0
expect_eq "default: no failure once the killed worker is gone" \
    "$(failed_between default "$(awk -v g="$GONE" 'BEGIN{printf "%.3f", g + 0.5}')" 1e12)" 0
traffic_after default

# ---- tcp_migrate_req=1: the queue moves to the surviving worker ---------------
echo 1 >"$MIGRATE"
kill_worker_under_load migrate
e2e_table "one of two workers SIGKILLed, tcp_migrate_req=1 ($HELD held, $QUEUED queued)" \
    "$SENT" "$FAILED" "<= $HELD (its held requests)"
expect_true "migrate: only the requests it held fail, not its queue ($FAILED <= $HELD)" \
    test "$FAILED" -le "$HELD"
traffic_after migrate
done_case
