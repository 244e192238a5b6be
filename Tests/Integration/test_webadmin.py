"""qmail-webadmin, as people use it: the whole server started by
scripts/run.sh, a real headless Chromium (selenium) logging in as the
system administrator, a domain's postmaster and a mailbox user, adding a
domain, mailboxes, an alias and a forward, changing a password; then mail
sent through qmail-smtpd lands and forwards as set, and the v* commands
show what the web did. Cross-tenant and CSRF attempts over plain HTTPS
requests are refused with 403; failed logins are limited per address and
per account. Screenshots of the main pages go to the test's directory and
to /tmp/webadmin-shots/."""
import http.client
import os
import pathlib
import re
import shutil
import smtplib
import ssl
import subprocess
import tempfile
import time
import urllib.parse

import pytest

from conftest import bin_dir
from test_run import DOMAIN, free_ports, password, run_account, start, stop, unverified, wait_for

OTHER = "other.test"
SHOTS = pathlib.Path("/tmp/webadmin-shots")


def chromium():
    for b in ("chromium", "chromium-browser"):
        if shutil.which(b) and shutil.which("chromedriver"):
            return shutil.which(b)
    return None


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """run.sh's whole server on free ports, with the web administration."""
    if not (bin_dir() / "checkpassword-file").exists():
        pytest.skip("programs not built")
    top = pathlib.Path(tempfile.mkdtemp(prefix="sq-web-", dir="/var/tmp"))
    top.chmod(0o755)
    names = ("smtp", "submission", "smtps", "pop3", "pop3s", "webadmin")
    ports = dict(zip(names, free_ports(len(names))))
    env = dict(os.environ, QMAIL_HOME=str(top / "home"), QMAIL_BIN=str(bin_dir()),
               **{f"{k.upper()}_PORT": str(v) for k, v in ports.items()})
    for v in ("QMAILQUEUE", "SMARTHOST", "SMARTHOST_USER", "SMARTHOST_PASSWORD", "QMAIL_LISTEN", "RELAYCLIENT"):
        env.pop(v, None)
    site = type("Site", (), {})()
    site.home, site.env, site.ports, site.procs = top / "home", env, ports, []
    site.shots = tmp_path_factory.mktemp("shots")
    with run_account():
        p = start(site)
        try:
            assert "Ctrl-C stops it" in p.banner, p.banner
            site.pw = password(p.banner)
            site.url = f"https://127.0.0.1:{ports['webadmin']}"
            site.banner = p.banner
            yield site
        finally:
            stop(p)
            shutil.rmtree(top, ignore_errors=True)


def vcmd(site, prog, *args, input=None):
    """A v* command as run.sh's admin line runs it: as the home's owner."""
    st = site.home.stat()
    owner = [] if st.st_uid == os.geteuid() else [
        "setpriv", f"--reuid={st.st_uid}", f"--regid={st.st_gid}", "--init-groups"]
    return subprocess.run(owner + [str(site.home / "bin" / prog), *args], env=dict(site.env, QMAIL_HOME=str(site.home)),
                          capture_output=True, text=True, timeout=60, input=input)


def send(site, rcpt, subject, sender="someone@far.example", to=None):
    """One message through qmail-smtpd; without `to`, no To: header (so no
    vacation answers it: it is not addressed to the mailbox)."""
    head = f"From: {sender}\n" + (f"To: {to}\n" if to else "") + f"Subject: {subject}\n"
    with smtplib.SMTP("127.0.0.1", site.ports["smtp"], timeout=30) as s:
        s.sendmail(sender, [rcpt], head + "\nhello\n")


def messages(site, domain, user):
    d = site.home / "domains" / domain / user / "Maildir" / "new"
    return [f.read_text(errors="replace") for f in sorted(d.iterdir())] if d.is_dir() else []


# ---------------------------------------------------------------- plain HTTPS client

