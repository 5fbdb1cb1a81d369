// A cursor for the fast paths that read plain JSON straight from its bytes: the envelope
// scanner (PrivSepWire) and the schema's check of a flat body (PrivSepSchema).
//
// "Plain" is the subset those paths take on themselves: strings of printable ASCII without
// escapes, integers without fraction or exponent, the three literals. Each reader returns nil
// (or false) at the first byte outside that subset, and its caller then leaves the whole input to
// the parser, which accepts or refuses it and words the error. So the reader only has to be
// right about what it accepts: every string, integer and literal it reads, the parser reads as
// the same value.
//
// The reader is public rather than package only so that its steps inline: Swift 6.3 does not
// inline a package @inlinable function into another module, and calls cost the scanner and the
// body check about 360 instructions a ping (docs/performance.md, fifteenth round).

/// A cursor over UTF-8 bytes, for reading plain JSON without building values.
public struct PlainReader {
    /// The bytes read, `count` of them.
    public let base: UnsafePointer<UInt8>
    public let count: Int
    /// The offset of the next byte to read.
    public var index: Int

    @inlinable
    public init(base: UnsafePointer<UInt8>, count: Int, index: Int = 0) {
        self.base = base
        self.count = count
        self.index = index
    }

    /// Steps over JSON whitespace (space, tab, line feed, carriage return).
    @inlinable
    public mutating func skipWhitespace() {
        while index < count {
            switch base[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    /// Steps over `byte` if it is next.
    @inlinable
    public mutating func take(_ byte: UInt8) -> Bool {
        guard index < count, base[index] == byte else { return false }
        index += 1
        return true
    }

    /// Steps over `word` (a literal: `true`, `false`, `null`) if it is next and nothing that
    /// would continue it follows.
    @inlinable
    public mutating func take(word: StaticString) -> Bool {
        let length = word.utf8CodeUnitCount
        guard count - index >= length,
              UnsafeBufferPointer(start: base + index, count: length)
                  .elementsEqual(UnsafeBufferPointer(start: word.utf8Start, count: length))
        else { return false }
        let end = index + length
        // "truex" or "null1" is not the literal: the parser refuses it.
        if end < count, PlainReader.isWordByte(base[end]) { return false }
        index = end
        return true
    }

    /// The bytes of a string of printable ASCII without escapes, the quotes stepped over.
    @inlinable
    public mutating func plainString() -> UnsafeBufferPointer<UInt8>? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = index
        var cursor = index
        while true {
            // Eight bytes at a time to the first one that needs a look, as the parser does.
            if cursor &+ 8 <= count {
                let word = UnsafeRawPointer(base + cursor).loadUnaligned(as: UInt64.self)
                let mask = attentionMask(word) | byteMask(word, 0x7F)
                if mask == 0 {
                    cursor &+= 8
                    continue
                }
                cursor &+= mask.trailingZeroBitCount &>> 3
            }
            guard cursor < count else { return nil }
            let byte = base[cursor]
            if byte == UInt8(ascii: "\"") {
                index = cursor + 1
                return UnsafeBufferPointer(start: base + start, count: cursor - start)
            }
            guard byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "\\") else { return nil }
            cursor &+= 1
        }
    }

    /// An integer of at most `maxDigits` digits (at most 18, so it fits in an Int64), with a
    /// minus sign when `signed`, without fraction or exponent and without a leading zero.
    /// `-0` is left to the parser: the one integer whose sign the reader would have to keep.
    @inlinable
    public mutating func plainInteger(maxDigits: Int, signed: Bool) -> Int64? {
        let start = index
        let negative = signed && take(UInt8(ascii: "-"))
        let digitsStart = index
        var value: Int64 = 0
        while index < count, base[index] >= UInt8(ascii: "0"), base[index] <= UInt8(ascii: "9") {
            guard index - digitsStart < min(maxDigits, 18) else {
                index = start
                return nil
            }
            value = value * 10 + Int64(base[index] - UInt8(ascii: "0"))
            index += 1
        }
        let digits = index - digitsStart
        // No digit, a leading zero, -0, or a number that goes on (".5", "e3"): the parser's.
        guard digits > 0, base[digitsStart] != UInt8(ascii: "0") || (digits == 1 && !negative),
              index == count || !PlainReader.continuesNumber(base[index])
        else {
            index = start
            return nil
        }
        return negative ? -value : value
    }

    /// Whether `byte` would continue a number literal.
    @inlinable
    public static func continuesNumber(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E")
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }

    @inlinable
    static func isWordByte(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
    }
}

/// Flags (bit 7 of each byte) the bytes of `word` that a string scan must look at: quotes,
/// backslashes, control characters and non-ASCII. Flags above the first may be spurious (a
/// borrow can carry into the next byte), but the lowest flag is exact, and that is the one used.
@inlinable
func attentionMask(_ word: UInt64) -> UInt64 {
    byteMask(word, UInt8(ascii: "\"")) | byteMask(word, UInt8(ascii: "\\"))
        | (word &- 0x2020_2020_2020_2020) & ~word & 0x8080_8080_8080_8080 | word & 0x8080_8080_8080_8080
}

/// Flags the bytes of `word` equal to `byte`, exact up to the first (see `attentionMask`).
@inlinable
func byteMask(_ word: UInt64, _ byte: UInt8) -> UInt64 {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let differences = word ^ (ones &* UInt64(byte))
    return (differences &- ones) & ~differences & 0x8080_8080_8080_8080
}
