"""qmail-webadmin's privilege split on a multi-user (root-owned) home,
started as root as the contrib services start it: the process that holds
the TCP listener and speaks TLS runs as nobody, the root helper listens on
nothing; a login, a change and a logout work across the two; a garbage
frame written into the helper's socket (taken from the network process
with pidfd_getfd, as a taken-over network process would write it) is
refused: the helper kills that process and exits 111 for its supervisor;
either process ending takes the other one down."""
import ctypes
import os
import pathlib
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from test_run import free_ports, wait_for
from test_send import multi_user_home
from test_webadmin import Client

PM_PW = "pm-split-secret"


class Server:
    def __init__(self, home, log):
        self.home, self.log_path = home, log
        self.port = free_ports(1)[0]
        self.ports = {"webadmin": self.port}
        with open(log, "wb") as f:
            self.proc = subprocess.Popen([home.bin("qmail-webadmin"), "-l", "127.0.0.1", "-p", str(self.port)],
                                         env=home.env, stdout=f, stderr=f)
        wait_for(lambda: "listening on" in self.log() or self.proc.poll() is not None, "qmail-webadmin did not start")
        assert self.proc.poll() is None, self.log()
        m = re.search(r"network process (\d+) as uid", self.log())
        self.child = int(m.group(1)) if m else None

    def log(self):
        return pathlib.Path(self.log_path).read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def proc_ids(pid):
    ids = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("Uid", "Gid", "Groups"):
            ids[k] = [int(x) for x in v.split()]
    return ids


