// predate: runs a program with a Date field prepended to its stdin.
// Runs as the invoking user; exits with the program's exit code.
import QmailCore
import QmailInject

/// predate's entry point: the multi-call dispatcher runs it for argv[0] "predate".
func predateMain() {
    Sys.exitFlushing(Predate.main(Array(CommandLine.arguments.dropFirst())))
}
