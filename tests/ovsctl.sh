#!/usr/bin/env bash
# A real ovs-vswitchd for tests/ovsctl.rs, in a private network, mount and PID namespace
# (tests/ovsctl.rs starts this script under `unshare --net --mount --pid --fork --kill-child
# --mount-proc --propagation private`): ovsdb-server and ovs-vswitchd (userspace datapath,
# netdev bridges: no kernel module needed), started as Debian's ovs-ctl does (`--detach
# --monitor`, a pidfile), in a mount namespace of their own with a tmpfs over /run/openvswitch,
# as when Open vSwitch runs in a container: vmpath reaches their socket through /proc/PID/root.
# A compute node's bridges: br-int (a VM port on local VLAN 1, a dead port with tag 4095),
# br-tun (a VXLAN tunnel to 198.51.100.11, VNI 1001), br-phy (the tunnel address 198.51.100.21)
# and Neutron-like flows. Then it runs the test binary's `lab_side` test here, and stops every
# daemon it started, by pid.
#
# Usage: ovsctl.sh WORKDIR TESTBIN
#        ovsctl.sh --daemons WORKDIR   (the daemons' side, in their own mount namespace)
set -euo pipefail
export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

if [[ ${1:-} == --daemons ]]; then
    W=$2
    mount -t tmpfs -o mode=0755 ovsctl-daemons /run/openvswitch
    ovsdb-tool create "$W/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ovsdb-server "$W/conf.db" --remote=punix:/run/openvswitch/db.sock \
        "--pidfile=$W/run/ovsdb-server.pid" "--log-file=$W/ovsdb-server.log" -vconsole:off --detach
    ovs-vsctl --no-wait init
    ovs-vswitchd unix:/run/openvswitch/db.sock "--pidfile=$W/run/ovs-vswitchd.pid" \
        "--log-file=$W/ovs-vswitchd.log" -vconsole:off --detach --monitor
    V="ovs-vsctl --timeout=10"
    ip link add tapvm0 type veth peer name vmeth0
    ip link add tapdead0 type veth peer name deadeth0
    ip link add eth1 type veth peer name d-eth1
    for l in tapvm0 vmeth0 tapdead0 deadeth0 eth1 d-eth1; do ip link set "$l" up; done
    $V -- add-br br-phy -- set bridge br-phy datapath_type=netdev -- add-port br-phy eth1
    ip link set br-phy up
    ip addr add 198.51.100.21/24 dev br-phy
    $V -- add-br br-int -- set bridge br-int datapath_type=netdev fail_mode=secure \
        -- add-port br-int patch-tun -- set interface patch-tun type=patch options:peer=patch-int ofport_request=2 \
        -- add-port br-int tapvm0 tag=1 -- set interface tapvm0 ofport_request=3 \
        -- add-port br-int tapdead0 tag=4095 -- set interface tapdead0 ofport_request=4
    $V -- add-br br-tun -- set bridge br-tun datapath_type=netdev fail_mode=secure \
        -- add-port br-tun patch-int -- set interface patch-int type=patch options:peer=patch-tun ofport_request=1 \
        -- add-port br-tun vxlan-c633640b -- set interface vxlan-c633640b type=vxlan ofport_request=2 \
        options:in_key=flow options:out_key=flow options:local_ip=198.51.100.21 options:remote_ip=198.51.100.11
    cat >"$W/br-int.flows" <<'EOF'
table=0, priority=65535,dl_vlan=4095 actions=drop
table=0, priority=2,in_port=4 actions=drop
table=0, priority=0 actions=resubmit(,60)
table=60, priority=100,in_port=3 actions=load:0x3->NXM_NX_REG5[],load:0x1->NXM_NX_REG6[],resubmit(,71)
table=60, priority=1 actions=NORMAL
table=71, priority=65,ip,reg5=0x3,in_port=3,dl_src=fa:16:3e:00:00:11,nw_src=198.18.0.11 actions=ct(table=72,zone=NXM_NX_REG6[0..15])
table=71, priority=10,reg5=0x3,in_port=3 actions=ct_clear,resubmit(,93)
table=72, priority=74,ct_state=+new-est,ip,reg5=0x3 actions=ct(commit,zone=NXM_NX_REG6[0..15]),resubmit(,94)
table=72, priority=0 actions=drop
table=93, priority=0 actions=drop
table=94, priority=1 actions=NORMAL
EOF
    cat >"$W/br-tun.flows" <<'EOF'
