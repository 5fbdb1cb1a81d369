// I-JSON: strings must be valid UTF-8 (RFC 3629) and `\u` escapes may not leave lone surrogates.

import PrivSepJSON
import Testing

struct Bytes: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    init(_ name: String, _ bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }
    var testDescription: String { name }
}

let invalidSequences: [Bytes] = [
    Bytes("lone continuation 80", [0x80]), Bytes("lone continuation BF", [0xBF]),
    Bytes("two continuations", [0x80, 0x80]),
    Bytes("overlong NUL C0 80", [0xC0, 0x80]), Bytes("overlong C1 BF", [0xC1, 0xBF]),
    Bytes("overlong 3-byte E0 80 80", [0xE0, 0x80, 0x80]), Bytes("overlong 3-byte E0 9F BF", [0xE0, 0x9F, 0xBF]),
    Bytes("overlong 4-byte F0 80 80 80", [0xF0, 0x80, 0x80, 0x80]),
    Bytes("overlong 4-byte F0 8F BF BF", [0xF0, 0x8F, 0xBF, 0xBF]),
    Bytes("surrogate U+D800 ED A0 80", [0xED, 0xA0, 0x80]), Bytes("surrogate U+DFFF ED BF BF", [0xED, 0xBF, 0xBF]),
    Bytes("surrogate pair as CESU-8", [0xED, 0xA0, 0xBD, 0xED, 0xB2, 0xA9]),
    Bytes("U+110000 F4 90 80 80", [0xF4, 0x90, 0x80, 0x80]), Bytes("F5 80 80 80", [0xF5, 0x80, 0x80, 0x80]),
    Bytes("F7 BF BF BF", [0xF7, 0xBF, 0xBF, 0xBF]), Bytes("5-byte F8 88 80 80 80", [0xF8, 0x88, 0x80, 0x80, 0x80]),
    Bytes("6-byte FC 84 80 80 80 80", [0xFC, 0x84, 0x80, 0x80, 0x80, 0x80]),
    Bytes("FE", [0xFE]), Bytes("FF", [0xFF]),
    Bytes("truncated 2-byte C3", [0xC3]), Bytes("truncated 3-byte E2 82", [0xE2, 0x82]),
    Bytes("truncated 4-byte F0 9F 98", [0xF0, 0x9F, 0x98]),
    Bytes("bad second byte C3 28", [0xC3, 0x28]), Bytes("bad second byte E2 28 A1", [0xE2, 0x28, 0xA1]),
    Bytes("bad third byte E2 82 28", [0xE2, 0x82, 0x28]), Bytes("bad third byte F0 9F 28 80", [0xF0, 0x9F, 0x28, 0x80]),
    Bytes("bad fourth byte F0 9F 98 28", [0xF0, 0x9F, 0x98, 0x28]),
]

let validSequences: [Bytes] = [
    Bytes("U+0080", [0xC2, 0x80]), Bytes("U+07FF", [0xDF, 0xBF]), Bytes("U+0800", [0xE0, 0xA0, 0x80]),
    Bytes("U+D7FF", [0xED, 0x9F, 0xBF]), Bytes("U+E000", [0xEE, 0x80, 0x80]), Bytes("U+FFFF", [0xEF, 0xBF, 0xBF]),
    Bytes("U+FEFF inside a string", [0xEF, 0xBB, 0xBF]), Bytes("U+10000", [0xF0, 0x90, 0x80, 0x80]),
    Bytes("U+10FFFF", [0xF4, 0x8F, 0xBF, 0xBF]), Bytes("U+1F600", [0xF0, 0x9F, 0x98, 0x80]),
    Bytes("mixed", Array("aé€😀z".utf8)),
]

