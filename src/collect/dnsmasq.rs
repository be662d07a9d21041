//! dnsmasq: found from its running process (command line and conf files), its DHCP host entries
//! (one file per port in `--dhcp-hostsdir`, or `--dhcp-hostsfile`, or inline `--dhcp-host`), its
//! ranges and the options it hands out (router, MTU).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::procs::{Process, ProcessSource};

/// One `dhcp-host` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    pub macs: Vec<String>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<IpAddr>,
    pub hostname: Option<String>,
    pub client_id: Option<String>,
    /// Tags set by the entry (`set:port-<uuid>`).
    pub tags: Vec<String>,
    pub ignore: bool,
    /// Where the entry was read: a file path, or `--dhcp-host`.
    pub source: String,
    /// The line, verbatim.
    pub line: String,
}

impl HostEntry {
    /// Port UUID from a `set:port-<uuid>` tag or a file named by the UUID.
    pub fn port_id(&self) -> Option<String> {
        for t in &self.tags {
            if let Some(id) = t.strip_prefix("port-") {
                if looks_like_uuid(id) {
                    return Some(id.to_ascii_lowercase());
                }
            }
        }
        let fname = Path::new(&self.source).file_name()?.to_str()?;
        looks_like_uuid(fname).then(|| fname.to_ascii_lowercase())
    }
}

pub fn looks_like_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_mac(s: &str) -> bool {
    // dnsmasq accepts `*` wildcards and an optional hardware type prefix (`1-aa:bb:...`).
    let s = s.split_once('-').map(|(_, m)| m).unwrap_or(s);
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| *p == "*" || (p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit())))
}

fn is_lease_time(s: &str) -> bool {
    s == "infinite"
        || s.strip_suffix(['h', 'm', 's', 'd', 'w'])
            .unwrap_or(s)
            .chars()
            .all(|c| c.is_ascii_digit())
            && !s.is_empty()
}

/// Parse one `dhcp-host` value: `mac,name,ip`, `mac,name,ip,set:port-<id>`,
/// `mac,id:<client-id>,name,ip`, `mac,ip,lease`, `[v6]`, `ignore`...
pub fn parse_host_entry(line: &str, source: &str) -> Option<HostEntry> {
    let line_t = line.trim();
    if line_t.is_empty() || line_t.starts_with('#') {
        return None;
    }
    let mut e = HostEntry {
        macs: Vec::new(),
        ipv4: None,
        ipv6: None,
        hostname: None,
        client_id: None,
        tags: Vec::new(),
        ignore: false,
        source: source.to_string(),
        line: line_t.to_string(),
    };
    for field in line_t.split(',') {
        let f = field.trim();
        if f.is_empty() {
            continue;
        }
        if is_mac(f) {
            e.macs.push(f.to_ascii_lowercase());
        } else if let Some(t) = f.strip_prefix("set:") {
            e.tags.push(t.to_string());
        } else if f.starts_with("tag:") || f.starts_with("net:") {
            // a condition, not a property of the host
        } else if let Some(id) = f.strip_prefix("id:") {
            e.client_id = Some(id.to_string());
        } else if let Some(v6) = f.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            e.ipv6 = v6.parse().ok();
        } else if let Ok(v4) = f.parse::<Ipv4Addr>() {
            e.ipv4 = Some(v4);
        } else if f == "ignore" {
            e.ignore = true;
        } else if is_lease_time(f) {
            // lease time
        } else {
            e.hostname = Some(f.to_string());
        }
    }
    Some(e)
}

/// A `dhcp-range`, reduced to what the walk needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub tags: Vec<String>,
    pub start: IpAddr,
    pub netmask: Option<Ipv4Addr>,
    /// An IPv6 range's prefix length (`2001:db8::,static,64`).
    #[serde(default)]
    pub prefix_len: Option<u8>,
    pub line: String,
}

