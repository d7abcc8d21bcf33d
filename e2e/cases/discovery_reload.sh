#!/usr/bin/env bash
# File discovery: an endpoint added to the YAML reaches the worker within 1 s
# and gets traffic, one removed gets none 1 s later, and a broken file keeps
# the last good config in force.
source "$(dirname "$0")/../lib.sh"

M1=$(free_port); M2=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
start_mock m1 "$M1"
start_mock m2 "$M2"
write_cfg() {
    { echo "models:"; echo "  - name: mock-model"; echo "    endpoints:"
      for p in "$@"; do echo "      - 127.0.0.1:$p"; done; } >"$E2E_DIR/gw.yaml.tmp"
    mv "$E2E_DIR/gw.yaml.tmp" "$E2E_DIR/gw.yaml"
}
write_cfg "$M1"
start_controller ctl --config "$E2E_DIR/gw.yaml" --file-poll-interval 100ms
start_worker w1 "$W"
wait_http "$GW/readyz" 200 10
GOOD='{"model":"mock-model","messages":[{"role":"user","content":"ok"}]}'

# lands_on PORT: one of up to 30 requests lands on PORT (routing is random:
# a bound on time alone would fail once in a few hundred runs).
lands_on() {
    for _ in $(seq 1 30); do
        chat "$GOOD" >/dev/null
        [ "$(hdr target-pod-ip)" == "127.0.0.1:$1" ] && return 0
    done
    return 1
}
code=$(chat "$GOOD")
expect_eq "routes to the only endpoint" "$(hdr target-pod-ip)" "127.0.0.1:$M1"

gen0=$(metric "$GW" llmgw_worker_snapshot_generation)
write_cfg "$M1" "$M2"
new_snapshot() { [ "$(metric "$GW" llmgw_worker_snapshot_generation)" != "$gen0" ]; }
eventually "the worker holds the added endpoint within 1 s" 1 new_snapshot
expect_true "and routes to it" lands_on "$M2"

gen1=$(metric "$GW" llmgw_worker_snapshot_generation)
write_cfg "$M2"
removed_snapshot() { [ "$(metric "$GW" llmgw_worker_snapshot_generation)" != "$gen1" ]; }
eventually "the worker holds the snapshot without it within 1 s" 1 removed_snapshot
mock_clear "$M1"
for i in $(seq 1 20); do chat "$GOOD" >/dev/null; done
expect_eq "a removed endpoint gets no traffic once that snapshot is held" "$(mock_count "$M1")" 0

# Written whole (tmp + rename), so no read sees it half-written.
printf 'models: [ {name: broken' >"$E2E_DIR/gw.yaml.tmp" && mv "$E2E_DIR/gw.yaml.tmp" "$E2E_DIR/gw.yaml"
config_errors() { [ "$(metric "http://127.0.0.1:$CTL_HTTP" 'llmgw_controller_config_errors_total{source="file"}')" = 1 ]; }
eventually "the broken file is counted" 5 config_errors
code=$(chat "$GOOD")
expect_eq "a broken file keeps the last good config" "$code" 200
expect_true "the broken file is logged with its file:line:col" \
    grep -qE 'id=CTL-FILE-INVALID msg=".*gw\.yaml:[0-9]+:[0-9]+: ' "$E2E_DIR/ctl.log"
done_case
