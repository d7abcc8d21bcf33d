#!/usr/bin/env bash
# charts/llmgw: helm lint, helm template with the default values, with the
# AIBrix production values of seeds 000/001 unchanged
# (charts/llmgw/ci/seed-values.yaml) and with a values file exercising the
# rest (external Redis, two pools, two processes per pod, HPA,
# ServiceMonitor, dashboard). Every render passes yamllint and is applied
# with real kubectl to the Kubernetes API test double; each seed value must
# reach the worker flag the chart README maps it to. Then the controller and
# a worker run with the arguments and environment of the applied
# Deployments and route a request to a pod of the example model (seed 002).
# manifests/ must be the chart's current default render.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../kube_lib.sh"
command -v yamllint >/dev/null || { echo "helm_chart: yamllint is required (scripts/setup)"; exit 1; }
HELM=$E2E_SRC/scripts/helm
CHART=$E2E_SRC/charts/llmgw
SEED=$CHART/ci/seed-values.yaml
"$HELM" --install-only || { echo "helm_chart: helm cannot be installed (scripts/helm)"; exit 1; }

render() { "$HELM" template llmgw "$CHART" --namespace llmgw-system --set createNamespace=true "$@"; }
# obj FILE KIND NAME: one rendered object as JSON ("null" when absent).
obj() {
    python3 -c 'import sys, yaml, json
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
m = [d for d in docs if d["kind"] == sys.argv[2] and d["metadata"]["name"] == sys.argv[3]]
print(json.dumps(m[0] if m else None))' "$@"
}
kinds() { python3 -c 'import sys, yaml
print(" ".join(sorted("%s/%s" % (d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(open(sys.argv[1])) if d)))' "$1"; }

# ---- lint ----
expect_match "helm lint --strict (defaults)" "$("$HELM" lint --strict "$CHART" 2>&1)" '1 chart\(s\) linted, 0 chart\(s\) failed'
expect_match "helm lint --strict (seed values)" "$("$HELM" lint --strict "$CHART" -f "$SEED" 2>&1)" '0 chart\(s\) failed'
bad=$("$HELM" template x "$CHART" --set worker.processesPerPod=0 2>&1)
expect_match "processesPerPod 0 is refused with a clear message" "$bad" 'processesPerPod must be at least 1'
bad=$("$HELM" template x "$CHART" --set 'workerPools[0].name=Bad_Name' 2>&1)
expect_match "a pool name that is no DNS label is refused" "$bad" 'is not a DNS label'

# ---- three renders, each clean for yamllint ----
cat >"$E2E_DIR/wide.yaml" <<'EOF'
gatewayPlugin:
  replicaCount: 1
  dependencies:
    redis: {host: redis.example.internal, port: 6380, password: s3cret}
  container:
    envs: {ROUTING_ALGORITHM: least-request}
worker:
  processesPerPod: 2
  hpa: {enabled: true, minReplicas: 2, maxReplicas: 6}
workerPools:
  - name: worker
  - name: batch
    replicas: 4
    processesPerPod: 4
    migrateAcceptQueue: true
    envs: {ROUTING_ALGORITHM: throughput}
    pdb: {enabled: false}
    hpa: {enabled: false}
gateway:
  clientTrafficPolicy:
    connection: {connectionLimit: {value: 1000}}
  backendTrafficPolicy:
    circuitBreaker: {maxParallelRequests: 100, maxConnections: 64, maxPendingRequests: 9}
  envoyPatchPolicy:
    circuitBreakers: {maxRequests: 50, maxConnections: 200}
metrics:
  serviceMonitor: {enabled: true, labels: {release: prometheus}}
  dashboard: {enabled: true}
controller:
  traffic:
    routePolicy: weight
    routeConfig:
      - {base_url: local, weight: 70}
      - {base_url: "https://api.example.com", api_key: sk-wide, weight: 30, fallback: true}
  mirror:
    enabled: true
    config: {Enable: true, Target: "http://mirror.example:8000", Ratio: 25, Timeout: 2000}
EOF
render >"$E2E_DIR/default.yaml"
expect_eq "helm template (defaults) renders" "$?" 0
render -f "$SEED" >"$E2E_DIR/seed.yaml"
expect_eq "helm template (seed values) renders" "$?" 0
render -f "$E2E_DIR/wide.yaml" >"$E2E_DIR/wide-render.yaml"
expect_eq "helm template (wide values) renders" "$?" 0
for r in default seed wide-render; do
    expect_eq "yamllint: $r" "$(yamllint -f parsable -c "$CHART/ci/yamllint.yaml" "$E2E_DIR/$r.yaml" 2>&1)" ""
done

# ---- manifests/ is the default render ----
expect_eq "manifests/ matches the chart (scripts/sync-manifests --check)" \
    "$("$E2E_SRC/scripts/sync-manifests" --check 2>&1 | tail -1)" "sync-manifests: manifests/ matches the chart"

# ---- the seed values, key by key (charts/llmgw/README.md, "AIBrix values") ----
W=$(obj "$E2E_DIR/seed.yaml" Deployment llmgw-worker)
wargs=$(jq -r '.spec.template.spec.containers[0].args | join(" ")' <<<"$W")
for f in --max-body-bytes=4194304 --conn-limit=1024 --max-host-conns=1024 --max-parallel-requests=1024 \
    --max-pending-requests=1024 --max-parallel-retries=1024 --upstream-timeout=120s --connect-timeout=6s; do
    expect_match "seed → worker flag $f" "$wargs" "(^| )$f( |$)"
done
expect_eq "gatewayPlugin.replicaCount / envoyProxy.replicas → worker replicas" "$(jq .spec.replicas <<<"$W")" 3
expect_eq "gatewayPlugin.container.resources → worker resources" \
    "$(jq -c '.spec.template.spec.containers[0].resources' <<<"$W")" \
    '{"limits":{"cpu":"16","memory":"32Gi"},"requests":{"cpu":"16","memory":"32Gi"}}'
wenv() { jq -r --arg n "$2" '.spec.template.spec.containers[0].env[] | select(.name==$n) | .value' <<<"$1"; }
expect_eq "gatewayPlugin.container.envs → AIBRIX_STATESYNC_ENABLED" "$(wenv "$W" AIBRIX_STATESYNC_ENABLED)" true
expect_eq "dependencies.redis.host empty → the chart's Redis" "$(wenv "$W" REDIS_HOST)" llmgw-redis-master
expect_eq "dependencies.redis.port → REDIS_PORT" "$(wenv "$W" REDIS_PORT)" 6379
R=$(obj "$E2E_DIR/seed.yaml" Deployment llmgw-redis-master)
expect_eq "metadata.redis.replicas" "$(jq .spec.replicas <<<"$R")" 1
expect_eq "metadata.redis.container.resources" "$(jq -c '.spec.template.spec.containers[0].resources' <<<"$R")" \
    '{"limits":{"cpu":"2","memory":"4Gi"},"requests":{"cpu":"1","memory":"2Gi"}}'
expect_eq "worker rollouts never go below the ready count" \
    "$(jq -c '.spec.strategy.rollingUpdate' <<<"$W")" '{"maxSurge":1,"maxUnavailable":0}'
expect_eq "workers avoid GPU nodes" \
    "$(jq -r '.spec.template.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0] | .key + " " + .operator' <<<"$W")" \
    "nvidia.com/gpu.present NotIn"
expect_eq "worker pods carry the prometheus.io annotations" \
    "$(jq -r '.spec.template.metadata.annotations | ."prometheus.io/scrape" + " " + ."prometheus.io/port" + " " + ."prometheus.io/path"' <<<"$W")" \
    "true 9090 /metrics"
expect_eq "... the process's own admin port, which the probes use too" \
    "$(jq -r '.spec.template.spec.containers[0] | (.args[] | select(startswith("--admin-port"))) + " " + .readinessProbe.httpGet.port + " " + .livenessProbe.httpGet.port' <<<"$W")" \
    "--admin-port=9090 admin-0 admin-0"
C=$(obj "$E2E_DIR/seed.yaml" Deployment llmgw-controller)
expect_eq "controller pods too" "$(jq -r '.spec.template.metadata.annotations."prometheus.io/port"' <<<"$C")" 8091
expect_match "the controller elects a leader" "$(jq -r '.spec.template.spec.containers[0].args | join(" ")' <<<"$C")" \
    '--leader-elect .*--leader-elect-lease-name=llmgw-controller'

# ---- the wide values ----
expect_eq "an external Redis host means no bundled Redis" \
    "$(obj "$E2E_DIR/wide-render.yaml" Deployment llmgw-redis-master)" null
B=$(obj "$E2E_DIR/wide-render.yaml" Deployment llmgw-batch)
WW=$(obj "$E2E_DIR/wide-render.yaml" Deployment llmgw-worker)
expect_eq "... and REDIS_HOST/REDIS_PORT name it" "$(wenv "$B" REDIS_HOST):$(wenv "$B" REDIS_PORT)" redis.example.internal:6380
expect_eq "... the password comes from a Secret" \
    "$(jq -r '.spec.template.spec.containers[0].env[] | select(.name=="REDIS_PASSWORD") | .valueFrom.secretKeyRef.name' <<<"$B")" llmgw-redis
expect_eq "processesPerPod: one worker container each" "$(jq -r '[.spec.template.spec.containers[].name] | join(",")' <<<"$B")" \
    "worker-0,worker-1,worker-2,worker-3"
expect_eq "... each with its own admin port for probes and scrapes" \
    "$(jq -r '[.spec.template.spec.containers[] | (.args[] | select(startswith("--admin-port"))) + "@" + .readinessProbe.httpGet.port] | join(",")' <<<"$B")" \
    "--admin-port=9090@admin-0,--admin-port=9091@admin-1,--admin-port=9092@admin-2,--admin-port=9093@admin-3"
expect_eq "... and the pool's Service lists them (ServiceMonitor targets)" \
    "$(obj "$E2E_DIR/wide-render.yaml" Service llmgw-batch | jq -r '[.spec.ports[].name] | join(",")')" "http,admin-0,admin-1,admin-2,admin-3"
expect_eq "migrateAcceptQueue: the pool's pods set net.ipv4.tcp_migrate_req=1, the others nothing" \
    "$(jq -c '.spec.template.spec.securityContext.sysctls' <<<"$B") $(jq -c '.spec.template.spec.securityContext' <<<"$WW")" \
    '[{"name":"net.ipv4.tcp_migrate_req","value":"1"}] null'
expect_eq "a pool's envs win over gatewayPlugin's" "$(wenv "$B" ROUTING_ALGORITHM) $(wenv "$WW" ROUTING_ALGORITHM)" "throughput least-request"
bargs=$(jq -r '.spec.template.spec.containers[0].args | join(" ")' <<<"$B")
expect_match "per-pod limits are divided by the processes (1000 / 4)" "$bargs" '--conn-limit=250( |$)'
expect_match "the tighter of maxParallelRequests and maxRequests, per process (50 / 4)" "$bargs" '--max-parallel-requests=13( |$)'
expect_match "... maxConnections (64 / 4)" "$bargs" '--max-host-conns=16( |$)'
expect_match "... maxPendingRequests (9 / 4, rounded up)" "$bargs" '--max-pending-requests=3( |$)'
C=$(obj "$E2E_DIR/wide-render.yaml" Deployment llmgw-controller)
cargs=$(jq -r '.spec.template.spec.containers[0].args | join(" ")' <<<"$C")
expect_match "controller.traffic: --route-policy on the controller" "$cargs" '--route-policy=weight( |$)'
expect_eq "... the route config (it may hold api keys) from the traffic Secret, not the args" \
    "$(jq -r '.spec.template.spec.containers[0].env[] | select(.name=="LLMGW_ROUTE_CONFIG") | .valueFrom.secretKeyRef | .name + "/" + .key' <<<"$C")" \
    llmgw-traffic/route-config
TS=$(obj "$E2E_DIR/wide-render.yaml" Secret llmgw-traffic)
route_json=$(jq -r '.data["route-config"]' <<<"$TS" | base64 -d)
expect_eq "... holding the values' entries as --route-config JSON" "$(jq -c '.[1]' <<<"$route_json")" \
    '{"api_key":"sk-wide","base_url":"https://api.example.com","fallback":true,"weight":30}'
LLMGW_ROUTE_CONFIG=$route_json "$E2E_BIN_CTL" --route-policy weight \
    --llm-backend-endpoints 127.0.0.1:1 --check-config >"$E2E_DIR/check-route.out" 2>&1
expect_eq "... which the controller accepts (--check-config)" "$?" 0
expect_match "controller.mirror: the file at seed 004's path, re-read" "$cargs" \
    '--mirror-config-path=/mnt/mirror.json --mirror-reload-interval=10s'
expect_eq "... mounted from the traffic Secret (a volume, so edits reach the file)" \
    "$(jq -r '(.spec.template.spec.containers[0].volumeMounts[] | select(.name=="mirror") | .mountPath) + " " + (.spec.template.spec.volumes[] | select(.name=="mirror") | .secret.secretName)' <<<"$C")" \
    "/mnt llmgw-traffic"
expect_eq "... holding the mirror JSON" "$(jq -r '.data["mirror.json"]' <<<"$TS" | base64 -d | jq -c .)" \
    '{"Enable":true,"Ratio":25,"Target":"http://mirror.example:8000","Timeout":2000}'
expect_match "a route policy without entries is refused" \
    "$(render --set controller.traffic.routePolicy=weight 2>&1)" 'routeConfig is needed'
nored=$(render --set metadata.redis.enabled=false)
expect_eq "no Redis at all: no REDIS_HOST, and --redis-host= (the worker's default is localhost)" \
    "$(grep -c 'name: REDIS_HOST' <<<"$nored") $(grep -c -- '- --redis-host=$' <<<"$nored")" "0 1"
expect_eq "a pool's own replicas" "$(jq .spec.replicas <<<"$B")" 4
expect_eq "with an HPA the Deployment leaves replicas to it" "$(jq .spec.replicas <<<"$WW")" null
expect_eq "the HPA scales the pool" \
    "$(obj "$E2E_DIR/wide-render.yaml" HorizontalPodAutoscaler llmgw-worker | jq -r '.spec.scaleTargetRef.name + " " + (.spec.maxReplicas|tostring)')" "llmgw-worker 6"
expect_eq "a pool can drop its PDB" "$(obj "$E2E_DIR/wide-render.yaml" PodDisruptionBudget llmgw-batch)" null
expect_eq "the controller's ServiceMonitor carries the operator's label" \
    "$(obj "$E2E_DIR/wide-render.yaml" ServiceMonitor llmgw-controller | jq -r '.metadata.labels.release + " " + .spec.endpoints[0].port')" "prometheus http"
expect_eq "the workers' ServiceMonitor scrapes every process's admin port (up to 4 per pod)" \
    "$(obj "$E2E_DIR/wide-render.yaml" ServiceMonitor llmgw-worker | jq -r '[.spec.endpoints[].port] | join(",")')" "admin-0,admin-1,admin-2,admin-3"
expect_true "the dashboard ConfigMap holds valid JSON" \
    bash -c "$(declare -f obj); obj '$E2E_DIR/wide-render.yaml' ConfigMap llmgw-dashboard | jq -e '.data[\"llmgw.json\"] | fromjson | .panels | length > 5' >/dev/null"
expect_match "the default render has what manifests/ needs" "$(kinds "$E2E_DIR/default.yaml")" \
    'Deployment/llmgw-controller Deployment/llmgw-redis-master Deployment/llmgw-worker Gateway/llmgw GatewayClass/llmgw Namespace/llmgw-system PodDisruptionBudget/llmgw-worker Role/llmgw-controller RoleBinding/llmgw-controller Secret/llmgw-users Service/llmgw-controller Service/llmgw-redis-master Service/llmgw-worker ServiceAccount/llmgw-controller'

# ---- every render applies to the API double ----
start_kubeapi api --bookmark-interval 0.5
for r in default wide-render seed; do
    out=$(kc apply --validate=false -f "$E2E_DIR/$r.yaml" 2>&1)
    expect_eq "kubectl apply ($r) succeeds" "$?" 0
    expect_eq "... and nothing is refused" "$(grep -ci error <<<"$out")" 0
done
expect_eq "the HPA and ServiceMonitor are stored" \
    "$(kc get hpa,servicemonitor -n llmgw-system -o name | sort | tr '\n' ' ')" \
    "horizontalpodautoscaler.autoscaling/llmgw-worker servicemonitor.monitoring.coreos.com/llmgw-controller servicemonitor.monitoring.coreos.com/llmgw-worker "
expect_eq "the seed apply left the worker at 3 replicas" \
    "$(kc get deploy llmgw-worker -n llmgw-system -o jsonpath='{.spec.replicas}')" 3
kc apply --validate=false -f "$E2E_SRC/manifests/60-example-model.yaml" >/dev/null
expect_eq "the example model (seed 002) applies" "$?" 0

# ---- the controller and a worker as the applied Deployments run them ----
mapfile -t cargs < <(kc get deploy llmgw-controller -n llmgw-system -o json | jq -r '.spec.template.spec.containers[0].args[]' |
    grep -vE '^--((pub|rep|pull)-listen|http-host|http-port)=')
start_controller ctl "${cargs[@]}" --scrape-interval 0 --leader-elect-identity ctl-0
within_ms "the controller leads and is ready" 5000 is_eq 200 curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$CTL_HTTP/readyz"
M1=$(free_port)
start_mock m1 "$M1" --model llama-3-8b --ttft-ms 2 --itl-ms 1
kc get deploy llama-3-8b -n models -o json | jq --arg port "$M1" '{apiVersion: "v1", kind: "Pod",
    metadata: (.spec.template.metadata + {name: "llama-3-8b-0", namespace: "models"}
        | .labels["model.aibrix.ai/port"] = $port | .labels["model.aibrix.ai/metric-port"] = $port),
    spec: (.spec.template.spec + {nodeName: "node-1"})}' | kc create --validate=false -f - >/dev/null
pod_ready llama-3-8b-0 true models
within_ms "the example model is in the snapshot" 2000 is_eq "batch,cache,default" \
    snap_jq '[.models[] | select(.name=="llama-3-8b") | .profiles | keys[]] | join(",")'

# The worker: the seed Deployment's arguments (controller addresses and the
# port replaced by loopback ones) and environment (REDIS_HOST -> a real
# redis-server, since AIBRIX_STATESYNC_ENABLED is on).
RP=$(free_port)
spawn redis redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning
mapfile -t dargs < <(kc get deploy llmgw-worker -n llmgw-system -o json | jq -r '.spec.template.spec.containers[0].args[]' |
    grep -vE '^--(port|admin-port|controller-(pub|rep|pull))=')
expect_eq "the seed worker arguments pass --check-config" "$("$E2E_BIN_DP" "${dargs[@]}" --check-config 2>&1)" "config ok"
eval "$(kc get deploy llmgw-worker -n llmgw-system -o json |
    jq -r '.spec.template.spec.containers[0].env[] | select(.value != null) | "export \(.name)=\(.value | @sh)"')"
