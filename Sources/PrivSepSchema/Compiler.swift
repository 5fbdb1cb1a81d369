// Schema compilation: documents are indexed (resources, anchors), then each schema is turned into
// a graph of SchemaNodes with every $ref resolved and every regex compiled, exactly once.
//
// Locations are (document, JSON pointer) pairs. A $ref is resolved to a URI, the URI to a schema
// resource (a document root or a subschema with $id), and the fragment to a pointer or anchor
// inside it. Nodes are memoised by location, which is also what makes recursive schemas finite.
//
// Ownership: a $ref may point back at an ancestor, and a resource's $dynamicAnchor table at the
// nodes below it, so the graph has cycles. No node owns another: every node a compiler creates
// belongs to its SchemaGraph, and nodes name each other (and resources their anchors) through
// `Subschema`, a reference that does not retain. Every `Schema` compiled holds the graph, so a
// node lives exactly as long as anything that can reach it.
import Glibc
import PrivSepJSON

/// The compiled form of one schema object.
///
/// Fields are written only while compiling, before any validation can see the node, so they
/// skip dynamic exclusivity checks (`@exclusivity(unchecked)`), which would otherwise cost a
/// runtime call on every read in the validator's hot loop.
///
/// Built and linked by `SchemaCompiler`, never mutated afterwards: that is why it may be shared
/// between threads (`@unchecked Sendable`). Owned by the compiler's SchemaGraph alone.
final class SchemaNode: @unchecked Sendable {
    enum Kind { case accept, reject, keywords }
    @exclusivity(unchecked) var kind: Kind = .keywords
    @exclusivity(unchecked) var keywords: [Keyword] = []
    /// Only assertions on the value itself (type, bounds, pattern, enum...): no subschemas.
    @exclusivity(unchecked) var isLeaf = false
    /// Whether unevaluatedProperties/Items is among the keywords: only then are annotations kept.
    @exclusivity(unchecked) var hasUnevaluated = false
    /// A document root or a subschema with `$id`: entering it enters a new dynamic scope.
    @exclusivity(unchecked) var isResourceRoot = false
    @exclusivity(unchecked) var resource: SchemaResource
    /// The absolute URI of this schema, for absoluteKeywordLocation.
    @exclusivity(unchecked) var location: String

    init(resource: SchemaResource, location: String) {
        self.resource = resource
        self.location = location
    }
}

/// A schema resource, with the `$dynamicAnchor`s it declares.
final class SchemaResource: @unchecked Sendable {
    let uri: String
    @exclusivity(unchecked) var dynamicAnchors: [String: Subschema] = [:]
    init(uri: String) { self.uri = uri }
}

/// A reference from one compiled schema to another (or from a resource to an anchored schema)
/// that does not keep it alive: both belong to the same SchemaGraph, which outlives every walk
/// (see the file comment). Unretained, so that following it costs no reference counting.
struct Subschema {
    unowned(unsafe) let node: SchemaNode
    init(_ node: SchemaNode) { self.node = node }
}

/// Owns every node one compiler creates. The compiler appends while compiling; each `Schema`
/// compiled from it keeps it alive; nothing else reads it, so sharing it between threads is safe.
final class SchemaGraph: @unchecked Sendable {
    private(set) var nodes: [SchemaNode] = []

    func adopt(_ node: SchemaNode) { nodes.append(node) }
}

/// One keyword of a compiled schema.
struct Keyword {
    var check: Check
    /// The keyword's name (for the properties group, "properties").
    var name: String
}

/// What a keyword checks, with everything precomputed.
enum Check {
    case type(TypeSet)
    case constant(JSONValue)
    case enumeration(EnumSet)
    case multipleOf(JSONNumber)
    case minimum(JSONNumber)
    case exclusiveMinimum(JSONNumber)
    case maximum(JSONNumber)
    case exclusiveMaximum(JSONNumber)
    case minLength(Int)
    case maxLength(Int)
    case pattern(ECMARegex)
    case format(StringFormat)
    case minItems(Int)
    case maxItems(Int)
    case uniqueItems
    case minProperties(Int)
    case maxProperties(Int)
    case required([String])
    case dependentRequired([(String, [String])])
    case ref(Subschema)
    case dynamicRef(Subschema, String)
    case allOf([Subschema])
    case anyOf([Subschema])
    case oneOf([Subschema])
    case not(Subschema)
    case conditional(Subschema, Subschema?, Subschema?)
    case properties(PropertyApplicator)
    case items(ItemApplicator)
    case contains(Subschema, min: Int, max: Int?)
    case propertyNames(Subschema)
    case dependentSchemas([(String, Subschema)])
    case unevaluatedItems(Subschema)
    case unevaluatedProperties(Subschema)
}

