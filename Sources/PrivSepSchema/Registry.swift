// The schema registry: every message type of a broker run, loaded from schema directories.
//
// A directory holds interface files (`*.json`: an interface, its $defs and its message types,
// shaped by schema/interface.schema.json) and plain JSON Schemas (`*.schema.json`). Loading
// checks each file against its meta-schema, resolves refs across files (relative paths), compiles
// every body and reply once, and reports each problem as `file: /json/pointer: what is wrong`.
import PrivSepJSON

/// One message type, compiled.
public struct MessageType: Sendable {
    /// Whether the type expects a reply.
    public enum Kind: String, Sendable { case request, event }

    /// The type name, e.g. `privsep.file.open`.
    public let name: String
    /// The interface that declares it, e.g. `privsep.file`.
    public let interface: String
    public let kind: Kind
    public let description: String
    /// The schema of the message body.
    public let body: Schema
    /// The schema of a successful reply's body (requests only).
    public let reply: Schema?
    /// The reply's schema is written exactly as the body's, in the same message entry
    /// (privsep.ping's echo): a body valid as one is valid as the other.
    public var replyIsBody: Bool { definition["reply"] != nil && definition["reply"] == definition["body"] }
    /// Error codes the type documents, beyond the standard ones.
    public let errors: [String]
    /// Descriptors that travel with the message, and with its successful reply.
    public let fds: Int
    public let replyFds: Int
    /// The file that declares it (a path, or `builtin:` and the path inside schema/).
    public let file: String
    /// The message entry as written in its interface file (what privsep.introspect returns).
    public let definition: JSONValue
}

/// Every problem found while loading schema directories.
public struct SchemaRegistryError: Error, Sendable, CustomStringConvertible {
    /// The errors, in file order.
    public let problems: [SchemaDiagnostic]
    public var description: String { problems.map { $0.problem.description }.joined(separator: "\n") }
}

/// One schema file as loaded: where it came from and its parsed JSON.
public struct SchemaDocument: Sendable {
    /// As shown in diagnostics: the directory given, then the relative path (`builtin:` + path
    /// for the built-in directory).
    public let display: String
    /// `file://` URI (or the built-in base), the base of its relative references.
    public let uri: String
    /// The path relative to its schema directory.
    public let relativePath: String
    public let value: JSONValue
    /// From the built-in directory rather than a directory given.
    public let isBuiltin: Bool
}

/// The message types of one broker run, from the built-in directory plus configured ones.
public struct SchemaRegistry: Sendable {
    /// Types by name.
    public let types: [String: MessageType]
    /// Every file loaded, built-in ones first, then the directories in the order given.
    public let documents: [SchemaDocument]
    /// Warnings found while loading (open objects, risky patterns); errors make loading fail.
    public let warnings: [SchemaDiagnostic]
    /// Plain schemas (`*.schema.json`) by display path.
    let plainSchemas: [String: Schema]

    /// The type named `name`, or nil.
    public subscript(name: String) -> MessageType? { types[name] }

    /// All type names, sorted.
    public var typeNames: [String] { types.keys.sorted() }

    /// Loads the built-in directory (unless `includeBuiltin` is false) and every directory given,
    /// recursively. Fails with every problem found if any is an error.
    public static func load(directories: [String], includeBuiltin: Bool = true,
                            options: SchemaOptions = SchemaOptions(assertFormat: true)) throws(SchemaRegistryError) -> SchemaRegistry {
        let (registry, diagnostics) = check(directories: directories, includeBuiltin: includeBuiltin, options: options)
        let errors = diagnostics.filter { $0.severity == .error }
        guard let registry, errors.isEmpty else { throw SchemaRegistryError(problems: errors) }
        return registry
    }

    /// Loads like `load` but never throws: every finding, errors and warnings, in file order, and
    /// the registry when there were no errors. This is `privsep schema check`.
    public static func check(directories: [String], includeBuiltin: Bool = true,
                             options: SchemaOptions = SchemaOptions(assertFormat: true)) -> (SchemaRegistry?, [SchemaDiagnostic]) {
        var loader = RegistryLoader(options: options)
        loader.run(directories: directories, includeBuiltin: includeBuiltin)
        let errors = loader.diagnostics.contains { $0.severity == .error }
        let registry = errors ? nil : SchemaRegistry(
            types: loader.types, documents: loader.documents, warnings: loader.diagnostics, plainSchemas: loader.plainSchemas)
        return (registry, loader.diagnostics)
    }

