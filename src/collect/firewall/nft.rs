//! Parser for `nft -j list ruleset` (libnftables JSON, schema 1): tables, chains (hook, type,
//! priority, policy), named sets and rules whose `expr` arrays become the shared rule model.
//! Verdict maps (`iifname vmap { "tap1" : jump x }`) are expanded into one rule per entry.

use std::collections::HashMap;
use std::net::IpAddr;

use serde_json::Value;

use super::iptables::icmp_type;
use super::{proto, Backend, Chain, Cond, Counters, Family, Hook, Match, Net, Policy, PortRange};
use super::{Rule, Table, Target};

type SetKey = (String, String, String); // family, table, set name

/// Parse the whole JSON ruleset. Every table is returned, iptables-nft ones included (their
/// `xt` expressions are unsupported matches); the caller drops those it read via iptables-save.
pub fn parse_json(text: &str) -> Result<Vec<Table>, crate::error::Error> {
    parse(text).map_err(crate::error::Error::Unknown)
}

fn parse(text: &str) -> Result<Vec<Table>, String> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| format!("nft -j output is not JSON ({e}): is nft older than 0.9?"))?;
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("nft -j output has no \"nftables\" array")?;
    let mut tables: Vec<Table> = Vec::new();
    let mut sets: HashMap<SetKey, Vec<Value>> = HashMap::new();
    for it in items {
        if let Some(t) = it.get("table") {
            tables.push(Table {
                backend: Backend::Nft,
                family: Family::from_nft(s(t, "family")),
                name: s(t, "name").to_string(),
                chains: Vec::new(),
            });
        } else if let Some(st) = it.get("set").or_else(|| it.get("map")) {
            let key = (
                s(st, "family").to_string(),
                s(st, "table").to_string(),
                s(st, "name").to_string(),
            );
            let elems = st
                .get("elem")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            sets.insert(key, elems);
        }
    }
    for it in items {
        if let Some(c) = it.get("chain") {
            let Some(t) = find_table(&mut tables, c) else {
                continue;
            };
            let hook = c.get("hook").and_then(Value::as_str).map(|h| Hook {
                hook: h.to_string(),
                kind: c
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("filter")
                    .to_string(),
                priority: priority(c.get("prio")),
            });
            let policy = match c.get("policy").and_then(Value::as_str) {
                Some("drop") => Some(Policy::Drop),
                Some(_) => Some(Policy::Accept),
                None if hook.is_some() => Some(Policy::Accept),
                None => None,
            };
            t.chains.push(Chain {
                name: s(c, "name").to_string(),
                hook,
                policy,
                rules: Vec::new(),
            });
        }
    }
    for it in items {
        if let Some(r) = it.get("rule") {
            let family = s(r, "family").to_string();
            let table = s(r, "table").to_string();
            let chain = s(r, "chain").to_string();
            let rules = parse_rule(r, &|name: &str| {
                sets.get(&(family.clone(), table.clone(), name.to_string()))
                    .cloned()
            });
            let Some(t) = find_table(&mut tables, r) else {
                continue;
            };
            match t.chains.iter_mut().find(|c| c.name == chain) {
                Some(c) => c.rules.extend(rules),
                None => t.chains.push(Chain {
                    name: chain,
                    hook: None,
                    policy: None,
                    rules,
                }),
            }
        }
    }
    Ok(tables)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn find_table<'a>(tables: &'a mut [Table], obj: &Value) -> Option<&'a mut Table> {
    let fam = Family::from_nft(s(obj, "family"));
    let name = s(obj, "table");
    tables
        .iter_mut()
        .find(|t| t.family == fam && t.name == name)
}

