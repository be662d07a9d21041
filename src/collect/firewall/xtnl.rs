//! iptables-nft rules read from the kernel over nfnetlink (one chain dump and one rule dump per
//! family) and rendered as the text `iptables-save -c` prints, so that the one iptables parser
//! reads them. Forking `iptables-save` costs 3–6 ms a family; this costs well under one.
//!
//! Only what iptables-nft itself generates is decoded: native `meta`/`payload`/`bitwise`/`cmp`/
//! `range` expressions for interfaces, addresses, protocol and TCP/UDP ports and ICMP types,
//! `counter`, `immediate` verdicts, and the x_tables matches and targets a Neutron host carries
//! (`conntrack`/`state`, `mac`, `comment`, `multiport`, `tcp`, `udp`, `icmp`, `icmp6`,
//! `REDIRECT`, `REJECT`). Anything else makes [`render`] return an error naming it, and the
//! collector falls back to forking `iptables-save` for that family: an unknown expression is
//! never guessed at. The decoder is pure; [`read`] is its I/O edge.

use crate::collect::nftables::{
    attr_be32, attr_be64, attr_str, attrs, dump, str_attr, NfMsg, NFT_MSG_GETCHAIN,
    NFT_MSG_GETRULE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// The tables iptables-nft manages, in the order `iptables-save` prints them.
const TABLES: &[&str] = &["mangle", "security", "raw", "filter", "nat"];

/// Built-in chains of a table in the order `iptables-save` prints them.
fn builtin_chains(table: &str) -> &'static [&'static str] {
    match table {
        "filter" => &["INPUT", "FORWARD", "OUTPUT"],
        "nat" => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        "mangle" => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
        "raw" => &["PREROUTING", "OUTPUT"],
        "security" => &["INPUT", "FORWARD", "OUTPUT"],
        _ => &[],
    }
}

/// Read the iptables-nft tables of one family (2 = ip, 10 = ip6) of this network namespace and
/// render them as `iptables-save -c` text. `Err` names what could not be read or decoded.
pub fn read(family: u8, timeout: Duration) -> Result<String, crate::error::Error> {
    read_text(family, timeout).map_err(crate::error::Error::Unknown)
}

fn read_text(family: u8, timeout: Duration) -> Result<String, String> {
    let start = std::time::Instant::now();
    let chains = dump(NFT_MSG_GETCHAIN, family, &[], timeout)
        .map_err(|e| format!("nftables chain dump: {e}"))?;
    let left = timeout.saturating_sub(start.elapsed());
    let mut rules = Vec::new();
    // One rule dump per iptables table (the kernel filters by NFTA_RULE_TABLE): native
    // tables of the same family are not read at all.
    let mut tables: Vec<String> = chains
        .iter()
        .filter(|m| m.kind == NFT_MSG_NEWCHAIN)
        .filter_map(|m| {
            attrs(&m.body)
                .find(|(t, _)| *t == 1)
                .map(|(_, v)| attr_str(v))
        })
        .filter(|t| TABLES.contains(&t.as_str()))
        .collect();
    tables.sort();
    tables.dedup();
    for t in &tables {
        let got = dump(NFT_MSG_GETRULE, family, &str_attr(1, t), left)
            .map_err(|e| format!("nftables rule dump of table {t}: {e}"))?;
        rules.extend(got);
    }
    render(family, &chains, &rules)
}

/// A chain as the kernel reports it.
#[derive(Debug, Default)]
struct Chain {
    name: String,
    base: bool,
    policy: Option<u32>,
    counters: Option<(u64, u64)>,
    rules: Vec<String>,
}

