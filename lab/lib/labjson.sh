# shellcheck shell=bash
# vmlab: DIR/lab.json, the lab's description (`info`).
# (sourced by lab/vmlab, which sets the shell options and the paths).

# probe_json: the "probe" object of lab.json (the ECMP part).
probe_json() {
    local g fam sport first=1 t4 t6 rif
    read -r -a t4 <<<"$PROBE_UNREACH_ICMP4"
    read -r -a t6 <<<"$PROBE_UNREACH_ICMP6"
    rif=$(link_field r1 pc1 if)
    printf '  "probe": {\n'
    printf '    "client_netns": "pc1", "client_if": "%s", "client_ipv4": "%s", "client_ipv6": "%s",\n' \
        "$(link_field pc1 r1 if)" "$(probe_src 4)" "$(probe_src 6)"
    printf '    "router_netns": "r1", "router_if": "%s", "router_ipv4": "%s", "router_ipv6": "%s",\n' \
        "$rif" "$(link_field pc1 r1 peer_v4)" "$(link_field pc1 r1 peer_v6)"
    printf '    "dest_netns": "srv1", "dest_ipv4": "%s", "dest_ipv6": "%s",\n' "$PROBE_DST4" "$PROBE_DST6"
    printf '    "open_port": %s, "closed_port": %s, "unreachable_port": %s,\n' "$PROBE_OPEN" "$PROBE_CLOSED" "$PROBE_UNREACH"
    printf '    "unreachable_icmp4": {"type": %s, "code": %s, "name": "admin-prohibited"},\n' "${t4[0]}" "${t4[1]}"
    printf '    "unreachable_icmp6": {"type": %s, "code": %s, "name": "admin-prohibited"},\n' "${t6[0]}" "${t6[1]}"
    printf '    "gateways": {'
    for g in "${PROBE_GWS[@]}"; do
        ((first)) || printf ','
        first=0
        printf '\n      "%s": {"netns": "%s", "ipv4": "%s", "ipv6": "%s", "router_if": "%s"}' \
            "$g" "$g" "$(link_field r1 "$g" peer_v4)" "$(link_field r1 "$g" peer_v6)" "$(link_field r1 "$g" if)"
    done
    printf '\n    },\n'
    printf '    "hash_policy": 1, "hash_seed": %s,\n' "$PROBE_HASH_SEED"
    for fam in 4 6; do
        printf '    "ground_truth%s": ["ip", "-%s", "route", "get", "%s", "from", "%s", "iif", "%s", "ipproto", "tcp", "sport", "{sport}", "dport", "{dport}"],\n' \
            "$fam" "$fam" "$(probe_dst "$fam")" "$(probe_src "$fam")" "$rif"
    done
    printf '    "sample_flows": ['
    first=1
    while read -r fam g sport; do
        ((first)) || printf ','
        first=0
        printf '\n      {"family": %s, "sport": %s, "dport": %s, "gateway": "%s"}' "$fam" "$sport" "$PROBE_OPEN" "$g"
    done <"$DIR/probe/flows"
    printf '\n    ],\n'
    printf '    "blackhole_fault": "ecmp-blackhole", "blackhole_gateway": "%s"\n  },\n' "$PROBE_BLACKHOLE_GW"
}

