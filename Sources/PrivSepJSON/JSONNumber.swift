// A JSON number that keeps its exact value.
//
// Integers that fit are held as Int64, which is what protocol ids and counts are. Anything else
// keeps its decimal lexeme (so it serializes back unchanged) together with an exact canonical
// decimal (sign, significant digits, exponent) used for comparison and hashing, and a Double view
// for arithmetic that may round. `1`, `1.0` and `10e-1` are the same number.

/// An exact JSON number.
public struct JSONNumber: Sendable {
    @usableFromInline enum Storage: Sendable {
        case integer(Int64)
        // Boxed, so JSONValue stays two words and a tag: decimals are the rare case.
        indirect case decimal(lexeme: String, canonical: CanonicalDecimal)
    }

    @usableFromInline let storage: Storage

    /// Creates a number from an integer.
    @inlinable public init(_ value: Int64) { storage = .integer(value) }

    /// Creates a number from an integer.
    @inlinable public init(_ value: Int) { storage = .integer(Int64(value)) }

    /// Creates a number from a JSON number lexeme (RFC 8259 grammar), or nil if it is not one.
    ///
    /// A plain integer lexeme that fits in Int64 is stored as an integer; anything else keeps its
    /// lexeme so it serializes back as written (`2.0` stays `2.0`, yet `int64Value` is 2).
    public init?(lexeme: String) {
        guard let canonical = CanonicalDecimal(lexeme: Array(lexeme.utf8)) else { return nil }
        if let exact = canonical.int64Value, !lexeme.utf8.contains(where: { $0 == UInt8(ascii: ".") || $0 | 0x20 == UInt8(ascii: "e") }) {
            storage = .integer(exact)
        } else {
            storage = .decimal(lexeme: lexeme, canonical: canonical)
        }
    }

    /// For the parser: `lexeme` has already been checked against the RFC 8259 number grammar
    /// and is not a plain integer that fits in Int64, so neither is checked again.
    init(validatedLexeme lexeme: UnsafeRawBufferPointer) {
        storage = .decimal(
            lexeme: String(decoding: lexeme, as: UTF8.self),
            canonical: CanonicalDecimal(validatedLexeme: lexeme))
    }

    /// Creates a number from a finite Double, written in its shortest round-tripping form.
    /// Returns nil for NaN and infinities, which JSON cannot represent.
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        if abs(value) < 9.0e15, Double(Int64(value)) == value {
            self.init(Int64(value))
            return
        }
        self.init(lexeme: "\(value)")
    }

    /// The exact Int64 value if the number is integral and in range (`2`, `2.0`, `2e0`), else nil.
    public var int64Value: Int64? {
        switch storage {
        case .integer(let value): return value
        case .decimal(_, let canonical): return canonical.int64Value
        }
    }

    /// The value as a Double; may round, and is ±infinity for magnitudes beyond Double's range.
    public var doubleValue: Double {
        switch storage {
        case .integer(let value): return Double(value)
        case .decimal(let lexeme, _): return Double(lexeme) ?? .nan
        }
    }

    /// Whether the value is mathematically an integer (`1.0` is; `1.5` is not).
    public var isIntegral: Bool {
        switch storage {
        case .integer: return true
        case .decimal(_, let canonical): return canonical.exponent >= 0
        }
    }

    /// The exact canonical decimal form of the value.
    public var canonical: CanonicalDecimal {
        switch storage {
        case .integer(let value): return CanonicalDecimal(value)
        case .decimal(_, let canonical): return canonical
        }
    }

    /// The text this number serializes as: the integer in decimal, or the original lexeme.
    public var lexeme: String {
        switch storage {
        case .integer(let value): return String(value)
        case .decimal(let lexeme, _): return lexeme
        }
    }
}

