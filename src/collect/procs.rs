//! Running processes, as seen through /proc: the source for zero-configuration discovery of
//! BIRD, FRR, dnsmasq and metadata proxies. Only processes in the caller's network namespace
//! count: on a gateway node every qrouter namespace runs its own daemons.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One process: its pid, `comm` (executable base name) and argv.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    /// Base name of argv[0] (more reliable than `comm`, which is cut to 15 bytes).
    pub name: String,
    pub args: Vec<String>,
    /// Owner and executable, read for the daemons vmpath takes sources from
    /// ([`DAEMONS`]; see `collect::trust`).
    #[serde(default)]
    pub cred: Option<Cred>,
}

/// What `collect::trust` judges a process by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cred {
    /// Effective uid.
    pub uid: u32,
    /// Permitted capability set (CapPrm).
    pub cap_permitted: u64,
    /// It runs in vmpath's own user namespace.
    pub same_userns: bool,
    /// Its executable (`/proc/PID/exe`), when it can be read.
    pub exe: Option<String>,
    /// The executable is a regular file owned by root, not writable by group or others.
    pub exe_safe: bool,
}

/// The processes whose owner and executable are read during a scan: those vmpath may take
/// paths, sockets or signals from.
pub const DAEMONS: &[&str] = &[
    "dnsmasq",
    "bird",
    "bird6",
    "bgpd",
    "zebra",
    "keepalived",
    "ovsdb-server",
    "ovs-vswitchd",
    "neutron-keepalived-state-change",
    "neutron-l3-agent",
];

