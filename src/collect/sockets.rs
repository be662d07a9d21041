//! Listening TCP sockets of this thread's network namespace, with the owning process found
//! through the socket inode in `/proc/*/fd` links (`socket:[INODE]`). Used to tell whether the
//! metadata proxy listens.
//!
//! The sockets come from `NETLINK_SOCK_DIAG` asking for LISTEN sockets only (the kernel then
//! walks just the listening hash), and, when netlink is refused, from
//! `/proc/thread-self/net/tcp` and `tcp6` (state `0A` = LISTEN), which costs about 5 ms per file
//! on hosts with a large connection hash table because the kernel walks all of it. Both are
//! per network namespace: the one of the calling thread.

use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::collect::procs::parse_cmdline;
use crate::error::Error;

/// A process holding a socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub pid: u32,
    /// Base name of argv[0] (`python3`, `haproxy`).
    pub name: String,
    pub cmdline: Vec<String>,
}

/// A socket in LISTEN state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    pub addr: IpAddr,
    pub port: u16,
    pub inode: u64,
    /// Owner uid of the socket.
    pub uid: u32,
    /// `None` when no process showed it (it vanished, or /proc/PID/fd is not readable: not root).
    pub owner: Option<Owner>,
}

impl Listener {
    /// Bound to every address (`0.0.0.0` or `::`).
    pub fn is_wildcard(&self) -> bool {
        self.addr.is_unspecified()
    }
    /// `0.0.0.0:9697`, `[::]:9697`.
    pub fn endpoint(&self) -> String {
        match self.addr {
            IpAddr::V4(a) => format!("{a}:{}", self.port),
            IpAddr::V6(a) => format!("[{a}]:{}", self.port),
        }
    }
}

/// Listening sockets of this thread's netns, with owners resolved for every listener.
pub fn collect() -> Result<Vec<Listener>, Error> {
    collect_for_ports(None)
}

/// Listening sockets; owners are resolved only for listeners on `ports` (all when `None`),
/// which keeps the /proc scan short. Error when neither netlink nor `/proc/.../net/tcp` can be
/// read.
pub fn collect_for_ports(ports: Option<&[u16]>) -> Result<Vec<Listener>, Error> {
    collect_among(ports, None)
}

/// [`collect_for_ports`], looking for owners only among `pids` (the processes already known to
/// share this network namespace) when given.
pub fn collect_among(ports: Option<&[u16]>, pids: Option<&[u32]>) -> Result<Vec<Listener>, Error> {
    let mut all = match sock_diag_listeners() {
        Ok(l) => l,
        Err(_) => proc_listeners()?,
    };
    resolve_owners(&mut all, Path::new("/proc"), ports, pids);
    Ok(all)
}

// ---------------------------------------------------------------------------------------------
// /proc/net/tcp

/// Parse `/proc/net/tcp` or `/proc/net/tcp6` and keep LISTEN sockets (owners unresolved).
/// Addresses are printed by the kernel as 32-bit words in host byte order.
pub fn parse_proc_net_tcp(text: &str) -> Vec<Listener> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[3] != "0A" {
            continue;
        }
        let Some((a, p)) = f[1].split_once(':') else {
            continue;
        };
        let (Some(addr), Ok(port), Ok(uid), Ok(inode)) = (
            hex_addr(a),
            u16::from_str_radix(p, 16),
            f[7].parse::<u32>(),
            f[9].parse::<u64>(),
        ) else {
            continue;
        };
        out.push(Listener {
            addr,
            port,
            inode,
            uid,
            owner: None,
        });
    }
    out
}

