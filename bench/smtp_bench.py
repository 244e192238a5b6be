#!/usr/bin/env python3
"""SMTP intake benchmark: N 4-KiB messages over 10 concurrent SMTP sessions
(a Python client, one process per session, each session sending its share
of messages over one connection) into

  - our qmail-smtpd under tcpserver (ours from SQ_BIN if built, else
    Debian's ucspi-tcp), each message through qmail-queue (fsync'd), and
  - Postfix's smtpd (Debian package, a private instance with its own
    config and queue on another loopback port; cleanup fsyncs each queue file).

Neither side delivers (no qmail-send, no qmgr): this measures accepting
mail. Each side runs BENCH_ROUNDS times (default 3), alternating, and the
median messages/s of each is compared (ratio ours/Postfix). Each server's
process tree runs in its own cpuacct cgroup, so the server-side CPU per
message is printed too: unlike messages/s it does not depend on what else
the machine is doing.
Both queues live on one file system. By default (BENCH_FS=fresh) that is
an ext4 made for this run (mkfs.ext4's defaults, so with a journal, as on a
mail server), loop-mounted from an image in BENCH_DIR and removed at the
end: results then do not depend on what the machine's own file system did
lately (ext4 without a journal, as on some VMs, slows inode allocation for
minutes after many files were deleted). BENCH_FS=dir puts both queues in
BENCH_DIR as it is. Where the file system has a jbd2 journal, the journal
commits per message of each server are printed too.
Run as root (Postfix's master). BENCH_MESSAGES, BENCH_SESSIONS, BENCH_ROUNDS,
SQ_BIN, BENCH_CLIENT=smtp-source (default when installed) or python,
BENCH_FS=fresh|dir, BENCH_DIR (default /var/tmp).
"""
import multiprocessing
import os
import statistics
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "Integration"))
import postfix_helper  # noqa: E402

N = int(os.environ.get("BENCH_MESSAGES", "2000"))
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "10"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
BIN = os.path.abspath(os.environ.get("SQ_BIN", os.path.join(HERE, "..", ".build", "release")))
WORK = os.environ.get("BENCH_DIR", "/var/tmp")
FS = os.environ.get("BENCH_FS", "fresh")
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
# "smtp-source" (Postfix's load generator, the client; the default
# when installed) or "python" (smtplib, one process per session)
CLIENT = os.environ.get("BENCH_CLIENT", "smtp-source" if os.path.exists(SMTP_SOURCE) else "python")
BODY = b"From: bench@client.example\r\nTo: user@bench.example\r\nSubject: bench\r\n\r\n" + (b"x" * 62 + b"\r\n") * 62
BODY += b"y" * (4096 - len(BODY) - 2) + b"\r\n"
assert len(BODY) == 4096


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.recv(100)
            s.sendall(b"QUIT\r\n")
            s.close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listening on {port}")


def tree_pids(pid):
    """pid and all its descendants now running, from /proc."""
    pids, frontier = {pid}, [pid]
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    while frontier:
        for c in children.get(frontier.pop(), []):
            if c not in pids:
                pids.add(c)
                frontier.append(c)
    return pids


class CpuMeter:
    """CPU used by a process tree, from a cgroup of its own (cgroup v1
    cpuacct or v2 cpu.stat). Processes the tree forks later stay in it."""

    def __init__(self, name):
        self.dir = None
        for root, v2 in (("/sys/fs/cgroup/cpuacct", False), ("/sys/fs/cgroup", True)):
            if v2 != os.path.exists(os.path.join(root, "cgroup.controllers")):
                continue
            d = os.path.join(root, f"sq-bench-{name}-{os.getpid()}")
            try:
                os.mkdir(d)
            except OSError:
                continue
            self.dir, self.v2 = d, v2
            return

    def add_tree(self, pid):
        if not self.dir:
            return
        for p in tree_pids(pid):
            try:
                with open(os.path.join(self.dir, "cgroup.procs"), "w") as f:
                    f.write(str(p))
            except OSError:
                pass

    def seconds(self):
        if not self.dir:
            return None
        if self.v2:
            with open(os.path.join(self.dir, "cpu.stat")) as f:
                for line in f:
                    if line.startswith("usage_usec"):
                        return int(line.split()[1]) / 1e6
            return None
        with open(os.path.join(self.dir, "cpuacct.usage")) as f:
            return int(f.read()) / 1e9

    def close(self):
        if self.dir:
            for _ in range(50):
                try:
                    os.rmdir(self.dir)
                    return
                except OSError:
                    time.sleep(0.1)


