//! Firewall rules of this network namespace: iptables (nft and legacy backends, IPv4 and IPv6)
//! and native nftables, parsed into one model that the security-group and metadata checks read
//! and that [`eval`] walks a packet through.
//!
//! The I/O edge is [`collect`]: it runs `iptables-save -c`, `ip6tables-save -c`, the legacy
//! variants when legacy tables exist, and `nft -j list ruleset`, in parallel threads, each with a
//! timeout. A missing binary or a permission error becomes an error in [`SourceReport`], never a
//! panic. The parsers ([`iptables::parse_save`], [`nft::parse_json`]) are pure.

pub mod iptables;
pub mod nft;
pub mod xtnl;

pub use super::child::{display_cmd, find_bin};
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::error::Error;
use serde::{Deserialize, Serialize};

/// Where a table was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Backend {
    /// `iptables-save` of the nf_tables backend (`iptables-nft`).
    IptablesNft,
    /// `iptables-legacy-save` (x_tables).
    IptablesLegacy,
    /// `nft -j list ruleset`, native tables only.
    Nft,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::IptablesNft => "iptables-nft",
            Backend::IptablesLegacy => "iptables-legacy",
            Backend::Nft => "nft",
        }
    }
    pub fn is_iptables(self) -> bool {
        !matches!(self, Backend::Nft)
    }
}

/// Address family of a table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    Ip,
    Ip6,
    Inet,
    /// arp, bridge, netdev: kept, never evaluated.
    Other(String),
}

impl Family {
    pub fn from_nft(s: &str) -> Family {
        match s {
            "ip" => Family::Ip,
            "ip6" => Family::Ip6,
            "inet" => Family::Inet,
            o => Family::Other(o.to_string()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
            Family::Other(s) => s,
        }
    }
    /// True when IPv4 (`v6 == false`) or IPv6 packets traverse tables of this family.
    pub fn carries(&self, v6: bool) -> bool {
        match self {
            Family::Ip => !v6,
            Family::Ip6 => v6,
            Family::Inet => true,
            Family::Other(_) => false,
        }
    }
}

/// Packet and byte counters of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}:{}]", self.packets, self.bytes)
    }
}

/// An address prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Net {
    pub addr: IpAddr,
    pub len: u8,
}

