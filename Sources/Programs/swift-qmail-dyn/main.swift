// swift-qmail-dyn: the programs that need NSS (system accounts, host and
// service names) or the LDAP and MySQL clients, and what the administrator
// runs (qmailctl, qmail-setup, the v* commands, qmail-webadmin).
// HOME/bin holds it under each name below (MultiCall.swift); which program
// is in which file is Package.swift's `programs`, and the programs qmail
// installs with mode 0700 (Programs.all) start with MultiCall.ownerOnly.
import QmailCore

switch MultiCall.program {
case "maildirsmtp": maildirsmtpMain()
case "qmail-filter-ldap": qmailFilterLdapMain()
case "qmail-filter-mysql": qmailFilterMysqlMain()
case "qmail-rcptcheck-ldap": qmailRcptcheckLdapMain()
case "qmail-rcptcheck-mysql": qmailRcptcheckMysqlMain()
case "qmail-report": qmailReportMain()
case "qmail-setup": qmailSetupMain()
case "qmail-webadmin": MultiCall.ownerOnly("swift-qmail-dyn"); qmailWebadminMain()
case "qmailctl": qmailctlMain()
case "vaddaliasdomain": MultiCall.ownerOnly("swift-qmail-dyn"); vaddaliasdomainMain()
case "vadddomain": MultiCall.ownerOnly("swift-qmail-dyn"); vadddomainMain()
case "vadduser": MultiCall.ownerOnly("swift-qmail-dyn"); vadduserMain()
case "valias": MultiCall.ownerOnly("swift-qmail-dyn"); valiasMain()
case "vconvert": MultiCall.ownerOnly("swift-qmail-dyn"); vconvertMain()
case "vdeldomain": MultiCall.ownerOnly("swift-qmail-dyn"); vdeldomainMain()
case "vdelivermail-ldap": vdelivermailLdapMain()
case "vdelivermail-mysql": vdelivermailMysqlMain()
case "vdeluser": MultiCall.ownerOnly("swift-qmail-dyn"); vdeluserMain()
case "vdkim": MultiCall.ownerOnly("swift-qmail-dyn"); vdkimMain()
case "vdominfo": MultiCall.ownerOnly("swift-qmail-dyn"); vdominfoMain()
case "vexport": MultiCall.ownerOnly("swift-qmail-dyn"); vexportMain()
case "vfilterpolicy": MultiCall.ownerOnly("swift-qmail-dyn"); vfilterpolicyMain()
case "vfilterpolicy-ldap": MultiCall.ownerOnly("swift-qmail-dyn"); vfilterpolicyLdapMain()
case "vfilterpolicy-mysql": MultiCall.ownerOnly("swift-qmail-dyn"); vfilterpolicyMysqlMain()
case "vmkpasswd": MultiCall.ownerOnly("swift-qmail-dyn"); vmkpasswdMain()
case "vmoddomain": MultiCall.ownerOnly("swift-qmail-dyn"); vmoddomainMain()
case "vmoddomlimits": MultiCall.ownerOnly("swift-qmail-dyn"); vmoddomlimitsMain()
case "vmoduser": MultiCall.ownerOnly("swift-qmail-dyn"); vmoduserMain()
case "vmoveuser": MultiCall.ownerOnly("swift-qmail-dyn"); vmoveuserMain()
case "vmoveuser-ldap": MultiCall.ownerOnly("swift-qmail-dyn"); vmoveuserLdapMain()
case "vmoveuser-mysql": MultiCall.ownerOnly("swift-qmail-dyn"); vmoveuserMysqlMain()
case "vpasswd": MultiCall.ownerOnly("swift-qmail-dyn"); vpasswdMain()
case "vsetuserquota": MultiCall.ownerOnly("swift-qmail-dyn"); vsetuserquotaMain()
case "vuserinfo": MultiCall.ownerOnly("swift-qmail-dyn"); vuserinfoMain()
case "vvacation": MultiCall.ownerOnly("swift-qmail-dyn"); vvacationMain()
default: MultiCall.other("swift-qmail-dyn", [
    "maildirsmtp",
    "qmail-filter-ldap",
    "qmail-filter-mysql",
    "qmail-rcptcheck-ldap",
    "qmail-rcptcheck-mysql",
    "qmail-report",
    "qmail-setup",
    "qmail-webadmin",
    "qmailctl",
    "vaddaliasdomain",
    "vadddomain",
    "vadduser",
    "valias",
    "vconvert",
    "vdeldomain",
    "vdelivermail-ldap",
    "vdelivermail-mysql",
    "vdeluser",
    "vdkim",
    "vdominfo",
    "vexport",
    "vfilterpolicy",
    "vfilterpolicy-ldap",
    "vfilterpolicy-mysql",
    "vmkpasswd",
    "vmoddomain",
    "vmoddomlimits",
    "vmoduser",
    "vmoveuser",
    "vmoveuser-ldap",
    "vmoveuser-mysql",
    "vpasswd",
    "vsetuserquota",
    "vuserinfo",
    "vvacation",
])
}
MultiCall.done()
