"""Home-host clustering (issue 22) over a real network: three full
instances, each in its own network namespace (cluster_net.py), joined by a
bridge; alice's mailbox lives on host A, bob's on B, carol's on C (the
file store on every host says so). SMTP comes from a client namespace on
the same bridge; hosts hand mail to each other over QMTP on port 209.
POP3 on any host reaches the mailbox on its home host: checkpassword-file
runs qmail-pop3proxy, which logs in on the home host's POP3 server (plain
text, STLS or implicit TLS) and relays the session.
"""
import os
import poplib
import re
import time

import pytest

import cluster_net
from conftest import wait_for

USERS = {"alice": "a", "bob": "b", "carol": "c"}
TIMEOUTCONNECT = 3


@pytest.fixture(scope="module")
def account():
    with cluster_net.namespace_account("sqnet") as pw:
        yield pw


@pytest.fixture
def cluster(account):
    # A host that is cut off is found out in seconds, not qmail's minute.
    with cluster_net.Cluster(3, control={"timeoutconnect": f"{TIMEOUTCONNECT}\n"}) as c:
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
    wait_for(lambda: all(h.queued() == 0 for h in c.hosts), 60, lambda: "empty queues\n" + c.logs())
    time.sleep(0.5)  # a late duplicate would show now


def assert_only_on_home(c, user, expected):
    """user's messages, by subject, exactly once each in the home host's
    Maildir and on no other host."""
    home = home_of(c, user)
    assert subjects(home, user) == sorted(expected), c.logs()
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
        wait_for(lambda: len(home_of(c, user).maildir(user)) >= 3, 60, lambda: f"{user}'s mail\n" + c.logs())
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
                # one marker, signed with the cluster's secret
                assert len(re.findall(rb"^X-Cluster-Delivered-To: " + f"{user}@example.org".encode()
                                      + rb"; mac=[0-9a-f]{40}$", m, re.M)) == 1, m
                assert m.count(b"X-Cluster-Delivered-To") == 1, m
                sender_host = re.escape(c.host(f"host{via}.example.net").addr.encode())
                assert re.search(sender_host + rb"(?![0-9])", m.split(b"\n\n")[0]), m
        with c.pop3(home) as p:
            p.user(f"{user}@example.org")
            p.pass_(f"pw-{user}")
            assert p.stat()[0] == 3
            p.quit()
    c.assert_no_bounces()


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
                 lambda: f"{h.name}'s deferral\n" + c.logs())
    for h in (a, b):
        h.retry_now()
        wait_for(lambda: h.log().count("did_not_take") >= 2, 30, lambda: "a second deferral\n" + c.logs())
    assert a.queued() == 1 and b.queued() == 1 and hc.maildir("carol") == []
    hc.start()
    a.retry_now()
    b.retry_now()
    wait_for(lambda: len(hc.maildir("carol")) == 2, 60, lambda: "carol's mail on C\n" + c.logs())
    settled(c)
    assert_only_on_home(c, "carol", ["while C was down, via a", "while C was down, via b"])
    c.assert_no_bounces()


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
    wait_for(lambda: "home_host_hostc.example.net_did_not_take" in a.log(), 30, lambda: "A's deferral\n" + c.logs())
    wait_for(lambda: "home_host_hosta.example.net_did_not_take" in hc.log(), 30, lambda: "C's deferral\n" + c.logs())
    wait_for(lambda: len(b.maildir("bob")) == 1, 30, lambda: "bob's mail\n" + c.logs())
    assert a.queued() == 1 and hc.queued() == 1
    assert hc.maildir("carol") == [] and a.maildir("alice") == []
    c.heal(hc)
    a.retry_now()
    hc.retry_now()
    wait_for(lambda: len(hc.maildir("carol")) == 1 and len(a.maildir("alice")) == 1, 60,
             lambda: "mail after the partition\n" + c.logs())
    settled(c)
    assert_only_on_home(c, "carol", ["across the partition, via a"])
    assert_only_on_home(c, "alice", ["across the partition, from c"])
    assert_only_on_home(c, "bob", ["inside the partition, via b"])
    c.assert_no_bounces()


