#!/usr/bin/env bash
# A pair of HA gateways for one Neutron router, with real keepalived, inside a private network
# and mount namespace (run by tests/gateway.rs through `unshare --net --mount`): each gateway
# has its own namespace directory holding qrouter-<id> (ha-, qr-, qg- interfaces), and its own
# ha_confs/<id>/{keepalived.conf,state}. The ha- and qr- interfaces of the two routers are the two
# ends of veth pairs (the HA network and the tenant network). Prints one JSON document per
# scenario after a line `== NAME`. Usage: gateway-pair.sh VMPATH_BINARY
set -euo pipefail
bin=$1
[[ $(stat -L -c %i /proc/self/ns/net) != "${VMPATH_OUTER_NETNS:?}" ]] || { echo "not in a private netns" >&2; exit 1; }
mount -t tmpfs tmpfs /run
mkdir -p /run/netns
work=$(mktemp -d /run/vmpath-gwpair.XXXXXX)   # on the private /run tmpfs
pids=()
cleanup() {
  local c
  for p in "${pids[@]}"; do
    # Children first (by PID, from /proc), then the process itself.
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do kill "$c" 2>/dev/null || true; done
    kill "$p" 2>/dev/null || true
  done
  umount "$work"/netns?/qrouter-* 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT
id=5f1e2d3c-7a6b-4c5d-9e8f-0123456789ab
short=${id:0:11}
for g in A B; do
  ip netns add "gw$g"
  mkdir -p "$work/netns$g" "$work/ha$g/$id"
  touch "$work/netns$g/qrouter-$id"
  mount --bind "/run/netns/gw$g" "$work/netns$g/qrouter-$id"
  ip -n "gw$g" link set lo up
done
ip -n gwA link add "ha-$short" type veth peer name "ha-$short" netns gwB
# Both routers' qr- carry the same MAC, as in Neutron (one port, two gateways).
ip -n gwA link add "qr-$short" address fa:16:3e:00:02:01 mtu 1450 type veth peer name "qr-$short" address fa:16:3e:00:02:01 mtu 1450 netns gwB
# The node's overlay: a VXLAN device over an underlay with MTU 1500 (so at most 1450).
ip link add ul0 type veth peer name ul1
ip addr add 198.18.40.1/24 dev ul0
ip link set ul0 up; ip link set ul1 up
# No `dev` (as Neutron's agents create them): the kernel then lets the MTU exceed underlay − 50;
# vmpath finds the underlay through the route to the remote.
ip link add vxlan-100 mtu 1450 type vxlan id 100 remote 198.18.40.2 local 198.18.40.1 dstport 4789
ip link set vxlan-100 up
n=0
for g in A B; do
  n=$((n + 1))
  ip -n "gw$g" link add "qg-$short" type veth peer name "qx-$short"
  for l in ha qr qg qx; do ip -n "gw$g" link set "$l-$short" up; done
  ip -n "gw$g" addr add "169.254.192.$n/18" dev "ha-$short"
  ip -n "gw$g" addr add "203.0.113.$((100 + n))/24" dev "qx-$short"
  cat >"$work/ha$g/$id/keepalived.conf" <<EOF
vrrp_instance VR_1 {
    state BACKUP
    interface ha-$short
    virtual_router_id 1
    priority 50
    nopreempt
    advert_int 1
    virtual_ipaddress {
        169.254.0.1/24 dev ha-$short
    }
    virtual_ipaddress_excluded {
        192.0.2.1/24 dev qr-$short
        203.0.113.10/24 dev qg-$short
    }
    virtual_routes {
        0.0.0.0/0 via 203.0.113.1 dev qg-$short
    }
    notify_master "/bin/sh -c 'echo primary > $work/ha$g/$id/state'"
    notify_backup "/bin/sh -c 'echo backup > $work/ha$g/$id/state'"
}
EOF
  echo backup >"$work/ha$g/$id/state"
done
start_ka() { # G
  # Its dumps (keepalived.json on its JSON signal) go to TMPDIR: one private dir shared by both,
  # as /tmp is on a gateway node.
  mkdir -p "$work/tmp"
  ip netns exec "gw$1" env TMPDIR="$work/tmp" keepalived -P -n -l -D -f "$work/ha$1/$id/keepalived.conf" \
    -p "$work/ka$1.pid" -r "$work/kav$1.pid" >"$work/ka$1.log" 2>&1 &
  pids+=($!)
  echo $! >"$work/ka$1.spawn"
}
primaries() { grep -l primary "$work"/ha?/"$id"/state 2>/dev/null | wc -l; }
wait_until() { # SECONDS CMD...
  local end=$((SECONDS + $1)); shift
  until "$@"; do (( SECONDS < end )) || return 1; sleep 0.2; done
}
one_primary() { [[ $(primaries) == 1 ]]; }
two_primaries() { [[ $(primaries) == 2 ]]; }
# OVSDB (no vswitchd needed to read it): br-int with the router's qr- port as Neutron tags it.
mkdir -p /run/openvswitch
ovsdb-tool create "$work/conf.db" /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server "$work/conf.db" --remote="punix:$work/db.sock" --pidfile="$work/ovsdb.pid" --detach \
  --unixctl="$work/ovsdb.ctl" --log-file="$work/ovsdb.log"
pids+=("$(cat "$work/ovsdb.pid")")
vsctl() { ovs-vsctl --db="unix:$work/db.sock" --no-wait "$@"; }
vsctl init
vsctl add-br br-int -- set bridge br-int datapath_type=netdev
vsctl add-port br-int "qr-$short" tag=1 -- set interface "qr-$short" type=internal \
  external_ids:iface-id=7d1b3c2a-1111-4222-8333-944455556666 external_ids:attached-mac=fa:16:3e:11:22:33 mtu_request=1450
vsctl add-port br-int vxlan-c0000202 -- set interface vxlan-c0000202 type=vxlan options:remote_ip=192.0.2.2
run() { # G [args]
  local g=$1; shift
  "$bin" routers --netns-dir "$work/netns$g" --ha-confs "$work/ha$g" --ovsdb "$work/db.sock" --listen --json "$@" || true
}
start_ka A
sleep 1.5
start_ka B
wait_until 15 one_primary || { echo "no single primary" >&2; cat "$work"/ka?.log >&2; exit 1; }
sleep 1
echo "== healthy-A"; run A >"$work/A.json"; cat "$work/A.json"
echo "== healthy-B"; run B --peer "$work/A.json"
vsctl set port "qr-$short" tag=4095
echo "== ovs-dead"; run A
vsctl set port "qr-$short" tag=1
ip link set vxlan-100 mtu 1500
ip -n gwA link set "qr-$short" mtu 1600
echo "== mtu"; run A
ip link set vxlan-100 mtu 1450
ip -n gwA link set "qr-$short" mtu 1450

# Split-brain: VRRP cut both ways.
for g in A B; do
  ip netns exec "gw$g" nft add table ip vrrpcut
  ip netns exec "gw$g" nft add chain ip vrrpcut c '{ type filter hook input priority 0 ; }'
  ip netns exec "gw$g" nft add rule ip vrrpcut c ip protocol 112 drop
done
wait_until 15 two_primaries || { echo "no split-brain" >&2; exit 1; }
sleep 1
echo "== split-A"; run A >"$work/A.json"; cat "$work/A.json"
echo "== split-B"; run B --peer "$work/A.json"
for g in A B; do ip netns exec "gw$g" nft delete table ip vrrpcut; done
wait_until 20 one_primary || { echo "split-brain did not heal" >&2; exit 1; }

# keepalived killed (SIGKILL) on the primary: the other takes over, stale state stays behind.
p=$(grep -l primary "$work"/ha?/"$id"/state | head -n 1)
g=${p#"$work"/ha}; g=${g%%/*}
o=$([[ $g == A ]] && echo B || echo A)
kill -KILL "$(cat "$work/ka$g.spawn")"
wait_until 15 grep -q primary "$work/ha$o/$id/state" || { echo "no failover" >&2; exit 1; }
sleep 1
echo "== killed-$g"; run "$g"
# Zero configuration without keepalived: Neutron's state monitor runs in the router namespace
# with --conf_dir (a stand-in process with Neutron's command line).
# (bash keeps the command line: `exec -a` names it, `; :` stops bash from exec'ing sleep.)
ip netns exec "gw$g" /bin/bash -c 'exec -a /usr/bin/neutron-keepalived-state-change /bin/bash -c "sleep 120; :" "$@"' _ \
  --router_id="$id" --namespace="qrouter-$id" --conf_dir="$work/ha$g/$id" --monitor_interface="ha-$short" \
  --monitor_cidr=169.254.0.1/24 --state_path="$work/ha$g" </dev/null >/dev/null 2>&1 &
pids+=($!)
sleep 0.5
echo "== zeroconf-$g"
"$bin" routers --netns-dir "$work/netns$g" --ovsdb "$work/db.sock" --no-bgp --json || true
echo "== survivor-$o"; run "$o"

# What only the wire shows. Both keepalived again, with B (the higher HA address) primary.
start_ka "$g"
wait_until 20 one_primary || { echo "no single primary after restart" >&2; exit 1; }
if ! grep -q primary "$work/haB/$id/state"; then
  # A steps down (SIGTERM: a priority-0 advert) and B takes over; then A comes back as backup.
  kill -TERM "$(cat "$work/kaA.spawn")"
  wait_until 15 grep -q primary "$work/haB/$id/state" || { echo "B did not take over" >&2; exit 1; }
  sleep 0.5
  start_ka A
fi
wait_until 15 grep -q backup "$work/haA/$id/state" || { echo "A not backup" >&2; exit 1; }
sleep 2
# A deaf to VRRP (its input drops protocol 112): right away A is a backup that hears no
# primary; ~3.6 s later it takes over, and B, still primary (its address is higher, so it
# keeps the role), hears A advertise the same VRID.
ip netns exec gwA nft add table ip vrrpcut
ip netns exec gwA nft add chain ip vrrpcut c '{ type filter hook input priority 0 ; }'
ip netns exec gwA nft add rule ip vrrpcut c ip protocol 112 drop
echo "== deaf-A"; run A
wait_until 15 two_primaries || { echo "A did not take over" >&2; exit 1; }
sleep 1
echo "== heard-B"; run B
ip netns exec gwA nft delete table ip vrrpcut
echo "== done"
