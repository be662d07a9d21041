# shellcheck shell=bash
# vmlab: healthy variants (lab/variants.tsv): valid real-world choices the lab does not make by
# default, planted and cleared like faults. vmpath must judge each one healthy.
# (sourced by lab/vmlab, which sets the shell options and the paths).

# The rows of lab/variants.tsv (names), in table order.
mapfile -t VARIANTS < <(awk -F'\t' '!/^#/ && NF >= 6 {print $1}' "$LAB_HOME/variants.tsv")
readonly -a VARIANTS

is_variant() {
    local v
    for v in "${VARIANTS[@]}"; do [[ $v == "$1" ]] && return 0; done
    return 1
}

# hv2's nft rule handle: chain CHAIN, text PATTERN (a fixed string).
nft_hv2_handle() { # CHAIN PATTERN
    nsx hv2 nft -a list chain inet vmsg "$1" | grep -F -- "$2" | awk '{print $NF}' | head -1
}

variant_plant() { # NAME
    local name=$1 vm tap p10 c pos rule fam
    case $name in
    neutron-dhcp-hostsfile)
        vm=vm1
        rm -f "$DIR/hv1/dhcp-hosts/${VM_PORT[$vm]}"
        {
            printf '%s,host-%s.openstacklocal,%s\n' "$(vm_mac "$vm")" "${VM_IP4[$vm]//./-}" "${VM_IP4[$vm]}"
            printf '%s,tag:dhcpv6,host-%s.openstacklocal,[%s]\n' "$(vm_mac "$vm")" "${VM_IP6[$vm]//:/-}" "${VM_IP6[$vm]}"
        } >"$DIR/hv1/.dhcp-hostsfile.tmp"
        mv -f "$DIR/hv1/.dhcp-hostsfile.tmp" "$DIR/hv1/dhcp-hostsfile"
        dnsmasq_hup hv1
        ;;
    no-port-security)
        vm=vm2; p10=$(vm_port10 "$vm")
        while read -r c pos rule; do
            # shellcheck disable=SC2086 # rule is a word list on purpose
            if ipt_hv1 -C "$c" $rule 2>/dev/null; then ipt_hv1 -D "$c" $rule; fi
            # shellcheck disable=SC2086
            if nsx hv1 ip6tables -w 5 -C "$c" $rule 2>/dev/null; then nsx hv1 ip6tables -w 5 -D "$c" $rule; fi
        done < <(sg_hook_rules "$vm")
        for fam in iptables ip6tables; do
            for c in i o s; do
                nsx hv1 "$fam" -w 5 -F "$SG_BIN-$c$p10"
            done
            for c in i o s; do
                nsx hv1 "$fam" -w 5 -X "$SG_BIN-$c$p10"
            done
        done
        ;;
    calico-dispatch)
        vm=vm2; tap=$(vm_tap "$vm")
        while read -r c pos rule; do
            # shellcheck disable=SC2086
            if ipt_hv1 -C "$c" $rule 2>/dev/null; then ipt_hv1 -D "$c" $rule; fi
        done < <(sg_hook_rules "$vm")
        nsx hv1 iptables-restore --noflush <<EOF2
*filter
:cali-from-wl-dispatch - [0:0]
:cali-to-wl-dispatch - [0:0]
:cali-fw-$tap - [0:0]
:cali-tw-$tap - [0:0]
-I FORWARD 1 -i tap+ -j cali-from-wl-dispatch
-I FORWARD 2 -o tap+ -j cali-to-wl-dispatch
-A cali-from-wl-dispatch -i $tap -g cali-fw-$tap
-A cali-to-wl-dispatch -o $tap -g cali-tw-$tap
-A cali-fw-$tap -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A cali-fw-$tap -m conntrack --ctstate INVALID -j DROP
-A cali-fw-$tap -s ${VM_IP4[$vm]}/32 -m mac --mac-source $(vm_mac "$vm") -j ACCEPT
-A cali-fw-$tap -j DROP
-A cali-tw-$tap -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A cali-tw-$tap -m conntrack --ctstate INVALID -j DROP
-A cali-tw-$tap -p tcp -m tcp --dport 22 -j ACCEPT
-A cali-tw-$tap -p icmp -j ACCEPT
-A cali-tw-$tap -j DROP
COMMIT
EOF2
        ;;
    ingress-only)
        tap=$(vm_tap vm3)
        local h
        h=$(nft_hv2_handle forward "iifname \"$tap\" jump fw-$tap")
        [[ -n $h ]] || die "ingress-only: no forward rule jumps to fw-$tap"
        nsx hv2 nft delete rule inet vmsg forward handle "$h"
        ;;
    gw-no-bgp)
        stop_pid "$(daemon_pid bird-gwA)" "$(daemon_pattern bird-gwA)"
        ;;
    ovs-vxlan-sys)
        ip -n gwA link add vxlan_sys_4789 mtu 65000 type vxlan external dstport 4799
        ip -n gwA link set vxlan_sys_4789 up
        ;;
    vxlan-in-bridge)
        ip -n gwA link add br-vmlab type bridge
        ip -n gwA link add vmlab-port mtu "$HA_MTU" type veth peer name vmlab-peer mtu "$HA_MTU"
        ip -n gwA link add vxlan-4242 mtu "$HA_UL_MTU" type vxlan id 4242 local "$(vtep gwA)" dstport 4798
        ip -n gwA link set vmlab-port master br-vmlab
        ip -n gwA link set vxlan-4242 master br-vmlab
        for c in br-vmlab vmlab-port vmlab-peer vxlan-4242; do ip -n gwA link set "$c" up; done
        ;;
    *) die "unknown variant: $name" ;;
    esac
}

variant_heal() { # NAME
    local name=$1 vm tap c
    case $name in
    neutron-dhcp-hostsfile)
        vm=vm1
        : >"$DIR/hv1/dhcp-hostsfile"
        write_dhcp_host "$vm"
        dnsmasq_hup hv1
        ;;
    no-port-security | calico-dispatch)
        # The Neutron-style ruleset as built (counters start again at 0).
        nsx hv1 iptables-restore <"$DIR/hv1/iptables.rules"
        nsx hv1 ip6tables-restore <"$DIR/hv1/ip6tables.rules"
        ;;
    ingress-only)
        tap=$(vm_tap vm3)
        if [[ -z $(nft_hv2_handle forward "iifname \"$tap\" jump fw-$tap") ]]; then
            nsx hv2 nft add rule inet vmsg forward iifname "\"$tap\"" jump "fw-$tap"
        fi
        ;;
    gw-no-bgp)
        if ! daemon_alive bird-gwA; then
            spawn_host bird-gwA gwA bird -f -c "$DIR/gwA/bird.conf" -s "$(bird_sock gwA)" -P "$DIR/run/bird-gwA.pid"
        fi
        ;;
    ovs-vxlan-sys)
        ip -n gwA link del vxlan_sys_4789 2>/dev/null || true
        ;;
    vxlan-in-bridge)
        for c in vxlan-4242 vmlab-port br-vmlab; do ip -n gwA link del "$c" 2>/dev/null || true; done
        ;;
    *) die "unknown variant: $name" ;;
    esac
}
