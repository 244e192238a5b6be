"""tcpserver, tcprules, tcprulescheck against ucspi-tcp's (Debian) as oracle.

Run: SQ_BIN=$PWD/.build/debug python3 -m pytest -q Tests/Integration/test_tcpserver.py
"""
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import bin_dir

DEB = {n: f"/usr/bin/{n}" for n in ("tcpserver", "tcprules", "tcprulescheck")}
need_ucspi = pytest.mark.skipif(not os.path.exists(DEB["tcpserver"]), reason="ucspi-tcp not installed")

RULES = """# comment
127.0.0.1:allow,RELAYCLIENT="",GREETING=/hello world/
10.0.0.1-3:deny
10.1.:allow,NET="ten-one"
=host.example.com:allow,HOST="1"
joe@1.2.3.4:deny
1.2.3.4 :allow
5.6.7.:deny

   
192.168.0.250-300:allow,TOP="255"
:allow,DEFAULT="yes",TLSREQUIRED="1"
"""


def ours(name):
    return str(bin_dir() / name)


def compile_rules(tool, tmp_path, text, name="rules"):
    cdb = tmp_path / f"{name}.cdb"
    r = subprocess.run([tool, str(cdb), str(tmp_path / f"{name}.tmp")], input=text.encode(),
                       capture_output=True, timeout=30)
    return r, cdb


@need_ucspi
def test_tcprules_cdb_is_byte_identical(tmp_path):
    r1, a = compile_rules(DEB["tcprules"], tmp_path, RULES, "deb")
    r2, b = compile_rules(ours("tcprules"), tmp_path, RULES, "ours")
    assert r1.returncode == 0 and r2.returncode == 0, (r1.stderr, r2.stderr)
    assert a.read_bytes() == b.read_bytes()
    assert not (tmp_path / "ours.tmp").exists()


@need_ucspi
@pytest.mark.parametrize("line", ["1:allow,A", "1:allow,A=", '1:allow,A="x', "1:allow x", "1:allowance", ":deny,A=1"])
def test_tcprules_rejects_what_ucspi_rejects(tmp_path, line):
    r1, _ = compile_rules(DEB["tcprules"], tmp_path, line + "\n", "deb")
    r2, cdb = compile_rules(ours("tcprules"), tmp_path, line + "\n", "ours")
    assert r1.returncode == 100
    assert r2.returncode == 100
    assert b"unable to parse this line" in r2.stderr
    assert not cdb.exists()


def test_tcprules_usage(tmp_path):
    r = subprocess.run([ours("tcprules")], capture_output=True)
    assert r.returncode == 100 and b"usage" in r.stderr


@need_ucspi
@pytest.mark.parametrize("env", [
    {"TCPREMOTEIP": "127.0.0.1"},
    {"TCPREMOTEIP": "10.0.0.2"},
    {"TCPREMOTEIP": "10.0.0.4"},
    {"TCPREMOTEIP": "10.1.9.9"},
    {"TCPREMOTEIP": "5.6.7.8"},
    {"TCPREMOTEIP": "192.168.0.255"},
    {"TCPREMOTEIP": "1.2.3.4", "TCPREMOTEINFO": "joe"},
    {"TCPREMOTEIP": "1.2.3.4 "},
    {"TCPREMOTEIP": "9.9.9.9", "TCPREMOTEHOST": "host.example.com"},
    {"TCPREMOTEIP": "9.9.9.9", "TCPREMOTEHOST": "other.example.com"},
    {"TCPREMOTEIP": "9.9.9.9"},
])
def test_tcprulescheck_matches_ucspi(tmp_path, env):
    _, cdb = compile_rules(DEB["tcprules"], tmp_path, RULES)
    e = {k: v for k, v in os.environ.items() if not k.startswith("TCP")}
    e.update(env)
    a = subprocess.run([DEB["tcprulescheck"], str(cdb)], env=e, capture_output=True)
    b = subprocess.run([ours("tcprulescheck"), str(cdb)], env=e, capture_output=True)
    assert (a.returncode, a.stdout) == (b.returncode, b.stdout)


