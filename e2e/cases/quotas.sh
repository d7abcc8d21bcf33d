#!/usr/bin/env bash
# Quotas and access (issue 6), on a real redis-server and two workers:
# per-user RPM exact fleet-wide under concurrent load; model requestsPerSecond
# per profile across workers with seed 002's exact answer; a routing failure
# consumes no RPS quota; TPM settles to the engine's usage, streamed (the
# gateway asks for the usage event and hides it) or not; wrong, missing and
# revoked API keys, the gateway key and unknown users; Redis killed and
# restarted mid-run (local windows split across the workers, no failed
# request, no x-error-incr-*); TLS termination with curl (openssl makes a
# throwaway certificate).
source "$(dirname "$0")/../lib.sh"
command -v redis-server >/dev/null || { echo "quotas: redis-server is required"; exit 1; }
command -v openssl >/dev/null || { echo "quotas: openssl is required"; exit 1; }

R=$(free_port); M1=$(free_port); W1=$(free_port); W2=$(free_port); W3=$(free_port)
spawn redis redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning
wait_redis() { for _ in $(seq 1 100); do redis-cli -p "$R" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.05; done; return 1; }
wait_redis || not_ok "redis starts"
start_mock m1 "$M1" --model mock-model --record-secrets
KATE_SHA=$(printf %s sk-kate | sha256sum | cut -d' ' -f1)
write_config() { # KATE_KEYS
    cat >"$E2E_DIR/gw.yaml.tmp" <<YAML
users:
  - {name: alice, rpm: 6, apiKeys: [sk-alice]}
  - {name: tina, tpm: 1000000}
  - {name: tiny, tpm: 10}
  - {name: dora, rpm: 4}
  - {name: kate, rpm: 1000, apiKeys: $1}
  - {name: bob}
models:
  - name: mock-model
    config: {profiles: {default: {}, capped: {requestsPerSecond: 3}}}
    endpoints: ["127.0.0.1:$M1"]
  - name: ghost-model
    config: {profiles: {default: {requestsPerSecond: 1}}}
    endpoints: [{address: 127.0.0.1, port: $M1, ready: false}]
YAML
    mv "$E2E_DIR/gw.yaml.tmp" "$E2E_DIR/gw.yaml"
}
write_config "[\"sha256:$KATE_SHA\"]"
start_controller ctl --config "$E2E_DIR/gw.yaml" --file-poll-interval 50ms
redis_env=(env REDIS_HOST=127.0.0.1 REDIS_PORT="$R")
spawn_worker() { # NAME PORT ARGS...
    local name=$1 port=$2; shift 2
    spawn "$name" "${redis_env[@]}" "$E2E_BIN_DP" --host 127.0.0.1 --port "$port" \
        --controller-pub "$CTL_PUB" --controller-rep "$CTL_REP" --controller-pull "$CTL_PULL" \
        --access-log off "$@"
    wait_log "$name" 'id=DP-SNAP-APPLY ' 10 || not_ok "worker $name gets a snapshot"
}
spawn_worker w1 "$W1"
spawn_worker w2 "$W2"
spawn_worker w3 "$W3" --require-api-key --auth-bearer-token gw-key
G1=http://127.0.0.1:$W1; G2=http://127.0.0.1:$W2; G3=http://127.0.0.1:$W3
GW=$G1
up() { [ "$(metric "$1" llmgw_worker_ratelimit_degraded)" == 0 ]; }
eventually "worker 1 reaches Redis for its limits" 5 up "$G1"
eventually "worker 2 reaches Redis for its limits" 5 up "$G2"
REQ='{"model":"mock-model","messages":[{"role":"user","content":"hello there"}],"max_tokens":5}'

# Fixed windows: keep each burst inside one minute / one second.
away_from_minute_end() { while [ "$(date +%S)" -ge 50 ]; do sleep 0.5; done; }
start_of_second() { python3 -c 'import time; t=time.time(); time.sleep((1.02-(t%1)) if t%1>0.05 else 0)'; }

