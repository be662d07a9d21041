# shellcheck shell=bash
# vmlab: the ECMP part, for `vmpath probe`.
# (sourced by lab/vmlab, which sets the shell options and the paths).

# ---------------------------------------------------------------------------
# ECMP part (`vmpath probe`): pc1 -- r1 ==ECMP==> gw1 | gw2 -- srv1
# ---------------------------------------------------------------------------
probe_src() { link_field pc1 r1 "v$1"; }                  # FAMILY: pc1's address
probe_dst() { if [[ $1 == 4 ]]; then echo "$PROBE_DST4"; else echo "$PROBE_DST6"; fi; }
probe_dst_net() { if [[ $1 == 4 ]]; then echo "$PROBE_DST_NET4"; else echo "$PROBE_DST_NET6"; fi; }

# probe_route_gw FAMILY SPORT [DPORT]: the gateway that r1 forwards pc1's TCP
# flow SPORT -> srv1:DPORT to (the ground truth: the iif form of `ip route get`
# is the one that matches real forwarding, see lab/README.md).
probe_route_gw() {
    local fam=$1 sport=$2 dport=${3:-$PROBE_OPEN} out g
    out=$(ip -n r1 "-$fam" route get "$(probe_dst "$fam")" from "$(probe_src "$fam")" \
        iif "$(link_field r1 pc1 if)" ipproto tcp sport "$sport" dport "$dport") || return 1
    for g in "${PROBE_GWS[@]}"; do
        if [[ $out == *" dev $(link_field r1 "$g" if) "* ]]; then echo "$g"; return 0; fi
    done
    return 1
}

