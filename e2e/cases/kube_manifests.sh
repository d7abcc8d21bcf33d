#!/usr/bin/env bash
# manifests/ applied with real kubectl to the API double, then the controller
# run with exactly its Deployment's arguments, in-cluster, as its
# ServiceAccount: the double authorizes every request against the RBAC
# objects just applied, so the whole job (watches, HTTPRoutes and status,
# Events, the Lease, the ConfigMap and Secret) must fit manifests/10-rbac.yaml,
# and requests outside it are refused (least privilege). The worker's
# arguments must pass --check-config.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../kube_lib.sh"

d=$E2E_DIR/pki
make_pki "$d"
SA_USER=system:serviceaccount:llmgw-system:llmgw-controller
start_kubeapi api --tls-cert "$d/srv.crt" --tls-key "$d/srv.key" --kubeconfig-ca "$d/ca.crt" \
    --token admin --token-user "sa-token=$SA_USER" --bookmark-interval 0.5
API_PORT=${KUBEAPI##*:}

out=$(kc apply --validate=false -f "$E2E_SRC/manifests/" 2>&1)
expect_eq "kubectl apply -f manifests/ succeeds" "$?" 0
for o in namespace/llmgw-system serviceaccount/llmgw-controller clusterrole.rbac.authorization.k8s.io/llmgw-controller \
    role.rbac.authorization.k8s.io/llmgw-controller configmap/llmgw-config secret/llmgw-users \
    deployment.apps/llmgw-controller service/llmgw-controller deployment.apps/llmgw-worker service/llmgw-worker \
    poddisruptionbudget.policy/llmgw-worker deployment.apps/llmgw-redis-master service/llmgw-redis-master \
    gateway.gateway.networking.k8s.io/llmgw deployment.apps/llama-3-8b service/llama-3-8b; do
    expect_match "created $o" "$out" "$o created"
done
# A PodDisruptionBudget is reported "configured" on every apply: its
# spec.selector has patch strategy "replace", so kubectl's three-way patch is
# never empty (as on a real cluster); it changes nothing (same
# resourceVersion). Everything else must be unchanged.
pdb_rv() { kc get pdb llmgw-worker -n llmgw-system -o jsonpath='{.metadata.resourceVersion}'; }
rv0=$(pdb_rv)
expect_eq "a second apply changes nothing" \
    "$(kc apply --validate=false -f "$E2E_SRC/manifests/" 2>&1 | grep -v -e unchanged -e '^poddisruptionbudget.policy/llmgw-worker configured$')" ""
expect_eq "... the PodDisruptionBudget's patch included" "$(pdb_rv)" "$rv0"

# ---- the controller as the manifest runs it ----
# Its listen addresses and admin port are replaced by free loopback ones.
mapfile -t args < <(kc get deploy llmgw-controller -n llmgw-system -o json | jq -r '.spec.template.spec.containers[0].args[]' |
    grep -vE '^--((pub|rep|pull)-listen|http-host|http-port)=')
expect_true "the controller Deployment has arguments" test "${#args[@]}" -gt 5
sa=$E2E_DIR/sa
mkdir -p "$sa"
cp "$d/ca.crt" "$sa/ca.crt"
printf 'llmgw-system' >"$sa/namespace"
printf 'sa-token' >"$sa/token"
kubeconfig=$KUBECONFIG
unset KUBECONFIG
export KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$API_PORT POD_NAME=llmgw-controller-7d9f-x2
expect_eq "the manifest's controller arguments pass --check-config" \
    "$("$E2E_BIN_CTL" "${args[@]}" --kube-service-account-dir "$sa" --check-config 2>&1)" "config ok"
start_controller ctl "${args[@]}" --kube-service-account-dir "$sa" --scrape-interval 0
unset KUBERNETES_SERVICE_HOST KUBERNETES_SERVICE_PORT POD_NAME
export KUBECONFIG=$kubeconfig
CTL=http://127.0.0.1:$CTL_HTTP
within_ms "it takes the Lease in llmgw-system" 3000 is_eq llmgw-controller-7d9f-x2 \
    bash -c "kubectl --cache-dir '$E2E_DIR/kcache' get lease llmgw-controller -n llmgw-system -o jsonpath='{.spec.holderIdentity}' | cut -d_ -f1"
within_ms "and becomes ready" 2000 is_eq 200 curl -s -o /dev/null -w '%{http_code}' "$CTL/readyz"
expect_eq "the ConfigMap's settings are in force" "$(snap_jq .settings.routingStrategy)" least-request
expect_true "the Secret was read" grep -q 'id=CTL-KUBE-DOC-LOAD kind=secret name=llmgw-users' "$E2E_DIR/ctl.log"

# ---- an example model pod, made from the Deployment's template ----
M1=$(free_port)
start_mock m1 "$M1" --ttft-ms 2 --itl-ms 1
kc get deploy llama-3-8b -n models -o json | jq --arg port "$M1" '{apiVersion: "v1", kind: "Pod",
    metadata: (.spec.template.metadata + {name: "llama-3-8b-0", namespace: "models"}
        | .labels["model.aibrix.ai/port"] = $port),
    spec: (.spec.template.spec + {nodeName: "node-1"})}' | kc create --validate=false -f - >/dev/null
