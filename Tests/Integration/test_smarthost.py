"""qmail-remote logging in to a relay (SMTP AUTH) with the login that
control/smtproutes gives after the relay ("domain:relay:port user password"):
to a real relay (our own qmail-smtpd of a second home under tcpserver, which
relays only after AUTH and offers AUTH only after STARTTLS), through
qmail-send, and to scripted servers that show what goes on the wire."""
import base64
import random
import re
import socket
import subprocess

import pytest

from conftest import make_home
from smtp_helpers import FakeSMTP, TcpServer, queued, smtpd_env
from test_remote import mail_with_our_remote, remote, reports
from test_send import wait_for
from test_smtpd import checkpassword, make_cert

MESSAGE = b"From: a@b.example\nSubject: via the smarthost\n\nhello\n"


@pytest.fixture
def relay(tmp_path):
    """relay.example: SMTPAUTH=! (no mail without AUTH), FORCETLS=1 (no AUTH
    before STARTTLS); checkpassword takes joe/secret."""
    home = make_home(tmp_path / "relay", fqdn="relay.example")
    home.control("rcpthosts", "relay.example\n")
    make_cert(home, tmp_path)
    srv = TcpServer(home, [home.bin("qmail-smtpd"), "relay.example", str(checkpassword(tmp_path)), "/bin/true"],
                    env=smtpd_env(home, SMTPAUTH="!", FORCETLS="1"))
    srv.home = home
    yield srv
    srv.stop()


def test_login_over_starttls_relays_the_message(qhome, relay):
    qhome.control("smtproutes", f":127.0.0.1:{relay.port} joe secret\n")
    r = reports(remote(qhome, "far.example", "a@b.example", "x@far.example", message=MESSAGE))
    assert r[0] == "r" and r[1].startswith("K127.0.0.1 accepted message.\nRemote host said: 250 ok"), r
    [(mess, sender, rcpts)] = queued(relay.home)
    assert sender == b"a@b.example" and rcpts == [b"x@far.example"]
    assert b"(joe@127.0.0.1)" in mess and b" with ESMTPSA; " in mess and mess.endswith(MESSAGE)


def test_wrong_password_defers_and_never_shows_the_password(qhome, relay):
    qhome.control("smtproutes", f"far.example:127.0.0.1:{relay.port} joe Wr0ng-pass word\n")
    out = remote(qhome, "far.example", "a@b.example", "x@far.example", message=MESSAGE)
    assert reports(out) == ["ZConnected to 127.0.0.1 but it refused the login as joe (see control/smtproutes).\n"
                            "Remote host said: 535 authentication failed (#5.7.8)\n"]
    assert b"Wr0ng" not in out and queued(relay.home) == []


def test_wrong_password_through_qmail_send_keeps_the_message_queued(qhome, relay):
    """qmail-send -> qmail-rspawn -> qmail-remote: a deferral, no bounce."""
    mail = mail_with_our_remote(qhome)
    qhome.control("smtproutes", f":127.0.0.1:{relay.port} joe not-the-password\n")
    try:
        mail.start()
        mail.inject(f"me@{qhome.fqdn}", ["x@far.example"], b"Subject: wait\n\nuntil the password is fixed\n")
        done = re.compile(r"delivery 1: (success|failure|deferral):")
        log = wait_for(lambda: done.search(mail.log()) and mail.log(), timeout=60, what="the delivery")
        assert re.search(r"delivery 1: deferral: Connected_to_127.0.0.1_but_it_refused_the_login_as_joe_"
                         r"\(see_control/smtproutes\)./Remote_host_said:_535_authentication_failed", log), log
        assert "bounce" not in log and "failure" not in log and "not-the-password" not in log
        assert len(qhome.queue_files("remote")) == 1 and queued(relay.home) == []
    finally:
        mail.stop()


def listening(ip, port):
    try:
        socket.create_connection((ip, port), timeout=1).close()
        return True
    except OSError:
        return False


def secrets_on(wire: bytes):
    return [s for s in (b"s3cret-pw", base64.b64encode(b"\0joe\0s3cret-pw"), base64.b64encode(b"s3cret-pw"))
            if s in wire]


def test_relay_without_starttls_gets_no_password(qhome):
    fake = FakeSMTP(replies={"ehlo": "250-fake\r\n250 AUTH PLAIN LOGIN"})
    try:
        qhome.control("smtproutes", f":127.0.0.1:{fake.port} joe s3cret-pw\n")
        out = remote(qhome, "far.example", "a@b.example", "x@far.example")
        assert reports(out) == ["ZConnected to 127.0.0.1 but it does not offer STARTTLS, and I send the "
                                "password for joe only over TLS.\n"]
        # control/notlshosts turns TLS off: the same refusal, saying why
        qhome.control("notlshosts", "far.example\n")
        out += remote(qhome, "far.example", "a@b.example", "x@far.example")
        assert reports(out)[-1] == ("ZConnected to 127.0.0.1 but I do not use TLS with it (control/notlshosts), "
                                    "and I send the password for joe only over TLS.\n")
        wire = b"".join(fake.transcript)
        assert secrets_on(wire + out) == [] and b"AUTH" not in wire and b"MAIL" not in wire, wire
    finally:
        fake.close()
    # offered, but refused when asked
    (qhome.path / "control" / "notlshosts").unlink()
    fake = FakeSMTP(replies={"ehlo": "250-fake\r\n250-STARTTLS\r\n250 AUTH PLAIN", "starttls": "454 no TLS today"})
    try:
        qhome.control("smtproutes", f":127.0.0.1:{fake.port} joe s3cret-pw\n")
        out = remote(qhome, "far.example", "a@b.example", "x@far.example")
        assert reports(out) == ["ZConnected to 127.0.0.1 but it refused STARTTLS, and I send the password for joe "
                                "only over TLS.\nRemote host said: 454 no TLS today\n"]
        wire = b"".join(fake.transcript)
        assert secrets_on(wire) == [] and b"AUTH" not in wire and b"MAIL" not in wire, wire
    finally:
        fake.close()


