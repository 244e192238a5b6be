"""qmail-inject, sendmail, predate and datemail, run as programs against a
qmail home: what lands in the queue (mess/*/N: Received line then the
rewritten message; todo/N: the envelope), what goes to QMAILQUEUE, exit
codes and messages for bad input."""
import os
import re
import stat
import subprocess
import sys

import pytest


def queued(home):
    """[(message bytes without the Received line, envelope fields)] for every queued message."""
    out = []
    for todo in home.queue_files("todo"):
        num = int(todo.name)
        data = (home.path / "queue" / "mess" / str(num % 23) / str(num)).read_bytes()
        received, rest = data.split(b"\n", 1)
        assert received.startswith(b"Received: (qmail "), received
        fields = todo.read_bytes().split(b"\0")
        assert fields[-1] == b""
        out.append((rest, fields[:-1]))
    return out


def only_message(home):
    q = queued(home)
    assert len(q) == 1, q
    msg, env = q[0]
    assert env[0] == b"u%d" % os.getuid()
    assert env[1].startswith(b"p")
    sender = env[2]
    assert sender.startswith(b"F")
    rcpts = [f[1:] for f in env[3:]]
    assert all(f.startswith(b"T") for f in env[3:])
    return msg, sender[1:], rcpts


def header_of(msg: bytes) -> bytes:
    return msg.split(b"\n\n", 1)[0] + b"\n"


def inject(home, message, *args, env=None, prog="qmail-inject"):
    e = {"USER": "djb"}
    if env:
        e.update(env)
    return home.run(prog, *args, input=message, env=e)


def test_basic_rewrite_and_queue(qhome):
    r = inject(qhome, b"To: fred, joe@mammoth, e@m.cs+\nCc: A Person <a@b.example.org>\n"
                      b"Bcc: secret\nSubject: hi\n\nbody line\n")
    assert r.returncode == 0, r.stderr
    msg, sender, rcpts = only_message(qhome)
    h = header_of(msg)
    assert re.search(rb"^Date: \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d -0000\n", h, re.M), h
    assert re.search(rb"^Message-ID: <\d{14}\.\d+\.qmail@test\.example\.com>\n", h, re.M), h
    assert b"From: djb@test.example.com\n" in h
    assert b"To: fred@test.example.com, joe@mammoth.example.com, e@m.cs.example.com\n" in h
    assert b"Cc: A Person <a@b.example.org>\n" in h
    assert b"Bcc" not in h and b"secret" not in msg
    assert msg.endswith(b"\n\nbody line\n")
    assert sender == b"djb@test.example.com"
    assert sorted(rcpts) == sorted([b"fred@test.example.com", b"joe@mammoth.example.com",
                                    b"e@m.cs.example.com", b"a@b.example.org",
                                    b"secret@test.example.com"])