extension Check {
    /// Whether the keyword only looks at the value itself (applies no subschema).
    var isAssertion: Bool {
        switch self {
        case .type, .constant, .enumeration, .multipleOf, .minimum, .exclusiveMinimum, .maximum, .exclusiveMaximum,
             .minLength, .maxLength, .pattern, .format, .minItems, .maxItems, .uniqueItems, .minProperties,
             .maxProperties, .required, .dependentRequired:
            return true
        default:
            return false
        }
    }
}

/// The JSON types a `type` keyword accepts, as bits.
struct TypeSet {
    var bits: UInt8
    static let null: UInt8 = 1, boolean: UInt8 = 2, object: UInt8 = 4, array: UInt8 = 8
    static let number: UInt8 = 16, string: UInt8 = 32, integer: UInt8 = 64

    func accepts(_ value: JSONValue) -> Bool {
        switch value {
        case .null: return bits & TypeSet.null != 0
        case .bool: return bits & TypeSet.boolean != 0
        case .string: return bits & TypeSet.string != 0
        case .object: return bits & TypeSet.object != 0
        case .array: return bits & TypeSet.array != 0
        case .number(let number):
            if bits & TypeSet.number != 0 { return true }
            return bits & TypeSet.integer != 0 && number.isIntegral
        }
    }

    static func bit(_ name: String) -> UInt8? {
        switch name {
        case "null": return null
        case "boolean": return boolean
        case "object": return object
        case "array": return array
        case "number": return number
        case "string": return string
        case "integer": return integer
        default: return nil
        }
    }
}

/// `enum` values; a hash set once the list is long enough for hashing to pay. String values
/// are also kept as bytes, compared without building anything.
struct EnumSet {
    var values: [JSONValue]
    var set: Set<JSONValue>?
    var strings: [[UInt8]]

    init(values: [JSONValue]) {
        self.values = values
        set = values.count > 8 ? Set(values) : nil
        strings = values.compactMap { if case .string(let s) = $0 { return Array(s.utf8) }; return nil }
    }

    func contains(_ value: JSONValue) -> Bool {
        if let set { return set.contains(value) }
        if case .string(let string) = value {
            for candidate in strings where equalBytes(string, candidate) { return true }
            return false
        }
        for candidate in values where candidate == value { return true }
        return false
    }
}

/// properties + patternProperties + additionalProperties, applied in one pass over the members.
/// A class so that evaluating it costs one reference, not a copy of its arrays.
final class PropertyApplicator: @unchecked Sendable {
    struct Named {
        var key: String
        /// The key's UTF-8 bytes: member names are compared byte for byte, as JSON compares them.
        var bytes: [UInt8]
        var node: Subschema
        /// Listed in the sibling `required`: counted during the pass instead of searched for.
        var required: Bool
    }
    @exclusivity(unchecked) var named: [Named] = []
    @exclusivity(unchecked) var index: [String: Int]?
    @exclusivity(unchecked) var patterns: [(source: String, regex: ECMARegex, node: Subschema)] = []
    @exclusivity(unchecked) var additional: Subschema?
    /// How many `required` names the pass counts (all of them are in `named`); 0 when the
    /// `required` keyword checks them itself.
    @exclusivity(unchecked) var requiredCount = 0
    @exclusivity(unchecked) var requiredNames: [String] = []

    /// The index in `named` of `key`. Members usually come in the schema's order, so the search
    /// starts at `hint` (the entry after the previous match) and wraps around.
    @inline(__always)
    func lookup(_ key: String, hint: inout Int) -> Int? {
        if let index {
            guard let i = index[key], equalBytes(key, named[i].bytes) else { return nil }
            return i
        }
        let count = named.count
        guard count > 0 else { return nil }
        var i = hint < count ? hint : 0
        for _ in 0..<count {
            if equalBytes(key, named[i].bytes) {
                hint = i + 1
                return i
            }
            i = i + 1 == count ? 0 : i + 1
        }
        return nil
    }
}

/// Whether `string`'s UTF-8 is exactly `bytes`. `withUTF8` hands over the bytes in place (small
/// strings are spilled to the stack), which is far cheaper than iterating the UTF-8 view.
@inline(__always)
func equalBytes(_ string: String, _ bytes: [UInt8]) -> Bool {
    var string = string
    return string.withUTF8 { utf8 in
        guard utf8.count == bytes.count else { return false }
        guard utf8.count > 0 else { return true }
        return bytes.withUnsafeBufferPointer { memcmp(utf8.baseAddress!, $0.baseAddress!, utf8.count) == 0 }
    }
}

