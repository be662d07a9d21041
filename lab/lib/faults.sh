# shellcheck shell=bash
# vmlab: planting and clearing faults (run inside the lab).
# (sourced by lab/vmlab, which sets the shell options and the paths).

# ---------------------------------------------------------------------------
# Faults (run inside the lab)
# ---------------------------------------------------------------------------
# start_dnsmasq_wait HV: (re)start dnsmasq on HV and wait until it runs.
start_dnsmasq_wait() {
    local hv=$1 pid
    start_dnsmasq "$hv"
    pid=$(daemon_pid "dnsmasq-$hv")
    poll_until 5 eval "[[ \$(read_pid '$DIR/run/dnsmasq-$hv.pid') == $pid ]]" ||
        die "dnsmasq on $hv did not start (see $DIR/logs/dnsmasq-$hv.out)"
}

# dnsmasq_hup HV: SIGHUP dnsmasq (re-reads --dhcp-hostsdir) and wait until it
# logged the re-read. dnsmasq 2.90 (Debian 12) segfaults on SIGHUP once it has
# answered a client whose dhcp-host line carries a `set:` tag; when that
# happens it is restarted, so that a DHCP fault stays a DHCP-file fault.
dnsmasq_hup() {
    local hv=$1 pid log before
    pid=$(daemon_pid "dnsmasq-$hv")
    if [[ -z $pid ]] || ! pid_alive "$pid" "$(daemon_pattern "dnsmasq-$hv")"; then
        msg "dnsmasq on $hv is not running; starting it"
        start_dnsmasq_wait "$hv"
        return 0
    fi
    log=$DIR/logs/dnsmasq-$hv.log
    before=$(stat -c %s "$log")
    kill -HUP "$pid"
    poll_until 5 eval "(( \$(stat -c %s '$log') > $before )) || ! pid_alive $pid" || true
    sleep 0.3
    if ! pid_alive "$pid" "$(daemon_pattern "dnsmasq-$hv")"; then
        msg "warning: dnsmasq on $hv died on SIGHUP (known dnsmasq bug with set: tags); restarting it"
        start_dnsmasq_wait "$hv"
    fi
}

# ensure_daemons: restart the stateless daemons (dnsmasq, metadata proxy, srv1's listener) that
# are not running. Part of every `clear`.
ensure_daemons() {
    local hv
    for hv in "${HVS[@]}"; do
        if ! daemon_alive "dnsmasq-$hv"; then
            msg "dnsmasq on $hv was not running; restarting it"
            start_dnsmasq_wait "$hv"
        fi
        if ! daemon_alive "metadata-$hv"; then
            [[ -e $DIR/faults/metadata-down.planted && $hv == hv1 ]] && continue
            msg "metadata proxy on $hv was not running; restarting it"
            start_metadata "$hv"
            poll_until 15 metadata_listening "$hv" || die "metadata proxy on $hv does not listen"
        fi
    done
    if ! daemon_alive listener-srv1; then
        msg "listener on srv1 was not running; restarting it"
        start_listener
        poll_until 10 listener_listening || die "listener on srv1 does not listen"
    fi
    # keepalived (unless a fault keeps it down): restarted, then gwA made primary.
    local restarted=0
    if [[ ! -e $DIR/faults/keepalived-killed.planted && ! -e $DIR/faults/no-primary.planted ]]; then
        for hv in "${HA_GWS[@]}"; do
            if ! ha_keepalived_running "$hv"; then
                msg "keepalived on $hv was not running; restarting it"
                start_keepalived "$hv"; restarted=1
                sleep "$HA_ADVERT_INT"
            fi
        done
        if ((restarted)); then
            poll_until 15 ha_one_primary || true
            ensure_ha_primary gwA || msg "warning: could not make gwA the primary again"
        fi
    fi
}

bird_configure() { # NODE
    local out
    out=$(birdc_ns "$1" configure 2>&1) || die "birdc configure on $1 failed: $out"
    [[ $out == *Reconfigured* || $out == *"Reconfiguration in progress"* ]] || die "birdc configure on $1: $out"
}

