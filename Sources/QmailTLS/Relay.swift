// Copying a session's bytes both ways between two peers until it ends: the
// TLS relay of qmail-popup and tlswrap (a TLS session on one side, the
// program's plain socket pair on the other) and qmail-pop3proxy (the
// client on one side, the home host's POP3 server, plain or TLS, on the
// other). One loop for both, so both drain what OpenSSL has decrypted
// before polling again and both have the same idle limit.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// One side of a relay.
public protocol RelayPeer: AnyObject {
    /// The descriptor to poll for input.
    var pollFD: Int32 { get }
    /// Input already read from pollFD but not yet returned (TLS records).
    var hasPendingInput: Bool { get }
    /// At most `count` bytes; 0 when the peer closed or the read failed.
    func relayRead(_ buf: UnsafeMutableRawPointer, _ count: Int) -> Int
    /// Every byte, or false.
    func relayWrite(_ buf: UnsafeRawPointer, _ count: Int) -> Bool
}

/// Plain descriptors (the same one twice for a socket).
public final class PlainPeer: RelayPeer {
    public let readFD: Int32
    public let writeFD: Int32
    public init(readFD: Int32, writeFD: Int32) {
        self.readFD = readFD
        self.writeFD = writeFD
    }
    public var pollFD: Int32 { readFD }
    public var hasPendingInput: Bool { false }
    public func relayRead(_ buf: UnsafeMutableRawPointer, _ count: Int) -> Int { max(0, (try? Sys.read(readFD, buf, count)) ?? 0) }
    public func relayWrite(_ buf: UnsafeRawPointer, _ count: Int) -> Bool { (try? Sys.writeAll(writeFD, buf, count)) != nil }
}

public enum Relay {
    /// qmail's 1200 s: a session silent that long both ways is over.
    public static let idleSeconds: Int32 = 1200

    /// Copies until `a` closes (or fails), or nothing moves for
    /// `idleSeconds`. When `b` closes first, `bClosed` says whether to go
    /// on (draining `a`'s output until it closes too) or stop now.
    public static func run(_ a: RelayPeer, _ b: RelayPeer, idleSeconds: Int32 = Relay.idleSeconds,
                           bClosed: () -> Bool) {
        let size = 16384
        let buf = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { buf.deallocate() }
        var bOpen = true
        func copy(_ from: RelayPeer, _ to: RelayPeer) -> Bool {
            let n = from.relayRead(buf, size)
            return n > 0 && to.relayWrite(buf, n)
        }
        while true {
            // What OpenSSL has already decrypted is not seen by poll.
            if a.hasPendingInput {
                if !copy(a, b) { return }
                continue
            }
            if bOpen && b.hasPendingInput {
                if !copy(b, a) { bOpen = false; if !bClosed() { return } }
                continue
            }
            var fds = [pollfd(fd: a.pollFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: b.pollFD, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, bOpen ? 2 : 1, idleSeconds * 1000)
            if n == 0 { return }
            if n < 0 { if errno == EINTR { continue }; return }
            if fds[0].revents != 0 && !copy(a, b) { return }
            if bOpen && fds[1].revents != 0 && !copy(b, a) {
                bOpen = false
                if !bClosed() { return }
            }
        }
    }
}
