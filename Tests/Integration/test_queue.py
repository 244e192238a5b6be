"""qmail-queue, run as a program: queue layout, envelope, exit codes,
durability rules and failure cleanup."""
import os
import re
import shutil
import stat
import subprocess
import tempfile

import pytest

from conftest import make_home


def queue(home, message: bytes, envelope: bytes, env=None, stdin=None):
    """Runs qmail-queue with the message on fd 0 and the envelope on fd 1."""
    with tempfile.TemporaryFile() as m, tempfile.TemporaryFile() as e:
        m.write(message); m.seek(0)
        e.write(envelope); e.seek(0)
        e_env = dict(home.env)
        if env:
            e_env.update(env)
        p = subprocess.run([home.bin("qmail-queue")], stdin=stdin if stdin is not None else m,
                           stdout=e, stderr=subprocess.PIPE, env=e_env, timeout=30)
        return p.returncode


def leftovers(home):
    return {sub: home.queue_files(sub) for sub in ("pid", "mess", "intd", "todo")}


def assert_queue_empty(home):
    left = leftovers(home)
    assert all(not v for v in left.values()), left


def test_message_and_envelope_land_as_qmail_writes_them(qhome):
    rc = queue(qhome, b"Subject: hi\n\nbody\n", b"Fme@example.org\0Tyou@example.net\0Tthem@example.com\0\0")
    assert rc == 0
    todo = qhome.queue_files("todo")
    assert len(todo) == 1
    num = int(todo[0].name)
    mess = qhome.path / "queue" / "mess" / str(num % 23) / str(num)
    data = mess.read_bytes()
    first, rest = data.split(b"\n", 1)
    assert re.fullmatch(rb"Received: \(qmail \d+ invoked by uid %d\); \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d -0000"
                        % os.getuid(), first), first
    assert rest == b"Subject: hi\n\nbody\n"
    env = todo[0].read_bytes()
    assert re.fullmatch(rb"u%d\0p\d+\0Fme@example.org\0Tyou@example.net\0Tthem@example.com\0" % os.getuid(), env), env
    # intd/N is the same inode, todo/N is the link qmail-send looks for
    assert (qhome.path / "queue" / "intd" / str(num)).stat().st_ino == todo[0].stat().st_ino
    assert mess.stat().st_ino == num  # the message number is the inode of its file
    assert not qhome.queue_files("pid")


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
def test_message_envelope_and_name_are_fsynced_before_the_todo_link(qhome, tmp_path):
    """The durability order: the message file, its directory entry in mess/
    and the envelope are each fsync'd (side by side, possibly from several
    threads) and all of those fsyncs have returned before intd/N is linked
    into todo/; todo/ is fsync'd after the link, before the exit."""
    trace = tmp_path / "trace"
    with tempfile.TemporaryFile() as m, tempfile.TemporaryFile() as e:
        m.write(b"Subject: order\n\nbody\n"); m.seek(0)
        e.write(b"Fme@example.org\0Tyou@example.net\0\0"); e.seek(0)
        p = subprocess.run(["strace", "-f", "-qq", "-y", "-o", str(trace), "-e", "trace=fsync,link",
                            qhome.bin("qmail-queue")], stdin=m, stdout=e, stderr=subprocess.PIPE,
                           env=qhome.env, timeout=30)
    assert p.returncode == 0, p.stderr
    num = int(qhome.queue_files("todo")[0].name)
    q = str(qhome.path / "queue")
    mess_dir, mess, intd = f"{q}/mess/{num % 23}", f"{q}/mess/{num % 23}/{num}", f"{q}/intd/{num}"
    events = []      # ("fsync", path) when one returned 0; ("link", target); ("todo-fsync",)
    pending = {}     # tid -> path of an fsync strace printed in two parts
    names = {}       # pid/... -> the mess/... it was linked to
    for ln in trace.read_text().splitlines():
        tid, rest = ln.split(None, 1)
        m = re.search(r"fsync\(\d+<([^>]*)>(?:\(deleted\))?(?: <unfinished|\) += (-?\d+))", rest)
        if m and "unfinished" in rest:
            pending[tid] = m.group(1)
            continue
        if m:
            path, rc = m.group(1), m.group(2)
        elif "<... fsync resumed>" in rest:
            path, rc = pending.pop(tid), re.search(r"= (-?\d+)", rest).group(1)
        elif rest.startswith("link("):
            src, dst = re.search(r'link\("([^"]*)", "([^"]*)"\)', rest).groups()
            if dst.startswith("mess/"):
                # the message file is written through its first name, pid/...
                names[f"{q}/{src}"] = f"{q}/{dst}"
            events.append(("link", dst))
            continue
        else:
            continue
        assert rc == "0", ln
        events.append(("fsync", names.get(path, path)))
    link = next(i for i, ev in enumerate(events) if ev == ("link", f"todo/{num}"))
    before = {path for kind, path in events[:link] if kind == "fsync"}
    assert {mess_dir, mess, intd} <= before, events
    assert ("fsync", f"{q}/todo") in events[link + 1:], events


