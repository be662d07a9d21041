//! BGP hop checks, pure: from the facts a routing daemon gave (`collect::bgp`) to rows.
//!
//! Ids, in output order:
//! - `bgp.daemon`  — a BGP speaker was found and answered (unknown otherwise).
//! - `bgp.rib`     — per VM prefix: in the daemon's table, learned from the local kernel.
//! - `bgp.session` — per peer: the session is Established.
//! - `bgp.export`  — per (peer, prefix of a family the session carries): advertised.

use crate::collect::bgp::{Answer, BgpError, BgpFacts, Export, Family, Peer, SpeakerKind, Spoken};
use crate::model::{Check, Status};

const DAEMON: &str = "bgp.daemon";
const RIB: &str = "bgp.rib";
const SESSION: &str = "bgp.session";
const EXPORT: &str = "bgp.export";

/// Rows when no BGP speaker runs in this network namespace: everything unknown.
pub fn no_speaker(prefixes: &[String]) -> Vec<Check> {
    let mut out = vec![
        Check::unknown(DAEMON, "no BIRD or FRR process in this network namespace")
            .evidence("no process named bird, bird6 or bgpd shares this network namespace")
            .fix("start the routing daemon, or pass --bird-socket/--frr-dir"),
    ];
    out.extend(all_unknown(prefixes, "no BGP speaker found"));
    out
}

/// Rows when a speaker was found but could not be asked: everything unknown, with the reason.
pub fn unreachable(speaker_desc: &str, err: &BgpError, prefixes: &[String]) -> Vec<Check> {
    let mut out = vec![Check::unknown(
        DAEMON,
        format!("{speaker_desc} did not answer: {}", err.detail),
    )
    .subject(speaker_desc)
    .evidence(err.to_string())
    .fix(if err.hint.is_empty() {
        "check that the routing daemon runs and its socket path".to_string()
    } else {
        err.hint.clone()
    })];
    out.extend(all_unknown(
        prefixes,
        &format!("{speaker_desc} did not answer"),
    ));
    out
}

/// The row when a collector thread died (a vmpath bug, never the daemon's fault).
pub fn collector_panicked() -> Check {
    Check::unknown(DAEMON, "the BGP collector thread panicked")
        .fix("report this as a vmpath bug with the output of --verbose")
}

fn all_unknown(prefixes: &[String], why: &str) -> Vec<Check> {
    let mut out: Vec<Check> = prefixes
        .iter()
        .map(|p| {
            Check::unknown(RIB, format!("{p}: unknown, {why}"))
                .subject(p.clone())
                .fix("see bgp.daemon")
        })
        .collect();
    out.push(Check::unknown(SESSION, format!("BGP sessions unknown: {why}")).fix("see bgp.daemon"));
    out.push(
        Check::unknown(EXPORT, format!("advertisements unknown: {why}")).fix("see bgp.daemon"),
    );
    out
}

/// A port's BGP rows from what every speaker said: each answered (`bgp.daemon`), has the port's
/// host routes (`bgp.rib`), its sessions are up and it advertises them (`bgp.export`); all
/// unknown, with the reason, when no speaker runs or one did not answer.
pub fn port_rows(spoken: &[Spoken], prefixes: &[String]) -> Vec<Check> {
    if spoken.is_empty() {
        return no_speaker(prefixes);
    }
    spoken
        .iter()
        .flat_map(|s| match &s.answer {
            Answer::Facts(f) => evaluate(f, prefixes),
            Answer::Failed(e) => unreachable(&s.speaker.describe(), e, prefixes),
            Answer::Panicked => vec![collector_panicked()],
        })
        .collect()
}

/// A gateway node's own BGP rows: each speaker answered (`bgp.daemon`) and its sessions
/// (`bgp.session`). A node without any speaker does not announce tenant prefixes: plain Neutron
/// L3 HA, where the external network is bridged or statically routed. That is "not used here"
/// unless the config expects a speaker (`expect = ["bgp"]`): then it is unknown.
pub fn node_rows(spoken: &[Spoken], expected: bool) -> Vec<Check> {
    if spoken.is_empty() {
        if !expected {
            return vec![Check::ok(
                DAEMON,
                "no BGP speaker on this node: tenant prefixes are not announced from here (not used)",
            )
            .evidence("no process named bird, bird6 or bgpd shares this network namespace")
            .evidence("if this node should announce tenant prefixes: start its routing daemon, and set expect = [\"bgp\"] in /etc/vmpath/config.toml so that its absence is reported")];
        }
        return vec![Check::unknown(
            DAEMON,
            "no BIRD or FRR process in this node's network namespace: tenant prefix advertisements unknown",
        )
        .evidence("no process named bird, bird6 or bgpd shares this network namespace (expected: config expect = [\"bgp\"])")
        .fix("start the routing daemon, or give --bird-socket/--frr-dir; on a node that does not announce tenant prefixes, use --no-bgp")];
    }
    spoken
        .iter()
        .flat_map(|s| match &s.answer {
            Answer::Facts(f) => evaluate(f, &[]),
            Answer::Failed(e) => unreachable(&s.speaker.describe(), e, &[])
                .into_iter()
                .take(1)
                .collect(),
            Answer::Panicked => vec![collector_panicked()],
        })
        .collect()
}