impl Net {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let len = u32::from(self.len.min(32));
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                (u32::from(n) & mask) == (u32::from(*a) & mask)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let len = u32::from(self.len.min(128));
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                (u128::from(n) & mask) == (u128::from(*a) & mask)
            }
            _ => false,
        }
    }
    pub fn is_v6(&self) -> bool {
        self.addr.is_ipv6()
    }
    /// `0.0.0.0/0` or `::/0`.
    pub fn is_any(&self) -> bool {
        self.len == 0
    }
    /// Parse `A`, `A/LEN` or `A/MASK` (dotted IPv4 netmask, as old iptables prints).
    pub fn parse(s: &str) -> Option<Net> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max => n,
                Ok(_) => return None,
                Err(_) => {
                    let m: std::net::Ipv4Addr = l.parse().ok()?;
                    let m = u32::from(m);
                    if m.leading_ones() + m.trailing_zeros() != 32 {
                        return None;
                    }
                    m.leading_ones() as u8
                }
            },
        };
        Some(Net { addr, len })
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An inclusive port range (a single port is `lo == hi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub fn one(p: u16) -> Self {
        PortRange { lo: p, hi: p }
    }
    pub fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }
    /// Parse `N`, `N:M` (iptables) or `N-M` (nft, REDIRECT --to-ports).
    pub fn parse(s: &str) -> Option<PortRange> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once([':', '-']) {
            let lo = if a.is_empty() { 0 } else { a.parse().ok()? };
            let hi = if b.is_empty() {
                u16::MAX
            } else {
                b.parse().ok()?
            };
            return (lo <= hi).then_some(PortRange { lo, hi });
        }
        s.parse().ok().map(PortRange::one)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// IP protocol numbers used by the model.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
    pub const UDPLITE: u8 = 136;

    /// Protocol number from an iptables or nft name (or a number).
    pub fn by_name(s: &str) -> Option<u8> {
        let s = s.to_ascii_lowercase();
        Some(match s.as_str() {
            "icmp" => ICMP,
            "tcp" => TCP,
            "udp" => UDP,
            "icmpv6" | "ipv6-icmp" | "icmp6" => ICMPV6,
            "sctp" => SCTP,
            "udplite" => UDPLITE,
            "gre" => 47,
            "esp" => 50,
            "ah" => 51,
            "igmp" => 2,
            "ipip" | "ipencap" => 4,
            "vrrp" => 112,
            n => return n.parse().ok(),
        })
    }

    pub fn name(p: u8) -> String {
        match p {
            ICMP => "icmp".into(),
            TCP => "tcp".into(),
            UDP => "udp".into(),
            ICMPV6 => "ipv6-icmp".into(),
            SCTP => "sctp".into(),
            n => n.to_string(),
        }
    }

    /// True when packets of this protocol carry ports.
    pub fn has_ports(p: u8) -> bool {
        matches!(p, TCP | UDP | SCTP | UDPLITE)
    }
}

/// What a match looks at. Interface patterns keep iptables' `+` / nft's `*` wildcard suffix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cond {
    InIface(Vec<String>),
    OutIface(Vec<String>),
    /// `-m physdev --physdev-in` (bridged ports); treated like the in-interface.
    PhysIn(Vec<String>),
    PhysOut(Vec<String>),
    Src(Vec<Net>),
    Dst(Vec<Net>),
    /// IP protocol numbers (`-p`, `meta l4proto`, and the protocol implied by `tcp dport`).
    Proto(Vec<u8>),
    Sport(Vec<PortRange>),
    Dport(Vec<PortRange>),
    /// Lower-case conntrack states: new, established, related, invalid, untracked.
    CtState(Vec<String>),
    /// Lower-case source MACs.
    MacSrc(Vec<String>),
    /// ICMP (or ICMPv6) type numbers, with an optional code.
    IcmpType(Vec<(u8, Option<u8>)>),
    /// The packet is IPv6 (true) or IPv4 (false): nft's implicit `meta nfproto` dependency.
    Ipv6(bool),
    /// Anything the model does not evaluate (`-m set`, `limit`, an `xt` match, ...), verbatim.
    Unsupported(String),
}

/// One condition of a rule, possibly negated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    pub cond: Cond,
    pub negated: bool,
}

impl Match {
    pub fn new(cond: Cond) -> Self {
        Match {
            cond,
            negated: false,
        }
    }
    pub fn not(cond: Cond) -> Self {
        Match {
            cond,
            negated: true,
        }
    }
}

/// What a rule does when it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Accept,
    Drop,
    /// REJECT, with its `--reject-with` / nft reject type when given.
    Reject(String),
    Return,
    Jump(String),
    Goto(String),
    /// REDIRECT / nft `redirect`: to a local port (`None`: keep the destination port).
    Redirect(Option<PortRange>),
    /// DNAT / nft `dnat`.
    Dnat {
        addr: Option<IpAddr>,
        port: Option<u16>,
    },
    /// A non-terminating action (LOG, MARK, CT, counter only): evaluation continues. Verbatim.
    Continue(String),
    /// Any other target, verbatim; evaluation cannot go past it when it matches.
    Other(String),
}

impl Target {
    pub fn is_drop(&self) -> bool {
        matches!(self, Target::Drop | Target::Reject(_))
    }
    /// The chain a jump or goto leads to.
    pub fn chain(&self) -> Option<&str> {
        match self {
            Target::Jump(c) | Target::Goto(c) => Some(c),
            _ => None,
        }
    }
}

/// One rule: its matches, target, counters and text for evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub target: Target,
    /// `None` when the rule has no counter (nft rules without `counter`).
    pub counters: Option<Counters>,
    pub comment: Option<String>,
    /// The rule as the tool prints it: the iptables-save line without counters
    /// (`-A CHAIN ...`), or an nft rendering (`oifname "tap1" jump x # handle 7`).
    pub text: String,
}

