"""Moving a mailbox between hosts in network namespaces (issue 22: "a
mailbox moved under load: nothing lost, nothing duplicated beyond what
qmail allows, no bounce"). Three full instances (cluster_net.py); alice
lives on A. vmoveuser runs in A's namespace and reaches the receiver,
`vmoveuser -R`, in B's namespace with `ip netns exec` (a real site's
`ssh hostb`), while SMTP clients keep sending to alice through all three
hosts and a POP3 client keeps logging in to her through all three. Then
the third host's directory, which still says A: its mail goes to A,
which passes it on to B, until `vmoduser -H` there sends it to B directly.
"""
import collections
import os
import poplib
import re
import subprocess
import threading
import time

import pytest

import cluster_net
from conftest import wait_for

ADDRESS = "alice@example.org"
LOAD_HEADER = re.compile(rb"^X-Load-Id: (\S+)$", re.M)


@pytest.fixture(scope="module")
def account():
    with cluster_net.namespace_account("sqmv") as pw:
        yield pw


@pytest.fixture
def cluster(account):
    with cluster_net.Cluster(3, control={"timeoutconnect": "3\n"}) as c:
        c.admin_all("vadddomain", "-u", account.pw_name, "example.org", password="pm")
        c.admin_all("vadduser", "-H", c.hosts[0].name, ADDRESS, password="pw-alice")
        c.admin_all("vadduser", "-H", c.hosts[1].name, "bob@example.org", password="pw-bob")
        c.start()
        c.account = account
        yield c


def userdir(h, user="alice"):
    return h.q.path / "domains" / "example.org" / user


def load_ids(h):
    """X-Load-Id of every message in alice's live Maildir on h (one entry
    per file: a duplicate shows twice)."""
    ids = []
    for p in h.maildir("alice"):
        m = LOAD_HEADER.search(p.read_bytes().split(b"\n\n", 1)[0])
        ids.append(m.group(1).decode() if m else "?" + p.name)
    return ids


def home_host_line(h):
    f = userdir(h).parent / "vmailhost"
    return next((ln for ln in f.read_text().splitlines() if ln.startswith("alice:")), None) if f.exists() else None


def send_one(c, host, ident):
    with c.smtp(host) as s:
        s.sendmail("sender@remote.example", [ADDRESS],
                   f"From: sender@remote.example\r\nX-Load-Id: {ident}\r\nSubject: {ident}\r\n\r\n{ident}\r\n")


class Load:
    """SMTP clients, one per host, sending to alice without pause (each
    message with its own X-Load-Id), and a POP3 client logging in to her
    through each host in turn (STAT, QUIT: it deletes nothing), until
    stop(). Every accepted message, every POP3 answer and every client
    error is recorded."""

    def __init__(self, c):
        self.c = c
        self.accepted = []
        self.errors = []
        self.pop3 = collections.Counter()   # (host letter, answer kind)
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.smtp, args=(h,), daemon=True) for h in c.hosts]
        self.threads.append(threading.Thread(target=self.poll, daemon=True))
        for t in self.threads:
            t.start()

    def smtp(self, host):
        i = 0
        deadline = time.monotonic() + 300
        while not self.done.is_set() and time.monotonic() < deadline:
            try:
                with self.c.smtp(host) as s:
                    for _ in range(20):   # a few messages per session, as a busy client sends them
                        if self.done.is_set():
                            break
                        ident = f"{host.letter}-{i}"
                        s.sendmail("sender@remote.example", [ADDRESS],
                                   f"From: sender@remote.example\r\nX-Load-Id: {ident}\r\n"
                                   f"Subject: load {ident}\r\n\r\nload {ident}\r\n")
                        self.accepted.append(ident)
                        i += 1
                        time.sleep(0.02)
            except Exception as e:  # noqa: BLE001 (asserted empty by the test)
                self.errors.append(f"SMTP via {host.letter}: {e!r}")
                time.sleep(0.2)

    def poll(self):
        deadline = time.monotonic() + 300
        n = 0
        while not self.done.is_set() and time.monotonic() < deadline:
            h = self.c.hosts[n % len(self.c.hosts)]
            n += 1
            try:
                with self.c.pop3(h) as p:
                    p.user(ADDRESS)
                    try:
                        p.pass_("pw-alice")
                    except poplib.error_proto as e:
                        answer = e.args[0].decode()
                        self.pop3[(h.letter, "temporary" if answer.startswith("-ERR [SYS/TEMP]") else answer)] += 1
                        continue
                    p.stat()
                    p.quit()
                    self.pop3[(h.letter, "ok")] += 1
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"POP3 via {h.letter}: {e!r}")
            time.sleep(0.05)

    def served(self):
        """POP3 logins served so far (callable while the load runs: the
        counts are copied in one step before they are read)."""
        return sum(n for (_, kind), n in list(self.pop3.items()) if kind == "ok")

    def sent_by(self, letter):
        return sum(1 for i in self.accepted if i.startswith(letter + "-"))

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(60)
        assert not any(t.is_alive() for t in self.threads)


