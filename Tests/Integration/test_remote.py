"""qmail-remote, run as a program: the report format qmail-rspawn reads,
delivery to a real Postfix on loopback through smtproutes, MX lookup
through a real DNS server (dnsmasq) on loopback, 4xx/5xx handling,
timeouts, IPv6, qmail-tcpto/qmail-tcpok."""
import os
import pathlib
import random
import re
import shutil
import socket
import struct
import subprocess
import time

import pytest

import postfix_helper
from smtp_helpers import EOD_VARIANTS, SMUGGLED, FakeSMTP, LenientSMTP, free_port, semantic

MESSAGE = b"From: a@b.example\nSubject: remote\n\nline one\n.leading dot\n..two dots\nlast\n"


def remote(home, host, sender, *rcpts, message=MESSAGE, env=None, timeout=60):
    p = subprocess.run([home.bin("qmail-remote"), host, sender, *rcpts], input=message, capture_output=True,
                       env=dict(home.env, **(env or {})), timeout=timeout)
    assert p.returncode == 0, p.stderr
    return p.stdout


def reports(out: bytes):
    assert out.endswith(b"\0"), out
    return [r.decode("latin-1") for r in out[:-1].split(b"\0")]


def test_usage(qhome):
    p = subprocess.run([qhome.bin("qmail-remote"), "host", "sender"], capture_output=True, env=qhome.env)
    assert p.stdout == b"DI (qmail-remote) was invoked improperly. (#5.3.5)\n\0"


@pytest.fixture
def postfix(tmp_path):
    if not postfix_helper.available():
        pytest.skip("needs root and Postfix")
    port = free_port()
    pf = postfix_helper.Postfix(tmp_path / "postfix", port,
                                access={"bounce@peer.test": "550 no such user", "defer@peer.test": "450 try later"})
    yield pf
    pf.stop()


def test_delivery_to_postfix_via_smtproutes(qhome, postfix):
    qhome.control("smtproutes", f"peer.test:127.0.0.1:{postfix.port}\n")
    qhome.control("helohost", "out.example.org\n")
    out = remote(qhome, "peer.test", "a@b.example", "joe@peer.test", "bounce@peer.test", "defer@peer.test",
                 "ann@peer.test")
    r = reports(out)
    assert r[0] == "r"
    assert r[1].startswith("h127.0.0.1 does not like recipient.\nRemote host said: 550 5.7.1 <bounce@peer.test>")
    assert r[2].startswith("s127.0.0.1 does not like recipient.\nRemote host said: 450 4.7.1 <defer@peer.test>")
    assert r[3] == "r"
    assert r[4].startswith("K127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 Ok: queued as ")
    time.sleep(0.5)
    [msg] = postfix.messages()
    assert "recipient: joe@peer.test" in msg and "recipient: ann@peer.test" in msg
    assert "helo_name=out.example.org" in msg
    assert "line one\n.leading dot\n..two dots\nlast\n" in msg


def test_all_recipients_refused_by_postfix_bounces(qhome, postfix):
    qhome.control("smtproutes", f".test:127.0.0.1:{postfix.port}\n")
    r = reports(remote(qhome, "peer.test", "a@b.example", "bounce@peer.test"))
    assert r[0].startswith("h127.0.0.1 does not like recipient.")
    assert r[1].startswith("DGiving up on 127.0.0.1.\n")


def test_default_route_and_partial_line(qhome, postfix):
    qhome.control("smtproutes", f"elsewhere.example:127.0.0.9\n:127.0.0.1:{postfix.port}\n")
    r = reports(remote(qhome, "anything.example", "", "joe@peer.test", message=b"Subject: x\n\nno newline"))
    assert r[-1] == "DSMTP cannot transfer messages with partial final lines. (#5.6.2)\n"
    r = reports(remote(qhome, "anything.example", "", "joe@peer.test"))
    assert r[-1].startswith("K127.0.0.1 accepted message.")


