//! The pure packet layer of `vmpath probe`: TCP SYN probes that keep one fixed 5-tuple per flow,
//! and the replies that answer them. No I/O: bytes in, bytes out, never a panic on any input.
//!
//! * Building: [`build_syn`] and [`build_rst`] return a whole IP packet with every checksum filled
//!   in: an IPv4 packet for a raw socket with `IP_HDRINCL` (`IPPROTO_RAW` implies it), an IPv6
//!   packet for one with `IPV6_HDRINCL`. A flow's probes differ only in TTL (hop limit) and in a
//!   probe id carried outside the hashed fields: the TCP sequence number, and the IPv4 IP-ID. The
//!   IPv6 flow label is the caller's: keep it constant per flow.
//! * Matching: a reply is reduced to the [`Key`] of the probe it answers, as that probe was sent
//!   (our address first). An ICMP error quotes the probe's IP header and at least the first 8
//!   bytes of TCP (ports and sequence number), read here by hand; a SYN-ACK or an RST answering
//!   our SYN carries the reversed ports and acknowledges `seq + 1`.
//! * Parsing: [`parse_v4`] takes what a raw IPv4 socket (`IPPROTO_ICMP` or `IPPROTO_TCP`) returns,
//!   IP header included. Raw IPv6 sockets return no IPv6 header: [`parse_v6_icmp`] and
//!   [`parse_v6_tcp`] take the payload and the addresses the caller knows. [`parse_v6`] takes a
//!   whole IPv6 packet (a capture, a packet socket).
//!
//! ICMP errors with RFC 4884 extension structures (MPLS label stacks, RFC 5837 interface
//! information) are read with the original-datagram length they declare, so the extension is
//! never taken for part of the quote; quoted IPv4 headers with options (IHL > 5) are skipped by
//! their real length.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv4::{self, Ipv4Flags, MutableIpv4Packet};
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::tcp::{self, MutableTcpPacket, TcpFlags, TcpOption};

/// TCP window advertised in a SYN probe (Linux's usual first window).
pub const SYN_WINDOW: u16 = 64240;
/// MSS option in an IPv4 SYN probe.
pub const SYN_MSS_V4: u16 = 1460;
/// MSS option in an IPv6 SYN probe.
pub const SYN_MSS_V6: u16 = 1440;
/// TTL (hop limit) of the RST that tears down a half-open connection.
pub const RST_TTL: u8 = 64;

const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
/// A SYN: 20 bytes of TCP header and the 4-byte MSS option, nothing else (no timestamps, no
/// window scaling: the kernel would not know the connection to keep them consistent).
const TCP_SYN: usize = 24;
const TCP_RST: usize = 20;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
/// RFC 4884: an original-datagram length below 128 bytes means the message is not compliant and
/// carries no extension; the length is then ignored.
const RFC4884_MIN_QUOTE: usize = 128;

/// One probe: a fixed 5-tuple (source, destination, ports, TCP) plus what varies per probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Probe {
    /// Our source address. Must be the same family as `dst`.
    pub src: IpAddr,
    /// The destination.
    pub dst: IpAddr,
    /// Source port, fixed per flow.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// TCP sequence number: the probe id that every kind of reply gives back.
    pub seq: u32,
    /// IPv4 identification, quoted back by ICMP errors (a second probe id). Use a non-zero
    /// value: with `IP_HDRINCL` the kernel picks its own when it is 0. Unused for IPv6.
    pub ip_id: u16,
    /// IPv6 flow label (20 bits, the rest is ignored). Keep it constant per flow: routers may
    /// hash it. Unused for IPv4.
    pub flow_label: u32,
}

impl Probe {
    /// The key every reply to this probe is reduced to.
    pub fn key(&self) -> Key {
        Key {
            src: self.src,
            dst: self.dst,
            sport: self.sport,
            dport: self.dport,
            seq: self.seq,
            ip_id: match self.src {
                IpAddr::V4(_) => Some(self.ip_id),
                IpAddr::V6(_) => None,
            },
        }
    }
}

/// Identifies the probe a reply answers, in the probe's direction (`src` is our address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// The probe's source address (ours).
    pub src: IpAddr,
    /// The probe's destination address.
    pub dst: IpAddr,
    /// The probe's source port.
    pub sport: u16,
    /// The probe's destination port.
    pub dport: u16,
    /// The probe's sequence number (for a TCP reply: its acknowledgement number minus one).
    pub seq: u32,
    /// The probe's IP-ID: `Some` for a probe and for an ICMP error quoting an IPv4 probe, `None`
    /// for IPv6 and for TCP replies (which do not carry it).
    pub ip_id: Option<u16>,
}

impl Key {
    /// Whether two keys name the same probe: same addresses, ports and sequence number, and the
    /// same IP-ID where both know one.
    pub fn matches(&self, other: &Key) -> bool {
        self.src == other.src
            && self.dst == other.dst
            && self.sport == other.sport
            && self.dport == other.dport
            && self.seq == other.seq
            && match (self.ip_id, other.ip_id) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// What a reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// SYN-ACK from the destination: the port is open.
    SynAck,
    /// A bare ACK from the destination: it still holds a half-open connection for this 5-tuple
    /// (an earlier probe's RST was lost) and answers a SYN with a new sequence number with a
    /// challenge ACK for the old one. The port is open; the key's `seq` is the OLD probe's, so
    /// match such a reply on the ports alone.
    Ack,
    /// RST (with ACK) answering the SYN: the port is closed, or something in the path reset it.
    Rst,
    /// ICMP time exceeded in transit (IPv4 type 11 code 0, IPv6 type 3 code 0): a hop.
    TimeExceeded,
    /// ICMP destination unreachable (IPv4 type 3, IPv6 type 1) with its code, except IPv4's
    /// fragmentation needed (see [`ReplyKind::TooBig`]). See [`unreachable_name`].
    Unreachable {
        /// The ICMP code, in the reply's own family's numbering.
        code: u8,
    },
    /// IPv4 fragmentation needed (type 3 code 4) or IPv6 packet too big (type 2).
    TooBig {
        /// The next-hop MTU the sender reported (0 when an old IPv4 router left it out).
        mtu: u32,
    },
}

/// A parsed reply to one of our probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reply {
    /// Who sent the reply: a hop, the destination, or a firewall on the way.
    pub from: IpAddr,
    /// The probe it answers.
    pub key: Key,
    /// What it says.
    pub kind: ReplyKind,
}

