#!/usr/bin/env bash
# Seed the fuzz corpora from the captured fixtures: writes every seed into DIR/<target>/ (default
# fuzz/seeds, not committed), then, when the fuzz targets are built (`cargo fuzz build`), keeps in
# fuzz/corpus/<target>/ only the seeds that add coverage (libFuzzer's -merge=1), under their
# readable names. Without built targets every seed is copied. Rerun after adding fixtures; name
# targets to rewrite only their corpora.
#
#   fuzz/seed.sh                  # seed and minimize into fuzz/corpus/
#   fuzz/seed.sh --no-min         # seed only (fuzz/seeds/)
#   fuzz/seed.sh ovsctl ovsdb     # seed all, minimize into fuzz/corpus/ovsctl and ovsdb only
set -euo pipefail
cd "$(dirname "$0")/.."
MIN=1
[[ ${1:-} == --no-min ]] && { MIN=0; shift; }
ONLY=("$@")
SEEDS=fuzz/seeds
rm -rf "$SEEDS"
mkdir -p "$SEEDS"

python3 - "$SEEDS" <<'PY'
import glob, json, os, re, socket, struct, sys

out = sys.argv[1]
FX = "tests/fixtures"

def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()

def base(p):
    return os.path.basename(p)

def compact(data):
    """A JSON document without its indentation (smaller seeds; the parsers skip whitespace)."""
    try:
        return json.dumps(json.loads(data), separators=(",", ":")).encode() + b"\n"
    except ValueError:
        return data

def compact_vty(raw):
    """Each JSON reply of a vty stream compacted, its `\\0\\0\\0<status>` terminator kept."""
    parts = raw.split(b"\0\0\0")
    return b"\0\0\0".join([compact(parts[0])] + [p[:1] + compact(p[1:]) for p in parts[1:]])

def hexfile(path):
    """A .hex fixture: '#' comments, then hex lines (one packet, or one dump buffer a line)."""
    lines = [l.strip() for l in read(path, "r").splitlines()]
    return [bytes.fromhex(l) for l in lines if l and not l.startswith("#")]

# BIRD control-socket replies, one each, and a whole first batch (welcome, restrict, protocols,
# routes) as one read gives it.
for p in sorted(glob.glob(f"{FX}/bgp/bird-*.txt") + glob.glob(f"{FX}/lab-captures/bird-*.txt")):
    put("bird", p.split("/")[-2] + "-" + base(p), read(p))
lc = f"{FX}/lab-captures"
put("bird", "batch-hv1.txt", b"".join(read(f"{lc}/{n}") for n in [
    "bird-hello.txt", "bird-restrict.txt", "bird-show-protocols-all.txt",
    "bird-show-route-for-vm1-all.txt", "bird-show-route-vm1-export-tor1.txt",
    "bird-show-route-vm1-noexport-tor1.txt"]))

# FRR: the JSON documents (captured as vtysh printed them, and the text of each vty reply).
for p in sorted(glob.glob(f"{lc}/frr-*.json")):
    put("frr_json", base(p), compact(read(p)))
for p in sorted(glob.glob(f"{FX}/bgp/frr-*.vty")):
    raw = compact_vty(read(p))
    put("frr_vty", base(p), raw)
    put("frr_json", base(p) + ".txt", raw.split(b"\0\0\0")[0])
# Whole vty sessions: bgpd's replies (version, summary, neighbors, prefixes), then zebra's, as
# the unit tests combine them.
bg = f"{FX}/bgp"
sessions = {
    "unnumbered": ("summary", "unnumbered-summary", "unnumbered-neighbors-all",
                   ["unnumbered-prefix-v4", "unnumbered-prefix-v6"],
                   ["zebra-route-v4-kernel", "zebra-route-v6-kernel"]),
    "filtered": ("", "filtered-summary", "filtered-neighbors-all", ["filtered-prefix-v4"],
                 ["zebra-route-v4-kernel"]),
    "policy": ("", "policy-summary", "policy-neighbors-all", ["policy-prefix-v6"],
               ["zebra-route-v6-kernel"]),
    "shutdown": ("", "shutdown-summary", "shutdown-neighbor", ["shutdown-prefix-v4"],
                 ["zebra-route-v4-kernel"]),
    "healthy": ("", "summary", "neighbors-all", ["prefix-v4-kernel", "prefix-v6-kernel"],
                ["zebra-route-v4-kernel", "zebra-route-v6-kernel"]),
    "noredist": ("", "summary", "neighbors-all", ["noredist-prefix-v4"],
                 ["noredist-zebra-route-v4"]),
    "dup": ("", "summary", "neighbors-all", ["dup-prefix-v4"], ["dup-zebra-route-v4"]),
    "missing": ("", "summary", "neighbor-missing", ["prefix-v4-missing"],
                ["zebra-route-missing"]),
}
for name, (_, summary, neighbors, pfx, zebra) in sessions.items():
    parts = ["version", summary, neighbors] + pfx + zebra
    put("frr_vty", f"session-{name}.vty",
        b"".join(compact_vty(read(f"{bg}/frr-{n}.vty")) for n in parts))

