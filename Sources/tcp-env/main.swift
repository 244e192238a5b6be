// tcp-env: sets TCP environment variables from descriptor 0 (for servers
// started by inetd) and runs the program. Trusts nothing from the client.
import QmailCore
import QmailNet

Sys.exit(TcpEnv.main(CommandLine.arguments).perform())
