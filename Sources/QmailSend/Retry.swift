// qmail-send's retry schedule. After a deferral a message is tried again at
// birth + (floor(sqrt(now - birth)) + chanskip)^2, chanskip 10 for local
// deliveries and 20 for remote ones: tries come quickly at first and then
// thin out (local: 0, 100 s, 400 s, ...; remote: 0, 400 s, 1600 s, ...).

import QmailCore

public enum Retry {
    public static let chanskip = [10, 20]

    public static func isqrt(_ v: Int) -> Int {
        if v <= 0 { return 0 }
        var x = Int(Double(v).squareRoot())
        while x * x > v { x -= 1 }
        while (x + 1) * (x + 1) <= v { x += 1 }
        return x
    }

    public static func next(birth: Int, now: Int, channel: DeliveryChannel) -> Int {
        let n = (birth > now ? 0 : isqrt(now - birth)) + chanskip[channel.rawValue]
        return birth + n * n
    }
}
