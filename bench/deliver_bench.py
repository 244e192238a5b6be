#!/usr/bin/env python3
"""End-to-end delivery: N 4-KiB messages injected to 10 Maildir users,
messages/s until the last one is in its Maildir, ours against Postfix
(Debian package, a private instance) in the same run.

Ours: a single-user qmail home; ~alias/.qmail-userK delivers to ./userK/.
Postfix: a private instance (own config, queue and Maildirs), virtual
mailboxes, injected through its sendmail -C.
Also prints fsyncs per message for ours, counted with strace when present.
"""
import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

N = int(os.environ.get("BENCH_MESSAGES", "2000"))
USERS = 10
BIN = os.path.abspath(os.environ.get("SQ_BIN", os.path.join(os.path.dirname(__file__), "..", ".build", "release")))
WORK = os.environ.get("BENCH_DIR", "/var/tmp")
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "600"))
BODY = b"Subject: bench\n\n" + (b"x" * 63 + b"\n") * 64


def count_new(dirs):
    return sum(len(os.listdir(os.path.join(d, "new"))) for d in dirs if os.path.isdir(os.path.join(d, "new")))


def wait_delivered(dirs, want, t0):
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        if count_new(dirs) >= want:
            return time.perf_counter() - t0
        time.sleep(0.02)
    raise SystemExit(f"timeout: only {count_new(dirs)} of {want} delivered")


