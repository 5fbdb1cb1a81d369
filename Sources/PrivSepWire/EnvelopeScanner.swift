// The common frame's envelope, read straight from its bytes.
//
// Most frames are plain: the members type, id, re, fds, more, from and body, names and
// strings in printable ASCII without escapes, small integers. For those the scanner reads the
// envelope members itself and hands only the body to the parser, so no object is built for the
// envelope and no string for a key. It accepts a frame only when the full path (parse the whole
// frame, then `Envelope(validating:)`) would accept it with the same envelope and the same body
// span; anything else (an escape, a real, an `error` member, an unknown or repeated member, a
// check that fails, a limit) returns nil, and the full path reads the frame again and words the
// error. A hostile frame costs at most two parses of its bytes (the scanner's, which may have
// parsed the body before a later member gave it up, and the full path's): bounded by max_frame.

import PrivSepJSON

enum EnvelopeScanner {
    /// The envelope of a plain frame from `sender`, its declared descriptors in `fds`, and where
    /// `body` lies in the frame; nil for the full path.
    static func scan(_ frame: UnsafeRawBufferPointer, sender: Sender, limits: JSONLimits)
        -> (envelope: Envelope, bodySpan: Range<Int>?)?
    {
        // Limits so small that a plain envelope could cross them are the full path's to report.
        guard let base = frame.baseAddress?.assumingMemoryBound(to: UInt8.self), limits.maxDepth >= 1,
              limits.maxStringBytes >= 4, limits.maxNumberLength >= 16
        else { return nil }
        var reader = Reader(base: base, count: frame.count)
        var found = Found()
        reader.skipWhitespace()
        guard reader.take(UInt8(ascii: "{")) else { return nil }
        while true {
            reader.skipWhitespace()
            guard let member = reader.memberName(), !found.seen.contains(member) else { return nil }
            found.seen.insert(member)
            reader.skipWhitespace()
            guard reader.take(UInt8(ascii: ":")) else { return nil }
            reader.skipWhitespace()
            guard reader.value(of: member, into: &found, frame: frame, limits: limits) else { return nil }
            reader.skipWhitespace()
            if reader.take(UInt8(ascii: ",")) { continue }
            guard reader.take(UInt8(ascii: "}")) else { return nil }
            break
        }
        reader.skipWhitespace()
        guard reader.index == reader.count else { return nil }
        // The full parser's counts: the envelope, each scalar member, the body's values.
        let nodes = 1 + found.seen.count - (found.seen.contains(.body) ? 1 : 0) + found.bodyNodes
        guard nodes <= limits.maxNodes, found.seen.count <= limits.maxContainerCount,
              let envelope = found.envelope(sender: sender)
        else { return nil }
        return (envelope, found.bodySpan)
    }

    /// The envelope members the scanner reads (`error` is left to the full path).
    struct MemberSet: OptionSet {
        let rawValue: UInt8
        static let type = MemberSet(rawValue: 1)
        static let id = MemberSet(rawValue: 2)
        static let re = MemberSet(rawValue: 4)
        static let fds = MemberSet(rawValue: 8)
        static let more = MemberSet(rawValue: 16)
        static let from = MemberSet(rawValue: 32)
        static let body = MemberSet(rawValue: 64)

        var count: Int { rawValue.nonzeroBitCount }
    }

    /// What the members held, before the envelope checks.
    struct Found {
        var seen: MemberSet = []
        var type: String?
        var id: Int64?
        var re: Int64?
        var fds: Int64?
        var from: String?
        var body = JSONObject()
        var bodySpan: Range<Int>?
        var bodyNodes = 0

        /// The envelope when `Envelope.preflight` and `Envelope(validating:)` would pass it
        /// unchanged, else nil.
        func envelope(sender: Sender) -> Envelope? {
            if let from, sender == .helper || from.isEmpty { return nil }
            if let fds, fds < 1 || fds > Int64(WireLimits.maxFdsPerFrame) { return nil }
            if let type, !MessageType.isValid(type) { return nil }
            if let id, id < 1 || id > WireLimits.maxId { return nil }
            if let re, re < 1 || re > WireLimits.maxId { return nil }
            let envelope = Envelope(type: type, id: id, re: re, body: body, more: seen.contains(.more),
                                    fds: Int(fds ?? 0), from: from)
            do {
                try envelope.checkKind(hasBody: seen.contains(.body))
            } catch {
                return nil
            }
            return envelope
        }
    }

