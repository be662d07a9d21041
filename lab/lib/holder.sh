# shellcheck shell=bash
# vmlab: the holder: builds the lab inside its namespaces, then holds them.
# (sourced by lab/vmlab, which sets the shell options and the paths).

# step_timing: log when the previous build step ended (DIR/logs/steps.timing).
step_timing() { echo "$STEP done at $(($(now_ms) - T0)) ms" >>"$DIR/logs/steps.timing"; }

# holder_fail REASON: record why the build failed and keep holding the
# namespaces (so that `up` can stop the daemons and the logs can be read).
holder_fail() {
    printf '%s\n' "$*" >"$DIR/failed"
    exec sleep infinity
}

# The holder: runs as the child of `unshare`, in the new namespaces.
holder_main() {
    local net mnt why left
    STEP=start
    T0=$(now_ms)
    echo "$$" >"$DIR/run/inner.pid"
    # 1. Isolation check, before touching anything.
    net=$(readlink /proc/self/ns/net); mnt=$(readlink /proc/self/ns/mnt)
    if [[ -z ${VMLAB_OUTER_NET:-} || -z ${VMLAB_OUTER_MNT:-} || $net == "$VMLAB_OUTER_NET" || $mnt == "$VMLAB_OUTER_MNT" ]]; then
        echo "namespace isolation check failed (net $net mnt $mnt vs outer ${VMLAB_OUTER_NET:-?} ${VMLAB_OUTER_MNT:-?})" >"$DIR/failed"
        exit 1
    fi
    echo "$VMLAB_OUTER_NET $VMLAB_OUTER_MNT" >"$DIR/run/host-ns"
    echo "$net $mnt" >"$DIR/run/lab-ns"
    VMLAB_HOLDER_CHECK=0 assert_inside
    # Any unexpected failure of the build (in this shell, not in subshells)
    # ends up in DIR/failed.
    set -E
    trap 'if [[ $BASHPID == "$$" ]]; then holder_fail "step $STEP failed (line $LINENO): $BASH_COMMAND"; fi' ERR
    # 2. Private /run (netns, bird and frr sockets) and /etc/frr.
    STEP=mounts
    mount -t tmpfs -o mode=0755,size=16m vmlab-run /run
    mkdir -p /run/netns /run/bird /run/frr/hv2 /run/frr/tor2 /run/frr/gwB /run/frr/tor3 /run/lock
    chown -R frr:frr /run/frr
    mount --bind "$DIR/etc-frr" /etc/frr
    ip link set lo up
    step_timing; STEP=ha_early; build_ha_early
    step_timing; STEP=namespaces; build_namespaces
    step_timing; STEP=links; build_links
    step_timing; STEP=vms
    for vm in "${VMS[@]}"; do build_vm "$vm"; done
    step_timing; STEP=firewalls; build_firewalls
    step_timing; STEP=daemons; start_daemons
    # The HA gateway part: built and its daemons started while BGP converges.
    step_timing; STEP=ha; build_ha
    # The ECMP part is static: built while BGP converges.
    step_timing; STEP=probe; build_probe
    step_timing; STEP=converge
    left=$((${VMLAB_DEADLINE_S:-60} - SECONDS - 2))
    ((left > 1)) || left=1
    if ! inner_wait "$left" 2>"$DIR/logs/converge.err"; then
        holder_fail "not converged after ${SECONDS}s: $(tr '\n' ';' <"$DIR/logs/converge.err")"
    fi
    echo "converged after ${SECONDS}s" >"$DIR/logs/holder.timing"
    step_timing; STEP=ha_primary
    ensure_ha_primary gwA || holder_fail "VRRP: could not make gwA the primary: $(ha_problems | tr '\n' ';')"
    step_timing; STEP=selftest
    if ! why=$(self_test); then holder_fail "$why"; fi
    echo "self-test passed after ${SECONDS}s" >>"$DIR/logs/holder.timing"
    write_lab_json "$PPID"
    trap - ERR
    step_timing
    touch "$DIR/ready"
    # Hold the namespaces. Nothing is left to reap: daemons were double-forked.
    exec sleep infinity
}