def bench_ours(base):
    home = os.path.join(base, "qmail")
    subprocess.run([os.path.join(BIN, "qmail-setup"), "--single-user", home, "bench.example.com"],
                   check=True, stdout=subprocess.DEVNULL)
    alias = os.path.join(home, "alias")
    dirs = []
    for k in range(USERS):
        md = os.path.join(alias, f"user{k}")
        for sub in ("", "/tmp", "/new", "/cur"):
            os.makedirs(md + sub, exist_ok=True)
        with open(os.path.join(alias, f".qmail-user{k}"), "w") as f:
            f.write(f"./user{k}/\n")
        dirs.append(md)
    env = dict(os.environ, QMAIL_HOME=home)
    log = open(os.path.join(base, "qmail.log"), "wb")
    send = subprocess.Popen([os.path.join(home, "rc")], env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        time.sleep(0.3)
        inject = os.path.join(home, "bin", "qmail-inject")
        t0 = time.perf_counter()
        for i in range(N):
            subprocess.run([inject, "-f", "bench@bench.example.com", f"user{i % USERS}@bench.example.com"],
                           input=BODY, env=env, check=True)
        inj = time.perf_counter() - t0
        total = wait_delivered(dirs, N, t0)
        return inj, total
    finally:
        os.killpg(send.pid, signal.SIGTERM)
        send.wait(timeout=30)


# Private Postfix master.cf: no inet service at all (no SMTP listener), no
# chroot (nothing to populate under the queue), postlogd for maillog_file.
POSTFIX_MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def postfix_unusable():
    """Why the private Postfix instance cannot run here, or None."""
    if not shutil.which("postfix"):
        return "postfix not installed"
    if os.geteuid() != 0:
        return "needs root (postfix start, and setgid postdrop trusts a -C config only from root)"
    for user in ("postfix", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"no user {user!r}"
    try:
        grp.getgrnam("postdrop")
    except KeyError:
        return "no group 'postdrop'"
    return None


def postfix_tail(pf, lines=15):
    try:
        with open(os.path.join(pf, "maillog"), errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no maillog)\n"


def bench_postfix(base):
    """A private Postfix instance under base: config in etc/, queue in spool/,
    data in data/, Maildirs in mail/userK/. Run as root, so postfix, sendmail
    and the setgid postdrop all trust -C/MAIL_CONFIG (Postfix unsafe(): real and
    effective uid 0); no /etc/postfix/main.cf nor alternate_config_directories
    is needed, and nothing outside base is written."""
    pf = os.path.join(base, "postfix")
    etc, mail, spool = (os.path.join(pf, d) for d in ("etc", "mail", "spool"))
    os.makedirs(etc)
    os.makedirs(spool)  # root-owned; "postfix start" creates its subdirectories and data/
    os.makedirs(mail)
    pw = pwd.getpwnam("nobody")
    os.chown(mail, pw.pw_uid, pw.pw_gid)  # virtual(8) creates the Maildirs as this uid
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write(POSTFIX_MASTER_CF)
    with open(os.path.join(etc, "vmailbox"), "w") as f:
        f.write("".join(f"user{k}@bench.example.com user{k}/\n" for k in range(USERS)))
    with open(os.path.join(etc, "main.cf"), "w") as f:
        f.write(f"""\
compatibility_level = 3.6
queue_directory = {spool}
data_directory = {pf}/data
myhostname = bench.example.com
mydestination =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
master_service_disable = inet
default_transport = error:no outbound mail from the benchmark
relay_transport = error:no outbound mail from the benchmark
virtual_mailbox_domains = bench.example.com
virtual_mailbox_base = {mail}
virtual_mailbox_maps = texthash:{etc}/vmailbox
virtual_uid_maps = static:{pw.pw_uid}
virtual_gid_maps = static:{pw.pw_gid}
maillog_file = {pf}/maillog
maillog_file_prefixes = {pf}
smtputf8_enable = no
""")
    env = dict(os.environ, MAIL_CONFIG=etc)

    def postfix(*args, check=True):
        r = subprocess.run(["postfix", "-c", etc, *args], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if check and r.returncode != 0:
            raise SystemExit(f"postfix {' '.join(args)} failed ({r.returncode}):\n{r.stdout}"
                             f"--- {pf}/maillog:\n{postfix_tail(pf)}")
        return r

    sendmail = subprocess.run(["postconf", "-c", etc, "-h", "sendmail_path"], env=env, check=True,
                              capture_output=True, text=True).stdout.strip()
    postfix("check")
    try:
        postfix("start")  # master -w: returns once the master is up
        dirs = [os.path.join(mail, f"user{k}") for k in range(USERS)]
        time.sleep(0.5)
        t0 = time.perf_counter()
        for i in range(N):
            subprocess.run([sendmail, "-C", etc, "-f", "bench@bench.example.com",
                            f"user{i % USERS}@bench.example.com"], input=BODY, env=env, check=True)
        inj = time.perf_counter() - t0
        try:
            total = wait_delivered(dirs, N, t0)
        except SystemExit as e:
            raise SystemExit(f"postfix: {e}\n--- {pf}/maillog:\n{postfix_tail(pf)}")
        return inj, total
    finally:
        # "postfix stop" only signals the master; wait (bounded) until it has
        # released its lock, i.e. "postfix status" says it is not running.
        postfix("stop", check=False)
        deadline = time.time() + 30
        while postfix("status", check=False).returncode == 0:
            if time.time() > deadline:
                print(f"warning: private postfix in {pf} still running after stop", file=sys.stderr)
                break
            time.sleep(0.1)


def main():
    base = tempfile.mkdtemp(prefix="sq-deliver-", dir=WORK)
    os.chmod(base, 0o755)
    try:
        results = {}
        if os.path.exists(os.path.join(BIN, "qmail-send")):
            results["swift-qmail"] = bench_ours(base)
        else:
            print("qmail-send not built: ours skipped")
        why = postfix_unusable()
        if why is None:
            results["postfix"] = bench_postfix(base)
        else:
            print(f"postfix skipped: {why}")
        print(f"{N} messages of {len(BODY)} bytes to {USERS} Maildir users, injected sequentially")
        for name, (inj, total) in results.items():
            print(f"{name:12s} injection {N / inj:7.0f} msg/s   end to end {N / total:7.0f} msg/s ({total:.1f} s)")
        if len(results) == 2:
            print(f"ratio ours/postfix (end to end): {results['postfix'][1] / results['swift-qmail'][1]:.2f}")
    finally:
        subprocess.run(["pkill", "-f", base], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
