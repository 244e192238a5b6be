"""qmail-filter against real daemons: clamd (a locally made EICAR
signature database), SpamAssassin's spamd and rspamd (GTUBE). The filter
runs as qmail-queue(8) does (message on fd 0, envelope on fd 1, a refusal's
reason on fd 4 with exit 82) and inside qmail-smtpd under tcpserver, where it
serves a whole connection's messages in one process."""
import base64
import email.utils
import io
import os
import re
import smtplib
import subprocess
import time
import zipfile

import pytest

from conftest import make_home
from filter_daemons import EICAR, GTUBE, BadListener, Clamd, Rspamd, Spamd
from smtp_helpers import TcpServer, free_port, queued, smtpd_env

pytestmark = pytest.mark.skipif(
    not all(os.path.exists(p) for p in ("/usr/sbin/clamd", "/usr/sbin/spamd")),
    reason="clamav-daemon and spamassassin are not installed (scripts/deps.sh test installs them)")

RCPT = b"bob@test.example.com"


def message(body: bytes, subject=b"lunch", extra=b"") -> bytes:
    # Dated now: a fixed date grows old, and rspamd's DATE_IN_PAST then
    # pushes the clean message over its "add header" score.
    return (b"From: Alice <alice@example.net>\nTo: bob@test.example.com\nSubject: " + subject + b"\n"
            b"Date: " + email.utils.formatdate(usegmt=True).encode() + b"\nMessage-ID: <m" + str(time.time_ns()).encode()
            + b"@example.net>\nMIME-Version: 1.0\n" + extra + b"Content-Type: text/plain\n\n" + body)


CLEAN = message(b"Hi Bob, shall we have lunch on Friday at noon?\nAlice\n")


def mime_attachment(payload: bytes, name: str, encoding="base64", width=76) -> bytes:
    if encoding == "base64":
        b64 = base64.b64encode(payload)
        data = b"\n".join(b64[i:i + width] for i in range(0, len(b64), width))
    else:  # quoted-printable with a soft line break inside the payload
        half = len(payload) // 2
        qp = lambda s: b"".join(bytes([c]) if 33 <= c <= 126 and c != 61 else b"=%02X" % c for c in s)
        data = qp(payload[:half]) + b"=\n" + qp(payload[half:])
    return (b"From: Alice <alice@example.net>\nTo: bob@test.example.com\nSubject: files\n"
            b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BB\"\n\n--BB\n"
            b"Content-Type: text/plain\n\nsee attached\n--BB\nContent-Type: application/octet-stream; name=\""
            + name.encode() + b"\"\nContent-Transfer-Encoding: " + encoding.encode()
            + b"\nContent-Disposition: attachment; filename=\"" + name.encode() + b"\"\n\n" + data + b"\n--BB--\n")


