# shellcheck shell=bash
# vmlab: small helpers, process and namespace helpers.
# (sourced by lab/vmlab, which sets the shell options and the paths).

# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------
msg() { printf 'vmlab: %s\n' "$*" >&2; }
die() { msg "error: $*"; exit 1; }

vm_tap() { local p=${VM_PORT[$1]}; printf 'tap%s' "${p:0:11}"; }
vm_port10() { local p=${VM_PORT[$1]}; printf '%s' "${p:0:10}"; }
vm_mac() { printf 'fa:16:3e:00:00:%02x' "${VM_NUM[$1]}"; }
vm_hmac() { printf 'fe:16:3e:00:00:%02x' "${VM_NUM[$1]}"; }
# EUI-64 link-local address the kernel derives from the VM MAC.
vm_ll6() { printf 'fe80::f816:3eff:fe00:%x' "${VM_NUM[$1]}"; }

# VMs of one hypervisor, in topology order.
hv_vms() {
    local vm
    for vm in "${VMS[@]}"; do
        if [[ ${VM_HV[$vm]} == "$1" ]]; then printf '%s\n' "$vm"; fi
    done
}

# link_field NS PEER FIELD: FIELD is if|v4|v6|peer_v4|peer_v6 of NS's link to PEER.
link_field() {
    local ns=$1 peer=$2 field=$3 l a
    for l in "${LINKS[@]}" "${PROBE_LINKS[@]}"; do
        read -r -a a <<<"$l"
        if [[ ${a[0]} == "$ns" && ${a[4]} == "$peer" ]]; then
            case $field in if) echo "${a[1]}" ;; v4) echo "${a[2]}" ;; v6) echo "${a[3]}" ;;
                peer_v4) echo "${a[6]}" ;; peer_v6) echo "${a[7]}" ;; esac
            return 0
        fi
        if [[ ${a[4]} == "$ns" && ${a[0]} == "$peer" ]]; then
            case $field in if) echo "${a[5]}" ;; v4) echo "${a[6]}" ;; v6) echo "${a[7]}" ;;
                peer_v4) echo "${a[2]}" ;; peer_v6) echo "${a[3]}" ;; esac
            return 0
        fi
    done
    return 1
}

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# poll_until SECONDS CMD...: run CMD every 0.2 s until it succeeds; 1 on timeout.
poll_until() {
    local end=$(($(now_ms) + $1 * 1000)); shift
    while true; do
        if "$@"; then return 0; fi
        (($(now_ms) < end)) || return 1
        sleep 0.2
    done
}

python_bin() {
    if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3; else command -v python3; fi
}

# read_pid FILE: the PID stored in FILE (nothing if absent/garbage).
read_pid() {
    local p=""
    if [[ -r $1 ]]; then read -r p <"$1" || true; fi
    if [[ $p =~ ^[0-9]+$ ]]; then echo "$p"; fi
}

# pid_alive PID [PATTERN]: PID exists, is not a zombie, and its command line
# contains PATTERN (protects against PID reuse).
pid_alive() {
    local pid=$1 pat=${2:-} state cmd
    [[ -n $pid && -r /proc/$pid/stat ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z && $state != X ]] || return 1
    if [[ -n $pat ]]; then
        cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
        [[ $cmd == *"$pat"* ]] || return 1
    fi
}

# stop_pid PID PATTERN [GRACE_S]: SIGTERM, wait, then SIGKILL. Only if it matches.
stop_pid() {
    local pid=$1 pat=$2 grace=${3:-5}
    [[ -n $pat ]] || return 0
    pid_alive "$pid" "$pat" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    if ! poll_until "$grace" eval "! pid_alive $pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        poll_until 3 eval "! pid_alive $pid" || msg "warning: PID $pid did not die"
    fi
}

