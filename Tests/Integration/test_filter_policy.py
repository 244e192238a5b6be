"""qmail-filter's policy per site, domain and mailbox (control/filter and
the file backend's DIR/vfilter, set with vfilterpolicy), the quarantine it
keeps instead of refusing, and qmail-quarantine list/show/release/delete,
with real clamd and spamd verdicts."""
import re

import pytest

from filter_daemons import EICAR, GTUBE
from smtp_helpers import queued
from test_filter import clamd, spamd, filter_home, message, run_filter, CLEAN  # noqa: F401 (fixtures)

DOM = "hosted.example"
VIRUS = message(EICAR + b"\n", subject=b"invoice")
SPAM = message(GTUBE + b"\n")


def admin(home, *args, ok=True):
    r = home.run(args[0], *args[1:], input="pw\n")
    if ok:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture
def home(tmp_path, clamd, spamd):
    h = filter_home(tmp_path, clamd=clamd.sock, spam=f"spamd 127.0.0.1:{spamd.port}",
                    policy=":reject=8\n", timeout=20)
    admin(h, "vadddomain", "-u", "nobody", DOM, "-")
    for u in ("joe", "ann", "lax"):
        admin(h, "vadduser", f"{u}@{DOM}", "-")
    return h


def quarantine(home, *args):
    r = home.run("qmail-quarantine", *args)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def listed(home):
    code, out, err = quarantine(home, "list")
    assert code == 0, err
    return [l.split(" ", 1)[0] for l in out.splitlines()]


def test_vfilterpolicy_sets_shows_checks_and_removes_each_level(home):
    admin(home, "vfilterpolicy", "site", "reject=9,tag=2")
    admin(home, "vfilterpolicy", DOM, "quarantine=yes")
    admin(home, "vfilterpolicy", f"joe@{DOM}", "spam=no, virus=yes")
    assert home.control("filter") == f":reject=9,tag=2\n{DOM}:quarantine=yes\n"
    vfilter = next(home.path.rglob("vfilter"))
    assert vfilter.read_text() == "joe:spam=no,virus=yes\n"
    assert oct(vfilter.stat().st_mode & 0o777) == "0o644"
    assert admin(home, "vfilterpolicy", f"joe@{DOM}").stdout.decode() == f"joe@{DOM}: spam=no,virus=yes\n"
    assert admin(home, "vfilterpolicy", DOM).stdout.decode() == f"{DOM}: quarantine=yes\n"
    # What qmail-filter could not read is refused, and nothing is written.
    for bad in (("site", "reject=lots"), (DOM, "spam=perhaps"), (f"joe@{DOM}", "maxsize=5"), (f"nobody@{DOM}", "spam=no")):
        r = admin(home, "vfilterpolicy", *bad, ok=False)
        assert r.returncode == 1, (bad, r.stderr)
    assert home.control("filter") == f":reject=9,tag=2\n{DOM}:quarantine=yes\n"
    assert vfilter.read_text() == "joe:spam=no,virus=yes\n"
    admin(home, "vfilterpolicy", "-d", DOM)
    assert home.control("filter") == ":reject=9,tag=2\n"
    admin(home, "vdeluser", f"joe@{DOM}")
    assert vfilter.read_text() == ""


def test_a_domain_that_quarantines_keeps_the_virus_and_release_queues_it_to_its_envelope(home):
    admin(home, "vfilterpolicy", DOM, "quarantine=yes")
    code, reason, log = run_filter(home, VIRUS, rcpts=(f"joe@{DOM}".encode(), f"ann@{DOM}".encode()))
    assert (code, reason) == (0, b""), log
    assert queued(home) == []
    assert "quarantined as" in log
    ids = listed(home)
    assert len(ids) == 1
    code, out, _ = quarantine(home, "list")
    assert re.search(rf"<alice@example.net> joe@{DOM},ann@{DOM} virus Test\.EICAR", out), out
    code, out, _ = quarantine(home, "show", ids[0])
    assert code == 0 and f"Envelope-To: <ann@{DOM}>" in out and "EICAR-STANDARD" in out
    code, _, err = quarantine(home, "release", ids[0])
    assert code == 0 and f"released {ids[0]} from <alice@example.net>" in err
    [(mess, sender, rcpts)] = queued(home)
    assert sender == b"alice@example.net" and rcpts == [f"joe@{DOM}".encode(), f"ann@{DOM}".encode()]
    assert mess.endswith(VIRUS)
    assert listed(home) == []
    assert quarantine(home, "release", ids[0])[0] == 100
    assert quarantine(home, "show", "../../etc/passwd")[0] == 100


def test_per_mailbox_policy_from_the_file_backend_decides_for_each_recipient(home):
    admin(home, "vfilterpolicy", f"joe@{DOM}", "quarantine=yes")
    admin(home, "vfilterpolicy", f"lax@{DOM}", "spam=no")
    joe, ann, lax = (f"{u}@{DOM}".encode() for u in ("joe", "ann", "lax"))
    # alone: ann's policy (the site's) refuses; joe's keeps it; lax gets it
    assert run_filter(home, SPAM, rcpts=(ann,))[1].startswith(b"D550")
    assert run_filter(home, SPAM, rcpts=(joe,))[:2] == (0, b"")
    assert listed(home) and queued(home) == []
    code, _, log = run_filter(home, SPAM, rcpts=(lax,))
    assert code == 0 and len(queued(home)) == 1, log
    # together: refused only when refused for all; otherwise the refusing
    # and quarantining recipients' copies are kept, the rest queued
    code, reason, log = run_filter(home, SPAM, rcpts=(ann, lax, joe))
    assert (code, reason) == (0, b""), log
    assert sorted(r for _, _, r in queued(home)) == [[lax], [lax]]
    code, out, _ = quarantine(home, "list")
    assert f"{ann.decode()},{joe.decode()} spam score" in out, out
    # clean mail goes to everyone, untouched by the quarantine
    before = len(listed(home))
    assert run_filter(home, CLEAN, rcpts=(ann, lax, joe))[0] == 0
    assert [ann, lax, joe] in [r for _, _, r in queued(home)]
    assert len(listed(home)) == before
    for i in listed(home):
        code, _, err = quarantine(home, "delete", i)
        assert code == 0 and "deleted" in err
    assert listed(home) == []


def test_an_unreadable_mailbox_policy_defers_and_keeps_nothing(home):
    vfilter = next(home.path.rglob("vpasswd")).parent / "vfilter"
    vfilter.write_text("joe:spam=perhaps\n")
    code, reason, log = run_filter(home, CLEAN, rcpts=(f"joe@{DOM}".encode(),))
    assert reason.startswith(b"Z451"), (code, reason, log)
    assert queued(home) == [] and listed(home) == []
