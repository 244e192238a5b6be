"""Cluster hosts in network namespaces (issue 22), for tests and benchmarks.

Each run makes its own little network: a "switch" namespace holding a
bridge, one namespace per host joined to it by a veth pair (eth0 in the
host, a port on the bridge), and a "client" namespace on the same bridge
that plays the outside world (the tests' SMTP and POP3 clients connect from
there). Nothing is configured in the caller's own namespace, so the
addresses can be the same in every run (hosts 10.77.0.1, .2, ..., the
client 10.77.0.100) and concurrent runs never meet; the namespace names
carry the caller's pid and a random tag.

Every host is a full instance with its own qmail home (made by qmail-setup
as conftest.make_home makes one): qmail-send (HOME/rc), and under HOME/bin/
tcpserver qmail-smtpd on port 25, qmail-qmtpd on 209 and qmail-popup/
qmail-pop3d on 110 (and on 995 behind tlswrap once the host has a
certificate), all started with `ip netns exec`. The user directory
is the file store, written by the same v* commands on every host
(Cluster.admin_all), as a replicated directory would hold the same entries
everywhere; control/clusterhosts names every host's address.

    with Cluster(3, account="someone") as c:
        c.admin_all("vadddomain", "-u", "someone", "example.org", password="pw")
        c.admin_all("vadduser", "-H", c.hosts[2].name, "carol@example.org", password="pw")
        c.start()
        with c.smtp(c.hosts[0]) as s: s.sendmail(...)
        c.partition(c.hosts[2]); ...; c.heal(c.hosts[2])

Cleanup is guaranteed by close() (called by the with-statement, and at exit
for a Cluster never closed): every process started, then anything else
still inside the namespaces (by pid), then the namespaces (their veths go
with them) and the scratch directory. Every wait is bounded.

To extend (a directory server on the bridge): Host.serve() starts any
program under tcpserver in a host's namespace, Host.popen() any other
program, Cluster.connect()/smtp()/pop3() reach a host from the client
namespace, and Host.pop3_address says where its POP3 listens.
Cluster.node() adds a bare namespace on the bridge (a directory
provider's machine; backend_servers.Slapd and Mariadbd run in any
namespace), Host.checkpassword names POP3's checkpassword program, and
Host.share_path() gives a host a mount namespace of its own in which one
of its directories is seen at a path every host shares (where a
replicated directory says the Maildirs are);
test_cluster_netns_directory.py uses all three.
Cluster.pop3_tls() makes the hosts' POP3 proxy (qmail-pop3proxy, run by
checkpassword for a mailbox homed elsewhere) speak TLS to the home host,
and Cluster.capture() records the frames a host sends and receives.
"""
import atexit
import contextlib
import ctypes
import os
import pathlib
import poplib
import secrets
import select
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import make_home, wait_for

NETNS_DIR = pathlib.Path("/run/netns")
PREFIX = "sqc"  # every namespace this module makes starts so
SUBNET = "10.77.0"
CLIENT_ADDR = f"{SUBNET}.100"
# A second outside client, for what a home host must tell apart (XCLIENT).
CLIENT_ADDR2 = f"{SUBNET}.101"
SMTP_PORT, QMTP_PORT, POP3_PORT, POP3S_PORT = 25, 209, 110, 995
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