class Client:
    """Cookies, the login form's token and the session's CSRF token, over
    http.client: what a script (or an attacker with a session) sends."""

    def __init__(self, site):
        self.site = site
        self.cookies = {}
        self.csrf = None

    def request(self, method, path, fields=None):
        c = http.client.HTTPSConnection("127.0.0.1", self.site.ports["webadmin"], context=unverified(), timeout=20)
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if fields is not None:
            body = urllib.parse.urlencode(fields)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        text = r.read().decode()
        for h, v in r.getheaders():
            if h.lower() == "set-cookie":
                name, value = v.split(";", 1)[0].split("=", 1)
                if "Max-Age=0" in v:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
                    assert "Secure" in v and "HttpOnly" in v and "SameSite=Strict" in v, v
        m = re.search(r'name="csrf" value="([0-9a-f]+)"', text)
        if m:
            self.csrf = m.group(1)
        c.close()
        return r.status, r.getheader("Location"), text

    def login(self, user, pw):
        s, _, page = self.request("GET", "/login")
        pre = re.search(r'name="pre" value="([0-9a-f]+)"', page).group(1)
        s, loc, page = self.request("POST", "/login", {"pre": pre, "login": user, "password": pw})
        where = loc
        for _ in range(3):
            if not where:
                break
            _, where, page = self.request("GET", where)
        return s, page

    def post(self, path, fields, csrf=True):
        f = dict(fields)
        if csrf:
            f["csrf"] = self.csrf
        return self.request("POST", path, f)


# ---------------------------------------------------------------- the browser

@pytest.fixture(scope="module")
def browser(web):
    binary = chromium()
    if binary is None:
        pytest.skip("chromium and chromedriver are not installed (scripts/deps.sh test installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    o = webdriver.ChromeOptions()
    o.binary_location = binary
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--ignore-certificate-errors",
              "--disable-gpu", "--window-size=1100,900", "--user-data-dir=" + str(web.home.parent / "chrome")):
        o.add_argument(a)
    d = webdriver.Chrome(options=o, service=Service(shutil.which("chromedriver")))
    d.set_page_load_timeout(30)
    yield d
    d.quit()


class Person:
    def __init__(self, site, d):
        self.site, self.d = site, d
        from selenium.webdriver.common.by import By
        self.By = By

    def go(self, path):
        self.d.get(self.site.url + path)

    def form(self, action):
        return self.d.find_element(self.By.CSS_SELECTOR, f'form[action="{action}"]')

    def submit(self, action, index=0, **fields):
        from selenium.webdriver.support.ui import Select
        f = self.d.find_elements(self.By.CSS_SELECTOR, f'form[action="{action}"]')[index]
        for name, v in fields.items():
            if name == "mode":
                f.find_element(self.By.CSS_SELECTOR, f'input[name="mode"][value="{v}"]').click()
                continue
            el = f.find_element(self.By.NAME, name)
            if el.get_attribute("type") == "checkbox":
                if bool(v) != el.is_selected():
                    el.click()
            elif el.tag_name == "select":
                Select(el).select_by_value(v)
            else:
                el.clear()
                el.send_keys(v)
        self.click_and_wait(f.find_element(self.By.CSS_SELECTOR, 'button[type="submit"]'))

    def click_and_wait(self, button):
        """Clicks, and waits for the next page (the old one goes stale)."""
        from selenium.webdriver.support.ui import WebDriverWait
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
        html_el = self.d.find_element(self.By.TAG_NAME, "html")
        button.click()

        def old_page_gone(_):
            try:
                html_el.is_enabled()
                return False
            except StaleElementReferenceException:
                return True
            except WebDriverException as e:
                # chromedriver may report the replaced page's node this way
                # instead of as a stale element.
                if "does not belong to the document" in str(e):
                    return True
                raise
        WebDriverWait(self.d, 30).until(old_page_gone)

    def message(self):
        """The page's outcome line (ok or error)."""
        found = self.d.find_elements(self.By.CSS_SELECTOR, "p.ok, p.error")
        return found[0].text if found else ""

    def ok(self, want):
        m = self.message()
        assert want in m and self.d.find_elements(self.By.CSS_SELECTOR, "p.ok"), (m, self.d.current_url)

    def login(self, user, pw):
        self.go("/login")
        self.submit("/login", login=user, password=pw)

    def logout(self):
        self.click_and_wait(self.form("/logout").find_element(self.By.CSS_SELECTOR, "button"))
        assert "/login" in self.d.current_url

    def shot(self, name, width=1100):
        self.d.set_window_size(width, 900)
        height = self.d.execute_script("return document.documentElement.scrollHeight")
        self.d.set_window_size(width, max(600, min(height + 40, 4000)))
        path = self.site.shots / f"{name}.png"
        self.d.save_screenshot(str(path))
        SHOTS.mkdir(exist_ok=True)
        shutil.copy(path, SHOTS / path.name)
        self.d.set_window_size(1100, 900)

    def text(self):
        return self.d.find_element(self.By.TAG_NAME, "main").text


