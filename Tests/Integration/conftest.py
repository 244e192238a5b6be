"""Shared fixtures for the integration tests.

These tests run the built programs (never the library directly). SQ_BIN
names the directory holding them (default: .build/release if it exists, else
.build/debug). Each test gets its own qmail home made by qmail-setup.
"""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def bin_dir() -> pathlib.Path:
    env = os.environ.get("SQ_BIN")
    if env:
        return pathlib.Path(env).resolve()
    rel = ROOT / ".build" / "release"
    if (rel / "qmail-queue").exists():
        return rel
    return ROOT / ".build" / "debug"


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

    def queue_files(self, sub: str):
        base = self.path / "queue" / sub
        return sorted(p for p in base.rglob("*") if p.is_file())


def make_home(tmp: pathlib.Path, fqdn: str = "test.example.com", extra=()) -> QmailHome:
    home = tmp / "qmail"
    # --link: hard links instead of copies, so hundreds of homes cost no disk
    r = subprocess.run([str(bin_dir() / "qmail-setup"), "--single-user", "--link", *extra, str(home), fqdn],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    return QmailHome(home, fqdn)


@pytest.fixture
def bindir() -> pathlib.Path:
    return bin_dir()


@pytest.fixture
def qhome(tmp_path) -> QmailHome:
    return make_home(tmp_path)
