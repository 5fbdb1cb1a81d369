// The conformance scenario helper written with PrivSepHelper (the Swift client).
// It plays each scenario against the peer through the broker and prints one line per scenario
// on stdout, which the broker logs tagged "subject":
//
//     RESULT <scenario> pass|fail <detail>
//
// The scenarios and their order are the same in every client's subject; see
// docs/conformance.md. Requests are bounded by the broker's request timeout; waits on
// `incoming` by a watchdog that fails whatever is left after `watchdogSeconds`.
// `conformance-swift bench` is the Swift pinger of Tests/Benchmarks/clients instead.

import Glibc
import PrivSepHelper

let watchdogSeconds = 20
let fdText = "conformance-fd"
let putText = "from-subject"
let maxFrame = 1024  // the subject's limits.max_frame in the config

struct Text: Codable { var text: String }
struct Nonce: Codable { var nonce: String }
struct Note: Codable { var n: Int64 }
struct Notes: Codable { var notes: [Int64] }
struct Empty: Codable {}
struct Ping: Codable, Equatable { var seq: Int64; var payload: String }
struct BadText: Codable { var text: Int }

/// One line on stdout with one write(2): nothing buffered is lost when the process exits.
func say(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeMutableBytes { write(1, $0.baseAddress, $0.count) }
        if written <= 0 { return }
        offset += written
    }
}

func result(_ scenario: String, _ ok: Bool, _ detail: String) {
    say("RESULT \(scenario) \(ok ? "pass" : "fail") \(detail)")
}

/// Runs one scenario; a thrown error is its failure, reported with the error's code.
func scenario(_ name: String, _ body: () async throws -> Void) async {
    do {
        try await body()
    } catch let error as PrivSepError {
        result(name, false, "\(error.code) (\(error.source)): \(error.message)")
    } catch {
        result(name, false, "\(error)")
    }
}

/// The next incoming message that matches, answering conf.e2e.echo meanwhile when asked to.
func next(_ client: PrivSepClient, _ messages: inout AsyncStream<IncomingMessage>.Iterator,
          where want: (IncomingMessage) -> Bool, serving: Bool = false) async throws -> IncomingMessage? {
    while let message = await messages.next() {
        if want(message) { return message }
        if serving, message.isRequest, message.type == "conf.e2e.echo" {
            try await client.reply(to: message, body: try message.decode(Nonce.self))
        }
    }
    return nil
}

