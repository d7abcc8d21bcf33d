#!/usr/bin/env bash
# The Kubernetes API test double (e2e/kubeapi/README.md) checked against its
# spec with real kubectl and raw HTTP: discovery, CRUD and Status errors,
# selectors, the status subresource and generation, the three patch types,
# optimistic concurrency, LIST pagination, WATCH (events, filtering
# transitions, bookmarks, timeouts, 410 Expired), graceful pod deletion,
# Secrets, and authentication (bearer token and client certificate over TLS).
# Every controller e2e case relies on these behaviours.
source "$(dirname "$0")/../lib.sh"
command -v kubectl >/dev/null || { echo "kube_api_double: kubectl is required"; exit 1; }

start_kubeapi api --history 40 --bookmark-interval 0.3
CORE=$KUBEAPI/api/v1
GWAPI=$KUBEAPI/apis/gateway.networking.k8s.io/v1

# api METHOD URL [CURL ARGS...]: prints the body; the status goes to $E2E_DIR/code.
api() {
    local m=$1 u=$2; shift 2
    curl -s -X "$m" -o "$E2E_DIR/api.body" -w '%{http_code}' "$@" "$u" >"$E2E_DIR/code"
    cat "$E2E_DIR/api.body"
}
code() { cat "$E2E_DIR/code"; }
json() { api "$1" "$2" -H 'Content-Type: application/json' --data-binary "$3"; }

# ---- discovery ----
out=$(kc api-resources --no-headers 2>&1)
expect_match "kubectl api-resources lists pods, httproutes and leases" "$out" "httproutes +gateway.networking.k8s.io/v1 +true +HTTPRoute"
expect_match "leases are served in coordination.k8s.io/v1" "$out" "leases +coordination.k8s.io/v1"
ct=$(curl -s -o /dev/null -w '%{content_type}' -H 'Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json' "$KUBEAPI/apis")
expect_eq "aggregated discovery answers when asked for" "$ct" "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
expect_eq "legacy /apis is an APIGroupList" "$(api GET "$KUBEAPI/apis" | jq -r .kind)" APIGroupList
expect_eq "/apis/<group>/<version> lists the status subresource" \
    "$(api GET "$GWAPI" | jq -r '.resources[] | select(.name=="httproutes/status") | .verbs | join(",")')" "get,patch,update"
expect_eq "/version names a 1.32 server" "$(api GET "$KUBEAPI/version" | jq -r .gitVersion)" v1.32.4

# ---- create, get, errors ----
# kubectl's imperative generators (create namespace|configmap|secret) send
# protobuf bodies, which the double refuses with 415 (README "Not
# implemented"); manifests and dry-run pipes send JSON.
expect_match "a protobuf request body is 415" "$(kc create namespace x 2>&1)" "UnsupportedMediaType|unknown format"
kc create namespace models --dry-run=client -o yaml | kc create --validate=false -f - >/dev/null
cat >"$E2E_DIR/pod.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: p1
  namespace: models
  labels: {model.aibrix.ai/name: m1, tier: a}
spec:
  nodeName: node-1
  terminationGracePeriodSeconds: 2
  containers: [{name: c, image: x}]
status: {phase: Running, podIP: 10.0.0.9}
YAML
expect_match "kubectl create makes a pod" "$(kc create --validate=false -f "$E2E_DIR/pod.yaml" 2>&1)" "pod/p1 created"
expect_match "a second create is AlreadyExists" "$(kc create --validate=false -f "$E2E_DIR/pod.yaml" 2>&1)" '\(AlreadyExists\).*pods "p1" already exists'
expect_eq "create ignores status (the main resource does not write it)" "$(kc get pod p1 -n models -o jsonpath='{.status.phase}/{.status.podIP}')" "Pending/"
api GET "$CORE/namespaces/models/pods/nope" >/dev/null
expect_eq "GET of a missing object is 404" "$(code)" 404
expect_eq "... with a NotFound Status" "$(jq -r '.kind+"/"+.reason' "$E2E_DIR/api.body")" "Status/NotFound"
json POST "$CORE/namespaces/ghost/configmaps" '{"metadata":{"name":"c"}}' >/dev/null
expect_eq "creating in a missing namespace is 404" "$(code)/$(jq -r .message "$E2E_DIR/api.body")" '404/namespaces "ghost" not found'
json POST "$CORE/namespaces/models/configmaps" '{"metadata":{"name":"Bad_Name"}}' >/dev/null
expect_eq "an invalid name is 422 Invalid" "$(code)/$(jq -r .reason "$E2E_DIR/api.body")" "422/Invalid"
json POST "$CORE/namespaces/models/configmaps" '{"metadata":{"name":"c","labels":{"k":"a/b"}}}' >/dev/null
expect_eq "an invalid label value is 422" "$(code)" 422
json POST "$CORE/namespaces/models/configmaps" '{"metadata":{"name":"c","namespace":"other"}}' >/dev/null
expect_eq "a body namespace that differs from the URL is 400" "$(code)" 400