def test_a_loop_guard_line_from_outside_does_not_hold_mail(cluster):
    """The guard line is the cluster's own (signed with control/
    clustersecret): lines that an SMTP client wrote into the message, as
    many as the hop limit and with a made-up MAC, must not stop the
    hand-over to the home host."""
    c = cluster
    a, _, hc = c.hosts
    with c.smtp(a) as s:
        s.sendmail("sender@remote.example", ["carol@example.org"],
                   "X-Cluster-Delivered-To: carol@example.org\r\n"
                   "X-Cluster-Delivered-To: carol@example.org; mac=" + "0" * 40 + "\r\n"
                   "Subject: forged guard\r\n\r\nforged\r\n")
    wait_for(lambda: "delivery 1: " in a.log(), 30, lambda: "A's first delivery\n" + c.logs())
    assert "cluster_loop" not in a.log(), a.log()
    wait_for(lambda: len(hc.maildir("carol")) == 1, 30, lambda: "carol's mail on C\n" + c.logs())


# ------------------------------------------------------------------ POP3

def mail_everyone(c):
    """One message for each user, queued on its home host; and in every
    other host's copy of the user's Maildir (the file store makes one on
    each host) a decoy that no POP3 session may show."""
    for user in USERS:
        home_of(c, user).inject(f"{user}@example.org", f"for {user}")
    for user in USERS:
        home = home_of(c, user)
        wait_for(lambda: len(home.maildir(user)) == 1, 30, lambda: f"{user}'s message\n" + c.logs())
        for h in c.hosts:
            new = h.q.path / "domains" / "example.org" / user / "Maildir" / "new"
            if h is not home and new.is_dir():
                (new / f"1.decoy.{h.name}").write_bytes(f"Subject: decoy on {h.letter}\n\ndecoy\n".encode())


def pop3_answer(c, host, user, password=None, source=None):
    """host's answer to user's PASS (the client QUITs after a +OK)."""
    with c.pop3(host, source=source) as p:
        p.user(f"{user}@example.org")
        try:
            answer = p.pass_(password or f"pw-{user}").decode()
        except poplib.error_proto as e:
            return e.args[0].decode()
        p.quit()
        return answer


def pop3_subjects(c, host, user):
    """The subjects of the messages user reads through host's POP3 (RETR)."""
    with c.pop3(host) as p:
        p.user(f"{user}@example.org")
        p.pass_(f"pw-{user}")
        got = []
        for i in range(1, p.stat()[0] + 1):
            lines = p.retr(i)[1]
            got += [ln[len(b"Subject: "):].decode() for ln in lines if ln.startswith(b"Subject: ")]
        p.quit()
    return sorted(got)


def services_log(h):
    return h.services_log.read_text(errors="replace") if h.services_log.exists() else ""


def relayed(user, home, port=cluster_net.POP3_PORT):
    return f"qmail-pop3proxy: {user}@example.org relayed to home host {home.name} {home.addr}:{port}\n"


def mpop_fetch(c, host, user):
    """mpop in the client namespace fetches user's mail through host and
    deletes it there; returns the messages it delivered."""
    out = c.base / f"mpop-{host.letter}-{user}"
    for d in ("new", "cur", "tmp"):
        (out / d).mkdir(parents=True)
    (out / "pw").write_text(f"pw-{user}")
    r = c.client_run(["mpop", f"--host={host.addr}", "--port=110", f"--user={user}@example.org",
                      f"--passwordeval=cat {out / 'pw'}", "--auth=user", "--tls=off", f"--delivery=maildir,{out}",
                      "--keep=off", f"--uidls-file={out / 'uidls'}", "--timeout=30", "--quiet"],
                     capture_output=True, timeout=120, env={**os.environ, "HOME": str(out)})
    assert r.returncode == 0, (host.name, user, r.stdout, r.stderr, services_log(host))
    return [m.read_bytes() for m in (out / "new").iterdir()]


