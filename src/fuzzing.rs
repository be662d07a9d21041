//! Entry points of the fuzz targets (`fuzz/fuzz_targets/*.rs`, run with `cargo fuzz`), one per
//! target, each taking the raw fuzz input. `tests/fuzz_corpus.rs` replays the committed corpus
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) through the same functions, so
//! `cargo test` runs every input without cargo-fuzz. None of them may panic, hang or allocate
//! without bound on any input: each parser reads what another process or the network gave.
//!
//! Text inputs are decoded the way the collectors decode what they read (lossy UTF-8), so that
//! invalid bytes reach the parsers too. Where an input has several parts (a command line and
//! the files it names, a vty stream of several replies), its layout is described at the entry.
//!
//! Not a stable interface: it exists for fuzzing only.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::collect::bgp::{bird, frr};
use crate::collect::firewall::{iptables, nft, xtnl, Backend, Family, FirewallFacts};
use crate::collect::{dnsmasq, keepalived, nftables, nsscan, ovsctl, ovsdb, procs, sockets, vrrp};

/// A target's entry: it takes the raw fuzz input.
pub type Entry = fn(&[u8]);

/// Every target: its name (the directory under `fuzz/corpus/` and `fuzz/regressions/`, and the
/// `fuzz/fuzz_targets/` file) and its entry function.
pub const TARGETS: &[(&str, Entry)] = &[
    ("bird", bird),
    ("frr_json", frr_json),
    ("frr_vty", frr_vty),
    ("iptables", iptables),
    ("nft_json", nft_json),
    ("xtnl", xtnl),
    ("dnsmasq", dnsmasq),
    ("cmdline", cmdline),
    ("keepalived", keepalived),
    ("ovsdb", ovsdb),
    ("ovsctl", ovsctl),
    ("proc_net", proc_net),
    ("packet", packet),
    ("config", config),
    ("walk_facts", walk_facts),
    ("gateway_facts", gateway_facts),
];

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// BIRD control-socket output: the replies, each parsed as a protocol list, a route list and a
/// welcome line, the table entry of the first route's prefix, and the export verdict of each
/// pair of consecutive replies (as `export`/`noexport` answers) for the first channel seen.
pub fn bird(data: &[u8]) {
    let raw = text(data);
    let (replies, used) = bird::parse_replies(&raw);
    assert!(used <= raw.len() && raw.is_char_boundary(used));
    // What was used is whole replies: parsing it alone gives the same ones.
    assert_eq!(bird::parse_replies(&raw[..used]), (replies.clone(), used));
    let mut channel = None;
    let mut prefix = String::from("198.51.100.11/32");
    for r in &replies {
        black_box((r.code(), r.final_text(), r.is_error()));
        black_box(bird::parse_welcome(r));
        for p in bird::parse_protocols(r) {
            for c in &p.channels {
                black_box(c.family());
            }
            if channel.is_none() {
                channel = p.channels.first().cloned();
            }
        }
        let routes = bird::parse_routes(r);
        if let Some(rt) = routes.first() {
            prefix = rt.net.clone();
        }
        black_box(bird::rib_entry(&prefix, r, &["kernel4", "kernel6"]));
    }
    for w in replies.windows(2) {
        black_box(bird::export_entry(
            "tor1",
            &prefix,
            channel.as_ref(),
            &w[0],
            &w[1],
        ));
    }
}

/// One FRR JSON document (`show bgp summary json`, `show bgp neighbors json`, `show bgp <afi>
/// unicast <pfx> json`, zebra's `show ip route <pfx> json`, `show version`), given to every
/// parser; the zebra route parser is asked for each top-level key.
pub fn frr_json(data: &[u8]) {
    let t = text(data);
    black_box(frr::parse_summary(&t).ok());
    black_box(frr::parse_neighbors(&t).ok());
    black_box(frr::parse_prefix(&t).ok());
    black_box(frr::parse_version(&t));
    black_box(frr::parse_zebra_route(&t, "203.0.113.22/32").ok());
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(t.trim()) {
        for k in m.keys().take(8) {
            black_box(frr::parse_zebra_route(&t, k).ok());
        }
    }
}

/// Prefixes a vty session asks about when its zebra replies name none.
const FRR_PREFIXES: &[&str] = &["203.0.113.22/32", "2001:db8:200::22/128"];

