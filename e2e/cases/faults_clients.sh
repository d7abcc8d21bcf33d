#!/usr/bin/env bash
# Client faults while other traffic flows (issue 11, DESIGN §7): clients that
# go away mid-stream (the upstream is cancelled, the slot released: seen in
# the worker's metrics and the engine's records), clients that stall or
# trickle headers or a body (closed by --client-timeout when they stall; a
# trickle holds only its own connection), and more connections than
# --conn-limit (the excess is answered 503 x-error-conn-limit and closed; the
# engine never sees more than the limit; a worker that also filled its
# refusal slots accepts again once connections close). Other clients see
# no failure in any of it. Each fault prints a "TABLE |" line.
source "$(dirname "$0")/../lib.sh"

SLOW=$E2E_SRC/e2e/tools/slow_client.py
one_model_gateway --ttft-ms 5 --itl-ms 50 -- --client-timeout 2s --conn-limit 40 --access-log off

traffic() { load_start "$1" --concurrency 4 --max-tokens 4; }
stat() { curl -s "http://127.0.0.1:$M1/_mock/stats" | jq -r ".$1"; }

# ---- clients that disconnect mid-stream ----------------------------------------------
N=20
cancelled0=$(stat cancelled)
gone0=$(metric "$GW" llmgw_worker_client_cancelled_total)
traffic gone
sleep 1
cpids=()
for i in $(seq 1 $N); do
    curl -sN --max-time 0.4 -H 'Content-Type: application/json' \
        -d '{"model":"mock-model","messages":[{"role":"user","content":"leave"}],"max_tokens":100,"stream":true}' \
        "$GW/v1/chat/completions" >/dev/null &
    cpids+=($!)
done
wait "${cpids[@]}"
cancelled_all() { [ "$(($(stat cancelled) - cancelled0))" -eq "$N" ]; }
eventually "the engine saw all $N abandoned streams cancelled" 10 cancelled_all
expect_eq "the worker counted $N clients gone" \
    "$(awk -v a="$(metric "$GW" llmgw_worker_client_cancelled_total)" -v b="$gone0" 'BEGIN{print a-b}')" "$N"
load_stop gone
settled() {
    [ "$(metric "$GW" llmgw_worker_endpoint_reservations)" == 0 ] &&
        [ "$(metric "$GW" llmgw_worker_inflight_requests)" == 0 ] && [ "$(stat in_flight)" == 0 ]
}
eventually "every slot is released: no reservation, nothing in flight in the worker or the engine" 5 settled
e2e_table "$N clients disconnect mid-stream" "$(load_res gone sent) others" "$(load_res gone failed)" 0
expect_eq "other clients saw no failure" "$(load_res gone failed)" 0
expect_true "and were served meanwhile ($(load_res gone sent) requests)" test "$(load_res gone sent)" -gt 5

# ---- slow clients ---------------------------------------------------------------------
traffic slow
python3 "$SLOW" stall-headers --port "$W" --count 5 --max-seconds 10 >"$E2E_DIR/stall-h.json" &
p1=$!
python3 "$SLOW" stall-body --port "$W" --count 5 --max-seconds 10 >"$E2E_DIR/stall-b.json" &
p2=$!
python3 "$SLOW" trickle-headers --port "$W" --count 5 --interval 0.5 --max-seconds 6 >"$E2E_DIR/trickle-h.json" &
p3=$!
python3 "$SLOW" trickle-body --port "$W" --count 5 --interval 0.5 --max-seconds 6 >"$E2E_DIR/trickle-b.json" &
p4=$!
wait "$p1" "$p2" "$p3" "$p4"
load_stop slow
closed_in() { jq -r --argjson t "$2" '[.[] | select(.result == "closed" and .after_s <= $t)] | length' "$E2E_DIR/$1.json"; }
expect_eq "stalled headers: all 5 closed by the 2 s client timeout (within 6 s)" "$(closed_in stall-h 6)" 5
expect_eq "stalled body: all 5 closed by the 2 s client timeout (within 6 s)" "$(closed_in stall-b 6)" 5
expect_eq "a header trickle (1 byte / 0.5 s) is not an idle connection: still open after 6 s" \
    "$(jq '[.[] | select(.result == "open")] | length' "$E2E_DIR/trickle-h.json")" 5
expect_eq "a body trickle likewise" "$(jq '[.[] | select(.result == "open")] | length' "$E2E_DIR/trickle-b.json")" 5
e2e_table "20 slow clients (5 each: stall/trickle headers/body)" "$(load_res slow sent) others" "$(load_res slow failed)" 0
expect_eq "other clients saw no failure while slow clients held connections" "$(load_res slow failed)" 0
expect_true "and were served meanwhile ($(load_res slow sent) requests)" test "$(load_res slow sent)" -gt 20

