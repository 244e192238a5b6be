"""Shared fixtures for the integration tests.

These tests run the built programs (never the library directly). SQ_BIN
names the directory holding them (default: .build/release if it exists, else
.build/debug). Each test gets its own qmail home made by qmail-setup.
"""
import contextlib
import os
import pathlib
import signal
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def bin_dir() -> pathlib.Path:
    env = os.environ.get("SQ_BIN")
    if env:
        return named_programs(pathlib.Path(env).resolve())
    rel = ROOT / ".build" / "release"
    if (rel / "qmail-queue").exists():
        return named_programs(rel)
    return named_programs(ROOT / ".build" / "debug")


_named = set()


def named_programs(d: pathlib.Path) -> pathlib.Path:
    """A build directory holds the multi-call files (swift-qmail*) and,
    once scripts/link-programs.sh has run, every program's name; run it
    once per test session in case `swift build` alone made the directory."""
    if d not in _named:
        _named.add(d)
        if (d / "swift-qmail").is_file():
            subprocess.run([str(ROOT / "scripts" / "link-programs.sh"), str(d)], check=True, timeout=60)
    return d


class QmailHome:
    """A qmail home made by qmail-setup in single-user mode."""

    def __init__(self, path: pathlib.Path, fqdn: str):
        self.path = path
        self.fqdn = fqdn
        self.env = dict(os.environ)
        self.env["QMAIL_HOME"] = str(path)
        for var in ("QMAILQUEUE", "QMAILINJECT", "QMAILHOST", "QMAILUSER", "QMAILNAME",
                    "MAILHOST", "MAILUSER", "MAILNAME", "NAME", "QMAILSUSER", "QMAILSHOST"):
            self.env.pop(var, None)

    def bin(self, name: str) -> str:
        return str(self.path / "bin" / name)

    def control(self, name: str, value=None):
        p = self.path / "control" / name
        if value is None:
            return p.read_text()
        p.write_text(value)

    def run(self, prog: str, *args, input=None, env=None, check=False, timeout=60, **kw):
        e = dict(self.env)
        if env:
            e.update(env)
        if isinstance(input, str):
            input = input.encode()
        return subprocess.run([self.bin(prog), *map(str, args)], input=input, env=e,
                              capture_output=True, check=check, timeout=timeout, **kw)

    def enqueue(self, message: bytes, sender: str, recipients):
        """Hands message to HOME/bin/qmail-queue with qmail-queue's envelope
        (F sender, T each recipient); asserts it was accepted."""
        import tempfile
        with tempfile.TemporaryFile() as m, tempfile.TemporaryFile() as e:
            m.write(message); m.seek(0)
            e.write(f"F{sender}\0".encode() + b"".join(b"T" + r.encode() + b"\0" for r in recipients) + b"\0")
            e.seek(0)
            r = subprocess.run([self.bin("qmail-queue")], stdin=m, stdout=e, env=self.env, timeout=30)
            assert r.returncode == 0, r.returncode

    def queue_files(self, sub: str):
        base = self.path / "queue" / sub
        return sorted(p for p in base.rglob("*") if p.is_file())



# pytest-rerunfailures (scripts/test.sh) reports a test that passed on its
# rerun as one RERUN line, without why the first try failed; every flake
# must be found, so that reason goes to the terminal (the CI log) too.
_terminal = []


def pytest_sessionstart(session):
    _terminal[:] = [session.config.pluginmanager.get_plugin("terminalreporter")]


def pytest_runtest_logreport(report):
    if report.outcome == "rerun" and _terminal and _terminal[0] is not None:
        tr = _terminal[0]
        tr.write_line("")
        tr.write_sep("-", f"first try of {report.nodeid} failed ({report.when})")
        for line in report.longreprtext.splitlines()[-60:]:
            tr.write_line(line)


def wait_for(cond, timeout=30.0, what="condition", step=0.05):
    """cond()'s first true value, polled every step seconds; an
    AssertionError naming what after timeout seconds (a callable what is
    called then, so that it can show a log as it is at the end)."""
    import time
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")

@contextlib.contextmanager
def qmail_send_running(qhome):
    """HOME/rc (qmail-start, qmail-send and its helpers) running until the
    block ends, its log in HOME/send.log; yields a function that reads it."""
    log = open(qhome.path / "send.log", "wb")
    proc = subprocess.Popen([str(qhome.path / "rc")], cwd="/", stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, env=qhome.env)
    def logtext():
        return (qhome.path / "send.log").read_text(errors="replace")
    logtext.pid = proc.pid  # rc execs qmail-send: signals to it reach qmail-send
    try:
        wait_for(lambda: "status: local" in logtext(), 20, "qmail-send to start")
        yield logtext
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()

def make_home(tmp: pathlib.Path, fqdn: str = "test.example.com", extra=()) -> QmailHome:
    home = tmp / "qmail"
    # --link: hard links instead of copies, so hundreds of homes cost no disk
    r = subprocess.run([str(bin_dir() / "qmail-setup"), "--single-user", "--link", *extra, str(home), fqdn],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    # Tests ask no DNS unless they mean to: a new home's sender checks
    # (control/authpolicy, "annotate") are off here, as on an upgraded site.
    (home / "control" / "authpolicy").unlink(missing_ok=True)
    return QmailHome(home, fqdn)


@pytest.fixture
def bindir() -> pathlib.Path:
    return bin_dir()


@pytest.fixture
def qhome(tmp_path) -> QmailHome:
    return make_home(tmp_path)


QMAIL_USERS = ("alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails")
QMAIL_GROUPS = ("qmail", "nofiles")


class QmailAccounts:
    """qmail's system accounts around a multi-user qmail-setup: remembers
    which existed (and their homes) and, on restore(), removes the accounts
    and groups created since and gives the old ones their homes back, so a
    test run leaves no account pointing at a deleted directory."""

    def __init__(self):
        import grp
        import pwd
        self.users = {}
        for u in QMAIL_USERS:
            try:
                self.users[u] = pwd.getpwnam(u).pw_dir
            except KeyError:
                pass
        self.groups = set()
        for g in QMAIL_GROUPS:
            try:
                grp.getgrnam(g)
                self.groups.add(g)
            except KeyError:
                pass

    def live_home(self):
        """The directory of an installation that owns the accounts now, if any."""
        for u, h in self.users.items():
            if os.path.isdir(h):
                return h
        return None

    def restore(self):
        import grp
        import pwd
        for u in QMAIL_USERS:
            try:
                now = pwd.getpwnam(u).pw_dir
            except KeyError:
                continue
            if u not in self.users:
                subprocess.run(["userdel", u], capture_output=True)
            elif now != self.users[u]:
                subprocess.run(["usermod", "-d", self.users[u], u], capture_output=True)
        for g in QMAIL_GROUPS:
            if g not in self.groups:
                try:
                    grp.getgrnam(g)
                except KeyError:
                    continue
                subprocess.run(["groupdel", g], capture_output=True)


@pytest.fixture
def qmail_accounts():
    """For tests that run qmail-setup as root without --single-user."""
    if os.geteuid() != 0:
        pytest.skip("multi-user mode needs root")
    a = QmailAccounts()
    if a.live_home():
        pytest.skip(f"qmail's accounts belong to the installation at {a.live_home()}")
    yield a
    a.restore()
