#!/usr/bin/env bash
# Benchmark: `vmpath probe` on the lab's ECMP part (pc1 -> r1 =ECMP=> gw1|gw2 -> srv1, routers
# with the kernel's default ICMP rate limits), 32 flows to srv1's open port, against
#   (a) a loop of `traceroute -T --sport S` over the 32 source ports (what operators do by hand),
#   (b) trippy (`trip`, TCP mode, 32 one-cycle runs: it cannot fix both ports in TCP mode;
#       installed from crates.io if missing),
#   (c) `mtr --tcp` (cannot fix the source port: one report per flow anyway, for its time),
# all in the same run, and prints the ratios. Also prints the time the routers' ICMP limits
# allow for full per-flow hop maps (burst 6, then 1 a second per router, computed from r1's
# own choice for every flow) and vmpath's ratio to it, and the classification time with one
# gateway blackholed (fault ecmp-blackhole).
# Usage (root): bench/probe.sh   (uses $VMPATH_LAB_DIR if set, else starts a lab)
set -euo pipefail
cd "$(dirname "$0")/.."
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
trip=$(command -v trip || true)
if [[ -z $trip ]]; then
  if [[ -x ${TRIPPY_ROOT:-/tmp/trippy-root}/bin/trip ]]; then
    trip=${TRIPPY_ROOT:-/tmp/trippy-root}/bin/trip
  else
    echo "bench: installing trippy from crates.io (a few minutes, once)" >&2
    cargo install trippy --locked --quiet --root "${TRIPPY_ROOT:-/tmp/trippy-root}"
    trip=${TRIPPY_ROOT:-/tmp/trippy-root}/bin/trip
  fi
fi
info=$(lab/vmlab info --dir "$dir")
get() { python3 -c "import json,sys; d=json.load(sys.stdin)['probe']; print($1)" <<<"$info"; }
dst=$(get "d['dest_ipv4']"); port=$(get "d['open_port']")
gw1=$(get "d['gateways']['gw1']['ipv4']"); gw2=$(get "d['gateways']['gw2']['ipv4']")
mapfile -t truth < <(get "' '.join(d['ground_truth4'])")
in_pc1() { lab/vmlab exec --dir "$dir" --ns pc1 "$@"; }
in_r1() { lab/vmlab exec --dir "$dir" --ns r1 "$@"; }
now() { date +%s.%N; }
# Let the routers' ICMP token buckets refill (6 tokens at 1/s) before each measurement.
rest() { sleep 7; }