/// Whether two member names are the same code points. Swift's `==` compares canonical
/// equivalence ("é" == "e\u{301}"), JSON does not; `==` is still the fast first test, since
/// byte-equal strings are always `==`.
@inline(__always)
func sameKey(_ a: String, _ b: String) -> Bool {
    guard a.utf8.count == b.utf8.count, a == b else { return false }
    if let exact = a.utf8.withContiguousStorageIfAvailable({ pa in
        b.utf8.withContiguousStorageIfAvailable { pb in pa.count == 0 || memcmp(pa.baseAddress!, pb.baseAddress!, pa.count) == 0 }
    }), let exact {
        return exact
    }
    return a.utf8.elementsEqual(b.utf8)
}

/// prefixItems + items.
final class ItemApplicator: @unchecked Sendable {
    @exclusivity(unchecked) var prefix: [Subschema] = []
    @exclusivity(unchecked) var rest: Subschema?
}

/// Which vocabularies a schema's meta-schema enables.
struct Vocabularies: Equatable {
    var applicator = true
    var validation = true
    var unevaluated = true
    var formatAssertion = false
    static let all = Vocabularies()
}

/// Compiles JSON Schema 2020-12 documents into validators.
///
/// Add every document that refs may reach (`add`), or give a `resolver` for URIs not added; the
/// 2020-12 meta-schemas are built in. Then `compile` a URI. Nothing is ever fetched.
public final class SchemaCompiler {
    struct Location: Hashable {
        var document: Int
        var pointer: [String]
    }

    struct Document {
        var uri: String
        var root: JSONValue
        var vocabularies: Vocabularies
    }

    /// Loads a document for an absolute URI nothing added covers (e.g. `--map`), or returns nil.
    public var resolver: ((String) -> JSONValue?)?
    /// Options for every schema compiled here.
    public let options: SchemaOptions
    /// Findings that do not stop compilation (unknown keywords, open objects, risky patterns...),
    /// for documents added with `lint: true`.
    public private(set) var diagnostics: [SchemaDiagnostic] = []

    var documents: [Document] = []
    var linted: Set<Int> = []
    var resources: [String: Location] = [:]
    var anchors: [String: Location] = [:]
    var dynamicAnchorLocations: [String: [String: Location]] = [:]
    /// Nodes by location; `graph` owns them.
    var nodes: [Location: Subschema] = [:]
    /// Owns every node compiled here; shared with each Schema compiled here.
    let graph = SchemaGraph()
    var resourceObjects: [String: SchemaResource] = [:]
    var regexCache: [String: ECMARegex] = [:]

    /// Creates a compiler.
    public init(options: SchemaOptions = SchemaOptions()) {
        self.options = options
    }

    /// Adds a document under `uri` (its retrieval URI; its own `$id`, if any, takes precedence).
    ///
    /// `schemaRoots` lists the pointers of the schemas inside a document that is not itself a
    /// schema (an interface file); nil means the document is a schema. With `lint`, compiling it
    /// records diagnostics.
    public func add(_ document: JSONValue, uri: String, schemaRoots: [[String]]? = nil, lint: Bool = false) throws(SchemaError) {
        let base = URI.split(uri).0
        if resources[base] != nil { throw SchemaError(location: uri, pointer: "", message: "a document with this URI is already loaded") }
        guard documents.count < options.maxDocuments else {
            throw SchemaError(location: uri, pointer: "", message: "more than \(options.maxDocuments) schema documents")
        }
        let index = documents.count
        documents.append(Document(uri: base, root: document, vocabularies: .all))
        if lint { linted.insert(index) }
        resources[base] = Location(document: index, pointer: [])
        if let schemaRoots {
            for root in schemaRoots {
                guard let value = Pointer.resolve(root, in: document) else { continue }
                try indexSchema(value, at: Location(document: index, pointer: root), base: base, depth: 0)
            }
        } else {
            try indexSchema(document, at: Location(document: index, pointer: []), base: base, depth: 0)
        }
        documents[index].vocabularies = try vocabularies(of: document, uri: base)
    }

    /// Compiles the schema a URI (with optional fragment) names.
    func compileNode(_ uri: String) throws(SchemaError) -> SchemaNode {
        let location = try locate(uri, from: uri, pointer: [])
        return try compile(at: location, depth: 0)
    }

