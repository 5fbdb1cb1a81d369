// `privsep tap`: a live stream of the messages the broker routes, like busctl monitor.
import ArgumentParser
import PrivSepJSON

struct TapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tap",
        abstract: "Show messages as the broker routes them (values marked x-sensitive are redacted).")

    @OptionGroup var control: ControlSocketOptions

    @Option(help: "Only messages from or to this helper.")
    var helper: String?

    @Option(help: "Only messages of this type (replies match their request's type).")
    var type: String?

    @Flag(help: "One JSON object per message instead of text.")
    var json = false

    func run() throws {
        var session = try ControlSession(path: control.socket)
        var filter = JSONObject()
        if let helper { filter["helper"] = .string(helper) }
        if let type { filter["type"] = .string(type) }
        let id = try session.send("privsep.control.tap", filter)
        guard try session.reply(to: id).body.isEmpty else { throw ControlError("unexpected first tap record") }
        printError("privsep tap: started")
        while true {
            let record = try session.reply(to: id).body
            if json {
                printLine(JSONValue.object(record).jsonText)
                continue
            }
            let arrow = record["direction"]?.stringValue == "in" ? "->" : "<-"
            var line = "\(record["helper"]?.stringValue ?? "?") \(arrow) broker  \(record["kind"]?.stringValue ?? "?")"
            if let type = record["type"]?.stringValue { line += " \(type)" }
            if let id = record["id"]?.int64Value { line += " id=\(id)" }
            if let re = record["re"]?.int64Value { line += " re=\(re)" }
            if let from = record["from"]?.stringValue { line += " from=\(from)" }
            line += " \(record["size"]?.int64Value ?? 0)B"
            if let verdict = record["verdict"]?.stringValue { line += " [\(verdict)]" }
            if let error = record["error"] { line += " error=\(error.jsonText)" }
            if let body = record["body"] { line += " \(body.jsonText)" }
            if let dropped = record["dropped"]?.int64Value { line += " (\(dropped) records dropped before this one)" }
            printLine(line)
        }
    }
}