# DIR/probe/flows: "FAMILY GATEWAY SPORT", the first source port (from
# PROBE_SPORT_BASE up) that r1 sends through each gateway, per family.
probe_pick_flows() {
    local fam g sport want have=() line
    : >"$DIR/probe/flows.tmp"
    for fam in 4 6; do
        have=()
        for ((sport = PROBE_SPORT_BASE; sport < PROBE_SPORT_BASE + 256; sport++)); do
            g=$(probe_route_gw "$fam" "$sport") || continue
            [[ " ${have[*]} " == *" $g "* ]] && continue
            have+=("$g")
            echo "$fam $g $sport" >>"$DIR/probe/flows.tmp"
            ((${#have[@]} < ${#PROBE_GWS[@]})) || break
        done
        for want in "${PROBE_GWS[@]}"; do
            [[ " ${have[*]} " == *" $want "* ]] || return 1
        done
    done
    sort -k1,1n -k2,2 "$DIR/probe/flows.tmp" >"$DIR/probe/flows"
    rm -f "$DIR/probe/flows.tmp"
    while read -r line; do msg "probe sample flow: $line"; done <"$DIR/probe/flows"
}

# probe_flow_specs: check.py syn arguments for the sample flows
# ("vFAMILY/GATEWAY,SRC,DST,DPORT,SPORT").
probe_flow_specs() {
    local fam g sport
    [[ -s $DIR/probe/flows ]] || return 1
    while read -r fam g sport; do
        echo "v$fam/$g,$(probe_src "$fam"),$(probe_dst "$fam"),$PROBE_OPEN,$sport"
    done <"$DIR/probe/flows"
}

# probe_check MODE TIMEOUT SPEC...: run DIR/probe/check.py in pc1 (bounded).
probe_check() {
    local mode=$1 t=$2; shift 2
    ip netns exec pc1 timeout $((${t%.*} + 5)) "$(python_bin)" "$DIR/probe/check.py" "$mode" "$t" "$@"
}

# probe_syn_results: "vFAMILY/GATEWAY RESULT" for every sample flow.
probe_syn_results() {
    local specs
    mapfile -t specs < <(probe_flow_specs) || true
    ((${#specs[@]})) || { echo "no sample flows in $DIR/probe/flows"; return 0; }
    probe_check syn 1 "${specs[@]}" 2>&1 || true
}

# True when the flows through the blackholed gateway get nothing back and
# the others still reach srv1.
probe_blackhole_visible() {
    local out label res bad=0
    out=$(probe_syn_results)
    while read -r label res; do
        if [[ $label == */"$PROBE_BLACKHOLE_GW" ]]; then [[ $res == timeout ]] || bad=1
        else [[ $res == synack ]] || bad=1; fi
    done <<<"$out"
    ((bad == 0))
}

# probe_services_ok: one full TCP connect from pc1 to each of srv1's three
# ports, in both families (costs srv1 one ICMP error per family, well inside
# the kernel's default burst).
probe_services_ok() {
    local out want fam specs=()
    for fam in 4 6; do
        specs+=("open$fam,$(probe_src "$fam"),$(probe_dst "$fam"),$PROBE_OPEN"
            "closed$fam,$(probe_src "$fam"),$(probe_dst "$fam"),$PROBE_CLOSED"
            "unreach$fam,$(probe_src "$fam"),$(probe_dst "$fam"),$PROBE_UNREACH")
    done
    out=$(probe_check connect 3 "${specs[@]}" 2>&1) || true
    want="open4 open"$'\n'"closed4 refused"$'\n'"unreach4 icmp $PROBE_UNREACH_ICMP4"$'\n'
    want+="open6 open"$'\n'"closed6 refused"$'\n'"unreach6 icmp $PROBE_UNREACH_ICMP6"
    printf '%s\n' "$out" >"$DIR/logs/probe-selftest.log"
    [[ $out == "$want" ]]
}

listener_listening() {
    local out
    out=$(ip netns exec srv1 ss -Hltn "sport = :$PROBE_OPEN" 2>/dev/null) || return 1
    [[ $out == *"$PROBE_DST4:$PROBE_OPEN"* && $out == *"[$PROBE_DST6]:$PROBE_OPEN"* ]]
}

start_listener() {
    spawn listener-srv1 srv1 "$(python_bin)" -u "$DIR/probe/listener.py" "$PROBE_OPEN" "$PROBE_DST4" "$PROBE_DST6"
}

# write_probe_scripts: srv1's listener and pc1's checks, copied from lab/py into
# DIR/probe (the listener's command line names this lab's DIR; lab/selftest runs
# DIR/probe/check.py).
write_probe_scripts() {
    cp -f -- "$LAB_PY/listener.py" "$LAB_PY/check.py" "$DIR/probe/"
}

# nft on srv1: the "unreachable" port is rejected with ICMP admin-prohibited
# (IPv4 type 3 code 13, IPv6 type 1 code 1); nothing listens on the closed port.
gen_nft_srv1() {
    cat <<EOF
table inet vmlab_probe {
    chain input {
        type filter hook input priority 0; policy accept;
        ip daddr $PROBE_DST4 tcp dport $PROBE_UNREACH reject with icmp type admin-prohibited
        ip6 daddr $PROBE_DST6 tcp dport $PROBE_UNREACH reject with icmpv6 type admin-prohibited
    }
}
EOF
}

build_probe() {
    local ns l a i=0 fam g via=() cnet
    mkdir -p "$DIR/probe"
    write_probe_scripts
    for ns in "${PROBE_NS[@]}"; do
        ip netns add "$ns"
        # Kernel-default ICMP rate limits here: icmp_ratelimit is left alone.
        sysctl_ns "$ns" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
            net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
            net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
        ip -n "$ns" link set lo up
        stat -L -c "%i $ns" "/run/netns/$ns" >>"$DIR/run/netns.ids"
    done
    for ns in "${PROBE_ROUTERS[@]}"; do
        sysctl_ns "$ns" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
            net.ipv6.conf.default.forwarding=1 net.ipv4.conf.all.send_redirects=0 \
            net.ipv4.conf.default.send_redirects=0
    done
    # ECMP on the 5-tuple with a fixed seed (r1; srv1 too, for its return path).
    for ns in r1 srv1; do
        sysctl_ns "$ns" net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1 \
            "net.ipv4.fib_multipath_hash_seed=$PROBE_HASH_SEED"
    done
    for l in "${PROBE_LINKS[@]}"; do
        read -r -a a <<<"$l"
        i=$((i + 1))
        ip -n "${a[0]}" link add "${a[1]}" address "$(printf '02:00:00:01:%02x:01' "$i")" type veth \
            peer name "${a[5]}" address "$(printf '02:00:00:01:%02x:02' "$i")" netns "${a[4]}"
        ip -n "${a[0]}" addr add "${a[2]}/24" dev "${a[1]}"
        ip -n "${a[0]}" addr add "${a[3]}/64" dev "${a[1]}" nodad
        ip -n "${a[4]}" addr add "${a[6]}/24" dev "${a[5]}"
        ip -n "${a[4]}" addr add "${a[7]}/64" dev "${a[5]}" nodad
        ip -n "${a[0]}" link set "${a[1]}" up
        ip -n "${a[4]}" link set "${a[5]}" up
    done
    ip -n srv1 addr add "$PROBE_DST4/32" dev lo
    ip -n srv1 addr add "$PROBE_DST6/128" dev lo nodad
    # pc1: one default route via r1 (ECMP happens at r1, not here).
    ip -n pc1 route add default via "$(link_field pc1 r1 peer_v4)" dev eth-r1
    ip -n pc1 -6 route add default via "$(link_field pc1 r1 peer_v6)" dev eth-r1
    for fam in 4 6; do
        # r1: srv1's network over both gateways, equal cost.
        via=()
        for g in "${PROBE_GWS[@]}"; do
            via+=(nexthop via "$(link_field r1 "$g" "peer_v$fam")" dev "$(link_field r1 "$g" if)")
        done
        ip -n r1 "-$fam" route add "$(probe_dst_net "$fam")" proto static "${via[@]}"
        # srv1: back to pc1's network over both gateways.
        via=()
        for g in "${PROBE_GWS[@]}"; do
            via+=(nexthop via "$(link_field srv1 "$g" "peer_v$fam")" dev "$(link_field srv1 "$g" if)")
        done
        if [[ $fam == 4 ]]; then cnet=$PROBE_CLIENT_NET4; else cnet=$PROBE_CLIENT_NET6; fi
        ip -n srv1 "-$fam" route add "$cnet" proto static "${via[@]}"
        for g in "${PROBE_GWS[@]}"; do
            ip -n "$g" "-$fam" route add "$(probe_dst_net "$fam")" via "$(link_field "$g" srv1 "peer_v$fam")" \
                dev "$(link_field "$g" srv1 if)" proto static
            ip -n "$g" "-$fam" route add "$cnet" via "$(link_field "$g" r1 "peer_v$fam")" \
                dev "$(link_field "$g" r1 if)" proto static
        done
    done
    gen_nft_srv1 >"$DIR/probe/srv1.nft"
    nsx srv1 nft -f "$DIR/probe/srv1.nft"
    start_listener
    probe_pick_flows || holder_fail "r1 does not use both gateways for any source port from $PROBE_SPORT_BASE"
}
