"""Private slapd and mariadbd for the LDAP and SQL backend tests and the
benchmark: each started from its own config/datadir under a scratch
directory, on a loopback port / unix socket, and stopped again. No system
daemon is touched. The data is the file backend of a qmail home exported
with vexport, so all three backends hold the same users."""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
MARIADB = shutil.which("mariadb") or "/usr/bin/mariadb"
SCHEMAS = pathlib.Path(__file__).resolve().parents[2] / "schemas"
BASE_DN = "dc=example,dc=org"
LDAP_ADMIN = "cn=admin," + BASE_DN
LDAP_ADMIN_PW = "ldap-secret-Xq7"
SQL_USER = "mailer"
SQL_PW = "sql-secret-Zr4"


def make_certs(root: pathlib.Path, name="127.0.0.1", san="IP:127.0.0.1"):
    """A private CA and a server certificate for 127.0.0.1 (IP SAN; or
    `name` and `san`), and a second CA that did not sign it (to show
    verification happens)."""
    root.mkdir(parents=True, exist_ok=True)

    def ossl(*args):
        r = subprocess.run(["openssl", *args], capture_output=True, timeout=60, cwd=root)
        assert r.returncode == 0, r.stderr

    for ca in ("ca", "otherca"):
        ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
             "-days", "2", "-subj", f"/CN=swift-qmail test {ca}")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", f"/CN={name}")
    (root / "ext.cnf").write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                                  "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    for f in root.iterdir():
        f.chmod(0o644)
    return root


