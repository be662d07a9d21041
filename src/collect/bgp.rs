//! The BGP hop: find the routing daemon of this network namespace (BIRD 2 or FRR), ask it
//! whether the VM's /32 (/128) is in its table, learned from the kernel, and advertised to
//! every peer. The daemon-specific clients live in `bird.rs` and `frr.rs`; this file holds
//! discovery, the facts both produce, the error type and the one socket helper they share.
//!
//! Everything is blocking std I/O bounded by one deadline: `collect()` never takes longer
//! than the timeout it is given (connect included).

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::collect::procs::{Process, ProcessSource};

/// Which routing daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeakerKind {
    Bird,
    Frr,
}

/// How to reach a daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Speaker {
    pub kind: SpeakerKind,
    pub pid: Option<u32>,
    pub endpoint: Endpoint,
    /// How it was found: `bird pid 812 -s /run/bird/hv1.ctl`, `--bird-socket flag`.
    pub origin: String,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

/// A failure to collect facts: what failed, why, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Default BIRD control sockets, in the order tried.
pub const BIRD_DEFAULT_SOCKETS: [&str; 3] = [
    "/run/bird/bird.ctl",
    "/var/run/bird/bird.ctl",
    "/var/run/calico/bird.ctl",
];
/// BIRD 1.x IPv6 daemon's sockets.
const BIRD6_DEFAULT_SOCKETS: [&str; 2] = ["/run/bird/bird6.ctl", "/var/run/bird/bird6.ctl"];
/// FRR vty directories without a pathspace.
pub const FRR_DEFAULT_DIRS: [&str; 2] = ["/run/frr", "/var/run/frr"];

/// Find the BGP speakers of this network namespace (`procs` must be limited to it, as
/// `ProcTable::scan()` is). An override replaces discovery for its daemon.
pub fn discover(procs: &dyn ProcessSource, ov: &Overrides) -> Vec<Speaker> {
    let mut out: Vec<Speaker> = Vec::new();
    let mut push = |s: Speaker| {
        if !out.iter().any(|o| o.endpoint == s.endpoint) {
            out.push(s);
        }
    };

    if let Some(sock) = &ov.bird_socket {
        push(Speaker {
            kind: SpeakerKind::Bird,
            pid: None,
            endpoint: Endpoint::BirdSocket(sock.clone()),
            origin: "--bird-socket flag".to_string(),
        });
    } else {
        for name in ["bird", "bird6"] {
            for p in procs.find(name) {
                push(bird_from_process(p));
            }
        }
    }

    if let Some(dir) = &ov.frr_dir {
        push(Speaker {
            kind: SpeakerKind::Frr,
            pid: None,
            endpoint: frr_endpoint(dir, None),
            origin: "--frr-dir flag".to_string(),
        });
    } else {
        for p in procs.find("bgpd") {
            push(frr_from_process(p));
        }
    }
    out
}

fn bird_from_process(p: &Process) -> Speaker {
    let (path, how) = match p.opt("--socket", Some("-s")) {
        Some(s) => (p.path(s), format!("-s {s}")),
        None => {
            let defaults: &[&str] = if p.name == "bird6" {
                &BIRD6_DEFAULT_SOCKETS
            } else {
                &BIRD_DEFAULT_SOCKETS
            };
            let found = defaults.iter().map(|d| p.path(d)).find(|c| c.exists());
            let path = found.unwrap_or_else(|| p.path(defaults[0]));
            let how = format!("default socket {}", path.display());
            (path, how)
        }
    };
    Speaker {
        kind: SpeakerKind::Bird,
        pid: Some(p.pid),
        endpoint: Endpoint::BirdSocket(path),
        origin: format!("{} pid {} {how}", p.name, p.pid),
    }
}

