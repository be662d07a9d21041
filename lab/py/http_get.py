# vmlab: exit 0 when GET URL answers 200 within 4 s (http_get in lab/lib/check.sh).
# usage: http_get.py URL
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=4) as r:
    sys.exit(0 if r.status == 200 else 1)
