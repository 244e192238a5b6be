#!/usr/bin/env python3
"""Guesses per minute one address gets against POP3 (qmail-popup) and SMTP
AUTH (qmail-smtpd-auth) under tcpserver -c 40, with the default delays: a
guesser sends one wrong password per connection and hangs up at once, from
WORKERS parallel connections, for SECONDS. A guess is a run of the
checkpassword program (counted by it). Not a test: a measurement.

Usage (as root, for qmail-smtpd-auth): scripts/bench-loginlimit.py [SECONDS]
  SQ_BIN=.build/release; LIMITS="ip 0 0\\nuser 0 0" measures with the limits
  off (the old behaviour); unset, the defaults apply.
"""
import base64
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = pathlib.Path(os.environ.get("SQ_BIN", ".build/release")).resolve()
SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 20
WORKERS = 40

CP = """#!/bin/sh
echo run >> {calls}
exec python3 -c '
import os, sys
d = b""
while True:
    c = os.read(3, 4096)
    if not c:
        break
    d += c
sys.exit(0 if d.split(b"\\0")[:2] == [b"joe", b"secret"] else 1)
' """


def serve(home, argv):
    p = subprocess.Popen([str(BIN / "tcpserver"), "-1", "-R", "-H", "-l0", "-c", "40", "127.0.0.1", "0", *argv],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         env=dict(os.environ, QMAIL_HOME=str(home)))
    return p, int(p.stdout.readline())


def hammer(port, first_line_after_greeting):
    stop = time.time() + SECONDS

    def worker():
        while time.time() < stop:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.recv(512)
                    s.sendall(first_line_after_greeting)
                    time.sleep(0.05)  # let the line reach the server, then hang up
            except OSError:
                time.sleep(0.01)
    ts = [threading.Thread(target=worker) for _ in range(WORKERS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def measure(kind):
    d = pathlib.Path(tempfile.mkdtemp(prefix="sq-bench-", dir="/tmp"))
    d.chmod(0o755)
    try:
        subprocess.run([str(BIN / "qmail-setup"), "--single-user", "--link", str(d / "q"), "mx.example.org"],
                       check=True, capture_output=True)
        home = d / "q"
        if "LIMITS" in os.environ:
            (home / "control" / "authfaillimit").write_text(os.environ["LIMITS"].replace("\\n", "\n") + "\n")
        calls = d / "calls"
        cp = d / "cp"
        cp.write_text(CP.format(calls=calls))
        cp.chmod(0o755)
        if kind == "pop3":
            argv = [str(BIN / "qmail-popup"), "pop.example.org", str(cp), "/bin/true"]
            line = b"USER joe\r\nPASS wrong\r\n"
        else:
            argv = [str(BIN / "qmail-smtpd-auth"), "-u", "65534", "-g", "65534", str(cp), "--",
                    str(BIN / "qmail-smtpd"), "mx.example.org"]
            line = b"EHLO x\r\nAUTH PLAIN " + base64.b64encode(b"\0joe\0wrong") + b"\r\n"
        p, port = serve(home, argv)
        try:
            hammer(port, line)
            time.sleep(1)
        finally:
            p.terminate()
            p.wait()
        n = len(calls.read_text().splitlines()) if calls.exists() else 0
        print(f"{kind}: {n} guesses in {SECONDS:.0f} s = {n * 60 / SECONDS:.0f} per minute")
    finally:
        shutil.rmtree(d, ignore_errors=True)


for k in ("pop3", "smtp"):
    measure(k)
