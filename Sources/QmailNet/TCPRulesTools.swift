// The entry points of tcprules and tcprulescheck; messages and exit codes
// are ucspi-tcp's (100 for bad usage or input, 111 for system trouble).
import QmailCore

public enum TCPRulesTools {
    public static func tcprules(_ args: [String]) -> Int32 {
        guard args.count >= 2 else {
            Sys.warn("tcprules: usage: tcprules rules.cdb rules.tmp")
            return QmailExit.permanent
        }
        let input: [UInt8]
        do {
            guard let all = try ByteReader(fd: 0, capacity: 65536).readAll(limit: 1 << 30) else {
                Sys.warn("tcprules: fatal: unable to read input: file too big")
                return QmailExit.temporary
            }
            input = all
        } catch {
            Sys.warn("tcprules: fatal: unable to read input: \(error)")
            return QmailExit.temporary
        }
        do {
            try RulesCompiler.compile(input, cdbPath: args[0], tmpPath: args[1])
        } catch let e as RulesError {
            Sys.warn("tcprules: fatal: \(e)")
            return QmailExit.permanent
        } catch {
            Sys.warn("tcprules: fatal: unable to write \(args[0]): \(error)")
            return QmailExit.temporary
        }
        return 0
    }

    public static func tcprulescheck(_ args: [String]) -> Int32 {
        guard let path = args.first else {
            Sys.warn("tcprulescheck: usage: tcprulescheck rules.cdb")
            return QmailExit.permanent
        }
        let ip = Array((Sys.getenv("TCPREMOTEIP") ?? "0.0.0.0").utf8)
        let host = Sys.getenv("TCPREMOTEHOST").map { Array($0.utf8) }
        let info = Sys.getenv("TCPREMOTEINFO").map { Array($0.utf8) }
        do {
            guard let cdb = try CdbReader.open(path) else {
                Sys.warn("tcprulescheck: fatal: unable to read \(path): file does not exist")
                return QmailExit.temporary
            }
            var out = ""
            var found = false
            for key in RulesLookup.keys(ip: ip, host: host, info: info) {
                guard let data = try cdb.find(key) else { continue }
                let v = RuleVerdict(data: data)
                out += "rule \(key.string):\n"
                for (n, val) in v.env { out += "set environment variable \(n.string)=\(val.string)\n" }
                out += v.deny ? "deny connection\n" : "allow connection\n"
                found = true
                break
            }
            if !found { out = "default:\nallow connection\n" }
            try Sys.writeAll(1, out)
        } catch {
            Sys.warn("tcprulescheck: fatal: unable to read \(path): \(error)")
            return QmailExit.temporary
        }
        return 0
    }
}
