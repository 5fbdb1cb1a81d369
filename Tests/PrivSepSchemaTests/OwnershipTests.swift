// A compiled schema owns its node graph through its SchemaGraph alone: it outlives the compiler,
// and it is freed with its last Schema even though $ref and $dynamicRef make the graph cyclic.
import PrivSepJSON
@testable import PrivSepSchema
import Testing

/// A recursive tree: `$ref` back to the root, a `$dynamicRef` resolved through the root's
/// `$dynamicAnchor`, and a definition that refers to itself.
private let recursiveTree = ##"""
    {"$id": "https://privsep.test/tree.json", "$dynamicAnchor": "node", "type": "object",
     "properties": {"value": {"type": "integer"}, "next": {"$ref": "#"},
                    "kids": {"type": "array", "items": {"$dynamicRef": "#node"}},
                    "loop": {"$ref": "#/$defs/loop"}},
     "$defs": {"loop": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/loop"}]}},
     "additionalProperties": false}
    """##

@Test func cyclicSchemaIsFreedWithItsLastSchema() throws {
    weak var graph: SchemaGraph?
    weak var root: SchemaNode?
    do {
        let schema = try compile(recursiveTree)
        graph = schema.graph
        root = schema.root
        let tree = try JSONParser.parse(#"{"value": 1, "next": {"value": 2, "kids": [{"value": 3}]}, "loop": null}"#)
        #expect(schema.isValid(tree))
        #expect(schema.validate(tree).valid)
        let bad = try JSONParser.parse(#"{"next": {"kids": [{"value": "3"}]}}"#)
        #expect(!schema.isValid(bad))
        #expect(schema.validate(bad).errors.contains { $0.instanceLocation == "/next/kids/0/value" })
        #expect(graph != nil && root != nil)
    }
    #expect(graph == nil, "the node graph outlived every Schema compiled from it")
    #expect(root == nil, "the root node outlived its graph")
}

@Test func schemaOutlivesItsCompilerAcrossDocuments() throws {
    // The only path to the other document's nodes is a $ref; the compiler is gone before use.
    let schema: Schema
    do {
        let compiler = SchemaCompiler()
        try compiler.add(try JSONParser.parse(#"{"$defs": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}}}"#),
                         uri: "https://privsep.test/defs.json")
        try compiler.add(try JSONParser.parse(#"{"type": "array", "items": {"$ref": "defs.json#/$defs/port"}}"#),
                         uri: "https://privsep.test/ports.json")
        schema = try compiler.compile("https://privsep.test/ports.json")
    }
    #expect(schema.isValid(try JSONParser.parse("[22, 443]")))
    #expect(!schema.isValid(try JSONParser.parse("[22, 0]")))
    #expect(schema.validate(try JSONParser.parse("[70000]")).errors.first?.instanceLocation == "/0")
}

@Test func schemasFromOneCompilerShareOneGraph() throws {
    let compiler = SchemaCompiler()
    try compiler.add(try JSONParser.parse(recursiveTree), uri: "https://privsep.test/tree.json")
    let whole = try compiler.compile("https://privsep.test/tree.json")
    let loop = try compiler.compile("https://privsep.test/tree.json#/$defs/loop")
    #expect(whole.graph === loop.graph)
    #expect(loop.isValid(.null))
    #expect(!loop.isValid(.number(JSONNumber(Int64(1)))))
}
