"""Home-host clustering (issue 22), POP3: a client logs in on any host and
reads the mailbox on its home host. Two full instances on 127.0.0.1, each
with qmail-popup HOST checkpassword-file qmail-pop3d Maildir under
tcpserver; the directory says alice lives on A and bob on B (the domain's
default), and bob's Maildir exists only on B. checkpassword-file on A runs
qmail-pop3proxy for bob, which logs in on B's POP3 server and relays the
session.
"""
import base64
import os
import pathlib
import poplib
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile

import pytest

from cluster_helpers import HOSTS, Host, no_failures, pop3_refused as refused, vuser  # noqa: F401 (vuser: a fixture)
from conftest import wait_for
from smtp_helpers import TcpServer, smtpd_env

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: makes system accounts and switches uid")

BOB_PW = "b0b's-Secret pass"   # with a space: PASS carries it whole
ALICE_PW = "alice-Pw-71"


@pytest.fixture
def pop3cluster(vuser):
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-cluster-pop3-", dir="/var/tmp"))
    base.chmod(0o755)
    a, b = Host(base / "a", HOSTS[0], vuser), Host(base / "b", HOSTS[1], vuser)
    try:
        routes = "".join(f"{h.name}:127.0.0.1:{h.port}\n" for h in (a, b))
        for h in (a, b):
            h.admin("vadddomain", "-u", vuser.pw_name, "-H", HOSTS[1], "example.org", password="pm")
            h.admin("vadduser", "-H", HOSTS[0], "alice@example.org", password=ALICE_PW)
            h.admin("vadduser", "bob@example.org", password=BOB_PW)
            h.q.control("clusterhosts", routes)
        # As with a shared directory server: bob's mailbox is B's alone.
        shutil.rmtree(a.q.path / "domains" / "example.org" / "bob")
        for h in (a, b):
            h.start_qmtpd()
            h.start_send()
            h.pop3port = h.start_pop3()
        # Each test cluster host has its own POP3 port: the other's.
        a.q.control("clusterpop3port", f"{b.pop3port}\n")
        b.q.control("clusterpop3port", f"{a.pop3port}\n")
        a.inject("bob@example.org", b"hello bob, from A\n")
        wait_for(lambda: len(b.maildir_new("bob")) == 1, 30, "bob's message on B\n" + a.log() + b.log())
        yield a, b
    finally:
        for h in (a, b):
            h.stop()
        shutil.rmtree(base, ignore_errors=True)


def bob_files(b):
    d = b.q.path / "domains" / "example.org" / "bob" / "Maildir"
    return sorted(p.name for sub in ("new", "cur") for p in (d / sub).iterdir())


def login(port, user, password, stls=False):
    c = poplib.POP3("127.0.0.1", port, timeout=30)
    if stls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        c.stls(ctx)
    c.user(user)
    c.pass_(password)
    return c


def test_user_homed_elsewhere_reads_the_home_mailbox(pop3cluster):
    """bob logs in on A and sees, reads and deletes what is in B's Maildir;
    A's log names the home host, no log has the password."""
    a, b = pop3cluster
    c = login(a.pop3port, "bob@example.org", BOB_PW)
    assert c.stat()[0] == 1
    assert any(u.endswith(bob_files(b)[0].split(":")[0].encode()) for u in c.uidl()[1])
    assert b"hello bob, from A" in c.retr(1)[1]
    c.dele(1)
    c.quit()
    wait_for(lambda: bob_files(b) == [], 10, "B's Maildir emptied")
    assert f"qmail-pop3proxy: bob@example.org relayed to home host {HOSTS[1]} 127.0.0.1:{b.pop3port}" in a.pop3_log()
    # (qmail-popup logs "ok" when the session it ran has ended)
    wait_for(lambda: "qmail-popup: login ok remote=127.0.0.1 user=bob@example.org" in b.pop3_log(), 10,
             lambda: "B's login line\n" + b.pop3_log())
    for h in (a, b):
        assert BOB_PW not in h.pop3_log() and "b0b" not in h.pop3_log()
    no_failures(a, b)