@pytest.mark.parametrize("where,reply,code", [
    ("greeting", "421 busy", "ZConnected to 127.0.0.1 but greeting failed.\nRemote host said: 421 busy\n"),
    ("helo", "550 go away", "ZConnected to 127.0.0.1 but my name was rejected.\nRemote host said: 550 go away\n"),
    ("mail", "451 later", "ZConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 451 later\n"),
    ("mail", "553 no", "DConnected to 127.0.0.1 but sender was rejected.\nRemote host said: 553 no\n"),
    ("data", "452 full", "Z127.0.0.1 failed on DATA command.\nRemote host said: 452 full\n"),
    ("data", "554 no", "D127.0.0.1 failed on DATA command.\nRemote host said: 554 no\n"),
    ("end", "451 disk full", "Z127.0.0.1 failed after I sent the message.\nRemote host said: 451 disk full\n"),
    ("end", "554 spam", "D127.0.0.1 failed after I sent the message.\nRemote host said: 554 spam\n"),
])
def test_4xx_defers_and_5xx_bounces(qhome, where, reply, code):
    fake = FakeSMTP(replies={where: reply})
    try:
        qhome.control("smtproutes", f"x.example:127.0.0.1:{fake.port}\n")
        r = reports(remote(qhome, "x.example", "a@b", "u@x.example"))
        assert r[-1] == code
    finally:
        fake.close()


