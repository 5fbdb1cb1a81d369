// The check of a body from its bytes (Schema.checkPlainObject) against the path it stands in
// for, the strict parser and then isValid: where it vouches, both must accept the same bytes to
// the same end with the same count; the plain bodies it is for, it must vouch for; and what it
// does not take on, it must leave to the tree.
import PrivSepJSON
@testable import PrivSepSchema
import Testing

private let pingSchema = ##"""
{"$defs": {"ping_body": {"type": "object", "properties": {
    "seq": {"type": "integer", "minimum": 0, "maximum": 9007199254740991},
    "payload": {"type": "string", "maxLength": 65536}}, "additionalProperties": false}},
 "$ref": "#/$defs/ping_body"}
"""##

/// Every keyword the check reads, in one schema.
private let richSchema = ##"""
{"type": "object", "required": ["name", "n"], "minProperties": 2, "maxProperties": 5,
 "properties": {
    "name": {"type": "string", "minLength": 2, "maxLength": 8},
    "n": {"type": "integer", "exclusiveMinimum": -5, "exclusiveMaximum": 100},
    "mode": {"enum": ["r", "rw"]},
    "on": {"type": "boolean"}, "none": {"type": "null"},
    "any": true, "never": false,
    "either": {"type": ["integer", "string"], "allOf": [{"maxLength": 3}, {"maximum": 9}]}},
 "additionalProperties": {"type": "integer"}}
