# shellcheck shell=bash
# nlab: the agent hosts net1, net2 (gateways) and hv1 (compute node): their links to ctl's
# bridges, Open vSwitch with the userspace datapath, and the real Neutron agents' configuration.
# (sourced by lab/neutron/nlab.)

# host_index HOST: the last octet of the host's management and underlay addresses.
host_index() { case $1 in net1) echo 11 ;; net2) echo 12 ;; hv1) echo 21 ;; *) die "unknown host $1" ;; esac; }
host_dir() { echo "$DIR/hosts/$1"; }

# host_up HOST: namespaces, three links (eth0 management, eth1 underlay, eth2 external), OVS
# (ovsdb-server, ovs-vswitchd, datapath netdev), br-phy holding the tunnel address (userspace
# VXLAN leaves through an OVS bridge's internal port) with eth1 as its uplink, br-ex with eth2.
host_up() {
    local h=$1 i hd p
    i=$(host_index "$h"); hd=$(host_dir "$h")
    mkdir -p "$hd"/{etc,state,lock,tmp,ovs}
    new_host "$h"
    p=$(holder_pid "$h")
    on ctl bash -euc "
        ip link add m-$h type veth peer name eth0 netns $p
        ip link add d-$h mtu 9050 type veth peer name eth1 netns $p mtu 9050
        ip link add x-$h mtu 9050 type veth peer name eth2 netns $p mtu 9050
        ip link set m-$h master br-mgmt up
        ip link set d-$h master br-data up
        ip link set x-$h master br-ext up"
    on "$h" bash -euc "
        ip addr add 192.0.2.$i/24 dev eth0
        for d in eth0 eth1 eth2; do ip link set \$d up; done
        # eth1/eth2 are AF_PACKET ports of the userspace datapath: no offloads it cannot finish
        for d in eth1 eth2; do ethtool -K \$d tx off rx off >/dev/null 2>&1 || true; done"
    ovsdb-tool create "$hd/ovs/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    # manager_options: the OVS agent adds ptcp:6640:127.0.0.1 and talks OVSDB over it
    spawn ovsdb-server "$h" ovsdb-server "$hd/ovs/conf.db" \
        --remote=punix:/run/openvswitch/db.sock --remote=db:Open_vSwitch,Open_vSwitch,manager_options \
        --pidfile=/run/openvswitch/ovsdb-server.pid --log-file="$DIR/logs/ovsdb-server-$h.log" -vconsole:off
    poll 10 on "$h" test -S /run/openvswitch/db.sock || die "$h: ovsdb-server did not start"
    on "$h" ovs-vsctl --timeout=10 --no-wait -- init -- set Open_vSwitch . \
        external_ids:hostname="$h" external_ids:system-id="$h"
    spawn ovs-vswitchd "$h" ovs-vswitchd unix:/run/openvswitch/db.sock \
        --pidfile=/run/openvswitch/ovs-vswitchd.pid --log-file="$DIR/logs/ovs-vswitchd-$h.log" -vconsole:off
    poll 10 on "$h" ovs-appctl -t ovs-vswitchd version || die "$h: ovs-vswitchd did not start"
    on "$h" bash -euc "
        v='ovs-vsctl --timeout=10'
        \$v -- --may-exist add-br br-phy -- set Bridge br-phy datapath_type=netdev \
            -- --may-exist add-port br-phy eth1 -- set Interface br-phy mtu_request=9050
        \$v -- --may-exist add-br br-ex -- set Bridge br-ex datapath_type=netdev \
            -- --may-exist add-port br-ex eth2 -- set Interface br-ex mtu_request=9050
        ip link set br-phy up
        ip link set br-ex up
        ip addr add 198.51.100.$i/24 dev br-phy"
    agent_confs "$h"
}

agent_confs() {
    local h=$1 i hd
    i=$(host_index "$h"); hd=$(host_dir "$h")
    cat >"$hd/etc/neutron.conf" <<EOF
# nlab: what every agent on $h shares
[DEFAULT]
host = $h
state_path = $hd/state
transport_url = rabbit://guest:guest@192.0.2.1:5672/
debug = $NLAB_DEBUG
[agent]
# The agents run as root. Their privsep daemons are started through the root helper; an empty
# one does not work (oslo.privsep then falls back to a bare "sudo"), so it is sudo (root needs no
# sudoers entry) with a PATH in which the venv's privsep-helper is found.
root_helper = sudo env PATH=$VENV/bin:$SYS_PATH
[oslo_concurrency]
lock_path = $hd/lock
EOF
    cat >"$hd/etc/openvswitch_agent.ini" <<EOF
[ovs]
integration_bridge = br-int
tunnel_bridge = br-tun
local_ip = 198.51.100.$i
bridge_mappings = physnet1:br-ex
datapath_type = netdev
of_listen_address = 127.0.0.1
[agent]
tunnel_types = vxlan
l2_population = false
[securitygroup]
firewall_driver = openvswitch
EOF
    cat >"$hd/etc/dhcp_agent.ini" <<EOF
[DEFAULT]
interface_driver = openvswitch
ovs_use_veth = true
enable_isolated_metadata = false
[ovs]
integration_bridge = br-int
datapath_type = netdev
EOF
    cat >"$hd/etc/l3_agent.ini" <<EOF
[DEFAULT]
interface_driver = openvswitch
ovs_use_veth = true
agent_mode = legacy
ha_vrrp_auth_password = nlab-vrrp
[ovs]
integration_bridge = br-int
datapath_type = netdev
EOF
}

# agent_start HOST openvswitch|dhcp|l3
agent_start() {
    local h=$1 kind=$2 hd ini
    hd=$(host_dir "$h")
    ini=$hd/etc/${kind}_agent.ini
    spawn "neutron-$kind-agent" "$h" "neutron-$kind-agent" --config-file "$hd/etc/neutron.conf" \
        --config-file "$ini" --log-file "$DIR/logs/$kind-agent-$h.log"
}

# ovs_agent_ready HOST: the OVS agent made br-int and br-tun and put its tunnel flows in.
ovs_agent_ready() { on "$1" ovs-ofctl dump-flows br-tun 2>/dev/null | grep -q 'table=22'; }
br_int_exists() { on "$1" ovs-vsctl --timeout=5 br-exists br-int; }

# sshd_start HOST: a real OpenSSH server on HOST's management address (192.0.2.N:22), for
# `vmpath path` (tests/neutron.rs): the lab's own host key, root's key only from
# DIR/ssh/authorized_keys (the test writes its key there), no passwords. StrictModes is off
# because DIR is under /tmp (world-writable): a lab-only setting.
sshd_start() {
    local h=$1 i d=$DIR/ssh
    i=$(host_index "$h")
    mkdir -p "$d"
    chmod 700 "$d"
    [[ -e $d/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C nlab-host -f "$d/host_ed25519"
    touch "$d/authorized_keys"
    chmod 600 "$d/authorized_keys"
    cat >"$d/sshd_config-$h" <<EOF2
ListenAddress 192.0.2.$i
Port 22
HostKey $d/host_ed25519
PidFile none
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
X11Forwarding no
AllowTcpForwarding no
EOF2
    on "$h" mkdir -p /run/sshd
    spawn sshd "$h" /usr/sbin/sshd -D -e -f "$d/sshd_config-$h"
    poll 10 on "$h" bash -c "(exec 3<>/dev/tcp/192.0.2.$i/22)" || die "$h: sshd did not listen (see $DIR/logs/$h.sshd.out)"
}
