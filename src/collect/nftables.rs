//! Which nftables tables exist in this network namespace, asked of the kernel directly (one
//! NFT_MSG_GETTABLE dump over NETLINK_NETFILTER, no fork). The firewall collector uses it to run
//! only the tools that can show something: `iptables-save` when iptables-nft tables exist,
//! `nft -j list ruleset` when native tables do. Forking `nft` costs ~10 ms; this costs ~0.1 ms.

use std::io;
use std::time::Duration;

/// nftables families (NFPROTO_*).
pub const INET: u8 = 1;
pub const IPV4: u8 = 2;
pub const ARP: u8 = 3;
pub const NETDEV: u8 = 5;
pub const BRIDGE: u8 = 7;
pub const IPV6: u8 = 10;

/// Tables iptables-nft creates (in families ip and ip6).
pub const IPTABLES_NAMES: &[&str] = &["filter", "nat", "mangle", "raw", "security"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftTable {
    pub family: u8,
    pub name: String,
}

impl NftTable {
    /// A table iptables-nft manages (shown by iptables-save / ip6tables-save).
    pub fn is_iptables(&self) -> bool {
        (self.family == IPV4 || self.family == IPV6) && IPTABLES_NAMES.contains(&self.name.as_str())
    }
    /// A native table that can filter routed VM traffic (ip, ip6, inet, netdev families).
    pub fn is_native_l3(&self) -> bool {
        !self.is_iptables() && matches!(self.family, INET | IPV4 | IPV6 | NETDEV)
    }
}

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub const NFT_MSG_NEWTABLE: u16 = 0;
pub const NFT_MSG_GETTABLE: u16 = 1;
pub const NFT_MSG_NEWCHAIN: u16 = 3;
pub const NFT_MSG_GETCHAIN: u16 = 4;
pub const NFT_MSG_NEWRULE: u16 = 6;
pub const NFT_MSG_GETRULE: u16 = 7;
const NFTA_TABLE_NAME: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// List the tables of this network namespace. Needs CAP_NET_ADMIN.
pub fn list_tables(timeout: Duration) -> io::Result<Vec<NftTable>> {
    Ok(tables_of(&dump(NFT_MSG_GETTABLE, 0, &[], timeout)?))
}

/// One nftables message of a dump: its type (without the subsystem), its nfgenmsg family and
/// its attributes (after the 4-byte nfgenmsg).
#[derive(Debug, Clone)]
pub struct NfMsg {
    pub kind: u16,
    pub family: u8,
    pub body: Vec<u8>,
}

/// Split one buffer of netlink messages into nftables messages. Returns whether the dump ended.
pub fn split_dump(buf: &[u8], out: &mut Vec<NfMsg>) -> io::Result<bool> {
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < 16 || off + len > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "truncated netlink message",
            ));
        }
        let msg = &buf[off..off + len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let code = msg
                    .get(16..20)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                return Ok(true);
            }
            k if k >> 8 == NFNL_SUBSYS_NFTABLES && len >= 20 => out.push(NfMsg {
                kind: k & 0xff,
                family: msg[16],
                body: msg[20..].to_vec(),
            }),
            _ => {}
        }
        off += (len + 3) & !3;
    }
    Ok(false)
}

/// The tables among the messages of a table dump.
pub fn tables_of(msgs: &[NfMsg]) -> Vec<NftTable> {
    msgs.iter()
        .filter(|m| m.kind == NFT_MSG_NEWTABLE)
        .filter_map(|m| {
            let (_, v) = attrs(&m.body).find(|(t, _)| *t == NFTA_TABLE_NAME)?;
            Some(NftTable {
                family: m.family,
                name: attr_str(v),
            })
        })
        .collect()
}

/// Netlink attributes of a buffer: (type without the nested/byte-order flags, payload).
/// Stops quietly at the first malformed attribute.
pub fn attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        let head = buf.get(off..off + 4)?;
        let alen = u16::from_ne_bytes([head[0], head[1]]) as usize;
        let atype = u16::from_ne_bytes([head[2], head[3]]) & 0x3fff;
        if alen < 4 {
            return None;
        }
        let val = buf.get(off + 4..off + alen)?;
        off += (alen + 3) & !3;
        Some((atype, val))
    })
}

/// A NUL-terminated string attribute.
pub fn attr_str(v: &[u8]) -> String {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// A big-endian u32 attribute (nftables sends numbers in network order).
pub fn attr_be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

/// A big-endian u64 attribute.
pub fn attr_be64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.get(..8)?.try_into().ok()?))
}

