// swift-qmail-root-db: the root-run checkpassword programs of the LDAP and
// MySQL backends, started by qmail-popup, which also picks argv[0].
// HOME/bin holds it under each name below (MultiCall.swift); which program
// is in which file is Package.swift's `programs`, and the programs qmail
// installs with mode 0700 (Programs.all) start with MultiCall.ownerOnly.
import QmailCore

switch MultiCall.program {
case "checkpassword-ldap": checkpasswordLdapMain()
case "checkpassword-mysql": checkpasswordMysqlMain()
default: MultiCall.other("swift-qmail-root-db", [
    "checkpassword-ldap",
    "checkpassword-mysql",
])
}
MultiCall.done()