fn hex_addr(s: &str) -> Option<IpAddr> {
    let word = |w: &str| u32::from_str_radix(w, 16).ok().map(u32::to_ne_bytes);
    match s.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(s)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(s.get(i * 8..i * 8 + 8)?)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// LISTEN sockets from `/proc/thread-self/net/tcp` and `tcp6`.
pub fn proc_listeners() -> Result<Vec<Listener>, Error> {
    let base = ["/proc/thread-self/net", "/proc/self/net"]
        .into_iter()
        .find(|d| Path::new(d).join("tcp").exists())
        .ok_or(crate::error::Error::unknown(
            "cannot read /proc/thread-self/net/tcp: is /proc mounted?",
        ))?;
    let v4 = fs::read_to_string(format!("{base}/tcp"))
        .map_err(|e| Error::unknown(format!("cannot read {base}/tcp: {e}")))?;
    let mut all = parse_proc_net_tcp(&v4);
    // tcp6 is absent when IPv6 is disabled: not an error.
    if let Ok(v6) = fs::read_to_string(format!("{base}/tcp6")) {
        all.extend(parse_proc_net_tcp(&v6));
    }
    Ok(all)
}

// ---------------------------------------------------------------------------------------------
// NETLINK_SOCK_DIAG

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_LISTEN: u8 = 10;
/// struct inet_diag_msg: family, state, timer, retrans, id (48), expires, rqueue, wqueue, uid,
/// inode.
const DIAG_MSG_LEN: usize = 72;

/// The request for TCP LISTEN sockets of one family: `struct nlmsghdr` followed by
/// `struct inet_diag_req_v2`, in native byte order as netlink wants.
fn diag_request(family: u8, seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(72);
    b.extend_from_slice(&72u32.to_ne_bytes()); // nlmsg_len
    b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes()); // nlmsg_type
    b.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    b.extend_from_slice(&seq.to_ne_bytes());
    b.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
    b.push(family); // sdiag_family
    b.push(libc::IPPROTO_TCP as u8); // sdiag_protocol
    b.push(0); // idiag_ext
    b.push(0); // pad
    b.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes()); // idiag_states
    b.extend_from_slice(&[0u8; 48]); // inet_diag_sockid: any
    b
}

/// Parse the netlink messages of one dump reply. `Ok(true)` when the dump is done.
pub fn parse_diag_reply(buf: &[u8], out: &mut Vec<Listener>) -> Result<bool, Error> {
    let u16_at = |o: usize| buf.get(o..o + 2).map(|s| u16::from_ne_bytes([s[0], s[1]]));
    let u32_at = |o: usize| {
        buf.get(o..o + 4)
            .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
    };
    let mut off = 0;
    while off + 16 <= buf.len() {
        let (Some(len), Some(ty)) = (u32_at(off), u16_at(off + 4)) else {
            break;
        };
        let len = len as usize;
        if len < 16 || off + len > buf.len() {
            return Err(crate::error::Error::unknown(
                "sock_diag: truncated netlink message",
            ));
        }
        match ty {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = u32_at(off + 16)
                    .map(|e| (e as i32).wrapping_neg())
                    .unwrap_or(0);
                return Err(Error::unknown(format!(
                    "sock_diag refused: {}",
                    std::io::Error::from_raw_os_error(errno)
                )));
            }
            SOCK_DIAG_BY_FAMILY if len >= 16 + DIAG_MSG_LEN => {
                let m = &buf[off + 16..off + 16 + DIAG_MSG_LEN];
                let addr = match i32::from(m[0]) {
                    libc::AF_INET => Some(IpAddr::V4(Ipv4Addr::new(m[8], m[9], m[10], m[11]))),
                    libc::AF_INET6 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(&m[8..24]);
                        Some(IpAddr::V6(Ipv6Addr::from(a)))
                    }
                    _ => None,
                };
                if let (Some(addr), true) = (addr, m[1] == TCP_LISTEN) {
                    out.push(Listener {
                        addr,
                        port: u16::from_be_bytes([m[4], m[5]]),
                        inode: u64::from(u32::from_ne_bytes([m[68], m[69], m[70], m[71]])),
                        uid: u32::from_ne_bytes([m[64], m[65], m[66], m[67]]),
                        owner: None,
                    });
                }
            }
            _ => {}
        }
        off += (len + 3) & !3;
    }
    Ok(false)
}