extension JSONNumber: Equatable, Hashable, Comparable {
    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        if case .integer(let a) = lhs.storage, case .integer(let b) = rhs.storage { return a == b }
        return lhs.canonical == rhs.canonical
    }

    public func hash(into hasher: inout Hasher) {
        if let exact = int64Value { hasher.combine(exact) } else { hasher.combine(canonical) }
    }

    public static func < (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        if case .integer(let a) = lhs.storage, case .integer(let b) = rhs.storage { return a < b }
        return lhs.canonical < rhs.canonical
    }
}

extension JSONNumber: CustomStringConvertible {
    public var description: String { lexeme }
}

/// An exact decimal: `(-1)^negative × digits × 10^exponent`, with `digits` holding no leading or
/// trailing zeros (zero is the empty digit list, exponent 0, never negative).
///
/// Exponents saturate at ±`CanonicalDecimal.exponentLimit`; the parser's number-length limit keeps
/// real inputs far from it.
public struct CanonicalDecimal: Sendable, Hashable, Comparable {
    /// Whether the value is below zero.
    public let negative: Bool
    /// Significant digits, most significant first, each 0...9.
    public let digits: [UInt8]
    /// The power of ten the digits are scaled by.
    public let exponent: Int

    /// Exponents are clamped to this magnitude so arithmetic on them never overflows.
    public static let exponentLimit = 1 << 40

    /// Zero.
    public static let zero = CanonicalDecimal(negative: false, digits: [], exponent: 0)

    init(negative: Bool, digits: [UInt8], exponent: Int) {
        self.negative = negative
        self.digits = digits
        self.exponent = exponent
    }

    /// The canonical form of an integer.
    public init(_ value: Int64) {
        var magnitude = value.magnitude
        var reversed: [UInt8] = []
        while magnitude > 0 {
            reversed.append(UInt8(magnitude % 10))
            magnitude /= 10
        }
        self.init(significand: reversed.reversed(), exponent: 0, negative: value < 0)
    }

    /// Normalises raw digits: strips leading and trailing zeros, folding the latter into the exponent.
    public init(significand: [UInt8], exponent: Int, negative: Bool) {
        guard let first = significand.firstIndex(where: { $0 != 0 }),
            let last = significand.lastIndex(where: { $0 != 0 })
        else {
            self = .zero
            return
        }
        let trailing = significand.count - 1 - last
        let scaled = exponent.addingReportingOverflow(trailing)
        let limit = CanonicalDecimal.exponentLimit
        self.init(
            negative: negative,
            digits: Array(significand[first...last]),
            exponent: scaled.overflow ? limit : min(max(scaled.partialValue, -limit), limit))
    }

