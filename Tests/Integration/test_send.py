"""qmail-start, qmail-send, qmail-lspawn, qmail-rspawn and qmail-clean, run
as programs against a qmail home: delivery, bounces, deferral and retry,
signals, crash recovery, and qmail's log line formats.

qmail-local and qmail-getpw are replaced by small stand-in scripts in
HOME/bin that record each delivery, so these tests check the queue core
alone: a recipient whose local part starts with "fail" exits 100, "defer"
exits 111 until HOME/deferok exists, anything else is delivered.
"""
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import qmail_send_running, wait_for

# The stand-ins find the qmail home from their own path: HOME/rc starts
# qmail with an empty environment.
GETPW = """#!/bin/sh
# stand-in qmail-getpw: every local part belongs to the home's owner
QH="${0%/bin/*}"
case "$1" in sleepy*) sleep 2 ;; esac
printf '%s\\0%s\\0%s\\0%s\\0%s\\0%s\\0' "u-$1" "$(id -u)" "$(id -g)" "$QH/users-home" "-" "$1"
"""

LOCAL = """#!/bin/sh
# stand-in qmail-local -- user home local dash ext domain sender defaultdelivery
QH="${0%/bin/*}"
shift
local="$3"
case "$local" in
  fail*) echo "Sorry, no mailbox here by that name. (#5.1.1)"; exit 100 ;;
  defer*) if [ ! -e "$QH/deferok" ]; then echo "Temporary trouble. (#4.3.0)"; exit 111; fi ;;
esac
d="$QH/delivered"
name="$local.$$.$(date +%s%N)"
{ printf '%s\\n' "$@"; } > "$d/tmp.$name.args"
cat > "$d/tmp.$name" || exit 111
[ -e "$QH/slow" ] && sleep "$(cat "$QH/slow")"
mv "$d/tmp.$name.args" "$d/$name.args"
mv "$d/tmp.$name" "$d/$name"
echo "did 0+0+1"
exit 0
"""

REMOTE = """#!/bin/sh
# stand-in qmail-remote host sender recip
QH="${0%/bin/*}"
echo "$1 $2 $3" >> "$QH/remote.log"
case "$3" in
  bad*) printf 'rDSorry, I could not find that user. (#5.1.1)\\0DGiving up on 192.0.2.1.\\0' ;;
  *) printf 'rK192.0.2.1 accepted recipient.\\0K192.0.2.1 accepted message./Remote host said: 250 ok\\0' ;;
esac
"""

LOG_PATTERNS = [
    r"status: local \d+/\d+ remote \d+/\d+",
    r"new msg \d+",
    r"info msg \d+: bytes \d+ from <[^ >]*> qp \d+ uid \d+",
    r"starting delivery \d+: msg \d+ to (local|remote) \S+",
    r"delivery \d+: (success|failure|deferral): \S*",
    r"end msg \d+",
    r"bounce msg \d+ qp \d+",
    r"triple bounce: discarding bounce/\d+",
    r"status: exiting",
]

QUEUE_DIRS = ("pid", "intd", "todo", "mess", "info", "local", "remote", "bounce")