/// A short name for an ICMP destination-unreachable code (IPv4 type 3, IPv6 type 1).
pub fn unreachable_name(v6: bool, code: u8) -> &'static str {
    if v6 {
        match code {
            0 => "no route to destination",
            1 => "administratively prohibited",
            2 => "beyond scope of source address",
            3 => "address unreachable",
            4 => "port unreachable",
            5 => "source address failed policy",
            6 => "reject route to destination",
            _ => "unreachable (unknown code)",
        }
    } else {
        match code {
            0 => "network unreachable",
            1 => "host unreachable",
            2 => "protocol unreachable",
            3 => "port unreachable",
            4 => "fragmentation needed",
            5 => "source route failed",
            6 => "destination network unknown",
            7 => "destination host unknown",
            9 => "network administratively prohibited",
            10 => "host administratively prohibited",
            11 => "network unreachable for TOS",
            12 => "host unreachable for TOS",
            13 => "communication administratively prohibited",
            14 => "host precedence violation",
            15 => "precedence cutoff in effect",
            _ => "unreachable (unknown code)",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------

/// A whole SYN probe packet: an IPv4 header (TTL, IP-ID, DF set, checksum) or an IPv6 header
/// (hop limit, flow label), then a TCP SYN with one MSS option and a correct checksum.
/// `None` when `src` and `dst` are of different families.
pub fn build_syn(p: &Probe) -> Option<Vec<u8>> {
    let mss = match p.dst {
        IpAddr::V4(_) => SYN_MSS_V4,
        IpAddr::V6(_) => SYN_MSS_V6,
    };
    let fill = |t: &mut MutableTcpPacket| {
        t.set_source(p.sport);
        t.set_destination(p.dport);
        t.set_sequence(p.seq);
        t.set_acknowledgement(0);
        t.set_data_offset((TCP_SYN / 4) as u8);
        t.set_reserved(0);
        t.set_flags(TcpFlags::SYN);
        t.set_window(SYN_WINDOW);
        t.set_urgent_ptr(0);
        t.set_options(&[TcpOption::mss(mss)]);
    };
    build(p.src, p.dst, p.ttl, p.ip_id, p.flow_label, TCP_SYN, fill)
}

/// A whole RST packet, to tear down the half-open connection a SYN-ACK announced. `seq` is the
/// sequence number the peer expects: the SYN-ACK's acknowledgement number (the probe's
/// `seq + 1`). TTL [`RST_TTL`], IPv4 IP-ID 0 (the kernel picks one), DF set; give the flow's
/// `flow_label` so that IPv6 routers hashing it send the RST the probe's way. `None` when `src`
/// and `dst` are of different families.
pub fn build_rst(
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    flow_label: u32,
) -> Option<Vec<u8>> {
    let fill = |t: &mut MutableTcpPacket| {
        t.set_source(sport);
        t.set_destination(dport);
        t.set_sequence(seq);
        t.set_acknowledgement(0);
        t.set_data_offset((TCP_RST / 4) as u8);
        t.set_reserved(0);
        t.set_flags(TcpFlags::RST);
        t.set_window(0);
        t.set_urgent_ptr(0);
    };
    build(src, dst, RST_TTL, 0, flow_label, TCP_RST, fill)
}

/// An IP header for `tcp_len` bytes of TCP that `fill` writes (all but the checksum), then the
/// TCP checksum over the pseudo-header.
fn build(
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    ip_id: u16,
    flow_label: u32,
    tcp_len: usize,
    fill: impl Fn(&mut MutableTcpPacket),
) -> Option<Vec<u8>> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut buf = vec![0u8; IPV4_HEADER + tcp_len];
            {
                let mut ip = MutableIpv4Packet::new(&mut buf)?;
                ip.set_version(4);
                ip.set_header_length((IPV4_HEADER / 4) as u8);
                ip.set_dscp(0);
                ip.set_ecn(0);
                ip.set_total_length(u16::try_from(IPV4_HEADER + tcp_len).ok()?);
                ip.set_identification(ip_id);
                ip.set_flags(Ipv4Flags::DontFragment);
                ip.set_fragment_offset(0);
                ip.set_ttl(ttl);
                ip.set_next_level_protocol(IpNextHeaderProtocols::Tcp);
                ip.set_source(s);
                ip.set_destination(d);
                let sum = ipv4::checksum(&ip.to_immutable());
                ip.set_checksum(sum);
            }
            let mut t = MutableTcpPacket::new(buf.get_mut(IPV4_HEADER..)?)?;
            fill(&mut t);
            let sum = tcp::ipv4_checksum(&t.to_immutable(), &s, &d);
            t.set_checksum(sum);
            Some(buf)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut buf = vec![0u8; IPV6_HEADER + tcp_len];
            {
                let mut ip = MutableIpv6Packet::new(&mut buf)?;
                ip.set_version(6);
                ip.set_traffic_class(0);
                ip.set_flow_label(flow_label & 0x000f_ffff);
                ip.set_payload_length(u16::try_from(tcp_len).ok()?);
                ip.set_next_header(IpNextHeaderProtocols::Tcp);
                ip.set_hop_limit(ttl);
                ip.set_source(s);
                ip.set_destination(d);
            }
            let mut t = MutableTcpPacket::new(buf.get_mut(IPV6_HEADER..)?)?;
            fill(&mut t);
            let sum = tcp::ipv6_checksum(&t.to_immutable(), &s, &d);
            t.set_checksum(sum);
            Some(buf)
        }
        _ => None,
    }
}

