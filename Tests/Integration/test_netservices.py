"""qmail-qmqpc/qmail-qmqpd, qmail-qmtpd, tcp-env, rblsmtpd and the smtpd
service scripts, run as programs."""
import os
import pathlib
import socket
import subprocess
import time

import pytest

from smtp_helpers import TcpServer, free_port, queued, smtpd_env

ROOT = pathlib.Path(__file__).resolve().parents[2]


def ns(b: bytes) -> bytes:
    return str(len(b)).encode() + b":" + b + b","


def test_qmqpd_queues_one_message(qhome):
    packet = ns(ns(b"Subject: q\n\nbody\n") + ns(b"a@b.example") + ns(b"x@y.example") + ns(b"z@y.example"))
    p = subprocess.run([qhome.bin("qmail-qmqpd")], input=packet, capture_output=True,
                       env=smtpd_env(qhome), timeout=30)
    assert p.returncode == 0
    reply = p.stdout
    assert reply.split(b":", 1)[1].startswith(b"Kok "), reply
    [(mess, sender, rcpts)] = queued(qhome)
    assert sender == b"a@b.example" and rcpts == [b"x@y.example", b"z@y.example"]
    assert mess.split(b"\n")[1] == b"Received: from unknown (192.0.2.7)"
    assert b"  by 127.0.0.1 with QMQP; " in mess and mess.endswith(b"Subject: q\n\nbody\n")


def test_qmqpd_truncated_packet_queues_nothing(qhome):
    packet = ns(ns(b"Subject: q\n\nbody\n") + ns(b"a@b.example") + ns(b"x@y.example"))[:-10]
    p = subprocess.run([qhome.bin("qmail-qmqpd")], input=packet, capture_output=True, env=smtpd_env(qhome), timeout=30)
    assert p.returncode != 0
    assert queued(qhome) == []


