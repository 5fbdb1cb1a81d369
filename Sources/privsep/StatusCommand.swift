// `privsep status`: helpers with pid, uid, state, uptime, restarts, in-flight requests, queue
// bytes and messages per type, from a running broker's control socket.
import ArgumentParser
import PrivSepJSON

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the state of a running broker and its helpers.")

    @OptionGroup var control: ControlSocketOptions

    @Flag(help: "Print the status as JSON (the privsep.control.status reply body).")
    var json = false

    func run() throws {
        var session = try ControlSession(path: control.socket)
        let status = try session.call("privsep.control.status")
        if json {
            printLine(JSONValue.object(status).jsonText)
            return
        }
        let broker = status["broker"] ?? [:]
        printLine("broker pid \(broker["pid"]?.int64Value ?? 0), \(broker["phase"]?.stringValue ?? "?"), up \(seconds(broker["uptime_ms"])), "
            + "\(broker["requests"]?.int64Value ?? 0) requests, \(broker["final_replies"]?.int64Value ?? 0) final replies, "
            + "\(broker["open_fds"]?.int64Value ?? 0) fds, \(broker["rss_kib"]?.int64Value ?? 0) KiB")
        let header = ["HELPER", "STATE", "PID", "UID", "UPTIME", "RESTARTS", "IN-FLIGHT", "SERVING", "QUEUE", "VIOLATIONS"]
        var rows = [header]
        for helper in status["helpers"]?.arrayValue ?? [] {
            rows.append([
                helper["name"]?.stringValue ?? "?", helper["state"]?.stringValue ?? "?",
                helper["pid"].map { "\($0.int64Value ?? 0)" } ?? "-", "\(helper["uid"]?.int64Value ?? 0)",
                helper["uptime_ms"] == nil ? "-" : seconds(helper["uptime_ms"]), "\(helper["restarts"]?.int64Value ?? 0)",
                "\(helper["in_flight"]?.int64Value ?? 0)", "\(helper["serving"]?.int64Value ?? 0)",
                "\(helper["queue_bytes"]?.int64Value ?? 0)", "\(helper["violations"]?.int64Value ?? 0)",
            ])
        }
        printTable(rows)
        for helper in status["helpers"]?.arrayValue ?? [] {
            guard let types = helper["types"]?.objectValue, !types.isEmpty else { continue }
            let counts = types.members.map { "\($0.key) \($0.value["messages"]?.int64Value ?? 0)"
                + (($0.value["errors"]?.int64Value ?? 0) > 0 ? " (\($0.value["errors"]?.int64Value ?? 0) refused)" : "") }
            printLine("\(helper["name"]?.stringValue ?? "?"): " + counts.joined(separator: ", "))
        }
    }

    private func seconds(_ milliseconds: JSONValue?) -> String {
        let ms = milliseconds?.int64Value ?? 0
        return "\(ms / 1000).\(ms % 1000 / 100)s"
    }
}

/// Prints rows as left-aligned columns.
func printTable(_ rows: [[String]]) {
    guard let columns = rows.first?.count else { return }
    let widths = (0..<columns).map { column in rows.map { $0[column].count }.max() ?? 0 }
    for row in rows {
        printLine(zip(row, widths).map { $0.0.padding(to: $0.1) }.joined(separator: "  "))
    }
}

extension String {
    fileprivate func padding(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
