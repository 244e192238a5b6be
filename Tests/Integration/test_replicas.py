"""The directory as replicas (issue 22, item 4), against real servers: an
OpenLDAP provider with two syncrepl consumers (one that follows at once,
one that refreshes once an hour, so it lags), and a MariaDB primary with a
binlog replica. Each host reads its replicas in the order control/ldapserver
and control/sqlserver list them; control/ldapprovider and control/sqlprimary
name where writes go and who confirms a replica's "no": a stale replica
must never bounce a message nor fail a login."""
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import make_home, wait_for
from test_backends import Env
import backend_servers as bs

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: makes system accounts and switches uid"),
    pytest.mark.skipif(bool(bs.missing_binaries()), reason="slapd/mariadbd not installed"),
]

ADMIN_PW = "sql-admin-Vt3"


def ldap_has(slapd, filt):
    r = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "nettimeout=2", "-H", slapd.uri, "-D", bs.LDAP_ADMIN,
                        "-w", bs.LDAP_ADMIN_PW, "-b", bs.BASE_DN, filt, "dn"], capture_output=True, timeout=30)
    return r.returncode == 0 and b"dn: " in r.stdout


def ldap_modify(slapd, ldif):
    r = subprocess.run(["ldapmodify", "-x", "-H", slapd.uri, "-D", bs.LDAP_ADMIN, "-w", bs.LDAP_ADMIN_PW],
                       input=ldif, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr


def crypt(password):
    r = subprocess.run(["openssl", "passwd", "-6", password], capture_output=True, timeout=30, check=True)
    return r.stdout.strip()


@pytest.fixture(scope="module")
def env():
    """alice is in every copy of the directory; dave only in the file
    backend and (added later by the tests) on the provider/primary."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-replicas-", dir="/var/tmp"))
    base.chmod(0o755)
    name = f"sqrp{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True)
    vuser = pwd.getpwnam(name)
    servers = []
    try:
        q = make_home(base)
        e = Env(q, vuser, None, None, base)
        e.admin("vadddomain", "-u", name, "example.org", password="pmpass")
        e.admin("vadduser", "alice@example.org", password="pw-alice")
        e.admin("vadduser", "dave@example.org", password="pw-dave")
        ldif = q.run("vexport", "--ldif", bs.BASE_DN).stdout
        sql = q.run("vexport", "--sql").stdout
        entries = ldif.split(b"\n\n")
        e.dave_ldif = b"".join(x + b"\n\n" for x in entries if b"dn: mail=dave@" in x)
        ldif = b"".join(x + b"\n\n" for x in entries if b"dn: mail=dave@" not in x)
        e.dave_sql = b"\n".join(l for l in sql.splitlines() if b"'dave'" in l) + b"\n"
        sql = b"\n".join(l for l in sql.splitlines() if b"'dave'" not in l) + b"\n"
        assert e.dave_ldif and e.dave_sql.startswith(b"INSERT")
        certs = bs.make_certs(base / "certs")
        e.provider = bs.Slapd(base / "provider", ldif, certs, provider=True)
        servers.append(e.provider)
        e.follower = bs.Slapd(base / "follower", b"", certs, consumer_of=e.provider)
        servers.append(e.follower)
        e.lagger = bs.Slapd(base / "lagger", b"", certs, consumer_of=e.provider, refresh_every="01:00:00:00")
        servers.append(e.lagger)
        e.primary = bs.Mariadbd(base / "primary", sql, certs, args=["--server-id=1", "--log-bin=binlog"])
        servers.append(e.primary)
        e.replica = bs.Mariadbd(base / "replica", sql, certs, args=["--server-id=2", "--skip-slave-start"])
        servers.append(e.replica)
        e.replica.replicate_from(e.primary)
        for c in (e.follower, e.lagger):
            wait_for(lambda: ldap_has(c, "(mail=alice@example.org)"), 30, "the consumer's first refresh")
        bs.configure(q, e.provider, e.primary, vuser.pw_uid, vuser.pw_gid)
        # the replicas first, in order; the provider/primary named apart
        q.control("ldapserver", f"{e.lagger.uri}\n{e.follower.uri}\n")
        q.control("ldapprovider", e.provider.uri + "\n")
        q.control("sqlserver", f"{e.replica.socket}\n{e.primary.socket}\n")
        q.control("sqlprimary", e.primary.socket + "\n")
        # vfilterpolicy writes as an account that may (on the primary only)
        bs.grant_sql_admin(e.primary, q, ADMIN_PW)
        yield e
    finally:
        for s in servers:
            s.stop()
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(base, ignore_errors=True)


def replica_sql(e, query):
    return e.replica.sql(query.encode(), db="mail").decode()


def test_replication_runs(env):
    """The servers replicate: a change on the provider/primary reaches the
    follower and the MariaDB replica (which is then stopped: it lags)."""
    ldap_modify(env.provider, f"dn: mail=alice@example.org,ou=users,{bs.BASE_DN}\nchangetype: modify\n"
                              "replace: sqMailQuota\nsqMailQuota: 5000000S\n".encode())
    wait_for(lambda: ldap_has(env.follower, "(sqMailQuota=5000000S)"), 30, "the follower's copy")
    assert not ldap_has(env.lagger, "(sqMailQuota=5000000S)")
    env.primary.sql(b"UPDATE users SET quota = '5000000S' WHERE local_part = 'alice'", db="mail")
    wait_for(lambda: "5000000S" in replica_sql(env, "SELECT quota FROM users WHERE local_part = 'alice'"), 30,
             "the replica's copy")
    env.replica.sql(b"STOP SLAVE")


def stale_replica_setup(env, backend):
    """On the provider/primary only: alice's new password and dave."""
    if backend == "ldap":
        if ldap_has(env.provider, "(mail=dave@example.org)"):
            return
        ldap_modify(env.provider, f"dn: mail=alice@example.org,ou=users,{bs.BASE_DN}\nchangetype: modify\n"
                                  "replace: userPassword\nuserPassword: {CRYPT}".encode() + crypt("new-alice") + b"\n")
        r = subprocess.run(["ldapadd", "-x", "-H", env.provider.uri, "-D", bs.LDAP_ADMIN, "-w", bs.LDAP_ADMIN_PW],
                           input=env.dave_ldif, capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: ldap_has(env.follower, "(mail=dave@example.org)"), 30, "the follower's copy")
        assert not ldap_has(env.lagger, "(mail=dave@example.org)")
    else:
        if env.primary.sql(b"SELECT COUNT(*) FROM users WHERE local_part = 'dave'", db="mail").split()[-1] == b"1":
            return
        env.replica.sql(b"STOP SLAVE")
        env.primary.sql(b"UPDATE users SET password_hash = '" + crypt("new-alice") + b"' WHERE local_part = 'alice';"
                        + env.dave_sql, db="mail")
        assert "dave" not in replica_sql(env, "SELECT local_part FROM users")


@pytest.mark.parametrize("backend", ["ldap", "mysql"])
def test_replica_answers_and_its_no_is_checked_with_the_provider(env, backend):
    """The lagging replica answers first: alice's old password still logs
    in there (a "yes" is used as it is, so the reads come from it). Its "no"
    is asked again of the provider: alice's new password logs in, and dave,
    whom only the provider knows, gets his mail and logs in, never bounced
    nor refused. Who is known nowhere still bounces; a wrong password still
    fails."""
    env.use(backend)
    stale_replica_setup(env, backend)
    prog = f"checkpassword-{backend}"
    assert env.checkpw(prog, "alice@example.org", "pw-alice").returncode == 0
    assert env.checkpw(prog, "alice@example.org", "new-alice").returncode == 0
    r = env.checkpw(prog, "alice@example.org", "wrong")
    assert (r.returncode, r.stdout) == (1, b"")
    n = len(env.new("dave"))
    r = env.deliver("dave")
    assert r.returncode == 0, r.stderr
    assert len(env.new("dave")) == n + 1
    assert env.checkpw(prog, "dave@example.org", "pw-dave").returncode == 0
    r = env.deliver("nobody")
    assert r.returncode == 100 and b"no mailbox" in r.stdout + r.stderr, r
    assert env.checkpw(prog, "nobody@example.org", "x").returncode == 1


def stop_provider(env, backend):
    (env.provider if backend == "ldap" else env.primary).stop()


def start_provider(env, backend):
    (env.provider if backend == "ldap" else env.primary).start()


@pytest.mark.parametrize("backend", ["ldap", "mysql"])
def test_provider_down_reads_go_on_and_nothing_bounces(env, backend):
    """Provider/primary stopped: alice, whom the replica knows, gets mail
    and logs in; dave, whom it does not know yet, is deferred (111), never
    bounced; a login the replica refuses is a temporary failure too, since
    nobody can say the provider would refuse it as well."""
    env.use(backend)
    stale_replica_setup(env, backend)
    stop_provider(env, backend)
    try:
        prog = f"checkpassword-{backend}"
        n = len(env.new("alice"))
        r = env.deliver("alice")
        assert r.returncode == 0, r.stderr
        assert len(env.new("alice")) == n + 1
        assert env.checkpw(prog, "alice@example.org", "pw-alice").returncode == 0
        for local in ("dave", "nobody"):
            r = env.deliver(local)
            assert r.returncode == 111, (local, r)
            assert b"provider cannot confirm" in r.stdout + r.stderr
        for user, pw in (("dave", "pw-dave"), ("alice", "new-alice"), ("nobody", "x")):
            r = env.checkpw(prog, f"{user}@example.org", pw)
            assert r.returncode == 111, (user, r)
    finally:
        start_provider(env, backend)


def test_ldap_replica_down_the_next_one_answers(env):
    """The first consumer stopped: the next in control/ldapserver (the
    follower, which has dave) answers, even with the provider stopped too."""
    env.use("ldap")
    stale_replica_setup(env, "ldap")
    env.lagger.stop()
    env.provider.stop()
    try:
        n = len(env.new("dave"))
        t = time.monotonic()
        r = env.deliver("dave")
        assert r.returncode == 0, r.stderr
        assert len(env.new("dave")) == n + 1
        assert time.monotonic() - t < 5
        assert env.checkpw("checkpassword-ldap", "alice@example.org", "new-alice").returncode == 0
    finally:
        env.provider.start()
        env.lagger.start()


def test_ldap_server_that_never_answers_hands_over(env):
    """A first server that takes the connection but never answers (a hung
    slapd) costs one ldaptimeout, then the next server answers."""
    import socket
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    env.use("ldap")
    try:
        env.q.control("ldapserver", f"ldap://127.0.0.1:{hung.getsockname()[1]}/\n{env.follower.uri}\n")
        t = time.monotonic()
        r = env.deliver("alice")
        took = time.monotonic() - t
        assert r.returncode == 0, r.stderr
        assert took < 2 * 2 + 3, took   # ldaptimeout is 2
    finally:
        hung.close()
        env.q.control("ldapserver", f"{env.lagger.uri}\n{env.follower.uri}\n")


def test_mysql_replica_down_the_next_one_answers(env):
    """The replica stopped: the next server in control/sqlserver answers."""
    env.use("mysql")
    stale_replica_setup(env, "mysql")
    env.replica.stop()
    try:
        assert env.checkpw("checkpassword-mysql", "dave@example.org", "pw-dave").returncode == 0
        r = env.deliver("alice")
        assert r.returncode == 0, r.stderr
    finally:
        env.replica.start()


@pytest.mark.parametrize("backend", ["ldap", "mysql"])
def test_writes_go_to_the_provider(env, backend):
    """vfilterpolicy (through vfilterpolicy-ldap/-mysql) changes the
    provider/primary, not the replica the host reads."""
    env.use(backend)
    r = env.q.run("vfilterpolicy", "alice@example.org", "spam=no,tag=3")
    assert r.returncode == 0, r.stderr
    if backend == "ldap":
        assert ldap_has(env.provider, "(&(mail=alice@example.org)(sqFilterPolicy=*))")
        assert not ldap_has(env.lagger, "(&(mail=alice@example.org)(sqFilterPolicy=*))")
    else:
        env.replica.sql(b"STOP SLAVE")
        assert b"tag=3" in env.primary.sql(b"SELECT filter_policy FROM users WHERE local_part = 'alice'", db="mail")
        assert "tag=3" not in replica_sql(env, "SELECT filter_policy FROM users WHERE local_part = 'alice'")


def test_one_server_configuration_is_unchanged(env):
    """No provider named: the one server's "no" is the verdict, as before
    (erin, new on the provider, is unknown to the lagging consumer)."""
    env.use("ldap")
    r = subprocess.run(["ldapadd", "-x", "-H", env.provider.uri, "-D", bs.LDAP_ADMIN, "-w", bs.LDAP_ADMIN_PW],
                       input=env.dave_ldif.replace(b"dave", b"erin"), capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert not ldap_has(env.lagger, "(mail=erin@example.org)")
    os.unlink(env.q.path / "control" / "ldapprovider")
    env.q.control("ldapserver", env.lagger.uri + "\n")
    try:
        r = env.deliver("erin")
        assert r.returncode == 100, r
        assert env.checkpw("checkpassword-ldap", "erin@example.org", "pw-dave").returncode == 1
    finally:
        env.q.control("ldapserver", f"{env.lagger.uri}\n{env.follower.uri}\n")
        env.q.control("ldapprovider", env.provider.uri + "\n")
