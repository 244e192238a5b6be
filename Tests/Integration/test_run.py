"""scripts/run.sh, the README's "start the system" command, tried as a new
user would: the whole hosting server on loopback (v4 and v6) with real
clients (swaks, curl, poplib), run twice, stopped with Ctrl-C and started
again, beside a program that holds one of its ports; its logs read by
qmail-report and by fail2ban's filter."""
import contextlib
import os
import pathlib
import poplib
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from conftest import ROOT, bin_dir
from smtp_helpers import queued
from test_smarthost import relay  # noqa: F401 (a fixture)

RUN = str(ROOT / "scripts" / "run.sh")
DOMAIN = "example.test"
SERVICES = ("smtp", "submission", "smtps", "pop3", "pop3s", "webadmin")


def unverified():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def free_ports(n):
    """Ports free on 127.0.0.1 and ::1 alike."""
    out = []
    while len(out) < n:
        with socket.socket(socket.AF_INET6) as s6:
            s6.bind(("::1", 0))
            p = s6.getsockname()[1]
            with socket.socket() as s4:
                try:
                    s4.bind(("127.0.0.1", p))
                except OSError:
                    continue
        if p not in out:
            out.append(p)
    return out


@pytest.fixture
def site():
    """A home under /var/tmp (the run's account must reach it), ports, and
    the environment for run.sh; removes the account run.sh creates as root
    unless it existed before."""
    if not (bin_dir() / "checkpassword-file").exists():
        pytest.skip("programs not built")
    top = pathlib.Path(tempfile.mkdtemp(prefix="sq-run-", dir="/var/tmp"))
    top.chmod(0o755)
    ports = dict(zip(SERVICES, free_ports(len(SERVICES))))
    env = dict(os.environ, QMAIL_HOME=str(top / "home"), QMAIL_BIN=str(bin_dir()), SMTP_PORT=str(ports["smtp"]),
               SUBMISSION_PORT=str(ports["submission"]), SMTPS_PORT=str(ports["smtps"]),
               POP3_PORT=str(ports["pop3"]), POP3S_PORT=str(ports["pop3s"]), WEBADMIN_PORT=str(ports["webadmin"]))
    for v in ("QMAILQUEUE", "SMARTHOST", "SMARTHOST_USER", "SMARTHOST_PASSWORD", "QMAIL_LISTEN", "RELAYCLIENT"):
        env.pop(v, None)
    s = type("Site", (), {})()
    s.home, s.env, s.ports, s.procs = top / "home", env, ports, []
    with run_account():
        yield s
        for p in s.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=30)
        shutil.rmtree(top, ignore_errors=True)


@contextlib.contextmanager
def run_account(user="swiftqmail"):
    """run.sh as root makes the account its server runs as; it goes again
    (with its group) when the block ends, unless it was here before."""
    try:
        pwd.getpwnam(user)
        existed = True
    except KeyError:
        existed = False
    try:
        yield
    finally:
        if os.geteuid() == 0 and not existed:
            subprocess.run(["userdel", user], capture_output=True)
            subprocess.run(["groupdel", user], capture_output=True)


