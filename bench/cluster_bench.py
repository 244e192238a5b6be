#!/usr/bin/env python3
"""Cluster throughput (issue 22), SMTP in to Maildir: hosts in network
namespaces made by Tests/Integration/cluster_net.py, each a full instance;
smtp-source (Postfix) sends from the client namespace over the bridge.

Cases:
  - alone:      one host, every mailbox on it (no cluster; the baseline);
  - front+K:    one front host that receives all the SMTP and holds no
                mailbox, K = 1, 2, 3 backend hosts holding the mailboxes
                (the front host passes every message on over QMTP);
  - all3:       three hosts, each holding a third of the mailboxes and each
                receiving a third of the SMTP (a third of it is for its
                own mailboxes, the rest goes over QMTP).

MAILBOXES (18) mailboxes in example.org, spread over the backends in
turn; one smtp-source lane per mailbox, N/MAILBOXES messages of 4 KiB
each over one connection, all lanes at once. Printed per case: accepted
msgs/s (N / time until the last client finished), delivered msgs/s (N /
time until the last message was in its Maildir), and the scaling factor of
delivered msgs/s against front+1 and against alone. Every host is a
process tree on the same machine: the hosts share its cores and its disk,
so more hosts add no hardware here; what the figures show is the cost of
the extra hop and how the work spreads.

A front host hands every message over from a local delivery
(vdelivermail's QMTP client), so its control/concurrencylocal (qmail's
default 10) bounds how many hand-overs run at once; BENCH_CONCURRENCYLOCAL
sets it on every host to see how much that matters.

POP3 (case "pop3"): two hosts, every mailbox homed on B; sessions from the
client straight to B ("direct") and to A, whose qmail-pop3proxy logs in
on B and relays ("proxy"), alternating in the same run on the same
cluster. A session is USER, PASS, STAT, UIDL, RETR 1, QUIT (poplib);
BENCH_POP3_CLIENTS (default 4) concurrent clients share
BENCH_POP3_SESSIONS (default 400) sessions per measurement, each client
on its own mailbox with 3 messages of 4 KiB. Printed: sessions/s each way
and proxy/direct. The proxy's session costs a second qmail-popup,
checkpassword and TCP connection (on B) besides A's own, so on one shared
machine the ratio shows that extra work, not a network's latency.

Run as root. BENCH_MESSAGES (default 540, a multiple of 18), BENCH_ROUNDS
(default 1; medians), BENCH_CASES (default "alone,front+1,front+2,front+3,all3,pop3"),
BENCH_CONCURRENCYLOCAL, SQ_BIN, BENCH_DIR (scratch, default /var/tmp).
"""
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "Integration"))
import smtp_bench as sb  # noqa: E402

os.environ.setdefault("SQ_BIN", sb.BIN)
import cluster_net  # noqa: E402

N = int(os.environ.get("BENCH_MESSAGES", "540"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "1")))
CASES = [c for c in os.environ.get("BENCH_CASES", "alone,front+1,front+2,front+3,all3,pop3").split(",") if c]
MAILBOXES = 18
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "900"))
ACCOUNT = "nobody"
CONCURRENCY = os.environ.get("BENCH_CONCURRENCYLOCAL")
POP3_CLIENTS = max(1, int(os.environ.get("BENCH_POP3_CLIENTS", "4")))
POP3_SESSIONS = max(POP3_CLIENTS, int(os.environ.get("BENCH_POP3_SESSIONS", "400")))


def layout(case):
    """(number of hosts, indexes of the hosts holding mailboxes, indexes of
    the hosts receiving SMTP)."""
    if case == "alone":
        return 1, [0], [0]
    if case.startswith("front+"):
        k = int(case[len("front+"):])
        return k + 1, list(range(1, k + 1)), [0]
    if case == "all3":
        return 3, [0, 1, 2], [0, 1, 2]
    raise SystemExit(f"unknown case {case}")


