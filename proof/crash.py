#!/usr/bin/env python3
"""Crash injection through the whole system (issue 10, item 2).

Mail runs end to end while components die by SIGKILL:

  SMTP client -> tcpserver -> qmail-smtpd -> qmail-queue -> queue/
  qmail-send -> qmail-lspawn -> qmail-local -> vdelivermail -> Maildir
  Maildir -> qmail-pop3d <- checkpassword-file <- qmail-popup <- tcpserver
  <- POP3 client (UIDL, RETR, DELE, QUIT)

Every message carries a unique id in a header and in its body, plus a
checksum of its body. A kill schedule spread over the run hits qmail-send
(alone, and with all its children), qmail-lspawn, qmail-clean, qmail-local,
vdelivermail, qmail-smtpd (mid-DATA and right after the final dot),
qmail-queue (mid-DATA and right after the dot), qmail-pop3d mid-session and
both tcpservers. A supervisor restarts what died, as daemontools would.
Afterwards the queue drains, the mailboxes are emptied over POP3 and the
harness proves:

  - every message acknowledged with 250 reached its mailbox (lost = 0); one
    in ten goes to two mailboxes and each must get it; one in twenty goes to
    an unknown user of the domain, from a local mailbox, and its bounce must
    come back there;
  - no deliverable message bounces (a crash is a temporary failure);
  - every copy is whole and in the right mailbox;
  - duplicates only where qmail allows them: a delivery killed after it wrote
    the message but before it reported success is retried (qmail delivers
    at least once, never at most once), so at most one duplicate per
    delivery in progress at a kill (concurrencylocal, 10, plus one bounce,
    for a kill that takes qmail-send down; 1 for a killed qmail-local or
    vdelivermail), and only with such a kill during the message's life;
  - qmail-send's log accounts for every delivered copy (its qmail-queue pid
    has an "info msg N" line, and N a "starting delivery" line), as qmail's
    line-by-line log does after any crash;
  - a transmission cut before the final dot is never delivered, and no 250
    follows a qmail-queue killed mid-DATA;
  - a POP3 session killed (or dropped) before QUIT deletes nothing, and the
    final POP3 sweep empties every mailbox;
  - the queue drains and is clean at the end (todo, info, local, remote,
    bounce empty; what a killed qmail-queue leaves in mess/, intd/ and pid/
    is removed by qmail-send's 36-hour cleanup, proved by ageing the files).
    Maildir tmp/ files of killed deliveries are only counted (maildir(5)
    readers remove them after 36 hours).

The system runs as in scripts/run.sh for root: qmail-setup --single-user
--owner ACCOUNT (a temporary account), every service under setpriv as that
account, SMTP and POP3 under tcpserver on 127.0.0.1.

Output: progress, then `FIGURE name: value` and `PROMISE name: ok|BROKEN ...`
lines. Exit 0 when every promise holds, 1 when one breaks, 2 when the
harness could not run. Runs as root (it makes a mailbox account).

Environment: SQ_BIN (programs; default .build/release), PROOF_CRASH_MESSAGES
(1000), PROOF_CRASH_KILLS (30), PROOF_CRASH_USERS (8), PROOF_CRASH_SENDERS (4 SMTP
client threads), PROOF_CRASH_SEED (random by default; printed), PROOF_CRASH_TIME
(bound on the whole run in seconds, 600), PROOF_CRASH_POP3_DROP (share of POP3
sessions the client drops after DELE without QUIT, 0.1), PROOF_CRASH_KEEP=1
(keep the temporary home for inspection). Fault injection, for the tests
that prove the harness can fail: PROOF_CRASH_QMAILQUEUE (a QMAILQUEUE program
for qmail-smtpd), PROOF_CRASH_POP3D (a program run instead of qmail-pop3d),
PROOF_CRASH_FAULT=double-delivery (every message delivered twice).
PROOF_CRASH_FILTER=ADDRESS puts qmail-filter in the path (QMAILQUEUE, with
control/clamd naming the clamd at ADDRESS): the "qmail-queue" kills then hit
qmail-filter, between qmail-smtpd and the real qmail-queue.
"""
import hashlib
import os
import pathlib
import poplib
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOMAIN = "crash.test"
BOUNCE_BOX = "u0"
FQDN = "mail.crash.test"
PASSWORD = "crash-pw-7"
# qmail-queue's own Received line names its pid, which qmail-send logs as qp
QP_RE = re.compile(rb"^Received: \(qmail (\d+) invoked ", re.M)
INFO_RE = re.compile(r"^info msg (\d+): bytes \d+ from <[^>]*> qp (\d+) uid \d+$", re.M)
START_RE = re.compile(r"^starting delivery \d+: msg (\d+) to local ", re.M)

# Kinds of kill. The SMTP and POP3 kinds are done by the client thread that
# owns the session (it knows the moment: mid-DATA, right after the dot,
# after DELE); the others by the killer thread, on whatever runs then.
SERVER_KINDS = ["qmail-send", "qmail-send+children", "qmail-lspawn", "qmail-clean", "qmail-local",
                "vdelivermail", "tcpserver smtp", "tcpserver pop3"]
SMTP_KINDS = ["qmail-smtpd mid-DATA", "qmail-smtpd after dot", "qmail-queue mid-DATA", "qmail-queue after dot"]
POP_KINDS = ["qmail-pop3d mid-session"]
ALL_KINDS = SERVER_KINDS + SMTP_KINDS + POP_KINDS
# Kills that can interrupt a local delivery after it wrote the message.
DELIVERY_KINDS = {"qmail-send", "qmail-send+children", "qmail-lspawn", "qmail-clean", "qmail-local", "vdelivermail"}


def env_int(name, default):
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


class HarnessError(Exception):
    """The harness itself could not run (exit 2)."""


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------- processes