    /// Compiles the schema at `uri` (a document URI, or with a `#fragment`).
    public func compile(_ uri: String) throws(SchemaError) -> Schema {
        Schema(root: try compileNode(uri), graph: graph, options: options)
    }

    // MARK: Indexing

    static let singleSchemaKeywords: Set<String> = [
        "additionalProperties", "unevaluatedProperties", "unevaluatedItems", "items", "contains",
        "propertyNames", "not", "if", "then", "else", "contentSchema",
    ]
    static let arraySchemaKeywords: Set<String> = ["allOf", "anyOf", "oneOf", "prefixItems"]
    static let mapSchemaKeywords: Set<String> = ["properties", "patternProperties", "$defs", "dependentSchemas"]

    private func indexSchema(_ value: JSONValue, at location: Location, base: String, depth: Int) throws(SchemaError) {
        guard case .object(let object) = value else { return }
        guard depth <= options.maxCompileDepth else {
            throw error(at: location, "schema nesting exceeds \(options.maxCompileDepth) levels")
        }
        var base = base
        if case .string(let id)? = object["$id"] {
            let (absolute, fragment) = URI.split(URI.resolve(id, against: base))
            if !fragment.isEmpty { throw error(at: location + ["$id"], "$id must not have a non-empty fragment") }
            base = absolute
            if resources[base] == nil { resources[base] = location }
        }
        if case .string(let anchor)? = object["$anchor"] {
            anchors[base + "#" + anchor] = location
        }
        if case .string(let anchor)? = object["$dynamicAnchor"] {
            if anchors[base + "#" + anchor] == nil { anchors[base + "#" + anchor] = location }
            dynamicAnchorLocations[base, default: [:]][anchor] = location
        }
        for (key, child) in object.members {
            if SchemaCompiler.singleSchemaKeywords.contains(key) {
                try indexSchema(child, at: location + [key], base: base, depth: depth + 1)
            } else if SchemaCompiler.arraySchemaKeywords.contains(key), case .array(let items) = child {
                for (i, item) in items.enumerated() {
                    try indexSchema(item, at: location + [key, String(i)], base: base, depth: depth + 1)
                }
            } else if SchemaCompiler.mapSchemaKeywords.contains(key), case .object(let map) = child {
                for (name, item) in map.members {
                    try indexSchema(item, at: location + [key, name], base: base, depth: depth + 1)
                }
            }
        }
    }

    /// The vocabularies enabled by a document's `$schema`, when that meta-schema declares them.
    private func vocabularies(of document: JSONValue, uri: String) throws(SchemaError) -> Vocabularies {
        guard case .string(let metaURI)? = document["$schema"] else { return .all }
        let meta = URI.split(metaURI).0
        if meta == "https://json-schema.org/draft/2020-12/schema" { return .all }
        guard let location = try? locate(meta, from: uri, pointer: ["$schema"]),
            case .object(let vocabulary)? = root(of: location)["$vocabulary"]
        else { return .all }
        let prefix = "https://json-schema.org/draft/2020-12/vocab/"
        var result = Vocabularies(applicator: false, validation: false, unevaluated: false, formatAssertion: false)
        for (key, _) in vocabulary.members {
            switch key {
            case prefix + "applicator": result.applicator = true
            case prefix + "validation": result.validation = true
            case prefix + "unevaluated": result.unevaluated = true
            case prefix + "format-assertion": result.formatAssertion = true
            default: break
            }
        }
        return result
    }

    // MARK: Resolution

    func root(of location: Location) -> JSONValue {
        Pointer.resolve(location.pointer, in: documents[location.document].root) ?? .null
    }

    /// Finds the location an absolute URI names, loading built-in or resolver documents on demand.
    func locate(_ uri: String, from source: String, pointer: [String]) throws(SchemaError) -> Location {
        let (absolute, fragment) = URI.split(uri)
        if resources[absolute] == nil { try load(absolute, source: source, pointer: pointer) }
        guard let resource = resources[absolute] else {
            throw SchemaError(location: source, pointer: Pointer.string(pointer), message: "unresolvable reference \(uri)")
        }
        let decoded = URI.percentDecode(fragment)
        if decoded.isEmpty { return resource }
        if let tokens = Pointer.tokens(decoded) {
            let target = Location(document: resource.document, pointer: resource.pointer + tokens)
            guard Pointer.resolve(target.pointer, in: documents[target.document].root) != nil else {
                throw SchemaError(location: source, pointer: Pointer.string(pointer), message: "dangling reference \(uri)")
            }
            return target
        }
        guard let anchored = anchors[absolute + "#" + decoded] else {
            throw SchemaError(location: source, pointer: Pointer.string(pointer), message: "unknown anchor in reference \(uri)")
        }
        return anchored
    }

