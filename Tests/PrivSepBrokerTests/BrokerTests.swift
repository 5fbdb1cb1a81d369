// Integration tests of `privsep run` with real sandboxed helper processes (relays, see
// BrokerHarness.swift). They need root (the launcher sets uids and namespaces).

import Foundation
import PrivSepJSON
import PrivSepWire
import Testing

let isRoot = getuid() == 0
let testSchemaDirectory = TestPrograms.helperSources + "/schema"

/// A config for two relay helpers: `client` may send test.broker.echo/test.broker.stream/test.broker.pass_fd and
/// receives test.broker.tick; `server` serves them and may send test.broker.tick.
func twoHelperRun(client: JSONObject = [:], server: JSONObject = [:], extra: JSONObject = [:]) throws -> BrokerRun {
    let directory = try makeTemporaryDirectory()
    var clientConfig: JSONObject = [
        "may_send": ["test.broker.echo", "test.broker.stream", "test.broker.pass_fd", "privsep.ping", "privsep.introspect"],
        "receives": ["test.broker.tick"],
    ]
    for (key, value) in client.members { clientConfig[key] = value }
    var serverConfig: JSONObject = [
        "serves": ["test.broker.echo", "test.broker.stream", "test.broker.pass_fd"], "may_send": ["test.broker.tick"],
    ]
    for (key, value) in server.members { serverConfig[key] = value }
    var config = extra
    config["schema_dirs"] = [.string(testSchemaDirectory)]
    return try BrokerRun(
        helpers: [
            ("client", try BrokerRun.relayHelper(clientConfig, directory: directory)),
            ("server", try BrokerRun.relayHelper(serverConfig, directory: directory)),
        ], extra: config, directory: directory)
}

/// The usual start: the broker running, both relays connected and past their hello.
func startTwoHelpers(client clientConfig: JSONObject = [:], server serverConfig: JSONObject = [:], extra: JSONObject = [:])
    throws -> (BrokerRun, TestHelper, TestHelper)
{
    let run = try twoHelperRun(client: clientConfig, server: serverConfig, extra: extra)
    try run.start()
    let helpers = try run.acceptAll(["client", "server"])
    let client = try #require(helpers["client"]), server = try #require(helpers["server"])
    try client.hello()
    try server.hello()
    return (run, client, server)
}

/// The usual end: the relays exit cleanly, then the broker is stopped.
func stopCleanly(_ run: BrokerRun, _ helpers: TestHelper...) throws {
    for helper in helpers { helper.exitProcess(status: 0) }
    _ = try run.stop()
}

func errorCode(_ message: ReceivedMessage) -> String? { message.envelope.error?.code.rawValue }

