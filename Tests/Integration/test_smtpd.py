"""qmail-smtpd, run as a program on pipes and under tcpserver: the SMTP
conversation, relay control, AUTH, limits, bad input and smuggling."""
import os
import pathlib
import re
import signal
import smtplib
import socket
import ssl
import stat
import subprocess
import tempfile
import time

import pytest

from smtp_helpers import EOD_VARIANTS, SMUGGLED, TcpServer, checkpassword, free_port, queued, replies, session, smtpd_env

ROOT = pathlib.Path(__file__).resolve().parents[2]

OURS = "ours.example"


@pytest.fixture
def home(qhome):
    qhome.control("rcpthosts", f"{OURS}\n.hosted.example\n{qhome.fqdn}\n")
    return qhome


def test_plain_session_queues_the_message_with_qmails_received_line(home):
    rc, out = session(home, b"HELO client.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<joe@ours.example>\r\n"
                            b"DATA\r\nSubject: hi\r\n\r\nbody\r\n..dotted\r\n.\r\nQUIT\r\n",
                      TCPREMOTEHOST="client.example", TCPREMOTEINFO="ident", TCPLOCALHOST="mx.ours.example")
    r = replies(out)
    assert r[0] == f"220 {home.fqdn} ESMTP"
    assert r[1] == f"250 {home.fqdn}"
    assert r[2:5] == ["250 ok", "250 ok", "354 go ahead"]
    assert re.fullmatch(r"250 ok \d+ qp \d+", r[5]), r[5]
    assert r[6] == f"221 {home.fqdn}"
    assert rc == 0
    [(mess, sender, rcpts)] = queued(home)
    assert sender == b"a@b.example" and rcpts == [b"joe@ours.example"]
    lines = mess.split(b"\n")
    # qmail-queue's own line first, then ours; HELO equal to the host name is not repeated
    assert re.fullmatch(rb"Received: from client.example \(ident@192.0.2.7\)", lines[1]), lines[1]
    assert re.fullmatch(rb"  by mx.ours.example with SMTP; \d+ \w{3} \d{4} \d\d:\d\d:\d\d -0000", lines[2]), lines[2]
    assert mess.endswith(b"Subject: hi\n\nbody\n.dotted\n")


def test_helo_differing_from_host_and_unsafe_bytes_in_received(home):
    session(home, b"HELO evil host\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@ours.example>\r\nDATA\r\n\r\n.\r\n")
    [(mess, _, _)] = queued(home)
    assert mess.split(b"\n")[1] == b"Received: from unknown (HELO evil?host) (192.0.2.7)"


def test_ehlo_advertises_extensions(home):
    home.control("databytes", "5000\n")
    _, out = session(home, b"EHLO c\r\nQUIT\r\n")
    r = replies(out)
    assert r[1] == f"250-{home.fqdn}"
    assert "250-PIPELINING" in r and "250-8BITMIME" in r and "250-SIZE 5000" in r and "250 SMTPUTF8" in r
    assert not any("AUTH" in l for l in r)


def test_simple_commands(home):
    _, out = session(home, b"NOOP\r\nVRFY joe\r\nHELP\r\nRSET\r\nFOO\r\nRCPT TO:<a@ours.example>\r\nDATA\r\n"
                           b"MAIL FROM:<a@b>\r\nDATA\r\nMAIL FROM:<a@b>\r\nQUIT\r\n")
    assert replies(out)[1:] == ["250 ok", "252 send some mail, i'll try my best",
                                "214 qmail home page: http://pobox.com/~djb/qmail.html", "250 flushed",
                                "502 unimplemented (#5.5.1)", "503 MAIL first (#5.5.1)", "503 MAIL first (#5.5.1)",
                                "250 ok", "503 RCPT first (#5.5.1)", "250 ok", f"221 {home.fqdn}"]


def pipelined(port, data: bytes, want: int):
    """Sends `data` in one write and reads until `want` replies (bounded)."""
    c = socket.create_connection(("127.0.0.1", port), timeout=20)
    c.sendall(data)
    out = b""
    deadline = time.monotonic() + 20
    while len(replies(out)) < want and time.monotonic() < deadline:
        b = c.recv(65536)
        if not b:
            break
        out += b
    c.close()
    return replies(out)


def test_mail_inside_a_transaction_starts_a_new_one(home, server):
    """Issue 15: a second MAIL got "503 nested MAIL" and the transaction
    went on with the first sender, so a pipelining client's next RCPTs and
    DATA joined the first message. qmail (and RFC 5321 3.3) start a new
    transaction: only the second sender and its recipients are queued."""
    s = server()
    r = pipelined(s.port, b"EHLO c\r\nMAIL FROM:<first@b.example>\r\nRCPT TO:<one@ours.example>\r\n"
                          b"MAIL FROM:<second@b.example>\r\nRCPT TO:<two@ours.example>\r\nDATA\r\n"
                          b"Subject: second\r\n\r\nbody\r\n.\r\nQUIT\r\n", 13)
    assert r[6:10] == ["250 ok", "250 ok", "250 ok", "250 ok"], r
    assert r[10] == "354 go ahead" and r[11].startswith("250 ok "), r
    [(mess, sender, rcpts)] = queued(home)
    assert sender == b"second@b.example" and rcpts == [b"two@ours.example"]
    assert mess.endswith(b"Subject: second\n\nbody\n")


def test_a_refused_mail_inside_a_transaction_leaves_none(home, server):
    """The refused MAIL ends the open transaction too (qmail would keep it):
    what the pipelining client sent after it cannot join the first message."""
    s = server()
    r = pipelined(s.port, b"EHLO c\r\nMAIL FROM:<first@b.example>\r\nRCPT TO:<one@ours.example>\r\n"
                          b"MAIL FROM:<second@b.example> SIZE=x\r\nRCPT TO:<two@ours.example>\r\nDATA\r\n"
                          b"Subject: second\r\n\r\nbody\r\n.\r\nQUIT\r\n", 16)
    assert r[6:11] == ["250 ok", "250 ok", "501 bad SIZE parameter (#5.5.4)", "503 MAIL first (#5.5.1)",
                       "503 MAIL first (#5.5.1)"], r
    assert r[-1] == f"221 {home.fqdn}", r
    assert queued(home) == []


RELAY_BATTERY = [
    "victim@other.example",
    "victim@OTHER.EXAMPLE",
    "victim@other.example.",
    "victim%other.example@ours.example",
    "victim%other.example@OURS.EXAMPLE",
    "other.example!victim@ours.example",
    "OTHER.EXAMPLE!victim@ours.example",
    '"victim@other.example"@ours.example',
    '"victim@other.example."@ours.example',
    "@ours.example:victim@other.example",
    "@ours.example,@ours.example:victim@other.example",
    "victim@other.example@ours.example",
    "victim@other.example@OURS.EXAMPLE.",
    "victim@ours.example.",
    "victim%other.example",
    "other.example!victim",
    "victim@[198.51.100.9]",
    "victim@[IPv6:2001:db8::9]",
    "victim@hosted.example",
]


@pytest.mark.parametrize("addr", RELAY_BATTERY)
def test_relay_battery_refuses_every_trick(home, addr):
    _, out = session(home, b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<" + addr.encode() + b">\r\n"
                           b"DATA\r\nx\r\n.\r\nQUIT\r\n")
    r = replies(out)
    assert r[3] == "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", (addr, r)
    assert r[4] == "503 RCPT first (#5.5.1)"
    assert queued(home) == []


@pytest.mark.parametrize("addr", ["joe@ours.example", "joe@OURS.example", "joe@a.hosted.example",
                                  "joe%x.hosted.example@ours.example", "postmaster"])
