"""Man pages: qmail-setup installs one for every program it installs, and
each renders cleanly (groff with all warnings on, and man -l)."""
import os
import re
import pathlib
import shutil
import subprocess

import pytest

from conftest import ROOT

# Programs allowed to lack a page, with the reason. There should be none.
MISSING_OK: dict = {}

SECTIONS = ("1", "5", "7", "8")


def pages(home: pathlib.Path):
    return sorted((home / "man").glob("man[1-8]/*.[1-8]"))


def test_every_program_has_a_page(qhome):
    names = {p.name.rsplit(".", 1)[0] for p in pages(qhome.path)}
    progs = sorted(p.name for p in (qhome.path / "bin").iterdir())
    assert progs, "no programs installed"
    missing = [p for p in progs if p not in names and p not in MISSING_OK]
    assert missing == [], f"programs without a man page: {missing}"


def test_pages_are_installed_by_section_with_mode_0644(qhome):
    got = pages(qhome.path)
    src = sorted(p.name for p in (ROOT / "docs" / "man").glob("*.[1-8]"))
    assert sorted(p.name for p in got) == src
    for p in got:
        assert p.parent.name == "man" + p.suffix[1:], p
        assert p.stat().st_mode & 0o777 == 0o644, p
    for name in ("dot-qmail.5", "qmail-control.5", "qmail-users.5", "qmail-header.5",
                 "qmail-log.5", "swift-qmail.7"):
        assert name in src


def test_setup_without_man_pages_skips_them(tmp_path, bindir):
    empty = tmp_path / "noman"
    empty.mkdir()
    home = tmp_path / "q"
    r = subprocess.run([str(bindir / "qmail-setup"), "--single-user", "--man", str(tmp_path / "absent"),
                        str(home), "test.example.com"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "skipped HOME/man" in r.stdout
    assert not list((home / "man").glob("man*"))


def _src_pages():
    return sorted((ROOT / "docs" / "man").glob("*.[1-8]"))


@pytest.mark.parametrize("page", _src_pages(), ids=lambda p: p.name)
def test_page_renders_without_warnings(page):
    if not shutil.which("groff"):
        pytest.skip("groff not installed (scripts/deps.sh test installs groff-base)")
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = page.read_text()
    name = page.stem
    assert text.startswith(".TH ") or "\n.TH " in text
    th = [l for l in text.splitlines() if l.startswith(".TH ")][0].split()
    assert th[1] == name and th[2] == page.suffix[1:], th
    for section in ("NAME", "DESCRIPTION", "SEE ALSO"):
        assert f".SH {section}" in text, f"{page.name}: no {section}"
    if page.suffix in (".1", ".8"):
        for section in ("SYNOPSIS", "EXIT CODES"):
            assert f".SH {section}" in text, f"{page.name}: no {section}"


@pytest.mark.parametrize("page", _src_pages(), ids=lambda p: p.name)
def test_man_l_renders_page(page):
    if not shutil.which("man"):
        pytest.skip("man not installed (scripts/deps.sh test installs man-db)")
    env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0", LC_ALL="C.UTF-8")
    r = subprocess.run(["man", "--warnings=w", "-l", str(page)], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr
    assert r.stdout, "man printed nothing"
    assert page.stem in r.stdout.splitlines()[0], r.stdout.splitlines()[0]


def test_every_program_built_here_has_a_page():
    # Without building: every program of Programs.swift whose sources are in
    # this tree has its page in docs/man.
    text = (ROOT / "Sources" / "QmailCore" / "Programs.swift").read_text()
    names = re.findall(r'e\("([^"]+)"', text)
    assert len(names) > 50
    have = {p.stem for p in (ROOT / "docs" / "man").glob("*.[18]")}
    missing = [n for n in names
               if ((ROOT / "Sources" / "Programs" / f"{n}.swift").exists() or (ROOT / "Sources" / n / "main.swift").exists())
               and n not in have and n not in MISSING_OK]
    assert missing == [], f"programs without a man page: {missing}"


def test_see_also_names_existing_pages():
    # Every cross-reference in sections 1, 5, 7, 8 is a page of ours
    # (system pages such as syslog(3) are in other sections).
    have = {(p.stem, p.suffix[1:]) for p in _src_pages()}
    names = {n for n, _ in have}
    bad = []
    for page in _src_pages():
        for name, sec in re.findall(r"^\.BR (\S+) \(([1578])\)", page.read_text(), re.M):
            if (name, sec) not in have:
                bad.append(f"{page.name}: {name}({sec})")
    assert bad == [], bad
