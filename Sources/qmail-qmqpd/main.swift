import QmailSMTP