# burst N HEADER...: N concurrent requests alternating between the two
# workers; prints one status code per line.
burst() {
    local n=$1; shift
    local args=() h
    for h in "$@"; do args+=(-H "$h"); done
    seq 1 "$n" | xargs -P "$n" -I{} sh -c 'if [ $(( {} % 2 )) = 0 ]; then u=$G1; else u=$G2; fi
        curl -s -o /dev/null -w "%{http_code}\n" --max-time 10 -H "Content-Type: application/json" "$@" \
            --data-binary "$REQ" "$u/v1/chat/completions"' _ "${args[@]}"
}
export REQ G1 G2

# ---- per-user RPM, exact across the fleet ------------------------------------------
away_from_minute_end
codes=$(burst 20 'user: alice')
expect_eq "rpm 6: exactly 6 of 20 concurrent requests pass across two workers" \
    "$(grep -c '^200$' <<<"$codes")" 6
expect_eq "the other 14 are 429" "$(grep -c '^429$' <<<"$codes")" 14
minute=$(( $(date +%s) / 60 ))
expect_eq "Redis counted 6 (refusals consume nothing)" "$(redis-cli -p "$R" get "llmgw:rl:u:alice:rpm:$minute")" 6
expect_eq "the next one is refused" "$(chat "$REQ" -H 'user: alice')" 429
expect_eq "with x-error-rpm-exceeded" "$(hdr x-error-rpm-exceeded)" true
expect_match "and Retry-After in seconds" "$(hdr retry-after)" '^[1-9][0-9]?$'
expect_eq "x-ratelimit-limit-requests" "$(hdr x-ratelimit-limit-requests)" 6
expect_eq "x-ratelimit-remaining-requests" "$(hdr x-ratelimit-remaining-requests)" 0
expect_eq "OpenAI-shaped 429 body" "$(body | jq -r '.error.type + " " + .error.code')" \
    "rate_limit_error rate_limit_exceeded"
expect_eq "the key names the same user as the header" "$(chat "$REQ" -H 'Authorization: Bearer sk-alice')" 429
expect_eq "a success carries x-update-rpm" "$(chat "$REQ" -H 'user: dora')" 200
expect_eq "x-update-rpm counts it" "$(hdr x-update-rpm)" 1
expect_eq "x-ratelimit-remaining-requests after it" "$(hdr x-ratelimit-remaining-requests)" 3
expect_eq "no user, no quota headers" "$(chat "$REQ"; hdr x-update-rpm)" 200

# ---- model requestsPerSecond, per profile, across workers -------------------------
start_of_second
codes=$(burst 12 'config-profile: capped')
expect_eq "requestsPerSecond 3: exactly 3 of 12 concurrent requests pass across two workers" \
    "$(grep -c '^200$' <<<"$codes")" 3
start_of_second
expect_eq "the default profile is not capped" "$(burst 8 | grep -c '^200$')" 8
start_of_second
for _ in 1 2 3; do chat "$REQ" -H 'config-profile: capped' >/dev/null; done
expect_eq "over the cap: 429" "$(chat "$REQ" -H 'config-profile: capped')" 429
expect_eq "x-error-model-rps-exceeded" "$(hdr x-error-model-rps-exceeded)" true
expect_eq "seed 002's body, byte for byte" "$(body)" \
    '{"error": {"message": "model: mock-model has exceeded RPS: 3", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}'
expect_match "Retry-After" "$(hdr retry-after)" '^1$'

# A model without a ready endpoint: routing fails after admission and the
# increment is rolled back, so a cap of 1 never turns into a 429.
start_of_second
s=""
for _ in 1 2 3; do s+="$(chat '{"model":"ghost-model","messages":[{"role":"user","content":"x"}]}') "; done
expect_eq "routing failures consume no RPS quota (503 each time, never 429)" "$s" "503 503 503 "
rps_left=$(redis-cli -p "$R" --scan --pattern 'llmgw:rl:m:ghost-model*' | xargs -r -n1 redis-cli -p "$R" get | sort -u | tr '\n' ' ')
expect_match "the ghost model's counters are back to 0" "${rps_left:-0 }" '^(0 )*$'

