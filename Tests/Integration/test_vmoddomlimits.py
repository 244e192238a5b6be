"""vmoddomlimits, vpopmail's command for a domain's limits
(DIR/.qmailadmin-limits), run as a program: what it sets is what vadduser
and valias enforce and vdominfo shows; vpopmail's options for limits this
host does not keep are refused without writing anything."""
import os

import pytest

from test_hosting import hosting, qhome, vuser  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: makes system accounts and switches uid")


def limits_file(hosting):
    return hosting.domain_dir("example.org") / ".qmailadmin-limits"


def show(hosting, domain="example.org"):
    return hosting.admin("vmoddomlimits", "-S", domain).stdout.decode()


def test_set_show_enforce_and_delete(hosting, vuser):
    assert "Max Pop Accounts: -1\n" in show(hosting)
    assert not limits_file(hosting).exists()

    hosting.admin("vmoddomlimits", "-P", "2", "-A", "1", "-q", "10M", "-m", "500", "example.org")
    f = limits_file(hosting)
    assert f.read_text() == ("maxpopaccounts: 2\nmaxaliases: 1\n"
                             "default_quota: 10485760\ndefault_maxmsgcount: 500\n")
    st = f.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (vuser.pw_uid, 0o644)
    assert show(hosting) == ("Domain: example.org\n--\nMax Pop Accounts: 2\nMax Aliases: 1\n"
                             "Default User Quota: 10485760 bytes\nDefault Max Messages per User: 500\n")
    info = hosting.admin("vdominfo", "example.org").stdout.decode()
    assert "limits:  mailboxes 2, aliases 1, default quota 10485760S,500C" in info, info

    # enforced: postmaster + bob fill the 2; the new mailbox got the default quota
    hosting.admin("vadduser", "bob@example.org", password="pw")
    assert hosting.admin("vuserinfo", "-q", "bob@example.org").stdout.decode().strip() == "10485760S,500C"
    r = hosting.admin("vadduser", "carl@example.org", password="pw", check=False)
    assert r.returncode == 1 and b"limit of 2 mailboxes" in r.stderr, r.stderr
    hosting.admin("valias", "-i", "a@remote.example", "info@example.org")
    r = hosting.admin("valias", "-i", "a@remote.example", "sales@example.org", check=False)
    assert r.returncode == 1 and b"limit of 1 aliases" in r.stderr, r.stderr

    # one option changes one limit; -1 lifts it
    hosting.admin("vmoddomlimits", "-P", "-1", "example.org")
    assert "Max Pop Accounts: -1\nMax Aliases: 1\n" in show(hosting)
    hosting.admin("vadduser", "carl@example.org", password="pw")
    hosting.admin("vmoddomlimits", "-q", "0", "example.org")
    assert "Default User Quota: 0 bytes\nDefault Max Messages per User: 500\n" in show(hosting)

    hosting.admin("vmoddomlimits", "-D", "example.org")
    assert not limits_file(hosting).exists()
    assert "limits:" not in hosting.admin("vdominfo", "example.org").stdout.decode()
    hosting.admin("valias", "-i", "a@remote.example", "sales@example.org")


def test_reads_the_file_vpopmail_writes(hosting):
    """vpopmail writes every line, with 0 for no default quota: that is no
    quota, not a zero-byte one."""
    limits_file(hosting).write_text(
        "maxpopaccounts: 3\nmaxaliases: -1\nmaxforwards: -1\nmaxautoresponders: -1\n"
        "maxmailinglists: -1\nquota: 0\nmaxmsgcount: 0\ndefault_quota: 0\n"
        "default_maxmsgcount: 0\ndisable_imap\nperm_account: 0\n")
    assert "Max Pop Accounts: 3\nMax Aliases: -1\nDefault User Quota: 0 bytes\n" in show(hosting)
    hosting.admin("vadduser", "bob@example.org", password="pw")
    assert hosting.admin("vuserinfo", "-q", "bob@example.org").stdout.decode().strip() == "NOQUOTA"


@pytest.mark.parametrize("args", [
    ("-F", "5"), ("-R", "1"), ("-L", "1"), ("-Q", "100"), ("-M", "1000"), ("-g", "i"),
    ("-p", "c"), ("-z", "a"), ("-d",), ("-P", "x"), ("-S", "-P", "3"), ("-D", "-A", "1"),
])
def test_refused_options_write_nothing(hosting, args):
    hosting.admin("vmoddomlimits", "-P", "5", "example.org")
    before = limits_file(hosting).read_bytes()
    r = hosting.admin("vmoddomlimits", "-P", "7", *args, "example.org", check=False)
    assert r.returncode == 1 and r.stderr, (args, r.stderr)
    assert limits_file(hosting).read_bytes() == before


def test_unknown_domain_and_alias_domain(hosting):
    r = hosting.admin("vmoddomlimits", "-P", "1", "nowhere.example", check=False)
    assert r.returncode == 1 and b"not hosted here" in r.stderr, r.stderr
    hosting.admin("vaddaliasdomain", "example.org", "example.net")
    hosting.admin("vmoddomlimits", "-A", "4", "example.net")
    assert limits_file(hosting).read_text() == "maxaliases: 4\n"
    assert "Domain: example.org\n" in show(hosting, "example.net")