# ---- more connections than --conn-limit -------------------------------------------------
refused0=$(metric "$GW" llmgw_worker_client_connections_refused_total)
curl -s -X POST "http://127.0.0.1:$M1/_mock/fault" -d '{"ttft_ms":1500}' >/dev/null
python3 "$SLOW" burst --port "$W" --count 100 --max-seconds 20 >"$E2E_DIR/burst.json" &
bp=$!
peak=0
for _ in $(seq 1 30); do
    n=$(stat in_flight)
    [ "$n" -gt "$peak" ] && peak=$n
    sleep 0.1
done
wait "$bp"
curl -s -X POST "http://127.0.0.1:$M1/_mock/fault" -d '{"ttft_ms":5}' >/dev/null
ok200=$(jq -r '.["status 200"] // 0' "$E2E_DIR/burst.json")
refused=$(jq -r '.["status 503 x-error-conn-limit"] // 0' "$E2E_DIR/burst.json")
e2e_table "100 connections at once, --conn-limit 40" 100 "$((100 - ok200))" \
    "the excess, each answered 503 x-error-conn-limit"
expect_true "the engine never saw more requests at once than the limit allows (peak $peak <= 40)" \
    test "$peak" -le 40
expect_true "the limit was reached (peak $peak >= 30)" test "$peak" -ge 30
expect_eq "every connection got an answer, 200 or 503 x-error-conn-limit: $(cat "$E2E_DIR/burst.json")" \
    "$((ok200 + refused))" 100
expect_true "those within the limit were served ($ok200: 30..40)" test "$ok200" -ge 30 -a "$ok200" -le 40
expect_eq "each refusal is counted" \
    "$(($(metric "$GW" llmgw_worker_client_connections_refused_total) - refused0))" "$refused"
# One refusal, whole, and the at-limit regression, on a second worker: a
# limit of 4 and a client timeout long enough for idle holders.
W2=$(free_port); A2=$(free_port); W2URL=http://127.0.0.1:$W2
start_worker w2 "$W2" --admin-port "$A2" --conn-limit 4 --client-timeout 30s --access-log off
wait_file() { for _ in $(seq 1 200); do [ -e "$1" ] && return 0; sleep 0.05; done; not_ok "$1 appears"; return 1; }
# hold_start PORT COUNT: COUNT idle connections to PORT until hold_stop.
hold_start() {
    rm -f "$E2E_DIR/held" "$E2E_DIR/let-go"
    python3 "$SLOW" hold --port "$1" --count "$2" --max-seconds 60 --ready-file "$E2E_DIR/held" \
        --stop-file "$E2E_DIR/let-go" >"$E2E_DIR/hold.json" &
    HOLD_PID=$!
    wait_file "$E2E_DIR/held"
}
hold_stop() { touch "$E2E_DIR/let-go"; wait "$HOLD_PID"; }

hold_start "$W2" 4
code=$(GW=$W2URL chat '{"model":"mock-model","messages":[{"role":"user","content":"a"}]}')
expect_eq "over the limit: 503" "$code" 503
expect_eq "... with x-error-conn-limit: true" "$(hdr x-error-conn-limit)" true
expect_eq "... Retry-After: 1" "$(hdr retry-after)" 1
expect_eq "... and Connection: close" "$(hdr connection)" close
expect_eq "... and an OpenAI-shaped body" "$(body | jq -c '[.error.type, .error.code, (.error.message | test("connection limit \\(4\\)"))]')" \
    '["overloaded_error","service_unavailable",true]'
hold_stop
expect_eq "the 4 holders kept their connections, none refused: $(cat "$E2E_DIR/hold.json")" \
    "$(jq -r .open "$E2E_DIR/hold.json")" 4
expect_eq "once they close, the worker serves again" \
    "$(GW=$W2URL chat '{"model":"mock-model","messages":[{"role":"user","content":"a"}]}')" 200

# Regression: at its connection limit MHD takes its listen socket out of its
# epoll set and puts it back only on its next run; when the last connections
# closed in one run, with no timer left, there was no next run and the
# listener stopped accepting for good. The admin port has that limit (64)
# and no refusal slots: 64 idle connections fill it, a request waits in its
# listen queue, then the 64 close at once.
backlog_of() { ss -Hltn "( sport = :$1 )" | awk '{print $2; exit}'; }
accepted_by_w2() { [ "$(conns_held "$A2" "${E2E_PIDS[w2]}")" -eq 64 ]; }
for r in 1 2 3; do
    hold_start "$A2" 64
    eventually "round $r: the worker accepted all 64 (its limit)" 5 accepted_by_w2
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$A2/healthz" >"$E2E_DIR/queued$r" &
    cp=$!
    queued() { [ "$(backlog_of "$A2")" -ge 1 ]; }
    eventually "round $r: a request waits in the admin port's listen queue" 5 queued
    hold_stop
    wait "$cp"
    expect_eq "round $r: ... and is served once the 64 close" "$(cat "$E2E_DIR/queued$r")" 200
done
done_case
