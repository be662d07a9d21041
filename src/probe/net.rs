//! What the probe engine asks of the machine. [`Network`] is all of it while probing: a clock,
//! sending one packet, reading one reply, waiting for one. [`open`] sets a run up in the current
//! thread's network namespace and gives the real network ([`RawNetwork`]: a raw send socket,
//! raw ICMP and TCP receive sockets, `poll`) with the [`Setup`] it found: the source address,
//! the reserved source ports and the local kernel's route for each flow.
//!
//! The engine takes every timestamp from [`Network::now`], so a network that is not the real
//! one (the tests' replay of captured packets) can run it on virtual time.

use std::hash::{BuildHasher, RandomState};
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::config::Config;
use super::route::{LocalRoute, Router};
use crate::error::{Error, Result};

/// The raw socket a reply came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// ICMP (ICMPv6) errors: time exceeded, unreachable, too big.
    Icmp,
    /// TCP segments: SYN-ACK, RST, ACK.
    Tcp,
}

/// One received packet, as a raw socket of the destination's family gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub channel: Channel,
    /// The sender, as `recvfrom` named it.
    pub from: Option<IpAddr>,
    /// IPv4: the whole packet, IP header included. IPv6: from the ICMPv6 or TCP header on.
    pub data: Vec<u8>,
}

/// The engine's view of the network while it probes.
pub trait Network {
    /// The current time. Every timestamp of a run (send times, RTTs, deadlines) comes from here.
    fn now(&self) -> Instant;
    /// Send one whole IP packet (header included) towards the destination. A failure is a lost
    /// probe to the engine.
    fn send(&mut self, packet: &[u8]) -> io::Result<()>;
    /// The next packet already received, without waiting; `None` when there is none now.
    fn recv(&mut self) -> Option<Received>;
    /// Block until a packet may be there to [`Network::recv`], or until `until`, whichever
    /// comes first. It may return earlier.
    fn wait(&mut self, until: Instant);
}

/// What setting a run up found.
#[derive(Debug, Clone)]
pub struct Setup {
    /// When the run began (before its sockets were opened).
    pub started: Instant,
    /// Our source address.
    pub source: IpAddr,
    /// One flow per source port, reserved for the whole run.
    pub sports: Vec<u16>,
    /// Ports skipped because a local socket held them.
    pub skipped: Vec<u16>,
    /// Per flow, the local kernel's route (its own ECMP choice for the 5-tuple).
    pub routes: Vec<Option<LocalRoute>>,
    /// The run's base for probe ids (TCP sequence numbers), different each run.
    pub seq_base: u32,
    /// Seeds the order in which retries visit the traced flows, different each run.
    pub retry_seed: u64,
}

/// Raw sockets in the current thread's network namespace, and the bound TCP sockets that keep
/// the flows' source ports from local connections for as long as it lives.
pub struct RawNetwork {
    send: Socket,
    icmp: Socket,
    tcp: Socket,
    to: SockAddr,
    _reserved: Vec<Socket>,
}

impl Network for RawNetwork {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.send.send_to(packet, &self.to).map(|_| ())
    }

    fn recv(&mut self) -> Option<Received> {
        let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
        for (channel, sock) in [(Channel::Icmp, &self.icmp), (Channel::Tcp, &self.tcp)] {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                // SAFETY: recv_from initialised the first n bytes of buf.
                let data: &[u8] = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n) };
                return Some(Received {
                    channel,
                    from: from.as_socket().map(|a| a.ip()),
                    data: data.to_vec(),
                });
            }
        }
        None
    }

    fn wait(&mut self, until: Instant) {
        let ms = until
            .saturating_duration_since(Instant::now())
            .as_millis()
            .clamp(1, 1000) as i32;
        let mut p = [self.icmp.as_raw_fd(), self.tcp.as_raw_fd()].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: poll on two valid descriptors with a correctly sized array.
        unsafe {
            libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms);
        }
    }
}

