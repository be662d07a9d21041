# shellcheck shell=bash
# vmlab: the HA gateway part, for `vmpath routers`.
# (sourced by lab/vmlab, which sets the shell options and the paths).

# ---------------------------------------------------------------------------
# HA gateway part (`vmpath routers`): gwA | gwB (HA router), tor3, cmp1, tvm1
# ---------------------------------------------------------------------------
qrouter_ns() { printf 'qrouter-%s' "$HA_ROUTER_ID"; }
qdhcp_ns() { printf 'qdhcp-%s' "$HA_NET_ID"; }
qr_if() { printf 'qr-%s' "${HA_QR_PORT:0:11}"; }
qg_if() { printf 'qg-%s' "${HA_QG_PORT:0:11}"; }
ha_if() { local p=${HA_HA_PORT[$1]}; printf 'ha-%s' "${p:0:11}"; }
dhcp_if() { local p=${HA_DHCP_PORT[$1]}; printf 'ns-%s' "${p:0:11}"; }     # ovs_use_veth: ns- in the namespace
# tap_of PORT_UUID: the host (OVS) end of a port's veth (ovs_use_veth naming).
tap_of() { printf 'tap%s' "${1:0:11}"; }
vxlan_if() { printf 'vxlan-%s' "${1:-$HA_VNI}"; }     # kernel VXLAN device (Linux bridge agent naming)
# ovs_tun_port IPV4: Neutron's OVS tunnel port name, vxlan-<remote IPv4 as 8 hex digits>.
ovs_tun_port() { local a b c d; IFS=. read -r a b c d <<<"$1"; printf 'vxlan-%02x%02x%02x%02x' "$a" "$b" "$c" "$d"; }
ha_link() { # HOST FIELD: host_if|host_ip|tor_if|tor_ip of HOST's underlay link
    local l a
    for l in "${HA_LINKS[@]}"; do
        read -r -a a <<<"$l"
        [[ ${a[0]} == "$1" ]] || continue
        case $2 in host_if) echo "${a[1]}" ;; host_ip) echo "${a[2]}" ;; tor_if) echo "${a[3]}" ;; tor_ip) echo "${a[4]}" ;; esac
        return 0
    done
    return 1
}
vtep() { ha_link "$1" host_ip; }
ha_confs() { echo "$DIR/$1/ha_confs"; }
ha_conf_dir() { echo "$DIR/$1/ha_confs/$HA_ROUTER_ID"; }
ha_state_file() { echo "$(ha_conf_dir "$1")/state"; }
ka_pidfile() { echo "$(ha_confs "$1")/$HA_ROUTER_ID.pid"; }
ka_vrrp_pidfile() { echo "$(ha_confs "$1")/$HA_ROUTER_ID.pid-vrrp"; }
# host_mnt HOST: the mount namespace of HOST, held by its view process host-HOST.
host_mnt() { echo "/proc/$(daemon_pid "host-$1")/ns/mnt"; }
is_host() { local h; for h in "${HA_HOSTS[@]}"; do [[ $h == "$1" ]] && return 0; done; return 1; }

# hx HOST CMD...: run CMD "on" HOST: its netns and its mount namespace (own
# /run/netns, /run/openvswitch, /sys). nsenter opens both files before it enters.
hx() { local h=$1; shift; nsenter --mount="$(host_mnt "$h")" --net="/run/netns/$h" -- "$@"; }
# hnx HOST NS CMD...: run CMD in netns NS of HOST's view (qrouter-…, qdhcp-…).
hnx() { local h=$1 ns=$2; shift 2; nsenter --mount="$(host_mnt "$h")" -- ip netns exec "$ns" "$@"; }
# hip HOST ARGS...: `ip ARGS` with HOST's /run/netns (for `ip -n qrouter-…`).
hip() { local h=$1; shift; nsenter --mount="$(host_mnt "$h")" -- ip "$@"; }
ovsctl() { local h=$1; shift; nsenter --mount="$(host_mnt "$h")" -- ovs-vsctl --timeout=5 "$@"; }