def exe_of(pid):
    """The program pid runs; None once it has exited (helpers come and go)."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


class Mail:
    """A qmail home with stand-in delivery programs and a running qmail-start."""

    def __init__(self, home, remote=False):
        self.home = home
        self.path = home.path
        self.delivered = self.path / "delivered"
        self.delivered.mkdir()
        (self.path / "users-home").mkdir()
        self.install("qmail-getpw", GETPW)
        self.install("qmail-local", LOCAL)
        if remote:
            self.install("qmail-remote", REMOTE)
        else:
            p = self.path / "bin" / "qmail-remote"
            if p.exists():
                p.unlink()
        self.env = dict(home.env)
        self.env["QH"] = str(self.path)
        self.proc = None
        self.logpath = self.path / "send.log"
        self.logfile = None

    def install(self, name, text):
        p = self.path / "bin" / name
        if p.exists():
            p.unlink()
        p.write_text(text)
        p.chmod(0o755)

    # running

    def start(self, argv=None, ready=None):
        """Starts qmail through HOME/rc (or `argv`); its output is the log."""
        self.logfile = open(self.logpath, "ab")
        self.proc = subprocess.Popen(argv or [str(self.path / "rc")], cwd="/",
                                     stdin=subprocess.DEVNULL, stdout=self.logfile, stderr=subprocess.STDOUT,
                                     env=self.env)
        wait_for(ready or (lambda: "status: local" in self.log()), 10, "qmail-send to start")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        self.wait_helpers_gone()
        if self.logfile:
            self.logfile.close()
            self.logfile = None

    def kill9(self, everything=False):
        """SIGKILL to qmail-send, or to it and every helper and delivery at once.
        A qmail-queue injecting a bounce is spared: killed, it leaves a
        mess/ file that only qmail's 36-hour rule removes (see
        test_ossified_leftovers_are_removed); the bounce itself is not lost,
        bounce/N stays until an injection succeeds."""
        victims = []
        if everything:
            q = self.home.bin("qmail-queue")
            victims = [p for p in self.helpers() if exe_of(p) not in (q, None)]
        self.proc.kill()
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        self.logfile.close()
        self.logfile = None

    def helpers(self):
        """pids of processes running a program from HOME/bin."""
        out = []
        bindir = str(self.path / "bin") + "/"
        for d in pathlib.Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                exe = os.readlink(d / "exe")
            except OSError:
                continue
            if exe.startswith(bindir):
                out.append(int(d.name))
        return out

    def wait_helpers_gone(self, timeout=20):
        wait_for(lambda: not self.helpers(), timeout, "qmail-lspawn/rspawn/clean to exit")

    def log(self):
        try:
            return self.logpath.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # injection

    def inject(self, sender, recipients, body=b"Subject: test\n\nhello\n"):
        env = b"F" + sender.encode() + b"\0" + b"".join(b"T" + r.encode() + b"\0" for r in recipients) + b"\0"
        with tempfile.TemporaryFile() as m, tempfile.TemporaryFile() as e:
            m.write(body); m.seek(0)
            e.write(env); e.seek(0)
            p = subprocess.run([self.home.bin("qmail-queue")], stdin=m, stdout=e, stderr=subprocess.PIPE,
                               env=self.env, timeout=30)
        assert p.returncode == 0, p.stderr

    # results

    def deliveries(self):
        """{name: (args, message)} of finished stand-in deliveries."""
        out = {}
        for p in self.delivered.iterdir():
            if p.name.startswith("tmp.") or p.name.endswith(".args"):
                continue
            args = (self.delivered / (p.name + ".args")).read_text().split("\n")
            out[p.name] = (args, p.read_bytes())
        return out

    def delivered_to(self, local):
        return [v for k, v in self.deliveries().items() if k.split(".")[0] == local]

    def queue_files(self):
        return {d: self.home.queue_files(d) for d in QUEUE_DIRS if self.home.queue_files(d)}

    def wait_queue_empty(self, timeout=30):
        wait_for(lambda: not self.queue_files(), timeout, "an empty queue")


@pytest.fixture
def mail(qhome):
    m = Mail(qhome)
    yield m
    if m.proc and m.proc.poll() is None:
        m.proc.kill()
        m.proc.wait(timeout=10)
    if m.logfile:
        m.logfile.close()


@pytest.fixture
def rmail(qhome):
    m = Mail(qhome, remote=True)
    yield m
    if m.proc and m.proc.poll() is None:
        m.proc.kill()
        m.proc.wait(timeout=10)


def check_log_format(text):
    for line in text.splitlines():
        if line.startswith(("warning:", "alert:")):
            continue
        assert any(re.fullmatch(p, line) for p in LOG_PATTERNS), f"not a qmail-send log line: {line!r}"


def test_local_delivery_and_log(mail):
    fq = mail.home.fqdn
    mail.start()
    mail.inject(f"sender@{fq}", [f"alice@{fq}"], b"Subject: one\n\nbody one\n")
    got = wait_for(lambda: mail.delivered_to("alice"), what="delivery")
    args, msg = got[0]
    # qmail-local -- user home local dash ext domain sender defaultdelivery
    assert args[:8] == ["u-alice", str(mail.path / "users-home"), "alice", "-", "alice", fq, f"sender@{fq}", "./Maildir/"]
    assert msg.startswith(b"Received: (qmail ")
    assert msg.endswith(b"Subject: one\n\nbody one\n")
    mail.wait_queue_empty()
    wait_for(lambda: "end msg" in mail.log())
    mail.stop()
    log = mail.log()
    check_log_format(log)
    m = re.search(r"new msg (\d+)\n", log)
    n = m.group(1)
    assert re.search(rf"info msg {n}: bytes \d+ from <sender@{re.escape(fq)}> qp \d+ uid {os.getuid()}\n", log)
    d = re.search(rf"starting delivery (\d+): msg {n} to local alice@{re.escape(fq)}\n", log).group(1)
    assert re.search(rf"status: local 1/10 remote 0/20\ndelivery {d}: success: did_0\+0\+1/\nstatus: local 0/10 remote 0/20\nend msg {n}\n", log), log
    assert log.rstrip("\n").endswith("status: exiting")


def test_many_recipients_and_channels(mail):
    fq = mail.home.fqdn
    mail.start()
    rcpts = [f"r{i}@{fq}" for i in range(30)]
    mail.inject(f"s@{fq}", rcpts + ["far@remote.example.org"])
    wait_for(lambda: len(mail.deliveries()) == 30, what="30 deliveries")
    # qmail-remote is not installed: the remote recipient defers, the message stays.
    wait_for(lambda: "Sorry,_qmail-remote_is_not_installed" in mail.log(), what="remote deferral")
    assert re.search(r"delivery \d+: deferral: Sorry,_qmail-remote_is_not_installed._\(#4.3.0\)/", mail.log())
    left = mail.queue_files()
    assert set(left) == {"mess", "info", "remote"}, left
    assert "end msg" not in mail.log()
    mail.stop()


def test_bounce_in_qmail_format(mail):
    fq = mail.home.fqdn
    mail.start()
    mail.inject(f"bob@{fq}", [f"fail1@{fq}", f"carol@{fq}"], b"Subject: doomed\n\noriginal text\n")
    got = wait_for(lambda: mail.delivered_to("bob"), what="bounce to the sender")
    args, msg = got[0]
    assert args[6] == "", "bounces have the empty envelope sender"
    head, copy = msg.split(b"--- Below this line is a copy of the message.\n\n", 1)
    assert copy.startswith(b"Received: (qmail ") and copy.endswith(b"Subject: doomed\n\noriginal text\n")
    text = head.split(b"\n", 1)[1]  # after qmail-queue's Received line
    assert re.match(rb"Date: \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d -0000\n", text)
    assert (f"From: MAILER-DAEMON@{fq}\nTo: bob@{fq}\nSubject: failure notice\n\n"
            f"Hi. This is the qmail-send program at {fq}.\n"
            "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
            "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
            f"<fail1@{fq}>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n").encode() in text
    assert b"carol" not in text
    assert mail.delivered_to("carol")
    mail.wait_queue_empty()
    log = mail.log()
    assert re.search(r"delivery \d+: failure: Sorry,_no_mailbox_here_by_that_name._\(#5.1.1\)/\n", log)
    assert re.search(r"bounce msg \d+ qp \d+\n", log)
    mail.stop()
    check_log_format(mail.log())


def test_double_and_triple_bounce(mail):
    fq = mail.home.fqdn
    mail.start()
    # A bounce (empty sender) that fails goes to doublebounceto@doublebouncehost.
    mail.inject("", [f"fail2@{fq}"])
    got = wait_for(lambda: mail.delivered_to("postmaster"), what="double bounce")
    args, msg = got[0]
    assert args[6] == "#@[]"
    assert b"I tried to deliver a bounce message to this address, but the bounce bounced!\n\n" in msg
    assert b"--- Below this line is the original bounce.\n\n" in msg
    # A double bounce that fails is dropped with a log line.
    mail.inject("#@[]", [f"fail3@{fq}"])
    wait_for(lambda: "triple bounce: discarding bounce/" in mail.log(), what="triple bounce")
    mail.wait_queue_empty()
    assert len(mail.deliveries()) == 1
    mail.stop()


def test_deferral_then_retry_on_alarm(mail):
    fq = mail.home.fqdn
    mail.start()
    mail.inject(f"s@{fq}", [f"defer1@{fq}"])
    wait_for(lambda: "deferral: Temporary_trouble._(#4.3.0)/" in mail.log().replace("\\", ""), what="deferral")
    time.sleep(0.5)
    assert not mail.delivered_to("defer1")
    assert set(mail.queue_files()) == {"mess", "info", "local"}
    # The next try is 100 s away; ALRM makes it now.
    (mail.path / "deferok").write_text("")
    mail.signal(signal.SIGALRM)
    wait_for(lambda: mail.delivered_to("defer1"), what="retry after ALRM")
    mail.wait_queue_empty()
    assert mail.log().count("starting delivery") == 2
    mail.stop()


def test_queue_lifetime_turns_deferral_into_bounce(mail):
    fq = mail.home.fqdn
    mail.home.control("queuelifetime", "0\n")
    mail.start()
    mail.inject(f"bob@{fq}", [f"defer2@{fq}"])
    # qmail tries once more after the lifetime has passed, treating a
    # temporary failure then as permanent.
    wait_for(lambda: "deferral:" in mail.log(), what="first deferral")
    time.sleep(1.1)
    mail.signal(signal.SIGALRM)
    got = wait_for(lambda: mail.delivered_to("bob"), what="bounce after queuelifetime")
    assert b"Temporary trouble. (#4.3.0)\nI'm not going to try again; this message has been in the queue too long.\n" in got[0][1]
    mail.wait_queue_empty()
    mail.stop()


def test_remote_delivery_through_qmail_remote(rmail):
    fq = rmail.home.fqdn
    rmail.start()
    rmail.inject(f"me@{fq}", ["good@remote.example.org", "bad@remote.example.org"])
    got = wait_for(lambda: rmail.delivered_to("me"), what="bounce of the remote failure")
    assert b"<bad@remote.example.org>:\nSorry, I could not find that user. (#5.1.1)\n" in got[0][1]
    rmail.wait_queue_empty()
    lines = sorted((rmail.path / "remote.log").read_text().splitlines())
    assert lines == [f"remote.example.org me@{fq} bad@remote.example.org",
                     f"remote.example.org me@{fq} good@remote.example.org"]
    assert re.search(r"delivery \d+: success: 192.0.2.1_accepted_message./Remote_host_said:_250_ok\n", rmail.log())
    rmail.stop()


def test_virtualdomains_and_percenthack(mail):
    fq = mail.home.fqdn
    mail.home.control("virtualdomains", "virt.example.org:joe\nsolo@other.example.org:single\n")
    mail.home.control("percenthack", "relay.example.net\n")
    mail.start()
    mail.inject(f"s@{fq}", ["Bob@virt.example.org", "solo@other.example.org", f"pct%{fq}@relay.example.net", "nobody"])
    wait_for(lambda: len(mail.deliveries()) == 4, what="four deliveries")
    locals_ = sorted(args[2] + "@" + args[5] for args, _ in mail.deliveries().values())
    assert locals_ == sorted(["joe-Bob@virt.example.org", "single-solo@other.example.org", f"pct@{fq}", f"nobody@{fq}"])
    mail.wait_queue_empty()
    mail.stop()


def test_hup_rereads_locals(mail):
    mail.start()
    mail.home.control("locals", mail.home.fqdn + "\nnew.example.org\n")
    mail.signal(signal.SIGHUP)
    time.sleep(0.3)
    mail.inject("s@x", ["z@new.example.org"])
    wait_for(lambda: mail.delivered_to("z"), what="delivery to a new local domain")
    mail.stop()


def test_trigger_wakes_qmail_send_at_once(mail):
    mail.start()
    t0 = time.time()
    mail.inject("s@x", [f"quick@{mail.home.fqdn}"])
    wait_for(lambda: mail.delivered_to("quick"), timeout=5, what="delivery via the trigger")
    assert time.time() - t0 < 5
    mail.stop()


def test_sigterm_waits_for_deliveries_then_exits(mail):
    fq = mail.home.fqdn
    (mail.path / "slow").write_text("1")
    mail.start()
    mail.inject("s@x", [f"slow@{fq}"])
    wait_for(lambda: "starting delivery" in mail.log(), what="delivery start")
    mail.signal(signal.SIGTERM)
    mail.proc.wait(timeout=20)
    assert mail.proc.returncode == 0
    assert mail.delivered_to("slow"), "the delivery in progress finished"
    mail.wait_helpers_gone()
    assert mail.log().rstrip("\n").endswith("status: exiting")
    assert re.search(r"delivery \d+: success:", mail.log())


def test_second_qmail_send_refuses_to_run(mail):
    mail.start()
    first = mail.proc
    p = subprocess.run([mail.home.bin("qmail-start"), "./Maildir/"], env=mail.env, capture_output=True, timeout=20)
    assert p.returncode == 111
    assert b"alert: cannot start:" in p.stdout
    assert first.poll() is None
    mail.stop()


def test_recovery_of_partly_processed_messages(mail):
    """States a crash can leave, each finished by the next start."""
    fq = mail.home.fqdn
    q = mail.path / "queue"
    # 1. todo/N present and info/local written by an interrupted split.
    mail.inject("s@x", [f"rec1@{fq}"])
    n = int(mail.home.queue_files("todo")[0].name)
    (q / "info" / str(n % 23) / str(n)).write_bytes(b"Fstale@x\0")
    (q / "local" / str(n % 23) / str(n)).write_bytes(b"Tstale@" + fq.encode() + b"\0")
    mail.start()
    wait_for(lambda: mail.delivered_to("rec1"), what="delivery after redone split")
    mail.wait_queue_empty()
    assert not mail.delivered_to("stale")
    mail.stop()
    # 2. every recipient marked done but the channel file and info still there.
    mail.inject("s@x", [f"rec2@{fq}", f"rec3@{fq}"])
    n = int(mail.home.queue_files("todo")[0].name)
    (q / "todo" / str(n)).unlink()
    (q / "intd" / str(n)).unlink()
    (q / "info" / str(n % 23) / str(n)).write_bytes(b"Fs@x\0")
    (q / "local" / str(n % 23) / str(n)).write_bytes(f"Drec2@{fq}\0Trec3@{fq}\0".encode())
    mail.start()
    wait_for(lambda: mail.delivered_to("rec3"), what="delivery of the remaining recipient")
    mail.wait_queue_empty()
    assert not mail.delivered_to("rec2")
    mail.stop()
    # 3. finished except for info/N (crash before it was removed).
    mail.inject("s@x", [f"rec4@{fq}"])
    n = int(mail.home.queue_files("todo")[0].name)
    for d in ("todo", "intd"):
        (q / d / str(n)).unlink()
    (q / "info" / str(n % 23) / str(n)).write_bytes(b"Fs@x\0")
    mail.start()
    mail.wait_queue_empty()
    assert not mail.delivered_to("rec4")
    assert f"end msg {n}" in mail.log()
    mail.stop()


def test_qmail_clean_protocol(mail):
    q = mail.path / "queue"
    mail.inject("s@x", ["a@b"])
    n = int(mail.home.queue_files("todo")[0].name)
    req = f"todo/{n}\0bogus\0foop/{'1' * 5000}\0foop/{n}\0foop/999999\0mess/{n}\0".encode()
    p = subprocess.run([mail.home.bin("qmail-clean")], input=req, capture_output=True, env=mail.env, timeout=20)
    assert p.returncode == 0
    assert p.stdout == b"+xx++x"
    assert not any(mail.queue_files().values())


def test_crash_kill9_loses_nothing(mail):
    """1,000 messages (SQ_CRASH_MESSAGES), qmail-send (every other time with
    all its helpers and deliveries) killed with SIGKILL 20 times
    (SQ_CRASH_KILLS) while it works: half while mail arrives, half while the
    queue drains."""
    fq = mail.home.fqdn
    rng = random.Random(int(os.environ.get("SQ_CRASH_SEED", "4242")))
    total = int(os.environ.get("SQ_CRASH_MESSAGES", "1000"))
    want_kills = int(os.environ.get("SQ_CRASH_KILLS", "20"))
    every = max(1, total // max(1, want_kills // 2))
    kills = 0
    mail.start()
    for i in range(total):
        rcpts = [f"c{i}@{fq}", f"d{i}@{fq}"] + ([f"fail{i}@{fq}"] if i % 10 == 0 else [])
        mail.inject(f"s{i}@{fq}", rcpts, f"Subject: crash {i}\n\nnumber {i}\n".encode())
        if i % every == every // 2 and kills < want_kills // 2:
            time.sleep(rng.random() * 0.2)
            mail.kill9(everything=kills % 2 == 1)
            kills += 1
            mail.start()
    while kills < want_kills:
        time.sleep(rng.random() * 0.3)
        mail.kill9(everything=kills % 2 == 1)
        kills += 1
        mail.start()
    mail.wait_queue_empty(timeout=600)
    got = {}
    for name, (args, msg) in mail.deliveries().items():
        got.setdefault(args[2], []).append(msg)
    missing = [f"{p}{i}" for i in range(total) for p in "cd" if f"{p}{i}" not in got]
    assert not missing, f"lost deliveries: {missing}"
    for i in range(total):
        assert got[f"c{i}"][0].endswith(f"number {i}\n".encode())
    bounced = [f"s{i}" for i in range(0, total, 10) if f"s{i}" not in got]
    assert not bounced, f"lost bounces: {bounced}"
    for i in range(0, total, 10):
        assert f"<fail{i}@{fq}>:\n".encode() in got[f"s{i}"][0]
    # Only deliveries in progress at a kill may be repeated: at most the concurrency per kill.
    dups = sum(len(v) - 1 for v in got.values())
    assert dups <= kills * 10, f"too many duplicates: {dups}"
    print(f"crash test: {total} messages, {kills} kills, {dups} duplicate deliveries, 0 lost")
    mail.stop()
    assert not list((mail.path / "queue" / "bounce").iterdir())
    # Stand-ins killed mid-write complain on the shared stderr; qmail-send's own lines must all be well formed.
    noise = re.compile(r"^(/\S*bin/qmail-|id: |cat: |mv: |date: |printf: )")
    check_log_format("\n".join(l for l in mail.log().splitlines() if not noise.match(l)))


def test_logger_gets_the_log(mail):
    out = mail.path / "logger.out"
    mail.start([mail.home.bin("qmail-start"), "./Maildir/", "sh", "-c", f"exec cat > {out}"],
               ready=lambda: out.exists() and "status: local" in out.read_text())
    mail.inject("s@x", [f"viaLogger@{mail.home.fqdn}"])
    wait_for(lambda: "end msg" in out.read_text(), what="end msg in the logger's output")
    mail.stop()
    assert out.read_text().rstrip("\n").endswith("status: exiting")
    check_log_format(out.read_text())
    assert mail.log() == ""


def test_concurrencylocal_limits_parallel_deliveries(mail):
    fq = mail.home.fqdn
    mail.home.control("concurrencylocal", "2\n")
    (mail.path / "slow").write_text("0.3")
    mail.start()
    mail.inject("s@x", [f"p{i}@{fq}" for i in range(6)])
    wait_for(lambda: len(mail.deliveries()) == 6, what="six deliveries")
    mail.stop()
    st = re.findall(r"status: local (\d+)/(\d+)", mail.log())
    assert {m for _, m in st} == {"2"}
    assert max(int(u) for u, _ in st) == 2


def test_ossified_leftovers_are_removed(mail):
    """mess/N without todo or info, and pid/ files, untouched for 36 hours."""
    q = mail.path / "queue"
    mail.inject("s@x", ["a@b"])
    n = int(mail.home.queue_files("todo")[0].name)
    (q / "todo" / str(n)).unlink()
    (q / "intd" / str(n)).unlink()
    old = time.time() - 40 * 3600
    mess = q / "mess" / str(n % 23) / str(n)
    os.utime(mess, (old, old))
    stale_pid = q / "pid" / "123.456.1"
    stale_pid.write_text("")
    os.utime(stale_pid, (old, old))
    fresh_pid = q / "pid" / "124.456.1"
    fresh_pid.write_text("")
    mail.start()
    wait_for(lambda: not mess.exists() and not stale_pid.exists(), what="cleanup of leftovers")
    assert fresh_pid.exists(), "a fresh pid/ file may belong to a running qmail-queue"
    mail.stop()


def test_log_lines_are_written_before_a_crash(mail):
    """Each log line goes out as it is made, as qmail's does: a qmail-send
    killed while it waits (here on a qmail-clean that never answers, after
    it logged the new message) has already written "new msg" and "info
    msg". When lines were buffered they died with qmail-send, and the next
    run delivered messages the log never announced (proof/crash.py's
    log-accounting promise catches that under SIGKILL too)."""
    mail.install("qmail-clean", '#!/bin/sh\n# stand-in: keeps its pipes open, never answers\n'
                                'echo $$ > "${0%/bin/*}/clean.pid"\nexec sleep 600\n')
    mail.start()
    mail.inject("s@x", [f"logged@{mail.home.fqdn}"])
    n = int(mail.home.queue_files("todo")[0].name)
    try:
        wait_for(lambda: f"info msg {n}: bytes" in mail.log(), 10, "the info line while qmail-send waits")
        assert f"new msg {n}\n" in mail.log()
        assert mail.proc.poll() is None, "qmail-send still waits for qmail-clean"
    finally:
        mail.kill9()
        os.kill(int((mail.path / "clean.pid").read_text()), signal.SIGKILL)


MULTI_GETPW = """#!/bin/sh
# stand-in qmail-getpw for a multi-user home: every local part is nobody's
QH="${0%/bin/*}"
printf '%s\\0%s\\0%s\\0%s\\0%s\\0%s\\0' nobody "$(id -u nobody)" "$(id -g nobody)" "$QH/users-home" "-" "$1"
"""

MULTI_LOCAL = """#!/bin/sh
QH="${0%/bin/*}"
shift
case "$3" in fail*) echo "No such user. (#5.1.1)"; exit 100 ;; esac
n="$QH/delivered/$3.$$"
id -u > "$n.uid"
cat > "$n.tmp" && mv "$n.tmp" "$n"
echo "did 0+0+1"
"""


def proc_uid(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


@pytest.mark.skipif(os.geteuid() != 0, reason="multi-user mode needs root")
def multi_user_home(base):
    """A multi-user home (qmail-setup as root, the qmail accounts) in base/qmail."""
    from conftest import QmailHome, bin_dir
    os.chmod(base, 0o755)
    r = subprocess.run([str(bin_dir() / "qmail-setup"), str(base / "qmail"), "mail.example.com"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return QmailHome(base / "qmail", "mail.example.com")


def test_multi_user_each_program_runs_as_its_account(qmail_accounts):
    import pwd
    import shutil
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-send-", dir="/var/tmp"))
    proc = None
    try:
        home = multi_user_home(base)
        for name, text in (("qmail-getpw", MULTI_GETPW), ("qmail-local", MULTI_LOCAL)):
            p = home.path / "bin" / name
            if p.exists():
                p.unlink()
            p.write_text(text)
            p.chmod(0o755)
        (home.path / "delivered").mkdir(mode=0o777)
        os.chmod(home.path / "delivered", 0o777)
        (home.path / "users-home").mkdir()
        log = open(home.path / "send.log", "wb")
        proc = subprocess.Popen([str(home.path / "rc")], cwd="/", stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=home.env)
        logtext = lambda: (home.path / "send.log").read_text(errors="replace")
        wait_for(lambda: "status: local" in logtext(), 10, "qmail-send to start")
        with tempfile.TemporaryFile() as m, tempfile.TemporaryFile() as e:
            m.write(b"Subject: multi\n\nhi\n"); m.seek(0)
            e.write(b"Fsender@mail.example.com\0Tnobody1@mail.example.com\0Tfail1@mail.example.com\0\0"); e.seek(0)
            r = subprocess.run([home.bin("qmail-queue")], stdin=m, stdout=e, env=home.env, timeout=30)
        assert r.returncode == 0
        d = home.path / "delivered"
        wait_for(lambda: any(p.name.startswith("sender.") and not p.name.endswith((".uid", ".tmp")) for p in d.iterdir()),
                 what="the bounce delivery")
        nobody = pwd.getpwnam("nobody").pw_uid
        uids = {p.read_text().strip() for p in d.glob("*.uid")}
        assert uids == {str(nobody)}, "qmail-local runs as the recipient's uid"
        # qmail-send, qmail-rspawn and qmail-clean run under their accounts.
        expect = {"qmail-send": "qmails", "qmail-rspawn": "qmailr", "qmail-clean": "qmailq", "qmail-lspawn": "root"}
        seen = {}
        for pdir in pathlib.Path("/proc").iterdir():
            if pdir.name.isdigit():
                try:
                    exe = os.readlink(pdir / "exe")
                except OSError:
                    continue
                if exe.startswith(str(home.path / "bin") + "/"):
                    seen[os.path.basename(exe)] = proc_uid(pdir.name)
        for prog, user in expect.items():
            assert seen.get(prog) == pwd.getpwnam(user).pw_uid, (prog, seen)
        wait_for(lambda: not any(home.queue_files(s) for s in QUEUE_DIRS), what="an empty queue")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert logtext().rstrip("\n").endswith("status: exiting")
        check_log_format(logtext())
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)



@pytest.mark.skipif(os.geteuid() != 0, reason="multi-user mode needs root")
def test_multi_user_delivery_worker_runs_as_the_recipient(qmail_accounts):
    """A user from users/cdb is delivered to by a delivery worker
    (qmail-local -W) that qmail-lspawn starts as that user: the worker and
    the delivery run with the user's uid and gid only, the message lands in
    the user's Maildir owned by the user, and no worker runs as root."""
    import pwd
    nobody = pwd.getpwnam("nobody")
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-send-", dir="/var/tmp"))
    proc = None
    try:
        home = multi_user_home(base)
        uhome = base / "nobody-home"
        uhome.mkdir()
        (uhome / ".qmail").write_text("./Maildir/\n")
        for sub in ("", "/tmp", "/new", "/cur"):
            (uhome / ("Maildir" + sub)).mkdir(mode=0o700)
        subprocess.run(["chown", "-R", f"{nobody.pw_uid}:{nobody.pw_gid}", str(uhome)], check=True)
        (home.path / "users" / "assign").write_text(f"=box:nobody:{nobody.pw_uid}:{nobody.pw_gid}:{uhome}:::\n.\n")
        assert subprocess.run([home.bin("qmail-newu")], env=home.env, capture_output=True).returncode == 0
        log = open(home.path / "send.log", "wb")
        proc = subprocess.Popen([str(home.path / "rc")], cwd="/", stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=home.env)
        logtext = lambda: (home.path / "send.log").read_text(errors="replace")
        wait_for(lambda: "status: local" in logtext(), 10, "qmail-send to start")
        for k in range(3):
            with tempfile.TemporaryFile() as m, tempfile.TemporaryFile() as e:
                m.write(f"Subject: worker {k}\n\nhi\n".encode()); m.seek(0)
                e.write(b"Fsender@example.net\0Tbox@mail.example.com\0\0"); e.seek(0)
                assert subprocess.run([home.bin("qmail-queue")], stdin=m, stdout=e, env=home.env, timeout=30).returncode == 0
        new = uhome / "Maildir" / "new"
        wait_for(lambda: len(list(new.iterdir())) == 3, 30, "three deliveries\n" + logtext())
        assert {(p.stat().st_uid, p.stat().st_gid) for p in new.iterdir()} == {(nobody.pw_uid, nobody.pw_gid)}

        def running_local():
            found = []
            for pdir in pathlib.Path("/proc").iterdir():
                try:
                    if pdir.name.isdigit() and os.readlink(pdir / "exe") == home.bin("qmail-local"):
                        found.append(((pdir / "cmdline").read_bytes(), (pdir / "status").read_text()))
                except OSError:
                    continue
            return found
        # The worker and the runners it forked (same command line), every
        # one with the user's ids only.
        workers = running_local()
        assert workers and {w[0] for w in workers} == {b"qmail-local\0-W\0"}, workers
        for w in workers:
            ids = {line.split(":")[0]: line.split()[1:] for line in w[1].splitlines()
                   if line.startswith(("Uid:", "Gid:", "Groups:"))}
            assert ids == {"Uid": [str(nobody.pw_uid)] * 4, "Gid": [str(nobody.pw_gid)] * 4,
                           "Groups": [str(nobody.pw_gid)]}, ids
        wait_for(lambda: logtext().count("success: did_1+0+0/") == 3, 20, "three successes in the log")
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def test_missing_delivery_programs_defer_never_bounce(mail):
    fq = mail.home.fqdn
    (mail.path / "bin" / "qmail-local").unlink()
    mail.start()
    mail.inject(f"s@{fq}", [f"x@{fq}"])
    wait_for(lambda: "deferral: Unable_to_run_qmail-local./" in mail.log(), what="deferral without qmail-local")
    (mail.path / "bin" / "qmail-getpw").unlink()
    mail.signal(signal.SIGALRM)
    wait_for(lambda: "deferral: Unable_to_run_qmail-getpw./" in mail.log(), what="deferral without qmail-getpw")
    assert "failure" not in mail.log() and "bounce" not in mail.log()
    assert set(mail.queue_files()) == {"mess", "info", "local"}
    mail.stop()