class Netns:
    """One named network namespace (ip netns add), its loopback up."""

    def __init__(self, name):
        self.name = name
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")

    def ip(self, *args, check=True):
        return ip("-n", self.name, *args, check=check)

    def argv(self, argv):
        return ["ip", "netns", "exec", self.name, *map(str, argv)]

    @contextlib.contextmanager
    def entered(self):
        """The calling thread inside this namespace for the block: sockets
        made there belong to it (and stay so after the block)."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(NETNS_DIR / self.name, os.O_RDONLY)
            try:
                if _libc.setns(target, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {self.name}")
            finally:
                os.close(target)
            try:
                yield
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:
                    os._exit(111)  # a thread left in a test namespace would test the wrong network
        finally:
            os.close(own)

    def connect(self, addr, port, timeout=5.0, source=None):
        with self.entered():
            return socket.create_connection((addr, port), timeout=timeout,
                                            source_address=(source, 0) if source else None)

    def pids(self):
        r = ip("netns", "pids", self.name, check=False)
        return [int(p) for p in r.stdout.split()]

    def delete(self):
        """Kills what is still inside (processes we started, found by pid
        through the namespace), then removes the namespace."""
        for _ in range(20):
            pids = self.pids()
            if not pids:
                break
            for p in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.05)
        ip("netns", "delete", self.name, check=False)


_reason = None


def unavailable():
    """Why network namespaces cannot be used here (None when they can): a
    probe namespace with a veth pair and a bridge is made and removed."""
    global _reason
    if _reason is not None:
        return _reason or None
    if os.geteuid() != 0:
        _reason = "network namespaces need root"
    elif not shutil.which("ip"):
        _reason = "no ip(8) (iproute2)"
    else:
        probe = None
        try:
            probe = Netns(f"{PREFIX}{os.getpid()}-probe-{secrets.token_hex(3)}")
            probe.ip("link", "add", "br0", "type", "bridge")
            probe.ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
            _reason = ""
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            _reason = f"cannot make network namespaces with veth and bridge: {e}"
        finally:
            if probe:
                probe.delete()
    return _reason or None


class Host:
    """A full instance in its own namespace at `addr`, named `name`."""

    def __init__(self, cluster, letter, index):
        self.cluster = cluster
        self.letter = letter
        self.name = f"host{letter}.example.net"
        self.addr = f"{SUBNET}.{index}"
        self.ns = cluster._netns(letter)
        self.port = f"p-{letter}"  # its port on the bridge, in the switch namespace
        cluster._attach(self.ns, self.port, self.addr)
        base = cluster.base / letter
        base.mkdir()
        base.chmod(0o755)
        self.q = make_home(base, fqdn=self.name)
        self.logfile = self.q.path / "send.log"
        self.services_log = self.q.path / "services.log"
        self.procs = {}  # role -> Popen, every process this host runs
        self.mounts = None  # the process holding its mount namespace (share_path)
        self.checkpassword = "checkpassword-file"  # POP3's, for the file store; or -ldap, -mysql

    # ---------------------------------------------------------- addresses
    @property
    def smtp_address(self):
        return (self.addr, SMTP_PORT)

    @property
    def qmtp_address(self):
        return (self.addr, QMTP_PORT)

    @property
    def pop3_address(self):
        return (self.addr, POP3_PORT)

    # ---------------------------------------------------------- processes
    def popen(self, role, argv, log=None, env=None):
        """argv (a program and its arguments) in this host's namespace with
        its home's environment (or env), in a process group of its own, as
        `role`; its output appended to log (default HOME/services.log)."""
        assert role not in self.procs, f"{role} already runs on {self.name}"
        with open(log or self.services_log, "ab") as out:
            p = subprocess.Popen(self.argv(argv), env=env or self.q.env, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, cwd="/", start_new_session=True)
        self.procs[role] = p
        return p

    def argv(self, argv):
        """argv run in this host's namespaces: its network namespace, and
        its mount namespace once share_path has made one."""
        if self.mounts is None:
            return self.ns.argv(argv)
        return ["nsenter", f"--target={self.mounts.pid}", "--mount", "--net", *map(str, argv)]

    def share_path(self, target, source, timeout=15):
        """Every process this host starts from now on sees its own
        directory `source` at `target`, a path that is the same on every
        host (where the user directory says the Maildirs are): a mount
        namespace of the host's own, held by a process inside its network
        namespace (so it goes with the namespace), in which source is
        bind-mounted onto target. Nothing is mounted in the caller's
        namespace; the test reads each host's files at `source`."""
        assert self.mounts is None, f"{self.name} has its mount namespace already"
        p = subprocess.Popen(self.ns.argv(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                           'mount --bind "$0" "$1" && echo ready && exec sleep 86400',
                                           source, target]),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
        ready, _, _ = select.select([p.stdout], [], [], timeout)
        line = p.stdout.readline() if ready else b""
        if line != b"ready\n":
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait(timeout=5)
            raise RuntimeError(f"no mount namespace for {self.name}: {line + p.stdout.read()!r}")
        self.mounts = p

    def drop_mounts(self):
        """Ends the process holding the mount namespace (the namespace and
        its bind mount go with the last process inside it)."""
        p, self.mounts = self.mounts, None
        if p is not None:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait(timeout=5)
            p.stdout.close()

    def serve(self, role, port, argv, timeout=15, env=None):
        """argv under HOME/bin/tcpserver on port (every address of the
        host), with env added to its home's environment; returns once it
        accepts connections."""
        self.popen(role, [self.q.bin("tcpserver"), "-q", "-R", "-H", "-l", self.name, "-c", "40", "0", port, *argv],
                   env=dict(self.q.env, **(env or {})))
        def accepts():
            try:
                self.ns.connect("127.0.0.1", port, timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(accepts, timeout, f"{role} on {self.name} port {port}", step=0.05)

    def start_send(self):
        seen = len(self.log())
        self.popen("send", [self.q.path / "rc"], log=self.logfile)
        wait_for(lambda: "status: local" in self.log()[seen:], 20, f"qmail-send on {self.name}")

    # A refused password is answered at once: the tests count refusals,
    # they need not wait out qmail-popup's 2 s pause for each.
    POP3_ENV = {"POP3FAILDELAY": "0"}

    def pop3_argv(self):
        return [self.q.bin("qmail-popup"), self.name, self.q.bin(self.checkpassword), self.q.bin("qmail-pop3d"),
                "Maildir"]

    def start(self):
        """qmail-send, SMTP (25), QMTP (209), POP3 (110) and, when the host
        has control/servercert.pem, POP3 with implicit TLS (995)."""
        self.start_send()
        self.serve("smtp", SMTP_PORT, [self.q.bin("qmail-smtpd"), self.name])
        self.serve("qmtp", QMTP_PORT, [self.q.bin("qmail-qmtpd")])
        self.serve("pop3", POP3_PORT, self.pop3_argv(), env=self.POP3_ENV)
        self.start_pop3s()

    def start_pop3s(self):
        if "pop3s" not in self.procs and (self.q.path / "control" / "servercert.pem").exists():
            self.serve("pop3s", POP3S_PORT, [self.q.bin("tlswrap"), *self.pop3_argv()], env=self.POP3_ENV)

    def stop_role(self, role, timeout=30):
        """SIGTERM to the role's process (qmail-send finishes what it is
        doing and exits), then SIGKILL to whatever is left of its group."""
        p = self.procs.pop(role, None)
        if p is None:
            return
        with contextlib.suppress(ProcessLookupError):
            p.terminate()
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5)

    def stop(self):
        """Every process of this host, services first; the home (queue,
        Maildirs) stays, so start() brings the host back as it was."""
        for role in [r for r in self.procs if r != "send"] + ["send"]:
            self.stop_role(role)

    def retry_now(self):
        """qmail-send's SIGALRM: every deferred delivery is tried again now."""
        self.procs["send"].send_signal(signal.SIGALRM)

    # ---------------------------------------------------------- its home
    def admin(self, prog, *args, password=None):
        r = self.q.run(prog, *args, input=(password + "\n") if password is not None else b"")
        assert r.returncode == 0, (self.name, prog, args, r.stdout, r.stderr)
        return r

    def inject(self, to, subject, sender="sender@remote.example", body=None):
        """A message queued on this host by qmail-inject (no network
        needed); its body is the subject unless given."""
        msg = f"From: {sender}\nTo: {to}\nSubject: {subject}\n\n{body or subject}\n".encode()
        r = self.q.run("qmail-inject", f"-f{sender}", to, input=msg)
        assert r.returncode == 0, r.stderr

    def maildir(self, user, domain="example.org"):
        """The messages (new/ and cur/) in user@domain's Maildir on this host."""
        top = self.q.path / "domains" / domain / user / "Maildir"
        return sorted(p for d in ("new", "cur") if (top / d).is_dir() for p in (top / d).iterdir())

    def log(self):
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def queued(self):
        return len(self.q.queue_files("mess"))


