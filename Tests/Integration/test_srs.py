"""SRS, run as programs: forwards by qmail-local (& and bare address lines),
forward, fastforward, dot-forward and a valias in vdelivermail give remote
targets an SRS0/SRS1 envelope sender signed by qmail-srs; qmail-smtpd
refuses forged and expired SRS recipients at RCPT; srsreverse sends a
bounce to the SRS address back to the original sender; addresses made by
a second implementation (Python srslib) verify with ours and the other way
round; and the whole path through qmail-send and qmail-remote to a private
Postfix, whose received sender passes SPF served by a loopback DNS."""
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

import postfix_helper
import spf_dns
from smtp_helpers import free_port, queued, replies, session
from test_local import home  # noqa: F401 (a fixture)

SRSDOMAIN = "srs.test.example.com"
MSG = b"From: s@x.org\nSubject: forwarded\n\nhello\n"
DAY = 86400


def srslib_or_skip():
    return pytest.importorskip("srslib")


def secrets(qhome):
    return [l for l in (qhome.path / "control" / "srssecrets").read_text().split("\n") if l and not l.startswith("#")]


def their_srs(qhome, now=None):
    """Python srslib with our secrets (the first signs), at `now`."""
    srslib = srslib_or_skip()
    s = secrets(qhome)
    srs = srslib.SRS(s[0], prev_secrets=s[1:])
    if now is not None:
        srs._time_fn = lambda: now
    return srs


def enable_srs(qhome):
    qhome.control("srsdomain", SRSDOMAIN + "\n")
    qhome.control("virtualdomains", f"{SRSDOMAIN}:alias-srs\n")
    qhome.control("rcpthosts", f"{qhome.fqdn}\n{SRSDOMAIN}\n")


@pytest.fixture
def srs_home(qhome):
    enable_srs(qhome)
    return qhome


def local(qhome, home, tmp_path, *, local="joe", dash="", ext="", sender="s@x.org", domain=None,
          user="joe", msg=MSG, env=None):
    """qmail-local as qmail-lspawn runs it, the message on a seekable stdin."""
    mf = tmp_path / f"msg-{uuid.uuid4().hex}"
    mf.write_bytes(msg)
    with open(mf, "rb") as f:
        return qhome.run("qmail-local", user, str(home), local, dash, ext, domain or qhome.fqdn, sender, "./Maildir/",
                         stdin=f, env=env)


def dot_qmail(home, name, text):
    p = home / name
    p.write_text(text)
    p.chmod(0o644)


def qmail_srs(qhome, verb, address, env=None):
    r = qhome.run("qmail-srs", verb, address, env=env)
    return r.returncode, r.stdout.decode().strip(), r.stderr.decode()


SRS0 = re.compile(r"SRS0=([A-Za-z0-9+/]{4})=([A-Z2-7]{2})=([^=]+)=(.+)@" + re.escape(SRSDOMAIN))


# ---------------------------------------------------------------- forwarding

def test_dot_qmail_forward_lines_get_an_srs_sender(srs_home, home, tmp_path):
    dot_qmail(home, ".qmail", "&friend@remote.example\nbare@remote.example\n")
    r = local(srs_home, home, tmp_path)
    assert r.returncode == 0, r.stderr
    [(mess, sender, rcpts)] = queued(srs_home)
    assert rcpts == [b"friend@remote.example", b"bare@remote.example"]
    m = SRS0.fullmatch(sender.decode())
    assert m and m.group(3, 4) == ("x.org", "s"), sender
    assert mess.startswith(b"Received") or b"Delivered-To: joe@test.example.com\n" in mess
    # ours verifies it, and so does a second implementation
    assert qmail_srs(srs_home, "reverse", sender.decode())[:2] == (0, "s@x.org")
    assert their_srs(srs_home).reverse(sender.decode()) == "s@x.org"


@pytest.mark.parametrize("case", ["local-target", "null-sender", "our-sender", "srs-off", "qmail-double-bounce"])
def test_senders_left_unchanged(srs_home, home, tmp_path, case):
    sender, target = "s@x.org", "friend@remote.example"
    if case == "local-target":
        target = f"other@{srs_home.fqdn}"
    elif case == "null-sender":
        sender = ""
    elif case == "our-sender":
        sender = f"me@{srs_home.fqdn}"
    elif case == "srs-off":
        (srs_home.path / "control" / "srsdomain").unlink()
    elif case == "qmail-double-bounce":
        sender = "#@[]"
    dot_qmail(home, ".qmail", f"&{target}\n")
    r = local(srs_home, home, tmp_path, sender=sender)
    assert r.returncode == 0, r.stderr
    [(_, got, _)] = queued(srs_home)
    assert got == sender.encode()


