// The pages' common frame and style: plain HTML, one column, readable on a
// phone's width, no script at all.
import UserDirectory

/// One HTML page: head, the top bar of a logged-in session, the waiting
/// message, and `body`.
func page(_ title: String, _ s: Session?, flash: Flash? = nil, _ body: String) -> String {
    var nav = #"<header><span class="who">Mail administration</span></header>"#
    if let s {
        var links: [String] = []
        if s.isSystem { links.append(#"<a href="/domains">Domains</a>"#) }
        if s.isPostmaster || s.isSystem, !s.domain.isEmpty { links.append(#"<a href="/domain?d=\#(escapeQuery(s.domain))">\#(escapeHTML(s.domain))</a>"#) }
        if s.hasMailbox { links.append(#"<a href="/me">My mailbox</a>"#) }
        nav = """
        <header><span class="who">\(escapeHTML(s.address))</span><nav>\(links.joined(separator: " "))</nav>
        <form method="post" action="/logout" class="inline">\(csrfField(s))<button type="submit" class="link">Log out</button></form></header>
        """
    }
    var message = ""
    if let f = flash {
        message = #"<p class="\#(f.ok ? "ok" : "error")" role="\#(f.ok ? "status" : "alert")">\#(escapeHTML(f.text))</p>"#
    }
    return """
    <!DOCTYPE html>
    <html lang="en"><head><meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>\(escapeHTML(title)) - mail administration</title>
    <link rel="stylesheet" href="/style.css"></head>
    <body>\(nav)<main><h1>\(escapeHTML(title))</h1>
    \(message)
    \(body)
    </main></body></html>
    """
}

func csrfField(_ s: Session) -> String { #"<input type="hidden" name="csrf" value="\#(s.csrf)">"# }

/// A form that changes something: POST, with the session's CSRF token.
func postForm(_ action: String, _ s: Session, _ fields: [String: String] = [:], _ inner: String, cls: String = "") -> String {
    let hidden = fields.sorted { $0.key < $1.key }
        .map { #"<input type="hidden" name="\#($0.key)" value="\#(escapeHTML($0.value))">"# }.joined()
    return #"<form method="post" action="\#(action)"\#(cls.isEmpty ? "" : #" class="\#(cls)""#)>\#(csrfField(s))\#(hidden)\#(inner)</form>"#
}

/// A labelled input.
func field(_ name: String, _ label: String, type: String = "text", value: String = "", required: Bool = false,
           hint: String = "", extra: String = "") -> String {
    let id = "f-" + name
    let v = value.isEmpty ? "" : #" value="\#(escapeHTML(value))""#
    let h = hint.isEmpty ? "" : #"<small>\#(escapeHTML(hint))</small>"#
    return #"<label for="\#(id)">\#(escapeHTML(label))</label><input id="\#(id)" name="\#(name)" type="\#(type)"\#(v)\#(required ? " required" : "")\#(extra)>\#(h)"#
}

func checkbox(_ name: String, _ label: String, checked: Bool) -> String {
    #"<label class="check"><input type="checkbox" name="\#(name)" value="yes"\#(checked ? " checked" : "")> \#(escapeHTML(label))</label>"#
}

/// A quota as a person reads it ("50 MB", "no limit").
func quotaText(_ q: Quota) -> String {
    if q.isUnlimited { return "no limit" }
    var parts: [String] = []
    if let b = q.bytes { parts.append(bytesText(b)) }
    if let c = q.count { parts.append("\(c) messages") }
    return parts.joined(separator: ", ")
}

/// A quota as a form shows it for editing: "20M" where it is whole megabytes.
func quotaInput(_ q: Quota?) -> String {
    guard let q, !q.isUnlimited else { return "" }
    if let b = q.bytes, q.count == nil, b > 0, b % (1 << 20) == 0 { return "\(b >> 20)M" }
    return q.text
}

func bytesText(_ n: Int) -> String {
    if n >= 10 << 20 { return "\(n >> 20) MB" }
    if n >= 10 << 10 { return "\(n >> 10) KB" }
    return "\(n) bytes"
}

let styleSheet = """
*{box-sizing:border-box}
a{color:#1a4fb4}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d232a;background:#f3f5f7}
header{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center;padding:.6rem 1rem;background:#1f3b57;color:#fff}
header a,header .link{color:#fff}
header nav{display:flex;flex-wrap:wrap;gap:.3rem .9rem;flex:1 1 auto}
.who{font-weight:600}
main{max-width:44rem;margin:0 auto;padding:1rem}
h1{font-size:1.5rem;margin:.4rem 0 1rem}
h2{font-size:1.15rem;margin:0 0 .6rem}
section{background:#fff;border:1px solid #d5dbe1;border-radius:8px;padding:1rem;margin:0 0 1rem}
label{display:block;font-weight:600;margin:.6rem 0 .2rem}
label.check{font-weight:400}
input[type=text],input[type=password],input[type=email],input[type=number],input[type=date],select,textarea{width:100%;padding:.5rem;font:inherit;border:1px solid #9aa5b1;border-radius:6px}
textarea{min-height:5rem}
small{display:block;color:#55606b}
button{margin-top:.8rem;padding:.5rem 1rem;font:inherit;border:0;border-radius:6px;background:#1f6feb;color:#fff;cursor:pointer}
button.danger{background:#c62828}
button.link{background:none;padding:0;margin:0 0 0 .6rem;text-decoration:underline;color:#1a4fb4}
header button.link{color:#fff;margin:0}
form.inline{display:inline;margin:0}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:.45rem .3rem;border-bottom:1px solid #e3e7eb;vertical-align:top;overflow-wrap:break-word;word-break:break-word}
td.actions{white-space:nowrap;text-align:right}
td small{margin-top:.1rem}
.ok{background:#e6f4ea;border:1px solid #9ccc9f;padding:.6rem;border-radius:6px}
.error{background:#fdecea;border:1px solid #e57373;padding:.6rem;border-radius:6px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:.6rem;border-radius:6px;font-size:.85rem}
.actions a{margin-left:.6rem}
@media (max-width:600px){.who{flex-basis:100%}main{padding:.7rem}section{padding:.8rem}}
"""
