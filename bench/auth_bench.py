#!/usr/bin/env python3
"""Sender authentication cost, in one run:

1. SMTP intake: N 4-KiB messages, each signed by dkimpy (RSA 2048), sent
   with smtplib over BENCH_SESSIONS sequential SMTP sessions to qmail-smtpd
   under tcpserver on loopback (each message through qmail-queue, fsync'd),
   with control/authpolicy "off" and then "annotate" (SPF at MAIL, DKIM,
   DMARC and the Authentication-Results field at the end of DATA). The DNS
   records come from a dnslib server on a loopback address (spf_dns, as the
   tests use). The two settings take turns BENCH_ROUNDS times, each with
   its own tcpserver; prints messages/s of each and the ratio, and the
   server-side CPU per message (tcpserver, qmail-smtpd and qmail-queue,
   from getrusage of the reaped tcpserver), which unlike messages/s does
   not depend on what else the machine is doing.
2. Signing: bench/dkim_bench.py's measurement (qmail-remote with signing
   off, RSA, Ed25519, both, and OpenDKIM signing the same message), with
   BENCH_SIGN_MESSAGES messages.

Run as root (the DNS server binds port 53 of a 127.x address). Environment:
SQ_BIN, BENCH_MESSAGES (default 400), BENCH_SESSIONS (default 8),
BENCH_ROUNDS (default 3), BENCH_SIGN_MESSAGES (default 200), BENCH_DIR.
"""
import base64
import resource
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "Integration"))
sys.path.insert(0, HERE)
import dkim_bench  # noqa: E402
import spf_dns  # noqa: E402
from smtp_helpers import TcpServer  # noqa: E402

N = int(os.environ.get("BENCH_MESSAGES", "400"))
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SIGN_N = int(os.environ.get("BENCH_SIGN_MESSAGES", "200"))
BIN = os.path.abspath(os.environ.get("SQ_BIN", os.path.join(HERE, "..", ".build", "release")))
WORK = os.environ.get("BENCH_DIR", "/var/tmp")
MESSAGE = (b"From: Joe <joe@example.org>\r\nTo: ann@ours.example\r\nSubject: bench\r\n"
           b"Date: Thu, 1 Jan 2026 00:00:00 +0000\r\nMessage-ID: <bench@example.org>\r\n\r\n"
           + (b"x" * 63 + b"\r\n") * 64)


class Home:
    def __init__(self, path):
        self.path = path
        self.env = dict(os.environ, QMAIL_HOME=path)

    def bin(self, name):
        return os.path.join(self.path, "bin", name)


def signed_message(tmp):
    key = os.path.join(tmp, "rsa.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
                   check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    m = os.path.join(tmp, "m")
    with open(m, "wb") as f:
        f.write(MESSAGE)
    r = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "..", "Tests", "Integration", "dkimpy_sign.py"), m,
                        "example.org", "rsa", key, "rsa"], check=True, capture_output=True)
    return r.stdout, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def send(port, message, n):
    per = max(1, n // SESSIONS)
    sent = 0
    t0 = time.perf_counter()
    while sent < n:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
            s.ehlo("client.example.org")
            for _ in range(min(per, n - sent)):
                s.sendmail("joe@example.org", ["ann@ours.example"], message)
                sent += 1
    return n / (time.perf_counter() - t0)


def newest(home):
    todo = os.path.join(home.path, "queue", "todo")
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(todo) for f in fs]
    num = int(os.path.basename(max(files, key=os.path.getmtime)))
    with open(os.path.join(home.path, "queue", "mess", str(num % 23), str(num)), "rb") as f:
        return f.read()


def intake():
    tmp = tempfile.mkdtemp(prefix="auth-bench-", dir=WORK)
    resolver, ip, servers = spf_dns.start()
    try:
        message, record = signed_message(tmp)
        resolver.load({"example.org": [{"TXT": "v=spf1 ip4:127.0.0.0/8 -all"}],
                       "_dmarc.example.org": [{"TXT": "v=DMARC1; p=reject"}],
                       "rsa._domainkey.example.org": [{"TXT": record}]})
        home = Home(os.path.join(tmp, "qmail"))
        subprocess.run([os.path.join(BIN, "qmail-setup"), "--single-user", home.path, "bench.example"], check=True,
                       capture_output=True)
        ctl = os.path.join(home.path, "control")
        with open(os.path.join(ctl, "rcpthosts"), "w") as f:
            f.write("ours.example\n")
        env = dict(home.env, DNSCACHEIP=ip)
        rates = {"off": [], "annotate": []}
        cpu = {"off": [], "annotate": []}

        def children_cpu():
            r = resource.getrusage(resource.RUSAGE_CHILDREN)
            return r.ru_utime + r.ru_stime

        for _ in range(ROUNDS):
            for mode in rates:
                with open(os.path.join(ctl, "authpolicy"), "w") as f:
                    f.write(mode + "\n")
                # tcpserver's CPU and that of the sessions it reaped reach
                # ours when it is reaped: all of its life counts
                c0 = children_cpu()
                srv = TcpServer(home, [home.bin("qmail-smtpd")], env=env)
                try:
                    n = N // ROUNDS
                    rates[mode].append(send(srv.port, message, n))
                finally:
                    srv.stop()
                cpu[mode].append((children_cpu() - c0) / n * 1000)
                last = newest(home)
                has = b"Authentication-Results: bench.example;" in last
                if has != (mode == "annotate") or (has and b"dkim=pass" not in last):
                    raise SystemExit(f"unexpected message for {mode}: {last[:600]!r}")
        median = lambda v: sorted(v)[len(v) // 2]
        return {k: median(v) for k, v in rates.items()}, {k: median(v) for k, v in cpu.items()}, len(message)
    finally:
        spf_dns.stop(servers)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    rates, cpu, size = intake()
    print(f"SMTP intake: {N} messages of {size} bytes (DKIM-signed, RSA 2048), {SESSIONS} sequential sessions, "
          f"qmail-smtpd under tcpserver, DNS (dnslib) on loopback; median of {ROUNDS} rounds")
    print(f"  checks off                 {rates['off']:8.1f} msgs/s   server CPU {cpu['off']:.2f} ms/message")
    print(f"  SPF+DKIM+DMARC (annotate)  {rates['annotate']:8.1f} msgs/s   server CPU {cpu['annotate']:.2f} ms/message")
    print(f"  ratio on/off: {rates['annotate'] / rates['off']:.2f} in msgs/s, "
          f"{cpu['annotate'] / cpu['off']:.2f} in server CPU (+{cpu['annotate'] - cpu['off']:.2f} ms/message)")
    print()
    dkim_bench.report(dkim_bench.measure(SIGN_N), SIGN_N)


if __name__ == "__main__":
    main()
