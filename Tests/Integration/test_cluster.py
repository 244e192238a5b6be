"""Home-host clustering (issue 22), first stage: two full instances on
127.0.0.1 (own homes, own QMTP ports) with the same user directory (the
file backend, made by the same v* commands on both). A mailbox's home host
(vadduser/vmoduser -H, vadddomain -H for a domain's default) decides where
its Maildir is; vdelivermail on any other host sends the message there
over QMTP, and the home host delivers it.
"""
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from cluster_helpers import HOSTS, Host, cluster, no_failures, vuser  # noqa: F401 (fixtures)
from conftest import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: makes system accounts and switches uid")


def test_directory_records_home_hosts(cluster):
    """vadduser -H writes DIR/vmailhost, vadddomain -H the vdomains line;
    vmoduser -H changes and clears a mailbox's host."""
    a, _ = cluster
    d = a.q.path / "domains" / "example.org"
    assert (d / "vmailhost").read_text() == f"alice:{HOSTS[0]}\ncarol:{HOSTS[0]}\n"
    assert (a.q.path / "users" / "vdomains").read_text().rstrip("\n").endswith(f":{HOSTS[1]}")
    assert f"host:    {HOSTS[0]}\n" in a.admin("vuserinfo", "carol@example.org").stdout.decode()
    assert f"host:    {HOSTS[1]} (the domain's)\n" in a.admin("vuserinfo", "bob@example.org").stdout.decode()
    a.admin("vmoduser", "-H", "", "carol@example.org")
    a.admin("vmoduser", "-H", "HOSTB.example.net", "alice@example.org")
    assert (d / "vmailhost").read_text() == f"alice:{HOSTS[1]}\n"
    r = a.q.run("vmoduser", "-H", "not a host", "alice@example.org")
    assert r.returncode != 0


def test_vmoddomain_changes_the_domains_home_host(cluster):
    """vmoddomain -H sets the domain's default home host (the vdomains
    field vadddomain -H wrote, shown by vdominfo): bob, who names none of
    his own, is then delivered on A; -H '' removes it. A bad host, an
    unknown domain or a missing -H write nothing."""
    a, b = cluster
    vdomains = a.q.path / "users" / "vdomains"
    a.admin("vmoddomain", "-H", "HOSTA.example.net", "example.org")
    assert vdomains.read_text().rstrip("\n").endswith(f":{HOSTS[0]}")
    assert f"home:    {HOSTS[0]}\n" in a.admin("vdominfo", "example.org").stdout.decode()
    assert f"host:    {HOSTS[0]} (the domain's)\n" in a.admin("vuserinfo", "bob@example.org").stdout.decode()
    a.inject("bob@example.org", b"for bob, now homed on A\n")
    wait_for(lambda: len(a.maildir_new("bob")) == 1, 30, "bob's message on A\n" + a.log())
    before = vdomains.read_bytes()
    for args in (("-H", "not a host", "example.org"), ("-H", HOSTS[1], "nosuch.example"), ("example.org",),
                 ("-H", HOSTS[1]), ("-x", "-H", HOSTS[1], "example.org")):
        r = a.q.run("vmoddomain", *args)
        assert r.returncode == 1 and r.stderr, (args, r)
        assert vdomains.read_bytes() == before, args
    a.admin("vmoddomain", "-H", "", "example.org")
    assert vdomains.read_text().rstrip("\n").split(":")[-1] != HOSTS[0]
    assert vdomains.read_text().count(":") == 4
    assert "home:" not in a.admin("vdominfo", "example.org").stdout.decode()
    assert b.maildir_new("bob") == []
    no_failures(a, b)


def test_mail_goes_to_the_home_host_once(cluster):
    """Sent to A for bob (homed on B by the domain default): one copy in B's
    Maildir, none on A. Sent to B for alice (homed on A): on A. Each host
    delivers its own mailboxes itself."""
    a, b = cluster
    a.inject("bob@example.org", b"for bob via A\n")
    b.inject("alice@example.org", b"for alice via B\n")
    a.inject("alice@example.org", b"for alice on A\n")
    wait_for(lambda: len(b.maildir_new("bob")) == 1, 30, "bob's message on B\n" + a.log() + b.log())
    wait_for(lambda: len(a.maildir_new("alice")) == 2, 30, "alice's messages on A\n" + a.log() + b.log())
    wait_for(lambda: a.queued() == 0 and b.queued() == 0, 30, "empty queues")
    time.sleep(0.5)
    assert len(b.maildir_new("bob")) == 1 and a.maildir_new("bob") == []
    assert b.maildir_new("alice") == []
    bob = b.maildir_new("bob")[0].read_bytes()
    assert re.search(rb"\nX-Cluster-Delivered-To: bob@example.org; mac=[0-9a-f]{40}\n", bob)
    assert bob.count(b"X-Cluster-Delivered-To") == 1
    assert bob.count(b"Delivered-To: bob@example.org\n") == 1   # B's own
    assert b"Received: (qmail-qmtpd" in bob or b"QMTP" in bob
    assert bob.endswith(b"for bob via A\n")
    # A's copy for its own mailbox never went over QMTP.
    own = [p.read_bytes() for p in a.maildir_new("alice")]
    assert sum(b"X-Cluster-Delivered-To" in m for m in own) == 1
    no_failures(a, b)