@Test("invalid UTF-8 in a string is rejected at the sequence's first byte", arguments: invalidSequences)
func rejectsInvalidUTF8(_ test: Bytes) {
    // Plain string, after an escape (the slow path), and as an object key.
    let cases: [([UInt8], Int)] = [
        ([0x22] + test.bytes + [0x22], 1),
        ([0x22] + Array("abcdefghijk".utf8) + test.bytes + [0x22], 12),
        ([0x22, 0x5C, 0x6E] + test.bytes + [0x22], 3),
        (Array(#"{""#.utf8) + test.bytes + Array(#"":1}"#.utf8), 2),
    ]
    for (input, offset) in cases {
        let error = parseError(input)
        #expect(error?.kind == .invalidUTF8, "\(input)")
        #expect(error?.offset == offset, "\(input)")
        #expect(error?.reason.hasPrefix("invalid UTF-8") == true)
    }
}

@Test("valid UTF-8 decodes and serializes back byte for byte", arguments: validSequences)
func acceptsValidUTF8(_ test: Bytes) throws {
    let input = [0x22] + test.bytes + [0x22]
    let value = try JSONParser.parse(input)
    #expect(value == .string(String(decoding: test.bytes, as: UTF8.self)))
    #expect(value.serialized() == input)
    let escaped = try JSONParser.parse([0x22, 0x5C, 0x74] + test.bytes + [0x22])
    #expect(escaped == .string("\t" + String(decoding: test.bytes, as: UTF8.self)))
}

@Test func truncatedSequenceAtEndOfInput() {
    for tail: [UInt8] in [[0xC3], [0xE2, 0x82], [0xF0, 0x9F, 0x98]] {
        let error = parseError([0x22] + tail)
        #expect(error?.kind == .invalidUTF8 && error?.offset == 1)
    }
}

@Test func nonASCIIOutsideStringsIsSyntax() {
    #expect(parseError([0xFF])?.kind == .syntax)
    #expect(parseError([0x5B, 0xC3, 0xA9, 0x5D])?.kind == .syntax)
    #expect(parseError(Array("[1]".utf8) + [0xFF])?.kind == .trailingData)
}

@Test func surrogatePairsDecode() throws {
    #expect(try JSONParser.parse(#""\uD834\uDD1E""#) == "\u{1D11E}")
    #expect(try JSONParser.parse(#""\ud83d\ude00x""#) == "\u{1F600}x")
    #expect(try JSONParser.parse(#""\uD800\uDC00""#) == "\u{10000}")
    #expect(try JSONParser.parse(#""\uDBFF\uDFFF""#) == "\u{10FFFF}")
    #expect(try JSONParser.parse(#""\uD7FF\uE000""#) == "\u{D7FF}\u{E000}")
    #expect(try JSONParser.parse(#""\uD834\uDD1E""#).serialized() == Array("\"\u{1D11E}\"".utf8))
}

@Test func loneSurrogatesAreRejected() {
    let cases: [(String, JSONParseError.Kind, Int)] = [
        (#""\uD800""#, .loneSurrogate, 1),
        (#""\uDC00""#, .loneSurrogate, 1),
        (#""\uDFFF\uD800""#, .loneSurrogate, 1),
        (#""ab\uD800\u0041""#, .loneSurrogate, 3),
        (#""\uD800\uD800""#, .loneSurrogate, 1),
        (#""\uDBFFx""#, .loneSurrogate, 1),
        (#""\uD800\n""#, .loneSurrogate, 1),
        (#"{"\uD800":1}"#, .loneSurrogate, 2),
        (#""\uD800\u""#, .syntax, 9),
        (#""\uD800\uDC0"#, .unexpectedEnd, 12),
        (#""\uD800\"#, .unexpectedEnd, 8),
        (#""\uD800"#, .unexpectedEnd, 7),
    ]
    for (input, kind, offset) in cases {
        let error = parseError(input)
        #expect(error?.kind == kind, "\(input): \(String(describing: error))")
        #expect(error?.offset == offset, "\(input): \(String(describing: error))")
    }
    #expect(parseError(#""\uD800""#)?.reason.contains("D800") == true)
}
