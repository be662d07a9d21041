//! The host side of plumb: reading the facts the planner needs that a walk does not keep (route
//! metrics, address flags, sysctl defaults, the host file's owner and mode) and carrying out
//! actions over rtnetlink, `/dev/net/tun`, `/proc/sys` and the file system.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::{
    address::{AddressAttribute, AddressFlags, AddressMessage},
    route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteScope},
    AddressFamily,
};
use rtnetlink::LinkUnspec;

use super::action::{Action, AddrSpec, FileSpec, RouteSpec, IFA_F_NODAD, IFA_F_NOPREFIXROUTE};
use super::apply::{HostOps, LinkSnap, PortSnapshot};
use super::plan::TapState;
use crate::collect::netlink::{is_link_local, TABLE_MAIN};
use crate::error::Error;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage, State};

/// A connection to the kernel of the current network namespace.
pub struct System {
    rt: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
    timeout: Duration,
}

fn nl<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> Error + '_ {
    move |e| Error::unknown(format!("rtnetlink {what} failed: {e}"))
}

impl System {
    pub fn open(timeout: Duration) -> Result<System, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::unknown(format!("cannot start the async runtime: {e}")))?;
        let handle = rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection()
                .map_err(|e| Error::unknown(format!("cannot open an rtnetlink socket: {e}")))?;
            tokio::spawn(conn);
            Ok::<_, Error>(handle)
        })?;
        Ok(System {
            rt,
            handle,
            timeout,
        })
    }

    fn block<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        self.rt.block_on(async {
            tokio::time::timeout(self.timeout, f).await.map_err(|_| {
                Error::unknown(format!(
                    "{what}: no answer from the kernel within {:?}",
                    self.timeout
                ))
            })?
        })
    }

    /// (index, name) of every link.
    fn link_names(&self) -> Result<Vec<(u32, String)>, Error> {
        let h = self.handle.clone();
        self.block("link dump", async move {
            let mut s = h.link().get().execute();
            let mut out = Vec::new();
            while let Some(m) = s.try_next().await.map_err(nl("link dump"))? {
                let name = m.attributes.iter().find_map(|a| match a {
                    rtnetlink::packet_route::link::LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                });
                if let Some(n) = name {
                    out.push((m.header.index, n));
                }
            }
            Ok(out)
        })
    }

    fn index_of(&self, name: &str) -> Result<u32, Error> {
        self.link_names()?
            .into_iter()
            .find(|(_, n)| n == name)
            .map(|(i, _)| i)
            .ok_or_else(|| Error::unknown(format!("no interface named {name}")))
    }

    /// Routes of the main table, both families.
    pub fn routes(&self) -> Result<Vec<RouteSpec>, Error> {
        let names = self.link_names()?;
        let h = self.handle.clone();
        let msgs = self.block("route dump", async move {
            let mut out = Vec::new();
            for family in [AddressFamily::Inet, AddressFamily::Inet6] {
                let mut msg = RouteMessage::default();
                msg.header.address_family = family;
                let mut s = h.route().get(msg).execute();
                while let Some(m) = s.try_next().await.map_err(nl("route dump"))? {
                    out.push(m);
                }
            }
            Ok(out)
        })?;
        Ok(msgs.iter().filter_map(|m| route_spec(m, &names)).collect())
    }

    /// Addresses of a link with the flags plumb keeps, link-local ones excluded.
    pub fn addrs(&self, index: u32) -> Result<Vec<AddrSpec>, Error> {
        let h = self.handle.clone();
        let mut v = self.block("address dump", async move {
            let mut s = h.address().get().set_link_index_filter(index).execute();
            let mut out = Vec::new();
            while let Some(m) = s.try_next().await.map_err(nl("address dump"))? {
                if m.header.index != index {
                    continue;
                }
                let mut addr = None;
                let mut local = None;
                let mut flags = 0u32;
                let mut broadcast = None;
                for a in &m.attributes {
                    match a {
                        AddressAttribute::Broadcast(b) => broadcast = Some(*b),
                        AddressAttribute::Address(ip) => addr = Some(*ip),
                        AddressAttribute::Local(ip) => local = Some(*ip),
                        AddressAttribute::Flags(f) => flags = f.bits(),
                        _ => {}
                    }
                }
                if let Some(ip) = local.or(addr).filter(|ip| !is_link_local(ip)) {
                    out.push(AddrSpec {
                        addr: ip,
                        prefix_len: m.header.prefix_len,
                        flags: flags & (IFA_F_NODAD | IFA_F_NOPREFIXROUTE),
                        broadcast,
                    });
                }
            }
            Ok(out)
        })?;
        v.sort();
        Ok(v)
    }

    /// The tap as the planner sees it, or `None` when there is no such link.
    pub fn tap_state(
        &self,
        net: &crate::collect::netlink::HostNet,
        tap: &str,
    ) -> Result<Option<TapState>, Error> {
        let Some(l) = net.link(tap) else {
            return Ok(None);
        };
        Ok(Some(TapState {
            admin_up: l.admin_up,
            mtu: l.mtu,
            mac: l.mac.clone(),
            kind: l.kind.clone(),
            addrs: self.addrs(l.index)?,
        }))
    }

    /// The link named `name`, or `None` when there is none.
    fn link_by_name(&self, name: &str) -> Result<Option<LinkMessage>, Error> {
        let h = self.handle.clone();
        let name = name.to_string();
        self.block("link get", async move {
            let mut s = h.link().get().match_name(name).execute();
            match s.try_next().await {
                Ok(m) => Ok(m),
                // ENODEV: no such link.
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
                Err(e) => Err(Error::unknown(format!("rtnetlink link get failed: {e}"))),
            }
        })
    }

    /// After plumb brought `tap` up: wait (at most `max`) until the kernel reports its operational
    /// state. The carrier flag changes at once, but the kernel publishes the operational state
    /// from a deferred worker that runs up to a second later, so an immediate verification could
    /// see an up link with carrier as still `down`. Returns without waiting when the link is down,
    /// gone or has no carrier (nothing will change on its own).
    pub fn settle_link(&self, tap: &str, max: Duration) -> Result<(), Error> {
        let deadline = std::time::Instant::now() + max;
        loop {
            let settled = match self.link_by_name(tap)? {
                None => true,
                Some(m) => {
                    let up = m.header.flags.contains(LinkFlags::Up);
                    let mut carrier = true;
                    let mut oper_up = false;
                    for a in &m.attributes {
                        match a {
                            LinkAttribute::Carrier(c) => carrier = *c != 0,
                            LinkAttribute::OperState(State::Up | State::Unknown) => oper_up = true,
                            _ => {}
                        }
                    }
                    !up || !carrier || oper_up
                }
            };
            if settled || std::time::Instant::now() >= deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The port's state as far as plumb changes it (read fresh).
    pub fn snapshot(
        &self,
        tap: &str,
        ips: &[IpAddr],
        host_file: Option<&Path>,
    ) -> Result<PortSnapshot, Error> {
        let link = self.link_by_name(tap)?.map(|m| {
            let mut l = LinkSnap {
                admin_up: m.header.flags.contains(LinkFlags::Up),
                mtu: 0,
                mac: None,
                kind: None,
            };
            for a in &m.attributes {
                match a {
                    LinkAttribute::Mtu(v) => l.mtu = *v,
                    LinkAttribute::Address(b) if !b.is_empty() => {
                        l.mac = Some(
                            b.iter()
                                .map(|x| format!("{x:02x}"))
                                .collect::<Vec<_>>()
                                .join(":"),
                        )
                    }
                    LinkAttribute::LinkInfo(infos) => {
                        for i in infos {
                            if let LinkInfo::Kind(k) = i {
                                l.kind = Some(k.to_string().to_lowercase());
                            }
                        }
                    }
                    _ => {}
                }
            }
            (m.header.index, l)
        });
        let addrs = match &link {
            Some((i, _)) => self.addrs(*i)?,
            None => Vec::new(),
        };
        let routes = super::apply::scoped_routes(&self.routes()?, tap, ips);
        let sysctls = crate::collect::sysctl::tap_paths(tap)
            .into_iter()
            .map(|p| {
                let v = crate::collect::sysctl::read(&p).ok();
                (p, v)
            })
            .collect();
        let host_file = match host_file {
            Some(p) => read_file_spec(p)?,
            None => None,
        };
        Ok(PortSnapshot {
            link: link.map(|(_, l)| l),
            addrs,
            routes,
            sysctls,
            host_file,
        })
    }

    fn route_msg(&self, r: &RouteSpec, delete: bool) -> Result<RouteMessage, Error> {
        let mut m = RouteMessage::default();
        m.header.address_family = if r.dst.is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        m.header.destination_prefix_length = r.prefix_len;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = r.protocol.into();
        m.header.kind = r.kind.into();
        m.header.scope = if delete {
            RouteScope::NoWhere
        } else {
            r.scope.into()
        };
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(r.dst)));
        if let Some(d) = &r.dev {
            m.attributes.push(RouteAttribute::Oif(self.index_of(d)?));
        }
        if let Some(p) = r.metric {
            m.attributes.push(RouteAttribute::Priority(p));
        }
        Ok(m)
    }

    fn set_link(
        &self,
        what: &str,
        tap: &str,
        f: impl FnOnce(
            rtnetlink::LinkMessageBuilder<LinkUnspec>,
        ) -> rtnetlink::LinkMessageBuilder<LinkUnspec>,
    ) -> Result<(), Error> {
        let i = self.index_of(tap)?;
        let msg = f(LinkUnspec::new_with_index(i)).build();
        let h = self.handle.clone();
        self.block(what, async move {
            h.link().set(msg).execute().await.map_err(nl(what))
        })
    }
}

