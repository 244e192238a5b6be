// bouncesaying: bounces the message with a given text (when a program
// says so, if one is named).
import QmailCore

extension Helpers {
    public static func bouncesaying(_ argv: [[UInt8]]) -> Int32 {
        guard argv.count >= 2 else {
            return fail(QmailExit.permanent, "bouncesaying: usage: bouncesaying error [ program [ arg ... ] ]")
        }
        if argv.count >= 3 {
            guard let c = runChild(Array(argv[2...]), prog: "bouncesaying") else { return QmailExit.temporary }
            if c == QmailExit.temporary { return fail(QmailExit.temporary, "bouncesaying: fatal: temporary child error") }
            if c != 0 { return 0 }
        }
        say(2, argv[1] + [Ascii.lf])
        return QmailExit.permanent
    }
}