# iptables-save texts (legacy and nft backends, v4 and v6) and nft -j rulesets.
for p in sorted(glob.glob(f"{FX}/fw/*.save") + glob.glob(f"{FX}/fw/nfnl/*.save")
                + glob.glob(f"{lc}/ip*tables-save-*.txt")):
    put("iptables", p.split("/")[-2] + "-" + base(p), read(p))
for p in sorted(glob.glob(f"{FX}/fw/*.json") + glob.glob(f"{lc}/nft-ruleset-*.json")):
    put("nft_json", base(p), compact(read(p)))

# nfnetlink dumps: family byte (2 ip, 10 ip6), then every buffer of the capture back to back.
for p in sorted(glob.glob(f"{FX}/fw/nfnl/*.hex")):
    fam = 10 if base(p).startswith("ip6") else 2
    put("xtnl", base(p).replace(".hex", ".bin"), bytes([fam]) + b"".join(hexfile(p)))

# dnsmasq values: Neutron's hosts/opts/addn_hosts/leases files, and the option values of the
# captured command lines, one per line.
nd = f"{FX}/neutron-dhcp"
for n in ["host", "opts", "addn_hosts", "leases", "interface"]:
    put("dnsmasq", "neutron-" + n, read(f"{nd}/{n}"))
vals = []
for p in [f"{nd}/dnsmasq.cmdline"] + sorted(glob.glob(f"{lc}/proc-cmdline-dnsmasq-*.bin")):
    for a in read(p).split(b"\0"):
        m = re.match(rb"--(dhcp-range|dhcp-option|dhcp-option-force|dhcp-host|interface)=(.*)", a)
        if m:
            vals.append(m.group(2))
put("dnsmasq", "cmdline-values", b"\n".join(vals) + b"\n")

# Whole command lines, with the files they name (after each \0\0).
facts = {}
for p in sorted(glob.glob(f"{FX}/facts/*.json")):
    facts[base(p)[:-5]] = json.loads(read(p, "r"))["facts"]
put("cmdline", "neutron-dnsmasq", read(f"{nd}/dnsmasq.cmdline") + b"\0\0" + read(f"{nd}/host")
    + b"\0\0" + read(f"{nd}/opts"))
for p in sorted(glob.glob(f"{lc}/proc-cmdline-*.bin")):
    data = read(p)
    m = re.search(r"dnsmasq-(hv\d)", base(p))
    if m:  # the lab's dhcp-hosts dir, as the captured walk read it
        w = facts["walk-%s-%s-healthy" % (m.group(1), "vm1" if m.group(1) == "hv1" else "vm3")]
        hosts = "\n".join(h["line"] for d in w["dnsmasq"] for h in d["hosts"]) + "\n"
        data += b"\0\0" + hosts.encode()
    put("cmdline", base(p), data)
# Neutron's keepalived state monitor and L3 agent (the unit tests' command lines).
ka = read("src/collect/keepalived.rs", "r")
for i, m in enumerate(re.finditer(r'argv\("(/usr/bin/python3 [^"]+)"\)', ka)):
    argv = m.group(1).replace(" ", "\0").encode() + b"\0"
    conf = b"[DEFAULT]\nstate_path = /data/neutron\n[agent]\nstate_path = /nope\n"
    put("cmdline", f"neutron-agent-{i}", argv + b"\0\0" + conf)

# keepalived: the Neutron config and the JSON dump of the unit tests (a real keepalived 2.2.7
# dump), the lab's generated config, state files, an oslo.config file.
for name in ["NEUTRON", "DUMP"]:
    m = re.search(r'const %s: &str = r#"(.*?)"#;' % name, ka, re.S)
    put("keepalived", name.lower(), m.group(1))
