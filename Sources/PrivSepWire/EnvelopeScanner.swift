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
//
// The broker also passes a check of bodies by type (`BodyBytesCheck`, from the schemas): a body
// it vouches for, valid for its type and read to its end without a tree, is not parsed at all.

import PrivSepJSON

enum EnvelopeScanner {
    /// The members of a plain frame from `sender`, checked as the envelope's (`Found.message`
    /// makes the message), or nil for the full path. When the check `bodyCheck` gives for the type
    /// (or, in a reply, for the request it answers) vouched for the body, it was not parsed
    /// (`bodyChecked`). A type whose bytes are those of `lastType` (a name this sender's frames
    /// have carried before) takes that String, already checked, instead of a new one (a name over
    /// 15 bytes is a heap allocation).
    static func scan(_ frame: [UInt8], sender: Sender, limits: JSONLimits, lastType: String? = nil,
                     bodyCheck: (_ type: String?, _ re: Int64?) -> BodyBytesCheck? = { _, _ in nil }) -> Found?
    {
        guard let found = frame.withUnsafeBytes({ members($0, limits: limits, lastType: lastType, bodyCheck: bodyCheck) }),
              found.isValidEnvelope(sender: sender)
        else { return nil }
        return found
    }

    /// The envelope members of a plain frame, within `limits`; nil for the full path.
    private static func members(_ frame: UnsafeRawBufferPointer, limits: JSONLimits, lastType: String?,
                                bodyCheck: (_ type: String?, _ re: Int64?) -> BodyBytesCheck?) -> Found?
    {
        // Limits so small that a plain envelope could cross them are the full path's to report.
        guard let base = frame.baseAddress?.assumingMemoryBound(to: UInt8.self), limits.maxDepth >= 1,
              limits.maxStringBytes >= 4, limits.maxNumberLength >= 16
        else { return nil }
        var reader = PlainReader(base: base, count: frame.count)
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
            guard reader.value(of: member, into: &found, frame: frame, limits: limits, lastType: lastType,
                               bodyCheck: bodyCheck)
            else { return nil }
            reader.skipWhitespace()
            if reader.take(UInt8(ascii: ",")) { continue }
            guard reader.take(UInt8(ascii: "}")) else { return nil }
            break
        }
        reader.skipWhitespace()
        guard reader.index == reader.count else { return nil }
        // The full parser's counts: the envelope, each scalar member, the body's values.
        let nodes = 1 + found.seen.count - (found.seen.contains(.body) ? 1 : 0) + found.bodyNodes
        guard nodes <= limits.maxNodes, found.seen.count <= limits.maxContainerCount else { return nil }
        return found
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
        /// The body was vouched for by the caller's check and not parsed (`body` stays empty).
        var bodyChecked = false

        /// Whether `Envelope.preflight` and `Envelope(validating:)` would pass these members
        /// unchanged.
        func isValidEnvelope(sender: Sender) -> Bool {
            if let from, sender == .helper || from.isEmpty { return false }
            if let fds, fds < 1 || fds > Int64(WireLimits.maxFdsPerFrame) { return false }
            if let id, id < 1 || id > WireLimits.maxId { return false }
            if let re, re < 1 || re > WireLimits.maxId { return false }
            do {
                try Envelope.checkKind(hasType: type != nil, hasID: id != nil, hasRe: re != nil, hasError: false,
                                       hasBody: seen.contains(.body), more: seen.contains(.more))
            } catch {
                return false
            }
            return true
        }

        /// The descriptors the envelope declares.
        var declaredFds: Int { Int(fds ?? 0) }

        /// The message of members that passed `isValidEnvelope`, read from `frame` (the body
        /// keeps its bytes as a slice of it), with `fds`. Made where the caller returns it: built
        /// first and then given its descriptors, it was copied whole and destroyed, about 290
        /// instructions a message (docs/performance.md, fifteenth round).
        func message(of frame: [UInt8], fds: [OwnedFD]) -> ReceivedMessage {
            ReceivedMessage(
                envelope: Envelope(type: type, id: id, re: re, body: body, bodyBytes: bodySpan.map { frame[$0] },
                                   checked: bodyChecked, more: seen.contains(.more), fds: declaredFds, from: from),
                fds: fds, bodyChecked: bodyChecked)
        }
    }
}

extension PlainReader {
    /// The envelope member a key names, or nil (another key, or not a plain string).
    mutating func memberName() -> EnvelopeScanner.MemberSet? {
        guard let key = plainString() else { return nil }
        func named(_ name: StaticString) -> Bool {
            sameBytes(key, UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        }
        switch key.count {
        case 2: return named("id") ? .id : named("re") ? .re : nil
        case 3: return named("fds") ? .fds : nil
        case 4: return named("type") ? .type : named("body") ? .body : named("more") ? .more : named("from") ? .from : nil
        default: return nil
        }
    }

    /// Reads `member`'s value, of the shape its check wants, into `found`. A body whose type
    /// `bodyCheck` vouches for is stepped over unparsed.
    mutating func value(of member: EnvelopeScanner.MemberSet, into found: inout EnvelopeScanner.Found,
                        frame: UnsafeRawBufferPointer, limits: JSONLimits, lastType: String?,
                        bodyCheck: (_ type: String?, _ re: Int64?) -> BodyBytesCheck?) -> Bool
    {
        switch member {
        case .type, .from:
            guard let text = plainString(), text.count <= limits.maxStringBytes else { return false }
            if member == .type, let lastType,
               lastType.utf8.withContiguousStorageIfAvailable({ sameBytes($0, text) }) == true
            {
                found.type = lastType
                return true
            }
            guard member == .from || MessageType.isValid(utf8: text) else { return false }
            let string = String(decoding: text, as: UTF8.self)
            if member == .type { found.type = string } else { found.from = string }
        case .id, .re, .fds:
            // At most 16 digits, no sign (the full path reads every other number): ids go to 2^53 - 1.
            guard let number = plainInteger(maxDigits: 16, signed: false) else { return false }
            if member == .id { found.id = number } else if member == .re { found.re = number } else { found.fds = number }
        case .more:
            guard take(word: "true") else { return false }
        case .body:
            guard index < count, base[index] == UInt8(ascii: "{") else { return false }
            let start = index
            // Only a type or re read before the body can vouch for it; libprivsep and the Swift
            // client write them first.
            if found.type != nil || found.re != nil, let check = bodyCheck(found.type, found.re),
               let checked = check(frame, start, limits)
            {
                found.bodySpan = start ..< checked.end
                found.bodyNodes = checked.nodes
                found.bodyChecked = true
                index = checked.end
                return true
            }
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

/// Whether two byte runs are equal: a byte loop (`elementsEqual` took about 170 instructions for
/// a four-byte key).
private func sameBytes(_ first: UnsafeBufferPointer<UInt8>, _ second: UnsafeBufferPointer<UInt8>) -> Bool {
    guard first.count == second.count else { return false }
    for offset in 0 ..< first.count where first[offset] != second[offset] { return false }
    return true
}