/// LISTEN sockets of this thread's netns through NETLINK_SOCK_DIAG (IPv4 and IPv6).
pub fn sock_diag_listeners() -> Result<Vec<Listener>, Error> {
    // SAFETY: plain socket(2) call; the descriptor is owned right below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(Error::unknown(format!(
            "netlink sock_diag socket: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: tv is a valid timeval and its size is passed along.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(Error::unknown(format!(
            "netlink sock_diag timeout: {}",
            std::io::Error::last_os_error()
        )));
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    for (seq, family) in [(1u32, libc::AF_INET as u8), (2, libc::AF_INET6 as u8)] {
        let req = diag_request(family, seq);
        // SAFETY: an all-zero sockaddr_nl is valid (the kernel as destination once the family
        // is set).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: req and sa are live for the call and their lengths are passed along.
        let sent = unsafe {
            libc::sendto(
                sock.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(Error::unknown(format!(
                "netlink sock_diag send: {}",
                std::io::Error::last_os_error()
            )));
        }
        loop {
            // SAFETY: buf is a live, writable buffer of buf.len() bytes.
            let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(Error::unknown(format!(
                    "netlink sock_diag receive: {}",
                    std::io::Error::last_os_error()
                )));
            }
            if n == 0 || parse_diag_reply(&buf[..n as usize], &mut out)? {
                break;
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Owners

/// Fill `owner` by scanning `<proc_root>/*/fd` for `socket:[INODE]` links; stops as soon as
/// every wanted inode is found. Only processes in this thread's network namespace that run as
/// the uid of one of the wanted sockets are looked into (a listening socket belongs to the
/// netns it was created in and, nearly always, to a process of that uid), which keeps the scan
/// short on hypervisors with many qemu processes.
pub fn resolve_owners(
    listeners: &mut [Listener],
    proc_root: &Path,
    ports: Option<&[u16]>,
    pids: Option<&[u32]>,
) {
    let wanted: Vec<&Listener> = listeners
        .iter()
        .filter(|l| l.inode != 0 && ports.is_none_or(|p| p.contains(&l.port)))
        .collect();
    let uids: Vec<u32> = wanted.iter().map(|l| l.uid).collect();
    let mut want: HashMap<u64, Option<Owner>> = wanted.iter().map(|l| (l.inode, None)).collect();
    let mut left = want.len();
    if left == 0 {
        return;
    }
    let own_ns = fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .ok();
    let candidates: Vec<u32> = match pids {
        Some(p) => p.to_vec(),
        None => {
            let Ok(dir) = fs::read_dir(proc_root) else {
                return;
            };
            dir.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
                .collect()
        }
    };
    'procs: for pid in candidates {
        let pdir = proc_root.join(pid.to_string());
        match fs::metadata(&pdir) {
            Ok(m) if uids.contains(&m.uid()) => {}
            _ => continue,
        }
        // A process whose namespace can't be read is not known to be ours: skip it (as the
        // process table does), rather than walking its descriptors.
        if let Some(own) = own_ns {
            match fs::metadata(pdir.join("ns/net")) {
                Ok(m) if m.ino() == own => {}
                _ => continue,
            }
        }
        let Ok(fds) = fs::read_dir(pdir.join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = link
                .to_str()
                .and_then(|s| s.strip_prefix("socket:["))
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let Some(slot) = want.get_mut(&inode) else {
                continue;
            };
            if slot.is_some() {
                continue;
            }
            let cmdline = fs::read(pdir.join("cmdline"))
                .map(|raw| parse_cmdline(&raw))
                .unwrap_or_default();
            let name = cmdline
                .first()
                .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
                .or_else(|| {
                    fs::read_to_string(pdir.join("comm"))
                        .ok()
                        .map(|s| s.trim().to_string())
                })
                .unwrap_or_else(|| "?".into());
            *slot = Some(Owner { pid, name, cmdline });
            left -= 1;
            if left == 0 {
                break 'procs;
            }
        }
    }
    for l in listeners.iter_mut() {
        if let Some(Some(o)) = want.get(&l.inode) {
            l.owner = Some(o.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fw/proc-net-tcp"
    ));
    const TCP6: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fw/proc-net-tcp6"
    ));

    #[test]
    fn captured_proc_net_tcp_has_the_metadata_listener() {
        let l = parse_proc_net_tcp(TCP);
        assert_eq!(l.len(), 1, "only LISTEN sockets, not the TIME_WAIT one");
        assert_eq!(l[0].endpoint(), "0.0.0.0:9697");
        assert!(l[0].is_wildcard());
        assert_eq!((l[0].inode, l[0].uid), (19614, 0));
        assert!(parse_proc_net_tcp(TCP6).is_empty());
    }

    #[test]
    fn addresses_decode_in_host_order() {
        // 127.0.0.1:22 and [::1]:8775 as a little-endian kernel prints them.
        if cfg!(target_endian = "little") {
            let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
               0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0\n";
            assert_eq!(parse_proc_net_tcp(t)[0].endpoint(), "127.0.0.1:22");
            let t6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
               0: 00000000000000000000000001000000:2247 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   107        0 222 1 0 100 0 0 10 0\n";
            let l = parse_proc_net_tcp(t6);
            assert_eq!((l[0].endpoint(), l[0].uid), ("[::1]:8775".into(), 107));
        }
    }

    #[test]
    fn diag_reply_parsing() {
        // One inet_diag_msg for 0.0.0.0:9697 (uid 107, inode 19614), then NLMSG_DONE.
        let mut b = Vec::new();
        b.extend_from_slice(&88u32.to_ne_bytes());
        b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        b.extend_from_slice(&[0u8; 10]);
        let mut m = vec![libc::AF_INET as u8, TCP_LISTEN, 0, 0];
        m.extend_from_slice(&9697u16.to_be_bytes());
        m.extend_from_slice(&[0u8; 58]);
        m.extend_from_slice(&107u32.to_ne_bytes());
        m.extend_from_slice(&19614u32.to_ne_bytes());
        assert_eq!(m.len(), DIAG_MSG_LEN);
        b.extend_from_slice(&m);
        b.extend_from_slice(&20u32.to_ne_bytes());
        b.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        b.extend_from_slice(&[0u8; 14]);
        let mut out = Vec::new();
        assert_eq!(parse_diag_reply(&b, &mut out), Ok(true));
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].endpoint(), out[0].uid, out[0].inode),
            ("0.0.0.0:9697".into(), 107, 19614)
        );
        assert!(parse_diag_reply(&b[..40], &mut Vec::new()).is_err());
    }

    #[test]
    fn sock_diag_and_proc_agree() {
        let _sock = std::net::TcpListener::bind("127.0.0.1:0").expect("test fixture");
        let key = |l: &Listener| (l.addr, l.port, l.inode, l.uid);
        let mut a: Vec<_> = sock_diag_listeners()
            .expect("test fixture")
            .iter()
            .map(key)
            .collect();
        let mut b: Vec<_> = proc_listeners()
            .expect("test fixture")
            .iter()
            .map(key)
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert!(!a.is_empty());
    }

    #[test]
    fn owner_of_our_own_listener_is_found() {
        let sock = std::net::TcpListener::bind("127.0.0.1:0").expect("test fixture");
        let port = sock.local_addr().expect("test fixture").port();
        let all = collect_for_ports(Some(&[port])).expect("test fixture");
        let me = all
            .iter()
            .find(|l| l.port == port)
            .expect("listener listed");
        let o = me.owner.as_ref().expect("owner found");
        assert_eq!(o.pid, std::process::id());
        // Other listeners were not resolved.
        assert!(all
            .iter()
            .filter(|l| l.port != port)
            .all(|l| l.owner.is_none()));
    }
}
