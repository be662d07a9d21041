//! Evidence from the wire inside a router namespace, beyond the local state:
//! * [`listen`]: VRRP advertisements (IP protocol 112) heard on the HA interface for a bounded
//!   time, by VRID and sender. A BACKUP that hears no MASTER, or a MASTER that hears another
//!   router advertising its VRID, is a problem the local state cannot show.
//! * [`arp_probe`]: a duplicate-address probe (RFC 5227: sender address 0.0.0.0) for the gateway
//!   address from the qr- interface; any MAC that answers other than ours means a second router
//!   holds the address too (split-brain even when VRRP between the gateways is cut).
//!
//! Both must run on a thread that is inside the router's namespace. [`parse_vrrp`] and
//! [`parse_arp_reply`] are pure.

use std::collections::BTreeMap;
use std::io;
use std::mem::MaybeUninit;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::Error;

const VRRP_PROTO: i32 = 112;
const VRRP_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

/// One VRRP advertisement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advert {
    pub from: Ipv4Addr,
    pub vrid: u8,
    pub priority: u8,
}

/// Parse an IPv4 packet carrying VRRP (v2 or v3): sender, VRID, priority.
pub fn parse_vrrp(pkt: &[u8]) -> Option<Advert> {
    let ihl = usize::from(pkt.first()? & 0x0f) * 4;
    if pkt.first()? >> 4 != 4 || ihl < 20 || *pkt.get(9)? != VRRP_PROTO as u8 {
        return None;
    }
    let from = Ipv4Addr::new(*pkt.get(12)?, *pkt.get(13)?, *pkt.get(14)?, *pkt.get(15)?);
    let v = pkt.get(ihl..)?;
    let ver_type = *v.first()?;
    if ver_type & 0x0f != 1 || !matches!(ver_type >> 4, 2 | 3) {
        return None; // not an advertisement
    }
    Some(Advert {
        from,
        vrid: *v.get(1)?,
        priority: *v.get(2)?,
    })
}

/// What was heard on one interface.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Heard {
    /// Seconds listened.
    pub listened_s: f64,
    /// Per VRID: each sender and how many adverts it sent.
    pub by_vrid: BTreeMap<u8, BTreeMap<Ipv4Addr, u32>>,
}

/// What was seen on the wire for one router: adverts heard, and the duplicate-address probe.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Wire {
    /// Adverts heard on the HA interface, or why listening failed.
    pub heard: Option<Result<Heard, Error>>,
    /// The router's own addresses on the HA interface (its own adverts are not another router's).
    pub own: Vec<std::net::Ipv4Addr>,
    /// The gateway address probed, and the other MACs that answered (or why probing failed).
    pub dad: Option<(std::net::Ipv4Addr, Result<Vec<String>, Error>)>,
}

/// A VRRP listening socket on `ifname` of the current thread's namespace (joined to 224.0.0.18
/// there; the membership ends with the socket). It stays bound to that namespace.
pub fn open_listener(ifname: &str) -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(VRRP_PROTO)))?;
    s.bind_device(Some(ifname.as_bytes()))?;
    let index = crate::collect::iface::ifindex(ifname)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface {ifname}")))?;
    s.join_multicast_v4_n(&VRRP_GROUP, &socket2::InterfaceIndexOrAddress::Index(index))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Read whatever adverts are queued on a listener.
pub fn read_adverts(s: &Socket, heard: &mut Heard) {
    let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
    for _ in 0..4096 {
        match s.recv(&mut buf) {
            Ok(n) => {
                // SAFETY: recv initialised the first n bytes.
                let data: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n) };
                if let Some(a) = parse_vrrp(data) {
                    *heard
                        .by_vrid
                        .entry(a.vrid)
                        .or_default()
                        .entry(a.from)
                        .or_default() += 1;
                }
            }
            Err(_) => break,
        }
    }
}

/// An ARP reply: (sender IP, sender MAC).
pub fn parse_arp_reply(frame: &[u8]) -> Option<(Ipv4Addr, [u8; 6])> {
    // Ethernet (14) + ARP (28).
    if frame.get(12..14)? != [0x08, 0x06] {
        return None;
    }
    let a = frame.get(14..42)?;
    if a[0..2] != [0, 1] || a[2..4] != [0x08, 0x00] || a[4] != 6 || a[5] != 4 || a[6..8] != [0, 2] {
        return None;
    }
    let mac: [u8; 6] = a[8..14].try_into().ok()?;
    Some((Ipv4Addr::new(a[14], a[15], a[16], a[17]), mac))
}

