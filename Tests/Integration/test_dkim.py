"""DKIM signing, run as programs: vdkim makes keys and prints their DNS
records; qmail-remote signs what it sends to an SMTP sink on loopback; the
message the sink received verifies with dkimpy (RSA and Ed25519) and with
OpenDKIM (both), using the records vdkim printed. A change after signing
fails both. vadddomain makes keys for a new domain."""
import os
import pathlib
import re
import shutil
import stat
import subprocess

import pytest

from smtp_helpers import FakeSMTP

HERE = pathlib.Path(__file__).resolve().parent
DEBIAN_PY = "/usr/bin/python3"


def have_dkimpy():
    return os.path.exists(DEBIAN_PY) and subprocess.run(
        [DEBIAN_PY, "-c", "import dkim, nacl"], capture_output=True).returncode == 0


needs_dkimpy = pytest.mark.skipif(not have_dkimpy(), reason="needs Debian's python3-dkim and python3-nacl")
needs_opendkim = pytest.mark.skipif(not shutil.which("opendkim") and not os.path.exists("/usr/sbin/opendkim"),
                                    reason="needs opendkim")


def vdkim(home, *args, check=True):
    r = home.run("vdkim", *args)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r


def zone(records: str):
    """{selector: TXT text} from vdkim's zone lines."""
    out = {}
    for line in records.splitlines():
        name, _, rest = line.partition(" IN TXT ")
        out[name.split("._domainkey.")[0]] = "".join(re.findall(r'"([^"]*)"', rest))
    return out


class Sender:
    """A home whose qmail-remote sends everything to a FakeSMTP sink."""

    def __init__(self, home):
        self.home = home
        self.sink = FakeSMTP()
        home.control("smtproutes", f":127.0.0.1:{self.sink.port}\n")
        self.records = ""

    def send(self, message: bytes, sender="joe@example.org"):
        before = len(self.sink.bodies)
        p = subprocess.run([self.home.bin("qmail-remote"), "peer.test", sender, "ann@peer.test"], input=message,
                           capture_output=True, env=self.home.env, timeout=60)
        assert p.returncode == 0, p.stderr
        report = p.stdout.decode("latin-1")
        if len(self.sink.bodies) == before:
            return report, None
        # what a receiver stores: the DATA text with the dot doubling undone
        got = re.sub(rb"(?m)^\.", b"", self.sink.bodies[-1])
        return report, got

    def records_file(self, tmp: pathlib.Path):
        f = tmp / "records"
        f.write_text(self.records)
        return f


@pytest.fixture
def sender(qhome):
    s = Sender(qhome)
    r = vdkim(qhome, "create", "example.org")
    s.records = r.stdout.decode()
    yield s
    s.sink.close()


