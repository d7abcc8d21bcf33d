#!/usr/bin/env bash
# Users and API keys from a Kubernetes Secret (issues 3 and 6): the Secret's
# YAML document (the --config schema's `users:`) reaches the workers as key
# digests; a worker with --require-api-key accepts a key from it, refuses
# others, and refuses a key at once when the Secret drops it; the users'
# limits apply; no key appears in any log.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../kube_lib.sh"

start_kubeapi api --bookmark-interval 0.5
M1=$(free_port); W=$(free_port)
GW=http://127.0.0.1:$W
start_mock m1 "$M1"
secret() { # YAML: create or replace the users Secret
    kc create secret generic llmgw-users --from-file=config.yaml=/dev/stdin --dry-run=client -o yaml \
        <<<"$1" | kc apply --validate=false -f - >/dev/null || not_ok "apply the users Secret"
}
secret "users:
  - {name: kate, rpm: 2, apiKeys: [\"sha256:$(printf %s sk-kate | sha256sum | cut -d' ' -f1)\", sk-kate-2]}"
start_kube_controller ctl --kube-secret llmgw-users --scrape-interval 0
wait_log ctl 'id=CTL-KUBE-SYNCED' 10 || not_ok "controller syncs with the API server"
model_pod p1 mock-model "$M1"
pod_ready p1 true
start_worker w1 "$W" --require-api-key --access-log off
REQ='{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}'
routable() { [ "$(chat "$REQ" -H 'Authorization: Bearer sk-kate')" == 200 ]; }
eventually "a key from the Secret is accepted" 5 routable
expect_eq "the user's limits come along" "$(hdr x-ratelimit-limit-requests)" 2
codes=""
for _ in 1 2 3 4 5; do codes+="$(chat "$REQ" -H 'Authorization: Bearer sk-kate-2') "; done
expect_match "a plain key in the Secret is hashed and works too, until kate's rpm 2 is spent" \
    "$codes" '^200 .*429 '
expect_eq "with x-error-rpm-exceeded" "$(hdr x-error-rpm-exceeded)" true
expect_eq "a key not in the Secret is 401" "$(chat "$REQ" -H 'Authorization: Bearer sk-other')" 401
expect_eq "the snapshot carries digests, never keys" "$(ctl_snapshot | grep -c 'sk-kate')" 0
secret "users:
  - {name: kate, rpm: 2}"
revoked() { [ "$(chat "$REQ" -H 'Authorization: Bearer sk-kate')" == 401 ]; }
eventually "dropping the key from the Secret revokes it within a second" 1 revoked
expect_eq "no key in any log" "$(grep -lE 'sk-kate' "$E2E_DIR"/*.log | wc -l)" 0
done_case