def test_pop3_on_any_host_reads_the_mailbox_on_its_home_host(cluster):
    """Each user, through each host: poplib and curl (pop3://) see the one
    message in the home host's Maildir, never the decoys in the other
    hosts' copies. A front host logs the relay; the home host's login line
    names the client's address, which the front host passed on (XCLIENT:
    every clusterhosts lists every host). mpop
    through a host that is not the home host fetches and deletes: the
    home host's Maildir is emptied."""
    c = cluster
    client = cluster_net.CLIENT_ADDR
    mail_everyone(c)
    for h in c.hosts:
        for user in USERS:
            assert pop3_subjects(c, h, user) == [f"for {user}"], (h.name, user, services_log(h))
            r = c.client_run(["curl", "-sS", "--max-time", "30", "--user", f"{user}@example.org:pw-{user}",
                              f"pop3://{h.addr}/1"], capture_output=True, timeout=60)
            assert r.returncode == 0 and f"Subject: for {user}\r\n".encode() in r.stdout, (h.name, user, r)
    for h in c.hosts:
        for user in USERS:
            home = home_of(c, user)
            if h is home:
                assert f"qmail-pop3proxy: {user}@" not in services_log(h)
                continue
            assert services_log(h).count(relayed(user, home)) == 2, services_log(h)
            # qmail-popup logs "ok" once the session it ran has ended
            named = re.compile(rf"qmail-popup: XCLIENT from {re.escape(h.addr)}: remote={re.escape(client)} "
                               rf"port=\d+\nqmail-popup: login ok remote={re.escape(client)} user={user}@example.org\n")
            wait_for(lambda: len(named.findall(services_log(home))) == 2,
                     10, lambda: f"{home.name}'s login lines\n" + services_log(home))
            assert f"remote={h.addr} " not in services_log(home)
    for user in USERS:
        home = home_of(c, user)
        front = c.hosts[(c.hosts.index(home) + 1) % len(c.hosts)]
        got = mpop_fetch(c, front, user)
        assert len(got) == 1 and f"Subject: for {user}\n".encode() in got[0], got
        wait_for(lambda: home.maildir(user) == [], 10, f"{user}'s Maildir on {home.name} emptied by mpop")
        for h in c.hosts:
            if h is not home:
                assert [m.name for m in h.maildir(user)] == [f"1.decoy.{h.name}"]


def test_pop3_for_a_stopped_home_host_is_a_temporary_failure(cluster):
    """C stopped: carol's login on A or B is answered -ERR [SYS/TEMP]
    (not a failed login), her mail on C stays as it was, the other users
    are served; C started again, her login works on every host."""
    c = cluster
    a, b, hc = c.hosts
    mail_everyone(c)
    before = hc.maildir("carol")
    hc.stop()
    for front in (a, b):
        answer = pop3_answer(c, front, "carol")
        assert answer.startswith("-ERR [SYS/TEMP]"), answer
        log = services_log(front)
        assert (f"qmail-pop3proxy: carol@example.org not relayed to home host {hc.name}: "
                f"unable to connect to {hc.addr}:110") in log, log
        assert f"qmail-popup: login temporary remote={cluster_net.CLIENT_ADDR} user=carol@example.org\n" in log
        assert "login failed" not in log
    assert pop3_subjects(c, a, "bob") == ["for bob"] and pop3_subjects(c, b, "alice") == ["for alice"]
    assert hc.maildir("carol") == before
    hc.start()
    for front in c.hosts:
        assert pop3_subjects(c, front, "carol") == ["for carol"]


def test_pop3_to_a_partitioned_home_host_fails_within_the_timeout(cluster):
    """C's link down: carol's login on A gets -ERR [SYS/TEMP] once the
    connection to C has had control/timeoutconnect (3 s), while A and B
    serve their own users; the link up again, her login on A works."""
    c = cluster
    a, b, hc = c.hosts
    mail_everyone(c)
    c.partition(hc)
    t0 = time.monotonic()
    answer = pop3_answer(c, a, "carol")
    took = time.monotonic() - t0
    assert answer.startswith("-ERR [SYS/TEMP]"), answer
    assert took < TIMEOUTCONNECT + 10, took  # the slack is for a loaded machine
    assert f"carol@example.org not relayed to home host {hc.name}: unable to connect to {hc.addr}:110" \
        in services_log(a), services_log(a)
    assert pop3_subjects(c, b, "alice") == ["for alice"]
    assert len(hc.maildir("carol")) == 1
    c.heal(hc)
    wait_for(lambda: pop3_answer(c, a, "carol").startswith("+OK"), 30, lambda: "after heal\n" + services_log(a))
    assert pop3_subjects(c, a, "carol") == ["for carol"]