def test_a_forged_marker_is_an_ordinary_header_line(cluster):
    """Anybody can write X-Cluster-Delivered-To into a message sent by SMTP,
    bare or with a made-up MAC: it does not match the cluster's secret, so
    A sends bob's message to his home B as any other (before, A took it for
    a loop and deferred it until queuelifetime), and B delivers it once."""
    from smtp_helpers import session
    a, b = cluster
    for i, forged in enumerate([b"X-Cluster-Delivered-To: bob@example.org",
                                b"X-Cluster-Delivered-To: bob@example.org; mac=" + b"0" * 40]):
        data = (b"HELO relay.example\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
                + forged + b"\r\nSubject: forged\r\n\r\nforged marker\r\n.\r\nQUIT\r\n")
        before = set(b.maildir_new("bob"))
        code, out = session(a.q, data)
        assert b"\r\n250 ok" in out, out
        wait_for(lambda: len(b.maildir_new("bob")) == i + 1, 30, lambda: "bob's message on B\n" + a.log() + b.log())
        # the new file, not the last name: Maildir names do not sort in delivery order
        [msg] = [p.read_bytes() for p in b.maildir_new("bob") if p not in before]
        assert msg.endswith(b"forged marker\n") and forged + b"\n" in msg
    wait_for(lambda: a.queued() == 0 and b.queued() == 0, 30, "empty queues")
    assert "cluster_loop" not in a.log() + b.log()
    no_failures(a, b)


def test_home_host_down_means_queued_then_delivered(cluster):
    """B's QMTP stopped: A keeps bob's message queued (deferral, no bounce);
    B back: A's next try delivers it to B, once."""
    a, b = cluster
    b.stop_qmtpd()
    a.inject("bob@example.org", b"while B was down\n")
    wait_for(lambda: re.search(r"deferral: .*home_host_hostb\.example\.net_did_not_take", a.log()), 30,
             lambda: "A's deferral\n" + a.log())
    assert a.queued() == 1 and b.maildir_new("bob") == []
    a.retry_now()
    wait_for(lambda: a.log().count("did_not_take") >= 2, 30, "a second deferral")
    assert a.queued() == 1
    b.start_qmtpd()
    a.retry_now()
    wait_for(lambda: len(b.maildir_new("bob")) == 1, 30, "bob's message on B\n" + a.log() + b.log())
    wait_for(lambda: a.queued() == 0, 30, "A's queue empty")
    assert b.maildir_new("bob")[0].read_bytes().endswith(b"while B was down\n")
    no_failures(a, b)


def test_two_hosts_naming_each_other_do_not_loop(cluster):
    """A misconfiguration (or a stale replica): A says carol lives on B, B
    says A. The message crosses at most twice (a move needs the second
    hop: to the old home while the mailbox was being moved, then on): A to
    B, B back to A; A finds two markers for carol and does not send it on
    but defers it ("cluster loop"): it waits in A's queue, no bounce, no
    ping-pong, until the directory is put right; then A's next try
    delivers it. A forged marker for carol (no valid MAC) in the message
    never counts toward the two: B still sends it on once."""
    a, b = cluster
    a.admin("vmoduser", "-H", HOSTS[1], "carol@example.org")
    b.admin("vmoduser", "-H", HOSTS[0], "carol@example.org")
    forged = b"X-Cluster-Delivered-To: carol@example.org\n"
    r = a.q.run("qmail-inject", "-fsender@remote.example", "carol@example.org",
                input=b"From: sender@remote.example\n" + forged + b"Subject: cluster\n\nfor carol\n")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: "cluster_loop" in a.log(), 30, lambda: "A's loop deferral\n" + a.log() + b.log())
    wait_for(lambda: b.queued() == 0, 30, "B done with it")
    for _ in range(3):
        a.retry_now()
        time.sleep(0.5)
    assert a.log().count("cluster_loop") >= 2
    # Two hops: B's qmail-send delivered (sent) it once, never again.
    assert b.log().count("starting delivery") == 1
    assert a.queued() == 1
    assert a.maildir_new("carol") == [] and b.maildir_new("carol") == []
    no_failures(a, b)
    # The directory put right (carol's home is A): A delivers it.
    a.admin("vmoduser", "-H", HOSTS[0], "carol@example.org")
    a.retry_now()
    wait_for(lambda: len(a.maildir_new("carol")) == 1, 30, lambda: "carol's message on A\n" + a.log())
    assert a.queued() == 0
    msg = a.maildir_new("carol")[0].read_bytes()
    assert len(re.findall(rb"\nX-Cluster-Delivered-To: carol@example.org; mac=[0-9a-f]{40}\n", msg)) == 2
    assert msg.count(forged) == 1
    no_failures(a, b)


