#!/usr/bin/env bash
# Captures the master's answers as test fixtures for the typed responses in
# keel-api (`api/tests/http_fixtures.rs`): starts a master and an agent from
# the built binaries on loopback, runs a finished task (keelctl run), makes
# reservations, weights and quota, subscribes a framework that launches a
# long task with labels, discovery, a container and a kill policy on a new
# persistent volume, and saves every read endpoint's JSON.
#
#   cargo build -p keel-master -p keel-agent -p keelctl --bins
#   api/testdata/http/capture.sh [target/debug]
#
# Needs curl, jq and python3. Writes into the directory of this script.
set -euo pipefail

out=$(cd "$(dirname "$0")" && pwd)
bin=${1:-target/debug}
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
m=127.0.0.1:$port
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

KEEL_LOG_STDERR=1 "$bin/keel-master" --ip 127.0.0.1 --port "$port" \
    --work-dir "$work/master" 2>"$work/master.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://$m/health" >/dev/null && break; sleep 0.1; done
KEEL_LOG_STDERR=1 "$bin/keel-agent" --master "$m" --ip 127.0.0.1 --port $((port + 1)) \
    --work-dir "$work/agent" --hostname fixture-agent \
    --resources 'cpus:4;mem:4096;disk(eng):1000;ports:[31000-32000]' \
    --attributes 'rack:r1;zone:a;level:10;keys:[1000-1500]' \
    --registration-backoff-factor 100ms 2>"$work/agent.log" &
pids+=($!)
for _ in $(seq 300); do
    [ "$(curl -sf "http://$m/api/keel/v1/agents" | jq '[.agents[] | select(.state == "active")] | length')" = 1 ] && break
    sleep 0.1
done
agent=$(curl -sf "http://$m/api/keel/v1/agents" | jq -r '.agents[0].id')

op() { curl -sf -H 'Content-Type: application/json' -d "$1" "http://$m/api/v1"; }

# A finished task and a completed framework.
"$bin/keelctl" --master "$m" run -- 'echo fixture' >/dev/null

# Registry state: a dynamic reservation, weights, quota.
op '{"type":"RESERVE_RESOURCES","reserve_resources":{"agent_id":{"value":"'"$agent"'"},"resources":[
    {"name":"cpus","type":"SCALAR","scalar":{"value":1},"reservations":[{"type":"DYNAMIC","role":"eng"}]}]}}'
op '{"type":"UPDATE_WEIGHTS","update_weights":{"weight_infos":[{"role":"eng","weight":2.5}]}}'
op '{"type":"UPDATE_QUOTA","update_quota":{"quota_configs":[{"role":"eng",
    "guarantees":{"cpus":{"value":1}},"limits":{"cpus":{"value":3},"mem":{"value":2048}}}]}}'

# A live framework in role eng with a running task on a new volume.
curl -sN -D "$work/sub.headers" -H 'Content-Type: application/json' -d '{"type":"SUBSCRIBE","subscribe":{"framework_info":{
    "user":"root","name":"fixture","role":"eng","principal":"fx","failover_timeout":60,
    "webui_url":"http://fixture:8080","hostname":"fixture-host","checkpoint":true,
    "capabilities":[{"type":"TASK_KILLING_STATE"}],"labels":{"labels":[{"key":"team","value":"core"}]}}}}' \
    "http://$m/api/v1/scheduler" >"$work/events" &