# spawn_host NAME HOST CMD...: like spawn, in HOST's netns + mount namespace.
spawn_host() {
    local name=$1 h=$2; shift 2
    (
        setsid nsenter --mount="$(host_mnt "$h")" --net="/run/netns/$h" -- "$@" \
            </dev/null >>"$DIR/logs/$name.out" 2>&1 9>&- &
        echo "$!" >"$DIR/run/$name.spawn"
    )
}
# spawn_host_ns NAME HOST NS CMD...: like spawn, in netns NS of HOST's view.
spawn_host_ns() {
    local name=$1 h=$2 ns=$3; shift 3
    (
        setsid nsenter --mount="$(host_mnt "$h")" -- ip netns exec "$ns" "$@" \
            </dev/null >>"$DIR/logs/$name.out" 2>&1 9>&- &
        echo "$!" >"$DIR/run/$name.spawn"
    )
}

# build_host_view HOST: the mount namespace of a simulated host, held by a
# view process (host-HOST: `sleep infinity` in HOST's netns and that mount
# namespace). DIR/HOST/netns is a shared bind mount in the lab's mount
# namespace and --rbind over /run/netns in the host's, so that namespaces added
# there (`ip netns add` run on the host) also appear under DIR/HOST/netns in
# the lab's view. (A mount namespace cannot be pinned by bind-mounting its
# nsfs file here: the kernel refuses it, EINVAL, once shared mounts exist.)
build_host_view() {
    local h=$1 d=$DIR/$1
    mkdir -p "$d/netns" "$d/ovs" "$d/tmp"
    mount --bind "$d/netns" "$d/netns"
    mount --make-shared "$d/netns"
    rm -f "$DIR/run/host-$h.ready"
    # shellcheck disable=SC2016 # $1.. expand in the inner bash
    # (nsenter, not `ip netns exec`: that would turn the lab's mounts into slaves)
    (setsid nsenter --net="/run/netns/$h" -- unshare --mount --propagation unchanged -- bash -c '
        set -e
        # /run/netns is shared with the lab view: leave its peer group before covering it.
        if mountpoint -q /run/netns; then mount --make-private /run/netns; fi
        mount --rbind "$1/netns" /run/netns
        mount --bind "$1/ovs" /run/openvswitch
        umount -l /sys
        mount -t sysfs sysfs /sys
        : >"$2"
        exec -a "vmlab-host-view $3 $4" sleep infinity' bash "$d" "$DIR/run/host-$h.ready" "$h" "$DIR" \
        </dev/null >>"$DIR/logs/host-$h.out" 2>&1 9>&- &
        echo "$!" >"$DIR/run/host-$h.spawn")
}
host_view_ready() { [[ -e $DIR/run/host-$1.ready ]] && daemon_alive "host-$1"; }

build_ha_namespaces() {
    local ns h
    for ns in "${HA_NS[@]}"; do
        ip netns add "$ns"
        sysctl_ns "$ns" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
            net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
            net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
        ip -n "$ns" link set lo up
        stat -L -c "%i $ns" "/run/netns/$ns" >>"$DIR/run/netns.ids"
    done
    for ns in gwA gwB tor3; do
        sysctl_ns "$ns" net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
            net.ipv4.conf.default.send_redirects=0 net.ipv4.fib_multipath_hash_policy=1 \
            net.ipv4.icmp_ratelimit=0
    done
    mkdir -p /run/openvswitch
    for h in "${HA_HOSTS[@]}"; do build_host_view "$h"; done
    for h in "${HA_HOSTS[@]}"; do
        poll_until 5 host_view_ready "$h" || holder_fail "the view of host $h did not come up (see $DIR/logs/host-$h.out)"
    done
}