impl Range {
    /// True when `ip` lies in the range's network (start masked with its netmask).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.start, ip, self.netmask) {
            (IpAddr::V4(s), IpAddr::V4(i), Some(m)) => {
                let m = u32::from(m);
                u32::from(s) & m == u32::from(i) & m
            }
            (IpAddr::V4(s), IpAddr::V4(i), None) => {
                // dnsmasq derives the netmask from the interface; assume /24 only as a hint
                u32::from(s) >> 8 == u32::from(i) >> 8
            }
            (IpAddr::V6(_), IpAddr::V6(_), _) => crate::collect::netlink::prefix_contains(
                self.start,
                self.prefix_len.unwrap_or(64),
                ip,
            ),
            _ => false,
        }
    }
}

pub fn parse_range(v: &str) -> Option<Range> {
    let mut tags = Vec::new();
    let mut ips = Vec::new();
    for f in v.split(',') {
        let f = f.trim();
        if let Some(t) = f.strip_prefix("set:") {
            tags.push(t.to_string());
        } else if let Ok(ip) = f.parse::<IpAddr>() {
            ips.push(ip);
        }
    }
    let start = *ips.first()?;
    // dhcp-range=start,static,mask or start,end,mask: the mask is the last dotted quad that is
    // a valid contiguous netmask.
    let netmask = ips.iter().skip(1).rev().find_map(|ip| match ip {
        IpAddr::V4(m) => {
            let n = u32::from(*m);
            (n != 0 && n.leading_ones() + n.trailing_zeros() == 32).then_some(*m)
        }
        _ => None,
    });
    // IPv6: `start[,end],{static|constructor:…|ra-…},PREFIXLEN[,lease]`.
    let prefix_len = start
        .is_ipv6()
        .then(|| {
            v.split(',')
                .map(str::trim)
                .filter_map(|f| f.parse::<u8>().ok())
                .find(|n| *n <= 128)
        })
        .flatten();
    Some(Range {
        tags,
        start,
        netmask,
        prefix_len,
        line: v.to_string(),
    })
}

/// A `dhcp-option` / `dhcp-option-force` value: its tag conditions, option and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpOption {
    pub tags: Vec<String>,
    /// Option name (`router`, `mtu`) or number as text (`3`, `26`).
    pub option: String,
    pub value: String,
    pub forced: bool,
    pub line: String,
}

impl DhcpOption {
    pub fn is(&self, name: &str, number: u8) -> bool {
        self.option == name || self.option == number.to_string()
    }
}

pub fn parse_option(v: &str, forced: bool) -> Option<DhcpOption> {
    let mut tags = Vec::new();
    let mut rest: Vec<&str> = Vec::new();
    for f in v.split(',') {
        let f = f.trim();
        if rest.is_empty() {
            if let Some(t) = f.strip_prefix("tag:").or_else(|| f.strip_prefix("net:")) {
                tags.push(t.to_string());
                continue;
            }
            if f.starts_with("encap:") || f.starts_with("vi-encap:") || f.starts_with("vendor:") {
                return None;
            }
        }
        rest.push(f);
    }
    let opt = rest.first()?;
    let option = opt.strip_prefix("option:").unwrap_or(opt).to_string();
    if option.starts_with("option6:") {
        return None;
    }
    Some(DhcpOption {
        tags,
        option,
        value: rest[1..].join(","),
        forced,
        line: v.to_string(),
    })
}

/// Everything vmpath reads of one dnsmasq instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dnsmasq {
    pub pid: Option<u32>,
    pub origin: String,
    pub interfaces: Vec<String>,
    pub except_interfaces: Vec<String>,
    pub hostsdirs: Vec<PathBuf>,
    pub hostsfiles: Vec<PathBuf>,
    pub ranges: Vec<Range>,
    pub options: Vec<DhcpOption>,
    pub hosts: Vec<HostEntry>,
    /// Problems reading files (named), reported as evidence by the checks.
    pub read_errors: Vec<String>,
    /// Why this process is not trusted as a source (`collect::trust`): none of its files were
    /// read.
    #[serde(default)]
    pub untrusted: Option<String>,
    /// The uid it runs as (its files are read as that user could).
    #[serde(default)]
    pub uid: Option<u32>,
}