@pytest.mark.skipif(not (shutil.which("strace") and shutil.which("softlimit")), reason="needs strace and softlimit")
def test_fsync_helpers_start_under_the_run_scripts_softlimit(qhome, tmp_path):
    """contrib's qmail-smtpd run script starts it under softlimit -m 64000000,
    which also sets RLIMIT_STACK, glibc's default thread stack size: a
    helper thread with that stack does not fit in the address space limit.
    qmail-queue's fsync helpers ask for a small stack, so they start."""
    trace = tmp_path / "trace"
    with tempfile.TemporaryFile() as m, tempfile.TemporaryFile() as e:
        m.write(b"Subject: limits\n\nbody\n"); m.seek(0)
        e.write(b"Fme@example.org\0Tyou@example.net\0\0"); e.seek(0)
        p = subprocess.run(["softlimit", "-m", "64000000", "strace", "-f", "-qq", "-o", str(trace),
                            "-e", "trace=clone,clone3", qhome.bin("qmail-queue")],
                           stdin=m, stdout=e, stderr=subprocess.PIPE, env=qhome.env, timeout=30)
    assert p.returncode == 0, p.stderr
    assert len(qhome.queue_files("todo")) == 1
    started = [ln for ln in trace.read_text().splitlines() if "CLONE_THREAD" in ln and "= -1" not in ln]
    assert len(started) == 2, trace.read_text()


def test_empty_sender_and_no_recipients_are_accepted(qhome):
    assert queue(qhome, b"x\n", b"F\0\0") == 0
    assert qhome.queue_files("todo")[0].read_bytes().endswith(b"\0F\0")


def test_binary_message_is_copied_byte_for_byte(qhome):
    body = bytes(range(256)) * 4096 + b"\r\n.\r\nno final newline"
    assert queue(qhome, body, b"Fa@b\0Tc@d\0\0") == 0
    num = int(qhome.queue_files("todo")[0].name)
    data = (qhome.path / "queue" / "mess" / str(num % 23) / str(num)).read_bytes()
    assert data.split(b"\n", 1)[1] == body


@pytest.mark.parametrize("envelope,code", [
    (b"", 54),                              # nothing at all
    (b"Fme@x\0Tyou@y\0", 54),               # no final NUL: truncated
    (b"Fme@x", 54),                         # truncated sender
    (b"Xme@x\0\0", 91),                     # not F
    (b"Fme@x\0Zyou@y\0\0", 91),             # not T
    (b"F" + b"a" * 1100 + b"\0\0", 11),     # sender over the limit
    (b"Fme@x\0T" + b"b" * 1003 + b"\0\0", 11),
])
def test_bad_envelopes_give_the_documented_code_and_leave_nothing(qhome, envelope, code):
    assert queue(qhome, b"Subject: x\n\nbody\n", envelope) == code
    assert_queue_empty(qhome)


def test_longest_allowed_address_is_accepted(qhome):
    assert queue(qhome, b"x\n", b"F" + b"a" * 1002 + b"\0T" + b"b" * 1002 + b"\0\0") == 0


def test_unreadable_message_is_54_and_leaves_nothing(qhome, tmp_path):
    d = os.open(str(tmp_path), os.O_RDONLY)  # a directory: read() fails with EISDIR
    try:
        assert queue(qhome, b"", b"Fa@b\0Tc@d\0\0", stdin=d) == 54
    finally:
        os.close(d)
    assert_queue_empty(qhome)


def test_missing_home_and_queue(qhome, tmp_path):
    assert queue(qhome, b"x\n", b"Fa\0\0", env={"QMAIL_HOME": str(tmp_path / "nonexistent")}) == 61
    (tmp_path / "empty").mkdir()
    assert queue(qhome, b"x\n", b"Fa\0\0", env={"QMAIL_HOME": str(tmp_path / "empty")}) == 62