impl Rule {
    /// The text with counters in front, as `iptables-save -c` prints it.
    pub fn display(&self) -> String {
        match self.counters {
            Some(c) => format!("{c} {}", self.text),
            None => self.text.clone(),
        }
    }
    /// Interface names this rule requires, by direction: `(in, out)`. Only un-negated
    /// interface conditions count (physdev included).
    pub fn ifaces(&self) -> (Vec<&str>, Vec<&str>) {
        let mut i = Vec::new();
        let mut o = Vec::new();
        for m in &self.matches {
            if m.negated {
                continue;
            }
            match &m.cond {
                Cond::InIface(v) | Cond::PhysIn(v) => i.extend(v.iter().map(String::as_str)),
                Cond::OutIface(v) | Cond::PhysOut(v) => o.extend(v.iter().map(String::as_str)),
                _ => {}
            }
        }
        (i, o)
    }
}

/// Base-chain attachment: netfilter hook, chain type and priority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// prerouting, input, forward, output, postrouting (nft: also ingress, egress).
    pub hook: String,
    /// filter, nat or route.
    pub kind: String,
    pub priority: i32,
}

/// Default verdict of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Policy {
    Accept,
    Drop,
}

/// A chain; `hook` is set for base chains (iptables builtins, nft chains with a hook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub name: String,
    pub hook: Option<Hook>,
    pub policy: Option<Policy>,
    pub rules: Vec<Rule>,
}

/// A table as one backend shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub backend: Backend,
    pub family: Family,
    pub name: String,
    pub chains: Vec<Chain>,
}

impl Table {
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }
    pub fn chain_index(&self, name: &str) -> Option<usize> {
        self.chains.iter().position(|c| c.name == name)
    }
    /// `iptables-nft ip filter`, `nft inet vmsg`.
    pub fn label(&self) -> String {
        format!(
            "{} {} {}",
            self.backend.as_str(),
            self.family.as_str(),
            self.name
        )
    }
}

/// How one command went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceReport {
    /// The command line, e.g. `iptables-save -c`.
    pub command: String,
    pub elapsed: Duration,
    /// Why it gave nothing usable; `None` when it worked.
    pub error: Option<String>,
    /// Tables it contributed (after dropping nft tables already read through iptables-save).
    pub tables: usize,
    /// Something worth knowing that is not an error (why a faster path was not taken).
    pub note: Option<String>,
}

impl SourceReport {
    /// A report for a command that worked (no timing).
    pub fn named(command: &str) -> SourceReport {
        SourceReport {
            command: command.to_string(),
            elapsed: Duration::ZERO,
            error: None,
            tables: 0,
            note: None,
        }
    }
}

/// Everything read from the firewall.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallFacts {
    pub tables: Vec<Table>,
    pub sources: Vec<SourceReport>,
}

