// `format` assertions for the formats privsep can check exactly, each by its RFC's grammar.
//
// Every checker works on the UTF-8 bytes and accepts ASCII only where the grammar is ASCII, so a
// Bengali digit is never a digit and a trailing newline is never ignored.

/// A format the validator can assert.
enum StringFormat: String, Sendable, CaseIterable {
    case dateTime = "date-time", date, time, duration, uuid, ipv4, ipv6, hostname, email, uri
    case uriReference = "uri-reference", jsonPointer = "json-pointer", relativeJSONPointer = "relative-json-pointer", regex

    func accepts(_ string: String) -> Bool {
        let bytes = Array(string.utf8)
        switch self {
        case .dateTime: return Formats.dateTime(bytes[...])
        case .date: return Formats.date(bytes[...])
        case .time: return Formats.time(bytes[...])
        case .duration: return Formats.duration(bytes)
        case .uuid: return Formats.uuid(bytes)
        case .ipv4: return Formats.ipv4(bytes[...])
        case .ipv6: return Formats.ipv6(bytes[...])
        case .hostname: return Formats.hostname(bytes[...])
        case .email: return Formats.email(bytes)
        case .uri: return Formats.uri(bytes, requireScheme: true)
        case .uriReference: return Formats.uri(bytes, requireScheme: false)
        case .jsonPointer: return Formats.jsonPointer(bytes[...])
        case .relativeJSONPointer: return Formats.relativeJSONPointer(bytes)
        case .regex: return (try? ECMARegex(string)) != nil
        }
    }
}