/// dnsmasq options as (name, value) pairs from argv (`--name=value`, `--name value` for the
/// options we know take a value) and from conf files (`name=value`).
fn collect_options(
    args: &[String],
    read_conf: &dyn Fn(&str) -> std::io::Result<String>,
    list_dir: &dyn Fn(&str) -> HostFiles,
    errors: &mut Vec<String>,
) -> Vec<(String, String)> {
    const WITH_VALUE: &[&str] = &[
        "conf-file",
        "conf-dir",
        "dhcp-hostsdir",
        "dhcp-hostsfile",
        "dhcp-host",
        "dhcp-range",
        "dhcp-option",
        "dhcp-option-force",
        "interface",
        "except-interface",
        "pid-file",
        "dhcp-optsfile",
        "dhcp-optsdir",
    ];
    let short = |s: &str| match s {
        "-C" => Some("conf-file"),
        "-i" => Some("interface"),
        "-I" => Some("except-interface"),
        "-F" => Some("dhcp-range"),
        "-O" => Some("dhcp-option"),
        "-G" => Some("dhcp-host"),
        "-x" => Some("pid-file"),
        _ => None,
    };
    let mut out = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if let Some(long) = a.strip_prefix("--") {
            if let Some((k, v)) = long.split_once('=') {
                out.push((k.to_string(), v.to_string()));
            } else if WITH_VALUE.contains(&long) && i + 1 < args.len() {
                out.push((long.to_string(), args[i + 1].clone()));
                i += 1;
            } else {
                out.push((long.to_string(), String::new()));
            }
        } else if let Some(k) = short(a.get(..2).unwrap_or("")) {
            if a.len() > 2 {
                out.push((k.to_string(), a[2..].to_string()));
            } else if i + 1 < args.len() {
                out.push((k.to_string(), args[i + 1].clone()));
                i += 1;
            }
        }
        i += 1;
    }
    // Conf files named on the command line (and the default one when none is named).
    let mut conf_files: Vec<String> = out
        .iter()
        .filter(|(k, _)| k == "conf-file")
        .map(|(_, v)| v.clone())
        .collect();
    if conf_files.is_empty() && !out.iter().any(|(k, _)| k == "conf-file") {
        conf_files.push("/etc/dnsmasq.conf".into());
    }
    // conf-dir=DIR[,.ext…]: every file of the dir (dnsmasq skips dotfiles and backups).
    let conf_dirs: Vec<String> = out
        .iter()
        .filter(|(k, _)| k == "conf-dir")
        .map(|(_, v)| v.split(',').next().unwrap_or("").to_string())
        .collect();
    for d in conf_dirs {
        if let Ok(files) = list_dir(&d) {
            for (_, text) in files {
                for line in text.lines() {
                    let l = line.trim();
                    if l.is_empty() || l.starts_with('#') {
                        continue;
                    }
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    out.push((k.trim().to_string(), v.trim().to_string()));
                }
            }
        }
    }
    let mut seen = 0;
    while let Some(f) = conf_files.pop() {
        seen += 1;
        if seen > 32 || f.is_empty() || f == "/dev/null" {
            continue;
        }
        let text = match read_conf(&f) {
            Ok(t) => t,
            // The default conf file may well be absent.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && f == "/etc/dnsmasq.conf" => {
                continue
            }
            Err(e) => {
                errors.push(format!("conf-file {f}: {e}"));
                continue;
            }
        };
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            if k == "conf-file" {
                conf_files.push(v.clone());
            }
            out.push((k, v));
        }
    }
    out
}

/// Files of a hosts dir (or one hosts file): (path, contents), as a process would read them.
pub type HostFiles = std::io::Result<Vec<(String, String)>>;

