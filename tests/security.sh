#!/usr/bin/env bash
# One scenario of tests/security.rs: hostile or broken sources around a root vmpath, in a
# private network, mount and PID namespace (tests/security.rs starts this script under
# `unshare --net --mount --pid --fork --mount-proc --propagation private`): fake daemons
# started under daemons' names as nobody or as root, files that are FIFOs or devices, sockets
# that never answer or close mid-reply, namespaces deleted mid-read, unreadable sysctls, a full
# disk. Every process started here dies with the PID namespace when this script ends.
#
# Usage: security.sh SCENARIO WORKDIR VMPATH IMPOSTOR
# Results go to WORKDIR as NAME.out (stdout), NAME.err, NAME.rc, NAME.ms and scenario markers;
# tests/security.rs reads and judges them.
set -euo pipefail
export LC_ALL=C
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

SCEN=$1 W=$2 VMPATH=$3 IMPOSTOR=$4

# Never outside a private network namespace: the caller passes the inode of its own.
[[ -n ${OUTER_NETNS:-} && $(stat -Lc %i /proc/self/ns/net) != "$OUTER_NETNS" ]] ||
    { echo "security.sh: not in a private network namespace" >&2; exit 90; }
[[ $$ == 1 ]] || { echo "security.sh: not the init of a private PID namespace" >&2; exit 90; }

mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/netns
ip link set lo up

readonly PORT=3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51 TAP=tap3f1c2a4e-5b VM=198.51.100.11
readonly VM_MAC=fa:16:3e:00:00:11 ROUTER=5c3a1e2b-7d4f-4e6a-9b8c-0d1e2f3a4b5c

# Binaries: a root-owned 0755 directory (a trusted place) and a world-writable one.
mkdir -p "$W/bin" "$W/drop"
chmod 0755 "$W" "$W/bin"
chmod 1777 "$W/drop"

# run NAME CMD...: run a command, keep its stdout, stderr, exit code and wall time.
run() {
    local name=$1 t0 rc=0
    shift
    t0=$(date +%s%N)
    "$@" >"$W/$name.out" 2>"$W/$name.err" || rc=$?
    echo "$rc" >"$W/$name.rc"
    echo $((($(date +%s%N) - t0) / 1000000)) >"$W/$name.ms"
}

# daemon VAR NAME WHO NETNS [ARGS...]: start the impostor as NAME (argv[0] its path), as WHO
# (root, nobody, nobody+caps: nobody keeping CAP_NET_ADMIN like a daemon that dropped root;
# root@drop: root, but its executable in a world-writable directory), in NETNS (- for this
# one). Sets VAR to its pid once it runs.
daemon() {
    local var=$1 name=$2 who=$3 ns=$4 dir=$W/bin
    shift 4
    [[ $who == root@drop ]] && dir=$W/drop
    install -m 0755 "$IMPOSTOR" "$dir/$name"
    local -a pre=()
    [[ $ns == - ]] || pre=(ip netns exec "$ns")
    case $who in
        root | root@drop) ;;
        nobody) pre+=(setpriv --reuid=65534 --regid=65534 --clear-groups) ;;
        nobody+caps) pre+=(setpriv --reuid=65534 --regid=65534 --clear-groups
            --inh-caps=+net_admin --ambient-caps=+net_admin) ;;
        *) echo "daemon: unknown WHO $who" >&2; exit 91 ;;
    esac
    "${pre[@]}" "$dir/$name" "$@" &
    local pid=$! i
    for ((i = 0; i < 200; i++)); do
        [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == "$dir/$name"* ]] && break
        sleep 0.01
    done
    printf -v "$var" %s "$pid"
}

# A tap like Nova's for the VM: /32 route, up.
vm_tap() {
    ip tuntap add dev "$TAP" mode tap
    ip link set "$TAP" up
    ip route add "$VM/32" dev "$TAP"
}

router_ns() { # ID: a qrouter namespace with its keepalived.conf under $W/ha_confs
    local id=$1 ha=ha-${1:0:11}
    ip netns add "qrouter-$id"
    ip -n "qrouter-$id" link set lo up
    mkdir -p "$W/ha_confs/$id"
    cat >"$W/ha_confs/$id/keepalived.conf" <<EOF
vrrp_instance VR_1 {
    state BACKUP
    interface $ha
    virtual_router_id 1
    priority 50
    nopreempt
    advert_int 2
    virtual_ipaddress {
        169.254.0.1/24 dev $ha
    }
}
EOF
    echo backup >"$W/ha_confs/$id/state"
}

