# shellcheck shell=bash
# vmlab: configuration generators of the HA gateway part.
# (sourced by lab/vmlab, which sets the shell options and the paths).

# --- Neutron L3 agent and keepalived ---
gen_iptables_qrouter() {
    local qg
    qg=$(qg_if)
    cat <<EOF
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:neutron-l3-agent-OUTPUT - [0:0]
:neutron-l3-agent-POSTROUTING - [0:0]
:neutron-l3-agent-PREROUTING - [0:0]
:neutron-l3-agent-float-snat - [0:0]
:neutron-l3-agent-snat - [0:0]
:neutron-postrouting-bottom - [0:0]
-A PREROUTING -j neutron-l3-agent-PREROUTING
-A OUTPUT -j neutron-l3-agent-OUTPUT
-A POSTROUTING -j neutron-l3-agent-POSTROUTING
-A POSTROUTING -j neutron-postrouting-bottom
-A neutron-l3-agent-POSTROUTING ! -o $qg -m conntrack ! --ctstate DNAT -j ACCEPT
-A neutron-l3-agent-snat -j neutron-l3-agent-float-snat
-A neutron-l3-agent-snat -o $qg -j SNAT --to-source $HA_QG_IP
-A neutron-postrouting-bottom -m comment --comment "Perform source NAT on outgoing traffic." -j neutron-l3-agent-snat
COMMIT
EOF
}

# Neutron-style keepalived config, notify scripts and conf dir for HOST.
gen_keepalived() {
    local h=$1 d st w ha qr qg
    d=$(ha_conf_dir "$h"); ha=$(ha_if "$h"); qr=$(qr_if); qg=$(qg_if)
    mkdir -p "$d"
    for st in master backup fault; do
        # Neutron >= 17 writes primary/backup (older releases: master/backup);
        # its state-change monitor never writes "fault": a fault is a backup.
        if [[ $st == master ]]; then w=primary; else w=backup; fi
        cat >"$d/notify_$st.sh" <<EOF
#!/usr/bin/env bash
# vmlab: keepalived notify_$st of router $HA_ROUTER_ID on $h. Generated; do not edit.
echo -n $w > $d/state
echo "\$(date +%s.%N) $st" >> $DIR/logs/keepalived-$h.transitions
EOF
        chmod 755 "$d/notify_$st.sh"
    done
    cat >"$d/keepalived.conf.tmp" <<EOF
global_defs {
    notification_email_from neutron@openstack.local
    router_id neutron
}
vrrp_instance VR_$HA_VRID {
    state BACKUP
    interface $ha
    virtual_router_id $HA_VRID
    priority 50
    garp_master_delay 60
    nopreempt
    advert_int $HA_ADVERT_INT
    track_interface {
        $ha
    }
    virtual_ipaddress {
        $HA_VIP/24 dev $ha
    }
    virtual_ipaddress_excluded {
        $HA_GW_IP/24 dev $qr
        $HA_QG_IP/24 dev $qg
    }
    virtual_routes {
        0.0.0.0/0 via $HA_EXT_GW dev $qg
    }
    notify_master "$d/notify_master.sh"
    notify_backup "$d/notify_backup.sh"
    notify_fault "$d/notify_fault.sh"
}
EOF
    mv -f "$d/keepalived.conf.tmp" "$d/keepalived.conf"
}