class Cluster:
    """n hosts (a, b, c, ...) and a client on one bridge; see the module
    doc. `control` is written into every host's control/ (name -> text)."""

    def __init__(self, n=3, base=None, control=None):
        self.tag = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        self.namespaces = []
        self.hosts = []
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="sq-netns-", dir=base or "/var/tmp"))
        self.base.chmod(0o755)
        self.closed = False
        atexit.register(self.close)
        try:
            self.switch = self._netns("sw")
            self.switch.ip("link", "add", "br0", "type", "bridge")
            self.switch.ip("link", "set", "br0", "up")
            self.client = self._netns("cl")
            self.client.ip("link", "add", "eth0", "type", "veth", "peer", "name", "p-client", "netns", self.switch.name)
            self.switch.ip("link", "set", "p-client", "master", "br0", "up")
            self.client.ip("addr", "add", f"{CLIENT_ADDR}/24", "dev", "eth0")
            self.client.ip("addr", "add", f"{CLIENT_ADDR2}/24", "dev", "eth0")
            self.client.ip("link", "set", "eth0", "up")
            for i in range(n):
                self.hosts.append(Host(self, "abcdefghij"[i], i + 1))
            routes = "".join(f"{h.name}:{h.addr}\n" for h in self.hosts)
            # One secret for the whole cluster, as CLUSTER.md asks: only
            # markers signed with it count toward the loop guard.
            secret = os.urandom(16).hex() + "\n"
            for h in self.hosts:
                h.q.control("clusterhosts", routes)
                h.q.control("clustersecret", secret)
                for name, text in (control or {}).items():
                    h.q.control(name, text)
        except BaseException:
            self.close()
            raise

    def _netns(self, role):
        ns = Netns(f"{self.tag}-{role}")
        self.namespaces.append(ns)
        return ns

    def _attach(self, ns, port, addr):
        """ns joined to the bridge (its eth0, the switch's `port`) at addr."""
        ns.ip("link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", self.switch.name)
        self.switch.ip("link", "set", port, "master", "br0", "up")
        ns.ip("addr", "add", f"{addr}/24", "dev", "eth0")
        ns.ip("link", "set", "eth0", "up")

    def node(self, role, index):
        """A bare namespace on the bridge at SUBNET.index (its `addr`),
        for a server that is not a mail host (a directory provider, say)."""
        ns = self._netns(role)
        ns.addr = f"{SUBNET}.{index}"
        self._attach(ns, f"p-{role}", ns.addr)
        return ns

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.closed:
            return
        self.closed = True
        for h in self.hosts:
            with contextlib.suppress(Exception):
                h.stop()
            with contextlib.suppress(Exception):
                h.drop_mounts()
        for ns in reversed(self.namespaces):
            ns.delete()
        shutil.rmtree(self.base, ignore_errors=True)
        atexit.unregister(self.close)

    def logs(self):
        """Every host's qmail log, each under its name (for failure messages)."""
        return "".join(f"== {h.name}\n{h.log()}" for h in self.hosts)

    def assert_no_bounces(self):
        for h in self.hosts:
            assert " failure: " not in h.log() and "bounce msg" not in h.log(), h.name + "\n" + h.log()

    def admin_all(self, prog, *args, password=None):
        """The same directory change on every host."""
        for h in self.hosts:
            h.admin(prog, *args, password=password)

    def start(self):
        for h in self.hosts:
            h.start()

    def host(self, name):
        return next(h for h in self.hosts if h.name == name)

    # ---------------------------------------------------------- faults
    def partition(self, host):
        """host cut off: its end of the veth down (its addresses stay)."""
        host.ns.ip("link", "set", "eth0", "down")

    def heal(self, host):
        host.ns.ip("link", "set", "eth0", "up")
        wait_for(lambda: "state UP" in host.ns.ip("link", "show", "eth0").stdout, 10, f"{host.name}'s link up")

    # ---------------------------------------------------------- TLS
    def pop3_tls(self, mode, certs):
        """Every host's POP3 proxy speaks TLS to the home host: mode "stls"
        (STLS on port 110) or "tls" (port 995, tlswrap), checking the home
        host's certificate against certs/ca.pem (backend_servers.make_certs,
        its server certificate naming every host). Each host serves
        certs/server.pem (STLS, and 995 from now on)."""
        for h in self.hosts:
            h.q.control("servercert.pem", (certs / "server.pem").read_text() + (certs / "server.key").read_text())
            h.q.control("clusterca.pem", (certs / "ca.pem").read_text())
            h.q.control("clusterpop3tls", mode + "\n")
            h.start_pop3s()

    @contextlib.contextmanager
    def capture(self, host):
        """Records, while the block runs, every frame host sends or
        receives (read on its port of the bridge, in the switch
        namespace); yields a list that holds them after the block."""
        frames = []
        with self.switch.entered():
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL
            s.bind((host.port, 0))
        s.settimeout(0.1)
        done = threading.Event()

        def read():
            while not done.is_set():
                try:
                    frames.append(s.recv(65536))
                except socket.timeout:
                    pass

        t = threading.Thread(target=read, daemon=True)
        t.start()
        try:
            yield frames
        finally:
            time.sleep(0.3)  # the last frames in flight
            done.set()
            t.join(timeout=5)
            s.close()

    # ---------------------------------------------------------- clients
    def connect(self, host_or_addr, port, timeout=5.0):
        """A TCP connection from the client namespace."""
        addr = host_or_addr.addr if isinstance(host_or_addr, Host) else host_or_addr
        return self.client.connect(addr, port, timeout)

    def smtp(self, host, timeout=30.0):
        """smtplib.SMTP connected to host's port 25 from the client."""
        return _ClientSMTP(self.client, host.addr, SMTP_PORT, timeout=timeout)

    def pop3(self, host, timeout=30.0, source=None):
        """poplib.POP3 connected to host's port 110 from the client
        (from `source`, one of its addresses, when given)."""
        return _ClientPOP3(self.client, host.addr, POP3_PORT, timeout=timeout, source=source)

    def client_run(self, argv, **kw):
        """A program (smtp-source, curl, mpop) run in the client namespace."""
        kw.setdefault("timeout", 600)
        return subprocess.run(self.client.argv(argv), **kw)

    def client_popen(self, argv, **kw):
        return subprocess.Popen(self.client.argv(argv), **kw)


class _ClientSMTP(smtplib.SMTP):
    def __init__(self, ns, *args, **kw):
        self._ns = ns
        super().__init__(*args, **kw)

    def _get_socket(self, host, port, timeout):
        return self._ns.connect(host, port, timeout)


class _ClientPOP3(poplib.POP3):
    def __init__(self, ns, *args, source=None, **kw):
        self._ns = ns
        self._source = source
        super().__init__(*args, **kw)

    def _create_socket(self, timeout):
        return self._ns.connect(self.host, self.port, timeout, source=self._source)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@contextlib.contextmanager
def namespace_account(prefix):
    """For a test module's fixture: skips when network namespaces cannot
    be used here, else a system account made for the run (system_account)."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with system_account(prefix) as pw:
        yield pw


@contextlib.contextmanager
def system_account(prefix="sqnet"):
    """A system account made for the run (a domain's owner), removed after."""
    import pwd
    name = f"{prefix}{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True, timeout=30)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, timeout=30)