fn route_spec(m: &RouteMessage, names: &[(u32, String)]) -> Option<RouteSpec> {
    let mut table = u32::from(m.header.table);
    let mut dst = None;
    let mut oif = None;
    let mut metric = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(v)) => dst = Some(IpAddr::V4(*v)),
            RouteAttribute::Destination(RouteAddress::Inet6(v)) => dst = Some(IpAddr::V6(*v)),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = Some(*p),
            _ => {}
        }
    }
    if table != TABLE_MAIN {
        return None;
    }
    let dst = dst.or(match m.header.address_family {
        AddressFamily::Inet => Some(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        AddressFamily::Inet6 => Some(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)),
        _ => None,
    })?;
    Some(RouteSpec {
        dst,
        prefix_len: m.header.destination_prefix_length,
        dev: oif.map(|i| {
            names
                .iter()
                .find(|(x, _)| *x == i)
                .map(|(_, n)| n.clone())
                .unwrap_or_else(|| format!("if{i}"))
        }),
        protocol: m.header.protocol.into(),
        scope: m.header.scope.into(),
        kind: m.header.kind.into(),
        metric,
    })
}

/// A file's content, owner and mode; `None` when it does not exist.
/// A symlink or anything but a regular file is refused: vmpath replaces only what it could
/// have written.
pub fn read_file_spec(path: &Path) -> Result<Option<FileSpec>, Error> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::unknown(format!(
            "cannot stat {}: {e}",
            path.display()
        ))),
        Ok(md) if !md.file_type().is_file() => Err(Error::unknown(format!(
            "{} is {}, not a regular file: vmpath does not replace it",
            path.display(),
            if md.file_type().is_symlink() {
                "a symlink"
            } else {
                "a special file"
            }
        ))),
        Ok(md) => {
            let content =
                crate::collect::files::read_text(path, crate::collect::files::MAX_TEXT)
                    .map_err(|e| Error::unknown(format!("cannot read {}: {e}", path.display())))?;
            Ok(Some(FileSpec {
                path: path.to_path_buf(),
                content,
                uid: md.uid(),
                gid: md.gid(),
                mode: md.mode() & 0o7777,
            }))
        }
    }
}