def test_multiline_reply_and_dot_stuffing_on_the_wire(qhome):
    fake = FakeSMTP(replies={"end": "250-first\r\n250 second"})
    try:
        qhome.control("smtproutes", f"x.example:127.0.0.1:{fake.port}\n")
        r = reports(remote(qhome, "x.example", "a@b", "u@x.example"))
        assert r == ["r", "K127.0.0.1 accepted message.\nRemote host said: 250-first\n250 second\n"]
        assert fake.bodies == [MESSAGE.replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")]
        # EHLO (for opportunistic STARTTLS); nothing offered, so plain SMTP follows
        assert fake.transcript[0] == b"EHLO " + qhome.fqdn.encode() + b"\r\n"
        assert b"MAIL FROM:<a@b>\r\n" in fake.transcript
    finally:
        fake.close()


def test_timeoutremote_gives_connection_died(qhome):
    fake = FakeSMTP(stall=True)
    try:
        qhome.control("smtproutes", f"x.example:127.0.0.1:{fake.port}\n")
        qhome.control("timeoutremote", "1\n")
        t0 = time.time()
        r = reports(remote(qhome, "x.example", "a@b", "u@x.example"))
        assert r == ["ZConnected to 127.0.0.1 but connection died. (#4.4.2)\n"]
        assert time.time() - t0 < 10
    finally:
        fake.close()


def test_no_connection(qhome):
    qhome.control("smtproutes", f"x.example:127.0.0.1:{free_port()}\n")
    assert reports(remote(qhome, "x.example", "a@b", "u@x.example")) == [
        "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"]


def test_ipv6_route(qhome):
    try:
        fake = FakeSMTP(host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    try:
        qhome.control("smtproutes", f"v6.example:[::1]:{fake.port}\n")
        r = reports(remote(qhome, "v6.example", "a@b", "u@v6.example"))
        assert r == ["r", "K::1 accepted message.\nRemote host said: 250 ok queued\n"]
    finally:
        fake.close()


def test_address_literal_to_ourselves_is_a_loop(qhome):
    r = reports(remote(qhome, "[127.0.0.1]", "a@b", "u@[127.0.0.1]"))
    assert r[-1].startswith("DSorry. Although I'm listed as a best-preference MX or A for that host,")


# --- DNS ----------------------------------------------------------------------

@pytest.fixture
def dns(tmp_path):
    """dnsmasq on a private loopback address, authoritative for .test."""
    exe = shutil.which("dnsmasq")
    if not exe or os.geteuid() != 0:
        pytest.skip("needs root and dnsmasq")
    base = f"127.{random.randint(20, 250)}.{random.randint(1, 250)}"
    dns_ip, mx_ip, dead_ip = base + ".53", base + ".25", base + ".26"
    # Postfix on port 25 of its own loopback address: MX delivery always uses 25.
    pf = postfix_helper.Postfix(tmp_path / "pfdns", 25, hostname="peer.test", listen=mx_ip)
    args = [exe, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll", "--bind-interfaces",
            f"--listen-address={dns_ip}", "--port=53", "--local=/test/", "--log-facility=-", "--user=root",
            f"--pid-file={tmp_path}/dnsmasq.pid",
            # MX with fallback: the best MX refuses connections, the next one is Postfix
            "--mx-host=mx.test,dead.test,10", "--mx-host=mx.test,live.test,20",
            f"--host-record=dead.test,{dead_ip}", f"--host-record=live.test,{mx_ip}",
            # no MX at all: the domain's own address
            f"--host-record=amx.test,{mx_ip}",
            # the MX is ourselves
            "--mx-host=loop.test,me.test,10", "--host-record=me.test,127.0.0.1",
            # the MX is ourselves by IPv6 only (an AAAA record for ::1)
            "--mx-host=loop6.test,me6.test,10", "--host-record=me6.test,::1",
            # an MX whose host does not resolve
            "--mx-host=broken.test,nowhere.test,10"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    assert proc.poll() is None, proc.stderr.read()
    yield {"ip": dns_ip, "mx": mx_ip, "postfix": pf}
    proc.terminate()
    proc.wait(timeout=10)
    pf.stop()


def test_mx_with_fallback_through_real_dns(qhome, dns):
    env = {"DNSCACHEIP": dns["ip"]}
    r = reports(remote(qhome, "mx.test", "a@b.example", "joe@peer.test", env=env))
    assert r[-1].startswith(f"K{dns['mx']} accepted message.")
    r = reports(remote(qhome, "amx.test", "a@b.example", "ann@peer.test", env=env))
    assert r[-1].startswith(f"K{dns['mx']} accepted message.")
    time.sleep(0.5)
    assert len(dns["postfix"].messages()) == 2


def test_dns_failures(qhome, dns):
    env = {"DNSCACHEIP": dns["ip"]}
    assert reports(remote(qhome, "nxdomain.test", "a@b", "u@nxdomain.test", env=env)) == [
        "DSorry, I couldn't find any host named nxdomain.test. (#5.1.2)\n"]
    assert reports(remote(qhome, "broken.test", "a@b", "u@broken.test", env=env)) == [
        "DSorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n"]
    r = reports(remote(qhome, "loop.test", "a@b", "u@loop.test", env=env))
    assert r[0].startswith("DSorry. Although I'm listed as a best-preference MX or A for that host,\n")
    r = reports(remote(qhome, "loop6.test", "a@b", "u@loop6.test", env=env))
    assert r[0].startswith("DSorry. Although I'm listed as a best-preference MX or A for that host,\n")
    # no DNS server answering: temporary
    base = dns["ip"].rsplit(".", 1)[0]
    r = reports(remote(qhome, "mx.test", "a@b", "u@mx.test", env={"DNSCACHEIP": base + ".54"}, timeout=120))
    assert r == ["ZSorry, I couldn't find any host by that name. (#4.1.2)\n"]


# --- tcpto ----------------------------------------------------------------------

def test_qmail_tcpto_and_tcpok(qhome):
    path = qhome.path / "queue" / "lock" / "tcpto"
    now = int(time.time())
    rec = bytes([192, 0, 2, 1, 2, 0, 0, 0]) + struct.pack("<I", now - 10) + b"\0" * 4
    path.write_bytes(rec + b"\0" * (1024 - 16))
    r = qhome.run("qmail-tcpto")
    assert r.returncode == 0
    assert r.stdout.decode() in ("192.0.2.1 timed out 10 seconds ago; # recent timeouts: 2\n",
                                 "192.0.2.1 timed out 11 seconds ago; # recent timeouts: 2\n")
    # a host with two recent timeouts is skipped without a connection attempt
    qhome.control("smtproutes", "x.example:192.0.2.1\n")
    assert reports(remote(qhome, "x.example", "a@b", "u@x.example")) == [
        "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"]
    assert qhome.run("qmail-tcpok").returncode == 0
    assert path.read_bytes() == b"\0" * 1024
    assert qhome.run("qmail-tcpto").stdout == b""


def test_smtputf8_addresses_need_the_extension(qhome):
    plain = FakeSMTP()
    utf8 = FakeSMTP(replies={"helo": "250-fake\r\n250-8BITMIME\r\n250 SMTPUTF8"})
    try:
        qhome.control("smtproutes", f"plain.example:127.0.0.1:{plain.port}\nutf8.example:127.0.0.1:{utf8.port}\n")
        r = reports(remote(qhome, "plain.example", "jörg@b.example", "zoë@plain.example"))
        assert r == ["DConnected to 127.0.0.1 but it does not support SMTPUTF8 addresses. (#5.6.7)\n"]
        assert plain.transcript[0].startswith(b"EHLO ")
        r = reports(remote(qhome, "utf8.example", "jörg@b.example", "zoë@utf8.example"))
        assert r[-1].startswith("K127.0.0.1 accepted message.")
        assert "MAIL FROM:<jörg@b.example> SMTPUTF8\r\n".encode() in utf8.transcript
        r = reports(remote(qhome, "utf8.example", "a@b.example", "x@utf8.example"))
        # the server may not have logged QUIT yet: look at the last MAIL command, not a fixed index
        mails = [l for l in utf8.transcript if l.startswith(b"MAIL FROM:")]
        assert r[-1].startswith("K") and mails[-1] == b"MAIL FROM:<a@b.example>\r\n"
    finally:
        plain.close()
        utf8.close()


def test_remote_to_our_own_smtpd(qhome, tmp_path):
    """qmail-remote -> tcpserver + qmail-smtpd of a second qmail home."""
    from conftest import make_home
    from smtp_helpers import TcpServer, queued, smtpd_env
    peer = make_home(tmp_path / "peer", fqdn="peer.example")
    peer.control("rcpthosts", "peer.example\n")
    srv = TcpServer(peer, [peer.bin("qmail-smtpd")], env=smtpd_env(peer))
    try:
        qhome.control("smtproutes", f"peer.example:127.0.0.1:{srv.port}\n")
        r = reports(remote(qhome, "peer.example", "a@b.example", "joe@peer.example", "x@elsewhere.example"))
        assert r[0] == "r"
        assert r[1] == ("h127.0.0.1 does not like recipient.\nRemote host said: 553 sorry, that domain isn't in my "
                        "list of allowed rcpthosts (#5.7.1)\n")
        assert r[2].startswith("K127.0.0.1 accepted message.\nRemote host said: 250 ok ")
        [(mess, sender, rcpts)] = queued(peer)
        assert sender == b"a@b.example" and rcpts == [b"joe@peer.example"]
        assert mess.endswith(MESSAGE)
    finally:
        srv.stop()


def test_helo_when_ehlo_is_refused_and_notlshosts(qhome):
    fake = FakeSMTP(replies={"ehlo": "502 no ehlo here"})
    try:
        qhome.control("smtproutes", f"x.example:127.0.0.1:{fake.port}\n")
        r = reports(remote(qhome, "x.example", "a@b", "u@x.example"))
        assert r[-1].startswith("K127.0.0.1 accepted message.")
        assert [l[:4] for l in fake.transcript[:2]] == [b"EHLO", b"HELO"]
        # hosts in control/notlshosts get qmail's plain HELO conversation
        qhome.control("notlshosts", "x.example\n")
        fake.transcript.clear()
        reports(remote(qhome, "x.example", "a@b", "u@x.example"))
        # the first session's QUIT may reach the server after clear(): skip QUITs
        second = [l for l in fake.transcript if not l.startswith(b"QUIT")]
        assert second[0].startswith(b"HELO ") and not any(l.startswith(b"EHLO") for l in second)
    finally:
        fake.close()


def test_qmail_send_rspawn_and_remote_deliver_to_postfix(qhome, postfix):
    """The whole outgoing path: qmail-send -> qmail-rspawn -> qmail-remote -> Postfix."""
    import shutil
    from test_send import Mail, wait_for
    real = qhome.path / "bin" / "qmail-remote.real"
    shutil.copy(qhome.bin("qmail-remote"), real)
    mail = Mail(qhome, remote=False)
    shutil.move(real, qhome.path / "bin" / "qmail-remote")
    qhome.control("smtproutes", f"peer.test:127.0.0.1:{postfix.port}\n")
    try:
        mail.start()
        mail.inject(f"me@{qhome.fqdn}", ["joe@peer.test", "bounce@peer.test", "defer@peer.test"],
                    b"Subject: e2e\n\nthrough qmail-send\n")
        done = re.compile(r"delivery \d+: (success|failure|deferral):")
        log = wait_for(lambda: len(done.findall(mail.log())) >= 3 and mail.log(), timeout=60, what="three deliveries")
        assert re.search(r"delivery \d+: success: 127.0.0.1_accepted_message./Remote_host_said:_250_2.0.0_Ok", log), log
        assert re.search(r"delivery \d+: failure: 127.0.0.1_does_not_like_recipient./Remote_host_said:_550", log), log
        assert re.search(r"delivery \d+: deferral: 127.0.0.1_does_not_like_recipient./Remote_host_said:_450", log), log
        time.sleep(0.5)
        msgs = postfix.messages()
        assert len(msgs) == 1 and "recipient: joe@peer.test" in msgs[0] and "through qmail-send" in msgs[0]
    finally:
        mail.stop()


@pytest.mark.parametrize("where", ["rcpt", "end"])
def test_garbage_reply_is_temporary_not_success(qhome, where):
    fake = FakeSMTP(replies={where: "hello there"})
    try:
        qhome.control("smtproutes", f"x.example:127.0.0.1:{fake.port}\n")
        r = reports(remote(qhome, "x.example", "a@b", "u@x.example"))
        assert not any(x.startswith("K") for x in r), r
        assert r[-1][0] in "ZD" and (r[0][0] == "s" or r[-1][0] == "Z"), r
    finally:
        fake.close()


# --- SMTP smuggling: nothing qmail-remote sends ends DATA early anywhere ----------

@pytest.fixture
def lenient():
    sink = LenientSMTP()
    yield sink
    sink.close()


@pytest.mark.parametrize("seq", EOD_VARIANTS, ids=lambda s: s.decode("latin-1").encode("unicode_escape").decode())
def test_no_end_of_data_look_alike_reaches_a_lenient_next_hop(qhome, lenient, seq):
    """Whatever the queue holds (bare CR, CRLF, NUL around a dot), a receiver
    that ends DATA on any <CR>/<LF> "." <CR>/<LF> sees one message, intact
    but for the mapping of semantic(): CRLF/LF lines, stray CR and NUL as spaces."""
    qhome.control("smtproutes", f"next.test:127.0.0.1:{lenient.port}\n")
    message = b"From: a@b.example\nSubject: smuggle\n\nreal" + seq + SMUGGLED + b"tail\n"
    r = reports(remote(qhome, "next.test", "a@b.example", "joe@next.test", message=message))
    assert r[-1].startswith("K127.0.0.1 accepted message."), r
    assert [m[0] for m in lenient.messages] == [b"a@b.example"], lenient.messages
    [(sender, rcpts, body)] = lenient.messages
    assert sender == b"a@b.example" and rcpts == [b"joe@next.test"]
    assert body == semantic(message)


def test_every_look_alike_in_one_message_to_postfix(qhome, postfix):
    """A real next hop (Postfix, whose smtpd here still takes <LF>.<CR><LF>
    as the end) gets one message whose lines are those of semantic()."""
    qhome.control("smtproutes", f"peer.test:127.0.0.1:{postfix.port}\n")
    body = b"".join(b"v%d:" % i + seq + b"|\n" for i, seq in enumerate(EOD_VARIANTS)) + SMUGGLED
    r = reports(remote(qhome, "peer.test", "a@b.example", "joe@peer.test", message=b"Subject: all\n\n" + body))
    assert r[-1].startswith("K127.0.0.1 accepted message."), r
    time.sleep(0.5)
    [msg] = postfix.messages()
    text = msg.split("*** MESSAGE CONTENTS", 1)[1].split("*** HEADER EXTRACTED", 1)[0]
    assert text.endswith("\n\n" + semantic(body).decode()), text
