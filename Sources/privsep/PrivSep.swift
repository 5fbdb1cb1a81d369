// privsep: the command-line tool. One file per subcommand.
import ArgumentParser

@main
struct PrivSep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "privsep",
        abstract: "A language-neutral privilege-separation broker for Linux.",
        subcommands: PrivSep.allSubcommands)
}
