// The envelope: builders, round trips, kinds, error codes and the reason for each refusal.

import PrivSepJSON
@testable import PrivSepWire
import Testing

@Suite struct EnvelopeTests {
    @Test func buildersRoundTrip() throws {
        let envelopes: [Envelope] = [
            .request("privsep.hello", id: 1, body: ["protocol": 1, "client": "swift/0.1"]),
            .event("files.changed", body: ["path": "/x"]),
            .reply(to: 9, body: ["n": 1], more: true),
            .reply(to: 9),
            .errorReply(to: 3, code: ErrorCode("privsep.not_found"), message: "gone"),
            Envelope(type: "a.b", fds: 2, from: "files"),
        ]
        for envelope in envelopes {
            let frame = try envelope.encodeFrame()
            let decoded = try Envelope.decode(frame: Array(frame.dropFirst(4)), sender: .broker)
            #expect(decoded == envelope)
        }
    }

    @Test func kinds() {
        #expect(Envelope.request("a.b", id: 1).kind == .request)
        #expect(Envelope.event("a.b").kind == .event)
        #expect(Envelope.reply(to: 1).kind == .reply)
        #expect(Envelope.errorReply(to: 1, code: .timeout, message: "late").isError)
    }

    @Test func standardCodesAreWellFormed() {
        #expect(ErrorCode.standard.count == 9)
        #expect(ErrorCode.standard.allSatisfy { $0.isWellFormed })
        #expect(Set(ErrorCode.standard.map(\.rawValue)).count == 9)
        #expect(ErrorCode.tooLarge.rawValue == "privsep.too_large")
        #expect(!ErrorCode("Bad Code").isWellFormed)
    }

    @Test(arguments: [
        ("a.b", true), ("privsep.hello", true), ("a1_.b2_c", true), ("x.y.z", true),
        ("a", false), ("", false), (".a.b", false), ("a.b.", false), ("a..b", false), ("A.b", false),
        ("a.B", false), ("1a.b", false), ("a._b", false), ("a.b-c", false), ("a.b c", false), ("a.\u{e9}", false),
    ])
    func typePattern(_ name: String, _ valid: Bool) {
        #expect(MessageType.isValid(name) == valid)
    }

    @Test func fromIsFatalOnlyFromHelpers() throws {
        let object: JSONObject = ["type": "a.b", "from": "broker"]
        #expect(throws: WireError.self) { _ = try Envelope(validating: object, sender: .helper) }
        do {
            _ = try Envelope(validating: object, sender: .helper)
        } catch {
            #expect(error.reason == .fromForbidden)
            #expect(error.isFatal)
        }
        #expect(try Envelope(validating: object, sender: .broker).from == "broker")
    }

    @Test func envelopeErrorsAreNotFatal() {
        do {
            _ = try Envelope(validating: ["type": "a.b", "id": 0], sender: .helper)
            Issue.record("id 0 accepted")
        } catch {
            #expect(error.code == .invalid)
            #expect(error.reason == .badId)
            #expect(!error.isFatal)
            #expect(error.message.contains("'id'"))
        }
    }

    @Test func fdsMemberWrittenFromCount() throws {
        let frame = try Envelope(type: "a.b", fds: 3).encodeFrame()
        let text = String(decoding: frame.dropFirst(4), as: UTF8.self)
        #expect(text == #"{"type":"a.b","body":{},"fds":3}"#)
    }
}

@Suite struct HandshakeTests {
    @Test func helloRoundTrip() throws {
        let request = Hello(client: "privsep-swift/0.1").request(id: 1)
        let decoded = try Envelope.decode(frame: Array(try request.encodeFrame().dropFirst(4)), sender: .helper)
        #expect(try Hello(validatingFirst: decoded) == Hello(client: "privsep-swift/0.1"))
    }

    @Test(arguments: [
        Envelope.event("privsep.hello", body: ["protocol": 1, "client": "x/1"]),
        Envelope.request("privsep.ping", id: 1),
        Envelope.request("privsep.hello", id: 1, body: ["protocol": 2, "client": "x/1"]),
        Envelope.request("privsep.hello", id: 1, body: ["protocol": 1]),
        Envelope.reply(to: 1),
    ])
    func otherFirstMessagesAreProtocolErrors(_ envelope: Envelope) {
        do {
            _ = try Hello(validatingFirst: envelope)
            Issue.record("accepted \(envelope.jsonValue.jsonText)")
        } catch {
            #expect(error.code == .protocol)
            #expect(error.isFatal)
        }
    }

