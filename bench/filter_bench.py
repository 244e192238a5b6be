#!/usr/bin/env python3
"""Content-filter intake benchmark (issue 18): N messages (5% EICAR in a MIME
attachment, 5% GTUBE, the rest clean 4-KiB mail) over BENCH_SESSIONS
concurrent SMTP sessions, against the same private clamd and spamd, into

  - our qmail-smtpd under tcpserver with QMAILQUEUE=HOME/bin/qmail-filter
    (one filter and one qmail-queue per connection: the session mode),
  - the same without the filter (QMAILQUEUE unset), and
  - Postfix's smtpd (Debian package, a private instance) with clamav-milter
    and spamass-milter (Debian packages; OnInfected Reject, -r 15).

Nothing is delivered (no qmail-send, no qmgr): this measures accepting
mail. Each configuration runs BENCH_ROUNDS times (default 1), and the
median messages/s is printed with the replies counted (so a side that
accepts viruses or spam shows it), then the ratios ours/Postfix and
ours with the filter / without. Run as root (Postfix's master, clamd).
BENCH_MESSAGES (default 2000), BENCH_SESSIONS (default 10), BENCH_ROUNDS,
SQ_BIN. Needs clamav-daemon, spamassassin, clamav-milter, spamass-milter.
"""
import collections
import multiprocessing
import os
import pathlib
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "Integration"))
import postfix_helper  # noqa: E402
from filter_daemons import EICAR, GTUBE, Clamd, Daemon, Spamd, tcp_open, wait_until  # noqa: E402
from smtp_helpers import free_port  # noqa: E402

N = int(os.environ.get("BENCH_MESSAGES", "2000"))
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "10"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "1")))
BIN = os.path.abspath(os.environ.get("SQ_BIN", os.path.join(HERE, "..", ".build", "release")))
DOMAIN = "bench.example"


def message(i: int) -> bytes:
    head = (f"From: bench@client.example\r\nTo: user@{DOMAIN}\r\nSubject: bench {i}\r\n"
            f"Date: Sat, 05 Dec 2026 11:00:00 +0000\r\nMessage-ID: <{i}.{time.time_ns()}@client.example>\r\n"
            "MIME-Version: 1.0\r\n").encode()
    if i % 20 == 0:
        import base64
        b64 = base64.b64encode(EICAR)
        return head + (b"Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n"
                       b"see attached\r\n--B\r\nContent-Type: application/octet-stream\r\n"
                       b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"e.com\"\r\n\r\n"
                       + b64 + b"\r\n--B--\r\n")
    body = b"Content-Type: text/plain\r\n\r\n"
    if i % 20 == 1:
        body += GTUBE + b"\r\n"
    line = b"The quarterly figures are attached below as plain text for review.\r\n"
    while len(head) + len(body) < 4096:
        body += line
    return head + body


def session(args):
    port, indices = args
    codes = []
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
        s.ehlo("client.example")
        for i in indices:
            s.mail("bench@client.example")
            s.rcpt(f"user@{DOMAIN}")
            code, _ = s.data(message(i))
            codes.append(code)
    return codes


def drive(port):
    shares = [(port, list(range(k, N, SESSIONS))) for k in range(SESSIONS)]
    t = time.time()
    with multiprocessing.Pool(SESSIONS) as pool:
        results = pool.map(session, shares)
    elapsed = time.time() - t
    return N / elapsed, collections.Counter(c for r in results for c in r)