impl FirewallFacts {
    /// Facts from one `iptables-save -c` text of the nft backend (captured output, tests).
    pub fn from_iptables_save(family: Family, text: &str) -> FirewallFacts {
        let cmd = if family == Family::Ip6 {
            "ip6tables-save -c"
        } else {
            "iptables-save -c"
        };
        Self::from_outputs(
            vec![(
                SourceReport::named(cmd),
                Backend::IptablesNft,
                family,
                Ok(text.to_string()),
            )],
            None,
        )
    }
    /// Facts from one `nft -j list ruleset` document (captured output, tests).
    pub fn from_nft_json(json: &str) -> FirewallFacts {
        Self::from_outputs(
            vec![],
            Some((
                SourceReport::named("nft -j list ruleset"),
                Ok(json.to_string()),
            )),
        )
    }
    /// Facts for a reader that could not run at all.
    pub fn failed(reason: &str) -> FirewallFacts {
        FirewallFacts {
            tables: Vec::new(),
            sources: vec![SourceReport {
                command: "firewall reader".into(),
                elapsed: Duration::ZERO,
                error: Some(reason.to_string()),
                tables: 0,
                note: None,
            }],
        }
    }
    /// Sources that failed.
    pub fn errors(&self) -> Vec<&SourceReport> {
        self.sources.iter().filter(|s| s.error.is_some()).collect()
    }
    /// One line per failed source: `iptables-save -c: not installed ...`.
    pub fn error_lines(&self) -> Vec<String> {
        self.errors()
            .iter()
            .map(|s| format!("{}: {}", s.command, s.error.as_deref().unwrap_or("")))
            .collect()
    }
    /// True when no source gave anything (every command failed or none ran).
    pub fn unreadable(&self) -> bool {
        self.tables.is_empty() && self.sources.iter().all(|s| s.error.is_some())
    }
    /// Tables that IPv4 (`v6 == false`) or IPv6 packets traverse.
    pub fn tables_for(&self, v6: bool) -> impl Iterator<Item = &Table> {
        self.tables.iter().filter(move |t| t.family.carries(v6))
    }

    /// Build facts from raw outputs (the pure half of [`collect`]): iptables-save texts with
    /// their backend and family, and the `nft -j` JSON. nft tables already covered by an
    /// iptables-nft save are skipped so that nothing is counted twice.
    pub fn from_outputs(
        saves: Vec<(SourceReport, Backend, Family, Result<String, Error>)>,
        nft_json: Option<(SourceReport, Result<String, Error>)>,
    ) -> FirewallFacts {
        let mut facts = FirewallFacts::default();
        let mut covered: HashSet<(Family, String)> = HashSet::new();
        for (mut rep, backend, family, out) in saves {
            match out {
                Ok(text) => {
                    let backend = iptables::detect_backend(&text).unwrap_or(backend);
                    let tables = iptables::parse_save(&text, backend, family.clone());
                    if backend == Backend::IptablesNft {
                        for t in &tables {
                            covered.insert((t.family.clone(), t.name.clone()));
                        }
                    }
                    rep.tables = tables.len();
                    facts.tables.extend(tables);
                }
                Err(e) => rep.error = Some(e.to_string()),
            }
            facts.sources.push(rep);
        }
        if let Some((mut rep, out)) = nft_json {
            match out.and_then(|text| nft::parse_json(&text)) {
                Ok(tables) => {
                    let keep: Vec<Table> = tables
                        .into_iter()
                        .filter(|t| !covered.contains(&(t.family.clone(), t.name.clone())))
                        .collect();
                    rep.tables = keep.len();
                    facts.tables.extend(keep);
                }
                Err(e) => rep.error = Some(e.to_string()),
            }
            facts.sources.push(rep);
        }
        facts
    }
}

/// Default time limit for one command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// Read every firewall source of this network namespace (see the module doc).
pub fn collect() -> FirewallFacts {
    collect_with(COMMAND_TIMEOUT)
}

