"""fastforward, newaliases, setforward, printforward, newinclude, setmaillist,
printmaillist and dot-forward, tested differentially against Debian's
packages (djb's programs) on the same inputs.

djb's programs have their paths built in (/etc/aliases, /var/lib/qmail):
each run happens in a private mount namespace (`unshare --mount`) with a
scratch directory bound over /etc or /var/lib/qmail. There, bin/qmail-queue
is a capture script (djb's fastforward ignores QMAILQUEUE), so both sides'
forwarding is seen exactly: message bytes, envelope and exit code. Ours is
pointed at the same scratch home with QMAIL_HOME.
"""
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from conftest import bin_dir, qmail_send_running, wait_for

DATA = pathlib.Path(__file__).resolve().parent / "data" / "aliases"
CORPUS = sorted(DATA.glob("*.aliases"))

DJB_NEWALIASES = "/usr/sbin/qmail-newaliases"
DJB = {p: shutil.which(p) for p in ("fastforward", "setforward", "printforward", "newinclude",
                                    "setmaillist", "printmaillist", "dot-forward")}


def _can_unshare():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    return r.returncode == 0


pytestmark = pytest.mark.skipif(
    not (os.path.exists(DJB_NEWALIASES) and all(DJB.values()) and _can_unshare()),
    reason="needs root, unshare and Debian's fastforward and dot-forward packages")

CAPTURE = """#!/bin/sh
# qmail-queue stand-in: keeps the message and the envelope, exits $CAPTURE_RC.
d="${CAPTURE_DIR:?}"
cat > "$d/message"
cat 0<&1 > "$d/envelope"
exit "${CAPTURE_RC:-0}"
"""

# Debian has no preline; djb's fastforward runs "preline sh -c PROG" for "!"
# instructions. This stand-in does what preline does without options.
PRELINE = """#!/bin/sh
{ printf '%s' "$UFLINE$RPLINE$DTLINE"; cat; } | "$@"
"""


def ours(name):
    return str(bin_dir() / name)


class Scratch:
    """A scratch qmail home (control files, capture qmail-queue) and /etc."""

    def __init__(self, root: pathlib.Path, me="example.com", **controls):
        self.root = root
        self.qm = root / "qm"
        self.etc = root / "etc"
        self.work = root / "work"
        self.cap = root / "capture"
        self.shim = root / "shim"
        for d in (self.qm / "control", self.qm / "bin", self.etc, self.work, self.cap, self.shim):
            d.mkdir(parents=True, exist_ok=True)
        (self.qm / "control" / "me").write_text(me + "\n")
        for k, v in controls.items():
            (self.qm / "control" / k).write_text(v + "\n")
        q = self.qm / "bin" / "qmail-queue"
        q.write_text(CAPTURE)
        q.chmod(0o755)
        p = self.shim / "preline"
        p.write_text(PRELINE)
        p.chmod(0o755)

    def env(self, extra=None, home=True):
        e = {"PATH": f"{self.shim}:/usr/bin:/bin", "CAPTURE_DIR": str(self.cap)}
        if home:
            e["QMAIL_HOME"] = str(self.qm)
        if extra:
            e.update(extra)
        return e

    def djb(self, argv, input=b"", env=None, etc=False, cwd=None, stdin=None):
        """Runs a djb program with this scratch home bound over /var/lib/qmail."""
        mounts = f"mount --bind {self.qm} /var/lib/qmail"
        if etc:
            mounts += f" && mount --bind {self.etc} /etc"
        kw = {"stdin": stdin} if stdin is not None else {"input": input}
        return subprocess.run(["unshare", "--mount", "sh", "-c", mounts + ' && exec "$@"', "sh", *argv],
                              env=self.env(env, home=False), cwd=cwd or self.work,
                              capture_output=True, timeout=60, **kw)

    def ours(self, argv, input=b"", env=None, cwd=None, stdin=None):
        kw = {"stdin": stdin} if stdin is not None else {"input": input}
        return subprocess.run([ours(argv[0]), *argv[1:]], env=self.env(env), cwd=cwd or self.work,
                              capture_output=True, timeout=60, **kw)

    def captured(self):
        m, e = self.cap / "message", self.cap / "envelope"
        out = (m.read_bytes() if m.exists() else None, e.read_bytes() if e.exists() else None)
        for f in (m, e):
            if f.exists():
                f.unlink()
        return out


@pytest.fixture
def scratch(tmp_path):
    return Scratch(tmp_path)


def djb_newaliases(s: Scratch, text: bytes, fresh=True):
    (s.etc / "aliases").write_bytes(text)
    for n in ("aliases.cdb", "aliases.tmp"):
        if fresh and (s.etc / n).exists():
            (s.etc / n).unlink()
    r = s.djb([DJB_NEWALIASES], etc=True)
    cdb = s.etc / "aliases.cdb"
    return r, (cdb.read_bytes() if cdb.exists() else None)


def our_newaliases(s: Scratch, text: bytes, fresh=True):
    a = s.root / "ours.aliases"
    a.write_bytes(text)
    cdb = s.root / "ours.aliases.cdb"
    if fresh and cdb.exists():
        cdb.unlink()
    r = s.ours(["newaliases", "-f", str(a)])
    return r, (cdb.read_bytes() if cdb.exists() else None)


def printforward(prog, cdb: bytes):
    return subprocess.run([prog], input=cdb, capture_output=True, timeout=30)


# ---------------------------------------------------------------- newaliases

