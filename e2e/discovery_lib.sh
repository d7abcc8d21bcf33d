# e2e/discovery_lib.sh: traffic accounting for the discovery failure cases
# (discovery_etcd.sh, discovery_redis.sh), sourced after lib.sh. Background
# clients send requests through $GW back to back; each answer is recorded as
# "<scenario> <status>" under the scenario running when it was sent, so every
# failure scenario gets its own count of failed client requests.

# traffic_start N: N clients, scenario "baseline".
traffic_start() {
    echo baseline >"$E2E_DIR/phase"
    : >"$E2E_DIR/codes"
    DISC_CPIDS=()
    for ((c = 0; c < $1; c++)); do disc_client & DISC_CPIDS+=($!); done
}
disc_client() {
    local ph code
    while [ ! -f "$E2E_DIR/stop" ]; do
        ph=$(cat "$E2E_DIR/phase")
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type: application/json' \
            -d '{"model":"mock-model","messages":[{"role":"user","content":"hi"}],"max_tokens":2}' \
            "$GW/v1/chat/completions")
        echo "${ph:-none} ${code:-000}" >>"$E2E_DIR/codes"
    done
}
# phase NAME: later answers count for scenario NAME. Renamed into place, so a
# client never reads a half-written file.
phase() {
    echo "$1" >"$E2E_DIR/phase.new"
    mv "$E2E_DIR/phase.new" "$E2E_DIR/phase"
    e2e_log "scenario: $1"
}
traffic_stop() {
    touch "$E2E_DIR/stop"
    wait "${DISC_CPIDS[@]}"
}

# report "SCENARIO[:KILLED_IN_FLIGHT]"...: prints the table and asserts that
# traffic flowed in every scenario and that no request failed except the
# ones in flight on an engine the scenario killed.
report() {
    local arg ph killed sent failed
    e2e_log "scenario        sent  failed  (in flight on the killed engine)"
    for arg in "$@"; do
        ph=${arg%%:*}
        killed=0
        [ "$arg" != "$ph" ] && killed=${arg#*:}
        sent=$(awk -v p="$ph" '$1==p' "$E2E_DIR/codes" | wc -l)
        failed=$(awk -v p="$ph" '$1==p && $2!="200"' "$E2E_DIR/codes" | wc -l)
        printf '[%s] %-15s %5d %6d  (%d)\n' "$E2E_NAME" "$ph" "$sent" "$failed" "$killed"
        expect_true "traffic flowed during $ph ($sent requests)" test "$sent" -gt 5
        expect_eq "no failed client request during $ph beyond those killed with their engine" \
            "$((failed - killed))" 0
        expect_true "at most one request per client died with the engine in $ph" test "$killed" -le 3
    done
}
