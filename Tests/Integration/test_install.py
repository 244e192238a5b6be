"""HOME/bin as qmail-setup installs it: a few multi-call files (Package.swift's
`programs`, QmailCore/MultiCall.swift), each once, under every program's
name; the setuid and root-run programs in files of their own."""
import os
import pathlib
import shutil
import signal
import subprocess

import pytest

from conftest import bin_dir, make_home

SETUID = {"qmail-queue", "qmail-srs"}
# run as root on behalf of others (a message, a login, a connection)
ROOT_RUN = {"qmail-start", "qmail-lspawn", "qmail-getpw", "qmail-smtpd-auth", "tcpserver",
            "checkpassword", "checkpassword-file", "checkpassword-ldap", "checkpassword-mysql"}



def files(bindir):
    """inode -> the program names that are that file."""
    out = {}
    for p in sorted(pathlib.Path(bindir).iterdir()):
        st = p.stat()
        out.setdefault((st.st_dev, st.st_ino), []).append(p.name)
    return out


def size(bindir):
    """Bytes, each file once (as du counts hard links)."""
    return sum(os.stat(os.path.join(bindir, names[0])).st_size for names in files(bindir).values())


def copied_home(tmp_path):
    """A home made by copying the programs, as an installation is."""
    home = tmp_path / "copied"
    r = subprocess.run([str(bin_dir() / "qmail-setup"), "--single-user", str(home), "copy.example"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return home


def test_home_bin_is_at_most_60_mb(qhome, tmp_path):
    if bin_dir().name != "release":
        pytest.skip("sizes are those of release builds")
    for bindir in (qhome.path / "bin", copied_home(tmp_path) / "bin"):
        assert size(bindir) <= 60_000_000, f"{bindir}: {size(bindir) / 1e6:.1f} MB"
        assert len(files(bindir)) <= 7, files(bindir)
    # ... in a copied home, too, each program name is a hard link to one copy
    names = files(tmp_path / "copied" / "bin")
    assert sum(len(v) for v in names.values()) == len([p for p in (tmp_path / "copied" / "bin").iterdir()])


def test_setuid_and_root_run_programs_have_files_of_their_own(qhome, tmp_path):
    for bindir in (qhome.path / "bin", copied_home(tmp_path) / "bin"):
        for names in files(bindir).values():
            held = set(names)
            if held & SETUID:
                assert len(held) == 1, held
            if held & ROOT_RUN:
                assert held <= ROOT_RUN, f"root-run {held & ROOT_RUN} share a file with {held - ROOT_RUN}"
    # A root-run file holds no other program: under another name it refuses.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for prog, other in (("checkpassword", "qmail-smtpd"), ("qmail-lspawn", "vadduser"),
                        ("checkpassword-ldap", "vdelivermail-ldap")):
        if not os.path.exists(qhome.bin(prog)):
            continue
        shutil.copyfile(qhome.bin(prog), elsewhere / other)
        (elsewhere / other).chmod(0o755)
        r = subprocess.run([str(elsewhere / other)], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 100 and b"unknown program name " + other.encode() in r.stderr, (prog, r)


def test_qmail_queue_links_no_backend_and_no_openssl(qhome):
    """DESIGN.md's linking rule, on the installed file: fully static (no
    dynamic loader to bring in libraries), and none of OpenSSL's, the LDAP
    client's or MariaDB's code."""
    data = pathlib.Path(qhome.bin("qmail-queue")).read_bytes()
    if bin_dir().name == "release":
        assert not has_interpreter(data)
    for mark in (b"OpenSSL", b"libldap", b"ldap_sasl", b"MariaDB", b"mysql_real_connect"):
        assert mark not in data, mark


def has_interpreter(elf: bytes) -> bool:
    """True if a 64-bit ELF file names a dynamic loader (PT_INTERP)."""
    phoff = int.from_bytes(elf[0x20:0x28], "little")
    size, count = int.from_bytes(elf[0x36:0x38], "little"), int.from_bytes(elf[0x38:0x3a], "little")
    return any(int.from_bytes(elf[phoff + i * size:phoff + i * size + 4], "little") == 3 for i in range(count))


# Run per message or per session, and needing neither NSS nor OpenSSL: a
# dynamic loader would cost each exec about 1.3 ms of CPU (2.4 with OpenSSL).
# qmail-pop3d speaks no TLS (qmail-popup relays STLS for it).
FULLY_STATIC = ("qmail-pop3d", "qmail-local", "vdelivermail", "preline", "rblsmtpd", "tcp-env")


@pytest.mark.parametrize("prog", FULLY_STATIC)
def test_per_session_programs_without_nss_or_tls_are_fully_static(qhome, prog):
    if bin_dir().name != "release":
        pytest.skip("debug builds link dynamically")
    assert not has_interpreter(pathlib.Path(qhome.bin(prog)).read_bytes()), prog


def test_no_file_loads_the_cxx_runtime_or_openssl_at_exec(qhome):
    """The files that load shared C libraries (NSS, libcrypt, the LDAP and
    MariaDB clients) link the C++ runtime under the Swift runtime in, and
    name no OpenSSL library: it is loaded when a program first uses it (or
    by a client library that needs it). Loading them cost each exec about
    1.7 ms."""
    if bin_dir().name != "release":
        pytest.skip("debug builds link dynamically")
    for names in files(qhome.path / "bin").values():
        r = subprocess.run(["readelf", "-d", str(qhome.path / "bin" / names[0])], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        needed = [l.split("[")[1].rstrip("]") for l in r.stdout.splitlines() if "(NEEDED)" in l]
        assert not [n for n in needed if n.startswith(("libstdc++", "libgcc_s", "libssl", "libcrypto"))], (names[0], needed)


def test_every_program_runs_from_home_bin(qhome, tmp_path):
    """Each name in HOME/bin runs its own program (the multi-call files know
    every name qmail-setup installs): without arguments each answers with
    its usage, or runs, but none says it is unknown."""
    work = tmp_path / "work"
    work.mkdir()
    for prog in sorted(os.listdir(qhome.path / "bin")):
        if prog in ("qmail-start", "qmail-send", "qmail-setup", "qmailctl", "qmail-webadmin"):
            continue   # daemons and home-changing tools: run by test_send, test_setup, test_ops, test_webadmin
        p = subprocess.Popen([qhome.bin(prog)], cwd=work, env=qhome.env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            _, err = p.communicate()
            continue   # a server waiting for its peer: it ran
        assert b"unknown program name" not in err, (prog, err)
        assert p.returncode >= 0, (prog, p.returncode, err)


def test_build_dir_names_every_program(bindir):
    """scripts/link-programs.sh names every program of the multi-call files
    in the build directory, as links that follow a rebuild."""
    for f in bindir.glob("swift-qmail*"):
        if not f.is_file():
            continue
        names = subprocess.run([str(f), "--list"], capture_output=True, text=True, check=True).stdout.split()
        assert names
        for n in names:
            assert (bindir / n).resolve() == f.resolve(), n
