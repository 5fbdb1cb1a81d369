// `privsep schema check|list|show`: inspect a schema directory the way the broker will load it.
import ArgumentParser
import PrivSepJSON
import PrivSepSchema

struct SchemaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Check, list and show the message types of a schema directory.",
        discussion: """
            A schema directory holds interface files (*.json: an interface, its $defs and its \
            message types) and plain JSON Schemas (*.schema.json); docs/schema.md describes the \
            format. The built-in directory is always loaded with it; a file at the same relative \
            path as a built-in file replaces it.
            """,
        subcommands: [Check.self, List.self, Show.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report every problem in a schema directory.",
            discussion: """
                Errors: a file that is not strict JSON or does not match its meta-schema, dangling \
                $refs, duplicate type names, unknown keywords (a typo silently loosens a schema), \
                formats privsep cannot assert. Warnings: object schemas left open (no \
                additionalProperties/unevaluatedProperties), patterns prone to catastrophic \
                backtracking. Each is printed as `error|warning: FILE: /json/pointer: problem`.

                Exit status: 0 without errors (warnings allowed), 1 with errors.
                """)

        @Argument(help: ArgumentHelp("The schema directory.", valueName: "DIR"))
        var directory: String

        func run() throws {
            let (registry, diagnostics) = SchemaRegistry.check(directories: [directory])
            for diagnostic in diagnostics { SchemaCLIOutput.write("\(diagnostic)\n") }
            let errorCount = diagnostics.filter { $0.severity == .error }.count
            let warningCount = diagnostics.count - errorCount
            let types = registry.map { "\($0.typeNames.count) message types, " } ?? ""
            SchemaCLIOutput.write("\(directory): \(types)\(errorCount) errors, \(warningCount) warnings\n")
            if errorCount > 0 { throw ExitCode(1) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the message types: name, kind, fds, reply fds, file.")

        @Argument(help: ArgumentHelp("The schema directory.", valueName: "DIR"))
        var directory: String

        func run() throws {
            let registry = try SchemaCommand.load(directory)
            let width = registry.typeNames.map(\.count).max() ?? 0
            for name in registry.typeNames {
                guard let type = registry[name] else { continue }
                let padded = name + String(repeating: " ", count: width - name.count)
                let kind = type.kind.rawValue + String(repeating: " ", count: 8 - type.kind.rawValue.count)
                SchemaCLIOutput.write("\(padded)  \(kind) fds=\(type.fds) reply_fds=\(type.replyFds)  \(type.file)\n")
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print one message type's definition (kind, description, body, reply, errors, fds) as JSON.")

        @Argument(help: ArgumentHelp("The schema directory.", valueName: "DIR"))
        var directory: String

        @Argument(help: ArgumentHelp("The message type, e.g. privsep.file.open.", valueName: "TYPE"))
        var type: String

        func run() throws {
            let registry = try SchemaCommand.load(directory)
            guard let found = registry[type] else {
                SchemaCLIOutput.error("privsep schema show: no message type \(type) in \(directory) or the built-in directory")
                throw ExitCode(1)
            }
            SchemaCLIOutput.write("// \(found.name) (\(found.file))\n" + SchemaCommand.pretty(found.definition) + "\n")
        }
    }

    static func load(_ directory: String) throws -> SchemaRegistry {
        do {
            return try SchemaRegistry.load(directories: [directory])
        } catch {
            SchemaCLIOutput.error("privsep schema: \(directory) has errors (run `privsep schema check \(directory)`):\n\(error)")
            throw ExitCode(2)
        }
    }

    /// Indented JSON, member order kept.
    static func pretty(_ value: JSONValue, indent: String = "") -> String {
        let inner = indent + "  "
        switch value {
        case .array(let items) where !items.isEmpty:
            if items.allSatisfy({ if case .array = $0 { return false }; if case .object = $0 { return false }; return true }) {
                return value.jsonText
            }
            return "[\n" + items.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .object(let object) where !object.isEmpty:
            let members = object.members.map { member in
                inner + JSONValue.string(member.key).jsonText + ": " + pretty(member.value, indent: inner)
            }
            return "{\n" + members.joined(separator: ",\n") + "\n" + indent + "}"
        default:
            return value.jsonText
        }
    }
}
