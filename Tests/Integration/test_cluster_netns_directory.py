"""Home-host clustering (issue 22) over a replicated user directory: the
three hosts of cluster_net.py (network namespaces on a bridge) read no
file store but a real directory, once OpenLDAP and once MariaDB. The
provider (slapd with syncprov; a MariaDB primary writing a binlog) runs
in a namespace of its own on the bridge (10.77.0.50). Each host runs a
replica of it on its own address (a syncrepl consumer; a MariaDB replica)
and reads that first (control/ldapserver or sqlserver: its own replica,
then the other hosts' in turn), with control/ldapprovider or sqlprimary
naming the provider, which takes the writes and confirms a replica's
"no". Host C's replica lags (it refreshes once a day; its replication is
stopped). Mailboxes are added on the provider only (ldapadd from the
client namespace; an INSERT) and reach the hosts by replication.

The directory names one home path per mailbox, so every host keeps its
Maildirs at the same path, BASE/mail: each host's processes run in a
mount namespace of the host's own (Host.share_path) where its directory
BASE/<letter>/mail is bind-mounted there. The test reads each host's
Maildirs at BASE/<letter>/mail; a mailbox's Maildir exists on its home
host only, so a delivery anywhere else would fail, not land.
"""
import os
import re
import shutil
import subprocess
import time

import pytest

import backend_servers as bs
import cluster_net
from conftest import wait_for
from test_cluster_netns import account, pop3_answer, send, services_log  # noqa: F401 (account: a fixture)

pytestmark = pytest.mark.skipif(bool(bs.missing_binaries()), reason="slapd/mariadbd not installed")

HOMES = {"alice": "a", "bob": "b", "carol": "c"}
PROVIDER_INDEX = 50


def crypt(password):
    r = subprocess.run(["openssl", "passwd", "-6", password], capture_output=True, timeout=30, check=True)
    return r.stdout.decode().strip()


