// The words of a .qmail |command when /bin/sh would take it literally, so
// that qmail-local can tell which program a command runs without a shell.
import QmailCore

public enum ShellWords {
    /// The words of `command` when it is one simple command of literal
    /// words: unquoted runs of ordinary characters and '...' strings,
    /// separated by blanks ('' is an empty word, as in sh). Nil for
    /// anything sh would interpret: variables, globs, redirections, other
    /// quotes and escapes, assignments, ~, comments, several commands,
    /// bytes outside ASCII. Such a command always goes to sh -c.
    public static func literal(_ command: [UInt8]) -> [[UInt8]]? {
        var words: [[UInt8]] = []
        var word: [UInt8] = []
        var inWord = false
        var quoted = false
        for c in command {
            if quoted {
                if c == quote { quoted = false } else if c >= 0x80 { return nil } else { word.append(c) }
                continue
            }
            if c == Ascii.space || c == Ascii.tab {
                if inWord { words.append(word); word = []; inWord = false }
            } else if c == quote {
                quoted = true
                inWord = true
            } else if isOrdinary(c) {
                word.append(c)
                inWord = true
            } else {
                return nil
            }
        }
        if quoted { return nil }
        if inWord { words.append(word) }
        return words.isEmpty ? nil : words
    }

    static let quote = UInt8(ascii: "'")

    /// Letters, digits and the punctuation sh gives no meaning to
    /// anywhere in a word (no '=': an assignment; no '~', '#': expansions
    /// and comments at a word's start).
    static func isOrdinary(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "/"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "+"),
             UInt8(ascii: ","), UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "%"):
            return true
        default:
            return false
        }
    }
}
