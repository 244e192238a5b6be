"""A mailbox's own qmail-filter policy held in LDAP (sqFilterPolicy) and in
MySQL/MariaDB (users.filter_policy): set, shown and removed with
vfilterpolicy (which execs vfilterpolicy-ldap/-mysql), obeyed by
qmail-filter (which execs qmail-filter-ldap/-mysql) with a real spamd
judging GTUBE. A users table without the column still logs in and
delivers; a directory that is down defers (451), never refuses or passes."""
import os
import pwd
import re
import smtplib
import shutil
import subprocess
import tempfile
import pathlib

import pytest

from conftest import make_home
import backend_servers as bs
from filter_daemons import GTUBE
from smtp_helpers import TcpServer, queued, smtpd_env
from test_backends import Env
from test_filter import spamd, message, run_filter, CLEAN  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: switches uid for deliveries"),
    pytest.mark.skipif(bool(bs.missing_binaries()),
                       reason="slapd/mariadbd not installed: missing " + " ".join(bs.missing_binaries())),
]

DOM = "example.org"
SPAM = message(GTUBE + b"\n")
ADMIN_PW = "admin-secret-K2p"


def addr(u):
    return f"{u}@{DOM}".encode()


@pytest.fixture(scope="module")
def env(spamd):
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-filterdir-", dir="/var/tmp"))
    base.chmod(0o755)
    vuser = pwd.getpwnam("nobody")
    slapd = mariadb = None
    try:
        q = make_home(base)
        e = Env(q, vuser, None, None, base)
        e.admin("vadddomain", "-u", "nobody", DOM, password="pmpass")
        for u in ("joe", "ann", "lax"):
            e.admin("vadduser", f"{u}@{DOM}", password="pw")
        e.admin("vadduser", f"moved@{DOM}", password="pw")
        e.admin("vfilterpolicy", f"moved@{DOM}", "spam=no,tag=2")   # file backend, carried by vexport
        ldif = q.run("vexport", "--ldif", bs.BASE_DN)
        sql = q.run("vexport", "--sql")
        assert ldif.returncode == 0 and sql.returncode == 0, (ldif.stderr, sql.stderr)
        certs = bs.make_certs(base / "certs")
        slapd = bs.Slapd(base / "ldap", ldif.stdout, certs)
        mariadb = bs.Mariadbd(base / "mysql", sql.stdout, certs)
        e.slapd, e.mariadb = slapd, mariadb
        bs.configure(q, slapd, mariadb, vuser.pw_uid, vuser.pw_gid)
        # the programs' account reads; vfilterpolicy writes as another
        bs.grant_sql_admin(mariadb, q, ADMIN_PW)
        q.control("spamd", f"spamd 127.0.0.1:{spamd.port}\n")
        q.control("filter", ":reject=8\n")
        q.control("filtertimeout", "20\n")
        yield e
    finally:
        for s in (slapd, mariadb):
            if s:
                s.stop()
        shutil.rmtree(base, ignore_errors=True)


def policy(e, *args, ok=True):
    r = e.q.run("vfilterpolicy", *args)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def quarantined(e):
    r = e.q.run("qmail-quarantine", "list")
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().splitlines()


@pytest.mark.parametrize("backend", ["ldap", "mysql"])
def test_vexport_carries_file_backend_policies_into_the_directory(env, backend):
    env.use(backend)
    try:
        assert policy(env, f"moved@{DOM}").stdout.decode() == f"moved@{DOM}: spam=no,tag=2\n"
        code, reason, log = run_filter(env.q, SPAM, rcpts=(addr("moved"),))
        assert (code, reason) == (0, b""), log
        assert queued(env.q)[-1][2] == [addr("moved")]
    finally:
        env.use("file")


