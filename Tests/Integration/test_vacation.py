"""The vacation autoresponder (RFC 3834), run as programs: vvacation sets it
for a hosted mailbox (vdelivermail answers) or a system account (its
~/.qmail runs qmail-vacation); the answers go through qmail-queue and, in
the end-to-end tests, through qmail-send into the sender's Maildir."""
import base64
import email
import os
import pwd
import subprocess
import time

import pytest

from test_hosting import hosting, qhome, qmail_send_running, queued, unique, vuser, wait_for  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: makes system accounts and switches uid")

AWAY = "I am away until January.\nUrgent things: helpdesk@example.org.\n"


def vacation(hosting, *args, check=True, input=None):
    r = hosting.q.run("vvacation", *args, input=input)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def settings(text):
    """The header of a .vacation file or of vvacation's output as a dict."""
    head = text.split("\n\n", 1)[0]
    out = {}
    for line in head.splitlines():
        k, v = line.split(":", 1)
        out.setdefault(k, []).append(v.strip())
    return {k: v if k == "address" else v[0] for k, v in out.items()}


@pytest.fixture
def box(hosting, tmp_path):
    """bob@example.org with a vacation message file ready."""
    hosting.admin("vadduser", "bob@example.org", password="pw")
    msg = tmp_path / "away.txt"
    msg.write_text(AWAY)
    hosting.msgfile = msg
    return hosting


@pytest.fixture
def sysacct():
    """A system account with a home directory, removed afterwards."""
    name = unique("sqva")
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True)
    yield pwd.getpwnam(name)
    subprocess.run(["userdel", "-r", name], check=False, capture_output=True)


# ---------------------------------------------------------------- settings

def test_vvacation_sets_shows_and_clears_a_hosted_mailbox(box, vuser):
    bobdir = box.domain_dir("example.org") / "bob"
    # nothing set: shown as off, nothing written
    r = vacation(box, "bob@example.org", "--show")
    assert settings(r.stdout.decode())["enabled"] == "no"
    assert not (bobdir / ".vacation").exists()
    vacation(box, "bob@example.org", "--on", "--subject", "Out of office", "--message-file", box.msgfile,
             "--from", "2026-12-20", "--until", "2027-01-06", "--interval", "3", "--address", "robert@example.org")
    f = bobdir / ".vacation"
    st = f.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (vuser.pw_uid, vuser.pw_gid, 0o600)
    shown = vacation(box, "bob@example.org").stdout.decode()
    assert shown == f.read_text()
    assert settings(shown) == {"enabled": "yes", "first-day": "2026-12-20", "last-day": "2027-01-06",
                               "interval-days": "3", "only-when-addressed": "yes",
                               "address": ["robert@example.org"], "subject": "Out of office"}
    assert shown.split("\n\n", 1)[1] == AWAY
    # the message from stdin; dates cleared
    vacation(box, "bob@example.org", "--message-file", "-", "--from", "now", "--until", "never",
             input=b"Back soon.\n")
    s = settings(f.read_text())
    assert "first-day" not in s and "last-day" not in s and s["enabled"] == "yes"
    assert f.read_text().endswith("\n\nBack soon.\n")
    # off keeps the text for next time
    vacation(box, "bob@example.org", "--off")
    assert settings(f.read_text())["enabled"] == "no" and f.read_text().endswith("Back soon.\n")
    # an alias domain reaches the same mailbox
    box.admin("vaddaliasdomain", "example.org", "example.net")
    assert vacation(box, "bob@example.net", "--show").stdout.decode() == f.read_text()


@pytest.mark.parametrize("args, says", [
    (("--on", "--until", "2026-12-01", "--from", "2026-12-02"), b"before the first day"),
    (("--interval", "0"), b"interval"),
    (("--interval", "366"), b"interval"),
    (("--from", "2027-02-29"), b"bad first day"),
    (("--subject", "two\nlines"), b"one line"),
    (("--address", "not-an-address"), b"not an address"),
    (("--on", "--message-file", "/dev/null"), b"empty"),
    (("--frobnicate",), b"usage"),
])
def test_vvacation_refuses_bad_settings_and_writes_nothing(box, args, says):
    vacation(box, "bob@example.org", "--message-file", box.msgfile, "--off")
    before = (box.domain_dir("example.org") / "bob" / ".vacation").read_bytes()
    r = vacation(box, "bob@example.org", *args, check=False)
    assert r.returncode == 1 and says in r.stderr, r.stderr
    assert (box.domain_dir("example.org") / "bob" / ".vacation").read_bytes() == before


