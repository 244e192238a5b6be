"""A DNS server on loopback for the SPF tests, serving openspf-style zonedata.

Zone data is a dict: name -> list of one-key dicts ({"A": ip}, {"MX": [pref,
name]}, {"TXT": str or [str]}, {"SPF": ...}, {"PTR": name}, {"CNAME": name})
or the string "TIMEOUT". Rules of the openspf suite's drivers: SPF data is
also served as TXT unless the name has TXT data ("TXT: NONE" means none);
TIMEOUT makes types with no data at that name go unanswered; names are
case-insensitive. Listens on port 53 of a random 127.x.y.z (needs root), so
programs find it through DNSCACHEIP as qmail-remote does.
"""
import os
import random
import time

import pytest

try:
    from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TXT, A, DNSLabel
    from dnslib.dns import DNSError
    from dnslib.server import BaseResolver, DNSLogger, DNSServer
except ImportError:  # pragma: no cover
    DNSServer = None
    BaseResolver = object


def _norm(name) -> str:
    return str(name).rstrip(".").lower()


def _strings(v):
    if isinstance(v, list):
        return [s.encode() for s in v]
    b = v.encode()
    return [b[i:i + 255] for i in range(0, len(b), 255)] or [b""]


class ZoneResolver(BaseResolver):
    def __init__(self):
        self.zone = {}

    def load(self, zonedata):
        self.zone = {}
        for name, recs in (zonedata or {}).items():
            self.zone[_norm(name)] = recs

    def _data(self, name, rtype):
        recs = self.zone.get(name)
        if recs is None:
            return None, False
        timeout = any(r == "TIMEOUT" for r in recs)
        out = [list(r.values())[0] for r in recs if isinstance(r, dict) and rtype in r]
        if rtype == "TXT":
            if any(v == "NONE" for v in out):
                return [], timeout
            if not out:
                out = [list(r.values())[0] for r in recs if isinstance(r, dict) and "SPF" in r]
        return out, timeout and not out

    def resolve(self, request, handler):
        reply = request.reply()
        reply.header.aa = 1
        qname = request.q.qname
        qtype = QTYPE[request.q.qtype]
        name = b".".join(qname.label).decode("utf-8", "replace").lower()
        for _ in range(10):  # CNAME chain, bounded
            if name not in self.zone:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            cn, _t = self._data(name, "CNAME")
            if cn and qtype != "CNAME":
                reply.add_answer(RR(DNSLabel(name), QTYPE.CNAME, rdata=CNAME(cn[0]), ttl=60))
                name = _norm(cn[0])
                continue
            break
        data, timeout = self._data(name, qtype)
        if timeout:
            raise DNSError("timeout")
        label = DNSLabel(name)
        for v in data or []:
            if qtype == "A":
                reply.add_answer(RR(label, QTYPE.A, rdata=A(v), ttl=60))
            elif qtype == "AAAA":
                reply.add_answer(RR(label, QTYPE.AAAA, rdata=AAAA(v), ttl=60))
            elif qtype == "MX":
                reply.add_answer(RR(label, QTYPE.MX, rdata=MX(v[1], v[0]), ttl=60))
            elif qtype == "PTR":
                reply.add_answer(RR(label, QTYPE.PTR, rdata=PTR(v), ttl=60))
            elif qtype in ("TXT", "SPF"):
                reply.add_answer(RR(label, getattr(QTYPE, qtype), rdata=TXT(_strings(v)), ttl=60))
        return reply


class QuietLogger(DNSLogger):
    def __init__(self):
        super().__init__(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)


def start():
    """(resolver, ip, servers): a UDP+TCP server on ip:53."""
    if DNSServer is None:
        pytest.skip("needs dnslib")
    if os.geteuid() != 0:
        pytest.skip("needs root for port 53 on a loopback address")
    r = ZoneResolver()
    for _ in range(20):
        ip = f"127.{random.randint(20, 250)}.{random.randint(1, 250)}.53"
        try:
            udp = DNSServer(r, address=ip, port=53, logger=QuietLogger())
            tcp = DNSServer(r, address=ip, port=53, tcp=True, logger=QuietLogger())
        except OSError:
            continue
        udp.start_thread()
        tcp.start_thread()
        time.sleep(0.15)
        return r, ip, (udp, tcp)
    pytest.skip("no free loopback address for DNS")


def stop(servers):
    for s in servers:
        s.stop()
