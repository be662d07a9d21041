//! FRR client: talks to the daemons' vty unix sockets directly, the way vtysh does, and
//! parses their JSON. Falls back to forking `vtysh` only when the socket cannot be opened.
//!
//! vty protocol (FRR 8.4, verified on real daemons): the client writes a command followed by
//! one NUL byte; the daemon writes the command's output followed by `\0\0\0<status>`, status
//! being the `CMD_*` code: 0 success, 1 warning (`{}` for a route zebra does not have, "No
//! such neighbor"), 2 unknown command, ... The daemon starts the session in view/enable mode,
//! sends no greeting, and executes pipelined commands in order, so one write of all
//! commands and one read per daemon is a whole collection.

use std::io;
use std::path::Path;

use serde_json::Value;

use super::facts::{BgpError, BgpErrorKind, BgpFacts, Export, Family, Peer, RibEntry, SpeakerKind};
use crate::collect::deadline::{connect_unix, read_some_by, write_all_by, Deadline};
use crate::error::Error;

const HINT_MISSING: &str =
    "is bgpd running in this network namespace? pass --frr-dir DIR (the directory holding bgpd.vty)";

/// `CMD_SUCCESS` and `CMD_WARNING`: the output is a real answer.
const STATUS_OK: u8 = 0;
const STATUS_WARNING: u8 = 1;

/// One command's answer on a vty socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VtyReply {
    pub text: String,
    pub status: u8,
}

impl VtyReply {
    pub fn ok(&self) -> bool {
        self.status == STATUS_OK || self.status == STATUS_WARNING
    }
}

/// Split vty output into replies at each `\0\0\0<status>` terminator. Returns the replies and
/// the bytes they used (an incomplete reply at the end is left).
pub fn parse_vty(raw: &[u8]) -> (Vec<VtyReply>, usize) {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 4 <= raw.len() {
        if raw[i] == 0 && raw[i + 1] == 0 && raw[i + 2] == 0 {
            out.push(VtyReply {
                text: String::from_utf8_lossy(&raw[start..i]).into_owned(),
                status: raw[i + 3],
            });
            i += 4;
            start = i;
        } else {
            i += 1;
        }
    }
    (out, start)
}

fn json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text.trim()).map_err(|e| format!("not JSON ({e})"))
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn family_of_afi(k: &str) -> Option<Family> {
    match k {
        "ipv4Unicast" => Some(Family::V4),
        "ipv6Unicast" => Some(Family::V6),
        _ => None,
    }
}

fn afi_of(f: Family) -> &'static str {
    match f {
        Family::V4 => "ipv4Unicast",
        Family::V6 => "ipv6Unicast",
    }
}

/// One peer in one AFI of `show bgp summary json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryPeer {
    /// Address, or interface name for unnumbered peers.
    pub key: String,
    pub family: Family,
    /// `Established`, `Active`, `Idle (Admin)`.
    pub state: String,
    /// `OK`, `Admin`, `PfxCt`, `Policy`.
    pub peer_state: Option<String>,
    pub pfx_snt: Option<u64>,
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    pub local_as: Option<u32>,
    pub peers: Vec<SummaryPeer>,
}

/// Parse `show bgp summary json` (all AFIs: `ipv4Unicast`, `ipv6Unicast`, others ignored).
pub(crate) fn parse_summary(text: &str) -> Result<Summary, String> {
    let v = json(text)?;
    let obj = v.as_object().ok_or("summary is not a JSON object")?;
    let mut out = Summary::default();
    for (afi, body) in obj {
        let Some(family) = family_of_afi(afi) else {
            continue;
        };
        if out.local_as.is_none() {
            out.local_as = body.get("as").and_then(Value::as_u64).map(|a| a as u32);
        }
        let Some(peers) = body.get("peers").and_then(Value::as_object) else {
            continue;
        };
        for (key, p) in peers {
            out.peers.push(SummaryPeer {
                key: key.clone(),
                family,
                state: s(p, "state").unwrap_or_else(|| "unknown".into()),
                peer_state: s(p, "peerState"),
                pfx_snt: p.get("pfxSnt").and_then(Value::as_u64),
                hostname: s(p, "hostname"),
            });
        }
    }
    // same order whatever serde_json's map is: by family, then key
    out.peers
        .sort_by(|a, b| (a.family as u8, &a.key).cmp(&(b.family as u8, &b.key)));
    Ok(out)
}

/// The parts of `show bgp neighbors json` the checks need.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Neighbor {
    pub key: String,
    pub bgp_state: Option<String>,
    /// `bgpNeighborAddr` (unnumbered) or the key.
    pub address: Option<String>,
    pub hostname: Option<String>,
    pub admin_down: bool,
    /// `lastResetDueTo` (+ `lastNotificationReason`).
    pub last_reset: Option<String>,
    /// AFIs both sides announced (`advertisedAndReceived`); `None` when not shown.
    pub negotiated: Option<Vec<Family>>,
    /// Per AFI: configured outbound filters, described (`route-map HV_OUT out`).
    pub out_filters: Vec<(Family, Vec<String>)>,
    /// Per AFI: the `outboundEbgpRequiresPolicy` text when RFC 8212 blocks it.
    pub out_policy_missing: Vec<(Family, String)>,
}