enum Formats {
    typealias Bytes = ArraySlice<UInt8>

    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    static func isHex(_ b: UInt8) -> Bool { isDigit(b) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x66) }
    static func isAlpha(_ b: UInt8) -> Bool { (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A }

    /// The value of exactly `count` ASCII digits at the start of `bytes`.
    static func digits(_ bytes: Bytes, _ count: Int) -> Int? {
        guard bytes.count >= count else { return nil }
        var value = 0
        for b in bytes.prefix(count) {
            guard isDigit(b) else { return nil }
            value = value * 10 + Int(b - 0x30)
        }
        return value
    }

    // MARK: RFC 3339 dates and times

    static func date(_ s: Bytes) -> Bool {
        guard s.count == 10, let year = digits(s, 4), s[s.startIndex + 4] == 0x2D,
              let month = digits(s.dropFirst(5), 2), s[s.startIndex + 7] == 0x2D,
              let day = digits(s.dropFirst(8), 2), (1...12).contains(month), day >= 1
        else { return false }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        return day <= days[month - 1]
    }

    static func time(_ s: Bytes) -> Bool {
        guard s.count >= 9, let hour = digits(s, 2), s[s.startIndex + 2] == 0x3A,
              let minute = digits(s.dropFirst(3), 2), s[s.startIndex + 5] == 0x3A,
              let second = digits(s.dropFirst(6), 2), hour <= 23, minute <= 59, second <= 60
        else { return false }
        var rest = s.dropFirst(8)
        if rest.first == 0x2E {
            rest = rest.dropFirst()
            let fraction = rest.prefix(while: isDigit)
            guard !fraction.isEmpty else { return false }
            rest = rest.dropFirst(fraction.count)
        }
        var offsetMinutes = 0
        if rest.count == 1 && (rest.first! | 0x20) == 0x7A {
            offsetMinutes = 0
        } else {
            guard rest.count == 6, rest.first == 0x2B || rest.first == 0x2D,
                  let offsetHour = digits(rest.dropFirst(), 2), rest[rest.startIndex + 3] == 0x3A,
                  let offsetMinute = digits(rest.dropFirst(4), 2), offsetHour <= 23, offsetMinute <= 59
            else { return false }
            offsetMinutes = (offsetHour * 60 + offsetMinute) * (rest.first == 0x2B ? 1 : -1)
        }
        if second == 60 {
            // A leap second exists only at 23:59:60 UTC.
            let utc = ((hour * 60 + minute - offsetMinutes) % 1440 + 1440) % 1440
            return utc == 23 * 60 + 59
        }
        return true
    }

    static func dateTime(_ s: Bytes) -> Bool {
        guard s.count > 11, (s[s.startIndex + 10] | 0x20) == 0x74 else { return false }
        return date(s.prefix(10)) && time(s.dropFirst(11))
    }

    /// RFC 3339 appendix A: P then date units Y M D (a contiguous run), optional T with H M S (a
    /// contiguous run, at least one), or weeks alone.
    static func duration(_ s: [UInt8]) -> Bool {
        guard s.first == 0x50, s.count > 1 else { return false }
        var i = 1
        var units: [UInt8] = []
        var timeUnits: [UInt8] = []
        var inTime = false
        while i < s.count {
            if s[i] == 0x54 {
                guard !inTime else { return false }
                inTime = true
                i += 1
                guard i < s.count else { return false }
                continue
            }
            let start = i
            while i < s.count && isDigit(s[i]) { i += 1 }
            guard i > start, i < s.count else { return false }
            if inTime { timeUnits.append(s[i]) } else { units.append(s[i]) }
            i += 1
        }
        func contiguous(_ found: [UInt8], in order: [UInt8]) -> Bool {
            guard let first = found.first, let start = order.firstIndex(of: first), start + found.count <= order.count else { return false }
            return Array(order[start..<(start + found.count)]) == found
        }
        if units == [0x57] { return timeUnits.isEmpty && !inTime }
        if !units.isEmpty && !contiguous(units, in: [0x59, 0x4D, 0x44]) { return false }
        if inTime && !contiguous(timeUnits, in: [0x48, 0x4D, 0x53]) { return false }
        return !units.isEmpty || !timeUnits.isEmpty
    }

    static func uuid(_ s: [UInt8]) -> Bool {
        guard s.count == 36 else { return false }
        for (i, b) in s.enumerated() {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard b == 0x2D else { return false }
            } else if !isHex(b) {
                return false
            }
        }
        return true
    }

    // MARK: Addresses and names

    static func ipv4(_ s: Bytes) -> Bool {
        let parts = s.split(separator: 0x2E, omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(isDigit) else { return false }
            if part.count > 1 && part.first == 0x30 { return false }
            guard let value = digits(part, part.count), value <= 255 else { return false }
        }
        return true
    }

    static func ipv6(_ s: Bytes) -> Bool {
        guard s.count >= 2, s.count <= 45 else { return false }
        var groups = 0
        var compressed = false
        var rest = s
        if rest.starts(with: [0x3A, 0x3A]) {
            compressed = true
            rest = rest.dropFirst(2)
            if rest.isEmpty { return true }
        } else if rest.first == 0x3A {
            return false
        }
        while !rest.isEmpty {
            let piece = rest.prefix(while: { $0 != 0x3A })
            rest = rest.dropFirst(piece.count)
            if piece.contains(0x2E) {
                // An embedded IPv4 address ends the address and counts as two groups.
                guard rest.isEmpty, ipv4(piece) else { return false }
                groups += 2
                break
            }
            guard (1...4).contains(piece.count), piece.allSatisfy(isHex) else { return false }
            groups += 1
            if rest.starts(with: [0x3A, 0x3A]) {
                guard !compressed else { return false }
                compressed = true
                rest = rest.dropFirst(2)
            } else if rest.first == 0x3A {
                rest = rest.dropFirst()
                if rest.isEmpty { return false }
            }
        }
        return compressed ? groups <= 7 : groups == 8
    }

    /// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, 1-63 bytes
    /// each, 253 in all.
    static func hostname(_ s: Bytes) -> Bool {
        guard !s.isEmpty, s.count <= 253 else { return false }
        for label in s.split(separator: 0x2E, omittingEmptySubsequences: false) {
            guard (1...63).contains(label.count), label.first != 0x2D, label.last != 0x2D else { return false }
            guard label.allSatisfy({ isAlpha($0) || isDigit($0) || $0 == 0x2D }) else { return false }
            // "xn--" A-labels are punycode; any other label with "--" in positions 3-4 is reserved.
            if label.count >= 4, label[label.startIndex + 2] == 0x2D, label[label.startIndex + 3] == 0x2D {
                let prefix = label.prefix(2).map { $0 | 0x20 }
                guard prefix == [0x78, 0x6E], let decoded = IDNA.punycodeDecode(label.dropFirst(4)),
                      IDNA.isValidULabel(decoded) else { return false }
            }
        }
        return true
    }

    /// RFC 5321 Mailbox: dot-string or quoted-string, then a host name or an address literal.
    static func email(_ s: [UInt8]) -> Bool {
        guard let at = s.lastIndex(of: 0x40), at > 0, at < s.count - 1 else { return false }
        let local = s[..<at]
        let domain = s[(at + 1)...]
        if local.first == 0x22 {
            guard local.count >= 2, local.last == 0x22 else { return false }
            var i = local.startIndex + 1
            while i < local.endIndex - 1 {
                let b = local[i]
                if b == 0x5C {
                    i += 1
                    guard i < local.endIndex - 1, local[i] >= 0x20, local[i] <= 0x7E else { return false }
                } else if b < 0x20 || b > 0x7E || b == 0x22 {
                    return false
                }
                i += 1
            }
        } else {
            let atext: (UInt8) -> Bool = { b in
                isAlpha(b) || isDigit(b) || "!#$%&'*+-/=?^_`{|}~".utf8.contains(b)
            }
            for atom in local.split(separator: 0x2E, omittingEmptySubsequences: false) {
                guard !atom.isEmpty, atom.allSatisfy(atext) else { return false }
            }
        }
        if domain.first == 0x5B {
            guard domain.last == 0x5D else { return false }
            let literal = domain.dropFirst().dropLast()
            if literal.starts(with: Array("IPv6:".utf8)) { return ipv6(literal.dropFirst(5)) }
            return ipv4(literal)
        }
        return hostname(domain)
    }

    // MARK: RFC 3986

    static func isUnreserved(_ b: UInt8) -> Bool { isAlpha(b) || isDigit(b) || b == 0x2D || b == 0x2E || b == 0x5F || b == 0x7E }
    static func isSubDelim(_ b: UInt8) -> Bool { "!$&'()*+,;=".utf8.contains(b) }

    /// Whether every byte is allowed by `allowed` or is part of a valid %XX escape.
    static func chars(_ s: Bytes, _ allowed: (UInt8) -> Bool) -> Bool {
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == 0x25 {
                guard i + 2 < s.endIndex, isHex(s[i + 1]), isHex(s[i + 2]) else { return false }
                i += 3
            } else {
                guard allowed(s[i]) else { return false }
                i += 1
            }
        }
        return true
    }

    static func isPchar(_ b: UInt8) -> Bool { isUnreserved(b) || isSubDelim(b) || b == 0x3A || b == 0x40 }

    static func uri(_ s: [UInt8], requireScheme: Bool) -> Bool {
        var rest = s[...]
        if let hash = rest.firstIndex(of: 0x23) {
            guard chars(rest[(hash + 1)...], { isPchar($0) || $0 == 0x2F || $0 == 0x3F }) else { return false }
            rest = rest[..<hash]
        }
        if let mark = rest.firstIndex(of: 0x3F) {
            guard chars(rest[(mark + 1)...], { isPchar($0) || $0 == 0x2F || $0 == 0x3F }) else { return false }
            rest = rest[..<mark]
        }
        var hasScheme = false
        if let colon = rest.firstIndex(of: 0x3A), !rest[..<colon].contains(0x2F) {
            let scheme = rest[..<colon]
            guard let first = scheme.first, isAlpha(first),
                  scheme.allSatisfy({ isAlpha($0) || isDigit($0) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E })
            else { return false }
            hasScheme = true
            rest = rest[(colon + 1)...]
        }
        if requireScheme && !hasScheme { return false }
        if rest.starts(with: [0x2F, 0x2F]) {
            rest = rest.dropFirst(2)
            let end = rest.firstIndex(of: 0x2F) ?? rest.endIndex
            guard authority(rest[..<end]) else { return false }
            rest = rest[end...]
        }
        return chars(rest, { isPchar($0) || $0 == 0x2F })
    }

    static func authority(_ s: Bytes) -> Bool {
        var host = s
        if let at = s.lastIndex(of: 0x40) {
            guard chars(s[..<at], { isUnreserved($0) || isSubDelim($0) || $0 == 0x3A }) else { return false }
            host = s[(at + 1)...]
        }
        if host.first == 0x5B {
            guard let close = host.firstIndex(of: 0x5D) else { return false }
            let literal = host[(host.startIndex + 1)..<close]
            let afterLiteral = host[(close + 1)...]
            let validLiteral = ipv6(literal) || (literal.first.map { $0 | 0x20 } == 0x76 && literal.count > 3)
            guard validLiteral else { return false }
            if afterLiteral.isEmpty { return true }
            return afterLiteral.first == 0x3A && afterLiteral.dropFirst().allSatisfy(isDigit)
        }
        if let colon = host.lastIndex(of: 0x3A) {
            guard host[(colon + 1)...].allSatisfy(isDigit) else { return false }
            host = host[..<colon]
        }
        return chars(host, { isUnreserved($0) || isSubDelim($0) })
    }

    // MARK: JSON pointers

    static func jsonPointer(_ s: Bytes) -> Bool {
        if s.isEmpty { return true }
        guard s.first == 0x2F else { return false }
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == 0x7E {
                guard i + 1 < s.endIndex, s[i + 1] == 0x30 || s[i + 1] == 0x31 else { return false }
                i += 2
            } else {
                i += 1
            }
        }
        return true
    }

    static func relativeJSONPointer(_ s: [UInt8]) -> Bool {
        let number = s.prefix(while: isDigit)
        guard !number.isEmpty, number.count == 1 || number.first != 0x30 else { return false }
        let rest = s[number.count...]
        if rest == [0x23] { return true }
        return jsonPointer(rest)
    }
}

