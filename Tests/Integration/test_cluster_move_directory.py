"""vmoveuser where the home hosts are in LDAP or MySQL (issue 22): hosts A
and B (cluster_helpers) read one directory, each through its own replica
(a syncrepl consumer; the MariaDB replica), and write to the provider or
primary. The directory names one domain directory for both hosts, as a
real cluster's does; here both hosts share one file system, so each runs
its qmail-send and vmoveuser in a mount namespace of its own where its
own directory is bound on that path (unshare -m), as if on two machines.
alice is moved from A to B while mail for her is queued on both hosts
(and with a lagging replica, and with the receiver's answer lost):
nothing lost, nothing twice, no bounce; the provider names B and so do
the replicas; the mark was A's own DOMAINDIR/vmoving, gone afterwards."""
import collections
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

import backend_servers as bs
from cluster_helpers import HOSTS, Host, no_failures, vuser  # noqa: F401 (fixture)
from conftest import wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: makes system accounts, mount namespaces, switches uid"),
    pytest.mark.skipif(bool(bs.missing_binaries()), reason="slapd/mariadbd not installed"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="no unshare(1)"),
]

ADMIN_PW = "sql-admin-Mv5"
LOAD_ID = re.compile(rb"^X-Load-Id: (\S+)$", re.M)


def in_own_mount(source, target, argv):
    """argv run with `source` bound on `target`, seen by it and its children only."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", str(source), str(target), *map(str, argv)]


class MountedHost(Host):
    """A cluster_helpers host whose deliveries see `mail` on the shared path."""

    def __init__(self, base, name, vuser, mail, shared):
        super().__init__(base, name, vuser)
        self.mail, self.shared = mail, shared

    def start_send(self):
        self.log_fd = open(self.logfile, "ab")
        self.send = subprocess.Popen(in_own_mount(self.mail, self.shared, [self.q.path / "rc"]), cwd="/",
                                     stdin=subprocess.DEVNULL, stdout=self.log_fd, stderr=subprocess.STDOUT,
                                     env=self.q.env)
        wait_for(lambda: "status: local" in self.log(), 20, f"qmail-send on {self.name}")

    def maildir(self):
        md = self.mail / "alice" / "Maildir"
        return [p for d in ("new", "cur") if (md / d).is_dir() for p in (md / d).iterdir()]


@pytest.fixture(scope="module")
def servers(vuser):
    """An LDAP provider with two syncrepl consumers (A's and B's) and a
    MariaDB primary with a binlog replica, all holding: example.org whose
    directory is the shared path, alice homed on A."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-mvdir-", dir="/var/tmp"))
    base.chmod(0o755)
    shared = base / "mail"
    shared.mkdir()
    started = []
    try:
        q = Host(base / "export", HOSTS[0], vuser)
        q.admin("vadddomain", "-u", vuser.pw_name, "example.org", password="pm")
        q.admin("vadduser", "-H", HOSTS[0], "alice@example.org", password="pw")
        domdir = str(q.q.path / "domains" / "example.org")
        ldif = q.q.run("vexport", "--ldif", bs.BASE_DN).stdout.replace(domdir.encode(), str(shared).encode())
        sql = q.q.run("vexport", "--sql").stdout.replace(domdir.encode(), str(shared).encode())
        assert f"sqDomainDirectory: {shared}\n".encode() in ldif and str(shared).encode() in sql
        certs = bs.make_certs(base / "certs")
        s = type("Servers", (), {})()
        s.base, s.shared = base, shared
        s.provider = bs.Slapd(base / "provider", ldif, certs, provider=True)
        started.append(s.provider)
        s.consumers = []
        for n in ("ca", "cb"):
            s.consumers.append(bs.Slapd(base / n, b"", certs, consumer_of=s.provider))
            started.append(s.consumers[-1])
        s.primary = bs.Mariadbd(base / "primary", sql, certs, args=["--server-id=1", "--log-bin=binlog"])
        started.append(s.primary)
        s.replica = bs.Mariadbd(base / "replica", sql, certs, args=["--server-id=2", "--skip-slave-start"])
        started.append(s.replica)
        s.replica.replicate_from(s.primary)
        for c in s.consumers:
            wait_for(lambda: home_in_ldap(c) == HOSTS[0], 30, "the consumer's first refresh")
        yield s
    finally:
        for srv in started:
            srv.stop()
        shutil.rmtree(base, ignore_errors=True)


def home_in_ldap(slapd):
    r = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "nettimeout=2", "-H", slapd.uri, "-D", bs.LDAP_ADMIN,
                        "-w", bs.LDAP_ADMIN_PW, "-b", bs.BASE_DN, "(mail=alice@example.org)", "sqMailHost"],
                       capture_output=True, timeout=30)
    m = re.search(rb"^sqMailHost: (\S+)$", r.stdout, re.M)
    return m.group(1).decode() if m else None


