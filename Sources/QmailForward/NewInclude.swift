// newinclude: compiles a sendmail :include: file LIST into LIST.bin (the
// binary mailing list fastforward reads), with newaliases' address rules
// and djb's refusals (no programs, no files). Runs as the list's
// maintainer; writes LIST.tmp, fsync, rename.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum NewInclude {
    /// The binary list for a sendmail :include: file's text.
    public static func compile(_ text: [UInt8], _ q: Qualifier) throws -> [UInt8] {
        var out: [UInt8] = []
        var start = 0
        let n = text.count
        var number = 0
        while start < n {
            var end = start
            while end < n && text[end] != Ascii.lf { end += 1 }
            let line = Array(text[start..<min(end + 1, n)])
            start = end + 1
            number += 1
            if line[0] == Ascii.hash { continue }
            guard let toks = Token822Scanner.parse(line) else { throw parseError(line, number) }
            do {
                var items: [AddressItem] = []
                let failed = AddressList.walk(toks, includes: true, into: &items)
                for item in items {
                    let text = toks.text(of: item)
                    switch item.isInclude {
                    case true:
                        let name = text
                        if name.isEmpty { throw ForwardFatal.temporary("empty :include: filenames not permitted") }
                        if name.contains(Ascii.lf) { throw ForwardFatal.temporary("newlines not permitted in :include: filenames") }
                        if name.contains(0) { throw ForwardFatal.temporary("NUL not permitted in :include: filenames") }
                        if name[0] != Ascii.dot && name[0] != Ascii.slash { out += [Ascii.dot, Ascii.slash] }
                        out += name
                        out.append(0)
                    case false:
                        let hasAt = item.hasAt
                        if text.isEmpty { continue }
                        if !hasAt && text[0] == Ascii.slash {
                            throw ForwardFatal.temporary("file delivery \(DotForward.cString(text)) not supported")
                        }
                        if !hasAt && text[0] == UInt8(ascii: "|") {
                            throw ForwardFatal.temporary("program delivery \(DotForward.cString(text)) not supported")
                        }
                        let a = q.qualify(text, hasAt: hasAt)
                        if a.contains(Ascii.lf) { throw ForwardFatal.temporary("newlines not permitted in recipient addresses") }
                        if a.contains(0) { throw ForwardFatal.temporary("NUL not permitted in recipient addresses") }
                        if a.count > 800 { throw ForwardFatal.temporary("addresses must be under 800 bytes") }
                        if a.last == Ascii.space || a.last == Ascii.tab {
                            throw ForwardFatal.temporary("spaces and tabs not permitted at ends of addresses")
                        }
                        out.append(UInt8(ascii: "&"))
                        out += a
                        out.append(0)
                    }
                }
                if failed { throw ForwardFatal.parseError }
            } catch let f as ForwardFatal {
                if f.message == ForwardFatal.parseError.message { throw parseError(line, number) }
                throw f.with(message: "line \(number): \(f.message)")
            }
        }
        return out
    }

    static func parseError(_ line: [UInt8], _ number: Int) -> ForwardFatal {
        var l = DotForward.cBytes(line)
        while l.last == Ascii.lf { l.removeLast() }
        return ForwardFatal.temporary("line \(number): unable to parse this line: \(l.string)")
    }

    public static func main(_ argv: [String]) -> Int32 {
        runMain("newinclude") {
            umask(0o033)
            var q = try Qualifier.load(controlDirectory: QmailHome.current().control)
            if let v = env("QMAILDEFAULTDOMAIN") { q.defaultDomain = v }
            if let v = env("QMAILDEFAULTHOST") { q.defaultHost = v }
            if let v = env("QMAILPLUSDOMAIN") { q.plusDomain = v }
            guard argv.count >= 2 else { throw ForwardFatal.permanent("newinclude: usage: newinclude list", bare: true) }
            let list = argv[1]
            let text: [UInt8]
            do {
                guard let t = try FileIO.read(list, limit: 1 << 30) else {
                    throw ForwardFatal.temporary("unable to read \(list): \(Sys.strerror(ENOENT))")
                }
                text = t
            } catch let e as SysError {
                throw ForwardFatal.temporary("unable to read \(list): \(Sys.strerror(e.errno))")
            }
            let bytes = try compile(text, q)
            try MailingList.writeList(list + ".bin", list + ".tmp", bytes)
            return 0
        }
    }
}
