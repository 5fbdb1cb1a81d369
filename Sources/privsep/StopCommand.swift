// `privsep stop`: stop a running broker as SIGTERM would.
import ArgumentParser

struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop a running broker: privsep.shutdown to every helper, then SIGTERM, then SIGKILL.")

    @OptionGroup var control: ControlSocketOptions

    func run() throws {
        var session = try ControlSession(path: control.socket)
        _ = try session.call("privsep.control.stop")
        printLine("stopping")
    }
}
