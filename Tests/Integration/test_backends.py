"""The LDAP and MySQL/MariaDB backends against real servers: a private
slapd (our schema, loopback port) and a private mariadbd (its own datadir,
unix socket), both started here. The users are made with the file backend's
admin commands and exported with vexport, so the same accounts exist in all
three backends. Logins go through checkpassword-ldap/-mysql on fd 3 as from
qmail-popup; deliveries through vdelivermail as qmail-local runs it, with
control/userdirectory choosing the backend."""
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import make_home
import backend_servers as bs

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: makes system accounts and switches uid"),
    pytest.mark.skipif(bool(bs.missing_binaries()),
                       reason="slapd/mariadbd not installed (apt-get install slapd ldap-utils mariadb-server "
                              "mariadb-client): missing " + " ".join(bs.missing_binaries())),
]

SCHEMES = ["yescrypt", "sha512", "sha256", "bcrypt", "md5"]
MSG = b"From: sender@remote.example\nSubject: test\n\nhello there\n"
BACKENDS = {"ldap": "checkpassword-ldap", "mysql": "checkpassword-mysql"}
GECOS = "Zoë O'Brien \\ \"x\"; DROP"
SHOW = ("sh", "-c", 'id -u; id -g; pwd; echo "USER=$USER"; echo "HOME=$HOME"; echo "MAILDIR=$MAILDIR"')


class Env:
    def __init__(self, q, vuser, slapd, mariadb, base):
        self.q, self.vuser, self.slapd, self.mariadb, self.base = q, vuser, slapd, mariadb, base

    def admin(self, prog, *args, password=None):
        r = self.q.run(prog, *args, input=(password + "\n") if password is not None else b"")
        assert r.returncode == 0, (prog, args, r.stdout, r.stderr)
        return r

    def domain_dir(self, domain="example.org"):
        return self.q.path / "domains" / domain

    def new(self, user, domain="example.org"):
        return sorted((self.domain_dir(domain) / user / "Maildir" / "new").iterdir())

    def use(self, backend):
        self.q.control("userdirectory", backend + "\n")

    def checkpw(self, prog, user, password, argv=("true",), raw=None):
        data = raw if raw is not None else _b(user) + b"\0" + _b(password) + b"\0<1.2@pop.example>\0"
        return subprocess.run(["/bin/sh", "-c", 'exec "$0" "$@" 3<&0 </dev/null', self.q.bin(prog), *argv],
                              input=data, env=self.q.env, capture_output=True, timeout=60)

    def deliver(self, local, domain="example.org", action="bounce-no-mailbox", as_root=False):
        env = dict(self.q.env)
        recipient = f"{domain}-{local}@{domain}"
        env.update({"HOST": domain, "LOCAL": f"{domain}-{local}", "EXT": local, "SENDER": "s@remote.example",
                    "RECIPIENT": recipient, "RPLINE": "Return-Path: <s@remote.example>\n"})
        argv = [self.q.bin("vdelivermail"), "", action]
        if not as_root:
            argv = ["setpriv", f"--reuid={self.vuser.pw_uid}", f"--regid={self.vuser.pw_gid}", "--clear-groups"] + argv
        return subprocess.run(argv, input=MSG, env=env, capture_output=True, timeout=60, cwd=str(self.q.path))


def _b(s):
    return s if isinstance(s, bytes) else s.encode()


@pytest.fixture(scope="module")
def env():
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-backends-", dir="/var/tmp"))
    base.chmod(0o755)
    name = f"sqbk{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True)
    vuser = pwd.getpwnam(name)
    slapd = mariadb = None
    try:
        q = make_home(base)
        e = Env(q, vuser, None, None, base)
        e.admin("vadddomain", "-u", name, "example.org", password="pmpass")
        e.admin("vaddaliasdomain", "example.org", "example.net")
        for s in SCHEMES:
            e.admin("vadduser", "-s", s, f"u{s}@example.org", password=f"pw-{s}")
        e.admin("vadduser", "-q", "1000S", "-c", GECOS, "small@example.org", password="pw")
        e.admin("valias", "-i", "uyescrypt@example.org", "team@example.org")
        ldif = q.run("vexport", "--ldif", bs.BASE_DN)
        assert ldif.returncode == 0, ldif.stderr
        sql = q.run("vexport", "--sql")
        assert sql.returncode == 0, sql.stderr
        certs = bs.make_certs(base / "certs")
        slapd = bs.Slapd(base / "ldap", ldif.stdout, certs)
        mariadb = bs.Mariadbd(base / "mysql", sql.stdout, certs)
        e.certs = certs
        e.slapd, e.mariadb = slapd, mariadb
        bs.configure(q, slapd, mariadb, vuser.pw_uid, vuser.pw_gid)
        yield e
    finally:
        for s in (slapd, mariadb):
            if s:
                s.stop()
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------- logins

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_login_every_scheme(env, backend, scheme):
    prog = BACKENDS[backend]
    r = env.checkpw(prog, f"u{scheme}@example.org", f"pw-{scheme}", argv=SHOW)
    assert r.returncode == 0, r.stderr
    home = env.domain_dir() / f"u{scheme}"
    assert r.stdout.decode().splitlines() == [
        str(env.vuser.pw_uid), str(env.vuser.pw_gid), str(home), f"USER=u{scheme}@example.org",
        f"HOME={home}", f"MAILDIR={home}/Maildir"]
    r = env.checkpw(prog, f"u{scheme}@example.org", f"pw-{scheme}x")
    assert (r.returncode, r.stdout) == (1, b"")