/// Render chain and rule messages of one family as `iptables-save -c` text.
pub(crate) fn render(family: u8, chains: &[NfMsg], rules: &[NfMsg]) -> Result<String, String> {
    let v6 = family == 10;
    let mut tables: BTreeMap<String, Vec<Chain>> = BTreeMap::new();
    for m in chains.iter().filter(|m| m.kind == NFT_MSG_NEWCHAIN) {
        let mut c = Chain::default();
        let mut table = String::new();
        for (t, v) in attrs(&m.body) {
            match t {
                1 => table = attr_str(v),
                3 => c.name = attr_str(v),
                4 => c.base = true,
                5 => c.policy = attr_be32(v),
                8 => {
                    let (mut b, mut p) = (0, 0);
                    for (ct, cv) in attrs(v) {
                        match ct {
                            1 => b = attr_be64(cv).unwrap_or(0),
                            2 => p = attr_be64(cv).unwrap_or(0),
                            _ => {}
                        }
                    }
                    c.counters = Some((p, b));
                }
                _ => {}
            }
        }
        if TABLES.contains(&table.as_str()) {
            tables.entry(table).or_default().push(c);
        }
    }
    for m in rules.iter().filter(|m| m.kind == NFT_MSG_NEWRULE) {
        let mut table = String::new();
        let mut chain = String::new();
        for (t, v) in attrs(&m.body) {
            match t {
                1 => table = attr_str(v),
                2 => chain = attr_str(v),
                _ => {}
            }
        }
        let Some(cs) = tables.get_mut(&table) else {
            continue;
        };
        let line = rule_line(&chain, &m.body, v6)
            .map_err(|e| format!("table {table} chain {chain}: {e}"))?;
        match cs.iter_mut().find(|c| c.name == chain) {
            Some(c) => c.rules.push(line),
            None => return Err(format!("rule in unknown chain {table}/{chain}")),
        }
    }
    let mut out = String::new();
    for name in TABLES {
        let Some(cs) = tables.get_mut(*name) else {
            continue;
        };
        let builtin = builtin_chains(name);
        if let Some(c) = cs
            .iter()
            .find(|c| c.base && !builtin.contains(&c.name.as_str()))
        {
            return Err(format!(
                "base chain {name}/{} is not one iptables-nft creates",
                c.name
            ));
        }
        cs.sort_by(|a, b| {
            let pa = builtin.iter().position(|x| *x == a.name);
            let pb = builtin.iter().position(|x| *x == b.name);
            match (pa, pb) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.name.cmp(&b.name),
            }
        });
        let _ = writeln!(out, "*{name}");
        for c in cs.iter() {
            let policy = match (c.base, c.policy) {
                (false, _) => "-".to_string(),
                (true, Some(1)) | (true, None) => "ACCEPT".to_string(),
                (true, Some(0)) => "DROP".to_string(),
                (true, Some(p)) => return Err(format!("chain {}: policy {p}", c.name)),
            };
            let (p, b) = c.counters.unwrap_or((0, 0));
            let _ = writeln!(out, ":{} {policy} [{p}:{b}]", c.name);
        }
        for c in cs.iter() {
            for r in &c.rules {
                let _ = writeln!(out, "{r}");
            }
        }
        let _ = writeln!(out, "COMMIT");
    }
    Ok(out)
}

