"""POP3: tcpserver -> qmail-popup -> checkpassword -> qmail-pop3d, with real
clients (poplib, openssl s_client, mpop, fetchmail, getmail6), plain, STLS and
implicit TLS (tlswrap), and hostile input.

Run: SQ_BIN=$PWD/.build/debug python3 -m pytest -q Tests/Integration/test_pop3.py

The checkpassword used here is a tiny test-only script (reads fd 3, checks
one user, becomes the mailbox owner when run as root, chdirs to the home and
execs its arguments), so the POP3 programs are tested on their own;
checkpassword-file has its own tests. Run as root, the tests give the
mailbox to "nobody": qmail-pop3d refuses to serve a mailbox as root.
"""
import hashlib
import os
import sys
import tempfile
import pathlib
import poplib
import re
import resource
import shutil
import socket
import ssl
import subprocess
import time

import pwd

import pytest

from conftest import bin_dir

USER, PASSWORD = "joe", "secret"

CHECKPASSWORD = r'''#!/usr/bin/env python3
import hashlib, os, sys
data = b""
while True:
    chunk = os.read(3, 4096)
    if not chunk:
        break
    data += chunk
user, pw, ts = data.split(b"\0")[:3]
mode = os.environ.get("TESTCP_MODE", "")
if mode == "temp":
    sys.stderr.write("testcp: temporary failure: the user database is down\n")
    sys.exit(111)
if mode == "crash":
    os.kill(os.getpid(), 9)
want = os.environ["TESTCP_PASS"].encode()
ok = user == os.environ["TESTCP_USER"].encode() and (
    pw == want or pw == hashlib.md5(ts + want).hexdigest().encode())
if not ok:
    sys.exit(1)
if os.getuid() == 0 and mode != "stay-root":
    os.setgroups([])
    os.setgid(int(os.environ["TESTCP_GID"]))
    os.setuid(int(os.environ["TESTCP_UID"]))
os.chdir(os.environ["TESTCP_HOME"])
os.environ["USER"] = user.decode()
os.environ["HOME"] = os.environ["TESTCP_HOME"]
os.execvp(sys.argv[1], sys.argv[1:])
'''


def message(i, size=0):
    body = f"Subject: message {i}\nFrom: a@example.com\n\nline one of {i}\n.a line starting with a dot\n..two dots\n.\nend\n"
    if size > len(body):
        body += ("x" * 70 + "\n") * ((size - len(body)) // 71)
    return body.encode()


# The mailbox owner when the tests run as root; (None, None) otherwise.
OWNER = (pwd.getpwnam("nobody").pw_uid, pwd.getpwnam("nobody").pw_gid) if os.geteuid() == 0 else (None, None)


def as_owner():
    """subprocess arguments that run a program as the mailbox owner."""
    return {} if OWNER[0] is None else {"user": OWNER[0], "group": OWNER[1], "extra_groups": []}


class Env:
    def __init__(self, tmp: pathlib.Path):
        self.tmp = tmp
        self.home = tmp / "home"
        self.maildir = self.home / "Maildir"
        for d in ("new", "cur", "tmp"):
            (self.maildir / d).mkdir(parents=True)
        self.qmail = tmp / "qmail"
        (self.qmail / "control").mkdir(parents=True)
        self.cp = tmp / "checkpassword"
        self.cp.write_text(CHECKPASSWORD)
        self.cp.chmod(0o755)
        self.servers = []
        if OWNER[0] is not None:
            # the owner must reach its home through pytest's private directories
            for p in tmp.parents:
                if str(p) in ("/", "/tmp"):
                    break
                p.chmod(p.stat().st_mode | 0o011)
            tmp.chmod(tmp.stat().st_mode | 0o011)

    def give_to_owner(self):
        """The mailbox (files added by the test included) belongs to its owner."""
        if OWNER[0] is None:
            return
        for root, dirs, files in os.walk(self.home):
            for n in [root] + [os.path.join(root, f) for f in dirs + files]:
                os.lchown(n, *OWNER)

    def add(self, i, where="new", size=0, mtime=None):
        name = f"{1700000000 + i}.M{i}P{i}.test.example"
        p = self.maildir / where / (name + (":2,S" if where == "cur" else ""))
        p.write_bytes(message(i, size))
        t = mtime if mtime is not None else 1700000000 + i
        os.utime(p, (t, t))
        return name

    def files(self, where):
        return sorted(os.listdir(self.maildir / where))

    def make_cert(self):
        key, crt = self.tmp / "key.pem", self.tmp / "crt.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
        (self.qmail / "control" / "servercert.pem").write_bytes(crt.read_bytes() + key.read_bytes())

    def env(self, extra=None):
        self.give_to_owner()
        e = dict(os.environ)
        e.update({"QMAIL_HOME": str(self.qmail), "TESTCP_USER": USER, "TESTCP_PASS": PASSWORD,
                  "TESTCP_HOME": str(self.home), "POP3FAILDELAY": "1"})
        if OWNER[0] is not None:
            e.update({"TESTCP_UID": str(OWNER[0]), "TESTCP_GID": str(OWNER[1])})
        for k in ("TLSREQUIRED", "SSL_PROTOCOL"):
            e.pop(k, None)
        if extra:
            e.update(extra)
        return e

    def chain(self):
        return [str(bin_dir() / "qmail-popup"), "pop.test.example", str(self.cp),
                str(bin_dir() / "qmail-pop3d"), "Maildir"]

    def serve(self, implicit_tls=False, rules=None, extra_env=None):
        args = [str(bin_dir() / "tcpserver"), "-1", "-R", "-H", "-l0"]
        if rules is not None:
            cdb = self.tmp / f"rules{len(self.servers)}.cdb"
            subprocess.run([str(bin_dir() / "tcprules"), str(cdb), str(cdb) + ".tmp"], input=rules.encode(), check=True)
            args += ["-x", str(cdb)]
        args += ["127.0.0.1", "0"]
        if implicit_tls:
            args.append(str(bin_dir() / "tlswrap"))
        args += self.chain()
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env(extra_env))
        port = int(p.stdout.readline())
        self.servers.append(p)
        return port

    def stop(self):
        for p in self.servers:
            p.terminate()
            p.wait()

    def run_popup(self, data: bytes, extra_env=None, timeout=60):
        """The whole chain on a pipe (no tcpserver): for byte-exact transcripts."""
        return subprocess.run(self.chain(), input=data, capture_output=True, env=self.env(extra_env), timeout=timeout)

    def run_pop3d(self, data: bytes, timeout=60, maildir="Maildir"):
        self.give_to_owner()
        return subprocess.run([str(bin_dir() / "qmail-pop3d"), maildir], input=data, capture_output=True,
                              cwd=self.home, timeout=timeout, **as_owner())


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    yield e
    e.stop()


