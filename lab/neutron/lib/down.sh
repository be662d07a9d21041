# shellcheck shell=bash
# nlab: stopping the lab — what it recorded, by PID, then every process whose network namespace is
# one of the lab's (the agents leave dnsmasq, keepalived, haproxy, radvd and their privsep daemons
# running when they exit), then the holders; their namespaces, links and tmpfs mounts vanish with
# them. Nothing is ever stopped by name. (sourced by lab/neutron/nlab.)

# lab_netns: the lab's network namespace inodes, from holders verified right now: each holder's
# own namespace and the ones pinned in its host's /run/netns (qrouter-, qdhcp-, vm1).
lab_netns() {
    local f name p n
    for f in "$DIR"/run/holder-*.pid; do
        [[ -e $f ]] || continue
        name=${f##*/holder-}; name=${name%.pid}
        p=$(holder_pid "$name") || continue
        netns_of "$p"
        for n in "/proc/$p/root/run/netns/"*; do
            if [[ -e $n ]]; then stat -L -c %i "$n" 2>/dev/null || true; fi
        done
    done | sort -u
}

# pids_in IDS EXCLUDE...: processes in one of the network namespaces IDS, but not EXCLUDE.
pids_in() {
    local ids=$1 d p ino; shift
    [[ -n $ids ]] || return 0
    local -A want=() skip=([$$]=1 [$BASHPID]=1)
    for ino in $ids; do want[$ino]=1; done
    for p in "$@"; do skip[$p]=1; done
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        [[ -z ${skip[$p]:-} ]] || continue
        ino=$(netns_of "$p") || continue
        if [[ -n ${want[$ino]:-} ]]; then echo "$p"; fi
    done
}

# stop_pids GRACE PID...: TERM, up to GRACE seconds, then KILL.
stop_pids() {
    local grace=$1 p left end; shift
    (($#)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    end=$(($(now_ms) + grace * 1000))
    while (($(now_ms) < end)); do
        left=0
        for p in "$@"; do if [[ -d /proc/$p ]]; then left=1; fi; done
        ((left)) || return 0
        sleep 0.2
    done
    for p in "$@"; do
        if [[ -d /proc/$p ]]; then kill -KILL "$p" 2>/dev/null || true; fi
    done
    sleep 0.3
}

lab_down() {
    local ids holders=() agents=() rec=() inside=() pid name ino f hn
    [[ -e $DIR/run/pids ]] || touch "$DIR/run/pids"
    # the watchdog, unless it is what runs this
    while read -r pid name _ ino; do
        if [[ $name == watchdog && $pid != "${NLAB_WATCHDOG:-x}" ]] && cmdline_has "$pid" "nlab-watchdog $DIR "; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done <"$DIR/run/pids"
    ids=$(lab_netns)
    # the agents first, so that they stop reporting and rebuilding (the OVS agents and the RPC
    # server ignore TERM for more than 10 s: they get KILL after 5 s, with the rest)
    while read -r pid name _ ino; do
        [[ $name != watchdog && -n $ino && $(netns_of "$pid") == "$ino" ]] || continue
        case $name in neutron-*-agent) agents+=("$pid") ;; *) rec+=("$pid") ;; esac
    done <"$DIR/run/pids"
    if ((${#agents[@]})); then kill -TERM "${agents[@]}" 2>/dev/null || true; sleep 0.5; fi
    for f in "$DIR"/run/holder-*.pid; do
        [[ -e $f ]] || continue
        hn=${f##*/holder-}; hn=${hn%.pid}
        if pid=$(holder_pid "$hn"); then holders+=("$pid"); fi
    done
    mapfile -t inside < <(pids_in "$ids" "${holders[@]}")
    mapfile -t inside < <(printf '%s\n' "${agents[@]}" "${rec[@]}" "${inside[@]}" | grep . | sort -un)
    if ((${#inside[@]})); then
        msg "stopping ${#inside[@]} processes in the lab's $(wc -l <<<"$ids") network namespaces"
        stop_pids 5 "${inside[@]}"
    fi
    mapfile -t inside < <(pids_in "$ids" "${holders[@]}")
    if ((${#inside[@]})); then kill -KILL "${inside[@]}" 2>/dev/null || true; sleep 0.5; fi
    # the holders: the agent hosts, then ctl (they live inside it)
    local order=()
    for hn in "${HOSTS[@]}" ctl; do
        if pid=$(holder_pid "$hn"); then order+=("$pid"); fi
    done
    if ((${#order[@]})); then stop_pids 5 "${order[@]}"; fi
    mapfile -t inside < <(pids_in "$ids")
    if ((${#inside[@]})); then msg "warning: still running in the lab: ${inside[*]}"; return 1; fi
}
