// Objects: unique keys compared after unescaping, member order kept, unordered equality.

import PrivSepJSON
import Testing

@Test func duplicateKeysAreRejected() {
    let cases: [(String, Int)] = [
        (#"{"a":1,"a":2}"#, 7),
        (#"{"a":1,"\u0061":2}"#, 7),
        (#"{"\u0061":1,"a":2}"#, 12),
        (#"{"é":1,"\u00e9":2}"#, 8),
        (#"{"":1,"":2}"#, 6),
        (#"{"a":{"b":1,"b":2}}"#, 12),
        (#"{"a":1,"b":2,"a":3}"#, 13),
        (#"[{"x":[{"y":0,"y":0}]}]"#, 14),
    ]
    for (input, offset) in cases {
        let error = parseError(input)
        #expect(error?.kind == .duplicateKey, "\(input)")
        #expect(error?.offset == offset, "\(input): \(String(describing: error))")
    }
    #expect(parseError(#"{"a\"b":1,"a\u0022b":2}"#)?.reason == #"duplicate key "a\"b""#)
}

@Test func sameKeyInDifferentObjectsIsFine() throws {
    let value = try JSONParser.parse(#"{"a":{"a":1},"b":[{"a":1},{"a":2}],"c":{"b":{"a":3}}}"#)
    #expect(value["a"]?["a"] == 1)
    #expect(value["c"]?["b"]?["a"] == 3)
}

@Test func canonicallyEquivalentButDifferentKeysAreDistinct() throws {
    // "é" precomposed and decomposed are different code points, so different keys.
    let value = try JSONParser.parse(#"{"é":1,"e\u0301":2}"#)
    let object = try #require(value.objectValue)
    #expect(object.count == 2)
    #expect(object["\u{E9}"] == 1)
    #expect(object["e\u{301}"] == 2)
    #expect(value.jsonText == "{\"\u{E9}\":1,\"e\u{301}\":2}")
}

@Test func duplicateCheckAcrossTheLinearAndHashedRanges() {
    // Objects switch from a linear scan to a hash set as they grow; a duplicate of any earlier
    // key must be found on either side of the switch, escaped or not.
    for size in 1...40 {
        var text = "{"
        for k in 0..<size { text += "\"k\(k)\":\(k)," }
        for target in Set([0, size / 2, size - 1]) {
            let offset = text.utf8.count
            let plain = parseError(text + "\"k\(target)\":0}")
            #expect(plain?.kind == .duplicateKey && plain?.offset == offset, "size \(size), key \(target)")
            let escaped = parseError(text + "\"\\u006b\(target)\":0}")
            #expect(escaped?.kind == .duplicateKey && escaped?.offset == offset, "size \(size), key \(target)")
        }
        let unique = parsed(text + "\"k\(size)\":0}")
        #expect(unique?.objectValue?.count == size + 1)
    }
}

@Test func longDuplicateKeyIsShortenedInTheReason() throws {
    let key = String(repeating: "a", count: 100)
    let error = try #require(parseError("{\"\(key)\":1,\"\(key)\":2}"))
    #expect(error.kind == .duplicateKey)
    #expect(error.reason.count < 80)
    #expect(error.reason.hasSuffix("...\""))
}

@Test func memberOrderIsPreserved() throws {
    let text = #"{"z":1,"a":2,"m":3,"b":{"y":1,"x":2}}"#
    let value = try JSONParser.parse(text)
    #expect(value.objectValue?.keys == ["z", "a", "m", "b"])
    #expect(value["b"]?.objectValue?.keys == ["y", "x"])
    #expect(value.jsonText == text)
}

@Test func objectEqualityIsUnordered() throws {
    let a = try JSONParser.parse(#"{"a":1,"b":[1,2],"c":{"x":null,"y":true}}"#)
    let b = try JSONParser.parse(#"{"c":{"y":true,"x":null},"b":[1,2],"a":1.0}"#)
    #expect(a == b)
    #expect(a.hashValue == b.hashValue)
    // ... but arrays are ordered, and a missing or extra member matters.
    #expect(try JSONParser.parse("[1,2]") != JSONParser.parse("[2,1]"))
    #expect(try JSONParser.parse(#"{"a":1}"#) != JSONParser.parse(#"{"a":1,"b":1}"#))
    #expect(try JSONParser.parse(#"{"a":1,"b":1}"#) != JSONParser.parse(#"{"a":1}"#))
    #expect(try JSONParser.parse(#"{"a":1}"#) != JSONParser.parse(#"{"b":1}"#))
    #expect(try JSONParser.parse(#"{"a":null}"#) != JSONParser.parse(#"{}"#))
}

@Test func booleansAreNeverNumbers() throws {
    #expect(try JSONParser.parse("true") != JSONParser.parse("1"))
    #expect(try JSONParser.parse("false") != JSONParser.parse("0"))
    #expect(try JSONParser.parse("null") != JSONParser.parse("0"))
    #expect(try JSONParser.parse(#""1""#) != JSONParser.parse("1"))
    #expect(try JSONParser.parse("[true]") != JSONParser.parse("[1]"))
    #expect(try JSONParser.parse("true").int64Value == nil)
    #expect(try JSONParser.parse("1").boolValue == nil)
    #expect(Set([JSONValue.bool(true), .number(JSONNumber(1))]).count == 2)
}

@Test func locatingATopLevelMember() throws {
    let cases: [(String, String?)] = [
        (#"{"body":{"a":[1,{"body":2}]},"id":1}"#, #"{"a":[1,{"body":2}]}"#),
        (#"{ "id" : 1 , "body" :  "x\"y"  }"#, #""x\"y""#),
        (#"{"body":{}}"#, "{}"),
        (#"{"body":-1.5e3}"#, "-1.5e3"),
        (#"{"x":{"body":1}}"#, nil),
        (#"[{"body":1}]"#, nil),
        (#"{"\u0062ody":true}"#, "true"),
        ("\"body\"", nil),
    ]
    for (input, expected) in cases {
        let bytes = Array(input.utf8)
        let (value, span) = try bytes.withUnsafeBytes { raw in
            try JSONParser.parse(raw, locating: "body")
        }
        #expect(value == (try JSONParser.parse(bytes)), "\(input)")
        #expect(span.map { String(decoding: bytes[$0], as: UTF8.self) } == expected, "\(input)")
    }
}
