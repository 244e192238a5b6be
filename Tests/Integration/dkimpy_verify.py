"""Run by Debian's python3 (python3-dkim, python3-nacl): verifies every
DKIM-Signature of a message with dkimpy, taking the keys from a file of
zone lines as `vdkim dns` prints them. Prints one line per signature:
"SELECTOR ALGORITHM pass|fail". Usage: dkimpy_verify.py MESSAGE RECORDS"""
import re
import sys

import dkim


def records(path):
    out = {}
    for line in open(path):
        if " TXT " not in line:
            continue
        name = line.split()[0]
        if not name.endswith("."):
            name += "."
        out[name.encode()] = "".join(re.findall(r'"([^"]*)"', line)).encode()
    return out


def main():
    message = open(sys.argv[1], "rb").read()
    keys = records(sys.argv[2])
    d = dkim.DKIM(message)
    sigs = [h for h in d.headers if h[0].lower() == b"dkim-signature"]
    for i, (_, value) in enumerate(sigs):
        tags = dict((k.strip().decode(), v.strip().decode()) for k, _, v in
                    (t.partition(b"=") for t in value.split(b";") if b"=" in t))
        try:
            ok = d.verify(idx=i, dnsfunc=lambda name, timeout=5: keys.get(name))
        except dkim.DKIMException:
            ok = False
        print(tags.get("s"), tags.get("a"), "pass" if ok else "fail")


main()