# ha_json: the "ha" object of lab.json (the HA gateway part).
ha_json() {
    local h first=1 o f prim
    prim=$(ha_primaries | tr '\n' ' '); prim=${prim% }
    printf '  "ha": {\n'
    printf '    "router_id": "%s", "qrouter_netns": "%s", "qdhcp_netns": "%s", "network_id": "%s", "ha_network_id": "%s",\n' \
        "$HA_ROUTER_ID" "$(qrouter_ns)" "$(qdhcp_ns)" "$HA_NET_ID" "$HA_HANET_ID"
    printf '    "vrid": %s, "vrrp_instance": "VR_%s", "vip": "%s/24", "priority": 50, "advert_int": %s, "neutron_default_advert_int": %s,\n' \
        "$HA_VRID" "$HA_VRID" "$HA_VIP" "$HA_ADVERT_INT" "$HA_NEUTRON_ADVERT_INT"
    printf '    "tenant_prefix": "%s", "gateway_ip": "%s", "gateway_cidr": "%s/24", "network_mtu": %s,\n' \
        "$HA_TENANT_NET" "$HA_GW_IP" "$HA_GW_IP" "$HA_MTU"
    printf '    "external_network": "%s", "external_network_id": "%s", "external_gateway": "%s", "qg_ip": "%s", "qg_cidr": "%s/24", "ha_network": "%s",\n' \
        "$HA_EXT_NET" "$HA_EXTNET_ID" "$HA_EXT_GW" "$HA_QG_IP" "$HA_QG_IP" "$HA_HA_NET"
    printf '    "qr_if": "%s", "qr_port_id": "%s", "qr_mac": "%s", "qr_mtu": %s,\n' "$(qr_if)" "$HA_QR_PORT" "$HA_QR_MAC" "$HA_MTU"
    printf '    "qg_if": "%s", "qg_port_id": "%s", "qg_mac": "%s", "qg_mtu": %s,\n' "$(qg_if)" "$HA_QG_PORT" "$HA_QG_MAC" "$HA_EXT_MTU"
    printf '    "vni": %s, "ha_vni": %s, "underlay_mtu": %s, "vxlan_mtu": %s, "vxlan_dstport": 4789,\n' \
        "$HA_VNI" "$HA_HA_VNI" "$HA_UL_MTU" "$HA_MTU"
    printf '    "primary_after_up": "%s", "primary": "%s",\n' "$prim" "$prim"
    printf '    "state_values": ["primary", "backup"],\n'
    printf '    "tor": {"name": "%s", "netns": "%s", "bgp": "frr", "frr_pathspace": "%s", "asn": %s, "router_id": "%s", "ecmp": true, "hash_policy": 1, "external_bridge": "br-ext", "external_ip": "%s/24", "peers": {"gwA": "%s", "gwB": "%s"}},\n' \
        "$HA_TOR" "$HA_TOR" "$HA_TOR" "${ASN[$HA_TOR]}" "${ROUTER_ID[$HA_TOR]}" "$HA_EXT_GW" "$(ha_link gwA host_ip)" "$(ha_link gwB host_ip)"
    printf '    "compute": {"name": "%s", "netns": "%s", "enter": ["%s", "exec", "--dir", "%s", "--host", "%s"], "netns_dir": "%s", "mount_ns": "%s", "underlay_if": "%s", "underlay_ip": "%s", "vtep": "%s", "vxlan_if": "%s", "vxlan_mtu": %s, "ovsdb_socket": "/run/openvswitch/db.sock", "ovsdb_socket_lab": "%s", "ovsdb_pidfile": "%s", "vswitchd_pidfile": "%s", "tunnel_ports": [' \
        "$HA_CMP" "$HA_CMP" "$SELF" "$DIR" "$HA_CMP" "$DIR/$HA_CMP/netns" "$(host_mnt "$HA_CMP")" "$(ha_link "$HA_CMP" host_if)" \
        "$(ha_link "$HA_CMP" host_ip)" "$(vtep "$HA_CMP")" "$(vxlan_if)" "$HA_MTU" "$DIR/$HA_CMP/ovs/db.sock" \
        "$DIR/run/ovsdb-$HA_CMP.pid" "$DIR/run/vswitchd-$HA_CMP.pid"
    first=1
    for o in "${HA_GWS[@]}"; do
        ((first)) || printf ', '; first=0
        printf '{"name": "%s", "remote_ip": "%s", "bridge": "br-tun"}' "$(ovs_tun_port "$(vtep "$o")")" "$(vtep "$o")"
    done
    printf '],\n      "vm": {"name": "%s", "netns": "%s", "port_id": "%s", "vm_uuid": "%s", "tap": "%s", "mac": "%s", "ip": "%s", "mtu": %s, "ovs_bridge": "br-int", "tag": %s}},\n' \
        "$HA_VM" "$HA_VM" "$HA_VM_PORT" "$HA_VM_UUID" "$(tap_of "$HA_VM_PORT")" "$HA_VM_MAC" "$HA_VM_IP" "$HA_MTU" "$HA_TAG"
    printf '    "gateways": {'
    first=1
    for h in "${HA_GWS[@]}"; do
        ((first)) || printf ','
        first=0
        printf '\n      "%s": {"netns": "%s", "enter": ["%s", "exec", "--dir", "%s", "--host", "%s"], "netns_dir": "%s", "mount_ns": "%s",\n' \
            "$h" "$h" "$SELF" "$DIR" "$h" "$DIR/$h/netns" "$(host_mnt "$h")"
        printf '        "ha_confs": "%s", "keepalived_conf": "%s/keepalived.conf", "state_file": "%s",\n' \
            "$(ha_confs "$h")" "$(ha_conf_dir "$h")" "$(ha_state_file "$h")"
        printf '        "keepalived_pidfile": "%s", "keepalived_vrrp_pidfile": "%s", "keepalived_tmpdir": "%s",\n' \
            "$(ka_pidfile "$h")" "$(ka_vrrp_pidfile "$h")" "$DIR/$h/tmp"
        printf '        "ha_if": "%s", "ha_port_id": "%s", "ha_mac": "%s", "ha_ip": "%s/18",\n' \
            "$(ha_if "$h")" "${HA_HA_PORT[$h]}" "${HA_HA_MAC[$h]}" "${HA_HA_IP[$h]}"
        printf '        "dhcp_if": "%s", "dhcp_port_id": "%s", "dhcp_mac": "%s", "dhcp_ip": "%s/24",\n' \
            "$(dhcp_if "$h")" "${HA_DHCP_PORT[$h]}" "${HA_DHCP_MAC[$h]}" "${HA_DHCP_IP[$h]}"
        if [[ $h == gwA ]]; then
            printf '        "bgp": "bird", "bird_socket": "%s", "bird_conf": "%s/gwA/bird.conf", "bird_pidfile": "%s", ' \
                "$(bird_sock gwA)" "$DIR" "$DIR/run/bird-gwA.pid"
        else
            printf '        "bgp": "frr", "frr_pathspace": "gwB", "bgpd_pidfile": "%s", "zebra_pidfile": "%s", ' \
                "$DIR/run/bgpd-gwB.pid" "$DIR/run/zebra-gwB.pid"
        fi
        printf '"asn": %s, "router_id": "%s", "bgp_peer": "%s", "bgp_peer_name": "%s",\n' \
            "${ASN[$h]}" "${ROUTER_ID[$h]}" "$(ha_link "$h" tor_ip)" "$HA_TOR"
        printf '        "underlay_if": "%s", "underlay_ip": "%s", "vtep": "%s", "vxlan_if": "%s", "ha_vxlan_if": "%s", "vxlan_mtu": %s,\n' \
            "$(ha_link "$h" host_if)" "$(ha_link "$h" host_ip)" "$(vtep "$h")" "$(vxlan_if)" "$(vxlan_if "$HA_HA_VNI")" "$HA_MTU"
        printf '        "br_ex_ip": "%s/24", "tenant_route": "%s via %s dev br-ex",\n' "${HA_BREX_IP[$h]}" "$HA_TENANT_NET" "$HA_QG_IP"
        printf '        "ovsdb_socket": "/run/openvswitch/db.sock", "ovsdb_socket_lab": "%s", "ovsdb_pidfile": "%s", "vswitchd_pidfile": "%s",\n' \
            "$DIR/$h/ovs/db.sock" "$DIR/run/ovsdb-$h.pid" "$DIR/run/vswitchd-$h.pid"
        printf '        "ovs_ports": {"qr": "%s", "qg": "%s", "ha": "%s", "dhcp": "%s"}, "ovs_tags": {"tenant": %s, "ha": %s}, "tunnel_ports": [' \
            "$(tap_of "$HA_QR_PORT")" "$(tap_of "$HA_QG_PORT")" "$(tap_of "${HA_HA_PORT[$h]}")" "$(tap_of "${HA_DHCP_PORT[$h]}")" \
            "$HA_TAG" "$HA_HA_TAG"
        f=1
        for o in "${HA_HOSTS[@]}"; do
            [[ $o != "$h" ]] || continue
            ((f)) || printf ', '; f=0
            printf '{"name": "%s", "remote_ip": "%s", "bridge": "br-tun"}' "$(ovs_tun_port "$(vtep "$o")")" "$(vtep "$o")"
        done
        printf ']}'
    done
    printf '\n    },\n'
    printf '    "fault_host": "%s", "split_brain_host": "%s", "dead_tag": %s,\n' "$HA_FAULT_GW" "$HA_SPLIT_GW" "$HA_DEAD_TAG"
    printf '    "conntrack_max": %s, "conntrack_fill_percent": 96,\n' "$(ct_max)"
    # the faults of this part: those whose host (lab/faults.tsv) is a gateway
    printf '    "faults": [%s]\n' "$(for f in "${FAULTS[@]}"; do
        [[ " ${HA_GWS[*]} " != *" ${FAULT_HOST[$f]} "* ]] || printf '"%s", ' "$f"
    done | sed 's/, $//')"
    printf '  },\n'
}