def start(site, *args):
    """Starts run.sh in a process group of its own, as a terminal would; returns
    it once the banner is out (or it has ended)."""
    # Ctrl-C's SIGINT as a terminal delivers it: not ignored, even when the
    # suite itself runs with SIGINT ignored (a background job of a shell
    # without job control), where bash could not take it back.
    p = subprocess.Popen(["bash", RUN, *args], env=site.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    site.procs.append(p)
    out = []
    deadline = time.time() + 60
    for line in p.stdout:
        out.append(line)
        if line.startswith("Ctrl-C stops it") or time.time() > deadline:
            break
    p.banner = "".join(out)
    return p


def stop(p):
    """Ctrl-C: SIGINT to the process group."""
    os.killpg(p.pid, signal.SIGINT)
    rest = p.stdout.read()
    assert p.wait(timeout=60) == 0, rest
    assert "== stopped" in rest


def password(banner):
    return re.search(r"password (\S+)", banner).group(1)


def swaks(*args):
    return subprocess.run(["swaks", "--timeout", "30", *args], capture_output=True, text=True, timeout=60)


def pop_messages(host, port, user, pw, tls):
    c = poplib.POP3_SSL(host, port, timeout=20, context=unverified()) if tls == "implicit" else poplib.POP3(host, port, timeout=20)
    if tls == "stls":
        c.stls(context=unverified())
    c.user(user)
    c.pass_(pw)
    subjects = []
    for i in range(1, c.stat()[0] + 1):
        subjects += [l.decode() for l in c.top(i, 0)[1] if l.startswith(b"Subject:")]
    c.quit()
    return subjects


def msmtp(site, host, port, starttls, pw, subject):
    """One message by msmtp with AUTH over TLS (STARTTLS or implicit)."""
    conf = site.home.parent / f"msmtprc-{port}"
    conf.write_text(f"account default\nhost {host}\nport {port}\ntls on\ntls_starttls {starttls}\n"
                    f"tls_certcheck off\nauth on\nuser postmaster@{DOMAIN}\npassword {pw}\n"
                    f"from postmaster@{DOMAIN}\n")
    conf.chmod(0o600)
    return subprocess.run(["msmtp", "-C", str(conf), f"postmaster@{DOMAIN}"], capture_output=True, text=True,
                          input=f"From: postmaster@{DOMAIN}\nSubject: {subject}\n\nby msmtp\n", timeout=30)


def mpop(site, host, port, starttls, pw):
    """mpop fetches every message (keeping them) into an mbox; their number."""
    conf = site.home.parent / f"mpoprc-{port}"
    box = site.home.parent / f"mbox-{port}"
    box.write_text("")
    conf.write_text(f"account default\nhost {host}\nport {port}\ntls on\ntls_starttls {starttls}\n"
                    f"tls_certcheck off\nauth user\nuser postmaster@{DOMAIN}\npassword {pw}\n"
                    f"keep on\nonly_new off\ndelivery mbox {box}\n")
    conf.chmod(0o600)
    r = subprocess.run(["mpop", "-C", str(conf), "-q"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return box.read_text().count("\nFrom ") + box.read_text().startswith("From ")


def wait_for(pred, what, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(what)


def test_the_whole_server_run_twice_stopped_and_restarted(site):
    t0 = time.time()
    p = start(site)
    assert "Ctrl-C stops it" in p.banner, p.banner
    for port in site.ports.values():
        assert str(port) in p.banner
    assert f"PATH={site.home}/bin:$PATH" in p.banner and "vadddomain" in p.banner and "qmail-report --svg" in p.banner
    pw = password(p.banner)
    pwfile = site.home / "postmaster-password"
    assert pwfile.stat().st_mode & 0o777 == 0o600 and pwfile.read_text() == pw
    ports = site.ports

    # submission (587's role): no AUTH before STARTTLS; STARTTLS, AUTH, relay
    r = swaks("--server", f"127.0.0.1:{ports['submission']}", "--auth-user", "postmaster", "--auth-password", pw,
              "--to", "someone@far.example", "--from", f"postmaster@{DOMAIN}")
    assert r.returncode != 0 and "Host did not advertise authentication" in r.stdout + r.stderr, r.stdout
    r = swaks("--server", f"127.0.0.1:{ports['submission']}", "-tls", "--auth-user", "postmaster",
              "--auth-password", pw, "--to", f"postmaster@{DOMAIN}", "--from", f"postmaster@{DOMAIN}",
              "--header", "Subject: by submission")
    assert r.returncode == 0, r.stdout + r.stderr
    # implicit TLS (465's role), over IPv6; a wrong password is refused
    r = swaks("--server", f"::1:{ports['smtps']}", "--tlsc", "--auth-user", f"postmaster@{DOMAIN}",
              "--auth-password", "wrong", "--to", f"postmaster@{DOMAIN}", "--from", f"postmaster@{DOMAIN}")
    assert r.returncode != 0 and "535" in r.stdout, r.stdout
    r = swaks("--server", f"::1:{ports['smtps']}", "--tlsc", "--auth-user", f"postmaster@{DOMAIN}",
              "--auth-password", pw, "--to", f"postmaster@{DOMAIN}", "--from", f"postmaster@{DOMAIN}",
              "--header", "Subject: by smtps")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "STARTTLS" not in r.stdout  # already TLS: not offered again
    # incoming SMTP: hosted mailbox yes, unknown mailbox and relay no
    r = swaks("--server", f"127.0.0.1:{ports['smtp']}", "--to", f"postmaster@{DOMAIN}", "--from", "a@b.example",
              "--header", "Subject: inbound")
    assert r.returncode == 0, r.stdout
    r = swaks("--server", f"::1:{ports['smtp']}", "--to", f"nobody@{DOMAIN}", "--from", "a@b.example")
    assert "550 sorry, no mailbox here by that name" in r.stdout, r.stdout
    r = swaks("--server", f"127.0.0.1:{ports['smtp']}", "--to", "x@far.example", "--from", "a@b.example")
    assert "553 sorry, that domain isn't in my list of allowed rcpthosts" in r.stdout, r.stdout

    # msmtp, as a mail client is set up: STARTTLS on 587's role, implicit
    # TLS on 465's, over both addresses
    for host, port, starttls, subject in (("127.0.0.1", ports["submission"], "on", "msmtp starttls"),
                                          ("::1", ports["smtps"], "off", "msmtp smtps")):
        r = msmtp(site, host, port, starttls, pw, subject)
        assert r.returncode == 0, r.stdout + r.stderr

    want = {"Subject: welcome to swift-qmail", "Subject: by submission", "Subject: by smtps", "Subject: inbound",
            "Subject: msmtp starttls", "Subject: msmtp smtps"}
    got = []
    wait_for(lambda: set(got.__setitem__(slice(None), pop_messages("127.0.0.1", ports["pop3"], "postmaster", pw, "stls"))
                         or got) >= want, f"mail did not arrive: {got}")
    assert sorted(got) == sorted(pop_messages("::1", ports["pop3s"], f"postmaster@{DOMAIN}", pw, "implicit"))
    r = subprocess.run(["curl", "-sk", "--ssl-reqd", "--max-time", "20", f"pop3://127.0.0.1:{ports['pop3']}/",
                        "-u", f"postmaster@{DOMAIN}:{pw}"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == len(got), r
    with pytest.raises(poplib.error_proto):
        pop_messages("127.0.0.1", ports["pop3"], "postmaster", "wrong", "stls")
    # mpop fetches the same messages over STLS and over POP3S (keeping them)
    for host, port, starttls in (("127.0.0.1", ports["pop3"], "on"), ("::1", ports["pop3s"], "off")):
        n = mpop(site, host, port, starttls, pw)
        assert n == len(got), (host, n, len(got))

    # doctor on the running default: the ports of HOME/ports are held by
    # this home's own tcpservers, and nothing is wrong
    r = subprocess.run([str(site.home / "bin" / "qmailctl"), "doctor"], env=dict(site.env, QMAIL_HOME=str(site.home)),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(rf"ok: +ports of HOME/ports free or held by this home: .*smtpd {ports['smtp']}", r.stdout), r.stdout

    # a second run while this one runs: refused at once, nothing changed
    t = time.time()
    r = subprocess.run(["bash", RUN], env=site.env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and time.time() - t < 10
    assert re.search(r"run\.sh: port \d+ on \S+ \(SMTP_PORT\) is in use", r.stderr), r.stderr
    env2 = dict(site.env, **{k: str(v) for k, v in zip(
        ("SMTP_PORT", "SUBMISSION_PORT", "SMTPS_PORT", "POP3_PORT", "POP3S_PORT", "WEBADMIN_PORT"), free_ports(6))})
    r = subprocess.run(["bash", RUN], env=env2, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "qmail-send is already running" in r.stderr, r.stderr
    assert pwfile.read_text() == pw

    # login lines for fail2ban
    logs = site.home / "log"
    popup = (logs / "pop3d" / "current").read_text()
    assert re.search(r"^@[0-9a-f]{24} qmail-popup: login ok remote=127\.0\.0\.1 user=postmaster$", popup, re.M), popup
    assert re.search(r"qmail-popup: login failed remote=127\.0\.0\.1 user=postmaster$", popup, re.M), popup
    smtps = (logs / "smtps" / "current").read_text()
    assert f"qmail-smtpd-auth: login failed remote=::1 user=postmaster@{DOMAIN}\n" in smtps, smtps
    assert f"qmail-smtpd-auth: login ok remote=::1 user=postmaster@{DOMAIN}\n" in smtps, smtps
    if shutil.which("fail2ban-regex"):
        conf = pathlib.Path(tempfile.mkdtemp(dir=site.home.parent))
        shutil.copytree("/etc/fail2ban", conf / "f2b")
        shutil.copy(ROOT / "contrib" / "fail2ban" / "filter.d" / "swift-qmail.conf", conf / "f2b" / "filter.d")
        for f in ("pop3d", "smtps"):
            text = (logs / f / "current").read_text()
            n = text.count(" login failed ")
            r = subprocess.run(["fail2ban-regex", "-c", str(conf / "f2b"), str(logs / f / "current"), "swift-qmail"],
                               capture_output=True, text=True, timeout=60)
            assert re.search(rf"^Lines: \d+ lines, 0 ignored, {n} matched", r.stdout, re.M), (r.stdout, text)

    # Ctrl-C, then start again: same password, mail kept, no second
    # welcome, logs appended
    sizes = {d.name: (d / "current").stat().st_size for d in logs.iterdir() if d.is_dir()}
    stop(p)
    p = start(site)
    assert "Ctrl-C stops it" in p.banner, p.banner
    assert password(p.banner) == pw
    after = pop_messages("127.0.0.1", ports["pop3"], "postmaster", pw, "stls")
    assert sorted(after) == sorted(got) and after.count("Subject: welcome to swift-qmail") == 1
    text = (logs / "send" / "current").read_text()
    assert text.count("status: exiting") == 1
    for name, size in sizes.items():
        assert (logs / name / "current").stat().st_size >= size, name

    # qmail-report on the run's own log, with its plot
    svg = site.home / "log" / "report.svg"
    r = subprocess.run([str(site.home / "bin" / "qmail-report"), "--svg", str(svg), str(logs / "send" / "current")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    m = re.search(r"^done +(\d+) messages", r.stdout, re.M)
    assert m and int(m.group(1)) >= 4, r.stdout  # welcome, submission, smtps, inbound
    assert re.search(r"^xdelay +[0-9.]+ seconds total", r.stdout, re.M), r.stdout
    assert svg.read_text().count("<circle") >= 4  # one point per delivery
    # --reset-password is the one way to a new password
    stop(p)
    p = start(site, "--reset-password")
    new = password(p.banner)
    assert new != pw and pwfile.read_text() == new
    assert pop_messages("127.0.0.1", ports["pop3"], "postmaster", new, "stls")
    stop(p)
    assert time.time() - t0 < 80


def test_a_taken_port_stops_it_before_anything_changes(site):
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", site.ports["pop3"]))
        s.listen()
        t = time.time()
        r = subprocess.run(["bash", RUN], env=site.env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and time.time() - t < 10
    lines = r.stderr.strip().splitlines()
    assert lines == [f"run.sh: port {site.ports['pop3']} on ::1 (POP3_PORT) is in use by another program: "
                     "stop it, or choose another port with POP3_PORT=..."], r.stderr
    assert not site.home.exists()


def test_a_port_lost_after_the_check_is_reported_on_the_terminal(site):
    """A socket bound but not listening passes the connect check (the race of
    a port taken between check and start): tcpserver cannot bind, and run.sh
    says so and stops everything it started."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", site.ports["pop3s"]))
        t = time.time()
        r = subprocess.run(["bash", RUN], env=site.env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and time.time() - t < 30
    assert re.search(rf"run\.sh: POP3 over TLS on \[127\.0\.0\.1\]:{site.ports['pop3s']} did not start: .*bind", r.stderr), r.stderr
    assert "Ctrl-C stops it" not in r.stdout
    # nothing of it is left listening, and the lock is free again
    for port in site.ports.values():
        with socket.socket() as c:
            assert c.connect_ex(("127.0.0.1", port)) != 0
    r = subprocess.run(["flock", "-n", str(site.home / "queue" / "lock" / "sendmutex"), "true"])
    assert r.returncode == 0


def test_smarthost_with_a_login_sends_outgoing_mail_through_it(site, relay):
    """SMARTHOST=host:port with SMARTHOST_USER/SMARTHOST_PASSWORD: the relay
    (our qmail-smtpd: AUTH required, only after STARTTLS) gets the mail; the
    login sits in control/smtproutes, mode 600 for the home's owner; the
    banner names relay and user, never the password."""
    r = subprocess.run(["bash", RUN], env=dict(site.env, SMARTHOST_USER="joe"), capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0 and r.stderr == ("run.sh: SMARTHOST_USER/SMARTHOST_PASSWORD need SMARTHOST=host:port "
                                              "(the relay to log in to)\n"), r.stderr
    site.env.update(SMARTHOST=f"127.0.0.1:{relay.port}", SMARTHOST_USER="joe", SMARTHOST_PASSWORD="secret")
    p = start(site)
    assert f"outgoing    through 127.0.0.1:{relay.port}, logging in as joe over TLS (control/smtproutes)" in p.banner, \
        p.banner
    assert "secret" not in p.banner
    routes = site.home / "control" / "smtproutes"
    st = routes.stat()
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == (site.home / "queue" / "lock" / "tcpto").stat().st_uid
    r = swaks("--server", f"127.0.0.1:{site.ports['submission']}", "-tls", "--auth-user", "postmaster",
              "--auth-password", password(p.banner), "--to", "friend@far.example", "--from", f"postmaster@{DOMAIN}",
              "--header", "Subject: through the smarthost")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: queued(relay.home), "the relay did not get the message", timeout=30)
    [(mess, sender, rcpts)] = queued(relay.home)
    assert rcpts == [b"friend@far.example"] and sender == f"postmaster@{DOMAIN}".encode()
    assert b"(joe@127.0.0.1)" in mess and b" with ESMTPSA; " in mess and b"Subject: through the smarthost" in mess
    stop(p)


def test_with_a_scanner_in_control_the_smtp_services_queue_through_qmail_filter(site, tmp_path):
    """control/clamd present: run.sh starts qmail-smtpd with QMAILQUEUE=
    qmail-filter, so a virus is refused at DATA and clean mail delivered."""
    from filter_daemons import EICAR, Clamd
    clamd = Clamd(tmp_path / "clamd")
    assert clamd.start(), clamd.log.read_text()[-2000:]
    try:
        (site.home / "control").mkdir(parents=True)
        (site.home / "control" / "clamd").write_text(f"127.0.0.1:{clamd.port}\n")
        p = start(site)
        assert f"filter      qmail-filter: clamd 127.0.0.1:{clamd.port}" in p.banner, p.banner
        smtp = f"127.0.0.1:{site.ports['smtp']}"
        r = swaks("--server", smtp, "--to", f"postmaster@{DOMAIN}", "--from", "a@far.example",
                  "--body", EICAR.decode())
        assert r.returncode != 0 and "554 5.7.1 virus" in r.stdout, r.stdout
        r = swaks("--server", smtp, "--to", f"postmaster@{DOMAIN}", "--from", "a@far.example",
                  "--header", "Subject: clean through the filter")
        assert r.returncode == 0, r.stdout + r.stderr
        log = site.home / "log" / "smtpd" / "current"
        wait_for(lambda: b"qmail-filter" in log.read_bytes() and b"virus" in log.read_bytes(),
                 "qmail-filter logged nothing")
        stop(p)
    finally:
        clamd.stop()
