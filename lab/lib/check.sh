# shellcheck shell=bash
# vmlab: the baseline check (`wait`) and the data-plane self test.
# (sourced by lab/vmlab, which sets the shell options and the paths).

# ---------------------------------------------------------------------------
# Baseline check (`wait`)
# ---------------------------------------------------------------------------
# frr_peer_states NODE: "peer state" lines from `show bgp neighbors json`.
frr_peer_states() {
    vtysh_ns "$1" -c 'show bgp neighbors json' 2>/dev/null | "$(python_bin)" "$LAB_PY/frr_peer_states.py"
}

# lab_problems: print one line per deviation from the healthy baseline.
lab_problems() {
    local d a out line node peer vm tor hv want n hapid hafile
    # The HA part's checks run alongside (mostly process start-up latency).
    hafile=$DIR/run/ha-problems.$BASHPID
    ha_problems >"$hafile" 2>&1 &
    hapid=$!
    for d in "${DAEMONS[@]}"; do
        read -r -a a <<<"$d"
        daemon_alive "${a[0]}" || echo "daemon ${a[0]} is not running"
    done
    # BGP sessions, BIRD nodes.
    for node in hv1 tor1; do
        out=$(birdc_ns "$node" show protocols 2>&1) || { echo "$node: birdc failed: ${out##*$'\n'}"; continue; }
        if [[ $node == hv1 ]]; then want="tor1 tor1_v6 tor2 tor2_v6"; else want="hv1 hv1_v6 hv2 hv2_v6"; fi
        for peer in $want; do
            line=$(awk -v p="$peer" '$1 == p' <<<"$out")
            [[ $line == *Established* ]] || echo "$node: BGP $peer not Established: ${line:-missing}"
        done
    done
    # BGP sessions, FRR nodes.
    for node in hv2 tor2; do
        out=$(frr_peer_states "$node") || true
        if [[ $node == hv2 ]]; then want="${TORS[*]}"; else want="${HVS[*]}"; fi
        for peer in $want; do
            for a in "$(link_field "$node" "$peer" peer_v4)" "$(link_field "$node" "$peer" peer_v6)"; do
                line=$(awk -v p="$a" '$1 == p {print $2}' <<<"$out")
                [[ $line == Established ]] || echo "$node: BGP $a ($peer) not Established: ${line:-missing}"
            done
        done
    done
    # VM host routes on the hypervisors, and on both ToRs via the right hv.
    for vm in "${VMS[@]}"; do
        hv=${VM_HV[$vm]}
        out=$(ip -n "$hv" -4 route show "${VM_IP4[$vm]}/32")
        [[ $out == *"dev $(vm_tap "$vm") proto static scope link"* ]] ||
            echo "$hv: host route ${VM_IP4[$vm]}/32 dev $(vm_tap "$vm") missing"
        for tor in "${TORS[@]}"; do
            out=$(ip -n "$tor" -4 route show "${VM_IP4[$vm]}/32")
            [[ $out == *"via $(link_field "$tor" "$hv" peer_v4) dev $(link_field "$tor" "$hv" if) "* ]] ||
                echo "$tor: no route ${VM_IP4[$vm]}/32 via $hv"
            if [[ -n ${VM_IP6[$vm]} ]]; then
                out=$(ip -n "$tor" -6 route show "${VM_IP6[$vm]}/128")
                [[ $out == *"dev $(link_field "$tor" "$hv" if) "* ]] ||
                    echo "$tor: no route ${VM_IP6[$vm]}/128 via $hv"
            fi
        done
    done
    for tor in "${TORS[@]}"; do
        n=$(ip -n "$tor" -4 route show root "$VM_NET4" | grep -c . || true)
        ((n == 4)) || echo "$tor: $n routes inside $VM_NET4 (want 4)"
        n=$(ip -n "$tor" -6 route show root "$VM_NET6" | grep -c . || true)
        ((n == 2)) || echo "$tor: $n routes inside $VM_NET6 (want 2)"
    done
    # ECMP towards the external prefixes on both hypervisors.
    for hv in "${HVS[@]}"; do
        n=$(ip -n "$hv" -4 route show "$EXT_NET4" | grep -c nexthop || true)
        ((n == 2)) || echo "$hv: $EXT_NET4 has $n ECMP next hops (want 2)"
        n=$(ip -n "$hv" -6 route show "$EXT_NET6" | grep -c nexthop || true)
        ((n == 2)) || echo "$hv: $EXT_NET6 has $n ECMP next hops (want 2)"
    done
    # ECMP part: two next hops on r1, and raw SYNs from pc1 with the sample
    # source ports (one per gateway and family) get srv1's SYN-ACK.
    for n in 4 6; do
        a=$(ip -n r1 "-$n" route show "$(probe_dst_net "$n")" | grep -c nexthop || true)
        ((a == 2)) || echo "r1: $(probe_dst_net "$n") has $a ECMP next hops (want 2)"
    done
    while read -r a line; do
        [[ $line == synack ]] && continue
        case $a in
        v[46]/*) echo "probe: pc1 -> srv1:$PROBE_OPEN IPv${a:1:1} through ${a#*/} (sample flow): $line" ;;
        *) echo "probe: check failed: $a $line" ;;
        esac
    done < <(probe_syn_results)
    # HA gateway part: exactly one primary, gateway BGP + ECMP on tor3, OVS ports.
    wait "$hapid" || true
    cat "$hafile"
    rm -f "$hafile"
    return 0
}