class Directory:
    """The cluster, its directory servers (the provider and each host's
    replica, by host letter), and the mailboxes made so far (user -> home
    host letter). LDAP and SQL below say how entries are written and read."""

    backend = None

    def __init__(self, c, account):
        self.c = c
        self.account = account
        self.homes = {}
        self.replicas = {}
        self.provider = None
        self.shared = c.base / "mail"  # where the directory says the Maildirs are
        self.shared.mkdir(mode=0o755)

    @property
    def servers(self):
        return [s for s in (self.provider, *self.replicas.values()) if s]

    def storage(self, h):
        """h's own directory, seen at `shared` by its processes."""
        return self.c.base / h.letter / "mail"

    def host(self, letter):
        return next(h for h in self.c.hosts if h.letter == letter)

    def home_of(self, user):
        return self.host(self.homes[user])

    def maildir(self, h, user):
        return self.storage(h) / "example.org" / user / "Maildir"

    def messages(self, h, user):
        top = self.maildir(h, user)
        return sorted(p for d in ("new", "cur") if (top / d).is_dir() for p in (top / d).iterdir())

    def where(self, subject):
        """(host letter, user) of every copy of the message with subject,
        on every host."""
        found = []
        for h in self.c.hosts:
            dom = self.storage(h) / "example.org"
            for user in sorted(os.listdir(dom)):
                for p in self.messages(h, user):
                    if re.search(rb"^Subject: " + re.escape(subject.encode()) + rb"$", p.read_bytes(), re.M):
                        found.append((h.letter, user))
        return found

    # ------------------------------------------------------- the directory
    def setup(self):
        """The servers, the initial mailboxes (HOMES), every host's
        control files; then the hosts are started."""
        c = self.c
        # the qmail side of the domain (virtualdomains, assign, .qmail-default)
        c.admin_all("vadddomain", "-u", self.account.pw_name, "example.org", password="pm")
        for h in c.hosts:
            dom = self.storage(h) / "example.org"
            dom.mkdir(parents=True)
            # the domain directory holds the .qmail-default, as schemas/README.md lays it out
            shutil.copy(h.q.path / "domains" / "example.org" / ".qmail-default", dom)
            for p in (dom, dom / ".qmail-default"):
                os.chown(p, self.account.pw_uid, self.account.pw_gid)
            h.share_path(self.shared, self.storage(h))
        for user, letter in HOMES.items():
            self.add_mailbox(user, letter)
        self.certs = bs.make_certs(c.base / "certs")
        self.dirns = c.node("dir", PROVIDER_INDEX)
        self.start_servers()
        for user in HOMES:
            self.replicated(user, "abc")
        self.lag("c")
        for i, h in enumerate(c.hosts):
            h.q.control("userdirectory", self.backend + "\n")
            h.checkpassword = f"checkpassword-{self.backend}"
            self.server_order(h, self.default_order(h))
            self.configure(h)
        c.start()

    def default_order(self, h):
        """Its own replica first, then the next hosts' in turn."""
        i = "abc".index(h.letter)
        return "abc"[i:] + "abc"[:i]

    def add_mailbox(self, user, letter):
        """The Maildir on its home host (the domain's account owns it)."""
        self.homes[user] = letter
        top = self.maildir(self.host(letter), user)
        for d in ("cur", "new", "tmp"):
            (top / d).mkdir(parents=True, mode=0o700)
        for p in (top.parent, top, *(top / d for d in ("cur", "new", "tmp"))):
            os.chown(p, self.account.pw_uid, self.account.pw_gid)
            p.chmod(0o700)

    def add(self, user, letter):
        """A new mailbox: its Maildir, and its entry written on the provider."""
        self.add_mailbox(user, letter)
        self.write(user)

    def replicated(self, user, letters):
        """user on the replicas of those hosts (waited for)."""
        for letter in letters:
            wait_for(lambda: self.knows(letter, user), 30, f"{user} on host {letter}'s replica")

    def home_path(self, user):
        return f"{self.shared}/example.org/{user}"

    # ------------------------------------------------------- mail and POP3
    def settled(self):
        wait_for(lambda: all(h.queued() == 0 for h in self.c.hosts), 60, lambda: "empty queues\n" + self.logs())
        time.sleep(0.5)  # a late duplicate would show now

    def logs(self):
        return "".join(f"== {h.name}\n{h.log()}\n{services_log(h)}" for h in self.c.hosts)

    def arrived(self, subject, user, timeout=60, settle=True):
        """The message is in user's Maildir on the home host, and nowhere
        else, once (checked when every queue is empty; with settle False,
        when some other message is meant to wait, at once)."""
        home = self.homes[user]
        wait_for(lambda: self.where(subject), timeout, lambda: f"{subject!r}\n" + self.logs())
        if settle:
            self.settled()
        assert self.where(subject) == [(home, user)], (subject, self.where(subject), self.logs())

    def mail_everyone(self, users, subject):
        """A message to each user through each host (subject: its prefix);
        each lands once, on the user's home host. Returns the subjects by
        user."""
        for h in self.c.hosts:
            for user in users:
                send(self.c, h, user, f"{subject} {user} via {h.letter}")
        for h in self.c.hosts:
            for user in users:
                self.arrived(f"{subject} {user} via {h.letter}", user)
        return {user: sorted(f"{subject} {user} via {h.letter}" for h in self.c.hosts) for user in users}

    def no_bounces(self):
        for h in self.c.hosts:
            assert " failure: " not in h.log() and "bounce msg" not in h.log(), h.name + "\n" + h.log()

    def pop3_subjects(self, h, user):
        """The subjects user reads through h's POP3 (poplib, RETR)."""
        with self.c.pop3(h) as p:
            p.user(f"{user}@example.org")
            p.pass_(f"pw-{user}")
            got = []
            for i in range(1, p.stat()[0] + 1):
                got += [ln[9:].decode() for ln in p.retr(i)[1] if ln.startswith(b"Subject: ")]
            p.quit()
        return got

    def curl_subjects(self, h, user):
        """The same with curl (pop3://), in the client namespace."""
        out = []
        with self.c.pop3(h) as p:
            p.user(f"{user}@example.org")
            p.pass_(f"pw-{user}")
            n = p.stat()[0]
            p.quit()
        for i in range(1, n + 1):
            r = self.c.client_run(["curl", "-sS", "--max-time", "30", "--user", f"{user}@example.org:pw-{user}",
                                   f"pop3://{h.addr}/{i}"], capture_output=True, timeout=60)
            assert r.returncode == 0, (h.name, user, r.stderr, services_log(h))
            out += re.findall(rb"^Subject: (.*?)\r$", r.stdout, re.M)
        return [s.decode() for s in out]