expect_eq "the worker's env from the Deployment" "$AIBRIX_STATESYNC_ENABLED $REDIS_HOST" "true llmgw-redis-master"
export REDIS_HOST=127.0.0.1 REDIS_PORT=$RP
P=$(free_port); A=$(free_port)
start_worker w1 "$P" "${dargs[@]}" --admin-port "$A"
unset AIBRIX_STATESYNC_ENABLED REDIS_HOST REDIS_PORT
GW=http://127.0.0.1:$P
code=$(chat '{"model":"llama-3-8b","messages":[{"role":"user","content":"hi"}],"max_tokens":3}')
expect_eq "a request through the chart's worker is served" "$code" 200
expect_eq "... by the example model's pod" "$(hdr target-pod)" llama-3-8b-0
expect_eq "... with the profile's strategy (least-latency)" "$(hdr routing-strategy)" least-latency
ADMIN=http://127.0.0.1:$A
expect_eq "its admin port serves /readyz" "$(curl -s "$ADMIN/readyz")" ready
expect_eq "... and its own /metrics" "$(metric "$ADMIN" 'aibrix_gateway_requests_total{model="llama-3-8b",code="200"}')" 1
expect_eq "... and nothing else" "$(curl -s -o /dev/null -w '%{http_code}' "$ADMIN/v1/models")" 404
expect_true "the worker's prefix sync reaches Redis (AIBRIX_STATESYNC_ENABLED from the values)" \
    grep -q 'id=DP-PFX-SYNC-START' "$E2E_DIR/w1.log"
done_case
