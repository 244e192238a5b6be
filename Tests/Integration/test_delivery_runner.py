"""qmail-local -W driven directly over its socket, as qmail-lspawn drives
it: each request is qmail-local's eight operands with the message, the
report pipe and the status pipe attached. The worker hands requests to
runners, processes forked from it that run deliveries one after another.
The Maildir names ("time.pid_seq.host") say which process delivered."""
import collections
import os
import pathlib
import socket
import subprocess
import tempfile
import time

import pytest


class Worker:
    def __init__(self, qhome, tmp_path, dot_qmail):
        self.home = tmp_path / "user"
        (self.home / "Maildir").mkdir(parents=True)
        for sub in ("tmp", "new", "cur"):
            (self.home / "Maildir" / sub).mkdir()
        (self.home / ".qmail").write_text(dot_qmail)
        os.chmod(self.home, 0o755)
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.proc = subprocess.Popen([qhome.bin("qmail-local"), "-W"], stdin=theirs, stdout=subprocess.DEVNULL,
                                     env=qhome.env)
        theirs.close()

    def request(self, operands=None):
        """Sends one delivery; returns the read ends of its report and
        status pipes."""
        if operands is None:
            operands = ["user", str(self.home), "user", "", "", "example.org", "s@example.net", "./Maildir/\n"]
        with tempfile.TemporaryFile() as m:
            m.write(b"Subject: runner\n\nhello\n")
            m.seek(0)
            out_r, out_w = os.pipe()
            st_r, st_w = os.pipe()
            socket.send_fds(self.sock, [b"".join(o.encode() + b"\0" for o in operands)], [m.fileno(), out_w, st_w])
            os.close(out_w)
            os.close(st_w)
        return out_r, st_r

    @staticmethod
    def result(pipes):
        """The exit code byte (None when the status pipe closed without
        one) and the report."""
        out_r, st_r = pipes
        status = os.read(st_r, 1)
        os.close(st_r)
        report = b""
        while chunk := os.read(out_r, 4096):
            report += chunk
        os.close(out_r)
        return (status[0] if status else None), report

    def deliver(self, operands=None):
        return self.result(self.request(operands))

    def pids(self):
        """How many delivered files each process wrote, by pid."""
        return collections.Counter(int(p.name.split(".")[1].split("_")[0]) for p in (self.home / "Maildir" / "new").iterdir())

    def close(self):
        self.sock.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def worker(qhome, tmp_path):
    made = []

    def make(dot_qmail="./Maildir/\n"):
        w = Worker(qhome, tmp_path, dot_qmail)
        made.append(w)
        return w
    yield make
    for w in made:
        if w.proc.poll() is None:
            w.close()


def test_a_runner_serves_a_thousand_deliveries_then_another_takes_over(worker):
    """One runner delivers the first thousand messages in turn (one pid in
    every file name, no fork per delivery), then exits; the next message
    goes to a new runner, with no failure in between."""
    w = worker()
    for k in range(1001):
        status, report = w.deliver()
        assert (status, report) == (0, b"did 1+0+0\n"), (k, status, report)
    counts = w.pids()
    assert sorted(counts.values()) == [1, 1000], counts
    assert w.proc.pid not in counts  # runners, not the worker


def test_deliveries_at_once_get_runners_of_their_own(worker):
    """Deliveries sent while others run are not queued behind them: each
    gets a runner (a new one while none is idle), and all succeed."""
    w = worker("|sleep 1\n./Maildir/\n")
    pending = [w.request() for _ in range(4)]
    results = [Worker.result(p) for p in pending]
    assert results == [(0, b"did 1+0+1\n")] * 4
    assert sorted(w.pids().values()) == [1, 1, 1, 1]


def test_a_request_that_is_not_whole_fails_alone(worker):
    """A request without qmail-local's eight operands closes its status
    pipe unwritten (a temporary failure for qmail-lspawn); the worker and
    its runners go on serving the next one."""
    w = worker()
    assert w.deliver() == (0, b"did 1+0+0\n")
    assert w.deliver(["user", "/tmp"]) == (None, b"")
    assert w.deliver() == (0, b"did 1+0+0\n")
    assert list(w.pids().values()) == [2]


def test_runners_end_with_their_worker(worker):
    """End of file from qmail-lspawn ends the worker, and its runners with
    it: nothing is left running."""
    w = worker()
    for _ in range(3):
        assert w.deliver()[0] == 0
    [runner] = w.pids()
    assert pathlib.Path(f"/proc/{runner}").exists()
    w.close()
    assert w.proc.returncode == 0
    for _ in range(100):
        if not pathlib.Path(f"/proc/{runner}").exists():
            break
        time.sleep(0.05)
    assert not pathlib.Path(f"/proc/{runner}").exists(), "the runner outlives its worker"