class LDAP(Directory):
    """slapd: the provider (syncprov) and a syncrepl consumer on each host;
    C's refreshes once a day, so it lags. Entries are written with ldapadd
    from the client namespace (an administrator's machine)."""

    backend = "ldap"

    def start_servers(self):
        ldif = (f"dn: ou=domains,{bs.BASE_DN}\nobjectClass: organizationalUnit\nou: domains\n\n"
                f"dn: ou=users,{bs.BASE_DN}\nobjectClass: organizationalUnit\nou: users\n\n"
                f"dn: sqDomainName=example.org,ou=domains,{bs.BASE_DN}\nobjectClass: sqMailDomain\n"
                f"sqDomainName: example.org\nsqDomainDirectory: {self.shared}/example.org\n"
                f"uidNumber: {self.account.pw_uid}\ngidNumber: {self.account.pw_gid}\n\n")
        ldif += "".join(self.entry(user) for user in HOMES)
        self.provider = bs.Slapd(self.c.base / "ldap-provider", ldif.encode(), self.certs, provider=True,
                                 netns=self.dirns, addr=self.dirns.addr)
        for h in self.c.hosts:
            self.replicas[h.letter] = bs.Slapd(self.c.base / f"ldap-{h.letter}", b"", self.certs,
                                               consumer_of=self.provider, netns=h.ns, addr=h.addr,
                                               refresh_every="01:00:00:00" if h.letter == "c" else None)

    def lag(self, letter):
        pass  # made so: refreshOnly, once a day

    def entry(self, user):
        return (f"dn: mail={user}@example.org,ou=users,{bs.BASE_DN}\nobjectClass: account\n"
                f"objectClass: sqMailAccount\nuid: {user}@example.org\nmail: {user}@example.org\n"
                f"userPassword: {{CRYPT}}{crypt('pw-' + user)}\nhomeDirectory: {self.home_path(user)}\n"
                f"sqMailHost: host{self.homes[user]}.example.net\n\n")

    def write(self, user):
        r = self.c.client_run(["ldapadd", "-x", "-o", "nettimeout=5", "-H", self.provider.uri, "-D", bs.LDAP_ADMIN,
                               "-w", bs.LDAP_ADMIN_PW], input=self.entry(user).encode(), capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr

    def knows(self, letter, user):
        r = self.c.client_run(["ldapsearch", "-x", "-LLL", "-o", "nettimeout=2", "-H", self.replicas[letter].uri,
                               "-D", bs.LDAP_ADMIN, "-w", bs.LDAP_ADMIN_PW, "-b", bs.BASE_DN,
                               f"(mail={user}@example.org)", "dn"], capture_output=True, timeout=30)
        return r.returncode == 0 and b"dn: " in r.stdout

    def server_order(self, h, letters):
        h.q.control("ldapserver", "".join(self.replicas[x].uri + "\n" for x in letters))

    def configure(self, h):
        h.q.control("ldapprovider", self.provider.uri + "\n")
        h.q.control("ldapbasedn", bs.BASE_DN + "\n")
        h.q.control("ldaptimeout", "2\n")
        bs.secret_control(h.q, "ldappassword", f"{bs.LDAP_ADMIN}\n{bs.LDAP_ADMIN_PW}\n",
                          self.account.pw_uid, self.account.pw_gid)


class SQL(Directory):
    """MariaDB: the primary (binlog) and a replica on each host, which
    the hosts read over TCP; C's replication is stopped, so it lags. Rows
    are written with INSERT on the primary."""

    backend = "mysql"

    def start_servers(self):
        sql = (f"INSERT INTO domains (name, real_domain, dir, uid, gid) VALUES ('example.org', 'example.org', "
               f"'{self.shared}/example.org', {self.account.pw_uid}, {self.account.pw_gid});\n")
        sql += "".join(self.row(user) for user in HOMES)
        self.provider = bs.Mariadbd(self.c.base / "sql-primary", sql.encode(), self.certs,
                                    args=["--server-id=1", "--log-bin=binlog"], netns=self.dirns, addr=self.dirns.addr)
        for i, h in enumerate(self.c.hosts):
            self.replicas[h.letter] = bs.Mariadbd(self.c.base / f"sql-{h.letter}", sql.encode(), self.certs,
                                                  args=[f"--server-id={i + 2}"], netns=h.ns, addr=h.addr)
            self.replicas[h.letter].replicate_from(self.provider)

    def lag(self, letter):
        self.replicas[letter].sql(b"STOP SLAVE")

    def row(self, user):
        return (f"INSERT INTO users (domain, local_part, password_hash, home, mail_host) VALUES ('example.org', "
                f"'{user}', '{crypt('pw-' + user)}', '{self.home_path(user)}', 'host{self.homes[user]}.example.net');\n")

    def write(self, user):
        self.provider.sql(self.row(user).encode(), db="mail")

    def knows(self, letter, user):
        out = self.replicas[letter].sql(f"SELECT COUNT(*) FROM users WHERE local_part = '{user}'".encode(), db="mail")
        return out.split()[-1] == b"1"

    def server_order(self, h, letters):
        h.q.control("sqlserver", "".join(f"{self.replicas[x].addr}:3306\n" for x in letters))

    def configure(self, h):
        h.q.control("sqlprimary", f"{self.provider.addr}:3306\n")
        h.q.control("sqldatabase", "mail\n")
        h.q.control("sqltimeout", "2\n")
        bs.secret_control(h.q, "sqlpassword", f"{bs.SQL_USER}\n{bs.SQL_PW}\n", self.account.pw_uid, self.account.pw_gid)


@pytest.fixture(scope="module", params=[LDAP, SQL], ids=["ldap", "mysql"])
def cluster(account, request):
    """Three hosts, the directory's provider and a replica on each host
    (C's lagging), alice, bob and carol homed on A, B and C; every host
    started."""
    with cluster_net.Cluster(3, control={"timeoutconnect": "3\n"}) as c:
        d = request.param(c, account)
        try:
            d.setup()
            yield d
        finally:
            for s in d.servers:
                s.stop()


@pytest.fixture
def directory(cluster):
    """The module's cluster; after the test, every host's server order as
    the fixture made it, the provider's link up and every server running."""
    yield cluster
    cluster.dirns.ip("link", "set", "eth0", "up")
    for h in cluster.c.hosts:
        cluster.server_order(h, cluster.default_order(h))
    for s in cluster.servers:
        if s.proc is None:
            s.start()


def test_mail_through_every_host_lands_once_on_the_home_host(directory):
    """The hosts' file stores know nobody: the homes come from LDAP. Each
    user's mail, sent through each host, lands once in the Maildir on its
    home host; each user reads it through each host's POP3 (poplib, and
    curl through a host that is not the home host)."""
    d = directory
    c = d.c
    for h in c.hosts:
        assert "alice" not in (h.q.path / "domains" / "example.org" / "vpasswd").read_text()
    expected = d.mail_everyone(HOMES, "to")
    for h in c.hosts:
        for user in HOMES:
            assert sorted(s for s in d.pop3_subjects(h, user) if s.startswith("to ")) == expected[user], (h.name, user)
        other = next(u for u, x in HOMES.items() if x != h.letter)
        assert sorted(s for s in d.curl_subjects(h, other) if s.startswith("to ")) == expected[other]
        assert f"qmail-pop3proxy: {other}@example.org relayed to home host {d.home_of(other).name}" in services_log(h)
    d.no_bounces()


def test_provider_stopped_reads_go_on_from_the_replicas(directory):
    """The provider stopped: every host still routes and delivers each
    user's mail and logs each user in through its own replica."""
    d = directory
    c = d.c
    d.provider.stop()
    d.mail_everyone(HOMES, "provider down, to")
    for h in c.hosts:
        for user in HOMES:
            assert pop3_answer(c, h, user).startswith("+OK"), (h.name, user, services_log(h))
    d.no_bounces()


def test_a_lagging_replica_asks_the_provider(directory):
    """dave (home B) and erin (home C) added on the provider: A's and B's
    replicas have them at once, C's (refreshed once a day) does not. C asks
    the provider instead: mail for them through C lands on their home
    hosts, and they log in through C. frank (home B), added while C lags
    and then stopped the provider: C cannot tell, so his mail waits on C
    (a deferral, no bounce) and arrives once the provider is back."""
    d = directory
    c = d.c
    a, b, hc = c.hosts
    d.add("dave", "b")
    d.add("erin", "c")
    d.replicated("dave", "ab")
    d.replicated("erin", "ab")
    assert not d.knows("c", "dave") and not d.knows("c", "erin")
    expected = d.mail_everyone(["dave", "erin"], "new")
    for h in (hc, a):
        for user in ("dave", "erin"):
            assert sorted(d.pop3_subjects(h, user)) == expected[user]
    assert not d.knows("c", "dave")  # C answered through the provider, still lagging

    d.add("frank", "b")
    d.replicated("frank", "ab")
    d.provider.stop()
    send(c, hc, "frank", "frank while the provider is down")
    wait_for(lambda: re.search(r"deferral: .*provider_cannot_confirm", hc.log()), 30,
             lambda: "C's deferral\n" + d.logs())
    assert hc.queued() == 1 and d.where("frank while the provider is down") == []
    assert pop3_answer(c, hc, "frank").startswith("-ERR [SYS/TEMP]")
    assert pop3_answer(c, a, "frank").startswith("+OK")  # A's replica has him
    d.provider.start()
    hc.retry_now()
    d.arrived("frank while the provider is down", "frank")
    d.no_bounces()


def test_a_hosts_replica_down_the_next_in_order_answers(directory):
    """gina (home A) added on the provider, replicated to A and B but not
    to C (lagging). A's own replica and the provider stopped: A asks the
    next server in its control/ldapserver (sqlserver), B's replica, which
    knows her:
    her mail through A lands, she logs in on A. With C's replica listed
    before B's, C's "no such user" cannot be confirmed: her mail waits on
    A (no bounce) until the order is put back."""
    d = directory
    c = d.c
    a = c.hosts[0]
    d.add("gina", "a")
    d.replicated("gina", "ab")
    assert not d.knows("c", "gina")
    d.replicas["a"].stop()
    d.provider.stop()
    send(c, a, "gina", "gina through A, its replica down")
    send(c, a, "carol", "carol through A, its replica down")
    d.arrived("gina through A, its replica down", "gina")
    d.arrived("carol through A, its replica down", "carol")
    assert pop3_answer(c, a, "gina").startswith("+OK")
    assert pop3_answer(c, a, "carol").startswith("+OK")
    d.server_order(a, "acb")
    send(c, a, "gina", "gina with C's replica asked first")
    wait_for(lambda: re.search(r"deferral: .*provider_cannot_confirm", a.log()), 30,
             lambda: "A's deferral\n" + d.logs())
    assert d.where("gina with C's replica asked first") == [] and a.queued() == 1
    d.server_order(a, "abc")
    a.retry_now()
    d.arrived("gina with C's replica asked first", "gina")
    d.no_bounces()


def rcpt(c, h, user):
    """h's SMTP answer (code, text) to RCPT TO user@example.org."""
    with c.smtp(h) as s:
        s.ehlo("client.example")
        s.mail("sender@remote.example")
        code, text = s.rcpt(f"{user}@example.org")
        s.rset()
    return code, text.decode()


def test_rcptcheck_answers_from_the_directory(directory):
    """qmail-smtpd's recipient check (control/rcptcheck: qmail-rcptcheck)
    on every host answers from the replicated directory, as delivery does:
    the users are known, nobody is refused (550); hal, new on the provider
    and not yet on C's lagging replica, is known through the provider on
    C; with the provider stopped, C cannot tell (451), never 550."""
    d = directory
    c = d.c
    hc = c.hosts[2]
    for h in c.hosts:
        h.q.control("rcptcheck", h.q.bin("qmail-rcptcheck") + "\n")
    try:
        for h in c.hosts:
            for user in HOMES:
                assert rcpt(c, h, user)[0] == 250, (h.name, user, rcpt(c, h, user))
            assert rcpt(c, h, "nobody")[0] == 550, h.name
        d.add("hal", "a")
        d.replicated("hal", "ab")
        assert rcpt(c, hc, "hal")[0] == 250
        d.provider.stop()
        assert rcpt(c, hc, "hal")[0] == 451
        assert rcpt(c, c.hosts[0], "hal")[0] == 250
        assert rcpt(c, hc, "alice")[0] == 250
    finally:
        for h in c.hosts:
            os.unlink(h.q.path / "control" / "rcptcheck")


def test_provider_cut_off_costs_a_timeout_never_a_bounce(directory):
    """The provider's link down (a partition: its packets go nowhere,
    nothing refuses): ivan (home A), on A's and B's replicas but not yet
    on C's, logs in on C with -ERR [SYS/TEMP] within seconds, and his mail
    through C waits there; alice, whom C's replica knows, is served as
    ever. The link up again, C's next try delivers ivan's mail once."""
    d = directory
    c = d.c
    hc = c.hosts[2]
    d.add("ivan", "a")
    d.replicated("ivan", "ab")
    d.dirns.ip("link", "set", "eth0", "down")
    t0 = time.monotonic()
    answer = pop3_answer(c, hc, "ivan")
    took = time.monotonic() - t0
    assert answer.startswith("-ERR [SYS/TEMP]"), answer
    assert took < 15, took  # a connect timeout of 2 s, with slack for a loaded machine
    send(c, hc, "ivan", "ivan while the provider is cut off")
    send(c, hc, "alice", "alice while the provider is cut off")
    d.arrived("alice while the provider is cut off", "alice", settle=False)
    wait_for(lambda: re.search(r"deferral: .*provider_cannot_confirm", hc.log()), 30,
             lambda: "C's deferral\n" + d.logs())
    assert d.where("ivan while the provider is cut off") == [] and hc.queued() == 1
    assert pop3_answer(c, hc, "alice").startswith("+OK")
    d.dirns.ip("link", "set", "eth0", "up")
    hc.retry_now()
    d.arrived("ivan while the provider is cut off", "ivan")
    d.no_bounces()
