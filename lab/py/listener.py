# vmlab: TCP listener of srv1 (lab/vmlab runs it as DIR/probe/listener.py, a copy of
# lab/py/listener.py).
# usage: listener.py PORT ADDR...   accepts and at once closes every connection.
import select
import socket
import sys

port = int(sys.argv[1])
socks = []
for addr in sys.argv[2:]:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    s.listen(4096)
    s.setblocking(False)
    socks.append(s)
print("listening on", ", ".join(f"[{a}]:{port}" for a in sys.argv[2:]), flush=True)
while True:
    ready, _, _ = select.select(socks, [], [])
    for s in ready:
        for _ in range(256):
            try:
                conn, _ = s.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # ECONNABORTED, EMFILE, ...: keep serving
                break
            try:
                conn.close()
            except OSError:
                pass
