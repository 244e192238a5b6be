// qmail's qlx.h: the exit codes of qmail-lspawn's delivery child and of
// qmail-getpw beyond qmail-local's 0/100/111. Shared by qmail-getpw (which
// produces them) and qmail-lspawn (which turns them into reports).
public enum QLX {
    public static let bug: Int32 = 101
    public static let usage: Int32 = 112
    public static let root: Int32 = 113
    public static let nfs: Int32 = 115
    public static let noAlias: Int32 = 116
    public static let cdb: Int32 = 117
    public static let sys: Int32 = 118
    public static let noMem: Int32 = 119
    public static let execSoft: Int32 = 120
    public static let execPw: Int32 = 121
    public static let execHard: Int32 = 126
}
