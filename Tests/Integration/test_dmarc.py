"""Sender checks on intake, run as programs: qmail-smtpd verifies DKIM
signatures made by dkimpy and OpenDKIM, evaluates DMARC, adds one
Authentication-Results field and enforces control/authpolicy, with every
record served by a real DNS server on loopback (spf_dns)."""
import base64
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time

import pytest

import spf_dns
from smtp_helpers import TcpServer, checkpassword, queued, replies, session

HERE = pathlib.Path(__file__).resolve().parent
DEBIAN_PY = "/usr/bin/python3"
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"

needs_dkimpy = pytest.mark.skipif(
    not os.path.exists(DEBIAN_PY) or subprocess.run([DEBIAN_PY, "-c", "import dkim, nacl"],
                                                    capture_output=True).returncode != 0,
    reason="needs Debian's python3-dkim and python3-nacl")
needs_opendkim = pytest.mark.skipif(not os.path.exists(OPENDKIM), reason="needs opendkim")
CLIENT = "192.0.2.7"  # smtp_helpers' TCPREMOTEIP


def openssl(*args, input=None):
    return subprocess.run(["openssl", *args], input=input, capture_output=True, check=True, timeout=120).stdout


def der(tag, body):
    n = len(body)
    size = bytes([n]) if n < 128 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + size + body


