# shellcheck shell=bash
# vmlab: building the routed part: hypervisors, ToRs, VMs, firewalls, daemons.
# (sourced by lab/vmlab, which sets the shell options and the paths).

# ---------------------------------------------------------------------------
# Building the lab (runs in the holder)
# ---------------------------------------------------------------------------
build_namespaces() {
    local ns
    for ns in "${ALL_NS[@]}"; do
        ip netns add "$ns"
        # No IPv6 DAD in the lab: addresses (link-local ones included, which
        # are BGP next hops) are usable at once, also after a tap goes up again.
        sysctl_ns "$ns" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
        ip -n "$ns" link set lo up
        stat -L -c "%i $ns" "/run/netns/$ns" >>"$DIR/run/netns.ids"
    done
    for ns in "${ROUTER_NS[@]}" ext1; do
        sysctl_ns "$ns" net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
            net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
            net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1 \
            net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
    done
    for ns in "${ROUTER_NS[@]}"; do
        sysctl_ns "$ns" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
            net.ipv6.conf.default.forwarding=1 net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
    done
    for ns in "${VMS[@]}"; do
        sysctl_ns "$ns" net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
    done
}

build_links() {
    local l a i=0
    for l in "${LINKS[@]}"; do
        read -r -a a <<<"$l"
        i=$((i + 1))
        # Fixed, locally administered MACs: stable IPv6 link-local next hops.
        ip -n "${a[0]}" link add "${a[1]}" address "$(printf '02:00:00:00:%02x:01' "$i")" type veth \
            peer name "${a[5]}" address "$(printf '02:00:00:00:%02x:02' "$i")" netns "${a[4]}"
        ip -n "${a[0]}" addr add "${a[2]}/31" dev "${a[1]}"
        ip -n "${a[0]}" addr add "${a[3]}/64" dev "${a[1]}" nodad
        ip -n "${a[4]}" addr add "${a[6]}/31" dev "${a[5]}"
        ip -n "${a[4]}" addr add "${a[7]}/64" dev "${a[5]}" nodad
        ip -n "${a[0]}" link set "${a[1]}" up
        ip -n "${a[4]}" link set "${a[5]}" up
    done
    # ext1: the external host, ECMP default via both ToRs.
    ip -n ext1 addr add "$EXT4/32" dev lo
    ip -n ext1 addr add "$EXT6/128" dev lo nodad
    ip -n ext1 route add default src "$EXT4" \
        nexthop via "$(link_field ext1 tor1 peer_v4)" dev eth-tor1 \
        nexthop via "$(link_field ext1 tor2 peer_v4)" dev eth-tor2
    ip -n ext1 -6 route add default src "$EXT6" \
        nexthop via "$(link_field ext1 tor1 peer_v6)" dev eth-tor1 \
        nexthop via "$(link_field ext1 tor2 peer_v6)" dev eth-tor2
    # tor2 (FRR): static routes to ext1 as kernel routes, redistributed into BGP.
    # (tor1's are a BIRD static protocol.)
    ip -n tor2 route add "$EXT_NET4" via "$(link_field tor2 ext1 peer_v4)" dev eth-ext1 proto static
    ip -n tor2 -6 route add "$EXT_NET6" via "$(link_field tor2 ext1 peer_v6)" dev eth-ext1 proto static
}

# build_vm VM: the VM namespace and the veth pair whose hv end is the tap.
build_vm() {
    local vm=$1 hv=${VM_HV[$1]} tap
    tap=$(vm_tap "$vm")
    ip -n "$hv" link add "$tap" address "$(vm_hmac "$vm")" mtu "$MTU" type veth \
        peer name eth0 address "$(vm_mac "$vm")" mtu "$MTU" netns "$vm"
    ip -n "$vm" link set eth0 up
    ip -n "$vm" addr add "${VM_IP4[$vm]}/24" dev eth0
    ip -n "$vm" route add default via "$GW4" dev eth0
    if [[ -n ${VM_IP6[$vm]} ]]; then
        ip -n "$vm" addr add "${VM_IP6[$vm]}/64" dev eth0 nodad
        ip -n "$vm" -6 route add default via "$GW6" dev eth0
    fi
    ensure_vm_tap "$vm"
}

