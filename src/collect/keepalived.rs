//! keepalived as Neutron's L3 agent runs it for HA routers: one keepalived per router, inside
//! the `qrouter-<id>` namespace, started with `-f $state_path/ha_confs/<id>/keepalived.conf`
//! (plus `-p` and `-r` pid files), with a `state` file next to the config that Neutron keeps at
//! `primary`/`backup` (`master` before Neutron 17).
//!
//! [`parse_conf`] reads the VRRP instances of a config (pure); [`discover`] finds the running
//! keepalived processes and the namespace each runs in (from /proc).

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::procs::{self, Process};
use super::{files, trust};

use crate::error::Error;

/// An address line of `virtual_ipaddress` / `virtual_ipaddress_excluded`: `ADDR/LEN dev IF`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualAddr {
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub dev: Option<String>,
}

impl std::fmt::Display for VirtualAddr {
    /// As `ip addr add` takes it: `ADDR/LEN dev IF`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} dev {}",
            self.addr,
            self.prefix_len,
            self.dev.as_deref().unwrap_or("?")
        )
    }
}

/// One `vrrp_instance` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VrrpInstance {
    pub name: String,
    /// The configured initial state (Neutron: always BACKUP with nopreempt).
    pub state: Option<String>,
    pub interface: Option<String>,
    pub vrid: Option<u8>,
    pub priority: Option<u8>,
    /// Seconds between advertisements (keepalived's default is 1).
    pub advert_int: f64,
    pub nopreempt: bool,
    /// The VIP on the HA interface (169.254.0.<vrid>/24 with Neutron).
    pub vips: Vec<VirtualAddr>,
    /// Addresses keepalived moves without advertising them: the qr- gateway and qg- addresses.
    pub excluded: Vec<VirtualAddr>,
    /// notify / notify_master / notify_backup / notify_fault scripts.
    pub notify: Vec<String>,
}

/// A config element: its words, and its block when it opens one.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    words: Vec<String>,
    block: Option<Vec<Node>>,
}

fn tokenize(text: &str) -> Vec<Vec<String>> {
    let mut lines = Vec::new();
    for raw in text.lines() {
        let line = raw.split(['#', '!']).next().unwrap_or("");
        // Braces are tokens even when glued to a word.
        let spaced = line.replace('{', " { ").replace('}', " } ");
        let words: Vec<String> = spaced.split_whitespace().map(String::from).collect();
        if !words.is_empty() {
            lines.push(words);
        }
    }
    lines
}

fn tree(lines: &[Vec<String>]) -> Result<Vec<Node>, String> {
    // A flat stream of tokens with line breaks as separators.
    let mut stack: Vec<Vec<Node>> = vec![Vec::new()];
    let mut heads: Vec<Vec<String>> = Vec::new();
    for line in lines {
        let mut words = Vec::new();
        for w in line {
            match w.as_str() {
                "{" => {
                    heads.push(std::mem::take(&mut words));
                    stack.push(Vec::new());
                }
                "}" => {
                    if !words.is_empty() {
                        if let Some(top) = stack.last_mut() {
                            top.push(Node {
                                words: std::mem::take(&mut words),
                                block: None,
                            });
                        }
                    }
                    let children = stack.pop().ok_or("unbalanced `}`")?;
                    let head = heads.pop().ok_or("unbalanced `}`")?;
                    stack.last_mut().ok_or("unbalanced `}`")?.push(Node {
                        words: head,
                        block: Some(children),
                    });
                }
                _ => words.push(w.clone()),
            }
        }
        if !words.is_empty() {
            if let Some(top) = stack.last_mut() {
                top.push(Node { words, block: None });
            }
        }
    }
    if stack.len() != 1 {
        return Err("unbalanced `{`: a block is not closed".into());
    }
    Ok(stack.pop().unwrap_or_default())
}

