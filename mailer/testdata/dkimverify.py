"""Verify every DKIM-Signature of messages with dkimpy, an implementation
independent of the Go code that signs them.

The messages come on stdin, separated by NUL bytes (which a message never
holds). Arguments are NAME=TXT pairs, e.g.
s1._domainkey.example.com="v=DKIM1; k=rsa; p=...", served in place of DNS.
Prints one line per message: "pass SELECTOR" or "fail SELECTOR" for each of
its signatures, in order, or "none" when it has none.
"""
import sys

import dkim

records = {}
for arg in sys.argv[1:]:
    name, _, txt = arg.partition("=")
    records[name.rstrip(".").lower()] = txt.encode()


def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return records.get(name.rstrip(".").lower())


for msg in sys.stdin.buffer.read().split(b"\0"):
    if not msg:
        continue
    d = dkim.DKIM(msg, minkey=1024)
    n = sum(1 for k, _ in d.headers if k.lower() == b"dkim-signature")
    out = []
    for idx in range(n):
        try:
            good = d.verify(idx=idx, dnsfunc=dnsfunc)
        except dkim.DKIMException as e:
            good = False
            print("message %d signature %d: %s" % (len(out), idx, e), file=sys.stderr)
        sel = d.selector.decode() if d.selector else "?"
        out.append(("pass " if good else "fail ") + sel)
    print(" ".join(out) if out else "none")