# ensure_vm_tap VM: idempotently put VM's tap on its hypervisor into the
# healthy state (link, MTU, gateway addresses with noprefixroute, sysctls,
# neighbours, host routes). Used by build and by `clear`.
ensure_vm_tap() {
    local vm=$1 hv=${VM_HV[$1]} tap out other ip6=${VM_IP6[$1]}
    tap=$(vm_tap "$vm")
    sysctl_ns "$hv" "net.ipv4.conf.$tap.proxy_arp=1" "net.ipv4.neigh.$tap.proxy_delay=0" \
        "net.ipv4.conf.$tap.forwarding=1" "net.ipv4.conf.$tap.rp_filter=0" \
        "net.ipv6.conf.$tap.proxy_ndp=1" "net.ipv6.conf.$tap.forwarding=1" \
        "net.ipv6.conf.$tap.accept_dad=0"
    ip -n "$hv" link set "$tap" mtu "$MTU" up
    # Gateway address: must carry noprefixroute (`ip addr replace` keeps old
    # flags, so delete and re-add when it is wrong).
    out=$(ip -n "$hv" -4 addr show dev "$tap")
    if [[ $out == *"inet $GW4/24 "* && $out != *noprefixroute* ]]; then
        ip -n "$hv" addr del "$GW4/24" dev "$tap"; out=""
    fi
    if [[ $out != *"inet $GW4/24 "* ]]; then
        ip -n "$hv" addr add "$GW4/24" dev "$tap" noprefixroute
    fi
    if [[ -n $ip6 ]]; then
        out=$(ip -n "$hv" -6 addr show dev "$tap")
        if [[ $out == *"inet6 $GW6/64 "* && $out != *noprefixroute* ]]; then
            ip -n "$hv" addr del "$GW6/64" dev "$tap"; out=""
        fi
        if [[ $out != *"inet6 $GW6/64 "* ]]; then
            ip -n "$hv" addr add "$GW6/64" dev "$tap" noprefixroute nodad
        fi
    fi
    # Felix-style permanent neighbour entries with the VM MAC.
    ip -n "$hv" neigh replace "${VM_IP4[$vm]}" lladdr "$(vm_mac "$vm")" dev "$tap" nud permanent
    if [[ -n $ip6 ]]; then
        ip -n "$hv" -6 neigh replace "$ip6" lladdr "$(vm_mac "$vm")" dev "$tap" nud permanent
        # proxy NDP for the other IPv6 VMs of this hypervisor (none in the default topology)
        for other in $(hv_vms "$hv"); do
            if [[ $other != "$vm" && -n ${VM_IP6[$other]} ]]; then
                ip -n "$hv" -6 neigh replace proxy "${VM_IP6[$other]}" dev "$tap"
            fi
        done
    fi
    # Host routes: exactly one, on this tap, proto static, scope link.
    out=$(ip -n "$hv" -4 route show "${VM_IP4[$vm]}/32")
    if [[ $out != "${VM_IP4[$vm]} dev $tap proto static scope link " ]]; then
        ip -n "$hv" route replace "${VM_IP4[$vm]}/32" dev "$tap" proto static scope link
    fi
    if [[ -n $ip6 ]]; then
        out=$(ip -n "$hv" -6 route show "$ip6/128")
        if [[ $out != "$ip6 dev $tap proto static metric 1024 pref medium" ]]; then
            ip -n "$hv" -6 route replace "$ip6/128" dev "$tap" proto static metric 1024
        fi
    fi
}

build_firewalls() {
    gen_iptables_hv1 4 >"$DIR/hv1/iptables.rules"
    gen_iptables_hv1 6 >"$DIR/hv1/ip6tables.rules"
    gen_nft_hv2 >"$DIR/hv2/nftables.nft"
    nsx hv1 iptables-restore <"$DIR/hv1/iptables.rules"
    nsx hv1 ip6tables-restore <"$DIR/hv1/ip6tables.rules"
    nsx hv2 nft -f "$DIR/hv2/nftables.nft"
}

start_bird() { # NODE
    local node=$1
    spawn "bird-$node" "$node" bird -f -c "$DIR/$node/bird.conf" -s "$(bird_sock "$node")" \
        -P "$DIR/run/bird-$node.pid"
}

