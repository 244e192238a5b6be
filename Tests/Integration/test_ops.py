"""Running it: qmailctl (status, doctor, start/stop, flush, reload, queue,
cdb), qmail-report on known logs, the send service under daemontools,
maildirsmtp against a small SMTP sink, maildirwatch, and the progress
output of qmail-newu.

qmail-send runs with the stand-in qmail-getpw/qmail-local/qmail-remote of
test_send, so deliveries are counted exactly.
"""
import os
import pathlib
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import make_home
from smtp_helpers import EOD_VARIANTS, SMUGGLED, LenientSMTP, semantic
from test_send import Mail, wait_for

ROOT = pathlib.Path(__file__).resolve().parents[2]


def ctl(home, *args, env=None):
    return home.run("qmailctl", *args, env=env)


@pytest.fixture
def ops(qhome, tmp_path):
    """A home with stand-in delivery programs, control/me resolvable, and a
    qmailctl.conf that keeps the machine's /service, /etc/tcp.* and
    /etc/aliases out of the picture."""
    m = Mail(qhome, remote=True)
    for name in ("qmail-getpw", "qmail-local", "qmail-remote"):
        # qmail-setup's mode (the stand-ins are scripts: only root can run them so)
        (qhome.path / "bin" / name).chmod(0o711 if os.getuid() == 0 else 0o755)
    qhome.control("me", "localhost\n")
    qhome.control("locals", f"localhost\n{qhome.fqdn}\n")
    m.conf = qhome.path / "qmailctl.conf"
    m.conf.write_text(f"svdir={tmp_path}/no-service\nsmtprules={tmp_path}/tcp.smtp\n"
                      f"pop3rules={tmp_path}/tcp.pop3\naliases={tmp_path}/aliases\n")
    m.tmp = tmp_path
    copied = private_modes(qhome)
    yield m
    for p in copied:  # 10 MB each: give the disk back
        p.unlink(missing_ok=True)
    if m.proc and m.proc.poll() is None:
        m.proc.kill()
        m.proc.wait(timeout=10)
    for pid in m.helpers():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if m.logfile:
        m.logfile.close()


def private_modes(home):
    """qmail-setup --link leaves hard-linked programs with the build's mode
    (changing it would change the build). Where doctor expects another mode,
    put a private copy with qmail-setup's mode in place, as a real
    installation has it."""
    out = ctl(home, "doctor").stdout.decode()
    copied = []
    for path, mode in re.findall(r"warning: (\S+/bin/\S+) has mode \d+, qmail-setup sets (\d+)", out):
        p = pathlib.Path(path)
        tmp = p.with_name(p.name + ".copy")
        shutil.copyfile(p, tmp)
        tmp.chmod(int(mode, 8))
        tmp.replace(p)
        copied.append(p)
    return copied


def doctor(m):
    r = ctl(m.home, "doctor")
    return r.returncode, r.stdout.decode()


# --- status ---------------------------------------------------------------

def test_status_follows_qmail_send(ops):
    r = ctl(ops.home, "status")
    out = r.stdout.decode()
    assert r.returncode == 2, out
    assert re.search(r"^send\s+DOWN\s+not running\s+\[process scan of .*/bin\]", out, re.M), out
    assert "queue: messages in queue: 0" in out
    ops.start()
    r = ctl(ops.home, "status")
    out = r.stdout.decode()
    assert r.returncode == 0, out
    pid = ops.proc.pid
    assert re.search(rf"^send\s+up\s+running \(pid {pid}\)", out, re.M), out
    assert re.search(r"^smtpd\s+not running", out, re.M)
    ops.stop()


def test_status_usage_and_missing_home(ops, tmp_path):
    assert ctl(ops.home, "frobnicate").returncode == 100
    assert ctl(ops.home).returncode == 100
    assert ctl(ops.home, "start", "nosuch").returncode == 100
    r = ctl(ops.home, "status", env={"QMAIL_HOME": str(tmp_path / "nowhere")})
    assert r.returncode == 111
    assert b"no qmail home" in r.stderr


# --- doctor ---------------------------------------------------------------

def test_doctor_clean_home_is_ok(ops):
    ops.start()
    code, out = doctor(ops)
    assert code == 0, out
    assert out.rstrip().endswith("doctor: 0 problems, 0 warnings")
    assert "ok:      control/me localhost resolves" in out
    ops.stop()


UNSIGNED = "cluster routing is configured (control/clusterhosts) but control/clustersecret is missing"


def test_cluster_without_secret_is_reported(ops):
    """A host with control/clusterhosts and no control/clustersecret routes
    as before, but qmail-send's log (at start and on HUP) and doctor say
    its loop markers are forgeable; with the secret (mode 640) doctor says
    ok, and a secret others can read is a problem."""
    ops.start()
    assert "clustersecret" not in ops.log()
    code, out = doctor(ops)
    assert "clustersecret" not in out, out
    ops.home.control("clusterhosts", "hosta.example.net:192.0.2.1\nhostb.example.net:192.0.2.2\n")
    ops.signal(signal.SIGHUP)
    wait_for(lambda: UNSIGNED in ops.log(), 10, "the warning after HUP")
    ops.stop()
    ops.start()
    assert "warning: " + UNSIGNED in ops.log(), ops.log()
    code, out = doctor(ops)
    assert code == 1 and "warning: " + UNSIGNED in out, out
    secret = ops.home.path / "control" / "clustersecret"
    secret.write_text("a-cluster-secret\n")
    secret.chmod(0o640)
    code, out = doctor(ops)
    assert code == 0 and "ok:      cluster loop markers are signed (control/clustersecret)" in out, out
    secret.chmod(0o644)
    code, out = doctor(ops)
    assert code == 2 and f"PROBLEM: {secret} is readable by others" in out, out
    seen = len(ops.log())
    ops.signal(signal.SIGHUP)
    time.sleep(0.5)
    ops.stop()
    assert UNSIGNED not in ops.log()[seen:], ops.log()


def test_doctor_without_qmail_send_warns(ops):
    code, out = doctor(ops)
    assert code == 1, out
    assert "warning: qmail-send is not running" in out


def test_doctor_world_writable_control_dir(ops):
    ops.start()
    (ops.path / "control").chmod(0o777)
    code, out = doctor(ops)
    assert code == 2, out
    assert "PROBLEM: " + str(ops.path / "control") + " is world-writable (mode 0777, qmail-setup sets 0755)" in out
    assert "is writable by group or others" in out
    ops.stop()