fn vaddr(words: &[String]) -> Option<VirtualAddr> {
    let first = words.first()?;
    let (a, len) = match first.split_once('/') {
        Some((a, l)) => (a, l.parse().ok()?),
        None => (first.as_str(), if first.contains(':') { 128 } else { 32 }),
    };
    let addr: IpAddr = a.parse().ok()?;
    let dev = words
        .iter()
        .position(|w| w == "dev")
        .and_then(|i| words.get(i + 1))
        .cloned();
    Some(VirtualAddr {
        addr,
        prefix_len: len,
        dev,
    })
}

/// The VRRP instances of a keepalived config. Unknown keywords are ignored; a config whose
/// braces do not balance is an error.
pub fn parse_conf(text: &str) -> Result<Vec<VrrpInstance>, Error> {
    parse_conf_text(text).map_err(Error::Unknown)
}

fn parse_conf_text(text: &str) -> Result<Vec<VrrpInstance>, String> {
    let nodes = tree(&tokenize(text))?;
    let mut out = Vec::new();
    for n in &nodes {
        if n.words.first().map(String::as_str) != Some("vrrp_instance") {
            continue;
        }
        let mut v = VrrpInstance {
            name: n.words.get(1).cloned().unwrap_or_default(),
            state: None,
            interface: None,
            vrid: None,
            priority: None,
            advert_int: 1.0,
            nopreempt: false,
            vips: Vec::new(),
            excluded: Vec::new(),
            notify: Vec::new(),
        };
        for c in n.block.iter().flatten() {
            let key = c.words.first().map(String::as_str).unwrap_or("");
            let arg = c.words.get(1);
            match (key, &c.block) {
                ("state", None) => v.state = arg.cloned(),
                ("interface", None) => v.interface = arg.cloned(),
                ("virtual_router_id", None) => v.vrid = arg.and_then(|a| a.parse().ok()),
                ("priority", None) => v.priority = arg.and_then(|a| a.parse().ok()),
                ("advert_int", None) => {
                    v.advert_int = arg.and_then(|a| a.parse().ok()).unwrap_or(1.0)
                }
                ("nopreempt", None) => v.nopreempt = true,
                ("notify" | "notify_master" | "notify_backup" | "notify_fault", None) => v
                    .notify
                    .push(c.words[1..].join(" ").trim_matches('"').to_string()),
                ("virtual_ipaddress", Some(b)) => {
                    v.vips.extend(b.iter().filter_map(|l| vaddr(&l.words)))
                }
                ("virtual_ipaddress_excluded", Some(b)) => {
                    v.excluded.extend(b.iter().filter_map(|l| vaddr(&l.words)))
                }
                _ => {}
            }
        }
        out.push(v);
    }
    Ok(out)
}

/// What the state file says.
pub fn parse_state(text: &str) -> Option<String> {
    let s = text.trim().to_ascii_lowercase();
    match s.as_str() {
        "master" | "primary" => Some("primary".into()),
        "backup" => Some("backup".into()),
        "fault" => Some("fault".into()),
        "" => None,
        other => Some(other.to_string()),
    }
}

/// A running keepalived (the parent process) and where it runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Keepalived {
    pub pid: u32,
    /// Its `-f` config, as readable from here.
    pub conf: Option<PathBuf>,
    /// The VRRP child's pid (from the `-r` pid file, or a child process), if alive.
    pub vrrp_pid: Option<u32>,
    /// Inode of its network namespace.
    #[serde(skip)]
    pub netns_inode: u64,
    /// Its effective uid.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Why it is not trusted (`collect::trust`): its config path is not used, it is not
    /// signalled and its dump is not read.
    #[serde(default)]
    pub untrusted: Option<String>,
    /// Its executable as `/proc/PID/exe` names it.
    #[serde(default)]
    pub exe: Option<String>,
}

impl Keepalived {
    /// The router id Neutron encodes in the config path: `…/ha_confs/<router_id>/keepalived.conf`.
    pub fn router_id(&self) -> Option<String> {
        router_id_of(self.conf.as_deref()?)
    }
}

