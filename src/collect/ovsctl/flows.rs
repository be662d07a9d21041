//! OpenFlow flow dumps, as ovs-vswitchd's `bridge/dump-flows BRIDGE` prints them
//! (`table_id=N, duration=1s, n_packets=0, n_bytes=0, priority=1,MATCH,actions=…`, no
//! `table_id` for table 0, hidden flows of table 254 included) and as `ovs-ofctl dump-flows`
//! does (`cookie=…, duration=…, table=N, n_packets=…, n_bytes=…, [idle_timeout=…,]
//! [hard_timeout=…,] idle_age=…, priority=…,MATCH actions=…`), and what the Neutron OVS agent's
//! br-tun and br-int flows say: the VNI of each local VLAN, the flood and unicast entries, the
//! drop flows of dead ports. Pure.
//!
//! Tables are neutron-lib's (`plugins/ml2/ovs_constants.py`): br-tun 3/4/6 (GRE/VXLAN/Geneve
//! tunnel → local VLAN), 20 (unicast to a tunnel), 22 (flood to the tunnels); br-int 0 (local
//! switching, where a dead port's traffic is dropped).

use serde::{Deserialize, Serialize};

/// One flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flow {
    pub table: u8,
    /// 32768 (OpenFlow's default) when the dump prints none.
    pub priority: u32,
    /// The match, in order: `("in_port", Some("3"))`, `("ip", None)`; quotes of `--names`
    /// values removed.
    pub matches: Vec<(String, Option<String>)>,
    /// The actions, split at the top level (`learn(…)` stays one).
    pub actions: Vec<String>,
    pub n_packets: Option<u64>,
    pub cookie: Option<u64>,
    /// `idle_timeout=` / `hard_timeout=` (`ovs-ofctl` prints them, `bridge/dump-flows` not):
    /// a learned flow has a hard timeout.
    pub idle_timeout: Option<u32>,
    pub hard_timeout: Option<u32>,
}

/// br-tun table mapping GRE tunnel keys to local VLANs (neutron-lib `GRE_TUN_TO_LV`).
pub const GRE_TUN_TO_LV: u8 = 3;
/// br-tun table mapping VXLAN VNIs to local VLANs (`VXLAN_TUN_TO_LV`).
pub const VXLAN_TUN_TO_LV: u8 = 4;
/// br-tun table mapping Geneve VNIs to local VLANs (`GENEVE_TUN_TO_LV`).
pub const GENEVE_TUN_TO_LV: u8 = 6;
/// br-tun table of unicast entries: (local VLAN, MAC) → tunnel port (`UCAST_TO_TUN`).
pub const UCAST_TO_TUN: u8 = 20;
/// br-tun table flooding a local VLAN to every tunnel of its network (`FLOOD_TO_TUN`).
pub const FLOOD_TO_TUN: u8 = 22;
/// br-int's first table, where the agent drops a dead port's traffic (`LOCAL_SWITCHING`).
pub const LOCAL_SWITCHING: u8 = 0;

/// The keys of a dump's statistics and flags (everything else before `actions=` is the match).
const STATS: &[&str] = &[
    "cookie",
    "duration",
    "table",
    "table_id",
    "n_packets",
    "n_bytes",
    "n_offload_packets",
    "n_offload_bytes",
    "idle_timeout",
    "hard_timeout",
    "importance",
    "idle_age",
    "hard_age",
    "send_flow_rem",
    "check_overlap",
    "reset_counts",
    "no_packet_counts",
    "no_byte_counts",
];