/// Raw vty output (replies ended by `\0\0\0<status>`), then a whole collection over it: the
/// first `3 + n` replies are bgpd's (`show version`, summary, neighbors, one per prefix), the
/// next `n` zebra's (one per prefix), `n = (replies - 3) / 2` (at most 4). The prefixes are the
/// first key of each zebra reply's JSON object (so captured replies are asked about their own
/// prefix), else a fixed one.
pub fn frr_vty(data: &[u8]) {
    let (replies, used) = frr::parse_vty(data);
    assert!(used <= data.len());
    assert_eq!(frr::parse_vty(&data[..used]), (replies.clone(), used));
    for r in &replies {
        black_box((r.ok(), frr::parse_version(&r.text)));
    }
    let n = (replies.len().saturating_sub(3) / 2).min(4);
    let (bgpd, zebra) = replies.split_at((3 + n).min(replies.len()));
    let prefixes: Vec<String> = (0..n)
        .map(|i| {
            zebra
                .get(i)
                .and_then(|r| serde_json::from_str::<serde_json::Value>(r.text.trim()).ok())
                .and_then(|v| v.as_object().and_then(|m| m.keys().next().cloned()))
                .unwrap_or_else(|| FRR_PREFIXES[i % FRR_PREFIXES.len()].to_string())
        })
        .collect();
    let (bgpd_cmds, zebra_cmds) = frr::commands(&prefixes);
    let zebra = if zebra.is_empty() {
        Err("zebra.vty: no such file".to_string())
    } else {
        Ok(zebra.to_vec())
    };
    if let Ok(a) = frr::answers("fuzz", &bgpd_cmds, bgpd, &zebra_cmds, zebra, &prefixes) {
        black_box(frr::build_facts("fuzz".into(), &prefixes, &a));
    }
}

/// The port the security-group checks are run for: the one of the captured rulesets.
fn sg_port() -> crate::check::sg::SgPort {
    crate::check::sg::SgPort::new(
        "tap3f1c2a4e-5b",
        "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51",
        &[
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11)),
            "2001:db8:100::11".parse().expect("literal"),
        ],
        Some("fa:16:3e:00:00:01"),
    )
}

/// The security-group checks (chains, drops, a flow) over whatever the rules parsed into.
fn sg_checks(fw: &FirewallFacts) {
    let port = sg_port();
    let flow = crate::check::sg::parse_flow("tcp/22").expect("literal");
    black_box(crate::check::sg::checks(fw, &port, Some(&flow)));
    for t in &fw.tables {
        black_box(t.label());
        for c in &t.chains {
            for r in &c.rules {
                black_box((r.display(), r.ifaces(), r.target.is_drop()));
            }
        }
    }
}

/// `iptables-save -c` text: backend detection, tokenizing of each line, the parser under each
/// backend and family, and the security-group checks over the IPv4 and IPv6 facts.
pub fn iptables(data: &[u8]) {
    let t = text(data);
    black_box(iptables::detect_backend(&t));
    for line in t.lines() {
        let _ = black_box(iptables::tokenize(line));
    }
    black_box(iptables::parse_save(
        &t,
        Backend::IptablesLegacy,
        Family::Ip,
    ));
    for family in [Family::Ip, Family::Ip6] {
        sg_checks(&FirewallFacts::from_iptables_save(family, &t));
    }
}

