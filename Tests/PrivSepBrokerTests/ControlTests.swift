// The control socket, driven through the real CLI (`privsep status`, `tap`, `restart`, `stop`)
// against a running broker.

import Foundation
import PrivSepJSON
import PrivSepWire
import Testing

/// Runs `privsep ARGS` to completion (at most 30 s); returns its exit status and stdout.
func privsepCLI(_ arguments: [String], asUser uid: UInt32? = nil) throws -> (status: Int32, output: String) {
    let user = uid.map { ["/usr/bin/setpriv", "--reuid", "\($0)", "--regid", "\($0)", "--clear-groups"] } ?? []
    let run = try Spawned.run(user + [TestPrograms.privsep] + arguments, timeout: 30)
    return (run.status, run.output)
}

@Suite(.serialized, .enabled(if: isRoot, "the broker's sandbox needs root"))
struct ControlTests {
    @Test func statusTapRestartAndStop() throws {
        let directory = try makeTemporaryDirectory()
        let socket = directory + "/control.sock"
        let run = try twoHelperRun(
            client: ["may_send": ["test.broker.login", "privsep.ping"]], server: ["serves": ["test.broker.login"]],
            extra: ["control_socket": .string(socket)])
        try run.start()
        let helpers = try run.acceptAll(["client", "server"])
        let client = try #require(helpers["client"]), server = try #require(helpers["server"])
        try client.hello()
        try server.hello()
        _ = try run.waitForLog { $0["message"] == "control socket ready" }

        // The socket is the owner's alone.
        var info = stat()
        #expect(stat(socket, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)

        let status = try privsepCLI(["status", "--json", "--socket", socket])
        #expect(status.status == 0)
        let body = try JSONParser.parse(status.output.trimmingCharacters(in: .whitespacesAndNewlines))
        let names = body["helpers"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        #expect(names == ["client", "server"])
        #expect(body["helpers"]?.arrayValue?.allSatisfy { $0["state"] == "ready" } == true)
        #expect(body["broker"]?["phase"] == "running")

        // tap: a live stream; the password is redacted, the user is not.
        // (Killed, if still running, when `tap` goes away.)
        let tap = try Spawned([TestPrograms.privsep, "tap", "--json", "--socket", socket, "--type", "test.broker.login"],
                              stdout: .pipe, stderr: .pipe)
        let lines = LineCollector(try #require(tap.output)), notices = LineCollector(try #require(tap.errors))
        // The broker acknowledges the tap before it shows anything: from then on nothing is missed.
        #expect(notices.waitFor(timeout: 10) { _ in true } == "privsep tap: started")
        try client.send(Envelope.request("test.broker.login", id: 900, body: ["user": "alice", "password": "hunter2"]))
        let forwarded = try server.nextMessage()
        #expect(forwarded.envelope.body["password"] == "hunter2")
        try server.send(Envelope.reply(to: try #require(forwarded.envelope.id)))
        #expect(try client.nextMessage().envelope.re == 900)
        let record = try JSONParser.parse(try #require(lines.waitFor(timeout: 10) { _ in true }, "no tap line within 10 s"))
        #expect(record["direction"] == "in")
        #expect(record["helper"] == "client")
        #expect(record["verdict"] == "accepted")
        #expect(record["body"]?["user"] == "alice")
        #expect(record["body"]?["password"] == "<redacted>")
        tap.signal(SIGTERM)
        _ = try tap.wait(timeout: 10)

        // Per-type counters: a refused request is one message and one error, whether or not a
        // schema defines its type.
        try client.send(Envelope.request("test.nope.gone", id: 901))
        #expect(try client.nextMessage().envelope.error?.code == .unknownType)
        try client.send(Envelope.request("test.broker.login", id: 902, body: ["user": 7]))
        #expect(try client.nextMessage().envelope.error?.code == .invalid)
        let counted = try JSONParser.parse(try privsepCLI(["status", "--json", "--socket", socket]).output)
        let clientTypes = counted["helpers"]?.arrayValue?.first { $0["name"] == "client" }?["types"]
        #expect(clientTypes?["test.broker.login"] == ["messages": 2, "errors": 1])
        #expect(clientTypes?["test.nope.gone"] == ["messages": 1, "errors": 1])

        // A non-owner is refused even when the file mode would let it in.
        chmod(socket, 0o666)
        chmod(directory, 0o755)
        let stranger = try privsepCLI(["status", "--socket", socket], asUser: 65534)
        #expect(stranger.status != 0)
        _ = try run.waitForLog { $0["message"] == "control: refused a client that is not the socket's owner" }

        // restart: the client's process is replaced at once.
        #expect(try privsepCLI(["restart", "client", "--socket", socket]).status == 0)
        #expect(try client.waitForClose())
        let again = try run.accept()
        #expect(again.name == "client")
        try again.hello()
        #expect(try privsepCLI(["restart", "nobody", "--socket", socket]).status != 0)

        // stop: as SIGTERM.
        #expect(try privsepCLI(["stop", "--socket", socket]).status == 0)
        for helper in [again, server] {
            #expect(try helper.nextMessage().envelope.type == "privsep.shutdown")
            helper.exitProcess(status: 0)
        }
        #expect(try run.waitForExit() == 0)
        #expect(access(socket, F_OK) != 0, "the broker removes its control socket")
    }
}