table=0, priority=1,in_port=1 actions=resubmit(,2)
table=0, priority=1,in_port=2 actions=resubmit(,4)
table=0, priority=0 actions=drop
table=2, priority=0,dl_dst=00:00:00:00:00:00/01:00:00:00:00:00 actions=resubmit(,20)
table=2, priority=0,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00 actions=resubmit(,22)
table=4, priority=1,tun_id=0x3e9 actions=mod_vlan_vid:1,resubmit(,10)
table=4, priority=0 actions=drop
table=10, priority=1 actions=output:1
table=20, priority=1,vlan_tci=0x0001/0x0fff,dl_dst=fa:16:3e:00:00:01 actions=load:0->NXM_OF_VLAN_TCI[],load:0x3e9->NXM_NX_TUN_ID[],output:2
table=20, priority=0 actions=resubmit(,22)
table=22, priority=1,dl_vlan=1 actions=strip_vlan,load:0x3e9->NXM_NX_TUN_ID[],output:2
table=22, priority=0 actions=drop
EOF
    ovs-ofctl del-flows br-int
    ovs-ofctl del-flows br-tun
    ovs-ofctl add-flows br-int "$W/br-int.flows"
    ovs-ofctl add-flows br-tun "$W/br-tun.flows"
    exit 0
fi

W=$1 BIN=$2
# Never outside a private network and PID namespace: the caller passes the inode of its own.
[[ -n ${OUTER_NETNS:-} && $(stat -Lc %i /proc/self/ns/net) != "$OUTER_NETNS" ]] ||
    { echo "ovsctl.sh: not in a private network namespace" >&2; exit 90; }
[[ $$ == 1 ]] || { echo "ovsctl.sh: not the init of a private PID namespace" >&2; exit 90; }

# vmpath's side: a /run of its own, with an empty /run/openvswitch.
mount -t tmpfs -o mode=0755 ovsctl-run /run
mkdir -p /run/openvswitch "$W/run"
ip link set lo up
ovs-vswitchd --version | head -n 1 >"$W/version"

# stat_field PID N: field N of /proc/PID/stat counted after the command name (3: state, 4: ppid).
stat_field() { awk -v n="$2" '{ sub(/.*\) /, ""); print $(n - 2) }' "/proc/$1/stat" 2>/dev/null; }
alive() { [[ -e /proc/$1 && $(stat_field "$1" 3 || echo Z) != Z ]]; }
pid_of() { local p; p=$(cat "$W/run/$1.pid" 2>/dev/null) && [[ $p =~ ^[0-9]+$ ]] && echo "$p"; }
# stop PID: TERM, then KILL after 5 s; every wait bounded.
stop() {
    local p=$1 i
    [[ -n $p ]] && alive "$p" || return 0
    kill -TERM "$p" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do alive "$p" || return 0; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do alive "$p" || return 0; sleep 0.1; done
    echo "ovsctl.sh: pid $p did not stop" >&2
}
cleanup() {
    local child monitor=
    child=$(pid_of ovs-vswitchd || true)
    [[ -n $child ]] && monitor=$(stat_field "$child" 4 || true)
    # The monitor first, so that it does not restart the daemon.
    [[ -n $monitor && $monitor != 1 ]] && stop "$monitor"
    stop "$child"
    stop "$(pid_of ovsdb-server || true)"
}
trap cleanup EXIT

unshare --mount --propagation private bash "$0" --daemons "$W" >"$W/daemons.out" 2>&1 ||
    { echo "ovsctl.sh: the daemons did not start:" >&2; cat "$W/daemons.out" >&2; exit 1; }
VMPATH_OVSCTL_LAB=$W "$BIN" --exact lab_side --nocapture --test-threads=1
