// tcp-env: sets TCP environment variables from descriptor 0 (for servers
// started by inetd) and runs the program. Trusts nothing from the client.
import QmailCore
import QmailNet

/// tcp-env's entry point: the multi-call dispatcher runs it for argv[0] "tcp-env".
func tcpEnvMain() {
    Sys.exit(TcpEnv.main(CommandLine.arguments).perform())
}