def processes_in(directory):
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(str(directory)):
                pids.append(pid)
        except OSError:
            pass
    return pids


def unverified():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ---------------------------------------------------------------- transcripts

def test_transcript_matches_qmail_pop3d(env):
    a = env.add(1)
    b = env.add(2)
    r = env.run_popup(b"USER joe\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\nUIDL 2\r\nLIST 1\r\n"
                      b"TOP 1 1\r\nDELE 1\r\nLAST\r\nSTAT\r\nRETR 1\r\nRSET\r\nLAST\r\nNOOP\r\nFOO\r\nQUIT\r\n")
    out = r.stdout.decode()
    lines = out.split("\r\n")
    assert re.match(r"\+OK <\d+\.\d+@pop\.test\.example>$", lines[0])
    size = len(message(1))
    expected_after_greeting = (
        "+OK \r\n+OK \r\n"
        f"+OK 2 {2 * size}\r\n"
        f"+OK \r\n1 {size}\r\n2 {size}\r\n.\r\n"
        f"+OK \r\n1 {a}\r\n2 {b}\r\n.\r\n"
        f"+OK 2 {b}\r\n"
        f"+OK 1 {size}\r\n"
        "+OK \r\nSubject: message 1\r\nFrom: a@example.com\r\n\r\nline one of 1\r\n.\r\n"
        "+OK \r\n+OK 1\r\n"
        f"+OK 1 {size}\r\n"
        "-ERR already deleted\r\n"
        "+OK \r\n+OK 0\r\n+OK \r\n-ERR unimplemented\r\n+OK \r\n")
    assert out[len(lines[0]) + 2:] == expected_after_greeting
    # QUIT after RSET: nothing deleted, new/ moved to cur/ with ":2,"
    assert env.files("new") == []
    assert env.files("cur") == [a + ":2,", b + ":2,"]


def test_retr_is_crlf_and_dot_stuffed(env):
    env.add(1)
    r = env.run_popup(b"USER joe\r\nPASS secret\r\nRETR 1\r\nQUIT\r\n")
    body = r.stdout.split(b"\r\n+OK \r\n", 2)[2]
    assert body.startswith(b"Subject: message 1\r\n")
    assert b"\r\n..a line starting with a dot\r\n...two dots\r\n..\r\nend\r\n.\r\n+OK \r\n" in body
    assert b"\n" not in body.replace(b"\r\n", b"")


def test_message_without_final_newline_and_with_crlf(env):
    (env.maildir / "new" / "1.x").write_bytes(b"A: b\r\n\r\nno newline at end")
    r = env.run_pop3d(b"RETR 1\r\nQUIT\r\n")
    assert r.stdout == b"+OK \r\n+OK \r\nA: b\r\n\r\nno newline at end\r\n.\r\n+OK \r\n"


def test_order_is_by_mtime_and_uidl_is_stable(env):
    late = env.add(1, mtime=1700009999)
    early = env.add(2, where="cur", mtime=1700000001)
    r1 = env.run_pop3d(b"UIDL\r\nQUIT\r\n").stdout
    assert r1.startswith(f"+OK \r\n+OK \r\n1 {early}\r\n2 {late}\r\n.\r\n".encode())
    # new/ -> cur/ happened at QUIT; flags change: same UIDLs
    assert env.files("new") == []
    cur = env.maildir / "cur"
    os.rename(cur / (late + ":2,"), cur / (late + ":2,RS"))
    os.utime(cur / (late + ":2,RS"), (1700009999, 1700009999))
    r2 = env.run_pop3d(b"UIDL\r\nQUIT\r\n").stdout
    assert r2 == r1


def test_order_within_one_second_is_by_the_nanosecond(env):
    # One delivery process writes many messages a second, named
    # time.pid_seq: the tenth ("_10") sorts before the ninth by name, but
    # was written after it. Delivery order wins, and the name decides only
    # between equal times.
    t = 1700000500
    names = []
    for i, ns in ((9, 100), (10, 200), (11, 200), (8, 300)):
        n = f"{t}.P77_{i}.test.example"
        p = env.maildir / "new" / n
        p.write_bytes(message(i))
        os.utime(p, ns=(t * 10**9 + ns, t * 10**9 + ns))
        names.append(n)
    r = env.run_pop3d(b"UIDL\r\nQUIT\r\n").stdout
    listed = [l.split()[1].decode() for l in r.split(b"\r\n")[2:-3]]
    assert listed == names