    @Test func welcomeRoundTrip() throws {
        let welcome = Welcome(helper: "files", maxFrame: 4 << 20, maySend: ["privsep.log"], serves: ["files.open"], receives: ["files.changed"])
        #expect(try Welcome(validatingReply: welcome.reply(to: 1)) == welcome)
        var broken = welcome.reply(to: 1)
        broken.body["max_frame"] = .number(JSONNumber(64 << 20))
        #expect(throws: WireError.self) { _ = try Welcome(validatingReply: broken) }
        #expect(throws: WireError.self) {
            _ = try Welcome(validatingReply: .errorReply(to: 1, code: .protocol, message: "no"))
        }
    }

    /// The direct writer must give exactly the bytes of the tree, member order included.
    @Test func serializeMatchesTheTree() {
        let envelopes: [Envelope] = [
            .request("privsep.hello", id: 1, body: ["protocol": 1, "client": "swift/0.1"]),
            .event("files.changed", body: ["path": "/x\u{0}\"\\é", "n": [1, "2.5", nil, true, -3]]),
            .reply(to: 9_007_199_254_740_991, body: ["n": 1], more: true),
            .reply(to: 9),
            .errorReply(to: 3, code: ErrorCode("privsep.not_found"), message: "gone \n", data: ["at": "/a"]),
            .errorReply(to: 4, code: .timeout, message: ""),
            Envelope(type: "a.b", fds: 2, from: "files"),
            Envelope(re: 7, body: ["x": ["y": [:]]], more: true, fds: 8, from: "broker"),
            Envelope(type: "a\u{1}\"b", id: .max, re: 1, body: [:], from: "\u{7f}é\\"),
            .event("big.body", body: ["text": .string(String(repeating: "x\"", count: 700))]),
            // Members longer than the stack's room: a type and a sender's name of 2,000 bytes.
            Envelope(type: String(repeating: "a", count: 2_000), id: 1, from: String(repeating: "\u{1}", count: 2_000)),
            // Every member at its longest (not a valid envelope, but one the initializer makes).
            Envelope(type: "\u{1}", id: .min + 1, re: .min + 1, error: ErrorBody(code: .timeout, message: ""), more: true,
                     fds: .max, from: "\u{1}"),
        ]
        for envelope in envelopes {
            let tree = envelope.jsonValue.serialized()
            var direct: [UInt8] = []
            envelope.serialize(into: &direct)
            #expect(direct == tree, "\(envelope)")
            var framed: [UInt8] = [7]
            let length = envelope.appendFrame(to: &framed)
            #expect(length == tree.count && Array(framed.dropFirst(5)) == tree, "\(envelope)")
            #expect(framed.prefix(5) == [7, 0, UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)])
        }
    }

    /// A body forwarded as received keeps its bytes (whitespace, escapes) and still decodes to
    /// the same value; the rest of the envelope is the broker's.
    @Test func rawBodyIsSplicedAsReceived() throws {
        let frame = Array(#"{ "type" : "a.b", "body" : { "k" : "\u00e9" , "n":[1 ,2] } , "id":5}"#.utf8)
        var receiver = FrameReceiver(sender: .helper)
        let incoming = try receiver.receive([0, 0, 0, UInt8(frame.count)] + frame)
        guard case .message(let message)? = incoming.first, incoming.count == 1 else {
            Issue.record("expected one message, got \(incoming)")
            return
        }
        let raw = try #require(message.envelope.receivedBody)
        #expect(String(decoding: raw, as: UTF8.self) == #"{ "k" : "\u00e9" , "n":[1 ,2] }"#)
        var forwarded = Envelope.request("a.b", id: 77)
        forwarded.setBody(from: message.envelope)
        forwarded.from = "alpha"
        var bytes: [UInt8] = []
        forwarded.serialize(into: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == #"{"type":"a.b","id":77,"body":{ "k" : "\u00e9" , "n":[1 ,2] },"from":"alpha"}"#)
        #expect(try Envelope.decode(frame: bytes, sender: .broker) == forwarded)
    }

    /// A body passed on as received goes out in the envelope's one run while the whole fits in
    /// `Envelope.oneRunLimit`, and beside it when it does not: the same bytes either way.
    @Test func receivedBodiesEitherSideOfTheRunLimit() throws {
        for length in Envelope.oneRunLimit - 130 ... Envelope.oneRunLimit - 60 {
            let body = #"{"text":""# + String(repeating: "y", count: length) + #""}"#
            let frame = Array(#"{"type":"a.b","id":5,"body":"#.utf8) + Array(body.utf8) + Array("}".utf8)
            var receiver = FrameReceiver(sender: .helper)
            let incoming = try receiver.receive([0, 0, UInt8(frame.count >> 8), UInt8(frame.count & 0xFF)] + frame)
            guard case .message(let message)? = incoming.first, incoming.count == 1 else {
                Issue.record("expected one message, got \(incoming)")
                return
            }
            var forwarded = Envelope.reply(to: 12345)
            forwarded.setBody(from: message.envelope)
            forwarded.fds = 2
            forwarded.from = "broker"
            var bytes: [UInt8] = []
            let length = forwarded.appendFrame(to: &bytes)
            #expect(Array(bytes.dropFirst(4)) == forwarded.jsonValue.serialized())
            #expect(bytes.prefix(4) == [0, 0, UInt8(length >> 8), UInt8(length & 0xFF)] && length == bytes.count - 4)
        }
    }

    @Test func envelopeMembersMatchByBytes() {
        // "ｔype" (fullwidth t) and a key that is only canonically equal are unknown members.
        for key in ["ｔype", "Type", "bodyy", "i", "e\u{301}rror"] {
            var object = JSONObject()
            object["type"] = "a.b"
            object[key] = 1
            #expect(throws: WireError.self) { _ = try Envelope(validating: object, sender: .helper) }
        }
    }
}