/// One decoded expression.
#[derive(Debug)]
enum Expr {
    Meta {
        key: u32,
        dreg: u32,
    },
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    Bitwise {
        sreg: u32,
        dreg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
        op: u32,
    },
    Cmp {
        sreg: u32,
        op: u32,
        data: Vec<u8>,
    },
    Range {
        sreg: u32,
        op: u32,
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Counter {
        packets: u64,
        bytes: u64,
    },
    Verdict {
        code: i32,
        chain: Option<String>,
    },
    Match {
        name: String,
        rev: u32,
        info: Vec<u8>,
    },
    Target {
        name: String,
        rev: u32,
        info: Vec<u8>,
    },
}

fn data_value(v: &[u8]) -> Vec<u8> {
    attrs(v)
        .find(|(t, _)| *t == 1)
        .map(|(_, d)| d.to_vec())
        .unwrap_or_default()
}

fn decode_expr(elem: &[u8]) -> Result<Expr, String> {
    let mut name = String::new();
    let mut data: &[u8] = &[];
    for (t, v) in attrs(elem) {
        match t {
            1 => name = attr_str(v),
            2 => data = v,
            _ => {}
        }
    }
    let a: Vec<(u16, &[u8])> = attrs(data).collect();
    let get = |k: u16| a.iter().find(|(t, _)| *t == k).map(|(_, v)| *v);
    let u32_of = |k: u16| get(k).and_then(attr_be32);
    let need = |k: u16| u32_of(k).ok_or_else(|| format!("{name} expression without attribute {k}"));
    Ok(match name.as_str() {
        "meta" => {
            if get(3).is_some() {
                return Err("meta expression that sets a value".into());
            }
            Expr::Meta {
                key: need(2)?,
                dreg: need(1)?,
            }
        }
        "payload" => {
            if get(5).is_some() {
                return Err("payload expression that writes the packet".into());
            }
            Expr::Payload {
                dreg: need(1)?,
                base: need(2)?,
                offset: need(3)?,
                len: need(4)?,
            }
        }
        "bitwise" => Expr::Bitwise {
            sreg: need(1)?,
            dreg: need(2)?,
            mask: get(4).map(data_value).unwrap_or_default(),
            xor: get(5).map(data_value).unwrap_or_default(),
            op: u32_of(6).unwrap_or(0),
        },
        "cmp" => Expr::Cmp {
            sreg: need(1)?,
            op: need(2)?,
            data: get(3).map(data_value).unwrap_or_default(),
        },
        "range" => Expr::Range {
            sreg: need(1)?,
            op: need(2)?,
            from: get(3).map(data_value).unwrap_or_default(),
            to: get(4).map(data_value).unwrap_or_default(),
        },
        "counter" => Expr::Counter {
            bytes: get(1).and_then(attr_be64).unwrap_or(0),
            packets: get(2).and_then(attr_be64).unwrap_or(0),
        },
        "immediate" => {
            if need(1)? != 0 {
                return Err("immediate expression that loads a data register".into());
            }
            let verdict = get(2)
                .and_then(|d| attrs(d).find(|(t, _)| *t == 2).map(|(_, v)| v))
                .ok_or("immediate expression without a verdict")?;
            let mut code = None;
            let mut chain = None;
            for (t, v) in attrs(verdict) {
                match t {
                    1 => code = attr_be32(v).map(|c| c as i32),
                    2 => chain = Some(attr_str(v)),
                    _ => {}
                }
            }
            Expr::Verdict {
                code: code.ok_or("verdict without a code")?,
                chain,
            }
        }
        "match" | "target" => {
            let n = get(1)
                .map(attr_str)
                .ok_or("x_tables extension without a name")?;
            let rev = need(2)?;
            let info = get(3).map(|v| v.to_vec()).unwrap_or_default();
            if name == "match" {
                Expr::Match { name: n, rev, info }
            } else {
                Expr::Target { name: n, rev, info }
            }
        }
        other => return Err(format!("nftables expression `{other}`")),
    })
}

/// What a register holds.
#[derive(Debug, Clone, PartialEq)]
enum Load {
    Meta(u32),
    Payload {
        base: u32,
        offset: u32,
        len: u32,
    },
    Masked {
        base: u32,
        offset: u32,
        len: u32,
        mask: Vec<u8>,
    },
}

const META_IIFNAME: u32 = 6;
const META_OIFNAME: u32 = 7;
const META_L4PROTO: u32 = 16;
const BASE_NETWORK: u32 = 1;
const BASE_TRANSPORT: u32 = 2;
const CMP_EQ: u32 = 0;
const CMP_NEQ: u32 = 1;
const CMP_GTE: u32 = 5;
const CMP_LTE: u32 = 3;

/// Port conditions of a native tcp/udp match, merged into one `-m tcp` the way iptables-save
/// prints them.
#[derive(Debug, Default, Clone)]
struct Ports {
    sport: Option<(u16, u16, bool)>,
    dport: Option<(u16, u16, bool)>,
    at: usize,
}

#[derive(Default)]
struct Line {
    src: Option<String>,
    dst: Option<String>,
    iif: Option<String>,
    oif: Option<String>,
    proto: Option<(u8, bool)>,
    matches: Vec<String>,
    ports: Option<Ports>,
    target: Option<String>,
    counters: Option<(u64, u64)>,
}

fn rule_line(chain: &str, body: &[u8], v6: bool) -> Result<String, String> {
    let mut exprs = Vec::new();
    for (t, v) in attrs(body) {
        match t {
            4 => {
                for (et, ev) in attrs(v) {
                    if et == 1 {
                        exprs.push(decode_expr(ev)?);
                    }
                }
            }
            5 => return Err("rule with compat (NFTA_RULE_COMPAT) attributes".into()),
            7 if !v.is_empty() => return Err("rule with user data (a comment)".into()),
            _ => {}
        }
    }
    let mut l = Line::default();
    let mut reg: BTreeMap<u32, Load> = BTreeMap::new();
    let mut i = 0;
    while i < exprs.len() {
        match &exprs[i] {
            Expr::Meta { key, dreg } => {
                reg.insert(*dreg, Load::Meta(*key));
            }
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                reg.insert(
                    *dreg,
                    Load::Payload {
                        base: *base,
                        offset: *offset,
                        len: *len,
                    },
                );
            }
            Expr::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
                op,
            } => {
                let Some(Load::Payload { base, offset, len }) = reg.get(sreg).cloned() else {
                    return Err("bitwise on something other than a packet field".into());
                };
                if *op != 0 || xor.iter().any(|b| *b != 0) || mask.len() != len as usize {
                    return Err("bitwise expression iptables-nft does not generate".into());
                }
                reg.insert(
                    *dreg,
                    Load::Masked {
                        base,
                        offset,
                        len,
                        mask: mask.clone(),
                    },
                );
            }
            Expr::Cmp { sreg, op, data } => {
                let load = reg
                    .get(sreg)
                    .cloned()
                    .ok_or("comparison of an empty register")?;
                // A port range is `cmp gte` followed by `cmp lte` on the same register.
                if *op == CMP_GTE {
                    match exprs.get(i + 1) {
                        Some(Expr::Cmp {
                            sreg: s2,
                            op: CMP_LTE,
                            data: d2,
                        }) if s2 == sreg => {
                            port_cond(&mut l, &load, data, d2, false)?;
                            i += 2;
                            continue;
                        }
                        _ => return Err("a `>=` comparison without its `<=`".into()),
                    }
                }
                let neg = match *op {
                    CMP_EQ => false,
                    CMP_NEQ => true,
                    o => return Err(format!("comparison operator {o}")),
                };
                cmp_cond(&mut l, &load, data, neg, v6)?;
            }
            Expr::Range { sreg, op, from, to } => {
                let load = reg.get(sreg).cloned().ok_or("range on an empty register")?;
                port_cond(&mut l, &load, from, to, *op == 1)?;
            }
            Expr::Counter { packets, bytes } => l.counters = Some((*packets, *bytes)),
            Expr::Verdict { code, chain } => {
                if l.target.is_some() {
                    return Err("two verdicts in one rule".into());
                }
                l.target = Some(match (*code, chain) {
                    (1, _) => "-j ACCEPT".into(),
                    (0, _) => "-j DROP".into(),
                    (-5, _) => "-j RETURN".into(),
                    (-3, Some(c)) => format!("-j {c}"),
                    (-4, Some(c)) => format!("-g {c}"),
                    (c, _) => return Err(format!("verdict code {c}")),
                });
            }
            Expr::Match { name, rev, info } => {
                let m = xt_match(name, *rev, info, v6)?;
                l.matches.push(m);
            }
            Expr::Target { name, rev, info } => {
                if l.target.is_some() {
                    return Err("two targets in one rule".into());
                }
                l.target = Some(xt_target(name, *rev, info, v6)?);
            }
        }
        i += 1;
    }
    if let Some(p) = l.ports.take() {
        let proto = match l.proto {
            Some((6, false)) => "tcp",
            Some((17, false)) => "udp",
            _ => return Err("port match without -p tcp or -p udp".into()),
        };
        let mut s = format!("-m {proto}");
        for (flag, r) in [("--sport", p.sport), ("--dport", p.dport)] {
            if let Some((lo, hi, neg)) = r {
                let bang = if neg { " !" } else { "" };
                if lo == hi {
                    let _ = write!(s, "{bang} {flag} {lo}");
                } else {
                    let _ = write!(s, "{bang} {flag} {lo}:{hi}");
                }
            }
        }
        let at = p.at.min(l.matches.len());
        l.matches.insert(at, s);
    }
    let mut s = String::new();
    if let Some((p, b)) = l.counters {
        let _ = write!(s, "[{p}:{b}] ");
    }
    let _ = write!(s, "-A {chain}");
    for part in [&l.src, &l.dst, &l.iif, &l.oif].into_iter().flatten() {
        let _ = write!(s, " {part}");
    }
    if let Some((p, neg)) = l.proto {
        let bang = if neg { "! " } else { "" };
        let _ = write!(s, " {bang}-p {}", proto_name(p));
    }
    for m in &l.matches {
        let _ = write!(s, " {m}");
    }
    if let Some(t) = &l.target {
        let _ = write!(s, " {t}");
    }
    Ok(s)
}

fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        58 => "ipv6-icmp".into(),
        132 => "sctp".into(),
        136 => "udplite".into(),
        50 => "esp".into(),
        51 => "ah".into(),
        135 => "mh".into(),
        n => protocol_db(n).unwrap_or_else(|| n.to_string()),
    }
}

/// The name `/etc/protocols` gives a protocol number (iptables-save prints it, as
/// getprotobynumber does).
fn protocol_db(n: u8) -> Option<String> {
    static DB: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let db = DB.get_or_init(|| std::fs::read_to_string("/etc/protocols").unwrap_or_default());
    db.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?;
            (f.next()?.parse::<u8>().ok()? == n).then(|| name.to_string())
        })
}

fn be16(d: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(d.get(..2)?.try_into().ok()?))
}

fn port_cond(l: &mut Line, load: &Load, from: &[u8], to: &[u8], neg: bool) -> Result<(), String> {
    let Load::Payload {
        base: BASE_TRANSPORT,
        offset,
        len: 2,
    } = load
    else {
        return Err("range on something other than a TCP/UDP port".into());
    };
    let (lo, hi) = match (be16(from), be16(to)) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err("short port range".into()),
    };
    let at = l.matches.len();
    let p = l.ports.get_or_insert_with(|| Ports {
        at,
        ..Ports::default()
    });
    match offset {
        0 => p.sport = Some((lo, hi, neg)),
        2 => p.dport = Some((lo, hi, neg)),
        o => return Err(format!("transport header field at offset {o}")),
    }
    Ok(())
}