# The time the ICMP limits allow for full maps: per router, every probe beyond the burst of 6
# costs a second; routers refill in parallel; hop 1 is one probe.
n1=0; n2=0
for s in $(seq 33000 33031); do
  cmd=${truth[*]}; cmd=${cmd//\{sport\}/$s}; cmd=${cmd//\{dport\}/$port}
  # shellcheck disable=SC2086
  via=$(in_r1 $cmd | awk '{for (i = 1; i < NF; i++) if ($i == "via") print $(i + 1)}')
  [[ $via == "$gw1" ]] && n1=$((n1 + 1))
  [[ $via == "$gw2" ]] && n2=$((n2 + 1))
done
allowed=$(python3 -c "print(max(0, max($n1, $n2) - 6) * 1.0)")
echo "probe benchmark: 32 flows to $dst:$port; r1 sends $n1 via gw1, $n2 via gw2; ICMP limits allow full maps in ${allowed} s"

json_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

rest
t0=$(now); out=$(in_pc1 "$bin" probe "$dst" --port "$port" --sports 33000-33031 --hops none --json); t1=$(now)
classify=$(json_field "round(d['classify_ms'])" <<<"$out")
echo "vmpath classify only (healthy)        : $(python3 -c "print(f'{($t1-$t0):.2f}')") s wall, classified in ${classify} ms"

rest
t0=$(now); out=$(in_pc1 "$bin" probe "$dst" --port "$port" --sports 33000-33031 --json); t1=$(now)
v_needed=$(python3 -c "print($t1-$t0)")
complete_needed=$(json_field "sum(1 for f in d['flows'] if f['hops'] and all(h['address'] for h in f['hops']))" <<<"$out")
echo "vmpath default (--hops needed)        : $(python3 -c "print(f'{$v_needed:.2f}')") s, $complete_needed/32 flows with a full hop map ($(json_field "sum(1 for f in d['flows'] if f.get('hops_from'))" <<<"$out") of them from a traced flow with the same recorded route), paths split at hop $(json_field "(d['summary']['divergence'] or {}).get('hop')" <<<"$out")"

rest
t0=$(now); out=$(in_pc1 "$bin" probe "$dst" --port "$port" --sports 33000-33031 --hops all --json); t1=$(now)
v_all=$(python3 -c "print($t1-$t0)")
complete=$(json_field "sum(1 for f in d['flows'] if all(h['address'] for h in f['hops']))" <<<"$out")
echo "vmpath full maps (--hops all)         : $(python3 -c "print(f'{$v_all:.2f}')") s, $complete/32 flows with every hop answered"

# (a) as typed by hand: the tool's defaults (3 queries a hop, 5 s wait). TIME-WAIT sockets of
# one run would block the next run's bind of the same port, so each run uses its port once.
rest
t0=$(now)
answered=0
for s in $(seq 33000 33031); do
  o=$(in_pc1 traceroute -T -n --sport="$s" -p "$port" "$dst" 2>/dev/null || true)
  grep -q " $dst " <<<"$o" && answered=$((answered + 1))
done
t1=$(now); base_a=$(python3 -c "print($t1-$t0)")
echo "(a) traceroute -T --sport loop         : $(python3 -c "print(f'{$base_a:.2f}')") s ($answered/32 reached; defaults: 3 queries a hop, 5 s wait)"

rest
t0=$(now)
for s in $(seq 34000 34031); do
  in_pc1 traceroute -T -n -q 1 -w 1 --sport="$s" -p "$port" "$dst" >/dev/null 2>&1 || true
done
t1=$(now); base_a1=$(python3 -c "print($t1-$t0)")
echo "(a') same, tuned: -q 1 -w 1            : $(python3 -c "print(f'{$base_a1:.2f}')") s (other source ports: a TIME-WAIT holds the first ones)"

rest
t0=$(now)
for _ in $(seq 33000 33031); do
  # trippy refuses to fix both ports in TCP mode ("only one of source-port and target-port may
  # be fixed"): with the target port fixed it picks the source port itself, per probe.
  in_pc1 "$trip" "$dst" --tcp --target-port "$port" --mode json --report-cycles 1 >/dev/null 2>&1 || true
done
t1=$(now); base_b=$(python3 -c "print($t1-$t0)")
echo "(b) trippy --tcp -C 1, 32 runs         : $(python3 -c "print(f'{$base_b:.2f}')") s (trippy cannot fix the source port in TCP mode)"

rest
t0=$(now)
for _ in $(seq 33000 33031); do
  in_pc1 mtr --tcp -P "$port" -n -r -c 1 "$dst" >/dev/null 2>&1 || true
done
t1=$(now); base_c=$(python3 -c "print($t1-$t0)")
echo "(c) mtr --tcp -r -c 1, 32 runs          : $(python3 -c "print(f'{$base_c:.2f}')") s (mtr cannot fix the source port)"

lab/vmlab fault --dir "$dir" ecmp-blackhole >/dev/null
rest
t0=$(now); out=$(in_pc1 "$bin" probe "$dst" --port "$port" --sports 33000-33031 --json || true); t1=$(now)
lab/vmlab clear --dir "$dir" ecmp-blackhole >/dev/null
echo "vmpath with gw2 blackholed (default)  : $(python3 -c "print(f'{($t1-$t0):.2f}')") s, classified in $(json_field "round(d['classify_ms'])" <<<"$out") ms, $(json_field "d['summary']['failing']" <<<"$out") failing; $(json_field "d['summary']['lines'][1]" <<<"$out")"

python3 - "$v_all" "$base_a" "$base_b" "$base_c" "$allowed" "$base_a1" "$v_needed" "$complete_needed" <<'EOF'
import sys
v, a, b, c, allowed, a1, vn, cn = map(float, sys.argv[1:])
if cn == 32:
    print(f"ratios, full per-flow maps by default (Record Route groups, one traced flow each): traceroute loop / vmpath = {a / vn:.0f}x (target >= 10x; tuned loop {a1 / vn:.0f}x), trippy / vmpath = {b / vn:.0f}x, mtr / vmpath = {c / vn:.0f}x")
print(f"ratios, every flow traced by TTL (--hops all): traceroute loop / vmpath = {a / v:.1f}x (tuned loop {a1 / v:.1f}x), trippy / vmpath = {b / v:.1f}x, mtr / vmpath = {c / v:.1f}x")
print(f"vmpath full maps / ICMP-allowed time = {v / max(allowed, 0.001):.2f}x (target <= 1.5x)" if allowed > 0 else "ICMP limits allow full maps in one burst")
EOF