/// `nft -j list ruleset`: the parser, and the security-group checks over what it gave.
pub fn nft_json(data: &[u8]) {
    let t = text(data);
    let _ = black_box(nft::parse_json(&t));
    sg_checks(&FirewallFacts::from_nft_json(&t));
}

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// nfnetlink dumps: the first byte picks the family (even: ip, odd: ip6), the rest is netlink
/// messages back to back, as several dumps would deliver them (each cut after its
/// `NLMSG_DONE`/`NLMSG_ERROR`). The messages are split as the reader splits them and rendered
/// as `iptables-save -c` text (chains and rules from the same messages, as the tests do), which
/// must then parse.
pub fn xtnl(data: &[u8]) {
    let Some((&fam, buf)) = data.split_first() else {
        return;
    };
    let family = if fam & 1 == 0 {
        nftables::IPV4
    } else {
        nftables::IPV6
    };
    let mut msgs = Vec::new();
    let (mut start, mut off) = (0, 0);
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < 16 || off + len > buf.len() {
            break;
        }
        let next = (off + ((len + 3) & !3)).min(buf.len());
        if kind == NLMSG_DONE || kind == NLMSG_ERROR {
            let _ = nftables::split_dump(&buf[start..next], &mut msgs);
            start = next;
        }
        off = next;
    }
    let _ = nftables::split_dump(&buf[start..], &mut msgs);
    black_box(nftables::tables_of(&msgs));
    if let Ok(save) = xtnl::render(family, &msgs, &msgs) {
        let fam = if family == nftables::IPV6 {
            Family::Ip6
        } else {
            Family::Ip
        };
        black_box(iptables::parse_save(&save, Backend::IptablesNft, fam));
    }
}

/// Interface names a dnsmasq `interface=` pattern is matched against.
const IFNAMES: &[&str] = &["tap3f1c2a4e-5b", "ns-f3fc5ffc-e0", "lo", "qr-7d1b3c2a-11"];

/// Addresses a dnsmasq configuration is asked about.
fn probe_ips() -> [IpAddr; 3] {
    [
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11)),
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 197)),
        IpAddr::V6("2001:db8:0:1::24e".parse().expect("literal")),
    ]
}

/// dnsmasq values, one per line: each line as a `dhcp-host` entry (hosts file line), a
/// `dhcp-range`, a `dhcp-option` (forced or not) and an interface pattern.
pub fn dnsmasq(data: &[u8]) {
    let t = text(data);
    for line in t.lines() {
        if let Some(h) = dnsmasq::parse_host_entry(line, "/var/lib/neutron/dhcp/x/host") {
            black_box(h.port_id());
        }
        if let Some(r) = dnsmasq::parse_range(line) {
            for ip in probe_ips() {
                black_box(r.contains(ip));
            }
        }
        for forced in [false, true] {
            if let Some(o) = dnsmasq::parse_option(line, forced) {
                black_box((o.is("router", 3), o.is("mtu", 26)));
            }
        }
        black_box(dnsmasq::looks_like_uuid(line));
        for name in IFNAMES {
            black_box(dnsmasq::glob_match(line, name));
        }
    }
}

/// FNV-1a, to pick a file for a path deterministically.
fn fnv(s: &str) -> usize {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) as usize
}

/// A process: `/proc/PID/cmdline` (NUL-separated), then the files it may read, each after a
/// `\0\0` (an empty argument, which the cmdline parser drops anyway). Reading a path gives the
/// file its hash picks, or nothing; listing a directory gives every file, or an error. The
/// command line is read as dnsmasq's (options, conf files, hosts and opts files, then the
/// questions the checks ask) and as a Neutron keepalived/L3 agent's.
pub fn cmdline(data: &[u8]) {
    let mut parts = split_on(data, b"\0\0");
    let argv = procs::parse_cmdline(parts.next().unwrap_or_default());
    let files: Vec<String> = parts.map(|p| text(p).into_owned()).collect();
    let read = |path: &str| -> Option<String> {
        let i = fnv(path) % (files.len() + 1);
        files.get(i).cloned()
    };
    let read_io = |path: &str| -> std::io::Result<String> {
        read(path).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    };
    let list = |path: &str| -> dnsmasq::HostFiles {
        if files.is_empty() || fnv(path) % (files.len() + 1) == files.len() {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        Ok(files
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("{path}/{i}"), f.clone()))
            .collect())
    };
    let name = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
        .unwrap_or_default();
    black_box(procs::opt_value(&argv, "--conf-file", Some("-C")));
    black_box(procs::opt_values(&argv, "--config-file"));
    let p = procs::Process {
        pid: 4242,
        name,
        args: argv,
        cred: None,
    };
    let d = dnsmasq::from_process(&p, &read_io, &list);
    for ifname in IFNAMES {
        black_box(d.serves_interface(ifname));
    }
    let mut ips: Vec<IpAddr> = probe_ips().to_vec();
    for h in d.hosts.iter().take(4) {
        ips.extend(h.ipv4.map(IpAddr::V4));
        ips.extend(h.ipv6);
    }
    let mac = d.hosts.first().and_then(|h| h.macs.first()).cloned();
    black_box(d.entries_for(mac.as_deref(), &ips));
    for ip in ips {
        black_box(d.option_for(ip, "router", 3));
        black_box(d.mtu_for(ip));
        black_box(d.router_for(ip));
    }
    black_box(keepalived::neutron_ha_confs(&p.args, &read));
}

