// Where STARTTLS comes from. QmailTLS is not linked yet: no TLS is offered.
import QmailCore

public enum SMTPTLS {
    public static func starter(home: QmailHome) -> TLSServerStarter? { nil }
}
