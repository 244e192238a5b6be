"""qmail-setup: the home it creates, in single-user and multi-user mode."""
import os
import pathlib
import shutil
import tempfile
import pwd
import grp
import stat
import subprocess

import pytest

from conftest import bin_dir, make_home, QmailHome


def mode(p):
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_single_user_home_layout(tmp_path):
    h = make_home(tmp_path, "mail.isp.example.com")
    c = h.path / "control"
    assert (c / "me").read_text() == "mail.isp.example.com\n"
    assert (c / "defaultdomain").read_text() == "example.com\n"
    assert (c / "plusdomain").read_text() == "example.com\n"
    assert "mail.isp.example.com" in (c / "locals").read_text().split()
    assert (c / "rcpthosts").read_text() == "mail.isp.example.com\n"
    q = h.path / "queue"
    for d in ("pid", "intd", "todo", "bounce", "lock"):
        assert (q / d).is_dir()
    for d in ("mess", "info", "local", "remote"):
        assert sorted(int(x.name) for x in (q / d).iterdir()) == list(range(23))
    assert stat.S_ISFIFO(os.lstat(q / "lock" / "trigger").st_mode)
    assert (q / "lock" / "tcpto").stat().st_size == 1024
    assert mode(q / "pid") == 0o700 and mode(q / "mess") == 0o750 and mode(q / "lock" / "trigger") == 0o622
    for name in ("postmaster", "mailer-daemon", "root"):
        assert (h.path / "alias" / (".qmail-" + name)).exists()
    for name in ("home", "home+df", "proc", "proc+df", "binm1", "binm1+df", "binm2", "binm2+df",
                 "binm3", "binm3+df", "maildir", "maildir+df"):
        assert os.access(h.path / "boot" / name, os.X_OK), name
    assert "qmail-start" in (h.path / "rc").read_text()
    assert os.access(h.bin("qmail-queue"), os.X_OK)
    assert (h.path / "ids").read_text().startswith("mode=single\n")
    assert all(os.stat(p).st_uid == os.getuid() for p in (h.path, q, q / "mess", h.path / "alias"))


def test_rerun_keeps_the_administrators_files(tmp_path):
    h = make_home(tmp_path, "a.example")
    h.control("me", "changed.example\n")
    h.control("locals", "mine\n")
    make_home(tmp_path, "a.example")
    assert h.control("me") == "changed.example\n"
    assert h.control("locals") == "mine\n"


@pytest.mark.parametrize("fqdn", ["", "bad host", "a..b", "x/y", "a" * 70 + ".com"])
def test_bad_hostnames_are_refused(tmp_path, fqdn):
    r = subprocess.run([str(bin_dir() / "qmail-setup"), "--single-user", str(tmp_path / "h"), fqdn],
                       capture_output=True, text=True)
    assert r.returncode == 100
    assert "qmail-setup: fatal:" in r.stderr
    assert not (tmp_path / "h" / "queue").exists()


def test_showctl_prints_the_configuration(qhome):
    qhome.control("queuelifetime", "3600\n")
    r = qhome.run("qmail-showctl")
    assert r.returncode == 0
    out = r.stdout.decode()
    assert f"qmail home directory: {qhome.path}." in out
    assert "me: test.example.com" in out
    assert "queuelifetime: 3600" in out
    assert "bouncefrom: (Default.) MAILER-DAEMON" in out
    assert "defaultdelivery:" in out  # an extra file is named, not ignored


def test_showctl_names_our_own_controls_and_hides_secrets(qhome):
    qhome.control("authpolicy", "annotate\nbank.example:reject\n")
    qhome.control("srssecrets", "do-not-print-me\n")
    qhome.control("unheard-of", "x\n")
    qhome.control("clusterhosts", "hostb.example.net:10.0.0.2\n")
    qhome.control("clusterhost", "hosta.example.net\n")
    out = qhome.run("qmail-showctl").stdout.decode()
    assert "clusterhosts: swift-qmail's, read by vdelivermail, qmail-pop3proxy, qmail-popup" in out
    assert "  hostb.example.net:10.0.0.2\n" in out
    assert "clusterhost: swift-qmail's, read by vdelivermail" in out
    assert "authpolicy: swift-qmail's, read by qmail-smtpd" in out
    assert "  bank.example:reject\n" in out
    assert "srssecrets: swift-qmail's, read by qmail-srs (SRS); contents not shown." in out
    assert "do-not-print-me" not in out
    assert "unheard-of: not a qmail 1.03 control file" in out


