#!/usr/bin/env bash
# An Open vSwitch compute node of the overlay design for tests/compute.rs, in a private network,
# mount and PID namespace (tests/compute.rs starts it under `unshare --net --mount --pid --fork
# --kill-child --mount-proc --propagation private`): a real ovsdb-server and ovs-vswitchd
# (userspace datapath), the ports, ofports, tags and external_ids the Neutron OVS agent and
# os-vif left on hv1 of a real Neutron lab, and the flows that agent installed there
# (tests/fixtures/ovs/hv1-br-{int,tun}.flows: its native OVS firewall, br-tun's VXLAN tables).
# br-phy holds the tunnel address 198.51.100.21 (userspace tunnelling), its uplink eth1 leads to
# a namespace that plays both gateways' VTEPs (198.51.100.11, .12) and answers their ARP.
#
# It walks the VM's port healthy, then plants each fault, walks again and restores it; each walk
# prints `== NAME` and the JSON document (exit code in `"exit_code"`), for tests/compute.rs.
#
# Usage: compute.sh VMPATH FLOWDIR
#        compute.sh VMPATH FLOWDIR --then CMD...   (set up, run CMD there instead, tear down:
#                                                   bench/compute.sh)
set -euo pipefail
export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
BIN=$1 FLOWS=$2
shift 2
THEN=()
if [[ ${1:-} == --then ]]; then shift; THEN=("$@"); fi
[[ -n ${OUTER_NETNS:-} && $(stat -Lc %i /proc/self/ns/net) != "$OUTER_NETNS" ]] ||
    { echo "compute.sh: not in a private network namespace" >&2; exit 90; }
[[ $$ == 1 ]] || { echo "compute.sh: not the init of a private PID namespace" >&2; exit 90; }
W=$(mktemp -d /tmp/vmpath-compute.XXXXXX)
mount -t tmpfs -o mode=0755 compute-run /run
mkdir -p /run/openvswitch /run/netns
ip link set lo up
PIDS=()
cleanup() {
    local p i
    for p in "${PIDS[@]}"; do
        kill -CONT "$p" 2>/dev/null || true
        kill -TERM "$p" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do [[ -e /proc/$p ]] || break; sleep 0.1; done
    done
    rm -rf "$W"
}
trap cleanup EXIT
ovsdb-tool create "$W/conf.db" /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server "$W/conf.db" --remote=punix:/run/openvswitch/db.sock \
    --pidfile=/run/openvswitch/ovsdb-server.pid "--log-file=$W/ovsdb.log" -vconsole:off &
PIDS+=($!)
for _ in $(seq 50); do [[ -S /run/openvswitch/db.sock ]] && break; sleep 0.1; done
V=(ovs-vsctl --timeout=10)
"${V[@]}" --no-wait init
"${V[@]}" --no-wait set Open_vSwitch . external_ids:hostname=hv1 external_ids:system-id=hv1
ovs-vswitchd unix:/run/openvswitch/db.sock --pidfile=/run/openvswitch/ovs-vswitchd.pid \
    "--log-file=$W/vswitchd.log" -vconsole:off &
PIDS+=($!)
VSWITCHD=$!
for _ in $(seq 50); do ls /run/openvswitch/ovs-vswitchd.*.ctl >/dev/null 2>&1 && break; sleep 0.1; done

PORT=c6677132-b418-4ed3-9d5f-df0ef7b0f22f TAP=tapc6677132-b4 MAC=fa:16:3e:63:ad:00
# The VM (vm1) and the fabric (fab: both gateways' VTEP addresses).
ip netns add vm1
ip netns add fab
ip link add "$TAP" mtu 9000 type veth peer name eth0 netns vm1
ip -n vm1 link set eth0 address "$MAC" up
ip link set "$TAP" up
ip link add eth1 mtu 9050 type veth peer name eth-hv1 mtu 9050 netns fab
ip link set eth1 up
ip -n fab link set eth-hv1 up
ip -n fab addr add 198.51.100.11/24 dev eth-hv1
ip -n fab addr add 198.51.100.12/24 dev eth-hv1
"${V[@]}" -- add-br br-phy -- set bridge br-phy datapath_type=netdev -- add-port br-phy eth1 \
    -- set interface br-phy mtu_request=9050
"${V[@]}" -- add-br br-int -- set bridge br-int datapath_type=netdev fail_mode=secure \
    -- add-port br-int int-br-ex -- set interface int-br-ex type=patch options:peer=phy-br-ex ofport_request=1 \
    -- add-port br-int patch-tun -- set interface patch-tun type=patch options:peer=patch-int ofport_request=2 \
    -- add-port br-int "$TAP" tag=1 other_config:net_uuid=7e0c1a2b-0000-4000-8000-000000000001 \
       other_config:network_type=vxlan other_config:physical_network=None other_config:segmentation_id=879 \
       other_config:tag=1 -- set interface "$TAP" ofport_request=3 "external_ids:iface-id=$PORT" \
       "external_ids:attached-mac=$MAC" external_ids:iface-status=active \
       external_ids:vm-uuid=9b0b8a53-0000-4000-8000-000000000011
