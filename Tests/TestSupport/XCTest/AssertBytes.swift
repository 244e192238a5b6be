// Byte-string assertions that print text, for the unit tests. In a
// subdirectory: scripts/fuzz.sh compiles only the module's top-level files,
// and fuzz targets do not link XCTest.
import XCTest

/// Asserts that two byte strings are equal; a failure shows both as
/// escaped text ("250 ok\r\n"), not as lists of numbers.
public func XCTAssertBytes<A: Collection, B: Collection>(
    _ a: A, _ b: B, _ message: @autoclosure () -> String = "",
    file: StaticString = #filePath, line: UInt = #line
) where A.Element == UInt8, B.Element == UInt8 {
    if !a.elementsEqual(b) {
        let m = message()
        XCTFail("\(a.escaped) is not equal to \(b.escaped)" + (m.isEmpty ? "" : " - " + m), file: file, line: line)
    }
}

/// Asserts that two lists of byte strings are equal, showing them as text.
public func XCTAssertBytes(
    _ a: [[UInt8]], _ b: [[UInt8]], _ message: @autoclosure () -> String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    if a != b {
        let m = message()
        XCTFail("[\(a.map(\.escaped).joined(separator: ", "))] is not equal to [\(b.map(\.escaped).joined(separator: ", "))]"
                + (m.isEmpty ? "" : " - " + m), file: file, line: line)
    }
}

/// Asserts that a byte string that may be missing is the one expected.
public func XCTAssertBytes(
    _ a: [UInt8]?, _ b: [UInt8]?, _ message: @autoclosure () -> String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    if a != b {
        let m = message()
        XCTFail("\(a?.escaped ?? "nil") is not equal to \(b?.escaped ?? "nil")" + (m.isEmpty ? "" : " - " + m),
                file: file, line: line)
    }
}
