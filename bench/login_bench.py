#!/usr/bin/env python3
"""Logins per second through checkpassword-file, and vdelivermail's lookup
time, for 10,000 users in 1,000 domains (BENCH_DOMAINS x BENCH_USERS).

Builds the tree with the admin commands: vadddomain for every domain, then
each domain's vpasswd gets its users (half yescrypt, half sha512-crypt, the
hashes made by vadduser) and vmkpasswd compiles its cdb. Then measures:
  - checkpassword-file logins/s per scheme, one at a time and with two
    logins at once (the machine's two cores), exec'ing /bin/true;
  - failed logins/s for unknown users (they pay one dummy yescrypt);
  - vdelivermail: run time for an unknown user with "delete" (exec + both
    cdb lookups, nothing written) beside its usage exit (exec only); the
    difference is the lookup; and a full delivery into a Maildir.
Run as root (it makes a system account for the mailboxes and removes it).
"""
import concurrent.futures
import os
import pwd
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

DOMAINS = int(os.environ.get("BENCH_DOMAINS", "1000"))
USERS = int(os.environ.get("BENCH_USERS", "10"))
LOGINS = int(os.environ.get("BENCH_LOGINS", "300"))
BIN = os.path.abspath(os.environ.get("SQ_BIN", os.path.join(os.path.dirname(__file__), "..", ".build", "release")))
WORK = os.environ.get("BENCH_DIR", "/var/tmp")
PASSWORD = b"bench-password"


def run(home, prog, *args, input=b"", check=True):
    env = dict(os.environ, QMAIL_HOME=home)
    r = subprocess.run([os.path.join(home, "bin", prog), *args], input=input, env=env, capture_output=True)
    if check and r.returncode != 0:
        sys.exit(f"{prog} {args}: exit {r.returncode}: {r.stderr.decode()}")
    return r


def login(home, user, password=PASSWORD):
    env = dict(os.environ, QMAIL_HOME=home)
    data = user.encode() + b"\0" + password + b"\0\0"
    r = subprocess.run(["/bin/sh", "-c", 'exec "$0" "$@" 3<&0 </dev/null', os.path.join(home, "bin", "checkpassword-file"),
                        "/bin/true"], input=data, env=env, capture_output=True)
    return r.returncode


def rate(fn, items, workers=1):
    t = time.perf_counter()
    if workers == 1:
        codes = [fn(i) for i in items]
    else:
        with concurrent.futures.ThreadPoolExecutor(workers) as ex:
            codes = list(ex.map(fn, items))
    el = time.perf_counter() - t
    return len(items) / el, codes


def build(home, account):
    t = time.perf_counter()
    for d in range(DOMAINS):
        run(home, "vadddomain", "-u", account, f"d{d}.example", "pm-password")
        if d and d % 200 == 0:
            print(f"  {d} domains ({time.perf_counter() - t:.0f} s)", flush=True)
    run(home, "vadduser", "-s", "yescrypt", "seed-y@d0.example", "-", input=PASSWORD + b"\n")
    run(home, "vadduser", "-s", "sha512", "seed-s@d0.example", "-", input=PASSWORD + b"\n")
    hashes = {s: run(home, "vuserinfo", "-p", f"seed-{s[0]}@d0.example").stdout.decode().strip()
              for s in ("yescrypt", "sha512")}
    pw = pwd.getpwnam(account)
    for d in range(DOMAINS):
        ddir = os.path.join(home, "domains", f"d{d}.example")
        lines = []
        for u in range(USERS):
            scheme = "yescrypt" if u % 2 == 0 else "sha512"
            udir = os.path.join(ddir, f"u{u}")
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(udir, "Maildir", sub), mode=0o700, exist_ok=True)
            lines.append(f"u{u}:{hashes[scheme]}:0:0::{udir}:NOQUOTA\n")
        with open(os.path.join(ddir, "vpasswd"), "a") as f:
            f.write("".join(lines))
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", f"{pw.pw_uid}:{pw.pw_gid}", ddir], check=True)
        run(home, "vmkpasswd", f"d{d}.example")
    print(f"  tree built: {DOMAINS} domains, {DOMAINS * USERS} users in {time.perf_counter() - t:.0f} s", flush=True)


