// `privsep gen c|swift|docs --schema DIR...`: code and documentation from schema directories.
import ArgumentParser
import PrivSepTools

struct GenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gen",
        abstract: "Generate a C header, Swift Codable types or a Markdown reference from schema directories.",
        discussion: """
            The directories are loaded exactly as the broker loads them (with the built-in one, \
            every error fatal); code is generated for the interface files found in them, not for \
            the built-in directory, unless it is given (privsep gen docs --schema schema). \
            c: a header for jansson with, per message type, the name and fd counts as macros and \
            builders, setters and readers for body and reply (static inline). swift: Codable \
            structs for bodies and replies (import PrivSepHelper for the coders). docs: Markdown, \
            one section per interface and message, a table per body and reply.
            """)

    enum Language: String, ExpressibleByArgument, CaseIterable { case c, swift, docs }

    @Argument(help: ArgumentHelp("What to generate: c, swift or docs.", valueName: "LANGUAGE"))
    var language: Language

    @Option(name: .customLong("schema"), help: ArgumentHelp("A schema directory (repeatable).", valueName: "DIR"))
    var directories: [String] = []

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Write here instead of standard output.", valueName: "FILE"))
    var output: String?

    @Option(name: .customLong("guard"), help: ArgumentHelp("C include guard (c only).", valueName: "NAME"))
    var guardName: String = "PRIVSEP_GENERATED_H"

    func validate() throws {
        if directories.isEmpty { throw ValidationError("give at least one --schema DIR") }
    }

    func run() throws {
        let set: SchemaSet
        do {
            set = try SchemaSet.load(directories: directories)
        } catch {
            SchemaCLIOutput.error("privsep gen: the schema directories have errors (run `privsep schema check`):\n\(error)")
            throw ExitCode(2)
        }
        let note = directories.map { "--schema \($0)" }.joined(separator: " ")
        let text: String
        switch language {
        case .c: text = CGenerator.generate(set, sourceNote: note, guardName: guardName)
        case .swift: text = SwiftGenerator.generate(set, sourceNote: note)
        case .docs: text = DocsGenerator.generate(set, sourceNote: note)
        }
        do {
            try ToolOutput.write(Array(text.utf8), to: output)
        } catch {
            SchemaCLIOutput.error("privsep gen: \(error)")
            throw ExitCode(1)
        }
    }
}