    private func load(_ absolute: String, source: String, pointer: [String]) throws(SchemaError) {
        if let text = MetaSchemas.documents[absolute] {
            guard let value = try? JSONParser.parse(text) else {
                throw SchemaError(location: absolute, pointer: "", message: "built-in meta-schema does not parse")
            }
            try add(value, uri: absolute)
            return
        }
        if let resolver, let value = resolver(absolute) {
            try add(value, uri: absolute)
        }
    }

    /// The base URI and resource in effect at a location: walks from the document root, applying
    /// every `$id` met on the way.
    private func context(of location: Location) -> (base: String, resourceStart: Int) {
        var base = documents[location.document].uri
        var start = 0
        var current = documents[location.document].root
        for (i, token) in location.pointer.enumerated() {
            // The target's own $id is applied by compile(); only its ancestors' count here.
            if case .string(let id)? = current["$id"] {
                base = URI.split(URI.resolve(id, against: base)).0
                start = i
            }
            switch current {
            case .object(let object): current = object[token] ?? .null
            case .array(let array): current = Int(token).flatMap { $0 >= 0 && $0 < array.count ? array[$0] : nil } ?? .null
            default: current = .null
            }
        }
        return (base, start)
    }

    private func resourceObject(_ uri: String) -> SchemaResource {
        if let existing = resourceObjects[uri] { return existing }
        let created = SchemaResource(uri: uri)
        resourceObjects[uri] = created
        return created
    }

    func error(at location: Location, _ message: String) -> SchemaError {
        SchemaError(location: documents[location.document].uri, pointer: Pointer.string(location.pointer), message: message)
    }

    private func note(_ severity: SchemaDiagnostic.Severity, at location: Location, _ message: String) {
        guard linted.contains(location.document) else { return }
        diagnostics.append(SchemaDiagnostic(severity: severity, problem: error(at: location, message)))
    }

    // MARK: Compilation

    func compile(at location: Location, depth: Int) throws(SchemaError) -> SchemaNode {
        if let existing = nodes[location] { return existing.node }
        let (base, start) = context(of: location)
        return try compile(root(of: location), at: location, base: base, resourceStart: start, depth: depth)
    }

    private func compile(_ value: JSONValue, at location: Location, base: String, resourceStart: Int, depth: Int) throws(SchemaError) -> SchemaNode {
        if let existing = nodes[location] { return existing.node }
        guard depth <= options.maxCompileDepth else {
            throw error(at: location, "schema nesting (with $ref hops) exceeds \(options.maxCompileDepth) levels")
        }
        var base = base
        var resourceStart = resourceStart
        var isRoot = location.pointer.isEmpty
        if case .string(let id)? = value["$id"] {
            base = URI.split(URI.resolve(id, against: base)).0
            resourceStart = location.pointer.count
            isRoot = true
        }
        let fragment = Pointer.string(location.pointer[resourceStart...])
        let node = SchemaNode(resource: resourceObject(base), location: base + "#" + fragment)
        node.isResourceRoot = isRoot
        graph.adopt(node)
        nodes[location] = Subschema(node)

        switch value {
        case .bool(let flag):
            node.kind = flag ? .accept : .reject
            return node
        case .object:
            break
        default:
            throw error(at: location, "a schema must be an object or a boolean")
        }
        guard case .object(let object) = value else { return node }
        if isRoot, let dynamic = dynamicAnchorLocations[base] {
            for (name, target) in dynamic.sorted(by: { $0.key < $1.key }) where node.resource.dynamicAnchors[name] == nil {
                node.resource.dynamicAnchors[name] = Subschema(try compile(at: target, depth: depth + 1))
            }
        }
        let scope = CompileScope(location: location, base: base, resourceStart: resourceStart, depth: depth,
                                 vocabularies: documents[location.document].vocabularies)
        node.keywords = try compileKeywords(object, scope)
        node.hasUnevaluated = node.keywords.contains {
            if case .unevaluatedItems = $0.check { return true }
            if case .unevaluatedProperties = $0.check { return true }
            return false
        }
        node.isLeaf = node.keywords.allSatisfy(\.check.isAssertion)
        return node
    }

    struct CompileScope {
        var location: Location
        var base: String
        var resourceStart: Int
        var depth: Int
        var vocabularies: Vocabularies
    }

