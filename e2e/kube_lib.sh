# e2e/kube_lib.sh: helpers for the Kubernetes cases (kube_*.sh), sourced
# after lib.sh. Pods are created and changed with real kubectl (kc) against
# the API test double, the way an operator or the kubelet would: a pod is
# created, then the kubelet's part (podIP, the Ready condition) is written
# through the status subresource.
command -v kubectl >/dev/null || { echo "$E2E_NAME: kubectl is required"; exit 1; }

# model_pod NAME MODEL PORT [NS] [EXTRA_LABELS_YAML] [CONFIG_JSON]: a
# scheduled pod (so deletion is graceful) of MODEL whose engine listens on
# 127.0.0.1:PORT, with a 2 s grace period.
model_pod() {
    local name=$1 model=$2 port=$3 ns=${4:-default} extra=${5:-} cfg=${6:-}
    {
        printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: %s\n' "$name" "$ns"
        printf '  labels:\n    model.aibrix.ai/name: "%s"\n    model.aibrix.ai/port: "%s"\n    app: "%s"\n' \
            "$model" "$port" "$model"
        [ -n "$extra" ] && printf '%s\n' "$extra"
        [ -n "$cfg" ] && printf '  annotations:\n    model.aibrix.ai/config: %s\n' "$(jq -Rn --arg c "$cfg" '$c')"
        printf 'spec:\n  nodeName: node-1\n  terminationGracePeriodSeconds: 2\n'
        printf '  containers: [{name: engine, image: vllm/vllm-openai}]\n'
    } | kc create --validate=false -f - >/dev/null || not_ok "create pod $ns/$name"
}

# pod_ready NAME true|false [NS]: the kubelet's status update.
pod_ready() {
    local st=True
    [ "$2" == true ] || st=False
    kc patch pod "$1" -n "${3:-default}" --subresource=status \
        -p "{\"status\":{\"phase\":\"Running\",\"podIP\":\"127.0.0.1\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"$st\"}]}}" >/dev/null ||
        not_ok "patch pod status $1"
}

# set_config NAME CONFIG_JSON [NS]: changes a pod's model.aibrix.ai/config.
set_config() {
    kc annotate pod "$1" -n "${3:-default}" --overwrite "model.aibrix.ai/config=$2" >/dev/null ||
        not_ok "annotate pod $1"
}

# ctl_snapshot [PORT]: the controller's /debug/snapshot.
ctl_snapshot() { curl -s "http://127.0.0.1:${1:-$CTL_HTTP}/debug/snapshot"; }

# ep_state POD [PORT]: ready, draining, not_ready or absent in the controller's snapshot.
ep_state() {
    ctl_snapshot "${2:-}" | jq -r --arg p "$1" \
        '[.endpoints[] | select(.pod==$p)] | if length==0 then "absent" elif .[0].draining then "draining" elif .[0].ready then "ready" else "not_ready" end'
}

# served_by N MODEL: the sorted distinct target-pod values of N chat requests
# to the worker at $GW.
served_by() {
    local n=$1 model=$2 i
    # In parallel: a check then takes about one request's time, so within_ms
    # measures propagation, not the check (8 requests in a row take 100-250 ms
    # under ASan).
    for ((i = 0; i < n; i++)); do
        curl -s -o /dev/null -D - --max-time 5 -H 'Content-Type: application/json' \
            -d "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2}" \
            "$GW/v1/chat/completions" | tr -d '\r' | awk 'tolower($1)=="target-pod:" {print $2}' &
    done | sort -u | tr '\n' ' ' | sed 's/ $//'
}

# within_ms DESC MS COMMAND...: passes when COMMAND succeeds within MS
# milliseconds of wall time from now (polling), and says how long it took.
within_ms() {
    local d=$1 budget=$2 t0 el
    shift 2
    t0=$(date +%s%N)
    while :; do
        if "$@"; then
            el=$((($(date +%s%N) - t0) / 1000000))
            if [ "$el" -le "$budget" ]; then ok "$d (${el} ms)"; else not_ok "$d" "took ${el} ms > ${budget} ms"; fi
            return 0
        fi
        el=$((($(date +%s%N) - t0) / 1000000))
        if [ "$el" -gt $((budget * 5)) ]; then not_ok "$d" "not after ${el} ms: $*"; return 0; fi
        sleep 0.02
    done
}

# is_eq WANT COMMAND...: true when COMMAND prints WANT (for eventually and
# within_ms, which re-run their command: a "$(...)" argument would be
# expanded once, before the first try).
is_eq() {
    local want=$1
    shift
    [ "$("$@")" == "$want" ]
}

# snap_jq FILTER: jq -r FILTER over the controller's snapshot.
snap_jq() { ctl_snapshot | jq -r "$1"; }

# served_only EXPECTED MODEL: true when 8 requests are all served by EXPECTED (space-separated set).
served_only() { [ "$(served_by 8 "$2")" == "$1" ]; }

# start_kube_controller NAME ARGS...: a controller on the kubernetes source.
start_kube_controller() {
    local name=$1; shift
    start_controller "$name" --llm-backend-discovery kubernetes --kubeconfig "$KUBECONFIG" \
        --kube-backoff-initial 100ms --kube-backoff-max 1s "$@"
}

# kube_requests [SINCE]: the double's request log.
kube_requests() { curl -sk "$KUBEAPI/_test/requests?since=${1:-0}"; }

# new_controller NAME ARGS...: another controller on fresh ports; sets
# NEW_HTTP to its admin port and leaves CTL_* (the first controller's) alone.
new_controller() {
    local saved=("$CTL_PUB" "$CTL_REP" "$CTL_PULL" "$CTL_HTTP")
    unset CTL_PUB CTL_REP CTL_PULL CTL_HTTP
    start_controller "$@"
    NEW_HTTP=$CTL_HTTP
    CTL_PUB=${saved[0]} CTL_REP=${saved[1]} CTL_PULL=${saved[2]} CTL_HTTP=${saved[3]}
}

# make_pki DIR: a CA, a server certificate for 127.0.0.1 (srv.*), a client
# certificate CN=llmgw-controller (cli.*) and an unrelated CA (other.*).
make_pki() {
    local d=$1
    command -v openssl >/dev/null || { echo "$E2E_NAME: openssl is required"; exit 1; }
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$d/srv.key" -out "$d/srv.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\n' >"$d/ext"
    openssl x509 -req -in "$d/srv.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
        -extfile "$d/ext" -out "$d/srv.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=llmgw-controller -keyout "$d/cli.key" -out "$d/cli.csr" 2>/dev/null
    openssl x509 -req -in "$d/cli.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
        -out "$d/cli.crt" 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca -keyout "$d/other.key" \
        -out "$d/other.crt" 2>/dev/null
}