/// A router's BGP rows on a gateway: each tenant prefix in the speaker's table (`bgp.rib`) and
/// advertised to every peer (`bgp.export`). Nothing when no speaker answered (the node's rows
/// say why).
pub fn router_rows(spoken: &[Spoken], prefixes: &[String]) -> Vec<Check> {
    if prefixes.is_empty() {
        return Vec::new();
    }
    spoken
        .iter()
        .filter_map(|s| match &s.answer {
            Answer::Facts(f) => Some(f),
            _ => None,
        })
        .flat_map(|f| evaluate(f, prefixes))
        .filter(|c| c.id == RIB || c.id == EXPORT)
        .collect()
}

/// Evaluate facts for the VM's prefixes (`198.51.100.11/32`, `2001:db8::11/128`).
pub fn evaluate(facts: &BgpFacts, prefixes: &[String]) -> Vec<Check> {
    let mut out = vec![Check::ok(DAEMON, format!("{} answers", facts.speaker))
        .subject(facts.speaker.clone())
        .evidence(format!(
            "{} BGP session(s), {} prefix(es) asked",
            facts.peers.len(),
            prefixes.len()
        ))];
    for p in prefixes {
        out.push(rib_check(facts, p));
    }
    if facts.peers.is_empty() {
        out.push(
            Check::fail(
                SESSION,
                format!("no BGP session configured in {}", facts.speaker),
            )
            .evidence("the daemon reports no BGP protocol/neighbor")
            .fix(match facts.kind {
                SpeakerKind::Bird => "add `protocol bgp` sessions to the ToRs in bird.conf",
                SpeakerKind::Frr => "add `neighbor` statements to `router bgp` for the ToRs",
            }),
        );
        return out;
    }
    for peer in &facts.peers {
        out.push(session_check(facts, peer).with_redundancy(facts, peer, None));
        for p in prefixes {
            if !peer.families.contains(&Family::of_prefix(p)) {
                continue;
            }
            out.push(export_check(facts, peer, p).with_redundancy(facts, peer, Some(p)));
        }
    }
    out
}

/// A lost session or advertisement that another peer covers is lost redundancy (warn), not lost
/// traffic: the fabric still reaches the VM through the other ToR.
trait Redundancy {
    fn with_redundancy(self, facts: &BgpFacts, peer: &Peer, prefix: Option<&str>) -> Check;
}

impl Redundancy for Check {
    fn with_redundancy(mut self, facts: &BgpFacts, peer: &Peer, prefix: Option<&str>) -> Check {
        if self.status != Status::Fail {
            return self;
        }
        let others = facts.peers.iter().filter(|o| o.name != peer.name);
        let covering: Vec<&str> = match prefix {
            // Another peer of the prefix's family receives it.
            Some(p) => others
                .filter(|o| {
                    o.exported
                        .iter()
                        .any(|e| e.prefix == p && e.advertised && o.established)
                })
                .map(|o| o.name.as_str())
                .collect(),
            // Another Established session carries one of this session's families.
            None => others
                .filter(|o| o.established && o.families.iter().any(|f| peer.families.contains(f)))
                .map(|o| o.name.as_str())
                .collect(),
        };
        if covering.is_empty() {
            return self;
        }
        self.status = Status::Warn;
        let (who, how) = (
            covering.join(", "),
            if covering.len() == 1 { "s" } else { "" },
        );
        self.summary = match prefix {
            Some(_) => format!(
                "{}; {who} still receive{how} it: one path of the fabric lost",
                self.summary
            ),
            None => format!(
                "{}; {who} still carr{} the traffic: one path of the fabric lost",
                self.summary,
                if covering.len() == 1 { "ies" } else { "y" }
            ),
        };
        self.evidence.push(format!(
            "redundancy: {} of {} peers cover it",
            covering.len(),
            facts.peers.len()
        ));
        self
    }
}