/// Numeric priority; standard names when a newer nft prints them.
fn priority(v: Option<&Value>) -> i32 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0) as i32,
        Some(Value::String(name)) => match name.as_str() {
            "raw" => -300,
            "mangle" => -150,
            "dstnat" => -100,
            "filter" => 0,
            "security" => 50,
            "srcnat" => 100,
            other => other.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// One JSON rule → one model rule, or several when it ends in a verdict map.
fn parse_rule(r: &Value, set: &dyn Fn(&str) -> Option<Vec<Value>>) -> Vec<Rule> {
    let exprs = r
        .get("expr")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let handle = r.get("handle").and_then(Value::as_u64);
    let comment = r.get("comment").and_then(Value::as_str).map(String::from);
    let mut matches = Vec::new();
    let mut counters = None;
    let mut target = Target::Continue(String::new());
    let mut vmap: Option<(Value, Vec<Value>)> = None;
    let mut words = Vec::new();
    for e in &exprs {
        words.push(render(e));
        let Some((k, body)) = e.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        match k.as_str() {
            "match" => matches.extend(parse_match(body, set)),
            "counter" => {
                counters = Some(Counters {
                    packets: body.get("packets").and_then(Value::as_u64).unwrap_or(0),
                    bytes: body.get("bytes").and_then(Value::as_u64).unwrap_or(0),
                })
            }
            "accept" => target = Target::Accept,
            "drop" => target = Target::Drop,
            "return" => target = Target::Return,
            "continue" => {}
            "jump" => target = Target::Jump(s(body, "target").to_string()),
            "goto" => target = Target::Goto(s(body, "target").to_string()),
            "reject" => {
                let mut how = s(body, "type").to_string();
                let ex = s(body, "expr");
                if !ex.is_empty() {
                    how = format!("{how} {ex}").trim().to_string();
                }
                target = Target::Reject(how)
            }
            "redirect" => {
                target = match body.get("port") {
                    None | Some(Value::Null) => Target::Redirect(None),
                    Some(p) => match port_value(p) {
                        Some(r) => Target::Redirect(Some(r)),
                        None => Target::Other(render(e)),
                    },
                }
            }
            "dnat" => {
                let addr = body
                    .get("addr")
                    .and_then(Value::as_str)
                    .and_then(|a| a.parse::<IpAddr>().ok());
                let port = body.get("port").and_then(Value::as_u64).map(|p| p as u16);
                target = if body.get("addr").is_some() && addr.is_none() {
                    Target::Other(render(e))
                } else {
                    Target::Dnat { addr, port }
                }
            }
            "log" | "mangle" | "notrack" | "ct helper" | "ct timeout" | "set" | "meta" => {
                if !matches!(target, Target::Continue(_)) {
                    continue;
                }
                target = Target::Continue(render(e));
            }
            "vmap" => {
                vmap = Some((
                    body.get("key").cloned().unwrap_or(Value::Null),
                    vmap_entries(body, set),
                ))
            }
            "xt" => {
                let name = s(body, "name").to_string();
                if s(body, "type") == "target" {
                    target = Target::Other(format!("xt target {name}"));
                } else {
                    matches.push(Match::new(Cond::Unsupported(format!("xt match {name}"))));
                }
            }
            "queue" | "snat" | "masquerade" | "tproxy" | "synproxy" | "fwd" | "dup" => {
                target = Target::Other(render(e))
            }
            other => matches.push(Match::new(Cond::Unsupported(format!(
                "{other} {}",
                render(e)
            )))),
        }
    }
    let mut text = words.join(" ");
    if let Some(c) = &comment {
        text.push_str(&format!(" comment \"{c}\""));
    }
    if let Some(h) = handle {
        text.push_str(&format!(" # handle {h}"));
    }
    let Some((key, entries)) = vmap else {
        return vec![Rule {
            matches,
            target,
            counters,
            comment,
            text,
        }];
    };
    // Verdict map: one rule per entry. Keys are distinct, so at most one entry matches and the
    // expansion in order is equivalent. The counter (before the map) is kept on the first.
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let (Some(k), Some(verdict)) = (entry.get(0), entry.get(1)) else {
            continue;
        };
        let mut m = matches.clone();
        m.extend(parse_match(
            &serde_json::json!({"op": "==", "left": key, "right": k}),
            set,
        ));
        out.push(Rule {
            matches: m,
            target: verdict_of(verdict),
            counters: if i == 0 { counters } else { None },
            comment: comment.clone(),
            text: format!(
                "{text} [vmap entry {} : {}]",
                render_value(k),
                render(verdict)
            ),
        });
    }
    out
}

