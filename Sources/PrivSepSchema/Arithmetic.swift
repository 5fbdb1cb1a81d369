// Exact `multipleOf` on decimal numbers, with no way to trap.
//
// Binary floating point gets 0.3 / 0.1 wrong, and Int64 remainder traps on Int64.min % -1, so
// both operands are taken as exact decimals d×10^e, brought to a common exponent, and the
// remainder is computed digit by digit in UInt64 (divisor up to 18 digits). Past those bounds (a
// divisor over 18 significant digits, or an exponent gap over 10,000), Double is the fallback.
import Glibc
import PrivSepJSON

enum Arithmetic {
    static let maxScale = 10_000

    /// Whether `value` is an integer multiple of `divisor` (divisor > 0).
    static func isMultiple(_ value: JSONNumber, of divisor: JSONNumber) -> Bool {
        if let a = value.int64Value, let b = divisor.int64Value, b != 0 {
            return a.magnitude % b.magnitude == 0
        }
        let a = value.canonical
        let b = divisor.canonical
        if a.isZero { return true }
        if b.isZero { return false }
        let common = min(a.exponent, b.exponent)
        let aShift = a.exponent - common
        let bShift = b.exponent - common
        guard aShift <= maxScale, bShift <= maxScale, b.digits.count + bShift <= 18 else {
            return doubleFallback(value.doubleValue, divisor.doubleValue)
        }
        var modulus: UInt64 = 0
        for d in b.digits { modulus = modulus * 10 + UInt64(d) }
        for _ in 0..<bShift { modulus *= 10 }
        // The dividend is a's digits followed by aShift zeros.
        var remainder: UInt64 = 0
        for d in a.digits { remainder = (remainder * 10 + UInt64(d)) % modulus }
        for _ in 0..<aShift {
            remainder = (remainder * 10) % modulus
            if remainder == 0 { return true }
        }
        return remainder == 0
    }

    private static func doubleFallback(_ a: Double, _ b: Double) -> Bool {
        guard a.isFinite, b.isFinite, b != 0 else { return false }
        let quotient = a / b
        guard quotient.isFinite else { return false }
        return quotient.rounded(.towardZero) == quotient
    }
}