def test_doctor_queue_modes_and_owners(ops):
    ops.start()
    (ops.path / "queue" / "info" / "3").chmod(0o755)
    code, out = doctor(ops)
    assert code == 2, out
    assert f"PROBLEM: {ops.path}/queue/info/3 has mode 0755, qmail-setup sets 0700" in out
    (ops.path / "queue" / "info" / "3").chmod(0o700)
    os.chown(ops.path / "queue" / "todo", 4242, -1)
    code, out = doctor(ops)
    assert code == 2, out
    assert f"{ops.path}/queue/todo belongs to 4242" in out
    os.chown(ops.path / "queue" / "todo", os.getuid(), -1)
    assert doctor(ops)[0] == 0
    ops.stop()


def test_doctor_missing_rcpthosts(ops):
    ops.start()
    (ops.path / "control" / "rcpthosts").unlink()
    code, out = doctor(ops)
    assert code == 1, out   # no qmail-smtpd configured: a warning
    assert "warning: control/rcpthosts is missing: qmail-smtpd accepts mail for every domain (an open relay)" in out
    (ops.tmp / "tcp.smtp").write_text("127.:allow,RELAYCLIENT=\"\"\n:allow\n")
    code, out = doctor(ops)
    assert code == 2, out   # with qmail-smtpd rules: a problem
    assert "PROBLEM: control/rcpthosts is missing" in out
    ops.stop()


def test_doctor_says_what_percenthack_allows(ops):
    """Issue 15: percenthack opens user%host@domain; doctor names the
    domains and says that qmail-smtpd judges the host the chain ends at."""
    ops.start()
    code, out = doctor(ops)
    assert "percenthack" not in out
    (ops.path / "control" / "percenthack").write_text("ours.example\nrelay.ours.example\n")
    code, out = doctor(ops)
    assert code == 0, out
    assert ("ok:      control/percenthack lists 2 domain(s) (ours.example, relay.ours.example): qmail-send "
            "delivers user%host@DOMAIN to user@host, one % at a time; qmail-smtpd takes such a recipient only "
            "when the host it ends at is in rcpthosts, or from a client that may relay (RELAYCLIENT, AUTH)") in out
    ops.stop()


def test_doctor_open_relay_rule(ops):
    ops.start()
    rules = ops.tmp / "tcp.smtp"
    rules.write_text("# relay for the LAN\n192.168.:allow,RELAYCLIENT=\"\"\n:allow,RELAYCLIENT=\"\"\n")
    subprocess.run([ops.home.bin("tcprules"), f"{rules}.cdb", f"{rules}.tmp"], stdin=open(rules), check=True)
    code, out = doctor(ops)
    assert code == 2, out
    assert f"PROBLEM: {rules} line 3 grants RELAYCLIENT to every client" in out
    assert "line 2" not in out
    ops.stop()


def test_doctor_missing_rc_and_program(ops):
    ops.start()
    (ops.path / "rc").chmod(0o644)
    (ops.path / "bin" / "qmail-clean").unlink()
    code, out = doctor(ops)
    assert code == 2, out
    assert f"PROBLEM: {ops.path}/rc is missing or not executable" in out
    assert f"PROBLEM: {ops.path}/bin/qmail-clean is missing: mail cannot be queued or delivered" in out
    ops.stop()


def test_doctor_stale_cdb_and_missing_me(ops):
    ops.start()
    joe = ops.tmp / "joe"
    joe.mkdir()
    os.chown(joe, 1000, 1000)
    (ops.path / "users" / "assign").write_text(f"+joe-:joe:1000:1000:{joe}:-::\n.\n")
    code, out = doctor(ops)
    assert code == 1 and "users/cdb is missing: run qmailctl cdb" in out, out
    os.chown(joe, 1001, 1000)
    code, out = doctor(ops)
    assert code == 2 and f"PROBLEM: users/assign joe- runs as uid 1000 but {joe} belongs to" in out, out
    (ops.path / "control" / "me").unlink()
    code, out = doctor(ops)
    assert code == 2 and "PROBLEM: control/me is missing or empty" in out, out
    ops.stop()


def test_doctor_certificate(ops):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    ops.start()
    cert = ops.path / "control" / "servercert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3",
                    "-subj", "/CN=localhost", "-keyout", str(cert), "-out", str(cert) + ".crt"],
                   check=True, capture_output=True)
    with open(cert, "a") as f:
        f.write(open(str(cert) + ".crt").read())
    code, out = doctor(ops)
    assert code == 1, out
    assert "expires within 30 days" in out
    cert.write_text("not a certificate\n")
    code, out = doctor(ops)
    assert code == 2 and "is not a readable PEM certificate" in out, out
    ops.stop()


def test_doctor_checks_the_directory_login_file(ops):
    """With an LDAP or MySQL directory, the login file must be readable by
    qmaild (qmail-smtpd's recipient check runs qmail-rcptcheck-ldap/-mysql
    as qmaild) and by nobody else (every directory program refuses it)."""
    ops.start()
    pw = ops.path / "control" / "sqlpassword"
    (ops.path / "control" / "userdirectory").write_text("mysql\n")
    code, out = doctor(ops)
    assert code == 2 and f"PROBLEM: {pw} is missing: every directory lookup defers" in out, out
    pw.write_text("mail\nsecret\n")
    for mode, line in ((0o644, f"PROBLEM: {pw} is readable by others (mode 0644)"),
                       (0o600, "ok:      control/sqlpassword: readable by qmail-smtpd's recipient check, not by others")):
        pw.chmod(mode)
        code, out = doctor(ops)
        assert line in out, out
        assert code == (2 if mode == 0o644 else 0), out
    # LDAP without a login file binds anonymously: nothing to say
    (ops.path / "control" / "userdirectory").write_text("ldap\n")
    code, out = doctor(ops)
    assert code == 0 and "ldappassword" not in out, out
    (ops.path / "control" / "userdirectory").write_text("file\n")
    pw.chmod(0o644)  # not read by anyone with the file store
    assert doctor(ops)[0] == 0


