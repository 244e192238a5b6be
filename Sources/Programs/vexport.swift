// vexport: writes the file backend (HOME/users/vdomains, each domain's
// vpasswd and valias) as LDIF or SQL for import into the LDAP or MySQL
// backend. Runs as the qmail administrator; reads only; output on stdout.
//   vexport --ldif BASEDN | slapadd ...     vexport --sql | mariadb DB
import QmailCore
import VHosting

/// vexport's entry point: the multi-call dispatcher runs it for argv[0] "vexport".
func vexportMain() {
    Sys.exit(Export.main(argv: CommandLine.arguments))
}
