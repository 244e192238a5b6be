// datemail: sendmail with a Date field added by predate, i.e.
// "predate HOME/bin/sendmail args...". Runs as the invoking user.
import QmailCore
import QmailInject

/// datemail's entry point: the multi-call dispatcher runs it for argv[0] "datemail".
func datemailMain() {
    let home = QmailHome.current()
    let predate = home.bin("predate")
    let e = ChildProcess.exec(.init([predate, home.bin("sendmail")] + CommandLine.arguments.dropFirst(), program: predate))
    Sys.warn("datemail: fatal: unable to run predate: \(Sys.strerror(e.errno))")
    Sys.exitFlushing(QmailExit.temporary)
}
