//! Links, addresses, routes and neighbours of the current network namespace, read over rtnetlink
//! in one connection. The data types are plain values so that checks can be unit-tested with
//! hand-built host states.

use std::net::IpAddr;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::{
    address::{AddressAttribute, AddressFlags},
    link::{LinkAttribute, LinkFlags, LinkInfo, State},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState},
    route::{
        RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
        RouteType,
    },
    AddressFamily,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Administratively up (IFF_UP).
    pub admin_up: bool,
    /// Operational state as the kernel reports it: `up`, `down`, `lowerlayerdown`, `unknown`...
    pub oper: String,
    pub mtu: u32,
    pub mac: Option<String>,
    /// Link kind (`veth`, `tun`, `bridge`...), when the kernel says.
    pub kind: Option<String>,
    /// The lower device (IFLA_LINK; for VXLAN its underlay `dev`), when there is one.
    pub lower: Option<u32>,
    /// A VXLAN device's remote (or multicast group) address.
    pub remote: Option<IpAddr>,
    /// A VXLAN device's local (VTEP) address.
    pub local: Option<IpAddr>,
    /// The bridge (or bond) it is a port of (IFLA_MASTER).
    #[serde(default)]
    pub master: Option<u32>,
}

impl Link {
    /// Operationally usable: oper `up`, or `unknown` (tun/tap without carrier reporting) while
    /// admin up and not explicitly down.
    pub fn is_oper_up(&self) -> bool {
        self.admin_up && (self.oper == "up" || self.oper == "unknown")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addr {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
    pub noprefixroute: bool,
    pub scope: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextHop {
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpAddr,
    pub prefix_len: u8,
    pub table: u32,
    /// `unicast`, `local`, `blackhole`, `unreachable`, ...
    pub kind: String,
    /// `kernel`, `boot`, `static`, `bird`, `zebra`, `bgp`, ...
    pub protocol: String,
    /// `link`, `universe`, `host`, ...
    pub scope: String,
    /// One entry for a single-path route, several for ECMP.
    pub nexthops: Vec<NextHop>,
}

impl Route {
    pub fn oifs(&self) -> impl Iterator<Item = u32> + '_ {
        self.nexthops.iter().filter_map(|n| n.oif)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Neigh {
    pub index: u32,
    pub ip: IpAddr,
    pub mac: Option<String>,
    /// `reachable`, `stale`, `failed`, `incomplete`, `permanent`, `noarp`, `delay`, `probe`
    pub state: String,
    pub proxy: bool,
}

/// One read of the namespace's networking state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostNet {
    pub links: Vec<Link>,
    pub addrs: Vec<Addr>,
    pub routes: Vec<Route>,
    pub neighs: Vec<Neigh>,
}

pub const TABLE_MAIN: u32 = 254;

/// Whether `net/len` contains `ip` (same family).
pub fn prefix_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            u32::from(n) & m == u32::from(i) & m
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            u128::from(n) & m == u128::from(i) & m
        }
        _ => false,
    }
}

/// Prefix length of a host route for `ip`: 32 or 128.
pub fn host_len(ip: &IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// The network address of `ip/len` (host bits cleared).
pub fn network_of(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            IpAddr::V4((u32::from(v) & m).into())
        }
        IpAddr::V6(v) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

/// An IPv6 link-local address (fe80::/10).
pub fn is_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80)
}
pub const TABLE_LOCAL: u32 = 255;

