"""proof/security.py, the security battery: it holds on the built programs,
and it fails (BROKEN, exit 1) when the setup is weakened on purpose.

Run: SQ_BIN=$PWD/.build/release python3 -m pytest -q Tests/Integration/test_proof_security.py
"""
import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import bin_dir

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "proof" / "security.py"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: multi-user qmail home, system accounts, setuid"),
    pytest.mark.skipif(not (bin_dir() / "tlswrap").exists(), reason="the programs are not built"),
]


def battery(only=None, fault=None, backends=False, sslscan=False, timeout=900):
    env = dict(os.environ, SQ_BIN=str(bin_dir()), SQ_SECURITY_BACKENDS="1" if backends else "0",
               SQ_SECURITY_SSLSCAN="1" if sslscan else "0")
    env.pop("SQ_SECURITY_FAULT", None)
    env.pop("SQ_SECURITY_ONLY", None)
    if only:
        env["SQ_SECURITY_ONLY"] = only
    if fault:
        env["SQ_SECURITY_FAULT"] = fault
    p = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def broken(out):
    return [l for l in out.splitlines() if l.startswith("PROMISE ") and ": BROKEN" in l]


def figure(out, name):
    m = re.search(rf"^FIGURE {re.escape(name)}: (.*)$", out, re.M)
    return m and m.group(1)


def test_the_whole_battery_holds():
    """Everything but the sslscan pass (35 s; scripts/proof.sh runs it)."""
    code, out = battery(backends=True)
    assert code == 0, "\n".join(broken(out)) or out[-3000:]
    assert not broken(out)
    assert figure(out, "security probes failed") == "0"
    assert int(figure(out, "security probes")) > 300, figure(out, "security probes")
    for name in ("relay allowed after AUTH (control)", "relay allowed with RELAYCLIENT (control)",
                 "relay refused <victim%other.example@ours.example>",
                 "relay percenthack victim%other.example%ours.example@ours.example is not relayed",
                 "relay percenthack victim%other.example%pct.other.example%ours.example is not relayed",
                 "relay percenthack chains that stay ours accepted (control)",
                 "smuggling no smuggled message reached the next hop",
                 "tricks nothing written outside the expected Maildirs",
                 "tricks no delivery ran as root (root@ goes to the alias account)",
                 "setuid qmail-queue ignores the caller's QMAIL_HOME",
                 "setuid qmail-srs run by nobody signs with the home's secret, not the caller's",
                 "setuid nobody cannot read control/srssecrets",
                 "brute pop3 USER/PASS failure is delayed (>= 1 s)", "brute pop3 USER/PASS one try per connection",
                 "brute smtp auth failures are delayed (>= 1 s)",
                 "root checkpassword refuses a uid-0 account with the right password",
                 "modes qmailctl doctor finds no problem",
                 "tls pop3s (tlswrap) refuses TLS 1.1", "tls smtpd STARTTLS refuses RC4 cipher suites",
                 "tls pop3 STLS refuses client-initiated renegotiation"):
        assert f"PROMISE {name}: ok" in out, name
    assert int(figure(out, "pop3 failed login delay ms")) >= 1000
    assert figure(out, "relay percenthack chains") == "360 probed, 70 accepted as ours, 210 lead elsewhere"
    skipped = figure(out, "security backend probes skipped")
    if skipped is None:
        assert "PROMISE backends ldap login injection *)(uid=* refused: ok" in out
        assert "PROMISE backends mysql delivery injection ' OR '1'='1' delivers nowhere: ok" in out
    else:
        assert "SKIP" in skipped


def test_smuggling_reaches_the_next_hop_as_one_message():
    """Every CR/LF/NUL end-of-data look-alike, by every entrance, through
    qmail-send and qmail-remote to a next hop that ends DATA on any of them."""
    code, out = battery(only="smuggling", timeout=600)
    assert code == 0, "\n".join(broken(out)) or out[-3000:]
    assert "PROMISE smuggling no smuggled message reached the next hop: ok" in out
    for route in ("qmail-smtpd, then a forward", "qmail-inject", "qmail-queue", "QMQP", "QMTP"):
        assert f"PROMISE smuggling {route} \\r.\\r: one message at the next hop, whole: ok" in out, route
    assert "PROMISE smuggling qmail-queue \\r\\n\\x00.\\r\\n: one message at the next hop, whole: ok" in out
    queued = figure(out, "smuggling messages queued")
    assert figure(out, "smuggling messages at the next hop") == f"{queued.split()[0]} for {queued.split()[0]} sent"


@pytest.mark.parametrize("fault,only,expect", [
    ("relayclient", "relay", ["relay refused <victim@other.example>", "relay refused after AUTH failure",
                              "relay percenthack victim%other.example%ours.example@ours.example is not relayed"]),
    ("control-writable", "modes", ["modes nothing in the home is writable by group or others",
                                   "modes control/ owned by root, not writable by group or others",
                                   "modes qmailctl doctor finds no problem"]),
    ("weak-ciphers", "tls", ["tls smtpd STARTTLS (RSA certificate) refuses no forward secrecy (RSA key exchange) "
                             "cipher suites", "tls pop3s (tlswrap) refuses CBC-SHA1 only cipher suites",
                             "tls smtpd STARTTLS refuses anonymous cipher suites",
                             "tls pop3 STLS sslscan: only TLS 1.2/1.3 with forward secrecy and AEAD"]),
    ("key-readable", "tls", ["tls servercert.pem (certificate and private key) is not readable or writable by others",
                             "tls qmailctl doctor finds no problem with the certificate and key files"]),
    ("no-fail-delay", "brute", ["brute pop3 USER/PASS failure is delayed (>= 1 s)",
                                "brute smtp auth failures are delayed (>= 1 s)"]),
    ("tricks-leak", "tricks", ["tricks nothing written outside the expected Maildirs"]),
    ("raw-remote", "smuggling", ["smuggling no smuggled message reached the next hop",
                                 "smuggling qmail-queue \\r.\\r: one message at the next hop, whole"]),
])
def test_a_weakened_setup_is_reported_broken(fault, only, expect):
    # sslscan (35 s) only where its verdict is asserted
    code, out = battery(only=only, fault=fault, sslscan=any("sslscan" in e for e in expect))
    assert code == 1, out[-3000:]
    bad = broken(out)
    for name in expect:
        assert any(l.startswith(f"PROMISE {name}") for l in bad), (name, bad, out[-2000:])
    assert figure(out, "security probes failed") == str(len(bad))
    assert f"FAULT INJECTED on purpose: {fault}" in out


def test_harness_errors_exit_2():
    code, out = battery(only="nosuchsection")
    assert code == 2 and "unknown sections" in out
