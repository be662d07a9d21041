//! The local kernel's own ECMP choice for one flow: an RTM_GETROUTE with the flow's protocol and
//! ports (RTA_IP_PROTO, RTA_SPORT, RTA_DPORT), which hashes exactly as the kernel does for that
//! 5-tuple. rtnetlink's message types do not carry those attributes, so the request is built
//! here; [`build_request`] and [`parse_reply`] are pure.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

/// Where the kernel sends one flow.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LocalRoute {
    /// The next hop (`None` for a directly connected destination).
    pub gateway: Option<IpAddr>,
    /// The outgoing interface.
    pub dev: String,
    #[serde(skip)]
    pub oif: u32,
    /// The source address the kernel would pick.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefsrc: Option<IpAddr>,
}

const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTA_DST: u16 = 1;
const RTA_SRC: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
const RTA_MULTIPATH: u16 = 9;
const RTA_IP_PROTO: u16 = 27;
const RTA_SPORT: u16 = 28;
const RTA_DPORT: u16 = 29;
const RTA_VIA: u16 = 18;

fn push_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

fn addr_bytes(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// The RTM_GETROUTE request for a TCP flow. `oif` pins the lookup to an interface (0: any).
pub fn build_request(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    oif: u32,
    seq: u32,
) -> Vec<u8> {
    let v6 = dst.is_ipv6();
    let mut attrs = Vec::new();
    push_attr(&mut attrs, RTA_DST, &addr_bytes(&dst));
    push_attr(&mut attrs, RTA_SRC, &addr_bytes(&src));
    if oif != 0 {
        push_attr(&mut attrs, RTA_OIF, &oif.to_ne_bytes());
    }
    push_attr(&mut attrs, RTA_IP_PROTO, &[6]);
    push_attr(&mut attrs, RTA_SPORT, &sport.to_be_bytes());
    push_attr(&mut attrs, RTA_DPORT, &dport.to_be_bytes());
    let mut rtm = [0u8; 12];
    rtm[0] = if v6 {
        libc::AF_INET6 as u8
    } else {
        libc::AF_INET as u8
    };
    rtm[1] = if v6 { 128 } else { 32 }; // rtm_dst_len
    rtm[2] = if v6 { 128 } else { 32 }; // rtm_src_len
    let len = 16 + rtm.len() + attrs.len();
    let mut msg = Vec::with_capacity(len);
    msg.extend_from_slice(&(len as u32).to_ne_bytes());
    msg.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
    msg.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&rtm);
    msg.extend_from_slice(&attrs);
    msg
}

fn ip_of(v: &[u8]) -> Option<IpAddr> {
    match v.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(v).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(v).ok()?)),
        _ => None,
    }
}

/// Parse the kernel's answer: the route, or the error it returned (as an `io::Error`).
pub fn parse_reply(buf: &[u8]) -> io::Result<(Option<IpAddr>, u32, Option<IpAddr>)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let head = buf.get(..16).ok_or_else(|| bad("short netlink reply"))?;
    let len = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let kind = u16::from_ne_bytes([head[4], head[5]]);
    let msg = buf
        .get(..len)
        .ok_or_else(|| bad("truncated netlink reply"))?;
    if kind == 2 {
        let code = msg
            .get(16..20)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(-libc::EIO);
        return Err(io::Error::from_raw_os_error(-code));
    }
    if kind != RTM_NEWROUTE {
        return Err(bad("unexpected netlink message"));
    }
    let mut gateway = None;
    let mut oif = 0;
    let mut prefsrc = None;
    let mut off = 28;
    while let Some(h) = msg.get(off..off + 4) {
        let alen = u16::from_ne_bytes([h[0], h[1]]) as usize;
        let atype = u16::from_ne_bytes([h[2], h[3]]) & 0x3fff;
        if alen < 4 {
            break;
        }
        let Some(v) = msg.get(off + 4..off + alen) else {
            break;
        };
        match atype {
            RTA_GATEWAY => gateway = ip_of(v),
            RTA_VIA if v.len() > 2 => gateway = ip_of(&v[2..]),
            RTA_OIF if v.len() >= 4 => oif = u32::from_ne_bytes([v[0], v[1], v[2], v[3]]),
            RTA_PREFSRC => prefsrc = ip_of(v),
            RTA_MULTIPATH => {}
            _ => {}
        }
        off += (alen + 3) & !3;
    }
    Ok((gateway, oif, prefsrc))
}

/// A NETLINK_ROUTE socket for flow lookups, opened in the current thread's network namespace.
pub struct Router {
    fd: std::os::fd::OwnedFd,
    seq: u32,
}

impl Router {
    pub fn open(timeout: Duration) -> io::Result<Router> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket syscalls; the descriptor is owned by OwnedFd from here on.
        unsafe {
            let fd = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
            let tv = libc::timeval {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
            };
            use std::os::fd::AsRawFd;
            if libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            ) < 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(Router { fd, seq: 0 })
        }
    }

    /// The kernel's choice for one TCP flow.
    pub fn lookup(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        sport: u16,
        dport: u16,
        oif: u32,
    ) -> io::Result<LocalRoute> {
        use std::os::fd::AsRawFd;
        self.seq = self.seq.wrapping_add(1);
        let req = build_request(src, dst, sport, dport, oif, self.seq);
        let mut buf = vec![0u8; 8192];
        // SAFETY: send/recv on our own descriptor with sized buffers.
        let n = unsafe {
            if libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let (gateway, oif, prefsrc) = parse_reply(&buf[..n as usize])?;
        Ok(LocalRoute {
            gateway,
            dev: crate::collect::iface::ifname(oif),
            oif,
            prefsrc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_the_five_tuple() {
        let r = build_request(
            "198.18.20.2".parse().expect("test fixture"),
            "198.18.30.10".parse().expect("test fixture"),
            33000,
            8080,
            0,
            7,
        );
        assert_eq!(
            u32::from_ne_bytes(r[0..4].try_into().expect("test fixture")) as usize,
            r.len()
        );
        // sport attribute: len 6, type 28, value big-endian.
        let sport = r.windows(6).any(|w| w == [6, 0, 28, 0, 0x80, 0xe8]);
        assert!(sport, "{r:?}");
        assert!(r.windows(5).any(|w| w == [5, 0, 27, 0, 6]));
    }

    #[test]
    fn error_replies_become_errors_and_garbage_never_panics() {
        let mut e = vec![0u8; 36];
        e[0..4].copy_from_slice(&36u32.to_ne_bytes());
        e[4..6].copy_from_slice(&2u16.to_ne_bytes());
        e[16..20].copy_from_slice(&(-libc::ENETUNREACH).to_ne_bytes());
        let err = parse_reply(&e).expect_err("error");
        assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH));
        for n in 0..e.len() {
            let _ = parse_reply(&e[..n]);
        }
    }

    #[test]
    fn this_namespace_answers_a_lookup_or_says_why() {
        let Ok(mut r) = Router::open(Duration::from_secs(1)) else {
            return;
        };
        match r.lookup(
            "127.0.0.1".parse().expect("test fixture"),
            "127.0.0.1".parse().expect("test fixture"),
            1,
            2,
            0,
        ) {
            Ok(l) => assert_eq!(l.dev, "lo"),
            Err(e) => assert!(e.raw_os_error().is_some(), "{e}"),
        }
    }
}
