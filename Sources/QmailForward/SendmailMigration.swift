// The qmail-setup step for sites coming from sendmail: mail for addresses
// nobody else controls goes through /etc/aliases (fastforward in
// ~alias/.qmail-default), and users' ~/.forward files are honoured
// (dot-forward first in the default delivery). Existing files are kept
// unless they still hold qmail-setup's default content.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum SendmailMigration {
    /// The line for ~alias/.qmail-default.
    /// (fastforward is found through PATH, which qmail-setup's boot
    /// scripts start with HOME/bin, as "|dot-forward .forward" is.)
    public static func fastforwardLine(aliasesCdb: String) -> String {
        "|fastforward -d \(aliasesCdb)"
    }

    public static let dotForwardLine = "|dot-forward .forward"

    /// Puts fastforward in HOME/alias/.qmail-default (when that file is
    /// missing) and "|dot-forward .forward" first in control/defaultdelivery
    /// (when it is not there yet). Returns what it changed, for the log.
    /// `owner` gives the new .qmail-default's uid/gid (the alias user).
    @discardableResult
    public static func install(home: QmailHome, aliasesCdb: String = "/etc/aliases.cdb",
                               owner: (uid: uid_t, gid: gid_t)? = nil) throws -> [String] {
        var changed: [String] = []
        let dq = home.alias + "/.qmail-default"
        if !Sys.exists(dq) {
            let text = "# Addresses with no other .qmail file go through \(aliasesCdb) (run newaliases after editing /etc/aliases).\n"
                + fastforwardLine(aliasesCdb: aliasesCdb) + "\n"
            try FileIO.writeAtomic(dq, Array(text.utf8), mode: 0o644)
            if let o = owner, chown(dq, o.uid, o.gid) != 0 { throw SysError("chown", path: dq) }
            changed.append(dq)
        }
        let dd = home.control("defaultdelivery")
        let current = try FileIO.read(dd) ?? Array("./Maildir/\n".utf8)
        let lines = current.split(byte: Ascii.lf).map { $0.string }
        if !lines.contains(where: { $0.hasPrefix("|dot-forward") }) {
            var text = dotForwardLine + "\n" + current.string
            if !text.hasSuffix("\n") { text += "\n" }
            var mode: mode_t = 0o644
            if let st = try? Sys.stat(dd) { mode = st.st_mode & 0o7777 }
            try FileIO.writeAtomic(dd, Array(text.utf8), mode: mode)
            changed.append(dd)
        }
        return changed
    }
}