def test_newmrh_builds_a_cdb_tinycdb_reads(qhome):
    qhome.control("morercpthosts", "# hosted\nExample.ORG\n\n.Sub.Example.net \t\nthird.example\n")
    r = qhome.run("qmail-newmrh")
    assert r.returncode == 0, r.stderr
    dump = subprocess.run(["cdb", "-d", str(qhome.path / "control" / "morercpthosts.cdb")],
                          capture_output=True, check=True).stdout
    assert dump == b"+11,0:example.org->\n+16,0:.sub.example.net->\n+13,0:third.example->\n\n"
    # byte for byte what tinycdb makes from the same records
    theirs = qhome.path / "theirs.cdb"
    subprocess.run(["cdb", "-c", str(theirs)], input=dump, check=True)
    assert theirs.read_bytes() == (qhome.path / "control" / "morercpthosts.cdb").read_bytes()
    assert not (qhome.path / "control" / "morercpthosts.tmp").exists()


def test_newmrh_without_source_fails_temporarily_and_keeps_old_cdb(qhome):
    qhome.control("morercpthosts", "a.example\n")
    assert qhome.run("qmail-newmrh").returncode == 0
    old = (qhome.path / "control" / "morercpthosts.cdb").read_bytes()
    os.unlink(qhome.path / "control" / "morercpthosts")
    r = qhome.run("qmail-newmrh")
    assert r.returncode == 111
    assert b"unable to read control/morercpthosts" in r.stderr
    assert (qhome.path / "control" / "morercpthosts.cdb").read_bytes() == old


@pytest.mark.skipif(os.geteuid() != 0, reason="multi-user mode needs root")
def test_multi_user_home_has_qmails_owners_and_setuid_queue(qmail_accounts):
    # /var/tmp: root-owned and sticky, so the setuid qmail-queue trusts a home in it
    base = tempfile.mkdtemp(prefix="sq-multi-", dir="/var/tmp")
    try:
        multi_user_checks(pathlib.Path(base))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def multi_user_checks(base):
    os.chmod(base, 0o755)
    home = base / "qmail"
    r = subprocess.run([str(bin_dir() / "qmail-setup"), str(home), "mail.example.com"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for u in ("alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails"):
        pwd.getpwnam(u)
    qmail = grp.getgrnam("qmail").gr_gid
    uid = lambda n: pwd.getpwnam(n).pw_uid
    q = home / "queue"
    st = os.stat(home / "bin" / "qmail-queue")
    assert st.st_uid == uid("qmailq") and stat.S_IMODE(st.st_mode) == 0o4711
    # SRS: the setuid-root helper alone reads the secret (test_srs.py)
    st = os.stat(home / "bin" / "qmail-srs")
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o4711
    st = os.stat(home / "control" / "srssecrets")
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600
    assert (home / "alias" / ".qmail-srs-default").read_text() == f"|{home}/bin/srsreverse\n"
    assert os.stat(q / "mess").st_uid == uid("qmailq")
    assert os.stat(q / "info" / "0").st_uid == uid("qmails")
    assert os.stat(q / "lock" / "tcpto").st_uid == uid("qmailr")
    assert os.stat(home / "alias").st_uid == uid("alias") and mode(home / "alias") == 0o2755
    assert os.stat(home / "control").st_uid == 0 and os.stat(home / "control").st_gid == qmail
    assert (home / "ids").read_text().startswith("mode=multi\n")

    # An unprivileged user queues through the setuid program; QMAIL_HOME from
    # that user is ignored (the home comes from the program's own location).
    nobody = pwd.getpwnam("nobody")
    with tempfile.TemporaryFile() as m, tempfile.TemporaryFile() as e:
        m.write(b"Subject: from nobody\n\nhi\n"); m.seek(0)
        e.write(b"Fnobody@example.com\0Tpostmaster@example.com\0\0"); e.seek(0)
        r = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                            str(home / "bin" / "qmail-queue")], stdin=m, stdout=e, stderr=subprocess.PIPE,
                           env={"QMAIL_HOME": "/nonexistent", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    todo = list((q / "todo").iterdir())
    assert len(todo) == 1
    assert os.stat(todo[0]).st_uid == uid("qmailq")
    assert todo[0].read_bytes().startswith(b"u%d\0" % nobody.pw_uid)

    # qmail's 0700 programs (root's alone) share a multi-call file of mode
    # 0755 with others: the file keeps their rule itself (MultiCall.ownerOnly).
    for prog, ok in (("qmail-newu", False), ("vadduser", False), ("qmail-lspawn", False), ("maildirmake", True)):
        if not (home / "bin" / prog).exists():
            continue
        r = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                            str(home / "bin" / prog)], capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
        assert (r.returncode == 126 and b"permission denied" in r.stderr) != ok, (prog, r)


def test_sendmail_option_puts_fastforward_and_dot_forward_in_place(tmp_path):
    aliases = tmp_path / "aliases"
    aliases.write_text("postmaster: root\nstaff: ann@example.org, bob@example.org\n")
    h = make_home(tmp_path, "mail.example.com", extra=("--sendmail", "--aliases", str(aliases)))
    dq = (h.path / "alias" / ".qmail-default").read_text()
    assert f"|fastforward -d {aliases}.cdb" in dq.splitlines()
    assert (h.path / "control" / "defaultdelivery").read_text() == "|dot-forward .forward\n./Maildir/\n"
    dump = subprocess.run([h.bin("printforward")], stdin=open(f"{aliases}.cdb", "rb"), capture_output=True, check=True).stdout
    assert b"staff" in dump and b"ann@example.org" in dump
    # running setup again changes nothing
    make_home(tmp_path, "mail.example.com", extra=("--sendmail", "--aliases", str(aliases)))
    assert (h.path / "control" / "defaultdelivery").read_text() == "|dot-forward .forward\n./Maildir/\n"


def test_sendmail_option_refuses_a_broken_aliases_file(tmp_path):
    aliases = tmp_path / "aliases"
    aliases.write_text('postmaster: "unterminated\n')
    r = subprocess.run([str(bin_dir() / "qmail-setup"), "--single-user", "--sendmail", "--aliases", str(aliases),
                        str(tmp_path / "qmail"), "mail.example.com"], capture_output=True, text=True)
    assert r.returncode == 100, r.stderr
    assert "sendmail migration" in r.stderr and "line 1" in r.stderr
    assert not (tmp_path / "aliases.cdb").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="--owner needs root")
