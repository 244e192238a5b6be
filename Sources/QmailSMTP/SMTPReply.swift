// Every reply qmail-smtpd, qmail-qmtpd and qmail-qmqpd send, named once
// (qmail-smtpd.c keeps its replies in err_* functions the same way). The
// texts are qmail's own where qmail has them, byte for byte: clients,
// tests and differential runs against qmail compare them. SMTP replies end
// in CRLF; QMTP and QMQP replies are one status letter (K ok, Z temporary,
// D permanent) and text, without a line ending, sent as a netstring.
import QmailCore

/// The text of a refusal that more than one protocol sends.
enum RefusalText {
    static let notInRcpthosts = "sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"
    static let tooBig = "sorry, that message size exceeds my databytes limit (#5.3.4)"
}

/// qmail-smtpd's replies, each with its CRLF.
public enum SMTPReply {
    // The session.
    static func greeting(_ name: [UInt8]) -> [UInt8] { Array("220 ".utf8) + name + Array(" ESMTP\r\n".utf8) }
    static func goodbye(_ name: [UInt8]) -> [UInt8] { Array("221 ".utf8) + name + Array("\r\n".utf8) }
    static let lineTooLong = "500 line too long (#5.5.2)\r\n"
    static let timeout = "451 timeout (#4.4.2)\r\n"
    /// Sent before exiting when the controls cannot be read at startup.
    public static let startupControlsUnreadable = "421 unable to read controls (#4.3.0)\r\n"
    static let nulInCommand = "501 NUL byte in command (#5.5.2)\r\n"
    static let unimplemented = "502 unimplemented (#5.5.1)\r\n"
    static let syntaxError = "501 syntax error (#5.5.4)\r\n"

    // Commands outside a transaction.
    static let flushed = "250 flushed\r\n"
    static let ok = "250 ok\r\n"
    static let vrfy = "252 send some mail, i'll try my best\r\n"
    static let help = "214 qmail home page: http://pobox.com/~djb/qmail.html\r\n"

    // HELO and EHLO.
    static func helo(_ name: [UInt8]) -> [UInt8] { Array("250 ".utf8) + name + Array("\r\n".utf8) }
    static func ehloFirst(_ name: [UInt8]) -> [UInt8] { Array("250-".utf8) + name + Array("\r\n".utf8) }
    static let ehloPipelining8BitMIME = "250-PIPELINING\r\n250-8BITMIME\r\n"
    static func ehloSize(_ databytes: Int) -> String { databytes > 0 ? "250-SIZE \(databytes)\r\n" : "250-SIZE\r\n" }
    static let ehloStartTLS = "250-STARTTLS\r\n"
    static func ehloAuth(_ mechanisms: String) -> String { "250-AUTH \(mechanisms)\r\n250-AUTH=\(mechanisms)\r\n" }
    static let ehloLast = "250 SMTPUTF8\r\n"

    // MAIL and RCPT.
    static let authRequired = "530 authentication required (#5.7.1)\r\n"
    static let addressSyntax = "555 syntax error (#5.5.4)\r\n"
    static let needsSMTPUTF8 = "553 sorry, a non-ASCII address needs SMTPUTF8 (#5.6.7)\r\n"
    static let badSize = "501 bad SIZE parameter (#5.5.4)\r\n"
    static let tooBig = "552 " + RefusalText.tooBig + "\r\n"
    static let mailFirst = "503 MAIL first (#5.5.1)\r\n"
    static let rcptFirst = "503 RCPT first (#5.5.1)\r\n"
    static let badMailFrom = "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n"
    static let tooManyRecipients = "452 too many recipients (#4.5.3)\r\n"
    static let notInRcpthosts = "553 " + RefusalText.notInRcpthosts + "\r\n"
    static let controlsUnreadable = "451 unable to read controls (#4.3.0)\r\n"
    static let noMailbox = "550 sorry, no mailbox here by that name (#5.1.1)\r\n"
    static let recipientLookupFailed = "451 temporary problem looking up the recipient (#4.3.0)\r\n"
    static let greylisted = "451 greylisted, please try again later (#4.7.1)\r\n"
    static let srsForged = "550 sorry, that SRS address is forged or has expired (#5.7.1)\r\n"
    static let srsUnverified = "451 unable to verify the SRS address (#4.3.0)\r\n"
    static func spfFail(_ why: String) -> String { "550 sorry, \(why) (#5.7.23)\r\n" }
    static let spfTemporary = "451 temporary DNS failure checking SPF (#4.7.24)\r\n"

    // DATA.
    static let queueUnavailable = "451 qqt failure (#4.3.0)\r\n"
    static let bareLF = "451 See http://pobox.com/~djb/docs/smtplf.html.\r\n"
    static func accepted(at time: Int, qp pid: Int32) -> String { "250 ok \(time) qp \(pid)\r\n" }
    static let looping = "554 too many hops, this message is looping (#5.4.6)\r\n"
    static func dmarcReject(_ domain: String) -> String {
        "550 sorry, the DMARC policy of \(domain) rejects this message (#5.7.1)\r\n"
    }
    static let dmarcTemporary = "451 temporary DNS failure checking DKIM and DMARC (#4.7.0)\r\n"
    static func failure(_ f: MailFailure) -> String { f.smtpReply + "\r\n" }

    // AUTH.
    static let alreadyAuthenticated = "503 you're already authenticated (#5.5.0)\r\n"
    static let authInTransaction = "503 no auth during mail transaction (#5.5.0)\r\n"
    static let authNeedsTLS = "538 encryption required for requested authentication mechanism (#5.7.11)\r\n"
    static let authTypeUnknown = "501 auth type unimplemented (#5.5.1)\r\n"
    static let authTypeUnimplemented = "504 auth type unimplemented (#5.5.1)\r\n"
    static let authCancelled = "501 auth exchange cancelled (#5.0.0)\r\n"
    static let authMalformed = "501 malformed auth input (#5.5.4)\r\n"
    static let authzNotLogin = "535 authorization identity must be the login (#5.7.8)\r\n"
    static let authOK = "235 ok, go ahead (#2.0.0)\r\n"
    static let authTooManyFailures = "421 too many authentication failures, closing connection (#4.7.0)\r\n"
    static let authFailed = "535 authentication failed (#5.7.8)\r\n"
    static let authTemporary = "454 temporary authentication failure (#4.3.0)\r\n"
    static let authLockedOut = "454 too many failed logins, try again later (#4.7.0)\r\n"

    // STARTTLS.
    static let tlsUnavailable = "454 TLS not available due to temporary reason (#4.3.0)\r\n"
    static let tlsReady = "220 ready for tls\r\n"
}

/// qmail-qmqpd's and qmail-qmtpd's replies.
enum QMTPReply {
    static func accepted(at time: Int, qp pid: Int32) -> String { "Kok \(time) qp \(pid)" }
    static let queueUnavailable = "Zqq temporary problem (#4.3.0)"
    static let envelopeTooLong = "Denvelope too long (#5.3.4)"
    static let envelopeNUL = "Dsorry, an envelope address may not contain NUL (#5.1.3)"
    static let addressNUL = "Dsorry, an address may not contain NUL (#5.1.3)"
    static let notInRcpthosts = "D" + RefusalText.notInRcpthosts
    static let tooBig = "D" + RefusalText.tooBig
    static let unknownEncoding = "Dunable to handle this kind of message (#5.6.1)"
    static let badSender = "Dunacceptable sender (#5.1.7)"
    static func failure(_ f: MailFailure) -> String { f.report }
}