def test_with_the_real_qmail_local(qhome):
    """End to end through the built qmail-getpw and qmail-local (when built)."""
    if not (pathlib.Path(qhome.bin("qmail-local")).exists() and pathlib.Path(qhome.bin("qmail-getpw")).exists()):
        pytest.skip("qmail-local/qmail-getpw not built")
    fq = qhome.fqdn
    with qmail_send_running(qhome) as logtext:
        qhome.enqueue(b"Subject: real\n\nreal body\n", f"someone@{fq}", [f"postmaster@{fq}", f"nosuchuser@{fq}"])
        new = qhome.path / "alias" / "Maildir" / "new"
        # postmaster gets the message, then the double bounce (someone@ has no mailbox either).
        wait_for(lambda: len(list(new.iterdir())) == 2, what="two Maildir deliveries")
        wait_for(lambda: not any(qhome.queue_files(s) for s in QUEUE_DIRS), what="an empty queue")
        msgs = sorted((p.read_bytes() for p in new.iterdir()), key=len)
        assert msgs[0].endswith(b"Subject: real\n\nreal body\n")
        assert b"I tried to deliver a bounce message to this address, but the bounce bounced!" in msgs[1]
        assert f"<nosuchuser@{fq}>:\nSorry, no mailbox here by that name. (#5.1.1)\n".encode() in msgs[1]
        assert re.search(r"delivery \d+: success: did_1\+0\+0/\n", logtext())
        check_log_format(logtext())