# ---- selectors ----
for n in p2 p3; do
    json POST "$CORE/namespaces/models/pods" "{\"metadata\":{\"name\":\"$n\",\"labels\":{\"tier\":\"${n/p/b}\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"x\"}]}}" >/dev/null
done
names() { kc get pods -n models -o jsonpath='{.items[*].metadata.name}' "$@"; }
expect_eq "label selector =" "$(names -l tier=a)" "p1"
expect_eq "label selector ==" "$(names -l tier==b2)" "p2"
expect_eq "label selector != (missing keys match)" "$(names -l 'model.aibrix.ai/name!=m1')" "p2 p3"
expect_eq "label selector in" "$(names -l 'tier in (a,b3)')" "p1 p3"
expect_eq "label selector notin" "$(names -l 'tier notin (a)')" "p2 p3"
expect_eq "label selector exists" "$(names -l model.aibrix.ai/name)" "p1"
expect_eq "label selector !key" "$(names -l '!model.aibrix.ai/name')" "p2 p3"
expect_eq "label selector conjunction" "$(names -l 'tier,tier!=b2')" "p1 p3"
api GET "$CORE/pods?labelSelector=tier%20in%20(a" >/dev/null
expect_eq "a malformed label selector is 400 BadRequest" "$(code)/$(jq -r .reason "$E2E_DIR/api.body")" "400/BadRequest"
expect_eq "field selector metadata.name" "$(names --field-selector metadata.name=p2)" "p2"
expect_eq "field selector metadata.name!=" "$(names --field-selector metadata.name!=p2)" "p1 p3"
api GET "$CORE/pods?fieldSelector=spec.bogus%3Dx" >/dev/null
expect_eq "an unsupported field selector is 400" "$(code)/$(jq -r .message "$E2E_DIR/api.body")" "400/field label not supported: spec.bogus"
expect_eq "all-namespaces LIST" "$(kc get pods -A -o jsonpath='{.items[*].metadata.namespace}')" "models models models"

# ---- pagination ----
page1=$(api GET "$CORE/namespaces/models/pods?limit=2")
tok=$(jq -r .metadata.continue <<<"$page1")
expect_eq "limit returns a page with continue and remainingItemCount" "$(jq -r '[.items[].metadata.name]|join(",")' <<<"$page1")/$(jq -r .metadata.remainingItemCount <<<"$page1")" "p1,p2/1"
json POST "$CORE/namespaces/models/pods" '{"metadata":{"name":"p0"},"spec":{"containers":[{"name":"c","image":"x"}]}}' >/dev/null
page2=$(api GET "$CORE/namespaces/models/pods?limit=2&continue=$tok")
expect_eq "continue serves the snapshot of the first page (p0 made later is absent)" "$(jq -r '([.items[].metadata.name]|join(","))+"/"+(.metadata.continue // "")' <<<"$page2")" "p3/"
kc delete pod p0 -n models --wait=false >/dev/null

# ---- status subresource, generation ----
kc patch pod p1 -n models --subresource=status -p '{"status":{"podIP":"10.0.0.9","conditions":[{"type":"Ready","status":"False"},{"type":"PodScheduled","status":"True"}]}}' >/dev/null
kc patch pod p1 -n models --subresource=status -p '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}' >/dev/null
expect_eq "strategic merge on pod status merges conditions by type" \
    "$(kc get pod p1 -n models -o jsonpath='{range .status.conditions[*]}{.type}={.status} {end}')" "Ready=True PodScheduled=True "
