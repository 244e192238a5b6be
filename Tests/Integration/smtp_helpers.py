"""Helpers shared by the SMTP integration tests: reading the queue, running
qmail-smtpd on pipes or under tcpserver, free loopback ports."""
import os
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
    """[(message bytes, sender, [recipients])] for every message in queue/todo."""
    out = []
    for t in home.queue_files("todo"):
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
    ("greeting", "helo", "mail", "rcpt", "data", "end") to a reply line, or
    to a function of the command line for "rcpt". Keeps a transcript and
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
                   "rcpt": "rcpt", "data": "data", "quit": "quit", "star": "starttls"}.get(verb)
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
