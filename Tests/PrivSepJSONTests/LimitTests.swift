// Every limit is enforced while parsing, names itself and the byte offset where it was crossed;
// deep nesting is an error, never a stack overflow.

import PrivSepJSON
import Testing

@Test func defaultLimits() {
    let limits = JSONLimits.default
    #expect(limits.maxDepth == 64)
    #expect(limits.maxStringBytes == 1 << 20)
    #expect(limits.maxContainerCount == 100_000)
    #expect(limits.maxNodes == 1_000_000)
    #expect(limits.maxNumberLength == 64)
    #expect(JSONLimits() == .default)
}

@Test func depthSixtyFourIsAllowedSixtyFiveIsNot() throws {
    let arrays64 = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
    #expect(throws: Never.self) { try JSONParser.parse(arrays64) }
    let objects64 = String(repeating: #"{"a":"#, count: 63) + "{}" + String(repeating: "}", count: 63)
    #expect(throws: Never.self) { try JSONParser.parse(objects64) }

    let arrays65 = parseError(String(repeating: "[", count: 65) + String(repeating: "]", count: 65))
    #expect(arrays65?.kind == .depthLimit)
    #expect(arrays65?.offset == 64)
    #expect(arrays65?.reason.contains("maxDepth") == true)
    #expect(arrays65?.reason.contains("64") == true)
    let objects65 = parseError(String(repeating: #"{"a":"#, count: 64) + "{}" + String(repeating: "}", count: 64))
    #expect(objects65?.kind == .depthLimit)
    #expect(objects65?.offset == 320)
}

@Test func depthOneHundredThousandIsADepthErrorNotACrash() {
    let arrays = parseError(String(repeating: "[", count: 100_000))
    #expect(arrays?.kind == .depthLimit && arrays?.offset == 64)
    let objects = parseError(String(repeating: #"{"a":"#, count: 100_000))
    #expect(objects?.kind == .depthLimit && objects?.offset == 320)
    let closed = parseError(String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000))
    #expect(closed?.kind == .depthLimit && closed?.offset == 64)
}

@Test func raisedDepthLimitIsCappedAtTheCeiling() throws {
    // The parser does not recurse, but destroying or comparing a value does, so no limit may
    // let a parse build a value deeper than the ceiling.
    #expect(JSONLimits.depthCeiling == 1024)
    let limits = JSONLimits(maxDepth: .max)
    let ceiling = String(repeating: "[", count: 1024) + String(repeating: "]", count: 1024)
    let deepest = try JSONParser.parse(ceiling, limits: limits)
    #expect(deepest.serialized() == Array(ceiling.utf8))
    #expect(try deepest == JSONParser.parse(ceiling, limits: limits))
    let over = parseError(String(repeating: "[", count: 100_000), limits: limits)
    #expect(over?.kind == .depthLimit && over?.offset == 1024)
    #expect(over?.reason.contains("1024") == true)
    let custom = parseError("[[[[]]]]", limits: JSONLimits(maxDepth: 3))
    #expect(custom?.kind == .depthLimit && custom?.offset == 3)
    let none = parseError("[]", limits: JSONLimits(maxDepth: 0))
    #expect(none?.kind == .depthLimit && none?.offset == 0)
    #expect(try JSONParser.parse("1", limits: JSONLimits(maxDepth: 0)) == 1)
}

@Test func stringLimitCountsDecodedBytes() throws {
    let limits = JSONLimits(maxStringBytes: 4)
    #expect(try JSONParser.parse(#""abcd""#, limits: limits) == "abcd")
    #expect(try JSONParser.parse(#""\u0041bcd""#, limits: limits) == "Abcd")
    #expect(try JSONParser.parse(#""ab\u00e9""#, limits: limits) == "abé")
    #expect(try JSONParser.parse("\"\u{1F600}\"", limits: limits) == "\u{1F600}")

    let plain = parseError(#""abcde""#, limits: limits)
    #expect(plain?.kind == .stringLimit)
    #expect(plain?.offset == 5)
    #expect(plain?.reason.contains("maxStringBytes") == true)
    // Unterminated and far too long: the scan stops at the limit.
    let unterminated = parseError("\"" + String(repeating: "a", count: 1000), limits: limits)
    #expect(unterminated?.kind == .stringLimit && unterminated?.offset == 5)
    // Escaped: the fifth decoded byte is the `e` at offset 10.
    let escaped = parseError(#""\u0041bcde""#, limits: limits)
    #expect(escaped?.kind == .stringLimit && escaped?.offset == 10)
    // A multi-byte character that straddles the limit is reported where it starts.
    let straddling = parseError(#""abcé""#, limits: limits)
    #expect(straddling?.kind == .stringLimit && straddling?.offset == 4)
    let escapedStraddling = parseError(#""abc\u00e9""#, limits: limits)
    #expect(escapedStraddling?.kind == .stringLimit && escapedStraddling?.offset == 4)
    // Keys are strings too.
    let key = parseError(#"{"abcde":1}"#, limits: limits)
    #expect(key?.kind == .stringLimit && key?.offset == 6)
}

@Test func defaultStringLimitIsOneMebibyte() throws {
    let exactly = "\"" + String(repeating: "x", count: 1 << 20) + "\""
    #expect(try JSONParser.parse(exactly).stringValue?.utf8.count == 1 << 20)
    let over = parseError("\"" + String(repeating: "x", count: (1 << 20) + 1) + "\"")
    #expect(over?.kind == .stringLimit && over?.offset == 1 + (1 << 20))
}

@Test func containerLimitCountsEntriesOfOneContainer() throws {
    let limits = JSONLimits(maxContainerCount: 3)
    #expect(throws: Never.self) { try JSONParser.parse("[1,2,3]", limits: limits) }
    #expect(throws: Never.self) { try JSONParser.parse("[[1,2,3],[1,2,3]]", limits: limits) }
    #expect(throws: Never.self) { try JSONParser.parse(#"{"a":1,"b":2,"c":3}"#, limits: limits) }

    let array = parseError("[1,2,3,4]", limits: limits)
    #expect(array?.kind == .containerLimit && array?.offset == 7)
    #expect(array?.reason.contains("maxContainerCount") == true)
    let object = parseError(#"{"a":1,"b":2,"c":3,"d":4}"#, limits: limits)
    #expect(object?.kind == .containerLimit && object?.offset == 19)

    let none = JSONLimits(maxContainerCount: 0)
    #expect(throws: Never.self) { try JSONParser.parse("[{}]", limits: JSONLimits(maxContainerCount: 1)) }
    #expect(throws: Never.self) { try JSONParser.parse("{}", limits: none) }
    #expect(parseError("[ 1]", limits: none)?.offset == 2)
    #expect(parseError(#"{"a":1}"#, limits: none)?.kind == .containerLimit)
}

@Test func nodeLimitCountsEveryValue() throws {
    let limits = JSONLimits(maxNodes: 3)
    #expect(throws: Never.self) { try JSONParser.parse("[1,2]", limits: limits) }
    #expect(throws: Never.self) { try JSONParser.parse(#"{"a":[1]}"#, limits: limits) }
    let error = parseError("[1,2,3]", limits: limits)
    #expect(error?.kind == .nodeLimit && error?.offset == 5)
    #expect(error?.reason.contains("maxNodes") == true)
    #expect(throws: Never.self) { try JSONParser.parse("[[],[]]", limits: limits) }
    let nested = parseError("[[],[],[]]", limits: limits)
    #expect(nested?.kind == .nodeLimit && nested?.offset == 7)
}

@Test func numberLimitCountsLexemeBytes() throws {
    let limits = JSONLimits(maxNumberLength: 5)
    #expect(try JSONParser.parse("12345", limits: limits) == 12345)
    #expect(try JSONParser.parse("-1234", limits: limits) == -1234)
    let long = parseError("123456", limits: limits)
    #expect(long?.kind == .numberLimit && long?.offset == 5)
    #expect(long?.reason.contains("maxNumberLength") == true)
    let decimal = parseError("[-1.5e10]", limits: limits)
    #expect(decimal?.kind == .numberLimit && decimal?.offset == 6)

    let digits64 = String(repeating: "9", count: 64)
    #expect(throws: Never.self) { try JSONParser.parse(digits64) }
    let digits65 = parseError(digits64 + "9")
    #expect(digits65?.kind == .numberLimit && digits65?.offset == 64)
}

@Test func hostileWideObjectStaysLinear() throws {
    // 100 000 distinct keys: the duplicate check must not be quadratic (it would take minutes).
    var text = "{"
    for k in 0..<100_000 { text += (k == 0 ? "" : ",") + "\"k\(k)\":\(k)" }
    let value = try JSONParser.parse(text + "}")
    #expect(value.objectValue?.count == 100_000)
    #expect(value["k99999"] == 99_999)
    let duplicate = parseError(text + #","k4242":0}"#, limits: JSONLimits(maxContainerCount: 200_000))
    #expect(duplicate?.kind == .duplicateKey)
    #expect(duplicate?.offset == text.utf8.count + 1)
    let overLimit = parseError(text + "}", limits: JSONLimits(maxContainerCount: 99_999))
    #expect(overLimit?.kind == .containerLimit)
}