gen = read("lab/lib/gen-ha.sh", "r")
m = re.search(r'keepalived\.conf\.tmp" <<EOF\n(.*?)\nEOF', gen, re.S)
conf = m.group(1)
for k, v in {"$HA_VRID": "1", "$HA_ADVERT_INT": "1", "$ha": "ha-9b0c1d2e-3f",
             "$HA_VIP": "169.254.0.1", "$HA_GW_IP": "192.0.2.1", "$qr": "qr-0e5f3a7b-1c",
             "$HA_QG_IP": "198.18.40.10", "$qg": "qg-5a6b7c8d-2e", "$HA_EXT_GW": "198.18.40.1",
             "$d": "/var/lib/neutron/ha_confs/6a1d4f2e-8b3c-4d5e-9f60-7a8b9c0d1e21"}.items():
    conf = conf.replace(k, v)
put("keepalived", "lab-keepalived.conf", conf + "\n")
put("keepalived", "state-primary", "primary")
put("keepalived", "state-master", "master\n")
put("keepalived", "neutron.conf", "[DEFAULT]\nstate_path = /data/neutron\n[agent]\nstate_path = /nope\n")

# OVSDB answer to the Interface/Port transact.
put("ovsdb", "transact.json", read(f"{FX}/ovsdb/transact.json"))

# ovs-vswitchd unixctl replies: every captured output as text, and the JSON-RPC replies of the
# wire captures (the RECV lines that are whole).
for p in sorted(glob.glob(f"{FX}/ovs/*.txt") + glob.glob(f"{FX}/ovs/agents/*.txt")):
    put("ovsctl", p.split("/")[-2] + "-" + base(p), read(p))
for p in sorted(glob.glob(f"{FX}/ovs/*.wire")):
    for line in read(p).splitlines():
        if line.startswith(b"RECV "):
            try:
                json.loads(line[5:])
            except ValueError:
                continue
            put("ovsctl", base(p).replace(".wire", ".json"), line[5:])

# Sockets and conntrack: captured /proc/net/tcp[6], this machine's conntrack stat and a
# NETLINK_SOCK_DIAG dump of its TCP listeners (with a listener of our own).
put("proc_net", "proc-net-tcp", read(f"{FX}/fw/proc-net-tcp"))
put("proc_net", "proc-net-tcp6", read(f"{FX}/fw/proc-net-tcp6"))
try:
    put("proc_net", "nf_conntrack-stat", read("/proc/net/stat/nf_conntrack"))
except OSError:
    pass
try:
    lsn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsn.bind(("127.0.0.1", 0))
    lsn.listen()
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)  # NETLINK_SOCK_DIAG
    for fam in (socket.AF_INET, socket.AF_INET6):
        req = struct.pack("=BBBBI", fam, socket.IPPROTO_TCP, 0, 0, 1 << 10) + b"\0" * 48
        hdr = struct.pack("=IHHII", 16 + len(req), 20, 0x301, 1, 0)  # SOCK_DIAG_BY_FAMILY, REQUEST|DUMP
        nl.send(hdr + req)
        buf = b""
        while True:
            b = nl.recv(65536)
            buf += b
            kinds, off = [], 0
            while off + 16 <= len(b):
                n, k = struct.unpack_from("=IH", b, off)
                kinds.append(k)
                off += max(16, (n + 3) & ~3)
            if 2 in kinds or 3 in kinds:  # NLMSG_ERROR, NLMSG_DONE
                break
        put("proc_net", "sock-diag-%s.bin" % ("v4" if fam == socket.AF_INET else "v6"), buf)
except OSError:
    pass

# Packets: the probe's captured packets, and a VRRP advert and ARP reply as the unit tests
# build them.
for p in sorted(glob.glob(f"{FX}/probe/*.hex")):
    put("packet", base(p).replace(".hex", ".bin"), b"".join(hexfile(p)))
vrrp = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 255, 112, 0, 0, 169, 254, 192, 1, 224, 0, 0, 18,
              0x21, 7, 50, 1, 0, 1, 0, 0, 169, 254, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0])
put("packet", "vrrp-v2-advert.bin", vrrp)
mac = bytes([0xfa, 0x16, 0x3e, 0, 0, 1])
arp = (b"\xff" * 6 + mac + bytes([8, 6, 0, 1, 8, 0, 6, 4, 0, 2]) + bytes([2, 0, 0, 0, 0, 9])
       + bytes([192, 0, 2, 1]) + b"\0" * 6 + bytes([192, 0, 2, 1]))
