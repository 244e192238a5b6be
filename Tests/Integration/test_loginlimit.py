"""Limits on failed logins (control/authfaillimit, control/authfailexempt),
shared on disk by qmail-popup and qmail-smtpd-auth across connections: a
client that hangs up after each wrong password (skipping the per-try delay)
still gets only N guesses per address and per account. Run under real
tcpserver, from 127.0.0.1, 127.0.0.2 and 127.0.0.3 (all loopback on Linux).
A checkpassword wrapper counts its runs, to prove that a limited attempt is
refused before any password check.

Run: SQ_BIN=$PWD/.build/release python3 -m pytest -q Tests/Integration/test_loginlimit.py
"""
import base64
import os
import pathlib
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import bin_dir, make_home
from smtp_helpers import TcpServer, smtpd_env
from test_pop3 import Env, USER, PASSWORD

NOBODY = 65534


def counting(cp: pathlib.Path, calls: pathlib.Path) -> pathlib.Path:
    """A checkpassword that notes each run in `calls`, then runs `cp`."""
    w = cp.parent / (cp.name + "-counting")
    w.write_text(f"#!/bin/sh\necho run >> {calls}\nexec {cp} \"$@\"\n")
    w.chmod(0o755)
    return w


def runs(calls: pathlib.Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def pop3_login(port, user, password, source="127.0.0.1"):
    """One connection: USER/PASS, the answer to PASS, then hang up (no QUIT:
    the guesser's way of skipping the delay is not needed here, as
    POP3FAILDELAY=0, but it is the same sequence)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0)) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(f"USER {user}\r\n".encode())
        assert f.readline().startswith(b"+OK")
        s.sendall(f"PASS {password}\r\n".encode())
        return f.readline().decode().rstrip("\r\n")


@pytest.fixture
def pop(tmp_path):
    e = Env(tmp_path)
    e.calls = tmp_path / "calls"
    e.cp = counting(e.cp, e.calls)
    yield e
    e.stop()


def pop_log(env):
    env.stop()
    return b"".join(p.stderr.read() for p in env.servers).decode()


def test_pop3_per_address_limit(pop):
    # a 10 s window: the 11 logins before the check below take well under a
    # second idle, but several seconds on a loaded 2-core machine (CI failed
    # with a 4 s window once)
    (pop.qmail / "control" / "authfaillimit").write_text("ip 3 10\nuser 100 10\n")
    (pop.qmail / "control" / "authfailexempt").write_text("# trusted\n127.0.0.3\n")
    port = pop.serve(extra_env={"POP3FAILDELAY": "0"})
    t0 = time.time()
    for _ in range(3):
        assert pop3_login(port, USER, "wrong") == "-ERR [AUTH] authorization failed"
    assert runs(pop.calls) == 3
    # the right password, from the same address: refused unchecked
    assert pop3_login(port, USER, PASSWORD) == "-ERR [SYS/TEMP] too many failed logins, try again later"
    assert runs(pop.calls) == 3
    # another address is not affected
    assert pop3_login(port, USER, PASSWORD, source="127.0.0.2").startswith("+OK")
    # an exempt address is neither limited nor counted
    for _ in range(5):
        assert pop3_login(port, USER, "wrong", source="127.0.0.3") == "-ERR [AUTH] authorization failed"
    assert pop3_login(port, USER, PASSWORD, source="127.0.0.3").startswith("+OK")
    # still limited until the window (10 s from the first failure) is over
    assert time.time() - t0 < 9, "too slow to check the window"
    assert pop3_login(port, USER, PASSWORD).startswith("-ERR [SYS/TEMP]")
    time.sleep(max(0, t0 + 10.2 - time.time()))
    before = runs(pop.calls)
    assert pop3_login(port, USER, PASSWORD).startswith("+OK")
    assert runs(pop.calls) == before + 1
    log = pop_log(pop)
    assert log.count("qmail-popup: login limited remote=127.0.0.1 user=joe\n") == 2, log
    assert log.count("qmail-popup: login failed remote=127.0.0.1 user=joe\n") == 3, log


def test_pop3_sessions_held_open_are_not_counted(pop):
    """Good logins whose sessions are still open count for nothing (a POP3
    login's verdict comes only when its session ends): an address holding
    more sessions than the limit (webmail, an office behind one address)
    logs in every time, and its wrong passwords are still limited."""
    (pop.qmail / "control" / "authfaillimit").write_text("ip 3 60\nuser 0 0\n")
    port = pop.serve(extra_env={"POP3FAILDELAY": "0"})

    def open_session():
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        f = s.makefile("rb")
        assert f.readline().startswith(b"+OK")
        s.sendall(f"USER {USER}\r\nPASS {PASSWORD}\r\nSTAT\r\n".encode())
        assert [f.readline()[:3] for _ in range(3)] == [b"+OK"] * 3  # USER, PASS, STAT
        return s

    held = []
    try:
        held = [open_session() for _ in range(8)]
        for _ in range(3):
            assert pop3_login(port, USER, "wrong") == "-ERR [AUTH] authorization failed"
        assert pop3_login(port, USER, "wrong") == "-ERR [SYS/TEMP] too many failed logins, try again later"
    finally:
        for s in held:
            s.close()
    assert runs(pop.calls) == 11


def test_pop3_parallel_guesses_are_limited_after_the_burst(pop):
    """20 connections at once, each one wrong password, from a fresh address:
    each is checked (no refusal is recorded yet), and every attempt after
    the burst is refused unchecked for the rest of the window."""
    import concurrent.futures
    (pop.qmail / "control" / "authfaillimit").write_text("ip 3 60\nuser 0 0\n")
    port = pop.serve(extra_env={"POP3FAILDELAY": "0"})
    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        answers = list(ex.map(lambda _: pop3_login(port, USER, "wrong"), range(20)))
    assert set(answers) <= {"-ERR [AUTH] authorization failed",
                            "-ERR [SYS/TEMP] too many failed logins, try again later"}, answers
    checked = runs(pop.calls)
    assert 3 <= checked <= 20
    for _ in range(5):
        assert pop3_login(port, USER, PASSWORD) == "-ERR [SYS/TEMP] too many failed logins, try again later"
    assert runs(pop.calls) == checked


def test_pop3_per_account_limit_across_addresses(pop):
    (pop.qmail / "control" / "authfaillimit").write_text("ip 100 60\nuser 3 60\n")
    port = pop.serve(extra_env={"POP3FAILDELAY": "0"})
    # a good login clears the account's count: 2 + 2 failures stay below 3
    for src in ("127.0.0.1", "127.0.0.2"):
        assert pop3_login(port, USER, "wrong", source=src) == "-ERR [AUTH] authorization failed"
    assert pop3_login(port, USER, PASSWORD).startswith("+OK")
    for src in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
        assert pop3_login(port, USER, "wrong", source=src) == "-ERR [AUTH] authorization failed"
    n = runs(pop.calls)
    # three failures from three addresses: the account is limited from anywhere
    for src in ("127.0.0.1", "127.0.0.4"):
        assert pop3_login(port, USER, PASSWORD, source=src).startswith("-ERR [SYS/TEMP] too many failed")
    assert runs(pop.calls) == n
    # other accounts are still checked (and fail normally)
    assert pop3_login(port, "mary", "x", source="127.0.0.4") == "-ERR [AUTH] authorization failed"
    assert runs(pop.calls) == n + 1
    assert "qmail-popup: login limited remote=127.0.0.4 user=joe\n" in pop_log(pop)


def test_pop3_temporary_failures_do_not_count(pop):
    (pop.qmail / "control" / "authfaillimit").write_text("ip 2 60\nuser 2 60\n")
    for _ in range(4):
        r = pop.run_popup(b"USER joe\r\nPASS secret\r\n", extra_env={"TESTCP_MODE": "temp", "TCPREMOTEIP": "192.0.2.9"})
        assert r.stdout.endswith(b"-ERR [SYS/TEMP] temporary failure, try again later\r\n")
    r = pop.run_popup(b"USER joe\r\nPASS secret\r\nQUIT\r\n", extra_env={"TCPREMOTEIP": "192.0.2.9"})
    assert b"+OK" in r.stdout.split(b"\r\n")[2], r.stdout


def test_pop3_defaults_are_on(pop):
    """No control file: 10 failures per address per 10 minutes."""
    for i in range(10):
        r = pop.run_popup(b"USER joe\r\nPASS wrong\r\n", extra_env={"TCPREMOTEIP": "192.0.2.10", "POP3FAILDELAY": "0"})
        assert r.stdout.endswith(b"-ERR [AUTH] authorization failed\r\n")
    r = pop.run_popup(b"USER joe\r\nPASS secret\r\n", extra_env={"TCPREMOTEIP": "192.0.2.10"})
    assert r.stdout.endswith(b"-ERR [SYS/TEMP] too many failed logins, try again later\r\n")
    assert b"qmail-popup: login limited remote=192.0.2.10 user=joe\n" in r.stderr
    assert runs(pop.calls) == 10
    # the table is bounded: 4096 records of 24 bytes at most
    assert (pop.qmail / "authfail" / "failures").stat().st_size <= 4096 * 24


# --- SMTP AUTH through qmail-smtpd-auth (root side) --------------------------

SMTP_CP = """#!/bin/sh
echo run >> {calls}
exec python3 -c '
import os, sys
data = b""
while True:
    c = os.read(3, 4096)
    if not c:
        break
    data += c
u, p = data.split(b"\\0")[:2]
sys.exit(0 if (u, p) == (b"joe", b"secret") else 1)
'
"""


@pytest.fixture
def smtp():
    """A home nobody (qmail-smtpd) can read, outside pytest's private tmp."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="sq-authlimit-", dir="/tmp"))
    d.chmod(0o755)
    home = make_home(d)
    calls = d / "calls"
    cp = d / "cp"
    cp.write_text(SMTP_CP.format(calls=calls))
    cp.chmod(0o755)
    servers = []

    def serve(limits):
        home.control("authfaillimit", limits)
        argv = [home.bin("qmail-smtpd-auth"), "-u", str(NOBODY), "-g", str(NOBODY), str(cp), "--",
                home.bin("qmail-smtpd"), "mx.example.org"]
        s = TcpServer(home, argv, env=smtpd_env(home, SMTPAUTHFAILDELAY=0))
        servers.append(s)
        return s
    yield serve, calls
    for s in servers:
        s.stop()
    shutil.rmtree(d, ignore_errors=True)


def smtp_auth(port, user, password, source="127.0.0.1"):
    c = smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0))
    c.ehlo("client.example")
    code, text = c.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode())
    c.close()  # hang up at once, as a guesser does
    return code, text.decode()


