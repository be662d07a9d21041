#!/usr/bin/env bash
# Benchmark: `vmpath walk --source neutron` on the real-Neutron lab's compute node hv1 (Keystone
# 30 and Neutron 29 on ctl, reached over the lab's management network), in one run:
#   - the walk with the host's records only (--source host): what Neutron adds is the difference;
#   - the walk with a warm token (cached) and with a cold one (VMPATH_TOKEN_CACHE=off), with the
#     Keystone and Neutron calls each makes (from its JSON);
#   - bench/baseline-neutron.sh: the same records by hand with curl, one call after another.
# Targets: warm <= 100 ms, cold <= 1 s; the calls per walk printed.
# Usage (root): bench/neutron.sh [RUNS]   (VMPATH_NEUTRON_LAB_DIR=DIR: use a running nlab)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
cargo build --release --quiet
bin=$PWD/target/release/vmpath
dir=${VMPATH_NEUTRON_LAB_DIR:-}
if [[ -z $dir ]]; then
  dir=$(mktemp -d /tmp/vmpath-bench-nlab.XXXXXX)
  rmdir "$dir"
  trap 'lab/neutron/nlab down --dir "$dir" >/dev/null 2>&1 || true' EXIT
  lab/neutron/nlab up --dir "$dir" --ttl 1800 2>/dev/null
  sleep 30 # the agents' first full sync settles
fi
info() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}))' "$dir/info.json" "$1"; }
port=$(info 'd["vm"]["port_id"]') ks=$(info 'd["keystone"]["url"]') pw=$(info 'd["keystone"]["password"]')
nu=$(info 'd["api"]["public_url"]')
os=$dir/bench-os xdg=$dir/bench-xdg
mkdir -p "$os" && rm -rf "$xdg" && mkdir -m 700 "$xdg"
printf 'clouds:\n  nlab:\n    auth:\n      auth_url: %s\n      username: vmpath\n      password: %s\n      project_name: service\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n' \
  "$ks" "$pw" >"$os/clouds.yaml"
chmod 600 "$os/clouds.yaml"
on() { lab/neutron/nlab exec --dir "$dir" hv1 env OS_CLIENT_CONFIG_FILE="$os/clouds.yaml" OS_CLOUD=nlab XDG_RUNTIME_DIR="$xdg" "$@"; }
tok=$(lab/neutron/nlab exec --dir "$dir" ctl env NLAB_KEYSTONE=http://127.0.0.1:5000/v3 \
  NLAB_ADMIN_PW="$(info 'd["keystone"]["admin_password"]')" NLAB_VMPATH_PW="$pw" \
  /usr/bin/python3 "$PWD/lab/neutron/py/api.py" x vmpath-token)
# The runs, timed inside hv1 (one nsenter for all of them).
inner=$(mktemp /tmp/vmpath-bench-neutron.XXXXXX)
trap 'rm -f "$inner"; [[ -n ${VMPATH_NEUTRON_LAB_DIR:-} ]] || lab/neutron/nlab down --dir "$dir" >/dev/null 2>&1 || true' EXIT
cat >"$inner" <<'INNER'
set -euo pipefail
runs=$1 bin=$2 port=$3 base=$4 ks=$5 nu=$6 pw=$7 tok=$8
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
t() { local t0 t1; t0=${EPOCHREALTIME/./}; "$@" >/dev/null 2>&1 || true; t1=${EPOCHREALTIME/./}; echo $((t1 - t0)); }
"$bin" walk "$port" --source neutron >/dev/null || true
h=() w=() c=() bw=() bc=()
for ((i = 0; i < runs; i++)); do
  h+=("$(t "$bin" walk "$port" --source host)")
  w+=("$(t "$bin" walk "$port" --source neutron)")
  bw+=("$(t bash "$base" "$ks" "$nu" vmpath "$pw" "$port" "$tok")")
  if ((i < 5)); then
    c+=("$(t env VMPATH_TOKEN_CACHE=off "$bin" walk "$port" --source neutron)")
    bc+=("$(t bash "$base" "$ks" "$nu" vmpath "$pw" "$port")")
  fi
done
m() { printf '%s\n' "$@" | median; }
echo "$(m "${h[@]}") $(m "${w[@]}") $(m "${c[@]}") $(m "${bw[@]}") $(m "${bc[@]}")"
INNER
read -r hm wm cm bwm bcm <<<"$(on bash "$inner" "$runs" "$bin" "$port" "$PWD/bench/baseline-neutron.sh" "$ks" "$nu" "$pw" "$tok")"
warm=$(on "$bin" walk "$port" --source neutron --json)
cold=$(on env VMPATH_TOKEN_CACHE=off "$bin" walk "$port" --source neutron --json)
calls() { python3 -c 'import json,sys; s=json.load(sys.stdin)["source"]; print(s["desired"], s["token"], s["keystone_calls"], s["api_calls"], s["elapsed_ms"])'; }
read -r wd wt wk wa we <<<"$(calls <<<"$warm")"
read -r cd ct ck ca ce <<<"$(calls <<<"$cold")"
echo "vmpath walk --source neutron on nlab hv1 (nproc=$(nproc), $runs runs; cold: 5)"
awk -v h="$hm" -v w="$wm" -v c="$cm" -v bw="$bwm" -v bc="$bcm" -v wk="$wk" -v wa="$wa" -v we="$we" -v ck="$ck" -v ca="$ca" -v ce="$ce" -v wd="$wd" -v wt="$wt" 'BEGIN {
  printf "walk, host records only       median %7.1f ms\n", h/1000
  printf "walk, Neutron, warm token     median %7.1f ms  (+%.1f ms; %s, token %s: %d Keystone + %d Neutron calls, lookup %d ms)   baseline (curl, token given) %7.1f ms   ratio %4.1fx\n", w/1000, (w-h)/1000, wd, wt, wk, wa, we, bw/1000, bw/w
  printf "walk, Neutron, cold token     median %7.1f ms  (+%.1f ms; %d Keystone + %d Neutron calls, lookup %d ms)   baseline (curl + Keystone)   %7.1f ms   ratio %4.1fx\n", c/1000, (c-h)/1000, ck, ca, ce, bc/1000, bc/c
  printf "targets: warm <= 100 ms: %s; cold <= 1000 ms: %s\n", (w/1000 <= 100 ? "met" : "NOT met"), (c/1000 <= 1000 ? "met" : "NOT met") }'