def test_curl_and_mpop_through_the_proxy(pop3cluster):
    a, b = pop3cluster
    url = f"pop3://127.0.0.1:{a.pop3port}/"
    r = subprocess.run(["curl", "-s", "--max-time", "20", "--user", f"bob@example.org:{BOB_PW}", url + "1"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0 and b"hello bob, from A" in r.stdout, r
    if not shutil.which("mpop"):
        return
    out = a.q.path.parent / "mpop-out"
    for d in ("new", "cur", "tmp"):
        (out / d).mkdir(parents=True)
    pw = a.q.path.parent / "mpop-pw"
    pw.write_text(BOB_PW)
    r = subprocess.run(["mpop", "--host=127.0.0.1", f"--port={a.pop3port}", "--user=bob@example.org",
                        f"--passwordeval=cat {pw}", "--auth=user", "--tls=off", f"--delivery=maildir,{out}",
                        "--keep=off", f"--uidls-file={out / 'uidls'}", "--quiet"],
                       capture_output=True, timeout=60, env={**os.environ, "HOME": str(out)})
    assert r.returncode == 0, r.stderr.decode() + r.stdout.decode()
    got = list((out / "new").iterdir())
    assert len(got) == 1 and got[0].read_bytes().endswith(b"hello bob, from A\n")
    wait_for(lambda: bob_files(b) == [], 10, "B's Maildir emptied by mpop")


def test_user_homed_here_is_served_here(pop3cluster):
    a, b = pop3cluster
    b.inject("alice@example.org", b"for alice, via B\n")
    wait_for(lambda: len(a.maildir_new("alice")) == 1, 30, "alice's message on A\n" + a.log() + b.log())
    c = login(a.pop3port, "alice@example.org", ALICE_PW)
    assert c.stat()[0] == 1 and b"for alice, via B" in c.retr(1)[1]
    c.quit()
    assert "qmail-pop3proxy" not in a.pop3_log()
    assert "alice" not in b.pop3_log()
    # A wrong password is refused here, as ever.
    assert refused(a.pop3port, "bob@example.org", "wrong").startswith("-ERR [AUTH]")
    assert "qmail-pop3proxy" not in a.pop3_log()


def test_home_host_down_is_a_temporary_failure(pop3cluster):
    """B's POP3 server stopped, or silent: bob's login on A gets -ERR
    [SYS/TEMP] (never "authorization failed"), and his mail on B stays."""
    a, b = pop3cluster
    before = bob_files(b)
    b.stop_pop3()
    answer = refused(a.pop3port, "bob@example.org", BOB_PW)
    assert answer.startswith("-ERR [SYS/TEMP]"), answer
    log = a.pop3_log()
    assert (f"qmail-pop3proxy: bob@example.org not relayed to home host {HOSTS[1]}: "
            f"unable to connect to 127.0.0.1:{b.pop3port}") in log, log
    assert "qmail-popup: login temporary remote=127.0.0.1 user=bob@example.org" in log
    # A server that takes the connection and says nothing: timeoutconnect.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        silent_port = silent.getsockname()[1]
        a.q.control("clusterpop3port", f"{silent_port}\n")
        a.q.control("timeoutconnect", "1\n")
        assert refused(a.pop3port, "bob@example.org", BOB_PW).startswith("-ERR [SYS/TEMP]")
    assert f"127.0.0.1:{silent_port}: greeting: timeout" in a.pop3_log(), a.pop3_log()
    assert bob_files(b) == before
    assert BOB_PW not in a.pop3_log()


def test_home_host_refusing_the_password_is_temporary(pop3cluster):
    """B's copy of the directory has a newer password than A's: A accepts
    the old one, B refuses it. The client is told to try later ([SYS/TEMP]:
    the copies will agree), not that its password is wrong."""
    a, b = pop3cluster
    b.admin("vpasswd", "bob@example.org", password="a-newer-one")
    answer = refused(a.pop3port, "bob@example.org", BOB_PW)
    assert answer.startswith("-ERR [SYS/TEMP]"), answer
    assert f"home host {HOSTS[1]}: 127.0.0.1:{b.pop3port}: refused the login: -ERR [AUTH]" in a.pop3_log()
    assert BOB_PW not in a.pop3_log() and "a-newer-one" not in a.pop3_log()
    assert len(bob_files(b)) == 1


def test_tls_between_hosts(pop3cluster):
    """clusterpop3tls stls/tls with clusterca.pem: A checks B's certificate
    (signed by the CA, naming hostb); one from another CA means [SYS/TEMP].
    The client itself on STLS to A: the proxy runs inside qmail-popup's TLS
    relay."""
    import backend_servers as bs
    a, b = pop3cluster
    certs = bs.make_certs(a.q.path.parent / "certs", name=HOSTS[1], san=f"DNS:{HOSTS[1]}")
    key_and_cert = (certs / "server.pem").read_bytes() + (certs / "server.key").read_bytes()
    for h in (a, b):
        (h.q.path / "control" / "servercert.pem").write_bytes(key_and_cert)
    a.q.control("clusterpop3tls", "stls\n")
    a.q.control("clusterca.pem", (certs / "ca.pem").read_text())
    c = login(a.pop3port, "bob@example.org", BOB_PW, stls=True)
    assert c.stat()[0] == 1 and b"hello bob, from A" in c.retr(1)[1]
    c.quit()
    # implicit TLS (B's pop3s under tlswrap)
    a.q.control("clusterpop3tls", "tls\n")
    a.q.control("clusterpop3port", f"{b.start_pop3(tls=True)}\n")
    c = login(a.pop3port, "bob@example.org", BOB_PW)
    assert c.stat()[0] == 1
    c.quit()
    assert a.pop3_log().count("relayed to home host") == 2
    # a certificate the configured CA did not sign
    a.q.control("clusterca.pem", (certs / "otherca.pem").read_text())
    assert refused(a.pop3port, "bob@example.org", BOB_PW).startswith("-ERR [SYS/TEMP]")
    assert f"certificate of {HOSTS[1]}" in a.pop3_log()
    assert len(bob_files(b)) == 1


def test_smtp_auth_on_every_host(pop3cluster, vuser):
    """SMTP AUTH on A for bob, whose mailbox is not on A: checkpassword-file
    runs qmail-smtpd-auth's program in /, not in bob's (absent) home."""
    a, _ = pop3cluster
    argv = [a.q.bin("qmail-smtpd-auth"), "-u", str(vuser.pw_uid), "-g", str(vuser.pw_gid),
            a.q.bin("checkpassword-file"), "/bin/true", "--", a.q.bin("qmail-smtpd"), a.name]
    s = TcpServer(a.q, argv, env=smtpd_env(a.q, SMTPAUTHFAILDELAY=0))
    try:
        for user, pw in (("bob@example.org", BOB_PW), ("alice@example.org", ALICE_PW)):
            c = smtplib.SMTP("127.0.0.1", s.port, timeout=30)
            c.ehlo("client.example")
            code, text = c.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0{user}\0{pw}".encode()).decode())
            c.close()
            assert code == 235, (user, code, text)
    finally:
        s.stop()


def test_apop_login_is_relayed_with_the_stored_password(pop3cluster):
    """An APOP digest is good only for this host's greeting: for the home
    host checkpassword hands on the plain password the directory holds
    (control/vplaintext, vadduser -C), with which APOP can have matched."""
    a, b = pop3cluster
    for h in (a, b):
        h.q.control("vplaintext", "1\n")
        h.admin("vadduser", "-C", "dave@example.org", password="dave-Pw-3")
    shutil.rmtree(a.q.path / "domains" / "example.org" / "dave")
    c = poplib.POP3("127.0.0.1", a.pop3port, timeout=30)
    c.apop("dave@example.org", "dave-Pw-3")
    assert c.stat()[0] == 0
    c.quit()
    assert f"dave@example.org relayed to home host {HOSTS[1]}" in a.pop3_log()
    assert "dave-Pw-3" not in a.pop3_log()


class FromPOP3(poplib.POP3):
    """poplib.POP3 from a chosen loopback address (127.0.0.2, ...): a
    client other than the front host, as the home host must tell apart."""

    def __init__(self, source, port):
        self.source = source
        super().__init__("127.0.0.1", port, timeout=30)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))