def test_users_cdb_from_the_real_qmail_newu(qhome):
    """qmail-lspawn finds users in users/cdb as qmail-newu writes it."""
    for prog in ("qmail-local", "qmail-getpw", "qmail-newu"):
        if not pathlib.Path(qhome.bin(prog)).exists():
            pytest.skip(f"{prog} not built")
    fq = qhome.fqdn
    uid, gid = os.getuid(), os.getgid()
    exact, wild = qhome.path / "exacthome", qhome.path / "wildhome"
    for h in (exact, wild):
        h.mkdir()
        (h / ".qmail").write_text("./Maildir/\n")
        (h / ".qmail-default").write_text("./Maildir/\n")
        for sub in ("tmp", "new", "cur"):
            (h / "Maildir" / sub).mkdir(parents=True)
    (qhome.path / "users" / "assign").write_text(
        f"=joe:joe:{uid}:{gid}:{exact}:::\n+box-:box:{uid}:{gid}:{wild}:-::\n.\n")
    r = qhome.run("qmail-newu")
    assert r.returncode == 0, r.stderr
    with qmail_send_running(qhome) as logtext:
        qhome.enqueue(b"Subject: assign\n\nhi\n", f"s@{fq}", [f"joe@{fq}", f"box-anything@{fq}"])
        wait_for(lambda: not any(qhome.queue_files(s) for s in QUEUE_DIRS), what="an empty queue")
        assert len(list((exact / "Maildir" / "new").iterdir())) == 1, logtext()
        assert len(list((wild / "Maildir" / "new").iterdir())) == 1, logtext()
        assert "failure" not in logtext()