fn iface(data: &[u8]) -> Result<String, String> {
    // An exact name is compared with its terminating NUL; a `+` wildcard without it.
    match data.iter().position(|b| *b == 0) {
        Some(end) if data[end..].iter().all(|b| *b == 0) => {
            Ok(String::from_utf8_lossy(&data[..end]).into_owned())
        }
        Some(_) => Err("interface name with bytes after its NUL".into()),
        None => Ok(format!("{}+", String::from_utf8_lossy(data))),
    }
}

fn prefix_len(mask: &[u8]) -> Option<u32> {
    let mut n = 0;
    let mut ended = false;
    for b in mask {
        for bit in (0..8).rev() {
            let set = b & (1 << bit) != 0;
            if set && ended {
                return None;
            }
            if set {
                n += 1;
            } else {
                ended = true;
            }
        }
    }
    Some(n)
}

fn addr_text(v6: bool, bytes: &[u8], plen: u32) -> Result<String, String> {
    let width = if v6 { 16 } else { 4 };
    let mut full = vec![0u8; width];
    if bytes.len() > width {
        return Err("address longer than the family's".into());
    }
    full[..bytes.len()].copy_from_slice(bytes);
    Ok(if v6 {
        let a: [u8; 16] = full.try_into().map_err(|_| "bad IPv6 address")?;
        format!("{}/{plen}", Ipv6Addr::from(a))
    } else {
        let a: [u8; 4] = full.try_into().map_err(|_| "bad IPv4 address")?;
        format!("{}/{plen}", Ipv4Addr::from(a))
    })
}

