#!/usr/bin/env python3
"""Queue throughput beside the fsync floor, measured in one run.

Prints:
  - fsync floor: 4-KiB files written + fsync'd per second (file fsync +
    directory fsync, as a crash-safe writer must), and the rate with the four
    fsyncs qmail-queue does per message (message, its directory, envelope,
    todo/ directory);
  - exec cost of qmail-queue (it exits at once when its home is missing)
    next to /bin/true;
  - messages/s for N 4-KiB messages through qmail-inject -> qmail-queue
    (sequential), and through qmail-queue alone.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

N = int(os.environ.get("BENCH_MESSAGES", "2000"))
BIN = os.environ.get("SQ_BIN", os.path.join(os.path.dirname(__file__), "..", ".build", "release"))
BIN = os.path.abspath(BIN)
WORK = os.environ.get("BENCH_DIR", "/var/tmp")


def fsync_floor(base, count):
    """4-KiB files written + fsync'd (file and directory) per second."""
    d = os.path.join(base, "floor")
    os.mkdir(d)
    dfd = os.open(d, os.O_RDONLY)
    payload = b"x" * 4096
    t = time.perf_counter()
    for i in range(count):
        fd = os.open(os.path.join(d, str(i)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, payload)
        os.fsync(fd)
        os.close(fd)
        os.fsync(dfd)
    el = time.perf_counter() - t
    os.close(dfd)
    shutil.rmtree(d)
    return count / el


def queue_floor(base, count):
    """qmail-queue's own file operations without the exec: message file +
    fsync, its directory fsync, envelope + fsync, link into todo/, todo/
    fsync. The best any crash-safe qmail-queue can do on this disk."""
    dirs = {n: os.path.join(base, "qf", n) for n in ("mess", "intd", "todo")}
    for p in dirs.values():
        os.makedirs(p)
    fds = {n: os.open(p, os.O_RDONLY) for n, p in dirs.items()}
    payload = b"x" * 4096
    env = b"u0\0p1\0Fa@b\0Tc@d\0"
    t = time.perf_counter()
    for i in range(count):
        fd = os.open(os.path.join(dirs["mess"], str(i)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, payload); os.fsync(fd); os.close(fd)
        os.fsync(fds["mess"])
        fd = os.open(os.path.join(dirs["intd"], str(i)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, env); os.fsync(fd); os.close(fd)
        os.link(os.path.join(dirs["intd"], str(i)), os.path.join(dirs["todo"], str(i)))
        os.fsync(fds["todo"])
    el = time.perf_counter() - t
    for fd in fds.values():
        os.close(fd)
    shutil.rmtree(os.path.join(base, "qf"))
    return count / el


def exec_cost(argv, count, env):
    t = time.perf_counter()
    for _ in range(count):
        subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t) / count * 1000


def main():
    base = tempfile.mkdtemp(prefix="sq-bench-", dir=WORK)
    try:
        home = os.path.join(base, "qmail")
        subprocess.run([os.path.join(BIN, "qmail-setup"), "--single-user", home, "bench.example.com"],
                       check=True, stdout=subprocess.DEVNULL)
        env = dict(os.environ, QMAIL_HOME=home)
        body = b"Subject: bench\n\n" + (b"x" * 63 + b"\n") * 64  # about 4 KiB

        floor1 = fsync_floor(base, min(N, 1000))
        floor4 = queue_floor(base, min(N, 1000))
        true_ms = exec_cost(["/bin/true"], 300, env)
        qq_ms = exec_cost([os.path.join(home, "bin", "qmail-queue")], 300, dict(env, QMAIL_HOME="/nonexistent"))

        # qmail-queue alone
        msgf = os.path.join(base, "msg")
        envf = os.path.join(base, "env")
        open(msgf, "wb").write(body)
        open(envf, "wb").write(b"Fbench@bench.example.com\0Tuser@example.net\0\0")
        qq = os.path.join(home, "bin", "qmail-queue")
        t = time.perf_counter()
        for _ in range(N):
            with open(msgf, "rb") as m, open(envf, "rb") as e:
                r = subprocess.run([qq], stdin=m, stdout=e, env=env)
                assert r.returncode == 0
        qq_rate = N / (time.perf_counter() - t)

        inject = os.path.join(home, "bin", "qmail-inject")
        inj_rate = None
        if os.path.exists(inject):
            t = time.perf_counter()
            for _ in range(N):
                r = subprocess.run([inject, "-f", "bench@bench.example.com", "user@example.net"], input=body, env=env)
                assert r.returncode == 0
            inj_rate = N / (time.perf_counter() - t)

        print(f"messages: {N} x {len(body)} bytes, queue on {WORK}")
        print(f"fsync floor (4-KiB file, file+dir fsync):   {floor1:8.0f} files/s")
        print(f"queue floor (qmail-queue's file ops, no exec): {floor4:6.0f} msg/s")
        print(f"exec /bin/true:                             {true_ms:8.2f} ms")
        print(f"exec qmail-queue (exits at once):           {qq_ms:8.2f} ms")
        print(f"qmail-queue alone:                          {qq_rate:8.0f} msg/s  ({qq_rate / floor4:.2f} of the queue floor)")
        if inj_rate:
            print(f"qmail-inject -> qmail-queue:                {inj_rate:8.0f} msg/s  ({inj_rate / floor4:.2f} of the queue floor)")
        else:
            print("qmail-inject not built: skipped")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