def test_vvacation_refuses_unknown_mailboxes(box):
    for who in ("nobody@example.org", "bob@unhosted.example", "no-such-account-here", "root"):
        r = vacation(box, who, "--on", "--message-file", box.msgfile, check=False)
        assert r.returncode == 1, (who, r.stderr)


def test_system_account_dot_qmail_gets_exactly_one_line_and_loses_it(box, sysacct):
    home = pathlib_home(sysacct)
    dq = home / ".qmail"
    line = f"|{box.q.bin('qmail-vacation')}\n"
    # no .qmail: the new one keeps the default delivery, and goes again when off
    assert not dq.exists()
    vacation(box, sysacct.pw_name, "--on", "--message-file", box.msgfile)
    text = dq.read_text()
    default = (box.q.path / "control" / "defaultdelivery").read_text()
    assert text.startswith("# ") and text.endswith(default + line), text
    st = dq.stat()
    assert (st.st_uid, st.st_mode & 0o022) == (sysacct.pw_uid, 0)
    assert (home / ".vacation").stat().st_uid == sysacct.pw_uid
    vacation(box, sysacct.pw_name, "--on")
    assert dq.read_text() == text, "turned on twice: still one line"
    vacation(box, sysacct.pw_name, "--off")
    assert not dq.exists()
    # the account's own .qmail: the line is appended, and exactly it is removed
    own = "# my mail\n./Maildir/\n&friend@remote.example\n|preline /usr/bin/true\n"
    dq.write_text(own)
    os.chown(dq, sysacct.pw_uid, sysacct.pw_gid)
    vacation(box, sysacct.pw_name, "--on")
    assert dq.read_text() == own + line
    vacation(box, sysacct.pw_name, "--off")
    assert dq.read_text() == own
    # a line left behind by hand (twice, another path) goes too; the rest stays
    dq.write_text("./Maildir/\n| /usr/local/bin/qmail-vacation\n&x@remote.example\n|qmail-vacation\n")
    vacation(box, sysacct.pw_name, "--off")
    assert dq.read_text() == "./Maildir/\n&x@remote.example\n"


def pathlib_home(pw):
    import pathlib
    return pathlib.Path(pw.pw_dir)


# ---------------------------------------------------------------- answers (vdelivermail)

def mail(sender="alice@remote.example", to="bob@example.org", extra="", subject="Lunch?", msgid="<m1.alice@remote.example>"):
    head = f"From: Alice <{sender}>\nTo: {to}\nSubject: {subject}\n"
    if msgid:
        head += f"Message-ID: {msgid}\n"
    return (head + extra + "\nAre you in on Friday?\n").encode()


def deliver(box, sender="alice@remote.example", message=None, extra_env=None, **kw):
    """One message to bob@example.org through vdelivermail (as root: the
    test home's queue is root's); must be delivered whatever happens."""
    before = len(box.new("bob", "example.org"))
    r = box.deliver("bob", "example.org", message=message or mail(sender, **kw), sender=sender,
                    as_root=True, extra_env=extra_env)
    assert r.returncode == 0, r.stderr
    assert len(box.new("bob", "example.org")) == before + 1, "the original is always delivered"
    return r


def answers(qhome):
    """(envelope sender, recipients, parsed message) of each queued answer."""
    out = []
    for env, mess in queued(qhome):
        fields = env.split(b"\0")
        sender = next(f[1:] for f in fields if f.startswith(b"F"))
        # qmail-queue's Received line, then the answer
        msg = email.message_from_bytes(mess.split(b"\n", 1)[1])
        out.append((sender, [f[1:].decode() for f in fields[1:] if f.startswith(b"T")], msg))
    return out


def body_of(msg):
    raw = msg.get_payload()
    if msg["Content-Transfer-Encoding"] == "base64":
        return base64.b64decode(raw).decode()
    return raw


