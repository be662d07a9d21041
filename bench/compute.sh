#!/usr/bin/env bash
# Benchmark: `vmpath walk` on an Open vSwitch compute node (tests/compute.sh's node: real
# ovsdb-server and ovs-vswitchd, a Neutron agent's flows, in a private network, mount and PID
# namespace) against bench/baseline-compute.sh, which does the same by hand (ovs-vsctl, ovs-ofctl
# dump-flows, ovs-appctl ofproto/trace, ip, /sys), in the same run. Prints medians and the ratio.
# Target: >= 10x faster than the baseline, < 50 ms a walk.
# Usage (root): bench/compute.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
cargo build --release --quiet
bin=$PWD/target/release/vmpath
inner=$(mktemp /tmp/vmpath-bench-compute.XXXXXX)
trap 'rm -f "$inner"' EXIT
cat >"$inner" <<'INNER'
set -euo pipefail
n=$1 bin=$2 base=$3
port=c6677132-b418-4ed3-9d5f-df0ef7b0f22f tap=tapc6677132-b4 mac=fa:16:3e:63:ad:00 ip=198.18.0.197
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
"$bin" walk "$port" >/dev/null || true
bash "$base" "$port" "$tap" "$mac" "$ip"
v=() b=()
for ((i = 0; i < n; i++)); do
  t0=${EPOCHREALTIME/./}; "$bin" walk "$port" >/dev/null || true; t1=${EPOCHREALTIME/./}
  bash "$base" "$port" "$tap" "$mac" "$ip"; t2=${EPOCHREALTIME/./}
  v+=($((t1 - t0))) b+=($((t2 - t1)))
done
vm=$(printf '%s\n' "${v[@]}" | median)
bm=$(printf '%s\n' "${b[@]}" | median)
checks=$("$bin" walk "$port" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["checks"]))')
awk -v v="$vm" -v b="$bm" -v n="$n" -v c="$checks" 'BEGIN {
  printf "compute walk (%d checks, %d runs): vmpath median %6.1f ms   baseline median %7.1f ms   ratio %5.1fx\n", c, n, v/1000, b/1000, b/v }'
INNER
echo "vmpath compute-node walk benchmark (nproc=$(nproc))"
OUTER_NETNS=$(stat -Lc %i /proc/self/ns/net) timeout 600 unshare --net --mount --pid --fork --kill-child \
  --mount-proc --propagation private bash tests/compute.sh "$bin" "$PWD/tests/fixtures/ovs" \
  --then bash "$inner" "$runs" "$bin" "$PWD/bench/baseline-compute.sh" 2>/dev/null | grep -v '^== \|^{'
