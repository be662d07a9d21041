//! `metadata.proxy`: traffic from the tap to 169.254.169.254:80 must reach a live listener on
//! this host. The nat prerouting rules (iptables nat table and nft nat chains) say where the
//! request goes (REDIRECT to a local port, DNAT, or nowhere, then 169.254.169.254 must be a
//! local address); the listening sockets of this netns say who answers there; the input filter
//! chains must let the request in. Pure: facts in, one finding out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::check::sg::eval::{self, ChainKind, Evaluation, Iface, Packet, Verdict};
use crate::collect::firewall::{proto, FirewallFacts};
use crate::collect::sockets::Listener;
use crate::model::Check;

/// The metadata service address for IPv4 guests.
pub const METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The metadata service address for IPv6 guests (`fe80::a9fe:a9fe`).
pub const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0xa9fe, 0xa9fe);
const ID: &str = "metadata.proxy";

/// Where a metadata request from the VM ends up according to the nat rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// To a local port. `addr` is `None` for REDIRECT (the tap's own address).
    Local {
        addr: Option<IpAddr>,
        port: u16,
        how: String,
    },
    /// DNAT to an address that is not on this host.
    Remote {
        addr: IpAddr,
        port: u16,
        how: String,
    },
    /// No NAT rule and the metadata address is not local.
    Nowhere,
    /// The nat chains drop it, or cannot be decided.
    Stopped(Evaluation),
}

fn metadata_addr(vm_ip: IpAddr) -> IpAddr {
    if vm_ip.is_ipv6() {
        IpAddr::V6(METADATA_V6)
    } else {
        IpAddr::V4(METADATA_V4)
    }
}

fn request(tap: &str, vm_ip: IpAddr, vm_mac: Option<&str>) -> Packet {
    Packet {
        v6: vm_ip.is_ipv6(),
        in_iface: Iface::Name(tap.to_string()),
        out_iface: Iface::None,
        src: Some(vm_ip),
        dst: Some(metadata_addr(vm_ip)),
        proto: proto::TCP,
        sport: None,
        dport: Some(80),
        icmp: None,
        ct_state: "new".into(),
        src_mac: vm_mac.map(str::to_ascii_lowercase),
    }
}

/// Follow a metadata request through nat prerouting.
pub fn destination(
    fw: &FirewallFacts,
    local_addrs: &[IpAddr],
    tap: &str,
    vm_ip: IpAddr,
    vm_mac: Option<&str>,
) -> (Destination, Evaluation) {
    let md = metadata_addr(vm_ip);
    let e = eval::evaluate(
        &fw.tables,
        &["prerouting"],
        ChainKind::Nat,
        &request(tap, vm_ip, vm_mac),
    );
    let is_local = |a: &IpAddr| a.is_loopback() || local_addrs.contains(a);
    let d = match &e.verdict {
        Verdict::Redirect(r) => {
            let port = r.map(|r| r.lo).unwrap_or(80);
            Destination::Local {
                addr: None,
                port,
                how: format!("REDIRECT :{port}"),
            }
        }
        Verdict::Dnat { addr, port } => {
            let a = addr.unwrap_or(md);
            let p = port.unwrap_or(80);
            let how = format!("DNAT {}", endpoint(a, p));
            if is_local(&a) {
                Destination::Local {
                    addr: Some(a),
                    port: p,
                    how,
                }
            } else {
                Destination::Remote {
                    addr: a,
                    port: p,
                    how,
                }
            }
        }
        Verdict::Accept if local_addrs.contains(&md) => Destination::Local {
            addr: Some(md),
            port: 80,
            how: format!("{md} is a local address"),
        },
        Verdict::Accept => Destination::Nowhere,
        _ => Destination::Stopped(e.clone()),
    };
    (d, e)
}

/// The local ports a metadata request may land on, to limit the socket owner scan
/// (`sockets::collect_for_ports`).
pub fn wanted_ports(
    fw: &FirewallFacts,
    local_addrs: &[IpAddr],
    tap: &str,
    vm_ip: IpAddr,
) -> Vec<u16> {
    match destination(fw, local_addrs, tap, vm_ip, None).0 {
        Destination::Local { port, .. } => vec![port],
        _ => vec![80],
    }
}

fn endpoint(a: IpAddr, p: u16) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{p}"),
        IpAddr::V6(a) => format!("[{a}]:{p}"),
    }
}