def one_run(case):
    n_hosts, backends, senders = layout(case)
    per_box = N // MAILBOXES
    control = {"concurrencylocal": CONCURRENCY + "\n"} if CONCURRENCY else None
    with cluster_net.Cluster(n_hosts, base=sb.WORK, control=control) as c:
        c.admin_all("vadddomain", "-u", ACCOUNT, "example.org", password="pw")
        boxes = []  # (user, home host, host the lane sends to)
        for k in range(MAILBOXES):
            home = c.hosts[backends[k % len(backends)]]
            to = c.hosts[senders[(k // len(backends)) % len(senders)]]
            boxes.append((f"box{k}", home, to))
            c.admin_all("vadduser", "-H", home.name, f"box{k}@example.org", password="pw")
        c.start()
        dirs = [home.q.path / "domains" / "example.org" / user / "Maildir" / "new" for user, home, _ in boxes]
        t0 = time.perf_counter()
        lanes = [c.client_popen([sb.SMTP_SOURCE, "-d", "-s", "1", "-m", per_box, "-l", len(sb.BODY),
                                 "-M", "client.example", "-f", "s@client.example", "-t", f"{user}@example.org",
                                 f"{to.addr}:{cluster_net.SMTP_PORT}"], stdout=subprocess.DEVNULL)
                 for user, _, to in boxes]
        for p in lanes:
            if p.wait(timeout=TIMEOUT) != 0:
                raise SystemExit(f"{case}: smtp-source failed")
        accepted = time.perf_counter() - t0
        deadline = time.time() + TIMEOUT
        while sum(len(os.listdir(d)) for d in dirs) < per_box * MAILBOXES:
            if time.time() > deadline:
                raise SystemExit(f"{case}: only {sum(len(os.listdir(d)) for d in dirs)} delivered")
            time.sleep(0.02)
        delivered = time.perf_counter() - t0
        for h in c.hosts:
            if "bounce msg" in h.log() or " failure: " in h.log():
                raise SystemExit(f"{case}: {h.name} bounced or failed a message:\n{h.log()}")
        return accepted, delivered


def pop3_sessions(c, host, count):
    """count sessions (USER PASS STAT UIDL RETR 1 QUIT) to host's POP3
    from POP3_CLIENTS client threads, client k as box k; the seconds taken."""
    errors = []

    def client(k, n):
        try:
            for _ in range(n):
                with c.pop3(host) as p:
                    p.user(f"box{k}@example.org")
                    p.pass_("pw")
                    p.stat()
                    p.uidl()
                    p.retr(1)
                    p.quit()
        except Exception as e:  # noqa: BLE001 (reported below, with the host)
            errors.append(e)

    share = [count // POP3_CLIENTS + (k < count % POP3_CLIENTS) for k in range(POP3_CLIENTS)]
    threads = [threading.Thread(target=client, args=(k, share[k])) for k in range(POP3_CLIENTS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=TIMEOUT)
    took = time.perf_counter() - t0
    if errors or any(t.is_alive() for t in threads):
        raise SystemExit(f"pop3 to {host.name}: {errors[:1] or 'a client did not finish'}\n"
                         + host.services_log.read_text(errors="replace")[-2000:])
    return took


def pop3_run():
    """{"direct": [sessions/s per round], "proxy": [...]} on one cluster."""
    rates = {"direct": [], "proxy": []}
    with cluster_net.Cluster(2, base=sb.WORK) as c:
        front, home = c.hosts
        c.admin_all("vadddomain", "-u", ACCOUNT, "example.org", password="pw")
        for k in range(POP3_CLIENTS):
            c.admin_all("vadduser", "-H", home.name, f"box{k}@example.org", password="pw")
        c.start()
        for k in range(POP3_CLIENTS):
            for _ in range(3):
                home.inject(f"box{k}@example.org", "bench", body=("x" * 76 + "\n") * 52)
        deadline = time.time() + TIMEOUT
        while any(len(home.maildir(f"box{k}")) < 3 for k in range(POP3_CLIENTS)):
            if time.time() > deadline:
                raise SystemExit("pop3: the bench messages were not delivered")
            time.sleep(0.05)
        pop3_sessions(c, home, POP3_CLIENTS)  # warm up both paths once
        pop3_sessions(c, front, POP3_CLIENTS)
        for r in range(ROUNDS):
            order = [("direct", home), ("proxy", front)]
            for way, host in order if r % 2 == 0 else reversed(order):
                rates[way].append(POP3_SESSIONS / pop3_sessions(c, host, POP3_SESSIONS))
                print(f"pop3 {way:6s} round {r + 1}: {rates[way][-1]:7.1f} sessions/s", flush=True)
        relayed = front.services_log.read_text(errors="replace").count("qmail-pop3proxy: box")
        if relayed < POP3_SESSIONS * ROUNDS:
            raise SystemExit(f"pop3: only {relayed} sessions were relayed by {front.name}")
    return rates


def main():
    if cluster_net.unavailable():
        raise SystemExit(cluster_net.unavailable())
    smtp_cases = [case for case in CASES if case != "pop3"]
    if smtp_cases and not os.path.exists(sb.SMTP_SOURCE):
        raise SystemExit("smtp-source (Postfix) is needed")
    if N % MAILBOXES:
        raise SystemExit(f"BENCH_MESSAGES must be a multiple of {MAILBOXES}")
    pop3 = pop3_run() if "pop3" in CASES else None
    rows = {}
    for r in range(ROUNDS):
        for case in smtp_cases:
            a, d = one_run(case)
            rows.setdefault(case, []).append((a, d))
            print(f"{case:8s} round {r + 1}: accepted {N / a:7.1f} msgs/s, delivered {N / d:7.1f} msgs/s", flush=True)
    n = N // MAILBOXES * MAILBOXES
    if rows:
        print(f"\n{n} messages of {len(sb.BODY)} bytes to {MAILBOXES} mailboxes over {MAILBOXES} concurrent smtp-source "
              f"lanes, {ROUNDS} round(s), medians; {os.cpu_count()} CPUs shared by every host; homes on "
              f"{sb.describe_fs(sb.WORK)}; concurrencylocal {CONCURRENCY or 'default'}; "
              f"ours from {os.environ['SQ_BIN']}")
    rate = {case: n / statistics.median(d for _, d in v) for case, v in rows.items()}
    for case, v in rows.items():
        acc = n / statistics.median(a for a, _ in v)
        extra = "".join(f", x{rate[case] / rate[base]:.2f} of {base}" for base in ("front+1", "alone")
                        if base in rate and base != case and case != "alone")
        print(f"{case:8s} accepted {acc:7.1f} msgs/s, delivered {rate[case]:7.1f} msgs/s{extra}")
    if pop3:
        direct, proxy = statistics.median(pop3["direct"]), statistics.median(pop3["proxy"])
        print(f"\nPOP3, {POP3_SESSIONS} sessions (USER PASS STAT UIDL RETR 1 QUIT) over {POP3_CLIENTS} concurrent "
              f"clients, {ROUNDS} round(s), medians; {os.cpu_count()} CPUs shared by both hosts")
        print(f"pop3     direct {direct:7.1f} sessions/s, through the proxy {proxy:7.1f} sessions/s, "
              f"x{proxy / direct:.2f} of direct")


if __name__ == "__main__":
    main()
