"""qmail-webadmin with an LDAP or MySQL user directory (control/userdirectory):
a private slapd and mariadbd as in test_backends.py, qmail-webadmin itself
started on a free loopback port, plain HTTPS requests. A mailbox that only
the directory holds (its home outside the file store) logs in with its
directory password, is refused (and counted by the login limits) with a
wrong one, sets its vacation message on its page, and mail delivered by
vdelivermail-ldap/-mysql gets exactly one reply; password and forwarding
are shown as the directory's and never written to the file store. A
postmaster from the directory manages only its own domain."""
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import make_home
import backend_servers as bs
from test_hosting import queued
from test_webadmin import Client

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: makes a system account and switches uid"),
    pytest.mark.skipif(bool(bs.missing_binaries()), reason="slapd/mariadbd not installed: missing "
                       + " ".join(bs.missing_binaries())),
]

BACKENDS = ("ldap", "mysql")
DIR_PW = "dir-secret-ann-1"       # ann's password in LDAP and MySQL
PM_PW = "pm-dir-secret-2"         # postmaster@example.org's there
FILE_PM_PW = "pm-file-only-3"     # the file store's postmaster password, changed after the export


def mail(to, sender, subject):
    return (f"From: <{sender}>\nTo: <{to}>\nSubject: {subject}\nMessage-ID: <{subject}@remote.example>\n\n"
            "Are you in on Friday?\n").encode()