@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_newaliases_same_cdb(scratch, path):
    text = path.read_bytes()
    rd, cd = djb_newaliases(scratch, text)
    ro, co = our_newaliases(scratch, text)
    assert rd.returncode == 0, rd.stderr
    assert ro.returncode == 0, ro.stderr
    # Byte for byte the same database (same record order, same tables)...
    assert co == cd
    # ...and each side's printforward reads the other's output the same way.
    pd = printforward(DJB["printforward"], co)
    po = printforward(ours("printforward"), cd)
    assert pd.returncode == po.returncode == 0
    assert pd.stdout == po.stdout
    assert pd.stdout  # something was compiled


@pytest.mark.parametrize("controls", [
    {"me": "mail.example.org"},
    {"me": "mail.example.org", "defaulthost": "example.org", "defaultdomain": "org.example",
     "plusdomain": "plus.example"},
    {"me": "nodots"},
])
def test_newaliases_qualification_follows_controls(tmp_path, controls):
    me = controls.pop("me")
    s = Scratch(tmp_path, me=me, **controls)
    text = (DATA / "qualify.aliases").read_bytes()
    rd, cd = djb_newaliases(s, text)
    ro, co = our_newaliases(s, text)
    assert rd.returncode == ro.returncode == 0
    assert co == cd


REFUSALS = [
    ("unterminated-quote", b'a: "unterminated\n'),
    ("unterminated-comment", b"a: b (no end\n"),
    ("unterminated-literal", b"a: b@[1.2.3.4\n"),
    ("stray-close-paren", b"a: )\n"),
    ("empty-angle", b"a: <>\n"),
    ("target-only", b"a:\n"),
    ("target-only-continued", b"a\n  \n"),
    ("comment-only-value", b"a: (nobody)\n"),
    ("no-target", b": b\n"),
    ("file-delivery", b"a: /var/mail/a\n"),
    ("quoted-file-delivery", b'a: "/var/mail/a"\n'),
    ("host-wildcard-typo", b"webmaster@: web@example.com\n"),
    ("empty-include", b"a: :include:\n"),
    ("nul-in-address", b"a: b\x00c\n"),
    ("nul-in-target", b"a\x00: b\n"),
    ("nul-in-program", b'a: "|x\x00y"\n'),
    ("nul-in-include", b"a: :include: /x\x00y\n"),
    ("long-address", b"a: " + b"x" * 790 + b"@example.com\n"),
    ("long-target", b"x" * 801 + b": b\n"),
    ("bad-after-good", b"good: ok@example.com\n\nbad: \"oops\n"),
    ("unbalanced-angle", b"a: b>\n"),
]


