import XCTest
@testable import QmailCore

final class Base64Tests: XCTestCase {
    // RFC 4648 section 10, plus the bytes AUTH PLAIN sends.
    let vectors: [(plain: String, coded: String)] = [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"), ("\0u\0p", "AHUAcA=="),
    ]

    func testEncodeAndDecodeTheRFCVectors() {
        for v in vectors {
            XCTAssertEqual(String(decoding: Base64.encode(Array(v.plain.utf8)), as: UTF8.self), v.coded, v.plain)
            for padding in [Base64.Padding.required, .optional] {
                XCTAssertEqual(Base64.decode(Array(v.coded.utf8), padding: padding).map { String(decoding: $0, as: UTF8.self) },
                               v.plain, v.coded)
            }
        }
    }

    func testEveryByteValueSurvivesARoundTrip() {
        let all = (0...255).map { UInt8($0) }
        for n in 0..<all.count { XCTAssertEqual(Base64.decode(Base64.encode(Array(all[0..<n]))), Array(all[0..<n])) }
    }

    // (input, decoded with padding required, decoded with padding optional); nil = refused.
    let rules: [(String, String?, String?)] = [
        ("Zg", nil, "f"), ("Zm8", nil, "fo"), ("YWI", nil, "ab"),
        ("Zg=", nil, nil), ("Zg===", nil, nil), ("Z===", nil, nil),
        ("ab=c", nil, nil), ("a!==", nil, nil), ("A*==", nil, nil), ("Zm9v\r\n", nil, nil), ("Zm 9v", nil, nil),
    ]

    func testMalformedInputIsRefusedAndOptionalPaddingOnlyForgivesMissingEquals() {
        for (input, required, optional) in rules {
            let bytes = Array(input.utf8)
            XCTAssertEqual(Base64.decode(bytes, padding: .required), required.map { Array($0.utf8) }, "required: \(input)")
            XCTAssertEqual(Base64.decode(bytes, padding: .optional), optional.map { Array($0.utf8) }, "optional: \(input)")
        }
    }
}