# ------------------------------------------------ LDAP and MySQL directories

@pytest.fixture(scope="module")
def directories(vuser):
    """Host A's home reading an LDAP and a MySQL directory made by vexport
    from a file backend where the domain's default is host B, alice's own
    host is A and bob has none (so B, by the default); and host B, whose
    qmail-qmtpd only queues (no qmail-send), to see what A sends."""
    import backend_servers as bs
    if bs.missing_binaries():
        pytest.skip("slapd/mariadbd not installed")
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-cluster-dir-", dir="/var/tmp"))
    base.chmod(0o755)
    a, b = Host(base / "a", HOSTS[0], vuser), Host(base / "b", HOSTS[1], vuser)
    servers = []
    try:
        for h in (a, b):
            h.admin("vadddomain", "-u", vuser.pw_name, "-H", HOSTS[1], "example.org", password="pm")
            h.admin("vadduser", "-H", HOSTS[0], "alice@example.org", password="pw")
            h.admin("vadduser", "bob@example.org", password="pw")
        a.q.control("clusterhosts", f"{HOSTS[1]}:127.0.0.1:{b.port}\n")
        ldif, sql = a.q.run("vexport", "--ldif", bs.BASE_DN), a.q.run("vexport", "--sql")
        assert ldif.returncode == 0 and sql.returncode == 0
        assert b"sqMailHost: hostb.example.net" in ldif.stdout and b"sqMailHost: hosta.example.net" in ldif.stdout
        certs = bs.make_certs(base / "certs")
        servers.append(bs.Slapd(base / "ldap", ldif.stdout, certs))
        servers.append(bs.Mariadbd(base / "mysql", sql.stdout, certs))
        bs.configure(a.q, *servers, vuser.pw_uid, vuser.pw_gid)
        b.start_qmtpd()
        yield a, b, servers[1]
    finally:
        b.stop_qmtpd()
        for s in servers:
            s.stop()
        shutil.rmtree(base, ignore_errors=True)


def vdelivermail(host, local, vuser):
    """vdelivermail as qmail-local runs it for example.org-LOCAL@example.org."""
    env = dict(host.q.env)
    env.update({"HOST": "example.org", "LOCAL": f"example.org-{local}", "EXT": local, "SENDER": "s@remote.example",
                "RECIPIENT": f"example.org-{local}@example.org", "RPLINE": "Return-Path: <s@remote.example>\n"})
    argv = ["setpriv", f"--reuid={vuser.pw_uid}", f"--regid={vuser.pw_gid}", "--clear-groups",
            host.q.bin("vdelivermail"), "", "bounce-no-mailbox"]
    return subprocess.run(argv, input=b"Subject: dir\n\nvia the directory\n", env=env, capture_output=True,
                          timeout=60, cwd=str(host.q.path))


@pytest.mark.parametrize("backend", ["ldap", "mysql"])
def test_directory_servers_name_the_home_host(directories, vuser, backend):
    """sqMailHost / mail_host, the mailbox's own or its domain's, route the
    delivery as the file backend's do."""
    a, b, _ = directories
    a.q.control("userdirectory", backend + "\n")
    before = b.queued()
    r = vdelivermail(a, "bob", vuser)
    assert r.returncode == 0, r.stderr
    assert b.queued() == before + 1 and a.maildir_new("bob") == []
    r = vdelivermail(a, "alice", vuser)
    assert r.returncode == 0, r.stderr
    assert b.queued() == before + 1 and a.maildir_new("alice")[-1].read_bytes().endswith(b"via the directory\n")


def test_sql_tables_from_before_the_migration_keep_delivering(directories, vuser):
    """Without the mail_host columns every mailbox is local (said once on
    stderr); schemas/mysql.sql's migration statements bring them back."""
    import backend_servers as bs
    a, b, mariadb = directories
    a.q.control("userdirectory", "mysql\n")
    mariadb.sql(b"ALTER TABLE users DROP COLUMN mail_host; ALTER TABLE domains DROP COLUMN mail_host;", db="mail")
    try:
        n = len(a.maildir_new("bob"))
        r = vdelivermail(a, "bob", vuser)
        assert r.returncode == 0, r.stderr
        assert b"no mail_host columns" in r.stderr and len(a.maildir_new("bob")) == n + 1
    finally:
        migration = [l for l in (bs.SCHEMAS / "mysql.sql").read_text().splitlines() if "mail_host" in l and l.startswith("ALTER")]
        assert len(migration) == 2
        mariadb.sql("\n".join(migration).encode(), db="mail")
    mariadb.sql(b"UPDATE domains SET mail_host = 'hostb.example.net'", db="mail")
    before = b.queued()
    assert vdelivermail(a, "bob", vuser).returncode == 0 and b.queued() == before + 1
