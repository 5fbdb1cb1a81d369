// privsep: the command-line tool. One file per subcommand.
import ArgumentParser

@main
struct PrivSep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "privsep",
        abstract: "A language-neutral privilege-separation broker for Linux.",
        subcommands: PrivSep.allSubcommands)

    /// Usage errors exit 2, as every privsep command documents (argument-parser's own is 64),
    /// so scripts and runners can tell "you called me wrong" from "invalid" (1).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            if exitCode(for: error) == .validationFailure {
                printError(fullMessage(for: error))
                exit(withError: ExitCode(2))
            }
            exit(withError: error)
        }
    }
}
