# shellcheck shell=bash
# vmlab: configuration generators of the routed part (hv1/hv2, tor1/tor2).
# (sourced by lab/vmlab, which sets the shell options and the paths).

# ---------------------------------------------------------------------------
# Configuration generators
# ---------------------------------------------------------------------------
# Config-level fault flags (read by the config generators): DIR/faults/NAME.flag.
# (DIR/faults/NAME.planted records what `fault` planted, for `clear all`.)
fault_on() { [[ -e $DIR/faults/$1.flag ]]; }

gen_bird_hv1() {
    local f=$DIR/hv1/bird.conf tor extra
    {
        cat <<EOF
# vmlab: BIRD on hypervisor hv1 (AS${ASN[hv1]}). Generated; do not edit.
log "$DIR/logs/bird-hv1.log" all;
router id ${ROUTER_ID[hv1]};

protocol device { scan time 10; }

# Learn the /32 and /128 host routes that the "agent" puts on the taps
# (proto static, scope link) and install BGP routes with ECMP.
protocol kernel kernel4 {
    ipv4 { import all; export where source = RTS_BGP; };
    learn;
    merge paths on;
    scan time 10;
}
protocol kernel kernel6 {
    ipv6 { import all; export where source = RTS_BGP; };
    learn;
    merge paths on;
    scan time 10;
}

template bgp tor_peer {
    connect delay time 1;
    connect retry time 2;
    hold time 9;
    startup hold time 9;
    keepalive time 3;
    error wait time 1, 4;
    error forget time 10;
}
EOF
        for tor in "${TORS[@]}"; do
            extra=""
            if [[ $tor == tor1 ]] && fault_on export-filter; then
                extra="    if net = ${VM_IP4[vm1]}/32 then reject;   # vmlab fault export-filter"$'\n'
            fi
            cat <<EOF

# Export only the local VM host routes (learned from the kernel) to $tor.
filter export_${tor} {
${extra}    if source = RTS_INHERIT && net ~ [ ${VM_NET4}{32,32} ] then accept;
    reject;
}
filter export_${tor}_v6 {
    if source = RTS_INHERIT && net ~ [ ${VM_NET6}{128,128} ] then accept;
    reject;
}
protocol bgp ${tor} from tor_peer {
    description "${tor} via $(link_field hv1 "$tor" if)";
    local $(link_field hv1 "$tor" v4) as ${ASN[hv1]};
    neighbor $(link_field hv1 "$tor" peer_v4) as ${ASN[$tor]};
    ipv4 { import all; export filter export_${tor}; };
}
protocol bgp ${tor}_v6 from tor_peer {
    description "${tor} via $(link_field hv1 "$tor" if) (IPv6)";
    local $(link_field hv1 "$tor" v6) as ${ASN[hv1]};
    neighbor $(link_field hv1 "$tor" peer_v6) as ${ASN[$tor]};
    ipv6 { import all; export filter export_${tor}_v6; };
}
EOF
        done
    } >"$f.tmp"
    mv -f "$f.tmp" "$f"
}

