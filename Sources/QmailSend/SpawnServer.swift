// The skeleton shared by qmail-lspawn and qmail-rspawn (qmail's spawn.c).
//
// Protocol with qmail-send, over the spawn's fd 0 (commands) and fd 1
// (reports):
//   at start the spawn writes one byte: how many deliveries it can run at
//   once (qmail-send lowers its concurrency to that);
//   command: one byte delivery slot, then "S/N\0" (the message under
//   queue/mess), sender "\0", recipient "\0";
//   report: the slot byte, then 'K' (success), 'Z' (temporary failure) or
//   'D' (permanent failure) and the text, then "\0".
// End of file on fd 0 means: finish the deliveries running, report them,
// exit 0.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

/// What differs between local and remote deliveries.
public protocol SpawnDriver {
    /// Starts one delivery with the message on `message`, its output to
    /// `output`. Returns the child's pid, or a negative id for a delivery
    /// that a helper of the driver runs (its end comes from `finished`),
    /// or a finished report ("Z...").
    func start(message: Int32, output: Int32, sender: [UInt8], recipient: [UInt8]) -> Result<pid_t, SpawnReport>
    /// Turns the child's exit status and output into a report.
    func report(status: ChildStatus, output: [UInt8]) -> SpawnReport
    /// Descriptors of the driver's helpers, watched besides the children.
    func watched() -> [Int32]
    /// Deliveries run by helpers that ended since the last call.
    func finished() -> [HelperEnd]
}

/// The end of a delivery a driver's helper ran: the id `start` returned and
/// how its process ended.
public struct HelperEnd: Equatable {
    public let id: pid_t
    public let status: ChildStatus
    public init(id: pid_t, status: ChildStatus) { self.id = id; self.status = status }
}

extension SpawnDriver {
    public func watched() -> [Int32] { [] }
    public func finished() -> [HelperEnd] { [] }
}

public struct SpawnReport: Error, Equatable {
    /// "K", "Z" or "D" followed by text; never contains NUL.
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = Array(bytes.prefix { $0 != 0 }) }
    public init(_ s: String) { self.init(Array(s.utf8)) }
}

nonisolated(unsafe) private var spawnWakeFd: Int32 = -1

public enum SpawnServer {
    /// qmail's conf-spawn ceiling.
    public static let maxSlots = 120
    /// Output kept per delivery (qmail-send keeps 10000 bytes of a report).
    public static let outputLimit = 10000

    final class Child {
        let slot: UInt8
        let pid: pid_t
        let out: Int32
        var output: [UInt8] = []
        /// Its output is closed: nothing more to read, nothing to poll.
        var closed = false
        init(slot: UInt8, pid: pid_t, out: Int32) { self.slot = slot; self.pid = pid; self.out = out }
    }

    /// Runs the spawn loop until end of input; returns the exit code.
    public static func main(driver: SpawnDriver, messageDirectory: String) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        guard let wake = try? Sys.pipeCloexec() else { return QmailExit.temporary }
        _ = fcntl(wake.read, F_SETFL, O_NONBLOCK)
        _ = fcntl(wake.write, F_SETFL, O_NONBLOCK)
        spawnWakeFd = wake.write
        signal(SIGCHLD) { _ in
            var b: UInt8 = 0
            let saved = errno
            _ = write(spawnWakeFd, &b, 1)
            errno = saved
        }
        let out = ByteWriter(fd: 1, capacity: 16384)
        do {
            try out.put(byte: UInt8(maxSlots))
            try out.flush()
        } catch { return QmailExit.temporary }

        var children: [Child] = []
        var input: [UInt8] = []
        var inputOpen = true
        var readBuf = [UInt8](repeating: 0, count: 8192)

        func send(_ slot: UInt8, _ r: SpawnReport) {
            // qmail-send gone: nothing useful left to do but keep reaping.
            _ = try? out.put(byte: slot)
            _ = try? out.put(r.bytes)
            _ = try? out.put(byte: 0)
        }