fn frr_from_process(p: &Process) -> Speaker {
    let ns = p
        .opt("--pathspace", Some("-N"))
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let (dir, how) = if let Some(d) = p.opt("--vty_socket", None) {
        (p.path(d), format!("--vty_socket {d}"))
    } else {
        let candidates: Vec<String> = FRR_DEFAULT_DIRS
            .iter()
            .map(|d| match &ns {
                Some(n) => format!("{d}/{n}"),
                None => (*d).to_string(),
            })
            .collect();
        let found = candidates
            .iter()
            .map(|c| p.path(c))
            .find(|c| c.join("bgpd.vty").exists());
        let dir = found.unwrap_or_else(|| p.path(&candidates[0]));
        let how = match &ns {
            Some(n) => format!("-N {n}"),
            None => "default vty dir".to_string(),
        };
        (dir, how)
    };
    Speaker {
        kind: SpeakerKind::Frr,
        pid: Some(p.pid),
        endpoint: frr_endpoint(&dir, ns),
        origin: format!("bgpd pid {} {how} ({})", p.pid, dir.display()),
    }
}

fn frr_endpoint(dir: &Path, pathspace: Option<String>) -> Endpoint {
    Endpoint::FrrVty {
        bgpd: dir.join("bgpd.vty"),
        zebra: dir.join("zebra.vty"),
        pathspace,
    }
}

/// Ask a speaker about `prefixes` (host routes of the VM: address and prefix length).
/// One connection per daemon socket, two round trips at most; never longer than `timeout`.
pub fn collect(
    speaker: &Speaker,
    prefixes: &[(IpAddr, u8)],
    timeout: Duration,
) -> Result<BgpFacts, BgpError> {
    let deadline = Deadline::after(timeout);
    let prefixes: Vec<String> = prefixes
        .iter()
        .map(|(ip, len)| format!("{ip}/{len}"))
        .collect();
    let mut facts = match &speaker.endpoint {
        Endpoint::BirdSocket(path) => crate::collect::bird::collect(path, &prefixes, deadline)?,
        Endpoint::FrrVty {
            bgpd,
            zebra,
            pathspace,
        } => crate::collect::frr::collect(bgpd, zebra, pathspace.as_deref(), &prefixes, deadline)?,
    };
    facts.control = speaker.control_command();
    Ok(facts)
}

/// A collection running on its own thread: the speaker and what it said.
pub type Collecting = std::thread::JoinHandle<(Speaker, Result<BgpFacts, BgpError>)>;

/// Ask every speaker about `prefixes` at once, one thread each; the caller joins them when it
/// needs the answers (each is bounded by `timeout`).
pub fn spawn_collect(
    speakers: Vec<Speaker>,
    prefixes: &[(IpAddr, u8)],
    timeout: Duration,
) -> Vec<Collecting> {
    speakers
        .into_iter()
        .map(|sp| {
            let pfx = prefixes.to_vec();
            std::thread::spawn(move || {
                let r = collect(&sp, &pfx, timeout);
                (sp, r)
            })
        })
        .collect()
}

/// One deadline shared by every socket operation of a collection.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub total: Duration,
}

impl Deadline {
    pub fn after(total: Duration) -> Self {
        Deadline {
            at: Instant::now() + total,
            total,
        }
    }
    /// Time left, or a TimedOut error when none.
    pub fn remaining(&self) -> io::Result<Duration> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
        } else {
            Ok(left)
        }
    }
}

/// Connect a unix stream socket, bounded by the deadline (a daemon that stopped accepting
/// makes a blocking `connect` hang once its backlog is full). The returned stream is blocking;
/// callers set read/write timeouts from the same deadline.
pub fn connect_unix(path: &Path, deadline: &Deadline) -> io::Result<UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket path longer than {} bytes", addr.sun_path.len() - 1),
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;

    // SAFETY: plain syscall; the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    loop {
        // SAFETY: addr/len describe a valid sockaddr_un.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_un as *const libc::sockaddr,
                len,
            )
        };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // Backlog full: unix sockets do not queue the connect, retry until the deadline.
            Some(libc::EAGAIN) => {
                let left = deadline.remaining()?;
                std::thread::sleep(left.min(Duration::from_millis(2)));
            }
            Some(libc::EINPROGRESS) => {
                wait_writable(&fd, deadline)?;
                break;
            }
            _ => return Err(e),
        }
    }
    // Back to blocking mode: reads and writes use SO_RCVTIMEO/SO_SNDTIMEO.
    // SAFETY: fcntl on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(UnixStream::from(fd))
}

