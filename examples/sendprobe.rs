//! Lab-only end-to-end check of the packet layer: sends one SYN built by `build_syn` through a raw
//! socket, prints every reply `parse_*` understands (and whether it matches the probe's key), and
//! answers a matching SYN-ACK with `build_rst` when asked.
//! usage: sendprobe SRC DST SPORT DPORT TTL SEQ IPID FLOWLABEL WAIT_MS [rst]
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vmpath::probe::packet::{self, Probe, ReplyKind};

fn main() -> std::io::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 9 {
        eprintln!("usage: sendprobe SRC DST SPORT DPORT TTL SEQ IPID FLOWLABEL WAIT_MS [rst]");
        std::process::exit(64);
    }
    let p = Probe {
        src: a[0].parse().expect("src"),
        dst: a[1].parse().expect("dst"),
        sport: a[2].parse().expect("sport"),
        dport: a[3].parse().expect("dport"),
        ttl: a[4].parse().expect("ttl"),
        seq: a[5].parse().expect("seq"),
        ip_id: a[6].parse().expect("ipid"),
        flow_label: a[7].parse().expect("flow label"),
    };
    let wait = Duration::from_millis(a[8].parse().expect("wait"));
    let rst = a.get(9).map(String::as_str) == Some("rst");
    let v6 = p.dst.is_ipv6();
    let (dom, icmp) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let rx = [
        Socket::new(dom, Type::RAW, Some(icmp))?,
        Socket::new(dom, Type::RAW, Some(Protocol::TCP))?,
    ];
    for s in &rx {
        s.set_read_timeout(Some(Duration::from_millis(10)))?;
    }
    let tx = Socket::new(dom, Type::RAW, Some(Protocol::from(libc::IPPROTO_RAW)))?;
    tx.set_mark(0x77)?;
    let to = SockAddr::from(SocketAddr::new(p.dst, 0));
    let syn = packet::build_syn(&p).expect("same family");
    tx.send_to(&syn, &to)?;
    println!("sent SYN {} bytes key={:?}", syn.len(), p.key());
    let start = Instant::now();
    let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
    while start.elapsed() < wait {
        for (i, s) in rx.iter().enumerate() {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                continue;
            };
            // SAFETY: recv_from initialised the first n bytes.
            let data: Vec<u8> = buf[..n]
                .iter()
                .map(|b| unsafe { b.assume_init() })
                .collect();
            let reply = match (from.as_socket().map(|a| a.ip()), p.src) {
                (_, IpAddr::V4(_)) => packet::parse_v4(&data),
                (Some(IpAddr::V6(f)), IpAddr::V6(_)) if i == 0 => packet::parse_v6_icmp(&data, f),
                (Some(IpAddr::V6(f)), IpAddr::V6(local)) => packet::parse_v6_tcp(&data, f, local),
                _ => None,
            };
            let Some(r) = reply else { continue };
            let m = r.key.matches(&p.key());
            println!("reply after {:?}: {:?} match={m}", start.elapsed(), r);
            if m && rst && r.kind == ReplyKind::SynAck {
                let pkt = packet::build_rst(
                    p.src,
                    p.dst,
                    p.sport,
                    p.dport,
                    p.seq.wrapping_add(1),
                    p.flow_label,
                )
                .expect("same family");
                tx.send_to(&pkt, &to)?;
                println!("sent RST seq={}", p.seq.wrapping_add(1));
            }
        }
    }
    Ok(())
}