    private func child(_ value: JSONValue, _ scope: CompileScope, _ path: String...) throws(SchemaError) -> Subschema {
        let location = scope.location + path
        return Subschema(try compile(value, at: location, base: scope.base, resourceStart: scope.resourceStart, depth: scope.depth + 1))
    }

    static let knownKeywords: Set<String> = [
        "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary", "$comment", "$defs",
        "prefixItems", "items", "contains", "additionalProperties", "properties", "patternProperties",
        "dependentSchemas", "propertyNames", "if", "then", "else", "allOf", "anyOf", "oneOf", "not",
        "unevaluatedItems", "unevaluatedProperties",
        "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
        "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxContains", "minContains",
        "maxProperties", "minProperties", "required", "dependentRequired",
        "title", "description", "default", "deprecated", "readOnly", "writeOnly", "examples",
        "format", "contentEncoding", "contentMediaType", "contentSchema",
        // privsep's own annotation: the value is redacted wherever the broker shows messages (tap).
        "x-sensitive",
    ]

    // swiftlint:disable:next function_body_length cyclomatic_complexity
    private func compileKeywords(_ object: JSONObject, _ scope: CompileScope) throws(SchemaError) -> [Keyword] {
        var fast: [Keyword] = []
        var applicators: [Keyword] = []
        var last: [Keyword] = []
        let vocab = scope.vocabularies
        func here(_ keyword: String) -> Location { scope.location + [keyword] }
        func count(_ keyword: String) throws(SchemaError) -> Int? {
            guard let value = object[keyword] else { return nil }
            guard case .number(let number) = value, number.isIntegral, !number.canonical.negative else {
                throw error(at: here(keyword), "\(keyword) must be a non-negative integer")
            }
            return number.int64Value.map { Int(clamping: $0) } ?? Int.max
        }
        func number(_ keyword: String) throws(SchemaError) -> JSONNumber? {
            guard let value = object[keyword] else { return nil }
            guard case .number(let number) = value else { throw error(at: here(keyword), "\(keyword) must be a number") }
            return number
        }
        func schemas(_ keyword: String) throws(SchemaError) -> [Subschema]? {
            guard let value = object[keyword] else { return nil }
            guard case .array(let items) = value, !items.isEmpty else {
                throw error(at: here(keyword), "\(keyword) must be a non-empty array of schemas")
            }
            var nodes: [Subschema] = []
            for (i, item) in items.enumerated() { nodes.append(try child(item, scope, keyword, String(i))) }
            return nodes
        }
        func schema(_ keyword: String) throws(SchemaError) -> Subschema? {
            guard let value = object[keyword] else { return nil }
            return try child(value, scope, keyword)
        }
        func stringArray(_ value: JSONValue, _ location: Location) throws(SchemaError) -> [String] {
            guard case .array(let items) = value else { throw error(at: location, "must be an array of strings") }
            var strings: [String] = []
            for item in items {
                guard case .string(let s) = item else { throw error(at: location, "must be an array of strings") }
                strings.append(s)
            }
            return strings
        }

        // "x-" members are deliberate extension annotations (e.g. "x-sensitive"), not typos.
        for (key, _) in object.members where !SchemaCompiler.knownKeywords.contains(key) && !key.hasPrefix("x-") {
            note(.error, at: here(key), "unknown keyword \"\(key)\" (a typo here silently loosens the schema)")
        }

        // Core.
        if case .string(let reference)? = object["$ref"] {
            let target = try compile(at: try locate(URI.resolve(reference, against: scope.base), from: documents[scope.location.document].uri, pointer: here("$ref").pointer), depth: scope.depth + 1)
            applicators.append(Keyword(check: .ref(Subschema(target)), name: "$ref"))
        }
        if case .string(let reference)? = object["$dynamicRef"] {
            let uri = URI.resolve(reference, against: scope.base)
            let targetLocation = try locate(uri, from: documents[scope.location.document].uri, pointer: here("$dynamicRef").pointer)
            let target = try compile(at: targetLocation, depth: scope.depth + 1)
            let fragment = URI.split(uri).1
            if !fragment.isEmpty, !fragment.hasPrefix("/"), case .string(let declared)? = root(of: targetLocation)["$dynamicAnchor"], declared == fragment {
                applicators.append(Keyword(check: .dynamicRef(Subschema(target), fragment), name: "$dynamicRef"))
            } else {
                applicators.append(Keyword(check: .ref(Subschema(target)), name: "$dynamicRef"))
            }
        }
        if let defs = object["$defs"] {
            guard case .object(let map) = defs else { throw error(at: here("$defs"), "$defs must be an object") }
            for (name, value) in map.members { _ = try child(value, scope, "$defs", name) }
        }

        // Validation.
        if vocab.validation {
            if let value = object["type"] {
                var bits: UInt8 = 0
                let names: [JSONValue]
                if case .array(let list) = value { names = list } else { names = [value] }
                for name in names {
                    guard case .string(let s) = name, let bit = TypeSet.bit(s) else {
                        throw error(at: here("type"), "type must be a type name or an array of them")
                    }
                    bits |= bit
                }
                fast.append(Keyword(check: .type(TypeSet(bits: bits)), name: "type"))
            }
            if let value = object["const"] { fast.append(Keyword(check: .constant(value), name: "const")) }
            if let value = object["enum"] {
                guard case .array(let values) = value else { throw error(at: here("enum"), "enum must be an array") }
                fast.append(Keyword(check: .enumeration(EnumSet(values: values)), name: "enum"))
            }
            if let n = try number("multipleOf") {
                guard !n.canonical.negative, !n.canonical.isZero else { throw error(at: here("multipleOf"), "multipleOf must be greater than 0") }
                fast.append(Keyword(check: .multipleOf(n), name: "multipleOf"))
            }
            if let n = try number("minimum") { fast.append(Keyword(check: .minimum(n), name: "minimum")) }
            if let n = try number("exclusiveMinimum") { fast.append(Keyword(check: .exclusiveMinimum(n), name: "exclusiveMinimum")) }
            if let n = try number("maximum") { fast.append(Keyword(check: .maximum(n), name: "maximum")) }
            if let n = try number("exclusiveMaximum") { fast.append(Keyword(check: .exclusiveMaximum(n), name: "exclusiveMaximum")) }
            if let n = try count("minLength") { fast.append(Keyword(check: .minLength(n), name: "minLength")) }
            if let n = try count("maxLength") { fast.append(Keyword(check: .maxLength(n), name: "maxLength")) }
            if let value = object["pattern"] {
                guard case .string(let source) = value else { throw error(at: here("pattern"), "pattern must be a string") }
                fast.append(Keyword(check: .pattern(try regex(source, at: here("pattern"))), name: "pattern"))
            }
            if let n = try count("minItems") { fast.append(Keyword(check: .minItems(n), name: "minItems")) }
            if let n = try count("maxItems") { fast.append(Keyword(check: .maxItems(n), name: "maxItems")) }
            if case .bool(true)? = object["uniqueItems"] { fast.append(Keyword(check: .uniqueItems, name: "uniqueItems")) }
            if let n = try count("minProperties") { fast.append(Keyword(check: .minProperties(n), name: "minProperties")) }
            if let n = try count("maxProperties") { fast.append(Keyword(check: .maxProperties(n), name: "maxProperties")) }
            if let value = object["required"] {
                fast.append(Keyword(check: .required(try stringArray(value, here("required"))), name: "required"))
            }
            if let value = object["dependentRequired"] {
                guard case .object(let map) = value else { throw error(at: here("dependentRequired"), "dependentRequired must be an object") }
                var entries: [(String, [String])] = []
                for (key, list) in map.members { entries.append((key, try stringArray(list, here("dependentRequired") + [key]))) }
                fast.append(Keyword(check: .dependentRequired(entries), name: "dependentRequired"))
            }
        }
        // Format: asserted on request (or by a format-assertion meta-schema), else an annotation.
        if case .string(let name)? = object["format"] {
            let format = StringFormat(rawValue: name)
            if format == nil { note(.error, at: here("format"), "format \"\(name)\" cannot be asserted") }
            if let format, options.assertFormat || vocab.formatAssertion {
                fast.append(Keyword(check: .format(format), name: "format"))
            }
        }

        // Applicators.
        if vocab.applicator {
            if let nodes = try schemas("allOf") { applicators.append(Keyword(check: .allOf(nodes), name: "allOf")) }
            if let nodes = try schemas("anyOf") { applicators.append(Keyword(check: .anyOf(nodes), name: "anyOf")) }
            if let nodes = try schemas("oneOf") { applicators.append(Keyword(check: .oneOf(nodes), name: "oneOf")) }
            if let node = try schema("not") { applicators.append(Keyword(check: .not(node), name: "not")) }
            if let condition = try schema("if") {
                applicators.append(Keyword(check: .conditional(condition, try schema("then"), try schema("else")), name: "if"))
            } else {
                _ = try schema("then")
                _ = try schema("else")
            }
            let properties = PropertyApplicator()
            var hasProperties = false
            if let value = object["properties"] {
                guard case .object(let map) = value else { throw error(at: here("properties"), "properties must be an object") }
                for (key, schema) in map.members {
                    properties.named.append(PropertyApplicator.Named(
                        key: key, bytes: Array(key.utf8), node: try child(schema, scope, "properties", key), required: false))
                }
                if properties.named.count > 8 {
                    var index: [String: Int] = [:]
                    for (i, entry) in properties.named.enumerated() { index[entry.key] = i }
                    properties.index = index
                }
                hasProperties = true
            }
            if let value = object["patternProperties"] {
                guard case .object(let map) = value else { throw error(at: here("patternProperties"), "patternProperties must be an object") }
                for (source, schema) in map.members {
                    let compiled = try regex(source, at: here("patternProperties") + [source])
                    properties.patterns.append((source, compiled, try child(schema, scope, "patternProperties", source)))
                }
                hasProperties = true
            }
            if let node = try schema("additionalProperties") {
                properties.additional = node
                hasProperties = true
            }
            // `required` names that `properties` also lists are counted during the properties pass
            // instead of searched for one by one.
            if let at = fast.firstIndex(where: { if case .required = $0.check { return true }; return false }),
               case .required(let names) = fast[at].check, Set(names).count == names.count,
               names.allSatisfy({ name in properties.named.contains { $0.key.utf8.elementsEqual(name.utf8) } }) {
                for i in properties.named.indices where names.contains(where: { $0.utf8.elementsEqual(properties.named[i].key.utf8) }) {
                    properties.named[i].required = true
                }
                properties.requiredCount = names.count
                properties.requiredNames = names
                fast.remove(at: at)
                hasProperties = true
            }
            if hasProperties { applicators.append(Keyword(check: .properties(properties), name: "properties")) }
            // An explicit additionalProperties/unevaluatedProperties (even `true`) is a decision;
            // only an object schema that says nothing is flagged.
            if vocab.validation, case .string("object")? = object["type"],
               object["additionalProperties"] == nil, object["unevaluatedProperties"] == nil {
                note(.warning, at: scope.location, "object schema is open: add \"additionalProperties\": false or \"unevaluatedProperties\": false")
            }
            let items = ItemApplicator()
            if let nodes = try schemas("prefixItems") { items.prefix = nodes }
            items.rest = try schema("items")
            if !items.prefix.isEmpty || items.rest != nil { applicators.append(Keyword(check: .items(items), name: "items")) }
            if let node = try schema("contains") {
                let minimum = vocab.validation ? try count("minContains") ?? 1 : 1
                let maximum = vocab.validation ? try count("maxContains") : nil
                applicators.append(Keyword(check: .contains(node, min: minimum, max: maximum), name: "contains"))
            }
            if let node = try schema("propertyNames") { applicators.append(Keyword(check: .propertyNames(node), name: "propertyNames")) }
            if let value = object["dependentSchemas"] {
                guard case .object(let map) = value else { throw error(at: here("dependentSchemas"), "dependentSchemas must be an object") }
                var entries: [(String, Subschema)] = []
                for (key, schema) in map.members { entries.append((key, try child(schema, scope, "dependentSchemas", key))) }
                applicators.append(Keyword(check: .dependentSchemas(entries), name: "dependentSchemas"))
            }
        }
        if let value = object["contentSchema"] { _ = try child(value, scope, "contentSchema") }
        if vocab.unevaluated {
            if let node = try schema("unevaluatedItems") { last.append(Keyword(check: .unevaluatedItems(node), name: "unevaluatedItems")) }
            if let node = try schema("unevaluatedProperties") {
                last.append(Keyword(check: .unevaluatedProperties(node), name: "unevaluatedProperties"))
            }
        }
        return fast + applicators + last
    }

    private func regex(_ source: String, at location: Location) throws(SchemaError) -> ECMARegex {
        if let cached = regexCache[source] { return cached }
        do {
            let compiled = try ECMARegex(source, stepLimit: options.regexStepLimit)
            if compiled.mayBacktrackCatastrophically {
                note(.warning, at: location, "pattern \(source) nests quantifiers and may backtrack catastrophically")
            }
            regexCache[source] = compiled
            return compiled
        } catch let problem {
            throw error(at: location, "invalid regular expression \(source): \(problem.message)")
        }
    }
}

extension SchemaCompiler.Location {
    static func + (lhs: SchemaCompiler.Location, rhs: [String]) -> SchemaCompiler.Location {
        SchemaCompiler.Location(document: lhs.document, pointer: lhs.pointer + rhs)
    }
}
