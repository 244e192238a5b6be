// Byte compatibility with djb's format, checked against Debian's tinycdb.
import XCTest
import Foundation
@testable import QmailCore

final class CdbInteropTests: XCTestCase {
    let tool = "/usr/bin/cdb"

    func run(_ args: [String], stdin: Data? = nil) throws -> Data {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        if let stdin {
            let inp = Pipe()
            p.standardInput = inp
            try p.run()
            inp.fileHandleForWriting.write(stdin)
            try inp.fileHandleForWriting.close()
        } else {
            try p.run()
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "cdb \(args)")
        return data
    }

    func records() -> [(String, String)] {
        var r: [(String, String)] = [("alpha", "1"), ("beta", ""), ("alpha", "again"), ("", "empty key")]
        for i in 0..<3000 { r.append(("key\(i)", String(repeating: "v", count: i % 17))) }
        // Records longer than the writer's 64 KiB buffer, as key and as data.
        r.insert(("big", String(repeating: "x", count: 200_000)), at: 1000)
        r.insert((String(repeating: "k", count: 70_000), "long key"), at: 2000)
        return r
    }

    func cdbInput(_ recs: [(String, String)]) -> Data {
        var s = ""
        for (k, v) in recs { s += "+\(k.utf8.count),\(v.utf8.count):\(k)->\(v)\n" }
        s += "\n"
        return Data(s.utf8)
    }

    func testOursIsByteIdenticalToTinycdbAndDumpsTheSame() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: tool), "tinycdb not installed")
        let dir = NSTemporaryDirectory() + "sq-cdb-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let ours = dir + "/ours.cdb", theirs = dir + "/theirs.cdb"
        let recs = records()
        try CdbWriter.create(path: ours) { add in
            for (k, v) in recs { try add(Array(k.utf8), Array(v.utf8)) }
        }
        _ = try run(["-c", theirs], stdin: cdbInput(recs))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: ours)), try Data(contentsOf: URL(fileURLWithPath: theirs)))
        XCTAssertEqual(try run(["-d", ours]), cdbInput(recs))
    }

    func testWeReadWhatTinycdbWrites() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: tool), "tinycdb not installed")
        let path = NSTemporaryDirectory() + "sq-cdb-theirs-\(getpid()).cdb"
        let recs = records()
        _ = try run(["-c", path], stdin: cdbInput(recs))
        let r = try XCTUnwrap(try CdbReader.open(path))
        XCTAssertEqual(try r.findAll(Array("alpha".utf8)).map { String(decoding: $0, as: UTF8.self) }, ["1", "again"])
        XCTAssertEqual(try r.find(Array("key2999".utf8)), Array(String(repeating: "v", count: 2999 % 17).utf8))
        XCTAssertEqual(try r.find(Array("beta".utf8)), [])
        XCTAssertNil(try r.find(Array("gamma".utf8)))
        XCTAssertEqual(try r.records().count, recs.count)
    }
}
