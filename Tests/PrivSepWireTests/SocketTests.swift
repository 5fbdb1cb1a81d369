// Real socketpairs in one process: fd attribution, MSG_CTRUNC, closing unclaimed descriptors,
// non-blocking partial writes and the queue bound. Closed descriptors are proven closed by the
// pipe they belong to reaching end of file, which works while other tests run in parallel.

import CPrivSep
import Glibc
import PrivSepJSON
import PrivSepWire
import SystemPackage
import Testing

/// A pipe read end holding `text`, its write end closed.
private func pipeHolding(_ text: String) throws -> OwnedFD {
    let (readEnd, writeEnd) = try makePipe()
    let bytes = Array(text.utf8)
    guard write(writeEnd.rawValue, bytes, bytes.count) == bytes.count else { throw TestFailure("pipe write") }
    writeEnd.close()
    return readEnd
}

/// Sends raw bytes with descriptors in one sendmsg, bypassing Connection's checks.
private func rawSend(_ socket: OwnedFD, _ bytes: [UInt8], fds: [Int32]) throws {
    let sent = bytes.withUnsafeBytes { buffer in
        cps_wire_send(socket.rawValue, buffer.baseAddress, buffer.count, fds, Int32(fds.count))
    }
    guard sent == bytes.count else { throw TestFailure("raw send: \(sent), errno \(errno)") }
}

private func frameBytes(_ json: String) -> [UInt8] {
    let body = Array(json.utf8)
    return [UInt8(body.count >> 24 & 0xFF), UInt8(body.count >> 16 & 0xFF), UInt8(body.count >> 8 & 0xFF), UInt8(body.count & 0xFF)] + body
}

private func expectFatal(_ connection: Connection, _ reason: WireError.Reason) {
    do {
        while true {
            var ignored: [Incoming] = []
            switch try connection.read(into: &ignored) {
            case .frames: continue
            case .wouldBlock, .endOfStream:
                Issue.record("no error; expected \(reason)")
                return
            }
        }
    } catch {
        #expect(error.reason == reason)
        #expect(error.isFatal)
    }
}

@Suite struct SocketTests {
    @Test func fdsAttributedToTheirFrames() throws {
        let (a, b) = try Connection.socketPair()
        let sender = Connection(socket: a, peer: .helper)
        let receiver = Connection(socket: b, peer: .helper)
        // Frames with 0, 1, 3, 0, 8 and 2 descriptors, each a pipe holding its own label.
        let plan = [0, 1, 3, 0, 8, 2]
        for (index, count) in plan.enumerated() {
            let pipes = try (0 ..< count).map { try pipeHolding("frame \(index) fd \($0)") }
            try sender.sendAll(.event("test.fds", body: ["index": .number(JSONNumber(index))]), fds: pipes.map(\.descriptor))
            // Borrowed: closing ours now must not matter, the kernel holds its own references.
            for pipe in pipes { pipe.close() }
        }
        for (index, count) in plan.enumerated() {
            guard case .message(let message)? = try receiver.receive() else {
                Issue.record("frame \(index) missing")
                return
            }
            #expect(message.envelope.body["index"]?.int64Value == Int64(index))
            #expect(message.envelope.fds == count)
            #expect(message.fds.count == count)
            for (slot, fd) in message.fds.enumerated() {
                #expect(String(decoding: readToEnd(fd.rawValue), as: UTF8.self) == "frame \(index) fd \(slot)")
                // MSG_CMSG_CLOEXEC: nothing received leaks into processes we spawn.
                #expect(fcntl(fd.rawValue, F_GETFD) & FD_CLOEXEC != 0)
            }
        }
        #expect(receiver.pendingInputFds == 0)
    }

    /// Handed-over descriptors are kept, not duplicated: the queue holds the caller's objects
    /// and closes them once sent, and the peer gets working ones.
    @Test func handedDescriptorsAreKeptSentAndClosed() throws {
        let (a, b) = try Connection.socketPair()
        let sender = Connection(socket: a, peer: .broker)
        let receiver = Connection(socket: b, peer: .broker)
        let pipes = try (0 ..< 3).map { try pipeHolding("handed \($0)") }
        let numbers = pipes.map(\.rawValue)
        try sender.enqueue(.reply(to: 1, body: ["n": 3]), handing: pipes)
        #expect(pipes.map(\.rawValue) == numbers, "handing duplicated or took the descriptors")
        #expect(try sender.flush())
        #expect(pipes.allSatisfy { !$0.isOpen }, "the queue did not close what it sent")
        guard case .message(let message)? = try receiver.receive() else {
            Issue.record("no message")
            return
        }
        #expect(message.fds.count == 3)
        for (slot, fd) in message.fds.enumerated() {
            #expect(String(decoding: readToEnd(fd.rawValue), as: UTF8.self) == "handed \(slot)")
        }
    }

