#!/usr/bin/env python3
"""End to end, SMTP in to Maildir: smtp-source sends N 4-KiB messages over
10 concurrent sessions to hosted mailboxes, while the server delivers them,
into

  - ours: tcpserver + qmail-smtpd + qmail-queue, qmail-send delivering
    through qmail-lspawn, qmail-local and the domain's .qmail-default
    (| vdelivermail '' bounce-no-mailbox) as the domain's user (nobody),
    domains made by vadddomain/vadduser;
  - Postfix: smtpd, qmgr and virtual(8) to Maildir as nobody.

Two cases: every message to one mailbox, then the messages spread over 100
mailboxes in 5 domains (each of the 10 client lanes sends to 10 mailboxes in
turn, one smtp-source run of N/100 messages per mailbox). Queues and
Maildirs of both live on one ext4 made for the run (smtp_bench.FreshExt4).
Each case runs BENCH_ROUNDS times (default 3), alternating ours and
Postfix; medians are printed: accepted msgs/s (N / time until the last
client finished), delivered msgs/s (N / time until the last message was in
its Maildir), the ratios ours/Postfix, the server CPU per message (each
server's process tree in a cgroup of its own), the journal commits per
message (from /proc/fs/jbd2: many fsyncs can share one commit), and the
device's cache flushes and KiB written per message (/sys/block/DEV/stat: a
commit sends one or two flushes, and so does an fsync that finds its file
committed already; most of what is written is the journal). Then, from a smaller run
under strace -f -c (BENCH_TRACE_MESSAGES, default 200; 0 skips it): execs
and fsyncs per message of each server. Last, the size of our HOME/bin and
the CPU cost of an exec of qmail-local and vdelivermail against /bin/true.

Run as root. BENCH_MESSAGES (default 2000), BENCH_ROUNDS, BENCH_CASES
(default "one,many"), BENCH_TRACE_MESSAGES, SQ_BIN, BENCH_DIR,
BENCH_AUTHPOLICY (our control/authpolicy, default "off" as Postfix checks
nothing), BENCH_CONCURRENCY (default 20: Postfix's
default_destination_concurrency_limit, which its virtual(8) transport
follows; ours gets it as control/concurrencylocal, whose qmail default is
10, and Postfix gets it explicitly, so both deliver as many messages at once).

Where the time goes (measured here, one mailbox): the machine's 2 CPUs are
busy all the time for both, most of it in the kernel. Postfix needs about
1.5 ms of the whole machine's CPU per message (client and kernel threads
included), ours about 1.2 ms. Most of what the device is sent is the
journal, and most of the journal is inode-table blocks: each file made or
removed, and each directory changed, logs its inode's block. qmail-send
delivers a message with one local recipient straight from todo/ (no
info/ and local/ files), which took ours from about 110 KiB written per
message to 73, against Postfix's 70; with 100 mailboxes it is about 100
against 95.
"""
import glob
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import smtp_bench as sb  # noqa: E402
from smtp_bench import postfix_helper  # noqa: E402

N = sb.N
SESSIONS = sb.SESSIONS
ROUNDS = sb.ROUNDS
BIN = sb.BIN
CASES = [c for c in os.environ.get("BENCH_CASES", "one,many").split(",") if c]
TRACE_N = int(os.environ.get("BENCH_TRACE_MESSAGES", "200"))
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "600"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "20"))
DOMAINS = 5
MAILBOXES = 100
HOST = "mx.bench.example"
VUSER = "nobody"


def mailboxes(case):
    """(user, domain) of each mailbox of a case."""
    if case == "one":
        return [("box0", "d0.bench.example")]
    return [(f"box{k}", f"d{k % DOMAINS}.bench.example") for k in range(MAILBOXES)]