def test_slow_user_lookup_holds_up_only_its_own_delivery(mail):
    fq = mail.home.fqdn
    mail.start()
    mail.inject("s@x", [f"sleepy@{fq}", f"brisk@{fq}"])
    wait_for(lambda: mail.delivered_to("brisk"), timeout=1.5, what="the other delivery during a slow lookup")
    assert not mail.delivered_to("sleepy")
    wait_for(lambda: mail.delivered_to("sleepy"), what="the slow delivery")
    mail.stop()


def matchup(log):
    """qmailanalog's matchup in miniature: pairs each new msg with its end
    msg and each starting delivery with its result. Returns the unmatched."""
    open_msgs, open_deliveries, results = set(), {}, {"success": 0, "failure": 0, "deferral": 0}
    for line in log.splitlines():
        if m := re.fullmatch(r"new msg (\d+)", line):
            open_msgs.add(m.group(1))
        elif m := re.fullmatch(r"end msg (\d+)", line):
            assert m.group(1) in open_msgs, f"end without new: {line}"
            open_msgs.discard(m.group(1))
        elif m := re.fullmatch(r"starting delivery (\d+): msg (\d+) to (local|remote) .*", line):
            assert m.group(2) in open_msgs, f"delivery for a message not open: {line}"
            open_deliveries[m.group(1)] = m.group(2)
        elif m := re.fullmatch(r"delivery (\d+): (success|failure|deferral): .*", line):
            assert open_deliveries.pop(m.group(1), None), f"result without start: {line}"
            results[m.group(2)] += 1
    return open_msgs, open_deliveries, results