def test_qmqpc_to_qmqpd_over_tcp(qhome, tmp_path):
    """mini-qmail: qmail-qmqpc hands the message to qmail-qmqpd on the hub."""
    if os.geteuid() != 0:
        pytest.skip("QMQP port 628 needs root")
    # QMQP has a fixed port; run the hub on 628 of a private loopback address
    ip = f"127.{os.getpid() % 200 + 20}.7.8"
    proc = subprocess.Popen(["tcpserver", "-q", "-R", "-H", "-l", "hub", ip, "628", qhome.bin("qmail-qmqpd")],
                            env=smtpd_env(qhome), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection((ip, 628), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        qhome.control("qmqpservers", f"{ip}\n")
        r, w = os.pipe()
        os.write(w, b"Fme@client.example\0Tyou@hub.example\0\0")
        os.close(w)
        p = subprocess.Popen([qhome.bin("qmail-qmqpc")], stdin=subprocess.PIPE, stdout=r, env=qhome.env)
        p.communicate(b"Subject: mini\n\nhi\n", timeout=30)
        os.close(r)
        assert p.returncode == 0
        msgs = queued(qhome)
        assert [(m[1], m[2]) for m in msgs] == [(b"me@client.example", [b"you@hub.example"])]
        assert msgs[0][0].endswith(b"Subject: mini\n\nhi\n")
        # no server reachable: qmail-queue's "connection refused" code
        qhome.control("qmqpservers", f"{ip.rsplit('.', 1)[0]}.9\n")
        r, w = os.pipe()
        os.write(w, b"Fme@client.example\0Tyou@hub.example\0\0")
        os.close(w)
        p = subprocess.Popen([qhome.bin("qmail-qmqpc")], stdin=subprocess.PIPE, stdout=r, env=qhome.env)
        p.communicate(b"x\n", timeout=30)
        os.close(r)
        assert p.returncode == 73
    finally:
        proc.terminate()
        proc.wait()


def test_qmtpd_checks_rcpthosts_and_answers_each_recipient(qhome):
    qhome.control("rcpthosts", "ours.example\n")
    msg1 = ns(b"\nSubject: one\n\nbody\n") + ns(b"a@b.example") + ns(ns(b"x@ours.example") + ns(b"v@far.example"))
    msg2 = ns(b"\rSubject: two\r\n\r\nbody\r\n") + ns(b"") + ns(ns(b"y@ours.example"))
    p = subprocess.run([qhome.bin("qmail-qmtpd")], input=msg1 + msg2, capture_output=True,
                       env=smtpd_env(qhome), timeout=30)
    assert p.returncode == 0
    out = p.stdout
    parts = []
    while out:
        n, rest = out.split(b":", 1)
        parts.append(rest[:int(n)])
        out = rest[int(n) + 1:]
    assert parts[0].startswith(b"Kok ")
    assert parts[1] == b"Dsorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"
    assert parts[2].startswith(b"Kok ")
    msgs = sorted(queued(qhome), key=lambda m: m[1], reverse=True)
    assert [m[2] for m in msgs] == [[b"x@ours.example"], [b"y@ours.example"]]
    assert msgs[1][0].endswith(b"Subject: two\n\nbody\n")
    assert b" with QMTP; " in msgs[0][0]


def qmtp_answers(out: bytes):
    parts = []
    while out:
        n, rest = out.split(b":", 1)
        parts.append(rest[:int(n)])
        out = rest[int(n) + 1:]
    return parts


def test_qmtpd_queues_a_connection_through_one_queue_process(qhome, tmp_path):
    """As qmail-smtpd does: one qmail-queue --session for every message of
    a connection; a refused message in the middle ends that process and the
    next message gets a fresh one; QMAILQUEUE keeps one program per message."""
    qhome.control("rcpthosts", "ours.example\n")
    qhome.control("databytes", "100\n")

    def msg(i, body=b"body\n"):
        return ns(b"\nSubject: %d\n\n" % i + body) + ns(b"s%d@b.example" % i) + ns(ns(b"x@ours.example"))

    stream = msg(1) + msg(2) + msg(3, b"x" * 200 + b"\n") + msg(4) + msg(5)
    p = subprocess.run([qhome.bin("qmail-qmtpd")], input=stream, capture_output=True, env=smtpd_env(qhome), timeout=30)
    assert p.returncode == 0
    parts = qmtp_answers(p.stdout)
    assert parts[2] == b"Dsorry, that message size exceeds my databytes limit (#5.3.4)"
    qps = [int(a.rsplit(b" ", 1)[1]) for a in parts if a.startswith(b"Kok ")]
    assert len(qps) == 4 and qps[0] == qps[1] and qps[2] == qps[3] and qps[1] != qps[2], parts
    msgs = queued(qhome)
    assert sorted(m[1] for m in msgs) == [b"s1@b.example", b"s2@b.example", b"s4@b.example", b"s5@b.example"]
    for mess, sender, _ in msgs:
        assert mess.endswith(b"Subject: %s\n\nbody\n" % sender[1:2])
    # QMAILQUEUE: one program per message, each its own pid
    spy = tmp_path / "qq"
    spy.write_text(f"#!/bin/sh\nexec {qhome.bin('qmail-queue')}\n")
    spy.chmod(0o755)
    p = subprocess.run([qhome.bin("qmail-qmtpd")], input=msg(6) + msg(7), capture_output=True,
                       env=smtpd_env(qhome, QMAILQUEUE=str(spy)), timeout=30)
    qps = [int(a.rsplit(b" ", 1)[1]) for a in qmtp_answers(p.stdout)]
    assert len(qps) == 2 and qps[0] != qps[1]


def test_qmtpd_refuses_nul_in_envelope_addresses(qhome):
    """Found by Fuzz/qmtpd.swift: a NUL in the sender reached qmail-queue's
    envelope, ending the sender there and turning the rest into a recipient
    that no rcpthosts check had seen (an open relay)."""
    qhome.control("rcpthosts", "ours.example\n")
    msg1 = ns(b"\nSubject: one\n\nbody\n") + ns(b"a@b.example\0Tvictim@far.example") + ns(ns(b"x@ours.example"))
    msg2 = ns(b"\nSubject: two\n\nbody\n") + ns(b"a@b.example") + ns(ns(b"y\0Tv@far.example@ours.example") + ns(b"z@ours.example"))
    p = subprocess.run([qhome.bin("qmail-qmtpd")], input=msg1 + msg2, capture_output=True,
                       env=smtpd_env(qhome), timeout=30)
    assert p.returncode == 0
    out, parts = p.stdout, []
    while out:
        n, rest = out.split(b":", 1)
        parts.append(rest[:int(n)])
        out = rest[int(n) + 1:]
    assert parts[0] == b"Dunacceptable sender (#5.1.7)"
    assert parts[1] == b"Dsorry, an address may not contain NUL (#5.1.3)"
    assert parts[2].startswith(b"Kok ")
    assert [(m[1], m[2]) for m in queued(qhome)] == [(b"a@b.example", [b"z@ours.example"])]


def test_qmqpd_refuses_nul_in_envelope_addresses(qhome):
    packet = ns(ns(b"Subject: q\n\nbody\n") + ns(b"a@b.example\0Tc@d.example") + ns(b"x@y.example"))
    p = subprocess.run([qhome.bin("qmail-qmqpd")], input=packet, capture_output=True,
                       env=smtpd_env(qhome), timeout=30)
    assert p.stdout.split(b":", 1)[1].startswith(b"Dsorry, an envelope address may not contain NUL"), p.stdout
    assert queued(qhome) == []


def test_rblsmtpd_environment_override(qhome):
    env = smtpd_env(qhome, RBLSMTPD="-Your network is blocked.")
    p = subprocess.run([qhome.bin("rblsmtpd"), qhome.bin("qmail-smtpd")],
                       input=b"HELO x\r\nMAIL FROM:<a@b>\r\nQUIT\r\n", capture_output=True, env=env, timeout=30)
    assert p.stdout == (b"220 rblsmtpd.local\r\n250 rblsmtpd.local\r\n553 Your network is blocked.\r\n"
                        b"221 rblsmtpd.local\r\n")
    assert b"rblsmtpd: 192.0.2.7 pid" in p.stderr
    env = smtpd_env(qhome, RBLSMTPD="")
    p = subprocess.run([qhome.bin("rblsmtpd"), "-r", "bl.example", qhome.bin("qmail-smtpd")],
                       input=b"QUIT\r\n", capture_output=True, env=env, timeout=30)
    assert p.stdout.startswith(b"220 " + qhome.fqdn.encode() + b" ESMTP")


def test_tcp_env_and_rblsmtpd_exit_codes(qhome):
    # Usage errors are permanent (100), a server that cannot be run is a
    # temporary failure (111), a refused session ends with 0.
    env = smtpd_env(qhome)
    for argv in (["tcp-env"], ["tcp-env", "-x", "/bin/true"], ["rblsmtpd"], ["rblsmtpd", "-r"]):
        p = subprocess.run([qhome.bin(argv[0])] + argv[1:], capture_output=True, env=env, timeout=30)
        assert p.returncode == 100 and b"usage" in p.stderr, (argv, p)
    for argv in (["tcp-env", "/nonexistent/server"], ["rblsmtpd", "/nonexistent/server"]):
        p = subprocess.run([qhome.bin(argv[0])] + argv[1:], capture_output=True, env=dict(env, RBLSMTPD=""),
                           timeout=30)
        assert p.returncode == 111 and b"fatal" in p.stderr, (argv, p)
    p = subprocess.run([qhome.bin("rblsmtpd"), "/nonexistent/server"], input=b"QUIT\r\n", capture_output=True,
                       env=dict(env, RBLSMTPD="blocked"), timeout=30)
    assert p.returncode == 0 and p.stdout.endswith(b"221 rblsmtpd.local\r\n"), p


def test_rblsmtpd_dns_listing(qhome, tmp_path):
    import random
    import shutil
    exe = shutil.which("dnsmasq")
    if not exe or os.geteuid() != 0:
        pytest.skip("needs root and dnsmasq")
    ip = f"127.{random.randint(20, 250)}.{random.randint(1, 250)}.53"
    d = subprocess.Popen([exe, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
                          f"--listen-address={ip}", "--port=53", "--local=/bl.test/", "--user=root",
                          f"--pid-file={tmp_path}/d.pid",
                          "--txt-record=7.2.0.192.bl.test,listed for testing",
                          "--host-record=7.2.0.192.bl.test,127.0.0.2"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        env = smtpd_env(qhome, DNSCACHEIP=ip)
        p = subprocess.run([qhome.bin("rblsmtpd"), "-r", "bl.test", qhome.bin("qmail-smtpd")],
                           input=b"MAIL FROM:<a@b>\r\nQUIT\r\n", capture_output=True, env=env, timeout=30)
        assert p.stdout == b"220 rblsmtpd.local\r\n451 listed for testing\r\n221 rblsmtpd.local\r\n"
        env["TCPREMOTEIP"] = "192.0.2.8"
        p = subprocess.run([qhome.bin("rblsmtpd"), "-b", "-r", "bl.test", qhome.bin("qmail-smtpd")],
                           input=b"QUIT\r\n", capture_output=True, env=env, timeout=30)
        assert p.stdout.startswith(b"220 " + qhome.fqdn.encode())
    finally:
        d.terminate()
        d.wait()


def test_tcp_env_sets_variables_from_the_socket(qhome, tmp_path):
    script = tmp_path / "show"
    script.write_text("#!/bin/sh\nenv | grep -E '^(PROTO|TCP)' | sort\n")
    script.chmod(0o755)
    port = free_port()
    env = dict(qhome.env, DNSCACHEIP="127.0.0.1")
    proc = subprocess.Popen(["tcpserver", "-q", "-H", "-R", "127.0.0.1", str(port), "env", "-u", "TCPREMOTEIP", "-u", "TCPLOCALIP",
                             qhome.bin("tcp-env"), "-R", str(script)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=20)
                break
            except OSError:
                time.sleep(0.05)
        out = b""
        while True:
            b = c.recv(4096)
            if not b:
                break
            out += b
        c.close()
        lines = out.decode().splitlines()
        assert "PROTO=TCP" in lines
        assert "TCPREMOTEIP=127.0.0.1" in lines and "TCPLOCALIP=127.0.0.1" in lines
        assert f"TCPLOCALPORT={port}" in lines
    finally:
        proc.terminate()
        proc.wait()


@pytest.mark.parametrize("script", ["daemontools/qmail-smtpd/run", "daemontools/qmail-submission/run",
                                    "daemontools/qmail-smtps/run"])
def test_no_rcpthosts_no_start(qhome, script):
    (qhome.path / "control" / "rcpthosts").unlink(missing_ok=True)
    p = subprocess.run(["sh", str(ROOT / "contrib" / script)], capture_output=True, text=True,
                       env=dict(qhome.env), timeout=30)
    assert p.returncode == 1
    assert "open relay" in p.stderr