/// Split on every occurrence of `sep` (the parts between them, possibly empty).
fn split_on<'a>(data: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.windows(sep.len()).position(|w| w == sep) {
            Some(i) => {
                rest = Some(&r[i + sep.len()..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// keepalived's files: the text as a `keepalived.conf` (also its `tmp_dir`), a state file, the
/// JSON dump (`--signum=JSON`) and an oslo.config file (`state_path`).
pub fn keepalived(data: &[u8]) {
    let t = text(data);
    black_box(keepalived::parse_conf(&t).ok());
    black_box(keepalived::parse_state(&t));
    black_box(keepalived::parse_json(&t).ok());
    black_box(keepalived::conf_tmp_dir(&t));
    black_box(keepalived::state_path_of(&t));
}

/// An OVSDB JSON-RPC answer, parsed as the reader parses it, then read for ports.
pub fn ovsdb(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        black_box(ovsdb::parse(&v).ok());
    }
}

/// An ovs-vswitchd unixctl reply: the bytes as the JSON-RPC reply (to request 0), and the text
/// (the reply's `result` when it is one, else the bytes) as each command's output: an
/// `ofproto/trace` with its verdict and every pass's exits, a flow dump with br-tun's and
/// br-int's readings, the route lookup and table (asked about the first route's own prefix), the
/// neighbor cache, `dpif/show` (each datapath port looked up) and `version`.
pub fn ovsctl(data: &[u8]) {
    let raw = text(data);
    let mut t = raw.to_string();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(ovsctl::Reply::Ok(r) | ovsctl::Reply::Error(r)) = ovsctl::parse_reply(&v, 0) {
            t = r;
        }
    }
    let trace = ovsctl::parse_trace(&t);
    black_box(trace.verdict());
    for p in &trace.passes {
        black_box((p.exits(), p.drop_point()));
    }
    use ovsctl::flows;
    let dump = ovsctl::parse_dump_flows(&t);
    for f in dump.iter().take(64) {
        black_box((
            f.vlan(),
            f.tun_id(),
            f.sets_tun_id(),
            f.sets_vlan(),
            f.outputs(),
        ));
    }
    for m in flows::vlan_vnis(&dump).iter().take(8) {
        black_box((
            flows::vni_of_vlan(&dump, m.vlan),
            flows::vlan_of_vni(&dump, m.vni),
        ));
    }
    black_box((flows::floods(&dump), flows::unicasts(&dump)));
    black_box(flows::dropped_in_ports(&dump));
    black_box(ovsctl::parse_route_lookup(&t));
    let routes = ovsctl::parse_route_show(&t);
    let mut ips: Vec<IpAddr> = probe_ips().to_vec();
    ips.extend(routes.iter().take(4).map(|r| r.prefix));
    for ip in ips {
        black_box(ovsctl::replies::route_for(&routes, ip));
    }
    black_box(ovsctl::parse_tnl_neigh(&t));
    let dp = ovsctl::parse_dpif_show(&t);
    for b in dp.iter().take(4) {
        for p in b.ports.iter().take(16) {
            if let Some(n) = p.dp_port {
                black_box(ovsctl::replies::dp_port_name(&dp, Some(&b.datapath), n));
            }
        }
    }
    black_box(ovsctl::parse_version(&t));
}

/// What the kernel reports about sockets and conntrack: the bytes as a `NETLINK_SOCK_DIAG` dump
/// reply, the text as `/proc/net/tcp[6]` and as `/proc/net/stat/nf_conntrack`.
pub fn proc_net(data: &[u8]) {
    let mut out = Vec::new();
    let _ = black_box(sockets::parse_diag_reply(data, &mut out));
    let t = text(data);
    out.extend(sockets::parse_proc_net_tcp(&t));
    for l in &out {
        black_box((l.is_wildcard(), l.endpoint()));
    }
    black_box(nsscan::parse_ct_stat(&t));
}

/// A packet: as the probe's raw sockets return it (IPv4 with its header, a whole IPv6 packet,
/// and the IPv6 payload with the header's addresses as `recvfrom` gives them), its Record Route
/// option, and as a VRRP advertisement and an ARP reply frame.
pub fn packet(data: &[u8]) {
    use crate::probe::packet;
    let replies = [
        packet::parse_v4(data),
        packet::parse_v6(data),
        raw_v6(data),
        packet::parse_v6_icmp(data, Ipv6Addr::LOCALHOST),
        packet::parse_v6_tcp(data, Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED),
    ];
    black_box(replies);
    black_box(packet::record_route(data));
    if let Some(p) = packet::with_record_route(data) {
        black_box(packet::record_route(&p));
    }
    black_box(vrrp::parse_vrrp(data));
    black_box(vrrp::parse_arp_reply(data));
}

/// An IPv6 packet the way a raw socket hands it over: the payload after the fixed header, and
/// the source (and our) address from `recvfrom`.
fn raw_v6(pkt: &[u8]) -> Option<crate::probe::packet::Reply> {
    use crate::probe::packet;
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(pkt.get(8..24)?).ok()?);
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(pkt.get(24..40)?).ok()?);
    let payload = pkt.get(40..)?;
    match pkt.get(6)? {
        58 => packet::parse_v6_icmp(payload, src),
        6 => packet::parse_v6_tcp(payload, src, dst),
        _ => None,
    }
}

