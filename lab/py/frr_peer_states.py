# vmlab: "peer state" lines from FRR's `show bgp neighbors json` on stdin
# (frr_peer_states in lab/lib/check.sh); nothing when the input is not JSON.
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    sys.exit(0)
for peer, v in d.items():
    if isinstance(v, dict):
        print(peer, v.get("bgpState", "?"))