/// [`collect`] with an explicit per-command timeout.
pub fn collect_with(timeout: Duration) -> FirewallFacts {
    struct Job {
        argv: Vec<String>,
        backend: Backend,
        family: Family,
        missing: Option<Error>,
        /// Read this family's iptables-nft rules over nfnetlink first (NFPROTO_*); fork
        /// `argv` only when that fails.
        native: Option<u8>,
    }
    let mut jobs: Vec<Job> = Vec::new();
    let default_save = find_bin("iptables-save");
    let default_is_legacy = default_save
        .as_ref()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .map(|p| p.to_string_lossy().contains("legacy"))
        .unwrap_or(false);
    let default_backend = if default_is_legacy {
        Backend::IptablesLegacy
    } else {
        Backend::IptablesNft
    };
    // Ask the kernel which nftables tables exist and fork only the tools that can show them;
    // when the kernel can't be asked, run everything.
    let listed_at = Instant::now();
    let tables = super::nftables::list_tables(timeout)
        .ok()
        .map(|t| (t, listed_at.elapsed()));
    let has = |f: u8| {
        tables
            .as_ref()
            .is_none_or(|(t, _)| t.iter().any(|x| x.is_iptables() && x.family == f))
    };
    let want_nft = tables
        .as_ref()
        .is_none_or(|(t, _)| t.iter().any(|x| x.is_native_l3()));
    for (bin, family, nf) in [
        ("iptables-save", Family::Ip, super::nftables::IPV4),
        ("ip6tables-save", Family::Ip6, super::nftables::IPV6),
    ] {
        if default_is_legacy || has(nf) {
            let mut j = job_for(bin, default_backend, family);
            if !default_is_legacy && tables.is_some() {
                j.native = Some(nf);
            }
            jobs.push(j);
        }
    }
    if !default_is_legacy {
        for (bin, names, family) in [
            ("iptables-legacy-save", "ip_tables_names", Family::Ip),
            ("ip6tables-legacy-save", "ip6_tables_names", Family::Ip6),
        ] {
            if legacy_tables_present(names) && find_bin(bin).is_some() {
                jobs.push(job_for(bin, Backend::IptablesLegacy, family));
            }
        }
    }
    fn job_for(bin: &str, backend: Backend, family: Family) -> Job {
        match find_bin(bin) {
            Some(p) => Job {
                argv: vec![p.to_string_lossy().into_owned(), "-c".into()],
                backend,
                family,
                missing: None,
                native: None,
            },
            None => Job {
                argv: vec![bin.to_string(), "-c".into()],
                backend,
                family,
                missing: Some(not_installed(bin, "iptables")),
                native: None,
            },
        }
    }
    let nft_argv: Result<Vec<String>, Error> = match find_bin("nft") {
        Some(p) => Ok(vec![
            p.to_string_lossy().into_owned(),
            "-j".into(),
            "list".into(),
            "ruleset".into(),
        ]),
        None => Err(not_installed("nft", "nftables")),
    };

    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|j| {
                s.spawn(move || {
                    let mut note = None;
                    if let Some(nf) = j.native {
                        let start = Instant::now();
                        match xtnl::read(nf, timeout) {
                            Ok(text) => {
                                let cmd = format!("{} (read over nfnetlink)", display_cmd(&j.argv));
                                return (cmd, start.elapsed(), Ok(text), None);
                            }
                            Err(e) => {
                                note = Some(format!("nfnetlink read fell back to the tool: {e}"))
                            }
                        }
                    }
                    let (elapsed, out) = match &j.missing {
                        Some(e) => (Duration::ZERO, Err(e.clone())),
                        None => run_command(&j.argv, timeout),
                    };
                    (display_cmd(&j.argv), elapsed, out, note)
                })
            })
            .collect();
        let nft_handle = nft_argv.as_ref().ok().filter(|_| want_nft).map(|argv| {
            let argv = argv.clone();
            s.spawn(move || run_command(&argv, timeout))
        });
        let mut saves = Vec::new();
        for (j, h) in jobs.iter().zip(handles) {
            let (command, elapsed, out, note) = h.join().unwrap_or_else(|_| {
                (
                    display_cmd(&j.argv),
                    Duration::ZERO,
                    Err(Error::unknown("collector thread panicked")),
                    None,
                )
            });
            let rep = SourceReport {
                command,
                elapsed,
                error: None,
                tables: 0,
                note,
            };
            saves.push((rep, j.backend, j.family.clone(), out));
        }
        let nft = match (nft_handle, &nft_argv) {
            (Some(h), Ok(argv)) => {
                let (elapsed, out) = h.join().unwrap_or_else(|_| {
                    (
                        Duration::ZERO,
                        Err(Error::unknown("collector thread panicked")),
                    )
                });
                let rep = SourceReport {
                    command: display_cmd(argv),
                    elapsed,
                    error: None,
                    tables: 0,
                    note: None,
                };
                Some((rep, out))
            }
            (_, Err(e)) if want_nft => Some((
                SourceReport {
                    command: "nft -j list ruleset".into(),
                    elapsed: Duration::ZERO,
                    error: None,
                    tables: 0,
                    note: None,
                },
                Err(e.clone()),
            )),
            _ => None,
        };
        let mut facts = FirewallFacts::from_outputs(saves, nft);
        if let Some((t, elapsed)) = &tables {
            // The kernel's table list is itself a source: "no tables" is a reading, not a failure.
            facts.sources.insert(
                0,
                SourceReport {
                    command: "nftables table list (netlink)".into(),
                    elapsed: *elapsed,
                    error: None,
                    tables: t.len(),
                    note: None,
                },
            );
        }
        facts
    })
}

