#!/usr/bin/env python3
"""POP3 benchmark: our chain against Dovecot's pop3, same machine, same run.

    tcpserver -> qmail-popup -> checkpassword-file -> qmail-pop3d
    dovecot (Debian dovecot-pop3d), private instance, passwd-file passdb

Both serve a copy of the same Maildir (1,000 messages of 4 KiB) for the same
virtual user whose password is stored with the same hash (SHA512-CRYPT,
"$6$", made once by `openssl passwd -6` and given to both).

Measures
  - sessions/s with 1 and with 4 concurrent clients; a session is
    login (USER/PASS), STAT, UIDL, RETR 10, QUIT;
  - MB/s retrieving all 1,000 messages in one session.
Each figure is the best of --rounds runs of --seconds each (the machine is
shared; the best run is the least disturbed one). Prints the ratios
ours/Dovecot.

Usage (as root: Dovecot and checkpassword switch users):
    swift build -c release   # or at least the programs below
    python3 bench/pop3_bench.py [--bin .build/release] [--seconds 5] [--rounds 3]

Needs from --bin: tcpserver qmail-popup qmail-pop3d qmail-setup vadddomain
vadduser checkpassword-file. Installs dovecot-pop3d with apt-get when missing
(only here, not in scripts/deps.sh). Nothing is left running afterwards.
"""
import argparse
import multiprocessing
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
USER_LOCAL, DOMAIN, PASSWORD = "box", "bench.example", "bench-secret"
LOGIN = f"{USER_LOCAL}@{DOMAIN}"
ACCOUNT = "sqpopbench"  # the system account that owns both mailboxes


def sh(*args, **kw):
    r = subprocess.run([str(a) for a in args], **kw)
    if r.returncode != 0:
        err = r.stderr.decode(errors="replace") if isinstance(r.stderr, bytes) else ""
        sys.exit(f"{' '.join(map(str, args))}: exit {r.returncode} {err}")
    return r


