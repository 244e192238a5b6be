"""Virtual-domain hosting, run as programs: the admin commands, vdelivermail
run the way qmail-local runs it, and checkpassword/checkpassword-file driven
on fd 3 the way qmail-popup drives them. System accounts are made with
useradd under unique names and removed afterwards (the tests run as root)."""
import hashlib
import os
import pathlib
import pwd
import select
import shutil
import signal
import grp
import statistics
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import make_home, qmail_send_running, wait_for  # noqa: F401 (test_vacation imports them from here)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: makes system accounts and switches uid")

SCHEMES = ["yescrypt", "sha512", "sha256", "bcrypt", "md5"]
PREFIX = {"yescrypt": "$y$", "sha512": "$6$", "sha256": "$5$", "bcrypt": "$2b$", "md5": "$1$"}
TIMESTAMP = b"<4711.1795240000@pop.example.org>"
MSG = b"From: sender@remote.example\nSubject: test\n\nhello there\n"


def unique(prefix):
    return f"{prefix}{os.getpid() % 100000}{int(time.time() * 1000) % 100000}"


@pytest.fixture(scope="module")
def vuser():
    """The account hosted mailboxes run as."""
    name = unique("sqvh")
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True)
    yield pwd.getpwnam(name)
    subprocess.run(["userdel", name], check=False)


class Hosting:
    def __init__(self, qhome, vuser):
        self.q = qhome
        self.vuser = vuser

    def admin(self, prog, *args, password=None, check=True):
        r = self.q.run(prog, *args, input=(password + "\n") if password is not None else b"")
        if check:
            assert r.returncode == 0, (prog, args, r.stdout, r.stderr)
        return r

    def domain_dir(self, domain):
        return self.q.path / "domains" / domain

    def maildir(self, user, domain):
        return self.domain_dir(domain) / user / "Maildir"

    def new(self, user, domain):
        return sorted((self.maildir(user, domain) / "new").iterdir())

    def deliver(self, local, domain, action="bounce-no-mailbox", message=MSG, sender="sender@remote.example",
                as_root=False, extra_env=None):
        """vdelivermail as qmail-local runs it for domain-local@domain from
        the domain's .qmail-default, as the domain's user."""
        env = dict(self.q.env)
        recipient = f"{domain}-{local}@{domain}"
        env.update({"HOST": domain, "LOCAL": f"{domain}-{local}", "EXT": local, "DEFAULT": local,
                    "SENDER": sender, "RECIPIENT": recipient, "USER": domain,
                    "HOME": str(self.domain_dir(domain)),
                    "DTLINE": f"Delivered-To: {recipient}\n", "RPLINE": f"Return-Path: <{sender}>\n"})
        env.update(extra_env or {})
        argv = [self.q.bin("vdelivermail"), "", action]
        if not as_root:
            argv = ["setpriv", f"--reuid={self.vuser.pw_uid}", f"--regid={self.vuser.pw_gid}", "--clear-groups"] + argv
        cwd = self.domain_dir(domain.lower())
        return subprocess.run(argv, input=message, env=env, capture_output=True, timeout=60,
                              cwd=str(cwd if cwd.is_dir() else self.q.path))

    def checkpw(self, prog, user, password, timestamp=TIMESTAMP, argv=("id",), env=None, raw=None):
        """prog reads user\\0password\\0timestamp\\0 on fd 3, as from qmail-popup
        (which sends its greeting's timestamp for USER/PASS too)."""
        data = raw if raw is not None else _b(user) + b"\0" + _b(password) + b"\0" + _b(timestamp) + b"\0"
        e = dict(self.q.env)
        e.update(env or {})
        return subprocess.run(["/bin/sh", "-c", 'exec "$0" "$@" 3<&0 </dev/null', self.q.bin(prog), *argv],
                              input=data, env=e, capture_output=True, timeout=60)


def _b(s):
    return s if isinstance(s, bytes) else s.encode()


