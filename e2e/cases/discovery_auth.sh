#!/usr/bin/env bash
# Discovery stores with authentication (seed 004's --discovery-redis-username/
# -password and --discovery-etcd-username/-password): a Redis with an ACL
# user and the default user off, and a one-member etcd with auth enabled.
# A controller and a registrar with the right credentials discover the
# engine; a controller with a wrong password keeps running, reports the store
# down and serves nothing it was not told (it never exits, unlike Llumnix).
source "$(dirname "$0")/../lib.sh"

BIN_REG=$E2E_BUILD/register/llmgw-register
for t in redis-server redis-cli etcd etcdctl; do
    command -v $t >/dev/null || { echo "discovery_auth: $t is required"; exit 1; }
done
[ -x "$BIN_REG" ] || { echo "discovery_auth: missing $BIN_REG (build first)"; exit 1; }
export ETCDCTL_API=3

M=$(free_port)
start_mock m "$M" --ttft-ms 2 --itl-ms 1
REC=(--model mock-model --ip 127.0.0.1 --port "$M" --id engine-a --refresh-interval 500ms)

# ---- Redis: ACL user "disc", default user disabled.
R=$(free_port)
spawn redis redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning \
    --user default off --user disc on '>s3cret' '~*' '&*' '+@all'
for ((i = 0; i < 100; i++)); do redis-cli -p "$R" --user disc --pass s3cret --no-auth-warning ping >/dev/null 2>&1 && break; sleep 0.05; done
RSTORE=(--llm-backend-discovery redis --discovery-redis-host 127.0.0.1 --discovery-redis-port "$R"
        --discovery-redis-refresh-interval-ms 200)
spawn reg-redis "$BIN_REG" "${RSTORE[@]}" --discovery-redis-username disc \
    --discovery-redis-password s3cret "${REC[@]}"
start_controller ctl-redis "${RSTORE[@]}" --discovery-redis-username disc \
    --discovery-redis-password s3cret
has_engine() { curl -s "http://127.0.0.1:$1/debug/snapshot" | jq -e 'any(.endpoints[]; .pod == "engine-a" and .ready)' >/dev/null; }
eventually "redis: ACL user and password let the registrar write and the controller read" 10 has_engine "$CTL_HTTP"
RCTL=$CTL_HTTP

# The same Redis with a wrong password: the controller starts, stays up and
# says the store is down.
unset CTL_PUB CTL_REP CTL_PULL CTL_HTTP
start_controller ctl-redis-bad "${RSTORE[@]}" --discovery-redis-username disc \
    --discovery-redis-password wrong
down() { [ "$(metric "http://127.0.0.1:$1" "llmgw_controller_discovery_store_up{source=\"$2\"}")" == 0 ]; }
eventually "redis: a wrong password is a store that is down, not an exit" 10 down "$CTL_HTTP" redis
expect_true "redis: the refusal is logged" wait_log ctl-redis-bad 'id=CTL-DISCOVERY-STALE source=redis' 5
expect_eq "redis: the password never reaches the log" \
    "$(cat "$E2E_DIR"/ctl-redis*.log "$E2E_DIR"/reg-redis.log | grep -c 's3cret')" 0
stop ctl-redis-bad
expect_true "redis: the good controller still has the engine" has_engine "$RCTL"

# ---- etcd: one member with auth enabled (user root).
EC=$(free_port); EPP=$(free_port)
spawn etcd etcd --name a --data-dir "$E2E_DIR/etcd.data" \
    --listen-client-urls "http://127.0.0.1:$EC" --advertise-client-urls "http://127.0.0.1:$EC" \
    --listen-peer-urls "http://127.0.0.1:$EPP" --initial-advertise-peer-urls "http://127.0.0.1:$EPP" \
    --initial-cluster "a=http://127.0.0.1:$EPP" --log-level error
E2E_EXPECT_RC[etcd]=143 # etcd re-raises SIGTERM
ectl() { etcdctl --endpoints "127.0.0.1:$EC" --command-timeout=3s "$@"; }
etcd_up() { ectl endpoint health >/dev/null 2>&1; }
eventually "etcd starts" 20 etcd_up
ectl user add root:rootpw >/dev/null && ectl auth enable >/dev/null
expect_true "etcd: auth is on (an anonymous read is refused)" bash -c "! etcdctl --endpoints 127.0.0.1:$EC get x >/dev/null 2>&1"
ESTORE=(--llm-backend-discovery etcd --discovery-etcd-endpoints "127.0.0.1:$EC"
        --discovery-etcd-lease-ttl 10 --discovery-etcd-dial-timeout 1)
spawn reg-etcd "$BIN_REG" "${ESTORE[@]}" --discovery-etcd-username root \
    --discovery-etcd-password rootpw "${REC[@]}" --id engine-a
unset CTL_PUB CTL_REP CTL_PULL CTL_HTTP
start_controller ctl-etcd "${ESTORE[@]}" --discovery-etcd-username root --discovery-etcd-password rootpw
eventually "etcd: the registrar and the controller authenticate" 15 has_engine "$CTL_HTTP"
expect_true "etcd: the record is under its lease" \
    bash -c "etcdctl --endpoints 127.0.0.1:$EC --user root:rootpw get llumnix/discovery/engine-a -w json | jq -e '.kvs[0].lease > 0' >/dev/null"
unset CTL_PUB CTL_REP CTL_PULL CTL_HTTP
start_controller ctl-etcd-bad "${ESTORE[@]}" --discovery-etcd-username root --discovery-etcd-password nope
eventually "etcd: a wrong password is a store that is down, not an exit" 10 down "$CTL_HTTP" etcd
expect_eq "etcd: the password never reaches the log" \
    "$(cat "$E2E_DIR"/ctl-etcd*.log "$E2E_DIR"/reg-etcd.log | grep -c 'rootpw')" 0
# Stop the registrars while their stores are up, so they say goodbye.
stop reg-etcd
stop reg-redis
done_case
