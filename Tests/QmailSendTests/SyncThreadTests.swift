import Glibc
import XCTest
@testable import QmailSend

/// qmail-send's fsync threads: each batch is answered with one flag per
/// file, in the request's order, and a file whose fsync fails is reported
/// (so its todo/N stays). Batches go to several threads, so their answers
/// may come in any order.
final class SyncThreadTests: XCTestCase {
    func answers(_ t: SyncThread, count: Int) -> [(batch: Int32, ok: [Bool])] {
        var got: [(batch: Int32, ok: [Bool])] = []
        let deadline = Date().addingTimeInterval(10)
        while got.count < count && Date() < deadline {
            var p = pollfd(fd: t.fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, 200)
            got += (try? t.answers()) ?? []
        }
        return got
    }

    func testEachBatchIsAnsweredWithOneFlagPerFile() throws {
        let t = try XCTUnwrap(SyncThread.start())
        XCTAssertEqual(t.threads, SyncThread.threads)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("syncthread-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var fds: [Int32] = []
        for k in 0..<3 {
            let fd = open(dir.appendingPathComponent("f\(k)").path, O_WRONLY | O_CREAT, 0o600)
            XCTAssertGreaterThanOrEqual(fd, 0)
            XCTAssertEqual(write(fd, "x", 1), 1)
            fds.append(fd)
        }
        defer { fds.forEach { _ = close($0) } }
        // A pipe cannot be fsync'd (EINVAL): the thread must say so for
        // that file alone.
        var p: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&p), 0)
        defer { p.forEach { _ = close($0) } }
        try t.submit(7, [fds[0], p[1], fds[1]])
        try t.submit(8, [fds[2]])
        let got = answers(t, count: 2)
        XCTAssertEqual(got.map(\.batch).sorted(), [7, 8])
        XCTAssertEqual(got.first { $0.batch == 7 }?.ok, [true, false, true])
        XCTAssertEqual(got.first { $0.batch == 8 }?.ok, [true])
    }

    func testRecordsRoundTrip() {
        let v: [Int32] = [0, 1, -1, Int32.max, Int32.min, 4096]
        XCTAssertEqual(SyncThread.decode(SyncThread.encode(v)), v)
    }
}
