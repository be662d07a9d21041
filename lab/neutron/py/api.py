#!/usr/bin/env python3
"""nlab's client of the Neutron API and Keystone (stdlib only; run inside ctl).

Every Neutron call carries a Keystone token of the lab's admin (NLAB_KEYSTONE, NLAB_ADMIN_PW in
the environment; one token per run of this script).

    api.py URL keystone-setup          the service project, the neutron and vmpath users and
                                       the network endpoints; print ids as JSON
    api.py URL vmpath-token            a token of the vmpath user (service project), printed
    api.py URL port NET HOST           a new VM port on network NET bound to HOST (Nova's way):
                                       print {"id": ..., "mac": ..., "vif_type": ...}
    api.py URL delete-port ID          delete a port
    api.py URL sg-rule PORT PROTO N CIDR
                                       an ingress rule (PROTO port N from CIDR) in the first
                                       security group of PORT: print its id
    api.py URL delete-sg-rule ID       delete a security-group rule
    api.py URL appcred NAME            a new application credential of the vmpath user: print
                                       {"id": ..., "secret": ...}

    api.py URL cloud HOST              create the lab's cloud (VM port bound to HOST); print ids
    api.py URL get PATH                GET, print the JSON answer
    api.py URL agents-alive H:BIN...   exit 0 when every agent BIN on host H reports alive
    api.py URL port-active PORT        exit 0 when the port is ACTIVE
    api.py URL ha-states ROUTER        print "HOST=STATE ..." from the router's L3 agents

Every request has a 60 s timeout; nothing here waits longer than one request (the lab's shell
code polls, with its own deadline).
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

VM_UUID = "0b1c2d3e-4f50-4a61-8b72-93a4b5c6d7e8"


KEYSTONE = os.environ.get("NLAB_KEYSTONE", "http://127.0.0.1:5000/v3")
_TOKEN = []


def token():
    """A project-scoped token of the lab's admin (admin project), made once per run."""
    if not _TOKEN:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"},
            "password": os.environ["NLAB_ADMIN_PW"]}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
        req = urllib.request.Request(KEYSTONE + "/auth/tokens", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                _TOKEN.append(r.headers["X-Subject-Token"])
        except urllib.error.HTTPError as e:
            sys.exit(f"Keystone: HTTP {e.code}: {e.read().decode(errors='replace')[:400]}")
    return _TOKEN[0]


def call(url, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json",
                                          "X-Auth-Token": token()})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read()
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')[:400]}")
    return json.loads(text) if text else {}


def cloud(url, host):
    """The objects a small cloud has: an external flat network, a tenant VXLAN network with an
    IPv4 and a DHCPv6 subnet, a VM port bound to HOST, an HA router with a gateway on the
    external network and an interface on each tenant subnet. Times each call (ms)."""
    t0 = time.monotonic()
    times = {}

    def timed(name, method, path, body=None):
        t = time.monotonic()
        out = call(url, method, path, body)
        times[name] = round((time.monotonic() - t) * 1000)
        return out

    ext = timed("ext_net", "POST", "/networks", {"network": {
        "name": "nlab-ext", "router:external": True,
        "provider:network_type": "flat", "provider:physical_network": "physnet1"}})["network"]
    timed("ext_subnet", "POST", "/subnets", {"subnet": {
        "name": "nlab-ext-v4", "network_id": ext["id"], "ip_version": 4,
        "cidr": "203.0.113.0/24", "gateway_ip": "203.0.113.1", "enable_dhcp": False,
        "allocation_pools": [{"start": "203.0.113.100", "end": "203.0.113.199"}]}})
    net = timed("net", "POST", "/networks", {"network": {
        "name": "nlab-net", "provider:network_type": "vxlan"}})["network"]
    sub4 = timed("subnet4", "POST", "/subnets", {"subnet": {
        "name": "nlab-v4", "network_id": net["id"], "ip_version": 4,
        "cidr": "198.18.0.0/24", "gateway_ip": "198.18.0.1"}})["subnet"]
    sub6 = timed("subnet6", "POST", "/subnets", {"subnet": {
        "name": "nlab-v6", "network_id": net["id"], "ip_version": 6,
        "cidr": "2001:db8:0:1::/64", "gateway_ip": "2001:db8:0:1::1",
        "ipv6_address_mode": "dhcpv6-stateful", "ipv6_ra_mode": "dhcpv6-stateful"}})["subnet"]
    port = timed("port", "POST", "/ports", {"port": {
        "name": "vm1-eth0", "network_id": net["id"], "device_id": VM_UUID,
        "device_owner": "compute:nova", "binding:host_id": host}})["port"]
    router = timed("router", "POST", "/routers", {"router": {
        "name": "nlab-router", "ha": True,
        "external_gateway_info": {"network_id": ext["id"]}}})["router"]
    timed("add_v4", "PUT", f"/routers/{router['id']}/add_router_interface",
          {"subnet_id": sub4["id"]})
    timed("add_v6", "PUT", f"/routers/{router['id']}/add_router_interface",
          {"subnet_id": sub6["id"]})
    ips = [f["ip_address"] for f in port["fixed_ips"]]
    print(json.dumps({
        "external_network_id": ext["id"],
        "network_id": net["id"],
        "vni": net["provider:segmentation_id"],
        "network_mtu": net["mtu"],
        "subnet4_id": sub4["id"], "subnet6_id": sub6["id"],
        "gateway4": sub4["gateway_ip"], "gateway6": sub6["gateway_ip"],
        "port_id": port["id"], "mac": port["mac_address"],
        "ip4": next(i for i in ips if ":" not in i),
        "ip6": next(i for i in ips if ":" in i),
        "vm_uuid": VM_UUID,
        "router_id": router["id"],
        "api_ms": times,
        "created_ms": round((time.monotonic() - t0) * 1000),
    }))


