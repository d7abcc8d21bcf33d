#!/usr/bin/env bash
# Static stability (DESIGN §1, §7): the controller is killed and restarted
# while traffic flows, and no client request fails. The worker keeps serving
# on its last snapshot and resyncs with the new controller.
source "$(dirname "$0")/../lib.sh"

M1=$(free_port); M2=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
start_mock m1 "$M1" --ttft-ms 2 --itl-ms 1
start_mock m2 "$M2" --ttft-ms 2 --itl-ms 1
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: mock-model
    endpoints: ["127.0.0.1:$M1", "127.0.0.1:$M2"]
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml"
start_worker w1 "$W"
wait_http "$GW/readyz" 200 10
gen1=$(metric "$GW" llmgw_worker_snapshot_generation)

# Traffic: 4 parallel clients, each sending requests back to back until told
# to stop; every status code is recorded.
: >"$E2E_DIR/codes"
client() {
    while [ ! -f "$E2E_DIR/stop" ]; do
        curl -s -o /dev/null -w '%{http_code}\n' --max-time 10 -H 'Content-Type: application/json' \
            -d '{"model":"mock-model","messages":[{"role":"user","content":"hi"}],"max_tokens":2}' \
            "$GW/v1/chat/completions" >>"$E2E_DIR/codes"
    done
}
cpids=()
for i in 1 2 3 4; do client & cpids+=($!); done
sleep 1
stop ctl KILL
sleep 1.5
before=$(wc -l <"$E2E_DIR/codes")
start_controller ctl2 --config "$E2E_DIR/gw.yaml"
sleep 1.5
# Change the config through the new controller: the worker must follow it.
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: mock-model
    endpoints: ["127.0.0.1:$M1"]
YAML
sleep 1
touch "$E2E_DIR/stop"
wait "${cpids[@]}"
total=$(wc -l <"$E2E_DIR/codes")
bad=$(grep -vc '^200$' "$E2E_DIR/codes")
e2e_table "controller SIGKILLed and restarted" "$total" "$bad" 0
expect_true "traffic flowed while the controller was down ($before requests before restart)" test "$before" -gt 20
expect_eq "no failed request across the controller's death and restart ($total sent)" "$bad" 0
gen2=$(metric "$GW" llmgw_worker_snapshot_generation)
expect_true "the worker took the new controller's snapshot (gen $gen1 -> $gen2)" \
    awk -v a="$gen1" -v b="$gen2" 'BEGIN{exit !(b > a)}'
mock_clear "$M2"
for i in $(seq 1 10); do chat '{"model":"mock-model","messages":[{"role":"user","content":"x"}]}' >/dev/null; done
expect_eq "config changes made after the restart reach the worker" "$(mock_count "$M2")" 0
done_case