    /// A plain schema of the built-in directory, compiled: `config.schema.json`,
    /// `envelope.schema.json` or `interface.schema.json`.
    public static func builtinSchema(_ path: String, options: SchemaOptions = SchemaOptions(assertFormat: true)) throws(SchemaError) -> Schema {
        let compiler = SchemaCompiler(options: options)
        for file in BuiltinSchemas.files {
            guard let value = try? JSONParser.parse(file.text, limits: RegistryLoader.limits) else { continue }
            let uri = RegistryLoader.builtinBase + file.path
            if file.path.hasSuffix(".schema.json") {
                try compiler.add(value, uri: uri)
            } else {
                try compiler.add(value, uri: uri, schemaRoots: RegistryLoader.schemaRoots(of: value))
            }
        }
        return try compiler.compile(RegistryLoader.builtinBase + path)
    }
}

/// One loading pass; collects diagnostics instead of stopping at the first problem.
struct RegistryLoader {
    static let builtinBase = "privsep:/schema/"
    static let limits = JSONLimits(maxDepth: 128, maxNumberLength: 400)
    static let interfaceMetaSchema = "interface.schema.json"

    struct SourceFile {
        var display: String
        var uri: String
        var value: JSONValue
        var relativePath: String
        var isBuiltin: Bool
        var isInterface: Bool { !relativePath.hasSuffix(".schema.json") }
    }

    let options: SchemaOptions
    var diagnostics: [SchemaDiagnostic] = []
    var types: [String: MessageType] = [:]
    var plainSchemas: [String: Schema] = [:]
    var displayByURI: [String: String] = [:]
    var documents: [SchemaDocument] = []

    init(options: SchemaOptions) { self.options = options }

    mutating func run(directories: [String], includeBuiltin: Bool) {
        var sources: [SourceFile] = []
        var overridden: Set<String> = []
        for directory in directories {
            let root = SchemaFiles.absolute(directory)
            let files: [String]
            do {
                files = try SchemaFiles.jsonFiles(in: root)
            } catch {
                report(.error, error)
                continue
            }
            for relative in files {
                let display = directory.hasSuffix("/") ? directory + relative : directory + "/" + relative
                do {
                    let bytes = try SchemaFiles.read(root + "/" + relative)
                    // A file at a built-in's relative path replaces it: that is how the repository's
                    // own schema/ is checked as it is on disk.
                    overridden.insert(relative)
                    parse(bytes, display: display, uri: "file://" + root + "/" + relative, relativePath: relative,
                          isBuiltin: false, into: &sources)
                } catch {
                    report(.error, error)
                }
            }
        }
        if includeBuiltin {
            var builtins: [SourceFile] = []
            for file in BuiltinSchemas.files where !overridden.contains(file.path) {
                parse(Array(file.text.utf8), display: "builtin:" + file.path, uri: RegistryLoader.builtinBase + file.path,
                      relativePath: file.path, isBuiltin: true, into: &builtins)
            }
            sources = builtins + sources
        }
        for source in sources { displayByURI[URI.split(source.uri).0] = source.display }
        documents = sources.map {
            SchemaDocument(display: $0.display, uri: $0.uri, relativePath: $0.relativePath, value: $0.value, isBuiltin: $0.isBuiltin)
        }
        let checked = checkAgainstMetaSchemas(sources)
        compile(checked)
    }

    private mutating func parse(_ bytes: [UInt8], display: String, uri: String, relativePath: String, isBuiltin: Bool,
                                into sources: inout [SourceFile])
    {
        do {
            let value = try JSONParser.parse(bytes, limits: RegistryLoader.limits)
            sources.append(SourceFile(display: display, uri: uri, value: value, relativePath: relativePath, isBuiltin: isBuiltin))
        } catch {
            report(.error, SchemaError(location: display, pointer: "", message: "not strict JSON: \(error)"))
        }
    }

    private mutating func report(_ severity: SchemaDiagnostic.Severity, _ error: SchemaError) {
        var error = error
        if let display = displayByURI[URI.split(error.location).0] { error.location = display }
        diagnostics.append(SchemaDiagnostic(severity: severity, problem: error))
    }

