// except: runs a program and turns its success into a bounce.
import QmailCore

extension Helpers {
    public static func except(_ argv: [[UInt8]]) -> Int32 {
        guard argv.count >= 2 else { return fail(QmailExit.permanent, "except: usage: except program [ arg ... ]") }
        guard let c = runChild(Array(argv[1...]), prog: "except") else { return QmailExit.temporary }
        if c == 0 { return QmailExit.permanent }
        if c == QmailExit.temporary { return fail(QmailExit.temporary, "except: fatal: temporary child error") }
        return 0
    }
}
