"""Two full swift-qmail instances on 127.0.0.1 as cluster hosts (issue 22),
shared by the cluster tests: each Host has its own home, qmail-send (HOME/rc)
and qmail-qmtpd under tcpserver on a free port; `cluster` makes hosts A and
B with the same file-backend directory (made by the same v* commands on
both), each knowing the other's QMTP port (control/clusterhosts)."""
import os
import pathlib
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
        self.logfile = self.q.path / "send.log"

    def admin(self, prog, *args, password=None):
        r = self.q.run(prog, *args, input=(password + "\n") if password is not None else b"")
        assert r.returncode == 0, (prog, args, r.stdout, r.stderr)
        return r

    def checkpassword(self, login, password):
        """checkpassword-file's exit code for a POP3 login (fd 3, as from qmail-popup)."""
        return subprocess.run(["/bin/sh", "-c", 'exec "$0" true 3<&0 </dev/null', self.q.bin("checkpassword-file")],
                              input=f"{login}\0{password}\0\0".encode(), env=self.q.env, capture_output=True,
                              timeout=60).returncode

    def maildir_new(self, user):
        return sorted((self.q.path / "domains" / "example.org" / user / "Maildir" / "new").iterdir())

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

    def stop(self):
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


@pytest.fixture
def cluster(vuser):
    """Hosts A and B: alice lives on A, bob on B (the domain's default),
    carol on A; both know each other's QMTP port (control/clusterhosts)."""
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
            h.start_qmtpd()
            h.start_send()
        yield hosts
    finally:
        for h in hosts:
            h.stop()
        shutil.rmtree(base, ignore_errors=True)


def no_failures(*hosts):
    for h in hosts:
        assert " failure: " not in h.log(), h.log()
        assert "bounce msg" not in h.log(), h.log()