/// Read a process's owner and executable from `dir` (`/proc/PID`).
pub fn read_cred(dir: &Path) -> Option<Cred> {
    let status = super::files::read_text(&dir.join("status"), 1 << 16).ok()?;
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
    };
    let uid = field("Uid:")?.split_whitespace().nth(1)?.parse().ok()?;
    let cap_permitted = u64::from_str_radix(field("CapPrm:")?, 16).ok()?;
    let ns = |p: &Path| fs::metadata(p).ok().map(|m| m.ino());
    let same_userns = ns(&dir.join("ns/user")).is_some()
        && ns(&dir.join("ns/user")) == ns(Path::new("/proc/self/ns/user"));
    let exe = fs::read_link(dir.join("exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    // The file itself through the magic link (right inside a container's mount namespace and
    // after a package upgrade replaced it), its directory through the process's root.
    let exe_safe = exe.as_deref().is_some_and(|e| {
        let e = e.strip_suffix(" (deleted)").unwrap_or(e);
        let parent = Path::new(e).parent().unwrap_or(Path::new("/"));
        let parent_here = dir
            .join("root")
            .join(parent.strip_prefix("/").unwrap_or(parent));
        super::files::root_only(&dir.join("exe"), true)
            && super::files::root_only(&parent_here, false)
    });
    Some(Cred {
        uid,
        cap_permitted,
        same_userns,
        exe,
        exe_safe,
    })
}

impl Process {
    /// Value of a long or short option: `--opt=V`, `--opt V`, `-o V`, `-oV`.
    pub fn opt(&self, long: &str, short: Option<&str>) -> Option<&str> {
        opt_value(&self.args, long, short)
    }
    /// True when a flag without value is present.
    pub fn has_flag(&self, long: &str) -> bool {
        self.args.iter().skip(1).any(|a| a == long)
    }
    /// A path as seen by this process: relative to its root (`/proc/PID/root`) when it runs
    /// in another mount namespace, else as is.
    pub fn path(&self, p: &str) -> PathBuf {
        let direct = PathBuf::from(p);
        if direct.exists() {
            return direct;
        }
        let via = Path::new("/proc")
            .join(self.pid.to_string())
            .join("root")
            .join(p.trim_start_matches('/'));
        if via.exists() {
            via
        } else {
            direct
        }
    }
}

/// Value of an option in an argv (argv[0] excluded).
pub fn opt_value<'a>(args: &'a [String], long: &str, short: Option<&str>) -> Option<&'a str> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if let Some(rest) = a.strip_prefix(long) {
            if let Some(v) = rest.strip_prefix('=') {
                return Some(v);
            }
            if rest.is_empty() {
                return it.next().map(String::as_str);
            }
        }
        if let Some(s) = short {
            if a == s {
                return it.next().map(String::as_str);
            }
            if let Some(v) = a.strip_prefix(s) {
                if !v.is_empty() && !a.starts_with("--") {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// All values of a repeatable option (`--dhcp-option-force=...` given several times).
pub fn opt_values<'a>(args: &'a [String], long: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if let Some(rest) = a.strip_prefix(long) {
            if let Some(v) = rest.strip_prefix('=') {
                out.push(v);
            } else if rest.is_empty() {
                if let Some(v) = it.next() {
                    out.push(v);
                }
            }
        }
    }
    out
}

/// Parse a NUL-separated /proc/PID/cmdline.
pub fn parse_cmdline(raw: &[u8]) -> Vec<String> {
    raw.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn base_name(arg0: &str) -> String {
    arg0.rsplit('/').next().unwrap_or(arg0).to_string()
}

/// Source of processes; a trait so checks can be tested with a fixed list.
pub trait ProcessSource {
    fn processes(&self) -> &[Process];
    fn find(&self, name: &str) -> Vec<&Process> {
        self.processes().iter().filter(|p| p.name == name).collect()
    }
}

/// Processes of the current network namespace, read once.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ProcTable {
    pub procs: Vec<Process>,
}

impl ProcessSource for ProcTable {
    fn processes(&self) -> &[Process] {
        &self.procs
    }
}

impl ProcTable {
    /// Scan /proc and keep the processes whose network namespace is ours. Processes that vanish
    /// or cannot be read while scanning are skipped.
    pub fn scan() -> std::io::Result<ProcTable> {
        Self::scan_in(Path::new("/proc"), own_netns_inode())
    }

    /// Scan with an explicit netns inode (`None` keeps every process).
    pub fn scan_in(proc_root: &Path, netns: Option<u64>) -> std::io::Result<ProcTable> {
        let mut procs = Vec::new();
        for entry in fs::read_dir(proc_root)? {
            let Ok(entry) = entry else { continue };
            let fname = entry.file_name();
            let Some(pid) = fname.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let dir = entry.path();
            if let Some(want) = netns {
                match fs::metadata(dir.join("ns/net")) {
                    Ok(m) if m.ino() == want => {}
                    _ => continue,
                }
            }
            let Ok(raw) = fs::read(dir.join("cmdline")) else {
                continue;
            };
            let args = parse_cmdline(&raw);
            let Some(arg0) = args.first() else { continue }; // kernel thread
            let name = base_name(arg0);
            // Interpreted daemons (Neutron's) name themselves in argv[1] or argv[2].
            let daemon = args
                .iter()
                .take(3)
                .any(|a| DAEMONS.contains(&base_name(a).as_str()));
            let cred = daemon.then(|| read_cred(&dir)).flatten();
            procs.push(Process {
                pid,
                name,
                args,
                cred,
            });
        }
        procs.sort_by_key(|p| p.pid);
        Ok(ProcTable { procs })
    }
}

/// Inode of this thread's network namespace.
pub fn own_netns_inode() -> Option<u64> {
    fs::metadata("/proc/thread-self/ns/net")
        .or_else(|_| fs::metadata("/proc/self/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// True when a pid is alive (its /proc entry exists and it is not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // state is the field after the ")" that ends comm
            let state = s
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Read a pid file: first token as a pid.
pub fn read_pid_file(path: &Path) -> Option<u32> {
    super::files::read_text(path, 4096)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn options_in_every_spelling() {
        let a = argv("/usr/sbin/bird -f -c /etc/bird.conf -s/run/bird/hv1.ctl -P /run/x.pid");
        assert_eq!(
            opt_value(&a, "--socket", Some("-s")),
            Some("/run/bird/hv1.ctl")
        );
        assert_eq!(
            opt_value(&a, "--config", Some("-c")),
            Some("/etc/bird.conf")
        );
        let a = argv("dnsmasq --dhcp-hostsdir=/run/h --dhcp-option-force=option:mtu,1450 --dhcp-option-force 26,9000");
        assert_eq!(opt_value(&a, "--dhcp-hostsdir", None), Some("/run/h"));
        assert_eq!(
            opt_values(&a, "--dhcp-option-force"),
            vec!["option:mtu,1450", "26,9000"]
        );
        assert_eq!(opt_value(&a, "--missing", None), None);
    }

    #[test]
    fn long_option_prefix_does_not_match_a_longer_name() {
        let a = argv("dnsmasq --dhcp-hostsdir-x=/a");
        assert_eq!(opt_value(&a, "--dhcp-hostsdir", None), None);
    }

    #[test]
    fn cmdline_parsing() {
        let v = parse_cmdline(b"/usr/lib/frr/bgpd\0-N\0hv2\0\0");
        assert_eq!(v, vec!["/usr/lib/frr/bgpd", "-N", "hv2"]);
        assert_eq!(base_name("/usr/lib/frr/bgpd"), "bgpd");
    }

    #[test]
    fn scanning_this_machine_finds_ourselves() {
        let t = ProcTable::scan().expect("scan /proc");
        let me = std::process::id();
        assert!(t.procs.iter().any(|p| p.pid == me));
        assert!(pid_alive(me));
    }
}