fn wait_writable(fd: &OwnedFd, deadline: &Deadline) -> io::Result<()> {
    loop {
        let left = deadline.remaining()?;
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut p, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if rc == 0 {
            continue; // remaining() reports the timeout
        }
        let mut err: libc::c_int = 0;
        let mut l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: err/l are valid out-parameters for SO_ERROR.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                &mut err as *mut libc::c_int as *mut libc::c_void,
                &mut l,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
        return Ok(());
    }
}

/// Write everything before the deadline.
pub fn write_all_by(stream: &mut UnixStream, data: &[u8], deadline: &Deadline) -> io::Result<()> {
    use std::io::Write;
    let mut off = 0;
    while off < data.len() {
        stream.set_write_timeout(Some(deadline.remaining()?))?;
        match stream.write(&data[off..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "socket closed")),
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Read once (appending to `buf`) before the deadline; EOF is an error.
pub fn read_some_by(
    stream: &mut UnixStream,
    buf: &mut Vec<u8>,
    deadline: &Deadline,
) -> io::Result<()> {
    use std::io::Read;
    let mut chunk = [0u8; 16384];
    loop {
        stream.set_read_timeout(Some(deadline.remaining()?))?;
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the daemon closed the connection",
                ))
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::procs::ProcTable;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixListener;

    fn proc(pid: u32, argv: &str) -> Process {
        let args: Vec<String> = argv.split(' ').map(String::from).collect();
        let name = args[0].rsplit('/').next().unwrap_or("").to_string();
        Process { pid, name, args }
    }

    fn table(ps: Vec<Process>) -> ProcTable {
        ProcTable { procs: ps }
    }

    #[test]
    fn discovers_bird_with_socket_flag_and_frr_with_pathspace() {
        let t = table(vec![
            proc(
                812,
                "bird -f -c /run/bird/a.conf -s /run/bird/hv1.ctl -P /run/bird/a.pid",
            ),
            proc(
                900,
                "/usr/lib/frr/bgpd -d -N hv2 -P 0 -i /run/frr/hv2/bgpd.pid",
            ),
            proc(901, "/usr/lib/frr/zebra -d -N hv2"),
            proc(1, "/sbin/init"),
        ]);
        let s = discover(&t, &Overrides::default());
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].kind, SpeakerKind::Bird);
        assert_eq!(s[0].pid, Some(812));
        assert_eq!(
            s[0].endpoint,
            Endpoint::BirdSocket(PathBuf::from("/run/bird/hv1.ctl"))
        );
        assert_eq!(s[0].origin, "bird pid 812 -s /run/bird/hv1.ctl");
        assert_eq!(s[0].control_command(), "birdc -s /run/bird/hv1.ctl");
        assert_eq!(s[1].kind, SpeakerKind::Frr);
        assert_eq!(
            s[1].endpoint,
            Endpoint::FrrVty {
                bgpd: PathBuf::from("/run/frr/hv2/bgpd.vty"),
                zebra: PathBuf::from("/run/frr/hv2/zebra.vty"),
                pathspace: Some("hv2".into()),
            }
        );
        assert_eq!(s[1].control_command(), "vtysh -N hv2");
        assert_eq!(s[1].describe(), "FRR via /run/frr/hv2/bgpd.vty");
    }

    #[test]
    fn bird_without_socket_flag_uses_a_default_and_frr_vty_socket_option() {
        let t = table(vec![
            proc(5, "bird -R -d -c /etc/calico/confd/config/bird.cfg"),
            proc(6, "/usr/lib/frr/bgpd -d --vty_socket /srv/frr"),
        ]);
        let s = discover(&t, &Overrides::default());
        match &s[0].endpoint {
            Endpoint::BirdSocket(p) => {
                assert!(BIRD_DEFAULT_SOCKETS.iter().any(|d| p == Path::new(d)))
            }
            e => panic!("{e:?}"),
        }
        assert!(s[0].origin.starts_with("bird pid 5 default socket "));
        assert_eq!(
            s[1].endpoint,
            Endpoint::FrrVty {
                bgpd: PathBuf::from("/srv/frr/bgpd.vty"),
                zebra: PathBuf::from("/srv/frr/zebra.vty"),
                pathspace: None,
            }
        );
        assert_eq!(s[1].control_command(), "vtysh --vty_socket /srv/frr");
    }

    #[test]
    fn overrides_win_and_nothing_found_is_empty() {
        let t = table(vec![proc(812, "bird -s /run/bird/x.ctl")]);
        let ov = Overrides {
            bird_socket: Some("/tmp/b.ctl".into()),
            frr_dir: Some("/run/frr".into()),
        };
        let s = discover(&t, &ov);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].origin, "--bird-socket flag");
        assert_eq!(s[0].endpoint, Endpoint::BirdSocket("/tmp/b.ctl".into()));
        assert_eq!(s[1].origin, "--frr-dir flag");
        assert_eq!(s[1].control_command(), "vtysh");
        assert!(discover(&table(vec![]), &Overrides::default()).is_empty());
    }

    fn tmp_sock(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("vmpath-bgp-{tag}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn speaker(kind: SpeakerKind, path: &Path) -> Speaker {
        let endpoint = match kind {
            SpeakerKind::Bird => Endpoint::BirdSocket(path.to_path_buf()),
            SpeakerKind::Frr => Endpoint::FrrVty {
                bgpd: path.to_path_buf(),
                zebra: path.with_extension("zebra"),
                pathspace: None,
            },
        };
        Speaker {
            kind,
            pid: None,
            endpoint,
            origin: "test".into(),
        }
    }

    const V4: [(IpAddr, u8); 1] = [(IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 11)), 32)];

    #[test]
    fn missing_socket_is_not_found_with_a_hint() {
        let p = tmp_sock("missing");
        let e = collect(&speaker(SpeakerKind::Bird, &p), &V4, Duration::from_secs(1))
            .expect_err("no socket");
        assert_eq!(e.kind, BgpErrorKind::NotFound);
        let msg = e.to_string();
        assert!(msg.contains("BIRD control socket"), "{msg}");
        assert!(msg.contains("--bird-socket"), "{msg}");
    }

    #[test]
    fn refused_socket_is_reported() {
        let p = tmp_sock("refused");
        drop(UnixListener::bind(&p).expect("bind"));
        // The file stays, nobody listens.
        let e = collect(&speaker(SpeakerKind::Bird, &p), &V4, Duration::from_secs(1))
            .expect_err("refused");
        assert_eq!(e.kind, BgpErrorKind::Refused, "{e}");
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn silent_daemon_times_out_within_the_deadline() {
        for kind in [SpeakerKind::Bird, SpeakerKind::Frr] {
            let p = tmp_sock(&format!("silent-{kind:?}"));
            let l = UnixListener::bind(&p).expect("bind");
            let h = std::thread::spawn(move || {
                // accept and never answer; keep the connection open for a while
                let c = l.accept();
                std::thread::sleep(Duration::from_millis(600));
                drop(c);
            });
            let t0 = Instant::now();
            let e =
                collect(&speaker(kind, &p), &V4, Duration::from_millis(200)).expect_err("timeout");
            let took = t0.elapsed();
            assert_eq!(e.kind, BgpErrorKind::Timeout, "{kind:?}: {e}");
            assert!(took < Duration::from_millis(450), "{kind:?} took {took:?}");
            assert!(e.to_string().contains("200 ms"), "{e}");
            h.join().expect("join");
            let _ = std::fs::remove_file(&p);
        }
    }

    #[test]
    fn connect_times_out_when_the_backlog_is_full() {
        let p = tmp_sock("backlog");
        let l = UnixListener::bind(&p).expect("bind");
        // Shrink the backlog (listen() again on a listening socket updates it), then fill it.
        // SAFETY: listen on a socket we own.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
        let dl = Deadline::after(Duration::from_millis(300));
        let mut held = Vec::new();
        let t0 = Instant::now();
        let mut last = Ok(());
        for _ in 0..64 {
            match connect_unix(&p, &dl) {
                Ok(s) => held.push(s),
                Err(e) => {
                    last = Err(e);
                    break;
                }
            }
        }
        let e = last.expect_err("backlog eventually full");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t0.elapsed() < Duration::from_millis(600));
        drop(l);
        let _ = std::fs::remove_file(&p);
    }
}
