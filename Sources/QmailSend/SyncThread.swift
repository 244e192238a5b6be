// The fsyncs of the todo split, off qmail-send's loop. A split must be
// durable before its todo/N goes, and an fsync waits for a journal commit
// (a millisecond or more, longer while qmail-queue and the deliveries
// commit too). Waited for in the loop, that time is lost to everything
// else the loop does: reading delivery reports and starting the next
// deliveries. Under steady intake the loop then spent most of its time in
// fsync, todo/ and local/ grew, and few deliveries ran at once.
//
// So threads of qmail-send do nothing but fsync: the loop writes a
// batch's files, sends their descriptors to one of them, and goes on; the answer
// (one flag per file) comes back on a socket the loop polls, and only
// then does the loop remove todo/N and schedule the message. The order of
// what is durable is unchanged. The thread shares nothing with the loop
// but the two ends of a socket pair; descriptors travel as numbers, since
// both sides share one descriptor table, and the loop closes them only
// after the answer.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

struct SyncThread {
    /// The loop's end: requests out, answers in (non-blocking).
    let fd: Int32
    /// Threads running: batches that may be in flight at once.
    let threads: Int

    /// A request or an answer: a batch number, then one Int32 per file
    /// (a descriptor in a request, 1 for fsync'd or 0 in an answer).
    static func encode(_ values: [Int32]) -> [UInt8] {
        values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    }

    static func decode(_ bytes: [UInt8]) -> [Int32] {
        stride(from: 0, to: bytes.count - bytes.count % 4, by: 4).map { i in
            Int32(littleEndian: bytes[i..<i + 4].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) })
        }
    }

    /// Most files one request may name (a record is at most
    /// PacketSocket.maxRecord bytes).
    static let maxFiles = PacketSocket.maxRecord / 4 - 1

    /// Threads started: as many batches are fsync'd at once. Each fsync
    /// waits for its file's writeback and for the journal commit that
    /// holds it; fsyncs waiting side by side share those waits, while one
    /// thread's fsyncs, one after another, each wait in full (with one
    /// thread, its fsyncs took 0.57 ms each and it was busy all the time
    /// under bench/e2e_bench.py's load: the split fell behind intake).
    /// Within a batch the files are fsync'd side by side too (helpers):
    /// with them, 4 threads split as fast as 8 did (10 ms from "new msg"
    /// to "info msg", median, under that load).
    static let threads = 4
    /// Each thread's helpers: a batch (todoBatch messages, two or three
    /// files each) is fsync'd eight files at a time.
    static let helpers = 7

    /// Starts the threads, which all read one socket (each record goes to
    /// one of them, whole). Nil if none can be started (the caller then
    /// fsyncs in the loop, as before).
    static func start() -> SyncThread? {
        guard let (mine, theirs) = try? PacketSocket.pair() else { return nil }
        var started = 0
        for _ in 0..<threads {
            guard Sys.detachThread(stackSize: FsyncGroup.stackSize, { SyncThread.serve(theirs) }) else { break }
            started += 1
        }
        guard started > 0 else {
            Sys.close(mine); Sys.close(theirs)
            return nil
        }
        _ = fcntl(mine, F_SETFL, fcntl(mine, F_GETFL) | O_NONBLOCK)
        return SyncThread(fd: mine, threads: started)
    }

    /// A thread: writes out a request's files, fsyncs them and answers. Ends
    /// when the loop's end is closed (with the process, normally); the
    /// threads' shared end stays open for the others.
    static func serve(_ sock: Int32) {
        let fsyncs = FsyncGroup(helpers: helpers)
        while let request = try? PacketSocket.receive(sock) {
            let values = decode(request.bytes)
            guard let batch = values.first else { continue }
            let fds = Array(values.dropFirst())
            // every file's data first, so that the first fsync commits the
            // batch; then the fsyncs side by side (FsyncGroup says why)
            Sys.writeOut(fds)
            let answer = [batch] + fsyncs.fsync(fds).map { $0 ? 1 : 0 }
            if (try? PacketSocket.send(sock, encode(answer))) == nil { break }
        }
    }

    /// Asks for the files of batch `batch` to be fsync'd.
    func submit(_ batch: Int32, _ fds: [Int32]) throws {
        precondition(!fds.isEmpty && fds.count <= Self.maxFiles)
        // Non-blocking: a full socket is EAGAIN, which the loop's limit on
        // batches in flight keeps from happening; the caller treats it as
        // any other failure.
        try PacketSocket.send(fd, Self.encode([batch] + fds))
    }

    /// The answers that have arrived: each batch's number and one flag per
    /// file, in request order. Throws if the thread is gone.
    func answers() throws -> [(batch: Int32, ok: [Bool])] {
        var out: [(batch: Int32, ok: [Bool])] = []
        while true {
            let got: (bytes: [UInt8], fds: [Int32])?
            do { got = try PacketSocket.receive(fd) } catch let e as SysError where e.errno == EAGAIN {
                return out
            }
            guard let got else { throw SysError("recvmsg", errno: EPIPE) }
            let values = Self.decode(got.bytes)
            guard let batch = values.first else { continue }
            out.append((batch, values.dropFirst().map { $0 == 1 }))
        }
    }
}