/// `…/ha_confs/<id>/keepalived.conf` → `<id>`.
pub fn router_id_of(conf: &Path) -> Option<String> {
    let dir = conf.parent()?;
    if dir.parent()?.file_name()?.to_str()? != "ha_confs" {
        return None;
    }
    Some(dir.file_name()?.to_str()?.to_string())
}

fn parent_pid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every running keepalived parent process on this host (all namespaces), with its config and
/// VRRP child. Processes that vanish while being read are skipped.
pub fn discover(policy: &trust::Policy) -> Vec<Keepalived> {
    let Ok(all) = procs::ProcTable::scan_in(Path::new("/proc"), None) else {
        return Vec::new();
    };
    let ka: Vec<&Process> = all
        .procs
        .iter()
        .filter(|p| p.name == "keepalived")
        .collect();
    let pids: HashMap<u32, &Process> = ka.iter().map(|p| (p.pid, *p)).collect();
    let mut out = Vec::new();
    for p in &ka {
        // Children (VRRP, checker) carry the same command line: keep the parent only.
        if parent_pid(p.pid).is_some_and(|pp| pids.contains_key(&pp)) {
            continue;
        }
        let netns_inode = std::fs::metadata(format!("/proc/{}/ns/net", p.pid))
            .map(|m| m.ino())
            .unwrap_or(0);
        let untrusted = trust::judge(p, policy).err();
        // An untrusted process names no path vmpath reads.
        let conf = untrusted.is_none().then(|| {
            p.opt("--use-file", Some("-f"))
                .map(|c| p.path(c))
                .unwrap_or_else(|| p.path("/etc/keepalived/keepalived.conf"))
        });
        let from_file = p
            .opt("--vrrp_pid", Some("-r"))
            .filter(|_| untrusted.is_none())
            .and_then(|f| procs::read_pid_file(&p.path(f)))
            .filter(|pid| procs::pid_alive(*pid) && parent_pid(*pid) == Some(p.pid));
        let child = ka
            .iter()
            .find(|c| parent_pid(c.pid) == Some(p.pid) && procs::pid_alive(c.pid))
            .map(|c| c.pid);
        out.push(Keepalived {
            pid: p.pid,
            conf,
            vrrp_pid: from_file.or(child),
            netns_inode,
            uid: p.cred.as_ref().map(|c| c.uid),
            untrusted,
            exe: p.cred.as_ref().and_then(|c| c.exe.clone()),
        });
    }
    out.sort_by_key(|k| k.pid);
    out
}

/// One VRRP instance as keepalived itself reports it (its JSON dump, `keepalived --signum=JSON`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reported {
    /// `VR_1`.
    pub iname: String,
    /// The interface it runs VRRP on (`ha-…`).
    pub interface: String,
    pub vrid: Option<u32>,
    /// `MASTER`, `BACKUP`, `FAULT`, `INIT`, `STOP`, `DELETED` or `state N`.
    pub state: String,
    /// Unix time of the last state change.
    pub since: Option<f64>,
    pub become_master: u64,
    pub release_master: u64,
    pub advert_rcvd: u64,
    pub advert_sent: u64,
    pub effective_priority: Option<u32>,
}

/// keepalived's state numbers (`vrrp.h`).
pub fn state_name(n: u64) -> String {
    match n {
        0 => "INIT".into(),
        1 => "BACKUP".into(),
        2 => "MASTER".into(),
        3 => "FAULT".into(),
        97 => "DELETED".into(),
        98 => "STOP".into(),
        n => format!("state {n}"),
    }
}

/// Parse keepalived's `keepalived.json` (an array of `{"data": {…}, "stats": {…}}`).
pub fn parse_json(text: &str) -> Result<Vec<Reported>, Error> {
    parse_dump(text).map_err(Error::Unknown)
}