tor_has_route() { # TOR PREFIX
    local fam=-4
    [[ $2 == *:* ]] && fam=-6
    [[ -n $(ip -n "$1" "$fam" route show "$2") ]]
}
tor_lacks_route() { ! tor_has_route "$@"; }

bird_not_established() { # NODE PROTO
    local out
    out=$(birdc_ns "$1" show protocols "$2" 2>&1) || return 0
    [[ $out != *Established* ]]
}

frr_not_established() { # NODE PEER
    local st
    st=$(frr_peer_states "$1" | awk -v p="$2" '$1 == p {print $2}')
    [[ $st != Established ]]
}

# Send a few real TCP SYNs from ext1 to DST:22 (they are dropped: bounded by timeout 1).
syn_burst() { # DST
    local i pids=()
    for i in 1 2 3; do
        tcp_probe ext1 "$1" 22 1 &
        pids+=("$!")
    done
    for i in "${pids[@]}"; do wait "$i" || true; done
}

ipt_hv1() { nsx hv1 iptables -w 5 "$@"; }

# iptables rules that hook VM's chains: "chain position rule..." (1-based
# position in the healthy ruleset).
sg_hook_rules() { # VM
    local vm=$1 idx=0 v tap p10
    for v in $(hv_vms hv1); do
        [[ $v == "$vm" ]] && break
        idx=$((idx + 1))
    done
    tap=$(vm_tap "$vm"); p10=$(vm_port10 "$vm")
    echo "$SG_BIN-FORWARD $((2 * idx + 1)) -o $tap -j $SG_BIN-sg-chain"
    echo "$SG_BIN-FORWARD $((2 * idx + 2)) -i $tap -j $SG_BIN-sg-chain"
    echo "$SG_BIN-sg-chain $((2 * idx + 1)) -o $tap -j $SG_BIN-i$p10"
    echo "$SG_BIN-sg-chain $((2 * idx + 2)) -i $tap -j $SG_BIN-o$p10"
    echo "$SG_BIN-INPUT $((idx + 1)) -i $tap -j $SG_BIN-o$p10"
}

nft_sg_drop_handles() { # TAP
    nsx hv2 nft -a list chain inet vmsg "tw-$1" | awk '/tcp dport 22 counter packets [0-9]+ bytes [0-9]+ drop/ {print $NF}'
}

iptables_counter_nonzero() { # CHAIN (rule 1)
    local n
    n=$(ipt_hv1 -L "$1" 1 -v -x -n | awk 'NR == 1 {print $1}')
    [[ $n =~ ^[0-9]+$ ]] && ((n > 0))
}

nft_counter_nonzero() { # TAP
    local out
    out=$(nsx hv2 nft list chain inet vmsg "tw-$1")
    [[ $out =~ tcp\ dport\ 22\ counter\ packets\ ([0-9]+) ]] && ((BASH_REMATCH[1] > 0))
}

