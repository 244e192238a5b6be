// The trace line qmail's network servers put on top of each message:
//   Received: from REMOTEHOST (HELO helo) (REMOTEINFO@REMOTEIP)
//     by LOCAL with SMTP; 21 Nov 2026 06:00:00 -0000
// Each field is made safe (anything but letters, digits and . @ % + / = : -
// becomes '?') so that a client cannot inject header text.
import QmailCore

public enum Received {
    static func safe(_ s: [UInt8]) -> [UInt8] {
        s.map { c in
            switch c {
            case 48...57, 65...90, 97...122: return c
            case Ascii.dot, Ascii.at, Ascii.percent, Ascii.plus, Ascii.slash, Ascii.equals, Ascii.colon, Ascii.minus: return c
            default: return 63
            }
        }
    }

    public static func line(protocol proto: String, local: [UInt8], remoteIP: [UInt8], remoteHost: [UInt8],
                            remoteInfo: [UInt8]?, helo: [UInt8]?, now: Int = Sys.now()) -> [UInt8] {
        var out = Array("Received: from ".utf8)
        out += safe(remoteHost)
        if let helo {
            out += Array(" (HELO ".utf8) + safe(helo) + [41]
        }
        out += Array(" (".utf8)
        if let remoteInfo { out += safe(remoteInfo) + [Ascii.at] }
        out += safe(remoteIP)
        out += Array(")\n  by ".utf8)
        out += safe(local)
        out += Array(" with \(proto); \(Date822.qmail(now))\n".utf8)
        return out
    }
}
