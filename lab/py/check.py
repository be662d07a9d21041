# vmlab: probe checks run in pc1 (lab/vmlab runs them as DIR/probe/check.py, a copy of
# lab/py/check.py).
#
#   check.py syn TIMEOUT LABEL,SRC,DST,DPORT,SPORT ...
#       one raw TCP SYN per flow (fixed 5-tuple, no socket hash: forwarded like
#       a traceroute probe), resent every TIMEOUT/3 s; prints "LABEL synack",
#       "LABEL rst", "LABEL ack" or "LABEL timeout". Exit 0 when every flow got
#       a SYN-ACK. The ISN is a function of the ports: when srv1 still holds a
#       half-open connection for the 4-tuple (pc1's RST lost, e.g. through the
#       blackholed gateway: IPv6 RSTs do not follow the SYN's path), the SYN is
#       a retransmission and gets a SYN-ACK again instead of a bare ACK.
#   check.py connect TIMEOUT LABEL,SRC,DST,PORT ...
#       one TCP connect per item; prints "LABEL open", "LABEL refused",
#       "LABEL icmp TYPE CODE" (from the socket error queue), "LABEL timeout"
#       or "LABEL ERRNO".
import errno
import os
import random
import select
import socket
import struct
import sys
import time

IPV6_CHECKSUM = 7
IP_RECVERR = 11
IPV6_RECVERR = 25


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def tcp_syn(src, dst, sport, dport, v6):
    seq = ((sport << 16) | dport) ^ 0x766D6C62
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    if v6:
        return hdr  # the kernel fills in the checksum (IPV6_CHECKSUM)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(hdr))
    hdr = hdr[:16] + struct.pack("!H", csum(pseudo + hdr)) + hdr[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(hdr), random.getrandbits(16), 0, 64,
                     6, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return ip + hdr


def syn(timeout, specs):
    flows = []
    for spec in specs:
        label, src, dst, dport, sport = spec.split(",")
        v6 = ":" in dst
        if v6:
            src, dst = (socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, a)) for a in (src, dst))
        flows.append((label, src, dst, int(dport), int(sport), v6))
    send4 = recv4 = None
    socks6 = {}
    if any(not f[5] for f in flows):
        send4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        recv4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    for f in flows:
        if f[5] and f[1] not in socks6:
            s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM, 16)
            s.bind((f[1], 0))
            socks6[f[1]] = s
    result = {}
    acked = set()

    def send_all():
        for label, src, dst, dport, sport, v6 in flows:
            if label in result:
                continue
            pkt = tcp_syn(src, dst, sport, dport, v6)
            if v6:
                socks6[src].sendto(pkt, (dst, 0))
            else:
                send4.sendto(pkt, (dst, 0))

    def match(v6, peer, me, tcp):
        if len(tcp) < 14:
            return
        sp, dp = struct.unpack("!HH", tcp[:4])
        flags = tcp[13]
        for label, src, dst, dport, sport, fv6 in flows:
            if fv6 == v6 and label not in result and peer == dst and sp == dport and dp == sport \
                    and (me is None or me == src):
                if flags & 0x12 == 0x12:
                    result[label] = "synack"
                elif flags & 0x04:
                    result[label] = "rst"
                elif flags & 0x10:
                    acked.add(label)  # half-open on srv1: keep waiting for a SYN-ACK

    end = time.monotonic() + timeout
    resend = timeout / 3
    next_send = 0.0
    rlist = [s for s in [recv4] + list(socks6.values()) if s is not None]
    while len(result) < len(flows):
        now = time.monotonic()
        if now >= end:
            break
        if now >= next_send:
            send_all()
            next_send = now + resend
        ready, _, _ = select.select(rlist, [], [], max(0.0, min(end, next_send) - now))
        for s in ready:
            data, addr = s.recvfrom(65535)
            if s is recv4:
                ihl = (data[0] & 0x0F) * 4
                match(False, socket.inet_ntoa(data[12:16]), socket.inet_ntoa(data[16:20]), data[ihl:])
            else:
                match(True, addr[0].split("%")[0], None, data)
    ok = True
    for f in flows:
        r = result.get(f[0], "ack" if f[0] in acked else "timeout")
        ok = ok and r == "synack"
        print(f[0], r)
    return 0 if ok else 1


def connect(timeout, specs):
    for spec in specs:
        label, src, dst, port = spec.split(",")
        v6 = ":" in dst
        s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if v6:
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        else:
            s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        s.bind((src, 0))
        s.settimeout(timeout)
        try:
            s.connect((dst, int(port)))
            res = "open"
        except socket.timeout:
            res = "timeout"
        except ConnectionRefusedError:
            res = "refused"
        except OSError as e:
            res = errno.errorcode.get(e.errno, str(e.errno))
            try:
                _, anc, _, _ = s.recvmsg(1, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
                for level, typ, data in anc:
                    if (level, typ) in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)):
                        _, origin, itype, icode = struct.unpack("=IBBB", data[:7])
                        res = "icmp %d %d" % (itype, icode)
            except OSError:
                pass
        s.close()
        print(label, res)
    return 0


if __name__ == "__main__":
    cmd, tmo, rest = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
    sys.exit(syn(tmo, rest) if cmd == "syn" else connect(tmo, rest))
