#!/usr/bin/env bash
# Traffic splitting (docs/traffic.md, seed 004): a bad --route-config is
# refused at start-up naming the field; the weight policy splits 2,000
# requests within 5 points of the configured weights; the prefix policy
# (longest stem wins, exact beats wildcard, per-route model and api_key);
# the fallback chain when the local pool hangs, answers 5xx, or is gone.
# Each scenario reports its count of failed client requests.
source "$(dirname "$0")/../lib.sh"

L1=$(free_port); L2=$(free_port); X1=$(free_port); X2=$(free_port)
W1=$(free_port); W2=$(free_port)
start_mock l1 "$L1" --model Qwen/Qwen3-8B --model m --ttft-ms 1 --itl-ms 1 --record-secrets
start_mock l2 "$L2" --model Qwen/Qwen3-8B --model m --ttft-ms 1 --itl-ms 1 --record-secrets
# The external endpoints serve the local models too (as the seed's test
# deploy does), so they can take the local pool's fallback.
start_mock x1 "$X1" --model Qwen/Qwen2.5-7B --model Qwen/Qwen3-8B --model m --ttft-ms 1 \
    --itl-ms 1 --record-secrets
start_mock x2 "$X2" --model other --model coder-ext --ttft-ms 1 --itl-ms 1 --record-secrets
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: Qwen/Qwen3-8B
    endpoints: ["127.0.0.1:$L1", "127.0.0.1:$L2"]
  - name: m
    endpoints: ["127.0.0.1:$L1", "127.0.0.1:$L2"]
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml"


# ---- a bad config never starts --------------------------------------------
refused() { # DESC EXPECTED_MESSAGE_REGEX WORKER_ARGS...
    local desc=$1 re=$2 out rc; shift 2
    out=$("$E2E_BIN_DP" --host 127.0.0.1 --port "$(free_port)" --controller-pub "$CTL_PUB" \
        --controller-rep "$CTL_REP" --controller-pull "$CTL_PULL" "$@" 2>&1)
    rc=$?
    if [ "$rc" -ne 0 ] && grep -qE -- "$re" <<<"$out"; then ok "refused at start-up: $desc"
    else not_ok "refused at start-up: $desc" "rc=$rc out=$(head -c 300 <<<"$out")"; fi
}
refused "unknown policy" "--route-policy: 'random' is not weight or prefix" \
    --route-policy random --route-config '[{"base_url":"local","weight":1}]'
refused "config without a policy" "--route-policy: required" \
    --route-config '[{"base_url":"local","weight":1}]'
refused "negative weight" '--route-config\[1\]\.weight: must be an integer' \
    --route-policy weight --route-config '[{"base_url":"local","weight":1},{"base_url":"http://a:1","weight":-5}]'
refused "weights summing to 0" "weights sum to 0" \
    --route-policy weight --route-config '[{"base_url":"local","weight":0}]'
refused "bad base_url" '--route-config\[0\]\.base_url: "ftp://x" is neither' \
    --route-policy prefix --route-config '[{"base_url":"ftp://x","prefix":"*"}]'
refused "'*' inside a prefix" "'\\*' is allowed only at the end" \
    --route-policy prefix --route-config '[{"base_url":"local","prefix":"Qwen/*-8B"}]'
refused "prefix entry without a prefix" '--route-config\[0\]\.prefix: required' \
    --route-policy prefix --route-config '[{"base_url":"local"}]'
refused "unknown field" '--route-config\[0\]\.fallbak: unknown field' \
    --route-policy weight --route-config '[{"base_url":"local","weight":1,"fallbak":true}]'
refused "not JSON" "--route-config: not JSON" --route-policy weight --route-config '[{'
refused "local as a fallback" "local pool cannot be a fallback" \
    --route-policy weight --route-config '[{"base_url":"local","weight":1,"fallback":true}]'

# ---- weight split over 2,000 requests -------------------------------------
start_worker w1 "$W1" --route-policy weight --route-config \
    "[{\"base_url\":\"local\",\"weight\":70},{\"base_url\":\"http://127.0.0.1:$X1\",\"weight\":30,\"fallback\":true,\"api_key\":\"sk-external\"}]"
curl -s -X POST "http://127.0.0.1:$L1/_mock/reset" >/dev/null
curl -s -X POST "http://127.0.0.1:$L2/_mock/reset" >/dev/null
curl -s -X POST "http://127.0.0.1:$X1/_mock/reset" >/dev/null
N=2000
{
    echo 'header = "Content-Type: application/json"'
    echo 'header = "Authorization: Bearer client-key"'
    echo 'data = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2}"'
    echo 'write-out = "%{http_code}\n"'
    for ((i = 0; i < N; i++)); do
        echo "url = \"http://127.0.0.1:$W1/v1/chat/completions\""
        echo 'output = "/dev/null"'
    done
} >"$E2E_DIR/weight.curl"
curl -s --no-progress-meter --parallel --parallel-max 8 -K "$E2E_DIR/weight.curl" >"$E2E_DIR/weight.codes" 2>/dev/null
fails=$(grep -vc '^200$' "$E2E_DIR/weight.codes")
expect_eq "2000 weighted requests answered" "$(wc -l <"$E2E_DIR/weight.codes")" "$N"
expect_eq "no weighted request failed" "$fails" 0
report_failed "weight 70/30 split" "$N" "$fails"
ext=$(mock_received "$X1"); loc=$(($(mock_received "$L1") + $(mock_received "$L2")))
e2e_log "weight split: local=$loc external=$ext (configured 70/30)"
expect_eq "every request reached exactly one endpoint" "$((ext + loc))" "$N"
expect_true "external share $ext/$N within 30% +-5%" [ "$ext" -ge 500 ] && [ "$ext" -le 700 ]
expect_eq "the external endpoint gets the route's api_key" \
    "$(mock_requests "$X1" | jq -r '[.[].headers.authorization] | unique | join(",")')" "Bearer sk-external"