gen_bird_tor1() {
    local f=$DIR/tor1/bird.conf hv
    {
        cat <<EOF
# vmlab: BIRD on ToR tor1 (AS${ASN[tor1]}). Generated; do not edit.
log "$DIR/logs/bird-tor1.log" all;
router id ${ROUTER_ID[tor1]};

protocol device { scan time 10; }
protocol kernel kernel4 { ipv4 { import none; export all; }; merge paths on; scan time 10; }
protocol kernel kernel6 { ipv6 { import none; export all; }; merge paths on; scan time 10; }

# The "external" prefixes live behind ext1.
protocol static ext4 { ipv4; route ${EXT_NET4} via $(link_field tor1 ext1 peer_v4); }
protocol static ext6 { ipv6; route ${EXT_NET6} via $(link_field tor1 ext1 peer_v6); }

filter hv_in4 { if net ~ [ ${VM_NET4}{32,32} ] then accept; reject; }
filter hv_in6 { if net ~ [ ${VM_NET6}{128,128} ] then accept; reject; }
filter hv_out4 { if proto = "ext4" then { bgp_origin = ORIGIN_IGP; accept; } reject; }
filter hv_out6 { if proto = "ext6" then { bgp_origin = ORIGIN_IGP; accept; } reject; }

template bgp hv_peer {
    connect delay time 1;
    connect retry time 2;
    hold time 9;
    startup hold time 9;
    keepalive time 3;
    error wait time 1, 4;
    error forget time 10;
}
EOF
        for hv in "${HVS[@]}"; do
            cat <<EOF

protocol bgp ${hv} from hv_peer {
    description "${hv} via $(link_field tor1 "$hv" if)";
    local $(link_field tor1 "$hv" v4) as ${ASN[tor1]};
    neighbor $(link_field tor1 "$hv" peer_v4) as ${ASN[$hv]};
    ipv4 { import filter hv_in4; export filter hv_out4; };
}
protocol bgp ${hv}_v6 from hv_peer {
    description "${hv} via $(link_field tor1 "$hv" if) (IPv6)";
    local $(link_field tor1 "$hv" v6) as ${ASN[tor1]};
    neighbor $(link_field tor1 "$hv" peer_v6) as ${ASN[$hv]};
    ipv6 { import filter hv_in6; export filter hv_out6; };
}
EOF
        done
    } >"$f.tmp"
    mv -f "$f.tmp" "$f"
}

# FRR: /etc/frr inside the lab is DIR/etc-frr (bind mount, lab mount ns only).
gen_frr_common() {
    local node=$1 d=$DIR/etc-frr/$1
    mkdir -p "$d"
    cat >"$d/vtysh.conf" <<EOF
! vmlab: vtysh -N $node
EOF
    cat >"$d/zebra.conf" <<EOF
! vmlab: zebra on $node. Generated; do not edit.
frr defaults datacenter
hostname $node
log file $DIR/logs/zebra-$node.log
!
EOF
}

gen_frr_hv2() {
    local d=$DIR/etc-frr/hv2 tor n
    gen_frr_common hv2
    {
        cat <<EOF
! vmlab: bgpd on hypervisor hv2 (AS${ASN[hv2]}). Generated; do not edit.
frr defaults datacenter
hostname hv2
log file $DIR/logs/bgpd-hv2.log
!
ip prefix-list VM-HOSTS seq 10 permit ${VM_NET4} ge 32
ipv6 prefix-list VM-HOSTS6 seq 10 permit ${VM_NET6} ge 128
bgp as-path access-list LOCAL-ORIGIN seq 10 permit ^\$
!
! Redistribution of the tap host routes (kernel routes, proto static).
route-map VM-OUT permit 10
 match ip address prefix-list VM-HOSTS
exit
route-map VM-OUT permit 20
 match ipv6 address prefix-list VM-HOSTS6
exit
!
! Inbound: accept everything the ToRs send.
route-map TOR-IN permit 10
exit
!
EOF
        for tor in "${TORS[@]}"; do
            n=${tor^^}
            cat <<EOF
! Outbound to $tor (RFC 8212): only local VM host routes.
route-map ${n}-OUT permit 10
 match ip address prefix-list VM-HOSTS
 match as-path LOCAL-ORIGIN
exit
route-map ${n}-V6-OUT permit 10
 match ipv6 address prefix-list VM-HOSTS6
 match as-path LOCAL-ORIGIN
exit
!
EOF
        done
        frr_router_bgp hv2
    } >"$d/bgpd.conf.tmp"
    mv -f "$d/bgpd.conf.tmp" "$d/bgpd.conf"
}