def ensure_dovecot():
    if shutil.which("dovecot") and os.path.exists("/usr/lib/dovecot/pop3"):
        return
    print("== installing dovecot-pop3d (benchmark only)", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-qq", "dovecot-pop3d"]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        sh("apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-qq", env=env)
        sh(*cmd, env=env, stdout=subprocess.DEVNULL)
    # a package install may start the system instance; ours is private
    subprocess.run(["doveadm", "stop"], capture_output=True)


def ensure_account():
    """The mailbox owner; True as second value when made here (removed at the end)."""
    try:
        return pwd.getpwnam(ACCOUNT), False
    except KeyError:
        sh("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ACCOUNT)
        return pwd.getpwnam(ACCOUNT), True


def make_messages(n, size=4096):
    msgs = []
    for i in range(n):
        head = (f"Return-Path: <sender@example.com>\nDelivered-To: {LOGIN}\nFrom: sender@example.com\n"
                f"To: {LOGIN}\nSubject: benchmark message {i}\nMessage-ID: <{i}.bench@example.com>\n\n")
        line = f"line of message {i}: " + "abcdefghijklmnopqrstuvwxyz0123456789" * 2 + "\n"
        body = ""
        while len(head) + len(body) + len(line) <= size - 1:
            body += line
        text = head + body
        text += "." * (size - 1 - len(text)) + "\n"
        msgs.append(text.encode())
    return msgs


def fill_maildir(md: pathlib.Path, msgs, owner):
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    for i, m in enumerate(msgs):
        p = md / "cur" / f"{1700000000 + i}.M{i}P1.bench.example:2,S"
        p.write_bytes(m)
        os.utime(p, (1700000000 + i, 1700000000 + i))
    for p in [md, *md.rglob("*")]:
        os.chown(p, owner.pw_uid, owner.pw_gid)


def let_through(path: pathlib.Path):
    for p in [path, *path.parents]:
        if str(p) in ("/", "/tmp"):
            break
        p.chmod(p.stat().st_mode | 0o011)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, what):
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                sys.exit(f"{what} exited early")
            time.sleep(0.05)
    sys.exit(f"{what} did not start listening on {port}")


# ---------------------------------------------------------------- servers

def start_ours(bindir: pathlib.Path, work: pathlib.Path, msgs, owner, hashed):
    for prog in ("tcpserver", "qmail-popup", "qmail-pop3d", "qmail-setup", "vadddomain", "vadduser",
                 "checkpassword-file"):
        if not (bindir / prog).exists():
            sys.exit(f"missing {bindir / prog}: build it (swift build -c release) first")
    home = work / "qmail"
    sh(bindir / "qmail-setup", "--single-user", home, "mail." + DOMAIN, capture_output=True)
    let_through(home)
    env = dict(os.environ, QMAIL_HOME=str(home))
    sh(home / "bin" / "vadddomain", "-u", ACCOUNT, DOMAIN, input=b"postmaster-pw\n", env=env, capture_output=True)
    sh(home / "bin" / "vadduser", "-e", hashed, LOGIN, input=b"", env=env, capture_output=True)
    md = home / "domains" / DOMAIN / USER_LOCAL / "Maildir"
    fill_maildir(md, msgs, owner)
    port = free_port()
    proc = subprocess.Popen([home / "bin" / "tcpserver", "-R", "-H", "-l0", "-c", "40", "127.0.0.1", str(port),
                             home / "bin" / "qmail-popup", "mail." + DOMAIN, home / "bin" / "checkpassword-file",
                             home / "bin" / "qmail-pop3d", "Maildir"],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(work / "tcpserver.log", "wb"))
    wait_port(port, proc, "tcpserver")
    return proc, port


DOVECOT_CONF = """\
protocols = pop3
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:~/Maildir
pop3_uidl_format = %f
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""


def start_dovecot(work: pathlib.Path, msgs, owner, hashed):
    d = work / "dovecot"
    for sub in ("run", "state"):
        (d / sub).mkdir(parents=True)
    home = d / "home"
    fill_maildir(home / "Maildir", msgs, owner)
    os.chown(home, owner.pw_uid, owner.pw_gid)
    let_through(home)
    (d / "passwd").write_text(f"{LOGIN}:{{SHA512-CRYPT}}{hashed}::::::\n")
    port = free_port()
    conf = d / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(d=d, uid=owner.pw_uid, gid=owner.pw_gid, home=home, port=port))
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=open(d / "stderr.log", "wb"))
    wait_port(port, proc, "dovecot")
    return proc, port


# ---------------------------------------------------------------- client

class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.line()

    def _more(self):
        chunk = self.s.recv(262144)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, c):
        self.s.sendall(c + b"\r\n")
        r = self.line()
        if not r.startswith(b"+OK"):
            raise RuntimeError(f"{c!r}: {r!r}")
        return r

    def multi(self, c):
        self.cmd(c)
        end = self.buf.find(b"\r\n.\r\n")
        while end < 0 and not self.buf.startswith(b".\r\n"):
            self._more()
            end = self.buf.find(b"\r\n.\r\n")
        if self.buf.startswith(b".\r\n"):
            self.buf = self.buf[3:]
            return 0
        n = end + 2
        self.buf = self.buf[end + 5:]
        return n

    def close(self):
        self.s.close()


def session(port):
    c = Conn(port)
    c.cmd(b"USER " + LOGIN.encode())
    c.cmd(b"PASS " + PASSWORD.encode())
    c.cmd(b"STAT")
    c.multi(b"UIDL")
    c.multi(b"RETR 10")
    c.cmd(b"QUIT")
    c.close()


def worker(port, seconds, q):
    n = 0
    end = time.time() + seconds
    while time.time() < end:
        session(port)
        n += 1
    q.put(n)


def sessions_per_second(port, clients, seconds):
    q = multiprocessing.Queue()
    t0 = time.time()
    procs = [multiprocessing.Process(target=worker, args=(port, seconds, q)) for _ in range(clients)]
    for p in procs:
        p.start()
    total = sum(q.get() for _ in procs)
    for p in procs:
        p.join()
    return total / (time.time() - t0)


def retrieve_all(port, count):
    c = Conn(port)
    c.cmd(b"USER " + LOGIN.encode())
    c.cmd(b"PASS " + PASSWORD.encode())
    t0 = time.time()
    total = 0
    for i in range(1, count + 1):
        total += c.multi(b"RETR %d" % i)
    dt = time.time() - t0
    c.cmd(b"QUIT")
    c.close()
    return total / dt / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=str(ROOT / ".build" / "release"))
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=1000)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: Dovecot and checkpassword-file switch to the mailbox account")
    ensure_dovecot()
    owner, made = ensure_account()
    hashed = subprocess.run(["openssl", "passwd", "-6", PASSWORD], capture_output=True, text=True,
                            check=True).stdout.strip()
    msgs = make_messages(a.messages)
    work = pathlib.Path(tempfile.mkdtemp(prefix="pop3bench-"))
    procs = []
    try:
        ours, oport = start_ours(pathlib.Path(a.bin).resolve(), work, msgs, owner, hashed)
        procs.append(ours)
        dove, dport = start_dovecot(work, msgs, owner, hashed)
        procs.append(dove)
        servers = {"ours": oport, "dovecot": dport}
        for port in servers.values():  # warm up: caches, Dovecot's index
            session(port)
            retrieve_all(port, a.messages)
        results = {k: {"s1": 0.0, "s4": 0.0, "mbs": 0.0} for k in servers}
        for r in range(a.rounds):
            for name, port in servers.items():
                results[name]["s1"] = max(results[name]["s1"], sessions_per_second(port, 1, a.seconds))
                results[name]["s4"] = max(results[name]["s4"], sessions_per_second(port, 4, a.seconds))
                results[name]["mbs"] = max(results[name]["mbs"], retrieve_all(port, a.messages))
            print(f"round {r + 1}/{a.rounds} done", flush=True)
        o, d = results["ours"], results["dovecot"]
        print(f"\nPOP3 benchmark: {a.messages} messages of 4 KiB, best of {a.rounds} x {a.seconds:g} s, "
              f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print(f"{'':34}{'ours':>10}{'dovecot':>10}{'ours/dovecot':>14}")
        for key, label in (("s1", "sessions/s, 1 client"), ("s4", "sessions/s, 4 clients"),
                           ("mbs", "MB/s, RETR all messages")):
            print(f"{label:34}{o[key]:10.1f}{d[key]:10.1f}{o[key] / d[key]:14.2f}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)
        if made:
            subprocess.run(["userdel", ACCOUNT], capture_output=True)


if __name__ == "__main__":
    main()
