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

from test_hosting import Hosting, hosting, qhome, queued, unique, vuser, wait_for  # noqa: F401 (fixtures)

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
