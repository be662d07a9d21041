//! BIRD 2 control-socket client (no `birdc` fork) and pure parsers of its replies.
//!
//! Protocol: on connect BIRD sends `0001 BIRD 2.0.12 ready.`; every command is one line; a
//! reply is lines `NNNN-text` (more follows), `NNNN text` (last line) and lines starting with
//! a space that continue the previous code. Commands may be pipelined: BIRD answers them in
//! order, so a whole collection is two writes and two reads (the export queries depend on
//! which BGP protocols exist). The first command is `restrict` (read-only session).

use std::io;
use std::path::Path;

use super::facts::{BgpError, BgpErrorKind, BgpFacts, Export, Family, Peer, RibEntry, SpeakerKind};
use crate::collect::deadline::{connect_unix, read_some_by, write_all_by, Deadline};

const HINT_MISSING: &str = "is bird running? pass --bird-socket PATH (bird's -s argument)";

/// One line of a reply: its code (continuations carry the previous code) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub code: u16,
    pub text: String,
}

/// One complete reply to one command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    pub lines: Vec<Line>,
}

impl Reply {
    /// Code of the last line (0000 OK, 8001 not found, 9001 syntax error, ...).
    pub fn code(&self) -> u16 {
        self.lines.last().map(|l| l.code).unwrap_or(0)
    }
    /// Text of the last line.
    pub fn final_text(&self) -> &str {
        self.lines.last().map(|l| l.text.trim()).unwrap_or("")
    }
    /// Runtime (8xxx) or syntax (9xxx) error.
    pub fn is_error(&self) -> bool {
        self.code() >= 8000
    }
}

/// Classify a raw line: `(code, last, text)` for a coded line, `None` for a continuation.
fn coded(line: &str) -> Option<(u16, bool, &str)> {
    let b = line.as_bytes();
    if b.len() < 4 || !b[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let last = match b.get(4) {
        None | Some(b' ') => true,
        Some(b'-') => false,
        _ => return None,
    };
    let code = line[..4].parse().ok()?;
    Some((code, last, line.get(5..).unwrap_or("")))
}

/// Split control-socket output into complete replies. Returns the replies and how many
/// bytes they used; an incomplete reply at the end is left for the next read.
pub fn parse_replies(raw: &str) -> (Vec<Reply>, usize) {
    let mut out = Vec::new();
    let mut cur = Reply::default();
    let mut used = 0;
    let mut pos = 0;
    while let Some(nl) = raw[pos..].find('\n') {
        let line = &raw[pos..pos + nl];
        pos += nl + 1;
        match coded(line) {
            Some((code, last, text)) => {
                cur.lines.push(Line {
                    code,
                    text: text.to_string(),
                });
                if last {
                    out.push(std::mem::take(&mut cur));
                    used = pos;
                }
            }
            None => {
                let code = cur.lines.last().map(|l| l.code).unwrap_or(0);
                let text = line.strip_prefix(' ').unwrap_or(line);
                cur.lines.push(Line {
                    code,
                    text: text.to_string(),
                });
            }
        }
    }
    (out, used)
}

/// Count complete replies (lines `NNNN ` ending one) in raw bytes.
fn count_replies(raw: &[u8]) -> usize {
    raw.split(|b| *b == b'\n')
        .rev()
        .skip(1) // the part after the last newline is incomplete
        .filter(|l| {
            std::str::from_utf8(l)
                .ok()
                .and_then(coded)
                .is_some_and(|c| c.1)
        })
        .count()
}

/// A protocol from `show protocols all`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Protocol {
    pub name: String,
    /// `BGP`, `Kernel`, `Device`, `Static`...
    pub proto: String,
    /// `up`, `start`, `down`.
    pub state: String,
    /// The Info column: `Established`, `Active        Socket: No route to host`.
    pub info: String,
    /// `BGP state:` value.
    pub bgp_state: Option<String>,
    pub neighbor: Option<String>,
    pub last_error: Option<String>,
    pub channels: Vec<Channel>,
    /// The protocol's row, verbatim.
    pub row: String,
}