"${V[@]}" -- add-br br-tun -- set bridge br-tun datapath_type=netdev fail_mode=secure \
    -- add-port br-tun patch-int -- set interface patch-int type=patch options:peer=patch-tun ofport_request=1 \
    -- add-port br-tun vxlan-c633640b -- set interface vxlan-c633640b type=vxlan ofport_request=2 \
       options:df_default=true options:in_key=flow options:out_key=flow options:local_ip=198.51.100.21 \
       options:remote_ip=198.51.100.11 \
    -- add-port br-tun vxlan-c633640c -- set interface vxlan-c633640c type=vxlan ofport_request=3 \
       options:df_default=true options:in_key=flow options:out_key=flow options:local_ip=198.51.100.21 \
       options:remote_ip=198.51.100.12
"${V[@]}" -- add-br br-ex -- set bridge br-ex datapath_type=netdev fail_mode=secure \
    -- add-port br-ex phy-br-ex -- set interface phy-br-ex type=patch options:peer=int-br-ex
# A second VM (vm2), plugged the hybrid way (os-vif ovs_hybrid_plug, the iptables_hybrid
# firewall): tap → Linux bridge qbr → veth qvb/qvo, the qvo end in br-int with the port's
# external_ids; its security group is iptables' on qbr (physdev matches), as Neutron writes it.
P2=5a1e2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b M2=fa:16:3e:10:20:30 IP2=198.18.0.198
ip netns add vm2
ip link add tap5a1e2b3c-4d mtu 9000 type veth peer name eth0 netns vm2
ip -n vm2 link set eth0 address "$M2" up
ip link add qbr5a1e2b3c-4d mtu 9000 type bridge
ip link add qvb5a1e2b3c-4d mtu 9000 type veth peer name qvo5a1e2b3c-4d mtu 9000
ip link set tap5a1e2b3c-4d master qbr5a1e2b3c-4d
ip link set qvb5a1e2b3c-4d master qbr5a1e2b3c-4d
for d in tap5a1e2b3c-4d qbr5a1e2b3c-4d qvb5a1e2b3c-4d qvo5a1e2b3c-4d; do ip link set "$d" up; done
"${V[@]}" -- add-port br-int qvo5a1e2b3c-4d tag=1 other_config:net_uuid=7e0c1a2b-0000-4000-8000-000000000001 \
    other_config:network_type=vxlan other_config:physical_network=None other_config:segmentation_id=879 \
    other_config:tag=1 -- set interface qvo5a1e2b3c-4d ofport_request=4 "external_ids:iface-id=$P2" \
    "external_ids:attached-mac=$M2" external_ids:iface-status=active \
    external_ids:vm-uuid=9b0b8a53-0000-4000-8000-000000000012
sysctl -q -w net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
sed "s/@IP2@/$IP2/; s/@MAC2@/${M2^^}/" "$(dirname "$0")/fixtures/ovs/hybrid-iptables.txt" | iptables-restore

ip link set br-phy up
ip addr add 198.51.100.21/24 dev br-phy
ovs-ofctl del-flows br-int
ovs-ofctl del-flows br-tun
ovs-ofctl add-flows br-int "$FLOWS/hv1-br-int.flows"
ovs-ofctl add-flows br-tun "$FLOWS/hv1-br-tun.flows"
sleep 0.5

# With VMPATH_CAPTURE=DIR, the facts and report of these walks are kept as DIR/walk-ovs-NAME.json
# (the captures of tests/fixtures/facts/, replayed by src/compute/tests.rs).
CAPTURE=" healthy vni-flow sg-drop tunnel-removed underlay-mtu "
walk() { # NAME ARGS...
    local name=$1 rc=0 out facts=
    shift
    if [[ -n ${VMPATH_CAPTURE:-} && $CAPTURE == *" $name "* ]]; then facts=$W/$name.facts.json; fi
    out=$(env ${facts:+VMPATH_FACTS_OUT="$facts"} "$BIN" walk "$@" --json --timeout 2s 2>"$W/stderr") || rc=$?
    if [[ -n $facts && -s $facts ]]; then
        printf '%s\n' "$out" >"$W/$name.report.json"
        python3 - "$facts" "$W/$name.report.json" "$VMPATH_CAPTURE/walk-ovs-$name.json" "$name" "$rc" "$*" <<'PY'
import json, sys
facts, report, dest, name, rc, argv = sys.argv[1:]
doc = {"captured_by": "tests/compute.sh (VMPATH_CAPTURE)", "fault": None if name == "healthy" else name,
       "command": "vmpath walk " + argv + " --json --timeout 2s", "exit_code": int(rc),
       "facts": json.load(open(facts)), "report": json.load(open(report))}
json.dump(doc, open(dest, "w"), indent=1, sort_keys=True)
open(dest, "a").write("\n")
PY
    fi
    echo "== $name"
    if [[ -n $out ]]; then printf '%s\n' "$out"; else echo "{\"exit_code\": $rc, \"stderr\": \"$(tr -d '"\\' <"$W/stderr" | head -c 400)\"}"; fi
}
flows() { ovs-ofctl "$@"; }