def answer_from(source, port, user, password):
    """The answer a client at `source` gets to its PASS (QUIT after +OK)."""
    c = FromPOP3(source, port)
    try:
        c.user(user)
        try:
            answer = c.pass_(password).decode()
        except poplib.error_proto as e:
            return e.args[0].decode()
        c.quit()
        return answer
    finally:
        c.close()


class RawPOP3:
    """Command by command, for what poplib will not send (XCLIENT)."""

    def __init__(self, port, source="127.0.0.1"):
        self.s = socket.create_connection(("127.0.0.1", port), 30, source_address=(source, 0))
        self.f = self.s.makefile("rb")
        self.greeting = self.line()

    def line(self):
        return self.f.readline().decode().rstrip("\r\n")

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\r\n")
        return self.line()

    def wrong_login(self):
        """bob with a wrong password: refused, and logged with the session's address."""
        assert self.cmd("USER bob@example.org") == "+OK "
        assert self.cmd("PASS wrong").startswith("-ERR [AUTH]")

    def capa(self):
        lines = [self.cmd("CAPA")]
        while lines[-1] != ".":
            lines.append(self.line())
        return lines

    def close(self):
        self.f.close()
        self.s.close()


def test_home_host_limits_and_logs_the_real_client(pop3cluster):
    """A relays two clients (127.0.0.2 and 127.0.0.3) to B. B's
    clusterhosts lists A's address, so B's greeting offers XCLIENT to A and
    A's proxy names each client: B counts the refusals it gives (a
    directory that disagrees) against the client, not against A. Client X
    is locked out on B after two; client Y, relayed by the same A, is not.
    B's log lines name the clients."""
    a, b = pop3cluster
    for h in (a, b):
        h.admin("vadduser", "erin@example.org", password="erin-Pw-5")
    shutil.rmtree(a.q.path / "domains" / "example.org" / "erin")
    b.q.control("authfaillimit", "ip 2 600\nuser 0 0\n")
    b.admin("vpasswd", "bob@example.org", password="a-newer-one")
    x, y = "127.0.0.2", "127.0.0.3"
    for _ in range(2):
        assert answer_from(x, a.pop3port, "bob@example.org", BOB_PW).startswith("-ERR [SYS/TEMP]")
    log = b.pop3_log()
    assert log.count(f"qmail-popup: login failed remote={x} user=bob@example.org\n") == 2, log
    assert "login failed remote=127.0.0.1" not in log
    assert f"qmail-popup: XCLIENT from 127.0.0.1: remote={x} port=" in log
    # X is over B's limit now: refused unchecked, erin's good login too.
    assert answer_from(x, a.pop3port, "erin@example.org", "erin-Pw-5").startswith("-ERR [SYS/TEMP]")
    assert f"qmail-popup: login limited remote={x} user=erin@example.org" in b.pop3_log()
    # Y, through the same front host, is not.
    assert answer_from(y, a.pop3port, "erin@example.org", "erin-Pw-5").startswith("+OK")
    wait_for(lambda: f"qmail-popup: login ok remote={y} user=erin@example.org" in b.pop3_log(), 10,
             lambda: "B's login line for Y\n" + b.pop3_log())
    # A's own lines name the clients as ever; A counted nothing.
    assert f"qmail-popup: login temporary remote={x} user=bob@example.org" in a.pop3_log()
    assert "login failed" not in a.pop3_log()


