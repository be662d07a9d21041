//! What a BGP speaker is and what it told us: the facts both clients (`bird.rs`, `frr.rs`)
//! produce for the checks in `check::bgp`, and the error they fail with.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which routing daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeakerKind {
    Bird,
    Frr,
}

/// How to reach a daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// BIRD control socket (`bird -s PATH`).
    BirdSocket(PathBuf),
    /// FRR daemons' vty unix sockets, e.g. `/run/frr/<pathspace>/bgpd.vty` and `zebra.vty`.
    FrrVty {
        bgpd: PathBuf,
        zebra: PathBuf,
        /// `-N NAME` of the daemons, for the `vtysh -N NAME` fallback and for fix hints.
        pathspace: Option<String>,
    },
}

/// A BGP speaker found on this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Speaker {
    pub kind: SpeakerKind,
    pub pid: Option<u32>,
    pub endpoint: Endpoint,
    /// How it was found: `bird pid 812 -s /run/bird/hv1.ctl`, `--bird-socket flag`.
    pub origin: String,
    /// The daemon's uid, when found from a process: its sockets must be its own or root's.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Why the process is not trusted as a source (`collect::trust`): it is not asked.
    #[serde(default)]
    pub untrusted: Option<String>,
}

impl Speaker {
    /// `BIRD via /run/bird/hv1.ctl`, `FRR via /run/frr/hv2/bgpd.vty`.
    pub fn describe(&self) -> String {
        match &self.endpoint {
            Endpoint::BirdSocket(p) => format!("BIRD via {}", p.display()),
            Endpoint::FrrVty { bgpd, .. } => format!("FRR via {}", bgpd.display()),
        }
    }

    /// The operator's command prefix for this daemon: `birdc -s /run/bird/hv1.ctl`,
    /// `vtysh -N hv2`, `vtysh`.
    pub fn control_command(&self) -> String {
        match &self.endpoint {
            Endpoint::BirdSocket(p) => {
                if BIRD_DEFAULT_SOCKETS[..2].iter().any(|d| Path::new(d) == p) {
                    "birdc".to_string()
                } else {
                    format!("birdc -s {}", p.display())
                }
            }
            Endpoint::FrrVty {
                bgpd, pathspace, ..
            } => {
                if let Some(ns) = pathspace {
                    return format!("vtysh -N {ns}");
                }
                let dir = bgpd.parent().unwrap_or(Path::new("/run/frr"));
                if FRR_DEFAULT_DIRS.iter().any(|d| Path::new(d) == dir) {
                    "vtysh".to_string()
                } else {
                    format!("vtysh --vty_socket {}", dir.display())
                }
            }
        }
    }
}

/// Command-line overrides of discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--bird-socket PATH`.
    pub bird_socket: Option<PathBuf>,
    /// `--frr-dir DIR`: the directory holding `bgpd.vty` and `zebra.vty`.
    pub frr_dir: Option<PathBuf>,
}

/// Address family of a BGP session or prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    #[serde(rename = "ipv4")]
    V4,
    #[serde(rename = "ipv6")]
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
    /// Family of a `198.51.100.11/32` style prefix string.
    pub fn of_prefix(prefix: &str) -> Family {
        if prefix.contains(':') {
            Family::V6
        } else {
            Family::V4
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

/// What a daemon told us, for the checks in `check::bgp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpFacts {
    /// `BIRD 2.0.12 via /run/bird/hv1.ctl`, `FRRouting 8.4.4 via /run/frr/hv2/bgpd.vty`.
    pub speaker: String,
    pub kind: SpeakerKind,
    /// Command prefix for fixes: `birdc -s /run/bird/hv1.ctl`, `vtysh -N hv2`.
    pub control: String,
    /// Local AS when the daemon reports it (FRR), for `router bgp ASN` in fixes.
    pub local_as: Option<u32>,
    pub rib: Vec<RibEntry>,
    pub peers: Vec<Peer>,
}

/// One VM prefix in the daemon's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RibEntry {
    /// `198.51.100.11/32`.
    pub prefix: String,
    /// The daemon has at least one route for exactly this prefix.
    pub present: bool,
    /// One of those routes comes from the local kernel table (BIRD kernel protocol with
    /// `learn`; FRR: redistributed, zebra has it as a kernel route).
    pub from_kernel: bool,
    /// The best (selected) route is the kernel one.
    pub best_from_kernel: bool,
    /// Source of the best route: `kernel4`, `tor1`, `kernel`, `bgp 192.0.2.1`.
    pub best_source: Option<String>,
    /// What the daemon showed, verbatim lines (BIRD) or the salient JSON fields (FRR).
    pub detail: Vec<String>,
}

