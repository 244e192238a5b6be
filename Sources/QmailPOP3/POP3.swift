public enum QmailPOP3Placeholder {}