/// The IPv4 Record Route option (RFC 791): type 7, room for 9 addresses, then an end-of-options
/// byte: 40 bytes, the most an IPv4 header holds.
const RR_OPTION_LEN: usize = 39;
const RR_SLOTS: usize = 9;

/// A built IPv4 probe with a Record Route option inserted: every router that forwards it writes
/// its outgoing address, and a Linux destination echoes the option in its SYN-ACK (adding its
/// own address, then the return path's routers add theirs). The 5-tuple, and so the ECMP
/// choice, is unchanged; the TCP checksum does not cover IP options. `None` for IPv6, a packet
/// that already has options, or one too short to be a probe.
pub fn with_record_route(pkt: &[u8]) -> Option<Vec<u8>> {
    if pkt.first()? >> 4 != 4 || pkt.first()? & 0x0f != 5 || pkt.len() < IPV4_HEADER {
        return None;
    }
    let mut out = Vec::with_capacity(pkt.len() + RR_OPTION_LEN + 1);
    out.extend_from_slice(&pkt[..IPV4_HEADER]);
    out.push(7);
    out.push(RR_OPTION_LEN as u8);
    out.push(4);
    out.extend_from_slice(&[0u8; RR_SLOTS * 4]);
    out.push(0); // end of options list
    out.extend_from_slice(&pkt[IPV4_HEADER..]);
    let total = u16::try_from(out.len()).ok()?;
    let mut ip = MutableIpv4Packet::new(&mut out)?;
    ip.set_header_length(((IPV4_HEADER + RR_OPTION_LEN + 1) / 4) as u8);
    ip.set_total_length(total);
    ip.set_checksum(0);
    let sum = ipv4::checksum(&ip.to_immutable());
    ip.set_checksum(sum);
    Some(out)
}