impl HostNet {
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }
    pub fn link_by_index(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }
    pub fn ifname(&self, index: u32) -> String {
        self.link_by_index(index)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| format!("if{index}"))
    }
    pub fn addrs_of(&self, index: u32) -> impl Iterator<Item = &Addr> {
        self.addrs.iter().filter(move |a| a.index == index)
    }
    /// Routes in the main table.
    pub fn main_routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().filter(|r| r.table == TABLE_MAIN)
    }
    /// Host routes (/32, /128) of the main table through the interface with this index.
    /// The interface the main table sends `dst` out of (longest prefix match; ECMP: the first
    /// next hop).
    pub fn oif_for(&self, dst: IpAddr) -> Option<u32> {
        self.main_routes()
            .filter(|r| {
                r.dst.is_ipv4() == dst.is_ipv4()
                    && r.kind == "unicast"
                    && prefix_contains(r.dst, r.prefix_len, dst)
            })
            .max_by_key(|r| r.prefix_len)
            .and_then(|r| r.nexthops.iter().find_map(|h| h.oif))
    }

    /// The underlay device of a kernel tunnel device (VXLAN, Geneve, GRE): its `dev`, else the
    /// device the routes send its remote to, else (unicast VXLAN with FDB entries) the device
    /// holding its local VTEP address.
    pub fn tunnel_underlay(&self, tunnel: &Link) -> Option<&Link> {
        tunnel
            .lower
            .or_else(|| tunnel.remote.and_then(|r| self.oif_for(r)))
            .or_else(|| {
                let local = tunnel.local?;
                self.addrs.iter().find(|a| a.addr == local).map(|a| a.index)
            })
            .and_then(|i| self.link_by_index(i))
    }

    pub fn host_routes_via(&self, index: u32) -> impl Iterator<Item = &Route> {
        self.main_routes()
            .filter(move |r| r.prefix_len == host_len(&r.dst) && r.oifs().any(|o| o == index))
    }
    /// Every local address of the host (any interface).
    pub fn local_addrs(&self) -> Vec<IpAddr> {
        self.addrs.iter().map(|a| a.addr).collect()
    }
}

/// An error talking to the kernel over rtnetlink, naming the request.
#[derive(Debug)]
pub struct NetlinkError {
    pub what: &'static str,
    pub detail: String,
}

impl std::fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rtnetlink {} failed: {}", self.what, self.detail)
    }
}
impl std::error::Error for NetlinkError {}

fn nlerr(what: &'static str) -> impl Fn(rtnetlink::Error) -> NetlinkError {
    move |e| NetlinkError {
        what,
        detail: e.to_string(),
    }
}