@pytest.mark.parametrize("backend", ["ldap", "mysql"])
def test_policy_set_with_vfilterpolicy_in_the_directory_decides_for_gtube(env, backend):
    env.use(backend)
    try:
        policy(env, f"joe@{DOM}", "quarantine=yes")
        policy(env, f"lax@{DOM}", "spam=no")
        assert policy(env, f"joe@{DOM}").stdout.decode() == f"joe@{DOM}: quarantine=yes\n"
        assert policy(env, f"ann@{DOM}").stdout.decode() == f"ann@{DOM}: no policy of its own\n"
        # the directory holds it, the file backend does not
        assert "joe:" not in (env.domain_dir() / "vfilter").read_text()
        bad = policy(env, f"joe@{DOM}", "spam=perhaps", ok=False)
        assert bad.returncode == 1 and policy(env, f"joe@{DOM}").stdout.decode().endswith("quarantine=yes\n")
        for args in (("spam=no",), ()):
            r = policy(env, f"nobody-here@{DOM}", *args, ok=False)
            assert r.returncode == 1 and b"no such user" in r.stderr, r.stderr

        code, reason, log = run_filter(env.q, SPAM, rcpts=(addr("ann"),))
        assert reason.startswith(b"D550"), (code, reason, log)
        before_q, before = len(quarantined(env)), len(queued(env.q))
        assert run_filter(env.q, SPAM, rcpts=(addr("joe"),))[:2] == (0, b"")
        assert len(quarantined(env)) == before_q + 1 and len(queued(env.q)) == before
        code, reason, log = run_filter(env.q, SPAM, rcpts=(addr("lax"),))
        assert (code, reason) == (0, b""), log
        assert queued(env.q)[-1][2] == [addr("lax")]

        # removed: joe is back to the site's policy
        policy(env, "-d", f"joe@{DOM}")
        policy(env, "-d", f"joe@{DOM}")          # twice is no error
        assert policy(env, f"joe@{DOM}").stdout.decode() == f"joe@{DOM}: no policy of its own\n"
        assert run_filter(env.q, SPAM, rcpts=(addr("joe"),))[1].startswith(b"D550")
    finally:
        policy(env, "-d", f"lax@{DOM}", ok=False)
        env.use("file")


@pytest.mark.parametrize("backend", ["ldap", "mysql"])
def test_a_smtp_session_asks_the_directory_through_one_filter_process(env, backend):
    env.use(backend)
    policy(env, f"joe@{DOM}", "quarantine=yes")
    e = smtpd_env(env.q, QMAILQUEUE=env.q.bin("qmail-filter"))
    for k in ("TCPREMOTEIP", "SMTPAUTHUSER"):
        e.pop(k, None)
    srv = TcpServer(env.q, [env.q.bin("qmail-smtpd"), "test.example.com", "/bin/true"], env=e)
    replies = []
    try:
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=60) as s:
            s.ehlo("client.example")
            for rcpt, data in (("joe", SPAM), ("ann", SPAM), ("ann", CLEAN), ("joe", CLEAN)):
                s.mail("alice@example.net")
                s.rcpt(f"{rcpt}@{DOM}")
                replies.append(s.data(data.replace(b"\n", b"\r\n"))[0])
    finally:
        srv.stop()
        policy(env, "-d", f"joe@{DOM}", ok=False)
        env.use("file")
    log = srv.proc.stderr.read().decode()
    assert replies == [250, 550, 250, 250], (replies, log)
    # qmail-filter exec'd its -ldap/-mysql variant once: one process (and
    # one directory connection) for the whole session
    pids = re.findall(r"qmail-filter: pid (\d+) ", log)
    assert len(pids) >= 4 and len(set(pids)) == 1, log
    assert "quarantined as" in log


def test_qmail_filter_links_no_directory_client(env):
    # qmail-filter runs once per message (or per connection): it loads no
    # LDAP or MariaDB client. The admin commands (vfilterpolicy among them)
    # share swift-qmail-dyn with the -ldap/-mysql programs, so they load
    # both; a file of their own would cost 8 MB of HOME/bin's 60 (issue 20).
    libs = subprocess.run(["ldd", env.q.bin("qmail-filter")], capture_output=True, text=True).stdout
    assert "libldap" not in libs and "libmariadb" not in libs, libs
    assert "libldap" in subprocess.run(["ldd", env.q.bin("qmail-filter-ldap")], capture_output=True, text=True).stdout
    assert "libmariadb" in subprocess.run(["ldd", env.q.bin("qmail-filter-mysql")], capture_output=True, text=True).stdout