def socket_inodes(pid):
    """The inodes of pid's sockets (none for a process that is ending)."""
    out = set()
    try:
        fds = list(pathlib.Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return out
    for fd in fds:
        try:
            m = re.match(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if m:
            out.add(int(m.group(1)))
    return out


def tcp_listeners():
    """inode -> local port of every listening TCP socket (IPv4 and IPv6)."""
    out = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in pathlib.Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A":
                out[int(f[9])] = int(f[1].rsplit(":", 1)[1], 16)
    return out


def unix_socket_fd(pid):
    """The fd number of pid's one AF_UNIX socket (its end of the socketpair)."""
    unix = {int(line.split()[6]) for line in pathlib.Path("/proc/net/unix").read_text().splitlines()[1:]
            if len(line.split()) >= 7}
    fds = []
    for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
        m = re.match(r"socket:\[(\d+)\]", os.readlink(fd))
        if m and int(m.group(1)) in unix:
            fds.append(int(fd.name))
    assert len(fds) == 1, fds
    return fds[0]


def gone(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/status").read_text().count("State:\tZ") == 1
    except FileNotFoundError:
        return True


@pytest.fixture(scope="module")
def site():
    if os.geteuid() != 0:
        pytest.skip("the split drops root: needs root")
    from conftest import QmailAccounts
    accounts = QmailAccounts()
    if accounts.live_home():
        pytest.skip(f"qmail's accounts belong to the installation at {accounts.live_home()}")
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-websplit-", dir="/var/tmp"))
    name = f"sqws{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True)
    try:
        home = multi_user_home(base)
        assert (home.path / "ids").read_text().startswith("mode=multi")
        r = home.run("vadddomain", "-u", name, "example.org", input=PM_PW + "\n")
        assert r.returncode == 0, r.stderr
        home.control("webadmins", "postmaster@example.org\n")
        home.control("vhostuser", name + "\n")
        subprocess.run(["sh", "contrib/pop3/make-servercert.sh", str(home.path), "mail.example.com"], check=True,
                       cwd=pathlib.Path(__file__).resolve().parents[2])
        home.base = base
        yield home
    finally:
        subprocess.run(["userdel", name], check=False)
        accounts.restore()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def server(site, tmp_path):
    s = Server(site, tmp_path / "webadmin.log")
    yield s
    s.stop()


def test_the_listener_runs_as_nobody_and_the_root_helper_listens_on_nothing(site, server):
    nobody = pwd.getpwnam("nobody")
    listeners = tcp_listeners()
    ours = {i for i, port in listeners.items() if port == server.port}
    assert len(ours) == 1, listeners
    holders = [p for p in os.listdir("/proc") if p.isdigit() and ours & socket_inodes(int(p))]
    assert holders == [str(server.child)], holders
    ids = proc_ids(server.child)
    assert ids["Uid"] == [nobody.pw_uid] * 4 and ids["Gid"] == [nobody.pw_gid] * 4, ids
    assert ids["Groups"] == [nobody.pw_gid], ids
    # the helper is root, the child's parent, and holds no listening socket
    assert proc_ids(server.proc.pid)["Uid"] == [0, 0, 0, 0]
    assert int(re.search(r"PPid:\s+(\d+)", pathlib.Path(f"/proc/{server.child}/status").read_text()).group(1)) == server.proc.pid
    assert not socket_inodes(server.proc.pid) & set(listeners), "the root helper holds a listening socket"
    assert f"listening on https://127.0.0.1:{server.port}/ as uid {nobody.pw_uid}" in server.log()


def test_login_change_and_logout_across_the_split(site, server):
    c = Client(server)
    status, page = c.login("postmaster@example.org", PM_PW)
    assert status == 303 and "Hosted domains" in page, page
    # the helper (root) writes the domain's files: vadddomain's library
    s, loc, _ = c.post("/domains/add", {"domain": "split.example", "password": "split-pm-secret"})
    assert s == 303 and loc == "/domains"
    _, _, page = c.request("GET", "/domains")
    assert re.search(r'role="(alert|status)">([^<]*)<', page).group(2) == "Domain split.example added, with its postmaster mailbox.", page
    r = site.run("vdominfo", "split.example")
    assert r.returncode == 0, r.stderr
    # a wrong CSRF token is refused by the helper, nothing changes
    s, _, _ = c.post("/domains/add", {"domain": "nope.example", "password": "nope-pm-secret", "csrf": "0" * 64}, csrf=False)
    assert s == 403 and site.run("vdominfo", "nope.example").returncode != 0
    # a failed login is logged by the helper in the fail2ban line
    s, _ = Client(server).login("postmaster@example.org", "wrong-password")
    assert s == 401 and "qmail-webadmin: login failed remote=127.0.0.1 user=postmaster@example.org" in server.log()
    s, loc, _ = c.post("/logout", {})
    assert s == 303 and loc == "/login"
    s, loc, _ = c.request("GET", "/domains")
    assert s == 303 and loc == "/login"
    # unknown pages and too large forms are answered, the server stays up
    assert c.request("GET", "/nowhere")[0] == 404
    assert c.request("POST", "/login", {"x": "y" * (70 << 10)})[0] == 413
    assert server.proc.poll() is None and not gone(server.child)


def pidfd_getfd(pid, fd):
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        n = libc.syscall(438, pidfd, fd, 0)  # SYS_pidfd_getfd
        if n < 0:
            pytest.skip(f"pidfd_getfd: errno {ctypes.get_errno()}")
        return n
    finally:
        os.close(pidfd)


@pytest.mark.parametrize("garbage", [b"99999999999:", b"5:hello,", b"12:3:GET,1:/,0:,,", b"x"])
def test_a_garbage_frame_from_the_network_process_is_refused(site, server, garbage):
    fd = pidfd_getfd(server.child, unix_socket_fd(server.child))
    try:
        os.write(fd, garbage)
        assert server.proc.wait(timeout=40) == 111, server.log()
    finally:
        os.close(fd)
    assert "the network process sent a" in server.log() and "killed it" in server.log(), server.log()
    wait_for(lambda: gone(server.child), "the network process outlived its helper")


def test_either_process_ending_ends_both(site, tmp_path):
    s = Server(site, tmp_path / "a.log")
    try:
        os.kill(s.child, signal.SIGKILL)
        assert s.proc.wait(timeout=30) == 111
        assert "the network process ended" in s.log(), s.log()
    finally:
        s.stop()
    s = Server(site, tmp_path / "b.log")
    try:
        os.kill(s.proc.pid, signal.SIGKILL)
        s.proc.wait(timeout=30)
        wait_for(lambda: gone(s.child), "the network process outlived its helper", timeout=15)
    finally:
        s.stop()
    s = Server(site, tmp_path / "c.log")
    s.proc.terminate()
    assert s.proc.wait(timeout=30) == 0
    wait_for(lambda: gone(s.child), "SIGTERM did not stop the network process", timeout=15)
