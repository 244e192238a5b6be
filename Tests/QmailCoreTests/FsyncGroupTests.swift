import XCTest
import Glibc
@testable import QmailCore

final class FsyncGroupTests: XCTestCase {
    func threadCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? -1
    }

    func makeFiles(_ n: Int) throws -> (dir: String, fds: [Int32]) {
        var template = Array("/tmp/sq-fsyncgroup-XXXXXX".utf8CString)
        let dir = try XCTUnwrap(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) })
        var fds: [Int32] = []
        for k in 0..<n {
            let fd = open("\(dir)/f\(k)", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            XCTAssertGreaterThanOrEqual(fd, 0)
            XCTAssertEqual(write(fd, "message \(k)\n", 10), 10)
            fds.append(fd)
        }
        return (dir, fds)
    }

    func remove(_ dir: String, _ fds: [Int32]) {
        for fd in fds { close(fd) }
        _ = try? FileManager.default.removeItem(atPath: dir)
    }

    /// Each file's own result, in order: a descriptor that cannot be
    /// fsync'd (closed, or a pipe) fails at its place and no other.
    func testResultsAreEachFilesOwnInOrder() throws {
        let group = FsyncGroup(helpers: 3)
        let (dir, fds) = try makeFiles(5)
        defer { remove(dir, fds) }
        var p: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&p), 0)
        defer { close(p[0]); close(p[1]) }
        let closed: Int32 = 1000
        XCTAssertEqual(group.fsync(fds), [true, true, true, true, true])
        XCTAssertEqual(group.fsync([fds[0], closed, fds[1], p[1], fds[2]]), [true, false, true, false, true])
        XCTAssertEqual(group.fsync([closed]), [false])
        XCTAssertEqual(group.fsync([]), [])
        // Over and over, as qmail-send's sync threads and a qmail-queue session use it.
        for round in 0..<200 {
            let pick = (0..<5).filter { ($0 + round) % 3 != 0 }.map { fds[$0] }
            XCTAssertEqual(group.fsync(pick), Array(repeating: true, count: pick.count), "round \(round)")
        }
    }

    /// Helpers start at first need, no more than asked for, and are kept.
    func testHelpersAreBoundedAndReused() throws {
        let (dir, fds) = try makeFiles(6)
        defer { remove(dir, fds) }
        let before = threadCount()
        let none = FsyncGroup(helpers: 0)
        XCTAssertEqual(none.fsync(fds), Array(repeating: true, count: 6))
        XCTAssertEqual(threadCount(), before, "no helpers: the caller fsyncs alone")
        let two = FsyncGroup(helpers: 2)
        XCTAssertEqual(two.fsync([fds[0]]), [true])
        XCTAssertEqual(threadCount(), before, "one file needs no helper")
        XCTAssertEqual(two.fsync(Array(fds[0..<2])), [true, true])
        XCTAssertEqual(threadCount(), before + 1, "two files: one helper")
        XCTAssertEqual(two.fsync(fds), Array(repeating: true, count: 6))
        XCTAssertEqual(threadCount(), before + 2, "never more than asked for")
        for _ in 0..<50 { XCTAssertEqual(two.fsync(fds), Array(repeating: true, count: 6)) }
        XCTAssertEqual(threadCount(), before + 2, "kept, not started again")
    }
}
