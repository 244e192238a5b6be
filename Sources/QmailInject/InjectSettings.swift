// What qmail-inject takes from its arguments and its environment
// (qmail-inject(8)): recipient strategy, -n/-N, -f; the From and envelope
// sender parts; the QMAILINJECT letters; QMAILMFTFILE.

import QmailCore

public enum RecipientStrategy: Sendable {
    /// -A: argument recipients, or header recipients when there are none.
    case argsElseHeader
    /// -a: argument recipients only.
    case args
    /// -h: header recipients only.
    case header
    /// -H: header recipients and argument recipients.
    case argsAndHeader
}

public struct InjectOptions: Sendable, Equatable {
    public var strategy: RecipientStrategy = .argsElseHeader
    /// -N (true, default) queues; -n prints.
    public var queue = true
    /// -f, as given.
    public var sender: String? = nil
    public var recipients: [String] = []

    public init() {}

    public static let usage = "usage: qmail-inject [ -nNaAhH ] [ -fsender ] [ recip ... ]"

    /// getopt("aAhHnNf:"): options end at "--" or at the first argument
    /// that does not start with '-'.
    public static func parse(_ args: [String]) throws -> InjectOptions {
        var o = InjectOptions()
        var i = 0
        let a = args.map { Array($0.utf8) }
        argLoop: while i < a.count {
            let arg = a[i]
            if arg == Array("--".utf8) { i += 1; break }
            if arg.count < 2 || arg[0] != Ascii.minus { break }
            var j = 1
            while j < arg.count {
                switch arg[j] {
                case UInt8(ascii: "a"): o.strategy = .args
                case UInt8(ascii: "A"): o.strategy = .argsElseHeader
                case UInt8(ascii: "h"): o.strategy = .header
                case UInt8(ascii: "H"): o.strategy = .argsAndHeader
                case UInt8(ascii: "n"): o.queue = false
                case UInt8(ascii: "N"): o.queue = true
                case UInt8(ascii: "f"):
                    if j + 1 < arg.count {
                        o.sender = Array(arg[(j + 1)...]).string
                    } else if i + 1 < a.count {
                        i += 1
                        o.sender = args[i]
                    } else {
                        throw InjectFailure(usage, .permanent)
                    }
                    i += 1
                    continue argLoop
                default:
                    throw InjectFailure(usage, .permanent)
                }
                j += 1
            }
            i += 1
        }
        o.recipients = Array(args[i...])
        return o
    }
}

public struct InjectSettings: Sendable {
    /// QMAILINJECT letters.
    public var nameComment = false        // c
    public var deleteReturnPath = false   // s
    public var deleteFrom = false         // f
    public var deleteMessageID = false    // i
    public var verpRecipient = false      // r
    public var verpMessage = false        // m

    public var mailHost: [UInt8]?
    public var mailUser: [UInt8]
    public var fullName: [UInt8]?
    public var returnHost: [UInt8]?
    public var returnUser: [UInt8]
    /// QMAILMFTFILE addresses, lowercased; nil when not set or missing.
    public var mailingLists: Set<[UInt8]>?

    public init(mailUser: [UInt8] = Array("anonymous".utf8)) {
        self.mailUser = mailUser
        self.returnUser = mailUser
    }

    public static func from(environment env: (String) -> String?) throws -> InjectSettings {
        func b(_ names: String...) -> [UInt8]? {
            for n in names { if let v = env(n) { return Array(v.utf8) } }
            return nil
        }
        var s = InjectSettings(mailUser: b("QMAILUSER", "MAILUSER", "USER", "LOGNAME") ?? Array("anonymous".utf8))
        for c in (env("QMAILINJECT") ?? "").utf8 {
            switch c {
            case UInt8(ascii: "c"): s.nameComment = true
            case UInt8(ascii: "s"): s.deleteReturnPath = true
            case UInt8(ascii: "f"): s.deleteFrom = true
            case UInt8(ascii: "i"): s.deleteMessageID = true
            case UInt8(ascii: "r"): s.verpRecipient = true
            case UInt8(ascii: "m"): s.verpMessage = true
            default: break
            }
        }
        s.mailHost = b("QMAILHOST", "MAILHOST")
        s.returnHost = b("QMAILSHOST") ?? s.mailHost
        s.returnUser = b("QMAILSUSER") ?? s.mailUser
        s.fullName = b("QMAILNAME", "MAILNAME", "NAME")
        if let file = env("QMAILMFTFILE") {
            let data: [UInt8]?
            do { data = try FileIO.read(file, limit: 16 << 20) } catch { throw InjectFailure.readError }
            if let data {
                s.mailingLists = Set(Control.parseList(data).map { $0.lowercasedASCII() })
            }
        }
        return s
    }
}
