#!/usr/bin/env python3
"""Load proof (issue 10, item 3): many concurrent SMTP and POP3 sessions on
loopback at the same time, against the built programs of SQ_BIN.

Setup, as scripts/run.sh does it for root: an unprivileged account owning a
single-user qmail home (qmail-setup --single-user --owner ACCOUNT --link,
linked to private copies of the programs it needs) in a fresh temp dir under
/var/tmp, every component running as that account; one hosted domain
(vadddomain) with PROOF_LOAD_POP3 mailboxes (vadduser -s sha512: sha512-crypt
passwords), qmail-send running (rc), and two of our tcpservers on 127.0.0.1:
    tcpserver -c LIMIT -b LIMIT ... qmail-smtpd
    tcpserver -c LIMIT -b LIMIT ... qmail-popup HOST checkpassword-file qmail-pop3d Maildir
One asyncio client process (raw sockets, cheap on 2 cores) then holds
PROOF_LOAD_SMTP SMTP sessions and PROOF_LOAD_POP3 POP3 sessions at the same
time for PROOF_LOAD_SECONDS:
  SMTP: EHLO, then transactions MAIL/RCPT(1-3)/DATA, some pipelined, some
        RSET/NOOP, QUIT and reconnect now and then; each message carries a
        unique id and a body derived from it. A few clients hang up in the
        middle of a message (PROOF_LOAD_ABORT, 0.02): that message must not be
        delivered nor leave files in the queue.
  POP3: USER/PASS, STAT, LIST, UIDL (some pipelined), TOP n 0, RETR (content
        checked against the id), DELE, NOOP/STAT while holding the session,
        QUIT and reconnect.
Each client keeps its first session open (working in it) until all sessions
of its kind are open at once, so "sessions held" is measured, not hoped for.
Every reply is checked against the protocol; an unexpected reply, a timeout
or a dropped connection is a protocol error (the first few are printed).
After the load the queue must drain (bounded by PROOF_LOAD_DRAIN seconds);
then every (message, recipient) acknowledged with 250 must be delivered
exactly once: either deleted through POP3 (DELE + QUIT +OK) or still in the
recipient's Maildir, intact. A sampler reads /proc/PID/smaps_rollup of every
qmail-smtpd (with its qmail-queue), qmail-popup and qmail-pop3d of this run
and reports bytes per session; fds and RSS of tcpserver and qmail-send are
compared before and after.

Environment (defaults): SQ_BIN (.build/release), PROOF_LOAD_SECONDS (60),
PROOF_LOAD_SMTP (200), PROOF_LOAD_POP3 (200), PROOF_LOAD_DRAIN (240),
PROOF_LOAD_LIMIT (tcpserver -c, 250), PROOF_LOAD_THINK (mean pause between
SMTP transactions of one session, 2.0 s), PROOF_LOAD_HOLD (longest POP3
session, 10 s), PROOF_LOAD_TIMEOUT (reply timeout, 60 s),
PROOF_LOAD_CONCURRENCYLOCAL (unset: qmail's 10), PROOF_LOAD_SAMPLE
(seconds between memory samples, 2), PROOF_LOAD_KEEP (keep the temp dir).
Limits set as an administrator would: tcpserver -c and -b (default 40 and
20: -c 40 caps the sessions at 40), RLIMIT_NOFILE when below what 400
sessions need. For the harness's own tests: PROOF_LOAD_QMAILQUEUE (a
program used as QMAILQUEUE by qmail-smtpd) and PROOF_LOAD_POP3D (a program run in place of
qmail-pop3d); both are copied into the home and may find the real programs
in $QMAIL_HOME/bin.

Output: FIGURE/PROMISE lines; exit 0 when every promise holds, 1 when one
is broken, 2 when the harness could not run.
"""
import asyncio
import collections
import hashlib
import os
import pathlib
import pwd
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOMAIN = "load.test"
FQDN = "mail.load.test"
PASSWORD = "load-Secret-42"


def env_num(name, default, cast=int):
    v = os.environ.get(name, "")
    return cast(v) if v.strip() else default


SECONDS = env_num("PROOF_LOAD_SECONDS", 60, float)
N_SMTP = env_num("PROOF_LOAD_SMTP", 200)
N_POP3 = env_num("PROOF_LOAD_POP3", 200)
DRAIN = env_num("PROOF_LOAD_DRAIN", 240, float)
LIMIT = env_num("PROOF_LOAD_LIMIT", 250)
THINK = env_num("PROOF_LOAD_THINK", 2.0, float)
HOLD = env_num("PROOF_LOAD_HOLD", 10.0, float)
ABORT = env_num("PROOF_LOAD_ABORT", 0.02, float)
TIMEOUT = env_num("PROOF_LOAD_TIMEOUT", 60, float)
SAMPLE_EVERY = env_num("PROOF_LOAD_SAMPLE", 2.0, float)
CONCURRENCYLOCAL = env_num("PROOF_LOAD_CONCURRENCYLOCAL", 0)   # 0: qmail's default (10)
N_USERS = max(N_POP3, 1)
PROGRAMS = ["qmail-setup", "qmail-queue", "qmail-start", "qmail-lspawn", "qmail-newu", "qmail-newmrh", "qmail-send",
            "qmail-rspawn", "qmail-clean", "qmail-local", "qmail-getpw", "qmail-remote", "qmail-smtpd", "qmail-popup",
            "qmail-pop3d", "checkpassword-file", "tcpserver", "vdelivermail", "vadddomain", "vadduser", "splogger"]