/// Just enough IDNA2008 (RFC 5890-5892) to check A-labels in host names: Punycode decoding
/// (RFC 3492), then the U-label rules: no "--" in positions 3-4, no leading combining mark, the
/// DISALLOWED exceptions, and the contextual rules for the CONTEXTJ/CONTEXTO code points.
enum IDNA {
    static func punycodeDecode(_ input: ArraySlice<UInt8>) -> [UInt32]? {
        let base = 36, tmin = 1, tmax = 26, skew = 38, damp = 700
        guard !input.isEmpty, input.allSatisfy({ $0 < 0x80 }) else { return nil }
        var output: [UInt32] = []
        var index = input.startIndex
        if let dash = input.lastIndex(of: 0x2D) {
            output = input[..<dash].map { UInt32($0) }
            index = dash + 1
        }
        func adapt(_ delta: Int, _ points: Int, _ first: Bool) -> Int {
            var delta = first ? delta / damp : delta / 2
            delta += delta / points
            var k = 0
            while delta > ((base - tmin) * tmax) / 2 {
                delta /= base - tmin
                k += base
            }
            return k + (base - tmin + 1) * delta / (delta + skew)
        }
        var n = 128, i = 0, bias = 72
        while index < input.endIndex {
            let oldI = i
            var w = 1
            var k = base
            while true {
                guard index < input.endIndex, output.count < 256 else { return nil }
                let c = input[index]
                index += 1
                let digit: Int
                switch c {
                case 0x61...0x7A: digit = Int(c - 0x61)
                case 0x41...0x5A: digit = Int(c - 0x41)
                case 0x30...0x39: digit = Int(c - 0x30) + 26
                default: return nil
                }
                let (product, o1) = digit.multipliedReportingOverflow(by: w)
                let (sum, o2) = i.addingReportingOverflow(product)
                guard !o1, !o2, sum < 0x11_0000 * 512 else { return nil }
                i = sum
                let t = k <= bias ? tmin : (k >= bias + tmax ? tmax : k - bias)
                if digit < t { break }
                let (next, o3) = w.multipliedReportingOverflow(by: base - t)
                guard !o3 else { return nil }
                w = next
                k += base
            }
            bias = adapt(i - oldI, output.count + 1, oldI == 0)
            n += i / (output.count + 1)
            i %= output.count + 1
            guard n >= 0x80, n <= 0x10FFFF, !(0xD800...0xDFFF).contains(n) else { return nil }
            output.insert(UInt32(n), at: i)
            i += 1
        }
        return output
    }