def test_maildirsize_updated_after_deletions(env):
    env.add(1)
    env.add(2)
    ms = env.maildir / "maildirsize"
    ms.write_text("1000000S,100C\n%d 2\n" % (2 * len(message(1))))
    r = env.run_pop3d(b"DELE 1\r\nDELE 2\r\nQUIT\r\n")
    assert r.stdout.endswith(b"+OK \r\n")
    assert env.files("new") == [] and env.files("cur") == []
    lines = ms.read_text().splitlines()
    assert lines[-1] == f"-{2 * len(message(1))} -2"
    assert sum(int(l.split()[0]) for l in lines[1:]) == 0
    assert sum(int(l.split()[1]) for l in lines[1:]) == 0


def test_no_maildir(env):
    r = env.run_pop3d(b"", maildir="NoSuchMaildir")
    assert r.stdout == b"-ERR this user has no $HOME/Maildir\r\n" and r.returncode == 0


# ------------------------------------------------------------- authorization

def test_popup_auth_state_errors(env):
    r = env.run_popup(b"STAT\r\nPASS x\r\nUSER\r\nAPOP joe\r\nNOOP\r\nQUIT\r\n")
    lines = r.stdout.decode().split("\r\n")
    assert lines[1:] == ["-ERR authorization first", "-ERR USER first", "-ERR syntax error",
                         "-ERR syntax error", "+OK ", "+OK ", ""]
    assert r.returncode == 1


def test_bad_password_is_delayed_and_ends_session(env):
    t0 = time.time()
    r = env.run_popup(b"USER joe\r\nPASS wrong\r\nUSER joe\r\nPASS secret\r\n")
    assert time.time() - t0 >= 0.9
    assert r.stdout.endswith(b"+OK \r\n-ERR [AUTH] authorization failed\r\n")
    assert r.returncode == 1


def test_checkpassword_111_is_temporary(env):
    t0 = time.time()
    r = env.run_popup(b"USER joe\r\nPASS secret\r\n", extra_env={"TESTCP_MODE": "temp"})
    assert r.stdout.endswith(b"-ERR [SYS/TEMP] temporary failure, try again later\r\n")
    assert b"authorization failed" not in r.stdout
    assert time.time() - t0 < 0.9
    # what checkpassword says on its stderr is for the log, not for the client
    assert b"database" not in r.stdout
    assert r.stderr.splitlines() == [b"testcp: temporary failure: the user database is down",
                                     b"qmail-popup: login temporary remote=unknown user=joe"], r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_pop3d_refuses_to_serve_as_root(env):
    """A checkpassword that does not switch users (TESTCP_MODE=stay-root)
    leaves qmail-pop3d as root: it refuses, the log says why, and the client
    gets a temporary error, not a failed login and not the mailbox."""
    env.add(1)
    t0 = time.time()
    r = env.run_popup(b"USER joe\r\nPASS secret\r\nSTAT\r\nDELE 1\r\nQUIT\r\n", extra_env={"TESTCP_MODE": "stay-root"})
    assert r.stdout.split(b"\r\n")[1:] == [b"+OK ", b"-ERR [SYS/TEMP] temporary failure, try again later", b""]
    assert b"qmail-pop3d: refusing to serve a mailbox as root" in r.stderr
    assert time.time() - t0 < 0.9  # no failed-login delay
    assert len(env.files("new")) == 1
    # run directly as root: exit 111, nothing for a client, the reason on stderr
    r = subprocess.run([str(bin_dir() / "qmail-pop3d"), "Maildir"], input=b"STAT\r\nQUIT\r\n",
                       capture_output=True, cwd=env.home, timeout=60)
    assert (r.returncode, r.stdout) == (111, b"")
    assert b"uid 0" in r.stderr
    assert len(env.files("new")) == 1 and env.files("cur") == []


def test_checkpassword_crash(env):
    r = env.run_popup(b"USER joe\r\nPASS secret\r\n", extra_env={"TESTCP_MODE": "crash"})
    assert r.stdout.endswith(b"-ERR aack, child crashed\r\n")


def test_tlsrequired_refuses_apop_before_stls(env):
    """checkpassword cannot tell an APOP digest from a clear password, so
    under TLSREQUIRED APOP waits for TLS like USER/PASS, and the greeting
    carries no timestamp (which would announce APOP)."""
    env.make_cert()
    env.add(1)
    r = env.run_popup(b"APOP joe secret\r\nSTAT\r\nQUIT\r\n", extra_env={"TLSREQUIRED": "1"})
    assert r.stdout.split(b"\r\n") == [b"+OK ", b"-ERR [AUTH] plaintext login refused before STLS",
                                        b"-ERR authorization first", b"+OK ", b""]
    assert env.files("new") != [] and env.files("cur") == []
    # after STLS it is a login like any other
    port = env.serve(extra_env={"TLSREQUIRED": "1"})
    c = poplib.POP3("127.0.0.1", port, timeout=10)
    assert not c.timestamp.search(c.getwelcome())
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        c._shortcmd(f"APOP {USER} {PASSWORD}")
    c.stls(context=unverified())
    c._shortcmd(f"APOP {USER} {PASSWORD}")
    assert c.stat()[0] == 1
    c.quit()
    # without TLSREQUIRED the greeting offers APOP as qmail's does
    assert re.match(rb"\+OK <\d+\.\d+@pop\.test\.example>\r\n", env.run_popup(b"QUIT\r\n").stdout)