def proc_table():
    """[(pid, ppid, exe)] of every process we can see."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{d}/exe")
            with open(f"/proc/{d}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if fields[0] == b"Z":
            continue
        out.append((int(d), int(fields[1]), exe))
    return out


def proc_env_has(pid, needle: bytes):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return needle in f.read().split(b"\0")
    except OSError:
        return False


def kill9(pid):
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


# ---------------------------------------------------------------- messages

def make_message(mid, rcpt, rng):
    """The message, LF line ends; its body checks itself (sha of the payload)."""
    size = rng.choice([1, 2, 5, 10, 20, 40, 80, 300])
    lines = []
    for i in range(size):
        tail = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 ") for _ in range(rng.randint(10, 60)))
        lead = "." if i % 17 == 3 else ""   # dot-stuffing on the way in and out
        lines.append(f"{lead}{mid} {i} {tail}")
    payload = ("\n".join(lines) + "\n").encode()
    sha = hashlib.sha256(payload).hexdigest()
    head = (f"From: crash sender <sender@remote.test>\nTo: {rcpt}\nSubject: crash {mid}\n"
            f"Message-ID: <{mid}@remote.test>\nX-Crash-Id: {mid}\n\n").encode()
    body = f"crash-begin {mid}\n".encode() + payload + f"crash-end {mid} {sha}\n".encode()
    return head + body


BOUNCE_MARK = b"\n--- Below this line is a copy of the message.\n\n"


def parse_delivered(data: bytes):
    """(id, intact, bounce) of a delivered copy; id None when it carries
    none. A bounce (qmail's format) is judged by the copy it carries."""
    head = data.partition(b"\n\n")[0]
    if BOUNCE_MARK in data and b"\nX-Crash-Id:" not in b"\n" + head:
        mid, intact, _ = parse_delivered(data.split(BOUNCE_MARK, 1)[1])
        return mid, intact, True
    mid = None
    head, _, body = data.partition(b"\n\n")
    for line in head.split(b"\n"):
        if line.lower().startswith(b"x-crash-id:"):
            mid = line.split(b":", 1)[1].strip().decode(errors="replace")
    if mid is None:
        return None, False, False
    begin = f"crash-begin {mid}\n".encode()
    if not body.startswith(begin):
        return mid, False, False
    rest = body[len(begin):]
    end = rest.rfind(f"crash-end {mid} ".encode())
    if end < 0:
        return mid, False, False
    payload, trailer = rest[:end], rest[end:]
    sha = trailer.split()[2].decode(errors="replace") if len(trailer.split()) >= 3 else ""
    return mid, hashlib.sha256(payload).hexdigest() == sha and trailer.endswith(b"\n"), False


def smtp_data(msg: bytes):
    out = []
    for line in msg.split(b"\n")[:-1]:
        out.append((b"." + line if line.startswith(b".") else line) + b"\r\n")
    return b"".join(out)


class Reply(Exception):
    pass


class SmtpConn:
    def __init__(self, port, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.greeted = False
        self.lport = self.sock.getsockname()[1]

    def reply(self):
        """(code, text) of one (possibly multi-line) reply; raises Reply on EOF."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise Reply("connection closed")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]) if line[:3].isdigit() else 0, b"\n".join(lines)

    def cmd(self, line):
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------- the harness

class Harness:
    def __init__(self):
        self.total = env_int("PROOF_CRASH_MESSAGES", 1000)
        self.want_kills = env_int("PROOF_CRASH_KILLS", 30)
        self.nusers = max(1, env_int("PROOF_CRASH_USERS", 8))
        self.nsenders = max(1, env_int("PROOF_CRASH_SENDERS", 4))
        self.seed = env_int("PROOF_CRASH_SEED", int(time.time() * 1000) % 1000000)
        self.time_limit = env_int("PROOF_CRASH_TIME", 600)
        self.fault_queue = os.environ.get("PROOF_CRASH_QMAILQUEUE", "")
        self.filter_clamd = os.environ.get("PROOF_CRASH_FILTER", "")
        self.fault_pop3d = os.environ.get("PROOF_CRASH_POP3D", "")
        self.fault = os.environ.get("PROOF_CRASH_FAULT", "")
        try:
            self.pop_drop = float(os.environ.get("PROOF_CRASH_POP3_DROP", "0.1"))
        except ValueError:
            self.pop_drop = 0.1
        self.keep = os.environ.get("PROOF_CRASH_KEEP") == "1"
        env_bin = os.environ.get("SQ_BIN")
        self.sqbin = pathlib.Path(env_bin).resolve() if env_bin else ROOT / ".build" / "release"
        self.rng = random.Random(self.seed)
        self.t0 = time.time()
        self.deadline = self.t0 + self.time_limit
        self.lock = threading.Lock()
        self.stop_all = threading.Event()
        self.base = None
        self.account = None
        self.users = [f"u{i}" for i in range(self.nusers)]
        self.pgids = set()
        self.procs = {}           # service -> Popen
        self.ports = {}
        self.restarts = {"qmail-send": 0, "tcpserver smtp": 0, "tcpserver pop3": 0}
        # message bookkeeping
        self.next_id = 0
        self.ids = []             # (id, user)
        self.user_of = {}         # id -> the mailboxes it (or its bounce) must reach
        self.rcpt_of = {}         # id -> its envelope recipients
        self.sent_at = {}         # id -> when its final dot went out
        self.bounce_ids = set()   # ids sent to an unknown user: a bounce must come back
        self.bounces = {}         # id -> {(user, uidl): intact} of bounces carrying it
        self.state = {}           # id -> "acked" | "unacked" | "cut" | "unsent"
        self.queue_killed_mid_data = {}   # id -> reply code
        self.finished = 0
        # senders take ids below the gate; the killer moves it, so that
        # kills fall among the traffic rather than after it
        self.gate = self.total // (self.want_kills + 1) if self.want_kills > 0 else self.total
        self.copies = {}          # id -> {(user, uidl): intact}
        self.misplaced = []       # (id, user)
        self.copy_qp = {}         # (user, uidl) -> qmail-queue's pid from its Received line
        self.unknown = []
        self.fetched = set()      # (user, uidl) retrieved over POP3
        self.left_in_maildir = 0
        self.pending_keep = {}    # (user, uidl) -> session: DELE'd in an aborted session
        self.pop_sessions = 0
        self.pop_aborted = 0
        self.pop_errors = []       # during the run (kills break sessions)
        self.final_pop_errors = [] # in the final sweep, with nothing killed
        # kills
        self.kills = {k: 0 for k in ALL_KINDS}
        self.kill_times = []      # (time, kind)
        self.requests = {k: 0 for k in SMTP_KINDS + POP_KINDS}
        self.smtp_errors = []

    # ------------------------------------------------------------ setup

    def elapsed(self):
        return time.time() - self.t0

    def bin(self, name):
        return str(self.home / "bin" / name)

    def run(self, *argv, input=None, check=True):
        r = subprocess.run([str(a) for a in argv], input=input, env=self.env, capture_output=True, timeout=120)
        if check and r.returncode != 0:
            raise HarnessError(f"{argv[0]} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
        return r

    def setup(self):
        if os.geteuid() != 0:
            raise HarnessError("must run as root (it makes a mailbox account)")
        need = ["qmail-setup", "qmail-send", "qmail-smtpd", "qmail-queue", "qmail-pop3d", "qmail-popup",
                "checkpassword-file", "vadddomain", "vadduser", "vdelivermail", "tcpserver", "qmail-local"]
        missing = [n for n in need if not (self.sqbin / n).exists()]
        if missing:
            raise HarnessError(f"not built in {self.sqbin}: {' '.join(missing)}")
        for tool in ("useradd", "userdel", "setpriv"):
            if not shutil.which(tool):
                raise HarnessError(f"{tool} not found")
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="sq-crash-", dir="/var/tmp"))
        self.base.chmod(0o755)
        # Mailboxes never belong to root (see scripts/run.sh): run as root,
        # the whole system runs as one unprivileged account that owns the home.
        name = f"sqcr{os.getpid() % 100000}"
        r = subprocess.run(["useradd", "-r", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name],
                           capture_output=True)
        if r.returncode != 0:
            raise HarnessError(f"useradd failed: {r.stderr.decode(errors='replace')}")
        self.account = name
        pw = pwd.getpwnam(name)
        self.runas = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
        # qmail-setup --owner gives the programs to the account: private
        # copies, linked into the home, keep SQ_BIN's files untouched.
        progs = self.base / "programs"
        progs.mkdir()
        for n in need + ["qmail-start", "qmail-lspawn", "qmail-rspawn", "qmail-clean", "qmail-getpw",
                         "qmail-newu", "qmail-inject", "qmail-remote"] + (["qmail-filter"] if self.filter_clamd else []):
            if (self.sqbin / n).exists() and not (progs / n).exists():
                shutil.copy2(self.sqbin / n, progs / n)
        self.home = self.base / "qmail"
        r = subprocess.run([str(self.sqbin / "qmail-setup"), "--single-user", "--owner", name, "--link",
                            "--programs", str(progs), str(self.home), FQDN], capture_output=True, timeout=120)
        if r.returncode != 0:
            raise HarnessError(f"qmail-setup failed: {r.stderr.decode(errors='replace')}")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("QMAIL", "PROOF_"))}
        self.env["QMAIL_HOME"] = str(self.home)
        self.run(*self.runas, self.bin("vadddomain"), DOMAIN, input=b"pm-" + PASSWORD.encode() + b"\n")
        for u in self.users:
            # sha512: logins cheap enough for hundreds of POP3 sessions on 2 cores
            self.run(*self.runas, self.bin("vadduser"), "-s", "sha512", f"{u}@{DOMAIN}",
                     input=PASSWORD.encode() + b"\n")
        if self.filter_clamd:
            (self.home / "control" / "clamd").write_text(self.filter_clamd + "\n")
            (self.home / "control" / "filtertimeout").write_text("60\n")
        # Fault injection, for the test that proves the harness can fail.
        for attr, name in (("fault_queue", "fault-qmail-queue"), ("fault_pop3d", "fault-pop3d")):
            if getattr(self, attr):
                dst = self.base / name   # where the account can run it
                shutil.copy(getattr(self, attr), dst)
                dst.chmod(0o755)
                setattr(self, attr, str(dst))
        if self.fault == "double-delivery":
            dq = self.home / "domains" / DOMAIN / ".qmail-default"
            st = dq.stat()
            dq.write_bytes(dq.read_bytes() * 2)
            os.chown(dq, st.st_uid, st.st_gid)
        elif self.fault:
            raise HarnessError(f"unknown PROOF_CRASH_FAULT {self.fault!r} (known: double-delivery)")
        self.logdir = self.base / "logs"
        self.logdir.mkdir()

    def maildir(self, user):
        return self.home / "domains" / DOMAIN / user / "Maildir"

    # ------------------------------------------------------------ services

    def spawn(self, argv, logname, env=None, stdout=None):
        logf = open(self.logdir / logname, "ab")
        p = subprocess.Popen(self.runas + argv, cwd="/", stdin=subprocess.DEVNULL, stdout=stdout or logf,
                             stderr=logf, env=env or self.env, start_new_session=True)
        logf.close()
        self.pgids.add(p.pid)
        return p

    def start_send(self):
        self.procs["qmail-send"] = self.spawn([str(self.home / "rc")], "send.log")
        self.send_started = time.time()

    def tcpserver_argv(self, port, service):
        if service == "tcpserver smtp":
            prog = [self.bin("qmail-smtpd")]
        else:
            prog = [self.bin("qmail-popup"), FQDN, self.bin("checkpassword-file"),
                    self.fault_pop3d or self.bin("qmail-pop3d"), "Maildir"]
        return [self.bin("tcpserver"), "-1", "-R", "-H", "-l", FQDN, "-c", "60", "127.0.0.1", str(port), *prog]

    def start_tcp(self, service):
        env = dict(self.env)
        if service == "tcpserver smtp" and self.fault_queue:
            env["QMAILQUEUE"] = self.fault_queue
        elif service == "tcpserver smtp" and self.filter_clamd:
            env["QMAILQUEUE"] = self.bin("qmail-filter")
        port = self.ports.get(service, 0)
        p = self.spawn(self.tcpserver_argv(port, service), service.replace(" ", "-") + ".log", env=env,
                       stdout=subprocess.PIPE)
        line = p.stdout.readline()
        p.stdout.close()
        if not line.strip().isdigit():
            p.wait(timeout=10)
            return None
        self.ports[service] = int(line)
        self.procs[service] = p
        return p

    def start_services(self):
        self.start_send()
        for s in ("tcpserver smtp", "tcpserver pop3"):
            if not self.start_tcp(s):
                raise HarnessError(f"{s} did not start: {(self.logdir / (s.replace(' ', '-') + '.log')).read_text()}")
        end = time.time() + 30
        while "status: local" not in self.send_log():
            if time.time() > end:
                raise HarnessError("qmail-send did not start: " + self.send_log())
            time.sleep(0.05)
        # rc execs qmail-start, which becomes qmail-send: the kills rely on it
        try:
            exe = os.readlink(f"/proc/{self.procs['qmail-send'].pid}/exe")
        except OSError:
            exe = "?"
        if exe != self.bin("qmail-send"):
            raise HarnessError(f"HOME/rc's process runs {exe}, not qmail-send")

    def send_log(self):
        try:
            return (self.logdir / "send.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def supervise(self):
        """Restarts a service that died, as supervise(8) would (1 s later
        for a service that keeps failing)."""
        while not self.stop_all.is_set():
            for service, p in list(self.procs.items()):
                if p.poll() is None:
                    continue
                with self.lock:
                    if self.stop_all.is_set():
                        return
                    self.restarts[service] += 1
                if service == "qmail-send":
                    self.start_send()
                elif not self.start_tcp(service):
                    time.sleep(1)
            time.sleep(0.05)

    def ours(self, name):
        """pids of live processes running HOME/bin/name."""
        path = self.bin(name)
        return [pid for pid, _, exe in proc_table() if exe == path]

    # ------------------------------------------------------------ SMTP clients

    def take_request(self, kinds):
        with self.lock:
            for k in kinds:
                if self.requests[k] > 0:
                    self.requests[k] -= 1
                    return k
        return None

    def give_back(self, kind):
        """A requested kill found no target: the next session tries again."""
        with self.lock:
            self.requests[kind] += 1

    def count_kill(self, kind):
        with self.lock:
            self.kills[kind] += 1
            self.kill_times.append((time.time(), kind))

    def smtpd_of(self, conn):
        needle = f"TCPREMOTEPORT={conn.lport}".encode()
        for pid in self.ours("qmail-smtpd"):
            if proc_env_has(pid, needle):
                return pid
        return None

    def queue_child(self, smtpd, wait=2.0):
        end = time.time() + wait
        while time.time() < end:
            for pid, ppid, exe in proc_table():
                if ppid == smtpd and os.path.basename(exe).startswith(("qmail-queue", "qmail-filter")):
                    return pid
            time.sleep(0.002)
        return None

    def next_batch(self, rng):
        while True:
            with self.lock:
                if self.next_id < self.gate or self.next_id >= self.total:
                    break
            if self.stop_all.is_set() or time.time() > self.deadline:
                return []
            time.sleep(0.01)
        with self.lock:
            n = min(rng.randint(1, 5), self.total - self.next_id)
            batch = []
            for _ in range(n):
                mid = f"c{self.seed}x{self.next_id}"
                user = self.users[self.next_id % len(self.users)]
                if self.next_id % 20 == 7:
                    # to nobody, from a mailbox of ours: its bounce comes home
                    self.bounce_ids.add(mid)
                    user = BOUNCE_BOX
                    self.rcpt_of[mid] = [f"gone{self.next_id}@{DOMAIN}"]
                    boxes = [user]
                elif self.next_id % 10 == 3 and len(self.users) > 1:
                    # two recipients: each must get it, whatever a kill does between them
                    boxes = [user, self.users[(self.next_id + 1) % len(self.users)]]
                    self.rcpt_of[mid] = [f"{u}@{DOMAIN}" for u in boxes]
                else:
                    boxes = [user]
                    self.rcpt_of[mid] = [f"{user}@{DOMAIN}"]
                self.next_id += 1
                self.ids.append((mid, user))
                self.user_of[mid] = boxes
                self.state[mid] = "unsent"
                batch.append((mid, user))
            return batch

    def smtp_worker(self, wid):
        rng = random.Random(self.seed * 100 + wid)
        retry = []
        while not self.stop_all.is_set() and time.time() < self.deadline:
            batch = retry or self.next_batch(rng)
            retry = []
            if not batch:
                return
            try:
                conn = self.connect("tcpserver smtp")
            except OSError:
                retry = batch
                time.sleep(0.1)
                continue
            try:
                for i, (mid, user) in enumerate(batch):
                    done = self.send_one(conn, mid, user, rng)
                    if not done:
                        # the session broke before this message's body went out: resend the rest
                        retry = [b for b in batch[i:] if self.state[b[0]] == "unsent"]
                        break
                else:
                    try:
                        conn.cmd(b"QUIT")
                    except (OSError, Reply):
                        pass
            except (OSError, Reply) as e:
                retry = [b for b in batch if self.state[b[0]] == "unsent"]
                self.smtp_errors.append(f"{type(e).__name__}: {e}")
            finally:
                conn.close()
            with self.lock:
                self.finished = sum(1 for s in self.state.values() if s != "unsent")

    def connect(self, service):
        end = time.time() + 15
        while True:
            try:
                return SmtpConn(self.ports[service]) if service == "tcpserver smtp" else \
                    poplib.POP3("127.0.0.1", self.ports[service], timeout=30)
            except OSError:
                if time.time() > end:
                    raise
                time.sleep(0.05)

    def send_one(self, conn, mid, user, rng):
        """Sends one message on conn. False when the session broke before
        the body was sent (the message may be sent again); True otherwise,
        with self.state[mid] saying what happened."""
        try:
            if not conn.greeted:
                code, _ = conn.reply()
                if code != 220:
                    return False
                code, _ = conn.cmd(b"HELO client.crash.test")
                if code != 250:
                    return False
                conn.greeted = True
            sender = f"{BOUNCE_BOX}@{DOMAIN}" if mid in self.bounce_ids else "sender@remote.test"
            code, _ = conn.cmd(f"MAIL FROM:<{sender}>".encode())
            if code != 250:
                return False
            for rcpt in self.rcpt_of[mid]:
                code, _ = conn.cmd(f"RCPT TO:<{rcpt}>".encode())
                if code != 250:
                    conn.cmd(b"RSET")
                    return False
            code, _ = conn.cmd(b"DATA")
            if code != 354:
                return False
        except (OSError, Reply):
            return False
        kind = self.take_request(SMTP_KINDS)
        data = smtp_data(make_message(mid, ", ".join(self.rcpt_of[mid]), rng))
        half = len(data) // 2
        try:
            conn.sock.sendall(data[:half])
            if kind == "qmail-smtpd mid-DATA":
                pid = self.smtpd_of(conn)
                if pid and kill9(pid):
                    self.count_kill(kind)
                    with self.lock:
                        self.state[mid] = "cut"
                    raise Reply("killed mid-DATA")
                self.give_back(kind)
                kind = None
            elif kind == "qmail-queue mid-DATA":
                smtpd = self.smtpd_of(conn)
                q = self.queue_child(smtpd) if smtpd else None
                if q and kill9(q):
                    self.count_kill(kind)
                    self.queue_killed_mid_data[mid] = None
                else:
                    self.give_back(kind)
                kind = None
            conn.sock.sendall(data[half:] + b".\r\n")
        except (OSError, Reply):
            with self.lock:
                self.state[mid] = "cut"
            raise
        with self.lock:
            self.state[mid] = "unacked"
            self.sent_at[mid] = time.time()
        if kind == "qmail-smtpd after dot":
            pid = self.smtpd_of(conn)
            if pid and kill9(pid):
                self.count_kill(kind)
            else:
                self.give_back(kind)
        elif kind == "qmail-queue after dot":
            smtpd = self.smtpd_of(conn)
            q = self.queue_child(smtpd, wait=0.5) if smtpd else None
            if q and kill9(q):
                self.count_kill(kind)
            else:
                self.give_back(kind)
        code, _ = conn.reply()
        if mid in self.queue_killed_mid_data:
            self.queue_killed_mid_data[mid] = code
        if code == 250:
            with self.lock:
                self.state[mid] = "acked"
        return True

    # ------------------------------------------------------------ POP3 clients

    def record_copy(self, user, uidl, data, via_pop):
        mid, intact, bounce = parse_delivered(data)
        m = QP_RE.search(data.partition(b"\n\n")[0])
        with self.lock:
            if m:
                self.copy_qp[(user, uidl)] = int(m.group(1))
            if via_pop:
                self.fetched.add((user, uidl))
            if mid is None:
                self.unknown.append((user, uidl))
                return
            (self.bounces if bounce else self.copies).setdefault(mid, {})[(user, uidl)] = intact
            expect = self.user_of.get(mid)
            if expect is not None and user not in expect:
                self.misplaced.append((mid, user))

    def pop_session(self, user, rng, final=False):
        """One POP3 session; returns the number of messages it listed (None on failure)."""
        try:
            c = self.connect("tcpserver pop3")
        except OSError as e:
            (self.final_pop_errors if final else self.pop_errors).append(f"connect: {e}")
            return None
        aborted = False
        deleted = []
        try:
            c.user(f"{user}@{DOMAIN}")
            c.pass_(PASSWORD)
            with self.lock:
                self.pop_sessions += 1
            listing = [l.split() for l in c.uidl()[1]]
            with self.lock:
                for _, u in listing:
                    self.pending_keep.pop((user, u.decode()), None)
            kind = None if final or not listing else self.take_request(POP_KINDS)
            drop = not final and rng.random() < self.pop_drop
            for num, u in listing[: (len(listing) if final else 30)]:
                lines = c.retr(int(num))[1]
                uidl = u.decode()
                self.record_copy(user, uidl, b"\n".join(lines) + b"\n", True)
                c.dele(int(num))
                deleted.append(uidl)
            if kind:
                needle = f"TCPREMOTEPORT={c.sock.getsockname()[1]}".encode()
                pids = [p for p in self.ours("qmail-pop3d") if proc_env_has(p, needle)]
                if pids and kill9(pids[0]):
                    self.count_kill(kind)
                    aborted = True
                else:
                    self.give_back(kind)
            if drop:
                aborted = True
            if not aborted:
                c.quit()
            return len(listing)
        except (OSError, poplib.error_proto, EOFError) as e:
            aborted = True
            (self.final_pop_errors if final else self.pop_errors).append(f"{user}: {e}")
            return None
        finally:
            if aborted:
                with self.lock:
                    self.pop_aborted += 1
                    for u in deleted:
                        self.pending_keep[(user, u)] = self.pop_sessions
            try:
                c.close()
            except (OSError, AttributeError):
                pass

    def pop_worker(self, wid, nworkers, stop):
        rng = random.Random(self.seed * 1000 + wid)
        mine = self.users[wid::nworkers]
        while not stop.is_set() and time.time() < self.deadline:
            for u in mine:
                self.pop_session(u, rng)
                stop.wait(0.3)

    # ------------------------------------------------------------ the killer

    def server_kill(self, kind):
        """Kills one process of `kind` found within 5 s; True when one was killed."""
        end = time.time() + 5
        while time.time() < end and not self.stop_all.is_set():
            if kind == "qmail-send":
                p = self.procs["qmail-send"]
                if p.poll() is None and time.time() - self.send_started > 0.3 and kill9(p.pid):
                    return True
            elif kind == "qmail-send+children":
                p = self.procs["qmail-send"]
                if p.poll() is None:
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                        return True
                    except ProcessLookupError:
                        pass
            elif kind.startswith("tcpserver"):
                p = self.procs[kind]
                if p.poll() is None and kill9(p.pid):
                    return True
            else:
                pids = self.ours(kind)
                if pids and kill9(self.rng.choice(pids)):
                    return True
            time.sleep(0.003 if kind in ("qmail-local", "vdelivermail") else 0.05)
        return False

    def killer(self):
        kinds = []
        while len(kinds) < self.want_kills:
            block = list(ALL_KINDS)
            self.rng.shuffle(block)
            kinds += block
        kinds = kinds[: self.want_kills]
        with self.lock:
            self.gate = self.total // (len(kinds) + 1) if kinds else self.total
        for j, kind in enumerate(kinds):
            threshold = (j + 1) * self.total // (len(kinds) + 1)
            while self.finished < threshold and not self.stop_all.is_set() and time.time() < self.deadline:
                if not any(t.is_alive() for t in self.senders):
                    break
                time.sleep(0.02)
            # traffic flows up to the next kill's threshold while this one happens
            with self.lock:
                self.gate = (j + 2) * self.total // (len(kinds) + 1) if j + 1 < len(kinds) else self.total
            if self.stop_all.is_set() or time.time() > self.deadline:
                return
            before = self.kills[kind]
            if kind in SERVER_KINDS:
                if self.server_kill(kind):
                    self.count_kill(kind)
                else:
                    self.missed.append(kind)
            else:
                with self.lock:
                    self.requests[kind] += 1
                end = time.time() + 20
                while self.kills[kind] == before and time.time() < end and not self.stop_all.is_set():
                    if kind in SMTP_KINDS and not any(t.is_alive() for t in self.senders):
                        break
                    with self.lock:
                        # a sender must reach the moment: let one more message through
                        self.gate = max(self.gate, min(self.total, self.next_id + 1))
                    time.sleep(0.02)
                with self.lock:
                    if self.kills[kind] == before and self.requests[kind] > 0:
                        self.requests[kind] -= 1
                        self.missed.append(kind)
            log(f"  [{self.elapsed():5.1f}s] kill {j + 1}/{len(kinds)}: {kind}"
                f"{'' if self.kills[kind] > before else ' (no target found)'}")

    # ------------------------------------------------------------ phases

    def queue_files(self, sub):
        base = self.home / "queue" / sub
        return [p for p in base.rglob("*") if p.is_file()] if base.is_dir() else []

    def queue_busy(self):
        return any(self.queue_files(d) for d in ("todo", "info", "local", "remote", "bounce"))

    def run_phases(self):
        self.setup()
        log(f"crash: {self.total} messages to {self.nusers} mailboxes, {self.want_kills} kills, seed {self.seed}"
            f" (PROOF_CRASH_SEED={self.seed} repeats the schedule), home {self.home}")
        if self.fault_queue:
            log(f"crash: FAULT INJECTION: qmail-smtpd uses QMAILQUEUE={self.fault_queue}")
        if self.filter_clamd:
            log(f"crash: qmail-filter in the path (QMAILQUEUE), clamd at {self.filter_clamd}")
        if self.fault_pop3d:
            log(f"crash: FAULT INJECTION: POP3 runs {self.fault_pop3d} instead of qmail-pop3d")
        if self.fault:
            log(f"crash: FAULT INJECTION: {self.fault}")
        self.start_services()
        self.missed = []
        self.supervisor = threading.Thread(target=self.supervise, daemon=True)
        self.supervisor.start()
        pop_stop = threading.Event()
        pops = [threading.Thread(target=self.pop_worker, args=(i, 2, pop_stop), daemon=True) for i in range(2)]
        self.senders = [threading.Thread(target=self.smtp_worker, args=(i,), daemon=True)
                        for i in range(self.nsenders)]
        for t in self.senders + pops:
            t.start()
        kt = threading.Thread(target=self.killer, daemon=True)
        kt.start()
        last = 0
        while any(t.is_alive() for t in self.senders):
            time.sleep(0.5)
            if time.time() - last > 10:
                last = time.time()
                log(f"  [{self.elapsed():5.1f}s] sent {self.finished}/{self.total}, kills {sum(self.kills.values())}")
        kt.join(timeout=max(1, self.deadline - time.time()))
        log(f"  [{self.elapsed():5.1f}s] sending done; draining the queue")
        # Drain: SIGALRM makes qmail-send retry deferred deliveries now.
        drain_end = min(self.deadline, time.time() + 300)
        while time.time() < drain_end:
            busy = self.queue_busy() or self.ours("qmail-local") or self.ours("vdelivermail")
            if not busy:
                break
            p = self.procs["qmail-send"]
            # not before it set its handler: SIGALRM's default ends a process
            if p.poll() is None and time.time() - self.send_started > 2:
                try:
                    p.send_signal(signal.SIGALRM)
                except ProcessLookupError:
                    pass
            time.sleep(1)
        self.drained = not self.queue_busy()
        pop_stop.set()
        for t in pops:
            t.join(timeout=60)
        log(f"  [{self.elapsed():5.1f}s] queue {'drained' if self.drained else 'NOT drained'}; emptying mailboxes over POP3")
        rng = random.Random(self.seed)
        for u in self.users:
            for _ in range(5):
                n = self.pop_session(u, rng, final=True)
                if n == 0:
                    break
        with self.lock:
            self.stop_all.set()
        self.supervisor.join(timeout=30)
        self.stop_services()
        self.scan_maildirs()
        self.check_queue()

    def stop_services(self):
        for name, p in self.procs.items():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name, p in self.procs.items():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill9(p.pid)
        end = time.time() + 20
        while time.time() < end and any(exe.startswith(str(self.home / "bin") + "/") for _, _, exe in proc_table()):
            time.sleep(0.1)

    def scan_maildirs(self):
        self.tmp_orphans = 0
        for u in self.users:
            md = self.maildir(u)
            for sub in ("new", "cur"):
                for p in (md / sub).iterdir():
                    self.left_in_maildir += 1
                    self.record_copy(u, p.name.split(":")[0], p.read_bytes(), False)
            self.tmp_orphans += sum(1 for _ in (md / "tmp").iterdir())
        for uidl in list(self.pending_keep):
            user, u = uidl
            md = self.maildir(user)
            if any(p.name.split(":")[0] == u for sub in ("new", "cur") for p in (md / sub).iterdir()):
                self.pending_keep.pop(uidl)

    def check_queue(self):
        """Files left in the queue. What only a killed qmail-queue leaves
        (mess/, intd/, pid/ with no todo or info) is aged 37 hours and
        qmail-send must remove it."""
        self.stuck = {d: len(self.queue_files(d)) for d in ("todo", "info", "local", "remote", "bounce")}
        self.leftovers = {d: len(self.queue_files(d)) for d in ("mess", "intd", "pid")}
        self.leftovers_removed = True
        if any(self.leftovers.values()) and not any(self.stuck.values()):
            old = time.time() - 37 * 3600
            for d in ("mess", "intd", "pid"):
                for p in self.queue_files(d):
                    os.utime(p, (old, old))
            self.start_send()
            end = time.time() + 30
            while any(self.queue_files(d) for d in ("mess", "intd", "pid")) and time.time() < end:
                time.sleep(0.1)
            self.leftovers_removed = not any(self.queue_files(d) for d in ("mess", "intd", "pid"))
            self.stop_services()

    # ------------------------------------------------------------ verdict

    def report(self):
        promises = []

        def promise(name, ok, detail=""):
            promises.append(ok)
            log(f"PROMISE {name}: {'ok' if ok else 'BROKEN ' + detail}")

        states = list(self.state.values())
        acked = [m for m, s in self.state.items() if s == "acked"]
        unacked = [m for m, s in self.state.items() if s == "unacked"]
        cut = [m for m, s in self.state.items() if s == "cut"]
        unsent = [m for m, s in self.state.items() if s == "unsent"]
        def arrivals(m):
            """What must reach a mailbox for m: the message, or for a message to
            an unknown user, its bounce."""
            return self.bounces.get(m, {}) if m in self.bounce_ids else self.copies.get(m, {})

        def per_box(m):
            """{mailbox: copies} over the mailboxes m must reach."""
            got = {u: 0 for u in self.user_of.get(m, [])}
            for u, _ in arrivals(m):
                got[u] = got.get(u, 0) + 1
            return got

        lost = [m for m in acked if not all(per_box(m).values())]
        unacked_arrived = [m for m in unacked if arrivals(m)]
        cut_arrived = [m for m in cut if arrivals(m)]
        dup_ids = [m for m in self.state if any(n > 1 for n in per_box(m).values())]
        dups = sum(n - 1 for m in dup_ids for n in per_box(m).values() if n > 1)
        multi = [m for m in acked if len(self.user_of.get(m, [])) > 1]
        broken_copies = [(m, k) for d in (self.copies, self.bounces) for m, c in d.items() for k, ok in c.items() if not ok]
        wrong_bounces = [m for m in self.bounces if m not in self.bounce_ids]
        bounces_due = [m for m in acked if m in self.bounce_ids]
        delivery_kills = sum(self.kills[k] for k in DELIVERY_KINDS)
        concurrency = 10   # concurrencylocal's default: deliveries in progress at one kill
        single = self.kills["qmail-local"] + self.kills["vdelivermail"]
        # a kill taking qmail-send down: the deliveries in progress, and a
        # bounce injected before bounce/N was removed
        dup_bound = (delivery_kills - single) * (concurrency + 1) + single
        # Each duplicate needs a delivery-side kill while the message was in
        # the system: after it was sent, before its last copy was written
        # (Maildir names start with the delivery's second).
        delivery_times = [t for t, k in self.kill_times if k in DELIVERY_KINDS]
        unexplained = []
        for m in dup_ids:
            secs = [int(u.split(".")[0]) for _, u in arrivals(m) if u.split(".")[0].isdigit()]
            sent = self.sent_at.get(m, self.t0)
            if not secs or not any(sent - 1 <= t <= max(secs) + 2 for t in delivery_times):
                unexplained.append(f"{m} (sent at {sent - self.t0:.1f}s, copies at"
                                   f" {[round(x - self.t0) for x in sorted(secs)]}s)")
        # qmail-send's log must account for each delivered copy: its
        # qmail-queue pid (qp) has an "info msg N" line and N a
        # "starting delivery" line, as in qmail, whose log is written
        # line by line (a kill loses no line about work already done).
        text = self.send_log()
        msg_of_qp = {int(q): int(n) for n, q in INFO_RE.findall(text)}
        started = {int(n) for n in START_RE.findall(text)}
        unlogged = []
        for key, qp in self.copy_qp.items():
            n = msg_of_qp.get(qp)
            if n is None or n not in started:
                unlogged.append((key, qp, n))
        qq_acked = [m for m, code in self.queue_killed_mid_data.items() if code == 250]

        log(f"FIGURE messages generated: {len(self.ids)}")
        log(f"FIGURE messages sent (through the final dot): {len(acked) + len(unacked)}")
        log(f"FIGURE messages acknowledged with 250: {len(acked)} ({len(multi)} of them to two mailboxes)")
        log(f"FIGURE messages sent but not acknowledged: {len(unacked)} ({len(unacked_arrived)} arrived anyway,"
            f" which qmail allows: qmail-queue may commit before the reply is lost)")
        log(f"FIGURE transmissions cut before the final dot: {len(cut)} ({len(cut_arrived)} arrived)")
        log(f"FIGURE messages never sent (run out of time): {len(unsent)}")
        log(f"FIGURE kills: {sum(self.kills.values())}")
        for k in ALL_KINDS:
            log(f"FIGURE kills {k}: {self.kills[k]}")
        log(f"FIGURE kills without a target at the moment: {len(self.missed)}")
        log(f"FIGURE service restarts: " + ", ".join(f"{k} {v}" for k, v in self.restarts.items()))
        log(f"FIGURE messages lost: {len(lost)}")
        log(f"FIGURE duplicate deliveries: {dups} (of {len(dup_ids)} messages; allowed up to {dup_bound}:"
            f" {delivery_kills - single} kills taking qmail-send down x (concurrencylocal {concurrency} + 1 bounce)"
            f" + {single} killed qmail-local/vdelivermail; a delivery killed after writing the Maildir file"
            f" but before reporting success is retried - qmail delivers at least once, never at most once)")
        log(f"FIGURE bounces due (acknowledged messages to unknown users): {len(bounces_due)};"
            f" bounces received: {sum(len(c) for c in self.bounces.values())}")
        log(f"FIGURE messages fetched over POP3: {len(self.fetched)}")
        log(f"FIGURE POP3 sessions: {self.pop_sessions} ({self.pop_aborted} ended before QUIT)")
        log(f"FIGURE messages left in Maildirs after the final POP3 sweep: {self.left_in_maildir}")
        log(f"FIGURE Maildir tmp/ orphans (note only; maildir(5) cleans them after 36 hours): {self.tmp_orphans}")
        log(f"FIGURE queue leftovers of killed qmail-queue: "
            + ", ".join(f"{d} {n}" for d, n in self.leftovers.items())
            + (" (removed by qmail-send's 36-hour cleanup once aged)" if any(self.leftovers.values()) and self.leftovers_removed else ""))
        log(f"FIGURE delivered copies missing from qmail-send's log: {len(unlogged)}")
        log(f"FIGURE run time: {self.elapsed():.0f} s")

        promise("every acknowledged message delivered", not lost,
                f"{len(lost)} acknowledged messages lost: {' '.join(lost[:10])}")
        promise("delivered copies whole and in the right mailbox", not broken_copies and not self.misplaced and not self.unknown,
                f"corrupt {broken_copies[:5]} misplaced {self.misplaced[:5]} unknown {self.unknown[:5]}")
        promise("duplicates only where qmail allows", dups <= dup_bound and not unexplained,
                f"{dups} duplicates (bound {dup_bound}); without a delivery-side kill between the copies:"
                f" {unexplained[:10]}")
        promise("no bounce for deliverable mail (a crash is a temporary failure)", not wrong_bounces,
                f"{len(wrong_bounces)} bounced: {wrong_bounces[:10]}")
        promise("transmission cut before the dot never delivered", not cut_arrived,
                f"{' '.join(cut_arrived[:10])}")
        promise("no 250 after qmail-queue was killed", not qq_acked, f"{' '.join(qq_acked[:10])}")
        promise("POP3 session ended before QUIT deletes nothing", not self.pending_keep,
                f"{len(self.pending_keep)} messages gone: {list(self.pending_keep)[:5]}")
        promise("mailboxes emptied over POP3", not self.left_in_maildir and not self.final_pop_errors,
                f"{self.left_in_maildir} messages left in the Maildirs; final POP3 sweep errors:"
                f" {self.final_pop_errors[:3]}")
        promise("qmail-send's log accounts for every delivery", not unlogged and len(self.copy_qp) == sum(len(c) for d in (self.copies, self.bounces) for c in d.values()),
                f"{len(unlogged)} copies without 'info msg'/'starting delivery' lines (copy, qp, msg): {unlogged[:5]}")
        stuck = {d: n for d, n in self.stuck.items() if n}
        promise("queue drained and clean", self.drained and not stuck and self.leftovers_removed
                and self.leftovers.get("mess", 0) <= self.kills["qmail-queue mid-DATA"] + self.kills["qmail-queue after dot"]
                + self.kills["qmail-send+children"],
                f"drained={self.drained} stuck={stuck} leftovers={self.leftovers} removed={self.leftovers_removed}")
        promise("finished in time", not unsent and time.time() <= self.deadline + 120,
                f"{len(unsent)} messages never sent within PROOF_CRASH_TIME={self.time_limit}")
        if self.smtp_errors:
            log(f"note: {len(self.smtp_errors)} SMTP sessions broke (expected with kills): {self.smtp_errors[:3]}")
        if self.pop_errors:
            log(f"note: {len(self.pop_errors)} POP3 sessions broke during the run: {self.pop_errors[:3]}")
        return all(promises)

    def cleanup(self):
        self.stop_all.set()
        for pg in self.pgids:
            try:
                os.killpg(pg, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.base:
            bindir = str(self.home / "bin") + "/"
            for pid, _, exe in proc_table():
                if exe.startswith(bindir):
                    kill9(pid)
        if self.account:
            subprocess.run(["userdel", self.account], capture_output=True)
        if self.base and not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)
        elif self.base:
            log(f"crash: kept {self.base}")


def main():
    # a timeout(1) or Ctrl-C must still stop the servers and remove the
    # account (cleanup below); an unhandled SIGTERM would leave both behind
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))
    h = Harness()
    try:
        h.run_phases()
        ok = h.report()
        if not ok:
            log("crash: logs of the run: " + str(h.logdir) + (" (kept)" if h.keep else " (PROOF_CRASH_KEEP=1 keeps them)"))
            tail = h.send_log().splitlines()[-15:]
            log("crash: last qmail-send log lines:\n  " + "\n  ".join(tail))
        return 0 if ok else 1
    except HarnessError as e:
        log(f"crash: cannot run: {e}")
        return 2
    except Exception:
        # a fault of the harness itself is not a broken promise
        import traceback
        traceback.print_exc()
        log("crash: the harness failed (above); no verdict")
        return 2
    finally:
        h.cleanup()


if __name__ == "__main__":
    sys.exit(main())