/// Build the description of one dnsmasq process. `read` reads a file as the process sees it.
pub fn from_process(
    p: &Process,
    read: &dyn Fn(&str) -> std::io::Result<String>,
    list_dir: &dyn Fn(&str) -> HostFiles,
) -> Dnsmasq {
    let mut errors = Vec::new();
    let opts = collect_options(&p.args, read, list_dir, &mut errors);
    let mut d = Dnsmasq {
        pid: Some(p.pid),
        origin: format!("dnsmasq pid {}", p.pid),
        read_errors: errors,
        ..Default::default()
    };
    for (k, v) in &opts {
        match k.as_str() {
            "interface" => d
                .interfaces
                .extend(v.split(',').map(|s| s.trim().to_string())),
            "except-interface" => d
                .except_interfaces
                .extend(v.split(',').map(|s| s.trim().to_string())),
            "dhcp-hostsdir" => d.hostsdirs.push(PathBuf::from(v)),
            "dhcp-hostsfile" => d.hostsfiles.push(PathBuf::from(v)),
            "dhcp-host" => d.hosts.extend(parse_host_entry(v, "--dhcp-host")),
            "dhcp-range" => d.ranges.extend(parse_range(v)),
            "dhcp-option" => d.options.extend(parse_option(v, false)),
            "dhcp-option-force" => d.options.extend(parse_option(v, true)),
            // Files (or dirs) of dhcp-option lines, as Neutron's DHCP agent writes them.
            "dhcp-optsfile" | "dhcp-optsdir" => match list_dir(v) {
                Ok(files) => {
                    for (_, text) in files {
                        for line in text.lines().map(str::trim) {
                            if line.is_empty() || line.starts_with('#') {
                                continue;
                            }
                            d.options.extend(parse_option(line, false));
                        }
                    }
                }
                Err(e) => d.read_errors.push(format!("{v}: {e}")),
            },
            _ => {}
        }
    }
    let dirs: Vec<PathBuf> = d.hostsdirs.clone();
    let files: Vec<PathBuf> = d.hostsfiles.clone();
    for dir in dirs.iter().chain(files.iter()) {
        let ds = dir.to_string_lossy().to_string();
        match list_dir(&ds) {
            Ok(entries) => {
                for (path, text) in entries {
                    for line in text.lines() {
                        d.hosts.extend(parse_host_entry(line, &path));
                    }
                }
            }
            Err(e) => d.read_errors.push(format!("{ds}: {e}")),
        }
    }
    d
}

impl Dnsmasq {
    /// Does dnsmasq's interface selection include `ifname`? dnsmasq matches `*` wildcards.
    pub fn serves_interface(&self, ifname: &str) -> bool {
        let m = |pat: &String| glob_match(pat, ifname);
        if self.except_interfaces.iter().any(m) {
            return false;
        }
        self.interfaces.is_empty() || self.interfaces.iter().any(m)
    }

    /// Host entries that mention a MAC or an address.
    pub fn entries_for(&self, mac: Option<&str>, ips: &[IpAddr]) -> Vec<&HostEntry> {
        self.hosts
            .iter()
            .filter(|h| {
                mac.is_some_and(|m| h.macs.iter().any(|x| x.eq_ignore_ascii_case(m)))
                    || h.ipv4.is_some_and(|v| ips.contains(&IpAddr::V4(v)))
                    || h.ipv6.is_some_and(|v| ips.contains(&v))
            })
            .collect()
    }

    /// Tags that apply to an address: its range's tags and those of the host entries for it.
    fn tags_for(&self, ip: IpAddr) -> Vec<&str> {
        let mut t: Vec<&str> = self
            .ranges
            .iter()
            .filter(|r| r.contains(ip))
            .flat_map(|r| r.tags.iter().map(String::as_str))
            .collect();
        for h in self.entries_for(None, &[ip]) {
            t.extend(h.tags.iter().map(String::as_str));
        }
        t
    }