@Suite(.serialized, .enabled(if: isRoot, "the broker's sandbox needs root"))
struct BrokerRoutingTests {
    @Test func requestsAreRoutedWithRemappedIDsAndStampedSender() throws {
        let run = try twoHelperRun()
        try run.start()
        let helpers = try run.acceptAll(["client", "server"])
        let client = try #require(helpers["client"]), server = try #require(helpers["server"])
        let hello = try client.hello()
        #expect(hello["helper"] == "client")
        #expect(hello["max_frame"] == 1_048_576)
        try server.hello()

        try client.send(Envelope.request("test.broker.echo", id: 42, body: ["text": "hi"]))
        let forwarded = try server.nextMessage()
        #expect(forwarded.envelope.type == "test.broker.echo")
        #expect(forwarded.envelope.from == "client")
        #expect(forwarded.envelope.body == ["text": "hi"])
        let brokerID = try #require(forwarded.envelope.id)

        var answer = Envelope.reply(to: brokerID, body: ["text": "HI"])
        answer.from = nil
        try server.send(answer)
        let reply = try client.nextMessage()
        #expect(reply.envelope.re == 42)
        #expect(reply.envelope.from == "server")
        #expect(reply.envelope.body == ["text": "HI"])

        // The other direction: the server's event reaches the client, stamped.
        try server.send(Envelope.event("test.broker.tick", body: ["n": 7]))
        let tick = try client.nextMessage()
        #expect(tick.envelope.type == "test.broker.tick")
        #expect(tick.envelope.from == "server")
        #expect(tick.envelope.body == ["n": 7])

        // Two requesters' ids never collide: the same id 42 again, while nothing is in flight.
        try client.send(Envelope.request("test.broker.echo", id: 42, body: ["text": "again"]))
        let second = try server.nextMessage()
        #expect(second.envelope.id != brokerID)
        try server.send(Envelope.reply(to: try #require(second.envelope.id), body: ["text": "again"]))
        #expect(try client.nextMessage().envelope.re == 42)

        try stopCleanly(run, client, server)
    }

    /// A helper over its max_rate waits on its own socket: everything it sent arrives, in order,
    /// no faster than the rate allows, and the broker serves the others meanwhile.
    @Test func aHelperOverItsRateIsReadNoFasterThanItAndOthersAreServed() throws {
        let (run, client, server) = try startTwoHelpers(server: ["limits": ["max_rate": 1000]])
        let ticks = 1500
        var burst: [UInt8] = []
        for n in 0..<ticks { burst += try Envelope.event("test.broker.tick", body: ["n": .number(JSONNumber(Int64(n)))]).encodeFrame() }
        let clock = ContinuousClock()
        let started = clock.now
        try server.sendRaw(burst)
        try client.send(Envelope.request("privsep.ping", id: 1))
        var seen = 0
        var ticksBeforePong: Int?
        while seen < ticks || ticksBeforePong == nil {
            let message = try client.nextMessage()
            if message.envelope.re == 1 {
                ticksBeforePong = seen
                continue
            }
            #expect(message.envelope.body["n"] == .number(JSONNumber(Int64(seen))))
            seen += 1
        }
        let elapsed = clock.now - started
        // A burst of 100 (a tenth of a second), one read's worth of debt (16 KiB, about 330
        // of these frames), and the rest at 1000 per second.
        #expect(elapsed >= .milliseconds(900), "1500 events at max_rate 1000 took only \(elapsed)")
        #expect(try #require(ticksBeforePong) < ticks, "the ping was answered only after the throttled helper's flood")
        let notice = try run.waitForLog { $0["message"] == "over its max_rate: not read until its allowance refills" && $0["helper"] == "server" }
        // Every JSON log line starts with its time, RFC 3339 UTC with milliseconds.
        let time = try #require(notice["time"]?.stringValue)
        #expect(try Regex(#"^20\d\d-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-6]\d\.\d{3}Z$"#).wholeMatch(in: time) != nil, "\(time)")
        try stopCleanly(run, client, server)
    }

    /// A reply written just before the process exits still reaches the requester: the broker
    /// reads what is left in the socket before closing it. The server is over its max_rate, so
    /// its socket is not being watched when the reply arrives, and only the exit is seen.
    @Test func aHelpersLogMessageStaysOneLineInTheTextLog() throws {
        let run = try twoHelperRun(client: ["may_send": ["privsep.log", "privsep.ping"]])
        try run.start(arguments: ["--log-format", "text", "--log-level", "debug"])
        let helpers = try run.acceptAll(["client", "server"])
        let client = try #require(helpers["client"]), server = try #require(helpers["server"])
        try client.hello()
        try server.hello()
        let forged = "hello\n2026-01-01T00:00:00.000Z notice  [server] audit decision=granted\u{1b}[2J"
        try client.send(Envelope.event("privsep.log", body: ["message": .string(forged), "fields": ["note": "x\ny"]]))
        // The ping's reply proves the broker has handled the event sent before it.
        try client.send(Envelope.request("privsep.ping", id: 1))
        #expect(try client.nextMessage().envelope.re == 1)
        try stopCleanly(run, client, server)
        let lines = run.logText.split(separator: "\n")
        let logged = lines.filter { $0.contains("[client] hello") }
        #expect(logged.count == 1)
        #expect(logged.first?.hasSuffix(
            #"[client] hello\n2026-01-01T00:00:00.000Z notice  [server] audit decision=granted\x1b[2J note="x\ny""#) == true,
            "\(logged)")
        #expect(!lines.contains { $0.hasPrefix("2026-01-01") })
        #expect(!run.logText.unicodeScalars.contains("\u{1b}"))
    }

    @Test func aReplyWrittenJustBeforeExitIsDelivered() throws {
        let (run, client, server) = try startTwoHelpers(server: ["limits": ["max_rate": 1]])
        try client.send(Envelope.request("test.broker.echo", id: 5, body: ["text": "last"]))
        let forwarded = try server.nextMessage()
        var burst: [UInt8] = []
        for n in 0..<40 { burst += try Envelope.event("test.broker.tick", body: ["n": .number(JSONNumber(Int64(n)))]).encodeFrame() }
        try server.sendRaw(burst)
        for _ in 0..<40 { #expect(try client.nextMessage().envelope.type == "test.broker.tick") }
        try server.send(Envelope.reply(to: try #require(forwarded.envelope.id), body: ["text": "LAST"]))
        server.exitProcess(status: 0)
        let reply = try client.nextMessage()
        #expect(reply.envelope.re == 5)
        #expect(reply.envelope.error == nil, "\(reply.envelope)")
        #expect(reply.envelope.body == ["text": "LAST"])
        try stopCleanly(run, client)
    }

    @Test func fdsTravelWithRequestsAndReplies() throws {
        let (run, client, server) = try startTwoHelpers()

        var ends: [Int32] = [-1, -1]
        #expect(pipe(&ends) == 0)
        defer { close(ends[0]) }
        _ = write(ends[1], "through the broker", 18)
        close(ends[1])
        try client.send(Envelope.request("test.broker.pass_fd", id: 1), fds: [ends[0]])
        let forwarded = try server.nextMessage()
        #expect(forwarded.fds.count == 1)
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(forwarded.fds[0].rawValue, &buffer, 64)
        #expect(String(decoding: buffer[0..<max(count, 0)], as: UTF8.self) == "through the broker")

        let file = try makeTemporaryDirectory() + "/reply"
        try "reply fd".write(toFile: file, atomically: true, encoding: .utf8)
        let replyFD = open(file, O_RDONLY)
        defer { close(replyFD) }
        try server.send(Envelope.reply(to: try #require(forwarded.envelope.id)), fds: [replyFD])
        let reply = try client.nextMessage()
        #expect(reply.envelope.re == 1)
        #expect(reply.fds.count == 1)
        let replyCount = read(reply.fds[0].rawValue, &buffer, 64)
        #expect(String(decoding: buffer[0..<max(replyCount, 0)], as: UTF8.self) == "reply fd")

        // A request of a type that carries one fd, sent without it, is refused.
        let refused = try client.request("test.broker.pass_fd")
        #expect(errorCode(refused) == "privsep.invalid")
        try stopCleanly(run, client, server)
    }

    @Test func streamingRepliesPassThrough() throws {
        let (run, client, server) = try startTwoHelpers()
        try client.send(Envelope.request("test.broker.stream", id: 5))
        let forwarded = try server.nextMessage()
        let id = try #require(forwarded.envelope.id)
        for part in 1...3 { try server.send(Envelope.reply(to: id, body: ["part": .number(JSONNumber(part))], more: true)) }
        try server.send(Envelope.reply(to: id, body: ["part": 4]))
        for part in 1...4 {
            let reply = try client.nextMessage()
            #expect(reply.envelope.re == 5)
            #expect(reply.envelope.body["part"]?.int64Value == Int64(part))
            #expect(reply.envelope.more == (part < 4))
        }
        // A reply after the final one is dropped, not delivered.
        try server.send(Envelope.reply(to: id, body: ["part": 5]))
        try client.send(Envelope.request("privsep.ping", id: 6, body: ["seq": 1]))
        #expect(try client.nextMessage().envelope.re == 6)
        try stopCleanly(run, client, server)
    }

    /// Each partial reply pushes the deadline back: a stream may outlast request_timeout_ms as
    /// long as no gap between its replies does. (The test is about time passing, so it waits:
    /// gaps of 0.3 s against a 1 s timeout, 1.5 s in all.)
    @Test func aStreamOutlivesItsTimeoutWhilePartsKeepComing() throws {
        let (run, client, server) = try startTwoHelpers(server: ["limits": ["request_timeout_ms": 1000]])
        try client.send(Envelope.request("test.broker.stream", id: 7))
        let id = try #require(try server.nextMessage().envelope.id)
        for part in 1...5 {
            usleep(300_000)
            try server.send(Envelope.reply(to: id, body: ["part": .number(JSONNumber(part))], more: true))
        }
        try server.send(Envelope.reply(to: id, body: ["part": 6]))
        for part in 1...6 {
            let reply = try client.nextMessage()
            #expect(errorCode(reply) == nil)
            #expect(reply.envelope.body["part"]?.int64Value == Int64(part))
        }
        try stopCleanly(run, client, server)
    }
}

@Suite(.serialized, .enabled(if: isRoot, "the broker's sandbox needs root"))
struct BrokerRefusalTests {
    @Test func policyTypeAndSchemaRefusals() throws {
        let (run, client, server) = try startTwoHelpers()

        // An event sent as a request.
        #expect(errorCode(try client.request("test.broker.tick", ["n": 1])) == "privsep.invalid")
        // Not in may_send.
        let denied = try server.request("test.broker.echo", ["text": "x"])
        #expect(errorCode(denied) == "privsep.denied")

        let unknown = try client.request("test.broker.nonexistent")
        #expect(errorCode(unknown) == "privsep.unknown_type")

        let invalid = try client.request("test.broker.echo", ["text": 5])
        #expect(errorCode(invalid) == "privsep.invalid")
        let errors = invalid.envelope.error?.data?["errors"]?.arrayValue ?? []
        #expect(errors.contains { $0["instanceLocation"] == "/text" })

        let extra = try client.request("test.broker.echo", ["text": "ok", "extra": true])
        #expect(errorCode(extra) == "privsep.invalid")

        // Envelope errors are answered too, and the connection stays usable.
        try client.sendRaw(frame(#"{"type":"test.broker.echo","id":9,"body":{"text":"x"},"bogus":1}"#))
        let bogus = try client.nextMessage()
        #expect(bogus.envelope.re == 9)
        #expect(errorCode(bogus) == "privsep.invalid")
        #expect(bogus.envelope.error?.data == ["reason": "unknown_member"])
        let ping = try client.request("privsep.ping", ["seq": 3])
        #expect(ping.envelope.body == ["seq": 3])

        try stopCleanly(run, client, server)
    }

    /// A server's reply must match its request type's reply schema, whether the broker checked
    /// it from its bytes (a plain reply to the request it sent the server last) or from the tree
    /// (any other): one that does not is replaced by the broker's privsep.invalid.
    @Test func repliesAreCheckedAgainstTheReplySchema() throws {
        let (run, client, server) = try startTwoHelpers()
        func answer(_ body: JSONObject) throws -> ReceivedMessage {
            try client.send(Envelope.request("test.broker.echo", id: 1, body: ["text": "q"]))
            let request = try server.nextMessage()
            try server.send(Envelope.reply(to: try #require(request.envelope.id), body: body))
            return try client.nextMessage()
        }
        for invalid: JSONObject in [["text": 5], ["text": "ok", "n": 1], [:], ["text": "ok", "n": [1]]] {
            let reply = try answer(invalid)
            #expect(errorCode(reply) == "privsep.invalid", "\(invalid)")
            #expect(reply.envelope.from == "broker", "\(invalid)")
        }
        let valid = try answer(["text": "fine"])
        #expect(valid.envelope.from == "server" && valid.envelope.body == ["text": "fine"])

        // Two in flight: the reply to the earlier request is not the one expected next.
        try client.send(Envelope.request("test.broker.echo", id: 2, body: ["text": "a"]))
        try client.send(Envelope.request("test.broker.echo", id: 3, body: ["text": "b"]))
        let first = try #require(try server.nextMessage().envelope.id)
        let second = try #require(try server.nextMessage().envelope.id)
        try server.send(Envelope.reply(to: first, body: ["text": 2]))
        try server.send(Envelope.reply(to: second, body: ["text": 3]))
        for re: Int64 in [2, 3] {
            let reply = try client.nextMessage()
            #expect(reply.envelope.re == re && errorCode(reply) == "privsep.invalid")
        }
        try stopCleanly(run, client, server)
    }

    @Test func aHelperSendingFromIsDisconnectedAndRestarted() throws {
        let (run, client, server) = try startTwoHelpers(client: ["restart": ["policy": "on-failure", "backoff_ms": 10]])
        try client.sendRaw(frame(#"{"type":"privsep.ping","id":1,"from":"server"}"#))
        #expect(try client.waitForClose())
        _ = try run.waitForLog { $0["message"]?.stringValue?.hasPrefix("protocol error") == true && $0["helper"] == "client" }
        // The restart policy brings a new process, which can talk again.
        let again = try run.accept()
        #expect(again.name == "client")
        try again.hello()
        #expect(errorCode(try again.request("privsep.ping", ["seq": 1])) == nil)
        try stopCleanly(run, again, server)
    }

    @Test func repeatedViolationsKillTheHelper() throws {
        let run = try twoHelperRun(client: ["limits": ["max_violations": 3], "restart": ["policy": "never"]])
        try run.start()
        let helpers = try run.acceptAll(["client", "server"])
        let client = try #require(helpers["client"])
        try client.hello()
        for _ in 1...2 { #expect(errorCode(try client.request("test.broker.tick", ["n": 1])) == "privsep.invalid") }
        // The third refusal is still answered, then the helper is killed.
        #expect(errorCode(try client.request("privsep.nothing")) == "privsep.unknown_type")
        #expect(try client.waitForClose())
        _ = try run.waitForLog { $0["message"] == "killing helper: 3 refused messages" && $0["helper"] == "client" }
        helpers["server"]?.exitProcess(status: 0)
        _ = try run.stop()
    }

    @Test func firstMessageMustBeHello() throws {
        let run = try twoHelperRun(client: ["restart": ["policy": "never"]])
        try run.start()
        let helpers = try run.acceptAll(["client", "server"])
        let client = try #require(helpers["client"])
        try client.send(Envelope.request("privsep.ping", id: 1))
        let reply = try client.nextMessage()
        #expect(errorCode(reply) == "privsep.protocol")
        #expect(try client.waitForClose())
        helpers["server"]?.exitProcess(status: 0)
        _ = try run.stop()
    }
}

/// Builds a raw frame around `json`.
func frame(_ json: String) -> [UInt8] {
    let body = Array(json.utf8)
    let length = UInt32(body.count)
    return [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)] + body
}