@pytest.mark.skipif(os.geteuid() != 0, reason="qmail-smtpd-auth starts qmail-smtpd as nobody: needs root")
def test_smtp_auth_per_address_and_per_account(smtp):
    serve, calls = smtp
    s = serve("ip 3 8\nuser 5 60\n")  # 8 s: room for a loaded machine before the window ends
    t0 = time.time()
    for _ in range(3):
        assert smtp_auth(s.port, "joe", "wrong")[0] == 535
    assert runs(calls) == 3
    assert smtp_auth(s.port, "joe", "secret") == (454, "too many failed logins, try again later (#4.7.0)")
    assert runs(calls) == 3
    assert smtp_auth(s.port, "joe", "secret", source="127.0.0.2")[0] == 235
    # the address's window ends; joe's own count (3, from 127.0.0.1) was
    # cleared by the good login
    time.sleep(max(0, t0 + 8.2 - time.time()))
    assert smtp_auth(s.port, "joe", "secret")[0] == 235
    # per account, across addresses (5 per minute)
    for i in range(5):
        assert smtp_auth(s.port, "joe", "wrong", source=f"127.0.1.{i + 1}")[0] == 535
    n = runs(calls)
    assert smtp_auth(s.port, "joe", "secret", source="127.0.2.1")[0] == 454
    assert runs(calls) == n
    s.stop()
    log = s.proc.stderr.read().decode()
    assert "qmail-smtpd-auth: login limited remote=127.0.0.1 user=joe\n" in log, log
    assert "qmail-smtpd-auth: login limited remote=127.0.2.1 user=joe\n" in log, log


def test_fail2ban_filter_ignores_limited_lines():
    """A limited attempt is not a guess (nothing was checked), and counting it
    would let one attacker get an account's honest users banned."""
    import re
    conf = (pathlib.Path(__file__).resolve().parents[2] / "contrib" / "fail2ban" / "filter.d" / "swift-qmail.conf").read_text()
    rx = re.search(r"^failregex = (.*)$", conf, re.M).group(1)
    rx = rx.replace("(?:%(__prefix_line)s)?", "").replace("<HOST>", r"(?P<host>\S+)")
    assert re.match(rx, "qmail-popup: login failed remote=192.0.2.7 user=joe")
    assert not re.match(rx, "qmail-popup: login limited remote=192.0.2.7 user=joe")
    assert not re.match(rx, "qmail-smtpd-auth: login limited remote=192.0.2.7 user=joe")