    /// The option that applies to `ip`: untagged, or all its tags set for that address.
    pub fn option_for(&self, ip: IpAddr, name: &str, number: u8) -> Option<&DhcpOption> {
        let tags = self.tags_for(ip);
        let applies = |o: &&DhcpOption| o.tags.iter().all(|t| tags.contains(&t.as_str()));
        // dnsmasq prefers the most specific (tagged) option over an untagged one.
        let mut cands: Vec<&DhcpOption> = self
            .options
            .iter()
            .filter(|o| o.is(name, number))
            .filter(applies)
            .collect();
        cands.sort_by_key(|o| std::cmp::Reverse(o.tags.len()));
        cands.into_iter().next()
    }

    pub fn mtu_for(&self, ip: IpAddr) -> Option<(u32, &DhcpOption)> {
        let o = self.option_for(ip, "mtu", 26)?;
        Some((o.value.trim().parse().ok()?, o))
    }

    pub fn router_for(&self, ip: IpAddr) -> Option<(IpAddr, &DhcpOption)> {
        let o = self.option_for(ip, "router", 3)?;
        Some((o.value.split(',').next()?.trim().parse().ok()?, o))
    }
}

/// dnsmasq-style interface name match: `*` matches any run of characters.
pub fn glob_match(pat: &str, name: &str) -> bool {
    match pat.split_once('*') {
        None => pat == name,
        Some((pre, post)) => {
            name.len() >= pre.len() + post.len()
                && name.starts_with(pre)
                && glob_match_tail(post, &name[pre.len()..])
        }
    }
}

fn glob_match_tail(pat: &str, name: &str) -> bool {
    if !pat.contains('*') {
        return name.ends_with(pat);
    }
    (0..=name.len()).any(|i| name.is_char_boundary(i) && glob_match(pat, &name[i..]))
}

/// Find every dnsmasq of this network namespace and read it.
/// Every dnsmasq of `procs`. A trusted one's files are read as the daemon itself could read
/// them (`collect::files::read_for`: its own or root's files that its user may read, bounded);
/// an untrusted one is listed with the reason and nothing of it is read.
pub fn discover(procs: &dyn ProcessSource, policy: &super::trust::Policy) -> Vec<Dnsmasq> {
    procs
        .find("dnsmasq")
        .into_iter()
        .map(|p| {
            let uid = match super::trust::judge(p, policy) {
                Ok(()) => p.cred.as_ref().map(|c| c.uid).unwrap_or(0),
                Err(why) => {
                    // Its command line says which interfaces it claims; no file it names is read.
                    let refuse = |_: &str| -> std::io::Result<String> {
                        Err(std::io::ErrorKind::PermissionDenied.into())
                    };
                    let refuse_dir =
                        |_: &str| -> HostFiles { Err(std::io::ErrorKind::PermissionDenied.into()) };
                    let mut d = from_process(p, &refuse, &refuse_dir);
                    d.read_errors.clear();
                    d.hosts.clear();
                    d.untrusted = Some(why);
                    d.uid = p.cred.as_ref().map(|c| c.uid);
                    return d;
                }
            };
            let read = |f: &str| super::files::read_for(&p.path(f), uid, super::files::MAX_TEXT);
            let list = |d: &str| read_hosts_path_for(&p.path(d), Some(uid));
            let mut d = from_process(p, &read, &list);
            d.uid = Some(uid);
            d
        })
        .collect()
}

/// Read a hosts dir (every regular file, sorted) or a single hosts file.
pub fn read_hosts_path(path: &Path) -> HostFiles {
    read_hosts_path_for(path, None)
}

