// Shared helpers for the PrivSepJSON tests.

import PrivSepJSON

/// The error parsing `bytes` gives, or nil if it parses.
func parseError(_ bytes: [UInt8], limits: JSONLimits = .default) -> JSONParseError? {
    do {
        _ = try JSONParser.parse(bytes, limits: limits)
        return nil
    } catch {
        return error
    }
}

/// The error parsing the UTF-8 of `text` gives, or nil if it parses.
func parseError(_ text: String, limits: JSONLimits = .default) -> JSONParseError? {
    parseError(Array(text.utf8), limits: limits)
}

/// Parses `text`, or returns nil (the tests then fail on the nil with the input in the message).
func parsed(_ text: String, limits: JSONLimits = .default) -> JSONValue? {
    try? JSONParser.parse(text, limits: limits)
}

/// The compact serialization as text.
func compact(_ value: JSONValue) -> String { value.jsonText }

/// A small deterministic generator (SplitMix64), so randomized tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