def seed(c, a, n=60):
    """n read messages of 200 kB in alice's cur/ on A (so that the copy
    takes a while), each with its own X-Load-Id."""
    cur = userdir(a) / "Maildir" / "cur"
    pad = b"x" * 200_000 + b"\n"
    ids = []
    for i in range(n):
        ident = f"seed-{i}"
        p = cur / f"{1700000000 + i}.M{i}P1.{a.name}:2,S"
        p.write_bytes(b"X-Load-Id: %s\nSubject: seed\n\n" % ident.encode() + pad)
        os.chown(p, c.account.pw_uid, c.account.pw_gid)
        ids.append(ident)
    return ids


def settle(c, want, poke_after=20):
    """Waits until B holds `want` messages and every queue is empty. The
    mail deferred during the move is retried at once (vmoveuser wakes the
    qmail-sends of A and B); a delivery that was under way at that
    moment waits for qmail's next retry, so after `poke_after` seconds
    every qmail-send is woken again."""
    b = c.hosts[1]
    start = time.monotonic()

    def done():
        if len(b.maildir("alice")) >= want and all(h.queued() == 0 for h in c.hosts):
            return True
        if time.monotonic() - start > poke_after:
            for h in c.hosts:
                h.retry_now()
        return False
    wait_for(done, 120, lambda: f"{len(b.maildir('alice'))} of {want} on B\n" + c.logs(), step=0.5)
    time.sleep(1.0)  # a late duplicate would show now


def deliveries_to_alice(h):
    return sum(1 for ln in h.log().splitlines() if "starting delivery" in ln and "alice@example.org" in ln)


def markers(message):
    return len(re.findall(rb"^X-Cluster-Delivered-To: alice@example.org; mac=[0-9a-f]{40}$", message, re.M))


def message_with(h, ident):
    for p in h.maildir("alice"):
        m = p.read_bytes()
        if re.search(rb"^X-Load-Id: " + re.escape(ident.encode()) + rb"$", m, re.M):
            return m
    return None