def test_doctor_private_key_readable_by_others(ops):
    """Found by proof/security.py (fault key-readable): doctor said nothing
    about a world-readable private key."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    ops.start()
    r = subprocess.run(["sh", str(ROOT / "contrib" / "pop3" / "make-servercert.sh"), str(ops.path), "localhost"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cert = ops.path / "control" / "servercert.pem"
    code, out = doctor(ops)
    assert code == 0, out
    cert.chmod(0o644)
    code, out = doctor(ops)
    assert code == 2, out
    assert f"PROBLEM: {cert} holds the private key and is readable by others (mode 0644): chmod 600 {cert}" in out
    cert.chmod(0o640)  # readable by the qmail group (qmaild): fine
    assert doctor(ops)[0] == 0
    cert.chmod(0o620)
    code, out = doctor(ops)
    assert code == 2 and "is writable by group or others (mode 0620)" in out, out
    # a certificate alone (the key in serverkey.pem) may be readable by all
    key = ops.path / "control" / "serverkey.pem"
    text = cert.read_text()
    i = text.index("-----BEGIN PRIVATE KEY-----")
    cert.write_text(text[:i])
    cert.chmod(0o644)
    key.write_text(text[i:])
    key.chmod(0o644)
    code, out = doctor(ops)
    assert code == 2 and f"PROBLEM: {key} holds the private key" in out and f"PROBLEM: {cert}" not in out, out
    key.chmod(0o600)
    assert doctor(ops)[0] == 0
    ops.stop()


def test_doctor_unresolvable_me(ops):
    ops.start()
    ops.home.control("me", "no-such-host.invalid\n")
    code, out = doctor(ops)
    assert code == 1, out
    assert "warning: control/me no-such-host.invalid does not resolve" in out
    r = ctl(ops.home, "doctor", "--no-dns")
    assert r.returncode == 0, r.stdout.decode()
    ops.stop()


def test_doctor_not_a_home(tmp_path):
    from conftest import bin_dir
    (tmp_path / "h").mkdir()
    r = subprocess.run([str(bin_dir() / "qmailctl"), "doctor"], env={**os.environ, "QMAIL_HOME": str(tmp_path / "h")},
                       capture_output=True)
    assert r.returncode == 111
    assert b"cannot tell" in r.stdout


def test_doctor_fresh_hosting_home_is_ok(ops):
    """qmail-setup --single-user plus vadddomain: nothing to report."""
    ops.start()
    r = ops.home.run("vadddomain", "-i", "4242", "example.org", input="pm-secret\n")
    assert r.returncode == 0, r.stderr
    code, out = doctor(ops)
    assert code == 0, out
    assert "ok:      rcpthosts, virtualdomains and the 1 domain(s) of users/vdomains agree" in out
    assert "ok:      the 1 directories of users/assign and users/vdomains belong to their uids" in out
    ops.stop()


def test_doctor_domain_files_that_disagree(ops):
    ops.start()
    assert ops.home.run("vadddomain", "-i", "4242", "example.org", input="pm\n").returncode == 0
    ops.home.control("rcpthosts", f"{ops.home.fqdn}\nexa mple.org\n")
    vd = ops.path / "control" / "virtualdomains"
    vd.write_text(vd.read_text() + "bad line\nother.example:other.example\n")
    os.chown(ops.path / "domains" / "example.org", 4343, -1)
    code, out = doctor(ops)
    assert code == 2, out
    assert "PROBLEM: control/rcpthosts entry 2 is not a host name or .domain: exa mple.org" in out
    assert "PROBLEM: control/virtualdomains: bad line (want domain:prefix, no spaces): bad line" in out
    assert "PROBLEM: domain example.org is in users/vdomains but not in rcpthosts/morercpthosts" in out
    assert "warning: other.example is in control/virtualdomains but not in users/vdomains" in out
    assert "warning: other.example is in control/virtualdomains but not in rcpthosts/morercpthosts" in out
    assert f"runs as uid 4242 but {ops.path}/domains/example.org belongs to 4343: deliveries to it defer" in out
    ops.stop()


def test_doctor_port_held_by_another_program(ops):
    """HOME/ports (`service port [address]`) names the ports the services
    need: one held by a program not of this home is a problem; one held by
    this home's tcpserver is not."""
    ops.start()
    foreign = socket.socket()
    foreign.bind(("127.0.0.1", 0))
    foreign.listen()
    taken = foreign.getsockname()[1]
    ours = subprocess.Popen([ops.home.bin("tcpserver"), "-1", "127.0.0.1", "0", ops.home.bin("qmail-smtpd")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ops.home.env)
    try:
        own = int(ours.stdout.readline())
        (ops.path / "ports").write_text(f"# service port address\nsmtpd {own} 127.0.0.1\npop3 {taken} 127.0.0.1\n")
        code, out = doctor(ops)
        assert code == 2, out
        assert re.search(rf"^PROBLEM: port {taken} \(pop3\) is held by \S*python\S* \(pid {os.getpid()}\), not by a program of {ops.path}/bin",
                         out, re.M), out
        assert f"port {own} (smtpd)" not in out
        foreign.close()
        code, out = doctor(ops)
        assert code == 0, out
        assert f"ok:      ports of HOME/ports free or held by this home: smtpd {own}, pop3 {taken}" in out
        (ops.path / "ports").write_text("pop3 eleven\n")
        assert "PROBLEM: " + str(ops.path / "ports") + " line 1: want `service port [address]`: pop3 eleven" in doctor(ops)[1]
    finally:
        foreign.close()
        ours.terminate()
        ours.wait(timeout=10)
        ops.stop()


def test_doctor_shows_deferred_messages_with_their_last_error(ops):
    fq = ops.home.fqdn
    ops.start()
    ops.inject(f"s@{fq}", [f"defer1@{fq}"])
    wait_for(lambda: "deferral: Temporary_trouble" in ops.log().replace("\\", ""), what="deferral")
    code, out = doctor(ops)
    assert code == 0, out
    assert "ok:      1 message(s) queued; the reasons for deferrals are in qmail-send's log (name it with sendlog= in qmailctl.conf)" in out
    with open(ops.conf, "a") as f:
        f.write(f"sendlog={ops.logpath}\n")
    code, out = doctor(ops)
    assert code == 1, out
    assert re.search(rf"^warning: msg \d+ to defer1@{fq} deferred: Temporary_trouble", out.replace("\\", ""), re.M), out
    (ops.path / "deferok").write_text("")
    assert ctl(ops.home, "flush").returncode == 0
    wait_for(lambda: ops.delivered_to("defer1"), timeout=10, what="the retry")
    wait_for(lambda: "end msg" in ops.log(), timeout=10, what="end msg")
    code, out = doctor(ops)
    assert code == 0 and "warning: msg" not in out, out
    ops.stop()


def test_doctor_checks_aliases_only_where_fastforward_reads_them(ops):
    ops.start()
    aliases = ops.tmp / "aliases"
    aliases.write_text("root: someone@example.org\n")
    code, out = doctor(ops)
    assert code == 0 and "aliases.cdb" not in out, out
    (ops.path / "alias" / ".qmail-default").write_text(f"|fastforward -d {aliases}.cdb\n")
    code, out = doctor(ops)
    assert code == 1, out
    assert f"warning: {aliases}.cdb is missing: run qmailctl cdb" in out
    ops.stop()


def two_homes_running_smtpd(tmp_path):
    homes, procs = [], []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        h = make_home(tmp_path / name)
        (h.path / "qmailctl.conf").write_text(f"svdir={tmp_path}/no-service\nsmtprules={tmp_path}/tcp.smtp\n")
        p = subprocess.Popen([h.bin("tcpserver"), "-1", "127.0.0.1", "0", h.bin("qmail-smtpd")],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=h.env)
        int(p.stdout.readline())
        homes.append(h)
        procs.append(p)
    return homes, procs


def test_status_and_stop_act_only_on_this_homes_programs(tmp_path):
    """Two homes run the same programs (hard links of one build): each
    qmailctl sees and stops only the tcpserver started from its own bin/."""
    (a, b), (pa, pb) = two_homes_running_smtpd(tmp_path)
    try:
        out = ctl(a, "status").stdout.decode()
        assert re.search(rf"^smtpd\s+up\s+running \(pid {pa.pid}\)", out, re.M), out
        assert str(pb.pid) not in out
        out = ctl(b, "status").stdout.decode()
        assert re.search(rf"^smtpd\s+up\s+running \(pid {pb.pid}\)", out, re.M), out
        r = ctl(a, "stop", "smtpd")
        assert r.returncode == 0 and f"smtpd: SIGTERM to pid {pa.pid}".encode() in r.stdout, r.stdout
        pa.wait(timeout=10)
        time.sleep(0.2)
        assert pb.poll() is None, "the other home's tcpserver was signalled"
        assert re.search(r"^smtpd\s+not running", ctl(a, "status").stdout.decode(), re.M)
    finally:
        for p in (pa, pb):
            p.terminate()
            p.wait(timeout=10)


# --- signals, start/stop, queue, cdb ---------------------------------------

def test_flush_and_reload_reach_qmail_send(ops):
    fq = ops.home.fqdn
    ops.start()
    ops.inject(f"s@{fq}", [f"defer1@{fq}"])
    wait_for(lambda: "deferral: Temporary_trouble" in ops.log().replace("\\", ""), what="deferral")
    (ops.path / "deferok").write_text("")
    r = ctl(ops.home, "flush")
    assert r.returncode == 0 and b"flush: qmail-send retries deferred deliveries now (pid" in r.stdout
    wait_for(lambda: ops.delivered_to("defer1"), timeout=10, what="retry after qmailctl flush")
    ops.home.control("locals", f"{fq}\nnew.example.org\n")
    r = ctl(ops.home, "reload")
    assert r.returncode == 0 and b"reload:" in r.stdout
    time.sleep(0.3)
    ops.inject("s@x", ["z@new.example.org"])
    wait_for(lambda: ops.delivered_to("z"), what="delivery to a local domain added by reload")
    ops.stop()
    assert ctl(ops.home, "flush").returncode == 2


def test_start_and_stop_without_supervisor(ops):
    log = ops.tmp / "send.log"
    with open(ops.conf, "a") as f:
        f.write(f"log={log}\n")
    env = {"PATH": os.environ["PATH"]}
    r = ctl(ops.home, "start", "send", env=env)
    assert r.returncode == 0, r.stdout
    wait_for(lambda: log.exists() and "status: local" in log.read_text(), what="qmail-send started by qmailctl")
    assert ctl(ops.home, "status").returncode == 0
    assert b"already running" in ctl(ops.home, "start", "send").stdout
    # the rc script hands its actions to qmailctl
    rc = subprocess.run(["sh", str(ROOT / "contrib" / "send" / "init.d" / "qmail"), "status"],
                        env={**ops.home.env, "QMAIL_HOME": str(ops.path)}, capture_output=True)
    assert rc.returncode == 0 and re.search(rb"^send\s+up", rc.stdout, re.M), rc.stdout
    assert subprocess.run(["sh", str(ROOT / "contrib" / "send" / "init.d" / "qmail"), "bogus"],
                          env=ops.home.env, capture_output=True).returncode == 2
    ops.inject("s@x", [f"viactl@{ops.home.fqdn}"])
    wait_for(lambda: ops.delivered_to("viactl"), what="delivery")
    r = ctl(ops.home, "stop")
    assert r.returncode == 0 and b"send: SIGTERM to pid" in r.stdout
    assert log.read_text().rstrip().endswith("status: exiting")
    assert ctl(ops.home, "status").returncode == 2
    ops.wait_helpers_gone()


def test_queue_and_list(ops):
    ops.inject("a@x", [f"q1@{ops.home.fqdn}", "r@remote.example"])
    r = ctl(ops.home, "queue")
    assert r.returncode == 0
    assert r.stdout == ops.home.run("qmail-qstat").stdout
    assert b"messages in queue: 1\n" in r.stdout
    r = ctl(ops.home, "list")
    assert r.returncode == 0 and r.stdout == ops.home.run("qmail-qread").stdout
    assert b"<a@x>" in r.stdout


def test_cdb_rebuilds_everything(ops):
    t = ops.tmp
    (t / "tcp.smtp").write_text("127.0.0.1:allow,RELAYCLIENT=\"\"\n:allow\n")
    (t / "tcp.pop3").write_text(":allow\n")
    (ops.path / "users" / "assign").write_text("=joe:joe:1000:1000:/home/joe:::\n.\n")
    ops.home.control("morercpthosts", "more.example\n")
    (t / "aliases").write_text("root: joe@example.com\n")
    r = ctl(ops.home, "cdb")
    out = r.stdout.decode()
    assert r.returncode == 0, out
    for f in [t / "tcp.smtp.cdb", t / "tcp.pop3.cdb", ops.path / "users" / "cdb",
              ops.path / "control" / "morercpthosts.cdb", t / "aliases.cdb"]:
        assert f.exists(), out
    assert out.count(": ok") == 5
    # the rules cdb is the one tcprules makes: tcprulescheck reads it
    chk = subprocess.run([ops.home.bin("tcprulescheck"), str(t / "tcp.smtp.cdb")],
                         env={**os.environ, "TCPREMOTEIP": "127.0.0.1"}, capture_output=True)
    assert b"RELAYCLIENT" in chk.stdout
    (t / "tcp.smtp").write_text("1.2.3.4:frobnicate\n")
    r = ctl(ops.home, "cdb")
    assert r.returncode == 111 and b"tcp.smtp.cdb: FAILED (exit 100)" in r.stdout
    assert b"unable to parse this line" in r.stdout


# --- qmail-report ----------------------------------------------------------

KNOWN = [
    # msg 101: 1 local success after 2 s, 1 remote failure after 5 s
    (1000.0, "new msg 101"),
    (1000.0, "info msg 101: bytes 1500 from <alice@example.com> qp 11 uid 1000"),
    (1000.5, "starting delivery 1: msg 101 to local bob@example.com"),
    (1001.0, "starting delivery 2: msg 101 to remote carol@far.example"),
    (1002.0, "delivery 1: success: did_0+0+1/"),
    (1005.0, "delivery 2: failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)/"),
    (1005.5, "bounce msg 101 qp 12"),
    (1005.5, "end msg 101"),
    # msg 102: remote deferral, then success after 100 s
    (1010.0, "new msg 102"),
    (1010.0, "info msg 102: bytes 500 from <alice@example.com> qp 13 uid 1000"),
    (1010.0, "starting delivery 3: msg 102 to remote dave@far.example"),
    (1011.0, "delivery 3: deferral: Connected_to_192.0.2.1_but_connection_died./"),
    (1110.0, "starting delivery 4: msg 102 to remote dave@far.example"),
    (1110.0, "delivery 4: success: 192.0.2.1_accepted_message./Remote_host_said:_250_ok/"),
    (1110.0, "end msg 102"),
    # msg 103: two local successes after 0.2 s, empty sender
    (1200.0, "new msg 103"),
    (1200.0, "info msg 103: bytes 3000 from <> qp 14 uid 0"),
    (1200.0, "starting delivery 5: msg 103 to local bob@example.com"),
    (1200.1, "starting delivery 6: msg 103 to local eve@example.com"),
    (1200.2, "delivery 5: success: did_1+0+0/"),
    (1200.2, "delivery 6: success: did_1+0+0/"),
    (1200.3, "end msg 103"),
    (1200.3, "status: local 0/10 remote 0/20"),
]


def tai64n(t):
    secs = int(t)
    return "@%016x%08x" % ((1 << 62) + 10 + secs, int(round((t - secs) * 1e9)))


def log_forms(tmp_path):
    raw = "\n".join(l for _, l in KNOWN) + "\n"
    multilog = "\n".join(f"{tai64n(t)} {l}" for t, l in KNOWN) + "\n"
    syslog = "\n".join(f"Jan  1 00:16:40 mx qmail: {t:.6f} {l}" for t, l in KNOWN) + "\n"
    journal = "\n".join(f"{t:.6f} mx qmail[77]: {l}" for t, l in KNOWN) + "\n"
    out = {}
    for name, text in [("raw", raw), ("multilog", multilog), ("syslog", syslog), ("journal", journal)]:
        p = tmp_path / f"{name}.log"
        p.write_text(text)
        out[name] = p
    return out


def report(qhome, *args, input=None):
    r = qhome.run("qmail-report", *args, input=input)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def test_report_counts_are_exact(qhome, tmp_path):
    forms = log_forms(tmp_path)
    for name in ("multilog", "syslog", "journal"):
        out = report(qhome, forms[name])
        assert "done     3 messages, 5000 bytes; average 1666 bytes per message" in out, (name, out)
        assert "recips   6 delivery attempts: 4 success, 1 failure, 1 deferral" in out
        assert "local    3 success, 0 failure, 0 deferral" in out
        assert "remote   1 success, 1 failure, 1 deferral" in out
        assert "bounces  1 (0 triple bounces discarded)" in out
        # xdelay: 2 + 5 + 100 + 0.2 + 0.2 = 107.4 over 5 completed deliveries
        assert "xdelay   107.40 seconds total, 21.48 average" in out, out
        assert "qtime    200 seconds of log, 23 lines" in out
        dist = out.split("Delay distribution")[1].split("Top senders")[0]
        rows = {l.split()[0]: int(l.split()[1]) for l in dist.splitlines() if re.match(r"\s+(\d+|more)\s+\d+", l)}
        assert rows == {"1": 2, "4": 1, "16": 1, "64": 0, "256": 1, "1024": 0, "4096": 0, "16384": 0,
                        "65536": 0, "more": 0}, rows
        senders = out.split("Top senders")[1].split("Top recipients")[0]
        assert re.search(r"^\s+2\s+2000\s+3\s+<alice@example.com>$", senders, re.M), senders
        assert re.search(r"^\s+1\s+3000\s+2\s+<>$", senders, re.M)
        recips = out.split("Top recipients")[1]
        assert re.search(r"^\s+2\s+0\s+0\s+2.20\s+bob@example.com$", recips, re.M), recips
        assert re.search(r"^\s+1\s+0\s+1\s+100.00\s+dave@far.example$", recips, re.M)
        assert "1  failure: Sorry,_no_mailbox_here_by_that_name._(#5.1.1)" in out
        assert "1  deferral: Connected_to_192.0.2.1_but_connection_died." in out
    # a raw log has no times: counts still right, no delays
    out = report(qhome, input=forms["raw"].read_bytes())
    assert "done     3 messages, 5000 bytes" in out and "no timestamps" in out
    assert "xdelay   " not in out


def test_report_svg_and_bad_input(qhome, tmp_path):
    forms = log_forms(tmp_path)
    svg = tmp_path / "q.svg"
    out = report(qhome, "--svg", svg, forms["multilog"])
    assert "done     3 messages" in out
    root = ET.parse(svg).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == ns + "svg"
    assert len(root.findall(f".//{ns}circle")) == 5        # one dot per completed delivery
    assert len(root.findall(f".//{ns}polyline")) == 1      # queue size
    junk = b"\x00\xff garbage\n" + b"x" * 200000 + b"\nnew msg\ndelivery 99: success: x\n"
    out = report(qhome, input=junk)
    assert "done     0 messages" in out and "skipped" in out
    r = qhome.run("qmail-report", tmp_path / "missing.log")
    assert r.returncode == 111 and b"cannot open" in r.stderr
    assert qhome.run("qmail-report", "--bogus").returncode == 100


def test_report_of_a_live_run(ops):
    """Known deliveries through the real qmail-send: 4 messages, 5 local
    successes, 1 failure (and its bounce), 1 remote success."""
    fq = ops.home.fqdn
    ops.start()
    ops.inject(f"a@{fq}", [f"u1@{fq}", f"u2@{fq}"])
    ops.inject(f"a@{fq}", [f"fail1@{fq}"])
    ops.inject(f"b@{fq}", [f"u3@{fq}", "r1@remote.example"])
    wait_for(lambda: ops.log().count("end msg") >= 4, what="4 messages done")
    ops.wait_queue_empty()
    ops.stop()
    out = report(ops.home, ops.logpath)
    # the bounce (to a@fq) is the 4th message and a 4th local success
    assert "done     4 messages" in out, out
    assert "local    4 success, 1 failure, 0 deferral" in out
    assert "remote   1 success, 0 failure, 0 deferral" in out
    assert "bounces  1" in out


# --- daemontools -----------------------------------------------------------

def svstat(d):
    return subprocess.run(["svstat", str(d)], capture_output=True, text=True).stdout


@pytest.mark.skipif(not shutil.which("svscan"), reason="daemontools not installed")
def test_send_service_under_daemontools(ops):
    svdir = ops.tmp / "service"
    svdir.mkdir()
    sv = svdir / "qmail-send"
    shutil.copytree(ROOT / "contrib" / "send" / "daemontools" / "qmail-send", sv)
    run = (sv / "run").read_text().replace("QMAIL=/var/qmail", f"QMAIL={ops.path}")
    (sv / "run").write_text(run)
    logrun = (sv / "log" / "run").read_text().replace("setuidgid qmaill ", "")
    (sv / "log" / "run").write_text(logrun)
    with open(ops.conf, "a") as f:
        f.write(f"svdir={svdir}\n")
    current = sv / "log" / "main" / "current"
    scan = subprocess.Popen(["svscan", str(svdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_for(lambda: current.exists() and "status: local" in current.read_text(), 20, "supervised qmail-send")
        r = ctl(ops.home, "status")
        out = r.stdout.decode()
        assert r.returncode == 0, out
        assert re.search(rf"^send\s+up\s+{sv}: up \(pid \d+\)", out, re.M), out
        assert f"[daemontools {sv}]" in out and "log: " in out
        pid = int(re.search(r"\(pid (\d+)\)", svstat(sv)).group(1))
        fq = ops.home.fqdn
        for i in range(30):
            ops.inject(f"s@{fq}", [f"d{i}@{fq}"])
            if i == 10:
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: (m := re.search(r"\(pid (\d+)\)", svstat(sv))) and int(m.group(1)) != pid, 10,
                 "supervise to restart qmail-send")
        wait_for(lambda: len(ops.deliveries()) >= 30, 60, "all 30 deliveries")
        ops.wait_queue_empty()
        got = {args[2] for args, _ in ops.deliveries().values()}
        assert got == {f"d{i}" for i in range(30)}
        # flush goes through svc -a
        r = ctl(ops.home, "flush")
        assert r.returncode == 0 and f"svc -a {sv}".encode() in r.stdout
        # stop through svc -d: status says DOWN, exit 2
        assert ctl(ops.home, "stop", "send").returncode == 0
        wait_for(lambda: ": down" in svstat(sv), 30, "svc -d")
        r = ctl(ops.home, "status")
        assert r.returncode == 2 and re.search(r"^send\s+DOWN", r.stdout.decode(), re.M)
        assert ctl(ops.home, "start", "send").returncode == 0
        wait_for(lambda: ": up" in svstat(sv), 30, "svc -u")
        # qmail-report reads multilog's file as it is. qmail-send writes
        # each line at once, so the kill lost none: every one of the 30
        # deliveries has its success line (a delivery redone after the
        # kill may have two).
        out = report(ops.home, current)
        text = current.read_text()
        assert f"local    {text.count(': success: ')} success, 0 failure" in out, out
        assert text.count(": success: ") >= 30
    finally:
        subprocess.run(["svc", "-dx", str(sv), str(sv / "log")], capture_output=True)
        os.killpg(scan.pid, signal.SIGTERM)
        scan.wait(timeout=10)
        wait_for(lambda: not ops.helpers(), 30, "qmail-send to exit")


# --- maildirsmtp -----------------------------------------------------------

class SmtpSink:
    """A minimal SMTP server: records transactions; RCPT to bad* gets 550,
    to later* gets 451."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.got = []
        self.commands = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(30)
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.settimeout(30)
        f = conn.makefile("rb")
        w = lambda s: conn.sendall(s.encode() + b"\r\n")
        w("220-sink.test ESMTP")
        w("220 ready")
        mail = rcpt = None
        while True:
            line = f.readline()
            if not line:
                break
            cmd = line.rstrip(b"\r\n").decode()
            self.commands.append(cmd)
            u = cmd.upper()
            if u.startswith("HELO"):
                w("250 sink.test")
            elif u.startswith("MAIL FROM:"):
                mail = cmd[10:]
                w("250 ok")
            elif u.startswith("RCPT TO:"):
                rcpt = cmd[8:]
                if rcpt.startswith("<bad"):
                    w("550 no such user")
                elif rcpt.startswith("<later"):
                    w("451 try later")
                else:
                    w("250 ok")
            elif u == "DATA":
                w("354 go")
                data = b""
                while True:
                    l = f.readline()
                    if l in (b".\r\n", b""):
                        break
                    data += l
                self.got.append((mail, rcpt, data))
                w("250 accepted")
            elif u == "RSET":
                w("250 ok")
            elif u == "QUIT":
                w("221 bye")
                break
            else:
                w("502 unknown")
        conn.close()


def write_msg(md, name, text, sub="new"):
    p = md / sub / name
    p.write_bytes(text)
    return p


def test_maildirsmtp_relays_a_maildir(qhome, tmp_path):
    md = tmp_path / "Maildir"
    for s in ("tmp", "new", "cur"):
        (md / s).mkdir(parents=True)
    pre = "dialup-"
    ok = write_msg(md, "1.a.host", b"Return-Path: <s@x.example>\nDelivered-To: dialup-joe@cust.example\n"
                   b"Subject: hi\n\n.leading dot\nbody\n")
    bad = write_msg(md, "2.a.host", b"Return-Path: <s2@x.example>\nDelivered-To: dialup-bad@cust.example\n\nx\n")
    later = write_msg(md, "3.a.host", b"Return-Path: <>\nDelivered-To: dialup-later@cust.example\n\ny\n",
                      sub="cur")
    other = write_msg(md, "4.a.host", b"Return-Path: <s@x>\nDelivered-To: someone@else.example\n\nz\n")
    sink = SmtpSink()
    r = qhome.run("maildirsmtp", md, pre, "127.0.0.1", "relay.example", env={"PORT": str(sink.port)})
    assert r.returncode == 0, r.stderr
    sink.thread.join(10)
    assert sink.commands[0] == "HELO relay.example"
    assert [(m, rc) for m, rc, _ in sink.got] == [("<s@x.example>", "<joe@cust.example>")]
    assert sink.got[0][2] == b"Subject: hi\r\n\r\n..leading dot\r\nbody\r\n"
    assert not ok.exists() and not bad.exists()
    assert later.exists() and other.exists()
    assert b"1 sent, 1 bounced, 1 deferred, 1 skipped" in r.stderr
    # the bounce went to the sender through qmail-queue
    q = qhome.run("qmail-qread").stdout.decode()
    assert "s2@x.example" in q and "<>" in q, q
    # no server: nothing removed, exit 111
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    r = qhome.run("maildirsmtp", md, pre, "127.0.0.1", "relay.example", env={"PORT": str(port)})
    assert r.returncode == 111 and later.exists()
    assert qhome.run("maildirsmtp", md).returncode == 100


# --- maildirwatch ----------------------------------------------------------

def test_maildirwatch_shows_new_mail(qhome, tmp_path):
    md = tmp_path / "Maildir"
    for s in ("tmp", "new", "cur"):
        (md / s).mkdir(parents=True)
    write_msg(md, "1.x.h", b"From: Alice <a@x>\nSubject: lunch\n\tat noon\n\nbody\n")
    write_msg(md, "2.x.h:2,S", b"From: old@x\nSubject: seen\n\n", sub="cur")
    p = subprocess.Popen([qhome.bin("maildirwatch")], stdout=subprocess.PIPE,
                         env={**qhome.env, "MAILDIR": str(md)})
    try:
        out = b""
        end = time.time() + 10
        while b"lunch" not in out and time.time() < end:
            r, _, _ = select.select([p.stdout], [], [], 1)
            if r:
                out += os.read(p.stdout.fileno(), 4096)
    finally:
        p.kill(); p.wait()
    assert out.startswith(b"\x1b[;H\x1b[;J")
    assert b"From: Alice <a@x>\n  Subject: lunch at noon\n" in out
    assert b"seen" not in out
    r = qhome.run("maildirwatch", env={"MAILDIR": ""})
    assert r.returncode == 111 and b"MAILDIR not set" in r.stderr


# --- progress --------------------------------------------------------------

def test_qmail_newu_progress_only_on_a_terminal(qhome):
    assign = "".join(f"=user{i}:user{i}:{1000 + i}:100:/home/user{i}:::\n" for i in range(30000)) + ".\n"
    (qhome.path / "users" / "assign").write_text(assign)
    r = qhome.run("qmail-newu")
    assert r.returncode == 0 and r.stderr == b"" and r.stdout == b""
    code, out = run_on_pty([qhome.bin("qmail-newu")], qhome.env)
    assert code == 0
    # users/assign's 30000 lines make 30001 records (the list of wildcards too)
    assert re.search(rb"\rqmail-newu: (\d+)/\1 records \(100%\) done", out), out


def test_status_finds_tcpserver_services(ops):
    b = ops.home.bin
    popup = [b("qmail-popup"), "localhost", "/bin/true", b("qmail-pop3d"), "Maildir"]
    plain = subprocess.Popen([b("tcpserver"), "-R", "-H", "127.0.0.1", "0", *popup],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tls = subprocess.Popen([b("tcpserver"), "-R", "-H", "127.0.0.1", "0", b("tlswrap"), *popup],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = ctl(ops.home, "status").stdout.decode()
        assert re.search(rf"^pop3\s+up\s+running \(pid {plain.pid}\)", out, re.M), out
        assert re.search(rf"^pop3s\s+up\s+running \(pid {tls.pid}\)", out, re.M), out
        r = ctl(ops.home, "stop", "pop3s")
        assert r.returncode == 0 and f"pop3s: SIGTERM to pid {tls.pid}".encode() in r.stdout
        tls.wait(timeout=10)
        assert plain.poll() is None
        out = ctl(ops.home, "status").stdout.decode()
        assert re.search(r"^pop3s\s+not running", out, re.M), out
    finally:
        for p in (plain, tls):
            if p.poll() is None:
                p.kill()
            p.wait()


CLIENT = r'''#!/usr/bin/env python3
# a serialmail client: handles at most 2 names per run; K for "ok", D for
# "bad", Z for "tmp" in the recipient's file name; logs what it saw
import sys, os
names = [n for n in sys.stdin.buffer.read().split(b"\0") if n]
with open(os.environ["CLIENTLOG"], "ab") as log:
    log.write(b"run " + b" ".join(names) + b"\n")
for n in names[:2]:
    body = open(n, "rb").read()
    st = b"K" if b"ok" in n else b"D" if b"bad" in n else b"Z"
    sys.stdout.buffer.write(n + b"\0" + st + b"result for " + n + b"\n")
'''


def test_maildirserial_runs_a_client_until_done(qhome, tmp_path):
    md = tmp_path / "Maildir"
    for s in ("tmp", "new", "cur"):
        (md / s).mkdir(parents=True)
    hdr = lambda r: f"Return-Path: <s@x.example>\nDelivered-To: pre-{r}@c.example\n\nbody\n".encode()
    for name in ("1.ok", "2.ok", "3.bad", "4.tmp", "5.ok"):
        write_msg(md, name, hdr(name))
    write_msg(md, "6.ok", b"Delivered-To: other-x@c.example\n\nnot ours\n")
    client = tmp_path / "client"
    client.write_text(CLIENT)
    client.chmod(0o755)
    clog = tmp_path / "client.log"
    r = qhome.run("maildirserial", "-b", "-t", "1209600", md, "pre-", client, env={"CLIENTLOG": str(clog)})
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (md / "new").iterdir()) == ["4.tmp", "6.ok"]
    runs = clog.read_text().splitlines()
    assert runs[0] == "run new/1.ok new/2.ok new/3.bad new/4.tmp new/5.ok"
    assert len(runs) == 3   # 2 names handled per run
    q = qhome.run("qmail-qread").stdout.decode()
    assert "s@x.example" in q   # 3.bad bounced to its sender
    # older than -t: the temporary rejection counts as permanent
    os.utime(md / "new" / "4.tmp", (time.time() - 100, time.time() - 100))
    r = qhome.run("maildirserial", "-b", "-t1000", md, "pre-", client, env={"CLIENTLOG": str(clog)})
    assert r.returncode == 0 and (md / "new" / "4.tmp").exists()
    r = qhome.run("maildirserial", "-b", "-t50", md, "pre-", client, env={"CLIENTLOG": str(clog)})
    assert r.returncode == 0 and not (md / "new" / "4.tmp").exists()
    assert qhome.run("maildirserial", md).returncode == 100
    # a client that handles nothing: give up, keep the mail
    write_msg(md, "7.ok", hdr("7.ok"))
    r = qhome.run("maildirserial", md, "pre-", "/bin/true")
    assert r.returncode == 111 and (md / "new" / "7.ok").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="multi-user mode needs root")
def test_doctor_on_a_multi_user_home(qmail_accounts):
    import tempfile
    from conftest import bin_dir
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-ops-", dir="/var/tmp"))
    try:
        home = base / "qmail"
        subprocess.run([str(bin_dir() / "qmail-setup"), str(home), "mx.example.com"], check=True, capture_output=True)
        (home / "qmailctl.conf").write_text(f"svdir={base}/none\nsmtprules={base}/tcp.smtp\naliases={base}/aliases\n")
        env = {**os.environ, "QMAIL_HOME": str(home)}
        run = lambda: subprocess.run([str(home / "bin" / "qmailctl"), "doctor", "--no-dns"], env=env,
                                     capture_output=True, text=True)
        r = run()
        assert "qmail home " + str(home) + " (multi-user)" in r.stdout
        assert "PROBLEM" not in r.stdout, r.stdout
        assert "ok:      owners and modes of home, queue and alias as qmail-setup sets them" in r.stdout
        assert "ok:      programs in" in r.stdout
        # qmail-send (qmails) could not write info/ owned by qmailq
        import pwd
        os.chown(home / "queue" / "info" / "7", pwd.getpwnam("qmailq").pw_uid, -1)
        os.chmod(home / "bin" / "qmail-queue", 0o755)
        r = run()
        assert r.returncode == 2
        assert f"PROBLEM: {home}/queue/info/7 belongs to qmailq, qmail-setup sets qmails" in r.stdout
        assert f"PROBLEM: {home}/bin/qmail-queue is not setuid qmailq (mode 0755)" in r.stdout
        os.chmod(home / "bin" / "qmail-queue", 0o4755)
        assert f"warning: {home}/bin/qmail-queue has mode 04755, qmail-setup sets 04711" in run().stdout
        # accounts an older installation left pointing elsewhere
        subprocess.run(["usermod", "-d", f"{base}/old/alias", "alias"], check=True)
        subprocess.run(["usermod", "-d", f"{base}/old", "qmaild"], check=True)
        r = run()
        assert r.returncode == 2
        assert (f"PROBLEM: account alias has home {base}/old/alias, not {home}/alias: mail for postmaster, root "
                f"and unknown local users defers; usermod -d {home}/alias alias") in r.stdout
        assert f"warning: account qmaild has home {base}/old, not {home}" in r.stdout
        subprocess.run(["usermod", "-d", f"{home}/alias", "alias"], check=True)
        subprocess.run(["usermod", "-d", str(home), "qmaild"], check=True)
        # the directory's login file as vdelivermail's account alone reads it
        (home / "control" / "userdirectory").write_text("ldap\n")
        pw = home / "control" / "ldappassword"
        pw.write_text("cn=mail,dc=example\nsecret\n")
        pw.chmod(0o600)
        qmaild = pwd.getpwnam("qmaild")
        r = run()
        assert r.returncode == 2
        assert (f"PROBLEM: {pw} is not readable by qmaild (uid {qmaild.pw_uid}): qmail-smtpd's recipient check and "
                "filter defer every RCPT (451)") in r.stdout, r.stdout
        os.chown(pw, 0, qmaild.pw_gid)
        pw.chmod(0o640)
        assert "ok:      control/ldappassword: readable by qmail-smtpd's recipient check, not by others" in run().stdout
    finally:
        shutil.rmtree(base)


def run_on_pty(argv, env):
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


def test_newaliases_progress_only_on_a_terminal(qhome, tmp_path):
    aliases = tmp_path / "aliases"
    aliases.write_text("".join(f"user{i}: person{i}@example.com\n" for i in range(60000)))
    r = qhome.run("newaliases", "-f", aliases)
    assert r.returncode == 0 and r.stderr == b"" and r.stdout == b""
    code, out = run_on_pty([qhome.bin("newaliases"), "-f", str(aliases)], qhome.env)
    assert code == 0
    assert b"\rnewaliases: 60000 lines done" in out, out
    # a small file stays quiet even on a terminal
    small = tmp_path / "small"
    small.write_text("root: a@b.example\n")
    code, out = run_on_pty([qhome.bin("newaliases"), "-f", str(small)], qhome.env)
    assert code == 0 and out == b""


def test_maildirsmtp_sends_no_end_of_data_look_alike(qhome, tmp_path):
    """maildirsmtp writes DATA as qmail-remote does: a receiver that ends
    DATA on any <CR>/<LF> "." <CR>/<LF> (NUL ignored) gets each message whole."""
    md = tmp_path / "Maildir"
    for s in ("tmp", "new", "cur"):
        (md / s).mkdir(parents=True)
    bodies = {}
    for i, seq in enumerate(EOD_VARIANTS):
        bodies[i] = b"Subject: %d\n\nreal" % i + seq + SMUGGLED + b"tail"
        write_msg(md, f"{i:03d}.a.host", b"Return-Path: <s%d@x.example>\nDelivered-To: dialup-joe@cust.example\n" % i
                  + bodies[i])
    sink = LenientSMTP()
    try:
        r = qhome.run("maildirsmtp", md, "dialup-", "127.0.0.1", "relay.example", env={"PORT": str(sink.port)})
        assert r.returncode == 0, r.stderr
        assert f"{len(EOD_VARIANTS)} sent, 0 bounced".encode() in r.stderr
    finally:
        sink.close()
    assert [m[0] for m in sink.messages] == [b"s%d@x.example" % i for i in bodies]
    # the last line had no LF: maildirsmtp ends it
    assert [m[2] for m in sink.messages] == [semantic(b + b"\n") for b in bodies.values()]
