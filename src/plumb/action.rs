//! The actions `vmpath plumb` can take on a host, as plain values: what to do, its shell
//! equivalent for the reader, and the interface guard. Executing them is in [`super::sys`].

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

/// Kernel route protocol numbers (`/etc/iproute2/rt_protos`) used here.
pub const PROTO_KERNEL: u8 = 2;
pub const PROTO_STATIC: u8 = 4;
/// Route scopes.
pub const SCOPE_UNIVERSE: u8 = 0;
pub const SCOPE_LINK: u8 = 253;
pub const SCOPE_HOST: u8 = 254;
/// Route types.
pub const RTN_UNICAST: u8 = 1;
/// Address flags kept when an address is deleted and re-added (`IFA_F_NODAD`,
/// `IFA_F_NOPREFIXROUTE`).
pub const IFA_F_NODAD: u32 = 0x02;
pub const IFA_F_NOPREFIXROUTE: u32 = 0x200;

/// A route of the main table, with everything needed to re-create or delete exactly it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RouteSpec {
    pub dst: IpAddr,
    pub prefix_len: u8,
    /// Output device; `None` for routes without one (blackhole, unreachable).
    pub dev: Option<String>,
    pub protocol: u8,
    pub scope: u8,
    /// Route type (1 unicast, 6 blackhole, 7 unreachable, ...).
    pub kind: u8,
    /// Priority (metric), when the kernel reports one.
    pub metric: Option<u32>,
}

impl RouteSpec {
    pub fn is_unicast(&self) -> bool {
        self.kind == RTN_UNICAST
    }

    /// `198.51.100.11/32 dev tapX proto static scope link`, as `ip route` prints it.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if !self.is_unicast() {
            s.push_str(kind_name(self.kind));
            s.push(' ');
        }
        s.push_str(&format!("{}/{}", self.dst, self.prefix_len));
        if let Some(d) = &self.dev {
            s.push_str(&format!(" dev {d}"));
        }
        s.push_str(&format!(" proto {}", proto_name(self.protocol)));
        if self.dst.is_ipv4() && self.scope != SCOPE_UNIVERSE {
            s.push_str(&format!(" scope {}", scope_name(self.scope)));
        }
        if let Some(m) = self.metric {
            s.push_str(&format!(" metric {m}"));
        }
        s
    }
}

pub fn proto_name(p: u8) -> String {
    match p {
        0 => "unspec".into(),
        2 => "kernel".into(),
        3 => "boot".into(),
        4 => "static".into(),
        11 => "zebra".into(),
        12 => "bird".into(),
        186 => "bgp".into(),
        n => n.to_string(),
    }
}

fn scope_name(s: u8) -> String {
    match s {
        0 => "global".into(),
        253 => "link".into(),
        254 => "host".into(),
        n => n.to_string(),
    }
}

fn kind_name(k: u8) -> &'static str {
    match k {
        1 => "unicast",
        2 => "local",
        6 => "blackhole",
        7 => "unreachable",
        8 => "prohibit",
        9 => "throw",
        _ => "type",
    }
}

/// An address on the tap as it is (or should be).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct AddrSpec {
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// `IFA_F_*` flags kept across delete and re-add (noprefixroute, nodad).
    pub flags: u32,
    /// IPv4 broadcast address, when the address has one (`ip addr add` sets none by default).
    pub broadcast: Option<std::net::Ipv4Addr>,
}

impl AddrSpec {
    pub fn noprefixroute(&self) -> bool {
        self.flags & IFA_F_NOPREFIXROUTE != 0
    }
    fn flag_words(&self) -> String {
        let mut s = String::new();
        if self.noprefixroute() {
            s.push_str(" noprefixroute");
        }
        if self.flags & IFA_F_NODAD != 0 && self.addr.is_ipv6() {
            s.push_str(" nodad");
        }
        s
    }
}

/// A file as it is (or should be): content, owner and mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSpec {
    pub path: PathBuf,
    pub content: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// One change to the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// A persistent tap, as Nova creates it (`/dev/net/tun`, TUNSETIFF + TUNSETPERSIST).
    CreateTap {
        tap: String,
        owner: Option<u32>,
        group: Option<u32>,
    },
    DeleteLink {
        tap: String,
    },
    SetMac {
        tap: String,
        mac: String,
    },
    SetMtu {
        tap: String,
        mtu: u32,
    },
    SetUp {
        tap: String,
    },
    SetDown {
        tap: String,
    },
    AddAddr {
        tap: String,
        addr: AddrSpec,
    },
    DelAddr {
        tap: String,
        addr: AddrSpec,
    },
    /// Write a value under /proc/sys/net (`path` relative to it: `ipv4/conf/tapX/proxy_arp`).
    Sysctl {
        path: String,
        value: String,
    },
    AddRoute {
        route: RouteSpec,
    },
    DelRoute {
        route: RouteSpec,
    },
    /// Write a file atomically (temporary file in the same directory, then rename).
    WriteFile {
        file: FileSpec,
    },
    RemoveFile {
        path: PathBuf,
    },
    /// SIGHUP to dnsmasq so that it re-reads its host files.
    ReloadDnsmasq {
        pid: u32,
    },
}