def test_move_under_load_across_namespaces(cluster):
    """alice moved from A to B while three SMTP clients (through A, B and C)
    and a POP3 client keep at her: every accepted message is in B's
    Maildir exactly once (counted by X-Load-Id), with the 60 that were on
    A; A's live Maildir is gone (kept aside), C's copy is empty; no bounce
    and no failed delivery anywhere, every queue empty; some mail waited
    for the mark; POP3 logins were served or refused for now, never as a
    wrong password; afterwards POP3 through every host reads B's Maildir."""
    c = cluster
    a, b, hc = c.hosts
    seeded = seed(c, a)
    load = Load(c)
    try:
        wait_for(lambda: all(load.sent_by(h.letter) >= 10 for h in c.hosts) or load.errors, 60,
                 lambda: f"the first messages: {load.accepted[-5:]} {load.errors}")
        assert not load.errors
        receiver = f"ip netns exec {b.ns.name} env QMAIL_HOME={b.q.path} {b.q.bin('vmoveuser')} -R"
        t0 = time.monotonic()
        mover = a.popen("vmoveuser", [a.q.bin("vmoveuser"), "-v", receiver, ADDRESS, b.name],
                        log=c.base / "vmoveuser.log")
        mover.wait(timeout=180)
        took = time.monotonic() - t0
        out = (c.base / "vmoveuser.log").read_text()
        assert mover.returncode == 0, out
        a.procs.pop("vmoveuser")
        during = len(load.accepted)
        # The load goes on until 30 more messages are in and POP3 has
        # served a few logins (how many it met during the move depends on
        # how fast the move was).
        wait_for(lambda: (len(load.accepted) >= during + 30 and load.served() > 3) or load.errors, 60,
                 lambda: f"mail and POP3 logins after the move: {len(load.accepted) - during} {dict(load.pop3)}")
    finally:
        load.stop()
    assert not load.errors, load.errors
    assert "60 files" in out or "copied to hostb.example.net" in out, out
    settle(c, len(seeded) + len(load.accepted))
    got = collections.Counter(load_ids(b))
    twice = {k: n for k, n in got.items() if n > 1}
    missing = set(load.accepted) | set(seeded)
    missing -= set(got)
    assert not twice and not missing, (twice, sorted(missing)[:20], c.logs())
    assert set(got) == set(load.accepted) | set(seeded)
    # The old home keeps only the copy set aside; no host but B holds her mail.
    assert not userdir(a).exists()
    kept = [p for p in userdir(a).parent.iterdir() if p.name.startswith("alice:")]
    assert len(kept) == 1 and kept[0].name.startswith("alice:moved-"), kept
    assert hc.maildir("alice") == []
    assert not [p for p in userdir(b).parent.iterdir() if p.name.startswith("alice:")]
    assert home_host_line(a) == home_host_line(b) == f"alice:{b.name}"
    assert home_host_line(hc) == f"alice:{a.name}"
    c.assert_no_bounces()
    assert "being_moved" in a.log(), c.logs()    # the load met the mark: mail waited, none was lost
    # POP3 meanwhile: served, or refused for now while she was marked.
    kinds = {k for _, k in load.pop3}
    assert kinds <= {"ok", "temporary"}, load.pop3
    assert load.served() > 3, load.pop3
    # POP3 through every host now reads B's Maildir (C's through A, whose directory says B).
    total = len(b.maildir("alice"))
    for h in c.hosts:
        with c.pop3(h) as p:
            p.user(ADDRESS)
            p.pass_("pw-alice")
            assert p.stat()[0] == total, h.name
            p.quit()
    print(f"move took {took:.2f} s under load; {len(load.accepted)} messages sent, POP3 answers {dict(load.pop3)}")


def test_a_stale_directory_elsewhere_still_reaches_the_new_home(cluster):
    """After the move only A and B know; C's directory still says A. Mail
    through C goes to A, which sends it on to B (two signed markers: two
    crossings); POP3 through C reaches B too. `vmoduser -H` on C makes it
    send to B directly (one marker, sent from C's address) and A sees no
    more of alice's mail."""
    c = cluster
    a, b, hc = c.hosts
    send_one(c, a, "before")
    wait_for(lambda: len(a.maildir("alice")) == 1, 30, lambda: "alice's mail on A\n" + c.logs())
    receiver = f"ip netns exec {b.ns.name} env QMAIL_HOME={b.q.path} {b.q.bin('vmoveuser')} -R"
    r = run_in(a, ["vmoveuser", "-r", "-v", receiver, ADDRESS, b.name])
    assert r.returncode == 0, r.stderr
    assert not userdir(a).exists() and home_host_line(hc) == f"alice:{a.name}"
    send_one(c, hc, "stale")
    wait_for(lambda: message_with(b, "stale"), 60, lambda: "the stale route\n" + c.logs())
    m = message_with(b, "stale")
    assert markers(m) == 2, m
    with c.pop3(hc) as p:
        p.user(ADDRESS)
        p.pass_("pw-alice")
        assert p.stat()[0] == 2
        p.quit()
    a_deliveries = deliveries_to_alice(a)
    hc.admin("vmoduser", "-H", b.name, ADDRESS)
    assert home_host_line(hc) == f"alice:{b.name}"
    send_one(c, hc, "fixed")
    wait_for(lambda: message_with(b, "fixed"), 60, lambda: "the direct route\n" + c.logs())
    m = message_with(b, "fixed")
    assert markers(m) == 1, m
    assert re.search(re.escape(hc.addr.encode()) + rb"(?![0-9])", m.split(b"\n\n")[0]), m
    for h in c.hosts:
        wait_for(lambda: h.queued() == 0, 30, lambda: "empty queues\n" + c.logs())
    assert deliveries_to_alice(a) == a_deliveries, a.log()
    assert sorted(load_ids(b)) == ["before", "fixed", "stale"]
    c.assert_no_bounces()


def run_in(h, argv):
    """A program of h's home run in h's namespace, to its end."""
    return subprocess.run(h.ns.argv([h.q.bin(argv[0]), *argv[1:]]), env=h.q.env, capture_output=True,
                          text=True, timeout=180)