def test_one_answer_per_sender_per_interval(box):
    vacation(box, "bob@example.org", "--on", "--message-file", box.msgfile)
    deliver(box, "alice@remote.example")
    [(sender, to, msg)] = answers(box.q)
    assert sender == b"", "the answer's envelope sender is null"
    assert to == ["alice@remote.example"]
    assert msg["From"] == "<bob@example.org>" and msg["To"] == "<alice@remote.example>"
    assert msg["Subject"] == "Auto: Lunch?"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["In-Reply-To"] == "<m1.alice@remote.example>"
    assert msg["References"] == "<m1.alice@remote.example>"
    assert msg["Message-ID"].endswith("@example.org>") and msg["Date"]
    assert msg["Content-Type"] == "text/plain; charset=UTF-8" and msg["MIME-Version"] == "1.0"
    assert body_of(msg) == AWAY
    # the same sender again (any case): no second answer within the interval
    deliver(box, "alice@remote.example")
    deliver(box, "Alice@Remote.Example")
    assert len(answers(box.q)) == 1
    # another sender is answered
    deliver(box, "dave@remote.example")
    # (queue file names are inode numbers: no order)
    assert sorted(a[1] for a in answers(box.q)) == [["alice@remote.example"], ["dave@remote.example"]]
    rec = box.domain_dir("example.org") / "bob" / ".vacation.replied"
    assert rec.stat().st_size <= 1024 * 24


def test_answer_after_the_interval(box):
    """The record's deadline is the interval: an answer recorded 8 days
    ago (the file's deadline moved back) is due again."""
    vacation(box, "bob@example.org", "--on", "--message-file", box.msgfile, "--interval", "1")
    deliver(box, "alice@remote.example")
    rec = box.domain_dir("example.org") / "bob" / ".vacation.replied"
    data = bytearray(rec.read_bytes())
    # every live record: deadline (bytes 8..16 of 24) two days back
    for off in range(0, len(data), 24):
        if data[off:off + 8] != bytes(8):
            d = int.from_bytes(data[off + 8:off + 16], "little") - 2 * 86400
            data[off + 8:off + 16] = d.to_bytes(8, "little")
    rec.write_bytes(bytes(data))
    deliver(box, "alice@remote.example")
    assert len(answers(box.q)) == 2


@pytest.mark.parametrize("sender, extra, to", [
    ("", "", "bob@example.org"),
    ("#@[]", "", "bob@example.org"),
    ("MAILER-DAEMON@remote.example", "", "bob@example.org"),
    ("postmaster@remote.example", "", "bob@example.org"),
    ("list-request@remote.example", "", "bob@example.org"),
    ("owner-list@remote.example", "", "bob@example.org"),
    ("list-return-7-bob=example.org@remote.example", "", "bob@example.org"),
    ("alice@remote.example", "List-Id: <friends.remote.example>\n", "bob@example.org"),
    ("alice@remote.example", "List-Unsubscribe: <mailto:x@remote.example>\n", "bob@example.org"),
    ("alice@remote.example", "Mailing-List: contact friends-help@remote.example; run by ezmlm\n", "bob@example.org"),
    ("alice@remote.example", "Precedence: bulk\n", "bob@example.org"),
    ("alice@remote.example", "Precedence: list\n", "bob@example.org"),
    ("alice@remote.example", "Precedence: Junk\n", "bob@example.org"),
    ("alice@remote.example", "Auto-Submitted: auto-generated\n", "bob@example.org"),
    ("alice@remote.example", "Auto-Submitted: auto-replied\n", "bob@example.org"),
    ("alice@remote.example", "X-Auto-Response-Suppress: OOF\n", "bob@example.org"),
    ("bob@example.org", "", "bob@example.org"),
    ("robert@example.org", "", "bob@example.org"),
    ("alice@remote.example", "", "everyone@remote.example"),
    ("alice@remote.example", "", "jimbob@example.org"),
])
def test_no_answer(box, sender, extra, to):
    vacation(box, "bob@example.org", "--on", "--message-file", box.msgfile, "--address", "robert@example.org")
    deliver(box, sender, extra=extra, to=to)
    assert answers(box.q) == []