    /// Parses an RFC 8259 number lexeme; nil if the bytes are not exactly one.
    public init?(lexeme: [UInt8]) {
        var index = 0
        let count = lexeme.count
        func digit(at i: Int) -> UInt8? {
            guard i < count else { return nil }
            let byte = lexeme[i] &- UInt8(ascii: "0")
            return byte < 10 ? byte : nil
        }
        var negative = false
        if index < count, lexeme[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        var significand: [UInt8] = []
        guard let lead = digit(at: index) else { return nil }
        if lead == 0 {
            index += 1
        } else {
            while let d = digit(at: index) {
                significand.append(d)
                index += 1
            }
        }
        var exponent = 0
        if index < count, lexeme[index] == UInt8(ascii: ".") {
            index += 1
            guard digit(at: index) != nil else { return nil }
            while let d = digit(at: index) {
                significand.append(d)
                exponent -= 1
                index += 1
            }
        }
        if index < count, lexeme[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            var exponentNegative = false
            if index < count, lexeme[index] == UInt8(ascii: "+") || lexeme[index] == UInt8(ascii: "-") {
                exponentNegative = lexeme[index] == UInt8(ascii: "-")
                index += 1
            }
            guard digit(at: index) != nil else { return nil }
            var written = 0
            while let d = digit(at: index) {
                if written < CanonicalDecimal.exponentLimit { written = written * 10 + Int(d) }
                index += 1
            }
            written = min(written, CanonicalDecimal.exponentLimit)
            exponent += exponentNegative ? -written : written
        }
        guard index == count else { return nil }
        self.init(significand: significand, exponent: exponent, negative: negative && !significand.allSatisfy { $0 == 0 })
    }

    /// For the parser: the canonical form of a lexeme already known to match the RFC 8259
    /// number grammar, read in one pass without re-checking it.
    init(validatedLexeme lexeme: UnsafeRawBufferPointer) {
        let zero = UInt8(ascii: "0")
        var index = 0
        let count = lexeme.count
        let negative = lexeme[0] == UInt8(ascii: "-")
        if negative { index = 1 }
        var significand: [UInt8] = []
        significand.reserveCapacity(count)
        while index < count, lexeme[index] &- zero < 10 {
            significand.append(lexeme[index] &- zero)
            index += 1
        }
        var exponent = 0
        if index < count, lexeme[index] == UInt8(ascii: ".") {
            index += 1
            while index < count, lexeme[index] &- zero < 10 {
                significand.append(lexeme[index] &- zero)
                exponent -= 1
                index += 1
            }
        }
        if index < count {
            // An exponent: `e` or `E`, an optional sign, digits.
            index += 1
            var exponentNegative = false
            if lexeme[index] == UInt8(ascii: "+") || lexeme[index] == UInt8(ascii: "-") {
                exponentNegative = lexeme[index] == UInt8(ascii: "-")
                index += 1
            }
            var written = 0
            while index < count {
                if written < CanonicalDecimal.exponentLimit { written = written * 10 + Int(lexeme[index] &- zero) }
                index += 1
            }
            written = min(written, CanonicalDecimal.exponentLimit)
            exponent += exponentNegative ? -written : written
        }
        self.init(significand: significand, exponent: exponent, negative: negative)
    }

    /// Whether the value is zero.
    public var isZero: Bool { digits.isEmpty }

    /// The exact Int64 value if the number is integral and in range.
    public var int64Value: Int64? {
        if digits.isEmpty { return 0 }
        guard exponent >= 0, digits.count + exponent <= 19 else { return nil }
        var magnitude: UInt64 = 0
        for d in digits {
            let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(d))
            if o1 || o2 { return nil }
            magnitude = sum
        }
        for _ in 0..<exponent {
            let (times10, overflow) = magnitude.multipliedReportingOverflow(by: 10)
            if overflow { return nil }
            magnitude = times10
        }
        if negative {
            if magnitude == UInt64(Int64.max) + 1 { return Int64.min }
            return magnitude <= UInt64(Int64.max) ? -Int64(magnitude) : nil
        }
        return magnitude <= UInt64(Int64.max) ? Int64(magnitude) : nil
    }

    /// Position of the most significant digit: the value's magnitude is in [10^(m-1), 10^m).
    private var magnitudeOrder: Int { digits.count + exponent }

    private static func compareMagnitude(_ a: CanonicalDecimal, _ b: CanonicalDecimal) -> Int {
        if a.isZero || b.isZero { return a.isZero ? (b.isZero ? 0 : -1) : 1 }
        if a.magnitudeOrder != b.magnitudeOrder { return a.magnitudeOrder < b.magnitudeOrder ? -1 : 1 }
        for i in 0..<max(a.digits.count, b.digits.count) {
            let x = i < a.digits.count ? a.digits[i] : 0
            let y = i < b.digits.count ? b.digits[i] : 0
            if x != y { return x < y ? -1 : 1 }
        }
        return 0
    }

    public static func < (lhs: CanonicalDecimal, rhs: CanonicalDecimal) -> Bool {
        if lhs.negative != rhs.negative { return lhs.negative }
        let order = compareMagnitude(lhs, rhs)
        return lhs.negative ? order > 0 : order < 0
    }
}