fn not_installed(bin: &str, package: &str) -> Error {
    Error::unknown(format!(
        "{bin} not found in PATH, /usr/sbin or /sbin: install the {package} package"
    ))
}

/// Legacy (x_tables) tables exist in this netns when the kernel lists some.
fn legacy_tables_present(names_file: &str) -> bool {
    ["/proc/thread-self/net/", "/proc/self/net/"]
        .iter()
        .find_map(|d| std::fs::read_to_string(format!("{d}{names_file}")).ok())
        .map(|s| !s.trim().is_empty())
        .unwrap_or(false)
}

/// Run a command with a time limit; stdout on success, else an error naming the command, its
/// exit status and its first stderr line. The child is killed (by its pid) when it overruns.
pub fn run_command(argv: &[String], timeout: Duration) -> (Duration, Result<String, Error>) {
    let start = Instant::now();
    let r = run_command_inner(argv, timeout);
    (start.elapsed(), r)
}

fn run_command_inner(argv: &[String], timeout: Duration) -> Result<String, Error> {
    let shown = display_cmd(argv);
    let ran = super::child::run(argv, &[("LC_ALL", "C")], timeout)?;
    let stderr = String::from_utf8_lossy(&ran.stderr);
    if !ran.status.success() {
        let first = stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no error message");
        let hint = if first.contains("ermission denied")
            || first.contains("Operation not permitted")
            || first.contains("must be root")
        {
            ": run vmpath as root"
        } else {
            ""
        };
        return Err(Error::unknown(format!(
            "{shown} failed ({}): {first}{hint}",
            ran.status
        )));
    }
    String::from_utf8(ran.stdout)
        .map_err(|_| Error::unknown(format!("{shown}: output is not UTF-8")))
}