def test_pop3_proxy_speaks_tls_to_the_home_host(cluster):
    """Frames read on B's port of the bridge: in plain text the proxy's
    PASS line and bob's message cross it; with clusterpop3tls stls (port
    110) and tls (995, tlswrap) and the test's CA in clusterca.pem, neither
    does, and every user is still served through every host. B's
    certificate from a CA that clusterca.pem does not hold: [SYS/TEMP]."""
    import backend_servers
    c = cluster
    a, b, hc = c.hosts
    mail_everyone(c)
    with c.capture(b) as frames:
        assert pop3_subjects(c, a, "bob") == ["for bob"]
    assert any(b"PASS pw-bob\r\n" in f for f in frames), len(frames)
    certs = backend_servers.make_certs(c.base / "certs", name=b.name, san=",".join(f"DNS:{h.name}" for h in c.hosts))
    for mode, port in (("stls", cluster_net.POP3_PORT), ("tls", cluster_net.POP3S_PORT)):
        c.pop3_tls(mode, certs)
        with c.capture(b) as frames:
            for front in (a, hc):
                assert pop3_subjects(c, front, "bob") == ["for bob"], (mode, services_log(front))
        assert len(frames) > 10
        assert not any(b"pw-bob" in f or b"for bob" in f for f in frames), mode
        for front in (a, hc):
            assert relayed("bob", b, port) in services_log(front)
        for h in c.hosts:
            for user in USERS:
                assert pop3_subjects(c, h, user) == [f"for {user}"], (mode, h.name, user, services_log(h))
    a.q.control("clusterca.pem", (certs / "otherca.pem").read_text())
    answer = pop3_answer(c, a, "bob")
    assert answer.startswith("-ERR [SYS/TEMP]"), answer
    assert f"certificate of {b.name}" in services_log(a), services_log(a)
    assert len(b.maildir("bob")) == 1


def test_failed_logins_through_the_proxy_and_the_home_hosts_limits(cluster):
    """B allows 2 refused passwords per address (authfaillimit "ip 2 600";
    the per-account limit off). Wrong passwords typed on A are refused by
    A itself ([AUTH]) and never reach B. When B refuses a password A
    accepted (bob's changed on B, A's copy of the directory not yet caught
    up), B counts the refusal against the client: every host's
    clusterhosts lists A, so B takes A's XCLIENT. After two, that client's
    logins are refused on B, through any host and directly ([SYS/TEMP]),
    while another client, relayed by the same A, gets in; no host's
    address is locked out for its clients, without any authfailexempt."""
    c = cluster
    a, b, hc = c.hosts
    x, y = cluster_net.CLIENT_ADDR, cluster_net.CLIENT_ADDR2
    c.admin_all("vadduser", "-H", b.name, "erin@example.org", password="pw-erin")
    b.q.control("authfaillimit", "ip 2 600\nuser 0 0\n")
    for _ in range(3):
        assert pop3_answer(c, a, "bob", "wrong").startswith("-ERR [AUTH]")
    assert pop3_answer(c, a, "erin").startswith("+OK")
    assert "login failed" not in services_log(b)
    b.admin("vpasswd", "bob@example.org", password="pw-bob-changed")
    for _ in range(2):
        assert pop3_answer(c, a, "bob").startswith("-ERR [SYS/TEMP]")
    log = services_log(b)
    assert log.count(f"qmail-popup: login failed remote={x} user=bob@example.org\n") == 2, log
    assert f"login failed remote={a.addr} " not in log
    assert f"qmail-popup: XCLIENT from {a.addr}: remote={x} port=" in log
    for front in (a, hc):
        answer = pop3_answer(c, front, "erin")
        assert answer.startswith("-ERR [SYS/TEMP]"), answer
        assert "refused the login: -ERR [SYS/TEMP] too many failed logins" in services_log(front)
    assert pop3_answer(c, b, "erin").startswith("-ERR [SYS/TEMP]")
    for front in (a, hc, b):
        assert pop3_answer(c, front, "erin", source=y).startswith("+OK"), services_log(b)
    assert f"qmail-popup: login limited remote={x} user=erin@example.org" in services_log(b)
    assert f"login limited remote={a.addr} " not in services_log(b)
    assert pop3_answer(c, a, "bob", "pw-bob-changed", source=y).startswith("-ERR [AUTH]")  # A checks with its own copy
