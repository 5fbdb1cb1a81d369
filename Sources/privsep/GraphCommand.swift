// `privsep graph CONFIG`: the helpers, the broker's services and every allowed flow, as Graphviz.
import ArgumentParser
import Glibc
import PrivSepTools

struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Draw the topology a broker config allows (Graphviz DOT or SVG).",
        discussion: """
            Helpers are boxes with a sandbox summary (profile, root, network, Landlock, seccomp, \
            uid, binds), the request types they serve and their exposure score, coloured by rating. \
            The broker's services (privsep.* interfaces used by some helper) form a cluster. Solid \
            edges are requests, requester to server; dashed edges are events, sender to receivers; \
            descriptors that travel are noted on the type. Requests nobody serves go to a red \
            "no server" node. --format svg runs `dot -Tsvg` (Graphviz), which must be installed.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case dot, svg }

    @Argument(help: ArgumentHelp("The broker config (JSON).", valueName: "CONFIG"))
    var config: String

    @Option(name: .long, help: "dot (default) or svg.")
    var format: Format = .dot

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Write here instead of standard output.", valueName: "FILE"))
    var output: String?

    func run() throws {
        let policy: LoadedPolicy
        do {
            policy = try LoadedPolicy.load(configPath: config)
        } catch {
            SchemaCLIOutput.error("privsep graph: \(config) does not load (run `privsep check \(config)`):\n\(error)")
            throw ExitCode(2)
        }
        let dot = Topology.dot(policy)
        let bytes: [UInt8]
        switch format {
        case .dot: bytes = Array(dot.utf8)
        case .svg:
            do {
                bytes = try Graphviz.render(dot)
            } catch {
                SchemaCLIOutput.error("privsep graph: \(error)")
                throw ExitCode(1)
            }
        }
        do {
            try ToolOutput.write(bytes, to: output)
        } catch {
            SchemaCLIOutput.error("privsep graph: \(error)")
            throw ExitCode(1)
        }
    }
}