fn raw(domain: Domain, proto: i32) -> io::Result<Socket> {
    let s = Socket::new(domain, Type::RAW, Some(Protocol::from(proto)))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

fn bind_device(s: &Socket, dev: &str) -> Result<()> {
    s.bind_device(Some(dev.as_bytes())).map_err(|e| {
        Error::unknown(format!(
            "cannot bind to interface {dev}: {e} (check the name with `ip link`)"
        ))
    })
}

/// Set a run up: the source address, raw sockets (bound to `--interface`), the source ports
/// reserved, and the local kernel's route for each flow.
pub fn open(cfg: &Config) -> Result<(RawNetwork, Setup)> {
    let started = Instant::now();
    let v6 = cfg.dst.is_ipv6();
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let src = match cfg.source {
        Some(s) => s,
        None => pick_source(cfg)?,
    };
    if src.is_ipv6() != v6 {
        return Err(Error::usage(format!(
            "--source {src} is not the same address family as {}",
            cfg.dst
        )));
    }
    let need_raw = |e: io::Error| {
        if e.raw_os_error() == Some(libc::EPERM) || e.raw_os_error() == Some(libc::EACCES) {
            Error::privilege(format!(
                "cannot open a raw socket: {e}. vmpath probe needs CAP_NET_RAW: run it as root, or \
                 grant it once with `sudo setcap cap_net_raw,cap_net_admin+ep $(command -v vmpath)`"
            ))
        } else {
            Error::unknown(format!("cannot open a raw socket: {e}"))
        }
    };
    let send = raw(domain, libc::IPPROTO_RAW).map_err(need_raw)?;
    let icmp = raw(
        domain,
        if v6 {
            libc::IPPROTO_ICMPV6
        } else {
            libc::IPPROTO_ICMP
        },
    )
    .map_err(need_raw)?;
    let tcp = raw(domain, libc::IPPROTO_TCP).map_err(need_raw)?;
    if let Some(dev) = &cfg.interface {
        for s in [&send, &icmp, &tcp] {
            bind_device(s, dev)?;
        }
    }
    let (reserved, sports, skipped) = reserve_ports(cfg, domain, src)?;
    let seq_base = {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
            .unwrap_or(0x5eed_1234);
        t ^ std::process::id().rotate_left(8)
    };
    let routes = local_routes(cfg, src, &sports);
    let net = RawNetwork {
        send,
        icmp,
        tcp,
        to: SockAddr::from(SocketAddr::new(cfg.dst, 0)),
        _reserved: reserved,
    };
    Ok((
        net,
        Setup {
            started,
            source: src,
            sports,
            skipped,
            routes,
            seq_base,
            retry_seed: RandomState::new().hash_one(seq_base),
        },
    ))
}

/// Reserve the flows' source ports with bound TCP sockets. Without explicit ports, ports in use
/// are skipped and replaced by the next ones up. Returns the sockets, the ports, the skipped.
fn reserve_ports(
    cfg: &Config,
    domain: Domain,
    src: IpAddr,
) -> Result<(Vec<Socket>, Vec<u16>, Vec<u16>)> {
    let mut reserved = Vec::new();
    let mut sports = Vec::new();
    let mut skipped = Vec::new();
    let mut next_auto = cfg.sports.iter().copied().max().unwrap_or(33000);
    let mut queue: std::collections::VecDeque<u16> = cfg.sports.iter().copied().collect();
    let want = cfg.sports.len();
    let mut tries = 0;
    while sports.len() < want && tries < want + 1024 {
        tries += 1;
        let p = match queue.pop_front() {
            Some(p) => p,
            None if !cfg.explicit_sports && next_auto < u16::MAX => {
                next_auto += 1;
                next_auto
            }
            None => break,
        };
        match reserve(domain, src, p) {
            Ok(s) => {
                reserved.push(s);
                sports.push(p);
            }
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
                if cfg.explicit_sports {
                    return Err(Error::unknown(format!(
                        "source port {p} is in use on this host: pick other ports with --sports"
                    )));
                }
                skipped.push(p);
            }
            Err(e) => {
                return Err(Error::unknown(format!(
                    "cannot reserve source port {p} on {src}: {e}"
                )))
            }
        }
    }
    if sports.len() < want {
        return Err(Error::unknown(format!(
            "could only reserve {} of {want} source ports",
            sports.len()
        )));
    }
    Ok((reserved, sports, skipped))
}

fn reserve(domain: Domain, src: IpAddr, port: u16) -> io::Result<Socket> {
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    // A TIME-WAIT left by an earlier connection (a traceroute -T, say) does not hold the port
    // for our raw probes; a live socket without SO_REUSEADDR still does, and refuses the bind.
    s.set_reuse_address(true)?;
    s.bind(&SockAddr::from(SocketAddr::new(src, port)))?;
    Ok(s)
}

/// The source address the kernel would use towards the destination.
fn pick_source(cfg: &Config) -> Result<IpAddr> {
    let domain = if cfg.dst.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(|e| {
        Error::unknown(format!(
            "cannot open a UDP socket to pick a source address: {e}"
        ))
    })?;
    if let Some(dev) = &cfg.interface {
        bind_device(&s, dev)?;
    }
    s.connect(&SockAddr::from(SocketAddr::new(cfg.dst, cfg.port)))
        .map_err(|e| {
            Error::unknown(format!(
                "no route to {} from this network namespace: {e} (check `ip route get {}`)",
                cfg.dst, cfg.dst
            ))
        })?;
    s.local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.ip())
        .ok_or_else(|| Error::unknown("cannot read the source address the kernel picked"))
}

/// The local kernel's route for each flow (`None` where it could not say).
fn local_routes(cfg: &Config, src: IpAddr, sports: &[u16]) -> Vec<Option<LocalRoute>> {
    let Ok(mut r) = Router::open(Duration::from_millis(500)) else {
        return vec![None; sports.len()];
    };
    let oif = cfg
        .interface
        .as_deref()
        .and_then(crate::collect::iface::ifindex)
        .unwrap_or(0);
    sports
        .iter()
        .map(|p| r.lookup(src, cfg.dst, *p, cfg.port, oif).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::schedule::HopsMode;

    #[test]
    fn a_source_of_the_other_family_is_bad_usage_before_any_socket() {
        let cfg = Config {
            dst: "198.18.30.10".parse().expect("test fixture"),
            port: 8080,
            sports: vec![33000],
            explicit_sports: true,
            max_ttl: 8,
            source: Some("2001:db8::2".parse().expect("test fixture")),
            interface: None,
            repeat: 1,
            timeout: Duration::from_secs(1),
            max_time: Duration::from_secs(30),
            hops: HopsMode::None,
        };
        let Err(e) = open(&cfg) else {
            panic!("opened with a source of the other family");
        };
        assert_eq!(
            e,
            Error::usage("--source 2001:db8::2 is not the same address family as 198.18.30.10")
        );
        assert_eq!(e.exit_code(), 64);
    }
}
