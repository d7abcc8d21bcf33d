#!/usr/bin/env bash
# How the controller reaches a real-looking API server: HTTPS with a CA it
# must verify, in-cluster configuration (KUBERNETES_SERVICE_HOST/PORT and a
# service-account directory, picked by discovery "auto"), a projected token
# that rotates (re-read when the file changes, and after a 401), and a
# kubeconfig with an inline client certificate. A server whose certificate
# does not verify is refused.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../kube_lib.sh"
d=$E2E_DIR/pki
make_pki "$d"

start_kubeapi api --tls-cert "$d/srv.crt" --tls-key "$d/srv.key" --kubeconfig-ca "$d/ca.crt" \
    --token admin-token --token sa-token-1 --client-ca "$d/ca.crt" --bookmark-interval 0.5
API_PORT=${KUBEAPI##*:}
M1=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
start_mock m1 "$M1" --ttft-ms 2 --itl-ms 1

# ---- in-cluster: service-account directory, auto discovery ----
sa=$E2E_DIR/sa
mkdir -p "$sa"
cp "$d/ca.crt" "$sa/ca.crt"
printf 'default' >"$sa/namespace"
printf 'sa-token-1\n' >"$sa/token"
# As in a pod: no kubeconfig, the service environment variables set.
kubeconfig=$KUBECONFIG
unset KUBECONFIG
export KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$API_PORT
start_controller ctl --kube-service-account-dir "$sa" --kube-backoff-initial 100ms --kube-backoff-max 500ms \
    --scrape-interval 0 --log-level info
unset KUBERNETES_SERVICE_HOST KUBERNETES_SERVICE_PORT
export KUBECONFIG=$kubeconfig
CTL=http://127.0.0.1:$CTL_HTTP
expect_true "in a pod, discovery auto picks kubernetes" grep -q 'id=CTL-START .*discovery=kubernetes' "$E2E_DIR/ctl.log"
expect_true "... with the in-cluster configuration over https" \
    grep -q "id=CTL-KUBE-CONFIG server=https://127.0.0.1:$API_PORT origin=\"in-cluster\" namespace=default" "$E2E_DIR/ctl.log"
start_worker w1 "$W"
model_pod p1 mock-model "$M1"
pod_ready p1 true
within_ms "pods are discovered through TLS with the service-account token" 1000 served_only "p1" mock-model
users() { kube_requests "$1" | jq -r '[.[] | select(.userAgent|test("llmgw")) | (.user // "none")+":"+(.code|tostring)] | unique | join(" ")'; }
expect_eq "every controller request was authenticated by token" "$(users 0 | tr ' ' '\n' | grep -v ':0$' | sort -u | tr '\n' ' ')" "token:200 "
expect_true "the token never reaches the log" bash -c "! grep -q sa-token-1 '$E2E_DIR/ctl.log'"

# ---- rotation: the file changes, the old token is revoked ----
mark=$(kube_requests | jq 'last.seq')
printf 'sa-token-2\n' >"$sa/.token.new" && mv "$sa/.token.new" "$sa/token"
curl -sk -XPOST "$KUBEAPI/_test/tokens" -d '{"tokens":["admin-token","sa-token-2"]}' >/dev/null
curl -sk -XPOST "$KUBEAPI/_test/close-watches" >/dev/null
pod_ready p1 false
within_ms "after rotation the controller keeps following pods" 2000 is_eq not_ready ep_state p1
expect_eq "no request was refused after the rotation: the new file was read first" \
    "$(kube_requests "$mark" | jq '[.[] | select((.userAgent|test("llmgw")) and .code==401)] | length')" 0
expect_true "the rotation is logged (without the token)" grep -q 'id=CTL-KUBE-TOKEN-ROTATED' "$E2E_DIR/ctl.log"

# ---- a revoked token: 401, then the new file is picked up ----
mark=$(kube_requests | jq 'last.seq')
curl -sk -XPOST "$KUBEAPI/_test/tokens" -d '{"tokens":["admin-token","sa-token-3"]}' >/dev/null
curl -sk -XPOST "$KUBEAPI/_test/close-watches" >/dev/null
wait_log ctl 'id=CTL-KUBE-UNAUTHORIZED' 5 || not_ok "a revoked token gets 401 and is noticed"
printf 'sa-token-3\n' >"$sa/.token.new" && mv "$sa/.token.new" "$sa/token"
pod_ready p1 true
within_ms "once the kubelet writes the new token, the controller recovers" 3000 served_only "p1" mock-model
expect_eq "401s were answered, then requests succeeded again" \
    "$(kube_requests "$mark" | jq -r '[.[] | select(.userAgent|test("llmgw")) | .code] | (map(select(.==401)) | length > 0) and (last == 200 or last == 0)')" true

# ---- kubeconfig with an inline client certificate ----
b64() { base64 -w0 <"$1"; }
cat >"$E2E_DIR/cert.kubeconfig" <<YAML
apiVersion: v1
kind: Config
current-context: certs
contexts:
- name: certs
  context: {cluster: tls, user: controller, namespace: default}
clusters:
- name: tls
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(b64 "$d/ca.crt")
users:
- name: controller
  user:
    client-certificate-data: $(b64 "$d/cli.crt")
    client-key-data: $(b64 "$d/cli.key")
YAML
new_controller ctl_cert --kubeconfig "$E2E_DIR/cert.kubeconfig" --scrape-interval 0
CERT_HTTP=$NEW_HTTP
within_ms "a client certificate from kubeconfig data authenticates" 3000 is_eq ready ep_state p1 "$CERT_HTTP"
expect_match "the double saw the certificate's CN" "$(kube_requests | jq -r '[.[] | select(.user != null) | .user] | unique | join(" ")')" "cert:llmgw-controller"

# ---- a server certificate that does not verify ----
cat >"$E2E_DIR/bad.kubeconfig" <<YAML
apiVersion: v1
kind: Config
current-context: x
contexts: [{name: x, context: {cluster: tls, user: u}}]
clusters: [{name: tls, cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$d/other.crt"}}]
users: [{name: u, user: {token: admin-token}}]
YAML
new_controller ctl_bad --kubeconfig "$E2E_DIR/bad.kubeconfig" \
    --scrape-interval 0 --kube-backoff-initial 100ms --kube-backoff-max 300ms
sleep 1.5
expect_eq "a controller that cannot verify the server never becomes ready" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NEW_HTTP/readyz")" 503
expect_true "... and says the transfer failed" grep -q 'id=CTL-KUBE-RETRY resource=pods op=list err=i/o error status=0' "$E2E_DIR/ctl_bad.log"
expect_eq "it sent nothing the server accepted" "$(metric "http://127.0.0.1:$NEW_HTTP" 'llmgw_controller_kube_requests_total{verb="GET",code="200"}')" absent
done_case