gen_frr_tor2() {
    local d=$DIR/etc-frr/tor2
    gen_frr_common tor2
    {
        cat <<EOF
! vmlab: bgpd on ToR tor2 (AS${ASN[tor2]}). Generated; do not edit.
frr defaults datacenter
hostname tor2
log file $DIR/logs/bgpd-tor2.log
!
ip prefix-list VM-HOSTS seq 10 permit ${VM_NET4} ge 32
ipv6 prefix-list VM-HOSTS6 seq 10 permit ${VM_NET6} ge 128
ip prefix-list EXT seq 10 permit ${EXT_NET4}
ipv6 prefix-list EXT6 seq 10 permit ${EXT_NET6}
!
route-map HV-IN permit 10
 match ip address prefix-list VM-HOSTS
exit
route-map HV-IN6 permit 10
 match ipv6 address prefix-list VM-HOSTS6
exit
route-map HV-OUT permit 10
 match ip address prefix-list EXT
 set origin igp
exit
route-map HV-OUT6 permit 10
 match ipv6 address prefix-list EXT6
 set origin igp
exit
! The static routes to ext1 are kernel routes (proto static) redistributed.
route-map EXT-REDIST permit 10
 match ip address prefix-list EXT
exit
route-map EXT-REDIST permit 20
 match ipv6 address prefix-list EXT6
exit
!
EOF
        frr_router_bgp tor2
    } >"$d/bgpd.conf.tmp"
    mv -f "$d/bgpd.conf.tmp" "$d/bgpd.conf"
}

# frr_router_bgp NODE: the `router bgp` block of an FRR node (hv2 or tor2).
frr_router_bgp() {
    local node=$1 peers=() p v4 v6 redist in4 in6 out4 out6
    if [[ $node == hv2 ]]; then peers=("${TORS[@]}"); redist=VM-OUT; else peers=("${HVS[@]}"); redist=EXT-REDIST; fi
    echo "router bgp ${ASN[$node]}"
    echo " bgp router-id ${ROUTER_ID[$node]}"
    echo " no bgp default ipv4-unicast"
    echo " bgp bestpath as-path multipath-relax"
    echo " timers bgp 3 9"
    for p in "${peers[@]}"; do
        for v4 in "$(link_field "$node" "$p" peer_v4)" "$(link_field "$node" "$p" peer_v6)"; do
            echo " neighbor $v4 remote-as ${ASN[$p]}"
            echo " neighbor $v4 description $p"
            echo " neighbor $v4 advertisement-interval 0"
            echo " neighbor $v4 timers connect 2"
        done
    done
    for af in ipv4 ipv6; do
        echo " !"
        echo " address-family $af unicast"
        echo "  redistribute kernel route-map $redist"
        echo "  maximum-paths 4"
        for p in "${peers[@]}"; do
            if [[ $node == hv2 ]]; then
                in4=TOR-IN; in6=TOR-IN; out4=${p^^}-OUT; out6=${p^^}-V6-OUT
            else
                in4=HV-IN; in6=HV-IN6; out4=HV-OUT; out6=HV-OUT6
            fi
            if [[ $af == ipv4 ]]; then
                v4=$(link_field "$node" "$p" peer_v4)
                echo "  neighbor $v4 activate"
                echo "  neighbor $v4 route-map $in4 in"
                echo "  neighbor $v4 route-map $out4 out"
            else
                v6=$(link_field "$node" "$p" peer_v6)
                echo "  neighbor $v6 activate"
                echo "  neighbor $v6 route-map $in6 in"
                echo "  neighbor $v6 route-map $out6 out"
            fi
        done
        echo " exit-address-family"
    done
    echo "exit"
    echo "!"
}