# veth_pair NSA IFA NSB IFB [MTU]: a veth between two netns of the lab view.
build_ha_links() {
    local l a h
    for l in "${HA_LINKS[@]}"; do
        read -r -a a <<<"$l"
        ip -n "${a[0]}" link add "${a[1]}" mtu "$HA_UL_MTU" type veth peer name "${a[3]}" mtu "$HA_UL_MTU" netns "$HA_TOR"
        ip -n "${a[0]}" addr add "${a[2]}/31" dev "${a[1]}"
        ip -n "$HA_TOR" addr add "${a[4]}/31" dev "${a[3]}"
        ip -n "${a[0]}" link set "${a[1]}" up
        ip -n "$HA_TOR" link set "${a[3]}" up
        ip -n "${a[0]}" route add "$HA_UL_NET" via "${a[4]}" dev "${a[1]}"
    done
    # tor3: L2 switch + gateway (198.18.40.1) of the external network.
    ip -n "$HA_TOR" link add br-ext type bridge
    ip -n "$HA_TOR" addr add "$HA_EXT_GW/24" dev br-ext
    for h in "${HA_GWS[@]}"; do
        ip -n "$h" link add eth-ext mtu "$HA_EXT_MTU" type veth peer name "ext-$h" mtu "$HA_EXT_MTU" netns "$HA_TOR"
        ip -n "$HA_TOR" link set "ext-$h" master br-ext up
        ip -n "$h" link set eth-ext up
    done
    ip -n "$HA_TOR" link set br-ext up
    # VXLAN (kernel devices, outer DF set like OVS df_default=true), full mesh by
    # head-end replication: tenant VNI on all three hosts, HA VNI on the gateways.
    for h in "${HA_HOSTS[@]}"; do
        ha_vxlan "$h" "$HA_VNI"
        [[ $h == "$HA_CMP" ]] || ha_vxlan "$h" "$HA_HA_VNI"
    done
    # tvm1: the VM on cmp1 (its tap is the host end of a veth, plugged into br-int).
    ip -n "$HA_CMP" link add "$(tap_of "$HA_VM_PORT")" mtu "$HA_MTU" type veth \
        peer name eth0 address "$HA_VM_MAC" mtu "$HA_MTU" netns "$HA_VM"
    ip -n "$HA_CMP" link set "$(tap_of "$HA_VM_PORT")" up
    ip -n "$HA_VM" addr add "$HA_VM_IP/24" dev eth0
    ip -n "$HA_VM" link set eth0 up
    ip -n "$HA_VM" route add default via "$HA_GW_IP" dev eth0
    # Traffic crosses the OVS userspace datapath: no checksum offload on the senders.
    nsx "$HA_VM" ethtool -K eth0 tx off >/dev/null
}

ha_vxlan() { # HOST VNI
    local h=$1 vni=$2 dev o
    dev=$(vxlan_if "$vni")
    # No `dev`: like OVS's vxlan_sys_4789, the device is not bound to its
    # underlay interface (the kernel would cap its MTU at underlay - 50); the
    # underlay is where the local address lives (eth-tor3).
    ip -n "$h" link add "$dev" mtu "$HA_MTU" type vxlan id "$vni" local "$(vtep "$h")" dstport 4789 df set
    for o in "${HA_HOSTS[@]}"; do
        [[ $o != "$h" ]] || continue
        [[ $vni == "$HA_VNI" || $o != "$HA_CMP" ]] || continue
        bridge -n "$h" fdb append 00:00:00:00:00:00 dev "$dev" dst "$(vtep "$o")"
    done
    ip -n "$h" link set "$dev" up
}