def keystone_setup(neutron_url):
    """What a deployment tool makes in Keystone for Neutron: the service project, the neutron
    user (admin there, for keystonemiddleware), the network service and its endpoints; and the
    vmpath user (admin in the service project: binding:* and the agents are admin-only)."""
    k = KEYSTONE

    def kc(method, path, body=None):
        return call(k, method, path, body)

    service = kc("POST", "/projects", {"project": {"name": "service", "domain_id": "default"}})["project"]
    admin_role = next(r for r in kc("GET", "/roles")["roles"] if r["name"] == "admin")
    users = {}
    for name, pw in (("neutron", os.environ["NLAB_NEUTRON_PW"]), ("vmpath", os.environ["NLAB_VMPATH_PW"])):
        u = kc("POST", "/users", {"user": {"name": name, "password": pw, "domain_id": "default"}})["user"]
        kc("PUT", f"/projects/{service['id']}/users/{u['id']}/roles/{admin_role['id']}")
        users[name] = u["id"]
    svc = kc("POST", "/services", {"service": {"type": "network", "name": "neutron"}})["service"]
    for iface in ("public", "internal", "admin"):
        kc("POST", "/endpoints", {"endpoint": {"service_id": svc["id"], "interface": iface,
                                                "region_id": "RegionOne", "url": neutron_url}})
    print(json.dumps({"service_project_id": service["id"], "users": users}))


def vmpath_token():
    """A token of the vmpath user, scoped to the service project, and the user's id."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "vmpath", "domain": {"id": "default"}, "password": os.environ["NLAB_VMPATH_PW"]}}},
        "scope": {"project": {"name": "service", "domain": {"id": "default"}}}}}
    req = urllib.request.Request(KEYSTONE + "/auth/tokens", data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.headers["X-Subject-Token"], json.loads(r.read())["token"]["user"]["id"]


def main(argv):
    url, cmd, args = argv[1], argv[2], argv[3:]
    if cmd == "keystone-setup":
        keystone_setup(url)
    elif cmd == "port":
        p = call(url, "POST", "/ports", {"port": {
            "name": "extra", "network_id": args[0], "device_id": str(uuid.uuid4()),
            "device_owner": "compute:nova", "binding:host_id": args[1]}})["port"]
        print(json.dumps({"id": p["id"], "mac": p["mac_address"],
                          "vif_type": p["binding:vif_type"]}))
    elif cmd == "delete-port":
        call(url, "DELETE", f"/ports/{args[0]}")
    elif cmd == "sg-rule":
        sg = call(url, "GET", f"/ports/{args[0]}")["port"]["security_groups"][0]
        r = call(url, "POST", "/security-group-rules", {"security_group_rule": {
            "security_group_id": sg, "direction": "ingress", "ethertype": "IPv4",
            "protocol": args[1], "port_range_min": int(args[2]), "port_range_max": int(args[2]),
            "remote_ip_prefix": args[3]}})["security_group_rule"]
        print(r["id"])
    elif cmd == "delete-sg-rule":
        call(url, "DELETE", f"/security-group-rules/{args[0]}")
    elif cmd == "vmpath-token":
        print(vmpath_token()[0])
    elif cmd == "appcred":
        tok, uid = vmpath_token()
        req = urllib.request.Request(
            f"{KEYSTONE}/users/{uid}/application_credentials",
            data=json.dumps({"application_credential": {"name": args[0]}}).encode(),
            method="POST", headers={"Content-Type": "application/json", "X-Auth-Token": tok})
        with urllib.request.urlopen(req, timeout=60) as r:
            ac = json.loads(r.read())["application_credential"]
        print(json.dumps({"id": ac["id"], "secret": ac["secret"]}))
    elif cmd == "cloud":
        cloud(url, args[0])
    elif cmd == "get":
        print(json.dumps(call(url, "GET", args[0])))
    elif cmd == "agents-alive":
        agents = call(url, "GET", "/agents")["agents"]
        alive = {(a["host"], a["binary"]) for a in agents if a["alive"]}
        want = {tuple(a.split(":", 1)) for a in args}
        missing = sorted(f"{h}:{b}" for h, b in want - alive)
        if missing:
            print("not alive: " + " ".join(missing))
            return 1
    elif cmd == "port-active":
        return 0 if call(url, "GET", f"/ports/{args[0]}")["port"]["status"] == "ACTIVE" else 1
    elif cmd == "ha-states":
        agents = call(url, "GET", f"/routers/{args[0]}/l3-agents")["agents"]
        print(" ".join(sorted(f"{a['host']}={a.get('ha_state')}" for a in agents)))
    else:
        sys.exit(f"unknown command {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