def test_log_feeds_a_matchup_analysis(mail):
    fq = mail.home.fqdn
    mail.start()
    for i in range(30):
        rcpts = [f"ok{i}@{fq}"] + ([f"fail{i}@{fq}"] if i % 5 == 0 else []) + ([f"defer{i}@{fq}"] if i % 7 == 0 else [])
        mail.inject(f"s{i}@{fq}", rcpts, f"Subject: {i}\n\n{i}\n".encode())
    wait_for(lambda: len(mail.log().split("delivery ")) > 40, what="first deliveries")
    (mail.path / "deferok").write_text("")
    for _ in range(50):
        if not any(mail.home.queue_files(d) for d in ("todo", "info", "local")):
            break
        mail.signal(signal.SIGALRM)
        time.sleep(0.2)
    mail.wait_queue_empty(timeout=60)
    mail.stop()
    open_msgs, open_deliveries, results = matchup(mail.log())
    assert not open_msgs and not open_deliveries
    # 30 ok + 6 bounced + 5 deferred (then delivered) + 6 bounce messages to s0, s5, ...
    assert results["failure"] == 6
    assert results["deferral"] >= 1  # defer* recipients tried before deferok appeared
    assert results["success"] == 30 + 5 + 6


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
def test_todo_split_files_of_a_batch_are_fsynced_together(mail, tmp_path):
    """Messages waiting in todo/ are split together: every file of the batch
    (info, local, remote) is written before the first fsync, so that a
    journaling filesystem commits them in one go, and each is fsync'd
    before qmail-clean is asked to remove the todo entries (one write of
    all requests). The old split did write+fsync per file, message by message."""
    fq = mail.home.fqdn
    for k in range(5):
        mail.inject("s@x", [f"b{k}@{fq}", "r@far.example"])
    trace = tmp_path / "trace"
    mail.start(argv=["strace", "-f", "-qq", "-s", "1024", "-o", str(trace), "-e", "trace=openat,fsync,write",
                     str(mail.path / "rc")])
    wait_for(lambda: len([k for k in range(5) if mail.delivered_to(f"b{k}")]) == 5, what="five deliveries")
    wait_for(lambda: "new msg" in trace.read_text(errors="replace"), what="the trace")
    send = [p for p in mail.helpers() if exe_of(p) == mail.home.bin("qmail-send")]
    assert len(send) == 1
    # The fsyncs are made by a thread of qmail-send (one of several): its
    # lines carry that thread's id, and may be split in two by the loop's
    # writes meanwhile.
    tids = {int(t) for t in os.listdir(f"/proc/{send[0]}/task")}
    assert len(tids) > 2, "qmail-send runs its fsync threads"
    for p in mail.helpers():
        if p == send[0]:
            os.kill(p, signal.SIGTERM)
    mail.proc.wait(timeout=30)
    mail.wait_helpers_gone()
    lines = [ln for ln in trace.read_text(errors="replace").splitlines() if int(ln.split(" ", 1)[0]) in tids]
    created = {}   # fd -> path of the split's files
    events = []    # ("create", path) / ("fsync", path) / ("clean", n requests)
    unfinished = {}  # tid -> fd of an fsync strace printed in two parts
    for ln in lines:
        tid = ln.split(" ", 1)[0]
        m = re.search(r"fsync\((\d+) <unfinished", ln)
        if m:
            unfinished[tid] = m.group(1)
            continue
        if "<... fsync resumed>" in ln:
            fd = unfinished.pop(tid, None)
            if re.search(r"\) += 0$", ln) and fd in created:
                events.append(("fsync", created.pop(fd)))
            continue
        m = re.search(r'openat\(AT_FDCWD, "(?:\./)?((?:info|local|remote)/\d+/\d+)", O_WRONLY\|O_CREAT\|O_EXCL.*= (\d+)$', ln)
        if m:
            created[m.group(2)] = m.group(1)
            events.append(("create", m.group(1)))
            continue
        m = re.search(r"fsync\((\d+)\) += 0", ln)
        if m and m.group(1) in created:
            events.append(("fsync", created.pop(m.group(1))))
            continue
        m = re.search(r'write\(5, "([^"]*)"', ln)
        if m:
            events.append(("clean", m.group(1).count("todo/")))
    made = [p for e, p in events if e == "create"]
    assert len(made) == 15, events   # info, local, remote of five messages
    first_fsync = next(i for i, (e, _) in enumerate(events) if e == "fsync")
    assert all(e == "create" for e, _ in events[:first_fsync]), events
    assert first_fsync == 15, "every file of the batch written before the first fsync"
    clean = next(i for i, (e, _) in enumerate(events) if e == "clean")
    assert sorted(p for e, p in events[:clean] if e == "fsync") == sorted(made), "fsync'd before todo goes"
    assert events[clean] == ("clean", 5)


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
def test_one_local_recipient_is_delivered_without_a_split(mail, tmp_path):
    """A message with one local recipient goes the direct way: its delivery
    starts from todo/N, qmail-send writes and fsyncs no info/N or local/N,
    and once it succeeded qmail-clean removes todo/N before mess/N, in one
    exchange. A message with two recipients is split as before."""
    fq = mail.home.fqdn
    trace = tmp_path / "trace"
    mail.start(argv=["strace", "-f", "-qq", "-s", "256", "-o", str(trace), "-e", "trace=openat,fsync,write",
                     str(mail.path / "rc")])
    try:
        mail.inject(f"s@{fq}", [f"alone@{fq}"])
        wait_for(lambda: mail.delivered_to("alone"), what="the direct delivery")
        mail.wait_queue_empty()
        mail.inject(f"s@{fq}", [f"pair1@{fq}", f"pair2@{fq}"])
        wait_for(lambda: mail.delivered_to("pair1") and mail.delivered_to("pair2"), what="the split message's deliveries")
        mail.wait_queue_empty()
        wait_for(lambda: mail.log().count("end msg") == 2, what="both messages ended")
        send = [p for p in mail.helpers() if exe_of(p) == mail.home.bin("qmail-send")]
        assert len(send) == 1
        tids = {int(t) for t in os.listdir(f"/proc/{send[0]}/task")}
        os.kill(send[0], signal.SIGTERM)
        mail.proc.wait(timeout=30)
        mail.wait_helpers_gone()
    finally:
        # strace is mail.proc: the fixture's kill would leave qmail-send running.
        for p in mail.helpers():
            os.kill(p, signal.SIGKILL)
    log = mail.log()
    check_log_format(log)
    first, second = re.findall(r"new msg (\d+)\n", log)
    for n in (first, second):
        assert re.search(rf"info msg {n}: bytes \d+ from <s@{re.escape(fq)}> qp \d+ uid \d+\n", log), log
        assert re.search(rf"end msg {n}\n", log), log
    lines = [ln for ln in trace.read_text(errors="replace").splitlines() if int(ln.split(" ", 1)[0]) in tids]
    created = [m.group(1) for ln in lines
               for m in [re.search(r'openat\(AT_FDCWD, "(?:\./)?((?:info|local|remote)/\d+/(\d+))", O_WRONLY\|O_CREAT', ln)] if m]
    # (the second message may get the first one's inode number, so the files are told apart by count)
    assert sorted(c.split("/")[0] for c in created) == ["info", "local"] and created[0].endswith("/" + second), created
    cleans = [m.group(1) for ln in lines for m in [re.search(r'write\(5, "([^"]*)"', ln)] if m]
    assert f"todo/{first}\\0foop/{first}\\0" in cleans, cleans