/// `metadata.proxy` for one VM address. `sockets` is the result of `sockets::collect*`;
/// `local_addrs` are the addresses of this network namespace.
pub fn check_metadata(
    fw: &FirewallFacts,
    sockets: &crate::error::Result<Vec<Listener>>,
    local_addrs: &[IpAddr],
    tap: &str,
    vm_ip: IpAddr,
    vm_mac: Option<&str>,
) -> Check {
    let md = metadata_addr(vm_ip);
    let from = endpoint(md, 80);
    if fw.unreadable() {
        return Check::unknown(
            ID,
            format!("where {from} goes cannot be told: the firewall rules could not be read"),
        )
        .evidences(fw.error_lines())
        .fix("run vmpath as root on the hypervisor (iptables-save and nft need CAP_NET_ADMIN)");
    }
    let (dest, nat) = destination(fw, local_addrs, tap, vm_ip, vm_mac);
    let mut evidence: Vec<String> = nat
        .trace
        .iter()
        .map(|s| format!("nat prerouting: {s}"))
        .collect();
    evidence.extend(nat.notes.iter().map(|n| format!("nat prerouting: {n}")));
    let errs = fw.error_lines();
    if !errs.is_empty() {
        evidence.push(format!("not read: {}", errs.join("; ")));
    }
    let (addr, port, how) = match dest {
        Destination::Local { addr, port, how } => (addr, port, how),
        Destination::Remote { addr, port, how } => {
            return Check::unknown(
                ID,
                format!(
                    "{from} → {how}: not an address of this host, whether it answers is not \
                     visible from here"
                ),
            )
            .evidences(evidence)
            .fix(format!(
                "check that {} answers (curl -s http://{}/ from this host)",
                endpoint(addr, port),
                endpoint(addr, port)
            ));
        }
        Destination::Nowhere => {
            return Check::fail(
                ID,
                format!("nothing would answer: no NAT rule and {md} is not local"),
            )
            .evidences(evidence)
            .evidence(format!(
                "nat prerouting: no rule redirects tcp from {tap} to {from}; local addresses: {}",
                local_addrs
                    .iter()
                    .map(IpAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .fix(format!(
                "restart the agent that installs the metadata redirect (e.g. iptables -t nat -A \
                 PREROUTING -i tap+ -d {md}/32 -p tcp --dport 80 -j REDIRECT --to-ports 9697) and \
                 the metadata proxy behind it"
            ));
        }
        Destination::Stopped(e) => {
            let at =
                e.by.as_ref()
                    .map(|s| format!("{} `{}`", s.chain, s.rule))
                    .unwrap_or_default();
            if e.verdict == Verdict::Undetermined {
                return Check::unknown(
                    ID,
                    format!(
                        "where {from} goes is undetermined at {at}: {}",
                        e.reason.unwrap_or_default()
                    ),
                )
                .evidences(evidence)
                .fix("read that nat rule by hand: vmpath does not model it");
            }
            return Check::fail(
                ID,
                format!(
                    "{from} from {tap} is {} in nat prerouting by {at}",
                    e.verdict.as_str()
                ),
            )
            .evidences(evidence)
            .fix("remove the nat rule that drops metadata requests");
        }
    };
    let listeners = match sockets {
        Ok(l) => l,
        Err(e) => {
            return Check::unknown(
                ID,
                format!("{from} → {how}, but the listening sockets could not be read: {e}"),
            )
            .evidences(evidence)
            .fix("run vmpath on the hypervisor with /proc mounted");
        }
    };
    let on_port: Vec<&Listener> = listeners.iter().filter(|l| l.port == port).collect();
    let reaches = |l: &Listener| {
        let fam_ok = l.addr.is_ipv6() == vm_ip.is_ipv6() || l.addr.is_ipv6();
        if !fam_ok {
            return false;
        }
        if l.is_wildcard() {
            return true;
        }
        match addr {
            Some(a) => l.addr == a,
            // REDIRECT delivers to the tap's primary address: any non-loopback local one may be it.
            None => !l.addr.is_loopback(),
        }
    };
    let Some(l) = on_port.iter().copied().find(|l| reaches(l)) else {
        for l in &on_port {
            evidence.push(format!(
                "listening on {} only, which this request does not reach",
                l.endpoint()
            ));
        }
        let short = how.replacen("REDIRECT ", "REDIRECT to ", 1);
        return Check::fail(
            ID,
            format!("{short} but nothing listens on {port} — start the metadata proxy"),
        )
        .evidences(evidence)
        .fix(format!(
            "start the metadata proxy so that it listens on port {port} of this host (in this \
             network namespace), bound to 0.0.0.0 or the tap's address"
        ));
    };
    let who = match &l.owner {
        Some(o) => {
            evidence.push(format!(
                "listener: {} inode {} pid {}: {}",
                l.endpoint(),
                l.inode,
                o.pid,
                o.cmdline.join(" ").chars().take(200).collect::<String>()
            ));
            format!("{} (pid {})", o.name, o.pid)
        }
        None => {
            evidence.push(format!(
                "listener: {} inode {} (owner not visible: run as root to see it)",
                l.endpoint(),
                l.inode
            ));
            format!("a process on {}", l.endpoint())
        }
    };
    // The redirected request must also pass the input filter chains.
    let mut delivered = request(tap, vm_ip, vm_mac);
    delivered.dst = addr;
    delivered.dport = Some(port);
    let input = eval::evaluate(&fw.tables, &["input"], ChainKind::Filter, &delivered);
    match input.verdict {
        Verdict::Drop | Verdict::Reject => {
            let at = input
                .by
                .as_ref()
                .map(|s| format!("{} `{}`", s.chain, s.rule))
                .unwrap_or_default();
            evidence.extend(input.trace.iter().map(|s| format!("input: {s}")));
            return Check::fail(
                ID,
                format!(
                    "{from} → {how} → {who} listening, but input filtering drops the request \
                     at {at}"
                ),
            )
            .evidences(evidence)
            .fix(format!(
                "let tcp to port {port} from {tap} in: the port's egress security group or the \
                 INPUT rules must allow it"
            ));
        }
        Verdict::Undetermined => {
            let at = input.by.as_ref().map(|s| s.to_string()).unwrap_or_default();
            evidence.push(format!(
                "input: could not decide at {at}: {}",
                input.reason.clone().unwrap_or_default()
            ));
        }
        _ => evidence.push(format!("input: accepted to port {port}")),
    }
    Check::ok(ID, format!("{from} → {how} → {who} listening")).evidences(evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::firewall::{Backend, Family, SourceReport};
    use crate::collect::sockets::{parse_proc_net_tcp, Owner};
    use crate::model::Status;

    const TAP: &str = "tap3f1c2a4e-5b";
    const MAC: Option<&str> = Some("fa:16:3e:00:00:01");

    fn vm() -> IpAddr {
        "198.51.100.11".parse().expect("test fixture")
    }

    fn ipt(save: &str) -> FirewallFacts {
        FirewallFacts::from_iptables_save(Family::Ip, save)
    }

    fn nft(json: &str) -> FirewallFacts {
        FirewallFacts::from_nft_json(json)
    }

    fn proxy() -> crate::error::Result<Vec<Listener>> {
        let mut l = parse_proc_net_tcp(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fw/proc-net-tcp"
        )));
        l[0].owner = Some(Owner {
            pid: 123,
            name: "python3".into(),
            cmdline: vec![
                "python3".into(),
                "-m".into(),
                "http.server".into(),
                "9697".into(),
            ],
        });
        Ok(l)
    }

    fn host() -> Vec<IpAddr> {
        vec![
            "198.51.100.1".parse().expect("test fixture"),
            "203.0.113.1".parse().expect("test fixture"),
        ]
    }

    #[test]
    fn redirect_to_a_live_proxy_is_ok() {
        for fw in [
            ipt(include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/fw/ipt-healthy.save"
            ))),
            nft(include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/fw/nft-healthy.json"
            ))),
            ipt(include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/fw/legacy-healthy.save"
            ))),
        ] {
            let c = check_metadata(&fw, &proxy(), &host(), TAP, vm(), MAC);
            assert_eq!(c.status, Status::Ok, "{c:#?}");
            assert_eq!(
                c.summary,
                "169.254.169.254:80 → REDIRECT :9697 → python3 (pid 123) listening"
            );
            assert!(c
                .evidence
                .iter()
                .any(|e| e.starts_with("listener: 0.0.0.0:9697 inode 19614 pid 123")));
            assert!(
                c.evidence
                    .iter()
                    .any(|e| e == "input: accepted to port 9697"),
                "{c:#?}"
            );
            assert_eq!(wanted_ports(&fw, &host(), TAP, vm()), vec![9697]);
        }
    }

    #[test]
    fn no_listener_fails() {
        let fw = ipt(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fw/ipt-healthy-nat.save"
        )));
        let c = check_metadata(&fw, &Ok(vec![]), &host(), TAP, vm(), MAC);
        assert_eq!(c.status, Status::Fail);
        assert_eq!(
            c.summary,
            "REDIRECT to :9697 but nothing listens on 9697 — start the metadata proxy"
        );
        // A listener on loopback only is not reached by REDIRECT.
        let mut l = proxy().expect("test fixture");
        l[0].addr = "127.0.0.1".parse().expect("test fixture");
        let c = check_metadata(&fw, &Ok(l), &host(), TAP, vm(), MAC);
        assert_eq!(c.status, Status::Fail);
        assert!(c.evidence.iter().any(|e| e.contains("127.0.0.1:9697 only")));
    }

    #[test]
    fn no_rule_fails_unless_the_address_is_local() {
        for fw in [
            ipt(include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/fw/ipt-nometa-nat.save"
            ))),
            ipt(include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/fw/legacy-nometa-nat.save"
            ))),
            nft(
                r#"{"nftables":[{"table":{"family":"ip","name":"vmnat","handle":2}},
              {"chain":{"family":"ip","table":"vmnat","name":"prerouting","handle":1,"type":"nat","hook":"prerouting","prio":-100,"policy":"accept"}}]}"#,
            ),
        ] {
            let c = check_metadata(&fw, &proxy(), &host(), TAP, vm(), MAC);
            assert_eq!(c.status, Status::Fail, "{c:#?}");
            assert_eq!(
                c.summary,
                "nothing would answer: no NAT rule and 169.254.169.254 is not local"
            );
            let mut local = host();
            local.push("169.254.169.254".parse().expect("test fixture"));
            let c = check_metadata(&fw, &proxy(), &local, TAP, vm(), MAC);
            assert_eq!(c.status, Status::Fail, "nothing on port 80: {c:#?}");
            assert!(c.summary.contains("nothing listens on 80"));
            let mut l = proxy().expect("test fixture");
            l[0].port = 80;
            let c = check_metadata(&fw, &Ok(l), &local, TAP, vm(), MAC);
            assert_eq!(c.status, Status::Ok, "{c:#?}");
            assert!(c
                .summary
                .starts_with("169.254.169.254:80 → 169.254.169.254 is a local address → python3"));
        }
    }

    #[test]
    fn dnat_unreadable_undecidable_and_input_drop() {
        let dnat = "*nat\n:PREROUTING ACCEPT [0:0]\n\
            [0:0] -A PREROUTING -d 169.254.169.254/32 -i tap+ -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.0.2.5:8775\nCOMMIT\n";
        let c = check_metadata(&ipt(dnat), &proxy(), &host(), TAP, vm(), MAC);
        assert_eq!(c.status, Status::Unknown);
        assert!(c
            .summary
            .starts_with("169.254.169.254:80 → DNAT 192.0.2.5:8775: not an address of this host"));
        let mut local = host();
        local.push("192.0.2.5".parse().expect("test fixture"));
        let c = check_metadata(&ipt(dnat), &proxy(), &local, TAP, vm(), MAC);
        assert_eq!(c.status, Status::Fail, "{c:#?}");
        assert!(c.summary.contains("nothing listens on 8775"));

        let set = "*nat\n:PREROUTING ACCEPT [0:0]\n\
            [0:0] -A PREROUTING -m set --match-set md src -j REDIRECT --to-ports 9697\nCOMMIT\n";
        let c = check_metadata(&ipt(set), &proxy(), &host(), TAP, vm(), MAC);
        assert_eq!(c.status, Status::Unknown);
        assert!(
            c.summary.contains("undetermined at PREROUTING"),
            "{}",
            c.summary
        );

        let blocked = format!(
            "{}*filter\n:INPUT ACCEPT [0:0]\n[7:420] -A INPUT -i tap+ -p tcp -m tcp --dport 9697 -j DROP\nCOMMIT\n",
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fw/ipt-healthy-nat.save"))
        );
        let c = check_metadata(&ipt(&blocked), &proxy(), &host(), TAP, vm(), MAC);
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.summary
                .contains("input filtering drops the request at INPUT"),
            "{}",
            c.summary
        );

        let fw = FirewallFacts::from_outputs(
            vec![(SourceReport::named("iptables-save -c"), Backend::IptablesNft, Family::Ip, Err(crate::error::Error::unknown("iptables-save not found")))],
            Some((SourceReport::named("nft -j list ruleset"), Err(crate::error::Error::unknown("nft -j list ruleset failed (exit status: 1): Operation not permitted: run vmpath as root")))),
        );
        let c = check_metadata(&fw, &proxy(), &host(), TAP, vm(), MAC);
        assert_eq!(c.status, Status::Unknown);
        assert!(c
            .evidence
            .iter()
            .any(|e| e.contains("Operation not permitted")));
        let c = check_metadata(
            &ipt(dnat),
            &Err(crate::error::Error::unknown(
                "cannot read /proc/thread-self/net/tcp",
            )),
            &local,
            TAP,
            vm(),
            MAC,
        );
        assert_eq!(c.status, Status::Unknown);
    }
}
