"""qmail-spfquery against the openspf RFC 7208 test suite, each scenario's
zone data served by a real DNS server on loopback (spf_dns)."""
import os
import pathlib
import subprocess
import time

import pytest

import spf_dns

yaml = pytest.importorskip("yaml")

SUITE = pathlib.Path(os.environ.get("SPF_SUITE", "/work/shared/spf/rfc7208-tests.yml"))


def suite_cases():
    if not SUITE.exists():
        return []
    cases = []
    for i, doc in enumerate(yaml.safe_load_all(SUITE.read_text())):
        for name, t in doc["tests"].items():
            cases.append(pytest.param(i, name, t, id=name))
    return cases


DOCS = list(yaml.safe_load_all(SUITE.read_text())) if SUITE.exists() else []


@pytest.fixture(scope="module")
def dns():
    r, ip, servers = spf_dns.start()
    yield r, ip
    spf_dns.stop(servers)


def spfquery(qhome, ip, host, mailfrom, helo, timeout=2):
    p = subprocess.run([qhome.bin("qmail-spfquery"), "-t", str(timeout), "-r", "receiver.example.org",
                        "-i", host, "-s", mailfrom, "-h", helo],
                       env=dict(qhome.env, DNSCACHEIP=ip), capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode().split("\n")


@pytest.mark.parametrize("doc,name,t", suite_cases())
def test_rfc7208_suite(qhome, dns, doc, name, t):
    resolver, ip = dns
    resolver.load(DOCS[doc].get("zonedata"))
    out = spfquery(qhome, ip, t["host"], t.get("mailfrom", ""), t.get("helo", ""))
    allowed = t["result"] if isinstance(t["result"], list) else [t["result"]]
    assert out[0] in allowed, out
    want = t.get("explanation")
    if want and want != "DEFAULT" and out[0] == "fail":
        # The suite writes hex digits of %{ir} in the case the address was given in.
        assert out[1].lower() == want.lower()