impl Action {
    /// Stable name, the `action` field of the JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Action::CreateTap { .. } => "create-tap",
            Action::DeleteLink { .. } => "delete-link",
            Action::SetMac { .. } => "set-mac",
            Action::SetMtu { .. } => "set-mtu",
            Action::SetUp { .. } => "set-up",
            Action::SetDown { .. } => "set-down",
            Action::AddAddr { .. } => "add-address",
            Action::DelAddr { .. } => "delete-address",
            Action::Sysctl { .. } => "sysctl",
            Action::AddRoute { .. } => "add-route",
            Action::DelRoute { .. } => "delete-route",
            Action::WriteFile { .. } => "write-dhcp-host",
            Action::RemoveFile { .. } => "remove-dhcp-host",
            Action::ReloadDnsmasq { .. } => "reload-dnsmasq",
        }
    }

    /// The `ip`/`sysctl`/shell command a person would type for the same change. Every name
    /// and file content is shell-quoted: pasted into a POSIX shell, it does what vmpath did and
    /// nothing else.
    pub fn equivalent(&self) -> String {
        match self {
            Action::CreateTap { tap, owner, group } => {
                let mut s = format!("ip tuntap add dev {} mode tap", sh(tap));
                if let Some(u) = owner {
                    s.push_str(&format!(" user {u}"));
                }
                if let Some(g) = group {
                    s.push_str(&format!(" group {g}"));
                }
                s
            }
            Action::DeleteLink { tap } => format!("ip link del {}", sh(tap)),
            Action::SetMac { tap, mac } => format!("ip link set {} address {}", sh(tap), sh(mac)),
            Action::SetMtu { tap, mtu } => format!("ip link set {} mtu {mtu}", sh(tap)),
            Action::SetUp { tap } => format!("ip link set {} up", sh(tap)),
            Action::SetDown { tap } => format!("ip link set {} down", sh(tap)),
            Action::AddAddr { tap, addr } => format!(
                "ip addr add {}/{}{} dev {}{}",
                addr.addr,
                addr.prefix_len,
                addr.broadcast
                    .map(|b| format!(" brd {b}"))
                    .unwrap_or_default(),
                sh(tap),
                addr.flag_words()
            ),
            Action::DelAddr { tap, addr } => {
                format!(
                    "ip addr del {}/{} dev {}",
                    addr.addr,
                    addr.prefix_len,
                    sh(tap)
                )
            }
            Action::Sysctl { path, value } => {
                format!(
                    "sysctl -w {}={}",
                    sh(&format!("net.{}", path.replace('/', "."))),
                    sh(value)
                )
            }
            Action::AddRoute { route } => {
                format!("{} add {}", ip_route(route), quoted_route(route))
            }
            Action::DelRoute { route } => {
                format!("{} del {}", ip_route(route), quoted_route(route))
            }
            Action::WriteFile { file } => {
                let name = file
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let tmp = sh(&file
                    .path
                    .with_file_name(format!(".{name}.tmp"))
                    .to_string_lossy());
                format!(
                    "{} > {tmp} && chown {}:{} {tmp} && chmod {:o} {tmp} && mv {tmp} {}",
                    printf_content(&file.content),
                    file.uid,
                    file.gid,
                    file.mode,
                    sh(&file.path.to_string_lossy()),
                )
            }
            Action::RemoveFile { path } => format!("rm {}", sh(&path.to_string_lossy())),
            Action::ReloadDnsmasq { pid } => format!("kill -HUP {pid}"),
        }
    }

    /// The interface this action changes, when it changes one.
    pub fn interface(&self) -> Option<&str> {
        match self {
            Action::CreateTap { tap, .. }
            | Action::DeleteLink { tap }
            | Action::SetMac { tap, .. }
            | Action::SetMtu { tap, .. }
            | Action::SetUp { tap }
            | Action::SetDown { tap }
            | Action::AddAddr { tap, .. }
            | Action::DelAddr { tap, .. } => Some(tap),
            Action::Sysctl { path, .. } => path.split('/').nth(2),
            Action::AddRoute { route } | Action::DelRoute { route } => route.dev.as_deref(),
            Action::WriteFile { .. } | Action::RemoveFile { .. } | Action::ReloadDnsmasq { .. } => {
                None
            }
        }
    }
}