def home_in_sql(mariadb):
    out = mariadb.sql(b"SELECT mail_host FROM users WHERE local_part = 'alice'", db="mail").split()
    return out[-1].decode() if len(out) > 1 else None


@pytest.fixture
def cluster(servers, vuser, request):
    """Hosts A and B reading the directory of `backend` (the test's
    parameter) through their own replica, alice's mail for each in
    servers.base/BACKEND-X-mail."""
    backend = request.param
    s = servers
    if backend == "ldap":
        s.provider_home = lambda: home_in_ldap(s.provider)
        s.replica_homes = lambda: [home_in_ldap(c) for c in s.consumers]
    else:
        s.provider_home = lambda: home_in_sql(s.primary)
        s.replica_homes = lambda: [home_in_sql(s.replica)]
    assert s.provider_home() == HOSTS[0]
    wait_for(lambda: s.replica_homes() == [HOSTS[0]] * len(s.replica_homes()), 30, "the replicas naming A")
    base = pathlib.Path(tempfile.mkdtemp(prefix=backend, dir=s.base))
    hosts = []
    try:
        for i, name in enumerate(HOSTS):
            mail = base / f"{name[:5]}-mail"
            (mail / "alice" / "Maildir").mkdir(parents=True)
            for sub in ("new", "cur", "tmp"):
                (mail / "alice" / "Maildir" / sub).mkdir()
            for p in [mail, *mail.rglob("*")]:
                os.chown(p, vuser.pw_uid, vuser.pw_gid)
            h = MountedHost(base / name[:5], name, vuser, mail, s.shared)
            hosts.append(h)
            # the file store names the domain for qmail-send (virtualdomains,
            # users/assign); the mailboxes come from the directory server
            h.admin("vadddomain", "-u", vuser.pw_name, "example.org", password="pm")
            bs.configure(h.q, s.provider, s.primary, vuser.pw_uid, vuser.pw_gid)
            h.q.control("userdirectory", backend + "\n")
            h.q.control("ldapserver", s.consumers[i].uri + "\n")
            h.q.control("ldapprovider", s.provider.uri + "\n")
            h.q.control("sqlserver", s.replica.socket + "\n")
            h.q.control("sqlprimary", s.primary.socket + "\n")
            h.q.control("clusterhost", name + "\n")
            h.q.control("clustersecret", "move-secret-Pq2\n")
        for h in hosts:
            h.q.control("clusterhosts", "".join(f"{x.name}:127.0.0.1:{x.port}\n" for x in hosts))
        if backend == "mysql":
            # vmoveuser-mysql writes as the account that may change mail_host
            bs.grant_sql_admin(s.primary, hosts[0].q, ADMIN_PW)
            shutil.copy2(hosts[0].q.path / "control" / "sqladminpassword", hosts[1].q.path / "control")
        for h in hosts:
            h.start_qmtpd()
            h.start_send()
        yield hosts
    finally:
        for h in hosts:
            h.stop()
        if backend == "mysql":
            s.primary.sql(b"DROP USER IF EXISTS 'mailadmin'@'localhost'")
            s.primary.sql(b"UPDATE users SET mail_host = 'hosta.example.net' WHERE local_part = 'alice'", db="mail")
        else:
            ldap_set_home(s.provider, "hosta.example.net")