def test_apop(env):
    env.add(1)
    port = env.serve()
    c = poplib.POP3("127.0.0.1", port, timeout=10)
    assert c.timestamp.search(c.getwelcome())
    c.apop(USER, PASSWORD)
    assert c.stat()[0] == 1
    c.quit()


def test_auth_plain_initial_response_and_continuation(env):
    import base64
    ok = base64.b64encode(b"\0joe\0secret")
    r = env.run_popup(b"AUTH PLAIN " + ok + b"\r\nSTAT\r\nQUIT\r\n")
    assert r.stdout.split(b"\r\n")[1:3] == [b"+OK ", b"+OK 0 0"]
    r = env.run_popup(b"AUTH PLAIN\r\n" + ok + b"\r\nQUIT\r\n")
    assert r.stdout.split(b"\r\n")[1:4] == [b"+ ", b"+OK ", b"+OK "]
    r = env.run_popup(b"AUTH PLAIN\r\n*\r\nAUTH PLAIN !!!\r\nAUTH PLAIN " + base64.b64encode(b"bob\0joe\0secret")
                      + b"\r\nAUTH CRAM-MD5\r\nAUTH\r\nQUIT\r\n")
    assert r.stdout.split(b"\r\n")[1:-1] == [
        b"+ ", b"-ERR AUTH cancelled", b"-ERR malformed AUTH input",
        b"-ERR [AUTH] authorization identity not permitted", b"-ERR unrecognized authentication type",
        b"+OK ", b"PLAIN", b".", b"+OK "]


def test_capa_and_pipelining(env):
    env.add(1)
    # all commands in one write: popup must not swallow what belongs to pop3d
    port = env.serve()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"CAPA\r\nUSER joe\r\nPASS secret\r\nSTAT\r\nCAPA\r\nQUIT\r\n")
    data = b""
    while True:
        chunk = f.read1(65536)
        if not chunk:
            break
        data += chunk
    lines = data.split(b"\r\n")
    assert b"PIPELINING" in lines and b"USER" in lines and b"SASL PLAIN" in lines
    assert b"STLS" not in lines  # no certificate configured
    assert f"+OK 1 {len(message(1))}".encode() in lines
    assert lines[-2] == b"+OK "


# ------------------------------------------------------------------- clients

def test_poplib_fetch_and_delete(env):
    names = [env.add(i) for i in range(1, 6)]
    port = env.serve()
    c = poplib.POP3("127.0.0.1", port, timeout=10)
    c.user(USER)
    c.pass_(PASSWORD)
    assert c.stat() == (5, 5 * len(message(1)))
    assert [u.split()[1].decode() for u in c.uidl()[1]] == names
    for i in range(1, 6):
        resp, lines, octets = c.retr(i)
        assert b"\n".join(lines) + b"\n" == message(i)
        c.dele(i)
    c.quit()
    assert env.files("new") == [] and env.files("cur") == []


@pytest.mark.parametrize("mode", ["plain", "stls", "implicit"])
def test_dropped_connection_deletes_nothing(env, mode):
    env.make_cert()
    names = [env.add(i) for i in range(1, 4)]
    port = env.serve(implicit_tls=(mode == "implicit"))
    if mode == "implicit":
        c = poplib.POP3_SSL("127.0.0.1", port, timeout=10, context=unverified())
    else:
        c = poplib.POP3("127.0.0.1", port, timeout=10)
        if mode == "stls":
            c.stls(context=unverified())
    c.user(USER)
    c.pass_(PASSWORD)
    c.retr(1)
    c.dele(1)
    c.dele(2)
    c.sock.shutdown(socket.SHUT_RDWR)  # no QUIT (poplib keeps a file on the socket: close() alone keeps it open)
    c.sock.close()
    time.sleep(0.5)
    assert env.files("new") == names and env.files("cur") == []
    # the server side is gone too: no process left in the mailbox
    assert processes_in(env.maildir) == []


def test_two_sessions_on_one_mailbox(env):
    names = [env.add(i) for i in range(1, 5)]
    port = env.serve()
    a = poplib.POP3("127.0.0.1", port, timeout=10)
    a.user(USER); a.pass_(PASSWORD)
    b = poplib.POP3("127.0.0.1", port, timeout=10)
    b.user(USER); b.pass_(PASSWORD)
    a.dele(1); a.dele(2)
    b.dele(2); b.dele(3)
    a.quit()  # deletes 1, 2; moves 3, 4 to cur/
    assert b.retr(4)[1][0] == b"Subject: message 4"
    with pytest.raises(poplib.error_proto, match="unable to open that message"):
        b.retr(1)  # deleted by the other session
    b.quit()  # 3 now lives in cur/: still found and deleted
    assert env.files("new") == []
    assert env.files("cur") == [names[3] + ":2,"]
    assert (env.maildir / "cur" / (names[3] + ":2,")).read_bytes() == message(4)


def test_stls_with_poplib(env):
    env.make_cert()
    env.add(1)
    port = env.serve()
    c = poplib.POP3("127.0.0.1", port, timeout=10)
    assert "STLS" in c.capa()
    c.stls(context=unverified())
    assert "STLS" not in c.capa()
    c.user(USER)
    c.pass_(PASSWORD)
    assert c.retr(1)[1][0] == b"Subject: message 1"
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
    c.dele(1)
    c.quit()
    assert env.files("new") == [] and env.files("cur") == []


