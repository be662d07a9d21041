# shellcheck shell=bash
# vmlab: commands run outside the lab: up, down, exec, and entering the lab.
# (sourced by lab/vmlab, which sets the shell options and the paths).

# ---------------------------------------------------------------------------
# Outside commands
# ---------------------------------------------------------------------------
# Run this script's inner command inside the lab (lab mount + root netns).
run_inside() {
    local h
    holder_alive || die "no running lab in $DIR (run: vmlab up --dir $DIR)"
    h=$(holder_pid)
    nsenter -t "$h" -n -m -- bash "$SELF" __inner "$DIR" "$@"
}

# netns_ids_of PID: the network namespace of PID and those pinned in its view
# of /run/netns (the lab's private /run).
netns_ids_of() {
    local p
    readlink "/proc/$1/ns/net" 2>/dev/null | tr -dc '0-9' || true
    echo
    for p in "/proc/$1/root/run/netns/"*; do
        if [[ -e $p ]]; then stat -L -c %i "$p" 2>/dev/null || true; fi
    done
    # The simulated hosts' own views (qrouter-…, qdhcp-…), shared with the lab's.
    local hh
    for hh in "${HA_HOSTS[@]}"; do
        for p in "/proc/$1/root$DIR/$hh/netns/"*; do
            if [[ -e $p ]]; then stat -L -c %i "$p" 2>/dev/null || true; fi
        done
    done
}

# lab_netns_ids: the lab's network namespace ids (inode numbers), taken only
# from processes verified to belong to this lab right now (the holder, or a
# daemon whose command line names this lab's DIR): ids recorded in files could
# have been reused by other namespaces since.
lab_netns_ids() {
    local h d a pid
    {
        h=$(holder_pid)
        if [[ -n $h ]] && pid_alive "$h" "$(holder_pattern)"; then netns_ids_of "$h"; fi
        for d in "${DAEMONS[@]}"; do
            read -r -a a <<<"$d"
            for pid in "$(read_pid "$DIR/run/${a[0]}.spawn")" "$(read_pid "$DIR/run/${a[0]}.pid")"; do
                if [[ -n $pid ]] && pid_alive "$pid" "$(daemon_pattern "${a[0]}")"; then netns_ids_of "$pid"; fi
            done
        done
    } | grep -E '^[0-9]+$' | sort -u || true
}