def test_print_mode_does_not_queue(qhome):
    r = inject(qhome, b"To: fred\n\nx\n", "-n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"Return-Path: <djb@test.example.com>\n")
    assert b"To: fred@test.example.com\n" in r.stdout
    assert r.stdout.endswith(b"\n\nx\n")
    assert qhome.queue_files("todo") == []


def test_controls_and_environment(qhome):
    qhome.control("defaulthost", "mail.corp\n")
    qhome.control("defaultdomain", "corp.example\n")
    qhome.control("plusdomain", "plus.example\n")
    qhome.control("idhost", "ids.corp.example\n")
    r = inject(qhome, b"To: fred, x@y+\n\n", env={"QMAILUSER": "boss", "QMAILNAME": "The Boss",
                                                   "QMAILSUSER": "bounces", "QMAILSHOST": "b.example"})
    assert r.returncode == 0, r.stderr
    msg, sender, rcpts = only_message(qhome)
    h = header_of(msg)
    assert b"To: fred@mail.corp, x@y.plus.example\n" in h, h
    assert b'From: "The Boss" <boss@mail.corp>\n' in h, h
    assert re.search(rb"Message-ID: <\d+\.\d+\.qmail@ids\.corp\.example>", h)
    assert sender == b"bounces@b.example"
    # a defaulthost without dots gets the default domain as well
    qhome.control("defaulthost", "mailhub\n")
    r = qhome.run("qmail-inject", "-n", input=b"To: fred\n\n")
    assert b"To: fred@mailhub.corp.example\n" in r.stdout, r.stdout


def test_qmailinject_flags(qhome):
    msg_in = (b"From: forged@evil.example\nMessage-ID: <old@id>\nReturn-Path: <rp@x.example>\n"
              b"To: a@b.example\n\n")
    r = inject(qhome, msg_in, env={"QMAILINJECT": "fisc", "NAME": "Dan"})
    assert r.returncode == 0, r.stderr
    msg, sender, _ = only_message(qhome)
    h = header_of(msg)
    assert b"forged" not in h and b"<old@id>" not in h and b"Return-Path" not in h
    assert b"From: djb@test.example.com (Dan)\n" in h
    assert sender == b"djb@test.example.com"  # s: the incoming Return-Path is ignored


def test_return_path_sets_sender_and_verp(qhome):
    assert inject(qhome, b"Return-Path: <rp@x.example>\nTo: a@b.example\n\n").returncode == 0
    _, sender, _ = only_message(qhome)
    assert sender == b"rp@x.example"
    for f in qhome.queue_files("todo"):
        f.unlink()
    r = qhome.run("qmail-inject", input=b"To: a@b.example\n\n", env={"USER": "list", "QMAILINJECT": "r"})
    assert r.returncode == 0, r.stderr
    _, sender, _ = only_message(qhome)
    assert sender == b"list-@test.example.com-@[]"  # qmail-send's per-recipient VERP mark
    r = qhome.run("qmail-inject", "-n", input=b"To: a@b.example\n\n", env={"USER": "list", "QMAILINJECT": "m"})
    assert re.match(rb"Return-Path: <list-\d+\.\d+@test\.example\.com>\n", r.stdout), r.stdout


def test_recipient_options(qhome):
    m = b"To: hdr@h.example\n\n"
    env = {"USER": "djb"}
    cases = [((), [b"hdr@h.example"]), (("arg@a.example",), [b"arg@a.example"]),
             (("-a", "arg@a.example"), [b"arg@a.example"]), (("-h", "arg@a.example"), [b"hdr@h.example"]),
             (("-H", "arg@a.example"), [b"arg@a.example", b"hdr@h.example"]),
             (("-f", "s@s.example", "arg@a.example"), [b"arg@a.example"])]
    for args, expected in cases:
        for f in qhome.queue_files("todo"):
            f.unlink()
        r = qhome.run("qmail-inject", *args, input=m, env=env)
        assert r.returncode == 0, (args, r.stderr)
        _, sender, rcpts = only_message(qhome)
        assert rcpts == expected, args
        if "-f" in args:
            assert sender == b"s@s.example"


def test_mail_followup_to(qhome, tmp_path):
    lists = tmp_path / "lists"
    lists.write_text("# my lists\nqmail@list.example\n")
    r = qhome.run("qmail-inject", "-n", input=b"To: QMAIL@list.example\nCc: me@x.example\n\n",
                  env={"QMAILMFTFILE": str(lists)})
    assert b"Mail-Followup-To: me@x.example,\n  QMAIL@list.example\n" in r.stdout, r.stdout


def test_qmailqueue_receives_message_and_envelope(qhome, tmp_path):
    cap = tmp_path / "cap"
    script = tmp_path / "fakeq"
    script.write_text("#!/bin/sh\ncat > %s.msg\ncat <&1 > %s.env\nexit 0\n" % (cap, cap))
    script.chmod(0o755)
    r = inject(qhome, b"To: a@b.example\nSubject: s\n\nbody\n", env={"QMAILQUEUE": str(script)})
    assert r.returncode == 0, r.stderr
    msg = (tmp_path / "cap.msg").read_bytes()
    assert msg.startswith(b"Date: ") and msg.endswith(b"Subject: s\n\nbody\n")
    assert (tmp_path / "cap.env").read_bytes() == b"Fdjb@test.example.com\0Ta@b.example\0\0"
    assert qhome.queue_files("todo") == []


@pytest.mark.parametrize("code,exit_code,text", [
    (31, 100, b"qmail-inject: fatal: mail server permanently rejected message (#5.3.0)\n"),
    (71, 111, b"qmail-inject: fatal: mail server temporarily rejected message (#4.3.0)\n"),
    (53, 111, b"qmail-inject: fatal: qq write error or disk full (#4.3.0)\n"),
])
def test_queue_failures(qhome, tmp_path, code, exit_code, text):
    script = tmp_path / "failq"
    script.write_text("#!/bin/sh\ncat >/dev/null\nexit %d\n" % code)
    script.chmod(0o755)
    r = inject(qhome, b"To: a@b.example\n\nx\n", env={"QMAILQUEUE": str(script)})
    assert r.returncode == exit_code
    assert r.stderr == text


def test_queue_program_missing(qhome, tmp_path):
    r = inject(qhome, b"To: a@b.example\n\nx\n", env={"QMAILQUEUE": str(tmp_path / "nope")})
    assert r.returncode == 111
    assert r.stderr == b"qmail-inject: fatal: unable to run qmail-queue\n"


def test_no_recipients(qhome):
    r = inject(qhome, b"Subject: nobody\n\nx\n")
    assert r.returncode == 100
    assert r.stderr == b"qmail-inject: fatal: no recipients\n"
    assert qhome.queue_files("todo") == []


def test_bad_usage_and_bad_sender_field(qhome):
    r = inject(qhome, b"To: a@b.example\n\n", "-x")
    assert r.returncode == 100 and b"usage" in r.stderr
    r = inject(qhome, b"From: (unclosed\nTo: a@b.example\n\n")
    assert r.returncode == 100
    assert r.stderr.startswith(b"qmail-inject: fatal: unable to parse this line:\nFrom: (unclosed")


def test_nul_bytes(qhome):
    body = b"To: a@b.example\nSubject: a\0b\n\nbody\0with nul\n"
    assert inject(qhome, body).returncode == 0
    msg, _, _ = only_message(qhome)
    assert b"Subject: a\0b\n" in msg and msg.endswith(b"\n\nbody\0with nul\n")
    r = inject(qhome, b'To: "a\0b"@c.example\n\n')
    assert r.returncode == 100
    assert r.stderr.startswith(b"qmail-inject: fatal: NUL byte in address")


def test_long_header_line_and_limit(qhome):
    big = b"x" * (1 << 20)
    assert inject(qhome, b"To: a@b.example\nSubject: " + big + b"\n\nbody\n").returncode == 0
    msg, _, _ = only_message(qhome)
    assert b"Subject: " + big + b"\n\nbody\n" in msg
    r = inject(qhome, b"To: a@b.example\nSubject: " + big * 3 + b"\n\nbody\n")
    assert r.returncode == 100
    assert r.stderr == b"qmail-inject: fatal: message header exceeds 2097152 bytes\n"
    assert len(qhome.queue_files("todo")) == 1


def test_crlf_and_missing_separator(qhome):
    assert inject(qhome, b"To: a@b.example\r\nSubject: crlf\r\n\r\nbody\r\n").returncode == 0
    msg, _, _ = only_message(qhome)
    assert b"Subject: crlf\n\nbody\r\n" in msg and b"\r\n\r\n" not in msg
    for f in qhome.queue_files("todo"):
        f.unlink()
    # a line that is not a field starts the body after an inserted blank line
    assert inject(qhome, b"To: a@b.example\nno colon here\nmore").returncode == 0
    msg, _, _ = only_message(qhome)
    assert msg.endswith(b"To: a@b.example\n\nno colon here\nmore\n")
    for f in qhome.queue_files("todo"):
        f.unlink()
    # folded fields are unfolded by the rewrite, others kept
    assert inject(qhome, b"To: a@b.example,\n\tc@d.example\nX-Long: one\n two\n\n").returncode == 0
    msg, _, rcpts = only_message(qhome)
    assert b"To: a@b.example, c@d.example\nX-Long: one\n two\n" in msg
    assert sorted(rcpts) == [b"a@b.example", b"c@d.example"]


def test_unreadable_stdin(qhome):
    d = os.open(qhome.path, os.O_RDONLY)  # a directory: read() fails with EISDIR
    try:
        p = subprocess.run([qhome.bin("qmail-inject"), "a@b.example"], stdin=d, env=qhome.env,
                           capture_output=True, timeout=30)
    finally:
        os.close(d)
    assert p.returncode == 111
    assert p.stderr == b"qmail-inject: fatal: read error\n"
    assert qhome.queue_files("todo") == []


def test_huge_body_is_streamed(qhome, tmp_path):
    size = 40 << 20
    src = tmp_path / "big"
    with open(src, "wb") as f:
        f.write(b"To: a@b.example\n\n")
        line = b"y" * 1023 + b"\n"
        for _ in range(size // 1024):
            f.write(line)
    code = ("import resource,subprocess,sys\n"
            "r=subprocess.run([sys.argv[1]],stdin=open(sys.argv[2],'rb'))\n"
            "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    p = subprocess.run([sys.executable, "-c", code, qhome.bin("qmail-inject"), str(src)],
                       env=qhome.env, capture_output=True, timeout=300)
    rc, maxrss_kb = map(int, p.stdout.split())
    assert rc == 0, p.stderr
    assert maxrss_kb < 30 * 1024, maxrss_kb  # the body is not held in memory
    msg, _, _ = only_message(qhome)
    assert len(msg) > size


def test_sendmail_mapping(qhome):
    m = b"To: hdr@h.example\nBcc: bcc@h.example\n\nbody\n"
    r = qhome.run("sendmail", "-t", "-i", "-oem", "-B", "8BITMIME", "-v", "-f", "bounce@s.example",
                  "-F", "Full Name", input=m, env={"USER": "djb"})
    assert r.returncode == 0, r.stderr
    msg, sender, rcpts = only_message(qhome)
    assert sender == b"bounce@s.example"
    assert sorted(rcpts) == [b"bcc@h.example", b"hdr@h.example"]
    assert b"From: bounce@s.example\n" in msg  # netqmail: -f names the sender, -F is dropped
    for f in qhome.queue_files("todo"):
        f.unlink()
    # without -t: argument recipients only, the header's are ignored
    r = qhome.run("sendmail", "-oi", "arg@a.example", input=m + b".\nafter the dot\n", env={"USER": "djb"})
    assert r.returncode == 0, r.stderr
    msg, _, rcpts = only_message(qhome)
    assert rcpts == [b"arg@a.example"]
    assert msg.endswith(b"\n\nbody\n.\nafter the dot\n")  # a lone dot is just a line


SENDMAIL_FROM = [
    # (arguments, the message's own From: or None, the From: qmail-inject writes)
    (["-f", "s@example.net", "-F", "Sam"], None, b"From: s@example.net\n"),
    (["-F", "Sam", "-f", "s@example.net"], None, b"From: s@example.net\n"),
    (["-f", "s@example.net"], None, b"From: s@example.net\n"),
    (["-f", "sam"], None, b"From: sam@dflt.example\n"),
    (["-f", "sam", "-F", "Sam"], None, b"From: sam@dflt.example\n"),
    (["-F", "Sam"], None, b'From: "Sam" <djb@envhost.example>\n'),
    ([], None, b'From: "Env Name" <djb@envhost.example>\n'),
    (["-f", "s@example.net", "-F", "Sam"], b"From: Other <o@x.example>\n", b"From: Other <o@x.example>\n"),
    (["-f", "sam"], b"From: Other <o@x.example>\n", b"From: Other <o@x.example>\n"),
]


@pytest.mark.parametrize("args,own,want", SENDMAIL_FROM, ids=[" ".join(c[0]) + (" own-From" if c[1] else "") for c in SENDMAIL_FROM])
def test_sendmail_sender_sets_from_as_netqmail(qhome, args, own, want):
    # netqmail 1.04+'s do_sender(): -f takes the place of the name and host
    # from the environment; the envelope sender is -f as qmail-inject reads it
    qhome.control("defaulthost", "dflt.example\n")
    r = qhome.run("sendmail", *args, "rcpt@r.example", input=(own or b"") + b"Subject: s\n\nbody\n",
                  env={"USER": "djb", "MAILNAME": "Env Name", "MAILHOST": "envhost.example"})
    assert r.returncode == 0, r.stderr
    msg, sender, rcpts = only_message(qhome)
    froms = [l + b"\n" for l in header_of(msg).splitlines() if l.lower().startswith(b"from:")]
    assert froms == [want], header_of(msg)
    assert rcpts == [b"rcpt@r.example"]
    if "-f" in args:
        f = args[args.index("-f") + 1]
        assert sender == (f if "@" in f else f + "@dflt.example").encode()


def test_sendmail_modes_and_errors(qhome, tmp_path):
    r = qhome.run("sendmail", "-bs", input=b"QUIT\r\n")
    if not os.path.exists(qhome.bin("qmail-smtpd")):
        assert r.returncode == 111
        assert r.stderr.startswith(b"sendmail: fatal: unable to run qmail-smtpd")
    r = qhome.run("sendmail", "-q")
    assert r.returncode == 100 and r.stderr.startswith(b"sendmail: usage:")
    r = qhome.run("sendmail", "-bi")
    assert r.returncode == 100
    r = qhome.run("sendmail", "-bp")
    if os.path.exists(qhome.bin("qmail-qread")):
        assert r.returncode == 0, r.stderr
    mailq = tmp_path / "bin" / "mailq"
    mailq.parent.mkdir()
    mailq.symlink_to(qhome.bin("sendmail"))
    p = subprocess.run([str(mailq)], env=qhome.env, capture_output=True, timeout=30)
    assert p.returncode == (0 if os.path.exists(qhome.bin("qmail-qread")) else 111), p.stderr
    # no message on stdin and no recipients: qmail-inject's verdict comes through
    r = qhome.run("sendmail", input=b"Subject: x\n\n")
    assert r.returncode == 100
    assert r.stderr == b"qmail-inject: fatal: no recipients\n"


def test_predate_and_datemail(qhome, tmp_path):
    r = subprocess.run([qhome.bin("predate"), "cat"], input=b"Subject: x\n\nbody\n",
                       capture_output=True, env=dict(qhome.env, TZ="UTC"), timeout=30)
    assert r.returncode == 0
    assert re.fullmatch(rb"Date: \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000\nSubject: x\n\nbody\n", r.stdout), r.stdout
    r = subprocess.run([qhome.bin("predate"), "sh", "-c", "cat >/dev/null; exit 7"], input=b"x\n",
                       capture_output=True, timeout=30)
    assert r.returncode == 7
    r = subprocess.run([qhome.bin("predate")], capture_output=True, timeout=30)
    assert r.returncode == 100 and r.stderr == b"predate: usage: predate child\n"
    r = subprocess.run([qhome.bin("predate"), str(tmp_path / "missing")], capture_output=True, timeout=30)
    assert r.returncode == 111 and b"unable to run" in r.stderr
    r = qhome.run("datemail", "-oi", "a@b.example", input=b"Subject: dated\n\nbody\n",
                  env={"USER": "djb", "TZ": "Europe/Berlin"})
    assert r.returncode == 0, r.stderr
    msg, _, rcpts = only_message(qhome)
    assert rcpts == [b"a@b.example"]
    # predate's local-time Date is kept; qmail-inject adds none of its own
    assert len(re.findall(rb"^Date: ", msg, re.M)) == 1
    assert re.search(rb"^Date: .* [+-]\d{4}\n", msg, re.M), msg


def test_megabyte_address_list_and_many_folded_lines(qhome):
    # about 1 MB of addresses on one line: linear work, every one queued
    addrs = [b"u%d@x.example" % i for i in range(70000)]
    r = qhome.run("qmail-inject", "-n", input=b"To: " + b", ".join(addrs) + b"\n\nbody\n", timeout=120)
    assert r.returncode == 0, r.stderr
    to = r.stdout.split(b"\nTo: ", 1)[1].split(b"\n\n", 1)[0]
    assert all(len(l) <= 80 for l in to.split(b"\n"))
    assert to.count(b"@x.example") == 70000
    # a field folded over 40000 lines stays within the limit and is kept as is
    folded = b"X-Folded: start\n" + b" continued line\n" * 40000
    r = qhome.run("qmail-inject", "a@b.example", input=folded + b"\nbody\n", timeout=120)
    assert r.returncode == 0, r.stderr
    msg, _, _ = only_message(qhome)
    assert folded in msg


def test_unreadable_control_is_temporary(qhome):
    (qhome.path / "control" / "defaulthost").mkdir()  # read() fails: not "missing"
    r = inject(qhome, b"To: a@b.example\n\n")
    assert r.returncode == 111
    assert r.stderr == b"qmail-inject: fatal: unable to read controls\n"
    assert qhome.queue_files("todo") == []


def test_escaped_line_end_never_starts_a_line_outside_the_header_structure(qhome):
    # Found by Fuzz/inject.swift: a quoted-pair at the end of a line escapes
    # its LF; the rewritten address list then held a line that was neither
    # a field nor a continuation. The line break stays, folded.
    r = inject(qhome, b'To: "q,d"\\\nFrom: a@b\n\nbody\n', "-n")
    assert r.returncode == 0, r.stderr
    header = r.stdout.split(b"\n\n", 1)[0]
    for line in header.split(b"\n"):
        assert line[:1] in (b" ", b"\t") or b":" in line, header
    assert b'To: "q,d"@' in header and b"\n From:" not in header and b"\nFrom: a@b" in header
