# shellcheck shell=bash
# vmlab: faults of the HA gateway part.
# (sourced by lab/vmlab, which sets the shell options and the paths).

# --- Faults of the HA gateway part ---
ct_count() { hnx "$1" "$(qrouter_ns)" cat /proc/sys/net/netfilter/nf_conntrack_count; }
ct_max() { cat /proc/sys/net/netfilter/nf_conntrack_max; }
ct_at_least() { # HOST PERCENT
    local c m
    c=$(ct_count "$1") && m=$(ct_max) || return 1
    ((c * 100 >= $2 * m))
}
ct_below() { ! ct_at_least "$@"; }
ovs_tag_is() { [[ $(ovsctl "$1" get Port "$2" tag 2>/dev/null) == "$3" ]]; }
ha_both_primary() { [[ $(ha_primaries | tr '\n' ' ') == "gwA gwB " ]]; }
ha_no_vip() { ! ha_vip_on gwA && ! ha_vip_on gwB; }
ha_killed_visible() { # DEAD: the other took over, the dead one keeps its VIP
    [[ $(ha_role "$(ha_other "$1")") == primary ]] && ha_vip_on "$1"
}
tor3_only() { [[ $(tor3_nexthops | tr '\n' ' ') == "$1 " ]]; }

ha_plant() {
    local name=$1 h p prim ha max cnt want out
    case $name in
    vrrp-split-brain)
        h=$HA_SPLIT_GW; ha=$(ha_if "$h")
        # Both directions, in gwB's qrouter namespace only (the "one side").
        hnx "$h" "$(qrouter_ns)" nft -f - <<NFTEOF
table inet vmlab_fault {
    chain input {
        type filter hook input priority 0; policy accept;
        iifname "$ha" ip protocol 112 counter drop
    }
    chain output {
        type filter hook output priority 0; policy accept;
        oifname "$ha" ip protocol 112 counter drop
    }
}
NFTEOF
        poll_until 20 ha_both_primary || msg "warning: not both primary: gwA $(ha_role gwA); gwB $(ha_role gwB)"
        ;;
    keepalived-killed)
        prim=$(ha_primaries)
        [[ $prim == gw? ]] || die "keepalived-killed needs exactly one primary (have: ${prim//$'\n'/ })"
        echo "$prim" >"$DIR/faults/keepalived-killed.host"
        # SIGSTOP the parent first: it would restart a dead VRRP child, and a dead
        # parent makes the child exit cleanly (PDEATHSIG), removing the VIPs.
        local parent child
        parent=$(read_pid "$(ka_pidfile "$prim")"); child=$(read_pid "$(ka_vrrp_pidfile "$prim")")
        pid_alive "$parent" "$(daemon_pattern "keepalived-$prim")" || die "keepalived on $prim is not running"
        kill -STOP "$parent"
        if [[ -n $child ]] && pid_alive "$child" "$(daemon_pattern "keepalived-$prim")"; then kill -KILL "$child"; fi
        kill -KILL "$parent"
        poll_until 5 eval "! pid_alive $parent && ! pid_alive ${child:-$parent}" || msg "warning: keepalived on $prim still alive"
        msg "SIGKILLed keepalived on $prim (parent $parent, VRRP child ${child:-?})"
        poll_until 20 ha_killed_visible "$prim" ||
            msg "warning: no takeover: $prim $(ha_role "$prim"); $(ha_other "$prim") $(ha_role "$(ha_other "$prim")")"
        ;;
    no-primary)
        prim=$(ha_primaries | head -n1)
        for h in $(ha_other "${prim:-gwA}") "${prim:-gwA}"; do   # backup first, then the primary
            for p in $(keepalived_pids "$h"); do stop_pid "$p" "$(daemon_pattern "keepalived-$h")" 5; done
        done
        poll_until 10 ha_no_vip || msg "warning: a VIP is still configured"
        ;;
    conntrack-full)
        h=$HA_FAULT_GW
        max=$(ct_max); cnt=$(ct_count "$h")
        want=$(((max * 96 + 99) / 100))
        if ((want > cnt)); then
            out=$(hnx "$h" "$(qrouter_ns)" "$(python_bin)" "$LAB_HOME/ct-fill" $((want - cnt)) 2>&1) || true
            printf '%s\n' "$out" >"$DIR/faults/conntrack-full.out"
            msg "ct-fill in $h $(qrouter_ns): $out"
        fi
        poll_until 10 ct_at_least "$h" 95 || msg "warning: conntrack count $(ct_count "$h") of $max"
        ;;
    mtu-mismatch)
        # The underlay shrinks below the tenant MTU + 50: 1450-byte frames no longer fit.
        ip -n "$HA_FAULT_GW" link set "$(ha_link "$HA_FAULT_GW" host_if)" mtu "$HA_FAULT_UL_MTU"
        ;;
    gw-no-advertise)
        touch "$DIR/faults/gw-no-advertise.flag"
        gen_bird_gw
        bird_configure gwA
        poll_until 20 tor3_only gwB || msg "warning: $HA_TOR still routes $HA_TENANT_NET via [$(tor3_nexthops | tr '\n' ' ')]"
        ;;
    ovs-dead-port)
        ovsctl "$HA_FAULT_GW" set Port "$(tap_of "$HA_QR_PORT")" "tag=$HA_DEAD_TAG"
        poll_until 5 ovs_tag_is "$HA_FAULT_GW" "$(tap_of "$HA_QR_PORT")" "$HA_DEAD_TAG" || msg "warning: tag not set"
        ;;
    # The compute node cmp1 (the overlay design's `vmpath walk`).
    cmp-dead-port)
        ovsctl "$HA_CMP" set Port "$(tap_of "$HA_VM_PORT")" "tag=$HA_DEAD_TAG"
        poll_until 5 ovs_tag_is "$HA_CMP" "$(tap_of "$HA_VM_PORT")" "$HA_DEAD_TAG" || msg "warning: tag not set"
        ;;
    cmp-tap-mtu)
        # OVS re-applies an mtu_request: drop it first (os-vif sets none for a plain tap).
        ovsctl "$HA_CMP" clear Interface "$(tap_of "$HA_VM_PORT")" mtu_request
        ip -n "$HA_CMP" link set "$(tap_of "$HA_VM_PORT")" mtu "$HA_FAULT_TAP_MTU"
        ;;
    cmp-underlay-mtu)
        ip -n "$HA_CMP" link set "$(ha_link "$HA_CMP" host_if)" mtu "$HA_FAULT_UL_MTU"
        ;;
    cmp-tunnel-down)
        ip -n "$HA_CMP" link set "$(vxlan_if)" down
        ;;
    esac
}

