// The compact serializer: exact escapes, no whitespace, deterministic, and round-tripping.

import PrivSepJSON
import Testing

@Test func escapesOnlyWhatRFC8259Requires() {
    let value = JSONValue.string("\"\\/\u{8}\u{C}\n\r\t\u{0}\u{1}\u{1F}\u{7F} é😀\u{2028}")
    #expect(value.jsonText == #""\"\\/\b\f\n\r\t\u0000\u0001\u001f"# + "\u{7F} é😀\u{2028}\"")
    #expect(JSONValue.string("").jsonText == #""""#)
    #expect(JSONValue.string("plain").jsonText == #""plain""#)
    #expect(JSONValue.string("\u{1B}[0m").jsonText == #""\u001b[0m""#)
}

@Test func everyControlCharacterRoundTrips() throws {
    for scalar in 0..<0x20 {
        let value = JSONValue.string("a" + String(Unicode.Scalar(UInt8(scalar))) + "b")
        let bytes = value.serialized()
        #expect(!bytes.contains(where: { $0 < 0x20 }))
        #expect(try JSONParser.parse(bytes) == value)
    }
}

@Test func compactLayout() {
    let object: JSONValue = [
        "type": "privsep.ping", "id": 123, "body": ["seq": 123, "list": [1, "two", nil, true, false, [], [:]]],
    ]
    #expect(object.jsonText == #"{"type":"privsep.ping","id":123,"body":{"seq":123,"list":[1,"two",null,true,false,[],{}]}}"#)
    #expect(JSONValue.null.jsonText == "null")
    #expect(JSONValue.array([]).jsonText == "[]")
    #expect(JSONValue.object(JSONObject()).jsonText == "{}")
}

@Test func integers() {
    for (value, text) in [(0, "0"), (7, "7"), (-7, "-7"), (10, "10"), (-10, "-10"), (1_234_567_890, "1234567890")] {
        #expect(JSONValue.number(JSONNumber(Int64(value))).jsonText == text)
    }
    #expect(JSONValue.number(JSONNumber(Int64.min)).jsonText == "-9223372036854775808")
    #expect(JSONValue.number(JSONNumber(Int64.max)).jsonText == "9223372036854775807")
    // Each side of every change in the count of digits.
    var power: Int64 = 1
    for _ in 0...18 {
        for value in [power - 1, power, power + 1, -power, 1 - power] {
            #expect(JSONValue.number(JSONNumber(value)).jsonText == String(value))
        }
        if power <= Int64.max / 10 { power *= 10 }
    }
}

@Test func serializeIntoAppends() {
    var output = Array("prefix:".utf8)
    JSONValue.array([1, 2]).serialize(into: &output)
    #expect(output == Array("prefix:[1,2]".utf8))
}

@Test func roundTripIsByteIdentical() throws {
    let documents = [
        #"{"type":"privsep.ping","id":123,"body":{"seq":123,"payload":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}"#,
        #"[1.0,1E2,-0.0,1e-7,"\u0000\n\"\\","é",{"":[{}]}]"#,
        #"{"z":{"y":{"x":[null,true,false,0,-1,9223372036854775808]}}}"#,
        " [ 1 , { \"a\" : \"\\u00e9\\/\" } ] ",
    ]
    for text in documents {
        let first = try JSONParser.parse(text)
        let bytes = first.serialized()
        let second = try JSONParser.parse(bytes)
        #expect(second == first)
        #expect(second.serialized() == bytes)
        #expect(first.jsonText == String(decoding: bytes, as: UTF8.self))
    }
}

/// Builds a random value: every kind, strings with controls, quotes, escapes-to-be and
/// multi-byte characters, integers and decimal lexemes, objects with unique keys.
struct ValueGenerator {
    var random: SplitMix64

    mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &random) }

    mutating func string() -> String {
        let alphabet: [Unicode.Scalar] = ["a", "b", "z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1F}",
            "\u{7F}", "é", "\u{301}", "€", "\u{FFFF}", "\u{1F600}", "\u{10FFFF}", "\u{2028}"]
        var scalars = String.UnicodeScalarView()
        for _ in 0..<int(0..<12) { scalars.append(alphabet[int(0..<alphabet.count)]) }
        return String(scalars)
    }

    mutating func number() -> JSONNumber {
        switch int(0..<4) {
        case 0: return JSONNumber(Int64.random(in: .min ... .max, using: &random))
        case 1: return JSONNumber(Int64(int(-1000..<1000)))
        default:
            let sign = int(0..<2) == 0 ? "" : "-"
            let integer = int(0..<2) == 0 ? "0" : String(int(1..<1_000_000_000))
            let fraction = int(0..<2) == 0 ? "" : "." + String(int(0..<100_000))
            let exponent = int(0..<2) == 0 ? "" : ["e", "E"][int(0..<2)] + ["", "+", "-"][int(0..<3)] + String(int(0..<400))
            let lexeme = sign + integer + fraction + exponent
            return JSONNumber(lexeme: lexeme) ?? JSONNumber(0)
        }
    }

    mutating func value(depth: Int) -> JSONValue {
        switch int(0..<(depth > 0 ? 7 : 5)) {
        case 0: return .null
        case 1: return .bool(int(0..<2) == 0)
        case 2: return .number(number())
        case 3, 4: return .string(string())
        case 5: return .array((0..<int(0..<6)).map { _ in value(depth: depth - 1) })
        default:
            var object = JSONObject()
            for _ in 0..<int(0..<20) { object[string()] = value(depth: depth - 1) }
            return .object(object)
        }
    }
}

@Test func randomizedRoundTrip() throws {
    var generator = ValueGenerator(random: SplitMix64(seed: 0x5EED_0001))
    for _ in 0..<1500 {
        let value = generator.value(depth: 4)
        let bytes = value.serialized()
        let parsed = try JSONParser.parse(bytes)
        #expect(parsed == value)
        #expect(parsed.hashValue == value.hashValue)
        #expect(parsed.serialized() == bytes)
    }
}

/// Hostile bytes: random mutations of valid documents must never crash the parser, and whatever
/// still parses must round-trip.
@Test func randomMutationsNeverCrash() throws {
    var generator = ValueGenerator(random: SplitMix64(seed: 0xBAD_5EED))
    let interesting: [UInt8] = [0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x3A, 0x2C, 0x00, 0x80, 0xC3, 0xED, 0xF4, 0xFF,
        0x75, 0x30, 0x2D, 0x65, 0x2E, 0x20]
    var parsedCount = 0
    for _ in 0..<3000 {
        var bytes = generator.value(depth: 3).serialized()
        for _ in 0..<generator.int(1..<4) {
            guard !bytes.isEmpty else { break }
            let position = generator.int(0..<bytes.count)
            switch generator.int(0..<3) {
            case 0: bytes[position] = interesting[generator.int(0..<interesting.count)]
            case 1: bytes.remove(at: position)
            default: bytes.insert(interesting[generator.int(0..<interesting.count)], at: position)
            }
        }
        do {
            let value = try JSONParser.parse(bytes)
            parsedCount += 1
            #expect(try JSONParser.parse(value.serialized()) == value)
        } catch {
            #expect(error.offset >= 0 && error.offset <= bytes.count)
            #expect(!error.reason.isEmpty)
        }
    }
    #expect(parsedCount > 0)
}

/// The escaping rule, written the slow way, to check the word-at-a-time serializer against.
func referenceQuoted(_ string: String) -> String {
    var result = "\""
    for scalar in string.unicodeScalars {
        switch scalar {
        case "\"": result += "\\\""
        case "\\": result += "\\\\"
        case "\u{8}": result += "\\b"
        case "\u{C}": result += "\\f"
        case "\n": result += "\\n"
        case "\r": result += "\\r"
        case "\t": result += "\\t"
        case "\u{0}"..."\u{1F}":
            let hex = String(scalar.value, radix: 16)
            result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: result.unicodeScalars.append(scalar)
        }
    }
    return result + "\""
}

/// The serializer looks at eight bytes at a time; a byte to escape must be found at every
/// position, alone or next to others.
@Test func escapesAtEveryPosition() throws {
    let specials = ["\"", "\\", "\n", "\u{1}", "\u{1F}", "é", "\u{7F}", "\"\"", "\\n"]
    for length in 0..<20 {
        for position in 0...length {
            for special in specials {
                let base = String(repeating: "a", count: length)
                let index = base.index(base.startIndex, offsetBy: position)
                let string = base[..<index] + special + base[index...]
                let value = JSONValue.string(String(string))
                #expect(value.jsonText == referenceQuoted(String(string)), "\(string.debugDescription)")
                #expect(try JSONParser.parse(value.serialized()) == value)
            }
        }
    }
}