fn vmap_entries(body: &Value, set: &dyn Fn(&str) -> Option<Vec<Value>>) -> Vec<Value> {
    let data = body.get("data");
    let list: Vec<Value> = match data {
        Some(Value::Object(o)) if o.contains_key("set") => o
            .get("set")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        Some(Value::String(n)) if n.starts_with('@') => set(&n[1..]).unwrap_or_default(),
        _ => Vec::new(),
    };
    // Entries are [key, verdict] pairs (named maps wrap them as {"elem": ...}? keep pairs only).
    list.into_iter().filter(|e| e.is_array()).collect()
}

fn verdict_of(v: &Value) -> Target {
    let Some((k, body)) = v.as_object().and_then(|o| o.iter().next()) else {
        return Target::Other(render(v));
    };
    match k.as_str() {
        "accept" => Target::Accept,
        "drop" => Target::Drop,
        "return" => Target::Return,
        "jump" => Target::Jump(s(body, "target").to_string()),
        "goto" => Target::Goto(s(body, "target").to_string()),
        "continue" => Target::Continue(String::new()),
        _ => Target::Other(render(v)),
    }
}

/// What a match's left side is.
enum Field {
    InIface,
    OutIface,
    Proto,
    Src,
    Dst,
    Sport,
    Dport,
    CtState,
    MacSrc,
    IcmpType(bool),
    Nfproto,
}

