#!/usr/bin/env bash
# File discovery: adding or removing an endpoint in the YAML changes routing
# within 1 s, and a broken file keeps the last good config in force.
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

# hits_after_change PORT: sends requests for up to 1 s until one lands on PORT.
lands_on_within_1s() {
    local port=$1 start=$(date +%s%N)
    while (( ($(date +%s%N) - start) < 1000000000 )); do
        chat "$GOOD" >/dev/null
        [ "$(hdr target-pod-ip)" == "127.0.0.1:$port" ] && return 0
    done
    return 1
}
code=$(chat "$GOOD")
expect_eq "routes to the only endpoint" "$(hdr target-pod-ip)" "127.0.0.1:$M1"

write_cfg "$M1" "$M2"
expect_true "an added endpoint gets traffic within 1 s" lands_on_within_1s "$M2"

write_cfg "$M2"
sleep 1
mock_clear "$M1"
for i in $(seq 1 20); do chat "$GOOD" >/dev/null; done
expect_eq "a removed endpoint gets no traffic 1 s later" "$(mock_count "$M1")" 0

printf 'models: [ {name: broken' >"$E2E_DIR/gw.yaml"
sleep 0.5
code=$(chat "$GOOD")
expect_eq "a broken file keeps the last good config" "$code" 200
expect_eq "the broken file is counted" "$(metric "http://127.0.0.1:$CTL_HTTP" 'llmgw_controller_config_errors_total{source="file"}')" 1
expect_true "the broken file is logged with its file:line:col" \
    grep -qE 'id=CTL-FILE-INVALID msg=".*gw\.yaml:[0-9]+:[0-9]+: ' "$E2E_DIR/ctl.log"
done_case