/// [`read_hosts_path`] on behalf of a daemon running as `uid` (`None`: a path the user gave):
/// only what that daemon could read itself, every file bounded.
fn read_hosts_path_for(path: &Path, uid: Option<u32>) -> HostFiles {
    use super::files::{read_text, readable_by, MAX_TEXT};
    let gate = |md: &std::fs::Metadata| -> std::io::Result<()> {
        match uid {
            Some(u) => readable_by(md, u).map_err(|why| {
                std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{} not read: {why}", path.display()),
                )
            }),
            None => Ok(()),
        }
    };
    let meta = std::fs::metadata(path)?;
    gate(&meta)?;
    // Each file judged on the file opened (files::read_for), not on a path looked at before.
    let read = |p: &Path| match uid {
        Some(u) => super::files::read_for(p, u, MAX_TEXT),
        None => read_text(p, MAX_TEXT),
    };
    if !meta.is_dir() {
        let text = read(path)?;
        return Ok(vec![(path.to_string_lossy().into_owned(), text)]);
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(path)? {
        let Ok(e) = e else { continue };
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        // dnsmasq skips editor backups and dotfiles in hosts dirs
        if name.starts_with('.') || name.ends_with('~') || name.starts_with('#') {
            continue;
        }
        let Ok(md) = std::fs::metadata(&p) else {
            continue;
        };
        if !md.is_file() {
            continue;
        }
        if let Ok(text) = read(&p) {
            out.push((p.to_string_lossy().into_owned(), text));
        }
    }
    out.sort();
    Ok(out)
}