    static let disallowedExceptions: Set<UInt32> = [0x0640, 0x07FA, 0x302E, 0x302F, 0x3031, 0x3032, 0x3033, 0x3034, 0x3035, 0x303B]
    static let pvalidExceptions: Set<UInt32> = [0x00DF, 0x03C2, 0x06FD, 0x06FE, 0x0F0B, 0x3007]

    static func category(_ c: UInt32) -> Unicode.GeneralCategory? { Unicode.Scalar(c)?.properties.generalCategory }

    static func isGreek(_ c: UInt32) -> Bool { (0x0370...0x03FF).contains(c) || (0x1F00...0x1FFF).contains(c) }
    static func isHebrew(_ c: UInt32) -> Bool { (0x0590...0x05FF).contains(c) || (0xFB1D...0xFB4F).contains(c) }
    static func isHiraganaKatakanaHan(_ c: UInt32) -> Bool {
        guard c != 0x30FB else { return false }
        return (0x3040...0x30FF).contains(c) || (0x31F0...0x31FF).contains(c) || (0xFF66...0xFF9F).contains(c)
            || (0x3400...0x4DBF).contains(c) || (0x4E00...0x9FFF).contains(c) || (0xF900...0xFAFF).contains(c)
            || (0x20000...0x2FA1F).contains(c) || c == 0x3005 || c == 0x3007 || (0x3021...0x3029).contains(c)
            || (0x3038...0x303B).contains(c)
    }
    static func isVirama(_ c: UInt32) -> Bool { Unicode.Scalar(c)?.properties.canonicalCombiningClass == .virama }
    /// Arabic-script joining letters (dual or left/right joining), for the ZWNJ rule.
    static func isJoiningLetter(_ c: UInt32) -> Bool {
        ((0x0620...0x064A).contains(c) || (0x066E...0x06D3).contains(c) || (0x0750...0x077F).contains(c)) && c != 0x0640
    }