/// A channel (`Channel ipv4`) of a protocol.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Channel {
    /// `ipv4`, `ipv6`.
    pub name: String,
    /// `UP`, `DOWN`.
    pub state: String,
    /// `Output filter:` (BIRD 2.0) / `Export filter:` value: a filter name, `ACCEPT`, `REJECT`.
    pub export_filter: Option<String>,
    /// The filter line verbatim, for evidence.
    pub export_filter_line: Option<String>,
    /// `2 imported, 2 exported, 2 preferred`.
    pub routes: Option<String>,
}

impl Channel {
    pub fn family(&self) -> Option<Family> {
        match self.name.as_str() {
            "ipv4" => Some(Family::V4),
            "ipv6" => Some(Family::V6),
            _ => None,
        }
    }
}

/// Parse a `show protocols all` reply (1002 rows, 1006 details).
pub fn parse_protocols(reply: &Reply) -> Vec<Protocol> {
    let mut out: Vec<Protocol> = Vec::new();
    for l in &reply.lines {
        match l.code {
            1002 => {
                let t: Vec<&str> = l.text.split_whitespace().collect();
                if t.len() < 4 {
                    continue;
                }
                // name proto table state since [info...]; since is one token by default.
                let info = t.get(5..).map(|r| r.join(" ")).unwrap_or_default();
                out.push(Protocol {
                    name: t[0].to_string(),
                    proto: t[1].to_string(),
                    state: t[3].to_string(),
                    info,
                    row: l.text.trim().to_string(),
                    ..Default::default()
                });
            }
            1006 => {
                let Some(p) = out.last_mut() else { continue };
                let text = l.text.trim();
                if let Some(ch) = text.strip_prefix("Channel ") {
                    p.channels.push(Channel {
                        name: ch.trim().to_string(),
                        ..Default::default()
                    });
                    continue;
                }
                let Some((k, v)) = text.split_once(':') else {
                    continue;
                };
                let v = v.trim().to_string();
                if let Some(c) = p.channels.last_mut() {
                    match k {
                        "State" => c.state = v,
                        "Output filter" | "Export filter" => {
                            c.export_filter = Some(v);
                            c.export_filter_line = Some(text.to_string());
                        }
                        "Routes" => c.routes = Some(v),
                        _ => {}
                    }
                } else {
                    match k {
                        "BGP state" => p.bgp_state = Some(v),
                        "Neighbor address" => p.neighbor = Some(v),
                        "Last error" => p.last_error = Some(v),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// A route from `show route ... [all]` (code 1007).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub net: String,
    /// Protocol that supplied it: `kernel4`, `tor1`.
    pub proto: String,
    /// Marked `*`: the best route, the one exported.
    pub primary: bool,
    /// The route line and its next-hop lines, verbatim (trimmed).
    pub lines: Vec<String>,
}

/// Parse the routes of a `show route` reply. An 8001 (not found) or an empty reply gives none.
pub fn parse_routes(reply: &Reply) -> Vec<Route> {
    let mut out: Vec<Route> = Vec::new();
    let mut net = String::new();
    for l in reply.lines.iter().filter(|l| l.code == 1007) {
        let text = l.text.as_str();
        if text.starts_with("Table ") && text.trim_end().ends_with(':') {
            continue;
        }
        if let Some(open) = text.find('[') {
            if !text.starts_with([' ', '\t']) {
                if let Some(n) = text.split_whitespace().next() {
                    net = n.to_string();
                }
            }
            let inside = &text[open + 1..];
            let proto = inside
                .split([' ', ']'])
                .next()
                .unwrap_or_default()
                .to_string();
            let primary = inside
                .split_once(']')
                .map(|(_, rest)| rest.trim_start().starts_with('*'))
                .unwrap_or(false);
            out.push(Route {
                net: net.clone(),
                proto,
                primary,
                lines: vec![text.trim().to_string()],
            });
        } else if let Some(r) = out.last_mut() {
            let t = text.trim();
            if !t.is_empty() {
                r.lines.push(t.to_string());
            }
        }
    }
    out
}

/// Version from the welcome line `BIRD 2.0.12 ready.`
pub fn parse_welcome(reply: &Reply) -> Option<String> {
    let t = reply.lines.iter().find(|l| l.code == 1)?.text.trim();
    Some(t.strip_suffix(" ready.").unwrap_or(t).to_string())
}

/// The table entry of one prefix from its `show route PFX all` reply.
pub fn rib_entry(prefix: &str, reply: &Reply, kernel_protos: &[&str]) -> RibEntry {
    let routes: Vec<Route> = parse_routes(reply)
        .into_iter()
        .filter(|r| r.net == prefix)
        .collect();
    let is_kernel = |p: &str| kernel_protos.contains(&p);
    let best = routes.iter().find(|r| r.primary);
    let mut detail: Vec<String> = routes
        .iter()
        .flat_map(|r| r.lines.clone())
        .take(6)
        .collect();
    if routes.is_empty() {
        detail.push(format!(
            "show route {prefix}: {}",
            if reply.code() == 8001 || reply.code() == 0 {
                "Network not found"
            } else {
                reply.final_text()
            }
        ));
    }
    RibEntry {
        prefix: prefix.to_string(),
        present: !routes.is_empty(),
        from_kernel: routes.iter().any(|r| is_kernel(&r.proto)),
        best_from_kernel: best.is_some_and(|r| is_kernel(&r.proto)),
        best_source: best.map(|r| r.proto.clone()),
        detail,
    }
}

/// Export verdict for one (protocol, prefix) from the `export` and `noexport` replies.
pub fn export_entry(
    proto: &str,
    prefix: &str,
    channel: Option<&Channel>,
    export: &Reply,
    noexport: &Reply,
) -> Export {
    let exported = parse_routes(export);
    let rejected = parse_routes(noexport);
    let mut detail = Vec::new();
    let show = |what: &str, routes: &[Route], r: &Reply| match routes.first() {
        Some(rt) => format!("show route {prefix} {what} {proto}: {}", rt.lines[0]),
        None if r.is_error() => format!("show route {prefix} {what} {proto}: {}", r.final_text()),
        None => format!("show route {prefix} {what} {proto}: nothing"),
    };
    detail.push(show("export", &exported, export));
    let mut rejected_by_filter = None;
    if exported.is_empty() && !rejected.is_empty() {
        detail.push(show("noexport", &rejected, noexport));
        if let Some(l) = channel.and_then(|c| c.export_filter_line.clone()) {
            detail.push(l);
        }
        rejected_by_filter = Some(match channel.and_then(|c| c.export_filter.as_deref()) {
            Some("REJECT") => "`export none`".to_string(),
            Some(f) => format!("export filter {f}"),
            None => "the export filter".to_string(),
        });
    }
    Export {
        prefix: prefix.to_string(),
        advertised: !exported.is_empty(),
        rejected_by_filter,
        missing_policy: false,
        detail,
    }
}

/// A connection to the control socket.
struct Conn {
    stream: std::os::unix::net::UnixStream,
    buf: Vec<u8>,
    deadline: Deadline,
}

impl Conn {
    /// Send commands (one per line) and read their replies; `extra` replies are expected
    /// before them (the welcome line on the first batch).
    fn batch(&mut self, cmds: &[String], extra: usize) -> io::Result<Vec<Reply>> {
        let mut out = String::new();
        for c in cmds {
            out.push_str(c);
            out.push('\n');
        }
        write_all_by(&mut self.stream, out.as_bytes(), &self.deadline)?;
        let want = cmds.len() + extra;
        while count_replies(&self.buf) < want {
            read_some_by(&mut self.stream, &mut self.buf, &self.deadline)?;
        }
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        let (replies, used) = parse_replies(&text);
        self.buf.drain(..used.min(self.buf.len()));
        Ok(replies)
    }
}

/// Collect facts from a BIRD control socket.
pub fn collect(path: &Path, prefixes: &[String], deadline: Deadline) -> Result<BgpFacts, BgpError> {
    let target = format!("BIRD control socket {}", path.display());
    let io_err = |e: io::Error| BgpError::from_io(&target, &e, deadline.total, HINT_MISSING);
    let stream = connect_unix(path, &deadline).map_err(io_err)?;
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
        deadline,
    };

    // Round trip 1: welcome, restrict, protocols, one route query per prefix.
    let mut cmds = vec!["restrict".to_string(), "show protocols all".to_string()];
    cmds.extend(prefixes.iter().map(|p| format!("show route {p} all")));
    let replies = conn.batch(&cmds, 1).map_err(io_err)?;
    if replies.len() != cmds.len() + 1 {
        return Err(BgpError::new(
            BgpErrorKind::Protocol,
            &target,
            format!("expected {} replies, got {}", cmds.len() + 1, replies.len()),
            "is this a BIRD 2 control socket?",
        ));
    }
    let version = parse_welcome(&replies[0]).ok_or_else(|| {
        BgpError::new(
            BgpErrorKind::Protocol,
            &target,
            "no `0001 BIRD ... ready.` welcome",
            "is this a BIRD control socket?",
        )
    })?;
    // replies[1] is `0016 Access restricted`; older BIRDs may lack `restrict`, which is fine:
    // every command sent is a `show`.
    let proto_reply = &replies[2];
    if proto_reply.is_error() {
        return Err(command_error(&target, "show protocols all", proto_reply));
    }
    let protocols = parse_protocols(proto_reply);
    let kernel: Vec<&str> = protocols
        .iter()
        .filter(|p| p.proto == "Kernel")
        .map(|p| p.name.as_str())
        .collect();
    let mut rib = Vec::new();
    for (prefix, reply) in prefixes.iter().zip(&replies[3..]) {
        if reply.is_error() && reply.code() != 8001 {
            return Err(command_error(
                &target,
                &format!("show route {prefix} all"),
                reply,
            ));
        }
        rib.push(rib_entry(prefix, reply, &kernel));
    }

    // Round trip 2: export/noexport for each established session, channel and present prefix.
    let bgp: Vec<&Protocol> = protocols.iter().filter(|p| p.proto == "BGP").collect();
    let mut queries: Vec<(usize, &str, Option<&Channel>)> = Vec::new();
    let mut cmds = Vec::new();
    for (i, p) in bgp.iter().enumerate() {
        if p.bgp_state.as_deref() != Some("Established") {
            continue;
        }
        for e in &rib {
            let fam = Family::of_prefix(&e.prefix);
            let Some(ch) = p.channels.iter().find(|c| c.family() == Some(fam)) else {
                continue;
            };
            if !e.present || ch.state != "UP" {
                continue;
            }
            queries.push((i, e.prefix.as_str(), Some(ch)));
            cmds.push(format!("show route {} export {}", e.prefix, p.name));
            cmds.push(format!("show route {} noexport {}", e.prefix, p.name));
        }
    }
    let replies = if cmds.is_empty() {
        Vec::new()
    } else {
        conn.batch(&cmds, 0).map_err(io_err)?
    };

    let mut peers = Vec::new();
    for (i, p) in bgp.iter().enumerate() {
        let families: Vec<Family> = p.channels.iter().filter_map(Channel::family).collect();
        let state = p.bgp_state.clone().unwrap_or_else(|| p.state.clone());
        let established = p.bgp_state.as_deref() == Some("Established");
        let mut exported = Vec::new();
        for e in &rib {
            let fam = Family::of_prefix(&e.prefix);
            if !families.contains(&fam) {
                continue;
            }
            let q = queries
                .iter()
                .position(|(qi, pfx, _)| *qi == i && *pfx == e.prefix);
            let entry = match q {
                Some(q) => {
                    let (ex, nx) = (replies.get(2 * q), replies.get(2 * q + 1));
                    match (ex, nx) {
                        (Some(ex), Some(nx)) => {
                            export_entry(&p.name, &e.prefix, queries[q].2, ex, nx)
                        }
                        _ => {
                            return Err(BgpError::new(
                                BgpErrorKind::Protocol,
                                &target,
                                "missing replies to export queries",
                                "retry",
                            ))
                        }
                    }
                }
                None => Export {
                    prefix: e.prefix.clone(),
                    advertised: false,
                    rejected_by_filter: None,
                    missing_policy: false,
                    detail: vec![if established {
                        format!("{}: not in BIRD's table or channel down", e.prefix)
                    } else {
                        format!("{}: BGP state {state}", p.name)
                    }],
                },
            };
            exported.push(entry);
        }
        peers.push(Peer {
            name: p.name.clone(),
            address: p.neighbor.clone(),
            hostname: None,
            families,
            state,
            established,
            admin_down: p.state == "down",
            last_error: p.last_error.clone(),
            exported,
        });
    }

    Ok(BgpFacts {
        speaker: format!("{version} via {}", path.display()),
        kind: SpeakerKind::Bird,
        control: format!("birdc -s {}", path.display()),
        local_as: None,
        rib,
        peers,
    })
}

fn command_error(target: &str, cmd: &str, r: &Reply) -> BgpError {
    BgpError::new(
        BgpErrorKind::Command,
        target,
        format!("`{cmd}` failed: {} {}", r.code(), r.final_text()),
        "unexpected for BIRD 2; report this with `birdc` output",
    )
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

    fn one(raw: &str) -> Reply {
        let (mut r, used) = parse_replies(raw);
        assert_eq!(used, raw.len(), "whole fixture is one complete reply");
        assert_eq!(r.len(), 1);
        r.remove(0)
    }

    #[test]
    fn reply_framing_codes_continuations_and_pipelining() {
        let raw = concat!(
            "0001 BIRD 2.0.12 ready.\n",
            "0016 Access restricted\n",
            "1007-Table master4:\n 198.51.100.11/32     unicast [kernel4 04:13:53.785] * (10)\n \tdev tap3f1c2a4b-9d\n0000 \n",
            "8001 Network not found\n",
            "1007-Table master4:\n 198.5"
        );
        let (r, used) = parse_replies(raw);
        assert_eq!(r.len(), 4);
        assert_eq!(parse_welcome(&r[0]).as_deref(), Some("BIRD 2.0.12"));
        assert_eq!(r[1].code(), 16);
        assert_eq!(r[2].lines[1].code, 1007);
        assert_eq!(r[2].code(), 0);
        assert!(!r[2].is_error());
        assert_eq!(r[3].code(), 8001);
        assert!(r[3].is_error());
        assert_eq!(&raw[used..], "1007-Table master4:\n 198.5");
        assert_eq!(count_replies(raw.as_bytes()), 4);
    }

    #[test]
    fn protocols_all_real_output() {
        let ps = parse_protocols(&one(fx!("bird-protocols-all.txt")));
        let names: Vec<&str> = ps.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["device1", "kernel4", "kernel6", "tor1", "tor1v6", "tor2"]
        );
        let k = &ps[1];
        assert_eq!(k.proto, "Kernel");
        assert_eq!(k.channels[0].export_filter.as_deref(), Some("REJECT"));
        let t1 = &ps[3];
        assert_eq!(t1.proto, "BGP");
        assert_eq!(t1.state, "up");
        assert_eq!(t1.bgp_state.as_deref(), Some("Established"));
        assert_eq!(t1.neighbor.as_deref(), Some("192.0.2.2"));
        assert_eq!(t1.channels.len(), 1);
        let c = &t1.channels[0];
        assert_eq!(c.name, "ipv4");
        assert_eq!(c.state, "UP");
        assert_eq!(c.export_filter.as_deref(), Some("tor1_out"));
        assert_eq!(
            c.export_filter_line.as_deref(),
            Some("Output filter:  tor1_out")
        );
        assert_eq!(
            c.routes.as_deref(),
            Some("2 imported, 2 exported, 2 preferred")
        );
        assert_eq!(ps[4].channels[0].family(), Some(Family::V6));
        assert_eq!(ps[4].neighbor.as_deref(), Some("2001:db8:ab::2"));
        let t2 = &ps[5];
        assert_eq!(t2.state, "start");
        assert_eq!(t2.bgp_state.as_deref(), Some("Active"));
        assert_eq!(t2.last_error.as_deref(), Some("Socket: No route to host"));
        assert_eq!(t2.channels[0].state, "DOWN");
    }

    #[test]
    fn protocols_multi_channel_unnumbered_disabled_and_peer_down() {
        let ps = parse_protocols(&one(fx!("bird-multi-protocols-all.txt")));
        let t3 = ps.iter().find(|p| p.name == "tor3").expect("tor3");
        let fams: Vec<_> = t3.channels.iter().filter_map(Channel::family).collect();
        assert_eq!(fams, [Family::V4, Family::V6]);
        assert_eq!(
            t3.neighbor.as_deref(),
            Some("fe80::8881:b3ff:fe87:b594%vc-a")
        );
        assert!(ps.iter().any(|p| p.proto == "RAdv"));

        let ps = parse_protocols(&one(fx!("bird-disabled-protocols-all.txt")));
        let t1 = ps.iter().find(|p| p.name == "tor1").expect("tor1");
        assert_eq!(t1.state, "down");
        assert_eq!(t1.bgp_state.as_deref(), Some("Down"));

        let ps = parse_protocols(&one(fx!("bird-peerdown-protocols-all.txt")));
        let t1 = ps.iter().find(|p| p.name == "tor1").expect("tor1");
        assert_eq!(t1.state, "start");
        assert_eq!(t1.bgp_state.as_deref(), Some("Active"));
        assert_eq!(
            t1.last_error.as_deref(),
            Some("Socket: Connection reset by peer")
        );
    }

    #[test]
    fn route_from_kernel() {
        let r = one(fx!("bird-route-kernel-v4.txt"));
        let routes = parse_routes(&r);
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].net, "198.51.100.11/32");
        assert_eq!(routes[0].proto, "kernel4");
        assert!(routes[0].primary);
        assert_eq!(routes[0].lines[1], "dev tap3f1c2a4b-9d");
        let e = rib_entry("198.51.100.11/32", &r, &["kernel4", "kernel6"]);
        assert!(e.present && e.from_kernel && e.best_from_kernel);
        assert_eq!(e.best_source.as_deref(), Some("kernel4"));
        assert_eq!(
            e.detail,
            [
                "198.51.100.11/32     unicast [kernel4 04:13:53.785] * (10)",
                "dev tap3f1c2a4b-9d"
            ]
        );
        let e6 = rib_entry(
            "2001:db8:100::11/128",
            &one(fx!("bird-route-kernel-v6.txt")),
            &["kernel4", "kernel6"],
        );
        assert!(e6.best_from_kernel);
        assert_eq!(e6.best_source.as_deref(), Some("kernel6"));
    }

    #[test]
    fn route_missing_bgp_only_and_duplicate() {
        let e = rib_entry(
            "198.51.100.99/32",
            &one(fx!("bird-route-missing.txt")),
            &["kernel4"],
        );
        assert!(!e.present && !e.from_kernel);
        assert_eq!(e.detail, ["show route 198.51.100.99/32: Network not found"]);

        let e = rib_entry(
            "203.0.113.22/32",
            &one(fx!("bird-route-bgp-only.txt")),
            &["kernel4"],
        );
        assert!(e.present && !e.from_kernel && !e.best_from_kernel);
        assert_eq!(e.best_source.as_deref(), Some("tor1"));

        let r = one(fx!("bird-dup-route.txt"));
        let routes = parse_routes(&r);
        let ps: Vec<(&str, bool)> = routes
            .iter()
            .map(|r| (r.proto.as_str(), r.primary))
            .collect();
        assert_eq!(ps, [("tor1", true), ("tor3", false), ("kernel4", false)]);
        assert!(routes.iter().all(|r| r.net == "203.0.113.22/32"));
        let e = rib_entry("203.0.113.22/32", &r, &["kernel4"]);
        assert!(e.present && e.from_kernel && !e.best_from_kernel);
        assert_eq!(e.best_source.as_deref(), Some("tor1"));
        // a covering route for another net is not this prefix
        let e = rib_entry("203.0.113.0/24", &r, &["kernel4"]);
        assert!(!e.present);
    }

    fn tor1_channel() -> Channel {
        let ps = parse_protocols(&one(fx!("bird-protocols-all.txt")));
        ps[3].channels[0].clone()
    }

    #[test]
    fn export_advertised() {
        let ch = tor1_channel();
        let e = export_entry(
            "tor1",
            "198.51.100.11/32",
            Some(&ch),
            &one(fx!("bird-export-yes.txt")),
            &one(fx!("bird-noexport-empty.txt")),
        );
        assert!(e.advertised);
        assert_eq!(e.rejected_by_filter, None);
        assert_eq!(
            e.detail[0],
            "show route 198.51.100.11/32 export tor1: 198.51.100.11/32     unicast [kernel4 04:13:53.785] * (10)"
        );
        let e = export_entry(
            "tor1v6",
            "2001:db8:100::11/128",
            None,
            &one(fx!("bird-export-v6-yes.txt")),
            &one(fx!("bird-noexport-empty.txt")),
        );
        assert!(e.advertised);
    }

    #[test]
    fn export_rejected_by_filter_names_it() {
        let ps = parse_protocols(&one(fx!("bird-filtered-protocols-tor1.txt")));
        let ch = &ps[0].channels[0];
        let e = export_entry(
            "tor1",
            "198.51.100.11/32",
            Some(ch),
            &one(fx!("bird-filtered-export-empty.txt")),
            &one(fx!("bird-filtered-noexport.txt")),
        );
        assert!(!e.advertised);
        assert_eq!(
            e.rejected_by_filter.as_deref(),
            Some("export filter tor1_out")
        );
        assert_eq!(
            e.detail,
            [
                "show route 198.51.100.11/32 export tor1: nothing",
                "show route 198.51.100.11/32 noexport tor1: 198.51.100.11/32     unicast [kernel4 04:13:53.785] * (10)",
                "Output filter:  tor1_out",
            ]
        );
    }

    #[test]
    fn export_to_a_down_session_is_an_error_reply_not_advertised() {
        let r = one(fx!("bird-export-session-down.txt"));
        assert_eq!(r.code(), 9001);
        assert_eq!(r.final_text(), "No valid tables");
        let e = export_entry("tor2", "198.51.100.11/32", None, &r, &r);
        assert!(!e.advertised);
        assert_eq!(e.rejected_by_filter, None);
        assert_eq!(
            e.detail,
            ["show route 198.51.100.11/32 export tor2: No valid tables"]
        );
        let r = one(fx!("bird-syntax-error.txt"));
        assert!(r.is_error());
        assert!(r.final_text().starts_with("syntax error"));
        let r = one(fx!("bird-disabled-export.txt"));
        assert_eq!(r.code(), 9001);
        let r = one(fx!("bird-multi-export-tor3-v6.txt"));
        assert_eq!(parse_routes(&r)[0].net, "2001:db8:100::11/128");
        assert_eq!(
            parse_routes(&one(fx!("bird-multi-export-tor3-v4.txt"))).len(),
            1
        );
    }
}