func runScenarios() async -> Int32 {
    let client: PrivSepClient
    do {
        client = try await PrivSepClient.connect(client: "conformance-swift/1")
    } catch {
        result("hello", false, "\(error)")
        return 1
    }
    let hello = client.hello
    result("hello", hello.helper == "subject" && hello.protocol == 1 && hello.maxFrame == maxFrame
        && hello.serves.contains("conf.e2e.echo") && hello.receives.contains("conf.e2e.notice")
        && hello.maySend.contains("conf.e2e.upper"), "helper \(hello.helper), max_frame \(hello.maxFrame)")
    var messages = client.incoming.makeAsyncIterator()

    await scenario("ping") {
        let sent = Ping(seq: 7, payload: "conformance")
        let echoed = try await client.request("privsep.ping", body: sent, as: Ping.self)
        result("ping", echoed == sent, "echoed seq \(echoed.seq)")
    }
    await scenario("request") {
        let reply = try await client.request("conf.e2e.upper", body: Text(text: "conformance"))
        let text = try reply.decode(Text.self).text
        result("request", text == "CONFORMANCE" && reply.from == "peer", "text \(text) from \(reply.from ?? "(none)")")
    }
    await scenario("serve") {
        _ = try await client.request("conf.e2e.call_me", body: Empty())
        var served = false
        let verdict = try await next(client, &messages, where: { message in
            if message.isRequest && message.type == "conf.e2e.echo" { served = true }
            return !message.isRequest && message.type == "conf.e2e.verdict"
        }, serving: true)
        guard let verdict else { result("serve", false, "incoming ended"); return }
        result("serve", served && verdict.body["ok"]?.boolValue == true,
               "peer: \(verdict.body["detail"]?.stringValue ?? "(none)")")
    }
    await scenario("event-send") {
        try await client.send(event: "conf.e2e.note", body: Note(n: 42))
        let notes = try await client.request("conf.e2e.seen", body: Empty(), as: Notes.self).notes
        result("event-send", notes == [42], "peer saw \(notes)")
    }
    await scenario("event-recv") {
        guard let notice = try await next(client, &messages, where: { !$0.isRequest && $0.type == "conf.e2e.notice" }) else {
            result("event-recv", false, "incoming ended"); return
        }
        let n = try notice.decode(Note.self).n
        result("event-recv", n == 43 && notice.from == "peer", "conf.e2e.notice n=\(n) from \(notice.from ?? "(none)")")
    }
    await scenario("error") {
        do {
            _ = try await client.request("conf.e2e.fail", body: Empty())
            result("error", false, "conf.e2e.fail succeeded")
        } catch let error as PrivSepError where error.source == .reply {
            let why = error.data?["why"]?.stringValue
            result("error", error.code == "conf.e2e.failed" && why == "asked to", "code \(error.code), data.why \(why ?? "(none)")")
        }
    }
    await scenario("denied") {
        do {
            _ = try await client.request("conf.e2e.secret", body: Empty())
            result("denied", false, "conf.e2e.secret succeeded")
        } catch let error as PrivSepError where error.source == .reply {
            result("denied", error.code == .denied, "code \(error.code)")
        }
    }
    await scenario("invalid") {
        do {
            _ = try await client.request("conf.e2e.upper", body: BadText(text: 5))
            result("invalid", false, "conf.e2e.upper {text: 5} succeeded")
        } catch let error as PrivSepError where error.source == .reply {
            let places = (error.data?["errors"]?.arrayValue ?? []).compactMap { $0["instanceLocation"]?.stringValue }
            result("invalid", error.code == .invalid && places.contains("/text"),
                   "code \(error.code) at \(places.isEmpty ? "(none)" : places.joined(separator: ","))")
        }
    }
    await scenario("too-large") {
        do {
            _ = try await client.request("privsep.ping", body: Ping(seq: 8, payload: String(repeating: "x", count: 2 * maxFrame)))
            result("too-large", false, "a frame over max_frame \(maxFrame) was sent")
        } catch let error as PrivSepError where error.source == .local && error.code == .tooLarge {
            let echoed = try await client.request("privsep.ping", body: Ping(seq: 9, payload: ""), as: Ping.self)
            result("too-large", echoed.seq == 9, "refused locally: \(error.code); the next ping went through")
        }
    }
    await scenario("fd-recv") {
        let reply = try await client.request("conf.e2e.getfd", body: Empty())
        let fds = reply.takeFDs()
        guard fds.count == 1 else { result("fd-recv", false, "reply with \(fds.count) fds"); return }
        defer { try? fds[0].close() }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = try buffer.withUnsafeMutableBytes { try fds[0].read(into: $0) }  // written and closed before the reply
        let text = String(decoding: buffer[..<count], as: UTF8.self)
        result("fd-recv", text == fdText, "read \"\(text)\"")
    }
    await scenario("fd-send") {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { result("fd-send", false, "pipe failed"); return }
        let readEnd = FileDescriptor(rawValue: ends[0])
        defer { try? readEnd.close() }
        let written = putText.utf8CString.withUnsafeBytes { write(ends[1], $0.baseAddress, putText.utf8.count) }
        close(ends[1])
        guard written == putText.utf8.count else { result("fd-send", false, "write failed"); return }
        let text = try await client.request("conf.e2e.putfd", body: Empty(), fds: [readEnd], as: Text.self).text
        result("fd-send", text == putText, "peer read \"\(text)\"")
    }
    await client.close()
    return 0
}

if CommandLine.arguments.count > 1 && CommandLine.arguments[1] == "bench" {
    exit(await runBench())
}
Task.detached {
    try? await Task.sleep(for: .seconds(watchdogSeconds))
    say("subject: watchdog: \(watchdogSeconds) s passed; the missing scenarios fail")
    exit(1)
}
exit(await runScenarios())