@pytest.mark.parametrize("extra, to", [
    ("Auto-Submitted: no\n", "bob@example.org"),
    ("", "Bob <BOB@example.org>, other@remote.example"),
    ("Cc: bob@example.org\n", "other@remote.example"),
    ("", "robert@example.org"),
    ("Precedence: first-class\n", "bob@example.org"),
])
def test_answered_forms(box, extra, to):
    vacation(box, "bob@example.org", "--on", "--message-file", box.msgfile, "--address", "robert@example.org")
    deliver(box, extra=extra, to=to)
    assert len(answers(box.q)) == 1


def test_any_recipient_answers_a_blind_copy(box):
    vacation(box, "bob@example.org", "--on", "--message-file", box.msgfile, "--any-recipient")
    deliver(box, to="undisclosed-recipients:;")
    assert len(answers(box.q)) == 1


def test_dates_and_off(box):
    today = time.gmtime()
    day = lambda offset: time.strftime("%Y-%m-%d", time.gmtime(time.time() + offset * 86400))
    vacation(box, "bob@example.org", "--on", "--message-file", box.msgfile, "--from", day(1))
    deliver(box, "a1@remote.example")
    vacation(box, "bob@example.org", "--from", "now", "--until", day(-1))
    deliver(box, "a2@remote.example")
    assert answers(box.q) == []
    # today is inside first..last (both whole UTC days)
    vacation(box, "bob@example.org", "--from", time.strftime("%Y-%m-%d", today), "--until", time.strftime("%Y-%m-%d", today))
    deliver(box, "a3@remote.example")
    assert [a[1] for a in answers(box.q)] == [["a3@remote.example"]]
    vacation(box, "bob@example.org", "--off")
    deliver(box, "a4@remote.example")
    deliver(box, "a3@remote.example")
    assert len(answers(box.q)) == 1
    # on again: a fresh start, a3 gets the (new) text once more
    vacation(box, "bob@example.org", "--on", "--message-file", "-", input=b"Away again.\n")
    deliver(box, "a3@remote.example")
    deliver(box, "a3@remote.example")
    assert [a[1] for a in answers(box.q)] == [["a3@remote.example"]] * 2


def test_utf8_subject_and_text(box):
    vacation(box, "bob@example.org", "--on", "--subject", "Abwesenheit – zurück am 6. Januar",
             "--message-file", "-", input="Ich bin im Urlaub. Grüße, Bob\n".encode())
    deliver(box, msgid="<x@y>", extra="References: <a@b> <c@d>\n")
    [(_, _, msg)] = answers(box.q)
    subject = str(email.header.make_header(email.header.decode_header(msg["Subject"])))
    assert subject == "Abwesenheit – zurück am 6. Januar"
    assert body_of(msg) == "Ich bin im Urlaub. Grüße, Bob\n"
    assert msg["References"] == "<a@b> <c@d> <x@y>"


def test_a_failing_queue_never_fails_the_delivery(box, tmp_path):
    vacation(box, "bob@example.org", "--on", "--message-file", box.msgfile)
    r = deliver(box, extra_env={"QMAILQUEUE": "/bin/false"})
    assert b"vacation: unable to queue the reply" in r.stderr
    r = deliver(box, extra_env={"QMAILQUEUE": str(tmp_path / "no-such-program")})
    assert b"vacation: unable to queue the reply" in r.stderr
    assert answers(box.q) == []
    # not recorded: the next message from the sender is answered
    deliver(box)
    assert len(answers(box.q)) == 1
    # an unreadable settings file: a note, and the delivery still succeeds
    (box.domain_dir("example.org") / "bob" / ".vacation").write_text("enabled: yes\ngarbage\n\n")
    r = deliver(box, "zed@remote.example")
    assert b"vacation: unable to read" in r.stderr and len(answers(box.q)) == 1


# ---------------------------------------------------------------- system accounts (qmail-local)