case $SCEN in
# Issue: a nobody-owned program named keepalived (with a VRRP child) in a router namespace was
# executed by `routers` as root (`/proc/PID/exe --signum=JSON`) and then signalled. Also a root
# one whose executable sits in a world-writable directory, and a trusted ovsdb-server in another
# network namespace (whose socket `routers` must not reach through /proc/PID/root).
keepalived-impostor)
    router_ns "$ROUTER"
    daemon KA keepalived nobody "qrouter-$ROUTER" -f "$W/ha_confs/$ROUTER/keepalived.conf" --fork-child
    other=6d4b2f3c-8e5a-4f7b-8c9d-1e2f3a4b5c6d
    router_ns "$other"
    daemon KA2 keepalived root@drop "qrouter-$other" -f "$W/ha_confs/$other/keepalived.conf" --fork-child
    ip netns add elsewhere
    daemon OVS ovsdb-server root elsewhere "--remote=punix:$W/elsewhere.sock"
    sleep 0.2
    run routers "$VMPATH" routers --json --timeout 1s --no-bgp --no-wire --ha-confs "$W/ha_confs"
    [[ -e $W/bin/RAN-AS || -e $W/drop/RAN-AS ]] && cat "$W"/*/RAN-AS >"$W/ran-as" 2>/dev/null
    kill -0 "$KA" 2>/dev/null && echo alive >"$W/keepalived.alive"
    : "$KA2" "$OVS"
    ;;

# Issue: `plumb --apply` wrote a root-owned file where a nobody-owned "dnsmasq" pointed
# (--dhcp-hostsdir=a root-only directory) and SIGHUPed it. Also a trusted dnsmasq whose hosts
# dir anyone may write.
plumb-impostor)
    vm_tap
    mkdir -m 0700 "$W/rootonly"
    daemon DM dnsmasq nobody - "--dhcp-hostsdir=$W/rootonly" "--interface=tap*"
    run plumb "$VMPATH" plumb "$PORT" --mac "$VM_MAC" --ip "$VM" --apply --json --timeout 2s \
        --lock-file "$W/plumb.lock" --audit-log "$W/audit.log"
    ls -A "$W/rootonly" >"$W/rootonly.list"
    kill -0 "$DM" 2>/dev/null && echo alive >"$W/dnsmasq.alive"
    kill -KILL "$DM" 2>/dev/null || true
    mkdir -m 0777 "$W/loose"
    daemon DM2 dnsmasq root - "--dhcp-hostsdir=$W/loose" "--interface=tap*"
    run plumb-loose "$VMPATH" plumb "$PORT" --mac "$VM_MAC" --ip "$VM" --apply --json --timeout 2s \
        --lock-file "$W/plumb.lock" --audit-log "$W/audit.log"
    ls -A "$W/loose" >"$W/loose.list"
    : "$DM2"
    ;;

# Issue: a dnsmasq conf-file that is /dev/zero grew walk to 2 GB; one that is a FIFO hung it;
# --config /dev/zero and a FIFO likewise. Run under a 1 GiB address-space limit.
hostile-files)
    vm_tap
    mkfifo "$W/conf.fifo"
    daemon DZ dnsmasq root - --conf-file=/dev/zero "--interface=tap*"
    daemon DF dnsmasq root - "--conf-file=$W/conf.fifo" "--interface=tap*"
    run walk prlimit --as=1073741824 -- "$VMPATH" walk "$VM" --json --timeout 3s
    run config-zero prlimit --as=1073741824 -- "$VMPATH" walk "$VM" --json --config /dev/zero
    run config-fifo "$VMPATH" walk "$VM" --json --config "$W/conf.fifo"
    : "$DZ" "$DF"
    ;;

# Issue: a fake daemon's --dhcp-hostsfile= a root-only 0600 file put its line, secret included,
# into walk's output. Also a real-looking daemon (nobody keeping CAP_NET_ADMIN) naming it.
secret-file)
    vm_tap
    echo "$VM_MAC,SECRET-TOKEN-4242,$VM" >"$W/secret"
    chmod 0600 "$W/secret"
    daemon D1 dnsmasq nobody - "--dhcp-hostsfile=$W/secret" "--interface=tap*"
    run walk-impostor "$VMPATH" walk "$VM" --json --timeout 2s
    kill -KILL "$D1" 2>/dev/null || true
    daemon D2 dnsmasq nobody+caps - "--dhcp-hostsfile=$W/secret" "--interface=tap*"
    grep -E '^Cap(Prm|Eff)' "/proc/$D2/status" >"$W/daemon.caps"
    run walk-daemon "$VMPATH" walk "$VM" --json --timeout 2s
    ;;

# Fault injection: namespaces deleted while `routers` reads them.
netns-deleted)
    for i in $(seq 1 40); do
        id=$(printf '%08x-0000-4000-8000-%012x' "$i" "$i")
        ip netns add "qrouter-$id"
    done
    t0=$(date +%s%N)
    "$VMPATH" routers --json --timeout 2s --no-bgp --no-dump >"$W/routers.out" 2>"$W/routers.err" &
    rpid=$!
    sleep 0.05
    for f in /run/netns/qrouter-*; do ip netns del "${f##*/}"; done
    rc=0
    wait "$rpid" || rc=$?
    echo "$rc" >"$W/routers.rc"
    echo $((($(date +%s%N) - t0) / 1000000)) >"$W/routers.ms"
    ;;