/// Read a dnsmasq given explicitly (config/flag): a hosts dir without a process.
pub fn from_hostsdir(dir: &Path) -> Dnsmasq {
    let mut d = Dnsmasq {
        origin: format!("--dhcp-hostsdir {}", dir.display()),
        hostsdirs: vec![dir.to_path_buf()],
        ..Default::default()
    };
    match read_hosts_path(dir) {
        Ok(entries) => {
            for (path, text) in entries {
                for line in text.lines() {
                    d.hosts.extend(parse_host_entry(line, &path));
                }
            }
        }
        Err(e) => d.read_errors.push(format!("{}: {e}", dir.display())),
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_entry_forms() {
        let e = parse_host_entry(
            "fa:16:3e:00:00:01,host-198-51-100-11,198.51.100.11,set:port-3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51",
            "/run/h/x",
        )
        .expect("entry");
        assert_eq!(e.macs, vec!["fa:16:3e:00:00:01"]);
        assert_eq!(e.ipv4, Some("198.51.100.11".parse().expect("ip")));
        assert_eq!(e.hostname.as_deref(), Some("host-198-51-100-11"));
        assert_eq!(
            e.port_id().as_deref(),
            Some("3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51")
        );
        let e = parse_host_entry("fa:16:3e:aa:bb:cc,id:01:02,vm-a,192.0.2.5,infinite", "f")
            .expect("entry");
        assert_eq!(e.client_id.as_deref(), Some("01:02"));
        assert_eq!(e.hostname.as_deref(), Some("vm-a"));
        let e = parse_host_entry("fa:16:3e:aa:bb:cc,[2001:db8::5],12h", "f").expect("entry");
        assert_eq!(e.ipv6, Some("2001:db8::5".parse().expect("ip")));
        assert!(e.hostname.is_none());
        assert!(parse_host_entry("# comment", "f").is_none());
        assert!(parse_host_entry("   ", "f").is_none());
        // Neutron's DHCPv6 line: the `tag:` condition is no property of the host.
        let e = parse_host_entry(
            "fa:16:3e:63:ad:00,tag:dhcpv6,host-2001-db8-0-1--24e.openstacklocal,[2001:db8:0:1::24e]",
            "f",
        )
        .expect("entry");
        assert_eq!(
            e.hostname.as_deref(),
            Some("host-2001-db8-0-1--24e.openstacklocal")
        );
        assert!(e.tags.is_empty() && e.ipv4.is_none() && e.ipv6.is_some());
        // `id:*` (ignore the client id), a hardware-type prefix, a lease time in minutes.
        let e =
            parse_host_entry("1-fa:16:3e:aa:bb:cc,id:*,vm-b,192.0.2.6,45m", "f").expect("entry");
        assert_eq!(e.client_id.as_deref(), Some("*"));
        assert_eq!(e.macs.len(), 1);
        assert_eq!(e.hostname.as_deref(), Some("vm-b"));
    }

    #[test]
    fn port_id_from_file_name() {
        let e = parse_host_entry(
            "fa:16:3e:00:00:02,vm2,198.51.100.12",
            "/d/7a2b3c4d-1e2f-4a5b-9c8d-7e6f5a4b3c52",
        )
        .expect("entry");
        assert_eq!(
            e.port_id().as_deref(),
            Some("7a2b3c4d-1e2f-4a5b-9c8d-7e6f5a4b3c52")
        );
    }

    #[test]
    fn ranges_and_options() {
        let r = parse_range("set:net1,198.51.100.0,static,255.255.255.0,86400s").expect("range");
        assert!(r.contains("198.51.100.77".parse().expect("ip")));
        assert!(!r.contains("198.51.101.1".parse().expect("ip")));
        let o = parse_option("tag:net1,option:router,198.51.100.1", false).expect("opt");
        assert!(o.is("router", 3));
        assert_eq!(o.tags, vec!["net1"]);
        let o = parse_option("26,9000", true).expect("opt");
        assert!(o.is("mtu", 26));
        assert_eq!(o.value, "9000");
    }

    #[test]
    fn options_from_a_real_command_line() {
        let args: Vec<String> =
            "dnsmasq --keep-in-foreground --port=0 --conf-file=/dev/null --interface=tap* \
             --dhcp-range=set:net1,198.51.100.0,static,255.255.255.0,86400s \
             --dhcp-option=tag:net1,option:router,198.51.100.1 --dhcp-option-force=option:mtu,1450 \
             --dhcp-hostsdir /tmp/vmlab/hv1/dhcp-hosts"
                .split_whitespace()
                .map(String::from)
                .collect();
        let p = Process {
            pid: 42,
            name: "dnsmasq".into(),
            args,
            cred: None,
        };
        let files = |_d: &str| -> HostFiles {
            Ok(vec![(
                "/tmp/vmlab/hv1/dhcp-hosts/3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a51".into(),
                "fa:16:3e:00:00:01,host-198-51-100-11,198.51.100.11\n".into(),
            )])
        };
        let d = from_process(&p, &|_| Err(std::io::ErrorKind::NotFound.into()), &files);
        assert_eq!(
            d.hostsdirs,
            vec![PathBuf::from("/tmp/vmlab/hv1/dhcp-hosts")]
        );
        assert!(d.serves_interface("tap3f1c2a4e-5b"));
        assert!(!d.serves_interface("eth0"));
        let ip: IpAddr = "198.51.100.11".parse().expect("ip");
        assert_eq!(d.mtu_for(ip).map(|m| m.0), Some(1450));
        assert_eq!(
            d.router_for(ip).map(|r| r.0),
            Some("198.51.100.1".parse().expect("ip"))
        );
        assert_eq!(d.entries_for(Some("FA:16:3E:00:00:01"), &[]).len(), 1);
        // a router option for another tag does not apply
        let other: IpAddr = "192.0.2.9".parse().expect("ip");
        assert!(d.router_for(other).is_none());
    }

    #[test]
    fn conf_file_options_are_read() {
        let args: Vec<String> = vec!["dnsmasq".into(), "-C".into(), "/etc/x.conf".into()];
        let p = Process {
            pid: 1,
            name: "dnsmasq".into(),
            args,
            cred: None,
        };
        let read = |f: &str| {
            (f == "/etc/x.conf")
                .then(|| "interface=tap*\ndhcp-option-force=26,9000\n# c\n".to_string())
                .ok_or_else(|| std::io::ErrorKind::NotFound.into())
        };
        let d = from_process(&p, &read, &|_| Ok(vec![]));
        assert_eq!(d.interfaces, vec!["tap*"]);
        assert_eq!(d.options.len(), 1);
    }

    #[test]
    fn opts_files_and_conf_dirs_are_read() {
        let args: Vec<String> = vec![
            "dnsmasq".into(),
            "--conf-dir=/etc/dnsmasq.d,.conf".into(),
            "--dhcp-optsfile=/var/lib/neutron/dhcp/net1/opts".into(),
        ];
        let p = Process {
            pid: 1,
            name: "dnsmasq".into(),
            args,
            cred: None,
        };
        let list = |d: &str| -> HostFiles {
            match d {
                "/etc/dnsmasq.d" => Ok(vec![(
                    "/etc/dnsmasq.d/a.conf".into(),
                    "dhcp-option-force=option:mtu,8950\n".into(),
                )]),
                "/var/lib/neutron/dhcp/net1/opts" => Ok(vec![(
                    d.into(),
                    "tag:subnet-1,option:router,192.0.2.1\n".into(),
                )]),
                _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            }
        };
        let d = from_process(&p, &|_| Err(std::io::ErrorKind::NotFound.into()), &list);
        assert!(
            d.options
                .iter()
                .any(|o| o.is("mtu", 26) && o.value == "8950"),
            "{:?}",
            d.options
        );
        assert!(d
            .options
            .iter()
            .any(|o| o.is("router", 3) && o.value == "192.0.2.1"));
        assert!(d.read_errors.is_empty());
    }

    #[test]
    fn glob() {
        assert!(glob_match("tap*", "tapabc"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("t*p*x", "tapx"));
        assert!(!glob_match("tap*", "eth0"));
        assert!(glob_match("eth0", "eth0"));
    }

    /// The command line and files of a real Neutron DHCP agent's dnsmasq (Neutron 29,
    /// dual-stack, `tests/fixtures/neutron-dhcp/`).
    #[test]
    fn a_real_neutron_dhcp_agent_dnsmasq_is_read_whole() {
        let fx = |f: &str| {
            std::fs::read_to_string(format!(
                "{}/tests/fixtures/neutron-dhcp/{f}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .expect("fixture")
        };
        let cmdline = fx("dnsmasq.cmdline");
        let args: Vec<String> = cmdline.split_whitespace().map(String::from).collect();
        let p = Process {
            pid: 4242,
            name: "dnsmasq".into(),
            args,
            cred: None,
        };
        let dir = "/tmp/nagents/lab/hosts/net1/state/dhcp/172d54ab-a93e-421f-9f47-22e68c645050";
        let list = |path: &str| -> HostFiles {
            let name = path.strip_prefix(dir).map(|n| n.trim_start_matches('/'));
            match name {
                Some(n @ ("host" | "opts")) => Ok(vec![(path.to_string(), fx(n))]),
                _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            }
        };
        let d = from_process(&p, &|_| Err(std::io::ErrorKind::NotFound.into()), &list);
        assert!(d.read_errors.is_empty(), "{:?}", d.read_errors);
        assert_eq!(d.hostsfiles.len(), 1);
        assert_eq!(d.hosts.len(), 4, "{:?}", d.hosts);
        let v6: Vec<&HostEntry> = d.hosts.iter().filter(|h| h.ipv6.is_some()).collect();
        assert_eq!(v6.len(), 2);
        assert!(v6.iter().all(|h| h.ipv4.is_none() && h.port_id().is_none()));
        assert_eq!(d.ranges.len(), 2);
        let v6: IpAddr = "2001:db8:0:1::24e".parse().expect("ip");
        assert!(d
            .ranges
            .iter()
            .any(|r| r.contains(v6) && r.prefix_len == Some(64)));
        let vm: IpAddr = "198.18.0.197".parse().expect("ip");
        assert_eq!(d.mtu_for(vm).map(|m| m.0), Some(9000));
        assert_eq!(
            d.router_for(vm).map(|r| r.0),
            Some("198.18.0.1".parse().expect("ip"))
        );
    }
}