# build_router HOST: qrouter-<id> and qdhcp-<net> in HOST's own view, with
# veths whose host ends (tap<port11>) are OVS ports (Neutron's ovs_use_veth).
build_router() {
    local h=$1 qr qg ha dh
    qr=$(qr_if); qg=$(qg_if); ha=$(ha_if "$h"); dh=$(dhcp_if "$h")
    hip "$h" netns add "$(qrouter_ns)"
    hip "$h" netns add "$(qdhcp_ns)"
    local ns
    for ns in "$(qrouter_ns)" "$(qdhcp_ns)"; do
        hnx "$h" "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
            net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 >/dev/null
        hip "$h" -n "$ns" link set lo up
        stat -L -c "%i $h/$ns" "$DIR/$h/netns/$ns" >>"$DIR/run/netns.ids"
    done
    hnx "$h" "$(qrouter_ns)" sysctl -q -w net.ipv4.ip_forward=1 net.ipv4.ip_nonlocal_bind=1 \
        net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 >/dev/null
    hx "$h" ip link add "$(tap_of "$HA_QR_PORT")" mtu "$HA_MTU" type veth \
        peer name "$qr" address "$HA_QR_MAC" mtu "$HA_MTU" netns "$(qrouter_ns)"
    hx "$h" ip link add "$(tap_of "$HA_QG_PORT")" mtu "$HA_EXT_MTU" type veth \
        peer name "$qg" address "$HA_QG_MAC" mtu "$HA_EXT_MTU" netns "$(qrouter_ns)"
    hx "$h" ip link add "$(tap_of "${HA_HA_PORT[$h]}")" mtu "$HA_MTU" type veth \
        peer name "$ha" address "${HA_HA_MAC[$h]}" mtu "$HA_MTU" netns "$(qrouter_ns)"
    hx "$h" ip link add "$(tap_of "${HA_DHCP_PORT[$h]}")" mtu "$HA_MTU" type veth \
        peer name "$dh" address "${HA_DHCP_MAC[$h]}" mtu "$HA_MTU" netns "$(qdhcp_ns)"
    local t
    for t in "$HA_QR_PORT" "$HA_QG_PORT" "${HA_HA_PORT[$h]}" "${HA_DHCP_PORT[$h]}"; do
        ip -n "$h" link set "$(tap_of "$t")" up
    done
    hip "$h" -n "$(qrouter_ns)" addr add "${HA_HA_IP[$h]}/18" dev "$ha"
    hip "$h" -n "$(qdhcp_ns)" addr add "${HA_DHCP_IP[$h]}/24" dev "$dh"
    for t in "$qr" "$qg" "$ha"; do
        hip "$h" -n "$(qrouter_ns)" link set "$t" up
        hnx "$h" "$(qrouter_ns)" ethtool -K "$t" tx off >/dev/null
    done
    hip "$h" -n "$(qdhcp_ns)" link set "$dh" up
    hnx "$h" "$(qdhcp_ns)" ethtool -K "$dh" tx off >/dev/null
    # Neutron's L3 agent NAT chains (SNAT to the qg- address); they also make
    # conntrack track this namespace's traffic.
    gen_iptables_qrouter | hnx "$h" "$(qrouter_ns)" iptables-restore
}

start_keepalived() { # HOST
    local h=$1
    rm -f "$(ka_pidfile "$h")" "$(ka_vrrp_pidfile "$h")"
    # TMPDIR: where keepalived writes keepalived.data (SIGUSR1) and .stats (SIGUSR2).
    spawn_host_ns "keepalived-$h" "$h" "$(qrouter_ns)" env "TMPDIR=$DIR/$h/tmp" \
        keepalived -P -n -l -D -f "$(ha_conf_dir "$h")/keepalived.conf" \
        -p "$(ka_pidfile "$h")" -r "$(ka_vrrp_pidfile "$h")"
}

keepalived_pids() { # HOST: parent and VRRP child PIDs that are alive
    local h=$1 p
    for p in "$(daemon_pid "keepalived-$h")" "$(read_pid "$(ka_pidfile "$h")")" "$(read_pid "$(ka_vrrp_pidfile "$h")")"; do
        if [[ -n $p ]] && pid_alive "$p" "$(daemon_pattern "keepalived-$h")"; then echo "$p"; fi
    done | sort -u
}

# --- Open vSwitch (userspace datapath) ---
ovs_db_ready() { [[ -S $DIR/$1/ovs/db.sock ]] && ovsctl "$1" --no-wait show >/dev/null 2>&1; }

start_ovsdb() { # HOST
    local h=$1
    rm -f "$DIR/$h/ovs/conf.db"
    ovsdb-tool create "$DIR/$h/ovs/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    # Paths as seen on the host (/run/openvswitch = DIR/HOST/ovs there).
    spawn_host "ovsdb-$h" "$h" ovsdb-server /run/openvswitch/conf.db \
        --remote=punix:/run/openvswitch/db.sock --unixctl=/run/openvswitch/ovsdb-server.ctl \
        "--pidfile=$DIR/run/ovsdb-$h.pid" "--log-file=$DIR/logs/ovsdb-$h.log" -vconsole:off
}