def test_xclient_only_from_a_cluster_host(pop3cluster):
    """A client B's clusterhosts does not list gets B's usual greeting and
    CAPA, and its XCLIENT is an unknown command that changes nothing: its
    failed login is logged and counted under its own address."""
    _, b = pop3cluster
    c = RawPOP3(b.pop3port, source="127.0.0.2")
    try:
        assert c.greeting.startswith("+OK <") and "XCLIENT" not in c.greeting
        assert "XCLIENT" not in c.capa()
        assert c.cmd("XCLIENT ADDR=192.0.2.9 PORT=1234") == "-ERR authorization first"
        c.wrong_login()
    finally:
        c.close()
    log = b.pop3_log()
    assert "qmail-popup: login failed remote=127.0.0.2 user=bob@example.org" in log, log
    assert "192.0.2.9" not in log and "XCLIENT from" not in log


@pytest.mark.parametrize("args", [
    "", "ADDR=", "ADDR=300.1.2.3", "ADDR=01.2.3.4", "ADDR=1.2.3", "ADDR=[::1]", "ADDR=fe80::1%lo",
    "ADDR=host.example", "PORT=5", "ADDR=1.2.3.4 PORT=0", "ADDR=1.2.3.4 PORT=65536", "ADDR=1.2.3.4 PORT=-1",
    "ADDR=1.2.3.4 ADDR=5.6.7.8", "ADDR=1.2.3.4 PORT=1 PORT=2", "ADDR=1.2.3.4 junk", "ADDR=1.2.3.4 =x",
])
def test_malformed_xclient_is_refused_and_changes_nothing(pop3cluster, args):
    _, b = pop3cluster
    c = RawPOP3(b.pop3port)
    try:
        assert c.cmd(f"XCLIENT {args}".rstrip()).startswith("-ERR malformed XCLIENT"), args
        c.wrong_login()
    finally:
        c.close()
    log = b.pop3_log()
    assert "qmail-popup: login failed remote=127.0.0.1 user=bob@example.org" in log, log
    assert "XCLIENT from" not in log