put("packet", "arp-reply.bin", arp)

# What an operator gives: the README's config, the lab test's, and the values of the flags.
readme = read("README.md", "r")
m = re.search(r"/etc/vmpath/config.toml`.*?```toml\n(.*?)```", readme, re.S)
put("config", "readme-config.toml", m.group(1))
doc = read("src/config.rs", "r")
put("config", "config-doc.toml", "\n".join(l[4:] for l in doc.splitlines()
                                           if l.startswith("//! ") and "=" in l) + "\n")
put("config", "values", "\n".join([
    "2s", "500ms", "1.5", "0", "3601s", "198.51.100.1/24", "2001:db8:100::1/64", "10.0.0.1",
    "198.51.100.11", "2001:db8:100::11", "fa:16:3e:00:00:01", "FA-16-3E-00-00-01",
    "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51", "3f1c2a4e-5b", "tap3f1c2a4e-5b", "tapfoo",
    "tcp/22", "out:udp/53@192.0.2.53", "in:ICMP", "tcp/443@2001:db8::1", "icmp/8",
]) + "\n")

# Captured facts (compact JSON; the `facts` of each capture): a healthy host and faults of
# each kind (the other captures are replayed by the checks' unit tests).
for name in ["walk-hv1-vm1-healthy", "walk-hv2-vm3-sg-drop", "walk-hv2-vm3-bgp-down",
             "routers-gwA-healthy", "router-gwA-split-brain", "router-gwA-keepalived-killed"]:
    f = facts[name]
    t = "walk_facts" if name.startswith("walk-") else "gateway_facts"
    put(t, name + ".json", json.dumps(f, separators=(",", ":")))
PY

for d in "$SEEDS"/*/; do
    t=$(basename "$d")
    printf '%-14s %4d seeds %8d bytes\n' "$t" "$(ls "$d" | wc -l)" "$(cat "$d"/* | wc -c)"
done

[[ $MIN == 1 ]] || exit 0
# Minimize: libFuzzer's merge records the coverage features of every seed; the seeds are then
# picked greedily (most new features first, the smaller on a tie) within a byte budget per
# target, so the committed corpus stays small. Picked seeds keep their readable names.
BIN=fuzz/target/x86_64-unknown-linux-gnu/release
for d in "$SEEDS"/*/; do
    t=$(basename "$d")
    if ((${#ONLY[@]})) && [[ " ${ONLY[*]} " != *" $t "* ]]; then
        continue
    fi
    rm -rf "fuzz/corpus/$t"
    mkdir -p "fuzz/corpus/$t"
    if [[ ! -x $BIN/$t ]]; then
        echo "$t: not built (cargo fuzz build): every seed copied"
        cp "$d"/* "fuzz/corpus/$t/"
        continue
    fi
    case $t in
        walk_facts) budget=90000 ;;
        gateway_facts | frr_vty | nft_json | ovsctl) budget=64000 ;;
        *) budget=32000 ;;
    esac
    tmp=$(mktemp -d)
    nice -n 19 "$BIN/$t" -merge=1 -merge_control_file="$tmp/control" "$tmp" "$d" >/dev/null 2>&1
    python3 - "$tmp/control" "fuzz/corpus/$t" "$budget" <<'PY'
import shutil, sys
control, dest, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = open(control).read().splitlines()
n = int(lines[0])
files = lines[2:2 + n]
feats, size = {}, {}
for l in lines[2 + n:]:
    w = l.split()
    if w[0] == "STARTED":
        size[int(w[1])] = int(w[2])
    elif w[0] == "FT":
        feats[int(w[1])] = set(w[2:])
seen, used, picked = set(), 0, []
left = set(feats)
while left:
    best = max(left, key=lambda i: (len(feats[i] - seen), -size[i]))
    left.discard(best)
    new = len(feats[best] - seen)
    if new == 0:
        break
    if used + size[best] > budget and picked:
        continue
    seen |= feats[best]
    used += size[best]
    picked.append(best)
for i in picked:
    shutil.copy(files[i], dest)
print(f"{dest.split('/')[-1]:<14} kept {len(picked):3d} of {n:3d} seeds, {used:6d} bytes, "
      f"{len(seen)} of {len(set().union(*feats.values()))} features")
PY
    rm -rf "$tmp"
done
