// One control/smtproutes value: "relay[:port][ user password]". The
// optional login is the layout of the qmail-remote AUTH patch that sites
// know from the combined netqmail patches: after the relay, separated by
// blanks, a user name and a password (which may itself hold blanks). A
// user written "-user" allows AUTH without TLS, as there. qmail-remote,
// qmail-showctl and qmailctl doctor all read the line through this type.

public struct RelayLogin: Equatable {
    public var user: [UInt8]
    /// May be empty when the line names a user only (a configuration error).
    public var password: [UInt8]
    /// "-user": the site accepts sending the password without TLS.
    public var clearAllowed: Bool
}

public struct SMTPRoute: Equatable {
    /// The relay as written (a name or a bracketed address); empty means
    /// "look up the MX as usual".
    public var host: [UInt8]
    public var port: Int?
    public var login: RelayLogin?

    /// Parses the part after the domain's colon.
    public init(value: [UInt8]) {
        let blank: (UInt8) -> Bool = { $0 == Ascii.space || $0 == Ascii.tab }
        let hostPort = value.prefix { !blank($0) }
        var rest = value.dropFirst(hostPort.count).drop(while: blank)
        host = Array(hostPort)
        port = nil
        if hostPort.first == 91, let close = hostPort.firstIndex(of: 93) {
            host = Array(hostPort[...close])
            if close + 1 < hostPort.endIndex, hostPort[close + 1] == Ascii.colon { port = Decimal.scanPrefix(hostPort[(close + 2)...]) }
        } else if let colon = hostPort.firstIndex(of: Ascii.colon) {
            host = Array(hostPort[..<colon])
            port = Decimal.scanPrefix(hostPort[(colon + 1)...])
        }
        login = nil
        if !rest.isEmpty {
            var user = Array(rest.prefix { !blank($0) })
            rest = rest.dropFirst(user.count).drop(while: blank)
            let clear = user.first == Ascii.minus
            if clear { user.removeFirst() }
            login = RelayLogin(user: user, password: Array(rest), clearAllowed: clear)
        }
    }

    /// Splits a whole smtproutes line into its domain and route; nil without a colon.
    public static func parse(line: [UInt8]) -> (domain: [UInt8], route: SMTPRoute)? {
        guard let colon = line.firstIndex(of: Ascii.colon) else { return nil }
        return (Array(line[..<colon]), SMTPRoute(value: Array(line[(colon + 1)...])))
    }

    /// The line as it may be shown to anyone: the password replaced.
    public static func hidingPassword(_ line: [UInt8]) -> [UInt8] {
        // The password is the rest of the line.
        guard let login = parse(line: line)?.route.login, !login.password.isEmpty else { return line }
        return Array(line[..<(line.count - login.password.count)]) + Array("(password hidden)".utf8)
    }
}