def test_xclient_from_a_cluster_host(pop3cluster):
    """From an address B's clusterhosts lists: the greeting says [XCLIENT]
    (Dovecot's proxies look there) and CAPA lists it; one XCLIENT is taken
    (IPv6, and Dovecot's SESSION and TTL ignored), a second is not, and
    the login that follows is the named client's."""
    _, b = pop3cluster
    c = RawPOP3(b.pop3port)
    try:
        assert c.greeting.startswith("+OK [XCLIENT] <"), c.greeting
        assert "XCLIENT" in c.capa()
        assert c.cmd("XCLIENT ADDR=2001:DB8::7 PORT=4242 SESSION=abc TTL=4") == "+OK client address taken"
        assert "XCLIENT" not in c.capa()
        assert c.cmd("XCLIENT ADDR=192.0.2.9") == "-ERR authorization first"
        c.wrong_login()
    finally:
        c.close()
    log = b.pop3_log()
    assert "qmail-popup: XCLIENT from 127.0.0.1: remote=2001:db8::7 port=4242\n" in log, log
    assert "qmail-popup: login failed remote=2001:db8::7 user=bob@example.org" in log, log
    assert "192.0.2.9" not in log


def test_xclient_before_an_auth_plain_login(pop3cluster):
    """A password a PASS line cannot carry (a leading space) goes to B as
    AUTH PLAIN, in the same write as the XCLIENT: B answers both, takes
    the client's address, and serves the session."""
    a, b = pop3cluster
    for h in (a, b):
        h.admin("vadduser", "frank@example.org", password=" frank-Pw-8")
    shutil.rmtree(a.q.path / "domains" / "example.org" / "frank")
    c = RawPOP3(a.pop3port, source="127.0.0.2")
    try:
        token = base64.b64encode(b"\0frank@example.org\0 frank-Pw-8").decode()
        assert c.cmd(f"AUTH PLAIN {token}").startswith("+OK"), a.pop3_log()
        assert c.cmd("STAT") == "+OK 0 0"
        c.cmd("QUIT")
    finally:
        c.close()
    wait_for(lambda: "qmail-popup: login ok remote=127.0.0.2 user=frank@example.org" in b.pop3_log(), 10,
             lambda: "B's login line\n" + b.pop3_log())
    assert "qmail-popup: XCLIENT from 127.0.0.1: remote=127.0.0.2 port=" in b.pop3_log()