expect_eq "kubectl wait --for=condition=Ready on a pod" "$(kc wait --for=condition=Ready pod/p1 -n models --timeout=5s 2>&1)" "pod/p1 condition met"
cat >"$E2E_DIR/route.yaml" <<'YAML'
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r1, namespace: models}
spec:
  parentRefs: [{name: gw, namespace: gw-system}]
  rules: [{backendRefs: [{name: m1, port: 8000}]}]
YAML
expect_match "kubectl apply --validate=false creates a custom resource" "$(kc apply --validate=false -f "$E2E_DIR/route.yaml" 2>&1)" "created"
expect_match "a second apply changes nothing" "$(kc apply --validate=false -f "$E2E_DIR/route.yaml" 2>&1)" "unchanged"
rv0=$(kc get httproute r1 -n models -o jsonpath='{.metadata.resourceVersion}')
expect_eq "a custom resource starts at generation 1" "$(kc get httproute r1 -n models -o jsonpath='{.metadata.generation}')" 1
kc label httproute r1 -n models team=x >/dev/null
expect_eq "a metadata change does not bump generation" "$(kc get httproute r1 -n models -o jsonpath='{.metadata.generation}')" 1
sed -i 's/port: 8000/port: 8001/' "$E2E_DIR/route.yaml"
kc apply --validate=false -f "$E2E_DIR/route.yaml" >/dev/null
expect_eq "a spec change bumps generation" "$(kc get httproute r1 -n models -o jsonpath='{.metadata.generation}')" 2
expect_match "strategic merge is refused for custom resources (415)" "$(kc patch httproute r1 -n models -p '{"metadata":{"labels":{"a":"b"}}}' 2>&1)" "not supported"
kc patch httproute r1 -n models --type=merge --subresource=status \
    -p '{"spec":{"rules":[]},"status":{"conditions":[{"type":"Accepted"}],"parents":[{"parentRef":{"name":"gw","namespace":"gw-system"},"controllerName":"t.io/c","conditions":[{"type":"Accepted","status":"True","reason":"Accepted","message":"m","observedGeneration":2,"lastTransitionTime":"2026-01-01T00:00:00Z"}]}]}}' >/dev/null
expect_eq "a status write ignores spec changes" "$(kc get httproute r1 -n models -o jsonpath='{.spec.rules[0].backendRefs[0].port}/{.metadata.generation}')" "8001/2"
expect_eq "fields outside the CRD status schema are pruned" "$(kc get httproute r1 -n models -o jsonpath='{.status.conditions}')" ""
expect_eq "kubectl wait --for=jsonpath with a filter on status.parents" \
    "$(kc wait httproute/r1 -n models --for=jsonpath='{.status.parents[0].conditions[?(@.type=="Accepted")].status}'=True --timeout=5s 2>&1)" \
    "httproute.gateway.networking.k8s.io/r1 condition met"
cur=$(api GET "$GWAPI/namespaces/models/httproutes/r1")
json PUT "$GWAPI/namespaces/models/httproutes/r1" "$(jq '.status.parents=[] | .metadata.labels.z="1"' <<<"$cur")" >/dev/null
expect_eq "a main-resource write ignores status" "$(kc get httproute r1 -n models -o jsonpath='{.status.parents[0].controllerName}/{.metadata.labels.z}')" "t.io/c/1"