# plant NAME: create the fault and wait (bounded) until its effect is visible.
plant() {
    local name=$1 vm1tap vm2tap vm3tap
    vm1tap=$(vm_tap vm1); vm2tap=$(vm_tap vm2); vm3tap=$(vm_tap vm3)
    case $name in
    tap-missing)
        # The VM's NIC is gone from the hypervisor (the veth pair: vm1 loses eth0 too).
        ip -n hv1 link del "$vm1tap"
        poll_until 20 tor_lacks_route tor1 "${VM_IP4[vm1]}/32" || msg "warning: tor1 still has vm1's /32"
        ;;
    tap-down)
        ip -n hv1 link set "$vm1tap" down
        # The kernel flushes the tap's routes (and IPv6 addresses) on link down.
        poll_until 20 tor_lacks_route tor1 "${VM_IP4[vm1]}/32" || msg "warning: tor1 still has vm1's /32"
        ;;
    mtu) ip -n hv1 link set "$vm1tap" mtu 1500 ;;
    gw-missing)
        ip -n hv1 addr del "$GW4/24" dev "$vm1tap"
        # Removing the tap's last IPv4 address deleted its /32 too: put it back
        # so that only the gateway address is missing.
        ip -n hv1 route replace "${VM_IP4[vm1]}/32" dev "$vm1tap" proto static scope link
        poll_until 20 tor_has_route tor1 "${VM_IP4[vm1]}/32" || msg "warning: tor1 lacks vm1's /32"
        ;;
    gw-prefixroute)
        ip -n hv1 addr del "$GW4/24" dev "$vm1tap"
        ip -n hv1 addr add "$GW4/24" dev "$vm1tap"
        ip -n hv1 route replace "${VM_IP4[vm1]}/32" dev "$vm1tap" proto static scope link
        poll_until 20 tor_has_route tor1 "${VM_IP4[vm1]}/32" || msg "warning: tor1 lacks vm1's /32"
        ;;
    proxy-arp-off)
        sysctl_ns hv1 "net.ipv4.conf.$vm1tap.proxy_arp=0"
        ip -n vm1 neigh flush dev eth0
        ;;
    route-missing)
        ip -n hv1 route del "${VM_IP4[vm1]}/32" dev "$vm1tap"
        poll_until 20 tor_lacks_route tor1 "${VM_IP4[vm1]}/32" || msg "warning: tor1 still has vm1's /32"
        ;;
    route-wrong-tap)
        ip -n hv1 route replace "${VM_IP4[vm1]}/32" dev "$vm2tap" proto static scope link
        ;;
    dhcp-missing)
        rm -f "$DIR/hv1/dhcp-hosts/${VM_PORT[vm1]}"
        dnsmasq_hup hv1
        ;;
    dhcp-wrong-mac)
        write_dhcp_host vm1 fa:16:3e:00:00:99
        dnsmasq_hup hv1
        ;;
    metadata-down)
        local pid
        pid=$(daemon_pid metadata-hv1)
        if [[ -n $pid ]]; then stop_pid "$pid" "$(daemon_pattern metadata-hv1)"; fi
        ;;
    export-filter)
        touch "$DIR/faults/export-filter.flag"
        gen_bird_hv1
        bird_configure hv1
        poll_until 20 tor_lacks_route tor1 "${VM_IP4[vm1]}/32" || msg "warning: tor1 still has vm1's /32"
        ;;
    export-filter-hv2)
        vtysh_ns hv2 -c 'configure terminal' \
            -c "ip prefix-list VMLAB-FAULT seq 10 permit ${VM_IP4[vm3]}/32" \
            -c 'route-map TOR1-OUT deny 5' -c 'match ip address prefix-list VMLAB-FAULT' -c 'end' \
            -c "clear bgp ipv4 unicast $(link_field hv2 tor1 peer_v4) soft out" >/dev/null
        poll_until 20 tor_lacks_route tor1 "${VM_IP4[vm3]}/32" || msg "warning: tor1 still has vm3's /32"
        ;;
    bgp-down)
        vtysh_ns tor2 -c 'configure terminal' -c "router bgp ${ASN[tor2]}" \
            -c "neighbor $(link_field tor2 hv1 peer_v4) shutdown" \
            -c "neighbor $(link_field tor2 hv1 peer_v6) shutdown" -c 'end' >/dev/null
        poll_until 20 bird_not_established hv1 tor2 || msg "warning: hv1 still sees tor2 Established"
        ;;
    bgp-down-hv2)
        birdc_ns tor1 disable hv2 >/dev/null
        birdc_ns tor1 disable hv2_v6 >/dev/null
        poll_until 20 frr_not_established hv2 "$(link_field hv2 tor1 peer_v4)" ||
            msg "warning: hv2 still sees tor1 Established"
        ;;
    sg-drop)
        ipt_hv1 -I "$SG_BIN-i$(vm_port10 vm1)" 1 -p tcp -m tcp --dport 22 -j DROP
        syn_burst "${VM_IP4[vm1]}"
        iptables_counter_nonzero "$SG_BIN-i$(vm_port10 vm1)" || msg "warning: the DROP counter is still 0"
        ;;
    sg-drop-hv2)
        nsx hv2 nft insert rule inet vmsg "tw-$vm3tap" tcp dport 22 counter drop
        syn_burst "${VM_IP4[vm3]}"
        nft_counter_nonzero "$vm3tap" || msg "warning: the drop counter is still 0"
        ;;
    sg-missing)
        local c pos rule
        while read -r c pos rule; do
            # shellcheck disable=SC2086 # rule is a word list on purpose
            if ipt_hv1 -C "$c" $rule 2>/dev/null; then ipt_hv1 -D "$c" $rule; fi
        done < <(sg_hook_rules vm1)
        ;;
    ecmp-blackhole)
        # Only forwarded TCP to the open port: TTL-expired probes still get
        # their ICMP time-exceeded from the gateway (hop 2), then silence.
        nsx "$PROBE_BLACKHOLE_GW" nft -f - <<EOF