/// Write a file atomically: a dot-file in the same directory (dnsmasq ignores dot-files), owner
/// and mode set, synced, renamed over the target, the directory synced.
fn write_atomic(f: &FileSpec) -> Result<(), Error> {
    let dir = f
        .path
        .parent()
        .ok_or_else(|| Error::unknown(format!("{} has no directory", f.path.display())))?;
    let name = f
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::unknown(format!("{} has no file name", f.path.display())))?;
    let tmp = dir.join(format!(".{name}.vmpath-{}", std::process::id()));
    let fail = |what: &str, e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        Error::unknown(format!("cannot {what} {}: {e}", tmp.display()))
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| fail("create", e))?;
    file.write_all(f.content.as_bytes())
        .map_err(|e| fail("write", e))?;
    nix::unistd::fchown(
        &file,
        Some(nix::unistd::Uid::from_raw(f.uid)),
        Some(nix::unistd::Gid::from_raw(f.gid)),
    )
    .map_err(|e| fail("chown", std::io::Error::from(e)))?;
    file.set_permissions(std::fs::Permissions::from_mode(f.mode))
        .map_err(|e| fail("chmod", e))?;
    file.sync_all().map_err(|e| fail("sync", e))?;
    drop(file);
    std::fs::rename(&tmp, &f.path).map_err(|e| fail("rename", e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Create a persistent tap as Nova does (`ip tuntap add mode tap`): TUNSETIFF with
/// IFF_TAP|IFF_NO_PI, owner and group, TUNSETPERSIST.
fn create_tap(name: &str, owner: Option<u32>, group: Option<u32>) -> Result<(), Error> {
    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
    const TUNSETOWNER: libc::c_ulong = 0x4004_54cc;
    const TUNSETGROUP: libc::c_ulong = 0x4004_54ce;
    const IFF_TAP: libc::c_short = 0x0002;
    const IFF_NO_PI: libc::c_short = 0x1000;
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(Error::unknown(format!("invalid interface name '{name}'")));
    }
    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| {
            Error::unknown(format!(
                "cannot open /dev/net/tun to create {name}: {e} (is the tun module loaded?)"
            ))
        })?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TAP | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    let fd = tun.as_raw_fd();
    let ioctl = |req: libc::c_ulong, arg: libc::c_ulong, what: &str| -> Result<(), Error> {
        // SAFETY: fd is an open /dev/net/tun; these ioctls take an integer argument.
        let rc = unsafe { libc::ioctl(fd, req as _, arg) };
        if rc < 0 {
            Err(Error::unknown(format!(
                "{what} on {name} failed: {}",
                std::io::Error::last_os_error()
            )))
        } else {
            Ok(())
        }
    };
    // SAFETY: req is a properly sized, initialised struct ifreq that outlives the call.
    let rc = unsafe { libc::ioctl(fd, TUNSETIFF as _, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(Error::unknown(format!(
            "TUNSETIFF {name} failed: {}",
            std::io::Error::last_os_error()
        )));
    }
    if let Some(u) = owner {
        ioctl(TUNSETOWNER, libc::c_ulong::from(u), "TUNSETOWNER")?;
    }
    if let Some(g) = group {
        ioctl(TUNSETGROUP, libc::c_ulong::from(g), "TUNSETGROUP")?;
    }
    ioctl(TUNSETPERSIST, 1, "TUNSETPERSIST")?;
    Ok(())
}

fn parse_mac(mac: &str) -> Result<Vec<u8>, Error> {
    mac.split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<Vec<u8>, _>>()
        .ok()
        .filter(|b| b.len() == 6)
        .ok_or_else(|| Error::unknown(format!("invalid MAC '{mac}'")))
}

impl HostOps for System {
    fn run(&mut self, a: &Action) -> Result<(), Error> {
        match a {
            Action::CreateTap { tap, owner, group } => create_tap(tap, *owner, *group),
            Action::DeleteLink { tap } => {
                let i = self.index_of(tap)?;
                let h = self.handle.clone();
                self.block("link del", async move {
                    h.link().del(i).execute().await.map_err(nl("link del"))
                })
            }
            Action::SetMac { tap, mac } => {
                let b = parse_mac(mac)?;
                self.set_link("link set address", tap, |l| l.address(b))
            }
            Action::SetMtu { tap, mtu } => self.set_link("link set mtu", tap, |l| l.mtu(*mtu)),
            Action::SetUp { tap } => self.set_link("link set up", tap, |l| l.up()),
            Action::SetDown { tap } => self.set_link("link set down", tap, |l| l.down()),
            Action::AddAddr { tap, addr } => {
                let i = self.index_of(tap)?;
                let h = self.handle.clone();
                let addr = addr.clone();
                self.block("address add", async move {
                    let mut r = h.address().add(i, addr.addr, addr.prefix_len);
                    // The builder adds a broadcast address; `ip addr add` (and the agent) does
                    // not: keep exactly what was recorded.
                    let attrs = &mut r.message_mut().attributes;
                    attrs.retain(|a| !matches!(a, AddressAttribute::Broadcast(_)));
                    if let Some(b) = addr.broadcast {
                        attrs.push(AddressAttribute::Broadcast(b));
                    }
                    if addr.flags != 0 {
                        r.message_mut().attributes.push(AddressAttribute::Flags(
                            AddressFlags::from_bits_retain(addr.flags),
                        ));
                    }
                    r.execute().await.map_err(nl("address add"))
                })
            }
            Action::DelAddr { tap, addr } => {
                let i = self.index_of(tap)?;
                let h = self.handle.clone();
                let addr = addr.clone();
                self.block("address del", async move {
                    let mut m = AddressMessage::default();
                    m.header.family = if addr.addr.is_ipv4() {
                        AddressFamily::Inet
                    } else {
                        AddressFamily::Inet6
                    };
                    m.header.prefix_len = addr.prefix_len;
                    m.header.index = i;
                    m.attributes.push(AddressAttribute::Local(addr.addr));
                    m.attributes.push(AddressAttribute::Address(addr.addr));
                    h.address()
                        .del(m)
                        .execute()
                        .await
                        .map_err(nl("address del"))
                })
            }
            Action::Sysctl { path, value } => {
                let full = format!("/proc/sys/net/{path}");
                std::fs::write(&full, value)
                    .map_err(|e| Error::unknown(format!("cannot write {value} to {full}: {e}")))
            }
            Action::AddRoute { route } => {
                let m = self.route_msg(route, false)?;
                let h = self.handle.clone();
                self.block("route add", async move {
                    h.route().add(m).execute().await.map_err(nl("route add"))
                })
            }
            Action::DelRoute { route } => {
                let m = self.route_msg(route, true)?;
                let h = self.handle.clone();
                self.block("route del", async move {
                    h.route().del(m).execute().await.map_err(nl("route del"))
                })
            }
            Action::WriteFile { file } => write_atomic(file),
            Action::RemoveFile { path } => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::unknown(format!(
                    "cannot remove {}: {e}",
                    path.display()
                ))),
                _ => Ok(()),
            },
            Action::ReloadDnsmasq { pid } => {
                let p = nix::unistd::Pid::from_raw(
                    i32::try_from(*pid)
                        .map_err(|_| Error::unknown(format!("invalid pid {pid}")))?,
                );
                nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGHUP).map_err(|e| {
                    Error::unknown(format!("cannot send SIGHUP to dnsmasq pid {pid}: {e}"))
                })?;
                // dnsmasq re-reads at once; one that dies on SIGHUP does so at once too.
                for _ in 0..6 {
                    std::thread::sleep(Duration::from_millis(50));
                    if !crate::collect::procs::pid_alive(*pid) {
                        return Err(Error::unknown(format!(
                            "dnsmasq pid {pid} exited after SIGHUP (dnsmasq 2.90 can crash on SIGHUP after serving a host with a set: tag): restart the DHCP service"
                        )));
                    }
                }
                Ok(())
            }
        }
    }
}