# ---- TPM settles to the engine's usage -----------------------------------------------
tpm_key() { echo "llmgw:rl:u:tina:tpm:$(( $(date +%s) / 60 ))"; }
away_from_minute_end
before=$(redis-cli -p "$R" get "$(tpm_key)"); before=${before:-0}
expect_eq "tina's plain request" "$(chat "$REQ" -H 'user: tina')" 200
used=$(body | jq .usage.total_tokens)
expect_eq "TPM charged = the response's usage.total_tokens ($used)" \
    "$(( $(redis-cli -p "$R" get "$(tpm_key)") - before ))" "$used"
expect_eq "x-update-tpm is sent" "$(hdr x-update-tpm | grep -c '^[0-9][0-9]*$')" 1
mock_clear "$M1"
before=$(redis-cli -p "$R" get "$(tpm_key)")
SREQ='{"model":"mock-model","messages":[{"role":"user","content":"hello there"}],"max_tokens":5,"stream":true}'
expect_eq "tina streams without include_usage" "$(chat "$SREQ" -H 'user: tina' -N)" 200
expect_eq "the engine was asked for usage" \
    "$(mock_requests "$M1" | jq -r '.[-1].body.stream_options.include_usage')" true
expect_eq "the client's stream has no usage event" "$(grep -c '"usage"' "$E2E_DIR/out.body")" 0
expect_eq "and still ends with [DONE]" "$(grep -c '^data: \[DONE\]' "$E2E_DIR/out.body")" 1
expect_eq "its tokens are charged like the plain request's" \
    "$(( $(redis-cli -p "$R" get "$(tpm_key)") - before ))" "$used"
expect_eq "tiny's first request passes (an empty window admits)" "$(chat "$REQ" -H 'user: tiny')" 200
expect_eq "its usage fills the window: the next one is 429" "$(chat "$REQ" -H 'user: tiny')" 429
expect_eq "with x-error-tpm-exceeded" "$(hdr x-error-tpm-exceeded)" true
expect_eq "and x-ratelimit-limit-tokens" "$(hdr x-ratelimit-limit-tokens)" 10
expect_match "x-ratelimit-remaining-tokens is what the first left" "$(hdr x-ratelimit-remaining-tokens)" "^[0-9]$"
SUREQ='{"model":"mock-model","messages":[{"role":"user","content":"hello there"}],"max_tokens":5,"stream":true,"stream_options":{"include_usage":true}}'
expect_eq "a client that asks for usage" "$(chat "$SUREQ" -H 'user: tina' -N)" 200
expect_eq "gets its usage event" "$(grep -c '"usage"' "$E2E_DIR/out.body")" 1

# ---- API keys, the gateway key, unknown users ----------------------------------------
GW=$G3
expect_eq "--require-api-key: no key is 401" "$(chat "$REQ")" 401
expect_eq "invalid_api_key, param api_key" "$(body | jq -r '.error.code + " " + .error.param')" \
    "invalid_api_key api_key"
expect_eq "a wrong key is 401" "$(chat "$REQ" -H 'Authorization: Bearer sk-nobody')" 401
expect_eq "a user header is no key" "$(chat "$REQ" -H 'user: kate')" 401
expect_eq "kate's key passes" "$(chat "$REQ" -H 'Authorization: Bearer sk-kate')" 200
expect_eq "and is charged to kate" "$(hdr x-ratelimit-limit-requests)" 1000
expect_eq "the key reaches the engine unchanged" \
    "$(mock_requests "$M1" | jq -r '.[-1].headers.authorization')" 'Bearer sk-kate'
expect_eq "the gateway key (AIBRIX_AUTH_BEARER_TOKEN) passes" \
    "$(chat "$REQ" -H 'Authorization: Bearer gw-key' -H 'user: bob')" 200
