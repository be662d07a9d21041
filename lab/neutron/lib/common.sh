# shellcheck shell=bash
# nlab: messages, bounded waits, PIDs, the namespace holders, and running things on a host.
# (sourced by lab/neutron/nlab, which sets the shell options, DIR and the paths).

msg() { printf 'nlab: %s\n' "$*" >&2; }
die() { msg "error: $*"; exit 1; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
since() { local ms=$(($(now_ms) - T0)); printf '%d.%01d' $((ms / 1000)) $((ms % 1000 / 100)); }
step() { msg "[$(since) s] $*"; echo "$(since) $*" >>"$DIR/logs/steps.timing"; }

# poll SECONDS CMD...: CMD every 0.25 s until it succeeds; 1 when SECONDS have passed, or when
# `up`'s own deadline (UP_END, from --timeout) has.
poll() {
    local end=$(($(now_ms) + $1 * 1000)); shift
    if ((${UP_END:-0} && UP_END < end)); then end=$UP_END; fi
    while true; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        (($(now_ms) < end)) || return 1
        sleep 0.25
    done
}

read_pid() {
    local p=""
    if [[ -r $1 ]]; then read -r p <"$1" || true; fi
    if [[ $p =~ ^[0-9]+$ ]]; then echo "$p"; fi
}

# cmdline_has PID TEXT: PID runs (not a zombie) and its command line contains TEXT.
cmdline_has() {
    local cmd state
    [[ $1 =~ ^[0-9]+$ && -r /proc/$1/stat ]] || return 1
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $state != Z && $state != X ]] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$2"* ]]
}
netns_of() { stat -L -c %i "/proc/$1/ns/net" 2>/dev/null; }

check_dir() {
    [[ $DIR == /* && $DIR != / ]] || die "--dir must be an absolute path other than /"
    [[ $DIR =~ ^[A-Za-z0-9._/+-]+$ ]] || die "--dir may only contain [A-Za-z0-9._/+-]"
    ((${#DIR} <= 60)) || die "--dir is too long for the daemons' unix sockets (60 characters at most)"
}

# ---------------------------------------------------------------------------
# Holders: one process per simulated host that owns its network, mount and UTS namespace (its
# hostname is the host's name). ctl is made
# from the caller's namespaces, every other host from inside ctl (its links hang off ctl's bridges).
# The holder's command line ends in "__holder NAME DIR " (the trailing space tells /tmp/nlab from
# /tmp/nlab2).
# ---------------------------------------------------------------------------
holder_pattern() { echo "__holder $1 $DIR "; }
holder_pid() {
    local p
    p=$(read_pid "$DIR/run/holder-$1.pid")
    [[ -n $p ]] && cmdline_has "$p" "$(holder_pattern "$1")" && echo "$p"
}

# Runs as the child of unshare, inside the new namespaces: check them, make the host's own /run,
# /run/netns and /sys, then hold.
holder_main() {
    local name=$1 net mnt
    net=$(readlink /proc/self/ns/net); mnt=$(readlink /proc/self/ns/mnt)
    # shellcheck disable=SC2153 # both come from new_host's environment
    if [[ -z ${NLAB_PARENT_NET:-} || $net == "$NLAB_PARENT_NET" || $mnt == "$NLAB_PARENT_MNT" ]]; then
        echo "isolation check failed: net $net mnt $mnt, parent ${NLAB_PARENT_NET:-?} ${NLAB_PARENT_MNT:-?}" \
            >"$DIR/run/holder-$name.failed"
        exit 1
    fi
    mount -t tmpfs -o mode=0755,size=256m "nlab-run-$name" /run
    mkdir -p /run/netns /run/openvswitch /run/lock /run/sudo
    mount -t tmpfs -o mode=0755,size=8m "nlab-netns-$name" /run/netns
    mount -t sysfs "nlab-sys-$name" /sys
    hostname "$name"
    ip link set lo up
    sysctl -q -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
        net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 >/dev/null
    echo "$net $mnt" >"$DIR/run/holder-$name.ready"
    exec sleep infinity
}

# new_host NAME: start NAME's holder (inside ctl unless NAME is ctl) and wait for it.
new_host() {
    local name=$1 pre=() pnet pmnt p
    if [[ $name == ctl ]]; then
        pnet=$(readlink /proc/self/ns/net); pmnt=$(readlink /proc/self/ns/mnt)
    else
        p=$(holder_pid ctl) || die "ctl is not running"
        pre=(nsenter -t "$p" -n -m --)
        pnet=$(readlink "/proc/$p/ns/net"); pmnt=$(readlink "/proc/$p/ns/mnt")
    fi
    NLAB_PARENT_NET=$pnet NLAB_PARENT_MNT=$pmnt setsid "${pre[@]}" \
        unshare --net --mount --uts --propagation private --fork --kill-child=SIGKILL \
        bash "$SELF" __holder "$name" "$DIR" </dev/null >>"$DIR/logs/holder-$name.log" 2>&1 &
    echo "$!" >"$DIR/run/holder-$name.pid"
    poll 10 test -e "$DIR/run/holder-$name.ready" ||
        die "host $name: no namespaces ($(cat "$DIR/run/holder-$name.failed" 2>/dev/null || tail -n 3 "$DIR/logs/holder-$name.log"))"
    holder_pid "$name" >/dev/null || die "host $name: pid $(read_pid "$DIR/run/holder-$name.pid") is not its holder"
}

# on HOST CMD...: run CMD in HOST's network, mount and UTS namespace, in the foreground.
on() {
    local h=$1 p; shift
    p=$(holder_pid "$h") || die "host $h is not running"
    nsenter -t "$p" -n -m -u -- env PATH="$VENV/bin:$SYS_PATH" "$@"
}

# spawn NAME HOST CMD...: start a daemon on HOST, detached (own session), its output appended to
# DIR/logs/HOST.NAME.out; its PID, name, host and network namespace go to DIR/run/pids (teardown only
# signals a recorded PID that is still in that namespace, never a recycled one).
spawn() {
    local name=$1 h=$2 p pid; shift 2
    p=$(holder_pid "$h") || die "host $h is not running"
    setsid nsenter -t "$p" -n -m -u -- env PATH="$VENV/bin:$SYS_PATH" TMPDIR="$DIR/hosts/$h/tmp" "$@" \
        </dev/null >>"$DIR/logs/$h.$name.out" 2>&1 &
    pid=$!
    echo "$pid $name $h $(netns_of "$p")" >>"$DIR/run/pids"
}
# recorded NAME HOST: the PID of daemon NAME on HOST while it still runs in its namespace.
recorded() {
    local pid name h ino
    while read -r pid name h ino; do
        if [[ $name == "$1" && $h == "$2" && $(netns_of "$pid") == "$ino" ]]; then echo "$pid"; return 0; fi
    done <"$DIR/run/pids"
    return 1
}