start_frr_daemon() { # DAEMON NODE [host]: "host" runs it on the simulated host NODE (own mount ns)
    local d=$1 node=$2 f
    for f in "$DIR/run/$d-$node.pid" "$DIR/logs/$d-$node.log"; do
        : >"$f"; chown frr:frr "$f"
    done
    if [[ ${3:-} == host ]]; then
        spawn_host "$d-$node" "$node" "$FRR_BIN/$d" -N "$node" -P 0 -f "/etc/frr/$node/$d.conf" \
            -i "$DIR/run/$d-$node.pid"
        return 0
    fi
    spawn "$d-$node" "$node" "$FRR_BIN/$d" -N "$node" -P 0 -f "/etc/frr/$node/$d.conf" \
        -i "$DIR/run/$d-$node.pid"
}

start_dnsmasq() { # HV
    local hv=$1
    # A hosts file too (empty unless the neutron-dhcp-hostsfile variant fills it), as Neutron's
    # DHCP agent uses one.
    [[ -e $DIR/$hv/dhcp-hostsfile ]] || : >"$DIR/$hv/dhcp-hostsfile"
    spawn "dnsmasq-$hv" "$hv" dnsmasq --keep-in-foreground --port=0 --no-resolv --no-hosts \
        --conf-file=/dev/null '--interface=tap*' --bind-dynamic \
        "--dhcp-range=set:net1,${VM_NET4%/*},static,255.255.255.0,86400s" \
        "--dhcp-option=tag:net1,option:router,$GW4" "--dhcp-option-force=option:mtu,$MTU" \
        "--dhcp-hostsdir=$DIR/$hv/dhcp-hosts" "--dhcp-hostsfile=$DIR/$hv/dhcp-hostsfile" \
        "--pid-file=$DIR/run/dnsmasq-$hv.pid" \
        "--dhcp-leasefile=$DIR/$hv/leases" "--log-facility=$DIR/logs/dnsmasq-$hv.log" --log-dhcp
}

start_metadata() { # HV
    local hv=$1
    spawn "metadata-$hv" "$hv" "$(python_bin)" -m http.server "$METADATA_PORT" --bind 0.0.0.0 \
        --directory "$DIR/$hv/metadata"
}

# TCP connect to HOST:PORT from netns NS (bash /dev/tcp, bounded by timeout).
tcp_probe() { # NS HOST PORT [SECONDS]
    # shellcheck disable=SC2016 # $0/$1 expand in the inner bash
    ip netns exec "$1" timeout "${4:-1}" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$2" "$3" 2>/dev/null
}

metadata_listening() { tcp_probe "$1" 127.0.0.1 "$METADATA_PORT"; }

zserv_ready() { [[ -S /run/frr/$1/zserv.api ]]; }

start_daemons() {
    local hv node
    for hv in "${HVS[@]}"; do
        mkdir -p "$DIR/$hv/dhcp-hosts" "$DIR/$hv/metadata/openstack/latest"
        printf 'vmlab metadata proxy on %s\n' "$hv" >"$DIR/$hv/metadata/index.html"
        printf '{"hypervisor": "%s"}\n' "$hv" >"$DIR/$hv/metadata/openstack/latest/meta_data.json"
    done
    for hv in "${HVS[@]}"; do
        for vm in $(hv_vms "$hv"); do write_dhcp_host "$vm"; done
    done
    gen_bird_hv1; gen_bird_tor1; gen_frr_hv2; gen_frr_tor2
    chown -R frr:frr "$DIR/etc-frr"
    chmod -R u=rwX,g=rX,o= "$DIR/etc-frr"
    start_bird hv1; start_bird tor1
    for node in hv2 tor2; do start_frr_daemon zebra "$node"; done
    for hv in "${HVS[@]}"; do start_dnsmasq "$hv"; start_metadata "$hv"; done
    for node in hv2 tor2; do
        poll_until 15 zserv_ready "$node" || holder_fail "zebra on $node did not open its zserv socket"
        start_frr_daemon bgpd "$node"
    done
    for hv in "${HVS[@]}"; do
        poll_until 15 metadata_listening "$hv" || holder_fail "metadata proxy on $hv not listening"
    done
    local d a
    for d in "${DAEMONS[@]}"; do
        read -r -a a <<<"$d"
        [[ ${a[0]} != listener-* ]] || continue   # started by build_probe
        is_ha_daemon "${a[0]}" && continue        # started by build_ha
        daemon_alive "${a[0]}" || holder_fail "daemon ${a[0]} died at start (see $DIR/logs/${a[0]}.out)"
    done
}