def vdeliver(home, user, domain, action, message=b"Subject: bench\n\nhello\n"):
    env = dict(os.environ, QMAIL_HOME=home, HOST=domain, EXT=user, LOCAL=f"{domain}-{user}", SENDER="s@x.example",
               RPLINE="Return-Path: <s@x.example>\n")
    argv = [os.path.join(home, "bin", "vdelivermail"), "", action] if action else [os.path.join(home, "bin", "vdelivermail")]
    return subprocess.run(argv, input=message, env=env, capture_output=True).returncode


def timed(fn, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main():
    base = tempfile.mkdtemp(prefix="login-bench.", dir=WORK)
    os.chmod(base, 0o755)
    home = os.path.join(base, "qmail")
    account = None
    try:
        subprocess.run([os.path.join(BIN, "qmail-setup"), "--single-user", home, "bench.example"], check=True,
                       capture_output=True)
        if os.geteuid() == 0:
            account = f"sqbench{os.getpid()}"
            subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", account], check=True)
        else:
            account = pwd.getpwuid(os.geteuid()).pw_name
        print(f"building {DOMAINS} domains x {USERS} users under {home}", flush=True)
        build(home, account)
        rng = random.Random(1)
        results = {}
        for scheme, parity in (("yescrypt", 0), ("sha512-crypt", 1)):
            users = [f"u{rng.randrange(parity, USERS, 2)}@d{rng.randrange(DOMAINS)}.example" for _ in range(LOGINS)]
            r1, codes = rate(lambda u: login(home, u), users)
            assert set(codes) == {0}, codes
            r2, codes = rate(lambda u: login(home, u), users, workers=2)
            assert set(codes) == {0}, codes
            results[scheme] = (r1, r2)
        unknown = [f"nobody{i}@d{rng.randrange(DOMAINS)}.example" for i in range(LOGINS)]
        ru, codes = rate(lambda u: login(home, u), unknown)
        assert set(codes) == {1}, codes
        wrong = [f"u0@d{rng.randrange(DOMAINS)}.example" for _ in range(LOGINS)]
        rw, codes = rate(lambda u: login(home, u, b"wrong"), wrong)
        assert set(codes) == {1}, codes

        n = max(50, LOGINS // 2)
        exec_only = timed(lambda: vdeliver(home, "x", "d0.example", None), n)
        lookup = timed(lambda: vdeliver(home, f"nobody{rng.randrange(1000)}", f"d{rng.randrange(DOMAINS)}.example", "delete"), n)
        deliver = timed(lambda: vdeliver(home, f"u{rng.randrange(USERS)}", f"d{rng.randrange(DOMAINS)}.example",
                                         "bounce-no-mailbox"), n)

        print()
        print(f"checkpassword-file, {DOMAINS * USERS} users in {DOMAINS} domains ({BIN}):")
        for scheme, (r1, r2) in results.items():
            print(f"  {scheme:13s} {r1:7.1f} logins/s one at a time, {r2:7.1f} logins/s two at a time")
        print(f"  unknown user  {ru:7.1f} failures/s (dummy yescrypt)")
        print(f"  wrong passwd  {rw:7.1f} failures/s (yescrypt user)")
        print("vdelivermail (median per run):")
        print(f"  exec + usage exit           {exec_only:6.2f} ms")
        print(f"  exec + lookup (unknown, delete) {lookup:6.2f} ms  -> lookup about {max(0.0, lookup - exec_only):.2f} ms")
        print(f"  exec + lookup + Maildir delivery (fsync) {deliver:6.2f} ms")
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if account and os.geteuid() == 0:
            subprocess.run(["userdel", account], check=False)


if __name__ == "__main__":
    main()