lab_converged() { local p; p=$(lab_problems) || return 1; [[ -z $p ]]; }

inner_wait() { # TIMEOUT
    local timeout=$1
    if poll_until "$timeout" lab_converged; then return 0; fi
    msg "not converged after ${timeout}s:"
    lab_problems | sed 's/^/  /' >&2
    return 1
}

# Data-plane self test: pings both ways + metadata.
probe_ping() { # NS DST
    local i
    for i in 1 2 3; do
        if ip netns exec "$1" ping -q -c 1 -W 2 "$2" >/dev/null 2>&1; then return 0; fi
    done
    return 1
}

http_get() { # NS URL
    ip netns exec "$1" timeout 5 "$(python_bin)" "$LAB_PY/http_get.py" "$2" 2>/dev/null
}

self_test() {
    local fails=() pids=() what=() i
    local -a tests=(
        "vm1 $EXT4" "vm2 $EXT4" "vm3 $EXT4" "vm4 $EXT4" "ext1 ${VM_IP4[vm1]}" "ext1 ${VM_IP4[vm3]}"
        "vm1 $EXT6" "vm3 $EXT6" "ext1 ${VM_IP6[vm1]}" "ext1 ${VM_IP6[vm3]}" "vm1 ${VM_IP4[vm2]}"
    )
    if command -v ping >/dev/null 2>&1; then
        for i in "${tests[@]}"; do
            # shellcheck disable=SC2086 # "ns dst" split on purpose
            probe_ping $i &
            pids+=("$!"); what+=("ping $i")
        done
    else
        # No ping: a TCP connect to port 22 (allowed by the SGs) answered by
        # RST ("connection refused") still proves the round trip.
        for i in "vm1 $EXT4" "ext1 ${VM_IP4[vm1]}" "ext1 ${VM_IP4[vm3]}"; do
            # shellcheck disable=SC2086,SC2016 # split on purpose; inner bash expands $0
            (set -- $i; out=$(ip netns exec "$1" timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/22"' "$2" 2>&1) ||
                [[ $out == *refused* ]]) &
            pids+=("$!"); what+=("tcp $i")
        done
    fi
    for vm in vm1 vm3; do
        http_get "$vm" "http://$METADATA_IP/" &
        pids+=("$!"); what+=("metadata from $vm")
    done
    probe_services_ok &
    pids+=("$!"); what+=("srv1 services from pc1 (see $DIR/logs/probe-selftest.log)")
    # HA part: tvm1 over VXLAN to the router's gateway address and both qdhcp
    # ports, out through SNAT to tor3, and tor3 -> tvm1 through a gateway (ECMP).
    for i in "$HA_VM $HA_GW_IP" "$HA_VM ${HA_DHCP_IP[gwA]}" "$HA_VM ${HA_DHCP_IP[gwB]}" "$HA_VM $HA_EXT_GW" \
        "$HA_TOR $HA_VM_IP"; do
        # shellcheck disable=SC2086 # "ns dst" split on purpose
        probe_ping $i &
        pids+=("$!"); what+=("ping $i")
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || fails+=("${what[$i]}")
    done
    if ((${#fails[@]})); then
        echo "data-plane self-test failed: ${fails[*]}"
        return 1
    fi
}