@pytest.fixture
def qhome():
    """The qmail home, under /var/tmp rather than pytest's private (0700)
    temporary tree: the mailbox account must reach it, as under /var/qmail."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-hosting-", dir="/var/tmp"))
    base.chmod(0o755)
    try:
        yield make_home(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def hosting(qhome, vuser):
    h = Hosting(qhome, vuser)
    h.admin("vadddomain", "-u", vuser.pw_name, "example.org", password="pmpass")
    return h


SHOW = ("sh", "-c", 'id -u; id -g; id -G; pwd; echo "USER=$USER"; echo "HOME=$HOME"; echo "SHELL=$SHELL"; echo "MAILDIR=$MAILDIR"')


# ---------------------------------------------------------------- admin

def test_vadddomain_writes_everything_a_domain_needs(hosting, qhome, vuser):
    d = hosting.domain_dir("example.org")
    assert (qhome.path / "control" / "virtualdomains").read_text() == "example.org:example.org\n"
    assert "example.org\n" in (qhome.path / "control" / "rcpthosts").read_text()
    assign = (qhome.path / "users" / "assign").read_text()
    assert assign == f"+example.org-:example.org:{vuser.pw_uid}:{vuser.pw_gid}:{d}:-::\n.\n"
    assert (d / ".qmail-default").read_text() == f"| {qhome.bin('vdelivermail')} '' bounce-no-mailbox\n"
    st = d.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (vuser.pw_uid, vuser.pw_gid, 0o700)
    vp = d / "vpasswd"
    assert vp.stat().st_mode & 0o777 == 0o600 and vp.stat().st_uid == vuser.pw_uid
    line = vp.read_text().splitlines()[0].split(":")
    assert line[0] == "postmaster" and line[1].startswith("$y$") and line[5] == str(d / "postmaster")
    for sub in ("tmp", "new", "cur"):
        assert (hosting.maildir("postmaster", "example.org") / sub).is_dir()
    assert "example.org" in (qhome.path / "users" / "vdomains").read_text()
    info = hosting.admin("vdominfo", "example.org").stdout.decode()
    assert "users:   1" in info and "unknown: bounce-no-mailbox" in info
    # the postmaster can log in with the password given on stdin
    assert hosting.checkpw("checkpassword-file", "postmaster@example.org", "pmpass").returncode == 0


def test_vadddomain_refuses_root_and_duplicates(hosting, qhome):
    r = hosting.admin("vadddomain", "-i", "0", "root.example", password="x", check=False)
    assert r.returncode == 1 and b"root" in r.stderr
    assert not (qhome.path / "domains" / "root.example").exists()
    r = hosting.admin("vadddomain", "-u", hosting.vuser.pw_name, "example.org", password="x", check=False)
    assert r.returncode == 1 and b"already hosted" in r.stderr


def snapshot(root: pathlib.Path):
    out = {}
    for p in sorted(root.rglob("*")):
        if "queue" in p.parts:
            continue
        out[str(p)] = p.read_bytes() if p.is_file() else None
    return out


@pytest.mark.parametrize("args,password", [
    (("vadduser", "a/b@example.org"), "pw"),
    (("vadduser", "../x@example.org"), "pw"),
    (("vadduser", "a..b@example.org"), "pw"),
    (("vadduser", "x\ny@example.org"), "pw"),
    (("vadduser", "x" * 65 + "@example.org"), "pw"),
    (("vadduser", "nouser"), "pw"),
    (("vadduser", "bob@unknown.example"), "pw"),
    (("vadduser", "bob@example.org"), ""),
    (("vadduser", "bob@example.org"), "x" * 300),
    (("vadduser", "bob@example.org"), "a\0b"),
    (("vadduser", "-q", "lots", "bob@example.org"), "pw"),
    (("vadduser", "-c", "a:b", "bob@example.org"), "pw"),
    (("vadduser", "-s", "des", "bob@example.org"), "pw"),
    (("vadduser", "postmaster@example.org"), "pw"),
    (("vadddomain", "-u", "root", "../etc"), "pw"),
    (("vadddomain", "exa mple.org"), "pw"),
    (("vadddomain", "a" * 300 + ".org"), "pw"),
    (("vdeluser", "nobody@example.org"), None),
    (("vdeldomain", "unknown.example"), None),
    (("vpasswd", "nobody@example.org"), "pw"),
    (("vsetuserquota", "postmaster@example.org", "-5"), None),
    (("valias", "-i", "|rm -rf /", "x@example.org"), None),
    (("valias", "-i", "other@remote.example", "postmaster@example.org"), None),
    (("valias", "-d", "nosuch@example.org"), None),
    (("vadduser",), None),
])
def test_bad_input_is_refused_and_nothing_is_written(hosting, qhome, args, password):
    before = snapshot(qhome.path)
    r = qhome.run(args[0], *args[1:], input=(password.encode() + b"\n") if password is not None else b"")
    assert r.returncode == 1, (args, r.stderr)
    assert r.stderr.strip(), "a clear error on stderr"
    assert b"\n" == r.stderr[-1:] and len(r.stderr.splitlines()) == 1, r.stderr
    assert snapshot(qhome.path) == before


def test_vdeldomain_removes_every_trace(hosting, qhome):
    hosting.admin("vadduser", "bob@example.org", password="pw")
    hosting.admin("vaddaliasdomain", "example.org", "example.net")
    assert "example.net:example.org" in (qhome.path / "control" / "virtualdomains").read_text()
    hosting.admin("vdeldomain", "example.org")
    assert (qhome.path / "control" / "virtualdomains").read_text() == ""
    assert (qhome.path / "control" / "rcpthosts").read_text() == "test.example.com\n"
    assert (qhome.path / "users" / "assign").read_text() == ".\n"
    assert (qhome.path / "users" / "vdomains").read_text() == ""
    assert not hosting.domain_dir("example.org").exists()
    assert hosting.checkpw("checkpassword-file", "bob@example.org", "pw").returncode == 1


def test_user_commands(hosting, qhome):
    hosting.admin("vadduser", "-c", "Bob Smith", "-q", "10M", "Bob@Example.org", password="pw1")
    info = hosting.admin("vuserinfo", "bob@example.org").stdout.decode()
    assert "gecos:   Bob Smith" in info and "quota:   10485760S" in info
    assert hosting.admin("vuserinfo", "-d", "bob@example.org").stdout.decode().strip() == \
        str(hosting.domain_dir("example.org") / "bob")
    # a password from argv works too, and from stdin with "-"
    hosting.admin("vpasswd", "bob@example.org", "pw2")
    assert hosting.checkpw("checkpassword-file", "bob@example.org", "pw1").returncode == 1
    assert hosting.checkpw("checkpassword-file", "bob@example.org", "pw2").returncode == 0
    hosting.admin("vpasswd", "bob@example.org", "-", password="pw3")
    assert hosting.checkpw("checkpassword-file", "bob@example.org", "pw3").returncode == 0
    hosting.admin("vsetuserquota", "bob@example.org", "5000S,10C")
    assert hosting.admin("vuserinfo", "-q", "bob@example.org").stdout.decode().strip() == "5000S,10C"
    assert (hosting.maildir("bob", "example.org") / "maildirsize").read_text().startswith("5000S,10C\n")
    hosting.admin("vdeluser", "bob@example.org")
    assert not (hosting.domain_dir("example.org") / "bob").exists()
    assert hosting.checkpw("checkpassword-file", "bob@example.org", "pw3").returncode == 1
    r = hosting.admin("vadduser", "-r", "carol@example.org")
    pw = r.stdout.decode().split("password: ")[1].strip()
    assert len(pw) == 16
    assert hosting.checkpw("checkpassword-file", "carol@example.org", pw).returncode == 0


# ---------------------------------------------------------------- checkpassword-file

@pytest.mark.parametrize("scheme", SCHEMES)
def test_checkpassword_file_accepts_every_scheme(hosting, scheme, vuser):
    user = f"u{scheme}"
    hosting.admin("vadduser", "-s", scheme, f"{user}@example.org", password=f"pw-{scheme}")
    assert hosting.admin("vuserinfo", "-p", f"{user}@example.org").stdout.decode().startswith(PREFIX[scheme])
    r = hosting.checkpw("checkpassword-file", f"{user}@example.org", f"pw-{scheme}", argv=SHOW)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    home = hosting.domain_dir("example.org") / user
    assert lines == [str(vuser.pw_uid), str(vuser.pw_gid), str(vuser.pw_gid), str(home),
                     f"USER={user}@example.org", f"HOME={home}", "SHELL=/bin/false", f"MAILDIR={home}/Maildir"]
    r = hosting.checkpw("checkpassword-file", f"{user}@example.org", f"pw-{scheme}x")
    assert r.returncode == 1 and r.stdout == b""


def test_checkpassword_file_login_forms(hosting, qhome):
    hosting.admin("vadduser", "bob@example.org", password="pw")
    hosting.admin("vaddaliasdomain", "example.org", "example.net")
    for login in ("bob@example.org", "BOB@Example.ORG", "bob%example.org", "bob@example.net"):
        assert hosting.checkpw("checkpassword-file", login, "pw").returncode == 0, login
    assert hosting.checkpw("checkpassword-file", "bob", "pw").returncode == 1
    qhome.control("vdefaultdomain", "example.org\n")
    assert hosting.checkpw("checkpassword-file", "bob", "pw").returncode == 0


def fastest_times(fns, n=9):
    """The fastest of n runs of each fn, interleaved so that load from
    elsewhere falls on all of them alike; the minimum is the run's own cost."""
    best = [float("inf")] * len(fns)
    for _ in range(n):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def test_unknown_users_fail_like_wrong_passwords(hosting):
    hosting.admin("vadduser", "bob@example.org", password="pw")
    outcomes = {}
    for login, pw in (("bob@example.org", "wrong"), ("nobody@example.org", "wrong"),
                      ("nobody@unknown.example", "wrong"), ("", "wrong"), ("bob@example.org", "")):
        r = hosting.checkpw("checkpassword-file", login, pw)
        outcomes[login + "/" + pw] = (r.returncode, r.stdout, r.stderr)
    assert set(outcomes.values()) == {(1, b"", b"")}, outcomes
    wrong, unknown, nodomain = fastest_times([
        lambda: hosting.checkpw("checkpassword-file", "bob@example.org", "wrong"),
        lambda: hosting.checkpw("checkpassword-file", "nobody@example.org", "wrong"),
        lambda: hosting.checkpw("checkpassword-file", "x@unknown.example", "wrong")])
    # Every failure pays for one yescrypt computation: the times agree to
    # within scheduling noise.
    for t in (unknown, nodomain):
        assert 0.6 * wrong < t < 1.6 * wrong, (wrong, unknown, nodomain)


def test_apop_needs_plain_passwords_enabled(hosting, qhome):
    hosting.admin("vadduser", "-C", "bob@example.org", password="tanstaaf")
    hosting.admin("vadduser", "carol@example.org", password="tanstaaf")
    ts = b"<1896.697170952@dbc.mtview.ca.us>"
    digest = hashlib.md5(ts + b"tanstaaf").hexdigest()
    assert digest == "c4c9334bac560ecc979e58001b3e22fb"
    assert hosting.checkpw("checkpassword-file", "bob@example.org", digest, ts).returncode == 1
    qhome.control("vplaintext", "1\n")
    assert hosting.checkpw("checkpassword-file", "bob@example.org", digest, ts).returncode == 0
    assert hosting.checkpw("checkpassword-file", "bob@example.org", digest.replace("c", "d"), ts).returncode == 1
    # carol has no stored plain password: APOP cannot work for her
    assert hosting.checkpw("checkpassword-file", "carol@example.org", digest, ts).returncode == 1
    assert hosting.checkpw("checkpassword-file", "carol@example.org", "tanstaaf").returncode == 0