/// Parse `show bgp neighbors [PEER] json`.
pub(crate) fn parse_neighbors(text: &str) -> Result<Vec<Neighbor>, String> {
    let v = json(text)?;
    let obj = v.as_object().ok_or("neighbors is not a JSON object")?;
    let mut out = Vec::new();
    for (key, n) in obj {
        if !n.is_object() || (n.get("bgpState").is_none() && n.get("remoteAs").is_none()) {
            continue;
        }
        let negotiated = n
            .get("neighborCapabilities")
            .and_then(|c| c.get("multiprotocolExtensions"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| {
                        v.get("advertisedAndReceived").and_then(Value::as_bool) == Some(true)
                    })
                    .filter_map(|(k, _)| family_of_afi(k))
                    .collect::<Vec<_>>()
            });
        let mut out_filters = Vec::new();
        let mut out_policy_missing = Vec::new();
        if let Some(afs) = n.get("addressFamilyInfo").and_then(Value::as_object) {
            for (afi, a) in afs {
                let Some(f) = family_of_afi(afi) else {
                    continue;
                };
                let mut fl = Vec::new();
                for (field, what) in [
                    ("routeMapForOutgoingAdvertisements", "route-map"),
                    ("outgoingUpdatePrefixFilterList", "prefix-list"),
                    ("outgoingUpdateNetworkFilterList", "distribute-list"),
                    ("outgoingUpdateAsPathFilterList", "filter-list"),
                ] {
                    if let Some(name) = s(a, field) {
                        fl.push(format!("{what} {name} out"));
                    }
                }
                out_filters.push((f, fl));
                if let Some(p) = s(a, "outboundEbgpRequiresPolicy") {
                    out_policy_missing.push((f, p));
                }
            }
        }
        let last_reset = s(n, "lastResetDueTo").map(|r| match s(n, "lastNotificationReason") {
            Some(why) => format!("{r} ({why})"),
            None => r,
        });
        out.push(Neighbor {
            key: key.clone(),
            bgp_state: s(n, "bgpState"),
            address: s(n, "bgpNeighborAddr").or_else(|| Some(key.clone())),
            hostname: s(n, "hostname"),
            admin_down: n.get("adminShutDown").and_then(Value::as_bool) == Some(true),
            last_reset,
            negotiated,
            out_filters,
            out_policy_missing,
        });
    }
    Ok(out)
}

/// One path of `show bgp <afi> unicast <pfx> json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpPath {
    pub best: bool,
    /// Originated here (redistributed / network statement): `sourced`, peer 0.0.0.0 / ::.
    pub local: bool,
    /// `peer.peerId` (address the path came from).
    pub peer: Option<String>,
    pub hostname: Option<String>,
    /// `aspath.string`: `Local`, `65001`.
    pub aspath: String,
    pub origin: String,
}

/// `show bgp <afi> unicast <pfx> json`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BgpPrefix {
    pub paths: Vec<BgpPath>,
    /// Keys of `advertisedTo`: peers whose adj-RIB-out holds the prefix.
    pub advertised_to: Vec<String>,
}

/// Parse `show bgp <afi> unicast <pfx> json`; `{}` means not in the table.
pub(crate) fn parse_prefix(text: &str) -> Result<BgpPrefix, String> {
    let v = json(text)?;
    let mut out = BgpPrefix::default();
    if let Some(a) = v.get("advertisedTo").and_then(Value::as_object) {
        out.advertised_to = a.keys().cloned().collect();
        out.advertised_to.sort(); // same order whatever serde_json's map is
    }
    for p in v
        .get("paths")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let peer = p.get("peer").and_then(|x| s(x, "peerId"));
        let sourced = ["sourced", "local"]
            .iter()
            .any(|k| p.get(*k).and_then(Value::as_bool) == Some(true));
        let local = sourced || matches!(peer.as_deref(), Some("0.0.0.0") | Some("::"));
        let hostname = p.get("peer").and_then(|x| s(x, "hostname")).or_else(|| {
            p.get("nexthops")
                .and_then(Value::as_array)
                .and_then(|n| n.first())
                .and_then(|n| s(n, "hostname"))
        });
        out.paths.push(BgpPath {
            best: p
                .get("bestpath")
                .and_then(|b| b.get("overall"))
                .and_then(Value::as_bool)
                == Some(true),
            local,
            peer,
            hostname,
            aspath: p
                .get("aspath")
                .and_then(|a| s(a, "string"))
                .unwrap_or_default(),
            origin: s(p, "origin").unwrap_or_default(),
        });
    }
    Ok(out)
}

/// One route of zebra's `show ip[v6] route <pfx> json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZebraRoute {
    /// `kernel`, `bgp`, `static`, `connected`.
    pub protocol: String,
    pub selected: bool,
    pub installed: bool,
    pub interfaces: Vec<String>,
}

/// Parse zebra's `show ip route <pfx> json` (`{}` when absent); only routes for exactly
/// `prefix` count.
pub(crate) fn parse_zebra_route(text: &str, prefix: &str) -> Result<Vec<ZebraRoute>, String> {
    let v = json(text)?;
    let mut out = Vec::new();
    for r in v
        .get(prefix)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let b = |k: &str| r.get(k).and_then(Value::as_bool) == Some(true);
        out.push(ZebraRoute {
            protocol: s(r, "protocol").unwrap_or_default(),
            selected: b("selected"),
            installed: b("installed"),
            interfaces: r
                .get("nexthops")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|n| s(n, "interfaceName"))
                .collect(),
        });
    }
    Ok(out)
}

/// `FRRouting 8.4.4` from `show version`.
pub fn parse_version(text: &str) -> Option<String> {
    let first = text.lines().next()?;
    let mut t = first.split_whitespace();
    Some(format!("{} {}", t.next()?, t.next()?))
}

/// Zebra's view of one prefix: `Ok(routes)` or why it is unknown.
type ZebraView = Result<Vec<ZebraRoute>, String>;

fn describe_zebra(prefix: &str, z: &ZebraView) -> String {
    match z {
        Ok(rs) if rs.is_empty() => format!("zebra: no route for {prefix}"),
        Ok(rs) => {
            let parts: Vec<String> = rs
                .iter()
                .map(|r| {
                    let mut t = r.protocol.clone();
                    if r.selected {
                        t.push_str(" selected");
                    }
                    if r.installed {
                        t.push_str(" installed");
                    }
                    if !r.interfaces.is_empty() {
                        t.push_str(&format!(" dev {}", r.interfaces.join(",")));
                    }
                    t
                })
                .collect();
            format!("zebra: {prefix} {}", parts.join("; "))
        }
        Err(e) => format!("zebra: not asked ({e})"),
    }
}