fn daemon_name(kind: SpeakerKind) -> &'static str {
    match kind {
        SpeakerKind::Bird => "BIRD",
        SpeakerKind::Frr => "FRR",
    }
}

fn rib_check(facts: &BgpFacts, prefix: &str) -> Check {
    let d = daemon_name(facts.kind);
    let Some(e) = facts.rib.iter().find(|e| e.prefix == prefix) else {
        return Check::unknown(RIB, format!("{prefix} was not asked of {d}"))
            .subject(prefix)
            .fix("internal: the prefix was not collected; re-run");
    };
    let c = if !e.present {
        let fix = match facts.kind {
            SpeakerKind::Bird => format!(
                "{prefix} is missing from BIRD's table: check the kernel protocol has `learn;` and \
                 its import filter accepts it (`{} show route for {}`), and that the host route exists",
                facts.control,
                host(prefix)
            ),
            SpeakerKind::Frr => format!(
                "{prefix} is missing from FRR's BGP table: add `redistribute kernel` under \
                 `address-family {} unicast` of `router bgp`, and check the host route exists",
                Family::of_prefix(prefix).as_str()
            ),
        };
        Check::fail(RIB, format!("{prefix} is not in {d}'s routing table")).fix(fix)
    } else if e.best_from_kernel {
        Check::ok(
            RIB,
            format!(
                "{prefix} is in {d}'s table from the kernel ({})",
                e.best_source.as_deref().unwrap_or("kernel")
            ),
        )
    } else {
        let src = e.best_source.as_deref().unwrap_or("another source");
        let summary = if e.from_kernel {
            format!(
                "{prefix} is learned from the kernel, but the best path is from {src}: another router announces this address"
            )
        } else {
            format!(
                "{prefix} is in {d}'s table only from {src}, not from the local kernel: the address is announced from elsewhere"
            )
        };
        Check::warn(RIB, summary).fix(format!(
            "find who else announces {prefix} (a stale /32 after a migration or a duplicate IP); \
             the local host route must exist and be the best path"
        ))
    };
    c.subject(prefix)
        .evidences(e.detail.iter().take(4).cloned())
}

fn host(prefix: &str) -> &str {
    prefix.split('/').next().unwrap_or(prefix)
}

fn peer_label(peer: &Peer) -> String {
    match (&peer.address, &peer.hostname) {
        (Some(a), Some(h)) if a != &peer.name => format!("{} ({a}, {h})", peer.name),
        (Some(a), None) if a != &peer.name => format!("{} ({a})", peer.name),
        (_, Some(h)) => format!("{} ({h})", peer.name),
        _ => peer.name.clone(),
    }
}

fn session_check(facts: &BgpFacts, peer: &Peer) -> Check {
    let label = peer_label(peer);
    let mut evidence = vec![format!("BGP state: {}", peer.state)];
    if let Some(e) = &peer.last_error {
        evidence.push(format!("Last error: {e}"));
    }
    if !peer.families.is_empty() {
        let f: Vec<&str> = peer.families.iter().map(|f| f.as_str()).collect();
        evidence.push(format!("families: {}", f.join(" ")));
    }
    let c = if peer.established {
        Check::ok(SESSION, format!("session with {label} is Established"))
    } else {
        let fix = match (facts.kind, peer.admin_down) {
            (SpeakerKind::Bird, true) => format!("{} enable {}", facts.control, peer.name),
            (SpeakerKind::Frr, true) => format!(
                "{} -c 'configure terminal' -c 'router bgp {}' -c 'no neighbor {} shutdown'",
                facts.control,
                facts
                    .local_as
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "ASN".into()),
                peer.name
            ),
            (SpeakerKind::Bird, false) => format!(
                "check the link to {} (ping it) and that the ToR's neighbor config matches; \
                 details: {} show protocols all {}",
                peer.address.as_deref().unwrap_or(&peer.name),
                facts.control,
                peer.name
            ),
            (SpeakerKind::Frr, false) => format!(
                "check the link to {} (ping it) and that the ToR's neighbor config matches; \
                 details: {} -c 'show bgp neighbors {}'",
                peer.address.as_deref().unwrap_or(&peer.name),
                facts.control,
                peer.name
            ),
        };
        let why = if peer.admin_down {
            " (administratively shut down)"
        } else {
            ""
        };
        Check::fail(
            SESSION,
            format!("session with {label} is {}{why}", peer.state),
        )
        .fix(fix)
    };
    c.subject(peer.name.clone()).evidences(evidence)
}