def test_link_never_changes_the_builds_programs(tmp_path):
    """--link shares inodes with the build: setting the home's owner or modes
    on a link would change the build's files (found by proof/load.py, whose
    --owner home chowned SQ_BIN's programs under other running homes). Only
    programs already owned by the home's owner are linked; the rest are copied."""
    progs = tmp_path / "programs"
    progs.mkdir()
    shutil.copyfile(bin_dir() / "qmail-setup", progs / "qmail-setup")
    for name in ("qmail-start", "qmail-send", "qmail-queue"):   # stand-ins: only owners and modes matter
        (progs / name).write_text("#!/bin/sh\nexit 0\n")
    for p in progs.iterdir():
        p.chmod(0o755)
    before = {p.name: (p.stat().st_uid, p.stat().st_gid, mode(p)) for p in progs.iterdir()}
    setup = [str(progs / "qmail-setup"), "--link", "--programs", str(progs)]
    nobody = pwd.getpwnam("nobody")
    r = subprocess.run(setup + ["--owner", "nobody", str(tmp_path / "a"), "a.example"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert {p.name: (p.stat().st_uid, p.stat().st_gid, mode(p)) for p in progs.iterdir()} == before
    start = tmp_path / "a" / "bin" / "qmail-start"
    assert start.stat().st_ino != (progs / "qmail-start").stat().st_ino
    assert (start.stat().st_uid, mode(start)) == (nobody.pw_uid, 0o700)
    # owned by the home's owner (root here): linked, and the build's mode stays
    r = subprocess.run(setup + ["--single-user", str(tmp_path / "b"), "b.example"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert {p.name: (p.stat().st_uid, p.stat().st_gid, mode(p)) for p in progs.iterdir()} == before
    assert (tmp_path / "b" / "bin" / "qmail-start").stat().st_ino == (progs / "qmail-start").stat().st_ino


# --- qmail's accounts when they already exist ------------------------------

def multi_setup(home, fqdn="mail.example.com"):
    return subprocess.run([str(bin_dir() / "qmail-setup"), str(home), fqdn], capture_output=True, text=True, timeout=180)


@pytest.fixture
def var_tmp():
    # /var/tmp: root-owned and sticky, so the setuid qmail-queue trusts a home in it
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-acct-", dir="/var/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_setup_moves_the_accounts_a_removed_home_left(qmail_accounts, var_tmp):
    """Accounts whose homes no longer exist are an old installation's: they
    move to this home (alias's home is where qmail-lspawn delivers mail for
    postmaster, root and unknown users)."""
    old, new = var_tmp / "old", var_tmp / "new"
    assert multi_setup(old).returncode == 0
    shutil.rmtree(old)
    r = multi_setup(new)
    assert r.returncode == 0, r.stderr
    assert f"account alias: home {old}/alias no longer exists; moving it to {new}/alias" in r.stdout
    assert pwd.getpwnam("alias").pw_dir == f"{new}/alias"
    for u in ("qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails"):
        assert pwd.getpwnam(u).pw_dir == str(new), u
    # a second run has nothing to move
    r = multi_setup(new)
    assert r.returncode == 0 and "moving" not in r.stdout


def test_setup_refuses_the_accounts_of_another_live_home(qmail_accounts, var_tmp):
    a, b = var_tmp / "a", var_tmp / "b"
    assert multi_setup(a).returncode == 0
    r = multi_setup(b)
    assert r.returncode == 100
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"qmail-setup: fatal: account alias has home {a}/alias, not {b}/alias"), lines[0]
    assert f"usermod -d {b}/alias alias" in lines[0] and "--single-user" in lines[0]
    assert not b.exists(), "nothing is made before the refusal"
    assert pwd.getpwnam("alias").pw_dir == f"{a}/alias"


@pytest.mark.skipif(os.geteuid() != 0, reason="--owner and useradd need root")
def test_vadddomain_in_a_single_user_home_uses_its_owner(var_tmp):
    """A system account named vpopmail has nothing to do with a single-user
    home: its domains run as the home's owner (HOME/ids). And only root can
    give a domain's files to another uid."""
    owner = f"sqow{os.getpid() % 100000}"
    created = [owner]
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", owner], check=True)
    try:
        try:
            pwd.getpwnam("vpopmail")
        except KeyError:
            subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", "vpopmail"], check=True)
            created.append("vpopmail")
        progs = var_tmp / "programs"
        progs.mkdir()
        for n in ("qmail-setup", "vadddomain", "qmail-newu", "qmail-newmrh"):
            shutil.copyfile(bin_dir() / n, progs / n)
            (progs / n).chmod(0o755)
        home = var_tmp / "qmail"
        r = subprocess.run([str(progs / "qmail-setup"), "--owner", owner, "--programs", str(progs), str(home),
                            "mail.example.org"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        pw, vp = pwd.getpwnam(owner), pwd.getpwnam("vpopmail")
        env = {**os.environ, "QMAIL_HOME": str(home)}
        add = lambda *args, user=None: subprocess.run(
            ([] if user is None else ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"])
            + [str(home / "bin" / "vadddomain"), *args], input="pm-secret\n", env=env, capture_output=True, text=True)
        # as the owner (not root): a uid it cannot hand files to is refused
        r = add("-i", str(vp.pw_uid), "other.example", user=pw)
        assert r.returncode == 1, r.stderr
        assert f"uid {vp.pw_uid} would own the domain's files, but only root can give files away" in r.stderr
        assert not (home / "domains" / "other.example").exists()
        r = add("other.example", user=pw)
        assert r.returncode == 0, r.stderr
        assert (home / "domains" / "other.example").stat().st_uid == pw.pw_uid
        # as root, without -u: the home's owner, not vpopmail
        r = add("example.org")
        assert r.returncode == 0, r.stderr
        assert f"example.org:example.org:{home}/domains/example.org:{pw.pw_uid}:{pw.pw_gid}\n" in \
            (home / "users" / "vdomains").read_text()
        assert (home / "domains" / "example.org" / "postmaster").stat().st_uid == pw.pw_uid
    finally:
        for u in created:
            subprocess.run(["userdel", u], capture_output=True)
