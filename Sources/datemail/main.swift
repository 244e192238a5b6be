// datemail: sendmail with a Date field added by predate, i.e.
// "predate HOME/bin/sendmail args...". Runs as the invoking user.
import QmailCore
import QmailInject

let home = QmailHome.current()
let predate = home.bin("predate")
let e = Exec.replace(predate, [predate, home.bin("sendmail")] + CommandLine.arguments.dropFirst())
Sys.warn("datemail: fatal: unable to run predate: \(Sys.strerror(e))")
Sys.exitFlushing(111)