/// What an operator gives: the text as `/etc/vmpath/config.toml` (then its timeout and gateways
/// as the commands read them), and each line as a `--timeout`, a `--gateway`, a walk target, a
/// `--flow` and a `--mac`.
pub fn config(data: &[u8]) {
    use crate::config;
    let t = text(data);
    if let Ok(c) = config::Config::parse(&t) {
        if let Some(d) = &c.timeout {
            black_box(config::parse_duration(d).ok());
        }
        for g in &c.gateways {
            black_box(config::parse_gateway(g).ok());
        }
        black_box((c.expects("dhcp"), c.expects("bgp")));
    }
    for line in t.lines() {
        black_box(config::parse_duration(line).ok());
        black_box(config::parse_gateway(line).ok());
        if let Ok(target) = crate::port::target::Target::parse(line) {
            black_box((target.implied_tap(), target.to_string()));
        }
        if let Ok(f) = crate::check::sg::parse_flow(line) {
            black_box(f.to_string());
        }
        black_box(crate::port::target::parse_mac(line));
        black_box(vrrp::mac_bytes(line));
    }
}

/// A walk's facts document (`VMPATH_FACTS_OUT`, the `facts` of `tests/fixtures/facts/walk-*`):
/// deserialized, then, for the ports it resolves (each looked-up address, each tap with
/// sysctls), the walk's checks with and without a flow.
pub fn walk_facts(data: &[u8]) {
    use crate::port::target::Target;
    let Ok(t) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(f) = serde_json::from_str::<crate::walk::Facts>(t) else {
        return;
    };
    let flow = crate::check::sg::parse_flow("tcp/22").expect("literal");
    let all = crate::check::Expect {
        dhcp: true,
        bgp: true,
    };
    let targets = f
        .lookups
        .keys()
        .take(2)
        .map(|ip| Target::Ip(*ip))
        .chain(f.sysctls.keys().take(2).map(|t| Target::Tap(t.clone())));
    for target in targets {
        if let Ok(port) = f.port(&target, &Default::default()) {
            let checks = crate::walk::checks::port(&f, &port, None, Default::default());
            black_box(serde_json::to_string(&checks).ok());
            black_box(crate::walk::checks::port(&f, &port, Some(&flow), all));
        }
    }
}

/// A gateway's facts document (the `facts` of `tests/fixtures/facts/router*-*`): deserialized,
/// then the routers report; the text is also tried as a `--peer` document.
pub fn gateway_facts(data: &[u8]) {
    let Ok(t) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(f) = serde_json::from_str::<crate::gateway::Facts>(t) {
        let report = crate::gateway::checks::report(&f);
        black_box(serde_json::to_string(&report).ok());
    }
    black_box(serde_json::from_str::<crate::collect::peer::PeerDoc>(t).ok());
}