def send_all(port, boxes, n):
    """n messages over SESSIONS concurrent lanes; lane k sends to the
    mailboxes k, k+SESSIONS, ... in turn, n/len(boxes) to each (one
    smtp-source connection per mailbox). Returns the seconds taken."""
    per_box = n // len(boxes)
    assert per_box * len(boxes) == n, "BENCH_MESSAGES must be a multiple of the number of mailboxes"

    def lane_cmd(lane):
        mine = boxes[lane::SESSIONS]
        if len(boxes) == 1:
            share = n // SESSIONS + (1 if lane < n % SESSIONS else 0)
            runs = [(boxes[0], share)]
        else:
            runs = [(b, per_box) for b in mine]
        return " && ".join(
            f"{sb.SMTP_SOURCE} -d -s 1 -m {count} -l {len(sb.BODY)} -M client.example -f s@client.example "
            f"-t {user}@{domain} 127.0.0.1:{port} >/dev/null"
            for (user, domain), count in runs if count)

    t0 = time.perf_counter()
    lanes = [subprocess.Popen(["sh", "-c", lane_cmd(k)]) for k in range(min(SESSIONS, max(n, 1)))]
    for p in lanes:
        if p.wait(timeout=TIMEOUT) != 0:
            raise SystemExit("smtp-source failed")
    return time.perf_counter() - t0


def count_new(dirs):
    return sum(len(os.listdir(d)) for d in dirs if os.path.isdir(d))


def wait_delivered(dirs, n, t0, what):
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        if count_new(dirs) >= n:
            return time.perf_counter() - t0
        time.sleep(0.01)
    raise SystemExit(f"{what}: only {count_new(dirs)} of {n} delivered")


