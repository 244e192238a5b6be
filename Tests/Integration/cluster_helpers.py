"""What the cluster tests (issue 22) share: full instances on 127.0.0.1,
each with its own home, qmail-send, QMTP and POP3 servers, and the system
account their virtual domain belongs to; `cluster` makes hosts A and B with
the same file-backend directory (made by the same v* commands on both).
Used by test_cluster.py, test_cluster_pop3.py and test_cluster_move.py."""
import os
import pathlib
import poplib
import pwd
import shutil
import signal
import subprocess
import tempfile

import pytest

from conftest import make_home, wait_for
from smtp_helpers import free_port

HOSTS = ("hosta.example.net", "hostb.example.net")


class Host:
    """One full instance: qmail-send (HOME/rc) and qmail-qmtpd under tcpserver."""

    def __init__(self, base, name, vuser):
        base.mkdir()
        base.chmod(0o755)
        self.name = name
        self.q = make_home(base, fqdn=name)
        self.vuser = vuser
        self.port = free_port()
        self.send = self.qmtpd = None
        self.pop3 = []
        self.logfile = self.q.path / "send.log"

    def admin(self, prog, *args, password=None):
        r = self.q.run(prog, *args, input=(password + "\n") if password is not None else b"")
        assert r.returncode == 0, (prog, args, r.stdout, r.stderr)
        return r

    def maildir_new(self, user):
        return sorted((self.q.path / "domains" / "example.org" / user / "Maildir" / "new").iterdir())

    def checkpassword(self, login, password):
        """checkpassword-file's exit code for a POP3 login (fd 3, as from qmail-popup)."""
        return subprocess.run(["/bin/sh", "-c", 'exec "$0" true 3<&0 </dev/null', self.q.bin("checkpassword-file")],
                              input=f"{login}\0{password}\0\0".encode(), env=self.q.env, capture_output=True,
                              timeout=60).returncode

    def log(self):
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def start_send(self):
        self.log_fd = open(self.logfile, "ab")
        self.send = subprocess.Popen([str(self.q.path / "rc")], cwd="/", stdin=subprocess.DEVNULL,
                                     stdout=self.log_fd, stderr=subprocess.STDOUT, env=self.q.env)
        wait_for(lambda: "status: local" in self.log(), 20, f"qmail-send on {self.name}")

    def start_qmtpd(self):
        self.qmtpd = subprocess.Popen(["tcpserver", "-q", "-H", "-R", "127.0.0.1", str(self.port),
                                       self.q.bin("qmail-qmtpd")], env=self.q.env, stdin=subprocess.DEVNULL)
        wait_for(lambda: subprocess.run(["ss", "-ltn", f"sport = :{self.port}"], capture_output=True,
                                        text=True).stdout.count("LISTEN") > 0, 10, f"QMTP on {self.name}")

    def stop_qmtpd(self):
        if self.qmtpd:
            self.qmtpd.terminate()
            self.qmtpd.wait(timeout=10)
            self.qmtpd = None

    def retry_now(self):
        """qmail-send's SIGALRM: every deferred delivery is tried again now."""
        self.send.send_signal(signal.SIGALRM)

    def inject(self, to, body=b"cluster test\n", sender="sender@remote.example"):
        msg = b"From: " + sender.encode() + b"\nSubject: cluster\n\n" + body
        r = self.q.run("qmail-inject", f"-f{sender}", to, input=msg)
        assert r.returncode == 0, r.stderr

    def queued(self):
        return len(self.q.queue_files("mess"))

    def start_pop3(self, tls=False):
        """qmail-popup NAME checkpassword-file qmail-pop3d Maildir under
        tcpserver (behind tlswrap: implicit TLS); returns the port. Its log
        (fd 2: qmail-popup's, checkpassword's, qmail-pop3proxy's lines) goes
        to HOME/pop3.log."""
        log = open(self.q.path / "pop3.log", "ab")
        argv = ["tcpserver", "-1", "-q", "-H", "-R", "127.0.0.1", "0"] + ([self.q.bin("tlswrap")] if tls else [])
        argv += [self.q.bin("qmail-popup"), self.name, self.q.bin("checkpassword-file"), self.q.bin("qmail-pop3d"),
                 "Maildir"]
        env = dict(self.q.env, POP3FAILDELAY="0")
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        log.close()
        port = int(p.stdout.readline())
        self.pop3.append(p)
        return port

    def pop3_log(self):
        p = self.q.path / "pop3.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop_pop3(self):
        for p in self.pop3:
            p.terminate()
            p.wait(timeout=10)
        self.pop3 = []

    def stop(self):
        self.stop_pop3()
        self.stop_qmtpd()
        if self.send:
            self.send.terminate()
            self.send.wait(timeout=30)
            self.log_fd.close()


@pytest.fixture(scope="module")
def vuser():
    name = f"sqcl{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True)
    yield pwd.getpwnam(name)
    subprocess.run(["userdel", name], check=False)


def no_failures(*hosts):
    for h in hosts:
        assert " failure: " not in h.log(), h.log()
        assert "bounce msg" not in h.log(), h.log()


def pop3_refused(port, user, password):
    """The -ERR a POP3 client gets for its PASS."""
    c = poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        c.user(user)
        with pytest.raises(poplib.error_proto) as e:
            c.pass_(password)
    finally:
        c.close()
    return e.value.args[0].decode()


@pytest.fixture
def cluster(vuser):
    """Hosts A and B: alice lives on A, bob on B (the domain's default),
    carol on A; both know each other's QMTP port (control/clusterhosts)
    and share control/clustersecret (keyed loop markers)."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-cluster-", dir="/var/tmp"))
    base.chmod(0o755)
    hosts = [Host(base / n.split(".")[0], n, vuser) for n in HOSTS]
    try:
        routes = "".join(f"{h.name}:127.0.0.1:{h.port}\n" for h in hosts)
        for h in hosts:
            h.admin("vadddomain", "-u", vuser.pw_name, "-H", HOSTS[1], "example.org", password="pm")
            h.admin("vadduser", "-H", HOSTS[0], "alice@example.org", password="pw")
            h.admin("vadduser", "bob@example.org", password="pw")
            h.admin("vadduser", "-H", HOSTS[0], "carol@example.org", password="pw")
            h.q.control("clusterhosts", routes)
            h.q.control("clustersecret", "cluster-secret-Qw8\n")
            h.start_qmtpd()
            h.start_send()
        yield hosts
    finally:
        for h in hosts:
            h.stop()
        shutil.rmtree(base, ignore_errors=True)