def test_implicit_tls_with_poplib(env):
    env.make_cert()
    env.add(1)
    port = env.serve(implicit_tls=True)
    c = poplib.POP3_SSL("127.0.0.1", port, timeout=10, context=unverified())
    caps = c.capa()
    assert "STLS" not in caps and "USER" in caps
    c.user(USER)
    c.pass_(PASSWORD)
    assert c.stat()[0] == 1
    c.quit()


def test_tls_below_1_2_refused(env):
    env.make_cert()
    port = env.serve(implicit_tls=True)
    ctx = unverified()
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        poplib.POP3_SSL("127.0.0.1", port, timeout=10, context=ctx)


def test_tlsrequired_refuses_plaintext_except_chosen_networks(env):
    env.make_cert()
    env.add(1)
    # everyone must use TLS except 10.0.0.0/8 (not us)
    port = env.serve(rules='10.:allow\n:allow,TLSREQUIRED="1"\n')
    c = poplib.POP3("127.0.0.1", port, timeout=10)
    caps = c.capa()
    assert "USER" not in caps and "SASL" not in caps and "STLS" in caps
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        c.user(USER)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        c._shortcmd("AUTH PLAIN AGpvZQBzZWNyZXQ=")
    c.stls(context=unverified())
    c.user(USER)
    c.pass_(PASSWORD)
    assert c.stat()[0] == 1
    c.quit()
    # from a network the rules exempt (here: 127.), plaintext works
    port = env.serve(rules='127.0.0.1:allow\n:allow,TLSREQUIRED="1"\n')
    c = poplib.POP3("127.0.0.1", port, timeout=10)
    c.user(USER)
    c.pass_(PASSWORD)
    c.quit()


def openssl_s_client(args, script: bytes):
    return subprocess.run(["openssl", "s_client", "-quiet", "-ign_eof", *args], input=script,
                          capture_output=True, timeout=30)


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl missing")
def test_openssl_s_client_stls_and_implicit(env):
    env.make_cert()
    env.add(1)
    port = env.serve()
    r = openssl_s_client(["-starttls", "pop3", "-connect", f"127.0.0.1:{port}"],
                         b"USER joe\r\nPASS secret\r\nSTAT\r\nQUIT\r\n")
    assert f"+OK 1 {len(message(1))}".encode() in r.stdout, r.stderr
    port = env.serve(implicit_tls=True)
    r = openssl_s_client(["-connect", f"127.0.0.1:{port}"], b"USER joe\r\nPASS secret\r\nRETR 1\r\nQUIT\r\n")
    assert b"Subject: message 1" in r.stdout, r.stderr
    assert r.stdout.rstrip().endswith(b"+OK")


def mpop_fetch(env, port, tls_args, keep=False):
    out = env.tmp / "mpop-out"
    shutil.rmtree(out, ignore_errors=True)
    for d in ("new", "cur", "tmp"):
        (out / d).mkdir(parents=True)
    pwfile = env.tmp / "pw"
    pwfile.write_text(PASSWORD)
    r = subprocess.run(["mpop", "--host=127.0.0.1", f"--port={port}", f"--user={USER}",
                        f"--passwordeval=cat {pwfile}", "--auth=user", *tls_args,
                        f"--delivery=maildir,{out}", "--keep=on" if keep else "--keep=off",
                        f"--uidls-file={env.tmp / 'uidls'}", "--quiet"],
                       capture_output=True, timeout=60, env={**os.environ, "HOME": str(env.tmp)})
    got = sorted(p.read_bytes() for p in (out / "new").iterdir())
    return r, got


@pytest.mark.skipif(not shutil.which("mpop"), reason="mpop missing")
@pytest.mark.parametrize("mode", ["plain", "stls", "implicit"])
def test_mpop(env, mode):
    env.make_cert()
    for i in range(1, 4):
        env.add(i, size=5000)
    port = env.serve(implicit_tls=(mode == "implicit"))
    tls = {"plain": ["--tls=off"],
           "stls": ["--tls=on", "--tls-starttls=on", "--tls-certcheck=off"],
           "implicit": ["--tls=on", "--tls-starttls=off", "--tls-certcheck=off"]}[mode]
    r, got = mpop_fetch(env, port, tls)
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()
    assert len(got) == 3
    for i in range(1, 4):
        # mpop may prepend its own header lines; the message itself is intact
        assert any(g.endswith(message(i, 5000)) for g in got)
    assert env.files("new") == [] and env.files("cur") == []


@pytest.mark.skipif(not shutil.which("fetchmail"), reason="fetchmail missing")
@pytest.mark.parametrize("mode", ["plain", "stls", "implicit"])
def test_fetchmail(env, mode):
    env.make_cert()
    for i in range(1, 4):
        env.add(i)
    port = env.serve(implicit_tls=(mode == "implicit"))
    outdir = env.tmp / "fm"
    outdir.mkdir()
    tls = {"plain": "sslproto '' ", "stls": "sslproto tls1.2+ no sslcertck ",
           "implicit": "ssl no sslcertck "}[mode]
    rc = env.tmp / "fetchmailrc"
    rc.write_text(f"set no bouncemail\npoll 127.0.0.1 port {port} proto pop3 auth password "
                  f"user {USER} password {PASSWORD} is root here {tls}fetchall nokeep "
                  f"mda \"/bin/sh -c 'cat > {outdir}/msg.$$'\"\n")
    rc.chmod(0o600)
    r = subprocess.run(["fetchmail", "-f", str(rc), "--nosyslog", "-N", "-i", str(env.tmp / "fmid"),
                        "--pidfile", str(env.tmp / "fm.pid")],
                       capture_output=True, timeout=60, env={**os.environ, "HOME": str(env.tmp)})
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()
    got = [p.read_bytes() for p in outdir.iterdir()]
    assert len(got) == 3
    for i in range(1, 4):
        assert any(message(i) in g for g in got)
    assert env.files("new") == [] and env.files("cur") == []