impl Flow {
    /// The value of a match field (`None` when absent or a bare keyword like `ip`).
    pub fn field(&self, key: &str) -> Option<&str> {
        self.matches
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Does the match name this field or keyword?
    pub fn has(&self, key: &str) -> bool {
        self.matches.iter().any(|(k, _)| k == key)
    }

    /// The local VLAN the flow matches: `dl_vlan=N`, or `vlan_tci=V/M` with the whole VID in
    /// the mask.
    pub fn vlan(&self) -> Option<u16> {
        if let Some(v) = self.field("dl_vlan") {
            return number(v).and_then(|n| u16::try_from(n).ok());
        }
        let (v, m) = self.field("vlan_tci")?.split_once('/')?;
        let (v, m) = (number(v)?, number(m)?);
        (m & 0x0fff == 0x0fff).then_some((v & 0x0fff) as u16)
    }

    /// The tunnel ID the actions set: `load:0x36f->NXM_NX_TUN_ID[]`, `set_field:0x36f->tun_id`
    /// or `set_tunnel[64]:0x36f`.
    pub fn sets_tun_id(&self) -> Option<u32> {
        self.actions.iter().find_map(|a| {
            let v = if let Some(r) = a.strip_prefix("load:") {
                r.strip_suffix("->NXM_NX_TUN_ID[]")?
            } else if let Some(r) = a.strip_prefix("set_field:") {
                r.strip_suffix("->tun_id")?
            } else {
                a.strip_prefix("set_tunnel:")
                    .or_else(|| a.strip_prefix("set_tunnel64:"))?
            };
            number(v).and_then(|n| u32::try_from(n).ok())
        })
    }

    /// The VLAN the actions push or set: `mod_vlan_vid:N`, `set_field:N->vlan_vid` (the
    /// OFPVID_PRESENT bit removed).
    pub fn sets_vlan(&self) -> Option<u16> {
        self.actions.iter().find_map(|a| {
            let v = a
                .strip_prefix("mod_vlan_vid:")
                .or_else(|| a.strip_prefix("set_field:")?.strip_suffix("->vlan_vid"))?;
            number(v).map(|n| (n & 0x0fff) as u16)
        })
    }

    /// The numbered OpenFlow ports the actions output to (`output:2`; named ones skipped).
    pub fn outputs(&self) -> Vec<u32> {
        self.actions
            .iter()
            .filter_map(|a| a.strip_prefix("output:")?.parse().ok())
            .collect()
    }

    /// The tunnel ID the flow matches (`tun_id=0x36f`, without a mask).
    pub fn tun_id(&self) -> Option<u32> {
        self.field("tun_id")
            .filter(|v| !v.contains('/'))
            .and_then(number)
            .and_then(|n| u32::try_from(n).ok())
    }
}

/// A number as OVS prints it: `0x…` hex or decimal.
pub(crate) fn number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Split an action list (or any OVS argument list) at its top-level commas: parentheses,
/// brackets, braces and double-quoted strings keep theirs. Stray closing brackets are kept as
/// text. Linear in the input.
pub fn split_actions(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0usize, false, false, 0);
    for (i, b) in s.bytes().enumerate() {
        if quoted {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => quoted = true,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.retain(|p| !p.is_empty());
    out
}

/// Where `actions=` starts: its first occurrence at the start or after a space or comma.
fn actions_at(line: &str) -> Option<usize> {
    line.match_indices("actions=")
        .map(|(i, _)| i)
        .find(|&i| i == 0 || matches!(line.as_bytes()[i - 1], b' ' | b','))
}

/// One line of a dump, or None for headers (`NXST_FLOW reply …`) and other lines.
fn parse_line(line: &str) -> Option<Flow> {
    let t = line.trim();
    let at = actions_at(t)?;
    let mut f = Flow {
        priority: 32768,
        actions: split_actions(&t[at + "actions=".len()..])
            .into_iter()
            .map(String::from)
            .collect(),
        ..Flow::default()
    };
    for tok in split_actions(&t[..at])
        .into_iter()
        .flat_map(str::split_whitespace)
    {
        let (k, v) = match tok.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (tok, None),
        };
        let num = || v.and_then(number);
        let small = || num().and_then(|n| u32::try_from(n).ok());
        match k {
            "table" | "table_id" => f.table = u8::try_from(num()?).ok()?,
            "priority" => f.priority = small()?,
            "n_packets" => f.n_packets = num(),
            "cookie" => f.cookie = v.and_then(|c| number(c.split('/').next().unwrap_or(c))),
            "idle_timeout" => f.idle_timeout = small(),
            "hard_timeout" => f.hard_timeout = small(),
            _ if STATS.contains(&k) => {}
            _ => {
                let v = v.map(|v| {
                    v.strip_prefix('"')
                        .and_then(|x| x.strip_suffix('"'))
                        .unwrap_or(v)
                        .to_string()
                });
                f.matches.push((k.to_string(), v));
            }
        }
    }
    Some(f)
}

/// Parse a flow dump (`bridge/dump-flows` or `ovs-ofctl dump-flows`). Total: lines that are no
/// flow (headers, garbage, a table that is not a number) are skipped.
pub fn parse_dump_flows(text: &str) -> Vec<Flow> {
    text.lines().filter_map(parse_line).collect()
}

/// A local VLAN and its network's VNI (or GRE key), as one br-tun flow maps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanVni {
    pub vlan: u16,
    pub vni: u32,
    /// The table that says so: 3/4/6 (traffic from the tunnels) or 22 (flooding to them).
    pub table: u8,
}