check_dir_name() {
    [[ $1 == /* ]] || die "--dir must be absolute after resolution: $1"
    [[ $1 =~ ^[A-Za-z0-9._/+-]+$ ]] || die "--dir may only contain [A-Za-z0-9._/+-]: $1"
    [[ $1 != / ]] || die "--dir / is not allowed"
}

holder_pid() { read_pid "$DIR/holder.pid"; }

# The holder's command line ends in "__holder DIR" (tr turns the final NUL into
# the trailing space that makes /tmp/vmlab differ from /tmp/vmlab2).
holder_pattern() { echo "__holder $DIR "; }

holder_alive() {
    local h
    h=$(holder_pid)
    [[ -n $h ]] && pid_alive "$h" "$(holder_pattern)"
}

require_root() { [[ $(id -u) == 0 ]] || die "vmlab needs root (network namespaces, mounts)"; }

check_tools() {
    local t missing=() pkgs=()
    for t in "${!NEEDS[@]}"; do
        if ! command -v "$t" >/dev/null 2>&1; then missing+=("$t"); pkgs+=("${NEEDS[$t]}"); fi
    done
    for t in zebra bgpd; do
        if [[ ! -x $FRR_BIN/$t ]]; then missing+=("$FRR_BIN/$t"); pkgs+=(frr); fi
    done
    if ! id frr >/dev/null 2>&1; then missing+=("user frr"); pkgs+=(frr); fi
    if ((${#missing[@]})); then
        mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | sort -u)
        die "missing: ${missing[*]}; install with: apt-get install -y ${pkgs[*]}"
    fi
}

# ---------------------------------------------------------------------------
# Helpers used inside the lab (mount + root network namespace of the holder)
# ---------------------------------------------------------------------------
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
sysctl_ns() { local ns=$1; shift; ip netns exec "$ns" sysctl -q -w "$@" >/dev/null; }
bird_sock() { echo "/run/bird/$1.ctl"; }
birdc_ns() { local node=$1; shift; timeout 10 birdc -s "$(bird_sock "$node")" "$@"; }
vtysh_ns() { local node=$1; shift; timeout 15 vtysh -N "$node" "$@"; }

# Abort unless we run in the lab's namespaces (not the host's).
assert_inside() {
    local net mnt hnet hmnt h
    net=$(readlink /proc/self/ns/net); mnt=$(readlink /proc/self/ns/mnt)
    read -r hnet hmnt <"$DIR/run/host-ns" || die "no $DIR/run/host-ns"
    [[ $net != "$hnet" && $mnt != "$hmnt" ]] || die "refusing: running in the host namespaces"
    if [[ ${VMLAB_HOLDER_CHECK:-1} == 1 ]]; then
        h=$(holder_pid)
        [[ $net == "$(readlink "/proc/$h/ns/net")" && $mnt == "$(readlink "/proc/$h/ns/mnt")" ]] ||
            die "refusing: not in the lab's namespaces"
    fi
}

# spawn NAME NS CMD...: start a daemon in netns NS, detached (new session,
# reparented away from us so it is reaped when it dies); its PID goes to
# DIR/run/NAME.spawn and its output to DIR/logs/NAME.out.
spawn() {
    local name=$1 ns=$2; shift 2
    (
        setsid ip netns exec "$ns" "$@" </dev/null >>"$DIR/logs/$name.out" 2>&1 9>&- &
        echo "$!" >"$DIR/run/$name.spawn"
    )
}

daemon_pattern() { # NAME
    case $1 in
    bird-*) echo "-P $DIR/run/$1.pid" ;;
    zebra-* | bgpd-*) echo "-i $DIR/run/$1.pid" ;;
    dnsmasq-*) echo "--pid-file=$DIR/run/$1.pid" ;;
    metadata-*) echo "--directory $DIR/${1#metadata-}/metadata" ;;
    listener-srv1) echo "$DIR/probe/listener.py" ;;
    keepalived-*) echo "-p $(ka_pidfile "${1#keepalived-}")" ;;
    host-*) echo "vmlab-host-view ${1#host-} $DIR " ;;
    ovsdb-* | vswitchd-*) echo "--pidfile=$DIR/run/$1.pid" ;;
    *) return 1 ;;
    esac
}

daemon_pid() { read_pid "$DIR/run/$1.spawn"; }

daemon_alive() {
    local pid
    pid=$(daemon_pid "$1")
    [[ -n $pid ]] && pid_alive "$pid" "$(daemon_pattern "$1")"
}