fn parse_dump(text: &str) -> Result<Vec<Reported>, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not keepalived's JSON dump: {e}"))?;
    let arr = v
        .as_array()
        .ok_or("not keepalived's JSON dump: the top level is not an array")?;
    let mut out = Vec::new();
    for item in arr {
        let d = &item["data"];
        let st = &item["stats"];
        let Some(iname) = d["iname"].as_str() else {
            return Err("an instance without `iname` in keepalived's JSON dump".into());
        };
        let u = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        out.push(Reported {
            iname: iname.to_string(),
            interface: d["ifp_ifname"].as_str().unwrap_or("").to_string(),
            vrid: d["vrid"].as_u64().and_then(|n| u32::try_from(n).ok()),
            state: d["state"]
                .as_u64()
                .map(state_name)
                .unwrap_or_else(|| "unknown".into()),
            since: d["last_transition"].as_f64(),
            become_master: u(&st["become_master"]),
            release_master: u(&st["release_master"]),
            advert_rcvd: u(&st["advert_rcvd"]),
            advert_sent: u(&st["advert_sent"]),
            effective_priority: d["effective_priority"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok()),
        });
    }
    Ok(out)
}

/// `tmp_dir` from a keepalived.conf's `global_defs`, if set.
pub fn conf_tmp_dir(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("tmp_dir"))
            .then(|| w.next().map(str::to_string))
            .flatten()
    })
}

/// Where a keepalived writes its dumps, as a path readable from here: `tmp_dir` of its config,
/// else its `TMPDIR`, else `/tmp`, inside its own mount namespace (`/proc/PID/root`).
pub fn dump_dir(k: &Keepalived) -> PathBuf {
    let from_conf = k
        .conf
        .as_ref()
        .and_then(|c| files::read_for(c, k.uid.unwrap_or(0), files::MAX_TEXT).ok())
        .and_then(|t| conf_tmp_dir(&t));
    let from_env = || {
        let env = files::read_text(Path::new(&format!("/proc/{}/environ", k.pid)), 1 << 20).ok()?;
        env.split('\0').find_map(|kv| {
            let v = kv.strip_prefix("TMPDIR=")?;
            (!v.is_empty()).then(|| v.to_string())
        })
    };
    let dir = from_conf
        .or_else(from_env)
        .unwrap_or_else(|| "/tmp".to_string());
    PathBuf::from(format!("/proc/{}/root", k.pid)).join(dir.trim_start_matches('/'))
}

/// The signal number that makes keepalived write its JSON dump, from this host's own keepalived
/// binary (`keepalived --signum=JSON`: the number differs between builds; a build without JSON
/// support refuses). vmpath never runs the binary a process names (`/proc/PID/exe`): only
/// the system's, found by path and checked ([`trust::system_binary`]).
pub fn json_signal(timeout: Duration) -> Result<(PathBuf, i32), Error> {
    let Some(bin) = trust::system_binary("keepalived") else {
        return Err(Error::unknown(
            "no keepalived binary in PATH or the sbin directories that is root-owned and closed \
             to writes by others: its dump signal cannot be learned (vmpath runs only the \
             system's own keepalived, never the one a process names)",
        ));
    };
    let shown = bin.display().to_string();
    match crate::collect::child::run(&[shown.clone(), "--signum=JSON".into()], &[], timeout) {
        Ok(r) if r.status.success() => {
            let text = String::from_utf8_lossy(&r.stdout);
            match text.trim().parse::<i32>() {
                Ok(n) if (1..=64).contains(&n) => Ok((bin, n)),
                _ => Err(Error::unknown(format!(
                    "`{shown} --signum=JSON` printed {:?}, not a signal number",
                    text.trim()
                ))),
            }
        }
        Ok(r) => Err(Error::unknown(format!(
            "`{shown} --signum=JSON` refused ({}): keepalived built without JSON support",
            String::from_utf8_lossy(&r.stderr).trim()
        ))),
        Err(e) => Err(e),
    }
}