fn mac_string(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn oper_name(s: &State) -> String {
    match s {
        State::Up => "up".into(),
        State::Down => "down".into(),
        State::LowerLayerDown => "lowerlayerdown".into(),
        State::Dormant => "dormant".into(),
        State::Testing => "testing".into(),
        State::NotPresent => "notpresent".into(),
        State::Unknown => "unknown".into(),
        State::Other(n) => format!("state{n}"),
        _ => "unknown".into(),
    }
}

pub fn protocol_name(p: &RouteProtocol) -> String {
    match p {
        RouteProtocol::Unspec => "unspec".into(),
        RouteProtocol::IcmpRedirect => "redirect".into(),
        RouteProtocol::Kernel => "kernel".into(),
        RouteProtocol::Boot => "boot".into(),
        RouteProtocol::Static => "static".into(),
        RouteProtocol::Zebra => "zebra".into(),
        RouteProtocol::Bird => "bird".into(),
        RouteProtocol::Dhcp => "dhcp".into(),
        RouteProtocol::Ra => "ra".into(),
        RouteProtocol::KeepAlived => "keepalived".into(),
        RouteProtocol::Bgp => "bgp".into(),
        RouteProtocol::Ospf => "ospf".into(),
        RouteProtocol::Other(n) => n.to_string(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn scope_name(s: &RouteScope) -> String {
    match s {
        RouteScope::Universe => "universe".into(),
        RouteScope::Site => "site".into(),
        RouteScope::Link => "link".into(),
        RouteScope::Host => "host".into(),
        RouteScope::NoWhere => "nowhere".into(),
        RouteScope::Other(n) => n.to_string(),
        _ => "unknown".into(),
    }
}

fn kind_name(k: &RouteType) -> String {
    match k {
        RouteType::Unicast => "unicast".into(),
        RouteType::Local => "local".into(),
        RouteType::Broadcast => "broadcast".into(),
        RouteType::Anycast => "anycast".into(),
        RouteType::Multicast => "multicast".into(),
        RouteType::BlackHole => "blackhole".into(),
        RouteType::Unreachable => "unreachable".into(),
        RouteType::Prohibit => "prohibit".into(),
        RouteType::Throw => "throw".into(),
        RouteType::Nat => "nat".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn neigh_state_name(s: &NeighbourState) -> String {
    match s {
        NeighbourState::Incomplete => "incomplete".into(),
        NeighbourState::Reachable => "reachable".into(),
        NeighbourState::Stale => "stale".into(),
        NeighbourState::Delay => "delay".into(),
        NeighbourState::Probe => "probe".into(),
        NeighbourState::Failed => "failed".into(),
        NeighbourState::Noarp => "noarp".into(),
        NeighbourState::Permanent => "permanent".into(),
        NeighbourState::None => "none".into(),
        NeighbourState::Other(n) => format!("state{n}"),
        _ => "unknown".into(),
    }
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    }
}

/// Convert a kernel route message into our value type. `None` for non-IP families.
pub fn route_from_msg(m: &RouteMessage) -> Option<Route> {
    let family = m.header.address_family;
    let mut dst = None;
    let mut table = u32::from(m.header.table);
    let mut oif = None;
    let mut gateway = None;
    let mut multipath = Vec::new();
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = route_addr(d),
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(g) => gateway = route_addr(g),
            RouteAttribute::Via(v) => {
                gateway = match v {
                    rtnetlink::packet_route::route::RouteVia::Inet(a) => Some(IpAddr::V4(*a)),
                    rtnetlink::packet_route::route::RouteVia::Inet6(a) => Some(IpAddr::V6(*a)),
                    _ => gateway,
                }
            }
            RouteAttribute::MultiPath(hops) => {
                for h in hops {
                    let gw = h.attributes.iter().find_map(|a| match a {
                        RouteAttribute::Gateway(g) => route_addr(g),
                        _ => None,
                    });
                    multipath.push(NextHop {
                        oif: (h.interface_index != 0).then_some(h.interface_index),
                        gateway: gw,
                    });
                }
            }
            _ => {}
        }
    }
    let dst = match (dst, family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let nexthops = if multipath.is_empty() {
        vec![NextHop { oif, gateway }]
    } else {
        multipath
    };
    Some(Route {
        dst,
        prefix_len: m.header.destination_prefix_length,
        table,
        kind: kind_name(&m.header.kind),
        protocol: protocol_name(&m.header.protocol),
        scope: scope_name(&m.header.scope),
        nexthops,
    })
}

/// A connection to rtnetlink in the current network namespace.
pub struct Netlink {
    handle: rtnetlink::Handle,
}

impl Netlink {
    /// Open the connection; must be called inside a tokio runtime.
    pub fn open() -> Result<Self, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| NetlinkError {
            what: "socket",
            detail: e.to_string(),
        })?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    pub fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// Dump links, addresses, routes (all tables) and neighbours.
    pub async fn snapshot(&self) -> Result<HostNet, NetlinkError> {
        // The kernel runs one dump at a time per netlink socket (EBUSY otherwise): sequential.
        Ok(HostNet {
            links: self.links().await?,
            addrs: self.addrs().await?,
            routes: self.routes().await?,
            neighs: self.neighs().await?,
        })
    }

    pub async fn links(&self) -> Result<Vec<Link>, NetlinkError> {
        let mut s = self.handle.link().get().execute();
        let mut out = Vec::new();
        while let Some(m) = s.try_next().await.map_err(nlerr("link dump"))? {
            let mut l = Link {
                index: m.header.index,
                name: String::new(),
                admin_up: m.header.flags.contains(LinkFlags::Up),
                oper: "unknown".into(),
                mtu: 0,
                mac: None,
                kind: None,
                lower: None,
                remote: None,
                local: None,
                master: None,
            };
            for a in &m.attributes {
                match a {
                    LinkAttribute::IfName(n) => l.name = n.clone(),
                    LinkAttribute::Mtu(v) => l.mtu = *v,
                    LinkAttribute::Address(b) if !b.is_empty() => l.mac = Some(mac_string(b)),
                    LinkAttribute::OperState(s) => l.oper = oper_name(s),
                    LinkAttribute::Link(i) if *i != 0 && *i != m.header.index => l.lower = Some(*i),
                    LinkAttribute::Controller(i) if *i != 0 => l.master = Some(*i),
                    LinkAttribute::LinkInfo(infos) => {
                        for i in infos {
                            match i {
                                LinkInfo::Kind(k) => l.kind = Some(k.to_string().to_lowercase()),
                                LinkInfo::Data(rtnetlink::packet_route::link::InfoData::Vxlan(
                                    v,
                                )) => {
                                    for a in v {
                                        use rtnetlink::packet_route::link::InfoVxlan;
                                        match a {
                                            InfoVxlan::Group(g) => l.remote = Some(IpAddr::V4(*g)),
                                            InfoVxlan::Group6(g) => l.remote = Some(IpAddr::V6(*g)),
                                            InfoVxlan::Local(a) => l.local = Some(IpAddr::V4(*a)),
                                            InfoVxlan::Local6(a) => l.local = Some(IpAddr::V6(*a)),
                                            _ => {}
                                        }
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            out.push(l);
        }
        Ok(out)
    }

    pub async fn addrs(&self) -> Result<Vec<Addr>, NetlinkError> {
        let mut s = self.handle.address().get().execute();
        let mut out = Vec::new();
        while let Some(m) = s.try_next().await.map_err(nlerr("address dump"))? {
            let mut addr = None;
            let mut local = None;
            let mut noprefixroute = false;
            for a in &m.attributes {
                match a {
                    AddressAttribute::Address(ip) => addr = Some(*ip),
                    AddressAttribute::Local(ip) => local = Some(*ip),
                    AddressAttribute::Flags(f) => {
                        noprefixroute = f.contains(AddressFlags::Noprefixroute)
                    }
                    _ => {}
                }
            }
            // For IPv4 IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on
            // point-to-point links); IPv6 has only IFA_ADDRESS.
            let Some(ip) = local.or(addr) else { continue };
            out.push(Addr {
                index: m.header.index,
                addr: ip,
                prefix_len: m.header.prefix_len,
                noprefixroute,
                scope: u8::from(m.header.scope),
            });
        }
        Ok(out)
    }

    pub async fn routes(&self) -> Result<Vec<Route>, NetlinkError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = RouteMessage::default();
            msg.header.address_family = family;
            let mut s = self.handle.route().get(msg).execute();
            while let Some(m) = s.try_next().await.map_err(nlerr("route dump"))? {
                if let Some(r) = route_from_msg(&m) {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    pub async fn neighs(&self) -> Result<Vec<Neigh>, NetlinkError> {
        let mut out = Vec::new();
        for proxy in [false, true] {
            let mut req = self.handle.neighbours().get();
            if proxy {
                req = req.proxies();
            }
            let mut s = req.execute();
            while let Some(m) = s.try_next().await.map_err(nlerr("neighbour dump"))? {
                let mut ip = None;
                let mut mac = None;
                for a in &m.attributes {
                    match a {
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => {
                            ip = Some(IpAddr::V4(*v))
                        }
                        NeighbourAttribute::Destination(NeighbourAddress::Inet6(v)) => {
                            ip = Some(IpAddr::V6(*v))
                        }
                        NeighbourAttribute::LinkLayerAddress(b) if !b.is_empty() => {
                            mac = Some(mac_string(b))
                        }
                        _ => {}
                    }
                }
                let Some(ip) = ip else { continue };
                out.push(Neigh {
                    index: m.header.ifindex,
                    ip,
                    mac,
                    state: neigh_state_name(&m.header.state),
                    proxy,
                });
            }
        }
        Ok(out)
    }

    /// The kernel's own route lookup (`ip route get DST [from SRC] [iif IF]`).
    pub async fn route_get(
        &self,
        dst: IpAddr,
        src: Option<IpAddr>,
        iif: Option<u32>,
    ) -> Result<Option<Route>, NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = match dst {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.destination_prefix_length = host_len(&dst);
        msg.header.table = RouteHeader::RT_TABLE_UNSPEC;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
        if let Some(s) = src {
            msg.header.source_prefix_length = host_len(&s);
            msg.attributes
                .push(RouteAttribute::Source(RouteAddress::from(s)));
        }
        if let Some(i) = iif {
            msg.attributes.push(RouteAttribute::Iif(i));
        }
        let mut s = self.handle.route().get(msg).execute();
        match s.try_next().await {
            Ok(Some(m)) => Ok(route_from_msg(&m)),
            Ok(None) => Ok(None),
            Err(rtnetlink::Error::NetlinkError(e)) => {
                // ENETUNREACH/EHOSTUNREACH: no route at all — a finding, not an error.
                let code = e.raw_code();
                if code == -libc::ENETUNREACH || code == -libc::EHOSTUNREACH {
                    Ok(None)
                } else {
                    Err(NetlinkError {
                        what: "route get",
                        detail: e.to_string(),
                    })
                }
            }
            Err(e) => Err(nlerr("route get")(e)),
        }
    }
}