def test_system_account_answers_through_dot_qmail(box, sysacct, tmp_path):
    """qmail-local reads the account's ~/.qmail (made by vvacation): the
    message lands in ~/Maildir, then qmail-vacation answers through
    qmail-queue. Off: the line is gone and nothing more is answered."""
    home = pathlib_home(sysacct)
    r = subprocess.run([box.q.bin("maildirmake"), str(home / "Maildir")], user=sysacct.pw_uid,
                       group=sysacct.pw_gid, capture_output=True)
    assert r.returncode == 0, r.stderr
    vacation(box, sysacct.pw_name, "--on", "--message-file", box.msgfile)
    me = f"{sysacct.pw_name}@test.example.com"

    def local(sender, to=me):
        mf = tmp_path / f"m{time.time_ns()}"
        mf.write_bytes(mail(sender, to=to))
        with open(mf, "rb") as f:
            # as root: the test home's queue is root's (a real home's
            # qmail-queue is setuid qmailq)
            r = subprocess.run([box.q.bin("qmail-local"), "--", sysacct.pw_name, str(home), sysacct.pw_name, "", "",
                                "test.example.com", sender, "./Maildir/"],
                               stdin=f, env=box.q.env, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    local("alice@remote.example")
    local("alice@remote.example")
    local("")
    local("carol@remote.example", to="someone-else@remote.example")
    assert len(list((home / "Maildir" / "new").iterdir())) == 4
    [(sender, to, msg)] = answers(box.q)
    assert sender == b"" and to == ["alice@remote.example"]
    assert msg["From"] == f"<{me}>" and msg["Auto-Submitted"] == "auto-replied"
    assert msg["In-Reply-To"] == "<m1.alice@remote.example>"
    vacation(box, sysacct.pw_name, "--off")
    assert not (home / ".qmail").exists()
    local("dave@remote.example")
    assert len(answers(box.q)) == 1
    assert len(list((home / "Maildir" / "new").iterdir())) == 5


def test_qmail_vacation_always_exits_0(box, tmp_path):
    """Run by hand, or with settings it cannot read: a note, exit 0."""
    r = box.q.run("qmail-vacation", input=b"Subject: x\n\nx\n", env={"RECIPIENT": "", "SENDER": ""})
    assert r.returncode == 0
    r = subprocess.run([box.q.bin("qmail-vacation")], input=b"x\n", capture_output=True,
                       env={"QMAIL_HOME": str(box.q.path)})
    assert r.returncode == 0 and b"RECIPIENT and SENDER must be set" in r.stderr
    (tmp_path / ".vacation").write_text("enabled: yes\nfirst-day: tomorrow\n\nx\n")
    r = box.q.run("qmail-vacation", str(tmp_path), input=b"To: a@b\n\nx\n",
                  env={"RECIPIENT": "a@b", "SENDER": "c@d"})
    assert r.returncode == 0 and b"unable to read" in r.stderr


# ---------------------------------------------------------------- end to end

def test_end_to_end_two_mailboxes_on_vacation_answer_once(box, qhome):
    """qmail-inject -> qmail-send -> vdelivermail: carol writes to bob, who
    is away; bob's answer reaches carol with a null Return-Path, and
    carol, away too, does not answer the answer (no loop)."""
    box.admin("vadduser", "carol@example.org", password="pw")
    vacation(box, "bob@example.org", "--on", "--subject", "Bob is away", "--message-file", box.msgfile)
    vacation(box, "carol@example.org", "--on", "--message-file", box.msgfile)
    with qmail_send_running(qhome) as logtext:
        r = qhome.run("qmail-inject", "-fcarol@example.org", "bob@example.org",
                      input=b"From: carol@example.org\nTo: bob@example.org\nSubject: plans\n\nsee you?\n")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: box.new("carol", "example.org"), 60, "bob's answer in carol's Maildir\n" + logtext())
        wait_for(lambda: not qhome.queue_files("todo") and not qhome.queue_files("info"), 30, "an empty queue")
        [orig] = box.new("bob", "example.org")
        [answer] = box.new("carol", "example.org")
        a = answer.read_bytes()
        assert a.startswith(b"Return-Path: <>\nDelivered-To: carol@example.org\n"), a
        msg = email.message_from_bytes(a)
        assert msg["Subject"] == "Bob is away" and msg["Auto-Submitted"] == "auto-replied"
        assert msg["In-Reply-To"] and msg["In-Reply-To"] == email.message_from_bytes(orig.read_bytes())["Message-ID"]
        # the queue emptied after carol's delivery ended: an answer of hers would be in it
        assert len(box.new("bob", "example.org")) == 1, "carol's vacation did not answer bob's answer"
