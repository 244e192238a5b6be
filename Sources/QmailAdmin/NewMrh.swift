// qmail-newmrh: compiles control/morercpthosts into morercpthosts.cdb,
// with qmail's rules: hosts lowercased, blank and '#' lines skipped,
// trailing whitespace removed; built in morercpthosts.tmp and renamed.
#if canImport(Glibc)
import Glibc
#endif
import QmailCore

public enum NewMrh {
    public static func run(home: QmailHome) -> Int32 {
        umask(0o033)
        let control = Control(home: home)
        let data: [UInt8]
        do {
            guard let d = try control.raw("morercpthosts") else {
                Sys.warn("qmail-newmrh: fatal: unable to read control/morercpthosts: file does not exist")
                return QmailExit.temporary
            }
            data = d
        } catch {
            Sys.warn("qmail-newmrh: fatal: unable to read control/morercpthosts: \(error)")
            return QmailExit.temporary
        }
        do {
            try CdbWriter.create(path: control.path("morercpthosts.cdb"), tmpPath: control.path("morercpthosts.tmp")) { add in
                for host in Control.parseList(data) { try add(host.lowercasedASCII(), []) }
            }
        } catch {
            Sys.warn("qmail-newmrh: fatal: unable to write control/morercpthosts.cdb: \(error)")
            return QmailExit.temporary
        }
        return 0
    }
}
