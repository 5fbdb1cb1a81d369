// RFC 8259 grammar: what must parse (and how it serializes back), and what must not (with the
// error class and the byte offset), in the spirit of JSONTestSuite's y_ and n_ cases.

import PrivSepJSON
import Testing

struct Accept: Sendable, CustomTestStringConvertible {
    let input: String
    let compact: String
    init(_ input: String, _ compact: String? = nil) {
        self.input = input
        self.compact = compact ?? input
    }
    var testDescription: String { input.debugDescription }
}

struct Reject: Sendable, CustomTestStringConvertible {
    let input: [UInt8]
    let kind: JSONParseError.Kind
    let offset: Int
    init(_ input: String, _ kind: JSONParseError.Kind, _ offset: Int) {
        self.input = Array(input.utf8)
        self.kind = kind
        self.offset = offset
    }
    var testDescription: String { String(decoding: input, as: UTF8.self).debugDescription }
}

let accepted: [Accept] = [
    Accept("[]"), Accept("{}"), Accept("null"), Accept("true"), Accept("false"),
    Accept(" [ null , true,false ] ", "[null,true,false]"),
    Accept("\t\n\r[1]\r\n\t", "[1]"),
    Accept("0"), Accept("-0", "0"), Accept("-0.0"), Accept("1"), Accept("-1"), Accept("123"),
    Accept("1.5"), Accept("-1.5e10"), Accept("1E5"), Accept("1e+5"), Accept("1e-5"), Accept("0.0"),
    Accept("0e0"), Accept("0E-0"), Accept("1e999"), Accept("123456789012345678901234567890"),
    Accept("[-1,2.5e-3,0]"),
    Accept(#""""#), Accept(#""abc""#), Accept(#""\u0000""#), Accept(#""\/""#, #""/""#),
    Accept(#""\"\\\b\f\n\r\t""#), Accept(#""\u0041\u00e9\u00E9""#, #""Aéé""#),
    Accept(#""\uD834\uDD1E""#, "\"\u{1D11E}\""), Accept(#""\ud834\udd1e""#, "\"\u{1D11E}\""),
    Accept(#""\u001f\u007f""#, "\"\\u001f\u{7F}\""), Accept(#""\u2028\u2029""#, "\"\u{2028}\u{2029}\""),
    Accept("\"\u{7F}\""), Accept("\"\u{10FFFF}\""), Accept("\"é😀\""), Accept("\"\u{FEFF}\""),
    Accept(#"{"":0}"#), Accept("[[[]]]"), Accept(#"[{}]"#), Accept(#"{"a":[]}"#),
    Accept(#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#), Accept(#"["a","a"]"#),
    Accept(#"{ "a" : 1 , "b" : [ 2 , { } ] }"#, #"{"a":1,"b":[2,{}]}"#),
    Accept(#"{"z":1,"a":2,"m":3}"#),
    Accept(#""abcdefghijklmnopqrstuvwxyz0123456789""#),
]

let rejected: [Reject] = [
    // Truncated input.
    Reject("", .unexpectedEnd, 0), Reject(" ", .unexpectedEnd, 1), Reject("[", .unexpectedEnd, 1),
    Reject("[1", .unexpectedEnd, 2), Reject("[1,", .unexpectedEnd, 3), Reject("{", .unexpectedEnd, 1),
    Reject(#"{"a""#, .unexpectedEnd, 4), Reject(#"{"a":"#, .unexpectedEnd, 5), Reject(#"{"a":1"#, .unexpectedEnd, 6),
    Reject(#""abc"#, .unexpectedEnd, 4), Reject("tru", .unexpectedEnd, 3), Reject("nul", .unexpectedEnd, 3),
    Reject("fals", .unexpectedEnd, 4), Reject("\"\\", .unexpectedEnd, 2), Reject(#""\""#, .unexpectedEnd, 3),
    Reject(#""\u"#, .unexpectedEnd, 3), Reject(#""\u00"#, .unexpectedEnd, 5),
    // Numbers.
    Reject("01", .syntax, 0), Reject("-01", .syntax, 0), Reject("00", .syntax, 0), Reject("[01]", .syntax, 1),
    Reject("-", .unexpectedEnd, 1), Reject("[-]", .syntax, 2), Reject("-a", .syntax, 1), Reject("- 1", .syntax, 1),
    Reject("1.", .unexpectedEnd, 2), Reject("[1.]", .syntax, 3), Reject(".1", .syntax, 0), Reject("[.5]", .syntax, 1),
    Reject("1e", .unexpectedEnd, 2), Reject("[1e]", .syntax, 3), Reject("1e+", .unexpectedEnd, 3),
    Reject("[1e+]", .syntax, 4), Reject("1.5E+", .unexpectedEnd, 5), Reject("+1", .syntax, 0),
    Reject("[+1]", .syntax, 1), Reject("0x1F", .trailingData, 1), Reject("[0x1F]", .syntax, 2),
    Reject("1.e5", .syntax, 2), Reject("-.5", .syntax, 1), Reject("[1e5.0]", .syntax, 4),
    Reject("-1.0.", .trailingData, 4), Reject("1e1.5", .trailingData, 3), Reject("123abc", .trailingData, 3),
    Reject("Infinity", .syntax, 0), Reject("-Infinity", .syntax, 1), Reject("NaN", .syntax, 0),
    Reject("[NaN]", .syntax, 1), Reject("[-Infinity]", .syntax, 2),
    // Literals and quotes.
    Reject("True", .syntax, 0), Reject("tRue", .syntax, 0), Reject("nil", .syntax, 0), Reject("[True]", .syntax, 1),
    Reject("undefined", .syntax, 0), Reject("'a'", .syntax, 0), Reject("['a']", .syntax, 1),
    Reject("{'a':1}", .syntax, 1), Reject("{a:1}", .syntax, 1),
    // Structure.
    Reject("[1,]", .syntax, 3), Reject(#"{"a":1,}"#, .syntax, 7), Reject("[,1]", .syntax, 1),
    Reject("[1,,2]", .syntax, 3), Reject("{,}", .syntax, 1), Reject("[1 2]", .syntax, 3),
    Reject(#"{"a" 1}"#, .syntax, 5), Reject(#"{"a":1 "b":2}"#, .syntax, 7), Reject("{1:1}", .syntax, 1),
    Reject(#"{"a"::1}"#, .syntax, 5), Reject(#"{"a"}"#, .syntax, 4), Reject(#"{"a":}"#, .syntax, 5),
    Reject(#"["a":1]"#, .syntax, 4), Reject(#"{"a":1]"#, .syntax, 6), Reject("[1}", .syntax, 2),
    Reject("]", .syntax, 0), Reject("}", .syntax, 0), Reject(":", .syntax, 0), Reject(",", .syntax, 0),
    // Strings.
    Reject("\"a\tb\"", .syntax, 2), Reject("\"\n\"", .syntax, 1), Reject("\"\u{0}\"", .syntax, 1),
    Reject("\"\u{1F}\"", .syntax, 1), Reject(#""\x41""#, .syntax, 1), Reject(#""\a""#, .syntax, 1),
    Reject(#""\U0041""#, .syntax, 1), Reject(#""\'""#, .syntax, 1), Reject(#""\u12""#, .syntax, 5),
    Reject(#""\u12G4""#, .syntax, 5), Reject(#""\u""#, .syntax, 3), Reject("\"\\\u{0}\"", .syntax, 1),
    Reject(#"["\n\u00"]"#, .syntax, 8),
    // Not JSON at all, and byte order marks, comments, other whitespace.
    Reject("\u{FEFF}[]", .syntax, 0), Reject("/* c */ 1", .syntax, 0), Reject("\u{0C}1", .syntax, 0),
    Reject("\u{A0}1", .syntax, 0), Reject("\u{0}", .syntax, 0), Reject("é", .syntax, 0),
    Reject("\u{0B}[]", .syntax, 0),
    // Trailing data.
    Reject("[] []", .trailingData, 3), Reject("1 2", .trailingData, 2), Reject("{}x", .trailingData, 2),
    Reject("nulll", .trailingData, 4), Reject("truefalse", .trailingData, 4), Reject("[1]]", .trailingData, 3),
    Reject(#""a""b""#, .trailingData, 3), Reject("[]\u{0}", .trailingData, 2), Reject("1 // c", .trailingData, 2),
    Reject(#"{"a":1}}"#, .trailingData, 7), Reject("\"a\"é", .trailingData, 3), Reject("[] \u{FEFF}", .trailingData, 3),
]

@Test("accepted documents parse and serialize compactly", arguments: accepted)
func acceptsValidDocument(_ test: Accept) throws {
    let value = try JSONParser.parse(test.input)
    #expect(value.jsonText == test.compact)
    // The compact form parses to an equal value and serializes to the same bytes again.
    let again = try JSONParser.parse(value.serialized())
    #expect(again == value)
    #expect(again.serialized() == value.serialized())
}

@Test("rejected documents give the named error at the byte offset", arguments: rejected)
func rejectsInvalidDocument(_ test: Reject) {
    let error = parseError(test.input)
    #expect(error?.kind == test.kind, "\(error.map(String.init(describing:)) ?? "parsed")")
    #expect(error?.offset == test.offset, "\(error.map(String.init(describing:)) ?? "parsed")")
    #expect(error?.reason.isEmpty == false)
}

@Test func allThreeEntryPointsAgree() throws {
    let text = #"{"type":"privsep.ping","id":1,"body":{"a":[1.5,"é"]}}"#
    let bytes = Array(text.utf8)
    let fromString = try JSONParser.parse(text)
    let fromArray = try JSONParser.parse(bytes)
    let fromBuffer = try bytes.withUnsafeBytes { raw throws(JSONParseError) in try JSONParser.parse(raw) }
    #expect(fromString == fromArray)
    #expect(fromArray == fromBuffer)
    #expect(fromBuffer.serialized() == bytes)
}

@Test func emptyBufferIsUnexpectedEnd() {
    #expect(throws: JSONParseError(kind: .unexpectedEnd, offset: 0, reason: "empty input")) {
        try JSONParser.parse(UnsafeRawBufferPointer(start: nil, count: 0))
    }
}

@Test func topLevelScalarsAreAllowed() throws {
    #expect(try JSONParser.parse("42") == 42)
    #expect(try JSONParser.parse(#""x""#) == "x")
    #expect(try JSONParser.parse("null") == .null)
    #expect(try JSONParser.parse(" false ") == false)
}

@Test func errorDescriptionNamesOffsetAndReason() {
    let error = parseError(#"{"id":1,"id":2}"#)
    #expect(error?.description == #"offset 8: duplicate key "id""#)
    #expect(error?.reason == #"duplicate key "id""#)
    #expect(JSONParseError.Kind.depthLimit.description == "depth limit")
}

@Test func syntaxErrorReasonsNameTheProblem() {
    #expect(parseError("01")?.reason.contains("leading zero") == true)
    #expect(parseError("[1,]")?.reason.contains("trailing comma") == true)
    #expect(parseError(#"{"a":1,}"#)?.reason.contains("trailing comma") == true)
    #expect(parseError("\"a\u{1}\"")?.reason.contains("control character") == true)
    #expect(parseError(#""\q""#)?.reason.contains("invalid escape") == true)
    #expect(parseError("\u{FEFF}1")?.reason.contains("byte order mark") == true)
    #expect(parseError("[1 2]")?.reason.contains("expected ',' or ']'") == true)
}

/// Every byte value as the whole content of a string: controls are syntax errors, lone bytes
/// from 0x80 up are invalid UTF-8, the rest parse to themselves.
@Test func everySingleByteInsideAString() {
    for byte in UInt8.min...UInt8.max where byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
        let error = parseError([0x22, byte, 0x22])
        switch byte {
        case 0x00..<0x20:
            #expect(error?.kind == .syntax && error?.offset == 1, "byte \(byte)")
        case 0x80...:
            #expect(error?.kind == .invalidUTF8 && error?.offset == 1, "byte \(byte)")
        default:
            #expect(error == nil, "byte \(byte)")
            #expect((try? JSONParser.parse([0x22, byte, 0x22])) == .string(String(Unicode.Scalar(byte))))
        }
    }
}

/// The string scanner reads eight bytes at a time; a terminator, an escape, a control character
/// or a non-ASCII byte must be found at every position relative to those words.
@Test func stringScannerFindsEveryPosition() throws {
    for prefix in 0..<40 {
        let padding = String(repeating: "a", count: prefix)
        #expect(try JSONParser.parse("\"\(padding)\"") == .string(padding))
        #expect(try JSONParser.parse("\"\(padding)\\n\"") == .string(padding + "\n"))
        #expect(try JSONParser.parse("\"\(padding)é\"") == .string(padding + "é"))
        let control = parseError("\"\(padding)\u{1}xxxxxxxxxx\"")
        #expect(control?.kind == .syntax && control?.offset == 1 + prefix)
        let invalid = parseError(Array("\"\(padding)".utf8) + [0xFF] + Array("xxxxxxxxxx\"".utf8))
        #expect(invalid?.kind == .invalidUTF8 && invalid?.offset == 1 + prefix)
        let unterminated = parseError("\"\(padding)")
        #expect(unterminated?.kind == .unexpectedEnd && unterminated?.offset == 1 + prefix)
    }
}

/// Containers close back into the right parent at every depth, with siblings before and after.
@Test func nestedContainersKeepTheirSiblings() throws {
    let text = #"[1,[2,{"a":[3,{"b":[4,[5],{"c":{}}],"d":6}],"e":7},8],{"f":[[],[[]]]},9]"#
    let value = try JSONParser.parse(text)
    #expect(value.jsonText == text)
    #expect(value.arrayValue?.count == 4)
    #expect(value.arrayValue?[1].arrayValue?[1]["a"]?.arrayValue?[1]["d"] == 6)
    #expect(value.arrayValue?[1].arrayValue?[1]["e"] == 7)
    #expect(value.arrayValue?[2]["f"]?.arrayValue?[1] == [[]])
    for depth in 1...12 {
        let nested = String(repeating: #"{"k":[0,"#, count: depth) + "1" + String(repeating: "]}", count: depth)
        #expect(try JSONParser.parse(nested).jsonText == nested)
    }
}