@pytest.mark.skipif(not shutil.which("getmail"), reason="getmail6 missing")
@pytest.mark.parametrize("mode", ["plain", "implicit"])
def test_getmail6(env, mode):
    env.make_cert()
    for i in range(1, 4):
        env.add(i)
    port = env.serve(implicit_tls=(mode == "implicit"))
    out = env.tmp / "gm-out"
    out.mkdir()
    gdir = env.tmp / "getmail"
    gdir.mkdir()
    rtype = "SimplePOP3Retriever" if mode == "plain" else "SimplePOP3SSLRetriever"
    # an external MDA: getmail's own Maildir delivery refuses to run as root
    (gdir / "getmailrc").write_text(
        f"[retriever]\ntype = {rtype}\nserver = 127.0.0.1\nport = {port}\nusername = {USER}\npassword = {PASSWORD}\n"
        f"\n[destination]\ntype = MDA_external\npath = /bin/sh\narguments = (\"-c\", \"cat > {out}/msg.$$\")\n"
        f"allow_root_commands = true\n\n[options]\nread_all = true\ndelete = true\nverbose = 0\n")
    r = subprocess.run(["getmail", "--getmaildir", str(gdir), "--rcfile", "getmailrc"],
                       capture_output=True, timeout=60, env={**os.environ, "HOME": str(env.tmp)})
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()
    got = [p.read_bytes() for p in out.iterdir()]
    assert len(got) == 3
    for i in range(1, 4):
        assert any(message(i) in g for g in got)
    assert env.files("new") == [] and env.files("cur") == []


# ----------------------------------------------------------------- bad input

# Started from a fresh, small Python so that the pages of this (large)
# test process, shared by vfork before exec, do not count as the child's.
RSS_PROBE = (
    "import os, resource, subprocess, sys\n"
    "u = os.environ.get('PROBE_UID')\n"
    "kw = {'user': int(u), 'group': int(os.environ['PROBE_GID']), 'extra_groups': []} if u else {}\n"
    "r = subprocess.run(sys.argv[1:], **kw)\n"
    "sys.stderr.write('maxrss=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(r.returncode)\n"
)


def max_rss_kib_of(cmd, data, cwd=None, envv=None):
    """Runs cmd with data on stdin (as the mailbox owner when we are root);
    returns (result, the child's max RSS in KiB)."""
    envv = dict(envv if envv is not None else os.environ)
    if OWNER[0] is not None:
        envv.update({"PROBE_UID": str(OWNER[0]), "PROBE_GID": str(OWNER[1])})
    with tempfile.TemporaryFile() as inp, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        inp.write(data)
        inp.seek(0)
        p = subprocess.run([sys.executable, "-c", RSS_PROBE, *cmd], stdin=inp, stdout=out, stderr=err,
                           cwd=cwd, env=envv, timeout=120)
        out.seek(0)
        err.seek(0)
        rss = int(re.search(rb"maxrss=(\d+)", err.read()).group(1))
        r = subprocess.CompletedProcess(cmd, p.returncode, out.read(), b"")
    return r, rss


def test_garbage_commands_popup(env):
    garbage = b"".join(b"GARBAGE%d \x01\x02\xff\r\n" % i for i in range(10000))
    r = env.run_popup(garbage + b"QUIT\r\n")
    lines = r.stdout.split(b"\r\n")
    assert lines[1:10001] == [b"-ERR authorization first"] * 10000
    assert lines[10001] == b"+OK "


def test_garbage_commands_pop3d_bounded_memory(env):
    env.add(1)
    garbage = b"".join(b"GARBAGE%d \x01\xff\r\n" % i for i in range(10000))
    big = b"X" * (1 << 20) + b"\r\n"
    nul = b"RETR\x001\r\nST\x00AT\r\n"
    data = garbage + big + nul + b"RETR 0\r\nRETR -1\r\nRETR 18446744073709551616\r\nRETR 99999999999999999999999999\r\n" \
        + b"TOP\r\nDELE x\r\nLIST 2\r\n" + big * 3 + b"STAT\r\nQUIT\r\n"
    env.give_to_owner()
    r, rss = max_rss_kib_of([str(bin_dir() / "qmail-pop3d"), "Maildir"], data, cwd=env.home)
    lines = r.stdout.split(b"\r\n")
    assert lines[0] == b"+OK "
    assert lines[1:10001] == [b"-ERR unimplemented"] * 10000
    assert lines[10001:] == [b"-ERR line too long", b"-ERR syntax error", b"-ERR syntax error",
                             b"-ERR messages are counted from 1", b"-ERR syntax error",
                             b"-ERR not that many messages", b"-ERR not that many messages",
                             b"-ERR syntax error", b"-ERR syntax error", b"-ERR not that many messages",
                             b"-ERR line too long", b"-ERR line too long", b"-ERR line too long",
                             f"+OK 1 {len(message(1))}".encode(), b"+OK ", b""]
    assert rss < 64 * 1024, rss


def test_long_lines_and_nul_popup(env):
    big = b"USER " + b"a" * (1 << 20) + b"\r\n"
    r = env.run_popup(big + b"USER jo\x00e\r\nPASS secret\r\n" + big + b"QUIT\r\n")
    lines = r.stdout.split(b"\r\n")
    assert lines[1:] == [b"-ERR line too long", b"-ERR syntax error", b"-ERR USER first",
                         b"-ERR line too long", b"+OK ", b""]