# ---- optimistic concurrency ----
json PUT "$GWAPI/namespaces/models/httproutes/r1/status" "$(jq '.metadata.resourceVersion="'"$rv0"'"' <<<"$cur")" >/dev/null
expect_eq "a PUT with a stale resourceVersion is 409 Conflict" "$(code)/$(jq -r .reason "$E2E_DIR/api.body")" "409/Conflict"
json PUT "$GWAPI/namespaces/models/httproutes/r1" "$(jq 'del(.metadata.resourceVersion)' <<<"$cur")" >/dev/null
expect_eq "a PUT without resourceVersion on a custom resource is 422" "$(code)" 422
api PATCH "$CORE/namespaces/models/pods/p2" -H 'Content-Type: application/merge-patch+json' --data-binary '{"metadata":{"resourceVersion":"1","labels":{"x":"y"}}}' >/dev/null
expect_eq "a resourceVersion inside a patch is a precondition (409)" "$(code)" 409
before=$(kc get pod p2 -n models -o jsonpath='{.metadata.resourceVersion}')
api PATCH "$CORE/namespaces/models/pods/p2" -H 'Content-Type: application/merge-patch+json' --data-binary '{"metadata":{"labels":{"tier":"b2"}}}' >/dev/null
expect_eq "a no-op write keeps the resourceVersion" "$(kc get pod p2 -n models -o jsonpath='{.metadata.resourceVersion}')" "$before"
api PATCH "$CORE/namespaces/models/pods/p2" -H 'Content-Type: application/json-patch+json' \
    --data-binary '[{"op":"add","path":"/metadata/labels/j","value":"1"},{"op":"replace","path":"/metadata/labels/tier","value":"b9"},{"op":"remove","path":"/metadata/labels/j"}]' >/dev/null
expect_eq "JSON patch add/replace/remove" "$(code)/$(kc get pod p2 -n models -o jsonpath='{.metadata.labels}')" '200/{"tier":"b9"}'
api PATCH "$CORE/namespaces/models/pods/p2" -H 'Content-Type: application/json-patch+json' \
    --data-binary '[{"op":"test","path":"/metadata/labels/tier","value":"nope"}]' >/dev/null
expect_eq "a failing JSON patch test op is 422" "$(code)" 422
api PATCH "$CORE/namespaces/models/pods/p2" -H 'Content-Type: application/merge-patch+json' --data-binary '{"metadata":{"labels":{"tier":null}}}' >/dev/null
expect_eq "merge patch null deletes a key" "$(kc get pod p2 -n models -o jsonpath='{.metadata.labels}')" ""

# ---- watch ----
rv=$(api GET "$CORE/namespaces/models/pods" | jq -r .metadata.resourceVersion)
curl -sN --max-time 10 "$CORE/namespaces/models/pods?watch=true&resourceVersion=$rv&labelSelector=tier%3Da&allowWatchBookmarks=true&timeoutSeconds=2" >"$E2E_DIR/w1" &
wpid=$!
curl -sN --max-time 10 "$CORE/namespaces/models/pods?watch=1&resourceVersion=$rv&timeoutSeconds=2" >"$E2E_DIR/w2" &
wpid2=$!
sleep 0.3
kc label pod p2 -n models tier=a >/dev/null          # p2 starts matching: ADDED
kc label pod p1 -n models tier=z --overwrite >/dev/null  # p1 stops matching: DELETED
kc label pod p2 -n models extra=1 >/dev/null          # MODIFIED
start=$(date +%s.%N)
wait $wpid; wait $wpid2
took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%d", e - s}')
expect_eq "filtered watch turns selector transitions into ADDED/DELETED" \
    "$(jq -r 'select(.type!="BOOKMARK") | .type+":"+.object.metadata.name' "$E2E_DIR/w1" | tr '\n' ' ')" "ADDED:p2 DELETED:p1 MODIFIED:p2 "
expect_true "bookmarks arrive when allowed" grep -q '"type":"BOOKMARK"' "$E2E_DIR/w1"
expect_eq "no bookmarks without allowWatchBookmarks" "$(grep -c BOOKMARK "$E2E_DIR/w2")" 0
expect_eq "the unfiltered watch sees three MODIFIED" "$(jq -r .type "$E2E_DIR/w2" | tr '\n' ' ')" "MODIFIED MODIFIED MODIFIED "
expect_true "timeoutSeconds ends the stream (${took}s after the writes)" test "$took" -le 3
last=$(jq -r 'select(.type=="BOOKMARK") | .object.metadata.resourceVersion' "$E2E_DIR/w1" | tail -1)
expect_eq "the last bookmark carries the newest resourceVersion" "$last" "$(api GET "$CORE/pods" | jq -r .metadata.resourceVersion)"
expect_eq "a bookmark carries only kind, apiVersion and metadata.resourceVersion" \
    "$(jq -c 'select(.type=="BOOKMARK") | .object | keys' "$E2E_DIR/w1" | head -1)" '["apiVersion","kind","metadata"]'
