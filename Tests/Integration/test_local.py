"""Local delivery: qmail-local run as qmail-lspawn runs it, qmail-getpw,
qmail-newu/qmail-pw2u, and the .qmail helper programs.

qmail-local's interface: argv user homedir local dash ext domain sender
defaultdelivery, the message on a seekable stdin, a report on stdout/stderr,
exit 0 / 100 / 111.
"""
import os
import pathlib
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import uuid

import pytest

DOMAIN = "test.example.com"
MSG = b"Received: by x\nSubject: hello\n\nFrom the start\n>From quoted\nbody\n"


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "joe"
    h.mkdir(mode=0o755)
    os.chmod(h, 0o755)
    return h


def local(qhome, home, tmp_path, *, local="joe", dash="", ext="", sender="s@x.org",
          dd="./Maildir/", msg=MSG, flags=(), env=None, user="joe", **kw):
    """Runs qmail-local with the message on a seekable stdin."""
    mf = tmp_path / f"msg-{uuid.uuid4().hex}"
    mf.write_bytes(msg)
    with open(mf, "rb") as f:
        return qhome.run("qmail-local", *flags, user, str(home), local, dash, ext, DOMAIN, sender, dd,
                         stdin=f, env=env, **kw)


def maildirmake(qhome, path):
    r = qhome.run("maildirmake", str(path))
    assert r.returncode == 0, r.stderr
    return path


def new_messages(md):
    return sorted((md / "new").iterdir())


def qmail_file(home, name, text, mode=0o644):
    p = home / name
    p.write_text(text)
    os.chmod(p, mode)
    return p


# ---------------------------------------------------------------- file deliveries

