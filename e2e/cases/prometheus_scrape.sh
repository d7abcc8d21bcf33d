#!/usr/bin/env bash
# Both tiers scraped by a real Prometheus server (Debian's package) on
# loopback: the controller and two workers as static targets, a 1 s scrape
# interval. The workers share one client port (SO_REUSEPORT, as the
# processes of one pod do) and are scraped each on its own --admin-port.
# After a known number of requests through the shared port, PromQL
# over the scraped data gives the exact per-model request count
# (aibrix_gateway_requests_total, seed 002's name), the RPS-limit
# rejections, and the controller's snapshot generation, which every worker
# holds too. `promtool check metrics` passes on every /metrics page.
source "$(dirname "$0")/../lib.sh"
command -v prometheus >/dev/null && command -v promtool >/dev/null ||
    { echo "prometheus_scrape: prometheus and promtool are required (scripts/setup)"; exit 1; }

M1=$(free_port); M2=$(free_port); W=$(free_port); A1=$(free_port); A2=$(free_port); PP=$(free_port)
start_mock m1 "$M1" --model mock-model --model limited --ttft-ms 2 --itl-ms 1
start_mock m2 "$M2" --model mock-model --model limited --ttft-ms 2 --itl-ms 1
cat >"$E2E_DIR/gw.yaml" <<YAML
models:
  - name: mock-model
    endpoints:
      - {address: 127.0.0.1, port: $M1, name: mock-a}
      - {address: 127.0.0.1, port: $M2, name: mock-b}
  - name: limited
    config:
      profiles:
        default: {routingStrategy: random, requestsPerSecond: 1}
    endpoints:
      - {address: 127.0.0.1, port: $M1, name: lim-a}
YAML
start_controller ctl --config "$E2E_DIR/gw.yaml" --scrape-interval 0
start_worker w1 "$W" --admin-port "$A1"
start_worker w2 "$W" --admin-port "$A2"

cat >"$E2E_DIR/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: llmgw-controller
    static_configs: [{targets: ["127.0.0.1:$CTL_HTTP"]}]
  - job_name: llmgw-worker
    static_configs: [{targets: ["127.0.0.1:$A1", "127.0.0.1:$A2"]}]
YAML
expect_match "promtool accepts the scrape config" "$(promtool check config "$E2E_DIR/prometheus.yml" 2>&1)" 'SUCCESS'
spawn prom prometheus --config.file="$E2E_DIR/prometheus.yml" --storage.tsdb.path="$E2E_DIR/tsdb" \
    --web.listen-address="127.0.0.1:$PP" --log.level=warn
PROM=http://127.0.0.1:$PP
wait_http "$PROM/-/ready" 200 30 || not_ok "prometheus becomes ready"

# promql QUERY: the single value of an instant query ("none" when empty).
promql() {
    curl -s --max-time 5 "$PROM/api/v1/query" --data-urlencode "query=$1" |
        jq -r 'if .status != "success" then "error: " + (.error // "?" | tostring) elif (.data.result | length) == 0 then "none" else .data.result[0].value[1] end'
}
# settles DESC WANT QUERY: passes once QUERY's value is WANT (15 s of scrapes).
settles() {
    local d=$1 want=$2 q=$3 got
    for ((i = 0; i < 75; i++)); do
        got=$(promql "$q")
        [ "$got" == "$want" ] && { ok "$d"; return 0; }
        sleep 0.2
    done
    not_ok "$d" "query '$q' gives '$got', want '$want'"
}

settles "all three targets are up" 3 'sum(up)'
ask() {
    GW=http://127.0.0.1:$1
    chat "{\"model\":\"$2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2}"
}
codes=""
for i in 1 2 3 4 5 6 7 8; do codes+="$(ask "$W" mock-model) "; done
expect_eq "eight requests served on the shared port" "$codes" "200 200 200 200 200 200 200 200 "
settles "aibrix_gateway_requests_total{model} sums both workers" 8 \
    'sum(aibrix_gateway_requests_total{model="mock-model",code="200"})'