class FreshExt4:
    """An ext4 made for this run from a sparse image in WORK, loop-mounted
    on a short path (Postfix's socket paths must stay short)."""

    def __init__(self):
        fd, self.image = tempfile.mkstemp(prefix="smtp-bench-", suffix=".img", dir=WORK)
        os.close(fd)
        self.mount = tempfile.mkdtemp(prefix="sqb", dir="/tmp")
        self.mounted = False
        try:
            os.truncate(self.image, 3 << 30)
            # Inode tables and journal written now, not by a background
            # thread during the measurement.
            subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", self.image],
                           check=True, capture_output=True)
            subprocess.run(["mount", "-o", "loop", self.image, self.mount], check=True, capture_output=True)
            self.mounted = True
        except (OSError, subprocess.CalledProcessError) as e:
            self.close()
            raise SystemExit(f"cannot make a fresh ext4 for the queues ({e}); BENCH_FS=dir uses BENCH_DIR as it is")

    def close(self):
        if self.mounted:
            subprocess.run(["umount", self.mount], capture_output=True)
        os.rmdir(self.mount)
        os.unlink(self.image)


def block_device(path):
    """The name of the block device holding path (as in /sys/block)."""
    st = os.stat(path)
    return os.path.basename(os.readlink(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"))


def device_io(path):
    """(cache flushes, KiB written) so far by the block device holding
    path (fields 16 and 7 of /sys/block/DEV/stat), or None. Each journal
    commit sends one or two flushes; an fsync that finds its file's
    transaction committed already sends one of its own. The KiB written
    are the journal's and the files' data."""
    try:
        with open(f"/sys/block/{block_device(path)}/stat") as f:
            fields = f.read().split()
        return (int(fields[15]), int(fields[6]) / 2) if len(fields) > 15 else None
    except (OSError, ValueError):
        return None


def journal_commits(path):
    """Commits so far of the jbd2 journal of the file system holding path, or None."""
    try:
        dev = block_device(path)
        for name in os.listdir("/proc/fs/jbd2"):
            if name.rsplit("-", 1)[0] == dev:
                with open(f"/proc/fs/jbd2/{name}/info") as f:
                    return int(f.readline().split()[0])
    except (OSError, ValueError):
        pass
    return None


def describe_fs(path):
    r = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", path], capture_output=True, text=True)
    kind = " ".join(r.stdout.split()) or "unknown"
    journal = "with a journal" if journal_commits(path) is not None else "without a journal"
    return f"{kind}, {journal}"


def session(args):
    port, count, k = args
    c = smtplib.SMTP("127.0.0.1", port, timeout=120)
    c.ehlo("client.example")
    for i in range(count):
        c.sendmail(f"s{k}@client.example", [f"user{i % 10}@bench.example"], BODY)
    c.quit()
    return count


def run_clients(port):
    if CLIENT == "smtp-source":
        t0 = time.perf_counter()
        subprocess.run([SMTP_SOURCE, "-d", "-s", str(SESSIONS), "-m", str(N), "-l", str(len(BODY)),
                        "-M", "client.example", "-f", "s@client.example", "-t", "user@bench.example",
                        f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL, timeout=600)
        return time.perf_counter() - t0
    shares = [N // SESSIONS + (1 if k < N % SESSIONS else 0) for k in range(SESSIONS)]
    with multiprocessing.Pool(SESSIONS) as pool:
        t0 = time.perf_counter()
        sent = sum(pool.map(session, [(port, shares[k], k) for k in range(SESSIONS)]))
        dt = time.perf_counter() - t0
    assert sent == N
    return dt


NULLQQ_C = b"""#include <unistd.h>
int main(void){char b[65536];while(read(0,b,sizeof b)>0);while(read(1,b,sizeof b)>0);return 0;}
"""


def null_queue(base):
    """A qmail-queue stand-in that reads and discards (C, so its exec is cheap),
    to show what qmail-smtpd and tcpserver cost without the queue."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    src, exe = os.path.join(base, "nullqq.c"), os.path.join(base, "nullqq")
    with open(src, "wb") as f:
        f.write(NULLQQ_C)
    r = subprocess.run([cc, "-O2", "-o", exe, src], capture_output=True)
    return exe if r.returncode == 0 else None


def ours(base, queue_program=None, queue_on=None):
    """queue_on: where the queue goes when it is not beside the programs
    (the home stays where its programs can be hard-linked; its queue/ is a
    symbolic link to a copy made in queue_on)."""
    home = os.path.join(base, "qmail")
    if not os.path.exists(home):
        setup = [os.path.join(BIN, "qmail-setup"), "--single-user", home, "bench.example"]
        # Hardlinked programs where the file system allows it (they are large).
        if subprocess.run(setup[:1] + ["--link"] + setup[1:], capture_output=True).returncode != 0:
            shutil.rmtree(home, ignore_errors=True)
            subprocess.run(setup, check=True, capture_output=True)
        with open(os.path.join(home, "control", "rcpthosts"), "w") as f:
            f.write("bench.example\n")
        if queue_on:
            q = os.path.join(queue_on, os.path.basename(base))
            subprocess.run(["cp", "-a", os.path.join(home, "queue"), q], check=True)
            shutil.rmtree(os.path.join(home, "queue"))
            os.symlink(q, os.path.join(home, "queue"))
    tcpserver = os.path.join(home, "bin", "tcpserver")
    if not os.path.exists(tcpserver):
        tcpserver = shutil.which("tcpserver")
    port = free_port()
    env = dict(os.environ, QMAIL_HOME=home)
    env.pop("QMAILQUEUE", None)
    if queue_program:
        env["QMAILQUEUE"] = queue_program
    srv = subprocess.Popen([tcpserver, "-q", "-R", "-H", "-l", "bench.example", "-c", str(SESSIONS + 5),
                            "127.0.0.1", str(port), os.path.join(home, "bin", "qmail-smtpd")],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meter = CpuMeter("ours")
    try:
        wait_port(port)
        meter.add_tree(srv.pid)
        c0 = meter.seconds()
        dt = run_clients(port)
        cpu = meter.seconds() - c0 if c0 is not None else None
        if not queue_program:
            todo = sum(len(files) for _, _, files in os.walk(os.path.join(home, "queue", "todo")))
            assert todo == N, f"ours: {todo} of {N} queued"
        return dt, tcpserver, cpu
    finally:
        srv.terminate()
        srv.wait()
        time.sleep(0.2)
        meter.close()


def postfix(base):
    port = free_port()
    pf = postfix_helper.Postfix(os.path.join(base, "postfix"), port, hostname="bench.example", root=base)
    meter = CpuMeter("postfix")
    try:
        meter.add_tree(pf.proc.pid)
        c0 = meter.seconds()
        dt = run_clients(port)
        time.sleep(0.2)
        cpu = meter.seconds() - c0 if c0 is not None else None
        n = len(pf.queued_ids())
        assert n == N, f"postfix: {n} of {N} queued"
        return dt, cpu
    finally:
        pf.stop()
        time.sleep(0.2)
        meter.close()


def main():
    if not postfix_helper.available():
        raise SystemExit("run as root with Postfix installed")
    base = tempfile.mkdtemp(prefix="smtp-bench-", dir=WORK)
    os.chmod(base, 0o755)  # Postfix's daemons (user postfix) must reach their queue in it
    fresh = FreshExt4() if FS == "fresh" else None
    qbase = fresh.mount if fresh else base
    where = describe_fs(qbase)
    # Nothing is deleted until the end: on ext4 without a journal, creating
    # files right after many were deleted costs far more (the inode
    # allocator skips recently freed inodes), which would tax whichever
    # side runs next.
    os.environ["SQ_KEEP_POSTFIX"] = "1"
    ours_rates, pf_rates, ours_cpu, pf_cpu, ours_jc, pf_jc = [], [], [], [], [], []
    try:
        for r in range(ROUNDS):
            j0 = journal_commits(qbase)
            t, tcpserver, cpu = ours(os.path.join(base, f"ours{r}"), queue_on=fresh and qbase)
            j1 = journal_commits(qbase)
            ours_rates.append(N / t)
            if cpu is not None:
                ours_cpu.append(cpu / N)
            t, cpu = postfix(qbase)
            j2 = journal_commits(qbase)
            pf_rates.append(N / t)
            if cpu is not None:
                pf_cpu.append(cpu / N)
            if j0 is not None:
                ours_jc.append((j1 - j0) / N)
                pf_jc.append((j2 - j1) / N)
            print(f"round {r + 1}: ours {ours_rates[-1]:7.1f} msgs/s, postfix {pf_rates[-1]:7.1f} msgs/s", flush=True)
        nq = null_queue(base)
        t_null = ours(os.path.join(base, "null"), nq, queue_on=fresh and qbase)[0] if nq else None
    finally:
        if fresh:
            fresh.close()
        shutil.rmtree(base, ignore_errors=True)
    r_ours, r_pf = statistics.median(ours_rates), statistics.median(pf_rates)
    client = "Postfix smtp-source -d" if CLIENT == "smtp-source" else "Python smtplib clients"
    print(f"messages: {N} x {len(BODY)} bytes over {SESSIONS} sessions ({client}), {ROUNDS} rounds, medians")
    print(f"queues on: {'a fresh loop-mounted ' if fresh else base + ': '}{where}")
    print(f"ours     qmail-smtpd under {tcpserver}: {r_ours:8.1f} msgs/s  ({BIN})")
    print(f"postfix  smtpd {postfix_version()}: {r_pf:8.1f} msgs/s")
    print(f"ratio ours/postfix: {r_ours / r_pf:.2f}")
    if ours_cpu and pf_cpu:
        co, cp = statistics.median(ours_cpu) * 1000, statistics.median(pf_cpu) * 1000
        print(f"server CPU per message: ours {co:.2f} ms, postfix {cp:.2f} ms (ratio postfix/ours {cp / co:.2f})")
    if ours_jc:
        print(f"journal commits per message: ours {statistics.median(ours_jc):.2f}, postfix {statistics.median(pf_jc):.2f}")
    if t_null:
        print(f"ours with qmail-queue replaced by a no-op (smtpd + tcpserver alone): {N / t_null:8.1f} msgs/s")


def postfix_version():
    r = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True)
    return r.stdout.strip()


if __name__ == "__main__":
    main()
