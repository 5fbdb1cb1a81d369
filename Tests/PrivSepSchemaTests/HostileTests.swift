// Hostile schemas and instances: every one must end in a clean result or error, in bounded time.
import PrivSepJSON
@testable import PrivSepSchema
import Testing

func compile(_ text: String, options: SchemaOptions = SchemaOptions()) throws -> Schema {
    let compiler = SchemaCompiler(options: options)
    try compiler.add(try JSONParser.parse(text, limits: JSONLimits(maxDepth: 256)), uri: "https://privsep.test/hostile.json")
    return try compiler.compile("https://privsep.test/hostile.json")
}

@Test func tenThousandNestedAllOfIsACleanError() throws {
    var schema: JSONValue = ["type": "integer"]
    for _ in 0..<10_000 { schema = ["allOf": [schema]] }
    let compiler = SchemaCompiler()
    var caught: SchemaError?
    do {
        try compiler.add(schema, uri: "https://privsep.test/deep.json")
        _ = try compiler.compile("https://privsep.test/deep.json")
    } catch {
        caught = error
    }
    let error = try #require(caught)
    #expect(error.message.contains("exceeds"))
    #expect(error.pointer.hasPrefix("/allOf/0/allOf/0"))
}

@Test func instanceAtTheParserDepthLimitValidates() throws {
    let schema = try compile(##"{"anyOf": [{"type": "array", "items": {"$ref": "#"}}, {"type": "integer"}]}"##)
    let text = String(repeating: "[", count: 63) + "1" + String(repeating: "]", count: 63)
    let instance = try JSONParser.parse(text)
    #expect(schema.isValid(instance))
    #expect(schema.validate(instance).valid)
    let bad = try JSONParser.parse(String(repeating: "[", count: 63) + "true" + String(repeating: "]", count: 63))
    #expect(!schema.isValid(bad))
    let result = schema.validate(bad)
    #expect(result.errors.contains { $0.instanceLocation == "/" + Array(repeating: "0", count: 63).joined(separator: "/") })
}

@Test func instanceDeeperThanTheEvaluationLimitIsRejectedCleanly() throws {
    let schema = try compile(##"{"anyOf": [{"type": "array", "items": {"$ref": "#"}}, {"type": "integer"}]}"##)
    var instance: JSONValue = 1
    for _ in 0..<2_000 { instance = [instance] }
    #expect(!schema.isValid(instance))
    let result = schema.validate(instance)
    #expect(!result.valid)
    #expect(result.errors.contains { $0.error.contains("depth limit") })
}

@Test func infiniteRefRecursionIsBounded() throws {
    for text in [##"{"$ref": "#"}"##, ##"{"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}"##] {
        let schema = try compile(text)
        #expect(!schema.isValid(["x": 1]))
        #expect(schema.validate(["x": 1]).errors.contains { $0.error.contains("depth limit") })
    }
}

@Test func hundredThousandUniqueItems() throws {
    let schema = try compile(##"{"type": "array", "uniqueItems": true}"##)
    var items = (0..<100_000).map { JSONValue.number(JSONNumber(Int64($0))) }
    #expect(schema.isValid(.array(items)))
    items.append(.number(JSONNumber(lexeme: "99999.0")!))
    #expect(!schema.isValid(.array(items)), "99999.0 equals 99999")
    let objects: JSONValue = [["a": 1, "b": 2], ["b": 2, "a": 1]]
    #expect(!schema.isValid(objects), "objects compare regardless of key order")
}

@Test func catastrophicPatternIsCutOffNotHung() throws {
    let schema = try compile(##"{"type": "string", "pattern": "^(a+)+$"}"##)
    // A non-ASCII byte keeps the search off the DFA: the backtracking engine and its step limit.
    let evil = JSONValue.string(String(repeating: "a", count: 40) + "\u{E9}")
    #expect(!schema.isValid(evil))
    let result = schema.validate(evil)
    #expect(result.errors.contains { $0.error.contains("step limit") })
    #expect(schema.isValid(.string(String(repeating: "a", count: 40))))
    // All ASCII, the DFA answers: a plain mismatch, however long the string.
    let ascii = schema.validate(.string(String(repeating: "a", count: 10_000) + "!"))
    #expect(!ascii.valid)
    #expect(!ascii.errors.contains { $0.error.contains("step limit") })
    let nested = try compile(##"{"pattern": "(x*)*y"}"##)
    #expect(!nested.isValid("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"))
}

@Test func multipleOfIsExactAndNeverTraps() throws {
    let tenth = try compile(##"{"multipleOf": 0.1}"##)
    #expect(tenth.isValid(try JSONParser.parse("0.3")))
    #expect(!tenth.isValid(try JSONParser.parse("0.35")))
    let three = try compile(##"{"multipleOf": 3}"##)
    #expect(!three.isValid(.number(JSONNumber(Int64.min))))
    #expect(three.isValid(.number(JSONNumber(Int64.max - 1))))
    let tiny = try compile(##"{"multipleOf": 1e-300}"##)
    #expect(tiny.isValid(try JSONParser.parse("1e300")))
    #expect(!tiny.isValid(try JSONParser.parse("1e-301")))
    let half = try compile(##"{"type": "integer", "multipleOf": 0.5}"##)
    #expect(half.isValid(try JSONParser.parse("1e308")))
    #expect(half.isValid(try JSONParser.parse("4.0")), "4.0 is an integer")
}

@Test func stringLengthCountsUnicodeScalars() throws {
    let schema = try compile(##"{"minLength": 2, "maxLength": 2}"##)
    #expect(schema.isValid("💩é"))
    #expect(!schema.isValid("💩"))
    #expect(schema.isValid("e\u{301}"), "two scalars, one grapheme")
    let letters = try compile(##"{"pattern": "^\\p{Lu}\\p{Ll}+$"}"##)
    #expect(letters.isValid("Élan"))
    #expect(!letters.isValid("élan"))
}

@Test func basicOutputNamesBothLocations() throws {
    let schema = try compile("""
        {"$defs": {"port": {"type": "integer", "maximum": 65535}},
         "type": "object", "properties": {"port": {"$ref": "#/$defs/port"}}, "additionalProperties": false}
        """)
    let result = schema.validate(["port": 70000, "extra": 1])
    #expect(!result.valid)
    let maximum = try #require(result.errors.first { $0.keywordLocation.hasSuffix("maximum") })
    #expect(maximum.keywordLocation == "/properties/port/$ref/maximum")
    #expect(maximum.absoluteKeywordLocation == "https://privsep.test/hostile.json#/$defs/port/maximum")
    #expect(maximum.instanceLocation == "/port")
    #expect(result.errors.contains { $0.keywordLocation == "/additionalProperties" && $0.instanceLocation == "/extra" })
    guard case .object(let output) = result.basicOutput else { Issue.record("not an object"); return }
    #expect(output["valid"] == false)
    #expect(output["errors"]?.arrayValue?.count == result.errors.count)
}

@Test func badSchemasAreCleanErrors() throws {
    for (text, fragment) in [
        (##"{"type": "strnig"}"##, "type"),
        (##"{"pattern": "(unclosed"}"##, "regular expression"),
        (##"{"$ref": "#/$defs/nothing"}"##, "dangling"),
        (##"{"$ref": "https://elsewhere.test/x.json"}"##, "unresolvable"),
        (##"{"minLength": -1}"##, "non-negative"),
        (##"{"allOf": []}"##, "non-empty"),
        (##"{"multipleOf": 0}"##, "greater than 0"),
        ("42", "object or a boolean"),
    ] {
        #expect(throws: SchemaError.self, "\(text)") { _ = try compile(text) }
        do { _ = try compile(text) } catch let error as SchemaError { #expect(error.message.contains(fragment), "\(text): \(error)") } catch { Issue.record("\(error)") }
    }
}