a1=$(metric "http://127.0.0.1:$A1" 'aibrix_gateway_requests_total{model="mock-model",code="200"}')
a2=$(metric "http://127.0.0.1:$A2" 'aibrix_gateway_requests_total{model="mock-model",code="200"}')
expect_eq "each admin port reports its own process's share ($a1 + $a2)" "$(( ${a1/absent/0} + ${a2/absent/0} ))" 8
settles "... and Prometheus has the same per instance" "${a1/absent/none}" \
    "aibrix_gateway_requests_total{model=\"mock-model\",code=\"200\",instance=\"127.0.0.1:$A1\"}"
settles "llmgw_worker_requests_total counts the same" 8 'sum(llmgw_worker_requests_total{model="mock-model"})'
settles "routing latency observed for each request" 8 \
    'sum(aibrix_gateway_routing_latency_seconds_count{model="mock-model"})'

# RPS-limit rejections (seed 002): requestsPerSecond 1, five at once.
rl=""
for i in 1 2 3 4 5; do rl+="$(ask "$W" limited) "; done
expect_match "the model's RPS cap answers 429 within the second" "$rl" '429'
n429=$(grep -o 429 <<<"$rl" | wc -l)
settles "aibrix_gateway_model_rps_rejections_total{model} counts them" "$n429" \
    'sum(aibrix_gateway_model_rps_rejections_total{model="limited"})'
settles "... and the 429s are in aibrix_gateway_requests_total" "$n429" \
    'sum(aibrix_gateway_requests_total{model="limited",code="429"})'

# The controller's snapshot generation, as scraped, is the one it publishes
# and the one both workers hold.
gen=$(metric "http://127.0.0.1:$CTL_HTTP" llmgw_controller_snapshot_generation)
expect_true "the controller has published a generation" test "$gen" != absent -a "$gen" != 0
settles "Prometheus has the controller's snapshot generation" "$gen" 'llmgw_controller_snapshot_generation'
settles "both workers hold that generation" "2" "count(llmgw_worker_snapshot_generation == $gen)"
settles "the controller's endpoint gauge" 3 'llmgw_controller_endpoints{state="ready"}'

# The chart's Grafana dashboard: every panel query is valid PromQL against
# this server (Grafana's $__rate_interval as 1m), and the request-rate panel
# has data.
bad=""
while IFS= read -r q; do
    st=$(curl -s "$PROM/api/v1/query" --data-urlencode "query=${q//\$__rate_interval/1m}" | jq -r .status)
    [ "$st" == success ] || bad+="$q; "
done < <(jq -r '.panels[].targets[].expr' "$E2E_SRC/charts/llmgw/dashboards/llmgw.json")
expect_eq "every dashboard query is valid PromQL" "$bad" ""
# (rate() needs two scrapes of a series: poll.)
rate_q=$(jq -r '.panels[0].targets[0].expr' "$E2E_SRC/charts/llmgw/dashboards/llmgw.json" | sed 's/\$__rate_interval/1m/')
panel_models() { curl -s "$PROM/api/v1/query" --data-urlencode "query=$rate_q" | jq -r '[.data.result[].metric.model] | sort | join(",")'; }
for ((i = 0; i < 75; i++)); do [ "$(panel_models)" == "limited,mock-model" ] && break; sleep 0.2; done
expect_eq "the dashboard's request-rate panel has a series per model" "$(panel_models)" "limited,mock-model"

# Every exposition is valid Prometheus text, lint included.
for t in "ctl:$CTL_HTTP" "w1:$A1" "w2:$A2"; do
    out=$(curl -s "http://127.0.0.1:${t#*:}/metrics" | promtool check metrics 2>&1)
    expect_eq "promtool check metrics: ${t%%:*} (exit $?)" "$out" ""
done
# No request ids or free text in labels: every label value of the workers'
# series is bounded (models, codes, reasons, strategies, endpoints).
labels=$(curl -s "$PROM/api/v1/labels" | jq -r '.data | join(" ")')
expect_eq "no per-request labels" "$(grep -owE 'request_id|req_id|prompt|user|message|path' <<<"$labels")" ""
series=$(curl -s "$PROM/api/v1/query" --data-urlencode 'query=count({job=~"llmgw-.*"})' | jq -r '.data.result[0].value[1]')
expect_true "a bounded number of series after 13 requests ($series)" test "$series" -lt 2000
done_case
