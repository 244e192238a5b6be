"""Helpers shared by the SMTP integration tests: reading the queue, running
qmail-smtpd on pipes or under tcpserver, free loopback ports."""
import os
import re
import pathlib
import socket
import subprocess
import time


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def queued(home):
    """[(message bytes, sender, [recipients])] for every message in queue/todo,
    oldest first (queue numbers are inode numbers: their order is not the
    order of arrival, so `queued(home)[before:]` needs this)."""
    out = []
    for t in sorted(home.queue_files("todo"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        num = int(t.name)
        mess = (home.path / "queue" / "mess" / str(num % 23) / str(num)).read_bytes()
        fields = t.read_bytes().split(b"\0")
        sender = next(f[1:] for f in fields if f.startswith(b"F"))
        rcpts = [f[1:] for f in fields if f.startswith(b"T")]
        out.append((mess, sender, rcpts))
    return out


def smtpd_env(home, **extra):
    env = dict(home.env)
    for k in ("RELAYCLIENT", "DATABYTES", "SMTPAUTH", "FORCETLS", "RCPTCHECK", "TCPREMOTEINFO",
              "TCPREMOTEHOST", "TCPLOCALHOST", "MAXRCPT"):
        env.pop(k, None)
    env.update({"TCPREMOTEIP": "192.0.2.7", "TCPLOCALIP": "127.0.0.1"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def session(home, data: bytes, args=(), timeout=60, **env):
    """Runs qmail-smtpd with `data` on stdin; returns (exit code, output bytes)."""
    p = subprocess.run([home.bin("qmail-smtpd"), *args], input=data, capture_output=True,
                       env=smtpd_env(home, **env), timeout=timeout)
    return p.returncode, p.stdout


def replies(out: bytes):
    return [l for l in out.decode("latin-1").split("\r\n") if l]


class TcpServer:
    """qmail-smtpd (or another program) under Debian's tcpserver on a loopback port."""

    def __init__(self, home, argv, env=None, rules=None):
        self.port = free_port()
        e = dict(env or home.env)
        cmd = ["tcpserver", "-q", "-R", "-H", "-l", "localhost", "-c", "40"]
        if rules:
            cmd += ["-x", str(rules)]
        cmd += ["127.0.0.1", str(self.port), *argv]
        self.proc = subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                # that probe connection was a session: give it time to end
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("tcpserver did not start")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class FakeSMTP:
    """A scripted SMTP server in a thread: `replies` maps a command verb
    ("greeting", "helo", "mail", "rcpt", "data", "end", "auth"; "other" for
    any other line) to a reply line, or to a function of the line. Keeps a transcript and
    the message bodies it received. stall=True never answers after the greeting."""

    def __init__(self, host="127.0.0.1", replies=None, stall=False):
        import threading
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.replies = {"greeting": "220 fake ESMTP", "helo": "250 fake", "mail": "250 ok", "rcpt": "250 ok",
                        "data": "354 go", "end": "250 ok queued", "quit": "221 bye"}
        self.replies.update(replies or {})
        self.stall = stall
        self.transcript = []
        self.bodies = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                self.session(c)
            except OSError:
                pass
            finally:
                c.close()

    def session(self, c):
        f = c.makefile("rb")
        c.sendall(self.replies["greeting"].encode() + b"\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            self.transcript.append(line)
            if self.stall:
                continue
            verb = line[:4].decode("latin-1").lower()
            key = {"helo": "helo", "ehlo": "ehlo" if "ehlo" in self.replies else "helo", "mail": "mail",
                   "rcpt": "rcpt", "data": "data", "quit": "quit", "star": "starttls", "auth": "auth"}.get(verb, "other")
            r = self.replies.get(key, "500 what")
            if callable(r):
                r = r(line)
            c.sendall(r.encode() + b"\r\n")
            if key == "quit":
                return
            if key == "data" and r.startswith("354"):
                body = b""
                while True:
                    l = f.readline()
                    if not l or l == b".\r\n":
                        break
                    body += l
                self.bodies.append(body)
                c.sendall(self.replies["end"].encode() + b"\r\n")

    def close(self):
        self.sock.close()


# --- SMTP smuggling ------------------------------------------------------------

# End-of-data look-alikes of the SMTP smuggling research (SEC Consult 2023):
# sequences some receivers take as the end of DATA. Each is put inside a
# message, followed by SMUGGLED: a reader that ends early sees a second
# message from evil@ to victim@.
EOD_VARIANTS = [
    b"\r.\r", b"\r.\r\n", b"\n.\n", b"\n.\r\n", b"\r.\n", b"\n.\r", b"\r\n.\r", b"\r\n.\n", b"\r\n.\r\n",
    b"\r\n.\r\r\n", b"\r\r\n.\r\r\n", b"\n\n.\n\n", b"\r\r.\r\r",
    b"\n\0.\n", b"\n.\0\n", b"\r\0.\r", b"\r.\0\r", b"\0\r\n.\r\n", b"\r\n\0.\r\n", b"\r\n.\0\r\n",
    b"\r\n\0.\0\r\n", b"\r\0\n.\r\0\n", b"\n\0.\0\r\n",
]
SMUGGLED = (b"MAIL FROM:<evil@spoofed.example>\r\nRCPT TO:<victim@next.test>\r\nDATA\r\n"
            b"From: boss@spoofed.example\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n")


def checkpassword(tmp_path):
    """A checkpassword for SMTP AUTH tests: joe/secret runs the next
    program, user "down" is a temporary failure (111), the rest fail."""
    p = tmp_path / "checkpw"
    p.write_text('#!/usr/bin/python3\nimport os, sys\nd = os.read(3, 1024).split(b"\\0")\n'
                 'u, pw = d[0], d[1]\n'
                 'if u == b"down": sys.exit(111)\n'
                 'if (u, pw) == (b"joe", b"secret"): os.execv(sys.argv[1], sys.argv[1:])\n'
                 'sys.exit(1)\n')
    p.chmod(0o755)
    return p


def semantic(message: bytes) -> bytes:
    """What a message stored in the queue means once sent by SMTP: CRLF is a
    line end like LF; a CR or NUL outside CRLF cannot cross SMTP safely and
    becomes a space (the documented mapping of qmail-remote(8))."""
    return message.replace(b"\r\n", b"\n").replace(b"\r", b" ").replace(b"\0", b" ")


class LenientSMTP:
    """An SMTP sink as lax as the servers of the smuggling research: in DATA
    it ignores NUL bytes and ends the message at the first <CR> or <LF>,
    ".", <CR> or <LF> (so <CR>.<CR>, <LF>.<LF>, <CR>.<LF>, <LF>.<CR><LF> and
    the real <CR><LF>.<CR><LF>), then reads whatever follows as commands.
    messages: [(sender, [recipients], body)], the body with CRLF as LF and
    dot-stuffing undone. Serves connections, each in a thread, until close()."""

    END = re.compile(rb"[\r\n]\.[\r\n]")

    def __init__(self, host="127.0.0.1"):
        import threading
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(20)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.messages = []
        self.closed = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        import threading
        deadline = time.time() + 900
        while not self.closed and time.time() < deadline:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.connection, args=(c,), daemon=True).start()

    def connection(self, c):
        try:
            c.settimeout(30)
            self.session(c)
        except OSError:
            pass
        finally:
            c.close()

    @staticmethod
    def undo(body: bytes) -> bytes:
        lines = body.replace(b"\r\n", b"\n").split(b"\n")
        return b"\n".join(l[1:] if l.startswith(b".") else l for l in lines)

    def session(self, c):
        c.sendall(b"220 lenient.test ESMTP\r\n")
        buf, data, mail, rcpts = b"", None, None, []
        for _ in range(100000):
            if data is not None:
                m = self.END.search(data)
                if m:
                    self.messages.append((mail, rcpts, self.undo(data[1:m.start() + 1])))
                    buf = data[m.end():]
                    if data[m.end() - 1:m.end()] == b"\r" and buf.startswith(b"\n"):
                        buf = buf[1:]
                    data, mail, rcpts = None, None, []
                    c.sendall(b"250 ok queued\r\n")
                    continue
            elif b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                cmd = line.rstrip(b"\r").upper()
                if not cmd:
                    continue
                if cmd.startswith((b"HELO", b"EHLO")):
                    c.sendall(b"250 lenient.test\r\n")
                elif cmd.startswith(b"MAIL FROM:"):
                    mail = line.rstrip(b"\r")[10:].strip(b"<>")
                    c.sendall(b"250 ok\r\n")
                elif cmd.startswith(b"RCPT TO:"):
                    rcpts.append(line.rstrip(b"\r")[8:].strip(b"<>"))
                    c.sendall(b"250 ok\r\n")
                elif cmd == b"DATA":
                    c.sendall(b"354 go ahead\r\n")
                    data, buf = b"\n" + buf.replace(b"\0", b""), b""  # DATA starts at a line start
                elif cmd == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    return
                else:
                    c.sendall(b"502 unimplemented\r\n")
                continue
            got = c.recv(65536)
            if not got:
                return
            if data is not None:
                data += got.replace(b"\0", b"")
            else:
                buf += got

    def close(self):
        self.closed = True
        self.sock.close()
        self.thread.join(10)