curl -sN --max-time 5 "$CORE/namespaces/models/pods?watch=true&resourceVersion=0&timeoutSeconds=1" >"$E2E_DIR/w3"
expect_eq "a watch from resourceVersion 0 starts with ADDED for every object" "$(jq -r .type "$E2E_DIR/w3" | sort | uniq -c | awk '{print $2"="$1}')" "ADDED=3"

# ---- 410 ----
curl -s -XPOST "$KUBEAPI/_test/compact" >/dev/null
curl -sN --max-time 5 "$CORE/pods?watch=true&resourceVersion=$rv" >"$E2E_DIR/w4"
expect_eq "a watch from a compacted resourceVersion gets one ERROR 410 Expired event" \
    "$(jq -r '.type+"/"+(.object.code|tostring)+"/"+.object.reason' "$E2E_DIR/w4")" "ERROR/410/Expired"
api GET "$CORE/namespaces/models/pods?limit=2&continue=$tok" >/dev/null
expect_eq "an expired continue token is 410" "$(code)" 410
rv=$(api GET "$CORE/configmaps" | jq -r .metadata.resourceVersion)
for i in $(seq 1 45); do json POST "$CORE/namespaces/models/configmaps" "{\"metadata\":{\"name\":\"c$i\"}}" >/dev/null; done
curl -sN --max-time 5 "$CORE/configmaps?watch=true&resourceVersion=$rv" >"$E2E_DIR/w5"
expect_eq "more writes than --history also expire a resourceVersion" "$(jq -r .object.code "$E2E_DIR/w5")" 410
expect_match "close-watches ends open watches" "$( (curl -sN --max-time 5 "$CORE/pods?watch=true" >/dev/null; echo ended) & sleep 0.5; curl -s -XPOST "$KUBEAPI/_test/close-watches" >/dev/null; wait)" "ended"

# ---- deletion ----
kc get pod p1 -n models -w --output-watch-events -o jsonpath='{.type} {.object.metadata.deletionTimestamp}{"\n"}' >"$E2E_DIR/w6" 2>&1 &
wpid=$!
sleep 0.5
kc delete pod p1 -n models --wait=false >/dev/null
sleep 0.3
expect_match "a graceful pod delete sets deletionTimestamp first" "$(kc get pod p1 -n models -o jsonpath='{.metadata.deletionTimestamp}/{.metadata.deletionGracePeriodSeconds}')" "^20..-.*Z/2$"
expect_match "kubectl wait --for=delete returns once the grace period is over" "$(kc wait --for=delete pod/p1 -n models --timeout=10s 2>&1)" "condition met|deleted"
kill $wpid 2>/dev/null; wait $wpid 2>/dev/null
expect_match "the watch saw MODIFIED (terminating) then DELETED" "$(tr '\n' ' ' <"$E2E_DIR/w6")" "MODIFIED 20.*DELETED"
t0=$(date +%s%N)
kc delete pod p3 -n models >/dev/null
expect_true "an unscheduled pod is deleted at once" test $((($(date +%s%N) - t0) / 1000000)) -lt 3000
json POST "$CORE/namespaces/models/pods" '{"metadata":{"name":"p5"},"spec":{"nodeName":"n","containers":[{"name":"c","image":"x"}]}}' >/dev/null
expect_eq "--grace-period=0 deletes a scheduled pod at once" "$(kc delete pod p5 -n models --grace-period=0 --force 2>&1 | tail -1)" 'pod "p5" force deleted'
api DELETE "$CORE/namespaces/models/pods/p2" -H 'Content-Type: application/json' --data-binary '{"preconditions":{"uid":"nope"}}' >/dev/null
expect_eq "a delete precondition that does not hold is 409" "$(code)" 409

# ---- configmaps, secrets, events, leases ----
kc create configmap gw -n models --from-literal=config.yaml='gateway: {routingStrategy: random}' --dry-run=client -o yaml |
    kc create --validate=false -f - >/dev/null
