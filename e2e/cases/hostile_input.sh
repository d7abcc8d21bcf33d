#!/usr/bin/env bash
# Hostile request bodies and headers (issue 11): invalid UTF-8, deep
# nesting, huge numbers, wrong types, a non-JSON content type, oversize
# headers. Each gets a 4xx with an OpenAI-shaped error and the documented
# x-error-* header (oversize headers: libmicrohttpd's own 431, see
# docs/errors.md), none reaches the engine, and the worker keeps serving.
# Empty bodies, duplicate keys and oversize bodies are in errors.sh. Prints
# one "TABLE |" line per input: input | status | reached the engine | served after.
source "$(dirname "$0")/../lib.sh"

one_model_gateway --ttft-ms 1 --itl-ms 1 -- --access-log off
GOOD='{"model":"mock-model","messages":[{"role":"user","content":"ok"}]}'
GOOD_SENT=0
mock_clear "$M1"

# bad DESC STATUS HEADER BODY [CURL ARGS]: the error contract plus a table line.
BH=x-error-request-body-processing
bad() {
    local desc=$1 status=$2 header=$3 b=$4; shift 4
    check_error "$desc" "$status" "$header" true "$b" "$@"
    e2e_table "$desc" "$(chat "$b" "$@")" no "$(chat "$GOOD")"
    GOOD_SENT=$((GOOD_SENT + 1))
}
msg() { printf '{"model":"mock-model","messages":[{"role":"user","content":"%s"}]%s}' "$1" "${2:-}"; }

# Invalid UTF-8: raw bytes, overlong forms, lone surrogates (escaped), NUL.
bad "invalid UTF-8 in a message" 400 $BH "$(msg $'\xff\xfe')"
bad "invalid UTF-8 in the model name" 400 $BH $'{"model":"mock-\xc3\x28","messages":[{"role":"user","content":"a"}]}'
bad "overlong UTF-8 (0xC0 0xAF)" 400 $BH "$(msg $'\xc0\xaf')"
bad "a lone surrogate escape" 400 $BH "$(msg '\ud800')"
bad "an escaped NUL" 400 $BH "$(msg 'a\u0000b')"
# Deep nesting: past the parser's depth limit (jansson: 2048) is refused.
python3 -c 'import sys; sys.stdout.write("{\"model\":\"mock-model\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],\"x\":" + "["*100000 + "]"*100000 + "}")' >"$E2E_DIR/deep.json"
bad "100000 nested arrays" 400 $BH "@$E2E_DIR/deep.json"
python3 -c 'import sys; sys.stdout.write("{\"model\":\"mock-model\",\"messages\":[" + "{\"a\":"*5000 + "1" + "}"*5000 + "]}")' >"$E2E_DIR/deep2.json"
bad "5000 nested objects in messages" 400 $BH "@$E2E_DIR/deep2.json"
# Huge numbers.
bad "max_tokens 1e999 (double overflow)" 400 $BH "$(msg a ',"max_tokens":1e999')"
bad "max_tokens past int64" 400 $BH "$(msg a ',"max_tokens":99999999999999999999999')"
bad "max_tokens negative" 400 $BH "$(msg a ',"max_tokens":-1')"
bad "max_tokens fractional" 400 $BH "$(msg a ',"max_tokens":1.5')"
bad "a 100000-digit number" 400 $BH "$(msg a ",\"temperature\":$(printf '9%.0s' $(seq 1 100000))")"
# Wrong types.
bad "model is a number" 400 x-error-no-model-in-request '{"model":42,"messages":[{"role":"user","content":"a"}]}'
bad "messages is an object" 400 $BH '{"model":"mock-model","messages":{"role":"user","content":"a"}}'
bad "a message is a string" 400 $BH '{"model":"mock-model","messages":["hi"]}'
bad "max_tokens is a string" 400 $BH "$(msg a ',"max_tokens":"10"')"
bad "stream_options is a string" 400 $BH "$(msg a ',"stream":true,"stream_options":"x"')"
check_error_response "completions: prompt is an object" \
    "$(chat_path /v1/completions '{"model":"mock-model","prompt":{"a":1}}')" 400 $BH true
# Content types: JSON (with parameters, or absent) passes; anything else is refused as vLLM does.
ct() { curl -s -o "$E2E_DIR/out.body" -D "$E2E_DIR/out.hdr" -w '%{http_code}' --max-time 10 -H "Content-Type: $1" \
    --data-binary "$GOOD" "$GW/v1/chat/completions"; }
for t in text/plain application/x-www-form-urlencoded 'multipart/form-data; boundary=x' application/xml; do
    code=$(ct "$t")
    check_error_response "Content-Type $t" "$code" 400 $BH true
    e2e_table "Content-Type $t" "$code" no "$(chat "$GOOD")"
    GOOD_SENT=$((GOOD_SENT + 1))
done
expect_eq "Content-Type application/json; charset=utf-8 is served" "$(ct 'application/json; charset=utf-8')" 200
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Content-Type:' --data-binary "$GOOD" "$GW/v1/chat/completions")
expect_eq "no Content-Type at all is served (read as JSON, as vLLM does)" "$code" 200
GOOD_SENT=$((GOOD_SENT + 2))
# Oversize headers: the HTTP layer refuses the header block before the worker sees it.
big=$(head -c 40000 /dev/zero | tr '\0' a)
code=$(chat "$GOOD" -H "X-Big: $big")
expect_eq "a 40 KB header gets 431" "$code" 431
expect_eq "the next good request still succeeds" "$(chat "$GOOD")" 200
GOOD_SENT=$((GOOD_SENT + 1))
e2e_table "a 40 KB header" "$code (libmicrohttpd's HTML body)" no 200
many=()
for i in $(seq 1 400); do many+=(-H "X-H$i: $big"); done
code=$(chat "$GOOD" -H "X-A: ${big:0:100}" "${many[@]:0:20}")
expect_eq "many large headers get 431" "$code" 431
big8=$(head -c 8000 /dev/zero | tr '\0' a)
expect_eq "an 8 KB header is fine" "$(chat "$GOOD" -H "X-Big: $big8")" 200
GOOD_SENT=$((GOOD_SENT + 1))

expect_eq "the engine received only the good requests" "$(mock_count "$M1")" "$GOOD_SENT"
expect_eq "the worker is still up" "$(curl -s -o /dev/null -w '%{http_code}' "$GW/healthz")" 200
done_case
