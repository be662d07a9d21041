#!/usr/bin/env bash
# Benchmark: `vmpath routers` on a gateway with N (default 1000) qrouter namespaces, each with
# qr-/qg-/ha- interfaces, addresses (the VIP and gateway addresses on every other router, as on
# a primary), a default route, and Neutron's ha_confs/<id>/{keepalived.conf,state}; against a
# shell loop doing the same reads by hand (`ip netns exec … ip -j addr`, `cat state`,
# `ip netns exec … conntrack -C`). Prints wall time, vmpath's peak RSS and the ratio.
# Targets: under 2 s and 64 MiB for 1000 routers.
#
# Everything happens inside a private network and mount namespace (unshare), with a tmpfs on
# /run/netns and the ha_confs in a temporary directory: nothing of the host is touched.
# With KEEPALIVED=K (default 0), the first K routers also run a real keepalived (all sharing one
# tmp dir, as they share /tmp on a gateway), and the run is timed with and without asking each
# keepalived for its own state (its JSON dump): the per-router cost of that report.
# Usage (root): [KEEPALIVED=K] bench/routers.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
if [[ ${VMPATH_BENCH_INSIDE:-} != 1 ]]; then
  [[ $(id -u) == 0 ]] || { echo "bench/routers.sh: needs root (namespaces)" >&2; exit 1; }
  lab/setup
  cargo build --release --quiet
  outer=$(stat -L -c %i /proc/self/ns/net)
  VMPATH_BENCH_INSIDE=1 VMPATH_OUTER_NETNS=$outer KEEPALIVED=${KEEPALIVED:-0} exec unshare --net --mount --propagation private "$0" "$n"
fi
# Inside: refuse to go on unless the namespaces really changed.
[[ $(stat -L -c %i /proc/self/ns/net) != "${VMPATH_OUTER_NETNS:-}" ]] || { echo "not in a private netns" >&2; exit 1; }
mount -t tmpfs tmpfs /run
mkdir -p /run/netns
work=$(mktemp -d /tmp/vmpath-routers-bench.XXXXXX)
kapids=()
cleanup() {
  for p in "${kapids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${kapids[@]}"; do
    for _ in $(seq 50); do [[ -d /proc/$p ]] || break; sleep 0.1; done
  done
  rm -rf "$work"
}
trap cleanup EXIT
ha=$work/ha_confs
mkdir -p "$ha"
bin=$PWD/target/release/vmpath

echo "bench/routers.sh: creating $n qrouter namespaces ..." >&2
t0=$(date +%s.%N)
for i in $(seq 1 "$n"); do
  id=$(printf '5f1e2d3c-%04x-4b5c-8d9e-%012x' $((i % 65536)) "$i")
  short=${id:0:11}
  ns=qrouter-$id
  vrid=$(( (i % 254) + 1 ))
  lo=$(( i % 250 + 1 ))
  ip netns add "$ns"
  mkdir -p "$ha/$id"
  state=backup
  {
    echo "link set lo up"
    echo "link add qr-$short type veth peer name qg-$short"
    echo "link add ha-$short type veth peer name hx-$short"
    echo "link set qr-$short up"; echo "link set qg-$short up"; echo "link set ha-$short up"; echo "link set hx-$short up"
    echo "addr add 169.254.192.$lo/18 dev ha-$short"
    if (( i % 2 == 0 )); then
      state=primary
      echo "addr add 169.254.0.$vrid/24 dev ha-$short"
      echo "addr add 192.0.2.1/24 dev qr-$short"
      echo "addr add 203.0.113.$lo/24 dev qg-$short"
      echo "route add default via 203.0.113.254 dev qg-$short"
    fi
  } >"$work/batch"
  ip -n "$ns" -b "$work/batch"
  echo "$state" >"$ha/$id/state"
  cat >"$ha/$id/keepalived.conf" <<EOF
vrrp_instance VR_$vrid {
    state BACKUP
    interface ha-$short
    virtual_router_id $vrid
    priority 50
    nopreempt
    advert_int 2
    virtual_ipaddress {
        169.254.0.$vrid/24 dev ha-$short
    }
    virtual_ipaddress_excluded {
        192.0.2.1/24 dev qr-$short
        203.0.113.$lo/24 dev qg-$short
    }
}
EOF
done
t1=$(date +%s.%N)
echo "bench/routers.sh: created in $(python3 -c "print(f'{$t1-$t0:.1f}')") s" >&2