/// Every local VLAN ↔ VNI mapping br-tun holds: tables 3/4/6 (`tun_id=0x36f` →
/// `mod_vlan_vid:1`) and table 22 (`dl_vlan=1` → `load:0x36f->NXM_NX_TUN_ID[]`).
pub fn vlan_vnis(br_tun: &[Flow]) -> Vec<VlanVni> {
    br_tun
        .iter()
        .filter_map(|f| {
            let (vlan, vni) = match f.table {
                GRE_TUN_TO_LV | VXLAN_TUN_TO_LV | GENEVE_TUN_TO_LV => (f.sets_vlan()?, f.tun_id()?),
                FLOOD_TO_TUN => (f.vlan()?, f.sets_tun_id()?),
                _ => return None,
            };
            Some(VlanVni {
                vlan,
                vni,
                table: f.table,
            })
        })
        .collect()
}

/// The VNI of a local VLAN: from the flooding table 22, else from the tunnel tables.
pub fn vni_of_vlan(br_tun: &[Flow], vlan: u16) -> Option<u32> {
    let all = vlan_vnis(br_tun);
    let of = |egress: bool| {
        all.iter()
            .find(|m| m.vlan == vlan && (m.table == FLOOD_TO_TUN) == egress)
            .map(|m| m.vni)
    };
    of(true).or_else(|| of(false))
}

/// The local VLAN of a VNI: from the tunnel tables, else from the flooding table 22.
pub fn vlan_of_vni(br_tun: &[Flow], vni: u32) -> Option<u16> {
    let all = vlan_vnis(br_tun);
    let of = |ingress: bool| {
        all.iter()
            .find(|m| m.vni == vni && (m.table != FLOOD_TO_TUN) == ingress)
            .map(|m| m.vlan)
    };
    of(true).or_else(|| of(false))
}

/// A local VLAN's flood entry in br-tun table 22.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flood {
    pub vlan: u16,
    pub vni: Option<u32>,
    /// The tunnel ofports it floods to.
    pub outputs: Vec<u32>,
}

/// The flood entries of br-tun table 22, one per local VLAN (its catch-all drop excluded).
pub fn floods(br_tun: &[Flow]) -> Vec<Flood> {
    br_tun
        .iter()
        .filter(|f| f.table == FLOOD_TO_TUN)
        .filter_map(|f| {
            Some(Flood {
                vlan: f.vlan()?,
                vni: f.sets_tun_id(),
                outputs: f.outputs(),
            })
        })
        .collect()
}

/// A unicast entry of br-tun table 20: frames of a local VLAN to a MAC go to one tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unicast {
    pub vlan: u16,
    /// `dl_dst` as printed (lower case).
    pub mac: String,
    pub vni: Option<u32>,
    /// The tunnel ofport.
    pub output: Option<u32>,
    /// Learned from traffic (table 10's `learn()`, `hard_timeout=300`: it goes away 300 s
    /// after the last frame) rather than installed (l2population). Only `ovs-ofctl` dumps
    /// print timeouts: in a `bridge/dump-flows` dump every entry reads as installed.
    pub learned: bool,
}