start_vswitchd() { # HOST
    local h=$1
    spawn_host "vswitchd-$h" "$h" ovs-vswitchd unix:/run/openvswitch/db.sock \
        "--pidfile=$DIR/run/vswitchd-$h.pid" "--log-file=$DIR/logs/vswitchd-$h.log" -vconsole:off
}

# ovs_port_args BRIDGE DEV PORT_UUID MAC TAG MTU [NET SEGID]: ovs-vsctl arguments
# for a Neutron-style port (Interface external_ids, Port tag and other_config).
ovs_port_args() {
    local br=$1 dev=$2 port=$3 mac=$4 tag=$5 mtu=$6 net=${7:-} seg=${8:-}
    printf '%s\n' -- --may-exist add-port "$br" "$dev"
    if [[ -n $tag ]]; then printf '%s\n' -- set Port "$dev" "tag=$tag"; fi
    if [[ -n $net ]]; then
        printf '%s\n' -- set Port "$dev" "other_config:net_uuid=$net" other_config:network_type=vxlan \
            "other_config:segmentation_id=$seg" "other_config:tag=$tag" other_config:physical_network=None
    fi
    printf '%s\n' -- set Interface "$dev" "external_ids:iface-id=$port" "external_ids:attached-mac=$mac" \
        external_ids:iface-status=active "mtu_request=$mtu"
    if [[ $dev == "$(tap_of "$HA_VM_PORT")" ]]; then
        printf '%s\n' -- set Interface "$dev" "external_ids:vm-uuid=$HA_VM_UUID"
    fi
}

# ovs_configure HOST: the whole OVSDB content of HOST, one transaction
# (written before ovs-vswitchd starts: --no-wait).
ovs_configure() {
    local h=$1 args=() o
    args=(--no-wait -- init -- set Open_vSwitch . "external_ids:hostname=$h" "external_ids:system-id=$h"
        "external_ids:vmlab=$DIR"
        -- add-br br-int -- set Bridge br-int datapath_type=netdev fail_mode=standalone
        -- set Bridge br-int external_ids:bridge-id=br-int
        -- add-br br-tun -- set Bridge br-tun datapath_type=netdev fail_mode=standalone)
    # The Neutron OVS agent's tunnel ports (records of the mesh; in the lab the
    # frames travel through the kernel VXLAN devices plugged into br-int).
    for o in "${HA_HOSTS[@]}"; do
        [[ $o != "$h" ]] || continue
        args+=(-- add-port br-tun "$(ovs_tun_port "$(vtep "$o")")"
            -- set Interface "$(ovs_tun_port "$(vtep "$o")")" type=vxlan "options:remote_ip=$(vtep "$o")"
            "options:local_ip=$(vtep "$h")" options:key=flow options:in_key=flow options:out_key=flow
            options:df_default=true options:dst_port=4789)
    done
    args+=(-- add-port br-int "$(vxlan_if)" -- set Port "$(vxlan_if)" "tag=$HA_TAG")
    if [[ $h == "$HA_CMP" ]]; then
        mapfile -t -O "${#args[@]}" args < <(ovs_port_args br-int "$(tap_of "$HA_VM_PORT")" "$HA_VM_PORT" \
            "$HA_VM_MAC" "$HA_TAG" "$HA_MTU" "$HA_NET_ID" "$HA_VNI")
    else
        args+=(-- add-port br-int "$(vxlan_if "$HA_HA_VNI")" -- set Port "$(vxlan_if "$HA_HA_VNI")" "tag=$HA_HA_TAG")
        mapfile -t -O "${#args[@]}" args < <(
            ovs_port_args br-int "$(tap_of "$HA_QR_PORT")" "$HA_QR_PORT" "$HA_QR_MAC" "$HA_TAG" "$HA_MTU" "$HA_NET_ID" "$HA_VNI"
            ovs_port_args br-int "$(tap_of "${HA_DHCP_PORT[$h]}")" "${HA_DHCP_PORT[$h]}" "${HA_DHCP_MAC[$h]}" \
                "$HA_TAG" "$HA_MTU" "$HA_NET_ID" "$HA_VNI"
            ovs_port_args br-int "$(tap_of "${HA_HA_PORT[$h]}")" "${HA_HA_PORT[$h]}" "${HA_HA_MAC[$h]}" \
                "$HA_HA_TAG" "$HA_MTU" "$HA_HANET_ID" "$HA_HA_VNI")
        # External network: legacy external_network_bridge=br-ex (qg- plugged into br-ex).
        args+=(-- add-br br-ex -- set Bridge br-ex datapath_type=netdev fail_mode=standalone
            -- add-port br-ex eth-ext)
        mapfile -t -O "${#args[@]}" args < <(ovs_port_args br-ex "$(tap_of "$HA_QG_PORT")" "$HA_QG_PORT" \
            "$HA_QG_MAC" "" "$HA_EXT_MTU")
    fi
    ovsctl "$h" "${args[@]}" >/dev/null
}