/// The table entry of one prefix from bgpd's and zebra's answers.
fn rib_entry(prefix: &str, bgp: &BgpPrefix, zebra: &ZebraView) -> RibEntry {
    let kernel_in_zebra = match zebra {
        Ok(rs) => rs.iter().any(|r| r.protocol == "kernel"),
        Err(_) => true, // unknown: trust bgpd's locally sourced path
    };
    let zebra_selected = zebra
        .as_ref()
        .ok()
        .and_then(|rs| rs.iter().find(|r| r.selected).map(|r| r.protocol.clone()));
    let best = bgp.paths.iter().find(|p| p.best);
    let has_local = bgp.paths.iter().any(|p| p.local);
    let mut detail = Vec::new();
    if bgp.paths.is_empty() {
        detail.push(format!("bgpd: {prefix} not in the BGP table"));
    }
    for p in bgp.paths.iter().take(3) {
        let from = if p.local {
            "sourced locally".to_string()
        } else {
            format!(
                "from {}{}",
                p.peer.as_deref().unwrap_or("?"),
                p.hostname
                    .as_ref()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default()
            )
        };
        detail.push(format!(
            "bgpd: {prefix} {}path {}, origin {}, {from}",
            if p.best { "best " } else { "" },
            p.aspath,
            p.origin
        ));
    }
    detail.push(describe_zebra(prefix, zebra));
    let best_source = best.map(|p| {
        if p.local {
            zebra_selected
                .clone()
                .unwrap_or_else(|| "local".to_string())
        } else {
            format!("bgp {}", p.peer.as_deref().unwrap_or("?"))
        }
    });
    RibEntry {
        prefix: prefix.to_string(),
        present: !bgp.paths.is_empty(),
        from_kernel: has_local && kernel_in_zebra,
        best_from_kernel: best.is_some_and(|p| p.local)
            && match &zebra_selected {
                Some(p) => p == "kernel",
                None => kernel_in_zebra,
            },
        best_source,
        detail,
    }
}

/// Everything bgpd and zebra answered, parsed.
#[derive(Debug, Clone)]
pub(crate) struct Answers {
    pub version: Option<String>,
    pub summary: Summary,
    pub neighbors: Vec<Neighbor>,
    /// Per prefix, in the order asked.
    pub prefixes: Vec<BgpPrefix>,
    pub zebra: Vec<ZebraView>,
}

/// Turn the answers into facts.
pub(crate) fn build_facts(speaker: String, prefixes: &[String], a: &Answers) -> BgpFacts {
    let rib: Vec<RibEntry> = prefixes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let empty = BgpPrefix::default();
            let z: ZebraView = a
                .zebra
                .get(i)
                .cloned()
                .unwrap_or_else(|| Err("no answer".into()));
            rib_entry(p, a.prefixes.get(i).unwrap_or(&empty), &z)
        })
        .collect();

    // Peers in summary order, one per neighbor, with the AFIs it carries.
    let mut keys: Vec<&str> = Vec::new();
    for sp in &a.summary.peers {
        if !keys.contains(&sp.key.as_str()) {
            keys.push(&sp.key);
        }
    }
    let mut peers = Vec::new();
    for key in keys {
        let rows: Vec<&SummaryPeer> = a.summary.peers.iter().filter(|p| p.key == key).collect();
        let n = a.neighbors.iter().find(|n| n.key == key);
        let state = rows[0].state.clone();
        let established = state == "Established";
        let mut families: Vec<Family> = rows.iter().map(|r| r.family).collect();
        if established {
            if let Some(neg) = n.and_then(|n| n.negotiated.as_ref()) {
                families.retain(|f| neg.contains(f));
            }
        }
        let admin_down = rows
            .iter()
            .any(|r| r.peer_state.as_deref() == Some("Admin"))
            || n.is_some_and(|n| n.admin_down);
        let last_error = if established {
            None
        } else {
            n.and_then(|n| n.last_reset.clone())
        };
        let mut exported = Vec::new();
        for (i, prefix) in prefixes.iter().enumerate() {
            let fam = Family::of_prefix(prefix);
            if !families.contains(&fam) {
                continue;
            }
            let empty = BgpPrefix::default();
            let bp = a.prefixes.get(i).unwrap_or(&empty);
            let peer_state = rows
                .iter()
                .find(|r| r.family == fam)
                .and_then(|r| r.peer_state.clone());
            exported.push(export_entry(
                key,
                prefix,
                established,
                &state,
                bp,
                peer_state.as_deref(),
                n,
            ));
        }
        peers.push(Peer {
            name: key.to_string(),
            address: n
                .and_then(|n| n.address.clone())
                .or_else(|| Some(key.to_string())),
            hostname: rows
                .iter()
                .find_map(|r| r.hostname.clone())
                .or_else(|| n.and_then(|n| n.hostname.clone())),
            families,
            state,
            established,
            admin_down,
            last_error,
            exported,
        });
    }
    BgpFacts {
        speaker,
        kind: SpeakerKind::Frr,
        control: "vtysh".to_string(),
        local_as: a.summary.local_as,
        rib,
        peers,
    }
}

/// Is `prefix` advertised to peer `key`, and if not, why.
pub fn export_entry(
    key: &str,
    prefix: &str,
    established: bool,
    state: &str,
    bp: &BgpPrefix,
    peer_state: Option<&str>,
    n: Option<&Neighbor>,
) -> Export {
    let fam = Family::of_prefix(prefix);
    let advertised = established && bp.advertised_to.iter().any(|k| k == key);
    let mut detail = vec![if bp.paths.is_empty() {
        format!("bgpd: {prefix} not in the BGP table")
    } else if bp.advertised_to.is_empty() {
        format!("bgpd: {prefix} advertisedTo: none")
    } else {
        format!(
            "bgpd: {prefix} advertisedTo: {}",
            bp.advertised_to.join(", ")
        )
    }];
    let mut rejected_by_filter = None;
    let mut missing_policy = false;
    if !advertised && !bp.paths.is_empty() {
        if !established {
            detail.push(format!("{key}: state {state}"));
        } else {
            let policy_text = n.and_then(|n| {
                n.out_policy_missing
                    .iter()
                    .find(|(f, _)| *f == fam)
                    .map(|(_, t)| t.clone())
            });
            if peer_state == Some("Policy") || policy_text.is_some() {
                missing_policy = true;
                detail.push(format!(
                    "{key} {}: peerState {}{}",
                    afi_of(fam),
                    peer_state.unwrap_or("?"),
                    policy_text.map(|t| format!(", {t}")).unwrap_or_default()
                ));
            } else if let Some(fl) = n.and_then(|n| {
                n.out_filters
                    .iter()
                    .find(|(f, l)| *f == fam && !l.is_empty())
                    .map(|(_, l)| l.clone())
            }) {
                detail.push(format!("{key} {}: {}", afi_of(fam), fl.join(", ")));
                rejected_by_filter = Some(fl.join(" and "));
            }
        }
    }
    Export {
        prefix: prefix.to_string(),
        advertised,
        rejected_by_filter,
        missing_policy,
        detail,
    }
}