/// The unicast entries of br-tun table 20 (its catch-all resubmit excluded).
pub fn unicasts(br_tun: &[Flow]) -> Vec<Unicast> {
    br_tun
        .iter()
        .filter(|f| f.table == UCAST_TO_TUN)
        .filter_map(|f| {
            Some(Unicast {
                vlan: f.vlan()?,
                mac: f.field("dl_dst")?.to_ascii_lowercase(),
                vni: f.sets_tun_id(),
                output: f.outputs().first().copied(),
                learned: f.hard_timeout.is_some(),
            })
        })
        .collect()
}

/// The OpenFlow ports whose traffic br-int table 0 drops (`in_port=N actions=drop`): the
/// agent's dead ports, and also its physical bridges' patch ports (`int-br-ex`), which it drops
/// there too; tell them apart by the Port's tag (4095 for a dead port).
pub fn dropped_in_ports(br_int: &[Flow]) -> Vec<u32> {
    br_int
        .iter()
        .filter(|f| f.table == LOCAL_SWITCHING && f.actions == ["drop"])
        .filter_map(|f| f.field("in_port")?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<Flow> {
        parse_dump_flows(&crate::collect::ovsctl::tests::fixture(name))
    }

    #[test]
    fn bridge_dump_flows_of_br_tun() {
        let f = fixture("bridge-dump-flows-br-tun.txt");
        assert_eq!(f.len(), 23);
        assert_eq!(
            f[0],
            Flow {
                table: 0,
                priority: 1,
                matches: vec![("in_port".into(), Some("1".into()))],
                actions: vec!["resubmit(,2)".into()],
                n_packets: Some(0),
                ..Flow::default()
            }
        );
        let learn = f
            .iter()
            .find(|x| x.table == 10 && x.priority == 1)
            .expect("10");
        assert_eq!(learn.actions.len(), 2);
        assert!(learn.actions[0].starts_with("learn(table=20,hard_timeout=300,"));
        assert_eq!(learn.actions[1], "output:1");
        assert_eq!(vni_of_vlan(&f, 1), Some(0x36f), "{:?}", vlan_vnis(&f));
        assert_eq!(vlan_of_vni(&f, 0x36f), Some(1));
        assert_eq!(vlan_of_vni(&f, 0x999), None);
        assert_eq!(
            floods(&f),
            [Flood {
                vlan: 1,
                vni: Some(0x36f),
                outputs: vec![2, 3]
            }]
        );
        let u = unicasts(&f);
        assert_eq!(u.len(), 2);
        assert_eq!(
            u[1],
            Unicast {
                vlan: 1,
                mac: "fa:16:3e:a6:39:ae".into(),
                vni: Some(0x36f),
                output: Some(2),
                learned: false
            }
        );
        let hidden: Vec<&Flow> = f.iter().filter(|x| x.table == 254).collect();
        assert_eq!(hidden.len(), 4);
        assert_eq!(hidden[1].actions, ["controller(reason=)"]);
    }

    #[test]
    fn bridge_dump_flows_of_br_int() {
        let f = fixture("bridge-dump-flows-br-int.txt");
        assert_eq!(dropped_in_ports(&f), [1]);
        let dead_vlan = &f[0];
        assert_eq!((dead_vlan.priority, dead_vlan.vlan()), (65535, Some(4095)));
        let ct = f
            .iter()
            .find(|x| {
                x.table == 72
                    && x.priority == 40
                    && x.has("ip")
                    && x.field("ct_state") == Some("+est")
            })
            .expect("72");
        assert_eq!(
            ct.actions,
            ["ct(commit,zone=NXM_NX_REG6[0..15],exec(load:0x1->NXM_NX_CT_MARK[]))"]
        );
        let conj = f
            .iter()
            .find(|x| x.field("conj_id") == Some("17"))
            .expect("conj");
        assert_eq!(
            conj.actions,
            [
                "load:0x11->NXM_NX_REG7[]",
                "ct(commit,zone=NXM_NX_REG6[0..15])",
                "output:3",
                "resubmit(,92)"
            ]
        );
        assert_eq!(f.iter().filter(|x| x.n_packets == Some(5)).count(), 6);
    }

    #[test]
    fn ovs_ofctl_dumps_of_the_agents() {
        let hv1 = fixture("agents/hv1-dump-flows-br-tun.txt");
        assert_eq!(hv1.len(), 19);
        assert_eq!(hv1[0].cookie, Some(0x73f7_8f62_1f20_2d6e));
        let u = unicasts(&hv1);
        assert_eq!(u.len(), 2);
        assert!(u
            .iter()
            .all(|x| x.learned && x.output == Some(2) && x.vlan == 1));
        assert_eq!(u[1].mac, "fa:16:3e:a6:39:ae");
        assert_eq!(
            hv1.iter()
                .find(|x| x.table == 20)
                .and_then(|x| x.hard_timeout),
            Some(300)
        );
        assert_eq!(floods(&hv1)[0].outputs, [2, 3]);
        // Per host: net1 maps 0x36f to VLAN 1 and 0x28e to 2, net2 the other way round.
        let net1 = fixture("agents/net1-dump-flows-br-tun.txt");
        assert_eq!(
            (vlan_of_vni(&net1, 0x36f), vlan_of_vni(&net1, 0x28e)),
            (Some(1), Some(2))
        );
        assert_eq!(vni_of_vlan(&net1, 2), Some(0x28e));
        let net2 = fixture("agents/net2-dump-flows-br-tun.txt");
        assert_eq!(
            (vlan_of_vni(&net2, 0x36f), vlan_of_vni(&net2, 0x28e)),
            (Some(2), Some(1))
        );
        let int = fixture("agents/hv1-dump-flows-br-int.txt");
        assert_eq!(int.len(), 88);
        assert_eq!(dropped_in_ports(&int), [1]);
        let ex = fixture("agents/net1-dump-flows-br-ex.txt");
        assert_eq!(ex.len(), 3);
        assert_eq!(ex[0].actions, ["strip_vlan", "NORMAL"]);
        assert_eq!(ex[0].vlan(), Some(3));
        for name in [
            "agents/net1-dump-flows-br-int.txt",
            "agents/net2-dump-flows-br-int.txt",
            "agents/net2-dump-flows-br-ex.txt",
        ] {
            let f = fixture(name);
            assert!(
                !f.is_empty() && f.iter().all(|x| !x.actions.is_empty()),
                "{name}"
            );
        }
    }

    #[test]
    fn other_spellings_and_garbage() {
        let f = parse_dump_flows(
            " cookie=0x1, duration=1.5s, table=22, n_packets=0, n_bytes=0, idle_age=1, priority=1,dl_vlan=7 actions=strip_vlan,set_field:0x64->tun_id,output:\"vxlan-c633640b\",output:4\n\
             table=4, priority=1,tun_id=0x64 actions=push_vlan:0x8100,set_field:4103->vlan_vid,resubmit(,10)\n\
             table=20, idle_timeout=30, priority=2,dl_vlan=7,dl_dst=FA:16:3E:00:00:01 actions=strip_vlan,set_tunnel:0x64,output:9\n\
             NXST_FLOW reply (xid=0x4):\n table=foo, priority=1 actions=drop\nactions=\n in_port=1 actions=drop\n",
        );
        assert_eq!(f.len(), 5);
        assert_eq!(floods(&f)[0].outputs, [4]);
        assert_eq!(vni_of_vlan(&f, 7), Some(100));
        assert_eq!(vlan_of_vni(&f, 100), Some(7));
        let u = &unicasts(&f)[0];
        assert_eq!(
            (u.mac.as_str(), u.vni, u.output, u.learned),
            ("fa:16:3e:00:00:01", Some(100), Some(9), false)
        );
        assert_eq!(f[3].actions, Vec::<String>::new());
        assert_eq!((f[4].table, f[4].priority), (0, 32768));
        assert_eq!(dropped_in_ports(&f), [1]);
        assert_eq!(
            split_actions("a(b,c),d[1,2],\"x,y\",e)f,,g"),
            ["a(b,c)", "d[1,2]", "\"x,y\"", "e)f", "g"]
        );
        assert!(parse_dump_flows("actions").is_empty());
        assert_eq!(number("0x36f"), Some(879));
        assert_eq!(number("0xzz"), None);
    }
}