# vmpath: three runs, the median.
times=()
for _ in 1 2 3; do
  s=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/rss" "$bin" routers --ha-confs "$ha" --json >"$work/out.json" || true
  e=$(date +%s.%N)
  times+=("$(python3 -c "print($e-$s)")")
done
rss_kib=$(tail -n 1 "$work/rss")
v=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)
# The same without the wire (the duplicate-address probe of every primary, routers' default).
nw=()
for _ in 1 2 3; do
  s=$(date +%s.%N)
  "$bin" routers --ha-confs "$ha" --json --no-wire >/dev/null || true
  e=$(date +%s.%N)
  nw+=("$(python3 -c "print($e-$s)")")
done
nowire=$(printf '%s\n' "${nw[@]}" | sort -n | sed -n 2p)
routers=$(python3 -c "import json; d=json.load(open('$work/out.json')); print(len(d['routers']))")
primaries=$(python3 -c "import json; d=json.load(open('$work/out.json')); print(sum(1 for r in d['routers'] if r['views']['addresses']=='primary'))")

# Baseline: the same reads by hand, one router after the other.
s=$(date +%s.%N)
for dir in /run/netns/qrouter-*; do
  ns=${dir##*/}
  id=${ns#qrouter-}
  ip netns exec "$ns" ip -j addr >/dev/null
  cat "$ha/$id/state" >/dev/null
  ip netns exec "$ns" conntrack -C >/dev/null 2>&1 || true
done
e=$(date +%s.%N)
b=$(python3 -c "print($e-$s)")

echo "vmpath routers: $routers routers ($primaries primary) in $(python3 -c "print(f'{$v:.2f}')") s (median of 3), peak RSS $((rss_kib / 1024)) MiB"
echo "  of which the ARP probes of the primaries: $(python3 -c "print(f'{$v-$nowire:.2f}')") s (--no-wire: $(python3 -c "print(f'{$nowire:.2f}')") s)"
echo "baseline shell loop (ip -j addr, cat state, conntrack -C per router): $(python3 -c "print(f'{$b:.2f}')") s"
echo "ratio: $(python3 -c "print(f'{$b / $v:.1f}')")x   (targets: < 2 s, < 64 MiB)"

ka=${KEEPALIVED:-0}
(( ka > 0 )) || exit 0
echo "bench/routers.sh: starting keepalived in $ka routers ..." >&2
mkdir -p "$work/katmp"
i=0
for dir in /run/netns/qrouter-*; do
  (( i < ka )) || break
  i=$((i + 1))
  ns=${dir##*/}
  id=${ns#qrouter-}
  ip netns exec "$ns" env TMPDIR="$work/katmp" keepalived -P -n -l -D -f "$ha/$id/keepalived.conf" \
    -p "$work/ka-$i.pid" -r "$work/kav-$i.pid" </dev/null >/dev/null 2>&1 &
  kapids+=($!)
done
for _ in $(seq 100); do
  up=$(find "$work" -maxdepth 1 -name "kav-*.pid" | wc -l)
  (( up >= ka )) && break
  sleep 0.1
done
echo "bench/routers.sh: $up of $ka keepalived VRRP children up; letting them settle (MASTER after ~3 advert intervals)" >&2
sleep 10
med() { # ARGS...: median wall time of 5 runs of vmpath routers
  local ts=() s e
  for _ in 1 2 3 4 5; do
    s=$(date +%s.%N)
    "$bin" routers --ha-confs "$ha" --json "$@" >"$work/ka.json" || true
    e=$(date +%s.%N)
    ts+=("$(python3 -c "print($e-$s)")")
  done
  printf '%s\n' "${ts[@]}" | sort -n | sed -n 3p
}
with=$(med --timeout 10s)
reported=$(python3 -c "import json; d=json.load(open('$work/ka.json')); print(sum(1 for r in d['routers'] if r['views']['keepalived'] in ('MASTER','BACKUP','FAULT','INIT')))")
without=$(med --timeout 10s --no-dump)
echo "with $ka keepalived: vmpath routers $(python3 -c "print(f'{$with:.2f}')") s asking each for its own state ($reported reported), $(python3 -c "print(f'{$without:.2f}')") s with --no-dump"
echo "keepalived's own report: $(python3 -c "print(f'{($with - $without) * 1000 / $ka:.1f}')") ms per keepalived (asked one at a time)"