        func drain(_ c: Child) {
            while true {
                let n = readBuf.withUnsafeMutableBytes { Glibc.read(c.out, $0.baseAddress!, $0.count) }
                if n > 0 {
                    if c.output.count < outputLimit { c.output += readBuf[0..<min(n, outputLimit - c.output.count)] }
                    continue
                }
                if n < 0 && errno == EINTR { continue }
                if n == 0 { c.closed = true }
                return
            }
        }

        func startDelivery(_ slot: UInt8, _ fn: [UInt8], _ sender: [UInt8], _ recipient: [UInt8]) {
            if children.contains(where: { $0.slot == slot }) || children.count >= maxSlots {
                send(slot, SpawnReport("Zqmail-spawn out of slots. (#4.3.0)\n")); return
            }
            let path = messageDirectory + "/" + fn.string
            guard let m = try? Sys.open(path, O_RDONLY) else {
                send(slot, SpawnReport("Zqmail-spawn unable to open message. (#4.3.0)\n")); return
            }
            defer { Sys.close(m) }
            guard let p = try? Sys.pipeCloexec() else {
                send(slot, SpawnReport("Zqmail-spawn unable to create pipe. (#4.3.0)\n")); return
            }
            switch driver.start(message: m, output: p.write, sender: sender, recipient: recipient) {
            case .success(let pid):
                Sys.close(p.write)
                _ = fcntl(p.read, F_SETFL, O_NONBLOCK)
                children.append(Child(slot: slot, pid: pid, out: p.read))
            case .failure(let r):
                Sys.close(p.write); Sys.close(p.read)
                send(slot, r)
            }
        }

        /// Takes every complete command from the input buffer.
        func parseCommands() {
            while true {
                guard input.count > 1 else { return }
                var fields: [[UInt8]] = []
                var start = 1
                var i = 1
                while i < input.count && fields.count < 3 {
                    if input[i] == 0 { fields.append(Array(input[start..<i])); start = i + 1 }
                    i += 1
                }
                guard fields.count == 3 else { return }
                let slot = input[0]
                input.removeFirst(start)
                startDelivery(slot, fields[0], fields[1], fields[2])
            }
        }

        while inputOpen || !children.isEmpty {
            var pfds: [pollfd] = [pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
            if inputOpen { pfds.append(pollfd(fd: 0, events: Int16(POLLIN), revents: 0)) }
            for c in children where !c.closed { pfds.append(pollfd(fd: c.out, events: Int16(POLLIN), revents: 0)) }
            for fd in driver.watched() { pfds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            // The timeout is a safety net only; SIGCHLD wakes the loop.
            let r = poll(&pfds, nfds_t(pfds.count), 5000)
            if r < 0 && errno != EINTR { return QmailExit.temporary }
            var drainByte = [UInt8](repeating: 0, count: 64)
            while drainByte.withUnsafeMutableBytes({ Glibc.read(wake.read, $0.baseAddress!, 64) }) > 0 {}
            if inputOpen, pfds[1].revents != 0 {
                let n = readBuf.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress!, $0.count) }
                if n > 0 {
                    input += readBuf[0..<n]
                    parseCommands()
                } else if n == 0 || (errno != EINTR && errno != EAGAIN) {
                    inputOpen = false
                }
            }
            for c in children where !c.closed { drain(c) }
            func finish(_ pid: pid_t, _ st: ChildStatus) {
                guard let idx = children.firstIndex(where: { $0.pid == pid }) else { return }
                let c = children.remove(at: idx)
                if !c.closed { drain(c) }
                Sys.close(c.out)
                send(c.slot, driver.report(status: st, output: c.output))
            }
            for end in driver.finished() { finish(end.id, end.status) }
            // Reap every finished child and report it.
            while let (pid, st) = ChildProcess.reapAny() { finish(pid, st) }
            _ = try? out.flush()
        }
        _ = try? out.flush()
        return 0
    }
}