def test_line_without_newline_at_eof(env):
    r = env.run_popup(b"USER joe\r\nPASS secr")
    # a command cut by EOF is still a command; the session ends after it
    assert r.returncode == 1


def test_wrong_state_commands_over_tcp(env):
    env.add(1)
    port = env.serve()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    f.readline()
    for cmd, want in ((b"RETR 1", b"-ERR authorization first"), (b"DELE 1", b"-ERR authorization first"),
                      (b"STLS", b"-ERR STLS not available"), (b"PASS x", b"-ERR USER first")):
        s.sendall(cmd + b"\r\n")
        assert f.readline() == want + b"\r\n"
    s.sendall(b"USER joe\r\nPASS secret\r\nUSER joe\r\nSTLS\r\nAPOP a b\r\nQUIT\r\n")
    assert [f.readline() for _ in range(6)] == [b"+OK \r\n", b"+OK \r\n", b"-ERR unimplemented\r\n",
                                                 b"-ERR unimplemented\r\n", b"-ERR unimplemented\r\n", b"+OK \r\n"]


# ------------------------------------------------------------------- contrib

CONTRIB = pathlib.Path(__file__).resolve().parents[2] / "contrib" / "pop3"


def contrib_home(env):
    """A /var/qmail stand-in: control/me, and bin/ with the built programs and
    the test checkpassword in place of checkpassword-file."""
    (env.qmail / "control" / "me").write_text("pop.test.example\n")
    b = env.qmail / "bin"
    b.mkdir()
    for prog in ("tcpserver", "tlswrap", "qmail-popup", "qmail-pop3d"):
        (b / prog).symlink_to(bin_dir() / prog)
    (b / "checkpassword-file").symlink_to(env.cp)


def run_contrib_command(env, cmd: str, implicit_tls=False, settings=None):
    """Runs a shipped service command as shipped: the home, address, port and
    rules come from its settings (the environment), never by editing it."""
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    p = port.getsockname()[1]
    port.close()
    subprocess.run([str(bin_dir() / "tcprules"), str(env.tmp / "tcp.pop3.cdb"), str(env.tmp / "t.tmp")],
                   input=(CONTRIB / "tcp.pop3").read_bytes(), check=True)
    e = env.env()
    e.update(settings or {})
    e.update(QMAIL_HOME=str(env.qmail), IP="127.0.0.1", PORT=str(p), RULES=str(env.tmp / "tcp.pop3.cdb"))
    proc = subprocess.Popen(["sh", "-c", cmd], env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    env.servers.append(proc)
    deadline = time.time() + 10
    while True:
        try:
            c = (poplib.POP3_SSL("127.0.0.1", p, timeout=10, context=unverified()) if implicit_tls
                 else poplib.POP3("127.0.0.1", p, timeout=10))
            break
        except OSError:
            assert time.time() < deadline, proc.stdout.read1(4096) if proc.poll() is not None else "no listener"
            time.sleep(0.05)
    if not implicit_tls:
        assert "STLS" in c.capa()
        c.stls(context=unverified())
    c.user(USER)
    c.pass_(PASSWORD)
    assert c.stat()[0] == 1
    c.quit()


@pytest.mark.parametrize("service", ["qmail-pop3d", "qmail-pop3ds"])
def test_contrib_daemontools_run_scripts(env, service):
    """The daemontools services work for any home: QMAIL_HOME, IP, PORT and
    RULES are settings; the logger runs as HOME/ids' qmaill."""
    env.make_cert()
    env.add(1)
    contrib_home(env)
    run = (CONTRIB / "daemontools" / service / "run").read_text()
    assert subprocess.run(["sh", "-n", "-c", run]).returncode == 0
    log = (CONTRIB / "daemontools" / service / "log" / "run").read_text()
    assert "multilog" in log and "$QMAIL/ids" in log and "setuidgid qmaill" not in log
    run_contrib_command(env, run, implicit_tls=service.endswith("s"))


@pytest.mark.parametrize("unit", ["qmail-pop3d.service", "qmail-pop3ds.service"])
def test_contrib_systemd_units(env, unit):
    env.make_cert()
    env.add(1)
    contrib_home(env)
    text = (CONTRIB / "systemd" / unit).read_text()
    m = re.search(r"^ExecStart=/bin/sh -c '(.*)'$", text, re.M)
    defaults = dict(kv.split("=", 1) for kv in re.search(r"^Environment=(.*)$", text, re.M).group(1).split())
    assert m and defaults["QMAIL_HOME"] == "/var/qmail" and "/var/qmail" not in m.group(1)
    run_contrib_command(env, m.group(1), implicit_tls=unit.startswith("qmail-pop3ds"), settings=defaults)


def test_contrib_tcp_pop3_compiles_like_ucspi(env):
    if not os.path.exists("/usr/bin/tcprules"):
        pytest.skip("ucspi-tcp missing")
    text = (CONTRIB / "tcp.pop3").read_bytes()
    outs = []
    for tool in ("/usr/bin/tcprules", str(bin_dir() / "tcprules")):
        cdb = env.tmp / f"{len(outs)}.cdb"
        subprocess.run([tool, str(cdb), str(cdb) + ".tmp"], input=text, check=True)
        outs.append(cdb.read_bytes())
    assert outs[0] == outs[1]


# ------------------------------------------- with the real checkpassword-file

def test_full_chain_with_checkpassword_file(tmp_path):
    """tcpserver -> qmail-popup -> checkpassword-file -> qmail-pop3d on a
    virtual mailbox made by vadddomain/vadduser. qmail-popup always hands
    checkpassword its timestamp (as qmail's does): USER/PASS must still work."""
    import pwd
    need = ("qmail-setup", "vadddomain", "vadduser", "checkpassword-file")
    if not all((bin_dir() / n).exists() for n in need):
        pytest.skip("checkpassword-file and the v* tools are not built")
    if os.geteuid() != 0:
        pytest.skip("needs root (checkpassword-file switches users)")
    account = f"sqpop{os.getpid() % 100000}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", account], check=True)
    try:
        full_chain(tmp_path, account)
    finally:
        subprocess.run(["userdel", account], capture_output=True)