def test_checkpassword_input_errors(hosting):
    hosting.admin("vadduser", "bob@example.org", password="pw")
    # longer than 512 bytes: a bad login, like djb's
    r = hosting.checkpw("checkpassword-file", "bob@example.org", "p" * 600)
    assert r.returncode == 1 and b"512" in r.stderr
    r = hosting.checkpw("checkpassword-file", "x" * 600 + "@example.org", "pw")
    assert r.returncode == 1
    # missing NUL terminators, or no program to run: misuse
    assert hosting.checkpw("checkpassword-file", "", "", raw=b"bob@example.org\0pw").returncode == 2
    assert hosting.checkpw("checkpassword-file", "bob@example.org", "pw", argv=()).returncode == 2
    r = subprocess.run([hosting.q.bin("checkpassword-file"), "id"], env=hosting.q.env, capture_output=True,
                       stdin=subprocess.DEVNULL, close_fds=True, timeout=30)
    assert r.returncode == 2, r.stderr
    # NUL inside the user name ends it: "bob@example.org\0junk" is bob with password "junk"
    assert hosting.checkpw("checkpassword-file", "", "", raw=b"bob@example.org\0pw\0\0junk\0").returncode == 0
    # the program cannot be run: temporary
    r = hosting.checkpw("checkpassword-file", "bob@example.org", "pw", argv=("/nonexistent/prog",))
    assert r.returncode == 111


def test_checkpassword_file_unreadable_backend_is_temporary(hosting, qhome):
    hosting.admin("vadduser", "bob@example.org", password="pw")
    cdb = hosting.domain_dir("example.org") / "vpasswd.cdb"
    cdb.rename(cdb.with_suffix(".saved"))
    cdb.mkdir()
    r = hosting.checkpw("checkpassword-file", "bob@example.org", "pw")
    assert r.returncode == 111 and b"temporary" in r.stderr
    # unknown users of that domain cannot be told apart either: temporary
    assert hosting.checkpw("checkpassword-file", "nobody@example.org", "pw").returncode == 111
    cdb.rmdir()
    cdb.with_suffix(".saved").rename(cdb)
    assert hosting.checkpw("checkpassword-file", "bob@example.org", "pw").returncode == 0
    index = qhome.path / "users" / "vdomains.cdb"
    index.unlink()
    assert hosting.checkpw("checkpassword-file", "bob@example.org", "pw").returncode == 111
    index.write_bytes(b"short")
    assert hosting.checkpw("checkpassword-file", "bob@example.org", "pw").returncode == 111


def cdb_make(path: pathlib.Path, records):
    """A cdb written by tinycdb's cdb -c (djb's format)."""
    data = b"".join(b"+%d,%d:%s->%s\n" % (len(k), len(v), k, v) for k, v in records) + b"\n"
    subprocess.run(["cdb", "-c", str(path)], input=data, check=True)


def test_checkpassword_file_refuses_uid_0(hosting, qhome):
    hosting.admin("vadduser", "bob@example.org", password="pw")
    d = hosting.domain_dir("example.org")
    (qhome.path / "users" / "vdomains").write_text(f"example.org:example.org:{d}:0:0\n")
    cdb_make(qhome.path / "users" / "vdomains.cdb", [(b"example.org", b"example.org\0%s\x000\x000" % str(d).encode())])
    r = hosting.checkpw("checkpassword-file", "bob@example.org", "pw")
    assert r.returncode == 1 and b"uid 0" in r.stderr and r.stdout == b""


# ---------------------------------------------------------------- checkpassword (system)

@pytest.fixture
def sysuser(hosting):
    """A system account whose password hash is set per test."""
    name = unique("sqcp")
    group = unique("sqgr")
    subprocess.run(["groupadd", group], check=True)
    subprocess.run(["useradd", "-m", "-G", group, "-s", "/bin/sh", name], check=True)
    yield pwd.getpwnam(name), grp.getgrnam(group)
    subprocess.run(["userdel", "-r", name], check=False, capture_output=True)
    subprocess.run(["groupdel", group], check=False)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_checkpassword_system_accounts(hosting, sysuser, scheme):
    pw, extra = sysuser
    # the hash comes from our own vadduser, then goes into /etc/shadow
    hosting.admin("vadduser", "-s", scheme, "h@example.org", password="sys-pass")
    h = hosting.admin("vuserinfo", "-p", "h@example.org").stdout.decode().strip()
    subprocess.run(["usermod", "-p", h, pw.pw_name], check=True)
    r = hosting.checkpw("checkpassword", pw.pw_name, "sys-pass", argv=SHOW)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0] == str(pw.pw_uid) and lines[1] == str(pw.pw_gid)
    assert str(extra.gr_gid) in lines[2].split(), "initgroups gave the supplementary groups"
    assert lines[3:] == [pw.pw_dir, f"USER={pw.pw_name}", f"HOME={pw.pw_dir}", "SHELL=/bin/sh",
                         f"MAILDIR={pw.pw_dir}/Maildir"]
    assert hosting.checkpw("checkpassword", pw.pw_name, "sys-pasS").returncode == 1
    assert hosting.checkpw("checkpassword", unique("nosuch"), "sys-pass").returncode == 1


def test_checkpassword_system_refuses_root_and_locked(hosting, sysuser):
    pw, _ = sysuser
    # root is refused whatever the password (nothing to guess: the check
    # happens after the password, so this only shows the refusal path)
    assert hosting.checkpw("checkpassword", "root", "anything").returncode == 1
    subprocess.run(["usermod", "-L", pw.pw_name], check=True)
    assert hosting.checkpw("checkpassword", pw.pw_name, "").returncode == 1


# ---------------------------------------------------------------- vdelivermail

def test_delivery_into_the_maildir(hosting, vuser):
    hosting.admin("vadduser", "bob@example.org", password="pw")
    r = hosting.deliver("bob", "example.org")
    assert r.returncode == 0, r.stderr
    [f] = hosting.new("bob", "example.org")
    assert f.read_bytes() == b"Return-Path: <sender@remote.example>\nDelivered-To: bob@example.org\n" + MSG
    assert f.stat().st_uid == vuser.pw_uid
    assert not list((hosting.maildir("bob", "example.org") / "tmp").iterdir())
    # upper case and qmail extensions reach the mailbox too
    assert hosting.deliver("Bob", "Example.ORG").returncode == 0
    assert hosting.deliver("bob-lists", "example.org").returncode == 0
    assert len(hosting.new("bob", "example.org")) == 3


