// PrivSepClient against a peer on a real socketpair.

import Glibc
import PrivSepHelper
import PrivSepJSON
import PrivSepWire
import SystemPackage
import Testing

struct Ping: Codable, Equatable {
    var seq: Int64
    var payload: String
}

struct Text: Codable, Equatable {
    var text: String
}

@Suite("PrivSepClient over a socketpair")
struct ClientTests {
    @Test func handshakeExposesTheHelloReply() async throws {
        let (client, peer) = try await connectedPair { _ in }
        #expect(client.hello == HelloReply(helper: "tester", protocol: 1, maxFrame: 1 << 20,
                                           maySend: ["privsep.ping", "privsep.log"], serves: ["demo.upper"],
                                           receives: ["privsep.shutdown"]))
        await client.close()
        #expect(await peer.finish() == [])
    }

    @Test func helperNameMismatchFailsTheHandshake() async throws {
        let peer = try Peer()
        peer.start { try $0.answerHello(helper: "someone-else") }
        await #expect(throws: PrivSepError.self) {
            _ = try await PrivSepClient.connect(socket: peer.clientEnd, expectedHelper: "tester")
        }
        #expect(await peer.finish() == [])
    }

    @Test func malformedHelloReplyIsAProtocolError() async throws {
        let peer = try Peer()
        peer.start { peer in
            let hello = try peer.nextRequest("privsep.hello")
            try peer.send(.reply(to: hello.envelope.id!, body: ["helper": "tester", "protocol": 1, "max_frame": 65536, "sends": ["demo.x"]]))
        }
        do {
            _ = try await PrivSepClient.connect(socket: peer.clientEnd)
            Issue.record("connected")
        } catch let error as PrivSepError {
            #expect(error.code == .protocol && error.source == .local)
            #expect(error.message.contains("hello.json"))
        }
        #expect(await peer.finish() == [])
    }

    @Test func typedRequestRoundTrip() async throws {
        let (client, peer) = try await connectedPair { peer in
            for _ in 0 ..< 2 {
                let ping = try peer.nextRequest("privsep.ping")
                try peer.send(.reply(to: ping.envelope.id!, body: ping.envelope.body))
            }
        }
        let first = try await client.request("privsep.ping", body: Ping(seq: 7, payload: "abc"), as: Ping.self)
        #expect(first == Ping(seq: 7, payload: "abc"))
        let second: Ping = try await client.request("privsep.ping", body: Ping(seq: 8, payload: "é"))
        #expect(second == Ping(seq: 8, payload: "é"))
        await client.close()
        #expect(await peer.finish() == [])
    }

    @Test func concurrentRequestsAreMatchedByRe() async throws {
        // The peer answers in reverse order; each caller must still get its own reply.
        let (client, peer) = try await connectedPair { peer in
            var requests: [ReceivedMessage] = []
            for _ in 0 ..< 8 { requests.append(try peer.nextRequest("privsep.ping")) }
            for request in requests.reversed() {
                try peer.send(.reply(to: request.envelope.id!, body: request.envelope.body))
            }
        }
        let results = try await withThrowingTaskGroup(of: (Int64, Ping).self) { group in
            for seq in Int64(0) ..< 8 {
                group.addTask { (seq, try await client.request("privsep.ping", body: Ping(seq: seq, payload: "\(seq)"), as: Ping.self)) }
            }
            var all: [(Int64, Ping)] = []
            for try await result in group { all.append(result) }
            return all
        }
        #expect(results.count == 8)
        for (seq, ping) in results { #expect(ping == Ping(seq: seq, payload: "\(seq)")) }
        await client.close()
        #expect(await peer.finish() == [])
    }

    @Test func errorReplyIsThrownWithItsCode() async throws {
        let (client, peer) = try await connectedPair { peer in
            let request = try peer.nextRequest("demo.fail")
            try peer.send(.errorReply(to: request.envelope.id!, code: "demo.broken", message: "it broke",
                                      data: ["where": "here"]))
        }
        do {
            _ = try await client.request("demo.fail")
            Issue.record("no error thrown")
        } catch let error as PrivSepError {
            #expect(error == PrivSepError(code: "demo.broken", message: "it broke", data: ["where": "here"], source: .reply))
        }
        await client.close()
        #expect(await peer.finish() == [])
    }

    @Test func streamingReplyYieldsEveryPart() async throws {
        let (client, peer) = try await connectedPair { peer in
            let request = try peer.nextRequest("demo.count")
            let id = request.envelope.id!
            for index in 0 ..< 3 {
                try peer.send(.reply(to: id, body: ["i": .number(JSONNumber(index))], more: true))
            }
            try peer.send(.reply(to: id, body: ["i": 3, "done": true]))
            let failing = try peer.nextRequest("demo.count")
            try peer.send(.reply(to: failing.envelope.id!, body: ["i": 0], more: true))
            try peer.send(.errorReply(to: failing.envelope.id!, code: .timeout, message: "gave up"))
        }
        var parts: [Reply] = []
        for try await part in try await client.streamingRequest("demo.count", body: ["n": 3] as JSONObject) {
            parts.append(part)
        }
        #expect(parts.map(\.body) == [["i": 0], ["i": 1], ["i": 2], ["i": 3, "done": true]])
        #expect(parts.map(\.more) == [true, true, true, false])

        var seen = 0
        do {
            for try await _ in try await client.streamingRequest("demo.count") { seen += 1 }
            Issue.record("stream ended without the error")
        } catch let error as PrivSepError {
            #expect(error.code == .timeout)
            #expect(error.source == .reply)
        }
        #expect(seen == 1)
        await client.close()
        #expect(await peer.finish() == [])
    }

    @Test func servesRequestsAndReceivesEvents() async throws {
        let (client, peer) = try await connectedPair { peer in
            try peer.send(.request("demo.upper", id: 41, body: ["text": "hello"]))
            let reply = try peer.next()
            peer.check(reply.envelope == Envelope.reply(to: 41, body: ["text": "HELLO"]), "reply \(reply.envelope.jsonValue.jsonText)")
            try peer.send(.request("demo.upper", id: 42, body: ["text": 5]))
            let refusal = try peer.next()
            peer.check(refusal.envelope.re == 42 && refusal.envelope.error?.code == .invalid, "refusal \(refusal.envelope.jsonValue.jsonText)")
            try peer.send(.event("demo.note", body: ["n": 1]))
            try peer.send(.event("privsep.shutdown", body: ["grace_ms": 500]))
        }
        var messages = client.incoming.makeAsyncIterator()
        let upper = try #require(await messages.next())
        #expect(upper.type == "demo.upper" && upper.id == 41 && upper.from == "broker" && upper.isRequest)
        let text = try upper.decode(Text.self)
        try await client.reply(to: upper, body: Text(text: text.text.uppercased()))

        let bad = try #require(await messages.next())
        do {
            _ = try bad.decode(Text.self)
            Issue.record("decoded a number as a string")
        } catch {
            try await client.replyError(to: bad, code: .invalid, message: "\(error)")
        }

        let note = try #require(await messages.next())
        #expect(note.type == "demo.note" && note.id == nil && note.body == ["n": 1])
        await #expect(throws: PrivSepError.self) { try await client.reply(to: note) }

        let shutdown = try #require(await messages.next())
        #expect(shutdown.type == "privsep.shutdown" && shutdown.body == ["grace_ms": 500])
        // The peer hangs up after the shutdown event: the stream ends.
        #expect(await messages.next() == nil)
        #expect(await peer.finish() == [])
        await client.close()
    }

    @Test func descriptorsTravelBothWays() async throws {
        let (client, peer) = try await connectedPair { peer in
            // Client → peer: a pipe's write end; write into it and answer.
            let request = try peer.nextRequest("demo.write")
            peer.check(request.fds.count == 1, "expected 1 fd, got \(request.fds.count)")
            if let fd = request.fds.first { try writeAll(fd.rawValue, Array("from-peer".utf8)) }
            request.fds.forEach { $0.close() }
            try peer.send(.reply(to: request.envelope.id!))

            // Peer → client: a pipe's read end with data in it.
            let (readEnd, writeEnd) = try makePipe()
            try writeAll(writeEnd.rawValue, Array("from-broker".utf8))
            try writeEnd.close()
            try peer.send(.event("demo.file"), fds: [readEnd])
            try readEnd.close()

            // Peer → client: a write end the client drops without taking; the client must close it.
            let (probeRead, probeWrite) = try makePipe()
            try peer.send(.event("demo.dropped"), fds: [probeWrite])
            try probeWrite.close()
            let leftover = try readAll(probeRead.rawValue)  // EOF only once the client closed its copy
            peer.check(leftover.isEmpty, "unexpected bytes")
            try probeRead.close()
            try peer.send(.event("demo.done"))
        }
        let (readEnd, writeEnd) = try makePipe()
        _ = try await client.request("demo.write", fds: [writeEnd])
        try writeEnd.close()
        // EOF proves the client closed the duplicate it sent.
        #expect(try readAll(readEnd.rawValue) == Array("from-peer".utf8))
        try readEnd.close()

        var messages = client.incoming.makeAsyncIterator()
        let file = try #require(await messages.next())
        #expect(file.type == "demo.file" && file.fds.count == 1)
        let taken = file.takeFDs()
        #expect(taken.count == 1 && file.fds.isEmpty && file.takeFDs().isEmpty)
        if let fd = taken.first {
            #expect(try readAll(fd.rawValue) == Array("from-broker".utf8))
            try fd.close()
        }

        do {
            let dropped = try #require(await messages.next())
            #expect(dropped.type == "demo.dropped" && dropped.fds.count == 1)
        }
        let done = try #require(await messages.next())
        #expect(done.type == "demo.done")
        await client.close()
        #expect(await peer.finish() == [])
    }

    @Test func logAndRestrictSendTheSchemaShapes() async throws {
        let (client, peer) = try await connectedPair { peer in
            let log = try peer.next()
            peer.check(log.envelope == Envelope.event("privsep.log", body: [
                "level": "warning", "message": "disk low", "fields": ["free_mb": 12, "path": "/var", "ok": false],
            ]), "log \(log.envelope.jsonValue.jsonText)")
            let plain = try peer.next()
            peer.check(plain.envelope.body == ["level": "info", "message": "plain"], "plain log \(plain.envelope.jsonValue.jsonText)")
            let restrict = try peer.nextRequest("privsep.restrict")
            peer.check(restrict.envelope.body == ["serves": [], "may_send": ["privsep.log"]], "restrict \(restrict.envelope.jsonValue.jsonText)")
            try peer.send(.reply(to: restrict.envelope.id!, body: ["may_send": ["privsep.log"], "serves": [], "receives": ["privsep.shutdown"]]))
        }
        try await client.log(level: .warning, message: "disk low", fields: ["free_mb": 12, "path": "/var", "ok": false])
        try await client.log(message: "plain")
        await #expect(throws: PrivSepError.self) { try await client.log(message: "x", fields: ["bad name": 1]) }
        await #expect(throws: PrivSepError.self) { try await client.log(message: "x", fields: ["nested": ["a": 1]]) }
        let permissions = try await client.restrict(maySend: ["privsep.log"], serves: [])
        #expect(permissions == Permissions(maySend: ["privsep.log"], serves: [], receives: ["privsep.shutdown"]))
        await client.close()
        #expect(await peer.finish() == [])
    }

    @Test func cancellingAWaitThrowsAndTheLateReplyIsDropped() async throws {
        let received = Signal()
        let (client, peer) = try await connectedPair { peer in
            let slow = try peer.nextRequest("demo.slow")
            received.raise()
            let ping = try peer.nextRequest("privsep.ping")
            try peer.send(.reply(to: slow.envelope.id!, body: ["late": true]))
            try peer.send(.reply(to: ping.envelope.id!, body: ping.envelope.body))
        }
        let slow = Task { try await client.request("demo.slow") }
        await received.wait()
        slow.cancel()
        await #expect(throws: CancellationError.self) { _ = try await slow.value }
        let ping = try await client.request("privsep.ping", body: Ping(seq: 1, payload: "after"), as: Ping.self)
        #expect(ping == Ping(seq: 1, payload: "after"))
        await client.close()
        #expect(await peer.finish() == [])
    }

    @Test func cancellingAStreamForgetsTheRequest() async throws {
        let firstPart = Signal()
        let (client, peer) = try await connectedPair { peer in
            let request = try peer.nextRequest("demo.count")
            try peer.send(.reply(to: request.envelope.id!, body: ["i": 0], more: true))
            let ping = try peer.nextRequest("privsep.ping")
            try peer.send(.reply(to: request.envelope.id!, body: ["i": 1], more: true))
            try peer.send(.reply(to: request.envelope.id!, body: ["i": 2]))
            try peer.send(.reply(to: ping.envelope.id!, body: ["seq": 1]))
        }
        let stream = try await client.streamingRequest("demo.count")
        let seen = Counter()
        let consumer = Task {
            for try await _ in stream {
                seen.add(1)
                firstPart.raise()
            }
        }
        await firstPart.wait()
        consumer.cancel()
        // Like a cancelled request, the iteration ends by throwing CancellationError.
        await #expect(throws: CancellationError.self) { try await consumer.value }
        #expect(seen.value == 1)
        // The later parts arrive after the stream was forgotten and are dropped; the ping's
        // reply behind them still finds its caller.
        let pong = try await client.request("privsep.ping", body: ["seq": 1] as JSONObject)
        #expect(pong.body == ["seq": 1])
        await client.close()
        #expect(await peer.finish() == [])
    }

    @Test func endOfStreamFailsPendingRequestsAndEndsIncoming() async throws {
        let (client, peer) = try await connectedPair { peer in
            _ = try peer.nextRequest("demo.hang")
        }
        do {
            _ = try await client.request("demo.hang")
            Issue.record("no error")
        } catch let error as PrivSepError {
            #expect(error.code == .unavailable && error.source == .local)
        }
        var messages = client.incoming.makeAsyncIterator()
        #expect(await messages.next() == nil)
        await #expect(throws: PrivSepError.self) { try await client.send(event: "demo.after") }
        #expect(client.closedReason?.code == .unavailable)
        await client.close()
        #expect(await peer.finish() == [])
    }

    @Test func protocolViolationClosesTheClient() async throws {
        let (client, peer) = try await connectedPair { peer in
            _ = try peer.nextRequest("demo.x")
            try peer.sendRawFrame(Array("[1]".utf8))
            _ = try? peer.connection.receive()  // wait for the client to hang up
        }
        do {
            _ = try await client.request("demo.x")
            Issue.record("no error")
        } catch let error as PrivSepError {
            #expect(error.code == .protocol && error.source == .local)
        }
        await client.close()
        #expect(await peer.finish() == [])
    }

    @Test func malformedRequestFromTheBrokerIsAnsweredInvalid() async throws {
        let (client, peer) = try await connectedPair { peer in
            try peer.sendRawFrame(Array(#"{"type":"demo.bad","id":5,"bogus":1,"from":"broker"}"#.utf8))
            let answer = try peer.next()
            peer.check(answer.envelope.re == 5 && answer.envelope.error?.code == .invalid,
                       "answer \(answer.envelope.jsonValue.jsonText)")
        }
        #expect(await peer.finish() == [])
        await client.close()
    }

    @Test func incomingBufferIsBounded() async throws {
        let overflowed = Signal()
        let options = ClientOptions(maxBufferedMessages: 2)
        let (client, peer) = try await connectedPair(options: options) { peer in
            for id in Int64(1) ... 3 { try peer.send(.request("demo.upper", id: id, body: ["text": "x"])) }
            try peer.send(.event("demo.lost"))
            let refusal = try peer.next()
            peer.check(refusal.envelope.re == 3 && refusal.envelope.error?.code == .unavailable,
                       "refusal \(refusal.envelope.jsonValue.jsonText)")
            // The event after it was dropped too; a ping proves the client read past it.
            try peer.send(.request("privsep.ping", id: 9, body: [:]))
            let second = try peer.next()
            peer.check(second.envelope.re == 9 && second.envelope.error?.code == .unavailable, "ping refusal")
            overflowed.raise()
            for _ in 0 ..< 2 {
                let reply = try peer.next()
                peer.check(reply.envelope.body == ["text": "X"], "reply \(reply.envelope.jsonValue.jsonText)")
            }
        }
        await overflowed.wait()
        #expect(client.droppedEvents == 1)
        var messages = client.incoming.makeAsyncIterator()
        for expected in Int64(1) ... 2 {
            let message = try #require(await messages.next())
            #expect(message.id == expected)
            try await client.reply(to: message, body: Text(text: "X"))
        }
        #expect(await peer.finish() == [])
        await client.close()
    }

    @Test func localChecksRefuseBeforeSending() async throws {
        let (client, peer) = try await connectedPair(maxFrame: 64) { peer in
            let ok = try peer.nextRequest("privsep.ping")
            try peer.send(.reply(to: ok.envelope.id!))
        }
        func localCode(_ operation: () async throws -> Void) async -> ErrorCode? {
            do { try await operation() } catch let error as PrivSepError where error.source == .local { return error.code } catch {}
            return nil
        }
        #expect(await localCode { _ = try await client.request("NotAType") } == .invalid)
        #expect(await localCode { try await client.send(event: "demo.big", body: ["text": .string(String(repeating: "x", count: 100))] as JSONObject) } == .tooLarge)
        let (r, w) = try makePipe()
        #expect(await localCode { try await client.send(event: "demo.fds", fds: Array(repeating: w, count: 9)) } == .tooLarge)
        try r.close()
        try w.close()
        await #expect(throws: EncodingError.self) { try await client.send(event: "demo.array", body: [1, 2]) }
        _ = try await client.request("privsep.ping")
        await client.close()
        await #expect(throws: PrivSepError.self) { try await client.send(event: "demo.closed") }
        #expect(await peer.finish() == [])
    }

    @Test func pendingRequestsAreBounded() async throws {
        let received = Signal()
        let (client, peer) = try await connectedPair(options: ClientOptions(maxPendingRequests: 1)) { peer in
            let first = try peer.nextRequest("demo.slow")
            received.raise()
            let go = try peer.next()
            peer.check(go.envelope.type == "demo.go", "expected demo.go")
            try peer.send(.reply(to: first.envelope.id!))
            let ping = try peer.nextRequest("privsep.ping")
            try peer.send(.reply(to: ping.envelope.id!))
        }
        let slow = Task { try await client.request("demo.slow") }
        await received.wait()
        await #expect(throws: PrivSepError.self) { _ = try await client.request("demo.second") }
        try await client.send(event: "demo.go")
        _ = try await slow.value
        _ = try await client.request("privsep.ping")
        await client.close()
        #expect(await peer.finish() == [])
    }

    @Test func largeMessagesAndAFullOutgoingQueue() async throws {
        let stalled = Signal()
        let gate = try makePipe()  // the peer blocks reading it until the test writes a byte
        let accepted = Counter()
        let big = String(repeating: "y", count: 100_000)
        let (client, peer) = try await connectedPair(options: ClientOptions(maxQueuedBytes: 256 << 10)) { peer in
            // A reply far larger than the socket buffer: written in pieces, flushed on POLLOUT.
            let request = try peer.nextRequest("demo.big")
            try peer.send(.reply(to: request.envelope.id!, body: ["text": .string(String(repeating: "z", count: 900_000))]))
            // Stop reading until the client's queue has overflowed.
            stalled.raise()
            var byte: UInt8 = 0
            _ = Glibc.read(gate.read.rawValue, &byte, 1)
            var count = 0
            while case .message(let next)? = try peer.connection.receive() {
                peer.check(next.envelope.type == "demo.fill" && next.envelope.body["text"]?.stringValue?.utf8.count == 100_000,
                           "event \(next.envelope.type ?? "?")")
                count += 1
            }
            peer.check(count == accepted.value, "\(count) events arrived, \(accepted.value) were accepted")
        }
        let reply = try await client.request("demo.big", as: Text.self)
        #expect(reply.text.utf8.count == 900_000)

        await stalled.wait()
        var refused: PrivSepError?
        for _ in 0 ..< 1000 {
            do {
                try await client.send(event: "demo.fill", body: Text(text: big))
                accepted.add(1)
            } catch let error as PrivSepError {
                refused = error
                break
            }
        }
        #expect(refused?.code == .unavailable && refused?.source == .local)
        #expect(accepted.value >= 2)
        // The refusal is not fatal: once the peer reads again, close() flushes everything queued.
        try writeAll(gate.write.rawValue, [1])
        await client.close()
        #expect(await peer.finish() == [])
        try gate.read.close()
        try gate.write.close()
    }
}