def zipped(payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("eicar.com", payload)
    return buf.getvalue()


VIRUSES = {
    "plain": message(EICAR + b"\n"),
    "mime-base64": mime_attachment(EICAR, "eicar.com"),
    "base64-split-short-lines": mime_attachment(EICAR, "eicar.com", width=20),
    "quoted-printable-split": mime_attachment(EICAR, "eicar.com", encoding="quoted-printable"),
    "zip": mime_attachment(zipped(EICAR), "eicar.zip"),
}


@pytest.fixture(scope="module")
def clamd(tmp_path_factory):
    d = Clamd(tmp_path_factory.mktemp("clamd"))
    if not d.start():
        pytest.fail("clamd did not start: " + d.log.read_text()[-2000:])
    yield d
    d.stop()


@pytest.fixture(scope="module")
def spamd(tmp_path_factory):
    d = Spamd()
    try:
        if not d.start():
            pytest.fail("spamd did not start: " + d.log.read_text()[-2000:])
        yield d
    finally:
        d.stop()
        d.remove()


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    if not os.path.exists("/usr/bin/rspamd"):
        pytest.skip("rspamd is not installed")
    d = Rspamd(tmp_path_factory.mktemp("rspamd"))
    # A first start compiles rules into the kept DBDIR (12-25 s here).
    if not d.start(seconds=120):
        pytest.skip("rspamd did not answer within 120 s: " + d.log.read_text()[-1000:])
    yield d
    d.stop()


def filter_home(tmp_path, clamd=None, spam=None, policy=None, timeout=5):
    home = make_home(tmp_path)
    if clamd is not None:
        home.control("clamd", clamd + "\n")
    if spam is not None:
        home.control("spamd", spam + "\n")
    if policy is not None:
        home.control("filter", policy)
    home.control("filtertimeout", f"{timeout}\n")
    return home


def run_filter(home, msg, rcpts=(RCPT,), sender=b"alice@example.net", env=None, reason_fd=True):
    """qmail-filter as qmail-queue(8) is run; returns (exit code, reason, log)."""
    e = dict(home.env)
    for k in ("SMTPAUTHUSER", "TCPREMOTEIP"):
        e.pop(k, None)
    e.update(env or {})
    env_r, env_w = os.pipe()
    os.write(env_w, b"F" + sender + b"\0" + b"".join(b"T" + r + b"\0" for r in rcpts) + b"\0")
    os.close(env_w)
    rr, rw = os.pipe()
    pre = (lambda: os.dup2(rw, 4)) if reason_fd else None
    try:
        p = subprocess.run([home.bin("qmail-filter")], input=msg, stdout=env_r, stderr=subprocess.PIPE,
                           env=e, preexec_fn=pre, pass_fds=(4,) if reason_fd else (), timeout=60)
    finally:
        os.close(env_r)
        os.close(rw)
    reason = os.read(rr, 4096)
    os.close(rr)
    return p.returncode, reason, p.stderr.decode()


# -- viruses ------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(VIRUSES))
def test_eicar_in_any_wrapping_is_refused_554_and_nothing_queued(tmp_path, clamd, kind):
    home = filter_home(tmp_path, clamd=clamd.sock)
    code, reason, log = run_filter(home, VIRUSES[kind])
    assert code == 82, log
    assert re.match(rb"D554 5\.7\.1 virus Test\.EICAR-[HN]DB(\.UNOFFICIAL)? found", reason), reason
    assert queued(home) == []
    assert "virus Test.EICAR" in log and "from <alice@example.net>" in log


def test_clean_mail_over_tcp_clamd_is_queued_untouched(tmp_path, clamd):
    home = filter_home(tmp_path, clamd=f"127.0.0.1:{clamd.port}")
    code, reason, log = run_filter(home, CLEAN)
    assert (code, reason) == (0, b""), log
    [(mess, sender, rcpts)] = queued(home)
    assert mess.endswith(CLEAN) and b"X-Spam" not in mess
    assert (sender, rcpts) == (b"alice@example.net", [RCPT])
    assert "clean" in log


def test_without_a_reason_descriptor_the_exit_code_alone_says_permanent_or_temporary(tmp_path, clamd):
    home = filter_home(tmp_path, clamd=clamd.sock)
    assert run_filter(home, VIRUSES["plain"], reason_fd=False)[0] == 31
    home.control("clamd", f"127.0.0.1:{free_port()}\n")
    assert run_filter(home, VIRUSES["plain"], reason_fd=False)[0] == 71
    assert queued(home) == []


# -- spam ---------------------------------------------------------------------

def test_gtube_with_spamd_is_refused_550(tmp_path, clamd, spamd):
    home = filter_home(tmp_path, clamd=clamd.sock, spam=f"spamd 127.0.0.1:{spamd.port}")
    code, reason, log = run_filter(home, message(GTUBE + b"\n"))
    assert code == 82, log
    assert reason.startswith(b"D550 5.7.1 message refused as spam (score 100"), reason
    assert queued(home) == []


def test_spam_headers_above_the_tag_level_only_and_forged_ones_removed(tmp_path, spamd):
    forged = message(b"hello\n", extra=b"X-Spam-Status: No, score=-100\n X-folded: too\nX-Spam-Flag: NO\n")
    home = filter_home(tmp_path, spam=f"spamd 127.0.0.1:{spamd.port}", policy=":tag=-100\n")
    code, _, log = run_filter(home, forged)
    assert code == 0, log
    [(mess, _, _)] = queued(home)
    head = mess.split(b"\n\n")[0]
    assert re.search(rb"^X-Spam-Status: No, score=-?\d+\.\d required=5\.0 engine=spamd", head, re.M), head
    assert re.search(rb"^X-Spam-Score: -?\d+\.\d$", head, re.M)
    assert head.count(b"X-Spam-Status") == 1 and head.count(b"X-Spam-Flag") == 1
    assert b"score=-100" not in head and b"X-folded" not in head
    home2 = filter_home(tmp_path / "2", spam=f"spamd 127.0.0.1:{spamd.port}", policy=":tag=100\n")
    assert run_filter(home2, forged)[0] == 0
    [(mess, _, _)] = queued(home2)
    assert b"engine=spamd" not in mess and b"score=-100" in mess   # not tagged: left as it came


def test_authenticated_senders_skip_spam_scoring_but_not_virus_scanning(tmp_path, clamd, spamd):
    home = filter_home(tmp_path, clamd=clamd.sock, spam=f"spamd 127.0.0.1:{spamd.port}")
    auth = {"SMTPAUTHUSER": "alice@test.example.com"}
    assert run_filter(home, message(GTUBE + b"\n"), env=auth)[0] == 0
    assert run_filter(home, VIRUSES["zip"], env=auth)[1].startswith(b"D554 5.7.1 virus")
    assert len(queued(home)) == 1
    home.control("filter", ":auth=scan\n")
    assert run_filter(home, message(GTUBE + b"\n"), env=auth)[1].startswith(b"D550 5.7.1")
    assert len(queued(home)) == 1


def test_per_domain_policy_and_a_message_to_several_domains(tmp_path, spamd):
    home = filter_home(tmp_path, spam=f"spamd 127.0.0.1:{spamd.port}",
                       policy="# hosted domains\n:reject=8\nlists.example:spam=no\n.lenient.example:reject=none\n")
    gtube = message(GTUBE + b"\n")
    assert run_filter(home, gtube, rcpts=(b"a@lists.example",))[0] == 0
    assert run_filter(home, gtube, rcpts=(b"a@x.lenient.example",))[0] == 0
    # one reply for all: refused only when every recipient refuses; else
    # the refusing recipients' copy goes to the quarantine
    assert run_filter(home, gtube, rcpts=(b"a@lists.example", b"b@x.lenient.example"))[0] == 0
    assert run_filter(home, gtube, rcpts=(b"c@test.example.com", RCPT))[1].startswith(b"D550")
    assert run_filter(home, gtube, rcpts=(b"a@lists.example", RCPT))[:2] == (0, b"")
    assert sorted(r for _, _, r in queued(home)) == [[b"a@lists.example"]] * 2 + [[b"a@lists.example", b"b@x.lenient.example"], [b"a@x.lenient.example"]]
    assert len(list((home.path / "quarantine").iterdir())) == 1
    home.control("filter", ":reject=8\nlists.example:spam=perhaps\n")
    code, reason, log = run_filter(home, CLEAN)
    assert (code, reason) == (82, b"Z451 4.3.0 unable to read filter controls"), log
    assert len(queued(home)) == 4


# -- rspamd -------------------------------------------------------------------

def test_rspamd_gtube_is_refused_and_its_soft_actions_defer(tmp_path, rspamd):
    home = filter_home(tmp_path, spam=f"rspamd 127.0.0.1:{rspamd.port}", timeout=10)
    code, reason, log = run_filter(home, message(GTUBE + b"\n"))
    assert (code, reason[:11]) == (82, b"D550 5.7.1 "), log
    assert "rspamd score 15.0/15.0 action reject" in log
    # The private rspamd asks for a delay ("soft reject") on this subject.
    code, reason, log = run_filter(home, message(b"hello\n", subject=b"defer me"))
    assert (code, reason) == (82, b"Z451 4.7.1 message deferred by the spam filter, try again later"), log
    assert "action soft reject" in log
    # rspamd's "add header": tagged and queued
    code, reason, log = run_filter(home, message(b"hello\n", subject=b"tag me"))
    assert code == 0, log
    code, reason, log = run_filter(home, CLEAN, env={"TCPREMOTEIP": "192.0.2.7"})
    assert code == 0, log
    messes = [m for m, _, _ in queued(home)]
    assert len(messes) == 2
    assert any(b'action="add header" engine=rspamd' in m and b"X-Spam-Flag: YES" in m for m in messes)
    assert any(b'action="no action" engine=rspamd' in m for m in messes)


# -- failures -----------------------------------------------------------------

@pytest.mark.parametrize("trouble", ["refused", "hang", "garbage"])
def test_a_broken_scanner_defers_and_queues_nothing(tmp_path, trouble):
    bad = None if trouble == "refused" else BadListener(trouble)
    port = free_port() if bad is None else bad.port
    try:
        for control, value in (("clamd", f"127.0.0.1:{port}"), ("spamd", f"spamd 127.0.0.1:{port}"),
                               ("spamd", f"rspamd 127.0.0.1:{port}")):
            home = filter_home(tmp_path / f"{control}{value[0]}", timeout=1)
            home.control(control, value + "\n")
            t = time.time()
            code, reason, log = run_filter(home, CLEAN)
            assert code == 82, log
            assert re.match(rb"Z451 4\.3\.0 (virus|spam) scanner unavailable", reason), reason
            assert time.time() - t < 4, "the filter timeout bounds a hung scanner"
            assert queued(home) == []
            assert "scan failed" in log
    finally:
        if bad:
            bad.close()


def test_spam_failures_may_pass_unscanned_but_virus_failures_only_when_told(tmp_path, clamd):
    bad = BadListener("garbage")
    try:
        home = filter_home(tmp_path, clamd=clamd.sock, spam=f"spamd 127.0.0.1:{bad.port}", policy=":spamfail=accept\n")
        assert run_filter(home, CLEAN)[0] == 0
        [(mess, _, _)] = queued(home)
        assert b"X-Qmail-Filter: not scanned for spam (scanner unavailable)\n" in mess
        assert run_filter(home, VIRUSES["plain"])[1].startswith(b"D554")  # viruses still found
        home.control("clamd", f"127.0.0.1:{bad.port}\n")
        assert run_filter(home, CLEAN)[1].startswith(b"Z451 4.3.0 virus scanner unavailable")
        home.control("filter", ":spamfail=accept,virusfail=accept\n")
        assert run_filter(home, CLEAN)[0] == 0
        assert len(queued(home)) == 2
    finally:
        bad.close()


def test_clamd_stopped_defers_and_mail_flows_again_when_it_returns(tmp_path, clamd):
    home = filter_home(tmp_path, clamd=clamd.sock)
    clamd.stop()
    try:
        code, reason, _ = run_filter(home, CLEAN)
        assert (code, reason[:4]) == (82, b"Z451")
    finally:
        assert clamd.start(), clamd.log.read_text()[-2000:]
    assert run_filter(home, CLEAN)[0] == 0
    assert run_filter(home, VIRUSES["plain"])[0] == 82
    assert len(queued(home)) == 1


def test_messages_over_the_scan_size_pass_unscanned_or_are_refused(tmp_path, clamd):
    big = message(EICAR + b"\n" + b"x" * 3000 + b"\n")
    home = filter_home(tmp_path, clamd=clamd.sock, policy=":maxsize=1000\n")
    code, _, log = run_filter(home, big)
    assert code == 0, log
    [(mess, _, _)] = queued(home)
    assert b"X-Qmail-Filter: not scanned, message over 1000 bytes\n" in mess and mess.endswith(big)
    home.control("filter", ":maxsize=1000,oversize=refuse\n")
    assert run_filter(home, big)[1] == b"D552 5.3.4 message too big to be scanned"
    assert len(queued(home)) == 1


# -- through qmail-smtpd ------------------------------------------------------

def smtp_send(port, msgs, auth_after=None):
    """Sends each (sender, rcpts, data) on one connection; returns the replies."""
    out = []
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
        s.ehlo("client.example")
        for i, data in enumerate(msgs):
            if auth_after is not None and i == auth_after:
                s.login("alice@test.example.com", "secret")
            s.mail("alice@example.net")
            s.rcpt("bob@test.example.com")
            code, text = s.data(data.replace(b"\n", b"\r\n"))
            out.append((code, text.decode()))
    return out


@pytest.mark.parametrize("mode", ["session", "one-per-message"])
def test_smtpd_under_tcpserver_refuses_the_virus_and_queues_the_rest(tmp_path, clamd, spamd, mode):
    home = filter_home(tmp_path, clamd=clamd.sock, spam=f"spamd 127.0.0.1:{spamd.port}")
    prog = home.bin("qmail-filter")
    if mode == "one-per-message":
        # Any other program is a foreign QMAILQUEUE program: one exec per
        # message. (A plain symlink will not do: qmail-filter shares a
        # multi-call file, which runs the program its argv[0] names.)
        wrapper = tmp_path / "scanner"
        wrapper.write_text(f"#!/bin/sh\nexec {prog} \"$@\"\n")
        wrapper.chmod(0o755)
        prog = str(wrapper)
    env = smtpd_env(home, QMAILQUEUE=prog)
    env.pop("TCPREMOTEIP")
    env.pop("SMTPAUTHUSER", None)
    srv = TcpServer(home, [home.bin("qmail-smtpd"), "test.example.com", "/bin/true"], env=env)
    try:
        replies = smtp_send(srv.port, [CLEAN, VIRUSES["mime-base64"], CLEAN, message(GTUBE + b"\n"), CLEAN,
                                       message(GTUBE + b"\n")], auth_after=5)
    finally:
        srv.stop()
    log = srv.proc.stderr.read().decode()
    codes = [c for c, _ in replies]
    assert codes == [250, 554, 250, 550, 250, 250], replies
    assert re.match(r"5\.7\.1 virus Test\.EICAR-[HN]DB(\.UNOFFICIAL)? found", replies[1][1]), replies
    assert replies[3][1].startswith("5.7.1 message refused as spam")
    assert len(queued(home)) == 4
    pids = re.findall(r"qmail-filter: pid (\d+) ", log)
    assert len(pids) == 6, log
    if mode == "session":
        # one filter for the connection until AUTH, then a fresh one that sees the login
        assert len(set(pids[:5])) == 1 and pids[5] != pids[0], log
    else:
        assert len(set(pids)) == 6, log
    last = [l for l in log.splitlines() if f"pid {pids[5]} " in l][-1]
    assert "spam scan skipped for authenticated sender" in last, log


def test_qmail_queue_failures_keep_their_usual_reply(tmp_path, clamd):
    from smtp_helpers import replies, session
    home = filter_home(tmp_path, clamd=clamd.sock)
    os.rename(home.path / "queue" / "intd", home.path / "queue" / "intd.away")
    code, reason, _ = run_filter(home, CLEAN)
    assert (code, reason) == (82, b"Z451 qq trouble creating files in queue (#4.3.0)")
    dialog = (b"HELO c\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<bob@test.example.com>\r\nDATA\r\n"
              + CLEAN.replace(b"\n", b"\r\n") + b".\r\nQUIT\r\n")
    _, out = session(home, dialog, QMAILQUEUE=home.bin("qmail-filter"))
    assert "451 qq trouble creating files in queue (#4.3.0)" in replies(out)
    os.rename(home.path / "queue" / "intd.away", home.path / "queue" / "intd")
    _, out = session(home, dialog, QMAILQUEUE=home.bin("qmail-filter"))
    assert replies(out)[-2].startswith("250 ok")
    assert len(queued(home)) == 1