/// The addresses recorded in an IPv4 packet's Record Route option, in order (only the filled
/// slots). `None` when the packet carries no such option or it is malformed.
pub fn record_route(packet: &[u8]) -> Option<Vec<Ipv4Addr>> {
    if packet.first()? >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(packet.first()? & 0x0f) * 4;
    let opts = packet.get(IPV4_HEADER..ihl)?;
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 || i + len > opts.len() {
                    return None;
                }
                if kind == 7 {
                    let ptr = usize::from(*opts.get(i + 2)?);
                    if !(4..=len + 1).contains(&ptr) {
                        return None;
                    }
                    let data = opts.get(i + 3..i + len)?;
                    let filled = ((ptr - 4) / 4).min(data.len() / 4);
                    return Some(
                        (0..filled)
                            .map(|k| {
                                Ipv4Addr::new(
                                    data[4 * k],
                                    data[4 * k + 1],
                                    data[4 * k + 2],
                                    data[4 * k + 3],
                                )
                            })
                            .collect(),
                    );
                }
                i += len;
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// A reply as a raw IPv4 socket returns it, IPv4 header included: a SYN-ACK or RST (from an
/// `IPPROTO_TCP` socket) or an ICMP error quoting a TCP probe (from an `IPPROTO_ICMP` socket).
/// `None` for anything else, including garbage and truncated packets.
pub fn parse_v4(packet: &[u8]) -> Option<Reply> {
    let ip = Ipv4View::new(packet)?;
    let (from, to) = (IpAddr::V4(ip.src), IpAddr::V4(ip.dst));
    match ip.proto {
        PROTO_ICMP if ip.first_fragment => parse_icmp_v4(ip.payload, from),
        PROTO_TCP if ip.first_fragment => parse_tcp(ip.payload, from, to),
        _ => None,
    }
}

/// An ICMPv6 message as a raw `IPPROTO_ICMPV6` socket returns it (from its ICMPv6 header on),
/// sent by `from`: time exceeded, destination unreachable or packet too big quoting a TCP probe.
pub fn parse_v6_icmp(icmp: &[u8], from: Ipv6Addr) -> Option<Reply> {
    let ty = *icmp.first()?;
    let code = *icmp.get(1)?;
    let kind = match (ty, code) {
        (3, 0) => ReplyKind::TimeExceeded,
        (1, code) => ReplyKind::Unreachable { code },
        (2, _) => ReplyKind::TooBig {
            mtu: be32(icmp, 4)?,
        },
        _ => return None,
    };
    let body = icmp.get(8..)?;
    // RFC 4884: types 1 and 3 give the original datagram's length in 64-bit words.
    let quote = if ty == 2 {
        body
    } else {
        rfc4884_quote(body, usize::from(*icmp.get(4)?) * 8)
    };
    Some(Reply {
        from: IpAddr::V6(from),
        key: quoted_v6(quote)?,
        kind,
    })
}

/// A TCP segment as a raw IPv6 `IPPROTO_TCP` socket returns it (from its TCP header on), sent by
/// `from` to our address `local`: a SYN-ACK or an RST answering a probe.
pub fn parse_v6_tcp(segment: &[u8], from: Ipv6Addr, local: Ipv6Addr) -> Option<Reply> {
    parse_tcp(segment, IpAddr::V6(from), IpAddr::V6(local))
}

/// A whole IPv6 packet (IPv6 header included, as a capture or a packet socket gives it).
pub fn parse_v6(packet: &[u8]) -> Option<Reply> {
    let ip = Ipv6View::new(packet)?;
    match ip.proto {
        PROTO_TCP => parse_v6_tcp(ip.payload, ip.src, ip.dst),
        58 => parse_v6_icmp(ip.payload, ip.src),
        _ => None,
    }
}

fn parse_icmp_v4(icmp: &[u8], from: IpAddr) -> Option<Reply> {
    let ty = *icmp.first()?;
    let code = *icmp.get(1)?;
    let kind = match (ty, code) {
        (11, 0) => ReplyKind::TimeExceeded,
        (3, 4) => ReplyKind::TooBig {
            mtu: u32::from(be16(icmp, 6)?),
        },
        (3, code) => ReplyKind::Unreachable { code },
        _ => return None,
    };
    // RFC 4884: byte 5 gives the original datagram's length in 32-bit words (types 3, 11, 12).
    let quote = rfc4884_quote(icmp.get(8..)?, usize::from(*icmp.get(5)?) * 4);
    let inner = Ipv4View::new(quote)?;
    if inner.proto != PROTO_TCP || !inner.first_fragment {
        return None;
    }
    let (sport, dport, seq) = tcp_first8(inner.payload)?;
    Some(Reply {
        from,
        key: Key {
            src: IpAddr::V4(inner.src),
            dst: IpAddr::V4(inner.dst),
            sport,
            dport,
            seq,
            ip_id: Some(inner.id),
        },
        kind,
    })
}

/// A SYN-ACK or RST from `from` to our address `to`, in the key of the probe it answers.
fn parse_tcp(seg: &[u8], from: IpAddr, to: IpAddr) -> Option<Reply> {
    let header = seg.get(..20)?;
    let sport = be16(header, 0)?;
    let dport = be16(header, 2)?;
    let ack = be32(header, 8)?;
    let flags = *header.get(13)?;
    // Both answers to a SYN acknowledge it; without ACK the segment answers nothing of ours.
    if flags & TcpFlags::ACK == 0 {
        return None;
    }
    let kind = if flags & TcpFlags::RST != 0 {
        ReplyKind::Rst
    } else if flags & TcpFlags::SYN != 0 {
        ReplyKind::SynAck
    } else if flags & (TcpFlags::FIN | TcpFlags::PSH) == 0 {
        ReplyKind::Ack
    } else {
        return None;
    };
    Some(Reply {
        from,
        key: Key {
            src: to,
            dst: from,
            sport: dport,
            dport: sport,
            seq: ack.wrapping_sub(1),
            ip_id: None,
        },
        kind,
    })
}

/// The quoted IPv6 probe (header, extension headers, first 8 bytes of TCP) as a key.
fn quoted_v6(quote: &[u8]) -> Option<Key> {
    let inner = Ipv6View::new(quote)?;
    if inner.proto != PROTO_TCP {
        return None;
    }
    let (sport, dport, seq) = tcp_first8(inner.payload)?;
    Some(Key {
        src: IpAddr::V6(inner.src),
        dst: IpAddr::V6(inner.dst),
        sport,
        dport,
        seq,
        ip_id: None,
    })
}

/// The original-datagram part of an ICMP error's body: the length an RFC 4884 message declares
/// (so a following extension structure is not read as quote), else the whole body.
fn rfc4884_quote(body: &[u8], declared: usize) -> &[u8] {
    if declared >= RFC4884_MIN_QUOTE {
        body.get(..declared).unwrap_or(body)
    } else {
        body
    }
}

/// Ports and sequence number: the first 8 bytes of TCP, all an ICMP error must quote.
fn tcp_first8(tcp: &[u8]) -> Option<(u16, u16, u32)> {
    Some((be16(tcp, 0)?, be16(tcp, 2)?, be32(tcp, 4)?))
}

/// The fields of an IPv4 header that matter here, read by hand (a quote may be cut anywhere).
struct Ipv4View<'a> {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    id: u16,
    /// Fragment offset 0: the payload starts with the transport header.
    first_fragment: bool,
    /// After the header (options included), up to the total length or the end of the data,
    /// whichever comes first (a quote is usually shorter than the packet it quotes).
    payload: &'a [u8],
}

impl<'a> Ipv4View<'a> {
    fn new(b: &'a [u8]) -> Option<Self> {
        let first = *b.first()?;
        if first >> 4 != 4 {
            return None;
        }
        let hl = usize::from(first & 0x0f) * 4;
        if hl < IPV4_HEADER {
            return None;
        }
        let total = usize::from(be16(b, 2)?);
        let end = if total >= hl {
            total.min(b.len())
        } else {
            b.len()
        };
        Some(Ipv4View {
            src: Ipv4Addr::from(be32(b, 12)?),
            dst: Ipv4Addr::from(be32(b, 16)?),
            proto: *b.get(9)?,
            id: be16(b, 4)?,
            first_fragment: be16(b, 6)? & 0x1fff == 0,
            payload: b.get(hl..end)?,
        })
    }
}

/// An IPv6 header and its extension headers, read by hand.
struct Ipv6View<'a> {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    /// The upper-layer protocol after the extension headers.
    proto: u8,
    /// After the extension headers, up to the payload length or the end of the data.
    payload: &'a [u8],
}

impl<'a> Ipv6View<'a> {
    fn new(b: &'a [u8]) -> Option<Self> {
        if *b.first()? >> 4 != 6 {
            return None;
        }
        let src: [u8; 16] = b.get(8..24)?.try_into().ok()?;
        let dst: [u8; 16] = b.get(24..40)?.try_into().ok()?;
        let len = usize::from(be16(b, 4)?);
        let rest = b.get(IPV6_HEADER..)?;
        // A quote is usually shorter than the payload length; a jumbogram says 0.
        let rest = if len == 0 {
            rest
        } else {
            rest.get(..len).unwrap_or(rest)
        };
        let (proto, payload) = skip_v6_extensions(*b.get(6)?, rest)?;
        Some(Ipv6View {
            src: Ipv6Addr::from(src),
            dst: Ipv6Addr::from(dst),
            proto,
            payload,
        })
    }
}