    static func isValidULabel(_ label: [UInt32]) -> Bool {
        guard !label.isEmpty, label.count <= 63 else { return false }
        if label.count >= 4 && label[2] == 0x2D && label[3] == 0x2D { return false }
        if let first = category(label[0]), [.nonspacingMark, .spacingMark, .enclosingMark].contains(first) { return false }
        if label.first == 0x2D || label.last == 0x2D { return false }
        let hasArabicIndic = label.contains { (0x0660...0x0669).contains($0) }
        let hasExtendedArabicIndic = label.contains { (0x06F0...0x06F9).contains($0) }
        if hasArabicIndic && hasExtendedArabicIndic { return false }
        for (i, c) in label.enumerated() {
            let before: UInt32? = i > 0 ? label[i - 1] : nil
            let after: UInt32? = i + 1 < label.count ? label[i + 1] : nil
            if disallowedExceptions.contains(c) { return false }
            if pvalidExceptions.contains(c) { continue }
            switch c {
            case 0x00B7: if before != 0x6C || after != 0x6C { return false }
            case 0x0375: if !(after.map(isGreek) ?? false) { return false }
            case 0x05F3, 0x05F4: if !(before.map(isHebrew) ?? false) { return false }
            case 0x30FB: if !label.contains(where: isHiraganaKatakanaHan) { return false }
            case 0x200D: if !(before.map(isVirama) ?? false) { return false }
            case 0x200C:
                if before.map(isVirama) ?? false { continue }
                let joinsBefore = label[..<i].reversed().first { category($0) != .nonspacingMark }.map(isJoiningLetter) ?? false
                let joinsAfter = label[(i + 1)...].first { category($0) != .nonspacingMark }.map(isJoiningLetter) ?? false
                if !(joinsBefore && joinsAfter) { return false }
            case 0x2D, 0x30...0x39, 0x61...0x7A, 0x41...0x5A:
                continue
            default:
                guard let scalar = Unicode.Scalar(c) else { return false }
                switch scalar.properties.generalCategory {
                case .lowercaseLetter, .otherLetter, .modifierLetter, .nonspacingMark, .spacingMark, .decimalNumber:
                    if scalar.properties.changesWhenNFKCCaseFolded { return false }
                default:
                    return false
                }
            }
        }
        return true
    }
}