# ha_clean_stale HOST: remove the router addresses and default route that a
# dead keepalived left behind (what a restarted L3 agent does), once HOST's
# restarted keepalived is backup.
ha_clean_stale() {
    local h=$1 vip gw qg rt
    read -r vip gw qg rt <<<"$(ha_addr_state "$h")"
    [[ $(ha_state_of "$h") == backup ]] || return 0
    if ((rt)); then hip "$h" -n "$(qrouter_ns)" route del default via "$HA_EXT_GW" dev "$(qg_if)" || true; fi
    if ((vip)); then hip "$h" -n "$(qrouter_ns)" addr del "$HA_VIP/24" dev "$(ha_if "$h")" || true; fi
    if ((gw)); then hip "$h" -n "$(qrouter_ns)" addr del "$HA_GW_IP/24" dev "$(qr_if)" || true; fi
    if ((qg)); then hip "$h" -n "$(qrouter_ns)" addr del "$HA_QG_IP/24" dev "$(qg_if)" || true; fi
}

ha_keepalived_running() { [[ -n $(keepalived_pids "$1") ]]; }

ha_heal() {
    local name=$1 h
    case $name in
    vrrp-split-brain)
        if hnx "$HA_SPLIT_GW" "$(qrouter_ns)" nft list table inet vmlab_fault >/dev/null 2>&1; then
            hnx "$HA_SPLIT_GW" "$(qrouter_ns)" nft delete table inet vmlab_fault
        fi
        ;;
    keepalived-killed | no-primary)
        # gwA first (it becomes primary when nobody is), gwB one advert later.
        for h in "${HA_GWS[@]}"; do
            if ! ha_keepalived_running "$h"; then
                msg "starting keepalived on $h"
                start_keepalived "$h"
                sleep "$HA_ADVERT_INT"
            fi
        done
        ;;
    conntrack-full)
        hnx "$HA_FAULT_GW" "$(qrouter_ns)" conntrack -F >/dev/null 2>&1 || true
        poll_until 10 ct_below "$HA_FAULT_GW" 5 || msg "warning: conntrack count still $(ct_count "$HA_FAULT_GW")"
        ;;
    mtu-mismatch)
        ip -n "$HA_FAULT_GW" link set "$(ha_link "$HA_FAULT_GW" host_if)" mtu "$HA_UL_MTU"
        ;;
    gw-no-advertise)
        rm -f "$DIR/faults/gw-no-advertise.flag"
        gen_bird_gw
        bird_configure gwA
        ;;
    ovs-dead-port)
        ovsctl "$HA_FAULT_GW" set Port "$(tap_of "$HA_QR_PORT")" "tag=$HA_TAG"
        ;;
    cmp-dead-port)
        ovsctl "$HA_CMP" set Port "$(tap_of "$HA_VM_PORT")" "tag=$HA_TAG"
        ;;
    cmp-tap-mtu)
        ip -n "$HA_CMP" link set "$(tap_of "$HA_VM_PORT")" mtu "$HA_MTU"
        ovsctl "$HA_CMP" set Interface "$(tap_of "$HA_VM_PORT")" "mtu_request=$HA_MTU"
        ;;
    cmp-underlay-mtu)
        ip -n "$HA_CMP" link set "$(ha_link "$HA_CMP" host_if)" mtu "$HA_UL_MTU"
        ;;
    cmp-tunnel-down)
        ip -n "$HA_CMP" link set "$(vxlan_if)" up
        ;;
    esac
    case $name in
    vrrp-split-brain | keepalived-killed | no-primary)
        # Settle on one primary, drop what a dead keepalived left, then make
        # gwA the primary again (the healthy baseline).
        poll_until 15 ha_one_primary || true
        for h in "${HA_GWS[@]}"; do ha_clean_stale "$h"; done
        ensure_ha_primary gwA || msg "warning: could not make gwA the primary again: $(ha_problems | tr '\n' ';')"
        rm -f "$DIR/faults/keepalived-killed.host"
        ;;
    esac
}
