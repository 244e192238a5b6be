"""Private instances of the scanning daemons qmail-filter talks to: clamd
(with a locally made EICAR signature database), SpamAssassin's spamd and
rspamd, each on loopback ports and sockets of its own, plus listeners that
misbehave (accept and never answer; answer garbage). Every wait is bounded."""
import hashlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import threading
import time

from smtp_helpers import free_port

# The EICAR test file and the GTUBE line, assembled here so that this file
# itself is not flagged by a scanner.
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-" + b"STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def wait_until(pred, seconds, step=0.05):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def tcp_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


class Daemon:
    """A foreground daemon started with `argv`; stop() ends it by its pid."""

    def __init__(self, argv, log, cwd=None, env=None):
        self.argv, self.log, self.cwd, self.env = argv, log, cwd, env
        self.proc = None

    def start(self, ready, seconds):
        self.proc = subprocess.Popen(self.argv, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     cwd=self.cwd, env=self.env, start_new_session=True)
        if not wait_until(lambda: self.proc.poll() is not None or ready(), seconds):
            self.stop()
            return False
        return self.proc.poll() is None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # the daemon's own process group: its children (spamd, rspamd workers) too
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


class Clamd(Daemon):
    def __init__(self, base: pathlib.Path):
        self.dir = base
        db = base / "db"
        db.mkdir(parents=True)
        (base / "tmp").mkdir()
        md5 = hashlib.md5(EICAR).hexdigest()
        (db / "local.hdb").write_text(f"{md5}:{len(EICAR)}:Test.EICAR-HDB\n")
        (db / "local.ndb").write_text(f"Test.EICAR-NDB:0:*:{EICAR.hex()}\n")
        self.port = free_port()
        self.sock = str(base / "clamd.sock")
        conf = base / "clamd.conf"
        conf.write_text("\n".join([
            "Foreground yes", f"LocalSocket {self.sock}", "LocalSocketMode 666",
            f"TCPSocket {self.port}", "TCPAddr 127.0.0.1", f"DatabaseDirectory {db}",
            f"TemporaryDirectory {base / 'tmp'}", f"PidFile {base / 'clamd.pid'}", ""]))
        super().__init__(["clamd", "-c", str(conf)], base / "clamd.log")

    def start(self):
        return super().start(lambda: tcp_open(self.port) and os.path.exists(self.sock), 60)


class Spamd(Daemon):
    """spamd as root scans as nobody, which must read its configuration:
    so it lives in a directory of its own under /tmp (pytest's are 0700)."""

    def __init__(self):
        import tempfile
        base = pathlib.Path(tempfile.mkdtemp(prefix="sq-spamd-"))
        os.chmod(base, 0o755)
        self.dir = base
        etc = base / "etc"
        etc.mkdir(parents=True)
        (base / "home").mkdir()
        os.chmod(base / "home", 0o777)
        for pre in pathlib.Path("/etc/spamassassin").glob("*.pre"):
            shutil.copy(pre, etc / pre.name)
        (etc / "local.cf").write_text("use_bayes 0\nbayes_auto_learn 0\nskip_rbl_checks 1\ndns_available no\n")
        self.port = free_port()
        super().__init__(["spamd", "-L", "-x", "-H", str(base / "home"), f"--siteconfigpath={etc}",
                          "-i", f"127.0.0.1:{self.port}", "-m", "2", "--min-children=1", "-s", "stderr"],
                         base / "spamd.log")

    def start(self):
        return super().start(lambda: tcp_open(self.port), 60)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def rspamd_version():
    try:
        out = subprocess.run(["rspamd", "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = out.split()
    return words[-1] if words else None


class Rspamd(Daemon):
    """rspamd without redis or network. Its compiled rules (hyperscan, TLD
    list) are cached in a DBDIR under /var/tmp kept per version: the first
    start there takes 12-25 s, later ones about 1 s."""

    def __init__(self, base: pathlib.Path):
        self.dir = base
        version = rspamd_version() or "unknown"
        self.dbdir = pathlib.Path(f"/var/tmp/swift-qmail-rspamd-{version}/db")
        self.dbdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        local = base / "local"
        (local / "override.d").mkdir(parents=True)
        (local / "local.d").mkdir()
        (base / "run").mkdir()
        (base / "log").mkdir()
        ctl = free_port()
        (local / "override.d" / "worker-normal.inc").write_text(f'bind_socket = "127.0.0.1:{self.port}";\n')
        (local / "override.d" / "worker-controller.inc").write_text(f'bind_socket = "127.0.0.1:{ctl}";\n')
        (local / "override.d" / "worker-proxy.inc").write_text("count = 0;\n")
        (local / "override.d" / "logging.inc").write_text('type = "console";\n')
        (local / "local.d" / "options.inc").write_text(
            'dns { nameserver = ["127.0.0.1:1"]; timeout = 0.2s; retransmits = 1; }\n')
        # No greylisting by score (a clean message without DNS scores 4-5
        # here); the subjects "defer me" and "tag me" get "soft reject" and
        # "add header" from rspamd's force_actions.
        (local / "local.d" / "actions.conf").write_text("greylist = null;\n")
        rules = []
        maps = []
        for name, subject, action in (("DEFER", "defer me", "soft reject"), ("TAG", "tag me", "add header")):
            (base / f"{name}.map").write_text(f"/^{subject}$/\n")
            maps.append(f'SQ_{name} {{ type = "header"; header = "Subject"; regexp = true; '
                        f'map = "{base / (name + ".map")}"; score = 0.0; }}\n')
            rules.append(f'SQ_{name}_RULE {{ action = "{action}"; expression = "SQ_{name}"; }}')
        (local / "local.d" / "multimap.conf").write_text("".join(maps))
        (local / "local.d" / "force_actions.conf").write_text("rules { " + " ".join(rules) + " }\n")
        super().__init__(["rspamd", "-f", "-i", "-c", "/etc/rspamd/rspamd.conf", f"--var=LOCAL_CONFDIR={local}",
                          f"--var=DBDIR={self.dbdir}", f"--var=RUNDIR={base / 'run'}", f"--var=LOGDIR={base / 'log'}"],
                         base / "rspamd.log")

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"GET /ping HTTP/1.0\r\n\r\n")
                return b"pong" in s.recv(4096)
        except OSError:
            return False

    def start(self, seconds=90):
        return super().start(self.ping, seconds)


class BadListener:
    """A TCP listener that accepts and then either never answers (mode
    "hang") or answers `garbage` and closes (mode "garbage")."""

    def __init__(self, mode, garbage=b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!"):
        self.mode, self.garbage = mode, garbage
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self.mode == "hang":
                self.held.append(c)
                continue
            try:
                c.settimeout(5)
                c.recv(65536)
                c.sendall(self.garbage)
            except OSError:
                pass
            c.close()

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()