table inet vmlab_fault {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip daddr $PROBE_DST4 tcp dport $PROBE_OPEN counter drop
        ip6 daddr $PROBE_DST6 tcp dport $PROBE_OPEN counter drop
    }
}
EOF
        poll_until 10 probe_blackhole_visible ||
            msg "warning: the sample flows do not show the blackhole: $(probe_syn_results | tr '\n' ';')"
        ;;
    vrrp-split-brain | keepalived-killed | no-primary | conntrack-full | mtu-mismatch | gw-no-advertise | ovs-dead-port | cmp-dead-port | cmp-tap-mtu | cmp-underlay-mtu | cmp-tunnel-down)
        ha_plant "$name"
        ;;
    *) die "unknown fault: $name" ;;
    esac
}

# heal NAME: restore the exact healthy state touched by fault NAME.
heal() {
    local name=$1 vm1tap vm2tap vm3tap
    vm1tap=$(vm_tap vm1); vm2tap=$(vm_tap vm2); vm3tap=$(vm_tap vm3)
    case $name in
    tap-missing)
        # Whatever carries the name now (a persistent tun/tap made by a repair) goes; vm1's
        # NIC is rebuilt as the lab's veth pair.
        if ip -n hv1 link show "$vm1tap" >/dev/null 2>&1 &&
            [[ $(ip -n hv1 -d link show "$vm1tap") != *veth* ]]; then
            ip -n hv1 link del "$vm1tap"
        fi
        if ip -n vm1 link show eth0 >/dev/null 2>&1 &&
            [[ $(ip -n vm1 -d link show eth0) != *veth* ]]; then
            ip -n vm1 link del eth0
        fi
        if ! ip -n hv1 link show "$vm1tap" >/dev/null 2>&1; then build_vm vm1; fi
        ensure_vm_tap vm1
        ;;
    tap-down | mtu | gw-missing | gw-prefixroute | proxy-arp-off | route-missing)
        ensure_vm_tap vm1
        ;;
    route-wrong-tap)
        local out
        out=$(ip -n hv1 -4 route show "${VM_IP4[vm1]}/32" dev "$vm2tap")
        if [[ -n $out ]]; then ip -n hv1 route del "${VM_IP4[vm1]}/32" dev "$vm2tap"; fi
        ensure_vm_tap vm1
        ;;
    dhcp-missing | dhcp-wrong-mac)
        write_dhcp_host vm1
        dnsmasq_hup hv1
        ;;
    metadata-down)
        if ! daemon_alive metadata-hv1; then
            start_metadata hv1
            poll_until 15 metadata_listening hv1 || die "metadata proxy on hv1 does not listen"
        fi
        ;;
    export-filter)
        rm -f "$DIR/faults/export-filter.flag"
        gen_bird_hv1
        bird_configure hv1
        ;;
    export-filter-hv2)
        local rc
        rc=$(vtysh_ns hv2 -c 'show running-config')
        if [[ $rc == *"route-map TOR1-OUT deny 5"* || $rc == *VMLAB-FAULT* ]]; then
            vtysh_ns hv2 -c 'configure terminal' -c 'no route-map TOR1-OUT deny 5' \
                -c 'no ip prefix-list VMLAB-FAULT' -c 'end' \
                -c "clear bgp ipv4 unicast $(link_field hv2 tor1 peer_v4) soft out" >/dev/null
        fi
        ;;
    bgp-down)
        vtysh_ns tor2 -c 'configure terminal' -c "router bgp ${ASN[tor2]}" \
            -c "no neighbor $(link_field tor2 hv1 peer_v4) shutdown" \
            -c "no neighbor $(link_field tor2 hv1 peer_v6) shutdown" -c 'end' >/dev/null
        ;;
    bgp-down-hv2)
        birdc_ns tor1 enable hv2 >/dev/null
        birdc_ns tor1 enable hv2_v6 >/dev/null
        ;;
    sg-drop)
        while ipt_hv1 -C "$SG_BIN-i$(vm_port10 vm1)" -p tcp -m tcp --dport 22 -j DROP 2>/dev/null; do
            ipt_hv1 -D "$SG_BIN-i$(vm_port10 vm1)" -p tcp -m tcp --dport 22 -j DROP
        done
        ;;
    sg-drop-hv2)
        local h
        for h in $(nft_sg_drop_handles "$vm3tap"); do
            nsx hv2 nft delete rule inet vmsg "tw-$vm3tap" handle "$h"
        done
        ;;
    sg-missing)
        local c pos rule
        while read -r c pos rule; do
            # shellcheck disable=SC2086
            if ! ipt_hv1 -C "$c" $rule 2>/dev/null; then ipt_hv1 -I "$c" "$pos" $rule; fi
        done < <(sg_hook_rules vm1)
        ;;
    ecmp-blackhole)
        if nsx "$PROBE_BLACKHOLE_GW" nft list table inet vmlab_fault >/dev/null 2>&1; then
            nsx "$PROBE_BLACKHOLE_GW" nft delete table inet vmlab_fault
        fi
        ;;
    vrrp-split-brain | keepalived-killed | no-primary | conntrack-full | mtu-mismatch | gw-no-advertise | ovs-dead-port | cmp-dead-port | cmp-tap-mtu | cmp-underlay-mtu | cmp-tunnel-down)
        ha_heal "$name"
        ;;
    *) die "unknown fault: $name" ;;
    esac
}

