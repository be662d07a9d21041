# shellcheck shell=bash
# nlab: the cloud on top of the agents — API objects, the VM plugged on hv1 the way Nova's os-vif
# does it, the bounded waits for what the agents build, and DIR/info.json.
# (sourced by lab/neutron/nlab.)

cloud_get() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$DIR/cloud.json" "$1"; }

cloud_create() {
    api cloud hv1 >"$DIR/cloud.json" || die "creating the API objects failed"
    PORT=$(cloud_get port_id); MAC=$(cloud_get mac); IP4=$(cloud_get ip4); IP6=$(cloud_get ip6)
    ROUTER=$(cloud_get router_id); NET=$(cloud_get network_id); MTU=$(cloud_get network_mtu)
    TAP=tap${PORT:0:11}
}

# plug_vm: what os-vif's OVS plugin does for a VM on hv1 (no hybrid plug): the tap in br-int
# with the port's iface-id, attached-mac, iface-status, the instance's vm-uuid and the network
# MTU as mtu_request. The VM is the network namespace vm1 on hv1: eth0 (the port's MAC) is the
# peer of the tap (MAC fe:16:3e:…, as libvirt makes it).
plug_vm() {
    local hmac=fe:${MAC#*:}
    on hv1 bash -euc "
        ip netns add vm1
        ip link add $TAP mtu $MTU address $hmac type veth peer name eth0 mtu $MTU netns vm1
        ip -n vm1 link set lo up
        ip -n vm1 link set eth0 address $MAC up
        ip netns exec vm1 ethtool -K eth0 tx off rx off >/dev/null 2>&1 || true
        ethtool -K $TAP tx off rx off >/dev/null 2>&1 || true
        ip link set $TAP up
        ovs-vsctl --timeout=10 -- --may-exist add-port br-int $TAP -- set Interface $TAP \
            external_ids:iface-id=$PORT external_ids:iface-status=active \
            external_ids:attached-mac=$MAC external_ids:vm-uuid=$(cloud_get vm_uuid) mtu_request=$MTU"
}

primaries() {
    local h n=0
    for h in "${L3_HOSTS[@]}"; do
        [[ $(cat "$(host_dir "$h")/state/ha_confs/$ROUTER/state" 2>/dev/null) == primary ]] && n=$((n + 1))
    done
    echo "$n"
}
one_primary() { [[ $(primaries) == 1 ]]; }
primary_host() {
    local h
    for h in "${L3_HOSTS[@]}"; do
        if [[ $(cat "$(host_dir "$h")/state/ha_confs/$ROUTER/state" 2>/dev/null) == primary ]]; then echo "$h"; fi
    done
}
dhcp_ready() { grep -qi "^$MAC," "$(host_dir net1)/state/dhcp/$NET/host"; }
dhcp_offer() {
    local out
    out=$(on hv1 ip netns exec vm1 /usr/bin/python3 "$NLAB_HOME/../dhcp-probe" eth0 --timeout 3 2>&1) || return 1
    echo "$out" >"$DIR/logs/dhcp-offer.txt"
    [[ $out == *"yiaddr=$IP4 "* ]]
}
vm_pings_router() { on hv1 ip netns exec vm1 ping -c1 -W1 "$(cloud_get gateway4)"; }

cloud_wait() {
    poll 180 api port-active "$PORT" || die "the VM port $PORT did not become ACTIVE (see $DIR/logs/hv1.*)"
    step "VM port ACTIVE"
    poll 180 one_primary || die "not exactly one keepalived primary ($(primaries)) for router $ROUTER"
    step "one keepalived primary: $(primary_host)"
    poll 120 dhcp_ready || die "net1's dnsmasq has no host entry for $MAC"
    poll 60 dhcp_offer || die "vm1 got no DHCP offer of $IP4 ($(cat "$DIR/logs/dhcp-offer.txt" 2>/dev/null))"
    step "vm1: DHCP offer of $IP4"
    on hv1 bash -euc "
        ip -n vm1 addr add $IP4/24 dev eth0
        ip -n vm1 addr add $IP6/64 dev eth0 nodad
        ip -n vm1 route add default via $(cloud_get gateway4)"
    poll 60 vm_pings_router || die "vm1 cannot ping the router ($(cloud_get gateway4))"
    step "vm1 pings the router"
}

write_info() {
    local h hosts_json=""
    for h in ctl "${HOSTS[@]}"; do
        hosts_json+="$h=$(holder_pid "$h") "
    done
    # the daemons nlab started, still running in their namespace: HOST NAME PID per line
    local pid name ino
    while read -r pid name h ino; do
        if [[ $name != watchdog && $(netns_of "$pid") == "$ino" ]]; then echo "$h $name $pid"; fi
    done <"$DIR/run/pids" >"$DIR/run/daemons"
    NLAB_HOSTS_PIDS=$hosts_json NLAB_DIR=$DIR NLAB_VENV=$VENV NLAB_PRIMARY=$(primary_host) \
        NLAB_HA_STATES=$(api ha-states "$ROUTER") NLAB_TTL=$TTL NLAB_UP_S=$(since) \
        NLAB_KEYSTONE_URL=$KEYSTONE_URL \
        /usr/bin/python3 - "$DIR/cloud.json" "$DIR/info.json" <<'EOF'
import json, os, sys
c = json.load(open(sys.argv[1]))
d = os.environ["NLAB_DIR"]
hosts = {}
for kv in os.environ["NLAB_HOSTS_PIDS"].split():
    name, pid = kv.split("=")
    h = {"pid": int(pid), "enter": ["nsenter", "-t", pid, "-n", "-m", "-u", "--"],
         "netns": os.readlink(f"/proc/{pid}/ns/net")}
    if name != "ctl":
        i = {"net1": 11, "net2": 12, "hv1": 21}[name]
        sp = f"{d}/hosts/{name}/state"
        h.update({"state_path": sp, "mgmt_ip": f"192.0.2.{i}",
                  "ssh": {"address": f"192.0.2.{i}", "port": 22,
                          "authorized_keys": f"{d}/ssh/authorized_keys"}, "local_ip": f"198.51.100.{i}",
                  "tunnel_bridge": "br-phy", "underlay_if": "eth1", "external_if": "eth2",
                  "ovsdb_socket": "/run/openvswitch/db.sock",
                  "agents": ["neutron-openvswitch-agent"]})
        if name in ("net1", "net2"):
            h["agents"].append("neutron-l3-agent")
            h["ha_confs"] = f"{sp}/ha_confs"
            h["state_file"] = f"{sp}/ha_confs/{c['router_id']}/state"
        if name == "net1":
            h["agents"].append("neutron-dhcp-agent")
            h["dhcp_dir"] = f"{sp}/dhcp/{c['network_id']}"
    hosts[name] = h
for line in open(f"{d}/run/daemons"):
    host, name, pid = line.split()
    hosts[host].setdefault("daemons", {})[name] = int(pid)
info = {
    "dir": d, "venv": os.environ["NLAB_VENV"], "ttl_s": int(os.environ["NLAB_TTL"]),
    "up_s": float(os.environ["NLAB_UP_S"]),
    "api": {"host": "ctl", "url": "http://127.0.0.1:9696/v2.0",
            "public_url": "http://192.0.2.1:9696"},
    "network": {"id": c["network_id"], "vni": c["vni"], "mtu": c["network_mtu"],
                "type": "vxlan", "subnet4_id": c["subnet4_id"], "subnet6_id": c["subnet6_id"],
                "cidr4": "198.18.0.0/24", "cidr6": "2001:db8:0:1::/64",
                "gateway4": c["gateway4"], "gateway6": c["gateway6"]},
    "external_network_id": c["external_network_id"],
    "vm": {"name": "vm1", "host": "hv1", "netns": "vm1", "port_id": c["port_id"],
           "tap": "tap" + c["port_id"][:11], "mac": c["mac"], "ip4": c["ip4"], "ip6": c["ip6"],
           "vm_uuid": c["vm_uuid"]},
    "router": {"id": c["router_id"], "netns": "qrouter-" + c["router_id"], "ha": True,
               "hosts": ["net1", "net2"], "primary": os.environ["NLAB_PRIMARY"],
               "api_ha_states": os.environ["NLAB_HA_STATES"]},
    "hosts": hosts,
    "api_ms": c["api_ms"],
    "keystone": {"url": os.environ["NLAB_KEYSTONE_URL"], "region": "RegionOne",
                 "project": "service", "user": "vmpath",
                 "password": os.environ["NLAB_VMPATH_PW"],
                 "admin_password": os.environ["NLAB_ADMIN_PW"],
                 "ids": json.load(open(f"{d}/keystone.json"))},
}
json.dump(info, open(sys.argv[2], "w"), indent=1)
EOF
}