/// A `match` expression → conditions (implicit dependencies first), or Unsupported.
fn parse_match(m: &Value, set: &dyn Fn(&str) -> Option<Vec<Value>>) -> Vec<Match> {
    let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
    let left = m.get("left").cloned().unwrap_or(Value::Null);
    let right = m.get("right").cloned().unwrap_or(Value::Null);
    let unsupported = || {
        vec![Match::new(Cond::Unsupported(format!(
            "{} {} {}",
            render_value(&left),
            op,
            render_value(&right)
        )))]
    };
    let mut deps = Vec::new();
    let field = if let Some(meta) = left.get("meta") {
        match s(meta, "key") {
            "iifname" | "iif" => Field::InIface,
            "oifname" | "oif" => Field::OutIface,
            "l4proto" => Field::Proto,
            "nfproto" => Field::Nfproto,
            _ => return unsupported(),
        }
    } else if let Some(ct) = left.get("ct") {
        match s(ct, "key") {
            "state" => Field::CtState,
            _ => return unsupported(),
        }
    } else if let Some(p) = left.get("payload") {
        let (pr, f) = (s(p, "protocol"), s(p, "field"));
        match (pr, f) {
            ("ip", "saddr") | ("ip", "daddr") | ("ip", "protocol") => {
                deps.push(Match::new(Cond::Ipv6(false)));
                match f {
                    "saddr" => Field::Src,
                    "daddr" => Field::Dst,
                    _ => Field::Proto,
                }
            }
            ("ip6", "saddr") | ("ip6", "daddr") | ("ip6", "nexthdr") => {
                deps.push(Match::new(Cond::Ipv6(true)));
                match f {
                    "saddr" => Field::Src,
                    "daddr" => Field::Dst,
                    _ => Field::Proto,
                }
            }
            ("tcp" | "udp" | "sctp" | "udplite" | "th", "sport" | "dport") => {
                let protos = match pr {
                    "th" => vec![proto::TCP, proto::UDP, proto::SCTP, proto::UDPLITE],
                    p => vec![proto::by_name(p).unwrap_or(0)],
                };
                deps.push(Match::new(Cond::Proto(protos)));
                if f == "sport" {
                    Field::Sport
                } else {
                    Field::Dport
                }
            }
            ("icmp", "type") => {
                deps.push(Match::new(Cond::Ipv6(false)));
                deps.push(Match::new(Cond::Proto(vec![proto::ICMP])));
                Field::IcmpType(false)
            }
            ("icmpv6", "type") => {
                deps.push(Match::new(Cond::Ipv6(true)));
                deps.push(Match::new(Cond::Proto(vec![proto::ICMPV6])));
                Field::IcmpType(true)
            }
            ("ether", "saddr") => Field::MacSrc,
            _ => return unsupported(),
        }
    } else {
        return unsupported();
    };
    let negated = match op {
        "==" | "in" => false,
        "!=" => true,
        "<" | ">" | "<=" | ">=" if matches!(field, Field::Sport | Field::Dport) => false,
        _ => return unsupported(),
    };
    // The right-hand values, with named sets resolved.
    let values: Vec<Value> = match &right {
        Value::String(n) if n.starts_with('@') => match set(&n[1..]) {
            Some(v) => v,
            None => {
                return vec![Match::new(Cond::Unsupported(format!(
                    "{} {op} {n} (set not in the ruleset)",
                    render_value(&left)
                )))]
            }
        },
        Value::Array(a) => a.clone(),
        Value::Object(o) if o.contains_key("set") => o
            .get("set")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        v => vec![v.clone()],
    };
    let values: Vec<Value> = values
        .into_iter()
        .map(|v| match v.get("elem").and_then(|e| e.get("val")) {
            Some(inner) => inner.clone(),
            None => v,
        })
        .collect();
    let strs = || -> Option<Vec<String>> {
        values
            .iter()
            .map(|v| v.as_str().map(String::from))
            .collect()
    };
    let cond = match field {
        Field::InIface | Field::OutIface => strs().map(|v| {
            if matches!(field, Field::InIface) {
                Cond::InIface(v)
            } else {
                Cond::OutIface(v)
            }
        }),
        Field::Proto => values
            .iter()
            .map(|v| match v {
                Value::Number(n) => n.as_u64().map(|n| n as u8),
                Value::String(s) => proto::by_name(s),
                _ => None,
            })
            .collect::<Option<Vec<u8>>>()
            .map(Cond::Proto),
        Field::Nfproto => strs().and_then(|v| match v.as_slice() {
            [x] if x == "ipv4" => Some(Cond::Ipv6(false)),
            [x] if x == "ipv6" => Some(Cond::Ipv6(true)),
            _ => None,
        }),
        Field::Src | Field::Dst => values
            .iter()
            .map(net_value)
            .collect::<Option<Vec<Net>>>()
            .map(|n| {
                if matches!(field, Field::Src) {
                    Cond::Src(n)
                } else {
                    Cond::Dst(n)
                }
            }),
        Field::Sport | Field::Dport => {
            let ranges = if matches!(op, "<" | ">" | "<=" | ">=") {
                values.first().and_then(Value::as_u64).and_then(|n| {
                    let n = u16::try_from(n).ok()?;
                    Some(vec![match op {
                        "<" => PortRange {
                            lo: 0,
                            hi: n.checked_sub(1)?,
                        },
                        "<=" => PortRange { lo: 0, hi: n },
                        ">" => PortRange {
                            lo: n.checked_add(1)?,
                            hi: u16::MAX,
                        },
                        _ => PortRange {
                            lo: n,
                            hi: u16::MAX,
                        },
                    }])
                })
            } else {
                values.iter().map(port_value).collect::<Option<Vec<_>>>()
            };
            ranges.map(|r| {
                if matches!(field, Field::Sport) {
                    Cond::Sport(r)
                } else {
                    Cond::Dport(r)
                }
            })
        }
        Field::CtState => {
            strs().map(|v| Cond::CtState(v.iter().map(|s| s.to_lowercase()).collect()))
        }
        Field::MacSrc => strs().map(|v| Cond::MacSrc(v.iter().map(|s| s.to_lowercase()).collect())),
        Field::IcmpType(v6) => values
            .iter()
            .map(|v| match v {
                Value::Number(n) => n.as_u64().map(|n| (n as u8, None)),
                Value::String(s) => icmp_type(s, v6).flatten(),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(Cond::IcmpType),
    };
    match cond {
        Some(c) => {
            deps.push(Match { cond: c, negated });
            deps
        }
        None => unsupported(),
    }
}

fn port_value(v: &Value) -> Option<PortRange> {
    match v {
        Value::Number(n) => u16::try_from(n.as_u64()?).ok().map(PortRange::one),
        Value::String(s) => PortRange::parse(s),
        Value::Object(o) => {
            let r = o.get("range")?.as_array()?;
            let lo = u16::try_from(r.first()?.as_u64()?).ok()?;
            let hi = u16::try_from(r.get(1)?.as_u64()?).ok()?;
            Some(PortRange { lo, hi })
        }
        _ => None,
    }
}

fn net_value(v: &Value) -> Option<Net> {
    match v {
        Value::String(s) => Net::parse(s),
        Value::Object(o) => {
            let p = o.get("prefix")?;
            let addr: IpAddr = p.get("addr")?.as_str()?.parse().ok()?;
            let len = u8::try_from(p.get("len")?.as_u64()?).ok()?;
            Some(Net { addr, len })
        }
        _ => None,
    }
}

/// nft-like text of one expression, for evidence.
fn render(e: &Value) -> String {
    let Some((k, body)) = e.as_object().and_then(|o| o.iter().next()) else {
        return render_value(e);
    };
    match k.as_str() {
        "match" => {
            let op = s(body, "op");
            let l = render_value(body.get("left").unwrap_or(&Value::Null));
            let r = render_value(body.get("right").unwrap_or(&Value::Null));
            match op {
                "==" | "in" => format!("{l} {r}"),
                _ => format!("{l} {op} {r}"),
            }
        }
        "counter" => format!(
            "counter packets {} bytes {}",
            body.get("packets").and_then(Value::as_u64).unwrap_or(0),
            body.get("bytes").and_then(Value::as_u64).unwrap_or(0)
        ),
        "accept" | "drop" | "return" | "continue" | "notrack" => k.clone(),
        "jump" | "goto" => format!("{k} {}", s(body, "target")),
        "reject" => {
            let t = s(body, "type");
            let x = s(body, "expr");
            if t.is_empty() {
                "reject".into()
            } else {
                format!("reject with {t} {x}").trim().to_string()
            }
        }
        "redirect" => match body.get("port") {
            Some(p) => format!("redirect to :{}", render_value(p)),
            None => "redirect".into(),
        },
        "dnat" | "snat" => {
            let a = body.get("addr").map(render_value).unwrap_or_default();
            match body.get("port") {
                Some(p) => format!("{k} to {a}:{}", render_value(p)),
                None => format!("{k} to {a}"),
            }
        }
        "log" => match body.get("prefix").and_then(Value::as_str) {
            Some(p) => format!("log prefix \"{p}\""),
            None => "log".into(),
        },
        "xt" => format!("xt {} {}", s(body, "type"), s(body, "name")),
        "vmap" => format!(
            "{} vmap {}",
            render_value(body.get("key").unwrap_or(&Value::Null)),
            render_value(body.get("data").unwrap_or(&Value::Null))
        ),
        _ => format!("{k} {}", compact(body)),
    }
}

fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => {
            if s.starts_with('@') || s.parse::<IpAddr>().is_ok() || s.contains(':') {
                s.clone()
            } else {
                format!("\"{s}\"")
            }
        }
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Array(a) => a
            .iter()
            .map(|x| render_value(x).trim_matches('"').to_string())
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(o) => {
            if let Some(m) = o.get("meta") {
                return format!("meta {}", s(m, "key"))
                    .replace("meta iifname", "iifname")
                    .replace("meta oifname", "oifname");
            }
            if let Some(p) = o.get("payload") {
                return format!("{} {}", s(p, "protocol"), s(p, "field"));
            }
            if let Some(c) = o.get("ct") {
                return format!("ct {}", s(c, "key"));
            }
            if let Some(st) = o.get("set").and_then(Value::as_array) {
                let items: Vec<String> = st
                    .iter()
                    .map(|x| {
                        if let Some(pair) = x.as_array() {
                            pair.iter()
                                .map(|p| {
                                    if p.is_object()
                                        && p.get("range").is_none()
                                        && p.get("prefix").is_none()
                                    {
                                        render(p)
                                    } else {
                                        render_value(p)
                                    }
                                })
                                .collect::<Vec<_>>()
                                .join(" : ")
                        } else {
                            render_value(x)
                        }
                    })
                    .collect();
                return format!("{{ {} }}", items.join(", "));
            }
            if let Some(r) = o.get("range").and_then(Value::as_array) {
                let a: Vec<String> = r.iter().map(render_value).collect();
                return a.join("-");
            }
            if let Some(p) = o.get("prefix") {
                return format!(
                    "{}/{}",
                    s(p, "addr"),
                    p.get("len").and_then(Value::as_u64).unwrap_or(0)
                );
            }
            compact(v)
        }
    }
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEALTHY: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fw/nft-healthy.json"
    ));
    const SET: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fw/nft-set.json"
    ));
    const IPT: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fw/ipt-healthy.nft.json"
    ));

    fn rules_of<'a>(ts: &'a [Table], table: &str, chain: &str) -> &'a [Rule] {
        &ts.iter()
            .find(|t| t.name == table)
            .and_then(|t| t.chain(chain))
            .expect("chain")
            .rules
    }

    #[test]
    fn native_ruleset_parses() {
        let ts = parse_json(HEALTHY).expect("test fixture");
        assert_eq!(ts.len(), 2);
        assert_eq!(ts[0].family, Family::Inet);
        let fwd = ts[0].chain("forward").expect("test fixture");
        assert_eq!(
            fwd.hook,
            Some(Hook {
                hook: "forward".into(),
                kind: "filter".into(),
                priority: 0
            })
        );
        assert_eq!(fwd.policy, Some(Policy::Accept));
        let r = &fwd.rules[0];
        assert_eq!(
            r.matches,
            vec![Match::new(Cond::OutIface(vec!["tap3f1c2a4e-5b".into()]))]
        );
        assert_eq!(r.target, Target::Jump("tw-tap3f1c2a4e-5b".into()));
        assert_eq!(r.counters.expect("test fixture").packets, 16);
        assert_eq!(
            r.text,
            "oifname \"tap3f1c2a4e-5b\" counter packets 16 bytes 924 jump tw-tap3f1c2a4e-5b # handle 7"
        );
        let tw = rules_of(&ts, "vmsg", "tw-tap3f1c2a4e-5b");
        assert_eq!(
            tw[0].matches,
            vec![Match::new(Cond::CtState(vec![
                "established".into(),
                "related".into()
            ]))]
        );
        assert_eq!(
            tw[1].matches,
            vec![Match::new(Cond::CtState(vec!["invalid".into()]))]
        );
        assert_eq!(
            tw[3].matches,
            vec![
                Match::new(Cond::Proto(vec![6])),
                Match::new(Cond::Dport(vec![PortRange::one(22)]))
            ]
        );
        assert_eq!(tw[4].matches, vec![Match::new(Cond::Proto(vec![1, 58]))]);
        assert_eq!(tw[5].comment.as_deref(), Some("sg-fallback"));
        assert_eq!(tw[5].target, Target::Drop);
        let fw = rules_of(&ts, "vmsg", "fw-tap3f1c2a4e-5b");
        assert_eq!(
            fw[1].matches,
            vec![Match::not(Cond::MacSrc(vec!["fa:16:3e:00:00:01".into()]))]
        );
        assert_eq!(
            fw[2].matches,
            vec![
                Match::new(Cond::Ipv6(false)),
                Match::not(Cond::Src(vec![
                    Net::parse("198.51.100.11").expect("test fixture")
                ]))
            ]
        );
        let pre = ts[1].chain("prerouting").expect("test fixture");
        assert_eq!(pre.hook.as_ref().expect("test fixture").kind, "nat");
        assert_eq!(pre.hook.as_ref().expect("test fixture").priority, -100);
        assert_eq!(
            pre.rules[0].target,
            Target::Redirect(Some(PortRange::one(9697)))
        );
        assert_eq!(
            pre.rules[0].matches[0].cond,
            Cond::InIface(vec!["tap*".into()])
        );
    }

    #[test]
    fn named_sets_are_resolved() {
        let ts = parse_json(SET).expect("test fixture");
        let tw = rules_of(&ts, "vmsg", "tw-tap3f1c2a4e-5b");
        let r = tw
            .iter()
            .find(|r| r.text.contains("@rg_web"))
            .expect("test fixture");
        assert_eq!(
            r.matches[1].cond,
            Cond::Src(vec![Net::parse("203.0.113.0/24").expect("test fixture")])
        );
        assert_eq!(r.target, Target::Accept);
    }

    #[test]
    fn iptables_nft_tables_show_xt_expressions() {
        let ts = parse_json(IPT).expect("test fixture");
        let names: Vec<_> = ts
            .iter()
            .map(|t| (t.family.clone(), t.name.clone()))
            .collect();
        assert!(names.contains(&(Family::Ip, "filter".into())));
        let nat = rules_of(&ts, "nat", "neutron-l2iso-PREROUTING");
        assert_eq!(nat[0].target, Target::Other("xt target REDIRECT".into()));
        let s = rules_of(&ts, "filter", "neutron-l2iso-s3f1c2a4e-5");
        assert!(s[0]
            .matches
            .iter()
            .any(|m| m.cond == Cond::Unsupported("xt match mac".into())));
    }

    #[test]
    fn verdict_maps_expand_and_unknown_expressions_stay_unsupported() {
        let j = r#"{"nftables":[{"table":{"family":"inet","name":"t","handle":1}},
          {"chain":{"family":"inet","table":"t","name":"fwd","handle":1,"type":"filter","hook":"forward","prio":0,"policy":"drop"}},
          {"chain":{"family":"inet","table":"t","name":"a","handle":2}},
          {"rule":{"family":"inet","table":"t","chain":"fwd","handle":3,"expr":[
            {"counter":{"packets":5,"bytes":6}},
            {"vmap":{"key":{"meta":{"key":"oifname"}},"data":{"set":[["tap1",{"jump":{"target":"a"}}],["tap2",{"drop":null}]]}}}]}},
          {"rule":{"family":"inet","table":"t","chain":"fwd","handle":4,"expr":[
            {"limit":{"rate":5,"per":"second"}},{"accept":null}]}},
          {"rule":{"family":"inet","table":"t","chain":"fwd","handle":5,"expr":[
            {"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":{"set":[22,{"range":[8000,8080]}]}}},
            {"match":{"op":"==","left":{"payload":{"protocol":"ip6","field":"saddr"}},"right":{"prefix":{"addr":"2001:db8::","len":32}}}},
            {"reject":{"type":"tcp reset"}}]}},
          {"rule":{"family":"inet","table":"t","chain":"fwd","handle":6,"expr":[
            {"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"tap*"}},
            {"dnat":{"family":"ip","addr":"192.0.2.5","port":8775}}]}}]}"#;
        let ts = parse_json(j).expect("test fixture");
        let c = ts[0].chain("fwd").expect("test fixture");
        assert_eq!(c.policy, Some(Policy::Drop));
        assert_eq!(c.rules.len(), 5);
        assert_eq!(
            c.rules[0].matches,
            vec![Match::new(Cond::OutIface(vec!["tap1".into()]))]
        );
        assert_eq!(c.rules[0].target, Target::Jump("a".into()));
        assert_eq!(c.rules[0].counters.expect("test fixture").packets, 5);
        assert_eq!(c.rules[1].target, Target::Drop);
        assert!(c.rules[1].counters.is_none());
        assert!(
            matches!(c.rules[2].matches[0].cond, Cond::Unsupported(ref s) if s.starts_with("limit"))
        );
        assert_eq!(
            c.rules[3].matches[1].cond,
            Cond::Dport(vec![PortRange::one(22), PortRange { lo: 8000, hi: 8080 }])
        );
        assert_eq!(
            c.rules[3].matches[3].cond,
            Cond::Src(vec![Net::parse("2001:db8::/32").expect("test fixture")])
        );
        assert_eq!(c.rules[3].target, Target::Reject("tcp reset".into()));
        assert_eq!(
            c.rules[4].target,
            Target::Dnat {
                addr: Some("192.0.2.5".parse().expect("test fixture")),
                port: Some(8775)
            }
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_json("Error: syntax").is_err());
        assert!(parse_json("{}").is_err());
    }
}