# Fault injection: a real keepalived that never writes its dump (stopped), an ovsdb socket that
# accepts and never answers.
silent-sources)
    router_ns "$ROUTER"
    ha=ha-${ROUTER:0:11}
    ip -n "qrouter-$ROUTER" link add "$ha" type veth peer name hapeer
    ip -n "qrouter-$ROUTER" link set "$ha" up
    ip -n "qrouter-$ROUTER" link set hapeer up
    mkdir -p "$W/katmp"
    ip netns exec "qrouter-$ROUTER" env TMPDIR="$W/katmp" keepalived -P -n -l -D \
        -f "$W/ha_confs/$ROUTER/keepalived.conf" -p "$W/ka.pid" -r "$W/vrrp.pid" \
        >"$W/keepalived.log" 2>&1 &
    ka=$!
    for ((i = 0; i < 300; i++)); do [[ -s $W/vrrp.pid ]] && break; sleep 0.01; done
    kill -STOP "$ka" "$(cat "$W/vrrp.pid")"
    python3 - "$W/silent.sock" <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(4)
conns = []
end = time.time() + 60
while time.time() < end:
    s.settimeout(1)
    try:
        conns.append(s.accept()[0])
    except socket.timeout:
        pass
EOF
    for ((i = 0; i < 300; i++)); do [[ -S $W/silent.sock ]] && break; sleep 0.01; done
    run routers "$VMPATH" routers --json --timeout 1s --no-bgp --no-wire --ha-confs "$W/ha_confs" \
        --ovsdb "$W/silent.sock"
    kill -CONT "$ka" "$(cat "$W/vrrp.pid")" 2>/dev/null || true
    ;;

# Fault injection: FRR's vty sockets close in the middle of a reply; vtysh missing (hidden by a
# bind mount) when the vty sockets cannot be reached.
frr-broken)
    vm_tap
    mkdir -p "$W/frr" "$W/nofrr"
    python3 - "$W/frr" <<'EOF' &
import os, socket, sys, threading, time
def serve(path):
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(8)
    s.settimeout(1)
    end = time.time() + 60
    while time.time() < end:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        c.settimeout(2)
        try:
            c.recv(4096)
            c.sendall(b'{"ipv4Unicast":{"routerId":"198.51.100.1","peers":{"198.')
        except OSError:
            pass
        c.close()
for name in ("bgpd.vty", "zebra.vty"):
    threading.Thread(target=serve, args=(os.path.join(sys.argv[1], name),), daemon=True).start()
time.sleep(60)
EOF
    for ((i = 0; i < 300; i++)); do [[ -S $W/frr/zebra.vty ]] && break; sleep 0.01; done
    run walk-midreply "$VMPATH" walk "$VM" --json --timeout 2s --frr-dir "$W/frr"
    vtysh=$(command -v vtysh || true)
    if [[ -n $vtysh ]]; then
        : >"$W/not-vtysh"
        mount --bind "$W/not-vtysh" "$(readlink -f "$vtysh")"
    fi
    run walk-novtysh "$VMPATH" walk "$VM" --json --timeout 2s --frr-dir "$W/nofrr"
    ;;

# Fault injection: a sysctl the walk reads cannot be read (a 0000 file over it, read without
# CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH).
sysctl-eperm)
    vm_tap
    : >"$W/unreadable"
    chmod 0000 "$W/unreadable"
    mount --bind "$W/unreadable" "/proc/sys/net/ipv4/conf/$TAP/proxy_arp"
    run walk setpriv --inh-caps=-dac_override,-dac_read_search \
        --bounding-set=-dac_override,-dac_read_search -- "$VMPATH" walk "$VM" --json --timeout 2s
    ;;

# Fault injection: the audit log's filesystem is full.
audit-full)
    vm_tap
    mkdir -p "$W/full"
    mount -t tmpfs -o size=64k tmpfs "$W/full"
    : >"$W/full/audit.log"
    dd if=/dev/zero of="$W/full/fill" bs=4k count=64 2>/dev/null || true
    run plumb "$VMPATH" plumb "$PORT" --mac "$VM_MAC" --ip "$VM" --apply --json --timeout 2s \
        --lock-file "$W/plumb.lock" --audit-log "$W/full/audit.log"
    echo keep >"$W/lock-target"
    ln -s "$W/lock-target" "$W/lock-link"
    run plumb-symlink-lock "$VMPATH" plumb "$PORT" --mac "$VM_MAC" --ip "$VM" --apply --json \
        --timeout 2s --lock-file "$W/lock-link" --audit-log "$W/audit2.log"
    ;;

*)
    echo "security.sh: unknown scenario $SCEN" >&2
    exit 92
    ;;
esac