if ((${#THEN[@]})); then
    "${THEN[@]}"
    exit $?
fi

walk healthy "$PORT"
walk by-ip 198.18.0.197
walk by-tap "$TAP"
walk by-mac "$MAC"

# The agent marked the port dead: tag 4095 and its drop flow.
"${V[@]}" set Port "$TAP" tag=4095
flows add-flow br-int "table=0,priority=2,in_port=3,actions=drop"
walk dead-port "$PORT"
"${V[@]}" set Port "$TAP" tag=1
flows --strict del-flows br-int "table=0,priority=2,in_port=3"

# A flow the VM's traffic needs, deleted from br-tun: table 2's dispatch of unicast frames.
readd() { # BRIDGE PATTERN: add back the captured flows of BRIDGE that match PATTERN
    grep -E "$2" "$FLOWS/hv1-$1.flows" |
        sed 's/^ *cookie=[^,]*, //; s/duration=[^,]*, //; s/n_packets=[^,]*, //; s/n_bytes=[^,]*, //; s/idle_age=[^,]*, //; s/hard_age=[^,]*, //' |
        while read -r f; do flows add-flow "$1" "$f"; done
}
flows --strict del-flows br-tun "table=2,priority=0,dl_dst=00:00:00:00:00:00/01:00:00:00:00:00"
walk br-tun-flow "$PORT"
readd br-tun 'table=2, .*dl_dst=00:00:00:00:00:00/01:00:00:00:00:00 '

# The VLAN's mapping to the network's VNI gone from br-tun (its flooding flow, table 22).
flows --strict del-flows br-tun "table=22,priority=1,dl_vlan=1"
walk vni-flow "$PORT"
readd br-tun 'table=22, .*dl_vlan=1 '

# A flow deleted from br-int: table 94's NORMAL, which forwards what the firewall accepted.
flows --strict del-flows br-int "table=94,priority=1"
walk br-int-flow "$PORT"
readd br-int 'table=94, priority=1 '

# The port's entry into its firewall deleted (table 60, in_port=3): its traffic bypasses the
# security group (and still flows): a warning.
flows --strict del-flows br-int "table=60,priority=100,in_port=3"
walk sg-bypassed "$PORT"
readd br-int 'table=60, priority=100,in_port=3 '

# A security-group rule in the OVS firewall dropping the VM's traffic: the egress rule of
# table 72 (new connections from the port) replaced by a drop.
flows add-flow br-int "table=72,priority=80,ct_state=+new-est,ip,reg5=0x3,actions=resubmit(,93)"
walk sg-drop "$PORT"
flows --strict del-flows br-int "table=72,priority=80,ct_state=+new-est,ip,reg5=0x3"

# The tap's MTU below the network's (given with --mtu, as Neutron's network MTU).
ip link set "$TAP" mtu 1400
walk tap-mtu "$PORT" --mtu 9000
ip link set "$TAP" mtu 9000

# The underlay (br-phy's uplink) too small for the overlay: 9000 + 50 > 9000.
ip link set eth1 mtu 9000
walk underlay-mtu "$PORT"
ip link set eth1 mtu 9050

# The tunnel port to a gateway removed (the agent also left its flows pointing at it).
"${V[@]}" del-port br-tun vxlan-c633640b
walk tunnel-removed "$PORT"
"${V[@]}" -- add-port br-tun vxlan-c633640b -- set interface vxlan-c633640b type=vxlan ofport_request=2 \
    options:df_default=true options:in_key=flow options:out_key=flow options:local_ip=198.51.100.21 \
    options:remote_ip=198.51.100.11
sleep 0.3

# The hybrid plug: healthy; its tap out of qbr; replies to the VM dropped by its iptables chain.
walk hybrid "$P2"
walk hybrid-by-tap tap5a1e2b3c-4d
ip link set tap5a1e2b3c-4d nomaster
walk hybrid-chain "$P2"
ip link set tap5a1e2b3c-4d master qbr5a1e2b3c-4d
ESTABLISHED=(-m state --state RELATED,ESTABLISHED -m comment --comment
    "Direct packets associated with a known session to the RETURN chain." -j RETURN)
iptables -D neutron-openvswi-i5a1e2b3c-4 "${ESTABLISHED[@]}"
walk hybrid-sg "$P2"
iptables -I neutron-openvswi-i5a1e2b3c-4 1 "${ESTABLISHED[@]}"

# ovs-vswitchd not answering.
kill -STOP "$VSWITCHD"
start=$(date +%s%N)
walk vswitchd-silent "$PORT"
echo "== vswitchd-silent-ms"
echo "{\"ms\": $((($(date +%s%N) - start) / 1000000))}"
kill -CONT "$VSWITCHD"

walk healthy-again "$PORT"