@pytest.mark.parametrize("name,text", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_newaliases_same_refusals_and_old_cdb_kept(scratch, name, text):
    good = (DATA / "debian-default.aliases").read_bytes()
    # An old database from a good file must survive the refusal on both sides.
    rd0, old_d = djb_newaliases(scratch, good)
    ro0, old_o = our_newaliases(scratch, good)
    assert rd0.returncode == ro0.returncode == 0
    rd, cd = djb_newaliases(scratch, text, fresh=False)
    ro, co = our_newaliases(scratch, text, fresh=False)
    assert rd.returncode != 0, "djb's newaliases accepted it"
    assert ro.returncode == rd.returncode, (rd.stderr, ro.stderr)
    assert cd == old_d and co == old_o
    # Our message keeps djb's words and adds where: file and line number.
    djb_words = rd.stderr.decode(errors="replace").split("fatal: ", 1)[1].split("\n")[0].split(":")[0]
    err = ro.stderr.decode(errors="replace")
    assert djb_words in err
    assert re.search(r"ours\.aliases line \d+: ", err), err
    assert not (scratch.root / "ours.aliases.tmp").exists()


def test_newaliases_reports_the_line_where_the_entry_starts(scratch):
    text = b"# header\nok: a\n\nlist:\n  b,\n  \"c\n"
    ro, _ = our_newaliases(scratch, text)
    assert ro.returncode == 111
    assert b"line 4: unable to parse this line: list:" in ro.stderr


def test_newaliases_megabyte_line(scratch):
    # One alias with about 1 MB of recipients on one line: both accept it.
    members = b", ".join(b"member%06d@example.com" % i for i in range(45000))
    text = b"big: " + members + b"\nsmall: x\n"
    assert len(text) > 1 << 20
    rd, cd = djb_newaliases(scratch, text)
    ro, co = our_newaliases(scratch, text)
    assert rd.returncode == ro.returncode == 0
    assert co == cd


def test_newaliases_megabyte_garbage_line_refused(scratch):
    text = b"big: \"" + b"x" * (1 << 20) + b"\n"
    rd, _ = djb_newaliases(scratch, text)
    ro, co = our_newaliases(scratch, text)
    assert rd.returncode == ro.returncode == 111
    assert co is None
    assert len(ro.stderr) < 1000  # the line is shown shortened


def test_newaliases_missing_file(scratch):
    r = scratch.ours(["newaliases", "-f", str(scratch.root / "nonexistent")])
    assert r.returncode == 111
    assert b"unable to read" in r.stderr


def test_newaliases_cdb_is_world_readable(scratch):
    os.umask(0o077)
    try:
        ro, _ = our_newaliases(scratch, b"a: b\n")
    finally:
        os.umask(0o022)
    assert ro.returncode == 0
    assert (scratch.root / "ours.aliases.cdb").stat().st_mode & 0o444 == 0o444


# ------------------------------------------------------- setforward & friends

SETFORWARD_INPUTS = [
    b"root@yp.to: god@heaven.af.mil, staff@af.mil;\n",
    b"# comment\nboss@yp.to: &god@heaven.af.mil;\nsos@heaven.af.mil: ?owner-sos@heaven.af.mil;\n"
    b"sos@heaven.af.mil: /etc/lists/sos.bin, ./local.bin;\ndew@: |dew-monitor, !preline-prog;\n",
    b"a\\ b@x: c\\,d@y;  @HOST.dom : x@y ;\nUSER@: \\#not-comment@y;\n",
    b"t: ;\n",
]
SETFORWARD_BAD = [
    b"a: b",              # final instruction must end with semicolon
    b"a: b: c;",          # double colons
    b"a, b: c;",          # commas before colons
    b"a: b\x00c;",        # NUL
    b"a: " + b"x" * 801 + b";",
    b"a",
]


@pytest.mark.parametrize("text", SETFORWARD_INPUTS)
def test_setforward_same_cdb(scratch, text):
    d, o = scratch.root / "d.cdb", scratch.root / "o.cdb"
    rd = subprocess.run([DJB["setforward"], str(d), str(d) + ".tmp"], input=text, capture_output=True)
    ro = subprocess.run([ours("setforward"), str(o), str(o) + ".tmp"], input=text, capture_output=True)
    assert rd.returncode == ro.returncode == 0, (rd.stderr, ro.stderr)
    assert d.read_bytes() == o.read_bytes()
    # printforward's output feeds setforward back to the same database.
    p = subprocess.run([ours("printforward")], input=o.read_bytes(), capture_output=True)
    assert p.returncode == 0
    assert p.stdout == subprocess.run([DJB["printforward"]], input=d.read_bytes(), capture_output=True).stdout
    again = scratch.root / "again.cdb"
    r = subprocess.run([ours("setforward"), str(again), str(again) + ".tmp"], input=p.stdout, capture_output=True)
    assert r.returncode == 0
    assert again.read_bytes() == o.read_bytes()


@pytest.mark.parametrize("text", SETFORWARD_BAD)
def test_setforward_same_refusals(scratch, text):
    d, o = scratch.root / "d.cdb", scratch.root / "o.cdb"
    d.write_bytes(b"old")
    o.write_bytes(b"old")
    rd = subprocess.run([DJB["setforward"], str(d), str(d) + ".tmp"], input=text, capture_output=True)
    ro = subprocess.run([ours("setforward"), str(o), str(o) + ".tmp"], input=text, capture_output=True)
    assert rd.returncode != 0
    assert ro.returncode == rd.returncode
    assert o.read_bytes() == b"old"
    assert rd.stderr.split(b"fatal: ")[1] == ro.stderr.split(b"fatal: ")[1]


@pytest.mark.parametrize("data", [b"", b"short", b"\x00" * 2048 + b"junk",
                                  (4000).to_bytes(4, "little") + b"\x00" * 2044 + b"\x01\x00\x00\x00"])
def test_printforward_same_refusals(data):
    rd = subprocess.run([DJB["printforward"]], input=data, capture_output=True)
    ro = subprocess.run([ours("printforward")], input=data, capture_output=True)
    assert ro.returncode == rd.returncode
    assert ro.stdout == rd.stdout


MAILLISTS = [
    b"god@heaven.af.mil\ndjb@silverton.berkeley.edu\n",
    b"# comment\n\n&amp@x.y  \t\n./other.bin\n/abs/list.bin\nplain@example.com",
    b"a@b\r\n",
]


@pytest.mark.parametrize("text", MAILLISTS)
def test_setmaillist_printmaillist_same(scratch, text):
    d, o = scratch.root / "d.bin", scratch.root / "o.bin"
    rd = subprocess.run([DJB["setmaillist"], str(d), str(d) + ".tmp"], input=text, capture_output=True)
    ro = subprocess.run([ours("setmaillist"), str(o), str(o) + ".tmp"], input=text, capture_output=True)
    assert rd.returncode == ro.returncode == 0
    assert d.read_bytes() == o.read_bytes()
    pd = subprocess.run([DJB["printmaillist"]], input=o.read_bytes(), capture_output=True)
    po = subprocess.run([ours("printmaillist")], input=d.read_bytes(), capture_output=True)
    assert pd.returncode == po.returncode == 0
    assert pd.stdout == po.stdout


@pytest.mark.parametrize("text", [b"a\x00b\n", b"x" * 801 + b"\n"])
def test_setmaillist_same_refusals(scratch, text):
    d, o = scratch.root / "d.bin", scratch.root / "o.bin"
    rd = subprocess.run([DJB["setmaillist"], str(d), str(d) + ".tmp"], input=text, capture_output=True)
    ro = subprocess.run([ours("setmaillist"), str(o), str(o) + ".tmp"], input=text, capture_output=True)
    assert rd.returncode != 0 and ro.returncode == rd.returncode
    assert not o.exists()


@pytest.mark.parametrize("data", [b"noprefix\x00", b"&unterminated", b"\x00", b"&a\nb\x00", b"&" + b"x" * 900 + b"\x00"])
def test_printmaillist_same_refusals(data):
    rd = subprocess.run([DJB["printmaillist"]], input=data, capture_output=True)
    ro = subprocess.run([ours("printmaillist")], input=data, capture_output=True)
    assert rd.returncode == 100 and ro.returncode == 100


NEWINCLUDE = [
    b"# developers\nalice, bob\n\"Carol C\" <carol@example.org>\n:include: lists/more\n",
    b"dave\neve@example.net (Eve)\nplus+\nx@nodot\n",
    b"last-without-newline@example.com",
]
NEWINCLUDE_BAD = [b"|prog\n", b"/var/mail/x\n", b'"unterminated\n', b":include:\n", b"a\x00b\n",
                  b"x" * 801 + b"@example.com\n"]


@pytest.mark.parametrize("text", NEWINCLUDE)
def test_newinclude_same(scratch, text):
    (scratch.work / "list").write_bytes(text)
    rd = scratch.djb([DJB["newinclude"], "list"])
    d = (scratch.work / "list.bin").read_bytes()
    (scratch.work / "list.bin").unlink()
    ro = scratch.ours(["newinclude", "list"])
    assert rd.returncode == ro.returncode == 0, (rd.stderr, ro.stderr)
    assert (scratch.work / "list.bin").read_bytes() == d


@pytest.mark.parametrize("text", NEWINCLUDE_BAD)
def test_newinclude_same_refusals(scratch, text):
    (scratch.work / "list").write_bytes(text)
    rd = scratch.djb([DJB["newinclude"], "list"])
    ro = scratch.ours(["newinclude", "list"])
    assert rd.returncode != 0 and ro.returncode == rd.returncode, (rd.stderr, ro.stderr)


def test_newinclude_missing_file(scratch):
    rd = scratch.djb([DJB["newinclude"], "nothere"])
    ro = scratch.ours(["newinclude", "nothere"])
    assert rd.returncode == ro.returncode == 111


# --------------------------------------------------------------- fastforward

MESSAGE = b"From: someone@example.net\nSubject: test\n\nbody line\n"


def ff_setup(s: Scratch, aliases: bytes):
    """Compiles `aliases` with djb's newaliases into work/aliases.cdb and the
    :include: lists (with djb's newinclude) the corpus refers to."""
    rd, cdb = djb_newaliases(s, aliases)
    assert rd.returncode == 0, rd.stderr
    (s.work / "aliases.cdb").write_bytes(cdb)
    lists = s.work / "lists"
    if not lists.exists():
        shutil.copytree(DATA / "lists", lists)
    for name in ("developers", "more", "testers"):
        r = s.djb([DJB["newinclude"], f"lists/{name}"])
        assert r.returncode == 0, r.stderr


def norm(b: bytes) -> bytes:
    return re.sub(rb"qp \d+", b"qp N", b)


def run_ff_both(s: Scratch, args, env, message=MESSAGE, rc=0):
    """Runs djb's fastforward and ours with the same input; returns both
    (returncode, stderr, captured message, captured envelope)."""
    msgfile = s.root / "msg"
    msgfile.write_bytes(message)
    results = []
    for side in ("djb", "ours"):
        e = {"CAPTURE_RC": str(rc), **env}
        with open(msgfile, "rb") as f:
            if side == "djb":
                r = s.djb([DJB["fastforward"], *args], env=e, stdin=f)
            else:
                r = s.ours(["fastforward", *args], env=e, stdin=f)
        m, en = s.captured()
        results.append((r.returncode, norm(r.stderr), m, en))
    return results


FF_ENV = {"SENDER": "sender@example.net", "DTLINE": "Delivered-To: alias@example.com\n"}

FF_CASES = [
    ("mailing-lists", "staff@example.com"),
    ("mailing-lists", "everybody@example.com"),
    ("mailing-lists", "developers@example.com"),
    ("mailing-lists", "testers@example.com"),
    ("mailing-lists", "owner-staff@example.com"),
    ("mailing-lists", "STAFF@Example.COM"),
    ("mailing-lists", "nobody-here@example.com"),
    ("debian-default", "mailer-daemon@example.com"),
    ("debian-default", "webmaster@other.example"),
    ("freebsd-style", "root@example.com"),
    ("freebsd-style", "usenet@example.com"),
    ("freebsd-style", "ftp-bugs@example.com"),
    ("domains", "billing@virt.example"),
    ("domains", "anything@virt.example"),
    ("domains", "root@host1.example.com"),
    ("domains", "root@elsewhere.example"),
    ("domains", "x@catchall.example"),
    ("domains", "list@lists.example"),
    ("qualify", "loop1@example.com"),
    ("qualify", "self@example.com"),
    ("qualify", "plus@example.com"),
    ("rfc822", "joe@example.com"),
    ("rfc822", "quoted target@example.com"),
    ("programs", "logger@example.com"),
    ("programs", "mixed@example.com"),
    ("programs", "majordomo@example.com"),
]


def programs_aliases(s: Scratch):
    """programs.aliases with its programs replaced by harmless recorders."""
    log = s.root / "programs.log"
    text = (DATA / "programs.aliases").read_text()
    text = re.sub(r'"\|([^"]*)"|\|(\S+)', lambda m: '"|echo ran >> %s; cat >> %s"' % (log, log), text)
    return text.encode(), log


@pytest.mark.parametrize("corpus,recipient", FF_CASES, ids=[f"{c}:{r}" for c, r in FF_CASES])
@pytest.mark.parametrize("flags", [["-n"], [], ["-p"], ["-n", "-p"]], ids=["n", "deliver", "p", "np"])
def test_fastforward_same_decisions(scratch, corpus, recipient, flags):
    if corpus == "programs":
        text, log = programs_aliases(scratch)
    else:
        text, log = (DATA / f"{corpus}.aliases").read_bytes(), None
    ff_setup(scratch, text)
    env = {**FF_ENV, "RECIPIENT": recipient}
    d, o = run_ff_both(scratch, [*flags, "aliases.cdb"], env)
    if log is not None and log.exists():
        ran = log.read_bytes()
        # each side ran the programs the same way: the log holds two equal halves
        assert ran[: len(ran) // 2] == ran[len(ran) // 2:]
    assert o[0] == d[0], (d, o)
    assert o[2:] == d[2:]
    if d[0] in (0, 99):
        assert o[1] == d[1]


@pytest.mark.parametrize("default,ext,host", [("postmaster", None, "example.com"),
                                              (None, "staff", "example.com"),
                                              ("root", None, "host1.example.com")])
def test_fastforward_d_uses_default_and_host(scratch, default, ext, host):
    ff_setup(scratch, (DATA / "mailing-lists.aliases").read_bytes()
             + (DATA / "domains.aliases").read_bytes() + b"postmaster: pm@example.org\n")
    env = {**FF_ENV, "HOST": host, "RECIPIENT": "ignored@ignored"}
    if default:
        env["DEFAULT"] = default
    if ext:
        env["EXT"] = ext
    d, o = run_ff_both(scratch, ["-nd", "aliases.cdb"], env)
    assert o == d
    assert d[0] == 0


@pytest.mark.parametrize("env", [{}, {"HOST": "h"}, {"DEFAULT": "x"}], ids=["none", "host-only", "default-only"])
def test_fastforward_missing_environment(scratch, env):
    ff_setup(scratch, b"a: b\n")
    d, o = run_ff_both(scratch, ["-d", "aliases.cdb"], env)
    assert d[0] == o[0] == 100
    d, o = run_ff_both(scratch, ["aliases.cdb"], env)
    assert d[0] == o[0] == 100


@pytest.mark.parametrize("sender", ["", "#@[]", "other@example.net"], ids=["bounce", "doublebounce", "normal"])
def test_fastforward_owner_becomes_sender(scratch, sender):
    ff_setup(scratch, (DATA / "mailing-lists.aliases").read_bytes())
    env = {**FF_ENV, "RECIPIENT": "staff@example.com", "SENDER": sender}
    d, o = run_ff_both(scratch, ["aliases.cdb"], env)
    assert o == d
    assert d[0] == 0
    if sender in ("", "#@[]"):
        assert d[3].startswith(b"F" + sender.encode() + b"\x00")
    else:
        assert d[3].startswith(b"Fowner-staff@example.com\x00")


@pytest.mark.parametrize("qrc,expect", [(0, 0), (31, 100), (71, 111), (53, 111)])
def test_fastforward_queue_verdicts(scratch, qrc, expect):
    ff_setup(scratch, b"a: b@example.org\n")
    d, o = run_ff_both(scratch, ["aliases.cdb"], {**FF_ENV, "RECIPIENT": "a@example.com"}, rc=qrc)
    assert d[0] == o[0] == expect
    assert d[2:] == o[2:]


@pytest.mark.parametrize("exitcode,expect", [(0, 0), (100, 100), (64, 100), (112, 100), (1, 111), (111, 111)])
def test_fastforward_program_exit_codes(scratch, exitcode, expect):
    ff_setup(scratch, b'a: "|cat > /dev/null; exit %d", b@example.org\n' % exitcode)
    d, o = run_ff_both(scratch, ["aliases.cdb"], {**FF_ENV, "RECIPIENT": "a@example.com"})
    assert d[0] == o[0] == expect
    assert d[2:] == o[2:]


def test_fastforward_program_gets_preline_headers(scratch):
    out = scratch.root / "prog.out"
    ff_setup(scratch, b'a: "|cat > %s"\n' % str(out).encode())
    env = {**FF_ENV, "RECIPIENT": "a@example.com", "UFLINE": "From sender@example.net  Thu Jan  1 00:00:00 2026\n",
           "RPLINE": "Return-Path: <sender@example.net>\n"}
    results = []
    for side in ("djb", "ours"):
        if out.exists():
            out.unlink()
        with open(scratch.root / "m", "wb") as f:
            f.write(MESSAGE)
        with open(scratch.root / "m", "rb") as f:
            r = (scratch.djb([DJB["fastforward"], "aliases.cdb"], env=env, stdin=f) if side == "djb"
                 else scratch.ours(["fastforward", "aliases.cdb"], env=env, stdin=f))
        results.append((r.returncode, out.read_bytes()))
    assert results[0] == results[1]
    assert results[0][1].startswith(b"From sender@example.net")


@pytest.mark.parametrize("content", [b"", b"short", b"\xff" * 4096, b"\x00" * 2048])
def test_fastforward_corrupt_cdb(scratch, content):
    (scratch.work / "bad.cdb").write_bytes(content)
    d, o = run_ff_both(scratch, ["bad.cdb"], {**FF_ENV, "RECIPIENT": "a@example.com"})
    assert o[0] == d[0], (d, o)
    assert d[2] is None and o[2] is None


def test_fastforward_missing_cdb(scratch):
    d, o = run_ff_both(scratch, ["nonexistent.cdb"], {**FF_ENV, "RECIPIENT": "a@example.com"})
    assert d[0] == o[0] == 111


def test_fastforward_missing_include_defers(scratch):
    ff_setup(scratch, b"a: :include: lists/absent, b\n")
    d, o = run_ff_both(scratch, ["aliases.cdb"], {**FF_ENV, "RECIPIENT": "a@example.com"})
    assert d[0] == o[0] == 111
    assert d[2] is None and o[2] is None  # nothing queued


def test_fastforward_unreadable_include_defers(scratch):
    ff_setup(scratch, b"a: :include: lists/developers\n")
    (scratch.work / "lists" / "developers.bin").chmod(0o640)
    d, o = run_ff_both(scratch, ["aliases.cdb"], {**FF_ENV, "RECIPIENT": "a@example.com"})
    assert d[0] == o[0] == 111
    assert b"not world-readable" in o[1]


def test_fastforward_include_loop_ends(scratch):
    # Two lists that include each other, and a list that includes itself.
    w = scratch.work
    (w / "one").write_text("x1@example.org\n:include: two\n")
    (w / "two").write_text("x2@example.org\n:include: one\n:include: two\n")
    for n in ("one", "two"):
        assert scratch.djb([DJB["newinclude"], n]).returncode == 0
    rd, cdb = djb_newaliases(scratch, b"a: :include: one\nb: b, c, :include: two\nc: b\n")
    assert rd.returncode == 0
    (w / "aliases.cdb").write_bytes(cdb)
    for rcpt in ("a@example.com", "b@example.com"):
        for flags in (["-n"], []):
            d, o = run_ff_both(scratch, [*flags, "aliases.cdb"], {**FF_ENV, "RECIPIENT": rcpt})
            assert o == d
            assert d[0] == 0


def test_fastforward_cdb_from_our_newaliases(scratch):
    """djb's fastforward reading our cdb decides as ours does on djb's."""
    text = (DATA / "mailing-lists.aliases").read_bytes()
    ff_setup(scratch, text)
    ro, co = our_newaliases(scratch, text)
    assert ro.returncode == 0
    (scratch.work / "aliases.cdb").write_bytes(co)
    d, o = run_ff_both(scratch, ["-n", "aliases.cdb"], {**FF_ENV, "RECIPIENT": "everybody@example.com"})
    assert o == d and d[0] == 0


def test_fastforward_usage(scratch):
    d, o = run_ff_both(scratch, [], {})
    assert d[0] == o[0] == 100
    d, o = run_ff_both(scratch, ["-x", "a.cdb"], {})
    assert d[0] == o[0] == 100


@pytest.mark.parametrize("args,code,named", [
    (["-nx", "a.cdb"], 100, None),          # an unknown flag in a cluster
    (["--x", "a.cdb"], 111, "a.cdb"),       # any "--..." ends the flags and is dropped
    (["--", "-n"], 111, "-n"),              # after "--" a flag-looking name is the cdb
    (["-"], 111, "-"),                      # a lone "-" is an argument
    (["-n", "-N", "-p", "-P", "-d", "-D", "a.cdb"], 111, "a.cdb"),
])
def test_fastforward_arguments_like_djb(scratch, args, code, named):
    """djb's getopt, argument by argument: the same exit code, and a missing
    cdb named the same way."""
    d, o = run_ff_both(scratch, args, {"RECIPIENT": "x@example.com", **FF_ENV})
    assert d[0] == o[0] == code, (d, o)
    if named:
        want = f"unable to read {named}:".encode()
        assert want in d[1] and want in o[1], (d, o)


# --------------------------------------------------------------- dot-forward

DF_ENV = {"USER": "joe", "HOST": "example.com", "NEWSENDER": "sender@example.net",
          "DTLINE": "Delivered-To: joe@example.com\n", "RPLINE": "Return-Path: <sender@example.net>\n",
          "UFLINE": "From sender@example.net  Thu Jan  1 00:00:00 2026\n"}


def run_df_both(s: Scratch, args, files: dict, env=None, rc=0, message=MESSAGE):
    home = s.root / "home"
    home.mkdir(exist_ok=True)
    for name, content in files.items():
        p = home / name
        if content is None:
            if p.exists():
                p.unlink()
        else:
            p.write_bytes(content)
    msgfile = s.root / "msg"
    msgfile.write_bytes(message)
    out = []
    for side in ("djb", "ours"):
        e = {**DF_ENV, "CAPTURE_RC": str(rc), **(env or {})}
        with open(msgfile, "rb") as f:
            r = (s.djb([DJB["dot-forward"], *args], env=e, stdin=f, cwd=home) if side == "djb"
                 else s.ours(["dot-forward", *args], env=e, stdin=f, cwd=home))
        m, en = s.captured()
        out.append((r.returncode, norm(r.stderr), m, en))
    return out


DOTFORWARDS = [
    ("forward", b"bob@example.org\n"),
    ("several", b"bob, fred, susan\nJoe Shmoe <shmoe@heaven.af.mil>\n"),
    ("direct", b"joe\n"),
    ("direct-and-copy", b"\\joe, copy@example.org\n"),
    ("direct-fqdn", b"JOE@Example.COM\n"),
    ("comments", b"# forward everything\nbob (Bob, the postmaster) @heaven.af.mil\n"),
    ("quoted", b'"spaced out mailbox"@heaven.af.mil\n'),
    ("qualify", b"bare, nodot@host, plus@host+\n"),
    ("empty", b""),
    ("only-comments", b"# nothing\n"),
    ("blank-line", b"\n"),
    ("no-newline", b"bob@example.org"),
    ("colon", b"group: a@b.c;\n"),
    ("nul-byte", b"bob@exa\x00mple.org, fred\n"),
    ("nul-program", b'"|cat >/dev/null\x00; exit 100"\n'),
    ("megabyte-line", b", ".join(b"member%06d@example.org" % i for i in range(45000)) + b"\n"),
    ("crlf", b"bob@example.org\r\n"),
]


@pytest.mark.parametrize("name,content", DOTFORWARDS, ids=[d[0] for d in DOTFORWARDS])
@pytest.mark.parametrize("flags", [["-n"], []], ids=["n", "deliver"])
def test_dot_forward_same(scratch, name, content, flags):
    d, o = run_df_both(scratch, [*flags, ".forward"], {".forward": content})
    assert o[0] == d[0], (d, o)
    assert o == d


@pytest.mark.parametrize("content", [b'"unterminated\n', b"/var/mail/joe\n", b"b>\n", b"x\n(unclosed\n"])
def test_dot_forward_same_refusals(scratch, content):
    d, o = run_df_both(scratch, [".forward"], {".forward": content})
    assert d[0] == o[0] == 111
    assert d[2] is None and o[2] is None


def test_dot_forward_several_files(scratch):
    files = {".forward": None, ".forward2": b"", ".forward3": b"third@example.org\n", ".forward4": b"fourth@x.y\n"}
    d, o = run_df_both(scratch, [".forward", ".forward2", ".forward3", ".forward4"], files)
    assert o == d
    assert d[0] == 99 and d[3] == b"Fsender@example.net\x00Tthird@example.org\x00\x00"
    d, o = run_df_both(scratch, ["-n", ".forward", ".forward2"], files)
    assert o == d and d[0] == 0


def test_dot_forward_missing_file_is_zero(scratch):
    d, o = run_df_both(scratch, [".forward"], {".forward": None})
    assert d[0] == o[0] == 0


def test_dot_forward_unreadable_file_defers(scratch):
    d, o = run_df_both(scratch, [".forward/x"], {".forward": b"a@b.c\n"})  # ENOTDIR
    assert d[0] == o[0] == 111


@pytest.mark.parametrize("exitcode,expect", [(0, 99), (100, 100), (77, 100), (1, 111)])
def test_dot_forward_programs(scratch, exitcode, expect):
    out = scratch.root / "prog.out"
    content = b'"|cat >> %s; exit %d"\n' % (str(out).encode(), exitcode)
    d, o = run_df_both(scratch, [".forward"], {".forward": content})
    assert d[0] == o[0] == expect
    got = out.read_bytes()
    half = len(got) // 2
    assert got[:half] == got[half:]
    assert got[:half] == (DF_ENV["UFLINE"] + DF_ENV["RPLINE"] + DF_ENV["DTLINE"]).encode() + MESSAGE


def test_dot_forward_program_and_forward_and_direct(scratch):
    out = scratch.root / "prog.out"
    content = b'joe, "|cat > /dev/null", other@example.org\n'
    d, o = run_df_both(scratch, [".forward"], {".forward": content})
    assert o == d
    assert d[0] == 0  # direct delivery wins: qmail-local goes on to the mailbox


@pytest.mark.parametrize("qrc,expect", [(31, 100), (71, 111)])
def test_dot_forward_queue_verdicts(scratch, qrc, expect):
    d, o = run_df_both(scratch, [".forward"], {".forward": b"a@b.c\n"}, rc=qrc)
    assert d[0] == o[0] == expect


def test_dot_forward_usage(scratch):
    d, o = run_df_both(scratch, ["-x"], {})
    assert d[0] == o[0] == 100


# ------------------------------------------------- end to end under qmail-local
# qmail-local runs the .qmail lines the migration puts in place; forwarded
# mail lands in the real queue of a home made by qmail-setup.

E2E_DOMAIN = "test.example.com"
E2E_MSG = b"From: someone@example.net\nSubject: e2e\n\nhello\n"


def e2e_local(qhome, tmp_path, user, homedir, local, dash, ext, msg=E2E_MSG, sender="s@example.net"):
    mf = tmp_path / f"msg-{len(list(tmp_path.iterdir()))}"
    mf.write_bytes(msg)
    env = {"PATH": f"{qhome.path / 'bin'}:/usr/bin:/bin"}
    with open(mf, "rb") as f:
        return qhome.run("qmail-local", user, str(homedir), local, dash, ext, E2E_DOMAIN, sender,
                         "./Maildir/", stdin=f, env=env)


def e2e_queued(qhome):
    envs = [p.read_bytes() for p in qhome.queue_files("todo")]
    mess = [p.read_bytes() for p in qhome.queue_files("mess")]
    return envs, mess


@pytest.mark.skipif(not (bin_dir() / "qmail-local").exists(), reason="qmail-local not built")
def test_e2e_alias_through_fastforward_and_loop_bounces(qhome, tmp_path):
    aliases = tmp_path / "aliases"
    aliases.write_text("staff: alice@example.org, bob\nowner-staff: staff-admin@example.org\n"
                       "loop: loop\n")
    r = qhome.run("newaliases", "-f", str(aliases))
    assert r.returncode == 0, r.stderr
    alias_home = qhome.path / "alias"
    (alias_home / ".qmail-default").write_text(f"|fastforward -d {tmp_path}/aliases.cdb\n")
    r = e2e_local(qhome, tmp_path, "alias", alias_home, "alias-staff", "-", "staff")
    assert r.returncode == 0, (r.stdout, r.stderr)
    (env,), (mess,) = e2e_queued(qhome)
    assert env.endswith(b"\0Fowner-staff@test.example.com\0Tbob@test.example.com\0Talice@example.org\0")
    assert b"\nDelivered-To: alias-staff@test.example.com\n" in mess
    assert E2E_MSG in mess
    # The forwarded copy coming back to the same address is a loop:
    # qmail-local bounces it instead of forwarding it again.
    r = e2e_local(qhome, tmp_path, "alias", alias_home, "alias-staff", "-", "staff", msg=mess)
    assert r.returncode == 100
    assert b"looping" in r.stderr
    # An unknown name bounces; an alias pointing at itself forwards nothing more.
    r = e2e_local(qhome, tmp_path, "alias", alias_home, "alias-nobody", "-", "nobody")
    assert r.returncode == 100 and b"no mailbox" in r.stdout + r.stderr


@pytest.mark.skipif(not (bin_dir() / "qmail-local").exists(), reason="qmail-local not built")
def test_e2e_user_dot_forward(qhome, tmp_path):
    home = tmp_path / "joe"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    assert qhome.run("maildirmake", str(home / "Maildir")).returncode == 0
    (home / ".qmail").write_text("|dot-forward .forward\n./Maildir/\n")
    # Forward a copy and keep one: "\joe" is delivery to the user.
    (home / ".forward").write_text("# keep a copy\n\\joe, Joe Elsewhere <joe@elsewhere.example>\n")
    r = e2e_local(qhome, tmp_path, "joe", home, "joe", "", "")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert len(list((home / "Maildir" / "new").iterdir())) == 1
    (envl,), _ = e2e_queued(qhome)
    assert envl.endswith(b"\0Fs@example.net\0Tjoe@elsewhere.example\0")
    # Forward only: the mailbox line is skipped (dot-forward exits 99).
    (home / ".forward").write_text("joe@elsewhere.example\n")
    r = e2e_local(qhome, tmp_path, "joe", home, "joe", "", "")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert len(list((home / "Maildir" / "new").iterdir())) == 1
    assert len(e2e_queued(qhome)[0]) == 2
    # A program in .forward that bounces makes the delivery bounce.
    (home / ".forward").write_text('"|exit 100"\n')
    assert e2e_local(qhome, tmp_path, "joe", home, "joe", "", "").returncode == 100


def test_fastforward_setforward_table_programs_and_lists(scratch):
    """A table made by setforward: '|' programs get the bare message, '!'
    programs the preline lines, lists and owners as in newaliases' tables."""
    w = scratch.work
    out = scratch.root / "pipe.out"
    (w / "members").write_text("m1@example.org\n&m2@example.org\n./nested.bin\n")
    (w / "nested").write_text("m3@example.org\n")
    for n in ("members", "nested"):
        r = subprocess.run([ours("setmaillist"), str(w / f"{n}.bin"), str(w / f"{n}.tmp")],
                           input=(w / n).read_bytes(), capture_output=True)
        assert r.returncode == 0
    table = (f"list@example.com: ./members.bin, |cat >> {out}, !cat >> {out}, x@example.org;\n"
             "list@example.com: ?list-owner@example.com;\n"
             "@example.net: catchall@example.org;\n").encode()
    r = subprocess.run([ours("setforward"), str(w / "t.cdb"), str(w / "t.tmp")], input=table, capture_output=True)
    assert r.returncode == 0, r.stderr
    env = {**FF_ENV, "RPLINE": "Return-Path: <sender@example.net>\n"}
    for rcpt in ("list@example.com", "anyone@example.net", "LIST@EXAMPLE.COM"):
        if out.exists():
            out.unlink()
        d, o = run_ff_both(scratch, ["t.cdb"], {**env, "RECIPIENT": rcpt})
        assert o == d, (d, o)
        assert d[0] == 0
    got = out.read_bytes()
    half = len(got) // 2
    assert got[:half] == got[half:]
    assert got[:half] == MESSAGE + env["RPLINE"].encode() + env["DTLINE"].encode() + MESSAGE


# ------------------------------------------------- end to end through qmail-send



@pytest.mark.skipif(not all((bin_dir() / p).exists() for p in ("qmail-send", "qmail-local", "qmail-getpw", "qmail-newu")),
                    reason="qmail-send, qmail-local, qmail-getpw or qmail-newu not built")
def test_e2e_through_qmail_send(qhome, tmp_path):
    """Mail to an alias and to a user with a .forward reaches its targets
    through qmail-send; a forwarding loop ends as a bounce, not a storm."""
    fq = qhome.fqdn
    uid, gid = os.getuid(), os.getgid()
    homes = {}
    for name in ("joe", "fwd"):
        h = qhome.path / f"home-{name}"
        for sub in ("tmp", "new", "cur"):
            (h / "Maildir" / sub).mkdir(parents=True)
        homes[name] = h
    (qhome.path / "users" / "assign").write_text(
        "".join(f"={n}:{n}:{uid}:{gid}:{h}:::\n" for n, h in homes.items()) + ".\n")
    assert qhome.run("qmail-newu").returncode == 0
    # The migration's two lines: fastforward for ~alias, dot-forward first in defaultdelivery.
    aliases = tmp_path / "aliases"
    aliases.write_text("staff: joe, fwd\nloop1: loop2\nloop2: loop1@" + fq + "\n")
    assert qhome.run("newaliases", "-f", str(aliases)).returncode == 0
    (qhome.path / "alias" / ".qmail-default").write_text(f"|fastforward -d {aliases}.cdb\n")
    qhome.control("defaultdelivery", "|dot-forward .forward\n./Maildir/\n")
    (homes["fwd"] / ".forward").write_text("# keep one, send one on\n\\fwd, joe\n")

    queue_empty = lambda: not any(qhome.queue_files(s) for s in ("todo", "mess", "info", "local", "remote", "bounce"))
    new = lambda n: sorted((homes[n] / "Maildir" / "new").iterdir())
    with qmail_send_running(qhome) as logtext:
        def inject(rcpts, subject):
            qhome.enqueue(b"Subject: " + subject + b"\n\nbody\n", f"joe@{fq}", rcpts)
        # staff -> joe and fwd; fwd's .forward keeps a copy and sends one to joe.
        inject([f"staff@{fq}"], b"to staff")
        wait_for(lambda: len(new("joe")) == 2 and len(new("fwd")) == 1 and queue_empty(), 30, "staff deliveries")
        assert all(b"Subject: to staff" in p.read_bytes() for p in new("joe") + new("fwd"))
        assert "failure" not in logtext()
        # A loop through two aliases: qmail-local sees its own Delivered-To
        # line the second time round and bounces; the bounce reaches joe.
        # (Maildir names do not sort in delivery order: one delivery
        # process writes many, "time.pid_seq", and _10 sorts before _9.)
        before = set(new("joe"))
        inject([f"loop1@{fq}"], b"loop")
        wait_for(lambda: len(new("joe")) == len(before) + 1 and queue_empty(), 30, "the loop's bounce")
        [bounce] = [p.read_bytes() for p in new("joe") if p not in before]
        assert b"This message is looping" in bounce
        assert len(re.findall(r"starting delivery \d+: msg \d+ to local \S*loop", logtext())) <= 4