MAX_ERRORS_SHOWN = 8


def sq_bin() -> pathlib.Path:
    env = os.environ.get("SQ_BIN")
    return pathlib.Path(env).resolve() if env else ROOT / ".build" / "release"


class SetupError(Exception):
    pass


def log(msg):
    print(msg, flush=True)


# ------------------------------------------------------------------ messages

def message_for(mid: str, rcpts) -> bytes:
    """The message with id `mid`, LF-terminated lines (as stored in a Maildir).
    Its body is a pure function of the id, so any copy can be checked."""
    rnd = random.Random(mid)
    lines = [f"From: <sender@{DOMAIN}>", "To: " + ", ".join(f"<{r}@{DOMAIN}>" for r in rcpts),
             f"Subject: load {mid}", f"Message-ID: <{mid}@{DOMAIN}>", f"X-Load-Id: {mid}", "",
             f"body of {mid}", ".a line that starts with a dot", "..two dots", "."]
    n = rnd.choice([0, 1, 3, 10, 40]) if rnd.random() > 0.02 else 800
    for i in range(n):
        lines.append(f"{i:04d} " + hashlib.sha256(f"{mid}/{i}".encode()).hexdigest())
    lines.append(f"end of {mid}")
    return ("\n".join(lines) + "\n").encode()


def load_id(data: bytes):
    """(id, recipients) from a delivered or retrieved message, or (None, None)."""
    head = data.split(b"\n\n", 1)[0]
    mid = to = None
    for line in head.split(b"\n"):
        if line.startswith(b"X-Load-Id: "):
            mid = line[11:].decode("latin-1").strip()
        elif line.startswith(b"To: "):
            to = [a.strip(" <>").split("@")[0] for a in line[4:].decode("latin-1").split(",")]
    return mid, to


def intact(data: bytes):
    """The id when `data` is a delivered copy of its load message (qmail adds
    headers at the top only), else None."""
    mid, to = load_id(data)
    if mid is None or to is None:
        return None
    return mid if data.endswith(message_for(mid, to)) else None


def to_wire(msg: bytes) -> bytes:
    out = []
    for line in msg.split(b"\n")[:-1]:
        out.append((b"." + line) if line.startswith(b".") else line)
    return b"\r\n".join(out) + b"\r\n.\r\n"


# ------------------------------------------------------------------ client state

class Stats:
    def __init__(self):
        self.errors = []
        self.n_errors = 0
        self.open = {"smtp": 0, "pop3": 0}
        self.target = {"smtp": N_SMTP, "pop3": N_POP3}
        # set once every session of a kind is open at the same time; until
        # then each worker keeps its first session open (working in it)
        self.all_open = {"smtp": asyncio.Event(), "pop3": asyncio.Event()}
        self.all_open_after = {"smtp": None, "pop3": None}
        self.t0 = time.monotonic()
        self.peak = {"smtp": 0, "pop3": 0}
        self.sessions = {"smtp": 0, "pop3": 0}
        self.accepted = {}          # mid -> [rcpt users] acknowledged with 250
        self.unknown = set()        # mids whose DATA outcome the client never learned
        self.rejected = set()       # mids refused with 4xx/5xx after DATA
        self.aborted = set()        # mids whose client hung up in the middle of DATA
        self.committed = collections.Counter()   # (mid, user) deleted via POP3 and QUIT +OK
        self.retrieved = 0
        self.pop3_commands = 0
        self.smtp_commands = 0
        self.samples_open = {"smtp": [], "pop3": []}
        self.latency = {"DATA": [], "login": []}   # end of DATA -> 250; PASS -> +OK

    def error(self, where, what):
        self.n_errors += 1
        if len(self.errors) < MAX_ERRORS_SHOWN:
            self.errors.append(f"{where}: {what}")
            log(f"  protocol error: {where}: {what}")

    def opened(self, kind):
        self.open[kind] += 1
        self.sessions[kind] += 1
        self.peak[kind] = max(self.peak[kind], self.open[kind])
        if self.open[kind] >= self.target[kind] and not self.all_open[kind].is_set():
            self.all_open[kind].set()
            self.all_open_after[kind] = time.monotonic() - self.t0

    def holding(self, kind, first, end):
        """A worker's first session stays open until all are open at once,
        and a little longer, so the server-side sampler sees them too."""
        if not first or time.monotonic() >= end:
            return False
        at = self.all_open_after[kind]
        return at is None or time.monotonic() - self.t0 < at + 2 * SAMPLE_EVERY + 1


class ProtocolError(Exception):
    pass