def test_direct_messages_waiting_for_a_slot_are_split(mail):
    """Direct messages that find no free local slot for 10 seconds get
    their split (info/N, local/N; todo/N removed; 40 of them, so in more
    than one group), so that a backlog shows in the queue as qmail keeps
    it; each is then delivered once. The message being delivered keeps
    todo/N as its record meanwhile."""
    fq = mail.home.fqdn
    mail.home.control("concurrencylocal", "1\n")
    (mail.path / "slow").write_text("14")
    mail.start()
    mail.inject(f"s@{fq}", [f"first@{fq}"])
    wait_for(lambda: any(p.name.startswith("tmp.first") for p in mail.delivered.iterdir()), what="the slow delivery")
    time.sleep(0.5)
    (mail.path / "slow").unlink()
    for k in range(40):
        mail.inject(f"s@{fq}", [f"later{k}@{fq}"])
    wait_for(lambda: mail.log().count("info msg") == 41, what="the later messages taken")
    first, *later = re.findall(r"new msg (\d+)\n", mail.log())

    def names(d):
        return {p.name for p in mail.home.queue_files(d)}
    assert names("todo") == {first, *later} and not names("info"), "all on the direct way"
    wait_for(lambda: names("info") == set(later) and names("todo") == {first}, timeout=13,
             what=lambda: f"the waiting messages split, their todo/N removed: {mail.queue_files()}")
    assert names("local") == set(later), "info/N with its local/N"
    assert "end msg" not in mail.log(), "the first delivery is still running"
    wait_for(lambda: all(mail.delivered_to(f"later{k}") for k in range(40)), timeout=60, what="the later deliveries")
    mail.wait_queue_empty()
    mail.stop()
    log = mail.log()
    for n in later:
        assert log.count(f"new msg {n}\n") == 1 and log.count(f"end msg {n}\n") == 1, log
    assert all(len(mail.delivered_to(name)) == 1 for name in ["first"] + [f"later{k}" for k in range(40)])