pids+=($!)
for _ in $(seq 100); do grep -q '"OFFERS"' "$work/events" 2>/dev/null && break; sleep 0.1; done
stream=$(tr -d '\r' <"$work/sub.headers" | awk -F': ' 'tolower($1) == "mesos-stream-id" {print $2}')
records() { python3 -c '
import sys
data = open(sys.argv[1], "rb").read()
while data:
    nl = data.index(b"\n"); n = int(data[:nl]); print(data[nl + 1:nl + 1 + n].decode()); data = data[nl + 1 + n:]
' "$work/events"; }
fw=$(records | jq -r 'select(.type == "SUBSCRIBED") | .subscribed.framework_id.value' | head -1)
offer=$(records | jq -c 'select(.type == "OFFERS") | .offers.offers[0]' | head -1)
offer_id=$(jq -c .id <<<"$offer")
call() {
    curl -sf -H 'Content-Type: application/json' -H "Mesos-Stream-Id: $stream" \
        -d "$(jq -c --arg fw "$fw" '. + {framework_id: {value: $fw}}' <<<"$1")" "http://$m/api/v1/scheduler"
}
volume='{"name":"disk","type":"SCALAR","scalar":{"value":300},"role":"eng",
    "disk":{"persistence":{"id":"fixture-data","principal":"fx"},"volume":{"container_path":"data","mode":"RW"}}}'
task='{"name":"long","task_id":{"value":"long"},"agent_id":'"$(jq -c .agent_id <<<"$offer")"',
    "resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.5},"role":"*","allocation_info":{"role":"eng"}},
                 {"name":"mem","type":"SCALAR","scalar":{"value":64},"role":"*","allocation_info":{"role":"eng"}},
                 '"$(jq -c '. + {allocation_info: {role: "eng"}}' <<<"$volume")"'],
    "command":{"value":"sleep 600"},
    "labels":{"labels":[{"key":"tier","value":"db"}]},
    "discovery":{"visibility":"FRAMEWORK","name":"long"},
    "container":{"type":"MESOS","hostname":"long"},
    "kill_policy":{"grace_period":{"nanoseconds":2000000000}}}'
call '{"type":"ACCEPT","accept":{"offer_ids":['"$offer_id"'],"operations":[
    {"type":"CREATE","create":{"volumes":['"$volume"']}},
    {"type":"LAUNCH","launch":{"task_infos":['"$task"']}}],"filters":{"refuse_seconds":0.5}}}'
for _ in $(seq 100); do
    records | jq -e 'select(.type == "UPDATE" and .update.status.state == "TASK_RUNNING")' >/dev/null && break
    sleep 0.1
done
# Acknowledge what came, and wait for the rest to be offered again.
records | jq -c 'select(.type == "UPDATE" and .update.status.uuid) | .update.status' | while read -r st; do
    call '{"type":"ACKNOWLEDGE","acknowledge":{"agent_id":'"$(jq -c .agent_id <<<"$st")"',"task_id":'"$(jq -c .task_id <<<"$st")"',"uuid":'"$(jq -c .uuid <<<"$st")"'}}'
done
sleep 2

for t in GET_HEALTH GET_FLAGS GET_VERSION GET_MASTER GET_AGENTS GET_STATE GET_FRAMEWORKS \
    GET_TASKS GET_ROLES GET_WEIGHTS GET_QUOTA; do
    op '{"type":"'$t'"}' | python3 -m json.tool --indent 2 >"$out/operator/$(tr 'A-Z' 'a-z' <<<"$t").json"
done
for p in state slaves frameworks tasks flags; do
    curl -sf "http://$m/master/$p" | python3 -m json.tool --indent 2 >"$out/legacy/$p.json"
done
curl -sf "http://$m/version" | python3 -m json.tool --indent 2 >"$out/legacy/version.json"
curl -sf "http://$m/api/keel/v1/agents" | python3 -m json.tool --indent 2 >"$out/keel/agents.json"
curl -sf "http://$m/api/keel/v1/agents/$agent" | python3 -m json.tool --indent 2 >"$out/keel/agent.json"
curl -sf "http://$m/api/keel/v1/agents/$agent/inventory" | python3 -m json.tool --indent 2 >"$out/keel/inventory.json"
curl -sf "http://$m/api/keel/v1/masters" | python3 -m json.tool --indent 2 >"$out/keel/masters.json"
curl -s "http://$m/api/keel/v1/agents/nope" | python3 -m json.tool --indent 2 >"$out/keel/error.json"
echo "fixtures written to $out"
