#!/usr/bin/env bash
# Redis killed and restarted while traffic flows (issue 11, DESIGN §7): two
# workers with per-user limits on Redis and prefix-cache sync through it.
# No request fails; while Redis is down both workers say so (degraded gauge,
# sync disconnected) and decide limits on local windows; after the restart
# both are back on Redis. quotas.sh checks the limits' arithmetic; this
# counts requests across the outage. Prints a "TABLE |" line.
source "$(dirname "$0")/../lib.sh"
command -v redis-server >/dev/null || { echo "faults_redis: redis-server is required"; exit 1; }

R=$(free_port); M1=$(free_port); M2=$(free_port); W1=$(free_port); W2=$(free_port)
start_redis() { spawn redis redis-server --port "$R" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning; }
redis_up() { redis-cli -p "$R" ping 2>/dev/null | grep -q PONG; }
start_redis
eventually "redis starts" 5 redis_up
start_mock m1 "$M1" --ttft-ms 5 --itl-ms 10
start_mock m2 "$M2" --ttft-ms 5 --itl-ms 10
cat >"$E2E_DIR/gw.yaml" <<YAML
users:
  - {name: steady, rpm: 1000000, tpm: 1000000000}
models:
  - name: mock-model
    endpoints: ["127.0.0.1:$M1", "127.0.0.1:$M2"]
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml"
for w in w1:$W1 w2:$W2; do
    spawn "${w%%:*}" env REDIS_HOST=127.0.0.1 REDIS_PORT="$R" AIBRIX_STATESYNC_ENABLED=true \
        ROUTING_ALGORITHM=prefix-cache "$E2E_BIN_DP" --host 127.0.0.1 --port "${w#*:}" \
        --controller-pub "$CTL_PUB" --controller-rep "$CTL_REP" --controller-pull "$CTL_PULL" \
        --access-log off --redis-timeout 200ms
    wait_log "${w%%:*}" 'id=DP-SNAP-APPLY ' 10 || not_ok "worker ${w%%:*} gets a snapshot"
done
G1=http://127.0.0.1:$W1; G2=http://127.0.0.1:$W2
on_redis() { [ "$(metric "$1" llmgw_worker_ratelimit_degraded)" == 0 ] && [ "$(metric "$1" llmgw_worker_prefix_sync_connected)" == 1 ]; }
degraded() { [ "$(metric "$1" llmgw_worker_ratelimit_degraded)" == 1 ] && [ "$(metric "$1" llmgw_worker_prefix_sync_connected)" == 0 ]; }

GW=$G1
load_start redis --urls "$G1,$G2" --concurrency 4 --max-tokens 4 --header 'user: steady'
eventually "worker 1 counts on Redis and syncs its prefix index" 10 on_redis "$G1"
eventually "worker 2 likewise" 10 on_redis "$G2"
sleep 1
stop redis KILL
eventually "worker 1 says it is degraded (local windows, sync paused)" 10 degraded "$G1"
eventually "worker 2 likewise" 10 degraded "$G2"
local0=$(metric "$G1" llmgw_worker_ratelimit_local_decisions_total)
sleep 2
expect_match "limits are decided locally meanwhile" \
    "$(awk -v a="$(metric "$G1" llmgw_worker_ratelimit_local_decisions_total)" -v b="$local0" 'BEGIN{print (a > b) ? "yes" : "no"}')" yes
expect_true "the outage is logged" grep -qiE 'lvl=(warn|err).*redis' "$E2E_DIR/w1.log"
start_redis
eventually "redis restarts" 5 redis_up
eventually "worker 1 is back on Redis" 15 on_redis "$G1"
eventually "worker 2 is back on Redis" 15 on_redis "$G2"
sleep 1
load_stop redis
sent=$(load_res redis sent); failed=$(load_res redis failed)
e2e_table "Redis SIGKILLed and restarted (limits + prefix sync)" "$sent" "$failed" 0
expect_true "traffic flowed across the outage ($sent requests)" test "$sent" -gt 50
expect_eq "no request failed across Redis's death and restart" "$failed" 0
expect_match "Redis counts again after the restart" "$(redis-cli -p "$R" --scan --pattern 'llmgw:rl:u:steady:*' | head -1)" 'steady'
done_case
