// Every reply qmail-popup and qmail-pop3d send, named once, each with its
// CRLF. The texts are qmail's where qmail has them (the golden transcripts
// in Tests/Integration/pop3-transcripts compare them byte for byte); the
// bracketed codes are RFC 2449's RESP-CODES and RFC 3206's SYS/TEMP and AUTH.

package enum POP3Reply {
    // Both programs.
    static let ok = "+OK \r\n"
    static func ok(_ text: String) -> String { okPrefix + text + "\r\n" }
    /// Starts a "+OK" line whose text follows.
    package static let okPrefix = "+OK "
    static let syntaxError = "-ERR syntax error\r\n"
    static let lineTooLong = "-ERR line too long\r\n"
    /// Ends a multi-line answer.
    static let end = ".\r\n"

    // qmail-popup, before login.
    /// "+OK <timestamp>"; to a peer whose XCLIENT is believed, "+OK
    /// [XCLIENT] <timestamp>" (where Dovecot's proxy looks for the mark).
    static func greeting(xclient: Bool = false, timestamp: [UInt8]) -> [UInt8] {
        Array("+OK ".utf8) + (xclient ? Array(xclientMark.utf8) : []) + timestamp + Array("\r\n".utf8)
    }
    package static let xclientMark = "[XCLIENT] "
    package static let xclientTaken = "+OK client address taken\r\n"
    package static let xclientMalformed = "-ERR malformed XCLIENT (want ADDR=address [PORT=port])\r\n"
    package static let usage = "-ERR usage: popup hostname subprogram\r\n"
    static let plaintextNeedsTLS = "-ERR [AUTH] plaintext login refused before STLS\r\n"
    static let userFirst = "-ERR USER first\r\n"
    static let alreadyTLS = "-ERR already using TLS\r\n"
    static let noSTLS = "-ERR STLS not available\r\n"
    static let beginTLS = "+OK begin TLS negotiation\r\n"
    static let authorizationFirst = "-ERR authorization first\r\n"
    static func popupCapabilities(plaintext: Bool, stls: Bool, xclient: Bool = false) -> String {
        "+OK capability list follows\r\nTOP\r\nUIDL\r\n"
            + (plaintext ? "USER\r\nSASL PLAIN\r\n" : "")
            + (stls ? "STLS\r\n" : "")
            + (xclient ? "XCLIENT\r\n" : "")
            + "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\nIMPLEMENTATION swift-qmail\r\n.\r\n"
    }
    static func authMechanisms(plain: Bool) -> String { plain ? "+OK \r\nPLAIN\r\n.\r\n" : "+OK \r\n.\r\n" }
    static let authUnknownType = "-ERR unrecognized authentication type\r\n"
    static let authContinue = "+ \r\n"
    static let authCancelled = "-ERR AUTH cancelled\r\n"
    static let authMalformed = "-ERR malformed AUTH input\r\n"
    static let authOtherIdentity = "-ERR [AUTH] authorization identity not permitted\r\n"
    package static let tlsUnavailable = "-ERR [SYS/TEMP] TLS not available\r\n"
    package static let loginLimited = "-ERR [SYS/TEMP] too many failed logins, try again later\r\n"
    package static let childCrashed = "-ERR aack, child crashed\r\n"
    package static let loginTemporary = "-ERR [SYS/TEMP] temporary failure, try again later\r\n"
    package static let loginFailed = "-ERR [AUTH] authorization failed\r\n"

    // qmail-pop3d, after login.
    static let noMaildir = "-ERR this user has no $HOME/Maildir\r\n"
    static let scanFailed = "-ERR unable to scan $HOME/Maildir\r\n"
    static let pop3dCapabilities =
        "+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nIMPLEMENTATION swift-qmail\r\n.\r\n"
    static let unimplemented = "-ERR unimplemented\r\n"
    static let unlinkFailed = "-ERR unable to unlink all deleted messages\r\n"
    static let countedFromOne = "-ERR messages are counted from 1\r\n"
    static let notThatMany = "-ERR not that many messages\r\n"
    static let alreadyDeleted = "-ERR already deleted\r\n"
    static let openFailed = "-ERR unable to open that message\r\n"
}
