// The root half of qmail-webadmin: holds the sessions, checks logins and
// scopes, and makes the changes (WebApp), one request at a time, for the
// network process at the other end of a socketpair. It trusts nothing that
// process sends: a frame that is not exactly a valid WebRequest, or a
// second frame before the answer to the first, is taken as a takeover of
// that process, which is killed; so is any end of it. Either way the
// helper exits 111 and the supervisor starts both again (sessions are
// lost, as on any restart). It listens on nothing and never parses HTTP.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailNet

/// Where the signal handlers report (the write end of a self-pipe).
nonisolated(unsafe) private var webSignalFd: Int32 = -1

public struct WebHelper: Sendable {
    let web: WebApp
    /// Our end of the socketpair.
    let fd: Int32
    /// The network process.
    let child: pid_t
    /// The read end of the self-pipe: one byte per signal, its number.
    let signals: Int32
    /// How long a frame, once begun, may take to arrive.
    static let frameSeconds = 30

    /// SIGTERM and SIGINT (stop), SIGCHLD (the network process may have
    /// ended) as bytes on a pipe that poll(2) watches with the socket.
    static func catchSignals() throws -> Int32 {
        let p = try Sys.pipeCloexec()
        _ = fcntl(p.write, F_SETFL, fcntl(p.write, F_GETFL) | O_NONBLOCK)
        webSignalFd = p.write
        signal(SIGPIPE, SIG_IGN)
        for s in [SIGTERM, SIGINT, SIGCHLD] {
            signal(s) { n in
                let saved = errno
                var b = UInt8(truncatingIfNeeded: n)
                _ = write(webSignalFd, &b, 1)
                errno = saved
            }
        }
        return p.read
    }

    func run() -> Int32 {
        let ch = Channel(stream: FdStream(inFd: fd, outFd: fd), timeout: WebHelper.frameSeconds)
        while true {
            if let st = ChildProcess.tryWait(child) { return ended(st) }
            var p = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: signals, events: Int16(POLLIN), revents: 0)]
            if poll(&p, 2, -1) < 0 {
                if errno == EINTR { continue }
                return hostile("poll failed (errno \(errno))")
            }
            if p[1].revents != 0 {
                var b: UInt8 = 0
                if read(signals, &b, 1) == 1, b == UInt8(SIGTERM) || b == UInt8(SIGINT) { return stop() }
                continue
            }
            if p[0].revents == 0 { continue }
            let req: WebRequest
            switch readFrame(ch, limit: WebRequest.maxFrame) {
            case .end:
                return ended(ChildProcess.wait(child, timeout: 5))
            case .malformed:
                return hostile("sent a malformed frame")
            case .content(let c):
                guard let r = WebRequest.decode(c) else { return hostile("sent a request frame out of bounds") }
                guard !ch.hasBufferedInput else { return hostile("sent a second request before the answer") }
                req = r
            }
            var a = web.respond(req)
            if !a.isValid {
                Sys.warn("qmail-webadmin: warning: an answer to \(req.method) \(req.path) could not be framed")
                a = web.answer(.internalError, page("Server error", nil, "<p>This page could not be sent.</p>"))
            }
            ch.put(a.encode())
            do { try ch.flush() } catch { return hostile("stopped reading answers") }
        }
    }

    /// The network process ended on its own.
    func ended(_ st: ChildStatus?) -> Int32 {
        Sys.warn("qmail-webadmin: fatal: the network process ended (\(st.map { "\($0)" } ?? "killed")): exiting for a restart")
        return QmailExit.temporary
    }

    /// The network process broke the protocol: it is no longer ours.
    func hostile(_ what: String) -> Int32 {
        Sys.warn("qmail-webadmin: fatal: the network process \(what): killed it")
        kill(child, SIGKILL)
        _ = ChildProcess.wait(child)
        return QmailExit.temporary
    }

    /// SIGTERM or SIGINT: the network process stops first.
    func stop() -> Int32 {
        kill(child, SIGTERM)
        _ = ChildProcess.wait(child, timeout: 10)
        return QmailExit.success
    }
}