/// Run one nftables dump request (`NFT_MSG_GET*` with NLM_F_DUMP) for a family (0 = all) with
/// optional request attributes, and return every message of the answer. Needs CAP_NET_ADMIN.
/// Bounded by `timeout` as a whole.
pub fn dump(
    msg_type: u16,
    family: u8,
    req_attrs: &[u8],
    timeout: Duration,
) -> io::Result<Vec<NfMsg>> {
    // SAFETY: plain socket syscalls on a descriptor we own and close below; buffers are sized.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let close = |e: io::Error| {
            libc::close(fd);
            Err(e)
        };
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
        };
        // Without a receive timeout a silent kernel would block us: refuse to go on.
        if libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        ) < 0
        {
            return close(io::Error::last_os_error());
        }
        let len = 20 + req_attrs.len();
        let mut req = vec![0u8; 20];
        req[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg_type).to_ne_bytes());
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
        req[6..8].copy_from_slice(&flags.to_ne_bytes());
        req[8..12].copy_from_slice(&1u32.to_ne_bytes()); // seq
        req[16] = family; // nfgenmsg: family, version 0, res_id 0
        req.extend_from_slice(req_attrs);
        let mut sa: libc::sockaddr_nl = std::mem::zeroed();
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let sent = libc::sendto(
            fd,
            req.as_ptr().cast(),
            req.len(),
            0,
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        );
        if sent < 0 {
            return close(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        let started = std::time::Instant::now();
        for _ in 0..65536 {
            if started.elapsed() > timeout {
                return close(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nftables dump: no end within the timeout",
                ));
            }
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n < 0 {
                return close(io::Error::last_os_error());
            }
            let n = n as usize;
            match split_dump(&buf[..n], &mut out) {
                Ok(true) => {
                    libc::close(fd);
                    return Ok(out);
                }
                Ok(false) if n == 0 => break,
                Ok(false) => {}
                Err(e) => return close(e),
            }
        }
        close(io::Error::new(
            io::ErrorKind::InvalidData,
            "nftables dump did not end",
        ))
    }
}

/// A string request attribute (e.g. NFTA_RULE_TABLE to dump one table's rules).
pub fn str_attr(kind: u16, s: &str) -> Vec<u8> {
    let mut a = Vec::new();
    let alen = 4 + s.len() + 1;
    a.extend_from_slice(&(alen as u16).to_ne_bytes());
    a.extend_from_slice(&kind.to_ne_bytes());
    a.extend_from_slice(s.as_bytes());
    a.push(0);
    while a.len() % 4 != 0 {
        a.push(0);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, family: u8, name: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        let alen = 4 + name.len() + 1;
        attr.extend_from_slice(&(alen as u16).to_ne_bytes());
        attr.extend_from_slice(&NFTA_TABLE_NAME.to_ne_bytes());
        attr.extend_from_slice(name.as_bytes());
        attr.push(0);
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let len = 16 + 4 + attr.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]);
        m.extend_from_slice(&[family, 0, 0, 0]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn parses_a_dump_and_classifies_tables() {
        let mut buf = msg(0x0a00, IPV4, "filter");
        buf.extend(msg(0x0a00, INET, "vmsg"));
        buf.extend(msg(0x0a00, BRIDGE, "filter"));
        let mut done = vec![0u8; 20];
        done[0..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        buf.extend(done);
        let mut msgs = Vec::new();
        assert!(split_dump(&buf, &mut msgs).expect("parse"));
        let out = tables_of(&msgs);
        assert_eq!(out.len(), 3);
        assert!(out[0].is_iptables() && !out[0].is_native_l3());
        assert!(out[1].is_native_l3());
        assert!(!out[2].is_iptables() && !out[2].is_native_l3());
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let buf = msg(0x0a00, IPV4, "filter");
        let mut out = Vec::new();
        assert!(split_dump(&buf[..buf.len() - 3], &mut out).is_err());
        assert!(!split_dump(&buf[..10], &mut out).expect("short tail is ignored"));
    }

    #[test]
    fn listing_this_namespace_works_or_says_why() {
        match list_tables(Duration::from_secs(1)) {
            Ok(_) => {}
            Err(e) => assert!(e.raw_os_error().is_some(), "{e}"),
        }
    }
}
