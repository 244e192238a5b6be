"""qmail-webadmin's own HTTP/1.1 (Sources/QmailWeb/WebHTTP.swift), spoken
over TLS on a raw socket, byte by byte as clients and attackers send it:
requests kept alive and pipelined on one connection, HTTP/1.0, a chunked
form and "Expect: 100-continue" (a real login through each), and every
malformed or ambiguous request refused with its status and the connection
closed: no Host, a length and chunking at once, two lengths, another
coding, folded or badly named headers, overlong lines and heads, another
version. A client that stalls holds up no one else."""
import re
import socket
import ssl
import subprocess
import time
import urllib.parse

from test_pop3 import unverified
from test_webadmin_split import PM_PW, Server, site, server  # noqa: F401 (fixtures)


class Conn:
    """One TLS connection; responses read by their Content-Length."""

    def __init__(self, port):
        raw = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.s = unverified().wrap_socket(raw)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def response(self):
        """(status, headers as a dict of lists, body)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for l in lines[1:]:
            k, v = l.split(":", 1)
            headers.setdefault(k.strip().lower(), []).append(v.strip())
        n = int(headers.get("content-length", ["0"])[0])
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def closed(self):
        """True when the server closed the connection (nothing more comes)."""
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (ssl.SSLError, ConnectionError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def get(path, extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode()


def test_keep_alive_pipelining_and_http_1_0(server):
    c = Conn(server.port)
    # two requests in one write come back in order, on one connection
    c.send(get("/login") + get("/nowhere"))
    s1, h1, b1 = c.response()
    s2, h2, _ = c.response()
    assert (s1, s2) == (200, 404) and b"<form" in b1
    assert "connection" not in h1 and "connection" not in h2
    # HEAD: GET's answer without its body, and the connection goes on
    c.send(b"HEAD /login HTTP/1.1\r\nHost: localhost\r\n\r\n" + get("/nowhere"))
    c.s.settimeout(2)
    while b"\r\n\r\n" not in c.buf:
        c._fill()
    head, c.buf = c.buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ") and int(re.search(rb"Content-Length: (\d+)", head).group(1)) == len(b1)
    assert c.response()[0] == 404
    c.s.settimeout(20)
    c.send(get("/login", "Connection: close\r\n"))
    s3, h3, _ = c.response()
    assert s3 == 200 and h3["connection"] == ["close"] and c.closed()
    c.close()
    # HTTP/1.0 closes after one answer unless asked to keep alive
    c = Conn(server.port)
    c.send(b"GET /login HTTP/1.0\r\n\r\n")
    s, h, _ = c.response()
    assert s == 200 and h["connection"] == ["close"] and c.closed()
    c.close()
    c = Conn(server.port)
    c.send(b"GET /login HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get("/login"))
    assert c.response()[0] == 200 and c.response()[0] == 200
    c.close()


def login_form(port):
    """The login form's token and its cookie."""
    c = Conn(port)
    c.send(get("/login"))
    _, h, body = c.response()
    c.close()
    pre = re.search(rb'name="pre" value="([0-9a-f]+)"', body).group(1).decode()
    cookie = [v.split(";", 1)[0] for v in h["set-cookie"] if "login" in v][0]
    return pre, cookie