# ovs_expected_ports HOST: "bridge port" lines that must exist with an ofport.
ovs_expected_ports() {
    local h=$1 o
    echo "br-int $(vxlan_if)"
    for o in "${HA_HOSTS[@]}"; do [[ $o == "$h" ]] || echo "br-tun $(ovs_tun_port "$(vtep "$o")")"; done
    if [[ $h == "$HA_CMP" ]]; then
        echo "br-int $(tap_of "$HA_VM_PORT")"
    else
        echo "br-int $(vxlan_if "$HA_HA_VNI")"
        echo "br-int $(tap_of "$HA_QR_PORT")"
        echo "br-int $(tap_of "${HA_DHCP_PORT[$h]}")"
        echo "br-int $(tap_of "${HA_HA_PORT[$h]}")"
        echo "br-ex eth-ext"
        echo "br-ex $(tap_of "$HA_QG_PORT")"
    fi
}

# ovs_problems HOST: deviations of HOST's OVS from the healthy state.
ovs_problems() {
    local h=$1 out br port line
    local ports
    out=$(ovsctl "$h" --format=csv --no-headings --columns=name,ofport,error list Interface \
        -- --columns=name,tag list Port 2>&1) || { echo "$h: ovs-vsctl failed: ${out##*$'\n'}"; return 0; }
    # (list Interface rows have 3 columns, list Port rows 2)
    ports=$(awk -F, 'NF == 2' <<<"$out")
    while read -r br port; do
        line=$(grep -m1 "^$port," <<<"$out" || true)
        if [[ -z $line ]]; then echo "$h: OVS port $port missing on $br"; continue; fi
        [[ $line =~ ^[^,]+,[1-9][0-9]*,\"?\[\]\"?$ ]] || echo "$h: OVS interface $port not working: $line"
    done < <(ovs_expected_ports "$h")
    while read -r port want; do
        line=$(grep -m1 "^$port," <<<"$ports" || true)
        [[ ${line#*,} == "$want" ]] || echo "$h: OVS port $port tag ${line#*,} (want $want)"
    done < <(ovs_expected_tags "$h")
}

# ovs_expected_tags HOST: "port tag" of the tagged (local VLAN) ports.
ovs_expected_tags() {
    local h=$1
    echo "$(vxlan_if) $HA_TAG"
    if [[ $h == "$HA_CMP" ]]; then
        echo "$(tap_of "$HA_VM_PORT") $HA_TAG"
    else
        echo "$(vxlan_if "$HA_HA_VNI") $HA_HA_TAG"
        echo "$(tap_of "$HA_QR_PORT") $HA_TAG"
        echo "$(tap_of "${HA_DHCP_PORT[$h]}") $HA_TAG"
        echo "$(tap_of "${HA_HA_PORT[$h]}") $HA_HA_TAG"
    fi
}

ovs_ready() { [[ -z $(ovs_problems "$1") ]]; }

# br-ex's own port (the host's address on the external network), once
# ovs-vswitchd created it, and the kernel route to the tenant prefix via the
# router's qg- address that BIRD/zebra learn and advertise.
ha_brex_up() {
    local h=$1
    ip -n "$h" link show br-ex >/dev/null 2>&1 || return 1
    ip -n "$h" addr replace "${HA_BREX_IP[$h]}/24" dev br-ex
    ip -n "$h" link set br-ex up
    ip -n "$h" route replace "$HA_TENANT_NET" via "$HA_QG_IP" dev br-ex proto static
}

# build_ha_early: first thing in the build (VRRP needs ~3.6 s to elect):
# namespaces, links, host views, gwA's router and its keepalived.
build_ha_early() {
    build_ha_namespaces
    build_ha_links
    build_router gwA; gen_keepalived gwA
    # keepalived on gwA first: it becomes primary (~3.6 s); gwB starts later
    # and finds it (nopreempt keeps gwA primary). ensure_ha_primary fixes races.
    start_keepalived gwA
    HA_T0=$(now_ms)
}

# build_ha: the rest of the HA part (built while BGP converges); daemons are
# started, convergence is left to wait.
build_ha() {
    local h
    build_router gwB; gen_keepalived gwB
    for h in "${HA_HOSTS[@]}"; do start_ovsdb "$h"; done
    gen_bird_gw; gen_frr_gw; gen_frr_tor3
    chown -R frr:frr "$DIR/etc-frr"
    chmod -R u=rwX,g=rX,o= "$DIR/etc-frr"
    spawn_host bird-gwA gwA bird -f -c "$DIR/gwA/bird.conf" -s "$(bird_sock gwA)" -P "$DIR/run/bird-gwA.pid"
    start_frr_daemon zebra gwB host
    start_frr_daemon zebra "$HA_TOR"
    for h in "${HA_HOSTS[@]}"; do
        poll_until 10 ovs_db_ready "$h" || holder_fail "ovsdb-server on $h not ready (see $DIR/logs/ovsdb-$h.log)"
        ovs_configure "$h"
        start_vswitchd "$h"
    done
    for h in gwB "$HA_TOR"; do
        poll_until 15 zserv_ready "$h" || holder_fail "zebra on $h did not open its zserv socket"
    done
    start_frr_daemon bgpd gwB host
    start_frr_daemon bgpd "$HA_TOR"
    for h in "${HA_GWS[@]}"; do
        poll_until 10 ha_brex_up "$h" || holder_fail "ovs-vswitchd on $h did not create br-ex"
    done
    # gwB's keepalived at least 1 s after gwA's (one advert interval).
    while (($(now_ms) - HA_T0 < 1000 * HA_ADVERT_INT)); do sleep 0.1; done
    start_keepalived gwB
    local d a
    for d in "${DAEMONS[@]}"; do
        read -r -a a <<<"$d"
        is_ha_daemon "${a[0]}" || continue
        daemon_alive "${a[0]}" || holder_fail "daemon ${a[0]} died at start (see $DIR/logs/${a[0]}.out)"
    done
}

is_ha_daemon() { [[ $1 == *-gwA || $1 == *-gwB || $1 == *-cmp1 || $1 == *-tor3 ]]; }

# --- VRRP state as the addresses and the state files show it ---
# ha_addr_state HOST: "vip gw qg route" flags (1/0) of HOST's qrouter namespace.
ha_addr_state() {
    local h=$1 a r vip=0 gw=0 qg=0 rt=0
    a=$(hip "$h" -n "$(qrouter_ns)" -4 -o addr show 2>/dev/null) || true
    r=$(hip "$h" -n "$(qrouter_ns)" -4 route show default 2>/dev/null) || true
    [[ $a == *" $(ha_if "$h") "*"inet $HA_VIP/24 "* ]] && vip=1
    [[ $a == *" $(qr_if) "*"inet $HA_GW_IP/24 "* ]] && gw=1
    [[ $a == *" $(qg_if) "*"inet $HA_QG_IP/24 "* ]] && qg=1
    [[ $r == *"via $HA_EXT_GW dev $(qg_if)"* ]] && rt=1
    echo "$vip $gw $qg $rt"
}

ha_state_of() { local s=""; read -r s <"$(ha_state_file "$1")" 2>/dev/null || true; echo "${s:-none}"; }

# ha_role HOST: primary, backup, or "inconsistent: …".
ha_role() {
    local h=$1 st vip gw qg rt
    st=$(ha_state_of "$h")
    read -r vip gw qg rt <<<"$(ha_addr_state "$h")"
    if [[ $st == primary && "$vip$gw$qg$rt" == 1111 ]]; then echo primary
    elif [[ $st == backup && "$vip$gw$qg$rt" == 0000 ]]; then echo backup
    else echo "inconsistent: state file '$st', VIP $vip, $HA_GW_IP $gw, $HA_QG_IP $qg, default route $rt"
    fi
}

ha_primaries() { local h; for h in "${HA_GWS[@]}"; do [[ $(ha_role "$h") == primary ]] && echo "$h"; done; return 0; }
ha_primary_is() { [[ $(ha_primaries | tr '\n' ' ') == "$1 " && $(ha_role "$(ha_other "$1")") == backup ]]; }
ha_one_primary() { [[ $(ha_primaries | grep -c .) == 1 ]]; }
ha_other() { if [[ $1 == gwA ]]; then echo gwB; else echo gwA; fi; }
ha_vip_on() { local v; read -r v _ <<<"$(ha_addr_state "$1")"; [[ $v == 1 ]]; }

frr_peer_state() { frr_peer_states "$1" | awk -v p="$2" '$1 == p {print $2}'; }

tor3_nexthops() { # gateways that tor3 uses for the tenant prefix
    local out h
    out=$(ip -n "$HA_TOR" -4 route show "$HA_TENANT_NET")
    for h in "${HA_GWS[@]}"; do
        [[ $out == *"via $(ha_link "$h" host_ip) "* ]] && echo "$h"
    done
    return 0
}

ha_problems() {
    local h out line n role prim=()
    for h in "${HA_GWS[@]}"; do
        role=$(ha_role "$h")
        case $role in primary) prim+=("$h") ;; backup) ;; *) echo "$h: VRRP $role" ;; esac
    done
    ((${#prim[@]} == 1)) || echo "HA: ${#prim[@]} primaries (want exactly 1): ${prim[*]}"
    out=$(birdc_ns gwA show protocols "$HA_TOR" 2>&1) || true
    [[ $out == *Established* ]] || echo "gwA: BGP $HA_TOR not Established: $(tail -n1 <<<"$out")"
    line=$(frr_peer_state gwB "$(ha_link gwB tor_ip)")
    [[ $line == Established ]] || echo "gwB: BGP $(ha_link gwB tor_ip) ($HA_TOR) not Established: ${line:-missing}"
    out=$(frr_peer_states "$HA_TOR")
    for h in "${HA_GWS[@]}"; do
        line=$(awk -v p="$(ha_link "$h" host_ip)" '$1 == p {print $2}' <<<"$out")
        [[ $line == Established ]] || echo "$HA_TOR: BGP $(ha_link "$h" host_ip) ($h) not Established: ${line:-missing}"
    done
    n=$(tor3_nexthops | tr '\n' ' ')
    [[ $n == "gwA gwB " ]] || echo "$HA_TOR: $HA_TENANT_NET via [${n% }] (want ECMP via gwA and gwB)"
    for h in "${HA_HOSTS[@]}"; do ovs_problems "$h"; done
}

# ensure_ha_primary HOST: make HOST the primary (bounded). When the other
# gateway is primary, its keepalived is restarted (SIGTERM hands over at once:
# priority-0 advertisement), then started again as backup.
ensure_ha_primary() {
    local want=$1 other p
    other=$(ha_other "$want")
    poll_until 12 ha_one_primary || return 1
    ha_primary_is "$want" && return 0
    msg "VRRP: $other is primary; restarting its keepalived so that $want takes over"
    for p in $(keepalived_pids "$other"); do stop_pid "$p" "$(daemon_pattern "keepalived-$other")" 5; done
    poll_until 10 eval "[[ \$(ha_role $want) == primary ]]" || return 1
    start_keepalived "$other"
    poll_until 10 ha_primary_is "$want"
}