def test_trigger_is_pulled(qhome):
    fifo = qhome.path / "queue" / "lock" / "trigger"
    fd = os.open(str(fifo), os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert queue(qhome, b"x\n", b"Fa@b\0Tc@d\0\0") == 0
        assert os.read(fd, 10) == b"\0"
    finally:
        os.close(fd)


def test_qstat_and_qread_report_queued_messages(qhome):
    for i in range(3):
        assert queue(qhome, b"Subject: %d\n\nbody\n" % i, b"Fsender%d@example.org\0Trcpt%d@example.net\0\0" % (i, i)) == 0
    r = qhome.run("qmail-qstat")
    assert r.returncode == 0
    assert r.stdout == b"messages in queue: 3\nmessages in queue but not yet preprocessed: 3\n"
    r = qhome.run("qmail-qread")
    assert r.returncode == 0
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 6
    for i in range(3):
        assert re.search(r"  #\d+  \d+  <sender%d@example.org> $" % i, "\n".join(lines), re.M)
        assert "\ttodo\trcpt%d@example.net" % i in lines


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs")
def test_full_disk_gives_53_and_leaves_nothing(tmp_path):
    home = make_home(tmp_path)
    mnt = home.path / "queue"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    try:
        make_home(tmp_path)  # lays the queue out again, inside the small tmpfs
        free = os.statvfs(str(mnt))
        big = b"X" * 75 + b"\n"
        message = big * ((free.f_bavail * free.f_frsize) // len(big) + 1000)
        assert queue(home, message, b"Fa@b\0Tc@d\0\0") == 53
        assert_queue_empty(home)
        # and once there is room again, the queue works
        assert queue(home, b"small\n", b"Fa@b\0Tc@d\0\0") == 0
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


# Session mode (qmail-queue --session): the queue program qmail-smtpd keeps
# for a whole connection. Frames on fd 0 ("M"/"E" + 32-bit length), one
# status byte per message on fd 1.

def frame(tag: bytes, data: bytes) -> bytes:
    return tag + len(data).to_bytes(4, "big") + data


def session(home, frames: bytes, timeout=30):
    """Runs qmail-queue --session on `frames`; returns (status bytes, exit code)."""
    p = subprocess.run([home.bin("qmail-queue"), "--session"], input=frames, capture_output=True,
                       env=home.env, timeout=timeout)
    return p.stdout, p.returncode


def queued(home):
    """{envelope: message without the Received line} for everything in todo/."""
    out = {}
    for t in home.queue_files("todo"):
        num = int(t.name)
        data = (home.path / "queue" / "mess" / str(num % 23) / str(num)).read_bytes()
        out[t.read_bytes().split(b"\0", 2)[2]] = data.split(b"\n", 1)[1]
    return out


def test_session_queues_each_message_as_the_one_message_mode_does(qhome):
    big = bytes(range(256)) * 1024  # spans several frames on the reader's side
    frames = (frame(b"M", b"Subject: one\n\n") + frame(b"M", b"body 1\n") + frame(b"E", b"Fa@x\0Tb@y\0\0")
              + frame(b"M", big) + frame(b"E", b"F\0Tc@y\0Td@y\0\0")
              + frame(b"E", b"Fe@x\0Tf@y\0\0"))  # an empty message
    status, rc = session(qhome, frames)
    assert (status, rc) == (b"\0\0\0", 0)
    assert queued(qhome) == {b"Fa@x\0Tb@y\0": b"Subject: one\n\nbody 1\n",
                             b"F\0Tc@y\0Td@y\0": big,
                             b"Fe@x\0Tf@y\0": b""}
    for t in qhome.queue_files("todo"):
        num = int(t.name)
        first = (qhome.path / "queue" / "mess" / str(num % 23) / str(num)).read_bytes().split(b"\n", 1)[0]
        assert re.fullmatch(rb"Received: \(qmail \d+ invoked by uid \d+\); .* -0000", first), first
    assert not qhome.queue_files("pid")


def test_session_input_ending_mid_message_queues_only_the_finished_ones(qhome):
    done = frame(b"M", b"Subject: ok\n\nok\n") + frame(b"E", b"Fa@x\0Tb@y\0\0")
    for cut in (frame(b"M", b"Subject: half\n\n")[:9],           # inside a frame
                frame(b"M", b"Subject: half\n\n"),               # between frames, no envelope
                frame(b"M", b"x\n") + frame(b"E", b"Fa@x\0Tb@y\0\0")[:8]):  # inside the envelope
        status, rc = session(qhome, done + cut)
        assert status == b"\0\x36" and rc == 54, (cut, status, rc)  # 0 for the first, 54 for the cut one
    assert len(qhome.queue_files("todo")) == 3
    assert len(qhome.queue_files("intd")) == 3 and not qhome.queue_files("pid")
    mess = [p for p in (qhome.path / "queue" / "mess").rglob("*") if p.is_file()]
    assert len(mess) == 3  # nothing half-written left behind


@pytest.mark.parametrize("bad,code", [
    (frame(b"E", b"Xme@x\0\0"), 91),                        # envelope not starting with F
    (frame(b"E", b"Fa@x\0T" + b"b" * 1003 + b"\0\0"), 11),   # recipient over the limit
    (frame(b"E", b"Fa@x\0Tb@y\0"), 54),                     # envelope without its final NUL
    (b"Z\0\0\0\1x", 54),                                      # unknown frame tag
    (b"E\xff\xff\xff\xff", 54),                              # absurd envelope length
])
def test_session_failure_reports_the_code_queues_nothing_and_ends(qhome, bad, code):
    after = frame(b"M", b"never read\n") + frame(b"E", b"Fa@x\0Tb@y\0\0")
    status, rc = session(qhome, frame(b"M", b"Subject: bad\n\n") + bad + after)
    assert rc == code
    assert status in (bytes([code]), b"")
    assert_queue_empty(qhome)


def test_session_with_no_messages_exits_zero(qhome):
    assert session(qhome, b"") == (b"", 0)
    assert_queue_empty(qhome)