class Conn:
    def __init__(self, reader, writer):
        self.r, self.w = reader, writer

    async def line(self) -> bytes:
        try:
            data = await asyncio.wait_for(self.r.readuntil(b"\n"), TIMEOUT)
        except asyncio.TimeoutError:
            raise ProtocolError(f"no reply within {TIMEOUT:g}s")
        except asyncio.IncompleteReadError as e:
            raise ProtocolError(f"connection dropped (got {e.partial[:80]!r})")
        except (ConnectionError, OSError) as e:
            raise ProtocolError(f"connection failed: {e}")
        except asyncio.LimitOverrunError:
            raise ProtocolError("reply line too long")
        if not data.endswith(b"\r\n"):
            raise ProtocolError(f"line without CRLF: {data[:80]!r}")
        return data[:-2]

    async def send(self, data: bytes):
        self.w.write(data)
        try:
            await asyncio.wait_for(self.w.drain(), TIMEOUT)
        except asyncio.TimeoutError:
            raise ProtocolError(f"write blocked for {TIMEOUT:g}s")
        except (ConnectionError, OSError) as e:
            raise ProtocolError(f"connection failed on write: {e}")

    async def eof(self):
        try:
            rest = await asyncio.wait_for(self.r.read(4096), TIMEOUT)
        except asyncio.TimeoutError:
            raise ProtocolError("server kept the connection open after QUIT")
        except (ConnectionError, OSError):
            return
        if rest:
            raise ProtocolError(f"data after QUIT reply: {rest[:80]!r}")

    def close(self):
        try:
            self.w.close()
        except Exception:
            pass


async def connect(port):
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, limit=1 << 20), TIMEOUT)
    except asyncio.TimeoutError:
        raise ProtocolError("connect timed out")
    except OSError as e:
        raise ProtocolError(f"connect failed: {e}")
    return Conn(r, w)


# ------------------------------------------------------------------ SMTP client

async def smtp_reply(c: Conn, want: str, what: str):
    """Reads one (possibly multi-line) reply; its code must start with `want`."""
    lines = []
    while True:
        line = await c.line()
        lines.append(line)
        if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3:4] not in (b" ", b"-")):
            raise ProtocolError(f"{what}: malformed reply {line[:100]!r}")
        if line[:3] != lines[0][:3]:
            raise ProtocolError(f"{what}: code changed inside a reply {lines!r}")
        if len(line) == 3 or line[3:4] == b" ":
            break
        if len(lines) > 50:
            raise ProtocolError(f"{what}: endless multi-line reply")
    if not lines[0].decode("latin-1").startswith(want):
        raise ProtocolError(f"{what}: expected {want}xx, got {b' | '.join(lines)[:160]!r}")
    return lines


async def smtp_worker(i, port, st: Stats, end, seq):
    rnd = random.Random(f"smtp{i}")
    await asyncio.sleep(rnd.random() * min(2.0, SECONDS / 4))
    first = True
    while time.monotonic() < end:
        c = None
        where = f"smtp session {i}"
        pending = None
        try:
            c = await connect(port)
            await smtp_reply(c, "220", "greeting")
            st.opened("smtp")
            try:
                await c.send(b"EHLO client%d.load.test\r\n" % i)
                ext = await smtp_reply(c, "250", "EHLO")
                st.smtp_commands += 1
                if not any(l[4:].upper().startswith(b"PIPELINING") for l in ext):
                    raise ProtocolError(f"EHLO does not offer PIPELINING: {ext!r}")
                planned = rnd.randint(3, 12)
                aborted = False
                while planned > 0 or st.holding("smtp", first, end):
                    planned -= 1
                    if time.monotonic() >= end:
                        break
                    n = next(seq)
                    mid = f"m{n}s{i}"
                    rcpts = sorted({f"u{rnd.randrange(N_USERS)}" for _ in range(1 if rnd.random() < 0.8 else rnd.randint(2, 3))})
                    msg = message_for(mid, rcpts)
                    cmds = [f"MAIL FROM:<sender@{DOMAIN}>\r\n".encode()] + \
                           [f"RCPT TO:<{r}@{DOMAIN}>\r\n".encode() for r in rcpts] + [b"DATA\r\n"]
                    st.smtp_commands += len(cmds) + 1
                    if rnd.random() < 0.3:      # pipelined, as RFC 2920 allows
                        await c.send(b"".join(cmds))
                        await smtp_reply(c, "250", "MAIL (pipelined)")
                        for r in rcpts:
                            await smtp_reply(c, "250", f"RCPT {r} (pipelined)")
                        await smtp_reply(c, "354", "DATA (pipelined)")
                    else:
                        await c.send(cmds[0])
                        await smtp_reply(c, "250", "MAIL")
                        for r, cmd in zip(rcpts, cmds[1:-1]):
                            await c.send(cmd)
                            await smtp_reply(c, "250", f"RCPT {r}")
                        await c.send(b"DATA\r\n")
                        await smtp_reply(c, "354", "DATA")
                    if rnd.random() < ABORT:
                        # a client that hangs up in the middle of the message:
                        # it must not be delivered, nor leave anything behind
                        wire = to_wire(msg)
                        await c.send(wire[:rnd.randrange(1, len(wire) - 3)])
                        st.aborted.add(mid)
                        aborted = True
                        break
                    pending = mid
                    await c.send(to_wire(msg))
                    t = time.monotonic()
                    lines = await smtp_reply(c, "", "end of DATA")
                    st.latency["DATA"].append(time.monotonic() - t)
                    pending = None
                    if lines[0].startswith(b"250"):
                        st.accepted[mid] = rcpts
                    else:
                        st.rejected.add(mid)
                        raise ProtocolError(f"message {mid} refused: {lines[0][:100]!r}")
                    x = rnd.random()
                    if x < 0.1:
                        await c.send(b"RSET\r\n")
                        await smtp_reply(c, "250", "RSET")
                        st.smtp_commands += 1
                    elif x < 0.15:
                        await c.send(b"NOOP\r\n")
                        await smtp_reply(c, "250", "NOOP")
                        st.smtp_commands += 1
                    await asyncio.sleep(rnd.uniform(0, 2 * THINK))
                first = False
                if aborted:
                    continue    # closed below, without QUIT
                await c.send(b"QUIT\r\n")
                await smtp_reply(c, "221", "QUIT")
                st.smtp_commands += 1
                await c.eof()
            finally:
                st.open["smtp"] -= 1
        except ProtocolError as e:
            if pending:
                st.unknown.add(pending)
            st.error(where, str(e))
            await asyncio.sleep(0.5)
        finally:
            if c:
                c.close()


