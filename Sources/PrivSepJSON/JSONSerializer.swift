// The compact serializer.
//
// One output for one value: no whitespace, members in their stored order, integers in plain
// decimal, other numbers as their original lexeme, strings escaped as RFC 8259 requires and no
// more (`"`, `\` and controls below U+0020, using the short forms where they exist; `/` and
// non-ASCII are written as they are). Parsing the output gives an equal value, and serializing
// that again gives the same bytes.
//
// The writer recurses once per nesting level; values from the parser are bounded by
// `JSONLimits.maxDepth`.

extension JSONValue {
    /// The compact, deterministic UTF-8 serialization of this value.
    public func serialized() -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(128)
        serialize(into: &output)
        return output
    }

    /// Appends the compact serialization of this value to `output`.
    public func serialize(into output: inout [UInt8]) {
        switch self {
        case .null: appendASCII("null", to: &output)
        case .bool(let value): appendASCII(value ? "true" : "false", to: &output)
        case .number(let number): number.serialize(into: &output)
        case .string(let string): serializeString(string, into: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                element.serialize(into: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let object):
            output.append(UInt8(ascii: "{"))
            for (position, member) in object.members.enumerated() {
                if position > 0 { output.append(UInt8(ascii: ",")) }
                serializeString(member.key, into: &output)
                output.append(UInt8(ascii: ":"))
                member.value.serialize(into: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }

    /// Appends `string` as a JSON string, exactly as `JSONValue.string(string)` would be:
    /// for writers that build JSON text around values they hold as Swift strings.
    public static func serialize(string: String, into output: inout [UInt8]) {
        serializeString(string, into: &output)
    }

    /// Appends `integer` in decimal, exactly as `JSONValue.number(JSONNumber(integer))` would be.
    public static func serialize(integer: Int64, into output: inout [UInt8]) {
        appendDecimal(integer, to: &output)
    }

    /// The compact serialization as a String.
    public var jsonText: String { String(decoding: serialized(), as: UTF8.self) }
}

extension JSONNumber {
    /// Appends the number: an integer in decimal, anything else as its lexeme.
    func serialize(into output: inout [UInt8]) {
        switch storage {
        case .integer(let value): appendDecimal(value, to: &output)
        case .decimal(let lexeme, _): output.append(contentsOf: lexeme.utf8)
        }
    }
}

@inline(__always)
private func appendASCII(_ text: StaticString, to output: inout [UInt8]) {
    output.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
}

/// Appends `value` in decimal without going through String.
private func appendDecimal(_ value: Int64, to output: inout [UInt8]) {
    if value >= 0, value < 10 {
        output.append(UInt8(ascii: "0") + UInt8(value))
        return
    }
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
        var magnitude = value.magnitude
        var position = 20
        while magnitude > 0 {
            position -= 1
            digits[position] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
        }
        if value < 0 { output.append(UInt8(ascii: "-")) }
        output.append(contentsOf: UnsafeBufferPointer(rebasing: digits[position..<20]))
    }
}

private let hexDigits: StaticString = "0123456789abcdef"

/// Flags (bit 7 of each byte) the bytes of `word` that must be escaped: quotes, backslashes and
/// control characters. As in the parser's scanner, only the lowest flag is exact, and only it is used.
@inline(__always)
private func escapeMask(_ word: UInt64) -> UInt64 {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let quotes = word ^ (ones &* UInt64(UInt8(ascii: "\"")))
    let backslashes = word ^ (ones &* UInt64(UInt8(ascii: "\\")))
    let hasQuote = (quotes &- ones) & ~quotes
    let hasBackslash = (backslashes &- ones) & ~backslashes
    let hasControl = (word &- ones &* 0x20) & ~word
    return (hasQuote | hasBackslash | hasControl) & 0x8080_8080_8080_8080
}

/// The offset of the first byte at or after `start` that must be escaped, or nil; eight bytes
/// at a time while they last.
@inline(__always)
private func nextEscape(_ source: UnsafePointer<UInt8>, _ count: Int, from start: Int) -> Int? {
    var cursor = start
    while cursor &+ 8 <= count {
        let mask = escapeMask(UnsafeRawPointer(source + cursor).loadUnaligned(as: UInt64.self))
        if mask != 0 { return cursor &+ mask.trailingZeroBitCount &>> 3 }
        cursor &+= 8
    }
    while cursor < count {
        let byte = source[cursor]
        if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return cursor }
        cursor &+= 1
    }
    return nil
}

/// Appends `string` quoted, escaping only what RFC 8259 requires; runs that need no escape are
/// copied whole.
private func serializeString(_ string: String, into output: inout [UInt8]) {
    output.append(UInt8(ascii: "\""))
    // Native strings are contiguous UTF-8: read in place. A mutating `withUTF8` on a copy took
    // about 8 ns a call here, against about 1 ns, and a reply or log line has a dozen strings.
    if string.utf8.withContiguousStorageIfAvailable({ appendEscaped($0, to: &output) }) == nil {
        var contiguous = string
        contiguous.withUTF8 { appendEscaped($0, to: &output) }
    }
    output.append(UInt8(ascii: "\""))
}

/// Appends `utf8` with every byte RFC 8259 requires escaped. A string with escapes (a JSON
/// text quoted in a log line has one per quote) is measured first and written in one go: one
/// growth of `output` instead of an append per run and per escape.
private func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>, to output: inout [UInt8]) {
    guard let source = utf8.baseAddress else { return }
    let count = utf8.count
    guard let first = nextEscape(source, count, from: 0) else {
        output.append(contentsOf: utf8)
        return
    }
    var length = count
    var scan: Int? = first
    while let flagged = scan {
        length += escapeLength(source[flagged]) - 1
        scan = nextEscape(source, count, from: flagged + 1)
    }
    let start = output.count
    output.append(contentsOf: repeatElement(0, count: length))
    output.withUnsafeMutableBufferPointer { buffer in
        // `length` bytes were just appended: the writes below stay inside them.
        guard let base = buffer.baseAddress else { return }
        var target = base + start
        var runStart = 0
        var next: Int? = first
        while let flagged = next {
            target.update(from: source + runStart, count: flagged - runStart)
            target += flagged - runStart
            target = writeEscape(source[flagged], at: target)
            runStart = flagged + 1
            next = nextEscape(source, count, from: runStart)
        }
        target.update(from: source + runStart, count: count - runStart)
    }
}