# --- BGP of the HA part ---
gen_bird_gw() { # gwA (BIRD)
    local h=gwA f=$DIR/gwA/bird.conf extra=""
    if fault_on gw-no-advertise; then
        extra="    if net = $HA_TENANT_NET then reject;   # vmlab fault gw-no-advertise"$'\n'
    fi
    cat >"$f.tmp" <<EOF
# vmlab: BIRD on gateway host $h (AS${ASN[$h]}). Generated; do not edit.
log "$DIR/logs/bird-$h.log" all;
router id ${ROUTER_ID[$h]};

protocol device { scan time 10; }

# Learn the kernel route to the tenant prefix (via the router's qg- address).
protocol kernel kernel4 {
    ipv4 { import all; export none; };
    learn;
    scan time 10;
}

# Advertise only the tenant prefix to the ToR.
filter export_${HA_TOR} {
${extra}    if source = RTS_INHERIT && net = $HA_TENANT_NET then accept;
    reject;
}

protocol bgp ${HA_TOR} {
    description "${HA_TOR} via $(ha_link "$h" host_if)";
    local $(ha_link "$h" host_ip) as ${ASN[$h]};
    neighbor $(ha_link "$h" tor_ip) as ${ASN[$HA_TOR]};
    connect delay time 1;
    connect retry time 2;
    hold time 9;
    startup hold time 9;
    keepalive time 3;
    error wait time 1, 4;
    error forget time 10;
    ipv4 { import none; export filter export_${HA_TOR}; };
}
EOF
    mv -f "$f.tmp" "$f"
}

gen_frr_gw() { # gwB (FRR)
    local h=gwB d=$DIR/etc-frr/gwB peer
    peer=$(ha_link "$h" tor_ip)
    gen_frr_common "$h"
    cat >"$d/bgpd.conf.tmp" <<EOF
! vmlab: bgpd on gateway host $h (AS${ASN[$h]}). Generated; do not edit.
frr defaults datacenter
hostname $h
log file $DIR/logs/bgpd-$h.log
!
ip prefix-list TENANT seq 10 permit $HA_TENANT_NET
!
route-map TENANT-REDIST permit 10
 match ip address prefix-list TENANT
exit
route-map TOR3-OUT permit 10
 match ip address prefix-list TENANT
 set origin igp
exit
route-map TOR3-IN deny 10
exit
!
router bgp ${ASN[$h]}
 bgp router-id ${ROUTER_ID[$h]}
 no bgp default ipv4-unicast
 timers bgp 3 9
 neighbor $peer remote-as ${ASN[$HA_TOR]}
 neighbor $peer description $HA_TOR
 neighbor $peer advertisement-interval 0
 neighbor $peer timers connect 2
 !
 address-family ipv4 unicast
  redistribute kernel route-map TENANT-REDIST
  neighbor $peer activate
  neighbor $peer route-map TOR3-IN in
  neighbor $peer route-map TOR3-OUT out
 exit-address-family
exit
!
EOF
    mv -f "$d/bgpd.conf.tmp" "$d/bgpd.conf"
}

gen_frr_tor3() {
    local d=$DIR/etc-frr/$HA_TOR h p
    gen_frr_common "$HA_TOR"
    {
        cat <<EOF
! vmlab: bgpd on ToR $HA_TOR (AS${ASN[$HA_TOR]}). Generated; do not edit.
frr defaults datacenter
hostname $HA_TOR
log file $DIR/logs/bgpd-$HA_TOR.log
!
ip prefix-list TENANT seq 10 permit $HA_TENANT_NET
route-map GW-IN permit 10
 match ip address prefix-list TENANT
exit
route-map GW-OUT deny 10
exit
!
router bgp ${ASN[$HA_TOR]}
 bgp router-id ${ROUTER_ID[$HA_TOR]}
 no bgp default ipv4-unicast
 bgp bestpath as-path multipath-relax
 timers bgp 3 9
EOF
        for h in "${HA_GWS[@]}"; do
            p=$(ha_link "$h" host_ip)
            echo " neighbor $p remote-as ${ASN[$h]}"
            echo " neighbor $p description $h"
            echo " neighbor $p advertisement-interval 0"
            echo " neighbor $p timers connect 2"
        done
        echo " !"
        echo " address-family ipv4 unicast"
        echo "  maximum-paths 4"
        for h in "${HA_GWS[@]}"; do
            p=$(ha_link "$h" host_ip)
            echo "  neighbor $p activate"
            echo "  neighbor $p route-map GW-IN in"
            echo "  neighbor $p route-map GW-OUT out"
        done
        echo " exit-address-family"
        echo "exit"
        echo "!"
    } >"$d/bgpd.conf.tmp"
    mv -f "$d/bgpd.conf.tmp" "$d/bgpd.conf"
}