# iptables-restore input for hv1 (family 4 or 6): Neutron-style SG chains.
gen_iptables_hv1() {
    local fam=$1 vm tap p10 ch=() icmp
    if [[ $fam == 4 ]]; then icmp=icmp; else icmp=ipv6-icmp; fi
    mapfile -t hv1vms < <(hv_vms hv1)
    echo "*filter"
    echo ":INPUT ACCEPT [0:0]"
    echo ":FORWARD ACCEPT [0:0]"
    echo ":OUTPUT ACCEPT [0:0]"
    ch=("$SG_BIN-FORWARD" "$SG_BIN-INPUT" "$SG_BIN-sg-chain" "$SG_BIN-sg-fallback")
    for vm in "${hv1vms[@]}"; do
        p10=$(vm_port10 "$vm")
        ch+=("$SG_BIN-i$p10" "$SG_BIN-o$p10" "$SG_BIN-s$p10")
    done
    printf ':%s - [0:0]\n' "${ch[@]}"
    echo "-A INPUT -j $SG_BIN-INPUT"
    echo "-A FORWARD -j $SG_BIN-FORWARD"
    for vm in "${hv1vms[@]}"; do
        tap=$(vm_tap "$vm")
        echo "-A $SG_BIN-FORWARD -o $tap -j $SG_BIN-sg-chain"
        echo "-A $SG_BIN-FORWARD -i $tap -j $SG_BIN-sg-chain"
    done
    for vm in "${hv1vms[@]}"; do
        echo "-A $SG_BIN-INPUT -i $(vm_tap "$vm") -j $SG_BIN-o$(vm_port10 "$vm")"
    done
    for vm in "${hv1vms[@]}"; do
        tap=$(vm_tap "$vm"); p10=$(vm_port10 "$vm")
        echo "-A $SG_BIN-sg-chain -o $tap -j $SG_BIN-i$p10"
        echo "-A $SG_BIN-sg-chain -i $tap -j $SG_BIN-o$p10"
    done
    echo "-A $SG_BIN-sg-chain -j ACCEPT"
    echo "-A $SG_BIN-sg-fallback -j DROP"
    for vm in "${hv1vms[@]}"; do
        p10=$(vm_port10 "$vm")
        # i-chain: traffic to the VM
        echo "-A $SG_BIN-i$p10 -m state --state RELATED,ESTABLISHED -j RETURN"
        echo "-A $SG_BIN-i$p10 -m state --state INVALID -j DROP"
        echo "-A $SG_BIN-i$p10 -p tcp -m tcp --dport 22 -j RETURN"
        echo "-A $SG_BIN-i$p10 -p $icmp -j RETURN"
        echo "-A $SG_BIN-i$p10 -j $SG_BIN-sg-fallback"
        # o-chain: traffic from the VM
        if [[ $fam == 4 ]]; then
            echo "-A $SG_BIN-o$p10 -s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 -j RETURN"
            echo "-A $SG_BIN-o$p10 -j $SG_BIN-s$p10"
            echo "-A $SG_BIN-o$p10 -p udp -m udp --sport 68 --dport 67 -j RETURN"
            echo "-A $SG_BIN-o$p10 -p udp -m udp --sport 67 --dport 68 -j DROP"
        else
            local t
            for t in 131 135 143; do
                echo "-A $SG_BIN-o$p10 -s ::/128 -d ff02::/16 -p ipv6-icmp -m icmp6 --icmpv6-type $t -j RETURN"
            done
            echo "-A $SG_BIN-o$p10 -j $SG_BIN-s$p10"
            echo "-A $SG_BIN-o$p10 -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP"
            echo "-A $SG_BIN-o$p10 -p ipv6-icmp -j RETURN"
            echo "-A $SG_BIN-o$p10 -p udp -m udp --sport 546 --dport 547 -j RETURN"
            echo "-A $SG_BIN-o$p10 -p udp -m udp --sport 547 --dport 546 -j DROP"
        fi
        echo "-A $SG_BIN-o$p10 -m state --state RELATED,ESTABLISHED -j RETURN"
        echo "-A $SG_BIN-o$p10 -m state --state INVALID -j DROP"
        echo "-A $SG_BIN-o$p10 -j RETURN"
        # s-chain: anti-spoofing (source IP + MAC)
        if [[ $fam == 4 ]]; then
            echo "-A $SG_BIN-s$p10 -s ${VM_IP4[$vm]}/32 -m mac --mac-source $(vm_mac "$vm") -j RETURN"
        else
            if [[ -n ${VM_IP6[$vm]} ]]; then
                echo "-A $SG_BIN-s$p10 -s ${VM_IP6[$vm]}/128 -m mac --mac-source $(vm_mac "$vm") -j RETURN"
            fi
            echo "-A $SG_BIN-s$p10 -s $(vm_ll6 "$vm")/128 -m mac --mac-source $(vm_mac "$vm") -j RETURN"
        fi
        echo "-A $SG_BIN-s$p10 -j DROP"
    done
    echo "COMMIT"
    if [[ $fam == 4 ]]; then
        echo "*nat"
        echo ":PREROUTING ACCEPT [0:0]"
        echo ":INPUT ACCEPT [0:0]"
        echo ":OUTPUT ACCEPT [0:0]"
        echo ":POSTROUTING ACCEPT [0:0]"
        echo "-A PREROUTING -i tap+ -d $METADATA_IP/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports $METADATA_PORT"
        echo "COMMIT"
    fi
}