def test_default_maildir_delivery(qhome, home, tmp_path):
    md = maildirmake(qhome, home / "Maildir")
    r = local(qhome, home, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"did 1+0+0\n"
    msgs = new_messages(md)
    assert len(msgs) == 1
    assert msgs[0].read_bytes() == b"Return-Path: <s@x.org>\nDelivered-To: joe@" + DOMAIN.encode() + b"\n" + MSG
    assert list((md / "tmp").iterdir()) == []
    assert re.fullmatch(rf"\d+\.\d+_\d+\.[^/:]+", msgs[0].name)
    # a second delivery gets another name
    assert local(qhome, home, tmp_path).returncode == 0
    assert len(new_messages(md)) == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_delivery_as_root_gives_the_message_to_the_maildir_owner(qhome, home, tmp_path):
    """A single-user home made by root delivers as root; a hosted domain's
    Maildir belongs to the domain's account, which must own (read, flag,
    delete over POP3) what lands there. Root's own Maildir stays root's."""
    md = maildirmake(qhome, home / "Maildir")
    for d in (md, md / "tmp", md / "new", md / "cur"):
        os.chown(d, 65534, 65534)
    assert local(qhome, home, tmp_path).returncode == 0
    [m] = new_messages(md)
    st = m.stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    for d in (md, md / "tmp", md / "new", md / "cur"):
        os.chown(d, 0, 0)
    assert local(qhome, home, tmp_path).returncode == 0
    assert sorted(m.stat().st_uid for m in new_messages(md)) == [0, 65534]


def test_maildir_keeps_nul_bytes_and_empty_sender(qhome, home, tmp_path):
    md = maildirmake(qhome, home / "Maildir")
    body = b"Subject: x\n\nnul\x00byte\xff\n" + b"L" * 100000 + b"\nno newline at end"
    r = local(qhome, home, tmp_path, sender="", msg=body)
    assert r.returncode == 0, r.stderr
    assert new_messages(md)[0].read_bytes() == b"Return-Path: <>\nDelivered-To: joe@" + DOMAIN.encode() + b"\n" + body


def test_missing_maildir_defers(qhome, home, tmp_path):
    r = local(qhome, home, tmp_path)
    assert r.returncode == 111
    assert b"maildir" in r.stderr


def test_mbox_delivery(qhome, home, tmp_path):
    qmail_file(home, ".qmail", "./Mailbox\n")
    for _ in range(2):
        r = local(qhome, home, tmp_path, sender="a b@x.org")
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"did 1+0+0\n"
    data = (home / "Mailbox").read_bytes()
    one = rb"From a-b@x\.org \w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4}\n" \
          rb"Return-Path: <\"a b\"@x\.org>\nDelivered-To: joe@test\.example\.com\n" \
          rb"Received: by x\nSubject: hello\n\n>From the start\n>>From quoted\nbody\n\n"
    assert re.fullmatch(one + one, data), data
    assert stat.S_IMODE((home / "Mailbox").stat().st_mode) == 0o600


def test_mbox_adds_missing_newline_and_mailer_daemon(qhome, home, tmp_path):
    qmail_file(home, ".qmail", "./Mailbox")
    r = local(qhome, home, tmp_path, sender="", msg=b"Subject: x\n\nlast")
    assert r.returncode == 0, r.stderr
    data = (home / "Mailbox").read_bytes()
    assert data.startswith(b"From MAILER-DAEMON ")
    assert data.endswith(b"\nlast\n\n")


# ---------------------------------------------------------------- programs

ENV_VARS = ["USER", "HOME", "LOCAL", "HOST", "RECIPIENT", "DTLINE", "RPLINE", "SENDER", "UFLINE",
            "EXT", "EXT2", "EXT3", "EXT4", "HOST2", "HOST3", "HOST4", "DEFAULT", "NEWSENDER"]


def test_program_environment(qhome, home, tmp_path):
    script = "; ".join(f'printf "%s=%s\\0" {v} "${v}" >> env.out' for v in ENV_VARS)
    qmail_file(home, ".qmail-list-default", f"|{script}; pwd > pwd.out; cat > stdin.out\n")
    qmail_file(home, ".qmail-list-owner", "./owner\n")  # not used: the owner file follows the full ext
    qmail_file(home, ".qmail-list-foo-bar-owner", "./owner\n")
    r = local(qhome, home, tmp_path, local="joe-list-Foo-bar", dash="-", ext="list-Foo-bar",
              sender="s@x.org")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"did 0+0+1\n"
    env = dict(x.split("=", 1) for x in (home / "env.out").read_text().split("\0") if x)
    assert env["USER"] == "joe"
    assert env["HOME"] == str(home)
    assert env["LOCAL"] == "joe-list-Foo-bar"
    assert env["HOST"] == DOMAIN
    assert env["RECIPIENT"] == "joe-list-Foo-bar@" + DOMAIN
    assert env["DTLINE"] == "Delivered-To: joe-list-Foo-bar@test.example.com\n"
    assert env["RPLINE"] == "Return-Path: <s@x.org>\n"
    assert env["SENDER"] == "s@x.org"
    assert re.fullmatch(r"From s@x\.org \w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4}\n", env["UFLINE"])
    assert (env["EXT"], env["EXT2"], env["EXT3"], env["EXT4"]) == ("list-Foo-bar", "Foo-bar", "bar", "")
    assert (env["HOST2"], env["HOST3"], env["HOST4"]) == ("test.example", "test", "test")
    assert env["DEFAULT"] == "Foo-bar"
    assert env["NEWSENDER"] == "joe-list-Foo-bar-owner@" + DOMAIN
    assert (home / "pwd.out").read_text().strip() == str(home)
    assert (home / "stdin.out").read_bytes() == MSG


def test_newsender_verp_and_bounces(qhome, home, tmp_path):
    qmail_file(home, ".qmail-ml", '|printf "%s" "$NEWSENDER" > ns.out\n')
    qmail_file(home, ".qmail-ml-owner", "./o\n")
    qmail_file(home, ".qmail-ml-owner-default", "./o\n")
    args = dict(local="joe-ml", dash="-", ext="ml")
    assert local(qhome, home, tmp_path, **args).returncode == 0
    assert (home / "ns.out").read_text() == "joe-ml-owner-@test.example.com-@[]"
    for bounce in ("", "#@[]"):
        assert local(qhome, home, tmp_path, sender=bounce, **args).returncode == 0
        assert (home / "ns.out").read_text() == bounce


@pytest.mark.parametrize("code,expect", [(0, 0), (100, 100), (64, 100), (112, 100),
                                         (111, 111), (1, 111), (3, 111)])
def test_program_exit_codes(qhome, home, tmp_path, code, expect):
    qmail_file(home, ".qmail", f"|echo program said {code}; exit {code}\n")
    r = local(qhome, home, tmp_path)
    assert r.returncode == expect
    assert f"program said {code}".encode() in r.stdout + r.stderr


def test_failure_texts_are_exact(qhome, home, tmp_path):
    """A failing program's own words are the whole report (qmail-local adds
    nothing); a .qmail over 16 MB defers with qmail-local's own text."""
    qmail_file(home, ".qmail", "|echo not here >&2; exit 100\n")
    r = local(qhome, home, tmp_path)
    assert (r.returncode, r.stderr, r.stdout) == (100, b"not here\n", b"")
    qmail_file(home, ".qmail", "#" * (16 << 20) + "\n./Mailbox\n")
    r = local(qhome, home, tmp_path)
    assert (r.returncode, r.stderr) == (111, b"Uh-oh: .qmail file is too large. (#4.7.0)\n")
    assert not (home / "Mailbox").exists()


def test_exit_99_stops_but_keeps_earlier_lines(qhome, home, tmp_path):
    md = maildirmake(qhome, home / "Maildir")
    qmail_file(home, ".qmail", "./Maildir/\n|exit 99\n./Mailbox\n")
    r = local(qhome, home, tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(new_messages(md)) == 1
    assert not (home / "Mailbox").exists()


def test_failure_stops_further_lines(qhome, home, tmp_path):
    qmail_file(home, ".qmail", "|echo Sorry, no. ; exit 100\n./Mailbox\n")
    r = local(qhome, home, tmp_path)
    assert r.returncode == 100
    assert b"Sorry, no." in r.stdout
    assert not (home / "Mailbox").exists()


def test_preline_and_bouncesaying_and_except(qhome, home, tmp_path):
    qmail_file(home, ".qmail", f"|{qhome.bin('preline')} cat > pre.out\n")
    assert local(qhome, home, tmp_path).returncode == 0
    out = (home / "pre.out").read_bytes()
    assert re.match(rb"From s@x\.org .*\nReturn-Path: <s@x\.org>\nDelivered-To: joe@test\.example\.com\n", out)
    assert out.endswith(MSG)
    qmail_file(home, ".qmail", f"|{qhome.bin('preline')} -fr cat > pre.out\n")
    assert local(qhome, home, tmp_path).returncode == 0
    assert (home / "pre.out").read_bytes() == b"Delivered-To: joe@test.example.com\n" + MSG

    qmail_file(home, ".qmail", f"|{qhome.bin('bouncesaying')} 'Go away.'\n")
    r = local(qhome, home, tmp_path)
    assert (r.returncode, r.stderr.strip()) == (100, b"Go away.")
    qmail_file(home, ".qmail", f"|{qhome.bin('bouncesaying')} 'Not you.' grep -q nomatch\n./Mailbox\n")
    assert local(qhome, home, tmp_path).returncode == 0
    assert (home / "Mailbox").exists()
    qmail_file(home, ".qmail", f"|{qhome.bin('except')} grep -q hello\n")
    assert local(qhome, home, tmp_path).returncode == 100
    qmail_file(home, ".qmail", f"|{qhome.bin('except')} grep -q nomatch\n")
    assert local(qhome, home, tmp_path).returncode == 0
    qmail_file(home, ".qmail", f"|{qhome.bin('except')} sh -c 'exit 111'\n")
    assert local(qhome, home, tmp_path).returncode == 111


def test_helper_usage_errors(qhome):
    for prog in ("bouncesaying", "except", "condredirect", "maildirmake"):
        assert qhome.run(prog).returncode == 100, prog
    e = dict(qhome.env)
    for v in ("UFLINE", "RPLINE", "DTLINE", "NEWSENDER"):
        e.pop(v, None)
    assert subprocess.run([qhome.bin("preline"), "cat"], env=e, capture_output=True).returncode == 100
    assert subprocess.run([qhome.bin("forward"), "a@b"], env=e, capture_output=True,
                          input=b"x").returncode == 100


# ---------------------------------------------------------------- forwarding

def todo_envelopes(qhome):
    return [p.read_bytes() for p in qhome.queue_files("todo")]


def queued_messages(qhome):
    return [p.read_bytes() for p in qhome.queue_files("mess")]


def test_forward_queues_message(qhome, home, tmp_path):
    qmail_file(home, ".qmail", "# forwards\n&a@b.org\nc@d.org\n")
    r = local(qhome, home, tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(rb"did 0\+2\+0\nqp \d+\n", r.stdout), r.stdout
    (env,) = todo_envelopes(qhome)
    assert env.endswith(b"\0Fs@x.org\0Ta@b.org\0Tc@d.org\0")
    (mess,) = queued_messages(qhome)
    assert b"Delivered-To: joe@test.example.com\n" + MSG in mess
    assert b"Return-Path" not in mess


def test_forward_with_owner_uses_newsender(qhome, home, tmp_path):
    qmail_file(home, ".qmail-ml", "&x@y.org\n")
    qmail_file(home, ".qmail-ml-owner", "&owner@y.org\n")
    r = local(qhome, home, tmp_path, local="joe-ml", dash="-", ext="ml")
    assert r.returncode == 0, r.stderr
    (env,) = todo_envelopes(qhome)
    assert env.endswith(b"\0Fjoe-ml-owner@test.example.com\0Tx@y.org\0")


def test_forward_and_condredirect_programs(qhome, home, tmp_path):
    qmail_file(home, ".qmail", f"|{qhome.bin('forward')} f1@y.org f2@y.org\n")
    r = local(qhome, home, tmp_path)
    assert r.returncode == 0, r.stderr
    assert b"forward: qp " in r.stderr
    qmail_file(home, ".qmail", f"|{qhome.bin('condredirect')} c@y.org grep -q nomatch\n./Mailbox\n")
    assert local(qhome, home, tmp_path).returncode == 0
    assert (home / "Mailbox").exists()
    qmail_file(home, ".qmail", f"|{qhome.bin('condredirect')} c@y.org grep -q hello\n./Other\n")
    r = local(qhome, home, tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (home / "Other").exists()   # condredirect exits 99: later lines skipped
    envs = sorted(todo_envelopes(qhome))
    assert len(envs) == 2
    assert any(e.endswith(b"\0Fs@x.org\0Tf1@y.org\0Tf2@y.org\0") for e in envs)
    assert any(e.endswith(b"\0Fs@x.org\0Tc@y.org\0") for e in envs)


def test_forward_failure_from_queue_is_reported(qhome, home, tmp_path):
    qmail_file(home, ".qmail", "&a@b.org\n")
    fake = tmp_path / "fakeq"
    fake.write_text("#!/bin/sh\ncat >/dev/null; exit 53\n")
    fake.chmod(0o755)
    r = local(qhome, home, tmp_path, env={"QMAILQUEUE": str(fake)})
    assert r.returncode == 111
    assert b"Unable to forward message: qq write error or disk full" in r.stderr
    fake.write_text("#!/bin/sh\ncat >/dev/null; exit 31\n")
    r = local(qhome, home, tmp_path, env={"QMAILQUEUE": str(fake)})
    assert r.returncode == 100


# ---------------------------------------------------------------- safety checks

def test_loop_detection(qhome, home, tmp_path):
    md = maildirmake(qhome, home / "Maildir")
    looping = b"Delivered-To: joe@test.example.com\n" + MSG
    r = local(qhome, home, tmp_path, msg=looping)
    assert r.returncode == 100
    assert r.stderr == b"This message is looping: it already has my Delivered-To line. (#5.4.6)\n"
    assert new_messages(md) == []
    # the same line in the body, or another recipient's line, is fine
    for ok in (MSG + b"Delivered-To: joe@test.example.com\n",
               b"Delivered-To: other@test.example.com\n" + MSG,
               b"X: " + b"y" * 5000 + b"\n" + MSG):
        assert local(qhome, home, tmp_path, msg=ok).returncode == 0


def test_sticky_home_defers(qhome, home, tmp_path):
    maildirmake(qhome, home / "Maildir")
    os.chmod(home, 0o1755)
    r = local(qhome, home, tmp_path)
    assert r.returncode == 111
    assert r.stderr == b"Home directory is sticky: user is editing his .qmail file. (#4.2.1)\n"
    r = local(qhome, home, tmp_path, flags=("-n",))
    assert r.returncode == 0
    assert b"sticky" in r.stderr


def test_writable_home_and_qmail_defer(qhome, home, tmp_path):
    os.chmod(home, 0o757)
    r = local(qhome, home, tmp_path)
    assert (r.returncode, r.stderr) == (111, b"Uh-oh: home directory is writable. (#4.7.0)\n")
    os.chmod(home, 0o755)
    qmail_file(home, ".qmail", "./Mailbox\n", mode=0o646)
    r = local(qhome, home, tmp_path)
    assert (r.returncode, r.stderr) == (111, b"Uh-oh: .qmail file is writable. (#4.7.0)\n")
    assert not (home / "Mailbox").exists()


def test_group_writable_home_and_qmail_deliver(qhome, home, tmp_path):
    """Only the world-write bit makes a home or a .qmail unsafe (qmail's
    conf-patrn is 002), as dot-qmail(5) and qmail-local(8) say."""
    os.chmod(home, 0o775)
    qmail_file(home, ".qmail", "./Mailbox\n", mode=0o664)
    r = local(qhome, home, tmp_path)
    assert (r.returncode, r.stdout) == (0, b"did 1+0+0\n"), r.stderr
    assert b"\nSubject: hello\n" in (home / "Mailbox").read_bytes()


def test_forward_only_qmail(qhome, home, tmp_path):
    qmail_file(home, ".qmail", "./Mailbox\n", mode=0o744)
    r = local(qhome, home, tmp_path)
    assert r.returncode == 111
    assert b"x bit" in r.stderr
    qmail_file(home, ".qmail", "+list\n|true\n")
    assert local(qhome, home, tmp_path).returncode == 111


def test_blank_and_empty_and_comment_only(qhome, home, tmp_path):
    md = maildirmake(qhome, home / "Maildir")
    qmail_file(home, ".qmail", "\n./Mailbox\n")
    r = local(qhome, home, tmp_path)
    assert (r.returncode, r.stderr) == (111, b"Uh-oh: first line of .qmail file is blank. (#4.2.1)\n")
    qmail_file(home, ".qmail", "")
    r = local(qhome, home, tmp_path)  # empty file: defaultdelivery
    assert (r.returncode, r.stdout) == (0, b"did 1+0+0\n")
    assert len(new_messages(md)) == 1
    qmail_file(home, ".qmail", "# throw it away\n")
    r = local(qhome, home, tmp_path)
    assert (r.returncode, r.stdout) == (0, b"did 0+0+0\n")
    assert len(new_messages(md)) == 1


# ---------------------------------------------------------------- .qmail selection

def test_extension_selection(qhome, home, tmp_path):
    for name in (".qmail-foo-bar", ".qmail-foo-default", ".qmail-default"):
        qmail_file(home, name, f"./{name[7:]}.mbox\n")

    def which(ext):
        for p in home.glob("*.mbox"):
            p.unlink()
        r = local(qhome, home, tmp_path, local="joe-" + ext, dash="-", ext=ext)
        assert r.returncode == 0, r.stderr
        return sorted(p.name for p in home.glob("*.mbox"))

    assert which("foo-bar") == ["foo-bar.mbox"]
    assert which("FOO-Bar") == ["foo-bar.mbox"]
    assert which("foo-baz") == ["foo-default.mbox"]
    assert which("foo") == ["default.mbox"]
    assert which("other-thing") == ["default.mbox"]
    (home / ".qmail-default").unlink()
    r = local(qhome, home, tmp_path, local="joe-zzz", dash="-", ext="zzz")
    assert (r.returncode, r.stderr) == (100, b"Sorry, no mailbox here by that name. (#5.1.1)\n")


def test_dots_in_extension_become_colons(qhome, home, tmp_path):
    qmail_file(home, ".qmail-a:b", "./colon.mbox\n")
    r = local(qhome, home, tmp_path, local="joe-a.b", dash="-", ext="a.b")
    assert r.returncode == 0, r.stderr
    assert (home / "colon.mbox").exists()


def test_dotdot_extension_cannot_escape(qhome, home, tmp_path):
    # A .qmail one level up must not be reachable through "../".
    qmail_file(tmp_path, ".qmail-evil", "./escaped.mbox\n")
    r = local(qhome, home, tmp_path, local="joe-../.qmail-evil", dash="-", ext="../.qmail-evil")
    assert r.returncode == 100
    assert not list(tmp_path.rglob("escaped.mbox"))


def test_very_long_extension(qhome, home, tmp_path):
    ext = "x" * 5000
    r = local(qhome, home, tmp_path, local="joe-" + ext, dash="-", ext=ext)
    assert (r.returncode, r.stderr) == (100, b"Sorry, no mailbox here by that name. (#5.1.1)\n")
    qmail_file(home, ".qmail-default", '|printf "%s" "$DEFAULT" > d.out\n')
    r = local(qhome, home, tmp_path, local="joe-" + ext, dash="-", ext=ext)
    assert r.returncode == 0, r.stderr
    assert (home / "d.out").read_text() == ext


def test_dry_run_prints_instructions(qhome, home, tmp_path):
    qmail_file(home, ".qmail", "# c\n./Maildir/\n./Mailbox\n|prog arg\n&a@b.org\nc@d.org\n")
    r = local(qhome, home, tmp_path, flags=("-n",))
    assert r.returncode == 0, r.stderr
    assert r.stdout == (b"maildir ./Maildir/\nmbox ./Mailbox\nprogram prog arg\n"
                        b"forward a@b.org\nforward c@d.org\ndid 2+2+1\n")
    assert not (home / "Mailbox").exists()


def test_usage_errors(qhome, home, tmp_path):
    assert qhome.run("qmail-local").returncode == 100
    r = qhome.run("qmail-local", "joe", "relative/home", "joe", "", "", DOMAIN, "", "./Maildir/")
    assert r.returncode == 100
    r = local(qhome, tmp_path / "missing", tmp_path)
    assert r.returncode == 111
    assert b"Unable to switch to" in r.stderr


# ---------------------------------------------------------------- a real user

@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"), reason="needs root and useradd")
def test_delivery_as_created_user(qhome):
    name = "sqt" + uuid.uuid4().hex[:8]
    base = pathlib.Path(tempfile.mkdtemp(prefix="sq-local-"))
    os.chmod(base, 0o755)
    h = base / name
    subprocess.run(["useradd", "-M", "-d", str(h), "-s", "/bin/sh", name], check=True, capture_output=True)
    try:
        pw = pwd.getpwnam(name)
        h.mkdir(mode=0o755)
        os.chown(h, pw.pw_uid, pw.pw_gid)
        # the user cannot reach the test's qmail home: copy the two programs
        bindir = base / "bin"
        bindir.mkdir()
        for prog in ("qmail-local", "maildirmake"):
            shutil.copy(qhome.bin(prog), bindir / prog)
            os.chmod(bindir / prog, 0o755)
        msg = base / "msg"
        msg.write_bytes(MSG)
        os.chmod(msg, 0o644)
        r = subprocess.run([str(bindir / "maildirmake"), str(h / "Maildir")], user=pw.pw_uid, group=pw.pw_gid,
                           capture_output=True)
        assert r.returncode == 0, r.stderr
        with open(msg, "rb") as f:
            r = subprocess.run([str(bindir / "qmail-local"), name, str(h), name, "", "", DOMAIN, "s@x.org",
                                "./Maildir/"], stdin=f, user=pw.pw_uid, group=pw.pw_gid, env=qhome.env,
                               capture_output=True)
        assert r.returncode == 0, r.stderr
        (m,) = (h / "Maildir" / "new").iterdir()
        assert m.stat().st_uid == pw.pw_uid
        assert m.read_bytes().startswith(f"Return-Path: <s@x.org>\nDelivered-To: {name}@{DOMAIN}\n".encode())

        # qmail-getpw in a multi-user home finds the user by the passwd rules
        (qhome.path / "ids").write_text("mode=multi\nalias=7790\n")
        r = qhome.run("qmail-getpw", name.upper() + "-Ext-x")
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"\0".join([name.encode(), str(pw.pw_uid).encode(), str(pw.pw_gid).encode(),
                                       str(h).encode(), b"-", b"Ext-x"]) + b"\0"
        # a home not owned by the account makes it no user
        os.chown(h, 0, 0)
        r = qhome.run("qmail-getpw", name)
        if r.returncode == 0:
            assert r.stdout.startswith(b"alias\0")
        else:
            assert r.returncode == 116 and r.stdout == b""
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------- users

def test_getpw_single_user_alias(qhome):
    st = (qhome.path / "alias").stat()
    for localpart in ("postmaster", "Some-Thing", "root"):
        r = qhome.run("qmail-getpw", localpart)
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"\0".join([b"alias", str(st.st_uid).encode(), str(st.st_gid).encode(),
                                       str(qhome.path / "alias").encode(), b"-", localpart.encode()]) + b"\0"
    assert qhome.run("qmail-getpw").returncode == 100


QMAIL_USERS = ("alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails")
QMAIL_GROUPS = ("qmail", "nofiles")


def _can_unshare():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0


def with_accounts(qhome, tmp_path, users, groups, prog, *args):
    """Runs a program of the home in a private mount namespace whose
    /etc/passwd and /etc/group are the system's without qmail's accounts,
    plus the given lines: the system's own files are never touched."""
    def private(name, system, extra):
        keep = [l for l in pathlib.Path(system).read_text().splitlines()
                if l.split(":")[0] not in QMAIL_USERS + QMAIL_GROUPS]
        f = tmp_path / name
        f.write_text("\n".join(keep + extra) + "\n")
        os.chmod(f, 0o644)
        return f
    pw, gr = private("passwd", "/etc/passwd", users), private("group", "/etc/group", groups)
    mounts = f"mount --bind {pw} /etc/passwd && mount --bind {gr} /etc/group"
    return subprocess.run(["unshare", "--mount", "sh", "-c", mounts + ' && exec "$@"', "sh", qhome.bin(prog), *args],
                          env=qhome.env, capture_output=True, timeout=60)


@pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare --mount")
def test_home_without_ids_uses_qmails_accounts_or_refuses(qhome, tmp_path):
    # binaries dropped into an existing qmail: no HOME/ids, qmail's accounts in passwd
    (qhome.path / "ids").unlink()
    name, uid, gid = f"sq{uuid.uuid4().hex[:8]}", 64123, 64124
    user_home = tmp_path / "userhome"
    user_home.mkdir()
    os.chown(user_home, uid, gid)
    users = [f"{u}:x:{7790 + i}:{2108 if u != 'qmailq' else 2107}::{qhome.path / 'alias' if u == 'alias' else qhome.path}:/bin/false"
             for i, u in enumerate(QMAIL_USERS)]
    users.append(f"{name}:x:{uid}:{gid}::{user_home}:/bin/sh")
    groups = ["qmail:x:2107:", "nofiles:x:2108:"]

    # a real user gets his own uid and home, as qmail's qmail-getpw gives
    r = with_accounts(qhome, tmp_path, users, groups, "qmail-getpw", name + "-Ext")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"\0".join([name.encode(), b"64123", b"64124", str(user_home).encode(), b"-", b"Ext"]) + b"\0"
    # everything else, root included, goes to the alias account from passwd
    for localpart in ("nosuch-x", "root"):
        r = with_accounts(qhome, tmp_path, users, groups, "qmail-getpw", localpart)
        assert r.returncode == 0, r.stderr
        assert r.stdout == b"\0".join([b"alias", b"7790", b"2108", str(qhome.path / "alias").encode(), b"-",
                                       localpart.encode()]) + b"\0"

    # without qmail's accounts: one clear line and a temporary failure, never alias
    for missing_user in (True, False):
        u = users[1:] if missing_user else users
        g = groups if missing_user else groups[:1]
        r = with_accounts(qhome, tmp_path, u, g, "qmail-getpw", name)
        assert r.returncode == 118 and r.stdout == b"", r
        lines = r.stderr.decode().splitlines()
        assert len(lines) == 1 and "ids is missing" in lines[0] and "qmail-setup" in lines[0], lines
        assert ("user alias" if missing_user else "group nofiles") in lines[0]
    r = with_accounts(qhome, tmp_path, users[1:], groups, "qmail-start", "./Maildir/")
    assert r.returncode == 111 and r.stdout == b"", r
    assert r.stderr.decode().startswith("qmail-start: fatal: ") and r.stderr.count(b"\n") == 1, r.stderr


ASSIGN = """+:alias:7790:2108:/var/qmail/alias:-::
+joe-:joe:507:100:/home/joe:-::
=joe:joe:507:100:/home/joe:::
=Joe.Shmoe:joe:507:100:/home/joe:-:shmoe:
.
"""


@pytest.mark.skipif(not shutil.which("cdb"), reason="tinycdb not installed")
def test_newu_cdb_readable_by_tinycdb(qhome):
    users = qhome.path / "users"
    (users / "assign").write_text(ASSIGN)
    r = qhome.run("qmail-newu")
    assert r.returncode == 0, r.stderr
    assert not (users / "cdb.tmp").exists()
    dump = subprocess.run(["cdb", "-d", str(users / "cdb")], capture_output=True, check=True).stdout
    expect = b""
    for k, v in [(b"!", b"alias\x007790\x002108\x00/var/qmail/alias\x00-\x00"),
                 (b"!joe-", b"joe\x00507\x00100\x00/home/joe\x00-\x00"),
                 (b"!joe\x00", b"joe\x00507\x00100\x00/home/joe\x00\x00"),
                 (b"!joe.shmoe\x00", b"joe\x00507\x00100\x00/home/joe\x00-\x00shmoe"),
                 (b"", b"-")]:
        expect += b"+%d,%d:%s->%s\n" % (len(k), len(v), k, v)
    assert dump == expect + b"\n"
    got = subprocess.run(["cdb", "-q", str(users / "cdb"), "!joe-"], capture_output=True)
    assert got.stdout == b"joe\x00507\x00100\x00/home/joe\x00-\x00"


def test_newu_bad_format_keeps_old_cdb(qhome):
    users = qhome.path / "users"
    (users / "assign").write_text(ASSIGN)
    assert qhome.run("qmail-newu").returncode == 0
    before = (users / "cdb").read_bytes()
    for bad in ("=joe:joe:507\n.\n", "=joe:joe:507:100:/home/joe:::\n", "=j\0oe:joe:1:1:/h:::\n.\n"):
        (users / "assign").write_text(bad)
        r = qhome.run("qmail-newu")
        assert r.returncode == 111
        assert r.stderr == b"qmail-newu: fatal: bad format in users/assign\n"
        assert (users / "cdb").read_bytes() == before
    (users / "assign").unlink()
    r = qhome.run("qmail-newu")
    assert (r.returncode, r.stderr) == (111, b"qmail-newu: fatal: unable to open users/assign\n")


def test_pw2u(qhome, tmp_path):
    h = tmp_path / "h"
    h.mkdir()
    uid = os.geteuid()
    passwd = (f"root:x:0:0:root:/root:/bin/sh\n"
              f"alias:*:{uid + 1}:2108::/nonexistent-alias:/bin/true\n"
              f"me:x:{uid or 4242}:100:Me:{h}:/bin/sh\n"
              f"Upper:x:77:100::{h}:/bin/sh\n")
    if uid == 0:
        os.chown(h, 4242, 100)
    r = qhome.run("qmail-pw2u", input=passwd)
    # default (-o): alias has no home, so it is skipped and pw2u must stop
    assert (r.returncode, r.stderr) == (111, b"qmail-pw2u: fatal: unable to find alias user\n")
    r = qhome.run("qmail-pw2u", "-H", input=passwd)
    assert r.returncode == 0, r.stderr
    me = f"me:{uid or 4242}:100:{h}:"
    alias = f"alias:{uid + 1}:2108:/nonexistent-alias:"
    assert r.stdout.decode() == (f"+:{alias}-::\n=alias:{alias}::\n+alias-:{alias}-::\n"
                                 f"=me:{me}::\n+me-:{me}-::\n.\n")
    r = qhome.run("qmail-pw2u", "-h", input=passwd)
    assert r.returncode == 111 and b"unable to stat /nonexistent-alias" in r.stderr
    r = qhome.run("qmail-pw2u", "-HCu", input=passwd)
    assert "=Upper:Upper:77:100:" in r.stdout.decode()
    assert "+me-" not in r.stdout.decode()
    (qhome.path / "users" / "exclude").write_text("me\n")
    (qhome.path / "users" / "append").write_text("=extra:me:1:1:/x:::\n")
    r = qhome.run("qmail-pw2u", "-H", input=passwd)
    assert "=me:" not in r.stdout.decode()
    assert r.stdout.decode().endswith("=extra:me:1:1:/x:::\n.\n")
    assert qhome.run("qmail-pw2u", "-z", input=passwd).returncode == 100


# ---------------------------------------------------------------- maildir tools

def test_maildirmake_and_maildir2mbox(qhome, home, tmp_path):
    md = maildirmake(qhome, home / "Maildir")
    assert sorted(p.name for p in md.iterdir()) == ["cur", "new", "tmp"]
    assert stat.S_IMODE(md.stat().st_mode) == 0o700
    r = qhome.run("maildirmake", str(md))
    assert r.returncode == 111 and b"unable to mkdir" in r.stderr
    for sender in ("a@b.org", ""):
        assert local(qhome, home, tmp_path, sender=sender).returncode == 0
    mbox = home / "mbox"
    mbox.write_bytes(b"From old Thu Jan 01 00:00:00 1970\nold\n\n")
    env = {"MAILDIR": str(md), "MAIL": str(mbox), "MAILTMP": str(home / "mbox.tmp")}
    r = qhome.run("maildir2mbox", env=env)
    assert r.returncode == 0, r.stderr
    data = mbox.read_bytes()
    assert data.startswith(b"From old Thu Jan 01 00:00:00 1970\nold\n\n")
    assert re.search(rb"\nFrom a@b\.org \w{3} \w{3} \d\d [\d:]{8} \d{4}\nReturn-Path: <a@b\.org>\n", data)
    assert re.search(rb"\nFrom MAILER-DAEMON .*\nReturn-Path: <>\n", data)
    assert b"\n>From the start\n>>From quoted\n" in data
    assert new_messages(md) == []
    r = qhome.run("maildir2mbox", env={"MAILDIR": str(md)})
    assert r.returncode == 111


def test_splogger_reads_stdin(qhome):
    r = qhome.run("splogger", "sqtest", input=b"hello\nwarning: x\n" + b"y" * 2000 + b"\n")
    assert r.returncode == 0


def test_nul_in_qmail_file_cuts_the_line(qhome, home, tmp_path):
    (home / ".qmail").write_bytes(b"&a@b.org\0Tevil@x.org\n")
    os.chmod(home / ".qmail", 0o644)
    r = local(qhome, home, tmp_path)
    assert r.returncode == 0, r.stderr
    (env,) = todo_envelopes(qhome)
    assert env.endswith(b"\0Fs@x.org\0Ta@b.org\0")


def test_mbox_write_failure_truncates_back(qhome, home, tmp_path):
    import resource
    qmail_file(home, ".qmail", "./Mailbox\n")
    old = b"From x Thu Jan 01 00:00:00 1970\nold\n\n" * 10
    (home / "Mailbox").write_bytes(old)
    limit = len(old) + 100

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = local(qhome, home, tmp_path, msg=MSG + b"x" * 5000 + b"\n", preexec_fn=small_files)
    assert r.returncode == 111
    assert b"Unable to write ./Mailbox" in r.stderr
    assert (home / "Mailbox").read_bytes() == old


def test_mbox_waits_for_lock(qhome, home, tmp_path):
    import fcntl
    import time
    qmail_file(home, ".qmail", "./Mailbox\n")
    mf = tmp_path / "m"
    mf.write_bytes(MSG)
    with open(home / "Mailbox", "ab") as box:
        fcntl.flock(box, fcntl.LOCK_EX)
        with open(mf, "rb") as f:
            e = dict(qhome.env)
            p = subprocess.Popen([qhome.bin("qmail-local"), "joe", str(home), "joe", "", "", DOMAIN, "s@x.org",
                                  "./Maildir/"], stdin=f, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(1)
            assert p.poll() is None, "delivered while the mailbox was locked"
            assert (home / "Mailbox").stat().st_size == 0
            fcntl.flock(box, fcntl.LOCK_UN)
            out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert (home / "Mailbox").read_bytes().endswith(b"\n>From the start\n>>From quoted\nbody\n\n")