def dkimpy(message: bytes, records: pathlib.Path, tmp: pathlib.Path):
    m = tmp / "message"
    m.write_bytes(message)
    r = subprocess.run([DEBIAN_PY, str(HERE / "dkimpy_verify.py"), str(m), str(records)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return sorted(tuple(l.split()) for l in r.stdout.splitlines())


def opendkim(message: bytes, records: str, tmp: pathlib.Path):
    """OpenDKIM's verdicts, from the Authentication-Results it would add:
    [(algorithm, pass|fail|...)]."""
    keys = tmp / "keys"
    lines = []
    for line in records.splitlines():
        name, _, rest = line.partition(" IN TXT ")
        lines.append(name.rstrip(".") + " " + "".join(re.findall(r'"([^"]*)"', rest)))
    keys.write_text("\n".join(lines) + "\n")
    conf = tmp / "opendkim.conf"
    conf.write_text(f"Mode v\nTestDNSData file:{keys}\nSyslog no\n")
    m = tmp / "message.eml"
    m.write_bytes(message)
    exe = shutil.which("opendkim") or "/usr/sbin/opendkim"
    r = subprocess.run([exe, "-x", str(conf), "-t", str(m), "-vv"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return sorted(re.findall(r"dkim=(\w+)[^;]*header\.a=([\w-]+)", r.stdout + r.stderr))


def selectors(records):
    return sorted(zone(records))


MESSAGES = {
    "plain": b"From: Joe <joe@example.org>\nTo: ann@peer.test\nSubject: hello\n\nline one\nline two\n",
    "crlf-stored": b"From: joe@example.org\r\nTo: ann@peer.test\r\nSubject: crlf\r\n\r\nbody\r\nmore\r\n",
    "long-lines": b"From: joe@example.org\nSubject: long\n\n" + b"x" * 5000 + b"\n" + b"y " * 3000 + b"\n",
    "empty-body": b"From: joe@example.org\nSubject: empty\n\n",
    "no-body-at-all": b"From: joe@example.org\nSubject: header only\n",
    "trailing-blank-lines": b"From: joe@example.org\nSubject: t\n\nbody\n\n\n  \n\t\n\n",
    "folded-headers": (b"From: Joe\n  Sixpack <joe@example.org>\nSubject: folded\n\tover  three\n   lines\n"
                       b"To: a@peer.test,\n b@peer.test\n\nbody\n"),
    "8bit": ("From: Jörg <joe@example.org>\nSubject: grüße\nContent-Type: text/plain; charset=utf-8\n"
             "Content-Transfer-Encoding: 8bit\n\nÄpfel und Bäume \u00a0\n").encode() + b"latin1 \xe4\xf6\n",
    "duplicate-headers": (b"From: joe@example.org\nSubject: one\nSubject: two\nTo: a@peer.test\nTo: b@peer.test\n"
                          b"Cc: c@peer.test\n\nbody\n"),
    "leading-dots": b"From: joe@example.org\nSubject: dots\n\n.\n..\n.leading\n...three\n",
    "white-space": b"From: joe@example.org\nSubject:   spaced   out  \n\n  indented\t\ttabs  \ntrailing   \n",
    "stray-cr-and-nul": b"From: joe@example.org\nSubject: cr\n\na\rb\0c\nend\r\n",
    "every-signed-field": (b"From: joe@example.org\nTo: a@peer.test\nCc: c@peer.test\nReply-To: r@example.org\n"
                           b"Subject: s\nDate: Thu, 1 Jan 2026 00:00:00 +0000\nMessage-ID: <1@example.org>\n"
                           b"In-Reply-To: <0@peer.test>\nReferences: <0@peer.test>\nMIME-Version: 1.0\n"
                           b"Content-Type: text/plain\nContent-Transfer-Encoding: 7bit\nX-Other: not signed\n\nb\n"),
}


@needs_dkimpy
@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_signed_message_verifies_with_dkimpy_and_opendkim(sender, tmp_path, name):
    report, got = sender.send(MESSAGES[name])
    assert report.startswith("r\0K127.0.0.1 accepted message.\n"), report
    assert "DKIM" not in report
    assert got.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s2"), got[:200]
    assert got.count(b"DKIM-Signature:") == 2 and b"a=ed25519-sha256" in got
    sels = selectors(sender.records)
    expect = sorted([(sels[0], "ed25519-sha256", "pass"), (sels[1], "rsa-sha256", "pass")])
    assert dkimpy(got, sender.records_file(tmp_path), tmp_path) == expect
    if shutil.which("opendkim") or os.path.exists("/usr/sbin/opendkim"):
        assert opendkim(got, sender.records, tmp_path) == [("pass", "ed25519-sha256"), ("pass", "rsa-sha256")]


def test_signature_names_the_fields_it_covers(sender):
    _, got = sender.send(MESSAGES["every-signed-field"])
    sig = got.split(b"\r\nFrom:")[0].decode()
    h = re.search(r"h=([^;]*);", sig).group(1).replace("\r\n\t", "")
    assert h.split(":") == ["from", "from", "to", "subject", "date", "message-id", "cc", "reply-to", "mime-version",
                            "content-type", "content-transfer-encoding", "in-reply-to", "references"]
    assert re.search(r"\bt=\d{10};", sig)
    _, got = sender.send(MESSAGES["duplicate-headers"])
    h = re.search(rb"h=([^;]*);", got).group(1).replace(b"\r\n\t", b"").decode()
    assert h == "from:from:to:to:subject:subject:cc"


@needs_dkimpy
def test_a_change_after_signing_fails_both_verifiers(sender, tmp_path):
    _, got = sender.send(MESSAGES["plain"])
    body_changed = got.replace(b"line two", b"line 2")
    header_changed = got.replace(b"Subject: hello", b"Subject: hullo")
    added_from = got.replace(b"From: Joe", b"From: Mallory <m@evil.example>\r\nFrom: Joe")
    for bad in (body_changed, header_changed, added_from):
        assert bad != got
        assert [v[2] for v in dkimpy(bad, sender.records_file(tmp_path), tmp_path)] == ["fail", "fail"]
        verdicts = opendkim(bad, sender.records, tmp_path)
        assert verdicts and all(v[0] != "pass" for v in verdicts), verdicts


@needs_dkimpy
def test_subdomain_is_signed_with_parent_domain_key(sender, tmp_path):
    report, got = sender.send(b"From: news@lists.example.org\nSubject: x\n\nhi\n")
    assert b"d=example.org;" in got
    assert [v[2] for v in dkimpy(got, sender.records_file(tmp_path), tmp_path)] == ["pass", "pass"]


def test_hosted_domain_without_key_goes_out_unsigned_with_a_note(sender, qhome):
    qhome.control("virtualdomains", "other.example:other.example\n")
    report, got = sender.send(b"From: a@other.example\nSubject: x\n\nhi\n", sender="a@other.example")
    assert report == ("r\0K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n"
                      "DKIM: no key for other.example, sent unsigned.\n\0")
    assert b"DKIM-Signature" not in got and got.startswith(b"From: a@other.example\r\n")
    # a domain we do not host (a forward, say): unsigned, and nothing to note
    report, got = sender.send(b"From: someone@elsewhere.example\nSubject: x\n\nhi\n")
    assert report == "r\0K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n\0"
    assert b"DKIM-Signature" not in got


def test_site_without_keys_sends_exactly_as_before(qhome):
    s = Sender(qhome)
    try:
        message = MESSAGES["leading-dots"]
        report, got = s.send(message)
        assert report == "r\0K127.0.0.1 accepted message.\nRemote host said: 250 ok queued\n\0"
        assert got == message.replace(b"\n", b"\r\n")
    finally:
        s.sink.close()


def test_unusable_key_defers_and_sends_nothing(sender, qhome):
    key = next((qhome.path / "control" / "dkim" / "example.org").glob("*.rsa"))
    key.write_text("not a key\n")
    report, got = sender.send(MESSAGES["plain"])
    assert got is None and sender.sink.transcript == []
    assert report.startswith("ZUnable to read the DKIM key of example.org: not a PEM private key"), report
    assert report.endswith("(#4.3.0)\n\0")


@needs_dkimpy
def test_message_from_a_pipe_and_from_a_file_sign_alike(sender, qhome, tmp_path):
    """qmail-rspawn gives qmail-remote the queue file (it is read twice);
    a pipe is read once and the message kept in memory."""
    f = tmp_path / "msg"
    f.write_bytes(MESSAGES["long-lines"])
    with open(f, "rb") as fd:
        p = subprocess.run([qhome.bin("qmail-remote"), "peer.test", "joe@example.org", "a@peer.test"], stdin=fd,
                           capture_output=True, env=qhome.env, timeout=60)
    assert p.stdout.startswith(b"r\0K"), p.stdout
    from_file = re.sub(rb"(?m)^\.", b"", sender.sink.bodies[-1])
    _, from_pipe = sender.send(MESSAGES["long-lines"])
    strip = lambda m: m[m.index(b"\r\nFrom:"):]
    assert strip(from_file) == strip(from_pipe)
    for got in (from_file, from_pipe):
        assert [v[2] for v in dkimpy(got, sender.records_file(tmp_path), tmp_path)] == ["pass", "pass"]


# ---------------------------------------------------------------- vdkim

def test_vdkim_create_writes_private_keys_and_prints_records(qhome):
    r = vdkim(qhome, "create", "Example.ORG")
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 2
    rsa, ed = lines
    assert re.fullmatch(r's\d{6}r\._domainkey\.example\.org\. IN TXT "v=DKIM1; k=rsa; p=[A-Za-z0-9+/]{200,255}" '
                        r'"[A-Za-z0-9+/=]+"', rsa), rsa
    assert all(len(part) <= 255 for part in re.findall(r'"([^"]*)"', rsa))
    assert re.fullmatch(r's\d{6}e\._domainkey\.example\.org\. IN TXT "v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}="', ed)
    d = qhome.path / "control" / "dkim"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "example.org").stat().st_mode) == 0o700
    files = sorted(p.name for p in (d / "example.org").iterdir())
    sel = rsa.split(".")[0][:-1]
    assert files == [f"{sel}e.ed25519", f"{sel}r.rsa", "sign"]
    for p in (d / "example.org").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        assert p.stat().st_uid == (qhome.path / "ids").stat().st_uid
    assert (d / "example.org" / "sign").read_text() == f"{sel}r\n{sel}e\n"
    # the RSA key is 2048 bits, as openssl reads it
    t = subprocess.run(["openssl", "pkey", "-in", str(d / "example.org" / f"{sel}r.rsa"), "-noout", "-text"],
                       capture_output=True, text=True)
    assert "2048 bit" in t.stdout
    assert vdkim(qhome, "list").stdout.decode().splitlines() == [
        f"example.org {sel}e ed25519 256 signing", f"example.org {sel}r rsa 2048 signing"]
    assert sorted(vdkim(qhome, "dns", "example.org").stdout.decode().splitlines()) == sorted(lines)
    again = vdkim(qhome, "create", "example.org", check=False)
    assert again.returncode == 1 and b"has keys already: use vdkim rotate" in again.stderr


def test_vdkim_one_algorithm_and_bad_arguments(qhome):
    r = vdkim(qhome, "create", "-a", "ed25519", "-s", "mail", "solo.example")
    assert r.stdout.decode().startswith('maile._domainkey.solo.example. IN TXT "v=DKIM1; k=ed25519; p=')
    assert (qhome.path / "control" / "dkim" / "solo.example" / "sign").read_text() == "maile\n"
    for args in (["create", "../etc"], ["create", "-a", "dsa", "x.example"], ["create", "-s", "a/b", "x.example"],
                 ["create", "-b", "512", "x.example"], ["frobnicate"], [], ["dns", "none.example"],
                 ["remove", "none.example"], ["rotate", "none.example"]):
        r = vdkim(qhome, *args, check=False)
        assert r.returncode == 1, (args, r.stderr)
    assert not (qhome.path / "control" / "dkim" / "x.example").exists()


@needs_dkimpy
def test_vdkim_rotate_activate_remove(sender, qhome, tmp_path):
    old = selectors(sender.records)
    # rotate -n: new keys made, the old ones still sign
    r = vdkim(qhome, "rotate", "-n", "example.org")
    new = selectors(r.stdout.decode())
    assert len(new) == 2 and not set(new) & set(old)
    assert b"publish the records, then: vdkim activate example.org" in r.stderr
    listing = vdkim(qhome, "list", "example.org").stdout.decode()
    for s in old:
        assert re.search(rf"^example.org {s} \w+ \d+ signing$", listing, re.M)
    for s in new:
        assert re.search(rf"^example.org {s} \w+ \d+ standby$", listing, re.M)
    _, got = sender.send(MESSAGES["plain"])
    assert all(f"s={s};".encode() in got for s in old)
    # activate: the new keys sign, and verify with the records dns prints
    vdkim(qhome, "activate", "example.org", *new)
    _, got = sender.send(MESSAGES["plain"])
    assert all(f"s={s};".encode() in got for s in new)
    records = vdkim(qhome, "dns", "example.org", *new).stdout.decode()
    assert selectors(records) == new
    f = tmp_path / "new-records"
    f.write_text(records)
    assert dkimpy(got, f, tmp_path) == sorted([(new[0], "ed25519-sha256", "pass"), (new[1], "rsa-sha256", "pass")])
    # the old keys stay until removed; a signing key needs -f
    assert vdkim(qhome, "remove", "example.org", new[0], check=False).returncode == 1
    vdkim(qhome, "remove", "example.org", *old)
    assert sorted(vdkim(qhome, "list").stdout.decode().split("\n")[:-1]) == sorted(
        [f"example.org {new[0]} ed25519 256 signing", f"example.org {new[1]} rsa 2048 signing"])
    # rotate without -n signs with the new keys at once
    r = vdkim(qhome, "rotate", "-a", "rsa", "example.org")
    newest = selectors(r.stdout.decode())
    sign = (qhome.path / "control" / "dkim" / "example.org" / "sign").read_text().split()
    assert sorted(sign) == sorted([new[0], newest[0]])
    # remove everything
    assert vdkim(qhome, "remove", "example.org", check=False).returncode == 1
    vdkim(qhome, "remove", "-f", "example.org")
    assert not (qhome.path / "control" / "dkim" / "example.org").exists()
    assert vdkim(qhome, "list").stdout == b""


def test_vadddomain_makes_keys_and_vdeldomain_removes_them(qhome):
    r = qhome.run("vadddomain", "-i", "4242", "hosted.example", input="pm\n")
    assert r.returncode == 0, r.stderr
    assert re.search(rb'^s\d{6}r\._domainkey\.hosted\.example\. IN TXT "v=DKIM1; k=rsa; ', r.stdout, re.M)
    assert re.search(rb'^s\d{6}e\._domainkey\.hosted\.example\. IN TXT "v=DKIM1; k=ed25519; ', r.stdout, re.M)
    assert len(vdkim(qhome, "list", "hosted.example").stdout.splitlines()) == 2
    r = qhome.run("vadddomain", "-K", "-i", "4242", "nokey.example", input="pm\n")
    assert r.returncode == 0, r.stderr
    assert b"DKIM" not in r.stdout
    assert not (qhome.path / "control" / "dkim" / "nokey.example").exists()
    assert qhome.run("vdeldomain", "hosted.example").returncode == 0
    assert not (qhome.path / "control" / "dkim" / "hosted.example").exists()