fn cmp_cond(l: &mut Line, load: &Load, data: &[u8], neg: bool, v6: bool) -> Result<(), String> {
    let bang = if neg { "! " } else { "" };
    let (src_off, dst_off, alen) = if v6 { (8, 24, 16) } else { (12, 16, 4) };
    match load {
        Load::Meta(META_IIFNAME) => l.iif = Some(format!("{bang}-i {}", iface(data)?)),
        Load::Meta(META_OIFNAME) => l.oif = Some(format!("{bang}-o {}", iface(data)?)),
        Load::Meta(META_L4PROTO) => {
            let p = *data.first().ok_or("empty protocol comparison")?;
            l.proto = Some((p, neg));
        }
        Load::Meta(k) => return Err(format!("meta key {k}")),
        Load::Payload {
            base: BASE_NETWORK,
            offset: 9,
            len: 1,
        } if !v6 => {
            let p = *data.first().ok_or("empty protocol comparison")?;
            l.proto = Some((p, neg));
        }
        Load::Payload {
            base: BASE_NETWORK,
            offset,
            len,
        }
        | Load::Masked {
            base: BASE_NETWORK,
            offset,
            len,
            ..
        } if (*offset == src_off || *offset == dst_off) && *len <= alen => {
            let plen = match load {
                Load::Masked { mask, .. } => prefix_len(mask).ok_or("non-prefix address mask")?,
                _ => len * 8,
            };
            if data.len() != *len as usize {
                return Err("address comparison of the wrong length".into());
            }
            let text = format!(
                "{bang}-{} {}",
                if *offset == src_off { 's' } else { 'd' },
                addr_text(v6, data, plen)?
            );
            if *offset == src_off {
                l.src = Some(text);
            } else {
                l.dst = Some(text);
            }
        }
        Load::Payload {
            base: BASE_TRANSPORT,
            offset: 0,
            len: 1 | 2,
        } if matches!(l.proto, Some((1 | 58, false))) => {
            let icmp6 = matches!(l.proto, Some((58, _)));
            let t = *data.first().ok_or("empty ICMP type")?;
            let code = data.get(1).map(|c| format!("/{c}")).unwrap_or_default();
            let bang = if neg { "! " } else { "" };
            l.matches.push(if icmp6 {
                format!("-m icmp6 {bang}--icmpv6-type {t}{code}")
            } else {
                format!("-m icmp {bang}--icmp-type {t}{code}")
            });
        }
        Load::Payload {
            base: BASE_TRANSPORT,
            offset: 0 | 2,
            len: 2,
        } => {
            let p = be16(data).ok_or("short port comparison")?;
            port_cond(l, load, &p.to_be_bytes(), &p.to_be_bytes(), neg)?;
        }
        // iptables-nft loads both ports at once when a rule matches both without negation.
        Load::Payload {
            base: BASE_TRANSPORT,
            offset: 0,
            len: 4,
        } if !neg => {
            let sp = be16(data).ok_or("short port comparison")?;
            let dp = data
                .get(2..)
                .and_then(be16)
                .ok_or("short port comparison")?;
            let sl = Load::Payload {
                base: BASE_TRANSPORT,
                offset: 0,
                len: 2,
            };
            let dl = Load::Payload {
                base: BASE_TRANSPORT,
                offset: 2,
                len: 2,
            };
            port_cond(l, &sl, &sp.to_be_bytes(), &sp.to_be_bytes(), false)?;
            port_cond(l, &dl, &dp.to_be_bytes(), &dp.to_be_bytes(), false)?;
        }
        other => return Err(format!("comparison of {other:?}")),
    }
    Ok(())
}