class Server:
    """A tcpserver (ours or Debian's) on 127.0.0.1, port chosen by the kernel."""

    def __init__(self, prog, args, env=None, host="127.0.0.1"):
        self.port = free_port(host)
        self.host = host
        e = dict(os.environ)
        if env:
            e.update(env)
        self.proc = subprocess.Popen([prog, *args[:-1], host, str(self.port), *args[-1]],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection((host, self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.stderr.read().decode())
                time.sleep(0.02)
        # the probe connection above was served too: wait for it to finish
        time.sleep(0.1)

    def talk(self, data=b"", timeout=10):
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((self.host, self.port))
        if data:
            s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        s.close()
        return out

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.stderr.read().decode()


def free_port(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


ENVDUMP = ["sh", "-c", "env | grep -E '^(PROTO|TCP|RELAYCLIENT|GREETING|DEFAULT|TLSREQUIRED|NET)' | sort"]


def parse_env(out):
    return dict(line.split("=", 1) for line in out.decode().splitlines() if "=" in line)


@need_ucspi
@pytest.mark.parametrize("server,compiler", [("ours", "deb"), ("deb", "ours"), ("ours", "ours")])
def test_rules_cdb_interop(tmp_path, server, compiler):
    text = "127.0.0.1:allow,RELAYCLIENT=\"\",GREETING=/hello world/\n:deny\n"
    tool = DEB["tcprules"] if compiler == "deb" else ours("tcprules")
    _, cdb = compile_rules(tool, tmp_path, text)
    prog = DEB["tcpserver"] if server == "deb" else ours("tcpserver")
    srv = Server(prog, ["-R", "-H", "-l", "0", "-x", str(cdb), ENVDUMP])
    try:
        env = parse_env(srv.talk())
    finally:
        srv.stop()
    assert env["RELAYCLIENT"] == ""
    assert env["GREETING"] == "hello world"
    assert env["TCPREMOTEIP"] == "127.0.0.1"

    # the default rule denies: the connection closes with no output
    _, cdb = compile_rules(tool, tmp_path, "10.0.0.1:allow\n:deny\n")
    srv = Server(prog, ["-R", "-H", "-l", "0", "-x", str(cdb), ENVDUMP])
    try:
        assert srv.talk() == b""
    finally:
        srv.stop()


@need_ucspi
def test_environment_like_ucspi(tmp_path):
    got = {}
    for name, prog in (("deb", DEB["tcpserver"]), ("ours", ours("tcpserver"))):
        srv = Server(prog, ["-R", "-H", "-l", "mail.example.com", ENVDUMP])
        try:
            got[name] = parse_env(srv.talk())
        finally:
            srv.stop()
    for env in got.values():
        env.pop("TCPREMOTEPORT")
        env.pop("TCPLOCALPORT")
    assert got["ours"] == got["deb"]
    assert got["ours"]["PROTO"] == "TCP"
    assert got["ours"]["TCPLOCALHOST"] == "mail.example.com"
    assert "TCPREMOTEHOST" not in got["ours"] and "TCPREMOTEINFO" not in got["ours"]


@need_ucspi
@pytest.mark.parametrize("lookups", [["-R", "-H", "-l", "mail.example.com"], ["-R", "-h", "-l", "mail.example.com"]])
def test_inherited_connection_variables_are_replaced(tmp_path, lookups):
    """A tcpserver whose own environment holds TCP* variables (a run file
    started from another connection, say): each connection's program sees
    its own values, and no TCPREMOTEINFO (-R), nor a TCPREMOTEHOST when
    none is looked up or found, as with ucspi-tcp. The first case is the
    one tcpserver starts without a fork (no look-up), the second forks."""
    stale = {"TCPREMOTEHOST": "stale.example", "TCPREMOTEINFO": "stale", "TCPREMOTEIP": "192.0.2.9",
             "TCPLOCALHOST": "stale.local", "TCPREMOTEPORT": "1", "PROTO": "UDP"}
    _, cdb = compile_rules(ours("tcprules"), tmp_path, '127.0.0.1:allow,NET="loop"\n')
    got = {}
    for name, prog in (("deb", DEB["tcpserver"]), ("ours", ours("tcpserver"))):
        srv = Server(prog, [*lookups, "-x", str(cdb), ENVDUMP], env=stale)
        try:
            got[name] = parse_env(srv.talk())
        finally:
            srv.stop()
    assert got["ours"].get("TCPREMOTEHOST") != "stale.example" and got["deb"].get("TCPREMOTEHOST") != "stale.example"
    for env in got.values():
        assert env.pop("TCPREMOTEPORT") != "1"
        env.pop("TCPLOCALPORT")
        if "-h" in lookups:
            # ours finds 127.0.0.1 in /etc/hosts too; ucspi-tcp asks only the DNS
            env.pop("TCPREMOTEHOST", None)
    assert got["ours"] == got["deb"]
    assert got["ours"]["TCPREMOTEIP"] == "127.0.0.1" and got["ours"]["PROTO"] == "TCP" and got["ours"]["NET"] == "loop"
    assert got["ours"]["TCPLOCALHOST"] == "mail.example.com"
    assert "TCPREMOTEINFO" not in got["ours"]


@pytest.mark.skipif(shutil.which("strace") is None, reason="no strace")
def test_a_connection_without_look_ups_starts_its_program_without_a_fork(tmp_path):
    """With -H -R -l (nothing to look up on the network) tcpserver starts
    each connection's program by posix_spawn (a clone that shares its
    memory until the exec), never copying itself; with -h the child is
    forked, so that a slow DNS answer holds up that connection only."""
    clones = {}
    for mode in ("-H", "-h"):
        trace = tmp_path / f"trace{mode}"
        port = free_port()
        p = subprocess.Popen(["strace", "-qq", "-e", "trace=clone,clone3,fork,vfork", "-o", str(trace),
                              ours("tcpserver"), "-R", mode, "-l0", "127.0.0.1", str(port), "echo", "served"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            out = b""
            deadline = time.time() + 20
            while time.time() < deadline and out != b"served\n":
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                        out = s.makefile("rb").read()
                except OSError:
                    time.sleep(0.05)
            assert out == b"served\n"
        finally:
            # strace passes no SIGTERM on: tcpserver itself is stopped
            for pid in subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split():
                os.kill(int(pid), signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        clones[mode] = [ln for ln in trace.read_text().splitlines() if "clone" in ln or "fork" in ln]
    assert clones["-H"] and all("CLONE_VM" in ln and "CLONE_VFORK" in ln for ln in clones["-H"]), clones["-H"]
    assert clones["-h"] and not any("CLONE_VM" in ln for ln in clones["-h"]), clones["-h"]


def test_connections_leave_no_descriptor_open_in_tcpserver(tmp_path):
    """tcpserver reads the rules itself for a connection it starts by
    posix_spawn: after many connections it holds the descriptors it held
    after the first."""
    _, cdb = compile_rules(ours("tcprules"), tmp_path, '127.0.0.1:allow,NET="loop"\n:deny\n')
    srv = Server(ours("tcpserver"), ["-R", "-H", "-l0", "-x", str(cdb), ["sh", "-c", "echo $NET"]])
    fds = pathlib.Path(f"/proc/{srv.proc.pid}/fd")
    try:
        assert srv.talk() == b"loop\n"
        time.sleep(0.2)
        before = sorted(os.listdir(fds))
        for _ in range(40):
            assert srv.talk() == b"loop\n"
        time.sleep(0.3)
        assert sorted(os.listdir(fds)) == before
    finally:
        srv.stop()


@need_ucspi
def test_verbose_log_lines_like_ucspi(tmp_path):
    logs = {}
    for name, prog in (("deb", DEB["tcpserver"]), ("ours", ours("tcpserver"))):
        srv = Server(prog, ["-v", "-R", "-H", "-l", "0", "-c", "7", ["sh", "-c", "echo hi; exit 3"]])
        try:
            assert srv.talk() == b"hi\n"
            time.sleep(0.3)
        finally:
            logs[name] = srv.stop()

    def shape(log):
        log = re.sub(r"\b\d{2,}\b", "N", log)  # pids and ports
        return log.splitlines()

    assert shape(logs["ours"]) == shape(logs["deb"])
    assert re.search(r"tcpserver: ok \d+ 0:127\.0\.0\.1:\d+ :127\.0\.0\.1::\d+", logs["ours"])
    assert re.search(r"tcpserver: end \d+ status 768", logs["ours"])
    assert "tcpserver: status: 0/7" in logs["ours"]


def test_banner_limit_and_deny_exit(tmp_path):
    srv = Server(ours("tcpserver"), ["-R", "-H", "-l0", "-B", "banner\n", ["echo", "x"]])
    try:
        assert srv.talk() == b"banner\nx\n"
    finally:
        srv.stop()


def test_concurrency_limit(tmp_path):
    srv = Server(ours("tcpserver"), ["-R", "-H", "-l0", "-c", "1", ["sh", "-c", "sleep 0.5; echo done"]])
    try:
        a = socket.create_connection(("127.0.0.1", srv.port))
        time.sleep(0.1)
        t0 = time.time()
        b = socket.create_connection(("127.0.0.1", srv.port))
        b.settimeout(5)
        assert b.recv(100) == b"done\n"
        assert time.time() - t0 >= 0.25  # waited for the first to finish
        assert a.recv(100) == b"done\n"
    finally:
        srv.stop()


def test_missing_rules_file_drops_unless_X(tmp_path):
    srv = Server(ours("tcpserver"), ["-R", "-H", "-l0", "-x", str(tmp_path / "none.cdb"), ["echo", "x"]])
    try:
        assert srv.talk() == b""
    finally:
        log = srv.stop()
    assert "unable to read" in log
    srv = Server(ours("tcpserver"), ["-X", "-R", "-H", "-l0", "-x", str(tmp_path / "none.cdb"), ["echo", "x"]])
    try:
        assert srv.talk() == b"x\n"
    finally:
        srv.stop()


def test_ipv6_loopback(tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        free_port("::1")
    except OSError:
        pytest.skip("no ::1")
    _, cdb = compile_rules(ours("tcprules"), tmp_path, '::1:allow,NET="six"\n:deny\n')
    srv = Server(ours("tcpserver"), ["-R", "-H", "-l0", "-x", str(cdb),
                                     ["sh", "-c", "echo $PROTO $TCPREMOTEIP $TCPLOCALIP $NET"]], host="::1")
    try:
        assert srv.talk() == b"TCP ::1 ::1 six\n"
    finally:
        srv.stop()


def test_host_0_accepts_ipv4(tmp_path):
    port = free_port()
    p = subprocess.Popen([ours("tcpserver"), "-1", "-R", "-H", "-l0", "0", str(port), "sh", "-c", "echo $TCPREMOTEIP"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == str(port).encode()
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert s.recv(100) == b"127.0.0.1\n"
    finally:
        p.terminate()
        p.wait()


def test_port_0_and_dash_1_prints_port():
    p = subprocess.Popen([ours("tcpserver"), "-1", "-R", "-H", "-l0", "127.0.0.1", "0", "echo", "y"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(p.stdout.readline())
        assert port > 0
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert s.recv(100) == b"y\n"
    finally:
        p.terminate()
        p.wait()


def test_bad_usage_and_unknown_port():
    r = subprocess.run([ours("tcpserver"), "-Z", "0", "1", "true"], capture_output=True)
    assert r.returncode == 100 and b"usage" in r.stderr
    r = subprocess.run([ours("tcpserver"), "127.0.0.1", "no-such-service-xyz", "true"], capture_output=True, timeout=10)
    assert r.returncode == 111 and b"port" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_uid_gid_drop():
    srv = Server(ours("tcpserver"), ["-R", "-H", "-l0", "-u", "65534", "-g", "65534", ["sh", "-c", "id -u; id -g"]])
    try:
        assert srv.talk() == b"65534\n65534\n"
    finally:
        srv.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_U_takes_uid_gid_from_env():
    srv = Server(ours("tcpserver"), ["-U", "-R", "-H", "-l0", ["sh", "-c", "id -u"]], env={"UID": "65534", "GID": "65534"})
    try:
        assert srv.talk() == b"65534\n"
    finally:
        srv.stop()


@need_ucspi
@pytest.mark.skipif(os.geteuid() != 0, reason="an identd on port 113 needs root")
def test_ident_remoteinfo_and_info_rules_like_ucspi(tmp_path):
    import threading
    try:
        identd = socket.socket()
        identd.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        identd.bind(("127.0.0.1", 113))
        identd.listen(5)
    except OSError:
        pytest.skip("port 113 busy")
    stop = threading.Event()

    def serve():
        identd.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = identd.accept()
            except OSError:
                continue
            q = c.recv(100).decode().strip()
            c.sendall(f"{q} : USERID : UNIX : alice\r\n".encode())
            c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        _, cdb = compile_rules(DEB["tcprules"], tmp_path, 'alice@127.0.0.1:allow,WHO="alice"\n:allow,WHO="nobody"\n')
        got = {}
        for name, prog in (("deb", DEB["tcpserver"]), ("ours", ours("tcpserver"))):
            srv = Server(prog, ["-H", "-l0", "-t", "5", "-x", str(cdb), ["sh", "-c", "echo $TCPREMOTEINFO $WHO"]])
            try:
                got[name] = srv.talk()
            finally:
                srv.stop()
        assert got["ours"] == got["deb"] == b"alice alice\n"
    finally:
        stop.set()
        t.join()
        identd.close()


UCSPI_PROGRAMS = ("tcpserver", "tcprules", "tcprulescheck", "tcp-env", "rblsmtpd")


@pytest.mark.parametrize("name", UCSPI_PROGRAMS)
def test_ucspi_programs_link_no_openssl(name):
    # rblsmtpd and tcp-env run once per connection and never speak TLS:
    # neither the dynamic loader nor the binary itself may bring OpenSSL.
    path = ours(name)
    dyn = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, timeout=30)
    assert dyn.returncode == 0, dyn.stderr
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn.stdout)
    assert not [lib for lib in needed if lib.startswith(("libssl", "libcrypto"))], needed
    with open(path, "rb") as f:
        image = f.read()
    # A static link would show OpenSSL's own symbol names instead.
    assert b"SSL_CTX_new" not in image and b"OPENSSL_" not in image


def test_the_openssl_check_sees_a_tls_program():
    # The same checks find OpenSSL in qmail-smtpd, which does link it.
    dyn = subprocess.run(["readelf", "-d", ours("qmail-smtpd")], capture_output=True, text=True, timeout=30).stdout
    with open(ours("qmail-smtpd"), "rb") as f:
        image = f.read()
    assert "libssl" in dyn or b"SSL_CTX_new" in image
