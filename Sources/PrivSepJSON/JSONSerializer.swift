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
    output.appendJSON(maxLength: JSONWriter.maxIntegerLength) { $0.write(integer: value) }
}

/// Writes `value` in decimal at `target` (at most `JSONWriter.maxIntegerLength` bytes); returns
/// the byte after it.
private func writeDecimal(_ value: Int64, at target: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8> {
    var target = target
    if value < 0 {
        target[0] = UInt8(ascii: "-")
        target += 1
    }
    var magnitude = value.magnitude
    var digits = 1
    var power: UInt64 = 10
    while digits < 20 && magnitude >= power {
        digits += 1
        power = power &* 10
    }
    var position = digits
    repeat {
        position -= 1
        target[position] = UInt8(ascii: "0") + UInt8(magnitude % 10)
        magnitude /= 10
    } while position > 0
    return target + digits
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
    withUTF8(of: string) { appendEscaped($0, to: &output) }
    output.append(UInt8(ascii: "\""))
}

/// Calls `body` with `string`'s UTF-8. Native strings are contiguous UTF-8, read in place: a
/// mutating `withUTF8` on a copy took about 8 ns a call here, against about 1 ns, and a reply or
/// log line has a dozen strings.
@inline(__always)
private func withUTF8(of string: String, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
    if string.utf8.withContiguousStorageIfAvailable(body) == nil {
        var contiguous = string
        contiguous.withUTF8(body)
    }
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
        // `length` bytes were just appended: the writes stay inside them.
        guard let base = buffer.baseAddress else { return }
        _ = writeEscaped(source, count, from: first, at: base + start)
    }
}

/// Writes the `count` bytes at `source` escaped at `target`, the first escape at `first`;
/// returns the byte after them. The caller has made room for the escaped length.
private func writeEscaped(_ source: UnsafePointer<UInt8>, _ count: Int, from first: Int?,
                          at target: UnsafeMutablePointer<UInt8>) -> UnsafeMutablePointer<UInt8>
{
    var target = target
    var runStart = 0
    var next = first
    while let flagged = next {
        target.update(from: source + runStart, count: flagged - runStart)
        target += flagged - runStart
        target = writeEscape(source[flagged], at: target)
        runStart = flagged + 1
        next = nextEscape(source, count, from: runStart)
    }
    target.update(from: source + runStart, count: count - runStart)
    return target + (count - runStart)
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

/// Writes compact JSON into room made beforehand by `[UInt8].appendJSON(maxLength:_:)`: a
/// message written in many small pieces (an envelope's members) is appended to its output once,
/// not a piece at a time. Each write traps if it would pass the room made: the caller's bound is
/// wrong, and writing on would corrupt memory.
public struct JSONWriter {
    /// Where the next byte goes.
    @usableFromInline var cursor: UnsafeMutablePointer<UInt8>
    @usableFromInline let end: UnsafeMutablePointer<UInt8>

    @usableFromInline
    init(cursor: UnsafeMutablePointer<UInt8>, end: UnsafeMutablePointer<UInt8>) {
        self.cursor = cursor
        self.end = end
    }

    /// The most bytes `write(integer:)` writes.
    public static let maxIntegerLength = 20

    /// The most bytes `write(string:)` writes for `string`: quotes, and every byte escaped as
    /// `\u00XX`.
    public static func maxLength(string: String) -> Int { 2 + 6 * string.utf8.count }

    @inlinable @inline(__always)
    mutating func advance(by count: Int) -> UnsafeMutablePointer<UInt8> {
        precondition(end - cursor >= count, "JSONWriter: write past the room made for it")
        defer { cursor += count }
        return cursor
    }

    /// Writes `text` as it is: JSON the caller spelled out (`{"name":`).
    @inlinable @inline(__always)
    public mutating func write(_ text: StaticString) {
        advance(by: text.utf8CodeUnitCount).update(from: text.utf8Start, count: text.utf8CodeUnitCount)
    }

    /// Writes `bytes` as they are: JSON already serialized, or read strictly.
    @inlinable
    public mutating func write(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress else { return }
        advance(by: bytes.count).update(from: source, count: bytes.count)
    }

    /// Writes `integer` in decimal, as `JSONValue.number(JSONNumber(integer))` is serialized.
    public mutating func write(integer: Int64) {
        precondition(end - cursor >= JSONWriter.maxIntegerLength, "JSONWriter: write past the room made for it")
        cursor = writeDecimal(integer, at: cursor)
    }

    /// Writes `string` quoted and escaped, as `JSONValue.string(string)` is serialized.
    public mutating func write(string: String) {
        withUTF8(of: string) { write(quoting: $0) }
    }

    private mutating func write(quoting utf8: UnsafeBufferPointer<UInt8>) {
        let count = utf8.count
        precondition(end - cursor >= 2 + 6 * count, "JSONWriter: write past the room made for it")
        cursor.pointee = UInt8(ascii: "\"")
        cursor += 1
        if let source = utf8.baseAddress {
            cursor = writeEscaped(source, count, from: nextEscape(source, count, from: 0), at: cursor)
        }
        cursor.pointee = UInt8(ascii: "\"")
        cursor += 1
    }
}

extension [UInt8] {
    /// Appends what `body` writes, at most `maxLength` bytes: written into temporary room (on
    /// the stack while it is small, as the runs of an envelope's members are), then appended in
    /// one copy.
    @inlinable
    public mutating func appendJSON(maxLength: Int, _ body: (inout JSONWriter) -> Void) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: maxLength) { room in
            guard let base = room.baseAddress else { return }
            var writer = JSONWriter(cursor: base, end: base + maxLength)
            body(&writer)
            append(contentsOf: UnsafeBufferPointer(start: base, count: writer.cursor - base))
        }
    }
}
