import XCTest
import Glibc
@testable import QmailCore

final class CdbTests: XCTestCase {
    func tmpPath(_ name: String) -> String {
        let dir = "/tmp/sq-unit-\(getpid())"
        mkdir(dir, 0o700)
        return "\(dir)/\(name)"
    }

    func testRoundTripWithDuplicateKeys() throws {
        let path = tmpPath("a.cdb")
        try CdbWriter.create(path: path) { add in
            try add(Array("one".utf8), Array("1".utf8))
            try add(Array("two".utf8), Array("2".utf8))
            try add(Array("one".utf8), Array("uno".utf8))
            try add([], Array("empty key".utf8))
            for i in 0..<2000 { try add(Array("k\(i)".utf8), Array("v\(i)".utf8)) }
        }
        let r = try XCTUnwrap(try CdbReader.open(path))
        XCTAssertEqual(try r.find(Array("one".utf8)), Array("1".utf8))
        XCTAssertEqual(try r.findAll(Array("one".utf8)), [Array("1".utf8), Array("uno".utf8)])
        XCTAssertEqual(try r.find(Array("two".utf8)), Array("2".utf8))
        XCTAssertEqual(try r.find([]), Array("empty key".utf8))
        XCTAssertNil(try r.find(Array("three".utf8)))
        for i in stride(from: 0, to: 2000, by: 97) {
            XCTAssertEqual(try r.find(Array("k\(i)".utf8)), Array("v\(i)".utf8))
        }
        let recs = try r.records()
        XCTAssertEqual(recs.count, 2004)
        XCTAssertEqual(recs[0].key, Array("one".utf8))
    }

    func testEmptyDatabase() throws {
        let path = tmpPath("empty.cdb")
        try CdbWriter.create(path: path) { _ in }
        let st = try Sys.stat(path)
        XCTAssertEqual(st.st_size, 2048)
        let r = try XCTUnwrap(try CdbReader.open(path))
        XCTAssertNil(try r.find(Array("x".utf8)))
        XCTAssertEqual(try r.records().count, 0)
    }

    func testKnownHashValues() {
        // djb's hash: h = 5381; h = (h * 33) ^ c
        XCTAssertEqual(CdbHash.hash([UInt8]()), 5381)
        XCTAssertEqual(CdbHash.hash(Array("a".utf8)), (5381 &* 33) ^ 97)
    }

    func testCorruptFilesAreErrorsNotCrashes() throws {
        XCTAssertThrowsError(try CdbReader(bytes: [1, 2, 3]))
        // A header pointing past the end of the file.
        var bytes = [UInt8](repeating: 0xff, count: 2048)
        bytes += [0, 0, 0, 0]
        let r = try CdbReader(bytes: bytes)
        XCTAssertThrowsError(try r.find(Array("x".utf8)))
        XCTAssertThrowsError(try r.records())
        // Random garbage must never crash.
        var g = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let n = 2048 + Int.random(in: 0..<512, using: &g)
            let junk = (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
            let rr = try CdbReader(bytes: junk)
            _ = try? rr.find(Array("key".utf8))
            _ = try? rr.records()
        }
    }
}
