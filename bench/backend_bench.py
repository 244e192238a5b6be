#!/usr/bin/env python3
"""Logins/s and delivery lookups/s for the LDAP and MySQL backends against
the file backend, on the same accounts.

Makes BENCH_DOMAINS x BENCH_USERS mailboxes with the file backend's admin
commands (sha512-crypt, the cheap scheme, so the backend's cost shows rather
than the hash's; yescrypt is measured too), exports them with vexport into a
private slapd and a private mariadbd (Tests/Integration/backend_servers.py),
and measures per backend:
  - logins/s: checkpassword-* exec'ing /bin/true, one at a time and two at once;
  - delivery lookups/s: vdelivermail for an unknown user of a hosted domain
    with "delete" (exec + lookup, nothing written), and full deliveries/s
    into a Maildir; for ldap/mysql this includes vdelivermail's exec of
    vdelivermail-ldap/-mysql;
  - in-process lookups/s is not measured: every lookup in qmail is a fresh
    process, so the exec and connect are part of the real cost.
Run as root: SQ_BIN=.build/release python3 bench/backend_bench.py
"""
import concurrent.futures
import os
import pathlib
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "Tests" / "Integration"))
import backend_servers as bs  # noqa: E402

DOMAINS = int(os.environ.get("BENCH_DOMAINS", "20"))
USERS = int(os.environ.get("BENCH_USERS", "50"))
N = int(os.environ.get("BENCH_N", "300"))
BIN = os.path.abspath(os.environ.get("SQ_BIN", os.path.join(os.path.dirname(__file__), "..", ".build", "release")))
PROGS = {"file": "checkpassword-file", "ldap": "checkpassword-ldap", "mysql": "checkpassword-mysql"}


class Home:
    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.env = dict(os.environ, QMAIL_HOME=str(path))

    def bin(self, p):
        return str(self.path / "bin" / p)

    def run(self, prog, *args, input=b""):
        r = subprocess.run([self.bin(prog), *args], input=input, env=self.env, capture_output=True)
        if r.returncode != 0:
            sys.exit(f"{prog} {args}: exit {r.returncode}: {r.stderr.decode()}")
        return r

    def control(self, name, text):
        (self.path / "control" / name).write_text(text)


def login(q, prog, user, pw):
    data = user.encode() + b"\0" + pw.encode() + b"\0\0"
    return subprocess.run(["/bin/sh", "-c", 'exec "$0" "$@" 3<&0 </dev/null', q.bin(prog), "/bin/true"],
                          input=data, env=q.env, capture_output=True).returncode


def deliver(q, vuser, local, domain, action):
    env = dict(q.env, HOST=domain, LOCAL=f"{domain}-{local}", EXT=local, SENDER="s@x.example",
               RPLINE="Return-Path: <s@x.example>\n")
    argv = ["setpriv", f"--reuid={vuser.pw_uid}", f"--regid={vuser.pw_gid}", "--clear-groups",
            q.bin("vdelivermail"), "", action]
    return subprocess.run(argv, input=b"Subject: b\n\nbody\n", env=env, capture_output=True).returncode


def rate(fn, items, workers=1):
    t = time.perf_counter()
    if workers == 1:
        codes = [fn(i) for i in items]
    else:
        with concurrent.futures.ThreadPoolExecutor(workers) as ex:
            codes = list(ex.map(fn, items))
    el = time.perf_counter() - t
    bad = [c for c in codes if c != 0]
    if bad:
        sys.exit(f"unexpected exit codes {set(bad)}")
    return len(items) / el


def main():
    if os.geteuid() != 0:
        sys.exit("run as root")
    if bs.missing_binaries():
        sys.exit("missing: " + " ".join(bs.missing_binaries()))
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-bbench-", dir="/var/tmp"))
    base.chmod(0o755)
    name = f"sqbb{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True)
    vuser = pwd.getpwnam(name)
    slapd = mariadb = None
    try:
        r = subprocess.run([os.path.join(BIN, "qmail-setup"), "--single-user", "--programs", BIN,
                            str(base / "qmail"), "bench.example"], capture_output=True)
        if r.returncode != 0:
            sys.exit(r.stderr.decode())
        q = Home(base / "qmail")
        t = time.perf_counter()
        users = []
        for d in range(DOMAINS):
            dom = f"d{d}.example"
            q.run("vadddomain", "-u", name, dom, input=b"pm-pass\n")
            for u in range(USERS):
                scheme = "yescrypt" if u == 0 else "sha512"
                q.run("vadduser", "-s", scheme, f"u{u}@{dom}", input=b"bench-pw\n")
                users.append((f"u{u}", dom))
        print(f"made {len(users)} mailboxes in {DOMAINS} domains in {time.perf_counter() - t:.1f} s")
        ldif = q.run("vexport", "--ldif", bs.BASE_DN).stdout
        sql = q.run("vexport", "--sql").stdout
        certs = bs.make_certs(base / "certs")
        slapd = bs.Slapd(base / "ldap", ldif, certs)
        mariadb = bs.Mariadbd(base / "mysql", sql, certs)
        bs.configure(q, slapd, mariadb, vuser.pw_uid, vuser.pw_gid)
        sha = [u for u in users if u[0] != "u0"]
        yes = [u for u in users if u[0] == "u0"]
        print(f"{'backend':8} {'login/s sha512':>15} {'x2 parallel':>12} {'login/s yescrypt':>17} "
              f"{'lookup/s':>9} {'deliver/s':>10}")
        for backend, prog in PROGS.items():
            q.control("userdirectory", backend + "\n")
            picks = [sha[(i * 7919) % len(sha)] for i in range(N)]
            one = rate(lambda u: login(q, prog, f"{u[0]}@{u[1]}", "bench-pw"), picks)
            two = rate(lambda u: login(q, prog, f"{u[0]}@{u[1]}", "bench-pw"), picks, workers=2)
            ypicks = [yes[i % len(yes)] for i in range(max(20, N // 5))]
            y = rate(lambda u: login(q, prog, f"{u[0]}@{u[1]}", "bench-pw"), ypicks)
            lk = rate(lambda u: deliver(q, vuser, "nosuch" + u[0], u[1], "delete"), picks)
            dl = rate(lambda u: deliver(q, vuser, u[0], u[1], "bounce-no-mailbox"), picks[: N // 2])
            print(f"{backend:8} {one:15.0f} {two:12.0f} {y:17.1f} {lk:9.0f} {dl:10.0f}")
    finally:
        for s in (slapd, mariadb):
            if s:
                s.stop()
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