def ours(work: pathlib.Path, clamd, spamd, filtered: bool):
    home = work / f"q{time.time_ns()}"
    subprocess.run([os.path.join(BIN, "qmail-setup"), "--single-user", "--link", str(home), DOMAIN],
                   check=True, capture_output=True, timeout=120)
    (home / "control" / "clamd").write_text(clamd.sock + "\n")
    (home / "control" / "spamd").write_text(f"spamd 127.0.0.1:{spamd.port}\n")
    env = dict(os.environ, QMAIL_HOME=str(home))
    env.pop("QMAILQUEUE", None)
    if filtered:
        env["QMAILQUEUE"] = str(home / "bin" / "qmail-filter")
    port = free_port()
    srv = subprocess.Popen(["tcpserver", "-q", "-R", "-H", "-l", "localhost", "-c", str(SESSIONS + 5), "127.0.0.1",
                            str(port), str(home / "bin" / "qmail-smtpd")], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: tcp_open(port), 10)
        return drive(port)
    finally:
        srv.terminate()
        srv.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def postfix(work: pathlib.Path, clamd, spamd):
    mdir = pathlib.Path(tempfile.mkdtemp(prefix="sqm", dir="/tmp"))
    os.chmod(mdir, 0o755)
    conf = mdir / "clamav-milter.conf"
    conf.write_text(f"MilterSocket unix:{mdir}/clam.sock\nMilterSocketMode 666\nClamdSocket unix:{clamd.sock}\n"
                    f"OnInfected Reject\nOnFail Defer\nAddHeader Replace\nForeground yes\nLogFile {mdir}/clam.log\n")
    clam = Daemon(["clamav-milter", "-c", str(conf)], mdir / "clam.out")
    spam = Daemon(["sh", "-c", f"umask 0; exec spamass-milter -p {mdir}/spam.sock -r 15 -- -d 127.0.0.1 -p {spamd.port}"],
                  mdir / "spam.out")
    pf = None
    try:
        if not clam.start(lambda: os.path.exists(mdir / "clam.sock"), 30):
            raise SystemExit("clamav-milter did not start: " + (mdir / "clam.out").read_text()[-500:])
        if not spam.start(lambda: os.path.exists(mdir / "spam.sock"), 30):
            raise SystemExit("spamass-milter did not start: " + (mdir / "spam.out").read_text()[-500:])
        port = free_port()
        pf = postfix_helper.Postfix(work, port, hostname=DOMAIN, extra_main=(
            f"smtpd_milters = unix:{mdir}/clam.sock, unix:{mdir}/spam.sock\n"
            "milter_default_action = tempfail\nmilter_protocol = 6\n"))
        return drive(port)
    finally:
        if pf:
            pf.stop()
        spam.stop()
        clam.stop()
        shutil.rmtree(mdir, ignore_errors=True)


def main():
    if os.geteuid() != 0:
        raise SystemExit("run as root (Postfix's master)")
    for tool in ("clamd", "spamd", "clamav-milter", "spamass-milter", "tcpserver"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed")
    work = pathlib.Path(tempfile.mkdtemp(prefix="sq-filter-bench-", dir="/var/tmp"))
    clamd = Clamd(work / "clamd")
    spamd = Spamd()
    # As many spamd children as sessions, all started at once: spamd's
    # slow ramp-up would otherwise favour whichever side runs later.
    spamd.argv[spamd.argv.index("-m") + 1] = str(SESSIONS)
    spamd.argv[spamd.argv.index("--min-children=1")] = f"--min-children={SESSIONS}"
    spamd.argv += [f"--min-spare={SESSIONS}", f"--max-spare={SESSIONS}"]
    try:
        if not clamd.start() or not spamd.start():
            raise SystemExit("clamd or spamd did not start")
        runs = collections.defaultdict(list)
        codes = {}
        sides = [("ours, filter off", lambda: ours(work, clamd, spamd, False)),
                 ("ours, filter on", lambda: ours(work, clamd, spamd, True)),
                 ("postfix + milters", lambda: postfix(work, clamd, spamd))]
        for r in range(ROUNDS):
            # alternate the order of the two filtering sides between rounds
            order = sides if r % 2 == 0 else [sides[0], sides[2], sides[1]]
            for name, fn in order:
                rate, c = fn()
                runs[name].append(rate)
                codes[name] = c
                print(f"  {name}: {rate:.1f} msgs/s  replies {dict(sorted(c.items()))}", flush=True)
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"{N} messages ({N // 20} EICAR, {N // 20} GTUBE), {SESSIONS} sessions, {ROUNDS} round(s):")
        for k, v in med.items():
            print(f"  {k:20s} {v:8.1f} msgs/s")
        print(f"  ours/Postfix (filtering) {med['ours, filter on'] / med['postfix + milters']:.2f}")
        print(f"  ours filter on/off       {med['ours, filter on'] / med['ours, filter off']:.2f}")
    finally:
        clamd.stop()
        spamd.stop()
        spamd.remove()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