fn export_check(facts: &BgpFacts, peer: &Peer, prefix: &str) -> Check {
    let subject = format!("{} {prefix}", peer.name);
    let Some(e) = peer.exported.iter().find(|e| e.prefix == prefix) else {
        return Check::unknown(EXPORT, format!("{prefix} to {}: not asked", peer.name))
            .subject(subject)
            .fix("internal: the export was not collected; re-run");
    };
    let in_rib = facts.rib.iter().any(|r| r.prefix == prefix && r.present);
    let c = export_verdict(facts, peer, prefix, e, in_rib);
    c.subject(subject)
        .evidences(e.detail.iter().take(4).cloned())
}

fn export_verdict(facts: &BgpFacts, peer: &Peer, prefix: &str, e: &Export, in_rib: bool) -> Check {
    let name = &peer.name;
    if e.advertised {
        return Check::ok(EXPORT, format!("{prefix} is advertised to {name}"));
    }
    if !in_rib {
        return Check::fail(
            EXPORT,
            format!("{prefix} is not advertised to {name}: it is not in the routing table (see bgp.rib)"),
        )
        .fix("fix bgp.rib first");
    }
    if !peer.established {
        return Check::fail(
            EXPORT,
            format!(
                "{prefix} is not advertised to {name}: the session is down ({})",
                peer.state
            ),
        )
        .fix(format!(
            "bring the session with {name} up first (see bgp.session)"
        ));
    }
    if e.missing_policy {
        let afi = Family::of_prefix(prefix).as_str();
        return Check::fail(
            EXPORT,
            format!(
                "{prefix} is not advertised to {name}: no outbound policy, and RFC 8212 \
                 (`bgp ebgp-requires-policy`) makes FRR send nothing to an eBGP peer without one"
            ),
        )
        .fix(format!(
            "add an outbound route-map that permits {prefix}: `neighbor {name} route-map NAME out` \
             under `address-family {afi} unicast` (or `no bgp ebgp-requires-policy`)"
        ));
    }
    if let Some(f) = &e.rejected_by_filter {
        let fix = match facts.kind {
            SpeakerKind::Bird => format!(
                "make {f} accept {prefix} in bird.conf, then `{} configure`; verify with `{} show route {prefix} export {name}`",
                facts.control, facts.control
            ),
            SpeakerKind::Frr => format!(
                "permit {prefix} in {f} (e.g. its prefix-list); verify with `{} -c 'show bgp {} unicast neighbors {name} advertised-routes'`",
                facts.control,
                Family::of_prefix(prefix).as_str()
            ),
        };
        return Check::fail(EXPORT, format!("{f} on {name} rejects {prefix}")).fix(fix);
    }
    Check::fail(
        EXPORT,
        format!("{prefix} is in the routing table but not advertised to {name}"),
    )
    .fix(match facts.kind {
        SpeakerKind::Bird => format!(
            "see `{} show route {prefix} all` and `{} show protocols all {name}` (is the best path learned from {name} itself?)",
            facts.control, facts.control
        ),
        SpeakerKind::Frr => format!(
            "see `{} -c 'show bgp {} unicast {prefix}'` and `{} -c 'show bgp neighbors {name}'`",
            facts.control,
            Family::of_prefix(prefix).as_str(),
            facts.control
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::bgp::{BgpErrorKind, RibEntry};
    use crate::model::Status;

    fn rib(prefix: &str, present: bool, kernel: bool, best_kernel: bool, src: &str) -> RibEntry {
        RibEntry {
            prefix: prefix.into(),
            present,
            from_kernel: kernel,
            best_from_kernel: best_kernel,
            best_source: present.then(|| src.to_string()),
            detail: vec![format!("{prefix} unicast [{src} 04:13:53.785] * (10)")],
        }
    }

    fn export(prefix: &str, adv: bool) -> Export {
        Export {
            prefix: prefix.into(),
            advertised: adv,
            rejected_by_filter: None,
            missing_policy: false,
            detail: vec![format!("show route {prefix} export tor1: ...")],
        }
    }

    fn peer(name: &str, up: bool, exported: Vec<Export>) -> Peer {
        Peer {
            name: name.into(),
            address: Some("192.0.2.2".into()),
            hostname: None,
            families: vec![Family::V4],
            state: if up { "Established" } else { "Active" }.into(),
            established: up,
            admin_down: false,
            last_error: (!up).then(|| "Socket: No route to host".to_string()),
            exported,
        }
    }

    fn facts(kind: SpeakerKind, rib: Vec<RibEntry>, peers: Vec<Peer>) -> BgpFacts {
        BgpFacts {
            speaker: "BIRD 2.0.12 via /run/bird/hv1.ctl".into(),
            kind,
            control: "birdc -s /run/bird/hv1.ctl".into(),
            local_as: Some(65002),
            rib,
            peers,
        }
    }

    const P: &str = "198.51.100.11/32";

    fn ids(cs: &[Check]) -> Vec<(&str, Status, Option<&str>)> {
        cs.iter()
            .map(|c| (c.id, c.status, c.subject.as_deref()))
            .collect()
    }

    #[test]
    fn healthy() {
        let f = facts(
            SpeakerKind::Bird,
            vec![rib(P, true, true, true, "kernel4")],
            vec![
                peer("tor1", true, vec![export(P, true)]),
                peer("tor2", true, vec![export(P, true)]),
            ],
        );
        let cs = evaluate(&f, &[P.to_string()]);
        assert_eq!(
            ids(&cs),
            [
                (
                    "bgp.daemon",
                    Status::Ok,
                    Some("BIRD 2.0.12 via /run/bird/hv1.ctl")
                ),
                ("bgp.rib", Status::Ok, Some(P)),
                ("bgp.session", Status::Ok, Some("tor1")),
                ("bgp.export", Status::Ok, Some("tor1 198.51.100.11/32")),
                ("bgp.session", Status::Ok, Some("tor2")),
                ("bgp.export", Status::Ok, Some("tor2 198.51.100.11/32")),
            ]
        );
        assert_eq!(
            cs[1].summary,
            "198.51.100.11/32 is in BIRD's table from the kernel (kernel4)"
        );
        assert!(cs.iter().all(|c| c.fix.is_none()));
    }

    #[test]
    fn filter_rejection_names_peer_and_filter() {
        let mut e = export(P, false);
        e.rejected_by_filter = Some("export filter tor1_out".into());
        let f = facts(
            SpeakerKind::Bird,
            vec![rib(P, true, true, true, "kernel4")],
            vec![peer("tor1", true, vec![e])],
        );
        let cs = evaluate(&f, &[P.to_string()]);
        let x = &cs[3];
        assert_eq!(x.status, Status::Fail);
        assert_eq!(
            x.summary,
            "export filter tor1_out on tor1 rejects 198.51.100.11/32"
        );
        assert!(x
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("birdc -s /run/bird/hv1.ctl configure"));
    }

    #[test]
    fn session_down_fails_session_and_export() {
        let f = facts(
            SpeakerKind::Bird,
            vec![rib(P, true, true, true, "kernel4")],
            vec![peer("tor2", false, vec![export(P, false)])],
        );
        let cs = evaluate(&f, &[P.to_string()]);
        assert_eq!(cs[2].status, Status::Fail);
        assert_eq!(cs[2].summary, "session with tor2 (192.0.2.2) is Active");
        assert_eq!(cs[2].evidence[1], "Last error: Socket: No route to host");
        assert!(cs[2]
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("show protocols all tor2"));
        assert_eq!(cs[3].status, Status::Fail);
        assert!(
            cs[3].summary.contains("the session is down (Active)"),
            "{}",
            cs[3].summary
        );
    }

    #[test]
    fn admin_down_fixes() {
        let mut p = peer("tor1", false, vec![export(P, false)]);
        p.admin_down = true;
        p.state = "Down".into();
        let f = facts(
            SpeakerKind::Bird,
            vec![rib(P, true, true, true, "kernel4")],
            vec![p.clone()],
        );
        let cs = evaluate(&f, &[P.to_string()]);
        assert_eq!(
            cs[2].fix.as_deref(),
            Some("birdc -s /run/bird/hv1.ctl enable tor1")
        );
        p.name = "192.0.2.1".into();
        p.state = "Idle (Admin)".into();
        let mut f = facts(
            SpeakerKind::Frr,
            vec![rib(P, true, true, true, "kernel")],
            vec![p],
        );
        f.control = "vtysh -N hv2".into();
        let cs = evaluate(&f, &[P.to_string()]);
        assert_eq!(
            cs[2].fix.as_deref(),
            Some("vtysh -N hv2 -c 'configure terminal' -c 'router bgp 65002' -c 'no neighbor 192.0.2.1 shutdown'")
        );
        assert!(cs[2].summary.contains("administratively shut down"));
    }

    #[test]
    fn rfc8212_policy() {
        let mut e = export(P, false);
        e.missing_policy = true;
        let f = facts(
            SpeakerKind::Frr,
            vec![rib(P, true, true, true, "kernel")],
            vec![peer("192.0.2.1", true, vec![e])],
        );
        let cs = evaluate(&f, &[P.to_string()]);
        assert_eq!(cs[3].status, Status::Fail);
        assert!(cs[3].summary.contains("RFC 8212"));
        assert!(cs[3]
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("route-map NAME out"));
    }

    #[test]
    fn rib_missing_and_elsewhere() {
        let f = facts(
            SpeakerKind::Frr,
            vec![rib(P, false, false, false, "")],
            vec![peer("192.0.2.1", true, vec![export(P, false)])],
        );
        let cs = evaluate(&f, &[P.to_string()]);
        assert_eq!(cs[1].status, Status::Fail);
        assert!(cs[1]
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("redistribute kernel"));
        assert_eq!(cs[3].status, Status::Fail);
        assert!(cs[3].summary.contains("not in the routing table"));

        let f = facts(
            SpeakerKind::Bird,
            vec![rib(P, true, false, false, "tor1")],
            vec![],
        );
        let cs = evaluate(&f, &[P.to_string()]);
        assert_eq!(cs[1].status, Status::Warn);
        assert!(cs[1].summary.contains("only from tor1"));
        // no sessions at all
        assert_eq!(cs[2].id, "bgp.session");
        assert_eq!(cs[2].status, Status::Fail);

        let f = facts(
            SpeakerKind::Bird,
            vec![rib(P, true, true, false, "tor1")],
            vec![],
        );
        let cs = evaluate(&f, &[P.to_string()]);
        assert_eq!(cs[1].status, Status::Warn);
        assert!(cs[1].summary.contains("best path is from tor1"));
    }

    #[test]
    fn families_select_export_rows() {
        let v6 = "2001:db8:100::11/128";
        let mut p6 = peer("tor1v6", true, vec![export(v6, true)]);
        p6.families = vec![Family::V6];
        let f = facts(
            SpeakerKind::Bird,
            vec![
                rib(P, true, true, true, "kernel4"),
                rib(v6, true, true, true, "kernel6"),
            ],
            vec![peer("tor1", true, vec![export(P, true)]), p6],
        );
        let cs = evaluate(&f, &[P.to_string(), v6.to_string()]);
        let subj: Vec<_> = cs
            .iter()
            .filter(|c| c.id == "bgp.export")
            .filter_map(|c| c.subject.as_deref())
            .collect();
        assert_eq!(
            subj,
            ["tor1 198.51.100.11/32", "tor1v6 2001:db8:100::11/128"]
        );
    }

    #[test]
    fn nothing_found_and_unreachable_are_unknown() {
        let cs = no_speaker(&[P.to_string()]);
        assert_eq!(cs[0].id, "bgp.daemon");
        assert_eq!(cs[0].status, Status::Unknown);
        assert_eq!(
            cs[0].summary,
            "no BIRD or FRR process in this network namespace"
        );
        assert_eq!(
            cs[0].fix.as_deref(),
            Some("start the routing daemon, or pass --bird-socket/--frr-dir")
        );
        assert!(cs.iter().all(|c| c.status == Status::Unknown));
        assert_eq!(cs.len(), 4);

        let err = BgpError::new(
            BgpErrorKind::Timeout,
            "BIRD control socket /run/bird/hv1.ctl",
            "no answer within 2000 ms",
            "the daemon is busy or hung",
        );
        let cs = unreachable("BIRD via /run/bird/hv1.ctl", &err, &[P.to_string()]);
        assert_eq!(cs[0].status, Status::Unknown);
        assert_eq!(
            cs[0].summary,
            "BIRD via /run/bird/hv1.ctl did not answer: no answer within 2000 ms"
        );
        assert_eq!(
            cs[0].evidence[0],
            "BIRD control socket /run/bird/hv1.ctl: no answer within 2000 ms — the daemon is busy or hung"
        );
        assert!(cs.iter().all(|c| c.status == Status::Unknown));
        assert!(cs.iter().all(|c| c.fix.is_some()));
    }
}