# PIDs of processes whose network namespace is one of the lab's.
pids_in_netns() { # IDS (newline separated)
    local ids=$1 p ns
    [[ -n $ids ]] || return 0
    for p in /proc/[0-9]*; do
        ns=$(readlink "$p/ns/net" 2>/dev/null) || continue
        ns=${ns#net:[}; ns=${ns%]}
        if grep -qx -- "$ns" <<<"$ids"; then
            [[ ${p#/proc/} != "$$" ]] && echo "${p#/proc/}"
        fi
    done
    return 0
}

# Stop everything the lab runs. Safe on half-built or already dead labs.
lab_kill_all() {
    local ids d a pid h pids sig
    ids=$(lab_netns_ids)
    h=$(holder_pid)
    # 1. The holder first, so that a half-built lab stops spawning. SIGKILL:
    #    unshare --kill-child then SIGKILLs the inner shell too.
    if [[ -n $h ]] && pid_alive "$h" "$(holder_pattern)"; then
        kill -KILL "$h" 2>/dev/null || true
        poll_until 5 eval "! pid_alive $h" || msg "warning: holder $h did not die"
    fi
    # 2. Daemons by their pid files (command line checked against this DIR).
    for d in "${DAEMONS[@]}"; do
        read -r -a a <<<"$d"
        for pid in "$(read_pid "$DIR/run/${a[0]}.spawn")" "$(read_pid "$DIR/run/${a[0]}.pid")"; do
            if [[ -n $pid ]]; then stop_pid "$pid" "$(daemon_pattern "${a[0]}")" 5; fi
        done
    done
    # 3. Anything else still inside one of the lab's network namespaces
    #    (e.g. a shell from `vmlab exec`, the holder's inner shell).
    for sig in TERM KILL; do
        pids=$(pids_in_netns "$ids")
        [[ -n $pids ]] || break
        # shellcheck disable=SC2086
        kill "-$sig" $pids 2>/dev/null || true
        # shellcheck disable=SC2016 # evaluated later by eval
        poll_until 5 eval '[[ -z $(pids_in_netns "$ids") ]]' || true
    done
    pids=$(pids_in_netns "$ids")
    [[ -z $pids ]] || msg "warning: still running in the lab: ${pids//$'\n'/ }"
}

cmd_up() {
    require_root
    check_tools
    if [[ -e $DIR ]]; then
        if [[ -e $DIR/.vmlab ]]; then
            if holder_alive; then die "a lab is already running in $DIR (run: vmlab down --dir $DIR)"; fi
            msg "cleaning up a dead lab in $DIR"
            lab_kill_all
            rm -rf -- "$DIR"
        elif [[ -n $(ls -A -- "$DIR") ]]; then
            die "$DIR exists, is not empty and is not a vmlab directory"
        fi
    fi
    mkdir -p "$DIR"/{run,logs,faults,etc-frr,hv1,hv2,tor1,tor2,gwA,gwB,cmp1,tor3}
    chmod 755 "$DIR"
    touch "$DIR/.vmlab"
    local start outer_net outer_mnt spawn_pid
    start=$(now_ms)
    outer_net=$(readlink /proc/self/ns/net); outer_mnt=$(readlink /proc/self/ns/mnt)
    VMLAB_OUTER_NET=$outer_net VMLAB_OUTER_MNT=$outer_mnt VMLAB_DEADLINE_S=$TIMEOUT \
        setsid unshare --net --mount --propagation private --fork --kill-child=SIGKILL \
        bash "$SELF" __holder "$DIR" </dev/null >>"$DIR/logs/holder.log" 2>&1 &
    spawn_pid=$!
    echo "$spawn_pid" >"$DIR/holder.pid"
    local end=$((start + TIMEOUT * 1000)) why=""
    while true; do
        if [[ -e $DIR/ready ]]; then break; fi
        if [[ -e $DIR/failed ]]; then why=$(cat "$DIR/failed"); break; fi
        if ! pid_alive "$spawn_pid"; then why="the holder process exited (see $DIR/logs/holder.log)"; break; fi
        # Right after the fork the child is still this shell, not yet `setsid unshare …`: its
        # command line names the holder only once it has exec'd (give it 2 s).
        if ! pid_alive "$spawn_pid" "$(holder_pattern)" && (($(now_ms) - start > 2000)); then
            why="pid $spawn_pid is not the lab's holder (see $DIR/logs/holder.log)"; break
        fi
        if (($(now_ms) > end)); then why="timeout after ${TIMEOUT}s"; break; fi
        sleep 0.2
    done
    if [[ -z $why ]]; then
        # Cross-check from outside (also validates nsenter access).
        if ! run_inside wait 10; then why="baseline check failed after ready"; fi
    fi
    if [[ -n $why ]]; then
        [[ -e $DIR/failed ]] || echo "$why" >"$DIR/failed"
        msg "up failed: $why"
        if [[ -s $DIR/logs/holder.log ]]; then tail -n 20 "$DIR/logs/holder.log" | sed 's/^/  holder: /' >&2; fi
        msg "stopping what was started; logs kept in $DIR/logs (remove with: vmlab down --dir $DIR)"
        lab_kill_all
        exit 1
    fi
    local ms=$(($(now_ms) - start))
    msg "lab up and converged in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s (dir $DIR, holder $(holder_pid))"
}

cmd_down() {
    require_root
    if [[ ! -e $DIR ]]; then msg "nothing to do: $DIR does not exist"; return 0; fi
    [[ -e $DIR/.vmlab ]] || die "$DIR is not a vmlab directory (no .vmlab marker); refusing to touch it"
    (
        flock -w 30 9 || msg "warning: could not take the lab lock; going on"
        lab_kill_all
    ) 9>>"$DIR/.vmlab"
    rm -rf -- "$DIR"
    msg "lab in $DIR is down"
}

cmd_exec() {
    require_root
    ((${#ARGS[@]})) || die "usage: vmlab exec [--dir DIR] [--ns NS] CMD [ARGS...]"
    if ! holder_alive; then msg "no running lab in $DIR"; exit 125; fi
    local h
    h=$(holder_pid)
    if [[ -n $HOST ]]; then
        is_host "$HOST" || die "unknown host '$HOST' (known: ${HA_HOSTS[*]})"
        # The host's view process holds its netns and mount namespace.
        h=$(daemon_pid "host-$HOST")
        if [[ -z $h ]] || ! pid_alive "$h" "$(daemon_pattern "host-$HOST")"; then
            msg "host $HOST of the lab in $DIR is not running"; exit 125
        fi
        if [[ -n $NS ]]; then
            # netns NS as listed by `ip netns` on HOST (qrouter-…, qdhcp-…)
            exec nsenter -t "$h" -m --wd="$PWD" -- ip netns exec "$NS" "${ARGS[@]}"
        fi
        exec nsenter -t "$h" -n -m --wd="$PWD" -- "${ARGS[@]}"
    fi
    if [[ -n $NS ]]; then
        exec nsenter -t "$h" -n -m --wd="$PWD" -- ip netns exec "$NS" "${ARGS[@]}"
    fi
    exec nsenter -t "$h" -n -m --wd="$PWD" -- "${ARGS[@]}"
}

locked_inside() { # run an inner command under the lab lock
    (
        flock -w 120 9 || die "could not take the lab lock ($DIR/.vmlab)"
        run_inside "$@" 9>&-
    ) 9>>"$DIR/.vmlab"
}