fn ne16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(d.get(at..at + 2)?.try_into().ok()?))
}
fn ne32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(d.get(at..at + 4)?.try_into().ok()?))
}
fn be16_at(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

/// Conntrack states in the order libxt_conntrack prints them.
fn ct_states(mask: u16, extended: bool) -> String {
    let mut names = Vec::new();
    for (bit, name) in [
        (1u16, "INVALID"),
        (1 << 3, "NEW"),
        (1 << 2, "RELATED"),
        (1 << 1, "ESTABLISHED"),
        (1 << 8, "UNTRACKED"),
    ] {
        if mask & bit != 0 {
            names.push(name);
        }
    }
    if extended {
        for (bit, name) in [(1u16 << 6, "SNAT"), (1 << 7, "DNAT")] {
            if mask & bit != 0 {
                names.push(name);
            }
        }
    }
    names.join(",")
}

fn short(name: &str) -> String {
    format!("x_tables match `{name}` with a short payload")
}

fn xt_match(name: &str, rev: u32, info: &[u8], v6: bool) -> Result<String, String> {
    let bang = |b: bool| if b { "! " } else { "" };
    Ok(match (name, rev) {
        ("conntrack", 3) => {
            let flags = ne16(info, 146).ok_or_else(|| short(name))?;
            let inv = ne16(info, 148).ok_or_else(|| short(name))?;
            let states = ne16(info, 150).ok_or_else(|| short(name))?;
            const STATE: u16 = 1;
            const ALIAS: u16 = 1 << 13;
            if flags & !(STATE | ALIAS) != 0 {
                return Err(format!("conntrack match with options {flags:#x}"));
            }
            let neg = inv & STATE != 0;
            if flags & ALIAS != 0 {
                format!("-m state {}--state {}", bang(neg), ct_states(states, false))
            } else {
                format!(
                    "-m conntrack {}--ctstate {}",
                    bang(neg),
                    ct_states(states, true)
                )
            }
        }
        ("mac", 0) => {
            let mac = info.get(..6).ok_or_else(|| short(name))?;
            let inv = ne32(info, 8).ok_or_else(|| short(name))? != 0;
            let m: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
            format!("-m mac {}--mac-source {}", bang(inv), m.join(":"))
        }
        ("comment", 0) => {
            let text = attr_str(info.get(..256.min(info.len())).unwrap_or(&[]));
            format!("-m comment --comment {}", save_string(&text))
        }
        ("tcp" | "udp", 0) => {
            let spts = (ne16(info, 0), ne16(info, 2));
            let dpts = (ne16(info, 4), ne16(info, 6));
            let (Some(s0), Some(s1), Some(d0), Some(d1)) = (spts.0, spts.1, dpts.0, dpts.1) else {
                return Err(short(name));
            };
            let (inv, extra) = if name == "tcp" {
                let option = *info.get(8).ok_or_else(|| short(name))?;
                let fmask = *info.get(9).ok_or_else(|| short(name))?;
                (
                    *info.get(11).ok_or_else(|| short(name))?,
                    option != 0 || fmask != 0,
                )
            } else {
                (*info.get(8).ok_or_else(|| short(name))?, false)
            };
            if extra {
                return Err("tcp match with flags or options".into());
            }
            let mut s = format!("-m {name}");
            for (flag, lo, hi, invbit) in [("--sport", s0, s1, 1u8), ("--dport", d0, d1, 2u8)] {
                if lo != 0 || hi != 0xffff {
                    let b = if inv & invbit != 0 { " !" } else { "" };
                    if lo == hi {
                        let _ = write!(s, "{b} {flag} {lo}");
                    } else {
                        let _ = write!(s, "{b} {flag} {lo}:{hi}");
                    }
                }
            }
            s
        }
        ("icmp", 0) if !v6 => icmp_text("-m icmp", "--icmp-type", info, true)?,
        ("icmp6", 0) if v6 => icmp_text("-m icmp6", "--icmpv6-type", info, false)?,
        ("multiport", 1) => {
            let flags = *info.first().ok_or_else(|| short(name))?;
            let count = *info.get(1).ok_or_else(|| short(name))? as usize;
            let inv = *info.get(47).ok_or_else(|| short(name))? != 0;
            if count > 15 {
                return Err("multiport match with more than 15 ports".into());
            }
            let flag = match flags {
                0 => "--sports",
                1 => "--dports",
                2 => "--ports",
                f => return Err(format!("multiport flags {f}")),
            };
            let mut ports = String::new();
            let mut k = 0;
            while k < count {
                let p = ne16(info, 2 + 2 * k).ok_or_else(|| short(name))?;
                if k > 0 {
                    ports.push(',');
                }
                let _ = write!(ports, "{p}");
                if *info.get(32 + k).ok_or_else(|| short(name))? != 0 {
                    k += 1;
                    let hi = ne16(info, 2 + 2 * k).ok_or_else(|| short(name))?;
                    let _ = write!(ports, ":{hi}");
                }
                k += 1;
            }
            format!("-m multiport {}{flag} {ports}", bang(inv))
        }
        (n, r) => return Err(format!("x_tables match `{n}` revision {r}")),
    })
}

fn icmp_text(m: &str, flag: &str, info: &[u8], any: bool) -> Result<String, String> {
    let t = *info.first().ok_or_else(|| short(m))?;
    let c0 = *info.get(1).ok_or_else(|| short(m))?;
    let c1 = *info.get(2).ok_or_else(|| short(m))?;
    let inv = *info.get(3).ok_or_else(|| short(m))? & 1 != 0;
    let bang = if inv { "! " } else { "" };
    if any && t == 0xff {
        return Ok(format!("{m} {bang}{flag} any"));
    }
    let code = if c0 != 0 || c1 != 0xff {
        format!("/{c0}")
    } else {
        String::new()
    };
    Ok(format!("{m} {bang}{flag} {t}{code}"))
}

fn xt_target(name: &str, rev: u32, info: &[u8], v6: bool) -> Result<String, String> {
    Ok(match (name, rev) {
        ("REDIRECT", 0) if !v6 => {
            let flags = ne32(info, 4).ok_or("short REDIRECT")?;
            let lo = be16_at(info, 16).ok_or("short REDIRECT")?;
            let hi = be16_at(info, 18).ok_or("short REDIRECT")?;
            let mut s = "-j REDIRECT".to_string();
            if flags & 2 != 0 {
                let _ = write!(s, " --to-ports {lo}");
                if hi != lo {
                    let _ = write!(s, "-{hi}");
                }
                if flags & 4 != 0 {
                    s.push_str(" --random");
                }
            } else if flags != 0 {
                return Err(format!("REDIRECT flags {flags:#x}"));
            }
            s
        }
        ("REJECT", 0) if !v6 => {
            let with = ne32(info, 0).ok_or("short REJECT")?;
            let name = match with {
                0 => "icmp-net-unreachable",
                1 => "icmp-host-unreachable",
                2 => "icmp-proto-unreachable",
                3 => "icmp-port-unreachable",
                5 => "icmp-net-prohibited",
                6 => "icmp-host-prohibited",
                7 => "tcp-reset",
                8 => "icmp-admin-prohibited",
                w => return Err(format!("REJECT with {w}")),
            };
            format!("-j REJECT --reject-with {name}")
        }
        (n, r) => return Err(format!("x_tables target `{n}` revision {r}")),
    })
}

/// Quote a string the way xtables_save_string does.
fn save_string(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::nftables::split_dump;

    fn messages(hex: &str) -> Vec<NfMsg> {
        let mut out = Vec::new();
        for line in hex.lines().filter(|l| !l.is_empty()) {
            let bytes: Vec<u8> = (0..line.len() / 2)
                .map(|i| u8::from_str_radix(&line[2 * i..2 * i + 2], 16).expect("hex fixture"))
                .collect();
            split_dump(&bytes, &mut out).expect("captured dump splits");
        }
        out
    }

    fn save_text(save: &str) -> String {
        save.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// The rendering equals, byte for byte, what iptables-save printed from the same messages.
    #[test]
    fn renders_exactly_what_iptables_save_printed() {
        for (family, hex, save) in [
            (
                2,
                include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/fw/nfnl/ip-varied.hex"
                )),
                include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/fw/nfnl/ip-varied.save"
                )),
            ),
            (
                10,
                include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/fw/nfnl/ip6-varied.hex"
                )),
                include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/fw/nfnl/ip6-varied.save"
                )),
            ),
        ] {
            let msgs = messages(hex);
            let got = render(family, &msgs, &msgs).expect("every rule decodes");
            let want = save_text(save);
            for (g, w) in got.lines().zip(want.lines()) {
                assert_eq!(g, w);
            }
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_match_it_does_not_know_is_refused_by_name() {
        let msgs = messages(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fw/nfnl/ip-unsupported.hex"
        )));
        let err = render(2, &msgs, &msgs).expect_err("length match is not decoded");
        assert!(err.contains("`length`") && err.contains("sg-set"), "{err}");
    }

    #[test]
    fn the_rendering_parses_into_the_same_rules_as_the_tool_output() {
        use crate::collect::firewall::{iptables, Backend, Family};
        let msgs = messages(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fw/nfnl/ip-varied.hex"
        )));
        let got = render(2, &msgs, &msgs).expect("decodes");
        let a = iptables::parse_save(&got, Backend::IptablesNft, Family::Ip);
        let b = iptables::parse_save(
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/fw/nfnl/ip-varied.save"
            )),
            Backend::IptablesNft,
            Family::Ip,
        );
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert!(a.iter().map(|t| t.chains.len()).sum::<usize>() >= 9);
    }

    #[test]
    fn truncated_or_garbled_messages_never_panic() {
        let msgs = messages(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fw/nfnl/ip-varied.hex"
        )));
        for m in &msgs {
            for cut in 0..m.body.len() {
                let mut t = m.clone();
                t.body.truncate(cut);
                let _ = render(2, std::slice::from_ref(&t), std::slice::from_ref(&t));
                let mut g = m.clone();
                if let Some(b) = g.body.get_mut(cut) {
                    *b ^= 0xa5;
                }
                let _ = render(2, std::slice::from_ref(&g), std::slice::from_ref(&g));
            }
        }
    }

    #[test]
    fn interface_names_and_prefixes() {
        assert_eq!(iface(b"tap\0").as_deref(), Ok("tap"));
        assert_eq!(iface(b"tap").as_deref(), Ok("tap+"));
        assert!(iface(b"ta\0p").is_err());
        assert_eq!(prefix_len(&[255, 255, 0, 0]), Some(16));
        assert_eq!(prefix_len(&[255, 254, 0, 0]), Some(15));
        assert_eq!(prefix_len(&[255, 0, 255, 0]), None);
        assert_eq!(save_string("a b\"c"), "\"a b\\\"c\"");
        assert_eq!(save_string("plain_1-x"), "plain_1-x");
    }
}