/// May `k` be sent the signal `bin` names: it is trusted and runs that very binary (the same
/// file, or the file an upgrade put at its path)? A signal its build does not handle would
/// kill it.
pub fn runs_binary(k: &Keepalived, bin: &Path) -> Result<(), Error> {
    if let Some(why) = &k.untrusted {
        return Err(Error::unknown(format!("not signalled: {why}")));
    }
    let same_file = match (
        std::fs::metadata(format!("/proc/{}/exe", k.pid)),
        std::fs::metadata(bin),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    let exe = k.exe.as_deref().unwrap_or("?");
    let upgraded = exe.strip_suffix(" (deleted)") == Some(&*bin.to_string_lossy());
    if same_file || upgraded {
        Ok(())
    } else {
        Err(Error::unknown(format!(
            "not signalled: keepalived pid {} runs {exe}, not this host's {} (its dump signal \
             is known only for the system's own binary)",
            k.pid,
            bin.display()
        )))
    }
}

/// Ask one keepalived for its own view: send it the JSON signal and read the dump it writes,
/// waiting at most until `deadline`. The dump file is shared by every keepalived with the same
/// tmp dir, so callers ask them one at a time; a dump is accepted only once it changed after
/// the signal and names `interface` (the router's ha- interface), so another keepalived's dump
/// or an old one is never taken for this one's.
pub fn ask(
    k: &Keepalived,
    signal: i32,
    interface: Option<&str>,
    deadline: Instant,
) -> Result<Vec<Reported>, Error> {
    let path = dump_dir(k).join("keepalived.json");
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.ino(), m.mtime(), m.mtime_nsec(), m.len()))
    };
    let before = stamp(&path);
    let uid = k.uid.unwrap_or(0);
    let read = |p: &Path| files::read_for(p, uid, files::MAX_TEXT);
    let old = read(&path).ok();
    let pid =
        libc::pid_t::try_from(k.pid).map_err(|_| Error::unknown(format!("bad pid {}", k.pid)))?;
    // SAFETY: kill(2) with a pid and a signal number; no memory is involved. (libc, not nix:
    // the JSON signal is a real-time one, which nix's Signal enum cannot carry.)
    if unsafe { libc::kill(pid, signal) } != 0 {
        return Err(Error::unknown(format!(
            "cannot signal keepalived pid {}: {}",
            k.pid,
            std::io::Error::last_os_error()
        )));
    }
    let mut last = String::from("no dump written");
    loop {
        let now = stamp(&path);
        if now.is_some() {
            match read(&path) {
                // Fresh: the file changed since the signal (or its content did, within one tick).
                Ok(t) if now != before || Some(&t) != old.as_ref() => match parse_json(&t) {
                    Ok(v) if interface.is_none_or(|i| v.iter().any(|r| r.interface == i)) => {
                        return Ok(v)
                    }
                    Ok(v) => {
                        last = format!(
                            "the dump names {} (another keepalived's)",
                            v.iter()
                                .map(|r| r.interface.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                    // Being written: read again.
                    Err(e) => last = e.to_string(),
                },
                Ok(_) => {}
                Err(e) => last = format!("{}: {e}", path.display()),
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::unknown(format!(
                "keepalived pid {} wrote no usable {} in time ({last})",
                k.pid,
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Neutron's ha_confs directory from a Neutron process's command line: the keepalived state
/// monitor (`neutron-keepalived-state-change … --conf_dir=STATE/ha_confs/ID --state_path=STATE`,
/// run inside the router's namespace) or the L3 agent (`neutron-l3-agent --config-file F…`, whose
/// files may set `state_path`; default `/var/lib/neutron`). `read` reads a config file as the
/// process sees it. Returns the directory and how it was found.
pub fn neutron_ha_confs(
    args: &[String],
    read: &dyn Fn(&str) -> Option<String>,
) -> Option<(PathBuf, String)> {
    let is = |name: &str| {
        args.iter()
            .take(3)
            .any(|a| a.rsplit('/').next() == Some(name))
    };
    if is("neutron-keepalived-state-change") {
        if let Some(d) = procs::opt_value(args, "--conf_dir", None) {
            let dir = Path::new(d).parent()?;
            return Some((
                dir.to_path_buf(),
                format!("neutron-keepalived-state-change --conf_dir={d}"),
            ));
        }
        let sp = procs::opt_value(args, "--state_path", None)?;
        return Some((
            Path::new(sp).join("ha_confs"),
            format!("neutron-keepalived-state-change --state_path={sp}"),
        ));
    }
    if is("neutron-l3-agent") {
        let files = procs::opt_values(args, "--config-file");
        // Later files override earlier ones, as in oslo.config.
        let from_files = files.iter().rev().find_map(|f| {
            let text = read(f)?;
            state_path_of(&text).map(|sp| (sp, f.to_string()))
        });
        return Some(match from_files {
            Some((sp, f)) => (
                Path::new(&sp).join("ha_confs"),
                format!("neutron-l3-agent: state_path = {sp} in {f}"),
            ),
            None => (
                PathBuf::from("/var/lib/neutron/ha_confs"),
                "neutron-l3-agent without state_path: Neutron's default".into(),
            ),
        });
    }
    None
}

/// `state_path` of an oslo.config file (its `[DEFAULT]` section).
pub fn state_path_of(text: &str) -> Option<String> {
    let mut section = "DEFAULT".to_string();
    for l in text.lines() {
        let l = l.trim();
        if let Some(s) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            section = s.trim().to_string();
            continue;
        }
        if l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            if section == "DEFAULT" && k.trim() == "state_path" && !v.trim().is_empty() {
                return Some(v.trim().to_string());
            }
        }
    }
    None
}

/// Neutron processes that name an ha_confs directory, with the inode of the network namespace
/// each runs in: (inode, directory, how found).
/// Only trusted processes count (`collect::trust`), and only files their user could read.
pub fn discover_neutron(policy: &trust::Policy) -> Vec<(u64, PathBuf, String)> {
    let Ok(all) = procs::ProcTable::scan_in(Path::new("/proc"), None) else {
        return Vec::new();
    };
    all.procs
        .iter()
        .filter(|p| trust::judge(p, policy).is_ok())
        .filter_map(|p| {
            let uid = p.cred.as_ref().map_or(0, |c| c.uid);
            let read = |f: &str| files::read_for(&p.path(f), uid, files::MAX_TEXT).ok();
            let (dir, how) = neutron_ha_confs(&p.args, &read)?;
            let ino = std::fs::metadata(format!("/proc/{}/ns/net", p.pid))
                .map(|m| m.ino())
                .unwrap_or(0);
            let dir = p.path(&dir.to_string_lossy());
            Some((ino, dir, format!("{how} (pid {})", p.pid)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEUTRON: &str = r#"global_defs {
    notification_email_from neutron@openstack.local
    router_id neutron
}
vrrp_instance VR_1 {
    state BACKUP
    interface ha-4a5f2a0c-e8
    virtual_router_id 1
    priority 50
    garp_master_delay 60
    nopreempt
    advert_int 2
    track_interface {
        ha-4a5f2a0c-e8
    }
    virtual_ipaddress {
        169.254.0.1/24 dev ha-4a5f2a0c-e8
    }
    virtual_ipaddress_excluded {
        192.0.2.1/24 dev qr-7d1b3c2a-11
        203.0.113.20/24 dev qg-5e6f7a8b-22
        fe80::f816:3eff:fe00:1/64 dev qr-7d1b3c2a-11 scope link
    }
    virtual_routes {
        0.0.0.0/0 via 203.0.113.1 dev qg-5e6f7a8b-22
    }
    notify_master "/var/lib/neutron/ha_confs/r1/notify.sh master"
}
"#;

    #[test]
    fn reads_a_neutron_config() {
        let v = parse_conf(NEUTRON).expect("parses");
        assert_eq!(v.len(), 1);
        let i = &v[0];
        assert_eq!(i.name, "VR_1");
        assert_eq!(i.vrid, Some(1));
        assert_eq!(i.advert_int, 2.0);
        assert!(i.nopreempt);
        assert_eq!(i.interface.as_deref(), Some("ha-4a5f2a0c-e8"));
        assert_eq!(i.vips.len(), 1);
        assert_eq!(i.vips[0].addr.to_string(), "169.254.0.1");
        assert_eq!(i.excluded.len(), 3);
        assert_eq!(i.excluded[0].dev.as_deref(), Some("qr-7d1b3c2a-11"));
        assert_eq!(i.excluded[2].prefix_len, 64);
        assert_eq!(
            i.notify,
            vec!["/var/lib/neutron/ha_confs/r1/notify.sh master"]
        );
    }

    #[test]
    fn unbalanced_braces_are_an_error_and_garbage_never_panics() {
        assert!(parse_conf("vrrp_instance X {\n state BACKUP\n").is_err());
        assert!(parse_conf("}").is_err());
        for n in 0..NEUTRON.len() {
            if NEUTRON.is_char_boundary(n) {
                let _ = parse_conf(&NEUTRON[..n]);
            }
        }
        assert_eq!(
            parse_conf("vrrp_instance X { virtual_router_id 300 }").expect("test fixture")[0].vrid,
            None
        );
    }

    /// Captured from keepalived 2.2.7 (Debian 12) after `kill -36` (its `--signum=JSON`).
    const DUMP: &str = r#"[{"data":{"iname":"VR_1","dont_track_primary":0,"skip_check_adv_addr":0,"strict_mode":0,"vmac_ifname":"","ifp_ifname":"ha0","master_priority":0,"last_transition":1795336790.171616,"garp_delay":5,"garp_refresh":0,"garp_rep":5,"garp_refresh_rep":1,"garp_lower_prio_delay":5,"garp_lower_prio_rep":5,"lower_prio_no_advert":0,"higher_prio_send_advert":0,"vrid":1,"base_priority":50,"effective_priority":50,"vipset":true,"promote_secondaries":false,"adver_int":1,"master_adver_int":1,"accept":1,"nopreempt":true,"preempt_delay":0,"state":2,"wantstate":2,"version":2,"smtp_alert":false,"notify_deleted":false,"vips":["169.254.0.1\/24 dev ha0 scope global set"],"auth_type":0},"stats":{"advert_rcvd":0,"advert_sent":1,"become_master":1,"release_master":0,"packet_len_err":0,"advert_interval_err":0,"ip_ttl_err":0,"invalid_type_rcvd":0,"addr_list_err":0,"invalid_authtype":0,"authtype_mismatch":0,"auth_failure":0,"pri_zero_rcvd":0,"pri_zero_sent":0}}]"#;

    #[test]
    fn reads_keepalived_json_dump() {
        let v = parse_json(DUMP).expect("parses");
        assert_eq!(v.len(), 1);
        let r = &v[0];
        assert_eq!(r.iname, "VR_1");
        assert_eq!(r.interface, "ha0");
        assert_eq!(r.vrid, Some(1));
        assert_eq!(r.state, "MASTER");
        assert_eq!(r.become_master, 1);
        assert_eq!(r.advert_sent, 1);
        assert_eq!(r.effective_priority, Some(50));
        assert_eq!(r.since.map(|t| t as u64), Some(1795336790));
        assert_eq!(state_name(1), "BACKUP");
        assert_eq!(state_name(3), "FAULT");
        assert_eq!(state_name(98), "STOP");
        // A dump caught half-written, or another file, is an error, never a panic.
        for n in 0..DUMP.len() - 1 {
            assert!(parse_json(&DUMP[..n]).is_err());
        }
        assert!(parse_json("{}").is_err());
        assert!(parse_json("[{\"data\":{}}]").is_err());
        assert_eq!(
            conf_tmp_dir("global_defs {\n  tmp_dir /var/tmp/ka\n}\n").as_deref(),
            Some("/var/tmp/ka")
        );
        assert_eq!(conf_tmp_dir("global_defs {\n}\n"), None);
    }

    #[test]
    fn ha_confs_from_neutron_command_lines() {
        let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let none = |_: &str| None;
        // The state monitor Neutron's L3 agent starts in each router namespace.
        let m = argv("/usr/bin/python3 /usr/bin/neutron-keepalived-state-change --router_id=5f1e2d3c-aaaa --namespace=qrouter-5f1e2d3c-aaaa --conf_dir=/srv/neutron/ha_confs/5f1e2d3c-aaaa --log-file=/srv/neutron/ha_confs/5f1e2d3c-aaaa/neutron-keepalived-state-change.log --monitor_interface=ha-4a5f2a0c-e8 --monitor_cidr=169.254.0.1/24 --pid_file=/srv/neutron/external/pids/5f1e2d3c-aaaa.monitor.pid.neutron-keepalived-state-change-monitor --state_path=/srv/neutron --user=990 --group=990");
        let (d, how) = neutron_ha_confs(&m, &none).expect("found");
        assert_eq!(d, Path::new("/srv/neutron/ha_confs"));
        assert!(how.contains("--conf_dir"), "{how}");
        let m2 =
            argv("neutron-keepalived-state-change --router_id=x --state_path=/var/lib/neutron");
        assert_eq!(
            neutron_ha_confs(&m2, &none).map(|x| x.0),
            Some(PathBuf::from("/var/lib/neutron/ha_confs"))
        );
        // The L3 agent: state_path from its config files (the last one setting it wins).
        let a = argv("/usr/bin/python3 /usr/bin/neutron-l3-agent --config-file=/usr/share/neutron/neutron-dist.conf --config-file /etc/neutron/neutron.conf --config-file /etc/neutron/l3_agent.ini --log-file /var/log/neutron/l3-agent.log");
        let read = |f: &str| match f {
            "/etc/neutron/neutron.conf" => Some(
                "[DEFAULT]\nstate_path = /data/neutron\n[agent]\nstate_path = /nope\n".to_string(),
            ),
            "/etc/neutron/l3_agent.ini" => Some(
                "[DEFAULT]\n# state_path = /commented\ninterface_driver = openvswitch\n"
                    .to_string(),
            ),
            _ => None,
        };
        let (d, how) = neutron_ha_confs(&a, &read).expect("found");
        assert_eq!(d, Path::new("/data/neutron/ha_confs"));
        assert!(how.contains("/etc/neutron/neutron.conf"), "{how}");
        assert_eq!(
            neutron_ha_confs(&a, &none).map(|x| x.0),
            Some(PathBuf::from("/var/lib/neutron/ha_confs"))
        );
        // Anything else is not Neutron.
        assert!(neutron_ha_confs(&argv("/usr/sbin/keepalived -f /x"), &none).is_none());
        assert!(neutron_ha_confs(&[], &none).is_none());
    }

    #[test]
    fn state_files_and_router_ids() {
        assert_eq!(parse_state("master\n").as_deref(), Some("primary"));
        assert_eq!(parse_state("primary").as_deref(), Some("primary"));
        assert_eq!(parse_state("backup").as_deref(), Some("backup"));
        assert_eq!(parse_state(" ").as_deref(), None);
        assert_eq!(
            router_id_of(Path::new(
                "/var/lib/neutron/ha_confs/5f1e2d3c-aaaa/keepalived.conf"
            ))
            .as_deref(),
            Some("5f1e2d3c-aaaa")
        );
        assert_eq!(
            router_id_of(Path::new("/etc/keepalived/keepalived.conf")),
            None
        );
    }
}
