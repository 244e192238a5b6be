import XCTest
@testable import QmailLocal
import QmailCore
import TestSupport

final class ShellWordsTests: XCTestCase {
    /// A command and the words sh would run, or nil where sh would
    /// interpret something (then qmail-local leaves it to sh -c).
    func testLiteralWordsTable() {
        let cases: [(String, [String]?)] = [
            ("/var/qmail/bin/vdelivermail '' bounce-no-mailbox", ["/var/qmail/bin/vdelivermail", "", "bounce-no-mailbox"]),
            (" /q/bin/vdelivermail\t'' catch@all.example ", ["/q/bin/vdelivermail", "", "catch@all.example"]),
            ("/q/bin/vdelivermail '' /home/vpopmail/domains/x.org/user", ["/q/bin/vdelivermail", "", "/home/vpopmail/domains/x.org/user"]),
            ("a'b c'd", ["ab cd"]),
            ("prog 'it''s'", ["prog", "its"]),
            ("prog ''''", ["prog", ""]),
            ("prog 'a;b|c$d'", ["prog", "a;b|c$d"]),
            ("", nil), ("   ", nil),
            ("prog 'unclosed", nil),
            ("prog \"x\"", nil), ("prog \\x", nil), ("prog $HOME", nil), ("prog `id`", nil),
            ("prog *", nil), ("prog ?", nil), ("prog [a]", nil), ("prog ~", nil), ("prog #c", nil),
            ("prog; other", nil), ("prog && other", nil), ("prog | other", nil), ("prog > f", nil),
            ("prog < f", nil), ("(prog)", nil), ("{ prog; }", nil), ("X=1 prog", nil), ("prog !", nil),
            ("prog\nother", nil), ("prog caf\u{e9}", nil),
        ]
        for (command, want) in cases {
            let got = ShellWords.literal(Array(command.utf8))
            XCTAssertEqual(got.map { $0.map { String(decoding: $0, as: UTF8.self) } }, want, command)
        }
    }
}