# nft -f input for hv2: Calico-like tw-/fw- chains + metadata redirect.
gen_nft_hv2() {
    local vm tap
    mapfile -t hv2vms < <(hv_vms hv2)
    echo "table inet vmsg {"
    echo "    chain forward {"
    echo "        type filter hook forward priority 0; policy accept;"
    for vm in "${hv2vms[@]}"; do
        tap=$(vm_tap "$vm")
        echo "        oifname \"$tap\" jump tw-$tap"
        echo "        iifname \"$tap\" jump fw-$tap"
    done
    echo "    }"
    echo "    chain input {"
    echo "        type filter hook input priority 0; policy accept;"
    for vm in "${hv2vms[@]}"; do
        tap=$(vm_tap "$vm")
        echo "        iifname \"$tap\" jump fw-$tap"
    done
    echo "    }"
    for vm in "${hv2vms[@]}"; do
        tap=$(vm_tap "$vm")
        cat <<EOF
    chain tw-$tap {
        ct state established,related accept
        ct state invalid counter drop
        tcp dport 22 accept
        meta l4proto { icmp, ipv6-icmp } accept
        counter drop
    }
    chain fw-$tap {
        ct state established,related accept
        udp sport 68 udp dport 67 accept
        icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report } accept
        ether saddr != $(vm_mac "$vm") counter drop
        ip saddr != ${VM_IP4[$vm]} counter drop
EOF
        if [[ -n ${VM_IP6[$vm]} ]]; then
            echo "        ip6 saddr != { ${VM_IP6[$vm]}, fe80::/64 } counter drop"
        else
            echo "        ip6 saddr != fe80::/64 counter drop"
        fi
        echo "        accept"
        echo "    }"
    done
    echo "}"
    cat <<EOF
table ip vmnat {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "tap*" ip daddr $METADATA_IP tcp dport 80 redirect to :$METADATA_PORT
    }
}
EOF
}

dhcp_host_line() { # VM [MAC]
    local vm=$1 mac=${2:-}
    [[ -n $mac ]] || mac=$(vm_mac "$vm")
    printf '%s,host-%s,%s,set:port-%s\n' "$mac" "${VM_IP4[$vm]//./-}" "${VM_IP4[$vm]}" "${VM_PORT[$vm]}"
}

write_dhcp_host() { # VM [MAC]
    local vm=$1 f tmp
    f=$DIR/${VM_HV[$vm]}/dhcp-hosts/${VM_PORT[$vm]}
    # Write next to, not inside, the hosts dir: dnsmasq reads every file there.
    tmp=$DIR/${VM_HV[$vm]}/.dhcp-host.tmp
    dhcp_host_line "$@" >"$tmp"
    mv -f "$tmp" "$f"
}
