"""A private Postfix instance on a loopback port, with its own config and
queue directories, for interop tests and the SMTP benchmark. Without qmgr
in master.cf, accepted mail stays in the queue (incoming/) where tests can
read it with postcat. Needs root (master(8) runs as root)."""
import os
import pathlib
import shutil
import socket
import subprocess
import time

MASTER = "/usr/lib/postfix/sbin/master"


def available() -> bool:
    return os.geteuid() == 0 and os.path.exists(MASTER)


class Postfix:
    def __init__(self, base: pathlib.Path, port: int, hostname="peer.test", access=None, qmgr=False, listen="127.0.0.1",
                 root="/tmp", extra_main="", extra_master=()):
        # Postfix's unix sockets live under the queue directory and their
        # paths must stay short (108 bytes): use a short private directory
        # (in `root`, a short path on the file system wanted for the queue).
        import tempfile
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="sqpf", dir=root))
        os.chmod(self.base, 0o755)  # daemons running as postfix must traverse it
        self.requested = base
        self.port = port
        self.conf = self.base / "etc"
        self.queue = self.base / "queue"
        self.data = self.base / "data"
        for d in (self.conf, self.queue, self.data):
            d.mkdir(parents=True, exist_ok=True)
        os.chown(self.data, _uid("postfix"), _gid("postfix"))
        restrictions = "permit_mynetworks, reject_unauth_destination"
        if access:
            entries = ",".join("{%s=%s}" % (k, v) for k, v in access.items())
            restrictions = f"check_recipient_access inline:{{{entries}}}, " + restrictions
        (self.conf / "main.cf").write_text(f"""
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.data}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = {hostname}
mydomain = test
myorigin = {hostname}
mydestination = {hostname}
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
local_recipient_maps =
alias_maps =
alias_database =
smtpd_recipient_restrictions = {restrictions}
smtpd_banner = $myhostname ESMTP
maillog_file = {self.base}/maillog
maillog_file_prefixes = {self.base}
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
default_process_limit = 100
in_flow_delay = 0
{extra_main}
""")
        master = [
            f"{listen}:{port} inet n - n - - smtpd",
            "cleanup unix n - n - 0 cleanup",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
        if qmgr:
            master += ["qmgr unix n - n 300 1 qmgr", "pickup unix n - n 60 1 pickup"]
        master += list(extra_master)
        (self.conf / "master.cf").write_text("\n".join(master) + "\n")
        env = dict(os.environ, MAIL_CONFIG=str(self.conf))
        subprocess.run(["postfix", "-c", str(self.conf), "check"], env=env, capture_output=True, timeout=120)
        # check leaves master.lock owned by postfix; master (root) must create its own
        # (root may lack CAP_DAC_OVERRIDE in a container).
        for lock in self.data.glob("master.lock"):
            lock.unlink()
        self.proc = subprocess.Popen([MASTER, "-c", str(self.conf), "-d"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                s = socket.create_connection((listen, port), timeout=2)
                banner = s.recv(100)
                s.sendall(b"QUIT\r\n")
                s.close()
                if banner.startswith(b"220"):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("postfix did not start: " + self.log())

    def log(self) -> str:
        p = self.base / "maillog"
        return p.read_text(errors="replace") if p.exists() else ""

    def queued_ids(self):
        ids = []
        for sub in ("incoming", "active", "deferred", "hold"):
            d = self.queue / sub
            if d.exists():
                ids += [p.name for p in d.rglob("*") if p.is_file()]
        return ids

    def message(self, qid: str) -> str:
        r = subprocess.run(["postcat", "-c", str(self.conf), "-q", qid], capture_output=True, text=True, timeout=30)
        return r.stdout

    def messages(self):
        return [self.message(q) for q in self.queued_ids()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if not os.environ.get("SQ_KEEP_POSTFIX"):
            shutil.rmtree(self.base, ignore_errors=True)


def _uid(name):
    import pwd
    return pwd.getpwnam(name).pw_uid


def _gid(name):
    import grp
    return grp.getgrnam(name).gr_gid