is_fault() {
    local f
    for f in "${FAULTS[@]}"; do [[ $f == "$1" ]] && return 0; done
    return 1
}

inner_fault() { # NAME
    local name=$1
    is_fault "$name" || is_variant "$name" || die "unknown fault or variant '$name'"
    if [[ -e $DIR/faults/$name.planted ]]; then msg "$name is already planted"; return 0; fi
    if is_variant "$name"; then variant_plant "$name"; else plant "$name"; fi
    date +%s.%N >"$DIR/faults/$name.planted"
    msg "planted $(is_variant "$name" && echo variant || echo fault) $name"
}

# heal_any NAME: clear a fault or a variant.
heal_any() {
    if is_variant "$1"; then variant_heal "$1"; else heal "$1"; fi
}

inner_clear() { # NAME|all TIMEOUT
    local name=$1 timeout=$2 f
    if [[ $name == all ]]; then
        # newest first
        while read -r f; do
            [[ -n $f ]] || continue
            f=${f##*/}; f=${f%.planted}
            heal_any "$f"
            rm -f "$DIR/faults/$f.planted"
            msg "cleared fault $f"
        done < <(find "$DIR/faults" -name '*.planted' -printf '%T@ %p\n' | sort -rn | cut -d' ' -f2-)
    else
        is_fault "$name" || is_variant "$name" || die "unknown fault or variant '$name'"
        heal_any "$name"
        rm -f "$DIR/faults/$name.planted"
        msg "cleared fault $name"
    fi
    ensure_daemons
    inner_wait "$timeout"
}
