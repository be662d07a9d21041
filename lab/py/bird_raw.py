# lab/capture-fixtures: talk to BIRD's control socket and save the exact bytes of each reply.
# usage: bird_raw.py SOCKET OUTDIR PREFIX NAME=COMMAND...
#   OUTDIR/PREFIX-hello.txt gets the welcome banner, OUTDIR/PREFIX-NAME.txt the reply to COMMAND.
import re, socket, sys
sock, out, prefix = sys.argv[1:4]
pairs = [a.split("=", 1) for a in sys.argv[4:]]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sock)
buf = b""
END = re.compile(rb"^\d{4} ", re.M)  # a 4-digit code followed by a space ends a reply

def reply():
    global buf
    while True:
        pos = 0
        for line in buf.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            pos += len(line)
            if re.match(rb"\d{4} ", line):
                r, buf = buf[:pos], buf[pos:]
                return r
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("BIRD closed the connection")
        buf += chunk

def save(name, data):
    with open(f"{out}/{prefix}-{name}.txt", "wb") as f:
        f.write(data)

save("hello", reply())
for name, cmd in pairs:
    s.sendall(cmd.encode() + b"\n")
    save(name, reply())