@pytest.mark.parametrize("backend", BACKENDS)
def test_login_forms(env, backend):
    prog = BACKENDS[backend]
    for login in ("usha512@example.org", "USHA512@Example.ORG", "usha512%example.org", "usha512@example.net"):
        assert env.checkpw(prog, login, "pw-sha512").returncode == 0, login
    assert env.checkpw(prog, "usha512", "pw-sha512").returncode == 1
    env.q.control("vdefaultdomain", "example.org\n")
    try:
        assert env.checkpw(prog, "usha512", "pw-sha512").returncode == 0
    finally:
        os.unlink(env.q.path / "control" / "vdefaultdomain")
    # unknown users, domains and aliases fail like wrong passwords
    for login in ("nobody@example.org", "usha512@unknown.example", "team@example.org"):
        r = env.checkpw(prog, login, "pw-sha512")
        assert (r.returncode, r.stdout) == (1, b""), login


INJECTIONS = [
    "*", "*@example.org", "*)(uid=*", "*)(mail=*", "uyescrypt@example.org)(|(mail=*",
    "*)(|(mail=*)@example.org", "uyescrypt*@example.org", "uyescrypt@*", "uyescrypt@example.org)(mail=*",
    "\\00", "uyescrypt\\00@example.org", "uyescrypt@example.org\\00", "\\2a@example.org",
    "' OR '1'='1", "uyescrypt@example.org' OR '1'='1", "' OR '1'='1'@example.org", "uyescrypt'-- @example.org",
    "\" OR \"1\"=\"1", "uyescrypt\"@example.org", "uyescrypt\\@example.org", "\\\\@example.org",
    "uyescrypt@example.org'; DROP TABLE users; --", "%", "_@example.org", "u%@example.org",
    "a" * 65 + "@example.org", "uyescrypt@" + "e" * 260, "x" * 400,
    b"\xff\xfe@example.org", b"uyescrypt\xc0\xaa@example.org",
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_injection_logs_in_nobody(env, backend):
    prog = BACKENDS[backend]
    for login in INJECTIONS:
        for pw in ("pw-yescrypt", "*", "' OR '1'='1"):
            r = env.checkpw(prog, login, pw)
            assert (r.returncode, r.stdout) == (1, b""), (login, pw, r.stderr)
    # and nothing changed
    assert env.checkpw(prog, "uyescrypt@example.org", "pw-yescrypt").returncode == 0
    assert b"users" in env.mariadb.sql(b"SHOW TABLES", db="mail")


def test_no_credentials_in_argv(env):
    """The servers' passwords come from the control files, never argv."""
    env.use("mysql")
    pids = []
    # a slow login (the program waits on fd 3) to look at /proc while it runs
    for prog in BACKENDS.values():
        p = subprocess.Popen(["/bin/sh", "-c", 'exec "$0" "$@" 3<&0', env.q.bin(prog), "true"],
                             stdin=subprocess.PIPE, env=env.q.env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        pids.append(p)
    time.sleep(0.2)
    for p in pids:
        cmd = open(f"/proc/{p.pid}/cmdline", "rb").read()
        environ = open(f"/proc/{p.pid}/environ", "rb").read()
        for secret in (bs.LDAP_ADMIN_PW, bs.SQL_PW):
            assert secret.encode() not in cmd and secret.encode() not in environ
        _, err = p.communicate(b"uyescrypt@example.org\0wrong\0\0", timeout=30)
        assert p.returncode == 1
        assert bs.LDAP_ADMIN_PW.encode() not in err and bs.SQL_PW.encode() not in err


# ---------------------------------------------------------------- delivery

@pytest.mark.parametrize("backend", BACKENDS)
def test_delivery(env, backend):
    env.use(backend)
    try:
        before = len(env.new("umd5"))
        r = env.deliver("umd5")
        assert r.returncode == 0, r.stderr
        r = env.deliver("UMD5", "Example.NET")
        assert r.returncode == 0, r.stderr
        files = env.new("umd5")
        assert len(files) == before + 2
        assert files[-1].read_bytes().endswith(b"\nDelivered-To: umd5@example.org\n" + MSG)
        assert files[-1].stat().st_uid == env.vuser.pw_uid
        # qmail extension addresses reach the base mailbox
        assert env.deliver("umd5-lists").returncode == 0
        # unknown user and domain bounce; over quota bounces
        r = env.deliver("nobody")
        assert r.returncode == 100 and b"no mailbox" in r.stderr
        r = env.deliver("x", "unknown.example")
        assert r.returncode == 100, r.stderr
        r = env.deliver("*")
        assert r.returncode == 100, r.stderr
        # an alias forwards through qmail-queue (as root: the single-user
        # home's queue belongs to root)
        queued = len(env.q.queue_files("todo")) + len(env.q.queue_files("mess"))
        r = env.deliver("team", as_root=True)
        assert r.returncode == 0, r.stderr
        assert len(env.q.queue_files("mess")) > 0 and len(env.q.queue_files("mess")) + len(env.q.queue_files("todo")) > queued
    finally:
        env.use("file")


def test_vdelivermail_execs_only_the_chosen_backend(env):
    """vdelivermail itself links neither libldap nor libmariadb."""
    libs = subprocess.run(["ldd", env.q.bin("vdelivermail")], capture_output=True, text=True).stdout
    assert "libldap" not in libs and "libmariadb" not in libs
    for prog, lib in (("vdelivermail-ldap", "libldap"), ("vdelivermail-mysql", "libmariadb"),
                      ("checkpassword-ldap", "libldap"), ("checkpassword-mysql", "libmariadb")):
        assert lib in subprocess.run(["ldd", env.q.bin(prog)], capture_output=True, text=True).stdout
    env.use("nosuch")
    try:
        r = env.deliver("umd5")
        assert r.returncode == 111 and b"userdirectory" in r.stderr
    finally:
        env.use("file")


# ---------------------------------------------------------------- failures are temporary

def _blackhole():
    """A listener that accepts connections and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


@pytest.mark.parametrize("backend", BACKENDS)
def test_misconfigured_or_slow_is_temporary(env, backend):
    prog = BACKENDS[backend]
    ctl = env.q.path / "control"
    key = "ldapserver" if backend == "ldap" else "sqlserver"
    saved = (ctl / key).read_text()
    env.use(backend)
    hole = _blackhole()
    try:
        port = hole.getsockname()[1]
        (ctl / key).write_text(f"ldap://127.0.0.1:{port}/\n" if backend == "ldap" else f"127.0.0.1:{port}\n")
        t = time.monotonic()
        r = env.checkpw(prog, "uyescrypt@example.org", "pw-yescrypt")
        assert r.returncode == 111, r.stderr
        assert time.monotonic() - t < 15
        assert env.deliver("umd5").returncode == 111
        if backend == "ldap":
            # a TLS handshake that never completes: libldap has no timeout
            # for it, our deadline (ldaptimeout based) ends it
            (ctl / key).write_text(f"ldaps://127.0.0.1:{port}/\n")
            (ctl / "ldaptimeout").write_text("1\n")
            t = time.monotonic()
            r = env.checkpw(prog, "uyescrypt@example.org", "pw-yescrypt")
            assert r.returncode == 111 and b"did not answer" in r.stderr, r.stderr
            assert time.monotonic() - t < 20
            assert env.deliver("umd5").returncode == 111
            (ctl / "ldaptimeout").write_text("2\n")
        (ctl / key).unlink()
        assert env.checkpw(prog, "uyescrypt@example.org", "pw-yescrypt").returncode == 111
        assert env.checkpw(prog, "nobody@example.org", "x").returncode == 111
        assert env.deliver("umd5").returncode == 111
        (ctl / key).write_text(saved)
        # wrong server password
        pwfile = ctl / ("ldappassword" if backend == "ldap" else "sqlpassword")
        good = pwfile.read_text()
        pwfile.write_text(good.replace("secret", "wrong"))
        r = env.checkpw(prog, "uyescrypt@example.org", "pw-yescrypt")
        assert r.returncode == 111 and b"wrong" not in r.stderr and b"secret" not in r.stderr
        assert env.deliver("umd5").returncode == 111
        # a credentials file everybody can read is refused
        pwfile.write_text(good)
        os.chmod(pwfile, 0o644)
        assert env.checkpw(prog, "uyescrypt@example.org", "pw-yescrypt").returncode == 111
        os.chmod(pwfile, 0o600)
        assert env.checkpw(prog, "uyescrypt@example.org", "pw-yescrypt").returncode == 0
    finally:
        hole.close()
        (ctl / key).write_text(saved)
        (ctl / "ldaptimeout").write_text("2\n")
        env.use("file")


@pytest.mark.parametrize("backend", BACKENDS)
def test_server_stopped_mid_run(env, backend):
    prog = BACKENDS[backend]
    server = env.slapd if backend == "ldap" else env.mariadb
    env.use(backend)
    try:
        assert env.checkpw(prog, "usha256@example.org", "pw-sha256").returncode == 0
        before = len(env.new("usha256"))
        server.stop()
        for login, pw in (("usha256@example.org", "pw-sha256"), ("usha256@example.org", "wrong"),
                          ("nobody@example.org", "x")):
            r = env.checkpw(prog, login, pw)
            assert (r.returncode, r.stdout) == (111, b""), (login, r.stderr)
        r = env.deliver("usha256")
        assert r.returncode == 111, r.stderr
        assert env.deliver("nobody").returncode == 111   # no bounce while the server is away
        assert len(env.new("usha256")) == before
        server.start()
        assert env.checkpw(prog, "usha256@example.org", "pw-sha256").returncode == 0
        assert env.checkpw(prog, "usha256@example.org", "wrong").returncode == 1
        assert env.deliver("usha256").returncode == 0
        assert len(env.new("usha256")) == before + 1
    finally:
        if server.proc is None:
            server.start()
        env.use("file")


@pytest.mark.parametrize("mode", ["ldaps", "starttls"])
def test_ldap_over_tls(env, mode):
    """ldaps:// and StartTLS, the server's certificate checked against
    control/ldapcacert: right CA logs in and delivers, a CA that did not
    sign the certificate is a temporary failure (so TLS really ran)."""
    ctl = env.q.path / "control"
    saved = (ctl / "ldapserver").read_text()
    env.use("ldap")
    try:
        if mode == "ldaps":
            (ctl / "ldapserver").write_text(env.slapd.tls_uri + "\n")
        else:
            (ctl / "ldaptls").write_text("starttls\n")
        (ctl / "ldapcacert").write_text(f"{env.certs}/ca.pem\n")
        r = env.checkpw("checkpassword-ldap", "ubcrypt@example.org", "pw-bcrypt")
        assert r.returncode == 0, r.stderr
        assert env.checkpw("checkpassword-ldap", "ubcrypt@example.org", "wrong").returncode == 1
        assert env.deliver("ubcrypt").returncode == 0
        (ctl / "ldapcacert").write_text(f"{env.certs}/otherca.pem\n")
        r = env.checkpw("checkpassword-ldap", "ubcrypt@example.org", "pw-bcrypt")
        assert r.returncode == 111, r.stderr
        assert env.deliver("ubcrypt").returncode == 111
    finally:
        (ctl / "ldapserver").write_text(saved)
        for f in ("ldaptls", "ldapcacert"):
            (ctl / f).unlink(missing_ok=True)
        env.use("file")


def test_mysql_over_tcp_with_tls(env):
    """TCP to 127.0.0.1, where the account requires TLS: sqltls verify with
    the right CA works; no TLS is refused by the server and a wrong CA by
    us, both temporary."""
    ctl = env.q.path / "control"
    saved = (ctl / "sqlserver").read_text()
    env.use("mysql")
    try:
        (ctl / "sqlserver").write_text(f"127.0.0.1:{env.mariadb.port}\n")
        (ctl / "sqltls").write_text("verify\n")
        (ctl / "sqlcacert").write_text(f"{env.certs}/ca.pem\n")
        r = env.checkpw("checkpassword-mysql", "ubcrypt@example.org", "pw-bcrypt")
        assert r.returncode == 0, r.stderr
        assert env.checkpw("checkpassword-mysql", "ubcrypt@example.org", "wrong").returncode == 1
        assert env.deliver("ubcrypt").returncode == 0
        (ctl / "sqlcacert").write_text(f"{env.certs}/otherca.pem\n")
        assert env.checkpw("checkpassword-mysql", "ubcrypt@example.org", "pw-bcrypt").returncode == 111
        assert env.deliver("ubcrypt").returncode == 111
        (ctl / "sqltls").write_text("none\n")
        r = env.checkpw("checkpassword-mysql", "ubcrypt@example.org", "pw-bcrypt")
        assert r.returncode == 111, r.stderr
        assert env.deliver("ubcrypt").returncode == 111
    finally:
        (ctl / "sqlserver").write_text(saved)
        for f in ("sqltls", "sqlcacert"):
            (ctl / f).unlink(missing_ok=True)
        env.use("file")


def test_vexport_output_imports_exactly(env):
    """The exported SQL and LDIF hold every account, and values that could
    break out of their syntax are encoded."""
    rows = env.mariadb.sql(b"SELECT local_part FROM users ORDER BY local_part", db="mail").decode().split()
    assert rows == ["local_part", "postmaster", "small"] + sorted(f"u{s}" for s in SCHEMES)
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", env.slapd.uri, "-b", bs.BASE_DN, "(objectClass=sqMailAccount)", "mail"],
                         capture_output=True, text=True, timeout=30).stdout
    assert out.count("mail: ") == len(SCHEMES) + 3   # + postmaster, small, team
    # a comment with quotes, a backslash and non-ASCII arrives intact in both
    got = env.mariadb.sql(b"SELECT HEX(gecos) FROM users WHERE local_part = 'small'", db="mail").split()[1]
    assert bytes.fromhex(got.decode()) == GECOS.encode()
    out = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", env.slapd.uri, "-b", bs.BASE_DN,
                          "(mail=small@example.org)", "description", "sqMailQuota"], capture_output=True, timeout=30).stdout
    import base64
    line = [l for l in out.split(b"\n") if l.startswith(b"description:: ")][0]
    assert base64.b64decode(line.split(b" ", 1)[1]) == GECOS.encode()
    assert b"sqMailQuota: 1000S" in out


def test_cn_config_schema_and_example_load(tmp_path):
    """schemas/swift-qmail.ldif (cn=config form) loads beside the stock
    schemas, and schemas/example.ldif is valid against it."""
    conf = ["dn: cn=config\nobjectClass: olcGlobal\ncn: config\n",
            "dn: cn=module{0},cn=config\nobjectClass: olcModuleList\ncn: module{0}\n"
            "olcModulePath: /usr/lib/ldap\nolcModuleLoad: back_mdb\n",
            "dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n"]
    for s in ("core", "cosine", "inetorgperson", "nis"):
        conf.append(pathlib.Path(f"/etc/ldap/schema/{s}.ldif").read_text())
    conf.append((bs.SCHEMAS / "swift-qmail.ldif").read_text())
    (tmp_path / "db").mkdir()
    conf.append(f"dn: olcDatabase={{1}}mdb,cn=config\nobjectClass: olcDatabaseConfig\nobjectClass: olcMdbConfig\n"
                f"olcDatabase: {{1}}mdb\nolcSuffix: dc=example,dc=org\nolcDbDirectory: {tmp_path}/db\n"
                f"olcDbIndex: mail,sqMailAlias,sqDomainName,sqDomainAlias eq\n")
    (tmp_path / "config.ldif").write_text("\n".join(c.rstrip("\n") + "\n" for c in conf))
    (tmp_path / "d").mkdir()
    r = subprocess.run([bs.SLAPADD, "-n0", "-F", str(tmp_path / "d"), "-l", str(tmp_path / "config.ldif")],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([bs.SLAPADD, "-F", str(tmp_path / "d"), "-l", str(bs.SCHEMAS / "example.ldif")],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # an entry the schema forbids is refused (the check is real)
    (tmp_path / "bad.ldif").write_text("dn: uid=y,ou=users,dc=example,dc=org\nobjectClass: account\n"
                                       "objectClass: sqMailAccount\nuid: y\nsqMailQuota: 1S\n")
    r = subprocess.run([bs.SLAPADD, "-F", str(tmp_path / "d"), "-l", str(tmp_path / "bad.ldif")],
                       capture_output=True, timeout=60)
    assert r.returncode != 0