class Site:
    def __init__(self, q, vuser, base):
        self.q, self.vuser, self.base = q, vuser, base
        self.ports = {}

    def use(self, backend):
        self.q.control("userdirectory", backend + "\n")

    def ann_home(self, backend):
        return self.base / f"{backend}-homes" / "ann"

    def deliver(self, local, sender, message, domain="example.org"):
        """As qmail-local runs vdelivermail for the domain (as root: the
        single-user test home's queue, where replies go, is root's)."""
        env = dict(self.q.env, HOST=domain, LOCAL=f"{domain}-{local}", EXT=local, SENDER=sender,
                   RECIPIENT=f"{domain}-{local}@{domain}", RPLINE=f"Return-Path: <{sender}>\n")
        return subprocess.run([self.q.bin("vdelivermail"), "", "bounce-no-mailbox"], input=message, env=env,
                              capture_output=True, timeout=60, cwd=str(self.q.path))

    def log(self):
        return (self.base / "webadmin.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def site():
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-webdir-", dir="/var/tmp"))
    base.chmod(0o755)
    name = f"sqwd{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True)
    vuser = pwd.getpwnam(name)
    slapd = mariadb = web = None
    try:
        q = make_home(base)
        s = Site(q, vuser, base)

        def admin(prog, *args, password=None):
            r = q.run(prog, *args, input=(password + "\n").encode() if password is not None else b"")
            assert r.returncode == 0, (prog, args, r.stderr)

        admin("vadddomain", "-u", name, "example.org", password=PM_PW)
        admin("vadddomain", "-u", name, "other.test", password="pm-other-secret")
        admin("vadduser", "ann@example.org", password=DIR_PW)
        ldif = q.run("vexport", "--ldif", bs.BASE_DN)
        sql = q.run("vexport", "--sql")
        assert ldif.returncode == 0 and sql.returncode == 0, (ldif.stderr, sql.stderr)
        # ann's home in each directory is its own copy outside the file
        # store, and the file store forgets ann: the directory alone knows her
        filedir = str(q.path / "domains" / "example.org" / "ann")
        for backend in BACKENDS:
            s.ann_home(backend).parent.mkdir()
            subprocess.run(["cp", "-a", filedir, str(s.ann_home(backend))], check=True)
        assert filedir.encode() in ldif.stdout and filedir.encode() in sql.stdout, ldif.stdout
        ldif_data = ldif.stdout.replace(filedir.encode(), str(s.ann_home("ldap")).encode())
        sql_data = sql.stdout.replace(filedir.encode(), str(s.ann_home("mysql")).encode())
        admin("vdeluser", "ann@example.org")
        admin("vpasswd", "postmaster@example.org", password=FILE_PM_PW)
        certs = bs.make_certs(base / "certs")
        slapd = bs.Slapd(base / "ldap", ldif_data, certs)
        mariadb = bs.Mariadbd(base / "mysql", sql_data, certs)
        bs.configure(q, slapd, mariadb, vuser.pw_uid, vuser.pw_gid)
        shutil.copy(certs / "server.pem", q.path / "control" / "servercert.pem")
        shutil.copy(certs / "server.key", q.path / "control" / "serverkey.pem")
        s.ports["webadmin"] = bs.free_port()
        log = open(base / "webadmin.log", "wb")
        web = subprocess.Popen([q.bin("qmail-webadmin"), "-l", "127.0.0.1", "-p", str(s.ports["webadmin"])],
                               env=q.env, stdout=log, stderr=log)
        log.close()
        assert bs.wait_for(lambda: "listening on" in s.log() or web.poll() is not None), s.log()
        assert web.poll() is None, s.log()
        yield s
    finally:
        if web and web.poll() is None:
            web.terminate()
            web.wait(timeout=30)
        for server in (slapd, mariadb):
            if server:
                server.stop()
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_directory_mailbox_logs_in_and_its_vacation_answers_once(site, backend):
    site.use(backend)
    limits = site.q.path / "control" / "authfaillimit"
    table = site.q.path / "authfail" / "failures"
    home = site.ann_home(backend)
    try:
        # wrong passwords are refused and counted: 3 for ann, then even the right one waits
        limits.write_text("ip 0 0\nuser 3 600\n")
        table.unlink(missing_ok=True)
        c = Client(site)
        for _ in range(3):
            assert c.login("ann@example.org", "wrong-password")[0] == 401
        assert c.login("ann@example.org", DIR_PW)[0] == 429
        assert "qmail-webadmin: login failed remote=127.0.0.1 user=ann@example.org" in site.log()
        assert "qmail-webadmin: login limited remote=127.0.0.1 user=ann@example.org" in site.log()
        table.unlink(missing_ok=True)

        status, page = c.login("ann@example.org", DIR_PW)
        assert status == 303 and "My mailbox" in page and "Vacation message" in page, page
        word = "LDAP directory" if backend == "ldap" else "MySQL database"
        assert f"kept in the {word}, which this server only reads" in page
        # password and forwarding: said to be the directory's; nothing written anywhere
        for path, fields in (("/me/password", {"current": DIR_PW, "password": "new-pw-1234", "password2": "new-pw-1234"}),
                             ("/me/forward", {"targets": "x@remote.example"})):
            s, loc, _ = c.post(path, fields)
            assert (s, loc) == (303, "/me")
            assert f"kept in the {word}" in c.request("GET", "/me")[2]
        assert not (site.q.path / "domains" / "example.org" / "ann").exists()
        assert not (home / ".qmail").exists()
        assert site.q.run("vuserinfo", "ann@example.org").returncode != 0

        # the vacation, set on the page, lands in the directory's mailbox
        s, loc, _ = c.post("/me/vacation", {"subject": "Away", "body": "Back on Monday.\r\n", "first": "", "last": "",
                                            "interval": "7"})
        assert (s, loc) == (303, "/me")
        page = c.request("GET", "/me")[2]
        assert "Vacation message saved and on." in page and "On: senders get the reply below." in page, page
        vac = home / ".vacation"
        assert vac.exists() and vac.stat().st_uid == site.vuser.pw_uid
        assert "enabled: yes" in vac.read_text()

        before = len(queued(site.q))
        sender = f"alice-{backend}@remote.example"
        for n in range(2):
            r = site.deliver("ann", sender, mail("ann@example.org", sender, f"lunch{n}-{backend}"))
            assert r.returncode == 0, r.stderr
        assert len(list((home / "Maildir" / "new").iterdir())) >= 2
        replies = [m for env, m in queued(site.q) if f"T{sender}\0".encode() in env]
        assert len(queued(site.q)) == before + 1 and len(replies) == 1, r.stderr
        assert b"Subject: Away" in replies[0] and b"Back on Monday." in replies[0]

        # off on the page: no more replies
        assert c.post("/me/vacation/off", {})[0] == 303
        assert "enabled: no" in vac.read_text()
        other = f"bob-{backend}@remote.example"
        assert site.deliver("ann", other, mail("ann@example.org", other, f"after-{backend}")).returncode == 0
        assert len(queued(site.q)) == before + 1
    finally:
        limits.unlink(missing_ok=True)
        table.unlink(missing_ok=True)
        site.use("file")


@pytest.mark.parametrize("backend", BACKENDS)
def test_directory_postmaster_manages_only_its_domain(site, backend):
    site.use(backend)
    try:
        # the directory's password counts, not the file store's
        assert Client(site).login("postmaster@example.org", FILE_PM_PW)[0] == 401
        pm = Client(site)
        status, page = pm.login("postmaster@example.org", PM_PW)
        assert status == 303 and "Mailboxes" in page, page
        assert pm.request("GET", "/domain?d=example.org")[0] == 200
        assert pm.request("GET", "/domain?d=other.test")[0] == 403
        assert pm.request("GET", "/domains")[0] == 403
        assert pm.post("/domain/mailbox/add", {"d": "other.test", "u": "eve", "password": "eve-secret-pw"})[0] == 403
        assert site.q.run("vuserinfo", "eve@other.test").returncode != 0
    finally:
        site.use("file")