/// Read stdout and stderr of a child until both close or the deadline passes (poll(2)).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nets_and_ports() {
        let n = Net::parse("198.51.100.0/24").expect("test fixture");
        assert!(n.contains(&"198.51.100.11".parse().expect("test fixture")));
        assert!(!n.contains(&"198.51.101.11".parse().expect("test fixture")));
        assert!(!n.contains(&"2001:db8::1".parse().expect("test fixture")));
        assert_eq!(
            Net::parse("192.0.2.0/255.255.255.0").expect("test fixture"),
            Net::parse("192.0.2.0/24").expect("test fixture")
        );
        assert_eq!(Net::parse("2001:db8::1").expect("test fixture").len, 128);
        assert!(Net::parse("0.0.0.0/0").expect("test fixture").is_any());
        assert!(Net::parse("192.0.2.0/33").is_none());
        assert_eq!(
            PortRange::parse("1024:65535").expect("test fixture").lo,
            1024
        );
        assert_eq!(
            PortRange::parse("9697").expect("test fixture"),
            PortRange::one(9697)
        );
        assert_eq!(PortRange::parse("80-90").expect("test fixture").hi, 90);
    }

    #[test]
    fn nft_tables_of_iptables_nft_are_not_counted_twice() {
        let save = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fw/ipt-healthy.save"
        ))
        .to_string();
        let json = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fw/ipt-healthy.nft.json"
        ))
        .to_string();
        let rep = |c: &str| SourceReport {
            command: c.into(),
            elapsed: Duration::ZERO,
            error: None,
            tables: 0,
            note: None,
        };
        let save6 = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/fw/ip6t-healthy.save"
        ))
        .to_string();
        let facts = FirewallFacts::from_outputs(
            vec![
                (
                    rep("iptables-save -c"),
                    Backend::IptablesNft,
                    Family::Ip,
                    Ok(save.clone()),
                ),
                (
                    rep("ip6tables-save -c"),
                    Backend::IptablesNft,
                    Family::Ip6,
                    Ok(save6),
                ),
            ],
            Some((rep("nft -j list ruleset"), Ok(json.clone()))),
        );
        let labels: Vec<String> = facts.tables.iter().map(Table::label).collect();
        assert_eq!(
            labels,
            [
                "iptables-nft ip filter",
                "iptables-nft ip nat",
                "iptables-nft ip6 filter"
            ]
        );
        assert_eq!(facts.sources[2].tables, 0);
        // Without the ip6tables-save output, nft's view of that table is kept.
        let facts = FirewallFacts::from_outputs(
            vec![(
                rep("iptables-save -c"),
                Backend::IptablesNft,
                Family::Ip,
                Ok(save),
            )],
            Some((rep("nft -j list ruleset"), Ok(json))),
        );
        let labels: Vec<String> = facts.tables.iter().map(Table::label).collect();
        assert_eq!(labels.last().map(String::as_str), Some("nft ip6 filter"));
        assert!(facts.errors().is_empty());
    }

    #[test]
    fn missing_and_failing_commands_become_errors() {
        let (_, r) = run_command(&["/nonexistent/iptables-save".into()], COMMAND_TIMEOUT);
        assert!(r.unwrap_err().message().contains("not installed"));
        let (_, r) = run_command(
            &[
                "sh".into(),
                "-c".into(),
                "echo 'Permission denied (you must be root)' >&2; exit 4".into(),
            ],
            COMMAND_TIMEOUT,
        );
        let e = r.unwrap_err();
        assert!(
            e.message().contains("must be root") && e.message().contains("run vmpath as root"),
            "{e}"
        );
    }

    #[test]
    fn an_overrunning_command_is_killed() {
        let t = Instant::now();
        let (_, r) = run_command(&["sleep".into(), "5".into()], Duration::from_millis(100));
        assert!(r.unwrap_err().message().contains("killed"));
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    /// Live smoke test against the real binaries. Run it as root inside a throw-away network
    /// namespace that has rules loaded (tests/fixtures/fw/lab/capture.sh sets one up):
    /// `unshare --net ... cargo test -- --ignored live_collect --nocapture`.
    #[test]
    #[ignore = "needs root and a lab network namespace with firewall rules"]
    fn live_collect() {
        let t = Instant::now();
        let facts = collect();
        let wall = t.elapsed();
        for s in &facts.sources {
            eprintln!(
                "{:<28} {:>7.2} ms  tables={} error={:?}",
                s.command,
                s.elapsed.as_secs_f64() * 1e3,
                s.tables,
                s.error
            );
        }
        eprintln!("collect() wall time: {:.2} ms", wall.as_secs_f64() * 1e3);
        assert!(facts.errors().is_empty(), "{:?}", facts.error_lines());
        assert!(!facts.tables.is_empty());
        assert!(wall < Duration::from_millis(500), "{wall:?}");
    }

    #[test]
    fn command_output_is_read_whole() {
        let (_, r) = run_command(
            &[
                "sh".into(),
                "-c".into(),
                "seq 1 100000; echo done >&2".into(),
            ],
            COMMAND_TIMEOUT,
        );
        let out = r.expect("test fixture");
        assert_eq!(out.lines().count(), 100000);
    }
}
