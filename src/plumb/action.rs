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

    /// The `ip`/`sysctl`/shell command a person would type for the same change.
    pub fn equivalent(&self) -> String {
        match self {
            Action::CreateTap { tap, owner, group } => {
                let mut s = format!("ip tuntap add dev {tap} mode tap");
                if let Some(u) = owner {
                    s.push_str(&format!(" user {u}"));
                }
                if let Some(g) = group {
                    s.push_str(&format!(" group {g}"));
                }
                s
            }
            Action::DeleteLink { tap } => format!("ip link del {tap}"),
            Action::SetMac { tap, mac } => format!("ip link set {tap} address {mac}"),
            Action::SetMtu { tap, mtu } => format!("ip link set {tap} mtu {mtu}"),
            Action::SetUp { tap } => format!("ip link set {tap} up"),
            Action::SetDown { tap } => format!("ip link set {tap} down"),
            Action::AddAddr { tap, addr } => format!(
                "ip addr add {}/{}{} dev {tap}{}",
                addr.addr,
                addr.prefix_len,
                addr.broadcast
                    .map(|b| format!(" brd {b}"))
                    .unwrap_or_default(),
                addr.flag_words()
            ),
            Action::DelAddr { tap, addr } => {
                format!("ip addr del {}/{} dev {tap}", addr.addr, addr.prefix_len)
            }
            Action::Sysctl { path, value } => {
                format!("sysctl -w net.{}={value}", path.replace('/', "."))
            }
            Action::AddRoute { route } => format!("{} add {}", ip_route(route), route.describe()),
            Action::DelRoute { route } => format!("{} del {}", ip_route(route), route.describe()),
            Action::WriteFile { file } => {
                let name = file
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let tmp = file.path.with_file_name(format!(".{name}.tmp"));
                format!(
                    "printf '%s' '{}' > {tmp} && chown {}:{} {tmp} && chmod {:o} {tmp} && mv {tmp} {}",
                    file.content.trim_end().replace('\n', "\\n"),
                    file.uid,
                    file.gid,
                    file.mode,
                    file.path.display(),
                    tmp = tmp.display(),
                )
            }
            Action::RemoveFile { path } => format!("rm {}", path.display()),
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
}