# ------------------------------------------------------------------ POP3 client

async def pop_ok(c: Conn, what: str) -> bytes:
    line = await c.line()
    if not line.startswith(b"+OK"):
        raise ProtocolError(f"{what}: expected +OK, got {line[:120]!r}")
    return line


async def pop_multi(c: Conn, what: str):
    lines = []
    while True:
        line = await c.line()
        if line == b".":
            return lines
        if line.startswith(b"."):
            line = line[1:]
        lines.append(line)
        if len(lines) > 200000:
            raise ProtocolError(f"{what}: endless multi-line reply")


async def pop_worker(j, port, st: Stats, end):
    rnd = random.Random(f"pop{j}")
    user = f"u{j}"
    await asyncio.sleep(rnd.random() * min(2.0, SECONDS / 4))
    first = True
    while time.monotonic() < end:
        c = None
        where = f"pop3 session {j} ({user})"
        try:
            c = await connect(port)
            greet = await pop_ok(c, "greeting")
            if not (greet.endswith(b">") and b"<" in greet):
                raise ProtocolError(f"greeting without timestamp: {greet!r}")
            st.opened("pop3")
            try:
                hold_until = min(end, time.monotonic() + rnd.uniform(HOLD * 0.3, HOLD))
                await c.send(f"USER {user}@{DOMAIN}\r\n".encode())
                await pop_ok(c, "USER")
                await c.send(f"PASS {PASSWORD}\r\n".encode())
                t = time.monotonic()
                await pop_ok(c, "PASS")
                st.latency["login"].append(time.monotonic() - t)
                pipelined = rnd.random() < 0.3     # qmail-pop3d's CAPA offers PIPELINING
                await c.send(b"STAT\r\nLIST\r\nUIDL\r\n" if pipelined else b"STAT\r\n")
                s = (await pop_ok(c, "STAT")).split()
                if len(s) != 3 or not (s[1].isdigit() and s[2].isdigit()):
                    raise ProtocolError(f"STAT: malformed {b' '.join(s)!r}")
                count, total = int(s[1]), int(s[2])
                if not pipelined:
                    await c.send(b"LIST\r\n")
                await pop_ok(c, "LIST")
                lst = [l.split() for l in await pop_multi(c, "LIST")]
                if not pipelined:
                    await c.send(b"UIDL\r\n")
                await pop_ok(c, "UIDL")
                uidl = [l.split() for l in await pop_multi(c, "UIDL")]
                st.pop3_commands += 5
                if len(lst) != count or sum(int(x[1]) for x in lst) != total or \
                        [x[0] for x in lst] != [str(k).encode() for k in range(1, count + 1)]:
                    raise ProtocolError(f"LIST disagrees with STAT {count} {total}: {lst[:5]!r}")
                if len(uidl) != count or len({x[1] for x in uidl}) != count:
                    raise ProtocolError(f"UIDL: {len(uidl)} lines, not {count} unique ids")
                deleted = []
                for k in range(1, min(count, rnd.randint(5, 30)) + 1):
                    top = None
                    if rnd.random() < 0.2:
                        await c.send(b"TOP %d 0\r\n" % k)
                        await pop_ok(c, f"TOP {k} 0")
                        top = b"\n".join(await pop_multi(c, f"TOP {k} 0")) + b"\n"
                        st.pop3_commands += 1
                    await c.send(b"RETR %d\r\n" % k)
                    await pop_ok(c, f"RETR {k}")
                    body = b"\n".join(await pop_multi(c, f"RETR {k}")) + b"\n"
                    st.pop3_commands += 1
                    size = int(lst[k - 1][1])
                    if len(body) != size:
                        raise ProtocolError(f"RETR {k}: {len(body)} bytes, LIST said {size}")
                    if top is not None and not (top.endswith(b"\n\n") and body.startswith(top)
                                                and b"\n\n" not in top[:-2]):
                        raise ProtocolError(f"TOP {k} 0 is not the header of RETR {k}: {top[-120:]!r}")
                    mid = intact(body)
                    if mid is None:
                        raise ProtocolError(f"RETR {k}: not an intact load message: {body[:200]!r}")
                    st.retrieved += 1
                    if rnd.random() < 0.9:
                        await c.send(b"DELE %d\r\n" % k)
                        await pop_ok(c, f"DELE {k}")
                        st.pop3_commands += 1
                        deleted.append(mid)
                while time.monotonic() < hold_until or st.holding("pop3", first, end):
                    await asyncio.sleep(rnd.uniform(0.5, 1.5))
                    await c.send(b"NOOP\r\n" if rnd.random() < 0.5 else b"STAT\r\n")
                    await pop_ok(c, "NOOP/STAT")
                    st.pop3_commands += 1
                first = False
                await c.send(b"QUIT\r\n")
                await pop_ok(c, "QUIT")
                st.pop3_commands += 1
                for mid in deleted:
                    st.committed[(mid, user)] += 1
                await c.eof()
            finally:
                st.open["pop3"] -= 1
        except ProtocolError as e:
            st.error(where, str(e))
            await asyncio.sleep(0.5)
        finally:
            if c:
                c.close()