/// One BGP session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// BIRD protocol name (`tor1`) or FRR neighbor (`192.0.2.1`, or an interface name for
    /// unnumbered sessions).
    pub name: String,
    /// Neighbor address (for unnumbered FRR peers: the learned link-local address).
    pub address: Option<String>,
    /// Hostname the peer announced (FRR hostname capability).
    pub hostname: Option<String>,
    /// Address families carried by the session (BIRD channels; FRR negotiated AFIs).
    pub families: Vec<Family>,
    /// Session state verbatim: `Established`, `Active`, `Connect`, `Idle (Admin)`, `Down`.
    pub state: String,
    pub established: bool,
    /// Shut down by configuration (`birdc disable`, `neighbor X shutdown`).
    pub admin_down: bool,
    /// Last error / reset reason when the daemon shows one.
    pub last_error: Option<String>,
    /// One entry per VM prefix of a family the session carries.
    pub exported: Vec<Export>,
}

/// Is one VM prefix advertised to one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    pub prefix: String,
    /// In the peer's adj-RIB-out (after the export filter).
    pub advertised: bool,
    /// The filter that rejects it, as configured: `export filter tor1_out` (BIRD),
    /// `route-map HV_OUT out` (FRR).
    pub rejected_by_filter: Option<String>,
    /// FRR RFC 8212: eBGP peer without outbound policy, nothing is sent.
    pub missing_policy: bool,
    pub detail: Vec<String>,
}

/// Why a daemon could not be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BgpErrorKind {
    /// Socket file absent.
    NotFound,
    /// Nobody listens on the socket.
    Refused,
    /// No permission to open the socket.
    Permission,
    /// No complete answer before the deadline.
    Timeout,
    /// The daemon answered something we do not understand.
    Protocol,
    /// The daemon rejected a command.
    Command,
    /// Other I/O failure.
    Io,
    /// The daemon (or its socket) is not trusted as a source.
    Untrusted,
}

/// A failure to collect facts: what failed, why, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpError {
    pub kind: BgpErrorKind,
    /// `BIRD control socket /run/bird/hv1.ctl`.
    pub target: String,
    /// `connection refused`.
    pub detail: String,
    /// `is bird running? set --bird-socket`.
    pub hint: String,
}

impl BgpError {
    pub fn new(
        kind: BgpErrorKind,
        target: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        BgpError {
            kind,
            target: target.into(),
            detail: detail.into(),
            hint: hint.into(),
        }
    }

    /// Map an I/O error on a daemon socket; `hint_missing` is what to do when the daemon
    /// is not there (differs between BIRD and FRR).
    pub(crate) fn from_io(
        target: &str,
        e: &io::Error,
        timeout: Duration,
        hint_missing: &str,
    ) -> Self {
        use io::ErrorKind as K;
        let (kind, detail, hint) = match e.kind() {
            K::NotFound => (
                BgpErrorKind::NotFound,
                "no such socket".to_string(),
                hint_missing.to_string(),
            ),
            K::ConnectionRefused => (
                BgpErrorKind::Refused,
                "connection refused".to_string(),
                format!("stale socket? {hint_missing}"),
            ),
            K::PermissionDenied => (
                BgpErrorKind::Permission,
                "permission denied".to_string(),
                "run vmpath as root (or in the daemon's socket group)".to_string(),
            ),
            K::TimedOut | K::WouldBlock => (
                BgpErrorKind::Timeout,
                format!("no answer within {} ms", timeout.as_millis()),
                "the daemon is busy or hung: retry, check its log, or raise --timeout".to_string(),
            ),
            K::UnexpectedEof | K::ConnectionReset | K::BrokenPipe => (
                BgpErrorKind::Io,
                format!("connection closed by the daemon ({e})"),
                "the daemon dropped the connection: is it restarting? retry".to_string(),
            ),
            _ => (
                BgpErrorKind::Io,
                e.to_string(),
                "check the socket path and that the daemon runs".to_string(),
            ),
        };
        BgpError::new(kind, target, detail, hint)
    }
}

impl fmt::Display for BgpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.target, self.detail)?;
        if !self.hint.is_empty() {
            write!(f, " — {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for BgpError {}

/// A daemon that could not be asked: could not determine.
impl From<BgpError> for crate::error::Error {
    fn from(e: BgpError) -> Self {
        crate::error::Error::Unknown(e.to_string())
    }
}

/// Default BIRD control sockets, in the order tried.
pub const BIRD_DEFAULT_SOCKETS: [&str; 3] = [
    "/run/bird/bird.ctl",
    "/var/run/bird/bird.ctl",
    "/var/run/calico/bird.ctl",
];
/// BIRD 1.x IPv6 daemon's sockets.
pub const BIRD6_DEFAULT_SOCKETS: [&str; 2] = ["/run/bird/bird6.ctl", "/var/run/bird/bird6.ctl"];
/// FRR vty directories without a pathspace.
pub const FRR_DEFAULT_DIRS: [&str; 2] = ["/run/frr", "/var/run/frr"];