/// Commands for bgpd (first `show version`, summary, neighbors, then one per prefix) and
/// zebra (one per prefix).
pub fn commands(prefixes: &[String]) -> (Vec<String>, Vec<String>) {
    let mut bgpd = vec![
        "show version".to_string(),
        "show bgp summary json".to_string(),
        "show bgp neighbors json".to_string(),
    ];
    let mut zebra = Vec::new();
    for p in prefixes {
        let (afi, ip) = match Family::of_prefix(p) {
            Family::V4 => ("ipv4", "ip"),
            Family::V6 => ("ipv6", "ipv6"),
        };
        bgpd.push(format!("show bgp {afi} unicast {p} json"));
        zebra.push(format!("show {ip} route {p} json"));
    }
    (bgpd, zebra)
}

/// Parse raw replies (in `commands()` order) into answers.
pub(crate) fn answers(
    target: &str,
    bgpd_cmds: &[String],
    bgpd: &[VtyReply],
    zebra_cmds: &[String],
    zebra: Result<Vec<VtyReply>, String>,
    prefixes: &[String],
) -> Result<Answers, BgpError> {
    let need = |i: usize| -> Result<&VtyReply, BgpError> {
        let r = bgpd.get(i).ok_or_else(|| {
            BgpError::new(BgpErrorKind::Protocol, target, "missing reply", "retry")
        })?;
        if !r.ok() {
            return Err(BgpError::new(
                BgpErrorKind::Command,
                target,
                format!(
                    "`{}` failed (status {}): {}",
                    bgpd_cmds[i],
                    r.status,
                    r.text.trim()
                ),
                "is this FRR's bgpd vty socket? report this with the vtysh output",
            ));
        }
        Ok(r)
    };
    let bad = |cmd: &str, e: String| {
        BgpError::new(
            BgpErrorKind::Protocol,
            target,
            format!("`{cmd}`: {e}"),
            "unexpected output from bgpd; report this with the vtysh output",
        )
    };
    let version = bgpd
        .first()
        .filter(|r| r.ok())
        .and_then(|r| parse_version(&r.text));
    let summary = parse_summary(&need(1)?.text).map_err(|e| bad(&bgpd_cmds[1], e))?;
    let neighbors = parse_neighbors(&need(2)?.text).map_err(|e| bad(&bgpd_cmds[2], e))?;
    let mut pfx = Vec::new();
    for i in 0..prefixes.len() {
        let r = need(3 + i)?;
        pfx.push(parse_prefix(&r.text).map_err(|e| bad(&bgpd_cmds[3 + i], e))?);
    }
    let zebra: Vec<ZebraView> = match zebra {
        Ok(rs) => prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| match rs.get(i) {
                Some(r) if r.ok() => parse_zebra_route(&r.text, p),
                Some(r) => Err(format!(
                    "`{}` failed: {}",
                    zebra_cmds.get(i).map(String::as_str).unwrap_or("?"),
                    r.text.trim()
                )),
                None => Err("missing reply".into()),
            })
            .collect(),
        Err(e) => prefixes.iter().map(|_| Err(e.clone())).collect(),
    };
    Ok(Answers {
        version,
        summary,
        neighbors,
        prefixes: pfx,
        zebra,
    })
}

/// An open vty session.
struct Vty {
    stream: std::os::unix::net::UnixStream,
    buf: Vec<u8>,
}

impl Vty {
    fn open(path: &Path, deadline: &Deadline) -> io::Result<Vty> {
        Ok(Vty {
            stream: connect_unix(path, deadline)?,
            buf: Vec::new(),
        })
    }
    fn send(&mut self, cmds: &[String], deadline: &Deadline) -> io::Result<()> {
        let mut out = Vec::new();
        for c in cmds {
            out.extend_from_slice(c.as_bytes());
            out.push(0);
        }
        write_all_by(&mut self.stream, &out, deadline)
    }
    fn recv(&mut self, n: usize, deadline: &Deadline) -> io::Result<Vec<VtyReply>> {
        loop {
            let (replies, _) = parse_vty(&self.buf);
            if replies.len() >= n {
                return Ok(replies);
            }
            read_some_by(&mut self.stream, &mut self.buf, deadline)?;
        }
    }
}