/// Build an ARP probe frame: who has `target`, from `mac` with sender address 0.0.0.0.
pub fn arp_probe_frame(mac: [u8; 6], target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A locally administered MAC for the probe (both HA routers of a Neutron router share the qr-
/// port's MAC, so a probe from that MAC would never see the other holder's answer).
pub fn probe_mac() -> [u8; 6] {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().rotate_left(12);
    let b = t.to_be_bytes();
    [0x02, 0x76, 0x6d, b[1], b[2], b[3]]
}

/// A duplicate-address probe in flight: its socket and the MAC it was sent from.
pub struct ArpProbe {
    pub fd: OwnedFd,
    pub from_mac: [u8; 6],
    pub target: Ipv4Addr,
}

/// Send a duplicate-address probe for `target` out of `ifname` from a fresh locally administered
/// MAC (received through a unicast filter entry for that MAC, kept for the socket's life), from
/// the current thread's namespace. Read the answers with [`read_arp`].
pub fn open_arp(ifname: &str, target: Ipv4Addr) -> io::Result<ArpProbe> {
    let index = crate::collect::iface::ifindex(ifname)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface {ifname}")))?;
    // Protocol 0 here and ETH_P_ARP at bind: a socket created with a protocol is hooked at once,
    // and rebinding it unhooks it first, which waits for an RCU grace period (~10 ms a socket).
    // SAFETY: socket(2); the descriptor is owned by OwnedFd from here on.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mac = probe_mac();
    // SAFETY: packet_mreq is plain data; zeroed then filled.
    let mut mr: libc::packet_mreq = unsafe { std::mem::zeroed() };
    mr.mr_ifindex = index as i32;
    mr.mr_type = libc::PACKET_MR_UNICAST as u16;
    mr.mr_alen = 6;
    mr.mr_address[..6].copy_from_slice(&mac);
    if add_membership(&fd, &mr).is_err() {
        // No unicast filter support: promiscuous for the socket's life instead.
        mr.mr_type = libc::PACKET_MR_PROMISC as u16;
        add_membership(&fd, &mr)?;
    }
    // SAFETY: sockaddr_ll is plain data; zeroed then filled.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
    sa.sll_ifindex = index as i32;
    let salen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: bind with a correctly sized sockaddr_ll.
    if unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_ll).cast(),
            salen,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    sa.sll_halen = 6;
    sa.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    let frame = arp_probe_frame(mac, target);
    // SAFETY: sendto with a correctly sized sockaddr_ll and frame.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sa as *const libc::sockaddr_ll).cast(),
            salen,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ArpProbe {
        fd,
        from_mac: mac,
        target,
    })
}

fn add_membership(fd: &OwnedFd, mr: &libc::packet_mreq) -> io::Result<()> {
    let len = std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t;
    // SAFETY: setsockopt with a correctly sized packet_mreq on a valid descriptor.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            (mr as *const libc::packet_mreq).cast(),
            len,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Read queued ARP frames: the sender MACs of replies for the probe's target addressed to the
/// probe's MAC are added to `macs` (whatever they are: the other holder may share our MAC).
pub fn read_arp(p: &ArpProbe, macs: &mut Vec<String>) {
    let mut buf = [0u8; 1514];
    for _ in 0..4096 {
        // SAFETY: recv into a sized buffer on a non-blocking descriptor.
        let n = unsafe {
            libc::recv(
                p.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            break;
        }
        let frame = &buf[..n as usize];
        if frame.get(32..38) != Some(&p.from_mac[..]) {
            continue;
        }
        if let Some((ip, m)) = parse_arp_reply(frame) {
            let t = mac_text(&m);
            if ip == p.target && !macs.contains(&t) {
                macs.push(t);
            }
        }
    }
}

/// Parse `aa:bb:cc:dd:ee:ff`.
pub fn mac_bytes(s: &str) -> Option<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    v.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vrrp_adverts_and_arp_replies_parse_and_garbage_does_not() {
        // IPv4 header (proto 112) + VRRPv2 advert for VRID 7 priority 50.
        let mut p = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 255, 112, 0, 0, 169, 254, 192, 1, 224, 0, 0, 18,
        ];
        p.extend_from_slice(&[
            0x21, 7, 50, 1, 0, 1, 0, 0, 169, 254, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        assert_eq!(
            parse_vrrp(&p),
            Some(Advert {
                from: Ipv4Addr::new(169, 254, 192, 1),
                vrid: 7,
                priority: 50
            })
        );
        for n in 0..p.len() {
            assert!(parse_vrrp(&p[..n]).is_none() || n >= 23);
        }
        let mac = [0xfa, 0x16, 0x3e, 0, 0, 1];
        let probe = arp_probe_frame(mac, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(probe.len(), 42);
        assert!(
            parse_arp_reply(&probe).is_none(),
            "a request is not a reply"
        );
        let mut reply = probe.clone();
        reply[20..22].copy_from_slice(&[0, 2]);
        reply[22..28].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        reply[28..32].copy_from_slice(&[192, 0, 2, 1]);
        assert_eq!(
            parse_arp_reply(&reply),
            Some((Ipv4Addr::new(192, 0, 2, 1), [2, 0, 0, 0, 0, 9]))
        );
        assert_eq!(mac_bytes("fa:16:3e:00:00:01"), Some(mac));
        assert_eq!(mac_bytes("fa:16"), None);
    }
}