/// Skips hop-by-hop, routing, destination-options and (first-)fragment headers.
fn skip_v6_extensions(mut next: u8, mut rest: &[u8]) -> Option<(u8, &[u8])> {
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                let len = (usize::from(*rest.get(1)?) + 1) * 8;
                next = *rest.first()?;
                rest = rest.get(len..)?;
            }
            44 => {
                if be16(rest, 2)? & 0xfff8 != 0 {
                    return None; // not the first fragment: no transport header here
                }
                next = *rest.first()?;
                rest = rest.get(8..)?;
            }
            _ => return Some((next, rest)),
        }
    }
    None
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let bytes: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    //! On packets captured in a private lab (tests/fixtures/probe/README.md): the probes as the
    //! kernel sent them, and every kind of answer from a Linux router and server.

    use super::*;
    use crate::probe::fixtures::{all_fixtures, get};
    use pnet_packet::ipv4::Ipv4Packet;
    use pnet_packet::tcp::TcpPacket;

    const CLIENT4: &str = "198.18.0.2";
    const SERVER4: &str = "198.18.1.2";
    const ROUTER4: &str = "198.18.0.1";
    const CLIENT6: &str = "2001:db8::2";
    const SERVER6: &str = "2001:db8:1::2";
    const ROUTER6: &str = "2001:db8::1";

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    /// The probe the capture script sent from source port `sport` (its numbering scheme).
    fn lab_probe(sport: u16, dst: &str, dport: u16, ttl: u8) -> Probe {
        let dst = ip(dst);
        Probe {
            src: ip(if dst.is_ipv4() { CLIENT4 } else { CLIENT6 }),
            dst,
            sport,
            dport,
            ttl,
            seq: 1_590_000_000 + u32::from(sport),
            ip_id: sport.wrapping_sub(33000).wrapping_add(256),
            flow_label: 65536 + u32::from(sport),
        }
    }

    /// Whatever the family, the way a raw socket would hand the packet over.
    fn parse_any(pkt: &[u8]) -> Option<Reply> {
        match pkt.first().map(|b| b >> 4) {
            Some(4) => parse_v4(pkt),
            Some(6) => parse_v6(pkt),
            _ => None,
        }
    }

    /// An IPv6 packet the raw-socket way: payload after the fixed header, plus its addresses.
    fn parse_v6_raw(pkt: &[u8]) -> Option<Reply> {
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(pkt.get(8..24)?).ok()?);
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(pkt.get(24..40)?).ok()?);
        let payload = pkt.get(40..)?;
        match pkt.get(6)? {
            58 => parse_v6_icmp(payload, src),
            6 => parse_v6_tcp(payload, src, dst),
            _ => None,
        }
    }

    #[test]
    fn built_v4_syn_is_byte_for_byte_what_the_kernel_sent() {
        let p = lab_probe(33001, SERVER4, 8080, 64);
        let pkt = build_syn(&p).expect("v4");
        assert_eq!(pkt, get("v4-syn-out"));
        assert_eq!(pkt.len(), 44);
        assert_eq!(pkt[0], 0x45, "version 4, IHL 5");
        assert_eq!(u16::from_be_bytes([pkt[2], pkt[3]]), 44, "total length");
        assert_eq!(u16::from_be_bytes([pkt[4], pkt[5]]), 257, "IP-ID");
        assert_eq!(u16::from_be_bytes([pkt[6], pkt[7]]), 0x4000, "DF, offset 0");
        assert_eq!(pkt[8], 64, "TTL");
        assert_eq!(pkt[9], 6, "TCP");
        let ip = Ipv4Packet::new(&pkt).expect("ipv4");
        assert_eq!(ip.get_checksum(), ipv4::checksum(&ip));
        let t = TcpPacket::new(&pkt[20..]).expect("tcp");
        assert_eq!(
            (t.get_source(), t.get_destination(), t.get_sequence()),
            (33001, 8080, 1_590_033_001)
        );
        assert_eq!(t.get_acknowledgement(), 0);
        assert_eq!(t.get_data_offset(), 6);
        assert_eq!(t.get_flags(), TcpFlags::SYN);
        assert_eq!(t.get_window(), SYN_WINDOW);
        assert_eq!(
            &pkt[40..44],
            &[2, 4, 0x05, 0xb4],
            "MSS 1460 and nothing else"
        );
        let (s, d) = (Ipv4Addr::new(198, 18, 0, 2), Ipv4Addr::new(198, 18, 1, 2));
        assert_eq!(t.get_checksum(), tcp::ipv4_checksum(&t, &s, &d));
    }

    #[test]
    fn built_v6_syn_is_byte_for_byte_what_the_kernel_sent() {
        let p = lab_probe(34001, SERVER6, 8080, 64);
        let pkt = build_syn(&p).expect("v6");
        assert_eq!(pkt, get("v6-syn-out"));
        assert_eq!(pkt.len(), 64);
        let word = u32::from_be_bytes([pkt[0], pkt[1], pkt[2], pkt[3]]);
        assert_eq!(word >> 28, 6, "version");
        assert_eq!((word >> 20) & 0xff, 0, "traffic class");
        assert_eq!(word & 0xfffff, 99537, "flow label");
        assert_eq!(u16::from_be_bytes([pkt[4], pkt[5]]), 24, "payload length");
        assert_eq!((pkt[6], pkt[7]), (6, 64), "next header TCP, hop limit");
        let t = TcpPacket::new(&pkt[40..]).expect("tcp");
        assert_eq!(
            (t.get_source(), t.get_destination(), t.get_sequence()),
            (34001, 8080, 1_590_034_001)
        );
        assert_eq!((t.get_data_offset(), t.get_flags()), (6, TcpFlags::SYN));
        assert_eq!(&pkt[60..64], &[2, 4, 0x05, 0xa0], "MSS 1440");
        let s: Ipv6Addr = CLIENT6.parse().expect("v6");
        let d: Ipv6Addr = SERVER6.parse().expect("v6");
        assert_eq!(t.get_checksum(), tcp::ipv6_checksum(&t, &s, &d));
    }

    #[test]
    fn built_rsts_are_byte_for_byte_what_the_kernel_sent() {
        // The RSTs that closed the half-open connections (the server's syn-recv entry went away).
        let v4 = build_rst(ip(CLIENT4), ip(SERVER4), 33001, 8080, 1_590_033_002, 0).expect("v4");
        assert_eq!(v4, get("v4-rst-out"));
        let t = TcpPacket::new(&v4[20..]).expect("tcp");
        assert_eq!((t.get_flags(), t.get_data_offset()), (TcpFlags::RST, 5));
        let ip4 = Ipv4Packet::new(&v4).expect("ipv4");
        assert_eq!(ip4.get_checksum(), ipv4::checksum(&ip4));
        assert_eq!(
            t.get_checksum(),
            tcp::ipv4_checksum(&t, &ip4.get_source(), &ip4.get_destination())
        );
        let v6 = build_rst(ip(CLIENT6), ip(SERVER6), 34001, 8080, 1_590_034_002, 99537);
        assert_eq!(v6.expect("v6"), get("v6-rst-out"));
    }

    #[test]
    fn probes_of_one_flow_differ_only_in_ttl_and_probe_ids() {
        let a = lab_probe(33001, SERVER4, 8080, 1);
        let b = Probe {
            ttl: 9,
            seq: a.seq ^ 0x00ff_00ff,
            ip_id: a.ip_id ^ 0x0f0f,
            ..a
        };
        let (pa, pb) = (build_syn(&a).expect("v4"), build_syn(&b).expect("v4"));
        let differ: Vec<usize> = (0..pa.len()).filter(|&i| pa[i] != pb[i]).collect();
        // IP-ID, TTL, IP checksum, TCP sequence number, TCP checksum.
        let allowed = [4, 5, 8, 10, 11, 24, 25, 26, 27, 36, 37];
        assert!(differ.iter().all(|i| allowed.contains(i)), "{differ:?}");
        let a6 = lab_probe(34001, SERVER6, 8080, 1);
        let b6 = Probe {
            ttl: 9,
            seq: a6.seq + 7,
            ..a6
        };
        let (pa, pb) = (build_syn(&a6).expect("v6"), build_syn(&b6).expect("v6"));
        let differ: Vec<usize> = (0..pa.len()).filter(|&i| pa[i] != pb[i]).collect();
        let allowed = [7, 44, 45, 46, 47, 56, 57];
        assert!(differ.iter().all(|i| allowed.contains(i)), "{differ:?}");
    }

    #[test]
    fn building_needs_one_family_and_masks_the_flow_label() {
        let mut p = lab_probe(33001, SERVER4, 8080, 64);
        p.dst = ip(SERVER6);
        assert_eq!(build_syn(&p), None);
        assert_eq!(build_rst(ip(CLIENT6), ip(SERVER4), 1, 2, 3, 0), None);
        let mut p6 = lab_probe(34001, SERVER6, 8080, 64);
        p6.flow_label = u32::MAX;
        let pkt = build_syn(&p6).expect("v6");
        assert_eq!(&pkt[..4], &[0x60, 0x0f, 0xff, 0xff]);
    }

    /// Every captured answer, its sender and what it says about which probe.
    fn expected() -> Vec<(&'static str, &'static str, Probe, ReplyKind)> {
        use ReplyKind::*;
        vec![
            (
                "v4-synack",
                SERVER4,
                lab_probe(33001, SERVER4, 8080, 64),
                SynAck,
            ),
            ("v4-rst", SERVER4, lab_probe(33002, SERVER4, 8081, 64), Rst),
            (
                "v4-unreach-admin",
                SERVER4,
                lab_probe(33003, SERVER4, 8082, 64),
                Unreachable { code: 13 },
            ),
            (
                "v4-time-exceeded",
                ROUTER4,
                lab_probe(33004, SERVER4, 8080, 1),
                TimeExceeded,
            ),
            (
                "v4-unreach-net",
                ROUTER4,
                lab_probe(33005, "198.18.200.1", 8080, 64),
                Unreachable { code: 0 },
            ),
            (
                "v4-unreach-host",
                ROUTER4,
                lab_probe(33006, "198.18.1.99", 8080, 64),
                Unreachable { code: 1 },
            ),
            (
                "v4-time-exceeded-ipopts",
                ROUTER4,
                lab_probe(33007, SERVER4, 8080, 1),
                TimeExceeded,
            ),
            (
                "v4-frag-needed",
                ROUTER4,
                lab_probe(33008, SERVER4, 8080, 64),
                TooBig { mtu: 1280 },
            ),
            (
                "v4-time-exceeded-rfc4884",
                ROUTER4,
                lab_probe(33004, SERVER4, 8080, 1),
                TimeExceeded,
            ),
            (
                "v6-synack",
                SERVER6,
                lab_probe(34001, SERVER6, 8080, 64),
                SynAck,
            ),
            ("v6-rst", SERVER6, lab_probe(34002, SERVER6, 8081, 64), Rst),
            (
                "v6-unreach-admin",
                SERVER6,
                lab_probe(34003, SERVER6, 8082, 64),
                Unreachable { code: 1 },
            ),
            (
                "v6-time-exceeded",
                ROUTER6,
                lab_probe(34004, SERVER6, 8080, 1),
                TimeExceeded,
            ),
            (
                "v6-unreach-noroute",
                ROUTER6,
                lab_probe(34005, "2001:db8:ff::1", 8080, 64),
                Unreachable { code: 0 },
            ),
            (
                "v6-unreach-addr",
                ROUTER6,
                lab_probe(34006, "2001:db8:1::99", 8080, 64),
                Unreachable { code: 3 },
            ),
            (
                "v6-time-exceeded-dstopt",
                ROUTER6,
                lab_probe(34007, SERVER6, 8080, 1),
                TimeExceeded,
            ),
            (
                "v6-packet-too-big",
                ROUTER6,
                lab_probe(34008, SERVER6, 8080, 64),
                TooBig { mtu: 1280 },
            ),
            (
                "v6-time-exceeded-rfc4884",
                ROUTER6,
                lab_probe(34004, SERVER6, 8080, 1),
                TimeExceeded,
            ),
        ]
    }

    #[test]
    fn every_captured_answer_names_its_probe() {
        for (name, from, probe, kind) in expected() {
            let pkt = get(name);
            let r = parse_any(&pkt).unwrap_or_else(|| panic!("{name}: not parsed"));
            let quoted_id =
                r.kind != ReplyKind::SynAck && r.kind != ReplyKind::Rst && probe.src.is_ipv4();
            let want = Key {
                ip_id: if quoted_id { Some(probe.ip_id) } else { None },
                ..probe.key()
            };
            assert_eq!(
                r,
                Reply {
                    from: ip(from),
                    key: want,
                    kind
                },
                "{name}"
            );
            assert!(r.key.matches(&probe.key()), "{name}");
            let other_seq = Probe {
                seq: probe.seq + 1,
                ..probe
            };
            assert!(!r.key.matches(&other_seq.key()), "{name}: seq ignored");
            let other_port = Probe {
                sport: probe.sport + 1,
                ..probe
            };
            assert!(!r.key.matches(&other_port.key()), "{name}: port ignored");
            if quoted_id {
                let other_id = Probe {
                    ip_id: probe.ip_id + 1,
                    ..probe
                };
                assert!(!r.key.matches(&other_id.key()), "{name}: IP-ID ignored");
            }
            if probe.src.is_ipv6() {
                // What a raw IPv6 socket hands over: no IPv6 header, the sender from recvfrom.
                assert_eq!(
                    parse_v6_raw(&pkt),
                    Some(r),
                    "{name} via the raw-socket path"
                );
            }
        }
    }

    #[test]
    fn our_own_probes_are_not_replies() {
        for name in ["v4-syn-out", "v4-rst-out", "v6-syn-out", "v6-rst-out"] {
            assert_eq!(parse_any(&get(name)), None, "{name}");
        }
    }

    #[test]
    fn ipv4_options_in_the_reply_and_in_the_quote_are_skipped() {
        let pkt = get("v4-time-exceeded-ipopts");
        let outer_hl = usize::from(pkt[0] & 0x0f) * 4;
        assert!(outer_hl > 20, "the router echoed the Record Route option");
        let inner = &pkt[outer_hl + 8..];
        assert_eq!(inner[0], 0x48, "quoted header has 12 bytes of options");
        let r = parse_v4(&pkt).expect("parsed");
        assert_eq!((r.key.sport, r.key.ip_id), (33007, Some(263)));
    }

    #[test]
    fn an_rfc4884_extension_is_not_read_as_quote() {
        for (plain, ext) in [
            ("v4-time-exceeded", "v4-time-exceeded-rfc4884"),
            ("v6-time-exceeded", "v6-time-exceeded-rfc4884"),
        ] {
            let (plain, mut ext) = (get(plain), get(ext));
            let want = parse_any(&plain);
            assert!(want.is_some());
            assert_eq!(parse_any(&ext), want);
            // Whatever the extension holds changes nothing.
            let ext_start = ext.len() - 20 - if ext[0] >> 4 == 6 { 12 } else { 0 };
            for b in &mut ext[ext_start..] {
                *b = 0xff;
            }
            assert_eq!(parse_any(&ext), want);
        }
        let body: Vec<u8> = (0..200u8).collect();
        assert_eq!(
            rfc4884_quote(&body, 128).len(),
            128,
            "declared length honoured"
        );
        assert_eq!(rfc4884_quote(&body, 0).len(), 200, "no length: all of it");
        assert_eq!(
            rfc4884_quote(&body, 8).len(),
            200,
            "non-compliant (< 128): ignored"
        );
        assert_eq!(
            rfc4884_quote(&body, 1020).len(),
            200,
            "longer than the body: ignored"
        );
        // Fragmentation needed with an RFC 4884 length: the MTU is bytes 6-7 alone, and the
        // rest of the 548-byte quote past the declared 128 bytes is then extension space.
        let mut frag = get("v4-frag-needed");
        let want = parse_v4(&frag).expect("parsed");
        frag[20 + 5] = 32;
        assert_eq!(parse_v4(&frag), Some(want));
        assert_eq!(want.kind, ReplyKind::TooBig { mtu: 1280 });
        // A legacy router leaving junk in the unused byte that RFC 4884 calls length.
        let mut junk = get("v4-time-exceeded");
        junk[20 + 5] = 3;
        assert_eq!(parse_v4(&junk), parse_v4(&get("v4-time-exceeded")));
    }

    #[test]
    fn only_eight_bytes_of_quoted_tcp_are_needed() {
        let full = get("v4-time-exceeded");
        let want = parse_v4(&full).expect("parsed");
        let minimal = 20 + 8 + 20 + 8;
        assert_eq!(parse_v4(&full[..minimal]), Some(want));
        assert_eq!(parse_v4(&full[..minimal - 1]), None);
        let full6 = get("v6-time-exceeded");
        let from: Ipv6Addr = ROUTER6.parse().expect("v6");
        let icmp = &full6[40..];
        let want6 = parse_v6_icmp(icmp, from).expect("parsed");
        assert_eq!(parse_v6_icmp(&icmp[..8 + 40 + 8], from), Some(want6));
        assert_eq!(parse_v6_icmp(&icmp[..8 + 40 + 7], from), None);
    }

    #[test]
    fn truncations_never_panic_and_never_change_the_answer() {
        for (name, pkt) in all_fixtures() {
            let full = parse_any(&pkt);
            for n in 0..=pkt.len() {
                let cut = &pkt[..n];
                let r = parse_any(cut);
                assert!(r.is_none() || r == full, "{name} cut at {n}: {r:?}");
                let _ = parse_v4(cut);
                let _ = parse_v6(cut);
                let from = Ipv6Addr::LOCALHOST;
                let _ = parse_v6_icmp(cut, from);
                let _ = parse_v6_tcp(cut, from, from);
                if pkt[0] >> 4 == 6 && n >= 40 {
                    let r = parse_v6_raw(cut);
                    assert!(r.is_none() || r == full, "{name} raw cut at {n}: {r:?}");
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let from = Ipv6Addr::LOCALHOST;
        let all = |b: &[u8]| {
            let _ = parse_v4(b);
            let _ = parse_v6(b);
            let _ = parse_v6_icmp(b, from);
            let _ = parse_v6_tcp(b, from, from);
            if b.len() >= 40 {
                let _ = parse_v6_icmp(&b[40..], from);
                let _ = parse_v6_tcp(&b[40..], from, from);
            }
        };
        // Every byte of every fixture set to values that break lengths and types.
        for (_, pkt) in all_fixtures() {
            for i in 0..pkt.len() {
                for v in [
                    0x00,
                    0xff,
                    0x0f,
                    0xf0,
                    0x45,
                    0x4f,
                    0x60,
                    pkt[i] ^ 0x01,
                    pkt[i] ^ 0x80,
                ] {
                    let mut m = pkt.clone();
                    m[i] = v;
                    all(&m);
                }
            }
        }
        // Random buffers with plausible first bytes (xorshift: deterministic).
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20_000 {
            let len = (next() % 160) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(first) = b.first_mut() {
                *first = [0x45, 0x4f, 0x46, 0x60, 0x03, 0x01, 0x0b][round % 7];
            }
            all(&b);
        }
        // An IPv6 quote whose extension headers chain past the walking limit.
        let mut q = vec![0u8; 8];
        q[0] = 3;
        let mut v6 = vec![0x60, 0, 0, 0, 0, 0, 60, 1];
        v6.extend_from_slice(&[0u8; 32]);
        for _ in 0..12 {
            v6.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        v6.extend_from_slice(&[0u8; 8]);
        q.extend_from_slice(&v6);
        assert_eq!(parse_v6_icmp(&q, from), None);
    }

    #[test]
    fn key_matching_uses_ip_id_only_where_both_know_it() {
        let p = lab_probe(33001, SERVER4, 8080, 64).key();
        let tcp_reply = Key { ip_id: None, ..p };
        assert!(tcp_reply.matches(&p) && p.matches(&tcp_reply));
        let wrong_id = Key {
            ip_id: Some(1),
            ..p
        };
        assert!(!wrong_id.matches(&p));
        assert!(!Key {
            dst: ip(SERVER6),
            ..p
        }
        .matches(&p));
    }

    #[test]
    fn unreachable_codes_have_names() {
        assert_eq!(
            unreachable_name(false, 13),
            "communication administratively prohibited"
        );
        assert_eq!(unreachable_name(true, 1), "administratively prohibited");
        assert_eq!(unreachable_name(true, 3), "address unreachable");
        assert_eq!(unreachable_name(false, 200), "unreachable (unknown code)");
    }
}

#[cfg(test)]
mod record_route_tests {
    use super::*;

    #[test]
    fn record_route_is_inserted_and_read_back() {
        let p = Probe {
            src: "198.18.20.10".parse().expect("test fixture"),
            dst: "198.18.30.10".parse().expect("test fixture"),
            sport: 33000,
            dport: 8080,
            ttl: 16,
            seq: 7,
            ip_id: 9,
            flow_label: 0,
        };
        let syn = build_syn(&p).expect("test fixture");
        let rr = with_record_route(&syn).expect("test fixture");
        assert_eq!(rr.len(), syn.len() + 40);
        assert_eq!(rr[0], 0x4f);
        let ip = pnet_packet::ipv4::Ipv4Packet::new(&rr).expect("test fixture");
        assert_eq!(ipv4::checksum(&ip), ip.get_checksum());
        assert_eq!(record_route(&rr), Some(vec![]));
        // The TCP segment is untouched (its checksum does not cover IP options).
        assert_eq!(&rr[60..], &syn[20..]);
        assert!(with_record_route(&rr).is_none(), "options already present");
        // Two routers recorded.
        let mut two = rr.clone();
        two[22] = 12;
        two[23..27].copy_from_slice(&[198, 18, 22, 1]);
        two[27..31].copy_from_slice(&[198, 18, 24, 1]);
        assert_eq!(
            record_route(&two),
            Some(vec![
                Ipv4Addr::new(198, 18, 22, 1),
                Ipv4Addr::new(198, 18, 24, 1)
            ])
        );
        for n in 0..two.len() {
            let _ = record_route(&two[..n]);
        }
        assert!(record_route(&syn).is_none());
    }
}