def run_send_alone(mail, lose):
    """qmail-send on pipes of our own instead of qmail-start's: fd 0 the
    log, 1/2 and 3/4 the spawns (each announces 1 slot), 5/6 qmail-clean.
    `lose` is "clean" (its answers end at once) or "spawn" (qmail-lspawn's
    reports end after its announcement). Returns (exit code, log)."""
    import fcntl

    def high(fd):
        # Out of the way of the targets 0-6, closed in qmail-send by exec.
        h = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
        os.close(fd)
        return h

    pipes = [tuple(high(fd) for fd in os.pipe()) for _ in range(6)]
    to_l, from_l, to_r, from_r, to_c, from_c = pipes
    log = high(os.open(mail.path / "send-alone.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    targets = [(log, 0), (to_l[1], 1), (from_l[0], 2), (to_r[1], 3), (from_r[0], 4), (to_c[1], 5), (from_c[0], 6)]
    os.write(from_l[1], b"\1")
    os.write(from_r[1], b"\1")
    os.close(from_c[1] if lose == "clean" else from_l[1])
    pid = os.posix_spawn(mail.home.bin("qmail-send"), ["qmail-send"], mail.env,
                         file_actions=[(os.POSIX_SPAWN_DUP2, src, dst) for src, dst in targets])
    try:
        end = time.time() + 20
        status = None
        while status is None and time.time() < end:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            else:
                time.sleep(0.05)
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("qmail-send kept running")
    finally:
        for r, w in pipes:
            for fd in (r, w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        os.close(log)
    return os.waitstatus_to_exitcode(status), (mail.path / "send-alone.log").read_text()


def test_lost_qmail_clean_logs_the_alert_and_exits_111(mail):
    mail.inject("s@x", ["a@b"])
    code, log = run_send_alone(mail, "clean")
    assert code == 111, log
    assert log.endswith("alert: oh no! lost qmail-clean connection! dying...\n"), log
    # The split's files are durable; todo/N stays for the next start.
    assert mail.home.queue_files("todo")


def test_lost_spawn_logs_the_alert_and_exits_111(mail):
    code, log = run_send_alone(mail, "spawn")
    assert code == 111, log
    assert log.endswith("alert: oh no! lost spawn connection! dying...\n"), log