def ldap_set_home(slapd, host):
    r = subprocess.run(["ldapmodify", "-x", "-H", slapd.uri, "-D", bs.LDAP_ADMIN, "-w", bs.LDAP_ADMIN_PW],
                       input=f"dn: mail=alice@example.org,ou=users,{bs.BASE_DN}\nchangetype: modify\n"
                             f"replace: sqMailHost\nsqMailHost: {host}\n".encode(), capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr


def inject(h, ident):
    msg = f"From: sender@remote.example\nX-Load-Id: {ident}\nSubject: {ident}\n\n{ident}\n".encode()
    r = h.q.run("qmail-inject", "-fsender@remote.example", "alice@example.org", input=msg)
    assert r.returncode == 0, r.stderr


def held_on(h, receiver):
    """A receiver command that first has one message for alice deferred on
    h: it runs once vmoveuser has written its mark, so the message is
    injected on h and waits there ("being_moved") before the copy starts,
    whatever the timing of the load around it."""
    script = h.q.path / "held-receiver"
    script.write_text("#!/bin/sh\n"
                      "printf 'From: sender@remote.example\\nX-Load-Id: held\\nSubject: held\\n\\nheld\\n' |\n"
                      f"  env QMAIL_HOME={shlex.quote(str(h.q.path))} {shlex.quote(h.q.bin('qmail-inject'))}"
                      " -fsender@remote.example alice@example.org || exit 111\n"
                      "i=0\n"
                      f"until grep -q being_moved {shlex.quote(str(h.logfile))}; do\n"
                      "  i=$((i + 1)); [ $i -gt 600 ] && { echo 'held-receiver: no deferral on the sender' >&2; exit 111; }\n"
                      "  sleep 0.05\n"
                      "done\n"
                      'exec "$@"\n')
    script.chmod(0o755)
    return shlex.join([str(script), *receiver])


def checkpassword(h, s):
    """h's checkpassword-mysql for alice's POP3 login (in h's mount namespace)."""
    argv = in_own_mount(h.mail, s.shared, ["sh", "-c", 'exec "$0" true 3<&0 </dev/null', h.q.bin("checkpassword-mysql")])
    return subprocess.run(argv, input=b"alice@example.org\0pw\0\0", env=h.q.env, capture_output=True,
                          timeout=60).returncode


def ids(h):
    out = []
    for p in h.maildir():
        m = LOAD_ID.search(p.read_bytes())
        out.append(m.group(1).decode() if m else "?" + p.name)
    return out


@pytest.mark.parametrize("cluster", ["ldap", "mysql"], indirect=True)
def test_move_with_home_hosts_in_a_directory_server(cluster, servers):
    """alice (LDAP sqMailHost / users.mail_host: A) moved to B by vmoveuser
    (which execs vmoveuser-ldap/-mysql) while mail is queued for her on A
    and B: every message in B's Maildir once, none left on A; the
    provider/primary and every replica name B; A's mark is gone; no
    bounce."""
    a, b = cluster
    s = servers
    for i in range(5):
        inject(a, f"old-{i}")
    wait_for(lambda: len(a.maildir()) == 5, 30, lambda: "A's first mail\n" + a.log())
    sent, errors = [], []
    done = threading.Event()

    def load():
        i = 0
        try:
            while not done.is_set() and i < 400:
                inject(a if i % 2 else b, f"load-{i}")
                sent.append(f"load-{i}")
                i += 1
                time.sleep(0.02)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    try:
        wait_for(lambda: len(sent) >= 20 or errors, 60, "the first load")
        # B's side, as `ssh hostb vmoveuser -R` would run it there
        receiver = in_own_mount(b.mail, s.shared, ["env", f"QMAIL_HOME={b.q.path}", b.q.bin("vmoveuser"), "-R"])
        r = subprocess.run(in_own_mount(a.mail, s.shared, [a.q.bin("vmoveuser"), "-v", held_on(a, receiver),
                                                            "alice@example.org", HOSTS[1]]),
                           env=a.q.env, capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, r.stderr
        n = len(sent)
        wait_for(lambda: len(sent) >= n + 20 or errors, 60, "load after the move")
    finally:
        done.set()
        t.join(60)
    assert not errors, errors
    assert "copied to hostb.example.net" in r.stderr, r.stderr
    want = {f"old-{i}" for i in range(5)} | set(sent) | {"held"}

    def settled():
        if len(b.maildir()) >= len(want) and a.queued() == 0 and b.queued() == 0:
            return True
        a.retry_now()
        b.retry_now()
        return False
    wait_for(settled, 120, lambda: f"{len(b.maildir())} of {len(want)} on B\n" + a.log() + b.log(), step=0.5)
    time.sleep(1.0)
    got = collections.Counter(ids(b))
    assert set(got) == want and max(got.values()) == 1, (sorted(set(got) ^ want)[:10], [k for k, v in got.items() if v > 1])
    assert not (a.mail / "alice").exists()
    assert [p.name for p in a.mail.iterdir() if p.name.startswith("alice:")][0].startswith("alice:moved-")
    assert "alice" not in ((a.mail / "vmoving").read_text() if (a.mail / "vmoving").exists() else "")
    assert s.provider_home() == HOSTS[1]
    wait_for(lambda: s.replica_homes() == [HOSTS[1]] * len(s.replica_homes()), 30, "the replicas")
    assert "being_moved" in a.log(), a.log()
    no_failures(a, b)
    # A rerun finds the move done.
    r = subprocess.run(in_own_mount(a.mail, s.shared, [a.q.bin("vmoveuser"), "-v", "false", "alice@example.org", HOSTS[1]]),
                       env=a.q.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "lives on hostb.example.net already" in r.stderr, r.stderr


@pytest.mark.parametrize("cluster", ["mysql"], indirect=True)
def test_a_lagging_replica_keeps_the_mark_until_it_has_the_change(cluster, servers):
    """A's replica stopped: the copy is made and the primary names B, but
    the directory A reads still says A, so vmoveuser -w 3 exits 111 and
    the mark stays; mail sent meanwhile through A and B waits on A (never
    into a Maildir there). The replica resumed, that mail goes to B even
    before the rerun, which then drops the mark and sets the old copy
    aside. Every message on B once, no bounce."""
    a, b = cluster
    s = servers
    for i in range(2):
        inject(a, f"old-{i}")
    wait_for(lambda: len(a.maildir()) == 2, 30, lambda: "A's first mail\n" + a.log())
    s.replica.sql(b"STOP SLAVE")
    try:
        receiver = shlex.join(in_own_mount(b.mail, s.shared, ["env", f"QMAIL_HOME={b.q.path}", b.q.bin("vmoveuser"), "-R"]))
        move = in_own_mount(a.mail, s.shared, [a.q.bin("vmoveuser"), "-w", "3", "-v", receiver, "alice@example.org", HOSTS[1]])
        r = subprocess.run(move, env=a.q.env, capture_output=True, text=True, timeout=180)
        assert r.returncode == 111, r.stderr
        assert "does not name hostb.example.net yet" in r.stderr, r.stderr
        assert s.provider_home() == HOSTS[1] and s.replica_homes() == [HOSTS[0]]
        assert (a.mail / "vmoving").read_text() == f"alice:{HOSTS[1]}\n"
        inject(a, "lagging-via-a")
        inject(b, "lagging-via-b")
        wait_for(lambda: a.log().count("being_moved") >= 2, 30, lambda: "A's deferrals\n" + a.log() + b.log())
        assert not (a.mail / "alice").exists() and sorted(ids(b)) == ["old-0", "old-1"]
        assert checkpassword(a, s) == 111   # a POP3 login waits too
    finally:
        s.replica.sql(b"START SLAVE")
    wait_for(lambda: s.replica_homes() == [HOSTS[1]], 30, "the replica catching up")

    def arrived():
        a.retry_now()
        return len(b.maildir()) >= 4 and a.queued() == 0 and b.queued() == 0
    wait_for(arrived, 60, lambda: "the waiting mail on B\n" + a.log() + b.log(), step=0.5)
    assert (a.mail / "vmoving").exists() and (a.mail / "alice:moving").is_dir()
    assert checkpassword(a, s) == 0   # the mark no longer counts: the directory names B
    r = subprocess.run(move, env=a.q.env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert "copied" not in r.stderr and "kept as" in r.stderr, r.stderr
    assert "alice" not in (a.mail / "vmoving").read_text()
    assert sorted(ids(b)) == ["lagging-via-a", "lagging-via-b", "old-0", "old-1"]
    no_failures(a, b)


@pytest.mark.parametrize("cluster", ["ldap"], indirect=True)
def test_answer_lost_after_the_switch(cluster, servers):
    """The receiver installed the copy and wrote B on the provider, but its
    answer never came: A exits 111 and keeps its mark, yet the mail goes
    to B as soon as A's replica names it; the rerun sends nothing again,
    drops the mark and sets the old copy aside."""
    a, b = cluster
    s = servers
    for i in range(3):
        inject(a, f"old-{i}")
    wait_for(lambda: len(a.maildir()) == 3, 30, lambda: "A's first mail\n" + a.log())
    receiver = shlex.join(in_own_mount(b.mail, s.shared, ["env", f"QMAIL_HOME={b.q.path}", b.q.bin("vmoveuser"), "-R"]))
    lost = shlex.join(["sh", "-c", receiver + ' "$@" >/dev/null; exit 1', "sh"])   # its answer thrown away
    r = subprocess.run(in_own_mount(a.mail, s.shared, [a.q.bin("vmoveuser"), "-v", lost, "alice@example.org", HOSTS[1]]),
                       env=a.q.env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 111 and "not confirmed" in r.stderr, r.stderr
    assert s.provider_home() == HOSTS[1] and (a.mail / "vmoving").read_text() == f"alice:{HOSTS[1]}\n"
    wait_for(lambda: s.replica_homes() == [HOSTS[1]] * 2, 30, "the replicas")
    inject(a, "after-the-switch")

    def arrived():
        a.retry_now()
        return len(b.maildir()) >= 4 and a.queued() == 0
    wait_for(arrived, 60, lambda: "the new mail on B\n" + a.log() + b.log(), step=0.5)
    r = subprocess.run(in_own_mount(a.mail, s.shared, [a.q.bin("vmoveuser"), "-r", "-v", "false", "alice@example.org",
                                                        HOSTS[1]]), env=a.q.env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "copied" not in r.stderr, r.stderr
    assert "alice" not in (a.mail / "vmoving").read_text() and not [p for p in a.mail.iterdir() if p.name.startswith("alice")]
    assert sorted(ids(b)) == ["after-the-switch", "old-0", "old-1", "old-2"]
    no_failures(a, b)
