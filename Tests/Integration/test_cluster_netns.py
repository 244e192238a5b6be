"""Home-host clustering (issue 22) over a real network: three full
instances, each in its own network namespace (cluster_net.py), joined by a
bridge; alice's mailbox lives on host A, bob's on B, carol's on C (the
file store on every host says so). SMTP comes from a client namespace on
the same bridge; hosts hand mail to each other over QMTP on port 209.
"""
import re
import time

import pytest

import cluster_net
from conftest import wait_for

USERS = {"alice": "a", "bob": "b", "carol": "c"}


@pytest.fixture(scope="module")
def account():
    reason = cluster_net.unavailable()
    if reason:
        pytest.skip(reason)
    with cluster_net.system_account("sqnet") as pw:
        yield pw


@pytest.fixture
def cluster(account):
    # A host that is cut off is found out in seconds, not qmail's minute.
    with cluster_net.Cluster(3, control={"timeoutconnect": "3\n"}) as c:
        c.admin_all("vadddomain", "-u", account.pw_name, "example.org", password="pm")
        for user, letter in USERS.items():
            c.admin_all("vadduser", "-H", f"host{letter}.example.net", f"{user}@example.org", password="pw-" + user)
        c.start()
        yield c


def home_of(c, user):
    return c.host(f"host{USERS[user]}.example.net")


def send(c, host, user, subject):
    with c.smtp(host) as s:
        s.sendmail("sender@remote.example", [f"{user}@example.org"],
                   f"From: sender@remote.example\r\nSubject: {subject}\r\n\r\n{subject}\r\n")


def subjects(host, user):
    return sorted(re.search(rb"^Subject: (.*)$", p.read_bytes(), re.M).group(1).decode() for p in host.maildir(user))


def settled(c):
    wait_for(lambda: all(h.queued() == 0 for h in c.hosts), 60, lambda: "empty queues\n" + logs(c))
    time.sleep(0.5)  # a late duplicate would show now


def logs(c):
    return "".join(f"== {h.name}\n{h.log()}" for h in c.hosts)


def assert_no_bounces(c):
    for h in c.hosts:
        assert " failure: " not in h.log() and "bounce msg" not in h.log(), h.name + "\n" + h.log()


def assert_only_on_home(c, user, expected):
    """user's messages, by subject, exactly once each in the home host's
    Maildir and on no other host."""
    home = home_of(c, user)
    assert subjects(home, user) == sorted(expected), logs(c)
    for h in c.hosts:
        if h is not home:
            assert h.maildir(user) == [], (h.name, user)


def test_mail_sent_to_any_host_lands_once_on_the_home_host(cluster):
    """Nine messages: to each user, through each host's SMTP. Each arrives
    once in its home host's Maildir; a copy that crossed hosts went over
    the network (its qmail-qmtpd saw the sending host's address) and bears
    the loop-guard line once; POP3 on the home host sees all three."""
    c = cluster
    for h in c.hosts:
        for user in USERS:
            send(c, h, user, f"to {user} via {h.letter}")
    for user in USERS:
        wait_for(lambda: len(home_of(c, user).maildir(user)) >= 3, 60, lambda: f"{user}'s mail\n" + logs(c))
    settled(c)
    for user in USERS:
        assert_only_on_home(c, user, [f"to {user} via {h.letter}" for h in c.hosts])
        home = home_of(c, user)
        for p in home.maildir(user):
            m = p.read_bytes()
            via = re.search(rb"^Subject: to \w+ via (\w)", m, re.M).group(1).decode()
            if via == home.letter:
                assert b"X-Cluster-Delivered-To" not in m
            else:
                assert m.count(f"X-Cluster-Delivered-To: {user}@example.org\n".encode()) == 1
                sender_host = re.escape(c.host(f"host{via}.example.net").addr.encode())
                assert re.search(sender_host + rb"(?![0-9])", m.split(b"\n\n")[0]), m
        with c.pop3(home) as p:
            p.user(f"{user}@example.org")
            p.pass_(f"pw-{user}")
            assert p.stat()[0] == 3
            p.quit()
    assert_no_bounces(c)