def test_listens_on_loopback_with_tls_and_says_so(web):
    assert f"web admin   https://127.0.0.1:{web.ports['webadmin']}/" in web.banner
    assert (web.home / "control" / "webadmins").read_text() == f"postmaster@{DOMAIN}\n"
    r = subprocess.run(["ss", "-ltnH", f"sport = :{web.ports['webadmin']}"], capture_output=True, text=True)
    assert r.stdout.split()[3] == f"127.0.0.1:{web.ports['webadmin']}" and len(r.stdout.splitlines()) == 1, r.stdout
    # TLS 1.1 is refused; plain HTTP gets no page
    old = unverified()
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        c = http.client.HTTPSConnection("127.0.0.1", web.ports["webadmin"], context=old, timeout=10)
        c.request("GET", "/login")
        c.getresponse()
    c = http.client.HTTPConnection("127.0.0.1", web.ports["webadmin"], timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        c.request("GET", "/login")
        c.getresponse()


def test_three_roles_in_a_browser_and_mail_follows(web, browser):
    p = Person(web, browser)
    # a page without a session goes to the login
    p.go("/domains")
    assert browser.current_url.endswith("/login")
    assert browser.find_element(p.By.CSS_SELECTOR, 'meta[name="viewport"]')
    p.shot("login", 390)
    p.login(f"postmaster@{DOMAIN}", "wrong password")
    assert "Wrong mail address or password." in p.message()
    # the system administrator: the domains
    p.login(f"postmaster@{DOMAIN}", web.pw)
    assert browser.current_url.endswith("/domains"), browser.current_url
    p.submit("/domains/add", domain=OTHER, password="pm-other-secret", quota="")
    p.ok(f"Domain {OTHER} added")
    p.submit("/domains/add", domain="gone.test", password="pm-gone-secret")
    p.ok("Domain gone.test added")
    p.submit("/domains/alias", alias="alias-other.test", real=OTHER)
    p.ok("alias-other.test is now an alias of other.test")
    p.submit("/domains/add", domain="bad domain!", password="whatever12")
    assert browser.find_elements(p.By.CSS_SELECTOR, "p.error") and "domain" in p.message().lower(), p.message()
    p.shot("domains")
    # limits, on the domain's page (system administrator only)
    p.go(f"/domain?d={OTHER}")
    p.submit("/domains/limits", maxmailboxes="10", maxaliases="", defaultquota="50M")
    p.ok("Limits of other.test saved")
    assert "limits:  mailboxes 10, aliases unlimited, default quota 52428800S" in vcmd(web, "vdominfo", OTHER).stdout
    # deleting a domain says what goes with it, and asks first
    send(web, "postmaster@gone.test", "to be deleted")
    wait_for(lambda: len(messages(web, "gone.test", "postmaster")) == 1, "no mail for postmaster@gone.test")
    p.go("/domains/delete?d=gone.test")
    assert "Deleting gone.test removes 1 mailbox holding 1 message" in p.text(), p.text()
    p.shot("delete-domain", 390)
    p.submit("/domains/delete")
    p.ok("Domain gone.test deleted")
    assert vcmd(web, "vdominfo", "gone.test").returncode != 0
    p.logout()

    # the domain's postmaster: mailboxes, an alias, a forward, catch-all
    p.login(f"postmaster@{OTHER}", "pm-other-secret")
    assert browser.current_url.endswith(f"/domain?d={OTHER}"), browser.current_url
    assert not browser.find_elements(p.By.CSS_SELECTOR, 'a[href="/domains"]')
    p.submit("/domain/mailbox/add", u="alice", password="alice-first-pw", quota="")
    p.ok(f"Mailbox alice@{OTHER} added")
    p.submit("/domain/mailbox/add", u="bob", password="bob-secret-pw", quota="10M")
    p.ok(f"Mailbox bob@{OTHER} added")
    p.submit("/domain/mailbox/add", u="carl", password="carl-secret-pw")
    p.ok("added")
    p.submit("/domain/mailbox/add", u="temp", password="temp-secret-pw")
    p.ok("added")
    p.submit("/domain/alias/add", a="sales", target="alice")
    p.ok(f"sales@{OTHER} now goes to alice@{OTHER}")
    p.submit("/domain/alias/add", a="boss", target=f"postmaster@{DOMAIN}")
    p.ok(f"boss@{OTHER} now goes to postmaster@{DOMAIN}")
    p.submit("/domain/catchall", mode="forward", target="bob")
    p.ok("delivered to bob")
    assert "v=spf1" in p.text() and "_dmarc.other.test" in p.text() and "_domainkey" in p.text()
    p.shot("postmaster-domain")
    p.shot("postmaster-domain-phone", 390)
    # bob's page: a forward kept here too, and a new quota
    p.go(f"/domain/mailbox?d={OTHER}&u=bob")
    p.submit("/domain/mailbox/forward", targets=f"postmaster@{DOMAIN}", keep=True)
    p.ok(f"Forwarding of bob@{OTHER} saved")
    p.submit("/domain/mailbox/quota", quota="20M")
    p.ok("Quota of bob")
    p.shot("mailbox")
    # deleting a mailbox asks first
    p.go(f"/domain/mailbox/delete?d={OTHER}&u=temp")
    assert f"Delete temp@{OTHER}?" in p.text()
    p.submit("/domain/mailbox/delete")
    p.ok(f"Mailbox temp@{OTHER} deleted")
    p.logout()

    # the mailbox user: its password, its forwarding (no copy kept)
    p.login(f"alice@{OTHER}", "alice-first-pw")
    assert browser.current_url.endswith("/me"), browser.current_url
    p.submit("/me/password", current="not-my-password", password="alice-second-pw", password2="alice-second-pw")
    assert "current password was not right" in p.message()
    p.submit("/me/password", current="alice-first-pw", password="alice-second-pw", password2="alice-second-pw")
    p.ok(f"Password of alice@{OTHER} changed")
    p.submit("/me/forward", targets=f"bob@{OTHER}", keep=False)
    p.ok("Forwarding saved")
    p.submit("/me/spam", spam=True, reject="8", quarantine=True)
    p.ok("Spam settings saved")
    p.submit("/me/vacation", subject="Away", body="I am away until Monday.\nBack soon.", first="", last="", interval="7")
    p.ok("Vacation message saved and on")
    assert "On: senders get the reply below." in p.text()
    p.shot("me")
    p.shot("me-phone", 390)
    p.logout()
    p.login(f"alice@{OTHER}", "alice-first-pw")
    assert "Wrong mail address or password." in p.message()
    p.login(f"alice@{OTHER}", "alice-second-pw")
    assert browser.current_url.endswith("/me")
    p.logout()

    # the v* commands see what the web did
    assert vcmd(web, "vuserinfo", "-q", f"bob@{OTHER}").stdout.strip() == "20971520S"
    assert vcmd(web, "vuserinfo", "-q", f"alice@{OTHER}").stdout.strip() == "52428800S"  # the domain's default
    assert vcmd(web, "vuserinfo", f"temp@{OTHER}").returncode != 0
    aliases = vcmd(web, "valias", "-s", OTHER).stdout
    assert f"sales@{OTHER} -> alice@{OTHER}" in aliases and f"boss@{OTHER} -> postmaster@{DOMAIN}" in aliases
    info = vcmd(web, "vdominfo", OTHER).stdout
    assert "users:   4" in info and "unknown: bob" in info and "aliases: alias-other.test" in info, info
    assert vcmd(web, "vfilterpolicy", f"alice@{OTHER}").stdout.strip() == f"alice@{OTHER}: spam=yes,quarantine=yes,reject=8.0"
    cp = subprocess.run(["/bin/sh", "-c", 'exec "$0" true 3<&0', str(web.home / "bin" / "checkpassword-file")],
                        input=f"alice@{OTHER}\0alice-second-pw\0\0".encode(), capture_output=True, timeout=30)
    assert cp.returncode == 0, cp.stderr

    # mail through qmail-smtpd lands and forwards as set
    send(web, f"alice@{OTHER}", "to alice")      # forwarded to bob, no copy kept
    send(web, f"sales@{OTHER}", "to sales")      # alias -> alice -> bob
    send(web, f"bob@{OTHER}", "to bob")          # kept, and forwarded to postmaster@example.test
    send(web, f"nobody@{OTHER}", "to nobody")    # catch-all: bob
    send(web, "boss@alias-other.test", "to boss")  # alias domain; alias to another domain
    def subjects(domain, user):
        return sorted(re.search(r"^Subject: (.*)$", m, re.M).group(1) for m in messages(web, domain, user))
    want_bob = ["to alice", "to bob", "to nobody", "to sales"]
    wait_for(lambda: subjects(OTHER, "bob") == want_bob, f"bob got {subjects(OTHER, 'bob')}")
    wait_for(lambda: {"to bob", "to boss"} <= set(subjects(DOMAIN, "postmaster")),
             f"postmaster got {subjects(DOMAIN, 'postmaster')}")
    assert subjects(OTHER, "alice") == []
    # the vacation answers mail addressed to alice, once
    assert "enabled: yes" in vcmd(web, "vvacation", f"alice@{OTHER}", "--show").stdout
    send(web, f"alice@{OTHER}", "are you there", sender=f"bob@{OTHER}", to=f"alice@{OTHER}")
    def replies(domain, user):
        return [m for m in messages(web, domain, user) if "Auto-Submitted: auto-replied" in m]
    wait_for(lambda: len(replies(OTHER, "bob")) == 1, "no vacation reply")
    [reply] = replies(OTHER, "bob")
    assert "Subject: Away" in reply and "I am away until Monday.\nBack soon." in reply, reply
    # turned off on the web: off for vvacation too, and no more replies
    p.login(f"alice@{OTHER}", "alice-second-pw")
    p.submit("/me/vacation/off")
    p.ok("Vacation message off.")
    assert "Off." in p.text()
    p.logout()
    assert "enabled: no" in vcmd(web, "vvacation", f"alice@{OTHER}", "--show").stdout
    send(web, f"alice@{OTHER}", "after vacation", sender=f"carl@{OTHER}", to=f"alice@{OTHER}")
    wait_for(lambda: "after vacation" in subjects(OTHER, "bob"), "the forward of 'after vacation' did not arrive")
    time.sleep(2)
    assert replies(OTHER, "carl") == [] and len(replies(OTHER, "bob")) == 1
    # the log has the logins and never a password
    log = (web.home / "log" / "webadmin" / "current").read_text()
    assert f"qmail-webadmin: login failed remote=127.0.0.1 user=postmaster@{DOMAIN}" in log
    assert f"qmail-webadmin: login ok remote=127.0.0.1 user=alice@{OTHER}" in log
    for secret in (web.pw, "alice-first-pw", "alice-second-pw", "bob-secret-pw", "pm-other-secret"):
        assert secret not in log


def test_each_login_reaches_only_its_own(web):
    """Plain requests with real sessions: another domain in a form, a form
    without (or with another session's) CSRF token, a mailbox at the
    postmaster's pages, a postmaster at the system pages: all 403."""
    if vcmd(web, "vdominfo", OTHER).returncode != 0:  # this test run alone
        assert vcmd(web, "vadddomain", OTHER, "pm-other-secret").returncode == 0
    assert vcmd(web, "vadduser", f"carol@{OTHER}", "carol-secret-pw").returncode == 0
    before = vcmd(web, "vuserinfo", "-p", f"postmaster@{DOMAIN}").stdout
    pm = Client(web)
    s, page = pm.login(f"postmaster@{OTHER}", "pm-other-secret")
    assert s == 303 and "Mailboxes" in page, page
    assert pm.request("GET", f"/domain?d={DOMAIN}")[0] == 403
    assert pm.request("GET", "/domains")[0] == 403
    assert pm.request("GET", f"/domain/mailbox?d={DOMAIN}&u=postmaster")[0] == 403
    # another domain's mailbox in a form, with a valid token
    assert pm.post("/domain/mailbox/password", {"d": DOMAIN, "u": "postmaster", "password": "taken-over-1",
                                                "password2": "taken-over-1"})[0] == 403
    assert pm.post("/domain/mailbox/add", {"d": DOMAIN, "u": "mallory", "password": "mallory-pw-1"})[0] == 403
    assert pm.post("/domains/add", {"domain": "evil.test", "password": "evil-secret-1"})[0] == 403
    # its own domain with the other domain's address smuggled into the name
    s, loc, _ = pm.post("/domain/mailbox/password", {"d": OTHER, "u": f"postmaster@{DOMAIN}", "password": "taken-over-1",
                                                     "password2": "taken-over-1"})
    assert s == 303
    assert "No such mailbox." in pm.request("GET", loc)[2]
    assert vcmd(web, "vuserinfo", "-p", f"postmaster@{DOMAIN}").stdout == before
    assert vcmd(web, "vuserinfo", f"mallory@{DOMAIN}").returncode != 0
    assert vcmd(web, "vdominfo", "evil.test").returncode != 0
    # a replayed form without the token, or with another session's
    assert pm.post("/domain/mailbox/add", {"d": OTHER, "u": "eve", "password": "eve-secret-pw"}, csrf=False)[0] == 403
    other = Client(web)
    other.login(f"carol@{OTHER}", "carol-secret-pw")
    stolen = dict(d=OTHER, u="eve", password="eve-secret-pw", csrf=other.csrf)
    assert pm.request("POST", "/domain/mailbox/add", stolen)[0] == 403
    assert vcmd(web, "vuserinfo", f"eve@{OTHER}").returncode != 0
    # a mailbox user: its own page only
    assert other.request("GET", "/me")[0] == 200
    assert other.request("GET", f"/domain?d={OTHER}")[0] == 403
    assert other.post("/domain/mailbox/add", {"d": OTHER, "u": "eve", "password": "eve-secret-pw"})[0] == 403
    assert other.post("/domain/catchall", {"d": OTHER, "mode": "delete"})[0] == 403
    assert other.request("GET", "/domains")[0] == 403
    # no session at all
    anon = Client(web)
    assert anon.request("POST", "/domain/mailbox/add", {"d": OTHER, "u": "eve", "password": "x"})[0] == 403
    assert vcmd(web, "vuserinfo", f"eve@{OTHER}").returncode != 0
    # a logged-out session is gone
    assert pm.post("/logout", {})[0] == 303
    assert pm.request("GET", f"/domain?d={OTHER}")[0] == 303


def test_home_host_is_set_by_the_system_administrator_only(web):
    """A domain's default cluster home host: the system administrator sets
    it (vadddomain -H's value, as vuserinfo shows); a postmaster sees it and
    a mailbox's own, and can change neither (that would strand the mail)."""
    dom = "cluster.test"
    assert vcmd(web, "vadddomain", dom, "pm-cluster-secret").returncode == 0
    assert vcmd(web, "vadduser", f"dave@{dom}", "dave-secret-pw").returncode == 0
    assert vcmd(web, "vmoduser", "-H", f"mx3.{dom}", f"dave@{dom}").returncode == 0
    host = lambda u: re.search(r"host: +(.*)", vcmd(web, "vuserinfo", f"{u}@{dom}").stdout).group(1)  # noqa: E731
    sysadm = Client(web)
    sysadm.login(f"postmaster@{DOMAIN}", web.pw)
    assert 'action="/domains/homehost"' in sysadm.request("GET", f"/domain?d={dom}")[2]
    s, loc, _ = sysadm.post("/domains/homehost", {"d": dom, "host": f"mx2.{dom}"})
    assert s == 303 and f"now held on mx2.{dom}" in sysadm.request("GET", loc)[2]
    assert host("postmaster") == f"mx2.{dom} (the domain's)" and host("dave") == f"mx3.{dom}"
    s, loc, _ = sysadm.post("/domains/homehost", {"d": dom, "host": "not a host!"})
    assert "is not a host name" in sysadm.request("GET", loc)[2]
    assert host("postmaster") == f"mx2.{dom} (the domain's)"

    pm = Client(web)
    pm.login(f"postmaster@{dom}", "pm-cluster-secret")
    page = pm.request("GET", f"/domain?d={dom}")[2]
    assert f"held on host mx2.{dom}" in page and "/domains/homehost" not in page
    assert f"Held on host mx3.{dom}." in pm.request("GET", f"/domain/mailbox?d={dom}&u=dave")[2]
    assert f"Held on host mx2.{dom} (the domain" in pm.request("GET", f"/domain/mailbox?d={dom}&u=postmaster")[2]
    assert pm.post("/domains/homehost", {"d": dom, "host": "evil.example"})[0] == 403
    assert host("postmaster") == f"mx2.{dom} (the domain's)"

    s, loc, _ = sysadm.post("/domains/homehost", {"d": dom, "host": ""})
    assert host("postmaster") == "(every host its own)" and host("dave") == f"mx3.{dom}"


def test_failed_logins_are_limited_per_address_and_per_account(web):
    table = web.home / "authfail" / "failures"
    limits = web.home / "control" / "authfaillimit"
    if vcmd(web, "vdominfo", OTHER).returncode != 0:
        assert vcmd(web, "vadddomain", OTHER, "pm-other-secret").returncode == 0
    assert vcmd(web, "vadduser", f"dave@{OTHER}", "dave-secret-pw").returncode == 0
    try:
        # per account: 3 wrong passwords for dave, then even the right one
        # is refused; another account from the same address is not
        limits.write_text("ip 0 0\nuser 3 600\n")
        table.unlink(missing_ok=True)
        c = Client(web)
        for _ in range(3):
            assert c.login(f"dave@{OTHER}", "wrong")[0] == 401
        s, page = c.login(f"dave@{OTHER}", "dave-secret-pw")
        assert s == 429 and "Too many failed logins" in page
        assert Client(web).login(f"postmaster@{OTHER}", "pm-other-secret")[0] == 303
        # per address: 3 failures for any names, then nobody from it
        limits.write_text("ip 3 600\nuser 0 0\n")
        table.unlink(missing_ok=True)
        for n in range(3):
            assert c.login(f"nobody{n}@{OTHER}", "wrong")[0] == 401
        assert c.login(f"postmaster@{OTHER}", "pm-other-secret")[0] == 429
        log = (web.home / "log" / "webadmin" / "current").read_text()
        assert f"qmail-webadmin: login limited remote=127.0.0.1 user=postmaster@{OTHER}" in log
    finally:
        limits.unlink(missing_ok=True)
        table.unlink(missing_ok=True)


def test_no_certificate_no_server(qhome):
    """Logins never go over plain HTTP: without control/servercert.pem it
    does not start (111), and a wrong option is a usage error (100)."""
    r = qhome.run("qmail-webadmin", "-p", "0", timeout=30)
    assert r.returncode == 111 and b"servercert.pem" in r.stderr, r.stderr
    r = qhome.run("qmail-webadmin", "-x", timeout=30)
    assert r.returncode == 100 and b"usage: qmail-webadmin" in r.stderr, r.stderr
    qhome.control("webadminport", "99999\n")
    r = qhome.run("qmail-webadmin", timeout=30)
    assert r.returncode == 111 and b"control/webadminport: bad port 99999" in r.stderr, r.stderr