def missing_binaries():
    need = [SLAPD, SLAPADD, MARIADBD, INSTALL_DB, MARIADB, "/usr/lib/ldap/back_mdb.so"]
    return [p for p in need if not os.path.exists(p)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(netns, addr, port):
    """A TCP connection to addr:port, from inside netns when there is one."""
    if netns:
        return netns.connect(addr, port, timeout=0.2)
    return socket.create_connection((addr, port), timeout=0.2)


def wait_for(check, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return False


class Slapd:
    """provider: also a syncrepl provider (the syncprov overlay).
    consumer_of: a syncrepl consumer of that slapd, starting empty;
    refresh_every: its refreshOnly interval ("dd:hh:mm:ss"; a long one
    makes a replica that lags), else refreshAndPersist (follows at once).
    netns: a cluster_net.Netns to run in, listening on its address `addr`
    at LDAP's own ports (the namespace is the test's own), not 127.0.0.1."""

    def __init__(self, root: pathlib.Path, ldif: bytes, certs: pathlib.Path, provider=False,
                 consumer_of=None, refresh_every=None, netns=None, addr="127.0.0.1"):
        self.root = root
        self.netns = netns
        self.addr = addr
        self.port, self.tls_port = (389, 636) if netns else (free_port(), free_port())
        self.uri = f"ldap://{addr}:{self.port}/"
        self.tls_uri = f"ldaps://{addr}:{self.tls_port}/"
        self.proc = None
        (root / "db").mkdir(parents=True)
        replication = ""
        if provider:
            replication = "index entryCSN,entryUUID eq\noverlay syncprov\n"
        if consumer_of:
            kind = f"type=refreshOnly interval={refresh_every}" if refresh_every else "type=refreshAndPersist"
            replication = (f"index entryCSN,entryUUID eq\nsyncrepl rid=001 provider={consumer_of.uri} {kind}\n"
                           f"  retry=\"1 +\" searchbase=\"{BASE_DN}\" bindmethod=simple\n"
                           f"  binddn=\"{LDAP_ADMIN}\" credentials={LDAP_ADMIN_PW}\n")
        (root / "slapd.conf").write_text(f"""
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include {SCHEMAS}/swift-qmail.schema
pidfile {root}/slapd.pid
TLSCACertificateFile {certs}/ca.pem
TLSCertificateFile {certs}/server.pem
TLSCertificateKeyFile {certs}/server.key
modulepath /usr/lib/ldap
moduleload back_mdb
{"moduleload syncprov" if provider else ""}
database mdb
suffix "{BASE_DN}"
rootdn "{LDAP_ADMIN}"
rootpw {LDAP_ADMIN_PW}
directory {root}/db
maxsize 104857600
index objectClass eq
index mail,sqMailAlias,sqDomainName,sqDomainAlias eq
{replication}""")
        if consumer_of:
            self.start()
            return
        top = (f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n").encode()
        (root / "data.ldif").write_bytes(top + ldif)
        r = subprocess.run([SLAPADD, "-q", "-f", str(root / "slapd.conf"), "-l", str(root / "data.ldif")],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        self.start()

    def start(self):
        argv = [SLAPD, "-f", str(self.root / "slapd.conf"), "-h", self.uri + " " + self.tls_uri, "-d", "0"]
        self.proc = subprocess.Popen(self.netns.argv(argv) if self.netns else argv,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                for port in (self.port, self.tls_port):
                    connect(self.netns, self.addr, port).close()
                return True
            except OSError:
                return False
        assert wait_for(up), "slapd did not start"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Mariadbd:
    """args: more server options (server-id, log-bin for replication).
    netns: a cluster_net.Netns to run in, listening on its address `addr`
    at port 3306, where every address of the test's network may log in
    over TCP (without TLS); else 127.0.0.1 and a free port, TLS required.
    The unix socket serves root (and the programs) from anywhere."""

    def __init__(self, root: pathlib.Path, sql: bytes, certs: pathlib.Path, args=(), netns=None, addr="127.0.0.1"):
        self.root = root
        self.certs = certs
        self.args = list(args)
        self.netns = netns
        self.addr = addr
        self.port = 3306 if netns else free_port()
        self.datadir = root / "data"
        # The socket sits in a directory every mailbox account can reach.
        self.socket = str(root / "mysql.sock")
        self.proc = None
        r = subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={self.datadir}", "--user=root",
                            "--auth-root-authentication-method=normal", "--skip-test-db"],
                           capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr
        self.start()
        self.sql(open(SCHEMAS / "mysql.sql", "rb").read(), db="mail", create=True)
        self.sql(sql, db="mail")
        # over the socket: a plain account; over TCP: the same name, TLS required
        # (in a namespace: from the test's network, TLS not required)
        tcp = "'%'" if netns else "'127.0.0.1'"
        self.sql(f"CREATE USER '{SQL_USER}'@'localhost' IDENTIFIED BY '{SQL_PW}';"
                 f"GRANT SELECT ON mail.* TO '{SQL_USER}'@'localhost';"
                 f"CREATE USER '{SQL_USER}'@{tcp} IDENTIFIED BY '{SQL_PW}'{'' if netns else ' REQUIRE SSL'};"
                 f"GRANT SELECT ON mail.* TO '{SQL_USER}'@{tcp};".encode())

    def sql(self, text: bytes, db=None, create=False):
        if create:
            self.sql(f"CREATE DATABASE IF NOT EXISTS {db};".encode())
        argv = [MARIADB, "--no-defaults", "-S", self.socket, "-u", "root"] + ([db] if db else [])
        r = subprocess.run(argv, input=text, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def start(self):
        argv = [MARIADBD, "--no-defaults", "--user=root", f"--datadir={self.datadir}",
                f"--socket={self.socket}", f"--port={self.port}",
                f"--bind-address={self.addr}", "--skip-name-resolve",
                f"--ssl-ca={self.certs}/ca.pem", f"--ssl-cert={self.certs}/server.pem",
                f"--ssl-key={self.certs}/server.key",
                f"--pid-file={self.root}/mariadbd.pid", "--innodb-buffer-pool-size=32M",
                f"--log-error={self.root}/error.log", *self.args]
        self.proc = subprocess.Popen(self.netns.argv(argv) if self.netns else argv,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("mariadbd exited: " + (self.root / "error.log").read_text()[-2000:])
            r = subprocess.run([MARIADB, "--no-defaults", "-S", self.socket, "-u", "root", "-e", "SELECT 1"],
                               capture_output=True, timeout=10)
            return r.returncode == 0
        assert wait_for(up, 30), "mariadbd did not start"

    def replicate_from(self, primary):
        """Makes this server a replica of `primary` (a binlog one), from
        the primary's position now on: both were loaded with the same data."""
        peer = "%" if primary.netns else "127.0.0.1"
        primary.sql(f"CREATE USER IF NOT EXISTS 'repl'@'{peer}' IDENTIFIED BY 'repl-Kx9';"
                    f"GRANT REPLICATION SLAVE ON *.* TO 'repl'@'{peer}';".encode())
        file, pos = primary.sql(b"SHOW MASTER STATUS").decode().splitlines()[1].split("\t")[:2]
        self.sql(f"CHANGE MASTER TO MASTER_HOST='{primary.addr}', MASTER_PORT={primary.port}, MASTER_USER='repl', "
                 f"MASTER_PASSWORD='repl-Kx9', MASTER_LOG_FILE='{file}', MASTER_LOG_POS={pos}, "
                 f"MASTER_CONNECT_RETRY=1; START SLAVE;".encode())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def grant_sql_admin(mariadb, q, password):
    """An SQL account that may only read the mail tables and change
    users.filter_policy and users.mail_host (what vfilterpolicy-mysql and
    vmoveuser-mysql write), on `mariadb`,
    and its login in q's control/sqladminpassword (0600)."""
    mariadb.sql(f"CREATE USER 'mailadmin'@'localhost' IDENTIFIED BY '{password}';"
                "GRANT SELECT ON mail.* TO 'mailadmin'@'localhost';"
                "GRANT UPDATE (filter_policy, mail_host) ON mail.users TO 'mailadmin'@'localhost';".encode())
    p = q.path / "control" / "sqladminpassword"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, f"mailadmin\n{password}\n".encode())
    os.close(fd)


def configure(q, slapd, mariadb, owner_uid, owner_gid):
    """control files for both backends (the logins by secret_control)."""
    q.control("ldapserver", slapd.uri + "\n")
    q.control("ldapbasedn", BASE_DN + "\n")
    q.control("ldaptimeout", "2\n")
    q.control("sqlserver", mariadb.socket + "\n")
    q.control("sqldatabase", "mail\n")
    q.control("sqltimeout", "2\n")
    for name, text in (("ldappassword", f"{LDAP_ADMIN}\n{LDAP_ADMIN_PW}\n"), ("sqlpassword", f"{SQL_USER}\n{SQL_PW}\n")):
        secret_control(q, name, text, owner_uid, owner_gid)


def secret_control(q, name, text, owner_uid, owner_gid):
    """control/name holding a login: mode 600, owned by the account
    vdelivermail runs as (root reads it anyway)."""
    p = q.path / "control" / name
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, text.encode())
    os.close(fd)
    os.chmod(p, 0o600)
    os.chown(p, owner_uid, owner_gid)