def test_a_stopped_backend_gets_its_mail_when_it_returns(cluster):
    """Host C stopped (qmail-send and its listeners): mail for carol sent to
    A and to B waits in their queues (deferred: C did not take it), no
    bounce; C started again, the next try delivers each message once."""
    c = cluster
    a, b, hc = c.hosts
    hc.stop()
    send(c, a, "carol", "while C was down, via a")
    send(c, b, "carol", "while C was down, via b")
    for h in (a, b):
        wait_for(lambda: re.search(r"deferral: .*home_host_hostc\.example\.net_did_not_take", h.log()), 30,
                 lambda: f"{h.name}'s deferral\n" + logs(c))
    for h in (a, b):
        h.retry_now()
        wait_for(lambda: h.log().count("did_not_take") >= 2, 30, lambda: "a second deferral\n" + logs(c))
    assert a.queued() == 1 and b.queued() == 1 and hc.maildir("carol") == []
    hc.start()
    a.retry_now()
    b.retry_now()
    wait_for(lambda: len(hc.maildir("carol")) == 2, 60, lambda: "carol's mail on C\n" + logs(c))
    settled(c)
    assert_only_on_home(c, "carol", ["while C was down, via a", "while C was down, via b"])
    assert_no_bounces(c)


def test_a_partitioned_host_catches_up_once_healed(cluster):
    """C's link down: the client cannot reach C; mail for carol sent to A
    waits on A, mail for alice queued on C waits on C (each side defers,
    neither bounces). The link up again: each message arrives once."""
    c = cluster
    a, b, hc = c.hosts
    c.partition(hc)
    with pytest.raises(OSError):
        c.connect(hc, cluster_net.SMTP_PORT, timeout=2).close()
    send(c, a, "carol", "across the partition, via a")
    hc.inject("alice@example.org", "across the partition, from c")
    send(c, b, "bob", "inside the partition, via b")
    wait_for(lambda: "home_host_hostc.example.net_did_not_take" in a.log(), 30, lambda: "A's deferral\n" + logs(c))
    wait_for(lambda: "home_host_hosta.example.net_did_not_take" in hc.log(), 30, lambda: "C's deferral\n" + logs(c))
    wait_for(lambda: len(b.maildir("bob")) == 1, 30, lambda: "bob's mail\n" + logs(c))
    assert a.queued() == 1 and hc.queued() == 1
    assert hc.maildir("carol") == [] and a.maildir("alice") == []
    c.heal(hc)
    a.retry_now()
    hc.retry_now()
    wait_for(lambda: len(hc.maildir("carol")) == 1 and len(a.maildir("alice")) == 1, 60,
             lambda: "mail after the partition\n" + logs(c))
    settled(c)
    assert_only_on_home(c, "carol", ["across the partition, via a"])
    assert_only_on_home(c, "alice", ["across the partition, from c"])
    assert_only_on_home(c, "bob", ["inside the partition, via b"])
    assert_no_bounces(c)


@pytest.mark.xfail(strict=True, reason="the loop guard trusts X-Cluster-Delivered-To from anyone: an outside "
                                       "sender's forged line makes the receiving host hold the message as a "
                                       "'cluster loop' (until queuelifetime bounces it)")
def test_a_loop_guard_line_from_outside_does_not_hold_mail(cluster):
    """The guard line is the cluster's own: one that an SMTP client wrote
    into the message must not stop the hand-over to the home host."""
    c = cluster
    a, _, hc = c.hosts
    with c.smtp(a) as s:
        s.sendmail("sender@remote.example", ["carol@example.org"],
                   "X-Cluster-Delivered-To: carol@example.org\r\nSubject: forged guard\r\n\r\nforged\r\n")
    wait_for(lambda: "delivery 1: " in a.log(), 30, lambda: "A's first delivery\n" + logs(c))
    assert "cluster_loop" not in a.log(), a.log()
    wait_for(lambda: len(hc.maildir("carol")) == 1, 30, lambda: "carol's mail on C\n" + logs(c))