pub use crate::collect::child::sh;

/// The command that prints exactly `content`: `printf '%s\n'` with one quoted word per line
/// (every line of a host file ends in a newline), else `printf '%s'` with the whole.
fn printf_content(content: &str) -> String {
    match content.strip_suffix('\n') {
        Some(body) => {
            let words: Vec<String> = body.split('\n').map(sh).collect();
            format!("printf '%s\\n' {}", words.join(" "))
        }
        None if content.is_empty() => "printf ''".to_string(),
        None => format!("printf '%s' {}", sh(content)),
    }
}

/// A route's `ip route` words, the device name quoted.
fn quoted_route(r: &RouteSpec) -> String {
    match &r.dev {
        Some(d) => r
            .describe()
            .replacen(&format!(" dev {d}"), &format!(" dev {}", sh(d)), 1),
        None => r.describe(),
    }
}

fn ip_route(r: &RouteSpec) -> &'static str {
    if r.dst.is_ipv6() {
        "ip -6 route"
    } else {
        "ip route"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn equivalents_read_like_ip_commands() {
        let r = RouteSpec {
            dst: ip("198.51.100.11"),
            prefix_len: 32,
            dev: Some("tapA".into()),
            protocol: PROTO_STATIC,
            scope: SCOPE_LINK,
            kind: RTN_UNICAST,
            metric: None,
        };
        assert_eq!(
            Action::AddRoute { route: r.clone() }.equivalent(),
            "ip route add 198.51.100.11/32 dev tapA proto static scope link"
        );
        let r6 = RouteSpec {
            dst: ip("2001:db8::11"),
            prefix_len: 128,
            scope: SCOPE_UNIVERSE,
            metric: Some(1024),
            ..r
        };
        assert_eq!(
            Action::DelRoute { route: r6 }.equivalent(),
            "ip -6 route del 2001:db8::11/128 dev tapA proto static metric 1024"
        );
        let a = AddrSpec {
            addr: ip("198.51.100.1"),
            prefix_len: 24,
            flags: IFA_F_NOPREFIXROUTE,
            broadcast: None,
        };
        assert_eq!(
            Action::AddAddr {
                tap: "tapA".into(),
                addr: a
            }
            .equivalent(),
            "ip addr add 198.51.100.1/24 dev tapA noprefixroute"
        );
        assert_eq!(
            Action::Sysctl {
                path: "ipv4/conf/tapA/proxy_arp".into(),
                value: "1".into()
            }
            .equivalent(),
            "sysctl -w net.ipv4.conf.tapA.proxy_arp=1"
        );
        assert_eq!(
            Action::Sysctl {
                path: "ipv4/neigh/tapA/proxy_delay".into(),
                value: "0".into()
            }
            .interface(),
            Some("tapA")
        );
    }

    /// Issue 12 item 6: the printed equivalent of write-dhcp-host, pasted into a shell,
    /// recreates the file byte for byte and runs nothing the file holds.
    #[test]
    fn a_pasted_write_recreates_the_file_and_runs_nothing() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("vmpath-paste-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let canary = dir.join("ran");
        let content = format!(
            "fa:16:3e:00:00:01,host-$(touch {c}),198.51.100.11\n`touch {c}` it's \\n %s \"q\"\n\n",
            c = canary.display()
        );
        let md = std::fs::metadata(&dir).expect("md");
        let target = dir.join("port with space");
        let a = Action::WriteFile {
            file: FileSpec {
                path: target.clone(),
                content: content.clone(),
                uid: md.uid(),
                gid: md.gid(),
                mode: 0o640,
            },
        };
        let cmd = a.equivalent();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .expect("sh");
        assert!(out.status.success(), "{cmd}: {out:?}");
        assert_eq!(
            std::fs::read_to_string(&target).expect("written"),
            content,
            "{cmd}"
        );
        assert_eq!(
            std::fs::metadata(&target).expect("md").mode() & 0o777,
            0o640
        );
        assert!(!canary.exists(), "pasting ran the file's content: {cmd}");
        assert_eq!(sh("tap'x"), r"'tap'\''x'");
        assert_eq!(sh("tapA"), "tapA");
        assert_eq!(sh(""), "''");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
