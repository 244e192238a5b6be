// qmail-spfquery: an administrator's SPF check from the command line.
//   qmail-spfquery [-t secs] [-r receiver] -i ip -s sender -h helo
// Prints the result, the explanation (or an empty line) and the
// Received-SPF field qmail-smtpd would add. DNS servers come from
// DNSCACHEIP or /etc/resolv.conf, as for qmail-remote.
import QmailCore
import QmailNet

public enum SPFQuery {
    public static let usage = "usage: qmail-spfquery [-t secs] [-r receiver] -i ip -s sender -h helo\n"

    /// Exit code: 0 with a result printed, 100 for bad usage.
    public static func main(_ args: [String]) -> Int32 {
        var opts: [String: String] = [:]
        var i = 1
        while i < args.count {
            let a = args[i]
            guard ["-i", "-s", "-h", "-r", "-t"].contains(a), i + 1 < args.count else {
                _ = try? Sys.writeAll(2, usage)
                return QmailExit.permanent
            }
            opts[a] = args[i + 1]
            i += 2
        }
        guard let ipText = opts["-i"], let ip = IPAddress(ipText), let helo = opts["-h"] else {
            _ = try? Sys.writeAll(2, usage)
            return QmailExit.permanent
        }
        let dns = DNSResolver.system()
        if let t = opts["-t"].flatMap({ Int($0) }), t > 0 { dns.timeout = t; dns.attempts = 1 }
        let receiver = opts["-r"] ?? "localhost"
        let sender = opts["-s"] ?? ""
        let v = SPFChecker(dns: dns, receiver: receiver).check(client: ip, sender: sender, helo: helo)
        let out = v.result.rawValue + "\n" + (v.explanation ?? "") + "\n"
            + v.receivedSPF(receiver: receiver, client: ip.unmapped, sender: sender, helo: helo) + "\n"
        _ = try? Sys.writeAll(1, out)
        return 0
    }
}
