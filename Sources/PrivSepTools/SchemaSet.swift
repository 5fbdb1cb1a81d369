// The interface files of some schema directories, as written, for the generators. Loading goes
// through SchemaRegistry first, so everything generated from has passed the broker's own checks;
// the raw documents are kept beside it because code and docs need what the registry compiles
// away: interface descriptions, `$defs`, and the shape of each schema.

import PrivSepJSON
import PrivSepSchema

/// Why schema directories cannot be generated from.
public struct SchemaSetError: Error, Sendable, CustomStringConvertible {
    public let problems: [String]
    public var description: String { problems.joined(separator: "\n") }
}

/// The interfaces declared in a set of schema directories (the built-in directory is loaded for
/// references but not generated from, unless its files are given as a directory).
public struct SchemaSet: Sendable {
    /// One interface file.
    public struct Interface: Sendable {
        public let name: String
        public let description: String
        /// The file as displayed in diagnostics (the directory given, then the relative path).
        public let file: String
        /// The path relative to its schema directory (stable across checkouts).
        public let relativePath: String
        /// `file://` URI, the base of its relative references.
        public let uri: String
        /// Its message types, in file order.
        public let messages: [MessageType]
    }

    public let interfaces: [Interface]
    public let registry: SchemaRegistry
    /// Parsed documents by URI (no fragment).
    let documents: [String: JSONValue]

    /// Every message of every interface, by interface name then file order.
    public var messages: [MessageType] { interfaces.flatMap(\.messages) }

    /// Loads the directories through the registry (any error stops here) and takes their
    /// interface files from the documents it parsed.
    public static func load(directories: [String]) throws(SchemaSetError) -> SchemaSet {
        let registry: SchemaRegistry
        do {
            registry = try SchemaRegistry.load(directories: directories)
        } catch {
            throw SchemaSetError(problems: error.problems.map { "\($0.problem)" })
        }
        var documents: [String: JSONValue] = [:]
        var interfaces: [Interface] = []
        for document in registry.documents where !document.isBuiltin && !document.relativePath.hasSuffix(".schema.json") {
            let (relative, value) = (document.relativePath, document.value)
            documents[document.uri] = value
            // A file at a built-in's relative path replaces it, references included.
            documents["privsep:/schema/" + relative] = value
            guard let name = value["interface"]?.stringValue else { continue }
            var messages: [MessageType] = []
            if case .object(let entries)? = value["messages"] {
                for (type, _) in entries.members {
                    if let message = registry[type], message.file == document.display { messages.append(message) }
                }
            }
            interfaces.append(Interface(
                name: name, description: value["description"]?.stringValue ?? "", file: document.display,
                relativePath: relative, uri: document.uri, messages: messages))
        }
        interfaces.sort { $0.name < $1.name }
        return SchemaSet(interfaces: interfaces, registry: registry, documents: documents)
    }

    /// The interface declaring `message`.
    public func interface(of message: MessageType) -> Interface? {
        interfaces.first { $0.file == message.file }
    }

    /// Follows `$ref` from `schema` (at most 32 hops). Returns the schema reached and its base
    /// URI; a reference that does not resolve here (an anchor, a remote document) yields nil.
    func dereference(_ schema: JSONValue, base: String) -> (schema: JSONValue, base: String)? {
        var current = schema
        var currentBase = base
        for _ in 0..<32 {
            guard let ref = current["$ref"]?.stringValue else { return (current, currentBase) }
            let parts = ref.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
            let documentPart = String(parts[0])
            let fragment = parts.count > 1 ? String(parts[1]) : ""
            let target = documentPart.isEmpty ? currentBase : SchemaSet.resolve(documentPart, against: currentBase)
            guard let document = documents[target], let found = SchemaSet.pointer(fragment, in: document) else { return nil }
            current = found
            currentBase = target
        }
        return nil
    }

    /// A relative reference against a base URI (paths only: the only kind interface files use).
    static func resolve(_ reference: String, against base: String) -> String {
        if reference.contains(":") { return reference }
        guard let slash = base.lastIndex(of: "/") else { return reference }
        let directory = base[..<slash]
        guard let schemeEnd = directory.firstRange(of: ":") else { return reference }
        let scheme = String(directory[..<schemeEnd.upperBound])
        var path = String(directory[schemeEnd.upperBound...])
        let hadAuthority = path.hasPrefix("//")
        if hadAuthority { path.removeFirst(2) }
        var segments = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for segment in reference.split(separator: "/", omittingEmptySubsequences: false) {
            switch segment {
            case ".": continue
            case "..": if segments.count > 1 { segments.removeLast() }
            default: segments.append(String(segment))
            }
        }
        return scheme + (hadAuthority ? "//" : "") + segments.joined(separator: "/")
    }

    /// A JSON pointer fragment (`/$defs/path`), `~0`/`~1` and `%XX` decoded.
    static func pointer(_ fragment: String, in document: JSONValue) -> JSONValue? {
        guard !fragment.isEmpty else { return document }
        guard fragment.hasPrefix("/") else { return nil }
        var current = document
        for rawToken in fragment.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            let token = percentDecoded(String(rawToken)).replacingOccurrences("~1", with: "/").replacingOccurrences("~0", with: "~")
            switch current {
            case .object(let object):
                guard let next = object[token] else { return nil }
                current = next
            case .array(let items):
                guard let index = Int(token), items.indices.contains(index) else { return nil }
                current = items[index]
            default: return nil
            }
        }
        return current
    }

    static func percentDecoded(_ text: String) -> String {
        guard text.contains("%") else { return text }
        var bytes: [UInt8] = []
        var input = Array(text.utf8)[...]
        while let byte = input.popFirst() {
            if byte == UInt8(ascii: "%"), input.count >= 2, let value = UInt8(String(decoding: input.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                input = input.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
