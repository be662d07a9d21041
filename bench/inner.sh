#!/usr/bin/env bash
# Runs inside one hypervisor namespace: times N runs of `vmpath walk` and of the baseline, prints
# medians. Usage: inner.sh N VMPATH TARGET -- BASELINE-ARGS...
set -euo pipefail
n=$1 bin=$2 target=$3; shift 4
here=$(dirname "$0")
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
"$bin" walk "$target" >/dev/null || true   # warm the page cache
bash "$here/baseline-walk.sh" "$@" || true
v=() b=()
for ((i = 0; i < n; i++)); do
  t0=${EPOCHREALTIME/./}; "$bin" walk "$target" >/dev/null || true; t1=${EPOCHREALTIME/./}
  bash "$here/baseline-walk.sh" "$@"; t2=${EPOCHREALTIME/./}
  v+=($((t1 - t0))) b+=($((t2 - t1)))
done
vm=$(printf '%s\n' "${v[@]}" | median)
bm=$(printf '%s\n' "${b[@]}" | median)
awk -v v="$vm" -v b="$bm" -v t="$target" 'BEGIN {
  printf "%-16s vmpath median %7.1f ms   baseline median %7.1f ms   ratio %5.1fx\n", t, v/1000, b/1000, b/v }'
