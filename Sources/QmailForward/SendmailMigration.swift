// The qmail-setup step for sites coming from sendmail: mail for addresses
// nobody else controls goes through /etc/aliases (fastforward in
// ~alias/.qmail-default), and users' ~/.forward files are honoured
// (dot-forward first in control/defaultdelivery). An administrator's files
// are never replaced: an existing .qmail-default is kept, and dot-forward
// is only added to defaultdelivery when no dot-forward line is there yet.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum SendmailMigration {
    /// The line for ~alias/.qmail-default. fastforward is found through
    /// PATH, which qmail-setup's boot scripts start with HOME/bin (as for
    /// "|dot-forward .forward" in the +df boot scripts).
    public static func fastforwardLine(aliasesCdb: String) -> String {
        "|fastforward -d \(aliasesCdb)"
    }

    public static let dotForwardLine = "|dot-forward .forward"

    /// Puts the two lines in place in `home`; returns what it did, for the log.
    /// - aliases: the sendmail aliases file; its cdb is `aliases` + ".cdb".
    ///   When the cdb is missing and the file exists, it is compiled now (so
    ///   alias mail is not deferred until someone runs newaliases); when
    ///   neither exists, .qmail-default is not written (fastforward would
    ///   defer every message for want of its cdb).
    /// - owner: uid/gid for a new .qmail-default (the alias user).
    @discardableResult
    public static func install(home: QmailHome, aliases: String = "/etc/aliases",
                               owner: (uid: uid_t, gid: gid_t)? = nil) throws -> [String] {
        var did: [String] = []
        let cdb = aliases + ".cdb"
        let dq = home.alias + "/.qmail-default"
        if Sys.exists(dq) {
            did.append("kept existing \(dq)")
        } else if !Sys.exists(cdb) && !Sys.exists(aliases) {
            did.append("no \(aliases): \(dq) not written")
        } else {
            if !Sys.exists(cdb) {
                var o = NewaliasesOptions(controlDirectory: home.control)
                o.aliases = aliases
                try Newaliases.run(o)
                did.append("compiled \(aliases) into \(cdb)")
            }
            let text = "# Addresses nobody else handles go through \(cdb); run newaliases after editing \(aliases).\n"
                + fastforwardLine(aliasesCdb: cdb) + "\n"
            try FileIO.writeAtomic(dq, Array(text.utf8), mode: 0o644)
            if let o = owner, chown(dq, o.uid, o.gid) != 0 { throw SysError("chown", path: dq) }
            did.append("wrote \(dq)")
        }
        let dd = home.control("defaultdelivery")
        let current = try FileIO.read(dd) ?? Array("./Maildir/\n".utf8)
        let lines = current.split(byte: Ascii.lf).map { $0.string }
        if lines.contains(where: { $0.hasPrefix("|dot-forward") }) {
            did.append("\(dd) already runs dot-forward")
        } else {
            var text = dotForwardLine + "\n" + current.string
            if !text.hasSuffix("\n") { text += "\n" }
            var mode: mode_t = 0o644
            if let st = try? Sys.stat(dd) { mode = st.st_mode & 0o7777 }
            try FileIO.writeAtomic(dd, Array(text.utf8), mode: mode)
            did.append("added \(dotForwardLine) to \(dd)")
        }
        return did
    }
}