"""##

/// The check, or nil; at offset 0 of the bytes, one container around them as in an envelope.
private func vouched(_ schema: Schema, _ body: String, limits: JSONLimits = .default) -> (end: Int, nodes: Int)? {
    Array(body.utf8).withUnsafeBytes { schema.checkPlainObject(in: $0, at: 0, enclosingDepth: 1, limits: limits) }
}

/// The path it stands in for: the parser's end and count when it accepts and isValid agrees.
private func treePath(_ schema: Schema, _ body: String, limits: JSONLimits = .default) -> (end: Int, nodes: Int)? {
    Array(body.utf8).withUnsafeBytes { bytes in
        guard let parsed = try? JSONParser.parseValue(in: bytes, at: 0, enclosingDepth: 1, limits: limits),
              schema.isValid(parsed.value)
        else { return nil }
        return (parsed.end, parsed.nodes)
    }
}

/// Where the check vouches, the tree must accept the same way.
private func expectSound(_ schema: Schema, _ body: String, limits: JSONLimits = .default,
                         sourceLocation: SourceLocation = #_sourceLocation)
{
    guard let fast = vouched(schema, body, limits: limits) else { return }
    let tree = treePath(schema, body, limits: limits)
    #expect(tree?.end == fast.end && tree?.nodes == fast.nodes, "vouched for \(body)", sourceLocation: sourceLocation)
}

@Test func thePingBodyIsVouchedForWhereTheTreeAcceptsIt() throws {
    let schema = try compile(pingSchema)
    #expect(schema.vouchesForPlainObjects)
    for body in [#"{"seq":1,"payload":"hello"}"#, #"{ "payload" : "x" , "seq" : 9007199254740991 }"#, "{}",
                 #"{"seq":0}"#, #"{"payload":""}"#, #"{"seq":7,"payload":"a b/c"} trailing"#]
    {
        let fast = try #require(vouched(schema, body), "\(body)")
        let tree = try #require(treePath(schema, body))
        #expect(fast.end == tree.end && fast.nodes == tree.nodes)
    }
}

@Test func plainBodiesTheSchemaRefusesAreLeftToTheTree() throws {
    let schema = try compile(pingSchema)
    for body in [#"{"seq":-1}"#, #"{"seq":9007199254740992}"#, #"{"seq":"1"}"#, #"{"extra":1}"#, #"{"seq":true}"#,
                 #"{"payload":null}"#]
    {
        #expect(vouched(schema, body) == nil, "\(body)")
        #expect(treePath(schema, body) == nil, "\(body)")
    }
}

@Test func bodiesOutsideThePlainSubsetAreLeftToTheTreeEvenWhenValid() throws {
    let schema = try compile(pingSchema)
    // Valid, but an escape, a non-ASCII string, a real, an exponent: the tree's to read.
    for body in [#"{"payload":"a\"b"}"#, #"{"payload":"\u00e9"}"#, "{\"payload\":\"é\"}", #"{"seq":1.0}"#, #"{"seq":1e2}"#] {
        #expect(vouched(schema, body) == nil, "\(body)")
        #expect(treePath(schema, body) != nil, "\(body)")
    }
    // Not JSON the parser accepts: a leading zero, -0 (valid JSON, left to the tree), a repeated
    // member, a missing value, an unclosed object, control bytes in a string.
    for body in [#"{"seq":01}"#, #"{"seq":-0}"#, #"{"seq":1,"seq":2}"#, #"{"seq":}"#, #"{"seq":1"#, "{\"payload\":\"a\u{1}\"}",
                 #"{"seq":1,}"#, #"{,}"#, #"{"seq" 1}"#, #"{"seq":tru}"#, #"{"seq":truex}"#, ""]
    {
        #expect(vouched(schema, body) == nil, "\(body)")
    }
}

@Test func everyKeywordTheCheckReadsAgreesWithTheTree() throws {
    let schema = try compile(richSchema)
    #expect(schema.vouchesForPlainObjects)
    let valid = [#"{"name":"ab","n":-4}"#, #"{"name":"abcdefgh","n":99,"mode":"rw","on":false,"none":null}"#,
                 #"{"n":0,"name":"xy","any":"whatever","extra":5}"#, #"{"name":"ab","n":1,"either":9}"#,
                 #"{"name":"ab","n":1,"either":"abc"}"#]
    for body in valid {
        #expect(vouched(schema, body) != nil, "\(body)")
        expectSound(schema, body)
    }
    let invalid = [#"{"name":"a","n":1}"#, #"{"name":"abcdefghi","n":1}"#, #"{"name":"ab","n":-5}"#, #"{"name":"ab","n":100}"#,
                   #"{"name":"ab"}"#, #"{"name":"ab","on":true}"#, #"{"n":1,"on":true}"#, #"{"name":"ab","n":1,"mode":"w"}"#, #"{"name":"ab","n":1,"never":1}"#,
                   #"{"name":"ab","n":1,"extra":"x"}"#, #"{"name":"ab","n":1,"either":10}"#, #"{"name":"ab","n":1,"either":"abcd"}"#,
                   #"{"name":"ab","n":1,"on":null}"#, #"{"a":1,"b":2,"c":3,"d":4,"name":"ab","n":1}"#]
    for body in invalid {
        #expect(vouched(schema, body) == nil, "\(body)")
        #expect(treePath(schema, body) == nil, "\(body)")
    }
}

@Test func requiredNamesOutsidePropertiesAndMemberCountsAreHeld() throws {
    let schema = try compile(#"{"type": "object", "required": ["zz"], "properties": {"a": {"type": "integer"}}}"#)
    #expect(vouched(schema, #"{"a":1,"zz":null}"#) != nil)
    expectSound(schema, #"{"a":1,"zz":null}"#)
    #expect(vouched(schema, #"{"a":1,"z":null}"#) == nil)
    #expect(treePath(schema, #"{"a":1,"z":null}"#) == nil)
    let counted = try compile(#"{"type": "object", "minProperties": 2, "maxProperties": 2}"#)
    #expect(vouched(counted, #"{"a":1,"b":2}"#) != nil)
    for body in [#"{"a":1}"#, #"{"a":1,"b":2,"c":3}"#] {
        #expect(vouched(counted, body) == nil)
        #expect(treePath(counted, body) == nil)
    }
}

@Test func limitsAreHeldAsTheParserHoldsThem() throws {
    let schema = try compile(#"{"type": "object", "additionalProperties": true}"#)
    let body = #"{"a":"12345678","b":1234,"c":true}"#
    #expect(vouched(schema, body) != nil)
    // Each limit just met, then just crossed; nodes count the object and its three values.
    let met = JSONLimits(maxDepth: 2, maxStringBytes: 8, maxContainerCount: 3, maxNodes: 4, maxNumberLength: 4)
    #expect(vouched(schema, body, limits: met) != nil)
    expectSound(schema, body, limits: met)
    for crossed in [JSONLimits(maxDepth: 1, maxStringBytes: 8, maxContainerCount: 3, maxNodes: 4, maxNumberLength: 4),
                    JSONLimits(maxDepth: 2, maxStringBytes: 7, maxContainerCount: 3, maxNodes: 4, maxNumberLength: 4),
                    JSONLimits(maxDepth: 2, maxStringBytes: 8, maxContainerCount: 2, maxNodes: 4, maxNumberLength: 4),
                    JSONLimits(maxDepth: 2, maxStringBytes: 8, maxContainerCount: 3, maxNodes: 3, maxNumberLength: 4),
                    JSONLimits(maxDepth: 2, maxStringBytes: 8, maxContainerCount: 3, maxNodes: 4, maxNumberLength: 3)]
    {
        #expect(vouched(schema, body, limits: crossed) == nil)
        #expect(treePath(schema, body, limits: crossed) == nil)
    }
    // More members than the check reads in place: the tree's, though valid.
    let many = "{" + (0 ..< PlainBody.maxMembers + 1).map { "\"k\($0)\":\($0)" }.joined(separator: ",") + "}"
    #expect(vouched(schema, many) == nil)
    #expect(treePath(schema, many) != nil)
}

@Test func schemasTheCheckDoesNotTakeOnAreNeverTried() throws {
    // A required array (file.open's access), a pattern, anyOf, a format asserted: never plain.
    for text in [#"{"type":"object","required":["access"],"properties":{"access":{"type":"array"}}}"#,
                 #"{"type":"object","required":["p"],"properties":{"p":{"type":"string","pattern":"^a"}}}"#,
                 #"{"type":"object","anyOf":[{"required":["a"]},{"required":["b"]}]}"#,
                 #"{"type":"array"}"#, "false"]
    {
        let schema = try compile(text)
        #expect(!schema.vouchesForPlainObjects, "\(text)")
        #expect(vouched(schema, #"{"a":1}"#) == nil)
    }
    let formats = try compile(#"{"type":"object","required":["d"],"properties":{"d":{"type":"string","format":"date"}}}"#,
                              options: SchemaOptions(assertFormat: true))
    #expect(!formats.vouchesForPlainObjects)
    // An optional property it cannot check leaves only the bodies that hold it to the tree.
    let optional = try compile(#"{"type":"object","properties":{"p":{"type":"string","pattern":"^a"},"n":{"type":"integer"}}}"#)
    #expect(optional.vouchesForPlainObjects)
    #expect(vouched(optional, #"{"n":1}"#) != nil)
    #expect(vouched(optional, #"{"n":1,"p":"abc"}"#) == nil)
    #expect(treePath(optional, #"{"n":1,"p":"abc"}"#) != nil)
}

/// Every one-byte change, deletion and truncation of plain bodies, against the tree.
@Test func everyOneByteChangeOfPlainBodiesIsSound() throws {
    let schemas = [try compile(pingSchema), try compile(richSchema)]
    let seeds = [#"{"seq":12,"payload":"hi"}"#, #"{"name":"abc","n":-4,"mode":"r","on":true,"none":null,"either":"x"}"#]
    let alphabet: [UInt8] = Array(#"{}[]":,-0123456789.eEtrufalsn "\/ax"#.utf8) + [0x00, 0x01, 0x7F, 0xC3, 0xA9]
    var tried = 0
    for schema in schemas {
        for seed in seeds {
            let bytes = Array(seed.utf8)
            var variants: [[UInt8]] = []
            for i in bytes.indices {
                variants.append(Array(bytes[..<i]))
                var deleted = bytes
                deleted.remove(at: i)
                variants.append(deleted)
                for byte in alphabet where byte != bytes[i] {
                    var changed = bytes
                    changed[i] = byte
                    variants.append(changed)
                }
            }
            for variant in variants {
                tried += 1
                let fast = variant.withUnsafeBytes { schema.checkPlainObject(in: $0, at: 0, enclosingDepth: 1, limits: .default) }
                guard let fast else { continue }
                let tree = variant.withUnsafeBytes { bytes -> (Int, Int)? in
                    guard let parsed = try? JSONParser.parseValue(in: bytes, at: 0, enclosingDepth: 1, limits: .default),
                          schema.isValid(parsed.value)
                    else { return nil }
                    return (parsed.end, parsed.nodes)
                }
                #expect(tree?.0 == fast.end && tree?.1 == fast.nodes, "vouched for \(String(decoding: variant, as: UTF8.self))")
            }
        }
    }
    #expect(tried > 5_000)
}
