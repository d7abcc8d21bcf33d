# e2e/lib.sh: the end-to-end harness (STYLE §9). Each case sources this file,
# gets its own temp dir and free loopback ports, starts real processes
# (llmgw-controller, llmgw-worker, llmgw-mock-engine, redis-server, ...),
# drives them with curl and asserts on responses and on what the mock engines
# recorded. At exit it SIGTERMs everything it started, requires a clean exit
# within a deadline, and fails on any `lvl=alert` line or sanitizer report in
# any process log. E2E_KEEP=1 keeps the temp dir; failures print log tails.
# It ends with the plain closing line "N passed, M failed".
set -uo pipefail

E2E_SRC=${LLMGW_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
E2E_BUILD=${LLMGW_BUILD_DIR:-$E2E_SRC/build}
E2E_BIN_CTL=$E2E_BUILD/controller/llmgw-controller
E2E_BIN_DP=$E2E_BUILD/dataplane/llmgw-worker
E2E_BIN_MOCK=$E2E_BUILD/e2e/mock/llmgw-mock-engine
E2E_KUBEAPI=$E2E_SRC/e2e/kubeapi/kubeapi.py
E2E_DIR=$(mktemp -d "${TMPDIR:-/tmp}/llmgw-e2e.XXXXXX")
E2E_NAME=$(basename "${0%.sh}")
E2E_PASS=0
E2E_FAIL=0
declare -A E2E_PIDS=()   # name -> pid
declare -A E2E_EXPECT_RC=() # name -> expected exit code on SIGTERM (default 0)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

e2e_log() { printf '[%s] %s\n' "$E2E_NAME" "$*"; }

# pass/fail bookkeeping -------------------------------------------------------
ok() { E2E_PASS=$((E2E_PASS + 1)); e2e_log "ok   - $1"; }
not_ok() { E2E_FAIL=$((E2E_FAIL + 1)); e2e_log "FAIL - $1"; [ $# -gt 1 ] && e2e_log "       $2"; return 0; }

# expect_eq DESC ACTUAL EXPECTED
expect_eq() {
    if [ "$2" == "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi
}
# expect_match DESC ACTUAL REGEX
expect_match() {
    if [[ "$2" =~ $3 ]]; then ok "$1"; else not_ok "$1" "got '${2:0:300}', want /$3/"; fi
}
# expect_true DESC COMMAND...
expect_true() {
    local d=$1; shift
    if "$@"; then ok "$d"; else not_ok "$d" "command failed: $*"; fi
}

# free_port: a loopback TCP port nothing listens on right now, below the
# ephemeral range and never handed out before in this case (see the tool).
free_port() {
    python3 "$E2E_SRC/e2e/tools/free_port.py" "$E2E_DIR/ports"
}

# spawn NAME CMD...: runs CMD in the background, output in $E2E_DIR/NAME.log.
spawn() {
    local name=$1; shift
    "$@" >>"$E2E_DIR/$name.log" 2>&1 &
    E2E_PIDS[$name]=$!
}

# stop NAME [SIGNAL] [DEADLINE_S]: signals the process and waits; records a
# failure when it does not exit with the expected code in time.
stop() {
    local name=$1 sig=${2:-TERM} deadline=${3:-15} pid=${E2E_PIDS[$1]:-} rc
    [ -n "$pid" ] || return 0
    kill -s "$sig" "$pid" 2>/dev/null
    for ((i = 0; i < deadline * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        not_ok "$name exits within ${deadline}s of SIG$sig"
        kill -9 "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    rc=$?
    unset "E2E_PIDS[$name]"
    if [ "$sig" != KILL ] && [ "$rc" -ne "${E2E_EXPECT_RC[$name]:-0}" ]; then
        not_ok "$name exit code after SIG$sig" "rc=$rc"
    fi
    return 0
}

# wait_http URL [STATUS] [TIMEOUT_S]: polls until URL answers STATUS (200).
wait_http() {
    local url=$1 want=${2:-200} t=${3:-10} code
    for ((i = 0; i < t * 20; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url")
        [ "$code" == "$want" ] && return 0
        sleep 0.05
    done
    e2e_log "timeout waiting for $url to answer $want (last $code)"
    return 1
}

# start_mock NAME PORT [ARGS...]: a mock engine on 127.0.0.1:PORT.
start_mock() {
    local name=$1 port=$2; shift 2
    spawn "$name" "$E2E_BIN_MOCK" --port "$port" "$@"
    wait_http "http://127.0.0.1:$port/health" 200 10 || not_ok "mock $name starts"
}

# start_controller NAME ARGS...: sets CTL_PUB/CTL_REP/CTL_PULL/CTL_HTTP if
# unset, so a restart reuses the same ports.
start_controller() {
    local name=$1; shift
    : "${CTL_PUB:=tcp://127.0.0.1:$(free_port)}" "${CTL_REP:=tcp://127.0.0.1:$(free_port)}"
    : "${CTL_PULL:=tcp://127.0.0.1:$(free_port)}" "${CTL_HTTP:=$(free_port)}"
    spawn "$name" "$E2E_BIN_CTL" --pub-listen "$CTL_PUB" --rep-listen "$CTL_REP" \
        --pull-listen "$CTL_PULL" --http-host 127.0.0.1 --http-port "$CTL_HTTP" "$@"
    wait_http "http://127.0.0.1:$CTL_HTTP/healthz" 200 10 || not_ok "controller $name starts"
}

# wait_log NAME REGEX [TIMEOUT_S]: waits until NAME's log has a matching line.
wait_log() {
    local name=$1 re=$2 t=${3:-10}
    for ((i = 0; i < t * 20; i++)); do
        grep -qE "$re" "$E2E_DIR/$name.log" 2>/dev/null && return 0
        sleep 0.05
    done
    e2e_log "timeout waiting for /$re/ in $name.log"
    return 1
}

# eventually DESC TIMEOUT_S COMMAND...: passes once COMMAND succeeds, polling.
eventually() {
    local d=$1 t=$2; shift 2
    for ((i = 0; i < t * 20; i++)); do
        "$@" && { ok "$d"; return 0; }
        sleep 0.05
    done
    not_ok "$d" "still failing after ${t}s: $*"
}

# start_worker NAME PORT ARGS...: a worker linked to the controller above;
# waits until this very process holds a snapshot (its DP-SNAP-APPLY log line:
# /readyz on a shared port may be answered by another worker).
start_worker() {
    local name=$1 port=$2; shift 2
    spawn "$name" "$E2E_BIN_DP" --host 127.0.0.1 --port "$port" --controller-pub "$CTL_PUB" \
        --controller-rep "$CTL_REP" --controller-pull "$CTL_PULL" "$@"
    wait_log "$name" 'id=DP-SNAP-APPLY ' 10 || not_ok "worker $name gets a snapshot"
}

# one_model_gateway MOCK_ARGS... -- WORKER_ARGS...: the common small setup: a
# mock engine m1 serving mock-model, a controller on a config file naming it,
# worker w1; sets M1, W and GW.
one_model_gateway() {
    local mock_args=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do mock_args+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    M1=$(free_port); W=$(free_port); GW=http://127.0.0.1:$W
    start_mock m1 "$M1" "${mock_args[@]}"
    printf 'models:\n  - name: mock-model\n    endpoints: ["127.0.0.1:%s"]\n' "$M1" >"$E2E_DIR/gw.yaml"
    start_controller ctl --config "$E2E_DIR/gw.yaml"
    start_worker w1 "$W" "$@"
    wait_http "$GW/readyz" 200 10
}

# load_start NAME [ARGS...]: e2e/tools/llm_load.py steady against $GW in the
# background (ARGS add to or override its options) until load_stop NAME;
# failures logged in $E2E_DIR/NAME.failures, totals read with load_res NAME FIELD.
load_start() {
    local name=$1; shift
    rm -f "$E2E_DIR/stop-$name"
    python3 "$E2E_SRC/e2e/tools/llm_load.py" steady --urls "$GW" --timeout 20 --max-seconds 120 \
        --stop-file "$E2E_DIR/stop-$name" --failures-log "$E2E_DIR/$name.failures" "$@" >"$E2E_DIR/$name.json" &
    LOAD_PID=$!
}
load_stop() { touch "$E2E_DIR/stop-$1"; wait "$LOAD_PID"; }
load_res() { jq -r ".$2" "$E2E_DIR/$1.json"; }
# conns_held PORT PID: the client connections to local PORT that process PID
# has accepted and holds (one still in the accept queue has no pid).
conns_held() { ss -Htnp state established "( sport = :$1 )" | grep -c "pid=$2,"; }

# access_overlapping FIELD VALUE FROM_MS TO_MS [failed]: the requests in
# w1's access log whose FIELD (pod or ep) is VALUE and whose time at the
# worker overlaps [FROM_MS, TO_MS] (epoch ms, 5 ms of slack); with "failed",
# only those with a status other than 200 (a stream cut after its headers
# logs 200).
access_overlapping() {
    python3 - "$E2E_DIR/w1.log" "$@" <<'PY'
import datetime, re, sys
log, field, value, lo, hi = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
failed_only = len(sys.argv) > 6 and sys.argv[6] == "failed"
pat = re.compile(r'ts=(\S+) req=\S+ .* pod=(\S+) ep=(\S+) status=(\d+) dur_ms=([\d.]+)')
n = 0
for line in open(log, errors="replace"):
    m = pat.match(line)
    if not m or m.group(2 if field == "pod" else 3) != value or (failed_only and m.group(4) == "200"):
        continue
    end = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
    end_ms = end.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000
    if end_ms >= lo - 5 and end_ms - float(m.group(5)) <= hi + 5:
        n += 1
print(n)
PY
}
# killed_in_flight KILL_MS POD: failed requests that were already on POD when
# it was SIGKILLed at KILL_MS (the time its process was reaped, so
# connections made while it exited count as on it). Those die with their
# engine (DESIGN §7: only its in-flight requests fail; a POST that reached
# an engine is not retried).
killed_in_flight() { access_overlapping pod "$2" 0 "$1" failed; }
# on_engine_during EP FROM_MS TO_MS: the requests sent to engine address EP
# while [FROM_MS, TO_MS], whatever their status.
on_engine_during() { access_overlapping ep "$1" "$2" "$3"; }
# e2e_table COLUMNS...: one "TABLE | a | b | ..." line for docs/reliability.md.
e2e_table() { local IFS='|'; e2e_log "TABLE | $(sed 's/|/ | /g' <<<"$*") |"; }

# chat BODY_JSON [CURL ARGS...]: POST /v1/chat/completions to $GW; writes the
# body to $E2E_DIR/out.body and headers to $E2E_DIR/out.hdr; prints the status.
chat_path() {
    local path=$1 body=$2; shift 2
    curl -s -o "$E2E_DIR/out.body" -D "$E2E_DIR/out.hdr" -w '%{http_code}' --max-time 30 \
        -H 'Content-Type: application/json' "$@" --data-binary "$body" "$GW$path"
}
chat() { chat_path /v1/chat/completions "$@"; }
# hdr NAME: a response header of the last chat call (lowercase name).
hdr() { tr -d '\r' <"$E2E_DIR/out.hdr" | awk -v n="$1" 'BEGIN{IGNORECASE=1} index(tolower($0), n": ")==1 {sub(/^[^:]*: /,""); print; exit}'; }
body() { cat "$E2E_DIR/out.body"; }

# check_error_response DESC STATUS HEADER HEADER_VALUE: asserts the last chat
# response is the error contract (status, x-error-* header, OpenAI-shaped
# {"error":{"message","type","param","code"}}, request-id), then that a good
# request ($GOOD) right after still succeeds (counted in GOOD_SENT).
check_error_response() {
    local desc=$1 code=$2 status=$3 header=$4 value=$5
    expect_eq "$desc: status" "$code" "$status"
    expect_eq "$desc: $header" "$(hdr "$header")" "$value"
    expect_match "$desc: OpenAI-shaped body" "$(body | jq -r '[.error.message, .error.type, .error.code, (.error | has("param"))] | map(type) | join(",")')" '^string,string,string,boolean$'
    expect_eq "$desc: request-id present" "$(hdr request-id | wc -c | tr -d ' ')" 37
    code=$(chat "$GOOD")
    expect_eq "$desc: the next good request still succeeds" "$code" 200
    GOOD_SENT=$((GOOD_SENT + 1))
}
# check_error DESC STATUS HEADER HEADER_VALUE BODY [CURL ARGS...]: sends BODY
# with chat and checks the error contract (check_error_response).
check_error() {
    local desc=$1 status=$2 header=$3 value=$4 body=$5; shift 5
    check_error_response "$desc" "$(chat "$body" "$@")" "$status" "$header" "$value"
}

# mock_requests PORT: the JSON array of requests the mock on PORT received.
mock_requests() { curl -s "http://127.0.0.1:$1/_mock/requests"; }
mock_count() { mock_requests "$1" | jq 'length'; }
mock_clear() { curl -s -X DELETE "http://127.0.0.1:$1/_mock/requests" >/dev/null; }
# mock_received PORT: the requests the mock on PORT counted (/_mock/stats).
mock_received() { curl -s "http://127.0.0.1:$1/_mock/stats" | jq .received; }
# report_failed SCENARIO REQUESTS FAILED: one greppable line per failure
# scenario, for the notes' tables of failed client requests.
report_failed() { e2e_log "failed-client-requests scenario=\"$1\" requests=$2 failed=$3"; }

# metric URL NAME_WITH_LABELS: the value of one sample line of a /metrics page.
metric() { curl -s "$1/metrics" | awk -v m="$2" '$1==m {print $2; found=1} END{if(!found) print "absent"}'; }

# start_kubeapi NAME [ARGS...]: the Kubernetes API test double
# (e2e/kubeapi/kubeapi.py) on a free loopback port. Sets KUBEAPI to its URL
# and KUBECONFIG to the kubeconfig it writes ($E2E_DIR/NAME.kubeconfig).
# KUBEAPI_PORT reuses a port (restarts).
start_kubeapi() {
    local name=$1; shift
    local port=${KUBEAPI_PORT:-$(free_port)} scheme=http a
    for a in "$@"; do [ "$a" == --tls-cert ] && scheme=https; done
    spawn "$name" python3 "$E2E_KUBEAPI" --port "$port" --kubeconfig "$E2E_DIR/$name.kubeconfig" "$@"
    KUBEAPI=$scheme://127.0.0.1:$port
    KUBECONFIG=$E2E_DIR/$name.kubeconfig
    export KUBECONFIG
    for ((i = 0; i < 200; i++)); do
        [ -f "$KUBECONFIG" ] && curl -sk -o /dev/null --max-time 1 "$KUBEAPI/healthz" && return 0
        sleep 0.05
    done
    not_ok "kube API double $name starts"
}

# kc ARGS...: real kubectl against $KUBECONFIG, with a per-case cache.
kc() { kubectl --cache-dir "$E2E_DIR/kcache" "$@"; }

e2e_check_logs() {
    local f bad=0
    for f in "$E2E_DIR"/*.log; do
        [ -f "$f" ] || continue
        if grep -q 'lvl=alert' "$f"; then not_ok "no alert lines in $(basename "$f")" "$(grep -m3 'lvl=alert' "$f")"; bad=1; fi
        if grep -q 'kubeapi: Traceback' "$f"; then not_ok "no internal error in the kube API double ($(basename "$f"))" "$(grep -m1 -A8 'kubeapi: Traceback' "$f" | tail -3)"; bad=1; fi
        if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f"; then
            not_ok "no sanitizer report in $(basename "$f")" "$(grep -m3 -E 'Sanitizer|runtime error' "$f")"; bad=1
        fi
    done
    return $bad
}

e2e_finish() {
    local name
    for name in "${!E2E_PIDS[@]}"; do stop "$name"; done
    e2e_check_logs
    if [ "$E2E_FAIL" -gt 0 ]; then
        for f in "$E2E_DIR"/*.log; do
            [ -f "$f" ] || continue
            echo "---- tail of $(basename "$f")"; tail -n 25 "$f"
        done
    fi
    if [ "${E2E_KEEP:-0}" != 1 ]; then rm -rf "$E2E_DIR"; else e2e_log "kept $E2E_DIR"; fi
    echo "$E2E_NAME: $E2E_PASS passed, $E2E_FAIL failed"
    [ "$E2E_FAIL" -eq 0 ] && [ "$E2E_PASS" -gt 0 ]
}

e2e_on_exit() {
    local rc=$?
    trap - EXIT
    if [ -z "${E2E_FINISHED:-}" ]; then
        # The case died early: still clean up (helper loops watch the stop
        # file; background jobs are killed), and fail.
        touch "$E2E_DIR/stop" 2>/dev/null
        for name in "${!E2E_PIDS[@]}"; do kill -9 "${E2E_PIDS[$name]}" 2>/dev/null; done
        kill $(jobs -p) 2>/dev/null
        [ "${E2E_KEEP:-0}" == 1 ] || rm -rf "$E2E_DIR"
        echo "$E2E_NAME: aborted (rc=$rc)"
        exit 1
    fi
}
trap e2e_on_exit EXIT

done_case() { E2E_FINISHED=1; e2e_finish; exit $?; }
# skip_case REASON: this machine lacks what the case needs (a tool, a kernel
# feature); call it before starting anything. ctest reports the case as
# skipped (SKIP_RETURN_CODE 77, e2e/CMakeLists.txt).
skip_case() { trap - EXIT; rm -rf "$E2E_DIR"; echo "$E2E_NAME: skipped: $1"; exit 77; }

for bin in "$E2E_BIN_CTL" "$E2E_BIN_DP" "$E2E_BIN_MOCK"; do
    [ -x "$bin" ] || { echo "$E2E_NAME: missing $bin (build first)"; exit 1; }
done
command -v jq >/dev/null || { echo "$E2E_NAME: jq is required"; exit 1; }