def test_a_users_table_without_the_column_logs_in_delivers_and_filters(env):
    env.use("mysql")
    env.mariadb.sql(b"ALTER TABLE users DROP COLUMN filter_policy;", db="mail")
    try:
        assert env.checkpw("checkpassword-mysql", f"ann@{DOM}", "pw").returncode == 0
        before = len(env.new("ann"))
        r = env.deliver("ann")
        assert r.returncode == 0, r.stderr
        assert len(env.new("ann")) == before + 1
        code, reason, log = run_filter(env.q, CLEAN, rcpts=(addr("ann"), addr("joe")))
        assert (code, reason) == (0, b""), log
        assert log.count("no filter_policy column") == 1, log
        assert run_filter(env.q, SPAM, rcpts=(addr("ann"),))[1].startswith(b"D550")
        r = policy(env, f"ann@{DOM}", "spam=no", ok=False)
        assert r.returncode == 1 and b"migration" in r.stderr, r.stderr
    finally:
        # the migration statement of schemas/mysql.sql puts it back
        migration = [l for l in (bs.SCHEMAS / "mysql.sql").read_text().splitlines() if l.startswith("ALTER TABLE")]
        env.mariadb.sql("\n".join(migration).encode(), db="mail")
        env.mariadb.sql(b"GRANT UPDATE (filter_policy) ON mail.users TO 'mailadmin'@'localhost';")
        env.use("file")
    env.use("mysql")
    try:
        policy(env, f"ann@{DOM}", "spam=no")
        assert run_filter(env.q, SPAM, rcpts=(addr("ann"),))[:2] == (0, b"")
    finally:
        policy(env, "-d", f"ann@{DOM}")
        env.use("file")


def test_an_ldap_schema_without_the_attribute_logs_in_delivers_and_filters(env, tmp_path):
    # a slapd loaded with the schema as it was before sqFilterPolicy
    old = tmp_path / "schemas"
    old.mkdir()
    text = (bs.SCHEMAS / "swift-qmail.schema").read_text()
    text = re.sub(r"attributetype \( [0-9.]+ NAME 'sqFilterPolicy'.*?\)\n\n", "", text, flags=re.S)
    (old / "swift-qmail.schema").write_text(text.replace(" $ sqFilterPolicy", ""))
    assert "sqFilterPolicy" not in (old / "swift-qmail.schema").read_text()
    ldif = env.q.run("vexport", "--ldif", bs.BASE_DN).stdout
    ldif = b"".join(l for l in ldif.splitlines(keepends=True) if not l.startswith(b"sqFilterPolicy:"))
    saved, bs.SCHEMAS = bs.SCHEMAS, old
    try:
        slapd = bs.Slapd(tmp_path / "ldap", ldif, env.base / "certs")
    finally:
        bs.SCHEMAS = saved
    env.q.control("ldapserver", slapd.uri + "\n")
    env.use("ldap")
    try:
        assert env.checkpw("checkpassword-ldap", f"ann@{DOM}", "pw").returncode == 0
        before = len(env.new("ann"))
        r = env.deliver("ann")
        assert r.returncode == 0 and len(env.new("ann")) == before + 1, r.stderr
        code, reason, log = run_filter(env.q, CLEAN, rcpts=(addr("ann"), addr("moved")))
        assert (code, reason) == (0, b""), log
        assert run_filter(env.q, SPAM, rcpts=(addr("moved"),))[1].startswith(b"D550")   # no policy here
        r = policy(env, f"ann@{DOM}", "spam=no", ok=False)
        assert r.returncode == 1 and b"schema" in r.stderr, r.stderr
        assert policy(env, "-d", f"ann@{DOM}").returncode == 0
    finally:
        env.q.control("ldapserver", env.slapd.uri + "\n")
        env.use("file")
        slapd.stop()


@pytest.mark.parametrize("backend", ["ldap", "mysql"])
def test_a_directory_that_is_down_defers_and_queues_nothing(env, backend):
    server = env.slapd if backend == "ldap" else env.mariadb
    env.use(backend)
    try:
        before = len(queued(env.q))
        server.stop()
        for msg in (CLEAN, SPAM):
            code, reason, log = run_filter(env.q, msg, rcpts=(addr("ann"),))
            assert reason.startswith(b"Z451"), (code, reason, log)
        assert len(queued(env.q)) == before
        assert policy(env, f"ann@{DOM}", "spam=no", ok=False).returncode == 111
    finally:
        server.start()
    try:
        assert run_filter(env.q, CLEAN, rcpts=(addr("ann"),))[:2] == (0, b"")
        assert len(queued(env.q)) == before + 1
    finally:
        env.use("file")