def test_an_srs0_sender_becomes_srs1_and_reverses_to_the_first_forwarder(srs_home, home, tmp_path):
    first = their_srs(srs_home).forward("alice@origin.example", "first.example")  # another forwarder's SRS0
    assert first.startswith("SRS0=")
    dot_qmail(home, ".qmail", "&friend@remote.example\n")
    assert local(srs_home, home, tmp_path, sender=first).returncode == 0
    [(_, sender, _)] = queued(srs_home)
    s = sender.decode()
    assert s.startswith("SRS1=") and s.endswith("=first.example==" + first[5:first.index("@")] + "@" + SRSDOMAIN), s
    assert qmail_srs(srs_home, "reverse", s)[:2] == (0, first)
    assert their_srs(srs_home).reverse(s) == first


def test_the_forward_program_rewrites_too(srs_home, home, tmp_path):
    dot_qmail(home, ".qmail", f"|{srs_home.bin('forward')} f1@remote.example\n")
    assert local(srs_home, home, tmp_path).returncode == 0
    [(_, sender, rcpts)] = queued(srs_home)
    assert SRS0.fullmatch(sender.decode()) and rcpts == [b"f1@remote.example"]


def test_fastforward_and_dot_forward(srs_home, home, tmp_path):
    cdb = tmp_path / "aliases.cdb"
    r = srs_home.run("setforward", str(cdb), str(cdb) + ".tmp",
                     input=f"info@{srs_home.fqdn}: friend@remote.example;\n")
    assert r.returncode == 0, r.stderr
    dot_qmail(home, ".qmail-default", f"|{srs_home.bin('fastforward')} -d {cdb}\n")
    r = local(srs_home, home, tmp_path, local="joe-info", dash="-", ext="info")
    assert r.returncode == 0, r.stderr + r.stdout
    dot_qmail(home, ".forward", "dotted@remote.example\n")
    dot_qmail(home, ".qmail", f"|{srs_home.bin('dot-forward')} .forward\n./Maildir/\n")
    r = local(srs_home, home, tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    got = {tuple(rc): s.decode() for _, s, rc in queued(srs_home)}
    assert set(got) == {(b"friend@remote.example",), (b"dotted@remote.example",)}
    for s in got.values():
        assert SRS0.fullmatch(s) and their_srs(srs_home).reverse(s) == "s@x.org", s


@pytest.mark.parametrize("break_it", ["no-helper", "no-secret", "empty-secret"])
def test_helper_trouble_defers_and_queues_nothing(srs_home, home, tmp_path, break_it):
    if break_it == "no-helper":
        (srs_home.path / "bin" / "qmail-srs").unlink()
    elif break_it == "no-secret":
        (srs_home.path / "control" / "srssecrets").unlink()
    else:
        (srs_home.path / "control" / "srssecrets").write_text("# rotated away\n")
    dot_qmail(home, ".qmail", "&friend@remote.example\n")
    r = local(srs_home, home, tmp_path)
    assert r.returncode == 111, r.stdout + r.stderr
    assert queued(srs_home) == []
    cdb = tmp_path / "a.cdb"
    srs_home.run("setforward", str(cdb), str(cdb) + ".tmp", input=f"info@{srs_home.fqdn}: friend@remote.example;\n")
    dot_qmail(home, ".qmail-default", f"|{srs_home.bin('fastforward')} -d {cdb}\n")
    r = local(srs_home, home, tmp_path, local="joe-info", dash="-", ext="info")
    assert r.returncode == 111, r.stdout + r.stderr
    assert queued(srs_home) == []


def test_secret_rotation_first_signs_all_verify(srs_home):
    old = secrets(srs_home)[0]
    code, made_with_old, _ = qmail_srs(srs_home, "forward", "s@x.org")
    assert code == 0
    (srs_home.path / "control" / "srssecrets").write_text(f"a-new-secret-for-signing\n{old}\n")
    assert qmail_srs(srs_home, "reverse", made_with_old)[:2] == (0, "s@x.org")
    code, made_with_new, _ = qmail_srs(srs_home, "forward", "s@x.org")
    assert made_with_new != made_with_old
    (srs_home.path / "control" / "srssecrets").write_text(f"{old}\n")
    assert qmail_srs(srs_home, "reverse", made_with_new)[0] == 100


# ---------------------------------------------------------------- vdelivermail's valias

def test_valias_to_a_remote_target(srs_home, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    # vadddomain wants a real account to own the domain; root is refused.
    name = f"sqsrs{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True)
    try:
        q = srs_home
        r = q.run("vadddomain", "-u", name, "example.org", input="pmpass\n")
        assert r.returncode == 0, r.stderr
        assert q.run("valias", "-i", "friend@remote.example", "info@example.org").returncode == 0
        assert q.run("valias", "-i", "me@example.org", "info@example.org").returncode == 0
        env = dict(q.env)
        env.update({"HOST": "example.org", "LOCAL": "example.org-info", "EXT": "info", "DEFAULT": "info",
                    "SENDER": "s@x.org", "RECIPIENT": "example.org-info@example.org", "USER": "example.org",
                    "DTLINE": "Delivered-To: info@example.org\n", "RPLINE": "Return-Path: <s@x.org>\n"})
        r = subprocess.run([q.bin("vdelivermail"), "", "bounce-no-mailbox"], input=MSG, env=env,
                           capture_output=True, timeout=60, cwd=str(q.path))
        assert r.returncode == 0, r.stderr
        [(_, sender, rcpts)] = queued(q)
        assert rcpts == [b"friend@remote.example", b"me@example.org"]
        assert their_srs(q).reverse(sender.decode()) == "s@x.org"
    finally:
        subprocess.run(["userdel", name], check=False)


# ---------------------------------------------------------------- qmail-smtpd at RCPT

def rcpt(qhome, address, **env):
    data = f"HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<{address}>\r\nQUIT\r\n".encode()
    code, out = session(qhome, data, **env)
    return replies(out)[3]


def test_smtpd_accepts_good_and_refuses_forged_and_expired(srs_home):
    now = time.time()
    good = qmail_srs(srs_home, "forward", "s@x.org")[1]
    assert rcpt(srs_home, good).startswith("250")
    assert rcpt(srs_home, good.upper()).startswith("250")  # case folded by a relay
    theirs = their_srs(srs_home).forward("bob@y.example", SRSDOMAIN)
    assert rcpt(srs_home, theirs).startswith("250")
    local_part = good[:good.index("@")]
    forged = local_part.replace("=x.org=s", "=x.org=mallory") + "@" + SRSDOMAIN
    assert rcpt(srs_home, forged).startswith("550 ") and "5.7.1" in rcpt(srs_home, forged)
    wrong_hash = "SRS0=AAAA" + good[9:]
    assert rcpt(srs_home, wrong_hash).startswith("550 ")
    # 22 days old (the limit is 21), and 21 days old: made with the right
    # secret by the other implementation at a crafted time.
    expired = their_srs(srs_home, now - 22 * DAY).forward("s@x.org", SRSDOMAIN)
    assert rcpt(srs_home, expired).startswith("550 ")
    assert rcpt(srs_home, their_srs(srs_home, now - 20 * DAY).forward("s@x.org", SRSDOMAIN)).startswith("250")
    assert rcpt(srs_home, "SRS0=abcd=G3@" + SRSDOMAIN).startswith("550 ")
    # a forged SRS1 (the outer hash)
    srs1 = qmail_srs(srs_home, "forward", theirs.replace("@" + SRSDOMAIN, "@first.example"))[1]
    assert srs1.startswith("SRS1=") and rcpt(srs_home, srs1).startswith("250")
    assert rcpt(srs_home, "SRS1=ZZZZ" + srs1[9:]).startswith("550 ")
    # other addresses at the SRS domain are not SRS's business
    assert rcpt(srs_home, "postmaster@" + SRSDOMAIN).startswith("250")
    # a relay client cannot get a forged one relayed either
    assert rcpt(srs_home, forged, RELAYCLIENT="").startswith("550 ")
    assert queued(srs_home) == []


def test_smtpd_defers_when_the_helper_cannot_answer(srs_home):
    good = qmail_srs(srs_home, "forward", "s@x.org")[1]
    (srs_home.path / "bin" / "qmail-srs").unlink()
    assert rcpt(srs_home, good).startswith("451 ")


def test_smtpd_without_srsdomain_checks_nothing(qhome):
    qhome.control("rcpthosts", f"{qhome.fqdn}\n{SRSDOMAIN}\n")
    assert rcpt(qhome, "SRS0=AAAA=G3=x.org=s@" + SRSDOMAIN).startswith("250")


# ---------------------------------------------------------------- bounces come back

def srsreverse(qhome, tmp_path, address, sender=""):
    """qmail-local delivering to alias-srs-LOCAL@SRSDOMAIN as virtualdomains
    sends it, and as qmail-getpw of a single-user home hands it over: to
    alias, with the whole local part as the extension."""
    loc = address[:address.index("@")]
    return local(qhome, qhome.path / "alias", tmp_path, local=f"alias-srs-{loc}", dash="-", ext=f"alias-srs-{loc}",
                 domain=SRSDOMAIN, user="alias", sender=sender, msg=b"Subject: failure notice\n\nbounced\n")


def test_bounce_to_srs0_goes_to_the_original_sender(srs_home, tmp_path):
    assert (srs_home.path / "alias" / ".qmail-alias-srs-default").exists()   # written by qmail-setup
    addr = qmail_srs(srs_home, "forward", "Alice.Smith@Origin.example")[1]
    r = srsreverse(srs_home, tmp_path, addr)
    assert r.returncode == 0, r.stdout + r.stderr
    [(mess, sender, rcpts)] = queued(srs_home)
    assert sender == b"" and rcpts == [b"Alice.Smith@Origin.example"]
    assert b"Delivered-To: alias-srs-" in mess and b"bounced" in mess


def test_bounce_to_srs1_goes_back_to_the_first_forwarder(srs_home, tmp_path):
    first = their_srs(srs_home).forward("alice@origin.example", "first.example")
    addr = qmail_srs(srs_home, "forward", first)[1]
    assert srsreverse(srs_home, tmp_path, addr).returncode == 0
    [(_, sender, rcpts)] = queued(srs_home)
    assert sender == b"" and rcpts == [first.encode()]


def test_bounce_to_a_forged_srs_address_is_refused(srs_home, tmp_path):
    addr = qmail_srs(srs_home, "forward", "s@x.org")[1].replace("=s@", "=t@")
    r = srsreverse(srs_home, tmp_path, addr)
    assert r.returncode == 100 and b"not a valid SRS address" in r.stdout + r.stderr
    assert queued(srs_home) == []


# ---------------------------------------------------------------- the secret stays the helper's

def test_mailbox_users_cannot_read_the_secret_but_get_signatures(tmp_path):
    """qmail-srs installed setuid root as qmail-setup installs it in a
    multi-user home: an unprivileged caller signs and verifies, cannot read
    control/srssecrets, and cannot point the helper at a secret of its own."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv")
    from conftest import make_home
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-srs-", dir="/var/tmp"))
    try:
        base.chmod(0o755)
        q = make_home(base)
        enable_srs(q)
        helper = q.path / "bin" / "qmail-srs"
        data = helper.read_bytes()
        helper.unlink()           # a hard link to the build: replace, not chmod
        helper.write_bytes(data)
        os.chown(helper, 0, 0)
        helper.chmod(0o4711)
        secret_file = q.path / "control" / "srssecrets"
        assert secret_file.stat().st_mode & 0o777 == 0o600
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        r = subprocess.run(as_nobody + ["cat", str(secret_file)], capture_output=True, timeout=30)
        assert r.returncode != 0
        # A secret of the caller's own in a home of its own is ignored.
        fake = tmp_path / "fake"
        (fake / "control").mkdir(parents=True)
        (fake / "control" / "srssecrets").write_text("known-to-the-attacker\n")
        (fake / "control" / "srsdomain").write_text(SRSDOMAIN + "\n")
        env = dict(q.env, QMAIL_HOME=str(fake))
        r = subprocess.run(as_nobody + [str(helper), "forward", "s@x.org"], capture_output=True, timeout=30, env=env)
        assert r.returncode == 0, r.stderr
        signed = r.stdout.decode().strip()
        assert their_srs(q).reverse(signed) == "s@x.org"
        import srslib
        with pytest.raises(srslib.Error):
            srslib.SRS("known-to-the-attacker").reverse(signed)
        r = subprocess.run(as_nobody + [str(helper), "reverse", signed], capture_output=True, timeout=30)
        assert r.returncode == 0 and r.stdout.decode().strip() == "s@x.org"
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------- end to end

@pytest.fixture
def world(srs_home, tmp_path):
    """qmail-send with the real qmail-getpw, qmail-local and qmail-remote,
    a private Postfix for the remote domains, and a DNS server with their
    SPF. In the single-user home every local part goes to alias."""
    if not postfix_helper.available():
        pytest.skip("needs root and Postfix")
    from test_send import Mail
    q = srs_home
    keep = {n: (q.path / "bin" / n).read_bytes() for n in ("qmail-getpw", "qmail-local", "qmail-remote")}
    mail = Mail(q, remote=False)
    for n, data in keep.items():
        p = q.path / "bin" / n
        if p.exists():
            p.unlink()
        p.write_bytes(data)
        p.chmod(0o755)
    (q.path / "alias" / ".qmail-fwd").write_text("&friend@peer.test\n")
    pf = postfix_helper.Postfix(tmp_path / "pf", free_port(), hostname="peer.test")
    q.control("smtproutes", f":127.0.0.1:{pf.port}\n")
    resolver, ip, servers = spf_dns.start()
    resolver.load({
        SRSDOMAIN: [{"SPF": "v=spf1 ip4:127.0.0.1 -all"}],
        "origin.example": [{"SPF": "v=spf1 ip4:192.0.2.10 -all"}],
    })
    try:
        mail.start()
        yield q, mail, pf, ip
    finally:
        mail.stop()
        pf.stop()
        spf_dns.stop(servers)


def spf(q, ip, sender):
    p = subprocess.run([q.bin("qmail-spfquery"), "-t", "2", "-r", "peer.test", "-i", "127.0.0.1", "-s", sender,
                        "-h", q.fqdn], env=dict(q.env, DNSCACHEIP=ip), capture_output=True, timeout=60)
    return p.stdout.decode().split("\n")[0]


def postfix_envelopes(pf, n, timeout=60):
    from test_send import wait_for
    wait_for(lambda: len(pf.queued_ids()) >= n, timeout, f"{n} message(s) at Postfix")
    time.sleep(0.3)
    out = []
    for m in pf.messages():
        sender = re.search(r"^sender: (.*)$", m, re.M).group(1)
        rcpts = re.findall(r"^recipient: (.*)$", m, re.M)
        out.append((sender, rcpts, m))
    return out


def test_forward_to_postfix_passes_spf_and_the_bounce_comes_back(world):
    q, mail, pf, ip = world
    # Mail from alice@origin.example (SPF: only 192.0.2.10 may send) to a
    # local user who forwards to peer.test: sent on from 127.0.0.1 it
    # would fail SPF with her address; with ours it passes.
    mail.inject("alice@origin.example", [f"fwd@{q.fqdn}"], b"Subject: to forward\n\nforward me\n")
    [(sender, rcpts, m)] = postfix_envelopes(pf, 1)
    assert rcpts == ["friend@peer.test"] and "forward me" in m
    assert SRS0.fullmatch(sender) and their_srs(q).reverse(sender) == "alice@origin.example", sender
    assert spf(q, ip, "alice@origin.example") == "fail"
    assert spf(q, ip, sender) == "pass"
    # peer.test bounces to the SRS address over SMTP: qmail-smtpd checks
    # it, virtualdomains hands it to ~alias/.qmail-srs-default, srsreverse
    # sends it on to alice at origin.example (Postfix again).
    data = (f"HELO peer.test\r\nMAIL FROM:<>\r\nRCPT TO:<{sender}>\r\nDATA\r\n"
            "Subject: failure notice\r\n\r\nyour message could not be delivered\r\n.\r\nQUIT\r\n").encode()
    code, out = session(q, data)
    assert replies(out)[3].startswith("250") and replies(out)[5].startswith("250"), out
    got = postfix_envelopes(pf, 2)
    back = [g for g in got if g[1] == ["alice@origin.example"]]
    assert len(back) == 1, got
    assert back[0][0] == "" and "could not be delivered" in back[0][2]
