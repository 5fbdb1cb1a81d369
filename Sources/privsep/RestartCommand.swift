// `privsep restart HELPER`: kill one helper and start it again at once.
import ArgumentParser

struct RestartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart", abstract: "Restart one helper of a running broker (its backoff starts afresh).")

    @OptionGroup var control: ControlSocketOptions

    @Argument(help: "The helper's name.")
    var helper: String

    func run() throws {
        var session = try ControlSession(path: control.socket)
        _ = try session.call("privsep.control.restart", ["helper": .string(helper)])
        printLine("restarting \(helper)")
    }
}