class Strace:
    """strace -f -c on a process tree: calls of execve and of the system
    calls that make data durable (fsync, fdatasync, syncfs)."""
    CALLS = "execve,fsync,fdatasync,sync_file_range,syncfs"

    def __init__(self, root_pids, out):
        self.out = out
        pids = set()
        for r in root_pids:
            pids |= sb.tree_pids(r)
        argv = ["strace", "-f", "-c", "-o", out, "-e", f"trace={self.CALLS}"]
        for p in sorted(pids):
            argv += ["-p", str(p)]
        self.proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # attached

    def counts(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        calls = {}
        with open(self.out) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 5 and parts[-1] in self.CALLS.split(","):
                    calls[parts[-1]] = int(parts[3]) if len(parts) == 6 else int(parts[3 if parts[3].isdigit() else 2])
        execs = calls.get("execve", 0)
        # sync_file_range only writes data out early (no durability, no
        # journal commit): traced, but not counted as an fsync
        syncs = sum(v for k, v in calls.items() if k not in ("execve", "sync_file_range"))
        return execs, syncs


class Ours:
    def __init__(self, base, qbase, case, n):
        self.boxes = mailboxes(case)
        home = self.home = os.path.join(base, "qmail")
        setup = [os.path.join(BIN, "qmail-setup"), "--single-user", home, HOST]
        if subprocess.run(setup[:1] + ["--link"] + setup[1:], capture_output=True).returncode != 0:
            shutil.rmtree(home, ignore_errors=True)
            subprocess.run(setup, check=True, capture_output=True)
        # queue and Maildirs on the fresh file system (the Maildirs moved
        # there once made: vadddomain makes HOME/domains itself)
        name = os.path.basename(base)
        q = os.path.join(qbase, name + "-queue")
        subprocess.run(["cp", "-a", os.path.join(home, "queue"), q], check=True)
        shutil.rmtree(os.path.join(home, "queue"))
        os.symlink(q, os.path.join(home, "queue"))
        self.env = dict(os.environ, QMAIL_HOME=home)
        self.env.pop("QMAILQUEUE", None)
        # Postfix here checks no SPF, DKIM or DMARC; a fresh home's
        # "annotate" would add DNS look-ups per message, which time the
        # resolver rather than the way to the Maildir (bench/auth_bench.py
        # measures them). BENCH_AUTHPOLICY sets another mode.
        with open(os.path.join(home, "control", "authpolicy"), "w") as f:
            f.write(os.environ.get("BENCH_AUTHPOLICY", "off") + "\n")
        with open(os.path.join(home, "control", "concurrencylocal"), "w") as f:
            f.write(f"{CONCURRENCY}\n")
        for d in sorted({d for _, d in self.boxes}):
            self.admin("vadddomain", "-K", "-u", VUSER, d, "pw")
        for u, d in self.boxes:
            self.admin("vadduser", f"{u}@{d}", "pw")
        doms = os.path.join(qbase, name + "-domains")
        subprocess.run(["cp", "-a", os.path.join(home, "domains"), doms], check=True)
        shutil.rmtree(os.path.join(home, "domains"))
        os.symlink(doms, os.path.join(home, "domains"))
        self.dirs = [os.path.join(doms, d, u, "Maildir", "new") for u, d in self.boxes]
        self.n = n

    def admin(self, prog, *args):
        r = subprocess.run([os.path.join(self.home, "bin", prog), *args], env=self.env, capture_output=True)
        if r.returncode != 0:
            raise SystemExit(f"{prog} {args}: {r.stderr.decode(errors='replace')}")

    def smtpd_program(self):
        """What tcpserver runs for each connection."""
        return [os.path.join(self.home, "bin", "qmail-smtpd")]

    def start(self):
        self.log = open(os.path.join(self.home, "send.log"), "wb")
        self.send = subprocess.Popen([os.path.join(self.home, "rc")], cwd="/", env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.port = sb.free_port()
        self.smtpd = subprocess.Popen([os.path.join(self.home, "bin", "tcpserver"), "-q", "-R", "-H", "-l", HOST,
                                       "-c", str(SESSIONS + 5), "127.0.0.1", str(self.port), *self.smtpd_program()],
                                      env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sb.wait_port(self.port)
        deadline = time.time() + 30
        while len(sb.tree_pids(self.send.pid)) < 4 and time.time() < deadline:
            time.sleep(0.05)  # qmail-send, lspawn, rspawn, clean
        return [self.send.pid, self.smtpd.pid]

    def stop(self):
        self.smtpd.terminate()
        self.smtpd.wait()
        os.killpg(self.send.pid, signal.SIGTERM)
        self.send.wait(timeout=60)
        self.log.close()


class Postfix:
    def __init__(self, base, qbase, case, n):
        self.boxes = mailboxes(case)
        self.mail = tempfile.mkdtemp(prefix="pfmail", dir=qbase)
        import pwd
        pw = pwd.getpwnam(VUSER)
        os.chown(self.mail, pw.pw_uid, pw.pw_gid)
        os.chmod(self.mail, 0o755)
        self.vmailbox = os.path.join(base, "vmailbox")
        with open(self.vmailbox, "w") as f:
            f.write("".join(f"{u}@{d} {d}/{u}/\n" for u, d in self.boxes))
        self.extra = f"""
virtual_mailbox_domains = {' '.join(sorted({d for _, d in self.boxes}))}
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = texthash:{self.vmailbox}
virtual_uid_maps = static:{pw.pw_uid}
virtual_gid_maps = static:{pw.pw_gid}
virtual_mailbox_limit = 0
default_destination_concurrency_limit = {CONCURRENCY}
virtual_destination_concurrency_limit = {CONCURRENCY}
smtputf8_enable = no
"""
        self.base, self.qbase = base, qbase
        self.dirs = [os.path.join(self.mail, d, u, "new") for u, d in self.boxes]
        self.n = n

    def start(self):
        self.port = sb.free_port()
        self.pf = postfix_helper.Postfix(os.path.join(self.base, "postfix"), self.port, hostname=HOST, root=self.qbase,
                                         qmgr=True, extra_main=self.extra,
                                         extra_master=["virtual unix - n n - - virtual"])
        return [self.pf.proc.pid]

    def stop(self):
        self.pf.stop()


def one_run(kind, base, qbase, case, n, trace=False):
    """Accepted and delivered seconds and server CPU seconds (or, with
    trace, execs and fsyncs) of one run."""
    os.makedirs(base)
    os.chmod(base, 0o755)
    server = kind(base, qbase, case, n)
    roots = server.start()
    meter = sb.CpuMeter(kind.__name__.lower())
    tracer = None
    try:
        for r in roots:
            meter.add_tree(r)
        if trace:
            tracer = Strace(roots, os.path.join(base, "strace.out"))
        c0 = meter.seconds()
        j0 = sb.journal_commits(qbase)
        f0 = sb.device_io(qbase)
        t0 = time.perf_counter()
        accepted = send_all(server.port, server.boxes, n)
        delivered = wait_delivered(server.dirs, n, t0, kind.__name__)
        cpu = meter.seconds() - c0 if c0 is not None else None
        j1 = sb.journal_commits(qbase)
        f1 = sb.device_io(qbase)
        if tracer:
            counts, tracer = tracer.counts(), None
            return counts
        return (accepted, delivered, cpu, (j1 - j0 if j0 is not None and j1 is not None else None),
                ((f1[0] - f0[0], f1[1] - f0[1]) if f0 is not None and f1 is not None else None))
    finally:
        if tracer:
            tracer.proc.kill()
        server.stop()
        time.sleep(0.2)
        meter.close()


EXEC_LOOP_C = b"""#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
extern char **environ;
int main(int argc, char **argv) {
  int n = atoi(argv[1]);
  for (int i = 0; i < n; i++) {
    pid_t pid; int st;
    if (posix_spawn(&pid, argv[2], 0, 0, argv + 2, environ) != 0) return 111;
    waitpid(pid, &st, 0);
  }
  struct rusage ru; getrusage(RUSAGE_CHILDREN, &ru);
  printf("%f\\n", (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6) / n * 1000);
  return 0;
}
"""


def exec_costs(base, home):
    """CPU ms per exec (the child's user+system time) of /bin/true,
    qmail-local and vdelivermail (each exits at once on its usage error)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return {}
    src, exe = os.path.join(base, "execloop.c"), os.path.join(base, "execloop")
    with open(src, "wb") as f:
        f.write(EXEC_LOOP_C)
    subprocess.run([cc, "-O2", "-o", exe, src], check=True)
    out = {}
    for name, prog in (("/bin/true", "/bin/true"), ("qmail-local", os.path.join(home, "bin", "qmail-local")),
                       ("vdelivermail", os.path.join(home, "bin", "vdelivermail"))):
        r = subprocess.run([exe, "1000", prog], capture_output=True, text=True, env={"QMAIL_HOME": home})
        out[name] = float(r.stdout.strip())
    return out


def bin_size(bindir):
    """Bytes of HOME/bin, each file (inode) once; program names; files."""
    seen, total = set(), 0
    for e in os.scandir(bindir):
        st = os.stat(e.path)
        if (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total, len(list(os.scandir(bindir))), len(seen)


def print_install(costs, size, count, files):
    print(f"HOME/bin: {count} programs in {files} files, {size / 1e6:.1f} MB")
    if costs:
        t = costs["/bin/true"]
        print("exec CPU per run: " + ", ".join(f"{k} {v:.2f} ms" for k, v in costs.items())
              + f" (qmail-local +{costs['qmail-local'] - t:.2f}, vdelivermail +{costs['vdelivermail'] - t:.2f} over /bin/true)")


def install_only():
    """--install: only HOME/bin's size and the exec costs, from a home that
    qmail-setup makes by copying, as an installation does (any user, no
    Postfix needed)."""
    base = tempfile.mkdtemp(prefix="e2e-install-")
    try:
        home = os.path.join(base, "qmail")
        subprocess.run([os.path.join(BIN, "qmail-setup"), "--single-user", home, HOST], check=True, capture_output=True)
        print(f"ours from {BIN}")
        print_install(exec_costs(base, home), *bin_size(os.path.join(home, "bin")))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main():
    if not postfix_helper.available() or not os.path.exists(sb.SMTP_SOURCE):
        raise SystemExit("run as root with Postfix and smtp-source installed")
    base = tempfile.mkdtemp(prefix="e2e-bench-", dir=sb.WORK)
    os.chmod(base, 0o755)
    fresh = sb.FreshExt4()
    qbase = fresh.mount
    os.chmod(qbase, 0o755)
    where = sb.describe_fs(qbase)
    os.environ["SQ_KEEP_POSTFIX"] = "1"  # nothing deleted on the file system until the end
    results = {}
    try:
        for case in CASES:
            rows = {"ours": [], "postfix": []}
            for r in range(ROUNDS):
                for name, kind in (("ours", Ours), ("postfix", Postfix)):
                    rows[name].append(one_run(kind, os.path.join(base, f"{case}-{name}{r}"), qbase, case, N))
                o, p = rows["ours"][-1], rows["postfix"][-1]
                print(f"{case} round {r + 1}: ours accepted {N / o[0]:7.1f} delivered {N / o[1]:7.1f} msgs/s; "
                      f"postfix accepted {N / p[0]:7.1f} delivered {N / p[1]:7.1f} msgs/s", flush=True)
            traced = {}
            if TRACE_N:
                for name, kind in (("ours", Ours), ("postfix", Postfix)):
                    n = max(TRACE_N // len(mailboxes(case)), 1) * len(mailboxes(case))
                    e, s = one_run(kind, os.path.join(base, f"{case}-{name}-trace"), qbase, case, n, trace=True)
                    traced[name] = (e / n, s / n)
            results[case] = (rows, traced)
        costs = exec_costs(base, os.path.join(base, f"{CASES[0]}-ours0", "qmail"))
        installed = bin_size(os.path.join(base, f"{CASES[0]}-ours0", "qmail", "bin"))
    finally:
        subprocess.run(["pkill", "-f", base], capture_output=True)
        fresh.close()
        shutil.rmtree(base, ignore_errors=True)

    print(f"messages: {N} x {len(sb.BODY)} bytes over {SESSIONS} smtp-source sessions, delivered while accepted, "
          f"{ROUNDS} rounds, medians; local delivery concurrency {CONCURRENCY} for both; "
          f"queues and Maildirs on a fresh loop-mounted {where}; ours from {BIN}")
    med = lambda xs: statistics.median(xs)
    for case, (rows, traced) in results.items():
        label = "1 mailbox" if case == "one" else f"{MAILBOXES} mailboxes in {DOMAINS} domains"
        print(f"--- {label}")
        acc = {k: med([N / r[0] for r in v]) for k, v in rows.items()}
        dlv = {k: med([N / r[1] for r in v]) for k, v in rows.items()}
        for k in rows:
            cpus = [r[2] for r in rows[k] if r[2] is not None]
            cpu = f", server CPU {med(cpus) / N * 1000:.2f} ms/msg" if cpus else ""
            commits = [r[3] for r in rows[k] if r[3] is not None]
            cpu += f", {med(commits) / N:.2f} journal commits/msg" if commits else ""
            io = [r[4] for r in rows[k] if r[4] is not None]
            if io:
                cpu += f", {med([x[0] for x in io]) / N:.2f} device flushes and {med([x[1] for x in io]) / N:.0f} KiB written/msg"
            tr = f", {traced[k][0]:.2f} execs and {traced[k][1]:.2f} fsyncs per msg" if k in traced else ""
            print(f"{k:8s} accepted {acc[k]:7.1f} msgs/s, delivered {dlv[k]:7.1f} msgs/s{cpu}{tr}")
        print(f"ratio ours/postfix: accepted {acc['ours'] / acc['postfix']:.2f}, delivered {dlv['ours'] / dlv['postfix']:.2f}")
    print_install(costs, *installed)


if __name__ == "__main__":
    install_only() if sys.argv[1:] == ["--install"] else main()