/// The bytes of `byte`'s escape: 2 for the short forms RFC 8259 has, 6 for `\u00XX`.
@inline(__always)
private func escapeLength(_ byte: UInt8) -> Int {
    switch byte {
    case UInt8(ascii: "\""), UInt8(ascii: "\\"), 0x08, 0x09, 0x0A, 0x0C, 0x0D: return 2
    default: return 6
    }
}

/// Writes the escape for `byte` at `target` (`escapeLength(byte)` bytes); returns the byte after it.
private func writeEscape(_ byte: UInt8, at target: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
    target[0] = UInt8(ascii: "\\")
    switch byte {
    case UInt8(ascii: "\""), UInt8(ascii: "\\"): target[1] = byte
    case 0x08: target[1] = UInt8(ascii: "b")
    case 0x09: target[1] = UInt8(ascii: "t")
    case 0x0A: target[1] = UInt8(ascii: "n")
    case 0x0C: target[1] = UInt8(ascii: "f")
    case 0x0D: target[1] = UInt8(ascii: "r")
    default:
        let hex = hexDigits.utf8Start
        target[1] = UInt8(ascii: "u")
        target[2] = UInt8(ascii: "0")
        target[3] = UInt8(ascii: "0")
        target[4] = hex[Int(byte >> 4)]
        target[5] = hex[Int(byte & 0xF)]
        return target + 6
    }
    return target + 2
}
