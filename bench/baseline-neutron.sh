#!/usr/bin/env bash
# Baseline for bench/neutron.sh: what an operator does by hand for the records a compute-node
# walk reads from Neutron — a Keystone token (unless TOKEN is given), then the port, its network,
# its subnets, the network's router interfaces, the router's L3 agents and the OVS agents, one
# curl after the other.
# Usage: baseline-neutron.sh KEYSTONE_URL NEUTRON_URL USER PASSWORD PORT_ID [TOKEN]
set -euo pipefail
ks=$1 nu=$2 user=$3 pw=$4 port=$5 tok=${6:-}
if [[ -z $tok ]]; then
  body=$(printf '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"%s","domain":{"id":"default"},"password":"%s"}}},"scope":{"project":{"name":"service","domain":{"id":"default"}}}}}' "$user" "$pw")
  tok=$(curl -sf -D - -o /dev/null -H 'Content-Type: application/json' -d "$body" "$ks/auth/tokens" |
    tr -d '\r' | awk -F': ' 'tolower($1) == "x-subject-token" {print $2}')
fi
get() { curl -sf --max-time 10 -H "X-Auth-Token: $tok" "$nu/v2.0/$1"; }
p=$(get "ports/$port")
net=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["port"]["network_id"])' <<<"$p")
get "networks/$net" >/dev/null
get "subnets?network_id=$net" >/dev/null
r=$(get "ports?network_id=$net&device_owner=network:ha_router_replicated_interface&device_owner=network:router_interface")
router=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["ports"][0]["device_id"])' <<<"$r")
get "routers/$router/l3-agents" >/dev/null
get "agents?agent_type=Open+vSwitch+agent" >/dev/null
