// What fastforward and dot-forward share: running a delivery program with
// the message on its input, and handing the message to qmail-queue with a
// new envelope the way qmail's qmail_open/qmail_close do.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore
import QmailQueue

enum ProgramRunner {
    /// Runs a delivery program and applies qmail's verdict: 0 goes on,
    /// QmailExit.permanentForProgram are permanent, anything else (and a
    /// crash) temporary; then rewinds the message for the next target.
    static func deliver(_ command: String, searchPath: Bool, prefix: [UInt8]?, crashText: String) throws {
        switch try run(command, searchPath: searchPath, prefix: prefix) {
        case .signaled: throw ForwardFatal.temporary(crashText)
        case .exited(let c):
            switch c {
            case 0: break
            case _ where QmailExit.permanentForProgram.contains(c): throw ForwardFatal.permanent("", bare: true)
            default: throw ForwardFatal.temporary("", bare: true)
            }
        }
        if lseek(0, 0, SEEK_SET) != 0 {
            throw ForwardFatal.temporary("unable to rewind input: \(Sys.strerror(errno))")
        }
    }

    /// Runs `sh -c command` (sh from PATH when `searchPath`, else /bin/sh).
    /// Without `prefix` the child reads our standard input directly; with
    /// one, it reads `prefix` and then the rest of our input through a pipe
    /// (what preline does for fastforward's "!" and dot-forward's "|").
    static func run(_ command: String, searchPath: Bool, prefix: [UInt8]?) throws -> ChildStatus {
        var pipeFds: (read: Int32, write: Int32)? = nil
        if prefix != nil {
            guard let p = try? Sys.pipeCloexec() else { throw ForwardFatal.temporary("unable to create pipe: \(Sys.strerror(errno))") }
            pipeFds = p
        }
        let shell = searchPath ? "sh" : "/bin/sh"
        let pid: pid_t
        do { pid = try ChildProcess.spawn(.init([shell, "-c", command], fds: pipeFds.map { [.dup($0.read, to: 0)] } ?? [])) } catch {
            if let p = pipeFds { Sys.close(p.read); Sys.close(p.write) }
            throw ForwardFatal.temporary("unable to run \(shell): \(Sys.strerror(error.errno))")
        }
        if let p = pipeFds { Sys.close(p.read) }
        if let p = pipeFds, let prefix {
            // The child may stop reading early; its verdict is what counts.
            var ok = (try? Sys.writeAll(p.write, prefix)) != nil
            let input = ByteReader(fd: 0, capacity: 65536)
            do {
                try input.forEachChunk { chunk in
                    if ok, let base = chunk.baseAddress {
                        ok = (try? Sys.writeAll(p.write, base, chunk.count)) != nil
                    }
                }
            } catch {
                Sys.close(p.write)
                _ = ChildProcess.wait(pid)
                throw ForwardFatal.temporary("unable to read message: \(error)")
            }
            Sys.close(p.write)
        }
        guard let status = ChildProcess.wait(pid) else {
            throw ForwardFatal.temporary("unable to wait for child: \(Sys.strerror(errno))")
        }
        return status
    }
}

enum Forwarder {
    /// Queues DTLINE + our standard input from `sender` to `recipients`;
    /// returns qmail-queue's pid. Failures carry qmail-queue's verdict:
    /// 100 for a permanent refusal, 111 otherwise; `context` prefixes the text.
    /// With SRS on, a sender forwarded to a remote domain is rewritten first.
    static func queue(dtline: [UInt8], sender: [UInt8], recipients: [[UInt8]], context: String = "") throws -> Int32 {
        let home = QmailHome.current()
        let envelopeSender: [UInt8]
        switch SRSForwarding.sender(sender, recipients: recipients, home: home) {
        case .success(let s): envelopeSender = s
        case .failure(let f): throw ForwardFatal(f.kind, context + f.description)
        }
        let program = QueueClient.program(home: home, honourEnvironment: true)
        let qq: QueueClient
        do { qq = try QueueClient(program: program) } catch let f as MailFailure {
            throw ForwardFatal.temporary(context + f.description)
        }
        qq.put(dtline)
        do {
            try ByteReader(fd: 0, capacity: 65536).forEachChunk { qq.put($0) }
        } catch {
            // No envelope follows: qmail-queue sees end of input and queues nothing.
            throw ForwardFatal.temporary("unable to read message: \(error)")
        }
        qq.from(envelopeSender)
        for r in recipients { qq.to(r) }
        if let f = qq.close() { throw ForwardFatal(f.kind, context + f.description) }
        return qq.queuePid
    }
}