pod_ready llama-3-8b-0 true models
within_ms "the model pod is discovered with the annotation's profiles" 1000 is_eq "batch,cache,default" \
    snap_jq '[.models[0].profiles | keys[]] | join(",")'
R="-n models httproute/llama-3-8b-router"
within_ms "the managed route exists and its status says ResolvedRefs=True" 3000 is_eq True \
    kc get $R -o jsonpath='{.status.parents[0].conditions[?(@.type=="ResolvedRefs")].status}'
expect_eq "the route points at the example Service" "$(kc get $R -o jsonpath='{.spec.rules[0].backendRefs[0].name}')" llama-3-8b
set_config llama-3-8b-0 '{"profiles":{}}' models
within_ms "a bad annotation still yields its Event under the ServiceAccount" 2000 is_eq Warning \
    kc get events -n models --field-selector involvedObject.name=llama-3-8b-0 -o jsonpath='{.items[0].type}'
forbidden=$(kube_requests | jq -r --arg u "$SA_USER" '[.[] | select(.user==$u and .code==403) | .method+" "+.path] | join("; ")')
expect_eq "nothing the controller did was refused by RBAC" "$forbidden" ""
expect_true "the controller's requests ran as its ServiceAccount" \
    test "$(kube_requests | jq --arg u "$SA_USER" '[.[] | select(.user==$u)] | length')" -gt 10

# ---- least privilege ----
as_sa() { curl -sk -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer sa-token' "$@"; }
expect_eq "the ServiceAccount may read its ConfigMap" "$(as_sa "$KUBEAPI/api/v1/namespaces/llmgw-system/configmaps/llmgw-config")" 200
expect_eq "... not other ConfigMaps" "$(as_sa -XPOST -H 'Content-Type: application/json' -d '{"metadata":{"name":"x"}}' "$KUBEAPI/api/v1/namespaces/llmgw-system/configmaps")" 403
expect_eq "... nor list Secrets cluster-wide" "$(as_sa "$KUBEAPI/api/v1/secrets")" 403
expect_eq "... nor read another Secret" "$(as_sa "$KUBEAPI/api/v1/namespaces/llmgw-system/secrets/other")" 403
expect_eq "... nor delete pods" "$(as_sa -XDELETE "$KUBEAPI/api/v1/namespaces/models/pods/llama-3-8b-0")" 403
expect_eq "... nor take another Lease" "$(as_sa "$KUBEAPI/apis/coordination.k8s.io/v1/namespaces/llmgw-system/leases/other")" 403
expect_eq "a refusal is a Forbidden Status naming the user" \
    "$(curl -sk -H 'Authorization: Bearer sa-token' "$KUBEAPI/api/v1/secrets" | jq -r '.reason + " " + (.message | test("system:serviceaccount:llmgw-system:llmgw-controller") | tostring)')" "Forbidden true"

# ---- the worker's arguments ----
mapfile -t wargs < <(kc get deploy llmgw-worker -n llmgw-system -o json | jq -r '.spec.template.spec.containers[0].args[]')
expect_eq "the manifest's worker arguments pass --check-config" "$("$E2E_BIN_DP" "${wargs[@]}" --check-config 2>&1)" "config ok"
done_case