write_lab_json() {
    local holder=$1 vm first=1 ip6
    {
        printf '{\n  "dir": "%s",\n  "holder_pid": %s,\n' "$DIR" "$holder"
        printf '  "hypervisors": {\n'
        printf '    "hv1": {"netns": "hv1", "bgp": "bird", "bird_socket": "%s", "asn": %s, "router_id": "%s", "firewall": "iptables", "dnsmasq_hostsdir": "%s", "dnsmasq_pidfile": "%s", "metadata_port": %s, "metadata_pidfile": "%s", "uplinks": {"tor1": "eth-tor1", "tor2": "eth-tor2"}, "peers": ["tor1", "tor2", "tor1_v6", "tor2_v6"]},\n' \
            "$(bird_sock hv1)" "${ASN[hv1]}" "${ROUTER_ID[hv1]}" "$DIR/hv1/dhcp-hosts" "$DIR/run/dnsmasq-hv1.pid" "$METADATA_PORT" "$DIR/run/metadata-hv1.spawn"
        printf '    "hv2": {"netns": "hv2", "bgp": "frr", "frr_pathspace": "hv2", "asn": %s, "router_id": "%s", "firewall": "nft", "dnsmasq_hostsdir": "%s", "dnsmasq_pidfile": "%s", "metadata_port": %s, "metadata_pidfile": "%s", "uplinks": {"tor1": "eth-tor1", "tor2": "eth-tor2"}, "peers": ["%s", "%s", "%s", "%s"]}\n' \
            "${ASN[hv2]}" "${ROUTER_ID[hv2]}" "$DIR/hv2/dhcp-hosts" "$DIR/run/dnsmasq-hv2.pid" "$METADATA_PORT" "$DIR/run/metadata-hv2.spawn" \
            "$(link_field hv2 tor1 peer_v4)" "$(link_field hv2 tor2 peer_v4)" "$(link_field hv2 tor1 peer_v6)" "$(link_field hv2 tor2 peer_v6)"
        printf '  },\n  "tors": {\n'
        printf '    "tor1": {"netns": "tor1", "bgp": "bird", "bird_socket": "%s", "asn": %s, "peers": ["hv1", "hv2", "hv1_v6", "hv2_v6"]},\n' "$(bird_sock tor1)" "${ASN[tor1]}"
        printf '    "tor2": {"netns": "tor2", "bgp": "frr", "frr_pathspace": "tor2", "asn": %s, "peers": ["%s", "%s", "%s", "%s"]}\n' "${ASN[tor2]}" \
            "$(link_field tor2 hv1 peer_v4)" "$(link_field tor2 hv2 peer_v4)" "$(link_field tor2 hv1 peer_v6)" "$(link_field tor2 hv2 peer_v6)"
        printf '  },\n  "vms": {\n'
        for vm in "${VMS[@]}"; do
            ((first)) || printf ',\n'
            first=0
            if [[ -n ${VM_IP6[$vm]} ]]; then ip6="\"${VM_IP6[$vm]}\""; else ip6=null; fi
            printf '    "%s": {"hv": "%s", "netns": "%s", "port_id": "%s", "tap": "%s", "mac": "%s", "ipv4": "%s", "ipv6": %s}' \
                "$vm" "${VM_HV[$vm]}" "$vm" "${VM_PORT[$vm]}" "$(vm_tap "$vm")" "$(vm_mac "$vm")" "${VM_IP4[$vm]}" "$ip6"
        done
        printf '\n  },\n'
        probe_json
        ha_json
        printf '  "mtu": %s,\n  "gateway4": "%s",\n  "gateway6": "%s",\n  "ext": "%s",\n  "ext6": "%s",\n  "ext_netns": "ext1",\n' \
            "$MTU" "$GW4" "$GW6" "$EXT4" "$EXT6"
        printf '  "metadata_ip": "%s",\n  "faults": [%s]\n}\n' "$METADATA_IP" "$(printf '"%s", ' "${FAULTS[@]}" | sed 's/, $//')"
    } >"$DIR/lab.json.tmp"
    mv -f "$DIR/lab.json.tmp" "$DIR/lab.json"
}