    @Test func controlTruncationIsFatalAndClosesEverything() throws {
        let (a, b) = try Connection.socketPair()
        let receiver = Connection(socket: b, peer: .helper)
        let (readEnd, writeEnd) = try makePipe()
        // 12 copies of the write end, more than the receiver's control buffer holds.
        try rawSend(a, frameBytes(#"{"type":"a.b","fds":8}"#), fds: [Int32](repeating: writeEnd.rawValue, count: 12))
        writeEnd.close()
        expectFatal(receiver, .controlTruncated)
        #expect(receiver.pendingInputFds == 0)
        #expect(pipeAtEOF(readEnd), "a received copy of the write end is still open")
    }

    @Test func unclaimedFdsAreClosed() throws {
        let (a, b) = try Connection.socketPair()
        let receiver = Connection(socket: b, peer: .helper)
        let (readEnd, writeEnd) = try makePipe()
        try rawSend(a, frameBytes(#"{"type":"a.b"}"#), fds: [writeEnd.rawValue])
        writeEnd.close()
        expectFatal(receiver, .fdsUnclaimed)
        #expect(pipeAtEOF(readEnd))
    }

    @Test func refusedMessageFdsAreClosedAndStreamContinues() throws {
        let (a, b) = try Connection.socketPair()
        let receiver = Connection(socket: b, peer: .helper)
        let (readEnd, writeEnd) = try makePipe()
        try rawSend(a, frameBytes(#"{"type":"a.b","id":7,"bogus":1,"fds":1}"#), fds: [writeEnd.rawValue])
        writeEnd.close()
        try rawSend(a, frameBytes(#"{"type":"a.b"}"#), fds: [])
        guard case .refused(let refused)? = try receiver.receive() else {
            Issue.record("expected a refusal")
            return
        }
        #expect(refused.error.reason == .unknownMember)
        #expect(refused.replyTo == 7)
        #expect(pipeAtEOF(readEnd))
        guard case .message(let next)? = try receiver.receive() else {
            Issue.record("stream did not continue")
            return
        }
        #expect(next.envelope.type == "a.b")
    }

    @Test func closeReleasesFdsOfAnIncompleteFrame() throws {
        let (a, b) = try Connection.socketPair()
        let receiver = Connection(socket: b, peer: .helper)
        let (readEnd, writeEnd) = try makePipe()
        let frame = frameBytes(#"{"type":"a.b","fds":1}"#)
        try rawSend(a, Array(frame.prefix(10)), fds: [writeEnd.rawValue])
        writeEnd.close()
        var none: [Incoming] = []
        guard case .frames(let count) = try receiver.read(into: &none) else {
            Issue.record("read failed")
            return
        }
        #expect(count == 0 && none.isEmpty)
        #expect(receiver.pendingInputFds == 1)
        #expect(!pipeAtEOF(readEnd))
        receiver.close()
        #expect(pipeAtEOF(readEnd))
    }

    @Test func endOfStreamInsideAFrameIsTruncation() throws {
        let (a, b) = try Connection.socketPair()
        let receiver = Connection(socket: b, peer: .helper)
        try rawSend(a, Array(frameBytes(#"{"type":"a.b"}"#).prefix(7)), fds: [])
        a.close()
        expectFatal(receiver, .truncatedFrame)
    }

    @Test func cleanEndOfStream() throws {
        let (a, b) = try Connection.socketPair()
        let receiver = Connection(socket: b, peer: .helper)
        try rawSend(a, frameBytes(#"{"type":"a.b"}"#), fds: [])
        a.close()
        guard case .message? = try receiver.receive() else {
            Issue.record("frame lost")
            return
        }
        #expect(try receiver.receive() == nil)
    }

    @Test func nonBlockingPartialWritesKeepOrderAndFds() throws {
        let (a, b) = try Connection.socketPair(nonBlocking: true)
        let limits = WireLimits(maxFrame: 1 << 20, maxQueuedBytes: 64 << 20)
        let sender = Connection(socket: a, peer: .helper, limits: limits)
        let receiver = Connection(socket: b, peer: .helper, limits: limits)
        let payload = JSONValue.string(String(repeating: "p", count: 200_000))
        var statuses: [SendStatus] = []
        var sentCount = 0
        // Fill the socket buffer until a send only queues, then queue more, one with an fd.
        while statuses.last != .queued && sentCount < 200 {
            statuses.append(try sender.send(.event("test.big", body: ["n": .number(JSONNumber(sentCount)), "p": payload])))
            sentCount += 1
        }
        #expect(statuses.last == .queued)
        #expect(sender.pendingOutputBytes > 0)
        let marker = try pipeHolding("queued fd")
        #expect(try sender.send(.event("test.fd", body: ["n": .number(JSONNumber(sentCount))]), fds: [marker.descriptor]) == .queued)
        marker.close()  // the queue holds its own duplicate
        sentCount += 1
        var received: [ReceivedMessage] = []
        var rounds = 0
        while received.count < sentCount && rounds < 100_000 {
            rounds += 1
            _ = try sender.flush()
            var outcomes: [Incoming] = []
            switch try receiver.read(into: &outcomes) {
            case .frames:
                for case .message(let message) in outcomes { received.append(message) }
            case .wouldBlock, .endOfStream: continue
            }
        }
        #expect(!sender.hasPendingOutput)
        #expect(received.count == sentCount)
        for (index, message) in received.enumerated() {
            #expect(message.envelope.body["n"]?.int64Value == Int64(index))
        }
        #expect(received.last?.fds.count == 1)
        if let fd = received.last?.fds.first {
            #expect(String(decoding: readToEnd(fd.rawValue), as: UTF8.self) == "queued fd")
        }
    }

    @Test func sendQueueIsBounded() throws {
        let (a, b) = try Connection.socketPair(nonBlocking: true)
        let sender = Connection(socket: a, peer: .helper, limits: WireLimits(maxFrame: 1 << 16, maxQueuedBytes: 1 << 18))
        let payload = JSONValue.string(String(repeating: "q", count: 60_000))
        var failure: WireError?
        for _ in 0 ..< 1000 where failure == nil {
            do { try sender.send(.event("test.big", body: ["p": payload])) } catch { failure = error }
        }
        #expect(failure?.reason == .sendQueueFull)
        #expect(sender.pendingOutputBytes <= 1 << 18)
        _ = b
    }

    @Test func tooManyFdsRefusedBeforeSending() throws {
        let (a, _) = try Connection.socketPair()
        let sender = Connection(socket: a, peer: .helper)
        let fds = [FileDescriptor](repeating: FileDescriptor(rawValue: 0), count: 9)
        #expect(throws: WireError.self) { try sender.send(.event("a.b"), fds: fds) }
        #expect(!sender.hasPendingOutput)
    }

    @Test func peerGoneIsReported() throws {
        let (a, b) = try Connection.socketPair()
        let sender = Connection(socket: a, peer: .helper)
        b.close()
        do {
            try sender.sendAll(.event("a.b"))
            Issue.record("send to a closed peer succeeded")
        } catch {
            #expect(error.reason == .connectionClosed)
            #expect(error.code == .unavailable)
        }
    }
}

@Suite struct ReceiverBoundTests {
    @Test func fdsInsideAnIncompleteFrameAreRejectedAtOnce() throws {
        // The frame's own fd comes with its first byte; a second batch arrives mid-body. It
        // cannot belong to anything, so the receiver must not keep it until the frame ends.
        var receiver = FrameReceiver(sender: .helper)
        let body = Array(#"{"type":"a.b","fds":1,"body":{"pad":"xxxxxxxxxxxxxxxxxxxx"}}"#.utf8)
        let frame = [0, 0, 0, UInt8(body.count)] + body
        let first = [OwnedFD(adopting: open("/dev/null", O_RDONLY | O_CLOEXEC))]
        let second = [OwnedFD(adopting: open("/dev/null", O_RDONLY | O_CLOEXEC))]
        #expect(try receiver.receive(Array(frame[0 ..< 10]), fds: first).isEmpty)
        #expect(receiver.pendingFdCount == 1)
        #expect(throws: WireError.self) { _ = try receiver.receive(Array(frame[10 ..< 20]), fds: second) }
        #expect(receiver.error?.reason == .fdsUnclaimed)
        #expect(!first[0].isOpen && !second[0].isOpen)
    }
}