    static func schemaRoots(of value: JSONValue) -> [[String]] {
        var roots: [[String]] = []
        if case .object(let defs)? = value["$defs"] {
            for (name, _) in defs.members { roots.append(["$defs", name]) }
        }
        if case .object(let messages)? = value["messages"] {
            for (type, entry) in messages.members {
                if entry["body"] != nil { roots.append(["messages", type, "body"]) }
                if entry["reply"] != nil { roots.append(["messages", type, "reply"]) }
            }
        }
        return roots
    }

    /// Interface files against interface.schema.json, plain schemas against the 2020-12 meta-schema.
    private mutating func checkAgainstMetaSchemas(_ sources: [SourceFile]) -> [SourceFile] {
        let interfaceSchema: Schema
        let metaSchema: Schema
        do {
            interfaceSchema = try SchemaRegistry.builtinSchema(RegistryLoader.interfaceMetaSchema)
            let compiler = SchemaCompiler()
            metaSchema = try compiler.compile("https://json-schema.org/draft/2020-12/schema")
        } catch {
            report(.error, error)
            return []
        }
        var passed: [SourceFile] = []
        for source in sources {
            let result = (source.isInterface ? interfaceSchema : metaSchema).validate(source.value)
            if result.valid {
                passed.append(source)
                continue
            }
            for unit in result.errors {
                report(.error, SchemaError(location: source.display, pointer: unit.instanceLocation,
                                           message: "\(unit.error) (\(source.isInterface ? "interface.schema.json" : "meta-schema") \(unit.keywordLocation))"))
            }
        }
        return passed
    }

    private mutating func compile(_ sources: [SourceFile]) {
        let compiler = SchemaCompiler(options: options)
        var added: [SourceFile] = []
        for source in sources {
            do {
                if source.isInterface {
                    try compiler.add(source.value, uri: source.uri, schemaRoots: RegistryLoader.schemaRoots(of: source.value), lint: true)
                } else {
                    try compiler.add(source.value, uri: source.uri, lint: true)
                }
                added.append(source)
            } catch {
                report(.error, error)
            }
        }
        var declaredIn: [String: String] = [:]
        for source in added {
            guard source.isInterface else {
                do {
                    plainSchemas[source.display] = try compiler.compile(source.uri)
                } catch {
                    report(.error, error)
                }
                continue
            }
            compileInterface(source, compiler, &declaredIn)
        }
        for diagnostic in compiler.diagnostics { report(diagnostic.severity, diagnostic.problem) }
    }

    private mutating func compileInterface(_ source: SourceFile, _ compiler: SchemaCompiler, _ declaredIn: inout [String: String]) {
        let interface = source.value["interface"]?.stringValue ?? ""
        if case .object(let defs)? = source.value["$defs"] {
            for (name, _) in defs.members {
                do {
                    _ = try compiler.compile(source.uri + "#" + Pointer.string(["$defs", name]))
                } catch {
                    report(.error, error)
                }
            }
        }
        guard case .object(let messages)? = source.value["messages"] else { return }
        for (name, entry) in messages.members {
            let pointer = Pointer.string(["messages", name])
            if !name.hasPrefix(interface + ".") && name != interface {
                report(.error, SchemaError(location: source.display, pointer: pointer,
                                           message: "type \(name) is not in interface \(interface) (names start with \"\(interface).\")"))
            }
            if let other = declaredIn[name] {
                report(.error, SchemaError(location: source.display, pointer: pointer, message: "duplicate type \(name), also declared in \(other)"))
                continue
            }
            declaredIn[name] = source.display
            do {
                let body = try compiler.compile(source.uri + "#" + pointer + "/body")
                let reply = entry["reply"] == nil ? nil : try compiler.compile(source.uri + "#" + pointer + "/reply")
                let kind: MessageType.Kind = entry["kind"]?.stringValue == "request" ? .request : .event
                types[name] = MessageType(
                    name: name, interface: interface, kind: kind, description: entry["description"]?.stringValue ?? "",
                    body: body, reply: reply, errors: (entry["errors"]?.arrayValue ?? []).compactMap(\.stringValue),
                    fds: Int(entry["fds"]?.int64Value ?? 0), replyFds: Int(entry["reply_fds"]?.int64Value ?? 0),
                    file: source.display, definition: entry)
            } catch {
                report(.error, error)
            }
        }
    }
}