/// Collect facts from FRR: bgpd and zebra vty sockets, one round trip each (both in
/// flight at once); `vtysh` when the bgpd socket cannot be opened.
pub fn collect(
    bgpd_path: &Path,
    zebra_path: &Path,
    pathspace: Option<&str>,
    prefixes: &[String],
    deadline: Deadline,
) -> Result<BgpFacts, BgpError> {
    let target = format!("FRR bgpd vty {}", bgpd_path.display());
    let io_err = |e: io::Error| BgpError::from_io(&target, &e, deadline.total, HINT_MISSING);
    let (bgpd_cmds, zebra_cmds) = commands(prefixes);

    let mut bgpd = match Vty::open(bgpd_path, &deadline) {
        Ok(v) => v,
        Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(io_err(e)),
        Err(e) => {
            let first = io_err(e);
            let dir = bgpd_path.parent().unwrap_or(Path::new("/run/frr"));
            return match via_vtysh(dir, pathspace, prefixes, &bgpd_cmds, &zebra_cmds, &deadline) {
                Ok(a) => {
                    let speaker = format!(
                        "{} via vtysh ({} unusable: {})",
                        a.version.as_deref().unwrap_or("FRR"),
                        bgpd_path.display(),
                        first.detail
                    );
                    Ok(build_facts(speaker, prefixes, &a))
                }
                Err(e2) => Err(BgpError {
                    detail: format!("{}; vtysh fallback: {}", first.detail, e2),
                    ..first
                }),
            };
        }
    };
    bgpd.send(&bgpd_cmds, &deadline).map_err(io_err)?;
    // zebra is optional (it only confirms the kernel origin): its failures are recorded.
    let mut zebra = Vty::open(zebra_path, &deadline)
        .and_then(|mut z| z.send(&zebra_cmds, &deadline).map(|_| z))
        .map_err(|e| format!("{}: {e}", zebra_path.display()));
    let b = bgpd.recv(bgpd_cmds.len(), &deadline).map_err(io_err)?;
    let z = match &mut zebra {
        Ok(z) => z
            .recv(zebra_cmds.len(), &deadline)
            .map_err(|e| format!("{}: {e}", zebra_path.display())),
        Err(e) => Err(e.clone()),
    };
    let a = answers(&target, &bgpd_cmds, &b, &zebra_cmds, z, prefixes)?;
    let speaker = format!(
        "{} via {}",
        a.version.as_deref().unwrap_or("FRR"),
        bgpd_path.display()
    );
    Ok(build_facts(speaker, prefixes, &a))
}

/// Fallback: one `vtysh` run with every JSON command (`-c` each); its output is the JSON
/// documents back to back. The child is killed (by its pid) when it overruns the deadline.
fn via_vtysh(
    dir: &Path,
    pathspace: Option<&str>,
    prefixes: &[String],
    bgpd_cmds: &[String],
    zebra_cmds: &[String],
    deadline: &Deadline,
) -> Result<Answers, Error> {
    let vtysh = crate::collect::child::find_bin("vtysh")
        .map(|p| p.to_string_lossy().into_owned())
        .ok_or(Error::unknown(
            "vtysh not found in PATH or /usr/bin: install frr, or let vmpath reach bgpd.vty",
        ))?;
    let mut argv = vec![vtysh];
    match pathspace {
        Some(ns) => argv.extend(["-N".to_string(), ns.to_string()]),
        None => argv.extend([
            "--vty_socket".to_string(),
            dir.to_string_lossy().into_owned(),
        ]),
    };
    // skip `show version` (not JSON); vtysh stops at the first failing command, which the
    // document count below detects.
    let json_cmds: Vec<&String> = bgpd_cmds[1..].iter().chain(zebra_cmds).collect();
    for c in &json_cmds {
        argv.push("-c".to_string());
        argv.push(c.to_string());
    }
    let out = run_bounded(&argv, deadline)?;
    let docs: Vec<String> = serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .map(|v| v.map(|v| v.to_string()))
        .collect::<Result<_, _>>()
        .map_err(|e| {
            Error::unknown(format!(
                "vtysh output is not JSON ({e}): {}",
                first_line(&out)
            ))
        })?;
    if docs.len() != json_cmds.len() {
        return Err(Error::unknown(format!(
            "vtysh answered {} of {} commands: {}",
            docs.len(),
            json_cmds.len(),
            first_line(&out)
        )));
    }
    let np = prefixes.len();
    let mut bgpd: Vec<VtyReply> = vec![VtyReply {
        text: String::new(),
        status: 2,
    }];
    bgpd.extend(docs[..2 + np].iter().map(|t| VtyReply {
        text: t.clone(),
        status: 0,
    }));
    let zebra = docs[2 + np..]
        .iter()
        .map(|t| VtyReply {
            text: t.clone(),
            status: 0,
        })
        .collect();
    answers("vtysh", bgpd_cmds, &bgpd, zebra_cmds, Ok(zebra), prefixes)
        .map_err(|e| Error::unknown(e.to_string()))
}

fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// Run vtysh within the deadline (killed by its pid when it overruns). vtysh exits non-zero
/// when one of its commands fails but still prints the answers before it: output counts.
fn run_bounded(argv: &[String], deadline: &Deadline) -> Result<String, Error> {
    let left = deadline.remaining().map_err(|_| {
        Error::unknown(format!(
            "vtysh: no time left within {} ms",
            deadline.total.as_millis()
        ))
    })?;
    let ran =
        crate::collect::child::run(argv, &[], left).map_err(|e| Error::unknown(e.to_string()))?;
    let out = String::from_utf8_lossy(&ran.stdout).into_owned();
    if out.trim().is_empty() {
        let err = String::from_utf8_lossy(&ran.stderr);
        return Err(Error::unknown(format!(
            "vtysh {}: {}",
            ran.status,
            first_line(&err)
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fx {
        ($f:literal) => {
            include_str!(concat!(
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bgp/"),
                $f
            ))
        };
    }

    /// The fixture is one reply exactly as read from the socket, terminator included.
    fn one(raw: &str) -> VtyReply {
        let (mut r, used) = parse_vty(raw.as_bytes());
        assert_eq!(used, raw.len());
        assert_eq!(r.len(), 1);
        r.remove(0)
    }

    fn pfx(raw: &str) -> BgpPrefix {
        parse_prefix(&one(raw).text).expect("prefix json")
    }

    #[test]
    fn vty_framing_and_status_codes() {
        let r = one(fx!("frr-summary.vty"));
        assert_eq!(r.status, 0);
        assert!(r.text.starts_with('{'));
        let r = one(fx!("frr-unknown-command.vty"));
        assert_eq!(r.status, 2);
        assert!(!r.ok());
        assert_eq!(r.text, "% [BGP] Unknown command: show bgp bogus\n");
        let r = one(fx!("frr-zebra-route-missing.vty"));
        assert_eq!((r.text.as_str(), r.status), ("{}\n", 1));
        assert!(r.ok());
        let r = one(fx!("frr-neighbor-missing.vty"));
        assert_eq!(r.status, 0);
        // pipelined replies back to back, the last one incomplete
        let mut raw = Vec::new();
        raw.extend_from_slice(fx!("frr-zebra-route-missing.vty").as_bytes());
        raw.extend_from_slice(b"\0\0\0\0");
        raw.extend_from_slice(fx!("frr-prefix-v4-missing.vty").as_bytes());
        raw.extend_from_slice(b"{\n  \"pre");
        let (rs, used) = parse_vty(&raw);
        assert_eq!(rs.len(), 3);
        assert_eq!(rs[1].text, "");
        assert_eq!(rs[2].text, "{\n}\n");
        assert_eq!(&raw[used..], b"{\n  \"pre");
        assert_eq!(
            parse_version(&one(fx!("frr-version.vty")).text).as_deref(),
            Some("FRRouting 8.4.4")
        );
    }

    #[test]
    fn summary_all_afis_and_unnumbered_keys() {
        let s = parse_summary(&one(fx!("frr-unnumbered-summary.vty")).text).expect("json");
        assert_eq!(s.local_as, Some(65002));
        let rows: Vec<(&str, Family, &str)> = s
            .peers
            .iter()
            .map(|p| (p.key.as_str(), p.family, p.state.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("192.0.2.1", Family::V4, "Established"),
                ("192.0.2.9", Family::V4, "Connect"),
                ("2001:db8:ab::1", Family::V4, "Established"),
                ("vc", Family::V4, "Established"),
                ("2001:db8:ab::1", Family::V6, "Established"),
                ("vc", Family::V6, "Established"),
            ]
        );
        assert_eq!(s.peers[0].pfx_snt, Some(2));
        assert_eq!(s.peers[0].peer_state.as_deref(), Some("OK"));

        let s = parse_summary(&one(fx!("frr-shutdown-summary.vty")).text).expect("json");
        let p = s.peers.iter().find(|p| p.key == "192.0.2.1").expect("peer");
        assert_eq!(p.state, "Idle (Admin)");
        assert_eq!(p.peer_state.as_deref(), Some("Admin"));

        let s = parse_summary(&one(fx!("frr-policy-summary.vty")).text).expect("json");
        let p = s
            .peers
            .iter()
            .find(|p| p.key == "2001:db8:ab::1" && p.family == Family::V6)
            .expect("peer");
        assert_eq!(p.peer_state.as_deref(), Some("Policy"));
    }

    #[test]
    fn no_bgp_instance() {
        // bgpd without `router bgp` (seen live: status 1, `{}`; the prefix query warns)
        let (r, _) = parse_vty(b"{}\n\0\0\0\x01");
        assert!(r[0].ok());
        assert_eq!(parse_summary(&r[0].text).expect("json"), Summary::default());
        assert!(parse_neighbors(&r[0].text).expect("json").is_empty());
        let w = "{\n  \"warning\":\"Default BGP instance not found\"\n}\n";
        assert_eq!(parse_prefix(w).expect("json"), BgpPrefix::default());
    }

    #[test]
    fn neighbors_negotiation_filters_and_reset_reasons() {
        let ns = parse_neighbors(&one(fx!("frr-unnumbered-neighbors-all.vty")).text).expect("json");
        let vc = ns.iter().find(|n| n.key == "vc").expect("vc");
        assert_eq!(vc.address.as_deref(), Some("fe80::ac16:afff:fe3e:ff93"));
        assert_eq!(
            vc.negotiated.as_deref(),
            Some(&[Family::V4, Family::V6][..])
        );
        let v6 = ns.iter().find(|n| n.key == "2001:db8:ab::1").expect("v6");
        assert_eq!(v6.negotiated.as_deref(), Some(&[Family::V6][..]));
        let v4 = ns.iter().find(|n| n.key == "192.0.2.1").expect("v4");
        assert_eq!(
            v4.out_filters,
            [(Family::V4, vec!["route-map HV_OUT out".to_string()])]
        );

        let ns = parse_neighbors(&one(fx!("frr-shutdown-neighbor.vty")).text).expect("json");
        assert_eq!(ns.len(), 1);
        assert!(ns[0].admin_down);
        assert_eq!(ns[0].bgp_state.as_deref(), Some("Idle"));
        assert_eq!(
            ns[0].last_reset.as_deref(),
            Some("BGP Notification received (Cease/Administrative Shutdown)")
        );

        let ns = parse_neighbors(&one(fx!("frr-policy-neighbors-all.vty")).text).expect("json");
        let v6 = ns.iter().find(|n| n.key == "2001:db8:ab::1").expect("v6");
        assert!(v6
            .out_policy_missing
            .iter()
            .any(|(f, t)| *f == Family::V6 && t.contains("missing policy")));

        assert!(parse_neighbors(&one(fx!("frr-neighbor-missing.vty")).text)
            .expect("json")
            .is_empty());
        let ns = parse_neighbors(&one(fx!("frr-neighbor-v4.vty")).text).expect("json");
        assert_eq!(ns[0].key, "192.0.2.1");
        let ns = parse_neighbors(&one(fx!("frr-neighbors-all.vty")).text).expect("json");
        assert_eq!(ns.len(), 3);
        let ns = parse_neighbors(&one(fx!("frr-filtered-neighbors-all.vty")).text).expect("json");
        assert_eq!(ns.len(), 3);
    }

    #[test]
    fn prefix_paths_local_bgp_missing_and_advertised_to() {
        let p = pfx(fx!("frr-prefix-v4-kernel.vty"));
        assert_eq!(p.advertised_to, ["192.0.2.1"]);
        assert_eq!(p.paths.len(), 1);
        assert!(p.paths[0].best && p.paths[0].local);
        assert_eq!(p.paths[0].aspath, "Local");
        assert_eq!(p.paths[0].origin, "incomplete");
        let p = pfx(fx!("frr-prefix-v6-kernel.vty"));
        assert!(p.paths[0].local);
        assert_eq!(p.advertised_to, ["2001:db8:ab::1"]);
        let p = pfx(fx!("frr-prefix-v4-missing.vty"));
        assert!(p.paths.is_empty() && p.advertised_to.is_empty());
        let p = pfx(fx!("frr-prefix-v4-bgp-only.vty"));
        assert!(!p.paths[0].local);
        assert_eq!(p.paths[0].peer.as_deref(), Some("192.0.2.1"));
        assert_eq!(p.paths[0].aspath, "65001");
        let p = pfx(fx!("frr-dup-prefix-v4.vty"));
        let v: Vec<(bool, bool)> = p.paths.iter().map(|p| (p.best, p.local)).collect();
        assert_eq!(v, [(true, true), (false, false)]);
        let p = pfx(fx!("frr-unnumbered-prefix-v4.vty"));
        // sorted: FRR's own order is not kept
        assert_eq!(p.advertised_to, ["192.0.2.1", "vc"]);
        assert!(pfx(fx!("frr-filtered-prefix-v4.vty"))
            .advertised_to
            .is_empty());
        assert!(pfx(fx!("frr-policy-prefix-v6.vty"))
            .advertised_to
            .is_empty());
        assert!(pfx(fx!("frr-shutdown-prefix-v4.vty"))
            .advertised_to
            .is_empty());
        assert!(pfx(fx!("frr-noredist-prefix-v4.vty")).paths.is_empty());
    }

    /// `advertisedTo` of the prefix query is the adj-RIB-out: it agrees with
    /// `advertised-routes` captured in the same state, with and without the deny route-map.
    #[test]
    fn advertised_to_agrees_with_advertised_routes() {
        for (prefix_raw, adv_raw, expect) in [
            (
                fx!("frr-prefix-v4-kernel.vty"),
                fx!("frr-advertised-v4.vty"),
                true,
            ),
            (
                fx!("frr-filtered-prefix-v4.vty"),
                fx!("frr-filtered-advertised-v4.vty"),
                false,
            ),
        ] {
            let p = pfx(prefix_raw);
            let adv = json(&one(adv_raw).text).expect("json");
            let in_adj_out = adv["advertisedRoutes"].get("203.0.113.22/32").is_some();
            assert_eq!(in_adj_out, expect);
            assert_eq!(p.advertised_to.iter().any(|k| k == "192.0.2.1"), expect);
        }
    }

    #[test]
    fn zebra_routes() {
        let z = parse_zebra_route(
            &one(fx!("frr-zebra-route-v4-kernel.vty")).text,
            "203.0.113.22/32",
        )
        .expect("json");
        assert_eq!(
            z,
            [ZebraRoute {
                protocol: "kernel".into(),
                selected: true,
                installed: true,
                interfaces: vec!["tap7e2d9c1f-0a".into()],
            }]
        );
        let z = parse_zebra_route(
            &one(fx!("frr-zebra-route-v6-kernel.vty")).text,
            "2001:db8:200::22/128",
        )
        .expect("json");
        assert_eq!(z[0].protocol, "kernel");
        let z = parse_zebra_route(
            &one(fx!("frr-zebra-route-v4-bgp.vty")).text,
            "198.51.100.11/32",
        )
        .expect("json");
        assert_eq!(z[0].protocol, "bgp");
        let z = parse_zebra_route(
            &one(fx!("frr-zebra-route-missing.vty")).text,
            "203.0.113.99/32",
        )
        .expect("json");
        assert!(z.is_empty());
    }

    #[test]
    fn rib_entries() {
        let zk = |raw: &str, p: &str| -> ZebraView { parse_zebra_route(&one(raw).text, p) };
        let e = rib_entry(
            "203.0.113.22/32",
            &pfx(fx!("frr-prefix-v4-kernel.vty")),
            &zk(fx!("frr-zebra-route-v4-kernel.vty"), "203.0.113.22/32"),
        );
        assert!(e.present && e.from_kernel && e.best_from_kernel);
        assert_eq!(e.best_source.as_deref(), Some("kernel"));
        assert_eq!(
            e.detail,
            [
                "bgpd: 203.0.113.22/32 best path Local, origin incomplete, sourced locally",
                "zebra: 203.0.113.22/32 kernel selected installed dev tap7e2d9c1f-0a",
            ]
        );
        // no `redistribute kernel`: zebra has it, bgpd does not
        let e = rib_entry(
            "203.0.113.22/32",
            &pfx(fx!("frr-noredist-prefix-v4.vty")),
            &zk(fx!("frr-noredist-zebra-route-v4.vty"), "203.0.113.22/32"),
        );
        assert!(!e.present && !e.from_kernel);
        assert_eq!(e.detail[0], "bgpd: 203.0.113.22/32 not in the BGP table");
        assert!(e.detail[1].starts_with("zebra: 203.0.113.22/32 kernel selected"));
        // learned from a peer only
        let e = rib_entry(
            "198.51.100.11/32",
            &pfx(fx!("frr-prefix-v4-bgp-only.vty")),
            &zk(fx!("frr-zebra-route-v4-bgp.vty"), "198.51.100.11/32"),
        );
        assert!(e.present && !e.from_kernel && !e.best_from_kernel);
        assert_eq!(e.best_source.as_deref(), Some("bgp 192.0.2.1"));
        // kernel route and a BGP path: the local one wins on weight
        let e = rib_entry(
            "198.51.100.11/32",
            &pfx(fx!("frr-dup-prefix-v4.vty")),
            &zk(fx!("frr-dup-zebra-route-v4.vty"), "198.51.100.11/32"),
        );
        assert!(e.present && e.from_kernel && e.best_from_kernel);
        assert_eq!(e.detail.len(), 3);
        // zebra unreachable: trust bgpd
        let e = rib_entry(
            "203.0.113.22/32",
            &pfx(fx!("frr-prefix-v4-kernel.vty")),
            &Err("no such socket".into()),
        );
        assert!(e.best_from_kernel);
        assert_eq!(e.best_source.as_deref(), Some("local"));
    }

    fn answers_of(summary: &str, neighbors: &str, prefixes: &[&str], zebra: &[&str]) -> Answers {
        Answers {
            version: Some("FRRouting 8.4.4".into()),
            summary: parse_summary(&one(summary).text).expect("summary"),
            neighbors: parse_neighbors(&one(neighbors).text).expect("neighbors"),
            prefixes: prefixes.iter().map(|r| pfx(r)).collect(),
            zebra: zebra
                .iter()
                .map(|r| parse_zebra_route(&one(r).text, "203.0.113.22/32"))
                .collect(),
        }
    }

    #[test]
    fn facts_baseline_with_unnumbered_peer() {
        let pfxs = vec![
            "203.0.113.22/32".to_string(),
            "2001:db8:200::22/128".to_string(),
        ];
        let a = answers_of(
            fx!("frr-unnumbered-summary.vty"),
            fx!("frr-unnumbered-neighbors-all.vty"),
            &[
                fx!("frr-unnumbered-prefix-v4.vty"),
                fx!("frr-unnumbered-prefix-v6.vty"),
            ],
            &[
                fx!("frr-zebra-route-v4-kernel.vty"),
                fx!("frr-zebra-route-v6-kernel.vty"),
            ],
        );
        let f = build_facts("FRRouting 8.4.4 via x".into(), &pfxs, &a);
        assert_eq!(f.local_as, Some(65002));
        let names: Vec<&str> = f.peers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["192.0.2.1", "192.0.2.9", "2001:db8:ab::1", "vc"]);
        let vc = &f.peers[3];
        assert_eq!(vc.families, [Family::V4, Family::V6]);
        assert!(vc.established);
        assert!(vc.exported.iter().all(|e| e.advertised));
        assert_eq!(vc.exported.len(), 2);
        // the IPv6 session did not negotiate IPv4: no IPv4 export row
        let v6 = &f.peers[2];
        assert_eq!(v6.families, [Family::V6]);
        assert_eq!(v6.exported.len(), 1);
        assert!(v6.exported[0].advertised);
        let down = &f.peers[1];
        assert!(!down.established);
        assert_eq!(down.state, "Connect");
        assert_eq!(down.last_error.as_deref(), Some("Waiting for peer OPEN"));
        assert!(!down.exported[0].advertised);
    }

    #[test]
    fn facts_filtered_policy_and_shutdown() {
        let pfxs = vec!["203.0.113.22/32".to_string()];
        let a = answers_of(
            fx!("frr-filtered-summary.vty"),
            fx!("frr-filtered-neighbors-all.vty"),
            &[fx!("frr-filtered-prefix-v4.vty")],
            &[fx!("frr-zebra-route-v4-kernel.vty")],
        );
        let f = build_facts("x".into(), &pfxs, &a);
        let p = f
            .peers
            .iter()
            .find(|p| p.name == "192.0.2.1")
            .expect("peer");
        assert!(p.established);
        let e = &p.exported[0];
        assert!(!e.advertised && !e.missing_policy);
        assert_eq!(
            e.rejected_by_filter.as_deref(),
            Some("route-map HV_OUT out")
        );
        assert_eq!(
            e.detail,
            [
                "bgpd: 203.0.113.22/32 advertisedTo: none",
                "192.0.2.1 ipv4Unicast: route-map HV_OUT out"
            ]
        );

        let pfxs = vec!["2001:db8:200::22/128".to_string()];
        let a = answers_of(
            fx!("frr-policy-summary.vty"),
            fx!("frr-policy-neighbors-all.vty"),
            &[fx!("frr-policy-prefix-v6.vty")],
            &[fx!("frr-zebra-route-v6-kernel.vty")],
        );
        let f = build_facts("x".into(), &pfxs, &a);
        let p = f
            .peers
            .iter()
            .find(|p| p.name == "2001:db8:ab::1")
            .expect("peer");
        let e = &p.exported[0];
        assert!(!e.advertised && e.missing_policy);
        assert_eq!(
            e.detail[1],
            "2001:db8:ab::1 ipv6Unicast: peerState Policy, Outbound updates discarded due to missing policy"
        );

        let pfxs = vec!["203.0.113.22/32".to_string()];
        let a = answers_of(
            fx!("frr-shutdown-summary.vty"),
            fx!("frr-shutdown-neighbor.vty"),
            &[fx!("frr-shutdown-prefix-v4.vty")],
            &[fx!("frr-zebra-route-v4-kernel.vty")],
        );
        let f = build_facts("x".into(), &pfxs, &a);
        let p = &f.peers[0];
        assert_eq!(p.name, "192.0.2.1");
        assert_eq!(p.state, "Idle (Admin)");
        assert!(p.admin_down && !p.established);
        assert_eq!(
            p.last_error.as_deref(),
            Some("BGP Notification received (Cease/Administrative Shutdown)")
        );
        assert!(!p.exported[0].advertised);
        assert_eq!(p.exported[0].detail[1], "192.0.2.1: state Idle (Admin)");
    }

    #[test]
    fn command_list_and_failed_summary_is_an_error() {
        let (b, z) = commands(&["198.51.100.11/32".into(), "2001:db8::1/128".into()]);
        assert_eq!(b[3], "show bgp ipv4 unicast 198.51.100.11/32 json");
        assert_eq!(b[4], "show bgp ipv6 unicast 2001:db8::1/128 json");
        assert_eq!(
            z,
            [
                "show ip route 198.51.100.11/32 json",
                "show ipv6 route 2001:db8::1/128 json"
            ]
        );
        let bad = one(fx!("frr-unknown-command.vty"));
        let replies = vec![bad.clone(), bad.clone(), bad.clone()];
        let e = answers("t", &b, &replies, &z, Err("x".into()), &[]).expect_err("fails");
        assert_eq!(e.kind, BgpErrorKind::Command);
        assert!(e.to_string().contains("Unknown command"), "{e}");
    }
}