expect_eq "configmap data" "$(kc get cm gw -n models -o jsonpath='{.data.config\.yaml}')" "gateway: {routingStrategy: random}"
json POST "$CORE/namespaces/models/secrets" '{"metadata":{"name":"s"},"stringData":{"k":"v"}}' >/dev/null
expect_eq "Secret stringData is folded into base64 data" "$(kc get secret s -n models -o jsonpath='{.data.k}/{.stringData}')" "$(printf v | base64)/"
json POST "$CORE/namespaces/models/events" '{"metadata":{"name":"e1"},"involvedObject":{"kind":"Pod","name":"p2","namespace":"models"},"reason":"R","type":"Warning","message":"hello"}' >/dev/null
expect_eq "events are listed by involvedObject field selectors" \
    "$(kc get events -n models --field-selector involvedObject.name=p2,type=Warning -o jsonpath='{.items[*].message}')" "hello"
json POST "$KUBEAPI/apis/coordination.k8s.io/v1/namespaces/models/leases" '{"metadata":{"name":"l"},"spec":{"holderIdentity":"a","leaseDurationSeconds":5}}' >/dev/null
expect_eq "lease create" "$(code)" 201
json POST "$KUBEAPI/apis/coordination.k8s.io/v1/namespaces/models/leases" '{"metadata":{"name":"l2"},"spec":{"leaseDurationSeconds":0}}' >/dev/null
expect_eq "a lease duration of 0 is 422" "$(code)" 422

# ---- test hooks ----
curl -s -XPOST "$KUBEAPI/_test/faults" -d '{"method":"GET","path":"/pods/p2$","code":503,"count":1}' >/dev/null
api GET "$CORE/namespaces/models/pods/p2" >/dev/null; c1=$(code)
api GET "$CORE/namespaces/models/pods/p2" >/dev/null; c2=$(code)
expect_eq "an injected fault fires exactly count times" "$c1 $c2" "503 200"
curl -s -XPOST "$KUBEAPI/_test/faults" -d '{"method":"PUT","path":"/leases/l$","action":"bump","count":1}' >/dev/null
l=$(api GET "$KUBEAPI/apis/coordination.k8s.io/v1/namespaces/models/leases/l")
json PUT "$KUBEAPI/apis/coordination.k8s.io/v1/namespaces/models/leases/l" "$(jq '.spec.holderIdentity="b"' <<<"$l")" >/dev/null
expect_eq "a bump fault makes a genuine concurrent write (409)" "$(code)" 409

# ---- authentication over TLS ----
if command -v openssl >/dev/null; then
    d=$E2E_DIR/pki
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$d/srv.key" -out "$d/srv.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\n' >"$d/ext"
    openssl x509 -req -in "$d/srv.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 -extfile "$d/ext" -out "$d/srv.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=llmgw -keyout "$d/cli.key" -out "$d/cli.csr" 2>/dev/null
    openssl x509 -req -in "$d/cli.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 -out "$d/cli.crt" 2>/dev/null
    plain_kc=$KUBECONFIG
    start_kubeapi tls --tls-cert "$d/srv.crt" --tls-key "$d/srv.key" --kubeconfig-ca "$d/ca.crt" --token t0ken --client-ca "$d/ca.crt"
    expect_match "kubectl over TLS with a bearer token" "$(kc get ns --no-headers 2>&1)" "default"
    expect_eq "no credentials is 401 Unauthorized" "$(curl -s --cacert "$d/ca.crt" "$KUBEAPI/api/v1/pods" | jq -r '(.code|tostring)+"/"+.reason')" "401/Unauthorized"
    expect_eq "a client certificate signed by the client CA authenticates" \
        "$(curl -s --cacert "$d/ca.crt" --cert "$d/cli.crt" --key "$d/cli.key" "$KUBEAPI/api/v1/namespaces/default" | jq -r .metadata.name)" "default"
    curl -s -XPOST --cacert "$d/ca.crt" "$KUBEAPI/_test/tokens" -d '{"tokens":["rotated"]}' >/dev/null
    expect_match "a rotated-out token is refused" "$(kc get ns 2>&1)" "Unauthorized|provide credentials"
    expect_match "the new token is accepted" "$(kc get ns --token rotated --no-headers 2>&1)" "default"
    KUBECONFIG=$plain_kc
else
    not_ok "openssl is required for the TLS checks"
fi
done_case