def test_delivery_with_a_seekable_queue_file(hosting, tmp_path):
    """qmail-local gives programs the queue file itself on fd 0."""
    hosting.admin("vadduser", "bob@example.org", password="pw")
    m = tmp_path / "mess"
    m.write_bytes(MSG)
    env = dict(hosting.q.env, HOST="example.org", EXT="bob", LOCAL="example.org-bob", SENDER="s@x",
               RPLINE="Return-Path: <s@x>\n")
    with open(m, "rb") as f:
        r = subprocess.run([hosting.q.bin("vdelivermail"), "", "bounce-no-mailbox"], stdin=f, env=env,
                           capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    [f] = hosting.new("bob", "example.org")
    assert f.read_bytes().endswith(MSG)


def test_unknown_user_bounces_or_is_deleted(hosting, qhome):
    r = hosting.deliver("nobody", "example.org")
    assert r.returncode == 100 and b"no mailbox here by that name" in r.stderr and b"#5.1.1" in r.stderr
    before = snapshot(qhome.path)
    assert hosting.deliver("nobody", "example.org", action="delete").returncode == 0
    assert snapshot(qhome.path) == before
    # a domain made with -x deletes, and says so in its .qmail-default
    hosting.admin("vadddomain", "-x", "-u", hosting.vuser.pw_name, "quiet.example", password="pm")
    assert (hosting.domain_dir("quiet.example") / ".qmail-default").read_text().endswith("'' delete\n")
    assert "unknown: delete" in hosting.admin("vdominfo", "quiet.example").stdout.decode()
    # a recipient in a domain that is not hosted here
    r = hosting.deliver("x", "unhosted.example")
    assert r.returncode == 100 and b"#5.1.2" in r.stderr


def test_catch_all_to_a_user(hosting):
    hosting.admin("vadduser", "bob@example.org", password="pw")
    assert hosting.deliver("whoever", "example.org", action="bob").returncode == 0
    [f] = hosting.new("bob", "example.org")
    assert b"Delivered-To: bob@example.org\n" in f.read_bytes()
    # a catch-all naming nobody bounces instead of looping
    assert hosting.deliver("whoever", "example.org", action="ghost").returncode == 100


def queued(qhome):
    """(envelope, message) of every message in the queue."""
    out = []
    for t in qhome.queue_files("todo"):
        num = int(t.name)
        out.append((t.read_bytes(), (qhome.path / "queue" / "mess" / str(num % 23) / str(num)).read_bytes()))
    return out


def test_alias_forwards(hosting, qhome):
    hosting.admin("valias", "-i", "friend@remote.example", "info@example.org")
    hosting.admin("valias", "-i", "other@remote.example", "info@example.org")
    out = hosting.admin("valias", "info@example.org").stdout.decode()
    assert out == "info@example.org -> friend@remote.example\ninfo@example.org -> other@remote.example\n"
    # as root: the single-user test home's queue belongs to root
    r = hosting.deliver("info", "example.org", as_root=True)
    assert r.returncode == 0, r.stderr
    [(env, mess)] = queued(qhome)
    assert env.endswith(b"\0Fsender@remote.example\0Tfriend@remote.example\0Tother@remote.example\0")
    assert mess.split(b"\n", 1)[1] == b"Delivered-To: info@example.org\n" + MSG
    # an alias cannot be made over a mailbox, and is removed with -d
    hosting.admin("valias", "-d", "info@example.org")
    assert hosting.deliver("info", "example.org").returncode == 100


def test_catch_all_forward(hosting, qhome):
    assert hosting.deliver("anyone", "example.org", action="catch@remote.example", as_root=True).returncode == 0
    [(env, mess)] = queued(qhome)
    assert env.endswith(b"\0Fsender@remote.example\0Tcatch@remote.example\0")


def test_users_own_dot_qmail(hosting, qhome, vuser):
    hosting.admin("vadduser", "bob@example.org", password="pw")
    home = hosting.domain_dir("example.org") / "bob"
    (home / ".qmail").write_text("# keep a copy and forward\n./Maildir/\n&bob@remote.example\n")
    assert hosting.deliver("bob", "example.org", as_root=True).returncode == 0
    assert len(hosting.new("bob", "example.org")) == 1
    [(env, _)] = queued(qhome)
    assert env.endswith(b"\0Tbob@remote.example\0")
    # a program line gets the message on stdin; exit 100 bounces
    (home / ".qmail").write_text(f"|cat > {home}/piped\n")
    assert hosting.deliver("bob", "example.org", as_root=True).returncode == 0
    assert (home / "piped").read_bytes() == MSG
    # (and so do qmail-local's other permanent codes, 64, 65, 70, 76, 77, 78 and 112)
    for code, expected in ((100, 100), (64, 100), (78, 100), (112, 100), (75, 111), (1, 111)):
        (home / ".qmail").write_text(f"|exit {code}\n")
        assert hosting.deliver("bob", "example.org", as_root=True).returncode == expected, code
    # an mbox line
    (home / ".qmail").write_text("./mbox\n")
    assert hosting.deliver("bob", "example.org", message=b"Subject: x\n\nFrom me\n", as_root=True).returncode == 0
    mbox = (home / "mbox").read_bytes()
    assert mbox.startswith(b"From sender@remote.example ") and b"\n>From me\n" in mbox and mbox.endswith(b"\n\n")


def test_loop_is_bounced(hosting):
    hosting.admin("vadduser", "bob@example.org", password="pw")
    r = hosting.deliver("bob", "example.org", message=b"Delivered-To: bob@example.org\n" + MSG)
    assert r.returncode == 100 and b"looping" in r.stderr
    assert hosting.new("bob", "example.org") == []


def test_over_quota_bounces_or_defers(hosting, qhome):
    hosting.admin("vadduser", "-q", "300", "bob@example.org", password="pw")
    sizes = []
    while True:
        r = hosting.deliver("bob", "example.org")
        if r.returncode != 0:
            break
        sizes.append(1)
        assert len(sizes) < 10
    assert r.returncode == 100 and b"over its quota" in r.stderr and b"#5.2.2" in r.stderr
    delivered = hosting.new("bob", "example.org")
    assert len(delivered) == len(sizes) == 300 // (len(MSG) + 70)
    total = sum(f.stat().st_size for f in delivered)
    lines = (hosting.maildir("bob", "example.org") / "maildirsize").read_text().splitlines()
    assert lines[0] == "300S"
    assert sum(int(l.split()[0]) for l in lines[1:]) == total
    qhome.control("voverquota", "defer\n")
    r = hosting.deliver("bob", "example.org")
    assert r.returncode == 111 and b"#4.2.2" in r.stderr
    # raising the quota lets mail in again
    hosting.admin("vsetuserquota", "bob@example.org", "10M")
    assert hosting.deliver("bob", "example.org").returncode == 0


def test_parallel_deliveries_never_share_the_last_room(hosting):
    """qmail-send runs deliveries to one mailbox at once: a quota with room
    for one message takes exactly one of several that arrive together (the
    check, the delivery and the maildirsize line are under one lock)."""
    hosting.admin("vadduser", "-q", "1000", "carol@example.org", password="pw")
    md = hosting.maildir("carol", "example.org")
    big = b"Subject: big\n\n" + b"x" * 600 + b"\n"
    for _ in range(8):
        for f in (md / "new").iterdir():
            f.unlink()
        hosting.admin("vsetuserquota", "carol@example.org", "1000")  # rebuilds maildirsize: empty
        codes = []
        threads = [threading.Thread(target=lambda: codes.append(hosting.deliver("carol", "example.org", message=big).returncode))
                   for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert sorted(codes) == [0, 100, 100], codes
        assert len(hosting.new("carol", "example.org")) == 1
        lines = (md / "maildirsize").read_text().splitlines()
        assert len(lines) == 3 and lines[0] == "1000S", lines


def test_delivery_backend_unreadable_is_temporary(hosting):
    hosting.admin("vadduser", "bob@example.org", password="pw")
    cdb = hosting.domain_dir("example.org") / "vpasswd.cdb"
    cdb.unlink()
    r = hosting.deliver("bob", "example.org")
    assert r.returncode == 111, r.stderr
    r = hosting.deliver("nobody", "example.org")
    assert r.returncode == 111, "an unreadable backend never bounces"
    # a missing Maildir is temporary too
    hosting.admin("vpasswd", "bob@example.org", "pw")  # rebuilds the cdb
    subprocess.run(["rm", "-rf", str(hosting.maildir("bob", "example.org"))], check=True)
    assert hosting.deliver("bob", "example.org").returncode == 111


def test_vdelivermail_without_environment(hosting):
    r = subprocess.run([hosting.q.bin("vdelivermail"), "", "bounce-no-mailbox"], input=MSG,
                       env={"QMAIL_HOME": str(hosting.q.path)}, capture_output=True, timeout=30)
    assert r.returncode == 111 and b"HOST" in r.stderr
    r = subprocess.run([hosting.q.bin("vdelivermail")], input=MSG, env=hosting.q.env, capture_output=True, timeout=30)
    assert r.returncode == 111 and b"usage" in r.stderr


# ---------------------------------------------------------------- vconvert

def test_vconvert_imports_a_vpopmail_tree(hosting, qhome, vuser):
    vp = qhome.path.parent / "vpopmail"
    d = vp / "domains" / "old.example"
    md = d / "jane" / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (md / sub).mkdir(parents=True)
    (md / "cur" / "1000.1.host:2,S").write_bytes(MSG)
    h = hosting.admin("vuserinfo", "-p", "postmaster@example.org").stdout.decode().strip()
    md5 = subprocess.run(["openssl", "passwd", "-1", "-salt", "abcdefgh", "janepw"], capture_output=True, text=True)
    janehash = md5.stdout.strip() if md5.returncode == 0 else h
    janepw = "janepw" if md5.returncode == 0 else "pmpass"
    (d / "vpasswd").write_text(f"jane:{janehash}:1:0:Jane:{d}/jane:NOQUOTA:{janepw}\n")
    (d / ".qmail-default").write_text("| /home/vpopmail/bin/vdelivermail '' delete\n")
    (d / ".qmail-sales").write_text("&jane@old.example\n")
    (vp / "domains" / "alias.example").symlink_to("old.example")
    subprocess.run(["chown", "-R", f"{vuser.pw_uid}:{vuser.pw_gid}", str(vp)], check=True)
    r = hosting.admin("vconvert", "-n", str(vp))
    assert b"old.example: 1 users" in r.stdout and b"alias.example: alias of old.example" in r.stdout
    assert not (d / "vpasswd.cdb").exists()
    hosting.admin("vconvert", str(vp))
    assert hosting.checkpw("checkpassword-file", "jane@old.example", janepw).returncode == 0
    assert hosting.checkpw("checkpassword-file", "jane@alias.example", janepw).returncode == 0
    assert (d / ".qmail-default").read_text() == f"| {qhome.bin('vdelivermail')} '' delete\n"
    assert (d / ".qmail-default.vpopmail").exists()
    assert hosting.deliver("jane", "old.example").returncode == 0
    assert len(list((md / "new").iterdir())) == 1 and len(list((md / "cur").iterdir())) == 1
    action = (d / ".qmail-default").read_text().split()[-1]
    assert hosting.deliver("nobody", "old.example", action=action).returncode == 0  # delete, as before
    vd = (qhome.path / "control" / "virtualdomains").read_text()
    assert "old.example:old.example\n" in vd and "alias.example:old.example\n" in vd
    assert f"+old.example-:old.example:{vuser.pw_uid}:{vuser.pw_gid}:{d}:-::" in (qhome.path / "users" / "assign").read_text()
    # importing again changes nothing
    before = snapshot(qhome.path)
    hosting.admin("vconvert", str(vp))
    assert snapshot(qhome.path) == before


def test_vconvert_refuses_a_broken_vpasswd(hosting, qhome, tmp_path):
    d = tmp_path / "vp" / "domains" / "bad.example"
    d.mkdir(parents=True)
    (d / "vpasswd").write_text("jane:hash:1:0:Jane:relative/dir:NOQUOTA\n")
    before = snapshot(qhome.path)
    r = hosting.admin("vconvert", "-u", hosting.vuser.pw_name, str(tmp_path / "vp"), check=False)
    assert r.returncode == 1 and b"nothing imported" in r.stderr
    assert snapshot(qhome.path) == before


def test_vmoduser_flags(hosting):
    hosting.admin("vadduser", "bob@example.org", password="pw")
    hosting.admin("vmoduser", "-p", "bob@example.org")
    assert hosting.checkpw("checkpassword-file", "bob@example.org", "pw").returncode == 1
    assert hosting.deliver("bob", "example.org").returncode == 0, "mail still arrives"
    hosting.admin("vmoduser", "-b", "bob@example.org")
    r = hosting.deliver("bob", "example.org")
    assert r.returncode == 100 and b"#5.2.1" in r.stderr
    hosting.admin("vmoduser", "-x", "-c", "Robert", "bob@example.org")
    assert hosting.checkpw("checkpassword-file", "bob@example.org", "pw").returncode == 0
    assert hosting.admin("vuserinfo", "-c", "bob@example.org").stdout == b"Robert\n"
    # -q keeps maildirsize as vsetuserquota does: rebuilt for a limit, gone for none
    md = hosting.maildir("bob", "example.org")
    hosting.admin("vmoduser", "-q", "5000S", "bob@example.org")
    assert (md / "maildirsize").read_text().startswith("5000S\n")
    hosting.admin("vmoduser", "-q", "NOQUOTA", "bob@example.org")
    assert not (md / "maildirsize").exists()
    assert hosting.admin("vuserinfo", "-q", "bob@example.org").stdout.decode().strip() == "NOQUOTA"


def test_vmkpasswd_rebuilds_after_a_hand_edit(hosting):
    hosting.admin("vadduser", "-s", "md5", "bob@example.org", password="pw")
    vp = hosting.domain_dir("example.org") / "vpasswd"
    text = vp.read_text()
    bob = [l for l in text.splitlines() if l.startswith("bob:")][0]
    vp.write_text(text + bob.replace("bob:", "robert:", 1) + "\n")  # sharing bob's mailbox
    assert hosting.checkpw("checkpassword-file", "robert@example.org", "pw").returncode == 1
    hosting.admin("vmkpasswd", "example.org")
    assert hosting.checkpw("checkpassword-file", "robert@example.org", "pw").returncode == 0
    vp.write_text(text + "broken line\n")
    r = hosting.admin("vmkpasswd", "example.org", check=False)
    assert r.returncode == 111 and b"malformed" in r.stderr
    assert hosting.checkpw("checkpassword-file", "robert@example.org", "pw").returncode == 0, "old cdb kept"


def qmail_local(hosting, local, domain, tmp_path, message=MSG):
    """qmail-local for domain-local@domain as qmail-lspawn would start it
    from the users/assign line vadddomain wrote: as the domain's user, home
    the domain directory, dash "-", ext the mailbox name."""
    mf = tmp_path / f"mess-{local}-{time.time_ns()}"
    mf.write_bytes(message)
    with open(mf, "rb") as f:
        return subprocess.run(
            ["setpriv", f"--reuid={hosting.vuser.pw_uid}", f"--regid={hosting.vuser.pw_gid}", "--clear-groups",
             hosting.q.bin("qmail-local"), "--", domain, str(hosting.domain_dir(domain)), f"{domain}-{local}", "-",
             local, domain, "sender@remote.example", "./Maildir/"],
            stdin=f, env=hosting.q.env, capture_output=True, timeout=60)


def test_qmail_local_runs_vdelivermail_from_dot_qmail_default(hosting, qhome, tmp_path):
    if not os.path.exists(qhome.bin("qmail-local")):
        pytest.skip("qmail-local not built")
    if os.path.exists(qhome.bin("qmail-newu")):
        assert (qhome.path / "users" / "cdb").exists(), "vadddomain ran qmail-newu"
    hosting.admin("vadduser", "bob@example.org", password="pw")
    r = qmail_local(hosting, "bob", "example.org", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    [f] = hosting.new("bob", "example.org")
    assert f.read_bytes() == b"Return-Path: <sender@remote.example>\nDelivered-To: bob@example.org\n" + MSG
    r = qmail_local(hosting, "nobody", "example.org", tmp_path)
    assert r.returncode == 100 and b"no mailbox here by that name" in r.stdout + r.stderr
    # a vpopmail-style .qmail-alias file in the domain directory is
    # qmail-local's business and wins over vdelivermail
    (hosting.domain_dir("example.org") / ".qmail-sales").write_text(f"{hosting.maildir('bob', 'example.org')}/\n")
    os.chown(hosting.domain_dir("example.org") / ".qmail-sales", hosting.vuser.pw_uid, hosting.vuser.pw_gid)
    assert qmail_local(hosting, "sales", "example.org", tmp_path).returncode == 0
    assert len(hosting.new("bob", "example.org")) == 2


def test_catch_all_to_a_directory(hosting):
    """vpopmail's .qmail-default may name a user's directory or a Maildir."""
    hosting.admin("vadduser", "bob@example.org", password="pw")
    bobdir = hosting.domain_dir("example.org") / "bob"
    assert hosting.deliver("x", "example.org", action=str(bobdir)).returncode == 0
    assert hosting.deliver("x", "example.org", action=str(bobdir / "Maildir") + "/").returncode == 0
    assert len(hosting.new("bob", "example.org")) == 2
    r = hosting.deliver("x", "example.org", action="/nonexistent/dir")
    assert r.returncode == 111


# ---------------------------------------------------------------- end to end





def test_end_to_end_inject_send_vdelivermail(hosting, qhome):
    """qmail-inject -> qmail-queue -> qmail-send -> qmail-lspawn (users/cdb
    from vadddomain's assign line) -> qmail-local -> .qmail-default ->
    vdelivermail -> the mailbox's Maildir; and the bounce for an unknown
    user of the domain comes back the same way."""
    need = ("qmail-start", "qmail-send", "qmail-lspawn", "qmail-clean", "qmail-local", "qmail-newu", "qmail-inject")
    missing = [p for p in need if not os.path.exists(qhome.bin(p))]
    if missing:
        pytest.skip(f"not built yet: {missing}")
    hosting.admin("vadduser", "bob@example.org", password="pw")
    hosting.admin("vadduser", "-q", "1000", "carol@example.org", password="pw")
    assert (qhome.path / "users" / "cdb").exists()
    with qmail_send_running(qhome) as logtext:
        r = qhome.run("qmail-inject", "-fbob@example.org", "bob@example.org", "nobody@example.org",
                      input=b"From: bob@example.org\nSubject: e2e\n\nthrough the whole system\n")
        assert r.returncode == 0, r.stderr
        # bob gets his message, then the bounce for nobody@
        wait_for(lambda: len(hosting.new("bob", "example.org")) == 2, 60, "two messages in bob's Maildir\n" + logtext())
        msgs = sorted((p.read_bytes() for p in hosting.new("bob", "example.org")), key=len)
        assert b"Delivered-To: bob@example.org\n" in msgs[0] and msgs[0].endswith(b"through the whole system\n")
        # qmail-send names the rewritten virtual-domain address, as qmail does
        assert b"<example.org-nobody@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n" in msgs[1], msgs[1].decode()
        # over quota: carol's 1000-byte quota takes one message, the next bounces back to bob
        big = b"Subject: big\n\n" + b"x" * 600 + b"\n"
        for _ in range(2):
            assert qhome.run("qmail-inject", "-fbob@example.org", "carol@example.org", input=big).returncode == 0
        try:
            wait_for(lambda: len(hosting.new("bob", "example.org")) == 3, 60, "the over-quota bounce")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{logtext()}\ncarol: {len(hosting.new('carol', 'example.org'))} messages")
        assert len(hosting.new("carol", "example.org")) == 1
        bounce = max(hosting.new("bob", "example.org"), key=lambda p: p.stat().st_mtime_ns).read_bytes()
        assert b"over its quota. (#5.2.2)" in bounce


def execs_per_delivery(hosting, qhome, tmp_path, count=4):
    """Runs qmail-send (HOME/rc) under strace -f, injects `count`
    messages to bob@example.org and waits until they are in his Maildir.
    Returns the programs exec'd after qmail-send's start (its spawn
    helpers left out), each with its count per delivered message."""
    trace = tmp_path / "execve.trace"
    log = open(qhome.path / "send.log", "wb")
    proc = subprocess.Popen(["strace", "-f", "-qq", "-z", "-o", str(trace), "-e", "trace=execve", str(qhome.path / "rc")],
                            cwd="/", stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=qhome.env)
    logtext = lambda: (qhome.path / "send.log").read_text(errors="replace")
    before = len(hosting.new("bob", "example.org"))
    try:
        wait_for(lambda: "status: local" in logtext(), 20, "qmail-send to start")
        for k in range(count):
            r = qhome.run("qmail-inject", "-fcarol@example.org", "bob@example.org",
                          input=f"Subject: count {k}\n\nexecs\n".encode())
            assert r.returncode == 0, r.stderr
        wait_for(lambda: len(hosting.new("bob", "example.org")) == before + count, 60,
                 "the messages in bob's Maildir\n" + logtext())
    finally:
        # qmail-send (rc's process, strace's child) ends the way rc's would
        children = pathlib.Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        for pid in children:
            os.kill(int(pid), signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    # rc's start-up (cat, env, qmail-start) runs before qmail-send's exec;
    # its spawn helpers are started once
    startup = {"qmail-lspawn", "qmail-rspawn", "qmail-clean", "splogger"}
    progs, started = [], False
    for line in trace.read_text(errors="replace").splitlines():
        if ' execve("' in line:  # -z: successful calls only
            name = line.split('execve("', 1)[1].split('"', 1)[0].rsplit("/", 1)[-1]
            if started and name not in startup:
                progs.append(name)
            started = started or name == "qmail-send"
    return {p: progs.count(p) / count for p in set(progs)}


@pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed")
def test_hosted_delivery_takes_no_exec_per_message(hosting, qhome, tmp_path):
    """qmail-send -> qmail-lspawn -> the delivery worker of the domain's
    user (qmail-local -W, exec'd once), which forks a process per delivery
    that runs the domain's `| HOME/bin/vdelivermail '' bounce-no-mailbox`
    in itself: no exec per delivered message, no sh, no vdelivermail. A
    line naming another program, or vdelivermail through shell syntax,
    still goes through sh -c as in qmail."""
    if not os.path.exists(qhome.bin("qmail-send")):
        pytest.skip("qmail-send not built yet")
    hosting.admin("vadduser", "bob@example.org", password="pw")
    n = 5
    assert execs_per_delivery(hosting, qhome, tmp_path, count=n) == {"qmail-local": 1 / n}
    # the same program under another name is another program: sh runs it
    dq = hosting.domain_dir("example.org") / ".qmail-default"
    line = dq.read_text()
    assert line.startswith(f"| {qhome.bin('vdelivermail')} ''"), line
    other = tmp_path / "bin" / "vdelivermail"
    other.parent.mkdir()
    shutil.copy(qhome.bin("vdelivermail"), other)
    os.chmod(tmp_path, 0o755)
    dq.write_text(line.replace(qhome.bin("vdelivermail"), str(other)))
    assert execs_per_delivery(hosting, qhome, tmp_path, count=n) == {"qmail-local": 1 / n, "sh": 1.0, "vdelivermail": 1.0}
    # shell syntax (a quoted program name) is sh's to read
    dq.write_text(line.replace(qhome.bin("vdelivermail"), f'"{qhome.bin("vdelivermail")}"'))
    assert execs_per_delivery(hosting, qhome, tmp_path, count=n) == {"qmail-local": 1 / n, "sh": 1.0, "vdelivermail": 1.0}
    assert len(hosting.new("bob", "example.org")) == 3 * n


def local_processes(qhome):
    """{pid: (ppid, argv)} of the processes running HOME/bin/qmail-local."""
    out = {}
    for d in os.listdir("/proc"):
        try:
            if not d.isdigit() or os.readlink(f"/proc/{d}/exe") != qhome.bin("qmail-local"):
                continue
            stat = pathlib.Path(f"/proc/{d}/stat").read_bytes()
            argv = pathlib.Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")[:-1]
        except OSError:
            continue
        out[int(d)] = (int(stat[stat.rfind(b")") + 2:].split()[1]), argv)
    return out


def worker_and_runners(qhome):
    """The pid of the one delivery worker when every qmail-local process
    is that worker or one of its runners (forked from it, same argv);
    else None."""
    procs = local_processes(qhome)
    if not procs or any(argv != [b"qmail-local", b"-W"] for _, argv in procs.values()):
        return None
    workers = [p for p, (pp, _) in procs.items() if pp not in procs]
    if len(workers) != 1 or any(pp != workers[0] for p, (pp, _) in procs.items() if p != workers[0]):
        return None
    return workers[0]


def slow_mailbox(hosting, vuser, user="bob", seconds=3):
    """A mailbox whose .qmail runs `sleep` before its Maildir line, so that
    a delivery to it is caught running."""
    hosting.admin("vadduser", f"{user}@example.org", password="pw")
    dq = hosting.domain_dir("example.org") / user / ".qmail"
    dq.write_text(f"|sleep {seconds}\n./Maildir/\n")
    os.chown(dq, vuser.pw_uid, vuser.pw_gid)



def test_delivery_survives_its_worker_killed(hosting, qhome, vuser):
    """kill -9 of the delivery worker while it has a delivery running loses
    nothing and duplicates nothing: the delivery's own process finishes and
    reports success on its status pipe, and the next message gets a new
    worker."""
    if not os.path.exists(qhome.bin("qmail-send")):
        pytest.skip("qmail-send not built yet")
    slow_mailbox(hosting, vuser)
    with qmail_send_running(qhome) as text:
        assert qhome.run("qmail-inject", "bob@example.org", input=b"Subject: one\n\nfirst\n").returncode == 0
        # the delivery is running: a process of the worker that has sh (sleep) below it
        workers = wait_for(lambda: [p for p, (pp, argv) in local_processes(qhome).items() if argv[1:] == [b"-W"]
                                    and any(pp2 == p for pp2, _ in local_processes(qhome).values())], 20,
                           "a delivery running in the worker\n" + text())
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)
        wait_for(lambda: len(hosting.new("bob", "example.org")) == 1, 30, "the first message\n" + text())
        wait_for(lambda: "success" in text(), 30, "its success\n" + text())
        assert "deferral" not in text() and "failure" not in text(), text()
        # a new worker for the next one
        (hosting.domain_dir("example.org") / "bob" / ".qmail").unlink()
        assert qhome.run("qmail-inject", "bob@example.org", input=b"Subject: two\n\nsecond\n").returncode == 0
        wait_for(lambda: len(hosting.new("bob", "example.org")) == 2, 30, "the second message\n" + text())
        wait_for(lambda: text().count("success") == 2, 30, "its success\n" + text())
        assert "deferral" not in text(), text()
    time.sleep(0.5)
    assert not local_processes(qhome), "workers outlive qmail-lspawn"



def test_idle_worker_exits_and_a_new_one_takes_the_next_message(hosting, qhome, vuser):
    """A worker with no request for 10 seconds exits (no process waits
    for a mailbox that gets mail once a day); the next message starts a
    new worker and is delivered at once, without a deferral."""
    if not os.path.exists(qhome.bin("qmail-send")):
        pytest.skip("qmail-send not built yet")
    hosting.admin("vadduser", "bob@example.org", password="pw")
    with qmail_send_running(qhome) as text:
        for k in range(2):
            assert qhome.run("qmail-inject", "bob@example.org", input=f"Subject: {k}\n\nhi\n".encode()).returncode == 0
            wait_for(lambda: len(hosting.new("bob", "example.org")) == k + 1, 30, "the message\n" + text())
            wait_for(lambda: worker_and_runners(qhome), 5, "the worker and its runner, waiting for more")
            wait_for(lambda: not local_processes(qhome), 20, "the idle worker to exit")
        wait_for(lambda: text().count("success") == 2, 30, "two successes\n" + text())
        assert "deferral" not in text(), text()


def test_killed_delivery_in_a_worker_is_deferred(hosting, qhome, vuser):
    """kill -9 of a delivery's own process (the worker's child) is a
    temporary failure, as a crashed qmail-local is: deferred, never
    bounced, and delivered when retried."""
    if not os.path.exists(qhome.bin("qmail-send")):
        pytest.skip("qmail-send not built yet")
    slow_mailbox(hosting, vuser)
    with qmail_send_running(qhome) as text:
        assert qhome.run("qmail-inject", "bob@example.org", input=b"Subject: one\n\nfirst\n").returncode == 0

        def delivery():
            procs = local_processes(qhome)
            return [p for p, (pp, argv) in procs.items() if pp in procs and procs[pp][1][1:] == [b"-W"]]
        victim = wait_for(delivery, 20, "a delivery running in the worker\n" + text())
        os.kill(victim[0], signal.SIGKILL)
        wait_for(lambda: "deferral: qmail-local_crashed" in text(), 30, "the deferral\n" + text())
        assert not hosting.new("bob", "example.org")
        (hosting.domain_dir("example.org") / "bob" / ".qmail").unlink()
        os.kill(text.pid, signal.SIGALRM)  # retry now
        wait_for(lambda: len(hosting.new("bob", "example.org")) == 1, 30, "the retried delivery\n" + text())
        assert "failure" not in text(), text()


def test_deliveries_reuse_a_runner_and_each_starts_fresh(hosting, qhome, vuser):
    """One after another, a uid's deliveries run in one runner process
    (no fork each), and each one still starts as a fresh process would:
    the variables qmail-local set for the previous one (DEFAULT) are gone,
    and the umask, directory and open descriptors are the same as before
    the first. A .qmail program records what it sees, from its parent's
    side: its $PPID is the runner."""
    if not os.path.exists(qhome.bin("qmail-send")):
        pytest.skip("qmail-send not built yet")
    hosting.admin("vadduser", "bob@example.org", password="pw")
    ddir = hosting.domain_dir("example.org")
    seen = ddir / "seen"
    probe = f'|echo "$PPID ${{DEFAULT-unset}} $(umask) $(pwd) $(ls /proc/$PPID/fd | sort -n | tr "\\n" " ")" >> {seen}\n'
    for path, text in ((ddir / "bob" / ".qmail", probe + "./Maildir/\n"), (ddir / ".qmail-carol", probe)):
        path.write_text(text)
        os.chown(path, vuser.pw_uid, vuser.pw_gid)

    def lines():
        return seen.read_text().splitlines() if seen.exists() else []
    with qmail_send_running(qhome) as text:
        for k, to in enumerate(("bob-x", "carol", "bob-x")):
            assert qhome.run("qmail-inject", f"{to}@example.org", input=f"Subject: {k}\n\nhi\n".encode()).returncode == 0
            wait_for(lambda: len(lines()) == k + 1 and text().count("success") == k + 1, 30, f"delivery {k}\n" + text())
    first, second, third = (line.split(" ", 5) for line in lines())
    assert first[0] == second[0] == third[0], lines()  # one runner
    assert (first[1], second[1], third[1]) == ("bob-x", "unset", "bob-x"), lines()
    assert first[2:] == second[2:] == third[2:], lines()  # umask, directory, descriptors
    assert first[2] == "0077" and first[3] == str(ddir), lines()
    assert len(hosting.new("bob", "example.org")) == 2


def pop3(qhome, commands, checkpassword="checkpassword-file"):
    """A POP3 session through qmail-popup HOST checkpassword qmail-pop3d Maildir,
    the service's argv, with the client's lines on stdin."""
    argv = [qhome.bin("qmail-popup"), "pop.example.org", qhome.bin(checkpassword), qhome.bin("qmail-pop3d"), "Maildir"]
    data = b"".join(c.encode() + b"\r\n" for c in commands)
    return subprocess.run(argv, input=data, env=qhome.env, capture_output=True, timeout=60)


def test_pop3_login_and_deletion_keep_the_quota_right(hosting, qhome):
    if not (os.path.exists(qhome.bin("qmail-popup")) and os.path.exists(qhome.bin("qmail-pop3d"))):
        pytest.skip("qmail-popup/qmail-pop3d not built yet")
    hosting.admin("vadduser", "-q", "300", "bob@example.org", password="pw")
    while hosting.deliver("bob", "example.org").returncode == 0:
        assert len(hosting.new("bob", "example.org")) < 10
    full = len(hosting.new("bob", "example.org"))
    assert hosting.deliver("bob", "example.org").returncode == 100
    r = pop3(qhome, ["USER bob@example.org", "PASS wrong"])
    assert b"-ERR" in r.stdout
    r = pop3(qhome, ["USER bob@example.org", "PASS pw", "STAT", "DELE 1", "QUIT"])
    assert r.stdout.count(b"+OK") >= 4, r.stdout + r.stderr
    assert f"+OK {full} ".encode() in r.stdout
    md = hosting.maildir("bob", "example.org")
    assert len(list((md / "cur").iterdir())) + len(list((md / "new").iterdir())) == full - 1
    lines = (md / "maildirsize").read_text().splitlines()
    on_disk = sum(p.stat().st_size for sub in ("cur", "new") for p in (md / sub).iterdir())
    assert sum(int(l.split()[0]) for l in lines[1:]) == on_disk, lines
    # the freed space takes the next message at once
    assert hosting.deliver("bob", "example.org").returncode == 0


def test_catch_all_loop_is_bounced(hosting):
    looped = b"Delivered-To: nobody@example.org\n" + MSG
    r = hosting.deliver("nobody", "example.org", action="elsewhere@remote.example", message=looped)
    assert r.returncode == 100 and b"looping" in r.stderr


def test_domain_changes_hup_qmail_send(hosting, qhome, tmp_path):
    """A live process named qmail-send in HOME/run/qmail-send.pid gets a HUP;
    a stale pid naming another program is left alone."""
    fake = tmp_path / "qmail-send"
    shutil.copy("/bin/sleep", fake)
    proc = subprocess.Popen([str(fake), "60"])
    other = subprocess.Popen(["/bin/sleep", "60"])
    try:
        (qhome.path / "run").mkdir(exist_ok=True)
        pidfile = qhome.path / "run" / "qmail-send.pid"
        pidfile.write_text(f"{other.pid}\n")
        r = hosting.admin("vadddomain", "-u", hosting.vuser.pw_name, "one.example", password="x")
        assert b"qmail-send is not running" in r.stderr
        assert other.poll() is None
        pidfile.write_text(f"{proc.pid}\n")
        r = hosting.admin("vadddomain", "-u", hosting.vuser.pw_name, "two.example", password="x")
        assert b"qmail-send is not running" not in r.stderr
        assert proc.wait(timeout=10) == -signal.SIGHUP
    finally:
        for p in (proc, other):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_checkpassword_unreadable_shadow_is_temporary(hosting, sysuser):
    """Run without root, shadow cannot be read: exit 111, never a verdict."""
    pw, _ = sysuser
    data = hosting.q.path.parent / "fd3"
    data.write_bytes(pw.pw_name.encode() + b"\0whatever\0" + TIMESTAMP + b"\0")
    data.chmod(0o644)
    v = hosting.vuser
    r = subprocess.run(["setpriv", f"--reuid={v.pw_uid}", f"--regid={v.pw_gid}", "--clear-groups", "/bin/sh", "-c",
                        f'exec "$0" id 3<{data}', hosting.q.bin("checkpassword")],
                       env=hosting.q.env, capture_output=True, timeout=30)
    assert r.returncode == 111 and b"shadow" in r.stderr, r.stderr


def test_password_prompt_on_a_terminal(hosting, qhome):
    """On a terminal the password is asked twice with echo off."""
    import pty
    hosting.admin("vadduser", "bob@example.org", password="old")

    def vpasswd_on_tty(first, second):
        master, slave = pty.openpty()
        try:
            p = subprocess.Popen([qhome.bin("vpasswd"), "bob@example.org"], stdin=slave, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=qhome.env)
            os.close(slave)
            slave = None
            err = b""
            for prompt, answer in ((b"New password: ", first), (b"Retype new password: ", second)):
                while prompt not in err:  # echo is off once the prompt shows
                    if not select.select([p.stderr], [], [], 20)[0]:
                        p.kill()
                        raise AssertionError(f"no prompt: {err!r}")
                    chunk = p.stderr.read1(100)
                    assert chunk, err
                    err += chunk
                os.write(master, answer + b"\n")
            out, rest = p.communicate(timeout=30)
            return p.returncode, err + rest
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)

    rc, err = vpasswd_on_tty(b"new1", b"new2")
    assert rc == 1 and b"do not match" in err and b"New password: " in err
    assert hosting.checkpw("checkpassword-file", "bob@example.org", "old").returncode == 0
    rc, err = vpasswd_on_tty(b"new1", b"new1")
    assert rc == 0, err
    assert hosting.checkpw("checkpassword-file", "bob@example.org", "new1").returncode == 0


def test_domain_limits_are_kept_by_vadduser_and_valias(hosting):
    """DIR/.qmailadmin-limits (vpopmail's file, which qmail-webadmin's
    system administrator sets): the commands refuse past them."""
    (hosting.domain_dir("example.org") / ".qmailadmin-limits").write_text(
        "maxpopaccounts: 2\nmaxaliases: 1\ndefault_quota: 10M\n")
    hosting.admin("vadduser", "bob@example.org", password="pw")
    assert hosting.admin("vuserinfo", "-q", "bob@example.org").stdout.decode().strip() == "10485760S"
    r = hosting.admin("vadduser", "carl@example.org", password="pw", check=False)
    assert r.returncode == 1 and b"example.org has its limit of 2 mailboxes" in r.stderr, r.stderr
    hosting.admin("valias", "-i", "a@remote.example", "info@example.org")
    hosting.admin("valias", "-i", "b@remote.example", "info@example.org")  # the same alias again
    r = hosting.admin("valias", "-i", "a@remote.example", "sales@example.org", check=False)
    assert r.returncode == 1 and b"example.org has its limit of 1 aliases" in r.stderr, r.stderr
    info = hosting.admin("vdominfo", "example.org").stdout.decode()
    assert "limits:  mailboxes 2, aliases 1, default quota 10485760S" in info, info
