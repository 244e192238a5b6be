#!/usr/bin/env python3
"""DKIM signing cost: qmail-remote sending N 4-KiB messages (each from a
file, as qmail-rspawn gives it the queue file) to an SMTP sink on loopback,
with signing off (no control/dkim), then with RSA only, Ed25519 only and
both keys; and, beside it, OpenDKIM signing the same message with the same
keys (`opendkim -t` in Mode s, one process per message, as qmail-remote
is one process per delivery). Prints ms per message and the ratios.

Environment: SQ_BIN (built programs), BENCH_MESSAGES (default 300),
BENCH_DIR (default /var/tmp).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "Integration"))
from smtp_helpers import FakeSMTP  # noqa: E402

N = int(os.environ.get("BENCH_MESSAGES", "300"))
ROUNDS = 5
BIN = os.path.abspath(os.environ.get("SQ_BIN", os.path.join(HERE, "..", ".build", "release")))
WORK = os.environ.get("BENCH_DIR", "/var/tmp")
MESSAGE = (b"From: Joe <joe@example.org>\nTo: ann@peer.test\nSubject: bench\nDate: Thu, 1 Jan 2026 00:00:00 +0000\n"
           b"Message-ID: <bench@example.org>\n\n" + (b"x" * 63 + b"\n") * 64)


def run_remote(home, env, msgfile, n):
    t0 = time.perf_counter()
    for _ in range(n):
        with open(msgfile, "rb") as f:
            p = subprocess.run([os.path.join(home, "bin", "qmail-remote"), "peer.test", "joe@example.org",
                                "ann@peer.test"], stdin=f, capture_output=True, env=env, timeout=60)
        if not p.stdout.startswith(b"r\0K"):
            raise SystemExit(f"qmail-remote failed: {p.stdout!r}")
    return (time.perf_counter() - t0) / n * 1000


def run_opendkim(conf, msgfile, n):
    exe = shutil.which("opendkim") or "/usr/sbin/opendkim"
    t0 = time.perf_counter()
    for _ in range(n):
        p = subprocess.run([exe, "-x", conf, "-t", msgfile], capture_output=True, timeout=60)
        if b"DKIM-Signature" not in p.stdout:
            raise SystemExit(f"opendkim did not sign: {p.stdout!r} {p.stderr!r}")
    return (time.perf_counter() - t0) / n * 1000


def opendkim_conf(tmp, name, keyfile, selector, algorithm):
    conf = os.path.join(tmp, name)
    with open(conf, "w") as f:
        f.write(f"Mode s\nDomain example.org\nSelector {selector}\nKeyFile {keyfile}\n"
                f"Canonicalization relaxed/relaxed\nSignatureAlgorithm {algorithm}\n"
                "RequireSafeKeys false\nSyslog no\n")
    return conf


def measure(n=N):
    """{configuration: ms per message} for qmail-remote (off, rsa, ed25519,
    both) and, when installed, OpenDKIM signing the same message."""
    tmp = tempfile.mkdtemp(prefix="dkim-bench-", dir=WORK)
    sink = FakeSMTP()
    try:
        home = os.path.join(tmp, "qmail")
        subprocess.run([os.path.join(BIN, "qmail-setup"), "--single-user", home, "bench.example"], check=True,
                       capture_output=True)
        env = dict(os.environ, QMAIL_HOME=home)
        with open(os.path.join(home, "control", "smtproutes"), "w") as f:
            f.write(f":127.0.0.1:{sink.port}\n")
        msgfile = os.path.join(tmp, "message")
        with open(msgfile, "wb") as f:
            f.write(MESSAGE)
        subprocess.run([os.path.join(home, "bin", "vdkim"), "create", "example.org"], env=env, check=True,
                       capture_output=True)
        keydir = os.path.join(home, "control", "dkim", "example.org")
        sign = open(os.path.join(keydir, "sign")).read().split()
        rsa = next(s for s in sign if s.endswith("r"))
        ed = next(s for s in sign if s.endswith("e"))
        dkimdir = os.path.join(home, "control", "dkim")
        # The configurations take turns, ROUNDS times, so that load from
        # other processes falls on all of them alike.
        configs = (("off", None), ("rsa", [rsa]), ("ed25519", [ed]), ("both", [rsa, ed]))
        total = {k: 0.0 for k, _ in configs}
        run_remote(home, env, msgfile, 10)  # warm up
        for _ in range(ROUNDS):
            for label, chosen in configs:
                if chosen is None:
                    os.rename(dkimdir, dkimdir + ".off")
                else:
                    with open(os.path.join(keydir, "sign"), "w") as f:
                        f.write("".join(s + "\n" for s in chosen))
                total[label] += run_remote(home, env, msgfile, n // ROUNDS)
                if chosen is None:
                    os.rename(dkimdir + ".off", dkimdir)
        results = {k: v / ROUNDS for k, v in total.items()}
        have_opendkim = shutil.which("opendkim") or os.path.exists("/usr/sbin/opendkim")
        if have_opendkim:
            msg_crlf = os.path.join(tmp, "message.eml")
            with open(msg_crlf, "wb") as f:
                f.write(MESSAGE.replace(b"\n", b"\r\n"))
            c_rsa = opendkim_conf(tmp, "rsa.conf", os.path.join(keydir, rsa + ".rsa"), rsa, "rsa-sha256")
            c_ed = opendkim_conf(tmp, "ed.conf", os.path.join(keydir, ed + ".ed25519"), ed, "ed25519-sha256")
            run_opendkim(c_rsa, msg_crlf, 5)
            results["opendkim rsa"] = run_opendkim(c_rsa, msg_crlf, n)
            results["opendkim ed25519"] = run_opendkim(c_ed, msg_crlf, n)
        return results
    finally:
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)


def report(results, n=N):
    print(f"{n} messages of {len(MESSAGE)} bytes, qmail-remote to an SMTP sink on loopback, one exec each")
    for k, v in results.items():
        extra = ""
        if not k.startswith("opendkim") and k != "off":
            extra = f"   signing adds {v - results['off']:.2f} ms ({v / results['off']:.2f}x)"
        print(f"  {k:18s} {v:7.2f} ms/message{extra}")
    if any(k.startswith("opendkim") for k in results):
        print("  (opendkim: one `opendkim -t` process per message, signing only, no SMTP)")


def main():
    report(measure())


if __name__ == "__main__":
    main()
