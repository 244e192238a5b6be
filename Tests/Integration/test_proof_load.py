"""proof/load.py at a small scale (CI runs it on every change), and proof that
the harness fails: a queue program that says 0 but drops mail, a qmail-pop3d
stand-in that loses a message, and a queue program that refuses mail for a
while must each be reported BROKEN with exit 1.

Run: SQ_BIN=$PWD/.build/release python3 -m pytest -q Tests/Integration/test_proof_load.py
"""
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, bin_dir

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the load harness needs root (useradd, setpriv)")

SCRIPT = ROOT / "proof" / "load.py"
FIGURES = ["sessions held SMTP", "sessions held POP3", "messages accepted", "messages delivered", "messages lost",
           "protocol errors", "bytes per session SMTP (qmail-smtpd + its qmail-queue, if any)",
           "bytes per session POP3 (qmail-popup + qmail-pop3d, logged in)", "messages/s accepted over SMTP",
           "POP3 commands/s"]
PROMISES = ["SMTP sessions held", "POP3 sessions held", "zero protocol errors", "queue drained", "zero lost messages",
            "memory per session measured", "no fd leak in tcpserver and qmail-send"]


def load(tmp_path, smtp=20, pop3=20, seconds=5, **extra):
    env = dict(os.environ)
    env.update({"SQ_BIN": str(bin_dir()), "PROOF_LOAD_SMTP": str(smtp), "PROOF_LOAD_POP3": str(pop3),
                "PROOF_LOAD_SECONDS": str(seconds), "PROOF_LOAD_DRAIN": "90", "PROOF_LOAD_THINK": "0.5",
                "PROOF_LOAD_SAMPLE": "0.5"})
    env.update({k: str(v) for k, v in extra.items()})
    r = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=400)
    if r.returncode == 2:
        pytest.fail("harness could not run:\n" + r.stdout + r.stderr)
    figures = dict(re.findall(r"^FIGURE (.+?): (.*)$", r.stdout, re.M))
    promises = dict(re.findall(r"^PROMISE (.+?): (.*)$", r.stdout, re.M))
    return r, figures, promises


def fault(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    p.chmod(0o755)
    return str(p)


def test_small_load_keeps_every_promise(tmp_path):
    r, figures, promises = load(tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    for f in FIGURES:
        assert f in figures, (f, out)
    assert promises == {p: "ok" for p in PROMISES}, out
    assert figures["messages lost"] == "0" and figures["protocol errors"] == "0"
    assert figures["sessions held SMTP"].startswith("20 of 20"), out
    assert figures["sessions held POP3"].startswith("20 of 20"), out
    accepted = int(figures["messages accepted"].split()[0])
    assert accepted > 20, out
    assert re.match(r"private median \d+ KiB", figures["bytes per session SMTP (qmail-smtpd + its qmail-queue, if any)"])
    # the harness removes everything it made
    home = re.search(r"home (/var/tmp/sq-load-[^/ ]+)/qmail", r.stdout)
    assert home and not os.path.exists(home.group(1)), out


def test_harness_reports_mail_lost_by_the_queue(tmp_path):
    # says 0 ("queued") for every third message without queueing it
    q = fault(tmp_path, "lossy-queue", '#!/bin/sh\n'
              'if [ $(( $$ % 3 )) -eq 0 ]; then cat >/dev/null; cat <&1 >/dev/null; exit 0; fi\n'
              'exec "$QMAIL_HOME/bin/qmail-queue"\n')
    r, figures, promises = load(tmp_path, smtp=8, pop3=8, seconds=4, PROOF_LOAD_QMAILQUEUE=q)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert promises["zero lost messages"].startswith("BROKEN lost "), out
    assert int(figures["messages lost"]) > 0, out
    assert promises["zero protocol errors"] == "ok", out


def test_harness_reports_mail_lost_by_pop3d(tmp_path):
    # a qmail-pop3d stand-in that removes one message before serving the box
    d = fault(tmp_path, "lossy-pop3d", '#!/bin/sh\n'
              'for f in "$1"/new/* "$1"/cur/*; do if [ -f "$f" ]; then rm -f "$f"; break; fi; done\n'
              'exec "$QMAIL_HOME/bin/qmail-pop3d" "$@"\n')
    r, figures, promises = load(tmp_path, smtp=8, pop3=4, seconds=6, PROOF_LOAD_POP3D=d, PROOF_LOAD_HOLD=1)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert promises["zero lost messages"].startswith("BROKEN lost "), out
    assert int(figures["messages lost"]) > 0, out


def test_harness_reports_unexpected_replies(tmp_path):
    # a queue that fails temporarily: qmail-smtpd says 451, which this
    # harness must count as a protocol error (it expects every message taken)
    q = fault(tmp_path, "failing-queue", '#!/bin/sh\n'
              'if [ $(( $$ % 3 )) -eq 0 ]; then exit 71; fi\n'
              'exec "$QMAIL_HOME/bin/qmail-queue"\n')
    r, figures, promises = load(tmp_path, smtp=8, pop3=4, seconds=4, PROOF_LOAD_QMAILQUEUE=q)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert promises["zero protocol errors"].startswith("BROKEN"), out
    assert "protocol error: smtp session" in out and "refused: b'451" in out, out
    # what was refused is not counted as lost, and nothing refused got delivered
    assert promises["zero lost messages"] == "ok", out