expect_eq "the local pool gets the client's Authorization" \
    "$(mock_requests "$L1" | jq -r '[.[].headers.authorization] | unique | join(",")')" "Bearer client-key"
expect_eq "routes are counted" "$(metric "http://127.0.0.1:$W1" 'llmgw_worker_traffic_routes_total{entry="external-1"}')" "$ext"

# ---- prefix routing --------------------------------------------------------
start_worker w2 "$W2" --route-policy prefix --retry-max-count 1 --first-byte-timeout 500ms \
    --route-config "[{\"prefix\":\"Qwen/Qwen3-*\",\"base_url\":\"local\"},
 {\"prefix\":\"Qwen/Qwen2.5-*\",\"base_url\":\"http://127.0.0.1:$X1/v1\",\"fallback\":true},
 {\"prefix\":\"Qwen/*\",\"base_url\":\"http://127.0.0.1:$X2\"},
 {\"prefix\":\"Qwen/Qwen3-Coder\",\"base_url\":\"http://127.0.0.1:$X2\",\"model\":\"coder-ext\"},
 {\"prefix\":\"*\",\"base_url\":\"http://127.0.0.1:$X2\"}]"
GW=http://127.0.0.1:$W2
q() { chat "{\"model\":\"$1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2}"; }
code=$(q Qwen/Qwen3-8B)
expect_eq "Qwen/Qwen3-8B: longest stem Qwen/Qwen3-* -> local" "$code $(hdr x-llmgw-route)" "200 local"
code=$(q Qwen/Qwen2.5-7B)
expect_eq "Qwen/Qwen2.5-7B -> external-1" "$code $(hdr x-llmgw-route)" "200 external-1"
expect_eq "a base_url ending in /v1 is not doubled" "$(mock_requests "$X1" | jq -r '.[-1].path')" /v1/chat/completions
mock_clear "$X2"
code=$(q Qwen/Qwen3-Coder)
expect_eq "exact Qwen/Qwen3-Coder beats the longer-matching wildcard" "$code $(hdr x-llmgw-route)" "200 external-3"
expect_eq "the route's model replaces the client's" "$(mock_requests "$X2" | jq -r '.[-1].body.model')" coder-ext
code=$(q Qwen/Other)
expect_eq "Qwen/Other -> Qwen/* (external-2)" "$code $(hdr x-llmgw-route)" "404 external-2"
code=$(q other)
expect_eq "other -> the catch-all '*'" "$code $(hdr x-llmgw-route)" "200 external-4"

curl -sN --max-time 10 -D "$E2E_DIR/s.hdr" -H 'Content-Type: application/json' \
    -d '{"model":"Qwen/Qwen2.5-7B","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true}' \
    "$GW/v1/chat/completions" >"$E2E_DIR/s.body"
expect_eq "a stream to an external endpoint is relayed to [DONE]" \
    "$(grep -c '^data: ' "$E2E_DIR/s.body") $(grep '^data: ' "$E2E_DIR/s.body" | tail -1)" "5 data: [DONE]"

# ---- fallback when the local pool fails -----------------------------------
run_fallback() { # SCENARIO N
    local n=$2 f=0 routes=""
    for ((i = 0; i < n; i++)); do
        code=$(q Qwen/Qwen3-8B)
        [ "$code" == 200 ] || f=$((f + 1))
        routes="$routes $(hdr x-llmgw-route)"
    done
    report_failed "$1" "$n" "$f"
    expect_eq "$1: no client request failed" "$f" 0
    expect_match "$1: served by the fallback" "$routes" 'external-1'
}
curl -s -X POST "http://127.0.0.1:$L1/_mock/fault" -d '{"hang":true}' >/dev/null
curl -s -X POST "http://127.0.0.1:$L2/_mock/fault" -d '{"hang":true}' >/dev/null
run_fallback "local pool hangs (first-byte timeout)" 10
curl -sN --max-time 10 -H 'Content-Type: application/json' \
    -d '{"model":"Qwen/Qwen3-8B","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true}' \
    "$GW/v1/chat/completions" >"$E2E_DIR/s.body"
expect_eq "a stream whose local endpoint hangs is served whole by the fallback" \
    "$(grep '^data: ' "$E2E_DIR/s.body" | tail -1)" "data: [DONE]"
curl -s -X POST "http://127.0.0.1:$L1/_mock/fault" -d '{"error_rate":1}' >/dev/null
curl -s -X POST "http://127.0.0.1:$L2/_mock/fault" -d '{"error_rate":1}' >/dev/null
before=$(metric "$GW" llmgw_worker_upstream_retries_total)
run_fallback "local pool answers 500" 20
expect_true "5xx retried on the other local endpoint first (--retry-max-count 1)" \
    [ "$(metric "$GW" llmgw_worker_upstream_retries_total)" -ge $((before + 20)) ]
stop l1 KILL; stop l2 KILL
run_fallback "local pool gone (connect refused)" 50
expect_match "fallbacks are counted" \
    "$(metric "$GW" 'llmgw_worker_traffic_fallbacks_total{entry="external-1"}')" '^[1-9][0-9]+$'

# With neither the local pool nor a fallback: the client gets the error at once.
GW=http://127.0.0.1:$W1
stop x1 KILL
code=$(q m)
expect_match "local and fallback gone: a clean 5xx" "$code" '^50[23]$'
expect_eq "with the x-error-routing header" "$(hdr x-error-routing)" true
done_case