def test_a_chunked_login_and_one_that_waits_for_100_continue(server):
    pre, cookie = login_form(server.port)
    form = urllib.parse.urlencode({"pre": pre, "login": "postmaster@example.org", "password": PM_PW}).encode()
    head = f"POST /login HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    # chunked, with a chunk extension and a trailer
    c = Conn(server.port)
    body = b"%x;ext=1\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: yes\r\n\r\n" % (10, form[:10], len(form) - 10, form[10:])
    c.send(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n" + body + get("/login"))
    s, h, _ = c.response()
    assert s == 303 and h["location"] == ["/"], (s, h)
    assert any(v.startswith("__Host-qwa=") for v in h["set-cookie"])
    assert c.response()[0] == 200  # the request after the chunked one was read apart from it
    c.close()
    # the client sends its body only after "100 Continue"
    c = Conn(server.port)
    c.send(head.encode() + f"Content-Length: {len(form)}\r\nExpect: 100-continue\r\n\r\n".encode())
    first = c.response()
    assert first[0] == 100, first
    c.send(form)
    s, h, _ = c.response()
    assert s == 303 and h["location"] == ["/"], (s, h)
    c.close()
    # over the limit: refused before the body is sent
    c = Conn(server.port)
    c.send(head.encode() + b"Content-Length: 70000\r\nExpect: 100-continue\r\n\r\n")
    s, h, _ = c.response()
    assert s == 413 and h["connection"] == ["close"] and c.closed()
    c.close()
    # chunks that add up to more than the limit
    c = Conn(server.port)
    c.send(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n" + (b"8000\r\n" + b"a" * 0x8000 + b"\r\n") * 3 + b"0\r\n\r\n")
    assert c.response()[0] == 413
    c.close()


BAD = [
    (b"GET /login HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET /login HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef", 400),
    (b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400),
    # a length or coding field with nothing in it (Fuzz/webhttp found these read as no body)
    (b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400),
    (b"POST /login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\nContent-Length: 3\r\n\r\nu=x", 400),
    (b"POST /login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"POST /login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 junk\r\nabcde\r\n0\r\n\r\n", 400),
    (b"POST /login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n0\r\n\r\n", 400),
    (b"POST /login HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcde\r\n0\r\n\r\n", 400),
    (b"POST /login HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"GET /login HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n", 400),
    (b"GET /login HTTP/1.1\r\nHost: a\r\nX-Space : one\r\n\r\n", 400),
    (b"GET /login HTTP/1.1\r\nHost: a\r\nX-Nul: a\x00b\r\n\r\n", 400),
    (b"GET /login HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n", 400),
    (b"GET  /login HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET login HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET /log\x7fin HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"G(T /login HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET /login HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    (b"GET /login FTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    (b"GET /login HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(100)) + b"\r\n", 431),
    (b"GET /login HTTP/1.1\r\nHost: a\r\nCookie: " + b"c" * 40000 + b"\r\n\r\n", 431),
]


def test_malformed_and_ambiguous_requests_are_refused_and_closed(server):
    for data, status in BAD:
        c = Conn(server.port)
        # a good request after the bad one must not be read as a second request
        c.send(data + get("/login"))
        s, h, _ = c.response()
        assert (s, h.get("connection")) == (status, ["close"]), data[:80]
        assert c.closed(), data[:80]
        c.close()
    # absolute form is taken (its host is Host's business); a query reaches the page
    c = Conn(server.port)
    c.send(b"GET https://localhost/login?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert c.response()[0] == 200
    c.close()
    assert server.proc.poll() is None


def test_a_stalled_client_holds_up_no_one(server):
    # idle TCP connections without a handshake, one stopped inside a
    # request head, one inside a body: none of them delays the others
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=20) for _ in range(5)]
    head = Conn(server.port)
    head.send(b"GET /login HTTP/1.1\r\nHost: a\r\nX-Half: ")
    body = Conn(server.port)
    body.send(b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
    t = time.monotonic()
    for _ in range(3):
        c = Conn(server.port)
        c.send(get("/login"))
        assert c.response()[0] == 200
        c.close()
    assert time.monotonic() - t < 10
    # the stalled ones still get their answers when they go on
    head.send(b"1\r\n\r\n")
    assert head.response()[0] == 200
    body.send(b"d" * 97)
    assert body.response()[0] in (403, 400)  # a login form without its token
    for s in idle + [head.s, body.s]:
        s.close()
    # plain HTTP on the TLS port gets no page, and harms nothing
    r = subprocess.run(["curl", "-s", "-m", "10", f"http://127.0.0.1:{server.port}/login"], capture_output=True)
    assert b"<form" not in r.stdout
    c = Conn(server.port)
    c.send(get("/login"))
    assert c.response()[0] == 200
    c.close()
