#!/usr/bin/env bash
# Benchmark: `vmpath walk` against a shell baseline doing the same checks with ip, /proc,
# iptables-save, nft, ss, birdc / vtysh (bench/baseline-walk.sh), on the built-in lab, in the
# same run. Prints medians and the ratio. Target: >= 10x faster than the baseline, < 50 ms a walk.
# Usage (root): bench/walk.sh [RUNS]   (uses $VMPATH_LAB_DIR if set, else starts a lab)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
lab/setup
cargo build --release --quiet
bin=$PWD/target/release/vmpath
if [[ -n ${VMPATH_LAB_DIR:-} ]]; then
  dir=$VMPATH_LAB_DIR
else
  dir=$(mktemp -d /tmp/vmpath-bench.XXXXXX); rmdir "$dir"
  trap 'lab/vmlab down --dir "$dir" >/dev/null 2>&1 || true' EXIT
  lab/vmlab up --dir "$dir" >/dev/null
fi
info=$(lab/vmlab info --dir "$dir")
get() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" <<<"$info"; }
echo "vmpath walk benchmark: $runs runs each, medians (nproc=$(nproc))"
for vm in vm1 vm3; do
  hv=$(get "d['vms']['$vm']['hv']")
  tap=$(get "d['vms']['$vm']['tap']"); ip4=$(get "d['vms']['$vm']['ipv4']"); ip6=$(get "d['vms']['$vm']['ipv6']")
  hosts=$(get "d['hypervisors']['$hv']['dnsmasq_hostsdir']")
  peers=$(get "' '.join(d['hypervisors']['$hv']['peers'])")
  if [[ $(get "d['hypervisors']['$hv']['bgp']") == bird ]]; then
    args=(bird "$(get "d['hypervisors']['$hv']['bird_socket']")")
  else
    args=(frr "$(get "d['hypervisors']['$hv']['frr_pathspace']")")
  fi
  # shellcheck disable=SC2086
  lab/vmlab exec --dir "$dir" --ns "$hv" bash "$PWD/bench/inner.sh" "$runs" "$bin" "$ip4" -- \
    "${args[@]}" "$tap" "$ip4" "$ip6" "$hosts" $peers
done