def full_chain(tmp_path, account):
    import pwd
    pw = pwd.getpwnam(account)
    from conftest import make_home
    q = make_home(tmp_path, "mail.pop.example")
    for p in [q.path, *q.path.parents]:
        if str(p) in ("/", "/tmp"):
            break
        p.chmod(p.stat().st_mode | 0o011)
    assert q.run("vadddomain", "-u", account, "pop.example", input="pm-secret\n").returncode == 0
    r = q.run("vadduser", "joe@pop.example", input=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    md = q.path / "domains" / "pop.example" / "joe" / "Maildir"
    (md / "new" / "1700000001.M1P1.test").write_bytes(message(1))
    os.chown(md / "new" / "1700000001.M1P1.test", pw.pw_uid, pw.pw_gid)
    p = subprocess.Popen([q.bin("tcpserver"), "-1", "-R", "-H", "-l0", "127.0.0.1", "0", q.bin("qmail-popup"),
                          "mail.pop.example", q.bin("checkpassword-file"), q.bin("qmail-pop3d"), "Maildir"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=q.env)
    try:
        port = int(p.stdout.readline())
        c = poplib.POP3("127.0.0.1", port, timeout=10)
        c.user("joe@pop.example")
        c.pass_(PASSWORD)
        assert c.retr(1)[1][0] == b"Subject: message 1"
        c.dele(1)
        c.quit()
        assert list((md / "new").iterdir()) == [] and list((md / "cur").iterdir()) == []
        c = poplib.POP3("127.0.0.1", port, timeout=10)
        c.user("joe@pop.example")
        with pytest.raises(poplib.error_proto, match="authorization failed"):
            c.pass_("wrong")
        # A broken user database: the client, not logged in, learns only that
        # it should try again; the details go to the log (tcpserver's stderr).
        cdb = q.path / "domains" / "pop.example" / "vpasswd.cdb"
        cdb.unlink()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"USER joe@pop.example\r\nPASS " + PASSWORD.encode() + b"\r\n")
        rest = f.read()
        s.close()
        assert rest == b"+OK \r\n-ERR [SYS/TEMP] temporary failure, try again later\r\n"
    finally:
        p.terminate()
        p.wait()
    log = p.stderr.read()
    assert b"checkpassword-file: temporary failure: " + str(cdb).encode() + b" is missing" in log, log


@pytest.mark.parametrize("mode", ["plain", "stls", "implicit"])
def test_big_message_intact(env, mode):
    env.make_cert()
    env.add(1, size=3_000_000)
    port = env.serve(implicit_tls=(mode == "implicit"))
    if mode == "implicit":
        c = poplib.POP3_SSL("127.0.0.1", port, timeout=30, context=unverified())
    else:
        c = poplib.POP3("127.0.0.1", port, timeout=30)
        if mode == "stls":
            c.stls(context=unverified())
    c.user(USER)
    c.pass_(PASSWORD)
    assert b"\n".join(c.retr(1)[1]) + b"\n" == message(1, 3_000_000)
    c.quit()


def test_contrib_make_servercert(env):
    (env.qmail / "control" / "me").write_text("pop.test.example\n")
    r = subprocess.run(["sh", str(CONTRIB / "make-servercert.sh"), str(env.qmail)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pem = env.qmail / "control" / "servercert.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
    text = pem.read_text()
    assert "BEGIN CERTIFICATE" in text and "PRIVATE KEY" in text
    env.add(1)
    port = env.serve(implicit_tls=True)
    c = poplib.POP3_SSL("127.0.0.1", port, timeout=10, context=unverified())
    assert c.sock.getpeercert(binary_form=True)
    c.user(USER)
    c.pass_(PASSWORD)
    assert c.stat()[0] == 1
    c.quit()


def test_contrib_run_local(env):
    import signal as sig
    env.add(1)
    contrib_home(env)
    ports = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s.getsockname()[1])
        s.close()
    p = subprocess.Popen(["sh", str(CONTRIB / "run-local.sh"), str(env.qmail), str(ports[0]), str(ports[1])],
                         env=env.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while True:
            try:
                c = poplib.POP3("127.0.0.1", ports[0], timeout=10)
                d = poplib.POP3_SSL("127.0.0.1", ports[1], timeout=10, context=unverified())
                break
            except OSError:
                assert time.time() < deadline and p.poll() is None
                time.sleep(0.1)
        c.stls(context=unverified())
        for conn in (c, d):
            conn.user(USER)
            conn.pass_(PASSWORD)
            assert conn.stat()[0] == 1
            conn.quit()
    finally:
        p.send_signal(sig.SIGTERM)
        out = p.communicate(timeout=10)[0]
    assert p.returncode == 0
    assert b"POP3 stopped" in out
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
