#!/usr/bin/env python3
"""What a connection costs, apart from its messages: the server CPU (each
server's process tree in a cgroup of its own, as in e2e_bench.py) of

  - K messages sent one after another over one SMTP connection;
  - K connections sending one message each (what an MX mostly sees);
  - K bare connections: greeting, HELO, QUIT;

each message 4 KiB to one hosted mailbox, delivered before the next step,
for ours (tcpserver + qmail-smtpd + its qmail-queue, qmail-send, ...) and
Postfix (smtpd, cleanup, qmgr, virtual), both set up as e2e_bench.py does,
queues and Maildirs on one fresh journaled ext4. The client is a single
Python lane, so these are CPU figures, not throughput.

Ours execs per connection (qmail-smtpd, which tcpserver -H -R -l starts
by posix_spawn with no fork of itself, and the queue session at the
first message); Postfix's smtpd and cleanup serve many connections each.

A last row measures bare connections the way scripts/run.sh serves
port 25: tcpserver -> qmail-smtpd-auth (in tcpserver's child) ->
qmail-smtpd as an unprivileged user, started by clinux_spawn.

Run as root. BENCH_CONNECTIONS (K, default 300), SQ_BIN.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import e2e_bench as e  # noqa: E402
import smtp_bench as sb  # noqa: E402

K = int(os.environ.get("BENCH_CONNECTIONS", "300"))
BODY = (b"From: <s@client.example>\r\nTo: <box0@d0.bench.example>\r\nSubject: conn\r\n\r\n"
        + (b"x" * 70 + b"\r\n") * 56 + b".\r\n")


def reply(f):
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("server closed the connection")
        if line[3:4] != b"-":
            return line


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    f = s.makefile("rb")
    reply(f)
    s.sendall(b"HELO client.example\r\n")
    reply(f)
    return s, f


def message(s, f):
    for cmd in (b"MAIL FROM:<s@client.example>\r\n", b"RCPT TO:<box0@d0.bench.example>\r\n", b"DATA\r\n"):
        s.sendall(cmd)
        reply(f)
    s.sendall(BODY)
    r = reply(f)
    if not r.startswith(b"250"):
        raise SystemExit(f"message refused: {r!r}")


def close(s, f):
    s.sendall(b"QUIT\r\n")
    reply(f)
    f.read()
    s.close()


def measure(kind, base, qbase, bare_only=False):
    """Server CPU ms per unit of the three steps: (per message over one
    connection, per message on a connection of its own, per bare connection);
    with bare_only, the last alone."""
    os.makedirs(base)
    os.chmod(base, 0o755)
    server = kind(base, qbase, "one", 2 * K)
    roots = server.start()
    time.sleep(1)
    meter = sb.CpuMeter(kind.__name__.lower() + "-conn")
    try:
        for r in roots:
            meter.add_tree(r)

        def step(body, delivered):
            c0, t0 = meter.seconds(), time.perf_counter()
            body()
            if delivered:
                e.wait_delivered(server.dirs, delivered, t0, kind.__name__)
            time.sleep(0.5)  # the last processes' exits
            return (meter.seconds() - c0) / K * 1000

        def long_connection():
            s, f = connect(server.port)
            for _ in range(K):
                message(s, f)
            close(s, f)

        def one_each():
            for _ in range(K):
                s, f = connect(server.port)
                message(s, f)
                close(s, f)

        def bare():
            for _ in range(K):
                close(*connect(server.port))

        if bare_only:
            return step(bare, 0)
        return step(long_connection, K), step(one_each, 2 * K), step(bare, 0)
    finally:
        server.stop()
        meter.close()


class OursAuth(e.Ours):
    """Ours with qmail-smtpd behind qmail-smtpd-auth, as run.sh has it
    (qmail-smtpd as nobody: bare connections only, it queues nothing)."""

    def smtpd_program(self):
        import pwd
        pw = pwd.getpwnam(e.VUSER)
        b = os.path.join(self.home, "bin")
        return [os.path.join(b, "qmail-smtpd-auth"), "-u", str(pw.pw_uid), "-g", str(pw.pw_gid),
                os.path.join(b, "checkpassword"), "/bin/true", "--", os.path.join(b, "qmail-smtpd"), e.HOST]


def main():
    if os.geteuid() != 0 or not shutil.which("postconf"):
        raise SystemExit("run as root with Postfix installed")
    base = tempfile.mkdtemp(prefix="conn-bench-", dir=sb.WORK)
    os.chmod(base, 0o755)
    fresh = sb.FreshExt4()
    os.chmod(fresh.mount, 0o755)
    try:
        rows = {name: measure(kind, os.path.join(base, name), fresh.mount)
                for name, kind in (("ours", e.Ours), ("postfix", e.Postfix))}
        auth = measure(OursAuth, os.path.join(base, "ours-auth"), fresh.mount, bare_only=True)
    finally:
        fresh.close()
        subprocess.run(["rm", "-rf", base])
    print(f"{K} x 4 KiB messages to one hosted mailbox, one client lane; server CPU in ms; ours from {sb.BIN}")
    for name, (long_msg, own_msg, conn) in rows.items():
        print(f"{name:8s} per message over one connection {long_msg:.2f}; per message with a connection of its own "
              f"{own_msg:.2f}; per bare connection {conn:.2f}; a connection adds {own_msg - long_msg:.2f}")
    o, p = rows["ours"], rows["postfix"]
    print(f"ratio ours/postfix: one connection per message {o[1] / p[1]:.2f}, many messages per connection {o[0] / p[0]:.2f}")
    print(f"ours as run.sh serves port 25 (qmail-smtpd-auth, qmail-smtpd as {e.VUSER}): per bare connection {auth:.2f}, "
          f"{auth / p[2]:.1f} times Postfix's")


if __name__ == "__main__":
    main()