    /// A cursor over the frame's bytes.
    struct Reader {
        let base: UnsafePointer<UInt8>
        let count: Int
        var index = 0

        mutating func skipWhitespace() {
            while index < count {
                switch base[index] {
                case 0x20, 0x0A, 0x0D, 0x09: index += 1
                default: return
                }
            }
        }

        /// Steps over `byte` if it is next.
        mutating func take(_ byte: UInt8) -> Bool {
            guard index < count, base[index] == byte else { return false }
            index += 1
            return true
        }

        /// The bytes of a string of printable ASCII without escapes, the quotes stepped over.
        mutating func plainString() -> UnsafeBufferPointer<UInt8>? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = index
            while index < count {
                let byte = base[index]
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    return UnsafeBufferPointer(start: base + start, count: index - 1 - start)
                }
                guard byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "\\") else { return nil }
                index += 1
            }
            return nil
        }

        /// The envelope member a key names, or nil (another key, or not a plain string).
        mutating func memberName() -> MemberSet? {
            guard let key = plainString() else { return nil }
            func named(_ name: StaticString) -> Bool {
                key.elementsEqual(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            }
            switch key.count {
            case 2: return named("id") ? .id : named("re") ? .re : nil
            case 3: return named("fds") ? .fds : nil
            case 4: return named("type") ? .type : named("body") ? .body : named("more") ? .more : named("from") ? .from : nil
            default: return nil
            }
        }

        /// An integer of at most 16 digits without sign, fraction or exponent (the full path
        /// reads every other number): enough for ids up to 2^53 - 1.
        mutating func smallInteger() -> Int64? {
            var value: Int64 = 0
            let start = index
            while index < count, base[index] >= UInt8(ascii: "0"), base[index] <= UInt8(ascii: "9") {
                value = value * 10 + Int64(base[index] - UInt8(ascii: "0"))
                index += 1
                if index - start > 16 { return nil }
            }
            // No digit, a leading zero, or a number that goes on (".5", "e3"): the full path's.
            guard index > start, base[start] != UInt8(ascii: "0") || index - start == 1,
                  index == count || !Reader.continuesNumber(base[index])
            else { return nil }
            return value
        }

        static func continuesNumber(_ byte: UInt8) -> Bool {
            byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E")
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
        }

        /// Reads `member`'s value, of the shape its check wants, into `found`.
        mutating func value(of member: MemberSet, into found: inout Found, frame: UnsafeRawBufferPointer,
                            limits: JSONLimits) -> Bool
        {
            switch member {
            case .type, .from:
                guard let text = plainString(), text.count <= limits.maxStringBytes else { return false }
                let string = String(decoding: text, as: UTF8.self)
                if member == .type { found.type = string } else { found.from = string }
            case .id, .re, .fds:
                guard let number = smallInteger() else { return false }
                if member == .id { found.id = number } else if member == .re { found.re = number } else { found.fds = number }
            case .more:
                let word: StaticString = "true"
                guard count - index >= 4,
                      UnsafeBufferPointer(start: base + index, count: 4)
                          .elementsEqual(UnsafeBufferPointer(start: word.utf8Start, count: 4))
                else { return false }
                index += 4
            case .body:
                guard index < count, base[index] == UInt8(ascii: "{") else { return false }
                let start = index
                do {
                    let parsed = try JSONParser.parseValue(in: frame, at: start, enclosingDepth: 1, limits: limits)
                    guard case .object(let body) = parsed.value else { return false }
                    found.body = body
                    found.bodySpan = start ..< parsed.end
                    found.bodyNodes = parsed.nodes
                    index = parsed.end
                } catch {
                    return false
                }
            default:
                return false
            }
            return true
        }
    }
}
