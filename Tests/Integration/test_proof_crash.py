"""proof/crash.py at a small scale: mail through SMTP, the queue, local
delivery and POP3 while components are killed with SIGKILL must lose
nothing; and the harness must say BROKEN when mail really is lost."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import bin_dir

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "proof" / "crash.py"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: makes a mailbox account")

NEED = ("qmail-setup", "qmail-send", "qmail-smtpd", "qmail-queue", "qmail-pop3d", "qmail-popup",
        "checkpassword-file", "vadddomain", "vadduser", "vdelivermail", "tcpserver", "qmail-local")


def run_harness(tmp_path, **env):
    missing = [n for n in NEED if not (bin_dir() / n).exists()]
    if missing:
        pytest.skip(f"not built: {missing}")
    e = dict(os.environ)
    e["SQ_BIN"] = str(bin_dir())
    e.update({k: str(v) for k, v in env.items()})
    r = subprocess.run([sys.executable, str(SCRIPT)], env=e, capture_output=True, text=True, timeout=600)
    return r.returncode, r.stdout + r.stderr


def figure(out, name):
    m = re.search(rf"^FIGURE {re.escape(name)}: (\d+)", out, re.M)
    assert m, f"no figure {name!r} in:\n{out}"
    return int(m.group(1))


def test_crash_injection_small_run_loses_nothing(tmp_path):
    # 13 kills: one of each kind (qmail-send alone and with its children,
    # qmail-lspawn, qmail-clean, qmail-local, vdelivermail, both tcpservers,
    # qmail-smtpd and qmail-queue mid-DATA and after the dot, qmail-pop3d).
    code, out = run_harness(tmp_path, PROOF_CRASH_MESSAGES=150, PROOF_CRASH_KILLS=13, PROOF_CRASH_SEED=4242)
    assert code == 0, out
    assert "BROKEN" not in out
    assert figure(out, "messages lost") == 0
    assert figure(out, "messages generated") == 150
    acked = figure(out, "messages acknowledged with 250")
    assert acked >= 130, out
    assert figure(out, "kills") >= 8, out
    assert figure(out, "messages fetched over POP3") >= acked
    assert figure(out, "messages left in Maildirs after the final POP3 sweep") == 0
    for promise in ("every acknowledged message delivered", "delivered copies whole and in the right mailbox",
                    "duplicates only where qmail allows", "transmission cut before the dot never delivered",
                    "POP3 session ended before QUIT deletes nothing", "mailboxes emptied over POP3",
                    "qmail-send's log accounts for every delivery", "queue drained and clean"):
        assert f"PROMISE {promise}: ok" in out, out
    # everything it made is gone: no account, no home
    home = re.search(r"home (/var/tmp/sq-crash-\S+)/qmail", out).group(1)
    assert not os.path.exists(home)


def test_crash_injection_with_qmail_filter_in_the_path_loses_nothing(tmp_path):
    # qmail-filter (clamd scanning every message) between qmail-smtpd and
    # qmail-queue; the queue kills hit the filter mid-DATA and after the dot.
    from filter_daemons import Clamd
    clamd = Clamd(tmp_path / "clamd")
    assert clamd.start(), clamd.log.read_text()[-2000:]
    try:
        code, out = run_harness(tmp_path, PROOF_CRASH_MESSAGES=120, PROOF_CRASH_KILLS=13, PROOF_CRASH_SEED=777,
                                PROOF_CRASH_FILTER=f"127.0.0.1:{clamd.port}")
    finally:
        clamd.stop()
    assert code == 0, out
    assert "qmail-filter in the path" in out and "BROKEN" not in out
    assert figure(out, "messages lost") == 0
    assert figure(out, "messages acknowledged with 250") >= 100, out
    assert figure(out, "kills") >= 8, out
    assert figure(out, "kills qmail-queue mid-DATA") + figure(out, "kills qmail-queue after dot") >= 1, out
    assert "PROMISE every acknowledged message delivered: ok" in out, out


# A QMAILQUEUE that answers 0 for every fourth message but throws it away:
# qmail-smtpd says 250, the message never reaches a mailbox.
DROPPING_QUEUE = """#!/bin/sh
n=$(( $(cat "$QMAIL_HOME/fault-count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$QMAIL_HOME/fault-count"
if [ $((n % 4)) -eq 0 ]; then
  cat > /dev/null
  cat <&1 > /dev/null
  exit 0
fi
exec "$QMAIL_HOME/bin/qmail-queue"
"""


def test_harness_reports_lost_mail(tmp_path):
    fault = tmp_path / "dropping-qmail-queue"
    fault.write_text(DROPPING_QUEUE)
    fault.chmod(0o755)
    code, out = run_harness(tmp_path, PROOF_CRASH_MESSAGES=40, PROOF_CRASH_KILLS=0, PROOF_CRASH_SENDERS=1,
                            PROOF_CRASH_QMAILQUEUE=fault)
    assert code == 1, out
    assert re.search(r"^PROMISE every acknowledged message delivered: BROKEN \d+ acknowledged messages lost", out, re.M), out
    assert figure(out, "messages lost") >= 5, out
    assert figure(out, "messages acknowledged with 250") == 40, out


# A pop3d that deletes a message at DELE instead of at QUIT: a session cut
# before QUIT loses what it marked.
EAGER_POP3D = """#!/usr/bin/env python3
import os, sys
md = sys.argv[1]
msgs = sorted(os.path.join(md, d, n) for d in ("new", "cur") for n in os.listdir(os.path.join(md, d)))
out = sys.stdout.buffer
def put(b):
    out.write(b)
    out.flush()
put(b"+OK \\r\\n")
for line in sys.stdin.buffer:
    w = line.split()
    c = w[0].lower() if w else b""
    if c == b"uidl":
        put(b"+OK\\r\\n" + b"".join(b"%d %s\\r\\n" % (i + 1, os.path.basename(p).split(":")[0].encode())
                                 for i, p in enumerate(msgs)) + b".\\r\\n")
    elif c == b"retr":
        lines = open(msgs[int(w[1]) - 1], "rb").read().split(b"\\n")[:-1]
        put(b"+OK\\r\\n" + b"".join((b"." + l if l.startswith(b".") else l) + b"\\r\\n" for l in lines) + b".\\r\\n")
    elif c == b"dele":
        os.unlink(msgs[int(w[1]) - 1])
        put(b"+OK\\r\\n")
    elif c == b"quit":
        put(b"+OK\\r\\n")
        break
    else:
        put(b"-ERR\\r\\n")
"""


def test_harness_reports_deletion_without_quit(tmp_path):
    fault = tmp_path / "eager-pop3d"
    fault.write_text(EAGER_POP3D)
    fault.chmod(0o755)
    code, out = run_harness(tmp_path, PROOF_CRASH_MESSAGES=60, PROOF_CRASH_KILLS=0, PROOF_CRASH_POP3D=fault,
                            PROOF_CRASH_POP3_DROP="0.5")
    assert code == 1, out
    assert re.search(r"^PROMISE POP3 session ended before QUIT deletes nothing: BROKEN \d+ messages gone", out, re.M), out
    assert "PROMISE every acknowledged message delivered: ok" in out, out


def test_harness_reports_duplicates_without_a_crash(tmp_path):
    code, out = run_harness(tmp_path, PROOF_CRASH_MESSAGES=30, PROOF_CRASH_KILLS=0, PROOF_CRASH_FAULT="double-delivery")
    assert code == 1, out
    assert re.search(r"^PROMISE duplicates only where qmail allows: BROKEN", out, re.M), out
    assert figure(out, "duplicate deliveries") >= 25, out   # all but the bounces
    assert figure(out, "messages lost") == 0, out


def test_harness_that_cannot_run_exits_2(tmp_path):
    e = dict(os.environ, SQ_BIN=str(tmp_path / "nothing-built-here"))
    r = subprocess.run([sys.executable, str(SCRIPT)], env=e, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "crash: cannot run: not built in" in r.stdout
    assert "PROMISE" not in r.stdout