write_config "[]"
revoked() { [ "$(chat "$REQ" -H 'Authorization: Bearer sk-kate')" == 401 ]; }
eventually "a revoked key is refused within a second of the config change" 3 revoked
GW=$G1
expect_eq "an unknown user is 403" "$(chat "$REQ" -H 'user: mallory')" 403
expect_eq "with x-error-user" "$(hdr x-error-user)" true
expect_eq "without --require-api-key a foreign key passes (the engine's own)" \
    "$(chat "$REQ" -H 'Authorization: Bearer engine-key')" 200
expect_eq "no secret in any log" "$(grep -lE 'sk-kate|sk-alice|gw-key' "$E2E_DIR"/w*.log "$E2E_DIR"/ctl.log | wc -l)" 0
expect_eq "a bad key is refused before its body is read" \
    "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer nope' -H 'Content-Type: application/json' \
        --data-binary @<(head -c 3000000 /dev/zero | tr '\0' 'x') "$G3/v1/chat/completions")" 401

# ---- TLS termination -----------------------------------------------------------------
W4=$(free_port)
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -addext 'subjectAltName=IP:127.0.0.1,DNS:localhost' \
    -keyout "$E2E_DIR/tls.key" -out "$E2E_DIR/tls.crt" 2>/dev/null || not_ok "openssl makes a certificate"
spawn_worker w4 "$W4" --tls-cert-file "$E2E_DIR/tls.crt" --tls-key-file "$E2E_DIR/tls.key"
GW=https://127.0.0.1:$W4
expect_eq "HTTPS with a verified certificate" "$(chat "$REQ" --cacert "$E2E_DIR/tls.crt" -H 'user: dora')" 200
expect_eq "quota headers over TLS" "$(hdr x-ratelimit-limit-requests)" 4
expect_eq "streaming over TLS" "$(chat "$SREQ" --cacert "$E2E_DIR/tls.crt" -N)" 200
expect_eq "the stream arrives whole" "$(grep -c '^data: \[DONE\]' "$E2E_DIR/out.body")" 1
expect_eq "plain HTTP to the TLS port gets no answer" \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://127.0.0.1:$W4/healthz")" 000
expect_eq "and the TLS worker keeps serving" "$(curl -s --cacert "$E2E_DIR/tls.crt" -o /dev/null -w '%{http_code}' "$GW/healthz")" 200
stop w4
expect_eq "the TLS key is never logged" "$(grep -c 'PRIVATE KEY' "$E2E_DIR/w4.log")" 0
GW=$G1

# ---- Redis down: local windows, nothing fails ---------------------------------------
stop redis KILL
down() { [ "$(metric "$G1" llmgw_worker_ratelimit_degraded)" == 1 ]; }
chat "$REQ" -H 'user: bob' >/dev/null
eventually "worker 1 says its limiter is degraded" 5 down
away_from_minute_end
codes=$(burst 12 'user: dora')
expect_eq "no request fails while Redis is down" "$(grep -vcE '^(200|429)$' <<<"$codes")" 0
n200=$(grep -c '^200$' <<<"$codes")
expect_true "dora's rpm 4 holds roughly: each worker admits its share ($n200 passed, 2..4)" \
    test "$n200" -ge 2 -a "$n200" -le 4
expect_eq "no x-error-incr-* reaches a client" "$(chat "$REQ" -H 'user: tina'; hdr x-error-incr-tpm)" 200
expect_match "local decisions are counted" "$(metric "$G1" llmgw_worker_ratelimit_local_decisions_total)" '^[1-9]'
spawn redis redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning
wait_redis || not_ok "redis restarts"
eventually "worker 1 is back on Redis" 10 up "$G1"
eventually "worker 2 is back on Redis" 10 up "$G2"
expect_eq "counting is fleet-wide again" "$(chat "$REQ" -H 'user: dora')" 200
expect_eq "from an empty Redis window" "$(hdr x-update-rpm)" 1

done_case
