// qmail's exit convention, shared by its delivery programs (qmail-local's
// children, qmail-remote's callers) and most of its tools: 0 done, 100 a
// permanent failure (bounce, do not retry), 111 a temporary one (try again
// later). Programs with another contract name their own codes beside their
// logic: QueueExit (qmail-queue), Checkpassword (0/1/2/111), CtlExit.

public enum QmailExit {
    public static let success: Int32 = 0
    public static let permanent: Int32 = 100
    public static let temporary: Int32 = 111

    /// The exit codes of a delivery program (a .qmail "|command") that
    /// qmail-local takes as a permanent failure: 100 and sysexits' usage,
    /// data, software, protocol, permission and configuration errors (and
    /// 112); any other non-zero code, or a crash, is temporary.
    public static let permanentForProgram: Set<Int32> = [64, 65, 70, 76, 77, 78, 100, 112]

    /// 111 for a temporary failure, 100 for a permanent one.
    public static func failure(temporary isTemporary: Bool) -> Int32 { isTemporary ? temporary : permanent }
}