def test_dash_user_allows_login_in_clear_with_auth_login(qhome):
    """"-joe": the site accepts the password in clear (a relay on a private
    link); a relay offering only LOGIN (old "AUTH=" form) gets LOGIN."""
    b64 = base64.b64encode

    def other(line):
        return {b64(b"joe") + b"\r\n": "334 UGFzc3dvcmQ6", b64(b"s3cret-pw") + b"\r\n": "235 ok"}.get(line, "535 no")
    fake = FakeSMTP(replies={"ehlo": "250-fake\r\n250 AUTH=LOGIN", "auth": "334 VXNlcm5hbWU6", "other": other})
    try:
        qhome.control("smtproutes", f"far.example:127.0.0.1:{fake.port} -joe s3cret-pw\n")
        r = reports(remote(qhome, "far.example", "a@b.example", "x@far.example"))
        assert r[-1].startswith("K127.0.0.1 accepted message."), r
        verbs = [l.split(b" ")[0].rstrip(b"\r\n") for l in fake.transcript]
        assert verbs[:5] == [b"EHLO", b"AUTH", b64(b"joe"), b64(b"s3cret-pw"), b"MAIL"], fake.transcript
    finally:
        fake.close()


def test_relay_that_offers_no_auth_or_a_user_without_password_defers(qhome):
    fake = FakeSMTP(replies={"ehlo": "250-fake\r\n250 8BITMIME"})
    try:
        qhome.control("smtproutes", f":127.0.0.1:{fake.port} -joe s3cret-pw\n")
        r = reports(remote(qhome, "far.example", "a@b.example", "x@far.example"))
        assert r == ["ZConnected to 127.0.0.1 but it offers no AUTH PLAIN or LOGIN to log in as joe.\n"]
        qhome.control("smtproutes", f":127.0.0.1:{fake.port} joe\n")
        r = reports(remote(qhome, "far.example", "a@b.example", "x@far.example"))
        assert r == ["Zcontrol/smtproutes names the user joe for 127.0.0.1 but no password. (#4.3.5)\n"]
        assert not any(l.startswith(b"MAIL") for l in fake.transcript)
    finally:
        fake.close()


def test_relay_on_port_465_gets_tls_from_the_first_byte(qhome, tmp_path):
    """Port 465 is submission over implicit TLS (RFC 8314): our tlswrap in
    front of the relay's qmail-smtpd; the login happens inside that TLS."""
    home = make_home(tmp_path / "relay", fqdn="relay.example")
    home.control("rcpthosts", "relay.example\n")
    make_cert(home, tmp_path)
    ip = f"127.0.{random.randrange(1, 255)}.{random.randrange(2, 255)}"
    try:
        probe = socket.socket()
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((ip, 465))
        probe.close()
    except OSError:
        pytest.skip(f"cannot listen on {ip}:465 (not root?)")
    srv = subprocess.Popen([home.bin("tcpserver"), "-R", "-H", "-l0", ip, "465", home.bin("tlswrap"),
                            home.bin("qmail-smtpd"), "relay.example", str(checkpassword(tmp_path)), "/bin/true"],
                           env=smtpd_env(home, SMTPAUTH="!", FORCETLS="1"), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: listening(ip, 465), timeout=10, what="tcpserver on port 465")
        qhome.control("smtproutes", f":{ip}:465 joe secret\n")
        r = reports(remote(qhome, "far.example", "a@b.example", "x@far.example", message=MESSAGE))
        assert r[-1].startswith(f"K{ip} accepted message."), r
        [(mess, _, rcpts)] = queued(home)
        assert rcpts == [b"x@far.example"] and b"(joe@" in mess
    finally:
        srv.terminate()
        srv.wait(timeout=10)


def test_doctor_wants_the_passwords_for_qmailr_only_and_showctl_hides_them(qhome):
    import os
    routes = qhome.path / "control" / "smtproutes"
    qhome.control("smtproutes", "# the smarthost\n:relay.example:587 joe s3cret pw\n")
    qmailr = os.stat(qhome.path / "queue" / "lock" / "tcpto").st_uid
    os.chown(routes, qmailr, -1)
    fix = f"chown {pwd_name(qmailr)} {routes}; chmod 600 {routes}"
    found = {}
    for mode in (0o644, 0o640, 0o600):
        routes.chmod(mode)
        out = qhome.run("qmailctl", "doctor").stdout.decode()
        found[mode] = [l for l in out.splitlines() if "smtproutes" in l]
    assert found[0o644] == [f"PROBLEM: {routes} holds relay passwords and anyone on this machine can read it "
                            f"(mode 0644): {fix}"]
    assert found[0o640] == [f"warning: {routes} holds relay passwords and its group can read it (mode 0640): {fix}"]
    assert found[0o600] == ["ok:      control/smtproutes: relay passwords readable by qmail-remote only"]
    out = qhome.run("qmail-showctl").stdout.decode()
    assert "smtproutes: 1 line\n  :relay.example:587 joe (password hidden)\n" in out and "s3cret" not in out


def pwd_name(uid):
    import pwd
    return pwd.getpwuid(uid).pw_name