def rsa_public_key(bits):
    """A DER RSA public key with a random odd modulus of `bits` bits."""
    n = int.from_bytes(os.urandom(bits // 8), "big") | (1 << (bits - 1)) | 1
    integer = lambda v: der(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))
    rsa = der(0x30, integer(n) + integer(65537))
    alg = der(0x30, der(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")
    return der(0x30, alg + der(0x03, b"\x00" + rsa))


class Keys:
    def __init__(self, d: pathlib.Path):
        self.rsa = d / "rsa.pem"
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(self.rsa))
        self.rsa_record = "v=DKIM1; k=rsa; p=" + base64.b64encode(
            openssl("pkey", "-in", str(self.rsa), "-pubout", "-outform", "DER")).decode()
        ed = d / "ed.pem"
        openssl("genpkey", "-algorithm", "ed25519", "-out", str(ed))
        self.ed_seed = d / "ed.seed"
        self.ed_seed.write_bytes(base64.b64encode(openssl("pkey", "-in", str(ed), "-outform", "DER")[-32:]))
        self.ed_record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(
            openssl("pkey", "-in", str(ed), "-pubout", "-outform", "DER")[-32:]).decode()


def spf(rule="ip4:192.0.2.7 ip4:127.0.0.0/8 -all"):
    return {"TXT": "v=spf1 " + rule}


def dmarc(text):
    return {"TXT": "v=DMARC1; " + text}


def zone(keys):
    rsa, ed = {"TXT": keys.rsa_record}, {"TXT": keys.ed_record}
    z = {
        "example.org": [spf()], "_dmarc.example.org": [dmarc("p=reject")],
        "rsa._domainkey.example.org": [rsa], "ed._domainkey.example.org": [ed],
        "bounce.example.org": [spf()], "rsa._domainkey.mail.example.org": [rsa],
        "huge._domainkey.example.org": [{"TXT": "v=DKIM1; k=rsa; p=" + base64.b64encode(rsa_public_key(5000)).decode()}],
        "big._domainkey.example.org": [{"TXT": "v=DKIM1; k=rsa; p=" + "A" * 5000}],
        "down._domainkey.example.org": ["TIMEOUT"],
        "other.test": [spf()], "rsa._domainkey.other.test": [rsa],
        "fail.test": [spf("-all")], "spfdown.test": ["TIMEOUT"],
        "strict.test": [spf()], "_dmarc.strict.test": [dmarc("p=reject; adkim=s; aspf=s")],
        "bounce.strict.test": [spf()], "rsa._domainkey.mail.strict.test": [rsa],
        "_dmarc.none.test": [dmarc("p=none")], "_dmarc.quar.test": [dmarc("p=quarantine")],
        "_dmarc.parent.test": [dmarc("p=none; sp=reject")], "_dmarc.lenient.test": [dmarc("p=reject; sp=none")],
        "_dmarc.pct.test": [dmarc("p=reject; pct=0")],
        "_dmarc.down.test": ["TIMEOUT"],
        "_dmarc.keydown.test": [dmarc("p=reject")], "rsa._domainkey.keydown.test": ["TIMEOUT"],
    }
    return z


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    keys = Keys(tmp_path_factory.mktemp("keys"))
    resolver, ip, servers = spf_dns.start()
    resolver.load(zone(keys))
    yield keys, ip
    spf_dns.stop(servers)


@pytest.fixture
def site(qhome, world):
    keys, ip = world
    qhome.control("rcpthosts", "ours.example\nstrict.ours\n")
    qhome.control("timeoutspf", "1\n")
    qhome.control("authpolicy", "annotate\nstrict.ours:reject\n")
    return qhome, keys, ip


def crlf(text: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", text)


def message(frm="joe@example.org", subject="hello", body=b"line one\nline two\n", extra=b""):
    return crlf(b"From: Joe <" + frm.encode() + b">\nTo: ann@ours.example\nSubject: " + subject.encode()
                + b"\n" + extra + b"\n" + body)


def dkimpy(msg: bytes, domain, keys, selector="rsa", alg="rsa", length=False, tmp=None):
    d = pathlib.Path(tempfile.mkdtemp(dir=tmp))
    (d / "m").write_bytes(msg)
    key = keys.ed_seed if alg == "ed25519" else keys.rsa
    args = [DEBIAN_PY, str(HERE / "dkimpy_sign.py"), str(d / "m"), domain, selector, str(key), alg]
    if length:
        args.append("l")
    r = subprocess.run(args, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def opendkim_sign(msg: bytes, domain, keys):
    """OpenDKIM's own signature (opendkim -t in signing mode prints the
    field it would insert), on top of the message."""
    # opendkim refuses files under a directory others can write (/tmp)
    d = pathlib.Path(tempfile.mkdtemp(dir=pathlib.Path.home()))
    try:
        d.chmod(0o700)
        shutil.copy(keys.rsa, d / "k.pem")
        (d / "k.pem").chmod(0o600)
        (d / "m").write_bytes(msg.replace(b"\r\n", b"\n"))
        (d / "c").write_text(f"Mode s\nDomain {domain}\nSelector rsa\nKeyFile {d}/k.pem\nSyslog no\n"
                             "Canonicalization relaxed/simple\n")
        r = subprocess.run([OPENDKIM, "-x", str(d / "c"), "-t", str(d / "m"), "-vv"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        value = re.search(r"hname='DKIM-Signature' hvalue='([^']*)'", r.stdout + r.stderr, re.S).group(1)
        return crlf(b"DKIM-Signature: " + value.encode() + b"\n") + msg
    finally:
        shutil.rmtree(d)


def deliver(home, ip, msg: bytes, mailfrom="joe@example.org", rcpts=("ann@ours.example",), **env):
    """(replies, the queued message or None) for one SMTP transaction."""
    before = len(queued(home))
    data = re.sub(rb"(?m)^\.", b"..", msg)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    script = b"EHLO helo.test\r\nMAIL FROM:<" + mailfrom.encode() + b">\r\n"
    script += b"".join(b"RCPT TO:<" + r.encode() + b">\r\n" for r in rcpts)
    script += b"DATA\r\n" + data + b".\r\nQUIT\r\n"
    _, out = session(home, script, DNSCACHEIP=ip, **env)
    got = queued(home)[before:]
    r = replies(out)
    # the replies after EHLO's: MAIL, each RCPT, DATA, the end of DATA, QUIT
    return r[next(i for i, l in enumerate(r) if l.startswith("250 ")) + 1:], (got[0][0] if got else None)


def auth_results(mess: bytes, authserv="test.example.com"):
    """The unfolded Authentication-Results fields of `mess`: [(authserv-id, text)]."""
    header = mess.split(b"\n\n", 1)[0].decode("latin-1")
    fields = re.findall(r"(?im)^Authentication-Results:(.*(?:\n[ \t].*)*)", header)
    out = []
    for f in fields:
        f = re.sub(r"\s+", " ", f).strip()
        out.append((f.split(";", 1)[0].strip(), f))
    return out


def ours(mess: bytes):
    found = [t for i, t in auth_results(mess) if i == "test.example.com"]
    assert len(found) == 1, mess[:2000]
    return found[0]


def results(text, method):
    return re.findall(method + r"=(\w+)", text)


# --- DKIM ---------------------------------------------------------------

@needs_dkimpy
@pytest.mark.parametrize("alg,selector", [("rsa", "rsa"), ("ed25519", "ed")])
def test_dkimpy_signatures_verify(site, alg, selector, tmp_path):
    home, keys, ip = site
    signed = dkimpy(message(), "example.org", keys, selector, alg, tmp=tmp_path)
    r, mess = deliver(home, ip, signed)
    assert r[-2].startswith("250 ok"), r
    text = ours(mess)
    assert f"dkim=pass header.d=example.org header.s={selector} header.a={alg}-sha256" in text, text
    assert "spf=pass smtp.mailfrom=joe@example.org" in text and "dmarc=pass" in text
    # our field is above our Received line, the Received-SPF field between them
    lines = mess.split(b"\n")
    ar = next(i for i, l in enumerate(lines) if l.startswith(b"Authentication-Results: test.example.com;"))
    rs = next(i for i, l in enumerate(lines) if l.startswith(b"Received-SPF:"))
    assert ar < rs and lines[rs + 1].startswith(b"Received: from ")


@needs_opendkim
def test_opendkim_signature_verifies(site):
    home, keys, ip = site
    r, mess = deliver(home, ip, opendkim_sign(message(), "example.org", keys))
    assert "dkim=pass header.d=example.org header.s=rsa" in ours(mess)


@needs_dkimpy
def test_change_after_signing_fails(site, tmp_path):
    home, keys, ip = site
    signed = dkimpy(message(), "example.org", keys, tmp=tmp_path)
    _, mess = deliver(home, ip, signed.replace(b"Subject: hello", b"Subject: hellO"))
    assert results(ours(mess), "dkim") == ["fail"] and 'reason="signature mismatch"' in ours(mess)
    _, mess = deliver(home, ip, signed.replace(b"line two", b"line 2"))
    assert results(ours(mess), "dkim") == ["fail"] and 'reason="body hash mismatch"' in ours(mess)
    # with SPF unaligned too, DMARC fails
    _, mess = deliver(home, ip, signed.replace(b"line two", b"line 2"), mailfrom="x@other.test")
    assert results(ours(mess), "dmarc") == ["fail"]


@needs_dkimpy
def test_length_tag_covers_the_signed_part(site, tmp_path):
    home, keys, ip = site
    signed = dkimpy(message(), "example.org", keys, length=True, tmp=tmp_path)
    assert b"l=" in signed.split(b"\r\n\r\n")[0]
    _, mess = deliver(home, ip, signed)
    assert results(ours(mess), "dkim") == ["pass"]


@needs_dkimpy
def test_hundred_signatures_are_bounded(site, tmp_path):
    home, keys, ip = site
    signed = dkimpy(message(), "example.org", keys, tmp=tmp_path)
    head, rest = signed.split(b"From:", 1)
    t0 = time.time()
    r, mess = deliver(home, ip, head * 100 + b"From:" + rest)
    assert time.time() - t0 < 10
    text = ours(mess)
    assert results(text, "dkim") == ["pass"] * 10 + ["policy"], text
    assert 'reason="90 more signatures not checked"' in text


@needs_dkimpy
def test_bad_keys_and_malformed_signatures_are_permerrors(site, tmp_path):
    home, keys, ip = site
    for selector, why in [("huge", "RSA key of 5000 bits"), ("big", "no key for signature"),
                          ("nokey", "no key for signature")]:
        _, mess = deliver(home, ip, dkimpy(message(), "example.org", keys, selector, tmp=tmp_path))
        text = ours(mess)
        assert results(text, "dkim") == ["permerror"] and f'reason="{why}"' in text, text
    good = dkimpy(message(), "example.org", keys, tmp=tmp_path)
    bh = re.search(rb"bh=([^;]+);", good).group(1)
    malformed = [b"DKIM-Signature: garbage\r\n", b"DKIM-Signature: ;;;=;==\r\n",
                 b"DKIM-Signature: v=1; a=rsa-sha1; d=example.org; s=rsa; h=from; bh=" + bh + b"; b=AAAA\r\n",
                 b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=rsa; h=subject; bh=" + bh + b"; b=AAAA\r\n",
                 b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=rsa; h=from; l=99999; bh=" + bh + b"; b=AAAA\r\n",
                 b"DKIM-Signature: v=1; a=rsa-sha256; d=../../etc; s=rsa; h=from; bh=!!; b=\xff\xfe\r\n"]
    r, mess = deliver(home, ip, b"".join(malformed) + good)
    assert r[-2].startswith("250 ok"), r
    assert results(ours(mess), "dkim") == ["permerror"] * 6 + ["pass"], ours(mess)


@needs_dkimpy
def test_key_lookup_timeout_is_temperror_never_fail(site, tmp_path):
    home, keys, ip = site
    _, mess = deliver(home, ip, dkimpy(message(), "example.org", keys, "down", tmp=tmp_path))
    assert results(ours(mess), "dkim") == ["temperror"]
    # SPF aligned: DMARC passes whatever the key lookup did
    assert results(ours(mess), "dmarc") == ["pass"]


# --- DMARC --------------------------------------------------------------

# (From: domain, MAIL FROM, DKIM d= or None, dmarc result, disposition or None, reply under reject)
MATRIX = [
    ("example.org", "a@example.org", None, "pass", None, "250"),          # SPF aligned
    ("example.org", "a@other.test", "example.org", "pass", None, "250"),  # DKIM aligned
    ("example.org", "a@other.test", "other.test", "fail", "reject", "550"),  # neither aligned
    ("example.org", "a@fail.test", None, "fail", "reject", "550 SPF"),  # refused at RCPT already
    ("news.example.org", "a@bounce.example.org", None, "pass", None, "250"),  # relaxed SPF
    ("example.org", "a@other.test", "mail.example.org", "pass", None, "250"),  # relaxed DKIM
    ("strict.test", "a@bounce.strict.test", None, "fail", "reject", "550"),  # aspf=s
    ("strict.test", "a@other.test", "mail.strict.test", "fail", "reject", "550"),  # adkim=s
    ("strict.test", "a@strict.test", None, "pass", None, "250"),
    ("none.test", "a@other.test", None, "fail", "none", "250"),
    ("quar.test", "a@other.test", None, "fail", "quarantine", "250"),
    ("sub.parent.test", "a@other.test", None, "fail", "reject", "550"),  # sp=reject
    ("parent.test", "a@other.test", None, "fail", "none", "250"),        # p=none
    ("sub.lenient.test", "a@other.test", None, "fail", "none", "250"),   # sp=none
    ("pct.test", "a@other.test", None, "fail", "quarantine", "250"),     # pct=0
    ("norecord.test", "a@other.test", None, "none", None, "250"),
    ("down.test", "a@other.test", None, "temperror", None, "451"),
    ("keydown.test", "a@other.test", "keydown.test", "temperror", None, "451"),
]


@needs_dkimpy
@pytest.mark.parametrize("frm,mailfrom,signer,want,dis,code", MATRIX, ids=[f"{m[0]}-{m[1]}-{m[2]}" for m in MATRIX])
def test_dmarc_matrix(site, frm, mailfrom, signer, want, dis, code, tmp_path):
    home, keys, ip = site
    msg = message(frm="joe@" + frm)
    if signer:
        msg = dkimpy(msg, signer, keys, tmp=tmp_path)
    # annotate: always accepted, the verdict in our field
    r, mess = deliver(home, ip, msg, mailfrom=mailfrom)
    assert r[-2].startswith("250 ok"), r
    text = ours(mess)
    assert results(text, "dmarc") == [want], text
    assert f"header.from={frm}" in text
    if dis:
        assert f"dis={dis})" in text, text
    # reject for strict.ours: the disposition decides
    r, mess = deliver(home, ip, msg, mailfrom=mailfrom, rcpts=("ann@strict.ours",))
    assert (mess is None) == (code != "250")
    if code == "550 SPF":
        assert r[1].endswith("(#5.7.23)"), r
        return
    assert r[-2].startswith(code), r
    if code == "550":
        assert r[-2] == f"550 sorry, the DMARC policy of {frm} rejects this message (#5.7.1)"
    if code == "451":
        assert r[-2] == "451 temporary DNS failure checking DKIM and DMARC (#4.7.0)"


def test_no_from_or_two_froms_is_permerror(site):
    home, keys, ip = site
    _, mess = deliver(home, ip, crlf(b"From: a@example.org\nFrom: b@other.test\nSubject: two\n\nx\n"),
                      mailfrom="a@other.test", rcpts=("ann@strict.ours",))
    assert results(ours(mess), "dmarc") == ["permerror"]


# --- policy ---------------------------------------------------------------

def test_spf_fail_is_refused_per_recipient_domain(site):
    home, keys, ip = site
    r, mess = deliver(home, ip, message(frm="a@fail.test"), mailfrom="a@fail.test",
                      rcpts=("ann@ours.example", "bob@strict.ours"))
    assert r[1] == "250 ok" and r[2] == "550 sorry, SPF record of the sender's domain does not allow 192.0.2.7 (#5.7.23)", r
    assert r[-2].startswith("250 ok") and "spf=fail" in ours(mess)
    r, mess = deliver(home, ip, message(frm="a@spfdown.test"), mailfrom="a@spfdown.test", rcpts=("bob@strict.ours",))
    assert r[1] == "451 temporary DNS failure checking SPF (#4.7.24)" and mess is None, r


def test_site_default_and_spf_variable(site):
    home, keys, ip = site
    # $SPF still decides SPF at MAIL for everyone, beside control/authpolicy
    r, mess = deliver(home, ip, message(frm="a@fail.test"), mailfrom="a@fail.test", SPF="reject")
    assert r[0].startswith("550 ") and r[0].endswith("(#5.7.23)") and mess is None
    home.control("authpolicy", "off\n")
    r, mess = deliver(home, ip, message(frm="a@fail.test"), mailfrom="a@fail.test", rcpts=("bob@strict.ours",))
    assert r[-2].startswith("250 ok") and not auth_results(mess) and b"Received-SPF" not in mess
    home.control("authpolicy", "annotate\nbad line: maybe\n")
    _, out = session(home, b"QUIT\r\n")
    assert replies(out) == ["421 unable to read controls (#4.3.0)"]


def test_forged_results_removed_others_kept(site):
    home, keys, ip = site
    home.control("authservid", "mx.ours.example\n")
    forged = crlf(b"Authentication-Results: MX.ours.example; dkim=pass header.d=example.org\n"
                  b"Authentication-Results: (comment) mx.ours.example;\n spf=pass\n"
                  b"Authentication-Results:\n\tmx.ours.example; dmarc=pass\n"
                  b"Authentication-Results: relay.other.example; spf=pass smtp.mailfrom=x@example.org\n"
                  b"Authentication-Results: mx.ours.example.evil; dkim=pass\n")
    r, mess = deliver(home, ip, message(extra=forged), mailfrom="a@other.test")
    found = auth_results(mess)
    assert [i for i, _ in found] == ["mx.ours.example", "relay.other.example", "mx.ours.example.evil"], found
    assert results(found[0][1], "dmarc") == ["fail"] and results(found[0][1], "dkim") == ["none"]


def test_authenticated_and_relay_clients_are_not_checked(site, tmp_path):
    home, keys, ip = site
    r, mess = deliver(home, ip, message(frm="a@fail.test"), mailfrom="a@fail.test", rcpts=("bob@strict.ours",),
                      RELAYCLIENT="")
    assert r[-2].startswith("250 ok") and not auth_results(mess) and b"Received-SPF" not in mess
    cp = checkpassword(tmp_path)
    login = b"AUTH PLAIN " + base64.b64encode(b"\0joe\0secret") + b"\r\n"
    before = len(queued(home))
    _, out = session(home, b"EHLO c\r\n" + login + b"MAIL FROM:<a@fail.test>\r\nRCPT TO:<bob@strict.ours>\r\n"
                     b"DATA\r\n" + message(frm="a@example.org") + b".\r\n", args=["mx", str(cp), "/bin/true"],
                     DNSCACHEIP=ip)
    assert "235 ok, go ahead (#2.0.0)" in replies(out) and replies(out)[-1].startswith("250 ok"), replies(out)
    [(mess, _, _)] = queued(home)[before:]
    assert not auth_results(mess) and b"Received-SPF" not in mess


def test_databytes_bounds_the_held_message(site):
    home, keys, ip = site
    home.control("databytes", "5000\n")
    r, mess = deliver(home, ip, message(body=b"x" * 6000 + b"\n"), rcpts=("bob@strict.ours",))
    assert r[-2].startswith("552 ") and mess is None


@needs_dkimpy
def test_swaks_over_tcp(site, tmp_path):
    """A real client over TCP: swaks sends a dkimpy-signed message to
    qmail-smtpd under tcpserver."""
    home, keys, ip = site
    if not shutil.which("swaks"):
        pytest.skip("needs swaks")
    f = tmp_path / "m.eml"
    f.write_bytes(dkimpy(message(), "example.org", keys, tmp=tmp_path))
    env = dict(home.env, DNSCACHEIP=ip)
    srv = TcpServer(home, [home.bin("qmail-smtpd")], env=env)
    try:
        before = len(queued(home))
        p = subprocess.run(["swaks", "--timeout", "30", "--server", f"127.0.0.1:{srv.port}", "--from", "joe@example.org",
                            "--to", "ann@strict.ours", "--data", str(f)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        [(mess, _, _)] = queued(home)[before:]
    finally:
        srv.stop()
    text = ours(mess)
    assert results(text, "spf") == ["pass"] and results(text, "dkim") == ["pass"] and results(text, "dmarc") == ["pass"]


def test_new_home_annotates_an_upgraded_one_keeps_qmail_behaviour(tmp_path, bindir):
    home = tmp_path / "q"
    setup = [str(bindir / "qmail-setup"), "--single-user", "--link", str(home), "new.example"]
    assert subprocess.run(setup, capture_output=True, timeout=120).returncode == 0
    assert (home / "control" / "authpolicy").read_text() == "annotate\n"
    # an existing home (control/me there) run through qmail-setup again gets no policy
    (home / "control" / "authpolicy").unlink()
    assert subprocess.run(setup, capture_output=True, timeout=120).returncode == 0
    assert not (home / "control" / "authpolicy").exists()


def test_vdkim_records_prints_spf_dkim_and_dmarc(qhome):
    assert qhome.run("vdkim", "create", "example.org").returncode == 0
    r = qhome.run("vdkim", "records", "example.org")
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stdout.decode().splitlines() if not l.startswith(";")]
    assert lines[0] == 'example.org. IN TXT "v=spf1 a:test.example.com ~all"'
    assert [l.split("._domainkey.")[1].split()[0] for l in lines[1:3]] == ["example.org."] * 2
    assert "k=rsa" in lines[1] + lines[2] and "k=ed25519" in lines[1] + lines[2]
    assert lines[3] == '_dmarc.example.org. IN TXT "v=DMARC1; p=none; rua=mailto:postmaster@example.org"'
    assert len(lines) == 4