async def run_clients(smtp_port, pop_port, st: Stats):
    end = time.monotonic() + SECONDS
    seq = iter(range(1, 1 << 62))

    async def counter():
        while time.monotonic() < end:
            await asyncio.sleep(1.0)
            for k in ("smtp", "pop3"):
                st.samples_open[k].append(st.open[k])

    tasks = [asyncio.create_task(smtp_worker(i, smtp_port, st, end, seq)) for i in range(N_SMTP)]
    tasks += [asyncio.create_task(pop_worker(j, pop_port, st, end)) for j in range(N_POP3)]
    tasks.append(asyncio.create_task(counter()))
    # every session ends by itself after `end`; the bound is for hangs
    done, left = await asyncio.wait(tasks, timeout=SECONDS + 3 * TIMEOUT + 30)
    for t in left:
        t.cancel()
    if left:
        st.error("client", f"{len(left)} sessions did not finish in time")
    for t in done:
        if t.exception() is not None:
            st.error("client", f"crashed: {t.exception()!r}")


# ------------------------------------------------------------------ server-side sampling

def read_proc(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        comm = s[s.index("(") + 1:s.rindex(")")]
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        return comm, ppid
    except (OSError, ValueError):
        return None


def smaps(pid):
    try:
        out = {}
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
                    out[k] = int(v.split()[0]) * 1024
        return {"rss": out["Rss"], "pss": out["Pss"], "private": out["Private_Clean"] + out["Private_Dirty"]}
    except (OSError, KeyError, ValueError):
        return None


class Sampler(threading.Thread):
    """Every SAMPLE_EVERY s: the sessions of our two tcpservers (children
    named qmail-smtpd / qmail-popup, with a qmail-pop3d below a popup after
    login) and the memory of each process."""

    def __init__(self, smtp_server, pop_server):
        super().__init__(daemon=True)
        self.smtp_server, self.pop_server = smtp_server, pop_server
        self.stop = threading.Event()
        self.smtp, self.popup, self.pop3d, self.pop_session = [], [], [], []
        self.smtpd, self.smtp_queue = [], []
        self.peak = {"smtp": 0, "pop3": 0, "pop3d": 0}
        self.counts = {"smtp": [], "pop3": []}

    def sample(self):
        procs = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                p = read_proc(int(d))
                if p:
                    procs[int(d)] = p
        smtpd = [pid for pid, (comm, pp) in procs.items() if pp == self.smtp_server and comm == "qmail-smtpd"]
        popups = {pid for pid, (comm, pp) in procs.items() if pp == self.pop_server and comm == "qmail-popup"}
        pop3d = {pid: pp for pid, (comm, pp) in procs.items() if pp in popups and comm == "qmail-pop3d"}
        smtpd_set = set(smtpd)
        self.counts["smtp"].append(len(smtpd))
        self.counts["pop3"].append(len(popups))
        self.peak["smtp"] = max(self.peak["smtp"], len(smtpd))
        self.peak["pop3"] = max(self.peak["pop3"], len(popups))
        self.peak["pop3d"] = max(self.peak["pop3d"], len(pop3d))
        # qmail-smtpd may keep a `qmail-queue --session` child for its
        # connection: that belongs to the session's cost too
        queue = {}
        for pid, (comm, pp) in procs.items():
            if comm == "qmail-queue" and pp in smtpd_set:
                m = smaps(pid)
                if m:
                    queue[pp] = m
                    self.smtp_queue.append(m)
        for pid in smtpd:
            m = smaps(pid)
            if m:
                self.smtpd.append(m)
                self.smtp.append({k: m[k] + queue[pid][k] for k in m} if pid in queue else m)
        below = {}
        for pid, pp in pop3d.items():
            m = smaps(pid)
            if m:
                self.pop3d.append(m)
                below[pp] = m
        for pid in popups:
            m = smaps(pid)
            if m:
                self.popup.append(m)
                if pid in below:   # a logged-in session: popup + pop3d
                    self.pop_session.append({k: m[k] + below[pid][k] for k in m})

    def run(self):
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                self.sample()
            except Exception as e:    # a sampler bug must not hang the run
                log(f"  sampler: {e!r}")
            self.stop.wait(max(0.1, SAMPLE_EVERY - (time.monotonic() - t)))


def fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


# ------------------------------------------------------------------ setup

def run(argv, input=None, env=None, check=True, timeout=120):
    r = subprocess.run([str(a) for a in argv], input=input, env=env, capture_output=True, timeout=timeout)
    if check and r.returncode != 0:
        raise SetupError(f"{argv[0]} failed ({r.returncode}): {r.stderr.decode(errors='replace')[:500]}")
    return r


class System:
    def __init__(self):
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="sq-load-", dir="/var/tmp"))
        self.base.chmod(0o755)
        self.home = self.base / "qmail"
        self.account = None
        self.runas = []
        self.procs = []
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("QMAIL", "MAIL", "TCP")) and k not in
                    ("RELAYCLIENT", "DATABYTES", "SMTPAUTH", "FORCETLS", "RCPTCHECK", "NAME", "USER", "HOME")}
        self.env["QMAIL_HOME"] = str(self.home)
        self.env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        self.notes = []

    def bin(self, name):
        return self.home / "bin" / name

    def setup(self):
        b = sq_bin()
        need = ["qmail-setup", "qmail-smtpd", "qmail-popup", "qmail-pop3d", "checkpassword-file", "tcpserver",
                "vadddomain", "vadduser", "qmail-send", "qmail-start", "vdelivermail"]
        missing = [n for n in need if not (b / n).exists()]
        if missing:
            raise SetupError(f"not built in {b}: {' '.join(missing)}")
        # The deployment of scripts/run.sh for root: a single-user home owned
        # by an unprivileged account, every component running as it.
        self.account = f"sqload{os.getpid() % 100000}"
        run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", self.account])
        pw = pwd.getpwnam(self.account)
        self.runas = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
        # qmail-setup gives its programs the owner and modes of the home; with
        # --link that would change the shared build's files (SQ_BIN), so it
        # links private copies of just the programs this run needs.
        progs = self.base / "programs"
        progs.mkdir()
        for n in PROGRAMS:
            if (b / n).exists():
                shutil.copyfile(b / n, progs / n)
                (progs / n).chmod(0o755)
                os.chown(progs / n, pw.pw_uid, pw.pw_gid)   # the owner's already: linked, not copied again
        run([progs / "qmail-setup", "--single-user", "--owner", self.account, "--link", "--programs", progs,
             self.home, FQDN])
        run(self.runas + [self.bin("vadddomain"), DOMAIN, "-"], input=b"pm-" + PASSWORD.encode() + b"\n", env=self.env)
        t = time.monotonic()
        for u in [f"u{k}" for k in range(N_USERS)] + ["sender"]:
            run(self.runas + [self.bin("vadduser"), "-s", "sha512", f"{u}@{DOMAIN}", "-"], input=PASSWORD.encode() + b"\n",
                env=self.env)
        log(f"  {N_USERS + 1} mailboxes made in {time.monotonic() - t:.1f}s (sha512-crypt passwords)")
        # Not raised by default: on 2 cores delivery is CPU-bound, and 40
        # drained a 60 s run no faster than qmail's 10.
        if CONCURRENCYLOCAL:
            (self.home / "control" / "concurrencylocal").write_text(f"{CONCURRENCYLOCAL}\n")
            self.notes.append(f"concurrencylocal 10 -> {CONCURRENCYLOCAL}")
        else:
            self.notes.append("concurrencylocal 10 (kept)")
        # the client and the servers it starts need a socket/pipe per session
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 4 * (N_SMTP + N_POP3) + 256
        if soft < want:
            new = want if hard == resource.RLIM_INFINITY else min(hard, want)
            if new > soft:
                resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
                self.notes.append(f"ulimit -n {soft} -> {new}")
            else:   # the client holds one socket per session: 400 fit in 1024
                self.notes.append(f"ulimit -n {soft} (hard limit; {want} asked for, not raised)")
        else:
            self.notes.append(f"ulimit -n {soft} (enough, not raised)")
        self.notes.append(f"tcpserver -c 40 -> {LIMIT}, -b 20 -> {LIMIT}")
        for var, name in (("PROOF_LOAD_QMAILQUEUE", "fault-qmail-queue"), ("PROOF_LOAD_POP3D", "fault-pop3d")):
            if os.environ.get(var):
                shutil.copy(os.environ[var], self.base / name)
                (self.base / name).chmod(0o755)
                log(f"  FAULT INJECTED: {var}={os.environ[var]}")

    def start(self):
        self.send_log = open(self.base / "send.log", "wb")
        self.send = subprocess.Popen(self.runas + [str(self.home / "rc")], cwd="/", stdin=subprocess.DEVNULL, stdout=self.send_log,
                                     stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        self.procs.append(self.send)
        deadline = time.monotonic() + 30
        while b"status: local" not in (self.base / "send.log").read_bytes():
            if time.monotonic() > deadline or self.send.poll() is not None:
                raise SetupError("qmail-send did not start: " + (self.base / "send.log").read_text(errors="replace")[-500:])
            time.sleep(0.05)
        smtp_env = dict(self.env)
        if os.environ.get("PROOF_LOAD_QMAILQUEUE"):
            smtp_env["QMAILQUEUE"] = str(self.base / "fault-qmail-queue")
        pop3d = self.base / "fault-pop3d" if os.environ.get("PROOF_LOAD_POP3D") else self.bin("qmail-pop3d")
        common = ["-1", "-R", "-H", "-l", FQDN, "-c", str(LIMIT), "-b", str(LIMIT), "127.0.0.1", "0"]
        self.smtp, self.smtp_port = self.tcpserver(common + [self.bin("qmail-smtpd")], smtp_env, "smtp")
        self.pop, self.pop_port = self.tcpserver(
            common + [self.bin("qmail-popup"), FQDN, self.bin("checkpassword-file"), pop3d, "Maildir"], self.env, "pop3")

    def tcpserver(self, args, env, name):
        err = open(self.base / f"{name}.log", "wb")
        p = subprocess.Popen(self.runas + [str(self.bin("tcpserver"))] + [str(a) for a in args], env=env, stdout=subprocess.PIPE,
                             stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        line = p.stdout.readline()
        if not line.strip().isdigit():
            raise SetupError(f"tcpserver for {name} did not start: {(self.base / f'{name}.log').read_text()[-300:]}")
        return p, int(line)

    def queue_left(self):
        q = self.home / "queue"
        return sum(1 for sub in ("mess", "todo", "intd", "pid") for p in (q / sub).rglob("*") if p.is_file())

    def maildirs(self):
        """{(mid, user): copies} over every mailbox's new/ and cur/, plus the
        files that are not intact load messages."""
        found = collections.Counter()
        bad = []
        dom = self.home / "domains" / DOMAIN
        for k in range(N_USERS):
            user = f"u{k}"
            for sub in ("new", "cur"):
                d = dom / user / "Maildir" / sub
                for p in d.iterdir() if d.is_dir() else ():
                    data = p.read_bytes()
                    mid = intact(data)
                    if mid is None:
                        bad.append(f"{p}: {data[:120]!r}")
                    else:
                        found[(mid, user)] += 1
        bounces = [p for sub in ("new", "cur") for p in (dom / "sender" / "Maildir" / sub).iterdir()]
        return found, bad, bounces

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except OSError:
                    pass
        for p in reversed(self.procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.wait(timeout=10)
        # sessions still alive in the tcpservers' process groups
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass

    def cleanup(self):
        if self.account:
            subprocess.run(["userdel", self.account], capture_output=True)
        if os.environ.get("PROOF_LOAD_KEEP"):
            log(f"  kept {self.base} (PROOF_LOAD_KEEP)")
            return
        shutil.rmtree(self.base, ignore_errors=True)


# ------------------------------------------------------------------ report

def fmt_after(t):
    return "never" if t is None else f"{t:.1f}s"


def mb(x):
    return f"{x / 1024:.0f} KiB"


def mem_figure(name, samples):
    if not samples:
        print(f"FIGURE bytes per session {name}: no samples")
        return False
    med = {k: statistics.median(s[k] for s in samples) for k in ("private", "pss", "rss")}
    mx = {k: max(s[k] for s in samples) for k in ("private", "pss", "rss")}
    print(f"FIGURE bytes per session {name}: private median {mb(med['private'])} max {mb(mx['private'])}, "
          f"PSS median {mb(med['pss'])} max {mb(mx['pss'])}, RSS median {mb(med['rss'])} max {mb(mx['rss'])} "
          f"({len(samples)} samples)")
    return True


def main():
    if os.geteuid() != 0:
        log("load: needs root (makes a mailbox account with useradd; checkpassword-file switches users)")
        return 2
    # a TERM (e.g. from a time limit) still runs the cleanup below
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))
    log(f"== load: {N_SMTP} SMTP + {N_POP3} POP3 sessions for {SECONDS:g}s, SQ_BIN={sq_bin()}")
    sysm = System()
    try:
        try:
            sysm.setup()
            sysm.start()
        except (SetupError, OSError, subprocess.SubprocessError) as e:
            log(f"load: setup failed: {e}")
            return 2
        log(f"  qmail-smtpd on 127.0.0.1:{sysm.smtp_port}, POP3 on 127.0.0.1:{sysm.pop_port}, home {sysm.home}")
        daemons = {"tcpserver smtp": sysm.smtp.pid, "tcpserver pop3": sysm.pop.pid, "qmail-send": sysm.send.pid}
        fd0 = {k: fds(pid) for k, pid in daemons.items()}
        mem0 = {k: (smaps(pid) or {}).get("rss", 0) for k, pid in daemons.items()}
        st = Stats()
        st.t0 = time.monotonic()
        sampler = Sampler(sysm.smtp.pid, sysm.pop.pid)
        sampler.start()
        t0 = time.monotonic()
        asyncio.run(run_clients(sysm.smtp_port, sysm.pop_port, st))
        elapsed = time.monotonic() - t0
        sampler.stop.set()
        sampler.join(timeout=30)
        log(f"  load over after {elapsed:.1f}s; waiting for the queue to drain")
        t1 = time.monotonic()
        while sysm.queue_left() and time.monotonic() - t1 < DRAIN:
            time.sleep(0.2)
        drain = time.monotonic() - t1
        left = sysm.queue_left()
        time.sleep(0.5)   # the last sessions' processes end
        fd1 = {k: fds(pid) for k, pid in daemons.items()}
        mem1 = {k: (smaps(pid) or {}).get("rss", 0) for k, pid in daemons.items()}
        found, bad, bounces = sysm.maildirs()
        sysm.stop()

        delivered = found + st.committed
        want = {(mid, u) for mid, rcpts in st.accepted.items() for u in rcpts}
        lost = sorted(k for k in want if delivered[k] == 0)
        dup = sorted(k for k in want if delivered[k] > 1)
        unknown = {(mid, u) for (mid, u) in delivered if mid in st.unknown}
        phantom = sorted(k for k in delivered if k not in want and k not in unknown)
        send_log = (sysm.base / "send.log").read_text(errors="replace")
        deferrals = send_log.count(": deferral:")
        failures = send_log.count(": failure:")

        print(f"FIGURE load seconds: {elapsed:.1f} (target {SECONDS:g})")
        print(f"FIGURE sessions held SMTP: {st.peak['smtp']} of {N_SMTP} (client peak), "
              f"{sampler.peak['smtp']} qmail-smtpd processes (server peak), "
              f"median {statistics.median(st.samples_open['smtp'] or [0]):.0f} open; {st.sessions['smtp']} sessions in all; "
              f"all open at once after {fmt_after(st.all_open_after['smtp'])}")
        print(f"FIGURE sessions held POP3: {st.peak['pop3']} of {N_POP3} (client peak), "
              f"{sampler.peak['pop3']} qmail-popup processes (server peak; {sampler.peak['pop3d']} logged in to qmail-pop3d), "
              f"median {statistics.median(st.samples_open['pop3'] or [0]):.0f} open; {st.sessions['pop3']} sessions in all; "
              f"all open at once after {fmt_after(st.all_open_after['pop3'])}")
        print(f"FIGURE messages accepted: {len(st.accepted)} messages, {len(want)} deliveries")
        print(f"FIGURE messages delivered: {sum(delivered[k] for k in want)} "
              f"({sum(st.committed.values())} retrieved and deleted over POP3, {sum(found.values())} left in Maildirs)")
        print(f"FIGURE messages lost: {len(lost)}")
        print(f"FIGURE messages duplicated: {len(dup)}")
        print(f"FIGURE messages corrupted or unknown in Maildirs: {len(bad) + len(phantom)}")
        print(f"FIGURE queue drained in: {drain:.1f}s ({left} files left)")
        print(f"FIGURE delivery deferrals/failures/bounces: {deferrals}/{failures}/{len(bounces)}")
        print(f"FIGURE protocol errors: {st.n_errors}")
        print(f"FIGURE SMTP messages abandoned mid-DATA by the client: {len(st.aborted)} (none may be delivered)")
        print(f"FIGURE messages/s accepted over SMTP: {len(st.accepted) / elapsed:.1f}")
        print(f"FIGURE messages/s retrieved over POP3: {st.retrieved / elapsed:.1f}")
        print(f"FIGURE SMTP commands/s: {st.smtp_commands / elapsed:.1f}")
        print(f"FIGURE POP3 commands/s: {st.pop3_commands / elapsed:.1f} "
              f"(logins/s {st.sessions['pop3'] / elapsed:.1f}, sha512-crypt passwords via checkpassword-file)")
        for name, what in (("DATA", "SMTP end of DATA -> 250"), ("login", "POP3 PASS -> +OK")):
            xs = sorted(st.latency[name]) or [0.0]
            print(f"FIGURE latency {what}: median {statistics.median(xs) * 1000:.0f} ms, "
                  f"p99 {xs[int(len(xs) * 0.99) - (1 if len(xs) > 1 else 0)] * 1000:.0f} ms, max {xs[-1] * 1000:.0f} ms")
        ok_mem = mem_figure("SMTP (qmail-smtpd + its qmail-queue, if any)", sampler.smtp)
        ok_mem &= mem_figure("POP3 (qmail-popup + qmail-pop3d, logged in)", sampler.pop_session)
        mem_figure("qmail-smtpd alone", sampler.smtpd)
        if sampler.smtp_queue:
            mem_figure("qmail-queue below qmail-smtpd alone", sampler.smtp_queue)
        mem_figure("qmail-popup alone", sampler.popup)
        mem_figure("qmail-pop3d alone", sampler.pop3d)
        print("FIGURE long-running processes, open fds before/after: " +
              ", ".join(f"{k} {fd0[k]}/{fd1[k]}" for k in daemons))
        print("FIGURE long-running processes, RSS before/after: " +
              ", ".join(f"{k} {mb(mem0[k])}/{mb(mem1[k])}" for k in daemons))
        print(f"FIGURE limits raised: {'; '.join(sysm.notes)}")

        broken = []

        def promise(name, ok, detail=""):
            print(f"PROMISE {name}: {'ok' if ok else 'BROKEN ' + detail}")
            if not ok:
                broken.append(name)

        promise("SMTP sessions held", st.peak["smtp"] >= N_SMTP and sampler.peak["smtp"] >= N_SMTP,
                f"client peak {st.peak['smtp']}, server peak {sampler.peak['smtp']}, want {N_SMTP}")
        promise("POP3 sessions held", st.peak["pop3"] >= N_POP3 and sampler.peak["pop3"] >= N_POP3,
                f"client peak {st.peak['pop3']}, server peak {sampler.peak['pop3']}, want {N_POP3}")
        promise("zero protocol errors", st.n_errors == 0, f"{st.n_errors}: " + " / ".join(st.errors[:3]))
        promise("queue drained", left == 0, f"{left} queue files left after {DRAIN:g}s")
        promise("zero lost messages", not lost and not dup and not bad and not phantom and not bounces and want,
                f"lost {len(lost)} {lost[:3]}, duplicated {len(dup)} {dup[:3]}, corrupt {len(bad)} {bad[:2]}, "
                f"phantom {len(phantom)} {phantom[:3]}, bounces {len(bounces)}" + ("" if want else ", nothing accepted"))
        promise("memory per session measured", ok_mem, "no samples of qmail-smtpd or logged-in POP3 sessions")
        promise("no fd leak in tcpserver and qmail-send", fd0 == fd1 and -1 not in fd1.values(), f"{fd0} -> {fd1}")
        return 1 if broken else 0
    finally:
        sysm.stop()
        sysm.cleanup()


if __name__ == "__main__":
    sys.exit(main())
