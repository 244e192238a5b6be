// qmail-pw2u(8): a V7 passwd file on stdin -> users/assign lines on
// stdout, with qmail-getpw's rules and the users/include, exclude,
// mailnames, subusers and append files.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public struct Pw2u {
    public enum HomeStrategy { case skipMissing, stopOnMissing, ignore }

    public var homeStrategy: HomeStrategy = .skipMissing
    public var allowUppercase = false
    /// The user-extension delimiter; nil disables extensions (-C).
    public var breakChar: UInt8? = Ascii.minus
    /// "-:" or, with -/, "-/:".
    public var dashColon: [UInt8] = Array("-:".utf8)

    public var include: Set<[UInt8]>? = nil
    public var exclude: Set<[UInt8]>? = nil
    /// user -> "mailname1:mailname2:..."
    public var mailnames: [[UInt8]: [UInt8]]? = nil
    public var owner: ([UInt8]) throws -> uid_t? = { path in
        guard let st = BytePath.stat(path) else {
            if errno == ENOENT { return nil }
            throw Pw2uError("unable to stat \(path.string)")
        }
        return st.st_uid
    }

    public struct Pw2uError: Error, CustomStringConvertible {
        public let description: String
        public init(_ s: String) { description = s }
    }

    public init() {}

    /// Applies the options of qmail-pw2u's command line; nil for a usage error.
    public mutating func parseOptions(_ args: [[UInt8]]) -> Bool {
        var i = 0
        while i < args.count, args[i].count > 1, args[i].first == Ascii.minus {
            let a = args[i]
            i += 1
            if a == Array("--".utf8) { break }
            var k = 1
            while k < a.count {
                switch a[k] {
                case Ascii.slash: dashColon = Array("-/:".utf8)
                case UInt8(ascii: "o"): homeStrategy = .skipMissing
                case UInt8(ascii: "h"): homeStrategy = .stopOnMissing
                case UInt8(ascii: "H"): homeStrategy = .ignore
                case UInt8(ascii: "u"): allowUppercase = true
                case UInt8(ascii: "U"): allowUppercase = false
                case UInt8(ascii: "C"): breakChar = nil
                case UInt8(ascii: "c"):
                    // -cX or -c X; the argument's first character is used.
                    if k + 1 < a.count {
                        breakChar = a[k + 1]
                    } else if i < args.count {
                        breakChar = args[i].first
                        i += 1
                    } else {
                        return false
                    }
                    k = a.count
                    continue
                default: return false
                }
                k += 1
            }
        }
        return i == args.count
    }

    /// Reads users/include, exclude and mailnames.
    public mutating func loadControls(usersDirectory dir: String) throws {
        if let d = try FileIO.read(dir + "/include") { include = Set(Control.parseList(d)) }
        if let d = try FileIO.read(dir + "/exclude") { exclude = Set(Control.parseList(d)) }
        if let d = try FileIO.read(dir + "/mailnames") {
            var m: [[UInt8]: [UInt8]] = [:]
            for line in Control.parseList(d) {
                guard let c = line.firstIndex(of: Ascii.colon) else { continue }
                let k = Array(line[0..<c])
                if m[k] == nil { m[k] = Array(line[(c + 1)...]) }
            }
            mailnames = m
        }
    }

    /// Accounts accepted so far: user -> ":user:uid:gid:home:" (for subusers).
    public private(set) var accounts: [[UInt8]: [UInt8]] = [:]
    public private(set) var sawAlias = false

    /// The assign lines for one passwd line (empty when skipped).
    public mutating func account(_ line: [UInt8]) throws -> [UInt8] {
        if line.contains(0) { return [] }
        let f = line.split(byte: Ascii.colon)
        // user:password:uid:gid:gecos:home:shell — home must be followed by ':'.
        guard f.count >= 7 else { return [] }
        let user = f[0], uidText = f[2], gidText = f[3], home = f[5]
        let uid = Decimal.scanPrefix(uidText) ?? 0
        if uid == 0 { return [] }
        if !allowUppercase && user.contains(where: { $0 >= 65 && $0 <= 90 }) { return [] }
        if let inc = include, !inc.contains(user) { return [] }
        if let exc = exclude, exc.contains(user) { return [] }
        if homeStrategy != .ignore {
            guard let own = try owner(home) else {
                if homeStrategy == .stopOnMissing { throw Pw2uError("unable to stat \(home.string)") }
                return []
            }
            if Int(own) != uid { return [] }
        }
        let uugh = [Ascii.colon] + user + [Ascii.colon] + uidText + [Ascii.colon] + gidText + [Ascii.colon] + home + [Ascii.colon]
        if accounts[user] == nil { accounts[user] = uugh }
        var out: [UInt8] = []
        if user == Array("alias".utf8) {
            out += [Ascii.plus] + uugh + dashColon + Array(":\n".utf8)
            sawAlias = true
        }
        let names = mailnames?[user] ?? user
        for name in names.split(separator: Ascii.colon) where !name.isEmpty {
            out += [Ascii.equals] + name + uugh + Array("::\n".utf8)
            if let b = breakChar {
                out += [Ascii.plus] + name + [b] + uugh + dashColon + Array(":\n".utf8)
            }
        }
        return out
    }

    /// The assign lines for one users/subusers line "sub:user:pre:".
    public func subuser(_ line: [UInt8]) throws -> [UInt8] {
        let f = line.split(byte: Ascii.colon)
        guard f.count >= 4 else { return [] }
        let sub = f[0], user = f[1], pre = f[2]
        guard let uugh = accounts[user] else { throw Pw2uError("unable to find \(user.string) user for subuser") }
        var out = [Ascii.equals] + sub + uugh + dashColon + pre + Array(":\n".utf8)
        if let b = breakChar {
            out += [Ascii.plus] + sub + [b] + uugh + dashColon + pre + Array("-:\n".utf8)
        }
        return out
    }

    /// The whole program: stdin -> stdout. Returns the exit code.
    public static func main(_ args: [[UInt8]], home: QmailHome) -> Int32 {
        var p = Pw2u()
        guard p.parseOptions(args) else { return QmailExit.permanent }
        let fatal = "qmail-pw2u: fatal: "
        do { try p.loadControls(usersDirectory: home.users) } catch {
            say(2, fatal + "unable to read controls\n"); return QmailExit.temporary
        }
        let out = ByteWriter(fd: 1, capacity: 65536)
        let input = ByteReader(fd: 0, capacity: 65536)
        do {
            while true {
                let got: (bytes: [UInt8], overflow: Bool)?
                do { got = try input.line(limit: 1 << 20) } catch { say(2, fatal + "unable to read input\n"); return QmailExit.temporary }
                guard let (line, _) = got else { break }
                let body = line.last == Ascii.lf ? Array(line.dropLast()) : line
                try out.put(try p.account(body))
            }
            if !p.sawAlias { say(2, fatal + "unable to find alias user\n"); return QmailExit.temporary }
            if let subs = try FileIO.read(home.users + "/subusers") {
                for line in subs.split(byte: Ascii.lf) where !line.isEmpty { try out.put(try p.subuser(line)) }
            }
            if let app = try FileIO.read(home.users + "/append") { try out.put(app) }
            try out.put(Array(".\n".utf8))
            try out.flush()
        } catch let e as Pw2uError {
            say(2, fatal + e.description + "\n"); return QmailExit.temporary
        } catch let e as SysError where e.op == "write" {
            say(2, fatal + "unable to write output\n"); return QmailExit.temporary
        } catch {
            say(2, fatal + "unable to read controls\n"); return QmailExit.temporary
        }
        return 0
    }
}
