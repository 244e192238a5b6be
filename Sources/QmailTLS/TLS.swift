public enum QmailTLSPlaceholder {}