def test_accepted_recipients(home, addr):
    _, out = session(home, b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<" + addr.encode() + b">\r\n")
    assert replies(out)[3] == "250 ok"


def test_relayclient_appends_and_allows_everything(home):
    session(home, b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@far.example>\r\nRCPT TO:<y@ours.example>\r\n"
                  b"DATA\r\n\r\n.\r\n", RELAYCLIENT=".relayed")
    [(_, _, rcpts)] = queued(home)
    assert rcpts == [b"x@far.example.relayed", b"y@ours.example.relayed"]


# qmail-send rewrites user%host@domain to user@host while domain is in
# control/percenthack, one step at a time: qmail-smtpd judges the address it
# ends as. (RCPT address, the host qmail-send delivers to, accepted?)
PERCENT_CHAINS = [
    ("victim%far.example@ours.example", "far.example", False),
    ("victim%far.example%ours.example@ours.example", "far.example", False),
    ("victim%far.example%ours.example%ours.example@ours.example", "far.example", False),
    ("victim%far.example%ours.example%ours.example%ours.example@ours.example", "far.example", False),
    ("victim%far.example%relay.hosted.example@ours.example", "far.example", False),
    ("victim%far.example%a.hosted.example@ours.example", "a.hosted.example", False),  # victim%far.example@ stays
    ("victim%far.example%ours.example", "far.example", False),  # envnoathost (ours.example) is listed
    ("victim%far.example@a.hosted.example", "a.hosted.example", False),
    ("joe%a.hosted.example@ours.example", "a.hosted.example", True),
    ("joe%a.hosted.example%ours.example@ours.example", "a.hosted.example", True),
    ("joe%a.hosted.example%relay.hosted.example%ours.example@ours.example", "a.hosted.example", True),
    ("joe%ours.example%ours.example%ours.example@ours.example", "ours.example", True),
    ("joe@relay.hosted.example", "relay.hosted.example", True),
]


@pytest.mark.parametrize("addr,host,ok", PERCENT_CHAINS)
def test_percenthack_chains_are_judged_where_qmail_send_delivers(home, addr, host, ok):
    """Issue 15: with ours.example in percenthack,
    victim%far.example%ours.example@ours.example was accepted and qmail-send
    then sent it to victim@far.example (an open relay)."""
    home.control("percenthack", "ours.example\nrelay.hosted.example\n")
    home.control("envnoathost", "ours.example\n")
    _, out = session(home, b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<" + addr.encode() + b">\r\n"
                           b"DATA\r\n\r\n.\r\n")
    r = replies(out)
    if ok:
        assert r[3] == "250 ok" and len(queued(home)) == 1, (addr, r)
    else:
        assert r[3] == "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", (addr, r)
        assert queued(home) == []
    # relaying clients may send anywhere, percent hack or not
    _, out = session(home, b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<" + addr.encode() + b">\r\n",
                     RELAYCLIENT="")
    assert replies(out)[3] == "250 ok"


def test_without_percenthack_a_percent_is_only_a_local_part(home):
    """Without control/percenthack nothing is rewritten: the relay-trick
    check of the local part still applies, the rest is local mail."""
    _, out = session(home, b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<joe%a.hosted.example@ours.example>\r\n"
                           b"RCPT TO:<victim%far.example%ours.example@ours.example>\r\n")
    assert replies(out)[3:5] == ["250 ok", "250 ok"]


def test_morercpthosts_cdb(home):
    subprocess.run(["cdb", "-c", "-m", str(home.path / "control" / "morercpthosts.cdb")],
                   input=b"more.example\n.sub.more.example\n", check=True)
    _, out = session(home, b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@more.example>\r\nRCPT TO:<a@x.sub.more.example>\r\n"
                           b"RCPT TO:<a@sub.more.example>\r\n")
    assert replies(out)[3:6] == ["250 ok", "250 ok", "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"]


def test_badmailfrom_whole_address_and_domain(home):
    home.control("badmailfrom", "spammer@x.example\n@junk.example\n")
    for sender, ok in [("spammer@x.example", False), ("SPAMMER@X.example", False), ("a@junk.example", False),
                       ("a@x.example", True)]:
        _, out = session(home, f"HELO c\r\nMAIL FROM:<{sender}>\r\nRCPT TO:<a@ours.example>\r\n".encode())
        r = replies(out)
        assert r[2] == "250 ok"
        assert (r[3] == "250 ok") == ok, (sender, r)
        if not ok:
            assert r[3] == "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)"


def test_localiphost_rewrites_our_address_literals(home):
    home.control("localiphost", "ours.example\n")
    session(home, b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<joe@[127.0.0.1]>\r\nRCPT TO:<ann@[IPv6:::1]>\r\n"
                  b"DATA\r\n\r\n.\r\n")
    [(_, _, rcpts)] = queued(home)
    assert rcpts == [b"joe@ours.example", b"ann@ours.example"]


def test_smtpgreeting(home):
    home.control("smtpgreeting", "mx.example.net hello there\n")
    _, out = session(home, b"HELO x\r\nQUIT\r\n")
    assert replies(out) == ["220 mx.example.net hello there ESMTP", "250 mx.example.net hello there",
                            "221 mx.example.net hello there"]


def test_missing_me_and_greeting_is_421(home):
    os.unlink(home.path / "control" / "me")
    rc, out = session(home, b"HELO x\r\n")
    assert out == b"421 unable to read controls (#4.3.0)\r\n" and rc == 1


def test_databytes_and_size(home):
    home.control("databytes", "100\n")
    _, out = session(home, b"HELO c\r\nMAIL FROM:<a@b> SIZE=101\r\nMAIL FROM:<a@b> SIZE=100\r\n"
                           b"RCPT TO:<a@ours.example>\r\nDATA\r\n" + b"x" * 200 + b"\r\n.\r\nQUIT\r\n")
    r = replies(out)
    assert r[2] == "552 sorry, that message size exceeds my databytes limit (#5.3.4)"
    assert r[3:6] == ["250 ok", "250 ok", "354 go ahead"]
    assert r[6] == "552 sorry, that message size exceeds my databytes limit (#5.3.4)"
    assert queued(home) == []
    # DATABYTES in the environment wins over the control file
    _, out = session(home, b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@ours.example>\r\nDATA\r\n" + b"x" * 200
                           + b"\r\n.\r\n", DATABYTES="0")
    assert replies(out)[-1].startswith("250 ok ")


def test_too_many_hops(home):
    data = b"".join(b"Received: hop %d\r\n" % i for i in range(100))
    _, out = session(home, b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@ours.example>\r\nDATA\r\n" + data + b"\r\nx\r\n.\r\n")
    assert replies(out)[-1] == "554 too many hops, this message is looping (#5.4.6)"
    assert queued(home) == []


def test_bare_lf_in_data_is_451_and_nothing_is_queued(home):
    rc, out = session(home, b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@ours.example>\r\nDATA\r\nline\nmore\r\n.\r\n")
    assert replies(out)[-1] == "451 See http://pobox.com/~djb/docs/smtplf.html."
    assert rc == 1
    assert queued(home) == []


@pytest.mark.parametrize("seq", [b"\n.\r\n", b"\r.\r\n", b"\n.\n", b"\r\n.\n", b"\r\n.\r\r\n", b"\r.\n"])
def test_smuggling_never_gives_two_messages(home, seq):
    smuggled = (b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@ours.example>\r\nDATA\r\nSubject: smuggled\r\n\r\n"
                b"smuggled\r\n.\r\n")
    data = (b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<a@ours.example>\r\nDATA\r\nSubject: real\r\n\r\nreal"
            + seq + smuggled + b"QUIT\r\n")
    session(home, data)
    msgs = queued(home)
    assert len(msgs) <= 1
    for mess, sender, rcpts in msgs:
        assert sender == b"a@b.example" and rcpts == [b"a@ours.example"]


# wire sequence -> what qmail-smtpd stores for it, as qmail's blast() does:
# CRLF becomes LF, a bare CR and NUL stay, a leading dot is removed unless
# CRLF follows it; None: a bare LF, so 451 and nothing queued.
INBOUND_EOD = {
    b"\r.\r": b"\r.\r", b"\r.\r\n": b"\r.\n", b"\n.\n": None, b"\n.\r\n": None, b"\r.\n": None, b"\n.\r": None,
    b"\r\n.\r": b"\n.\r", b"\r\n.\n": None, b"\r\n.\r\r\n": b"\n.\r\n", b"\r\r\n.\r\r\n": b"\r\n.\r\n",
    b"\n\n.\n\n": None, b"\r\r.\r\r": b"\r\r.\r\r", b"\n\0.\n": None, b"\n.\0\n": None, b"\r\0.\r": b"\r\0.\r",
    b"\r.\0\r": b"\r.\0\r", b"\r\n\0.\r\n": b"\n\0.\n", b"\r\n.\0\r\n": b"\n\0\n",
    b"\r\n\0.\0\r\n": b"\n\0.\0\n", b"\r\0\n.\r\0\n": None, b"\n\0.\0\r\n": None,
}


def test_inbound_variants_are_the_shared_list_less_the_real_end():
    assert set(INBOUND_EOD) == set(EOD_VARIANTS) - {b"\r\n.\r\n", b"\0\r\n.\r\n"}


@pytest.mark.parametrize("seq", list(INBOUND_EOD), ids=lambda s: s.decode("latin-1").encode("unicode_escape").decode())
def test_end_of_data_look_alike_is_part_of_one_message(home, seq):
    """Only CRLF.CRLF ends DATA: a look-alike never starts a second
    transaction; it is stored as qmail stores it, or refused (bare LF)."""
    data = (b"HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<a@ours.example>\r\nDATA\r\nSubject: real\r\n\r\nreal"
            + seq + SMUGGLED + b"QUIT\r\n")
    _, out = session(home, data)
    r = replies(out)
    stored = INBOUND_EOD[seq]
    if stored is None:
        assert r[4:] == ["354 go ahead", "451 See http://pobox.com/~djb/docs/smtplf.html."]
        assert queued(home) == []
        return
    assert r[4] == "354 go ahead" and re.fullmatch(r"250 ok \d+ qp \d+", r[5]) and r[6:] == [f"221 {home.fqdn}"], r
    [(mess, sender, rcpts)] = queued(home)
    assert sender == b"a@b.example" and rcpts == [b"a@ours.example"]
    assert mess.endswith(b"\n\nreal" + stored + SMUGGLED[:-3].replace(b"\r\n", b"\n"))


def test_nul_bytes(home):
    _, out = session(home, b"HELO c\r\nMAIL FROM:<a\0b@x>\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@ours.example>\r\n"
                           b"DATA\r\nSubject: n\0ul\r\n\r\nb\0dy\r\n.\r\n")
    r = replies(out)
    assert r[2] == "501 NUL byte in command (#5.5.2)"
    assert r[-1].startswith("250 ok ")
    [(mess, _, _)] = queued(home)
    assert mess.endswith(b"Subject: n\0ul\n\nb\0dy\n")


def test_megabyte_lines(home):
    big = b"x" * (1 << 20)
    _, out = session(home, b"HELO c\r\nMAIL FROM:<" + big + b">\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@ours.example>\r\n"
                           b"DATA\r\n" + big + b"\r\n.\r\n")
    r = replies(out)
    assert r[2] == "500 line too long (#5.5.2)"
    assert r[3] == "250 ok"
    assert r[-1].startswith("250 ok ")
    [(mess, _, _)] = queued(home)
    assert mess.endswith(b"\n" + big + b"\n")


def test_ten_thousand_recipients_are_bounded(home):
    cmds = b"HELO c\r\nMAIL FROM:<a@b>\r\n" + b"".join(b"RCPT TO:<u%d@ours.example>\r\n" % i for i in range(10000))
    cmds += b"DATA\r\n\r\n.\r\n"
    _, out = session(home, cmds, timeout=120)
    r = replies(out)
    assert r.count("250 ok") == 1 + 1000
    assert r.count("452 too many recipients (#4.5.3)") == 9000
    [(_, _, rcpts)] = queued(home)
    assert len(rcpts) == 1000


def test_stalling_client_gets_timeout(home):
    home.control("timeoutsmtpd", "1\n")
    p = subprocess.Popen([home.bin("qmail-smtpd")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         env=smtpd_env(home))
    p.stdin.write(b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@ours.example>\r\nDATA\r\nSubject: partial\r\n")
    p.stdin.flush()
    t0 = time.time()
    out = p.stdout.read()
    assert p.wait(timeout=10) == 1
    assert time.time() - t0 < 8
    assert replies(out)[-1] == "451 timeout (#4.4.2)"
    p.stdin.close()
    assert queued(home) == []


def test_qmailqueue_is_honoured(home, tmp_path):
    log = tmp_path / "qq.log"
    fake = tmp_path / "fakeqq"
    fake.write_text(f"#!/bin/sh\ncat > {log}\ncat <&1 >> {log}.env 2>/dev/null\nexit 31\n")
    fake.chmod(0o755)
    _, out = session(home, b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@ours.example>\r\nDATA\r\nhello\r\n.\r\n",
                     QMAILQUEUE=str(fake))
    assert replies(out)[-1] == "554 mail server permanently rejected message (#5.3.0)"
    assert b"hello\n" in log.read_bytes()


def test_ipv6_literal_and_smtputf8(home):
    home.control("rcpthosts", "[IPv6:2001:db8::1]\nours.example\n")
    _, out = session(home, "HELO c\r\nMAIL FROM:<jörg@b.example>\r\nMAIL FROM:<jörg@b.example> SMTPUTF8\r\n"
                           "RCPT TO:<a@[IPv6:2001:db8::1]>\r\nRCPT TO:<zoë@ours.example>\r\nDATA\r\n\r\n.\r\n".encode())
    r = replies(out)
    assert r[2] == "553 sorry, a non-ASCII address needs SMTPUTF8 (#5.6.7)"
    assert r[3:6] == ["250 ok", "250 ok", "250 ok"]
    [(mess, sender, rcpts)] = queued(home)
    assert sender == "jörg@b.example".encode() and rcpts == [b"a@[IPv6:2001:db8::1]", "zoë@ours.example".encode()]
    assert b" with UTF8SMTP; " in mess


# --- recipient lookup -------------------------------------------------------

def lookup_program(tmp_path):
    p = tmp_path / "rcptcheck"
    p.write_text('#!/bin/sh\ncase "$1" in\n  *@ours.example) case "$1" in joe@*) exit 0;; down@*) exit 111;; *) exit 100;; esac;;\n'
                 '  *) exit 0;;\nesac\n')
    p.chmod(0o755)
    return p


def test_unknown_hosted_recipients_refused_at_rcpt(home, tmp_path):
    prog = lookup_program(tmp_path)
    home.control("rcptcheck", f"{prog}\n")
    _, out = session(home, b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<joe@ours.example>\r\nRCPT TO:<nobody@ours.example>\r\n"
                           b"RCPT TO:<down@ours.example>\r\nRCPT TO:<x@a.hosted.example>\r\n")
    assert replies(out)[3:7] == ["250 ok", "550 sorry, no mailbox here by that name (#5.1.1)",
                                 "451 temporary problem looking up the recipient (#4.3.0)", "250 ok"]


def test_rcptcheck_environment_and_missing_program_is_temporary(home, tmp_path):
    _, out = session(home, b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<joe@ours.example>\r\n",
                     RCPTCHECK=str(tmp_path / "missing"))
    assert replies(out)[3] == "451 temporary problem looking up the recipient (#4.3.0)"


# --- AUTH -------------------------------------------------------------------

def b64(s: bytes) -> bytes:
    import base64
    return base64.b64encode(s)


def test_auth_plain_and_login_grant_relay(home, tmp_path):
    cp = checkpassword(tmp_path)
    args = ["mx.ours.example", str(cp), "/bin/true"]
    _, out = session(home, b"EHLO c\r\nAUTH PLAIN " + b64(b"\0joe\0wrong") + b"\r\nMAIL FROM:<a@b>\r\n"
                           b"RCPT TO:<x@far.example>\r\nRSET\r\nAUTH PLAIN " + b64(b"\0joe\0secret") + b"\r\n"
                           b"MAIL FROM:<joe@ours.example>\r\nRCPT TO:<x@far.example>\r\nDATA\r\n\r\n.\r\n", args=args)
    r = replies(out)
    assert "250-AUTH LOGIN PLAIN" in r and "250-AUTH=LOGIN PLAIN" in r
    i = r.index("535 authentication failed (#5.7.8)")
    assert r[i + 2] == "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"
    assert r[i + 4] == "235 ok, go ahead (#2.0.0)"
    assert r[i + 5:i + 8] == ["250 ok", "250 ok", "354 go ahead"]
    [(mess, _, rcpts)] = queued(home)
    assert rcpts == [b"x@far.example"]
    assert mess.split(b"\n")[1] == b"Received: from unknown (HELO c) (joe@192.0.2.7)"
    assert b" with ESMTPA; " in mess

    _, out = session(home, b"EHLO c\r\nAUTH LOGIN\r\n" + b64(b"joe") + b"\r\n" + b64(b"secret") + b"\r\n"
                           b"AUTH LOGIN\r\n", args=args)
    r = replies(out)
    assert r[-4:] == ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6", "235 ok, go ahead (#2.0.0)",
                      "503 you're already authenticated (#5.5.0)"]


def test_auth_plain_refuses_an_authorization_identity_of_someone_else(home, tmp_path):
    """Issue 15: "bob\0joe\0secret" logged in as joe (the authzid was
    dropped). Refused now, as qmail-popup does; an empty authzid or one equal
    to the login is fine."""
    args = ["mx.ours.example", str(checkpassword(tmp_path)), "/bin/true"]
    _, out = session(home, b"EHLO c\r\nAUTH PLAIN " + b64(b"bob\0joe\0secret") + b"\r\n"
                           b"MAIL FROM:<joe@ours.example>\r\nRCPT TO:<x@far.example>\r\n"
                           b"RSET\r\nAUTH PLAIN\r\n" + b64(b"bob\0joe\0secret") + b"\r\n", args=args)
    r = replies(out)
    assert r[-6:] == ["535 authorization identity must be the login (#5.7.8)", "250 ok",
                      "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)", "250 flushed",
                      "334 ", "535 authorization identity must be the login (#5.7.8)"], r
    for good in (b"joe\0joe\0secret", b"\0joe\0secret"):
        _, out = session(home, b"EHLO c\r\nAUTH PLAIN " + b64(good) + b"\r\n", args=args)
        assert replies(out)[-1] == "235 ok, go ahead (#2.0.0)"


def test_auth_temporary_failure_and_bad_input(home, tmp_path):
    args = ["mx", str(checkpassword(tmp_path)), "/bin/true"]
    _, out = session(home, b"EHLO c\r\nAUTH PLAIN " + b64(b"\0down\0x") + b"\r\nAUTH PLAIN !!!\r\nAUTH LOGIN\r\n*\r\n"
                           b"AUTH FOO\r\nAUTH PLAIN\r\n" + b64(b"\0joe\0secret") + b"\r\n", args=args)
    r = replies(out)
    assert r[-7:] == ["454 temporary authentication failure (#4.3.0)", "501 malformed auth input (#5.5.4)",
                      "334 VXNlcm5hbWU6", "501 auth exchange cancelled (#5.0.0)", "504 auth type unimplemented (#5.5.1)",
                      "334 ", "235 ok, go ahead (#2.0.0)"]
    # a checkpassword that cannot run is temporary, never "wrong password"
    _, out = session(home, b"AUTH PLAIN " + b64(b"\0joe\0secret") + b"\r\n", args=["mx", str(tmp_path / "nope")])
    assert replies(out)[-1] == "454 temporary authentication failure (#4.3.0)"


def test_auth_failures_are_delayed_and_the_third_ends_the_session(home, tmp_path):
    """Found by proof/security.py: ten wrong passwords per connection got
    535 in 20 ms each. Now each refusal waits SMTPAUTHFAILDELAY seconds
    (default 2) and the third one ends the session with 421."""
    args = ["mx", str(checkpassword(tmp_path)), "/bin/true"]
    bad = b"AUTH PLAIN " + b64(b"\0joe\0wrong") + b"\r\n"
    t0 = time.monotonic()
    rc, out = session(home, b"EHLO c\r\n" + bad + bad + bad + b"AUTH PLAIN " + b64(b"\0joe\0secret") + b"\r\n"
                            b"MAIL FROM:<a@b>\r\n", args=args, SMTPAUTHFAILDELAY="1")
    took = time.monotonic() - t0
    r = replies(out)
    assert r[-3:] == ["535 authentication failed (#5.7.8)", "535 authentication failed (#5.7.8)",
                      "421 too many authentication failures, closing connection (#4.7.0)"], r
    assert 3 <= took < 20, took
    assert rc == 0
    # the default delay is 2 seconds; a temporary failure is not delayed
    t0 = time.monotonic()
    _, out = session(home, b"EHLO c\r\n" + bad, args=args)
    assert replies(out)[-1] == "535 authentication failed (#5.7.8)" and time.monotonic() - t0 >= 2
    t0 = time.monotonic()
    _, out = session(home, b"EHLO c\r\nAUTH PLAIN " + b64(b"\0down\0x") + b"\r\n", args=args)
    assert replies(out)[-1].startswith("454 ") and time.monotonic() - t0 < 2


def test_auth_required_and_auth_before_tls(home, tmp_path):
    args = ["mx", str(checkpassword(tmp_path)), "/bin/true"]
    _, out = session(home, b"EHLO c\r\nMAIL FROM:<a@b>\r\n", args=args, SMTPAUTH="!")
    assert replies(out)[-1] == "530 authentication required (#5.7.1)"
    _, out = session(home, b"EHLO c\r\nAUTH PLAIN " + b64(b"\0joe\0secret") + b"\r\n", args=args, FORCETLS="1")
    r = replies(out)
    assert not any("AUTH" in l for l in r[:-1])
    assert r[-1] == "538 encryption required for requested authentication mechanism (#5.7.11)"


def test_cram_md5_passes_challenge_and_digest(home, tmp_path):
    import base64, hashlib, hmac
    p = tmp_path / "cram"
    p.write_text('#!/usr/bin/python3\nimport os, sys, hmac, hashlib\nd = os.read(3, 4096).split(b"\\0")\n'
                 'ok = d[0] == b"joe" and hmac.new(b"secret", d[1], hashlib.md5).hexdigest().encode() == d[2]\n'
                 'sys.exit(0 if ok else 1)\n')
    p.chmod(0o755)
    proc = subprocess.Popen([home.bin("qmail-smtpd"), "mx.ours.example", str(p)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=smtpd_env(home, SMTPAUTH="+cram"))
    f = proc.stdout
    f.readline()
    proc.stdin.write(b"EHLO c\r\n"); proc.stdin.flush()
    ehlo = []
    while True:
        l = f.readline()
        ehlo.append(l)
        if l[3:4] == b" ":
            break
    assert b"250-AUTH LOGIN PLAIN CRAM-MD5\r\n" in ehlo
    proc.stdin.write(b"AUTH CRAM-MD5\r\n"); proc.stdin.flush()
    line = f.readline()
    assert line.startswith(b"334 ")
    challenge = base64.b64decode(line[4:].strip())
    assert re.fullmatch(rb"<\d+\.\d+@mx.ours.example>", challenge)
    digest = hmac.new(b"secret", challenge, hashlib.md5).hexdigest().encode()
    proc.stdin.write(base64.b64encode(b"joe " + digest) + b"\r\nQUIT\r\n"); proc.stdin.flush()
    assert f.readline() == b"235 ok, go ahead (#2.0.0)\r\n"
    proc.stdin.close()
    proc.wait(timeout=10)


# --- real clients over TCP ----------------------------------------------------

@pytest.fixture
def server(home, tmp_path):
    servers = []

    def start(args=(), **env):
        s = TcpServer(home, [home.bin("qmail-smtpd"), *args], env=smtpd_env(home, **env))
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.stop()


def test_smtplib_delivers(home, server):
    s = server()
    with smtplib.SMTP("127.0.0.1", s.port, timeout=20) as c:
        c.ehlo("client.example")
        assert c.has_extn("pipelining") and c.has_extn("8bitmime")
        c.sendmail("a@b.example", ["joe@ours.example", "ann@ours.example"], b"Subject: smtplib\r\n\r\nhello\r\n")
    [(mess, sender, rcpts)] = queued(home)
    assert rcpts == [b"joe@ours.example", b"ann@ours.example"]
    assert b"Received: from unknown (HELO client.example) (127.0.0.1)\n  by localhost with SMTP; " in mess


def test_smtplib_auth(home, server, tmp_path):
    s = server(args=["mx", str(checkpassword(tmp_path)), "/bin/true"])
    with smtplib.SMTP("127.0.0.1", s.port, timeout=20) as c:
        c.ehlo("client.example")
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            c.sendmail("a@b.example", ["x@far.example"], b"Subject: no\r\n\r\nno\r\n")
        c.rset()
        c.login("joe", "secret")
        c.sendmail("joe@ours.example", ["x@far.example"], b"Subject: yes\r\n\r\nyes\r\n")
    [(_, _, rcpts)] = queued(home)
    assert rcpts == [b"x@far.example"]


def test_swaks_plain_and_auth(home, server, tmp_path):
    s = server(args=["mx", str(checkpassword(tmp_path)), "/bin/true"])
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(s.port), "--from", "a@b.example",
                        "--to", "joe@ours.example", "--body", "swaks plain"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(s.port), "--from", "joe@ours.example",
                        "--to", "x@far.example", "--auth", "LOGIN", "--auth-user", "joe", "--auth-password", "secret",
                        "--body", "swaks auth"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(s.port), "--from", "a@b.example",
                        "--to", "x@far.example", "--body", "relay?"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "553 sorry, that domain isn't in my list of allowed rcpthosts" in r.stdout
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(s.port), "--from", "a@b.example",
                        "--to", "ann@ours.example", "--pipeline", "--body", "swaks pipelined"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(q[2] for q in queued(home)) == [[b"ann@ours.example"], [b"joe@ours.example"], [b"x@far.example"]]


def test_pipelining_client(home, server):
    s = server()
    c = socket.create_connection(("127.0.0.1", s.port), timeout=20)
    f = c.makefile("rb")
    assert f.readline().startswith(b"220 ")
    c.sendall(b"EHLO p\r\n")
    while f.readline()[3:4] == b"-":
        pass
    # everything in one write, as a pipelining client does (RFC 2920)
    batch = b""
    for i in range(3):
        batch += (b"MAIL FROM:<p%d@b.example>\r\nRCPT TO:<a@ours.example>\r\nRCPT TO:<x@far.example>\r\n"
                  b"RCPT TO:<b@ours.example>\r\nDATA\r\nSubject: %d\r\n\r\nbody\r\n.\r\n" % (i, i))
    c.sendall(batch + b"QUIT\r\n")
    got = f.read().decode().split("\r\n")
    c.close()
    assert got.count("354 go ahead") == 3
    assert len([g for g in got if g.startswith("250 ok ")]) == 3
    assert got.count("553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)") == 3
    msgs = queued(home)
    assert sorted(m[1] for m in msgs) == [b"p0@b.example", b"p1@b.example", b"p2@b.example"]
    assert all(m[2] == [b"a@ours.example", b"b@ours.example"] for m in msgs)


def test_empty_recipient_is_a_syntax_error(home):
    _, out = session(home, b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<>\r\n")
    assert replies(out)[3] == "555 syntax error (#5.5.4)"


# --- STARTTLS ---------------------------------------------------------------

def make_cert(home, tmp_path):
    key, crt = tmp_path / "key.pem", tmp_path / "crt.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", "/CN=mx.ours.example"], check=True, capture_output=True, timeout=60)
    (home.path / "control" / "servercert.pem").write_bytes(crt.read_bytes() + key.read_bytes())


def tls_context():
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_no_certificate_no_starttls(home):
    _, out = session(home, b"EHLO c\r\nSTARTTLS\r\n")
    r = replies(out)
    assert "250-STARTTLS" not in r and r[-1] == "502 unimplemented (#5.5.1)"


def test_starttls_then_auth_with_smtplib(home, server, tmp_path):
    make_cert(home, tmp_path)
    s = server(args=["mx", str(checkpassword(tmp_path)), "/bin/true"], FORCETLS="1")
    with smtplib.SMTP("127.0.0.1", s.port, timeout=20) as c:
        c.ehlo("client.example")
        assert c.has_extn("starttls") and not c.has_extn("auth")
        c.starttls(context=tls_context())
        c.ehlo("client.example")
        assert not c.has_extn("starttls") and "PLAIN" in c.esmtp_features["auth"]
        c.login("joe", "secret")
        c.sendmail("joe@ours.example", ["x@far.example"], b"Subject: tls\r\n\r\nover tls\r\n")
    [(mess, _, rcpts)] = queued(home)
    assert rcpts == [b"x@far.example"]
    assert b" with ESMTPSA; " in mess and mess.endswith(b"over tls\n")


def test_starttls_with_swaks(home, server, tmp_path):
    make_cert(home, tmp_path)
    s = server()
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(s.port), "--tls", "--from", "a@b.example",
                        "--to", "joe@ours.example", "--body", "swaks tls"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    [(mess, _, _)] = queued(home)
    assert b" with ESMTPS; " in mess


def test_plaintext_sent_after_starttls_is_discarded(home, server, tmp_path):
    """Commands pipelined behind STARTTLS in plaintext must not run inside
    the TLS session (CVE-2011-0411)."""
    import ssl
    make_cert(home, tmp_path)
    s = server()
    raw = socket.create_connection(("127.0.0.1", s.port), timeout=20)
    f = raw.makefile("rb")
    f.readline()
    raw.sendall(b"EHLO c\r\n")
    while f.readline()[3:4] == b"-":
        pass
    raw.sendall(b"STARTTLS\r\nMAIL FROM:<evil@x.example>\r\n")
    assert f.readline() == b"220 ready for tls\r\n"
    t = tls_context().wrap_socket(raw, server_hostname="mx.ours.example")
    t.sendall(b"RCPT TO:<a@ours.example>\r\nQUIT\r\n")
    got = b""
    while True:
        b = t.recv(4096)
        if not b:
            break
        got += b
    assert got.split(b"\r\n")[0] == b"503 MAIL first (#5.5.1)"


def test_remote_uses_starttls_with_our_smtpd(home, server, tmp_path):
    make_cert(home, tmp_path)
    s = server()
    sender_home = __import__("conftest").make_home(tmp_path / "sender", fqdn="out.example")
    sender_home.control("smtproutes", f"ours.example:127.0.0.1:{s.port}\n")
    p = subprocess.run([sender_home.bin("qmail-remote"), "ours.example", "a@out.example", "joe@ours.example"],
                       input=b"Subject: t\n\nbody\n", capture_output=True, env=sender_home.env, timeout=60)
    assert p.stdout.startswith(b"r\0K127.0.0.1 accepted message.")
    [(mess, _, _)] = queued(home)
    assert b"(HELO out.example) (127.0.0.1)\n  by localhost with ESMTPS; " in mess


def test_unusable_certificate_is_a_temporary_starttls_refusal(home):
    (home.path / "control" / "servercert.pem").write_text("not a certificate\n")
    _, out = session(home, b"EHLO c\r\nSTARTTLS\r\nQUIT\r\n")
    r = replies(out)
    assert "250-STARTTLS" in r
    assert r[-2] == "454 TLS not available due to temporary reason (#4.3.0)"


def test_smtpd_file_links_neither_openssl_nor_the_cxx_runtime_as_shared_libraries(home, bindir):
    # qmail-smtpd is exec'd per connection. OpenSSL is the system's shared
    # library, loaded at the first TLS set-up (a session without STARTTLS
    # does not pay for it; a security update reaches it without a rebuild);
    # the C++ runtime under the Swift runtime is linked in. Loading OpenSSL,
    # libstdc++ and libgcc_s cost each connection about 1.7 ms.
    path = bindir / "qmail-smtpd"
    dyn = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, timeout=30)
    assert dyn.returncode == 0, dyn.stderr
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn.stdout)
    assert not [lib for lib in needed if lib.startswith(("libssl", "libcrypto", "libstdc++", "libgcc_s"))], needed
    image = path.read_bytes()
    assert b"libssl.so.3\0" in image and b"OPENSSL_" not in image  # loaded by name, not linked in
    _, out = session(home, b"EHLO c\r\nQUIT\r\n")
    assert replies(out)[-1] == f"221 {home.fqdn}"


def test_starttls_without_a_loadable_libssl_is_a_temporary_refusal(home, tmp_path):
    # OpenSSL is loaded at STARTTLS: when it cannot be (here a broken
    # libssl.so.3 found first), the client hears the same 454 as for an
    # unusable certificate, and the session goes on in plaintext.
    make_cert(home, tmp_path)
    broken = tmp_path / "broken-libs"
    broken.mkdir()
    (broken / "libssl.so.3").write_bytes(b"not a library\n")
    (broken / "libcrypto.so.3").write_bytes(b"not a library\n")
    rc, out = session(home, b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<a@b.example>\r\nQUIT\r\n", LD_LIBRARY_PATH=str(broken))
    r = replies(out)
    assert r[0] == f"220 {home.fqdn} ESMTP" and "250-STARTTLS" in r, r
    assert "454 TLS not available due to temporary reason (#4.3.0)" in r, r
    assert r[-2:] == ["250 ok", f"221 {home.fqdn}"], r
    assert rc == 0


# --- under our own tcpserver and tcprules --------------------------------------

def our_tcpserver(home, host, rules_cdb=None, env=None, program=None):
    import shutil
    exe = home.path / "bin" / "tcpserver"
    if not exe.exists():
        pytest.skip("our tcpserver is not built")
    from smtp_helpers import free_port
    port = free_port()
    cmd = [str(exe), "-q", "-R", "-H", "-l", "mx.ours.example"]
    if rules_cdb:
        cmd += ["-x", str(rules_cdb)]
    cmd += [host, str(port), *(program or [home.bin("qmail-smtpd")])]
    proc = subprocess.Popen(cmd, env=env or smtpd_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(200):
        try:
            s = socket.socket(fam)
            s.settimeout(1)
            s.connect((host, port))
            s.close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port


def test_ipv6_client_under_our_tcpserver(home):
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    env = smtpd_env(home)
    for k in ("TCPREMOTEIP", "TCPLOCALIP"):
        env.pop(k, None)
    proc, port = our_tcpserver(home, "::1", env=env)
    try:
        with smtplib.SMTP("::1", port, timeout=20) as c:
            c.sendmail("a@b.example", ["joe@ours.example"], b"Subject: v6\r\n\r\nhi\r\n")
    finally:
        proc.terminate()
        proc.wait()
    [(mess, _, _)] = queued(home)
    assert mess.split(b"\n")[1].startswith(b"Received: from unknown (HELO ") and b") (::1)" in mess.split(b"\n")[1]
    assert b"  by mx.ours.example with SMTP; " in mess


def test_tcp_smtp_rules_grant_relaying(home, tmp_path):
    tcprules = home.path / "bin" / "tcprules"
    if not tcprules.exists():
        pytest.skip("our tcprules is not built")
    rules = tmp_path / "tcp.smtp"
    rules.write_text('127.0.0.1:allow,RELAYCLIENT="",DATABYTES="1000"\n:allow\n')
    cdb = tmp_path / "tcp.smtp.cdb"
    subprocess.run([str(tcprules), str(cdb), str(tmp_path / "tcp.smtp.tmp")], stdin=rules.open("rb"), check=True)
    env = smtpd_env(home)
    for k in ("TCPREMOTEIP", "TCPLOCALIP"):
        env.pop(k, None)
    proc, port = our_tcpserver(home, "127.0.0.1", rules_cdb=cdb, env=env)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
            c.ehlo("c")
            assert c.esmtp_features["size"] == "1000"
            c.sendmail("a@b.example", ["x@far.example"], b"Subject: relayed\r\n\r\nhi\r\n")
    finally:
        proc.terminate()
        proc.wait()
    [(_, _, rcpts)] = queued(home)
    assert rcpts == [b"x@far.example"]


TRANSCRIPTS = sorted((pathlib.Path(__file__).parent / "smtpd-transcripts").glob("*.in"))


@pytest.mark.parametrize("case", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_golden_transcripts(home, case):
    """smtpd-transcripts/NAME.in fed to qmail-smtpd gives NAME.ref (time and
    qp normalised)."""
    _, out = session(home, case.read_bytes())
    got = re.sub(r"250 ok \d+ qp \d+", "250 ok TIME qp PID", out.decode("latin-1")).replace("\r\n", "\n")
    assert got == case.with_suffix(".ref").read_text()


def test_hanging_rcptcheck_is_temporary(home, tmp_path):
    prog = tmp_path / "slow"
    prog.write_text("#!/bin/sh\nexec sleep 30\n")
    prog.chmod(0o755)
    t0 = time.time()
    _, out = session(home, b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<joe@ours.example>\r\n",
                     RCPTCHECK=str(prog), RCPTCHECKTIMEOUT="1")
    assert replies(out)[3] == "451 temporary problem looking up the recipient (#4.3.0)"
    assert time.time() - t0 < 10


# --- the recipient lookup against the hosting user directory --------------------

@pytest.fixture
def hosted():
    """example.org hosted with the file backend: joe has a mailbox. The home
    lives under /var/tmp (0755), as in the hosting tests: checkpassword
    becomes the domain's account, which must reach the domain directory."""
    import shutil
    import tempfile
    from conftest import make_home
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-smtp-hosted-", dir="/var/tmp"))
    base.chmod(0o755)
    home = make_home(base)
    if not (home.path / "bin" / "vadddomain").exists():
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip("the hosting programs are not built")
    name = f"sqrc{os.getpid() % 100000}{int(time.time() * 1000) % 100000}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True)
    try:
        for args, pw in ((["vadddomain", "-u", name, "example.org"], "pm"), (["vadduser", "joe@example.org"], "pw")):
            r = home.run(*args, input=pw + "\n")
            assert r.returncode == 0, r.stderr
        home.control("rcpthosts", "example.org\nours.example\n")
        yield home
    finally:
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_rcptcheck_asks_the_user_directory(hosted, bindir):
    _, out = session(hosted, b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<joe@example.org>\r\nRCPT TO:<Joe@EXAMPLE.org>\r\n"
                             b"RCPT TO:<joe-lists@example.org>\r\nRCPT TO:<nobody@example.org>\r\n"
                             b"RCPT TO:<postmaster@ours.example>\r\n",
                     RCPTCHECK=str(bindir / "qmail-rcptcheck"))
    assert replies(out)[3:] == ["250 ok", "250 ok", "250 ok", "550 sorry, no mailbox here by that name (#5.1.1)",
                                "250 ok"]


def test_rcptcheck_judges_the_address_after_the_percent_hack(hosted, bindir):
    """nobody%example.org@ours.example goes to nobody@example.org when
    ours.example is in percenthack: that is the mailbox to ask about (it was
    asked about the local part "nobody%example.org" of ours.example)."""
    hosted.control("percenthack", "ours.example\n")
    hosted.control("envnoathost", "ours.example\n")
    _, out = session(hosted, b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<nobody%example.org@ours.example>\r\n"
                             b"RCPT TO:<joe%example.org@ours.example>\r\nRCPT TO:<nobody%example.org%ours.example>\r\n",
                     RCPTCHECK=str(bindir / "qmail-rcptcheck"))
    assert replies(out)[3:] == ["550 sorry, no mailbox here by that name (#5.1.1)", "250 ok",
                                "550 sorry, no mailbox here by that name (#5.1.1)"]
    # a relaying client's mail to our domains is still looked up
    _, out = session(hosted, b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<nobody%example.org@ours.example>\r\n"
                             b"RCPT TO:<nobody%far.example@ours.example>\r\n",
                     RCPTCHECK=str(bindir / "qmail-rcptcheck"), RELAYCLIENT="")
    assert replies(out)[3:] == ["550 sorry, no mailbox here by that name (#5.1.1)", "250 ok"]


def test_rcptcheck_catch_all_domain_accepts_everyone(hosted, bindir):
    qd = hosted.path / "domains" / "example.org" / ".qmail-default"
    qd.write_text(qd.read_text().replace("bounce-no-mailbox", "joe"))
    r = subprocess.run([str(bindir / "qmail-rcptcheck"), "nobody@example.org"], env=hosted.env)
    assert r.returncode == 0
    (hosted.path / "domains" / "example.org" / ".qmail-default").write_text(qd.read_text().replace("'joe'", "''").replace(" joe", " bounce-no-mailbox"))
    assert subprocess.run([str(bindir / "qmail-rcptcheck"), "nobody@example.org"], env=hosted.env).returncode == 100
    # a .qmail file in the domain directory catches the name (vpopmail's .qmail-alias files)
    (hosted.path / "domains" / "example.org" / ".qmail-sales").write_text("&joe@example.org\n")
    assert subprocess.run([str(bindir / "qmail-rcptcheck"), "sales@example.org"], env=hosted.env).returncode == 0


def test_auth_through_the_hosting_checkpassword(hosted):
    cp = hosted.path / "bin" / "checkpassword-file"
    if not cp.exists():
        pytest.skip("checkpassword-file is not built")
    args = ["mx.example.org", str(cp), "/bin/true"]
    _, out = session(hosted, b"EHLO c\r\nAUTH PLAIN " + b64(b"\0joe@example.org\0wrong") + b"\r\n"
                             b"AUTH PLAIN " + b64(b"\0joe@example.org\0pw") + b"\r\nMAIL FROM:<joe@example.org>\r\n"
                             b"RCPT TO:<x@far.example>\r\nQUIT\r\n", args=args)
    r = replies(out)
    assert r[-5:] == ["535 authentication failed (#5.7.8)", "235 ok, go ahead (#2.0.0)", "250 ok", "250 ok",
                      "221 " + hosted.fqdn]


# --- qmail-smtpd-auth: AUTH with a privileged checkpassword --------------------

NOBODY = 65534


def auth_helper_session(home, data: bytes, smtpd_args, check_args, **env):
    """qmail-smtpd-auth (as root, on pipes) running qmail-smtpd as nobody."""
    argv = [home.bin("qmail-smtpd-auth"), "-u", str(NOBODY), "-g", str(NOBODY), *check_args,
            "--", home.bin("qmail-smtpd"), *smtpd_args]
    p = subprocess.run(argv, input=data, capture_output=True, env=smtpd_env(home, **env), timeout=60)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def nobody_dir():
    """A directory nobody can reach and write (pytest's tmp_path is private to root)."""
    import shutil
    d = pathlib.Path(tempfile.mkdtemp(prefix="sq-authsep-", dir="/tmp"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_auth_through_the_privileged_helper_as_the_services_run_it(hosted, nobody_dir):
    """The shipped services run qmail-smtpd as qmaild, which cannot read the
    domain's password database: alone it answers 454; under qmail-smtpd-auth
    the login is checked by root's checkpassword-file and relay is granted,
    while qmail-smtpd itself still runs unprivileged."""
    cp = str(hosted.path / "bin" / "checkpassword-file")
    out_dir = nobody_dir
    spy = out_dir / "qq"
    spy.write_text(f"#!/bin/sh\nid -u > {out_dir}/uid\ncat >/dev/null\nexit 0\n")
    spy.chmod(0o755)
    login = b"EHLO c\r\nAUTH PLAIN " + b64(b"\0joe@example.org\0pw") + b"\r\n"
    # qmail-smtpd alone, as nobody: the database is out of its reach
    r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                        hosted.bin("qmail-smtpd"), "mx.example.org", cp, "/bin/true"],
                       input=login, capture_output=True, env=smtpd_env(hosted), timeout=60)
    assert replies(r.stdout)[-1] == "454 temporary authentication failure (#4.3.0)"
    # through the helper
    rc, out, err = auth_helper_session(
        hosted, b"EHLO c\r\nAUTH PLAIN " + b64(b"\0joe@example.org\0wrong") + b"\r\n" + login[8:] +
        b"MAIL FROM:<joe@example.org>\r\nRCPT TO:<x@far.example>\r\nDATA\r\n\r\nhi\r\n.\r\nQUIT\r\n",
        ["mx.example.org"], [cp, "/bin/true"], QMAILQUEUE=str(spy), SMTPAUTHFAILDELAY="0")
    r = replies(out)
    assert "250-AUTH LOGIN PLAIN" in r
    assert r[-7:-4] == ["535 authentication failed (#5.7.8)", "235 ok, go ahead (#2.0.0)", "250 ok"], (r, err)
    assert r[-4] == "250 ok" and r[-2].startswith("250 ok "), r  # relayed to far.example
    assert rc == 0, err
    assert (out_dir / "uid").read_text().strip() == str(NOBODY)


def test_tcpserver_runs_qmail_smtpd_auth_without_an_exec(hosted, nobody_dir):
    """Under tcpserver, qmail-smtpd-auth (the same file) runs in the
    connection's forked child: no exec of it per connection. The login is
    still checked by root's checkpassword-file, qmail-smtpd still runs as
    nobody, and its parent is tcpserver's child, not a qmail-smtpd-auth."""
    spy = nobody_dir / "qq"
    spy.write_text(f"#!/bin/sh\nid -u > {nobody_dir}/uid\n"
                   f"tr '\\0' ' ' < /proc/$(awk '{{print $4}}' /proc/$PPID/stat)/cmdline > {nobody_dir}/session\n"
                   "cat >/dev/null\nexit 0\n")
    spy.chmod(0o755)
    auth = [hosted.bin("qmail-smtpd-auth"), "-u", str(NOBODY), "-g", str(NOBODY), hosted.bin("checkpassword-file"),
            "/bin/true", "--", hosted.bin("qmail-smtpd"), "mx.example.org"]
    proc, port = our_tcpserver(hosted, "127.0.0.1", env=smtpd_env(hosted, QMAILQUEUE=str(spy), SMTPAUTHFAILDELAY="0"),
                               program=auth)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.ehlo("c")
            assert c.docmd("AUTH", "PLAIN " + b64(b"\0joe@example.org\0wrong").decode())[0] == 535
            assert c.docmd("AUTH", "PLAIN " + b64(b"\0joe@example.org\0pw").decode())[0] == 235
            c.sendmail("joe@example.org", ["x@far.example"], b"Subject: t\r\n\r\nhi\r\n")
    finally:
        proc.terminate()
        proc.wait()
    assert (nobody_dir / "uid").read_text().strip() == str(NOBODY)
    session = (nobody_dir / "session").read_text().split()
    assert session[0] == str(hosted.path / "bin" / "tcpserver"), session


def shipped_service(kind, name):
    """The command a contrib SMTP service runs: a daemontools run script, or
    the ExecStart of a systemd unit (run by sh here as systemd would, with the
    unit's Environment= as defaults)."""
    if kind == "daemontools":
        return (ROOT / "contrib" / "daemontools" / name / "run").read_text(), {}
    text = (ROOT / "contrib" / "systemd" / f"{name}.service").read_text()
    m = re.search(r"^ExecStart=/bin/sh -c '(.*)'$", text, re.M)
    env = dict(kv.split("=", 1) for kv in re.search(r"^Environment=(.*)$", text, re.M).group(1).split())
    assert env["QMAIL_HOME"] == "/var/qmail" and env["IP"] == "0"
    return m.group(1), env


@pytest.mark.parametrize("kind,name", [("daemontools", "qmail-submission"), ("daemontools", "qmail-smtps"),
                                       ("systemd", "qmail-submission"), ("systemd", "qmail-smtps")])
def test_submission_services_as_shipped(hosted, nobody_dir, kind, name):
    """contrib's submission services (587 and 465 roles) as shipped, on a home
    that is not /var/qmail (QMAIL_HOME), on a chosen address (IP) and port:
    the accounts come from HOME/ids (qmaild is nobody here), logins are
    checked by checkpassword-file through qmail-smtpd-auth, AUTH comes only
    after TLS, and only AUTH relays."""
    script, defaults = shipped_service(kind, name)
    assert "$QMAIL/bin/qmail-smtpd-auth" in script or "${QMAIL_HOME}/bin/qmail-smtpd-auth" in script
    ids = (hosted.path / "ids").read_text()
    ids = re.sub(r"^qmaild=\d+$", f"qmaild={NOBODY}", ids, flags=re.M)
    ids = re.sub(r"^gid\.nofiles=\d+$", f"gid.nofiles={NOBODY}", ids, flags=re.M)
    (hosted.path / "ids").write_text(ids)
    # qmaild (nobody) reads the certificate at STARTTLS: make-servercert.sh gives it to HOME/ids' qmaild
    r = subprocess.run(["sh", str(ROOT / "contrib" / "pop3" / "make-servercert.sh"), str(hosted.path), "localhost"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    run = nobody_dir / "run"
    run.write_text(script)
    spy = nobody_dir / "qq"
    spy.write_text(f"#!/bin/sh\nid -u > {nobody_dir}/uid\ncat >/dev/null\nexit 0\n")
    spy.chmod(0o755)
    port = free_port()
    env = dict(hosted.env, **defaults)
    env.update(QMAIL_HOME=str(hosted.path), IP="127.0.0.1", PORT=str(port), QMAILQUEUE=str(spy),
               SMTPAUTHFAILDELAY="0")
    env.pop("RELAYCLIENT", None)
    proc = subprocess.Popen(["sh", str(run)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    implicit = name == "qmail-smtps"
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.1)

        def connect():
            if implicit:
                c = smtplib.SMTP_SSL("127.0.0.1", port, timeout=30, context=tls)
                c.ehlo("client.example")
                assert not c.has_extn("starttls")
            else:
                c = smtplib.SMTP("127.0.0.1", port, timeout=30)
                c.ehlo("client.example")
                # FORCETLS: AUTH neither offered nor accepted in clear
                assert c.has_extn("starttls") and not c.has_extn("auth")
                with pytest.raises(smtplib.SMTPNotSupportedError):
                    c.login("joe@example.org", "pw")
                assert c.docmd("AUTH", "PLAIN " + b64(b"\0joe@example.org\0pw").decode()) == \
                    (538, b"encryption required for requested authentication mechanism (#5.7.11)")
                assert c.mail("joe@example.org")[0] == 530
                c.starttls(context=tls)
                c.ehlo("client.example")
            return c
        c = connect()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("joe@example.org", "wrong")
        c.login("joe@example.org", "pw")
        assert c.sendmail("joe@example.org", ["x@far.example"], b"Subject: t\r\n\r\nhi\r\n") == {}
        c.quit()
        assert (nobody_dir / "uid").read_text().strip() == str(NOBODY)
        # no login, no mail: SMTPAUTH=! on submission
        c = connect()
        code, _ = c.mail("a@b.example")
        assert code == 530
        c.quit()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=10)[0].decode()
    assert "qmail-smtpd-auth: login failed remote=127.0.0.1 user=joe@example.org" in out, out
    assert "qmail-smtpd-auth: login ok remote=127.0.0.1 user=joe@example.org" in out, out


def test_submission_systemd_unit_refuses_auth_before_starttls(qhome, tmp_path):
    """The systemd unit's environment, given to qmail-smtpd as the unit
    would: AUTH is neither offered nor accepted before STARTTLS."""
    unit = (ROOT / "contrib" / "systemd" / "qmail-submission.service").read_text()
    [line] = [l for l in unit.splitlines() if l.startswith("Environment=")]
    env = dict(w.split("=", 1) for w in line[len("Environment="):].split())
    assert env.get("FORCETLS") == "1" and env.get("SMTPAUTH") == "!"
    env.pop("QMAIL_HOME")
    qhome.control("rcpthosts", "ours.example\n")
    make_cert(qhome, tmp_path)
    _, out = session(qhome, b"EHLO c\r\nAUTH PLAIN " + b64(b"\0joe\0secret") + b"\r\nMAIL FROM:<a@b>\r\n",
                     args=["mx", str(checkpassword(tmp_path)), "/bin/true"], **env)
    r = replies(out)
    assert "250-STARTTLS" in r and not any("AUTH" in l for l in r[:-2]), r
    assert r[-2:] == ["538 encryption required for requested authentication mechanism (#5.7.11)",
                      "530 authentication required (#5.7.1)"]


@pytest.mark.parametrize("split", [False, True], ids=["checkpassword-file", "qmail-smtpd-auth"])
def test_cram_md5_with_checkpassword_file_under_tcpserver(hosted, nobody_dir, split):
    """Issue 15: SMTPAUTH=cram offered CRAM-MD5, which never succeeded with
    checkpassword-file. With control/vplaintext 1 and a password stored in
    clear (vadduser -C) it now does; without a clear password it cannot."""
    r = hosted.run("vadduser", "-C", "cram@example.org", input="Cram-pw9\n")
    assert r.returncode == 0, r.stderr
    hosted.control("vplaintext", "1\n")
    cp = hosted.bin("checkpassword-file")
    argv = [hosted.bin("qmail-smtpd"), "mx.example.org", cp, "/bin/true"]
    if split:
        argv = [hosted.bin("qmail-smtpd-auth"), "-u", str(NOBODY), "-g", str(NOBODY), cp, "/bin/true", "--",
                hosted.bin("qmail-smtpd"), "mx.example.org"]
    spy = nobody_dir / "qq"  # qmail-smtpd may run as nobody: the envelope goes where nobody can write
    spy.write_text(f"#!/bin/sh\ncat >/dev/null\ncat 0<&1 > {nobody_dir}/envelope\nexit 0\n")
    spy.chmod(0o755)
    s = TcpServer(hosted, argv, env=smtpd_env(hosted, SMTPAUTH="cram", SMTPAUTHFAILDELAY="0", QMAILQUEUE=str(spy)))
    try:
        def client():
            c = smtplib.SMTP("127.0.0.1", s.port, timeout=30)
            c.ehlo("client.example")
            assert set(c.esmtp_features["auth"].split()) == {"CRAM-MD5"}
            return c
        c = client()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("cram@example.org", "wrong")
        assert c.login("cram@example.org", "Cram-pw9")[0] == 235
        assert c.sendmail("cram@example.org", ["x@far.example"], b"Subject: cram\r\n\r\nhi\r\n") == {}
        c.quit()
        c = client()  # joe's password is stored hashed only
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("joe@example.org", "pw")
        c.quit()
        hosted.control("vplaintext", "0\n")  # clear passwords not to be used
        c = client()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("cram@example.org", "Cram-pw9")
        c.quit()
    finally:
        s.stop()
    assert (nobody_dir / "envelope").read_bytes() == b"Fcram@example.org\0Tx@far.example\0\0"


FAKE_SMTPD = r"""#!/usr/bin/python3
import os, sys, time
fd = int(os.environ["SMTPAUTHFD"])
print("uid", os.getuid(), os.geteuid(), os.getgid(), flush=True)
for q in sys.argv[1:]:
    q = q.encode().replace(b"~", b"\0")
    t = time.monotonic()
    try:
        os.write(fd, b"%d:%s," % (len(q), q))
        a = os.read(fd, 1)
    except OSError:
        a = b""
    print(repr(a), round(time.monotonic() - t, 1), flush=True)
"""


def test_auth_helper_keeps_the_limits_itself(qhome, tmp_path, nobody_dir):
    """A qmail-smtpd taken over by its client talks to the helper directly:
    it still gets at most three refusals, each one delayed, nothing after a
    good login, and no answer to a malformed question."""
    fake = nobody_dir / "fake-smtpd"
    fake.write_text(FAKE_SMTPD)
    fake.chmod(0o755)
    cp = str(checkpassword(tmp_path))

    def run(*questions, **env):
        argv = [qhome.bin("qmail-smtpd-auth"), "-u", str(NOBODY), "-g", str(NOBODY), cp, "/bin/true",
                "--", str(fake), *questions]
        p = subprocess.run(argv, capture_output=True, env=smtpd_env(qhome, **env), timeout=60)
        return p.returncode, p.stdout.decode().splitlines()

    rc, lines = run(*["joe~wrong~s~"] * 5, SMTPAUTHFAILDELAY="1")
    assert lines[0] == f"uid {NOBODY} {NOBODY} {NOBODY}"
    answers = [l.split()[0] for l in lines[1:]]
    assert answers == ["b'1'"] * 3 + ["b''"] * 2, lines
    assert all(float(l.split()[1]) >= 1 for l in lines[1:4]), lines
    rc, lines = run("joe~secret~s~", "joe~secret~s~", "joe~wrong~s~", SMTPAUTHFAILDELAY="0")
    assert [l.split()[0] for l in lines[1:]] == ["b'0'", "b''", "b''"], lines
    rc, lines = run("down~x~s~", "joe~secret~s~", SMTPAUTHFAILDELAY="0")
    assert [l.split()[0] for l in lines[1:]] == ["b'2'", "b'0'"], lines
    for bad in ("joe~secret~", "joe~secret~s~extra~", "joe~secret~s"):
        rc, lines = run(bad, "joe~secret~s~", SMTPAUTHFAILDELAY="0")
        assert [l.split()[0] for l in lines[1:]] == ["b''", "b''"], (bad, lines)


def test_auth_helper_lets_go_of_the_connection(qhome, nobody_dir):
    """The root side keeps only its end of the socket pair: the client's
    connection (descriptors 0 and 1) belongs to qmail-smtpd alone."""
    child = nobody_dir / "child"
    child.write_text("#!/bin/sh\nsleep 3\n")
    child.chmod(0o755)
    a, b = socket.socketpair()
    p = subprocess.Popen([qhome.bin("qmail-smtpd-auth"), "-u", str(NOBODY), "-g", str(NOBODY), "/bin/false",
                          "--", str(child)], stdin=a.fileno(), stdout=a.fileno())
    try:
        time.sleep(1)
        assert os.readlink(f"/proc/{p.pid}/fd/0") == "/dev/null"
        assert os.readlink(f"/proc/{p.pid}/fd/1") == "/dev/null"
        kids = pathlib.Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
        assert len(kids) == 1 and os.readlink(f"/proc/{kids[0]}/fd/0").startswith("socket:")
    finally:
        a.close(); b.close()
        assert p.wait(timeout=10) == 0


def test_auth_helper_refuses_root_and_bad_usage(qhome):
    h = qhome.bin("qmail-smtpd-auth")
    for argv in ([h, "-u", "0", "-g", "0", "/bin/true", "--", "/bin/true"],
                 [h, "-u", "5", "/bin/true", "--", "/bin/true"],
                 [h, "-u", "5", "-g", "5", "/bin/true", "/bin/true"],
                 [h, "-u", "5", "-g", "5", "checkpassword", "--", "/bin/true"],
                 [h, "-u", "x", "-g", "5", "/bin/true", "--", "/bin/true"]):
        r = subprocess.run(argv, capture_output=True, timeout=10)
        assert r.returncode == 100 and b"qmail-smtpd-auth" in r.stderr, argv


# --- one qmail-queue per connection (QueueSession) ----------------------------

def qp(line: str) -> int:
    m = re.fullmatch(r"250 ok \d+ qp (\d+)", line)
    assert m, line
    return int(m.group(1))


def mail(i: int, extra=b"", header=b"") -> bytes:
    return (b"MAIL FROM:<s%d@b.example>\r\nRCPT TO:<a@ours.example>\r\nDATA\r\n%sSubject: %d\r\n\r\n%sbody %d\r\n.\r\n"
            % (i, header, i, extra, i))


def test_connection_queues_every_message_through_one_queue_process(home):
    _, out = session(home, b"HELO c\r\n" + b"".join(mail(i) for i in range(5)) + b"QUIT\r\n")
    oks = [l for l in replies(out) if l.startswith("250 ok ")]
    assert len(oks) == 5 and len({qp(l) for l in oks}) == 1
    msgs = queued(home)
    assert sorted(m[1] for m in msgs) == [b"s%d@b.example" % i for i in range(5)]
    for mess, sender, _ in msgs:
        i = int(sender[1:2])
        assert mess.startswith(b"Received: (qmail %d invoked by uid " % qp(oks[0]))
        assert mess.endswith(b"Subject: %d\n\nbody %d\n" % (i, i))


def test_qmailqueue_set_means_one_queue_program_per_message(home, tmp_path):
    # QMAILQUEUE keeps qmail's interface: a fresh program per message, even our own qmail-queue.
    _, out = session(home, b"HELO c\r\n" + b"".join(mail(i) for i in range(3)),
                     QMAILQUEUE=home.bin("qmail-queue"))
    oks = [l for l in replies(out) if l.startswith("250 ok ")]
    assert len(oks) == 3 and len({qp(l) for l in oks}) == 3
    assert len(queued(home)) == 3


def test_refused_message_in_the_middle_does_not_disturb_the_next(home):
    # Over databytes and too many hops end the queue process for that message;
    # the next message gets a new one and is queued whole.
    hops = b"".join(b"Delivered-To: x%d\r\n" % i for i in range(100))
    data = (b"HELO c\r\n" + mail(1) + mail(2, b"y" * 3000 + b"\r\n") + mail(3, header=hops) + mail(4) + b"QUIT\r\n")
    _, out = session(home, data, DATABYTES=2000)
    got = replies(out)
    assert "552 sorry, that message size exceeds my databytes limit (#5.3.4)" in got
    assert "554 too many hops, this message is looping (#5.4.6)" in got
    oks = [l for l in got if l.startswith("250 ok ")]
    assert len(oks) == 2 and qp(oks[0]) != qp(oks[1])
    assert sorted(m[1] for m in queued(home)) == [b"s1@b.example", b"s4@b.example"]
    assert not home.queue_files("pid") and len(home.queue_files("intd")) == 2
    assert len([p for p in (home.path / "queue" / "mess").rglob("*") if p.is_file()]) == 2


def test_queue_process_killed_between_messages_is_replaced(home, server):
    s = server()
    with smtplib.SMTP("127.0.0.1", s.port, timeout=20) as c:
        c.ehlo("client.example")
        c.mail("k1@b.example")
        c.rcpt("a@ours.example")
        code, msg = c.data(b"Subject: 1\r\n\r\none\r\n")
        assert code == 250
        first = int(msg.split()[-1])
        os.kill(first, signal.SIGKILL)
        time.sleep(0.2)
        # The dead queue process is noticed at the next message: a temporary
        # failure at worst, never a lost or half-queued message.
        c.sendmail("k2@b.example", ["a@ours.example"], b"Subject: 2\r\n\r\ntwo\r\n")
    senders = sorted(m[1] for m in queued(home))
    assert senders == [b"k1@b.example", b"k2@b.example"]
