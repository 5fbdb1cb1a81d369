// The envelope scanner against the full path it stands in for: what it accepts, the full path
// accepts with the same envelope and body span; the common frames it must accept; and the
// frames it must leave to the full path.

import PrivSepJSON
@testable import PrivSepWire
import Testing

/// The full path: parse the whole frame, then the envelope checks; nil where it refuses.
private func fullPath(_ frame: String, sender: Sender, limits: JSONLimits = .default) -> (Envelope, Range<Int>?)? {
    let bytes = Array(frame.utf8)
    guard let (object, span) = try? Envelope.parseFrame(bytes, limits: limits) else { return nil }
    let found = Envelope.Members(object)
    guard let declared = try? Envelope.preflight(found, sender: sender),
          let envelope = try? Envelope(validating: found, declaredFds: declared)
    else { return nil }
    return (envelope, span)
}

private func scanned(_ frame: String, sender: Sender, limits: JSONLimits = .default) -> (Envelope, Range<Int>?)? {
    let bytes = Array(frame.utf8)
    return EnvelopeScanner.scan(bytes, sender: sender, limits: limits).map { found in
        let envelope = found.message(of: bytes, fds: []).envelope
        return (envelope, envelope.receivedBody.map { $0.startIndex ..< $0.endIndex })
    }
}

/// Frames the scanner must read itself, as the broker (helper sender) or a helper sees them.
private let plainFrames: [(String, Sender)] = [
    (#"{"type":"privsep.file.open","id":123456,"body":{"path":"/etc/motd","access":["read"]}}"#, .helper),
    (#"{"type":"privsep.ping","id":1}"#, .helper),
    (#"{"type":"files.changed","body":{"n":[1,2,{"x":null}],"ok":true}}"#, .helper),
    (#" { "id" : 9007199254740991 , "type" : "a.b" , "body" : { } } "#, .helper),
    (#"{"re":5,"body":{"pong":true},"fds":1}"#, .broker),
    (#"{"re":5,"more":true}"#, .broker),
    (#"{"type":"a.b","id":2,"from":"files","fds":8}"#, .broker),
    ("{\"type\":\"a.b\",\"body\":{\"s\":\"\\u00e9 \\\"q\\\"\",\"r\":1.5e3}}", .helper),  // the body may hold anything
]

/// Valid or not, these go the full path's way.
private let fullPathFrames: [(String, Sender)] = [
    ("{\"type\":\"a\\u002eb\",\"id\":1}", .helper),  // an escape in an envelope string
    (#"{"type":"a.b","id":1.0}"#, .helper),  // a real the full path reads as integral
    (#"{"type":"a.b","id":01}"#, .helper),
    (#"{"type":"a.b","id":-1}"#, .helper),
    (#"{"type":"a.b","id":0}"#, .helper),
    (#"{"type":"a.b","id":9007199254740992}"#, .helper),
    (#"{"type":"a.b","id":12345678901234567}"#, .helper),
    (#"{"type":"A.b","id":1}"#, .helper),
    (#"{"type":"a.b","id":1,"id":2}"#, .helper),
    (#"{"type":"a.b","extra":1}"#, .helper),
    (#"{"re":1,"error":{"code":"privsep.denied","message":"no"}}"#, .broker),
    (#"{"type":"a.b","from":"x"}"#, .helper),  // from by a helper: a protocol error
    (#"{"type":"a.b","from":""}"#, .broker),
    (#"{"type":"a.b","fds":0}"#, .helper),
    (#"{"type":"a.b","fds":9}"#, .helper),
    (#"{"type":"a.b","more":true}"#, .helper),
    (#"{"re":1,"more":false}"#, .broker),
    (#"{"re":1,"type":"a.b"}"#, .broker),
    (#"{"re":1,"id":2}"#, .broker),
    (#"{"id":1}"#, .helper),
    (#"{"type":"a.b","body":[]}"#, .helper),
    (#"{"type":"a.b","body":{"k":1,"k":2}}"#, .helper),
    (#"{"type":"a.b","body":{"k":1}"#, .helper),
    (#"{"type":"a.b"} x"#, .helper),
    (#"{"type":"a.b","id":1,}"#, .helper),
    (#"{"type":"a.b","id":1x}"#, .helper),
    (#"{"type":"a.b","more":truex,"re":1}"#, .broker),
    ("\u{FEFF}{\"type\":\"a.b\"}", .helper),
    (#"["type","a.b"]"#, .helper),
    (#"{}"#, .helper),
]

@Suite struct EnvelopeScannerTests {
    @Test func readsThePlainFramesAsTheFullPathDoes() throws {
        for (frame, sender) in plainFrames {
            let fast = try #require(scanned(frame, sender: sender), "scanner gave up on \(frame)")
            let full = try #require(fullPath(frame, sender: sender), "full path refused \(frame)")
            #expect(fast.0 == full.0, "\(frame)")
            #expect(fast.1 == full.1, "\(frame)")
        }
    }

    @Test func leavesEverythingElseToTheFullPath() {
        for (frame, sender) in fullPathFrames {
            #expect(scanned(frame, sender: sender) == nil, "scanner took \(frame)")
        }
    }

    /// The type name a sender sent before is reused only for the same bytes (not a prefix, not
    /// a name of the same length); any other name is read and checked as usual.
    @Test func reusesTheLastTypeOnlyForTheSameBytes() throws {
        let lastType = "bench.broker.tick"
        let scan = { (frame: String) in
            EnvelopeScanner.scan(Array(frame.utf8), sender: .helper, limits: .default, lastType: lastType)?.type
        }
        #expect(try #require(scan(#"{"type":"bench.broker.tick"}"#)) == lastType)
        #expect(try #require(scan(#"{"type":"bench.broker.tock"}"#)) == "bench.broker.tock")
        #expect(try #require(scan(#"{"type":"bench.broker.tic"}"#)) == "bench.broker.tic")
        #expect(scan(#"{"type":"Bench.broker.tick"}"#) == nil)
    }

    /// Limits a plain frame crosses: the full path reports them, so the scanner gives up.
    @Test func leavesLimitsToTheFullPath() {
        let frame = #"{"type":"privsep.ping","id":1,"body":{"a":[[1]]}}"#
        #expect(scanned(frame, sender: .helper) != nil)
        for limits in [JSONLimits(maxDepth: 3), JSONLimits(maxNodes: 6), JSONLimits(maxContainerCount: 2),
                       JSONLimits(maxStringBytes: 11)]
        {
            #expect(fullPath(frame, sender: .helper, limits: limits) == nil, "\(limits)")
            #expect(scanned(frame, sender: .helper, limits: limits) == nil, "\(limits)")
        }
        // One more of each, and both take it.
        for limits in [JSONLimits(maxDepth: 4), JSONLimits(maxNodes: 7), JSONLimits(maxContainerCount: 3),
                       JSONLimits(maxStringBytes: 12)]
        {
            #expect(fullPath(frame, sender: .helper, limits: limits) != nil, "\(limits)")
            #expect(scanned(frame, sender: .helper, limits: limits) != nil, "\(limits)")
        }
    }

    /// Every single-byte change of the plain frames: wherever the scanner still accepts, the full
    /// path agrees on the envelope and the body span.
    @Test func agreesWithTheFullPathOnAlteredFrames() {
        var accepted = 0
        for (frame, sender) in plainFrames {
            let bytes = Array(frame.utf8)
            for position in bytes.indices {
                for replacement in [UInt8(ascii: "\""), UInt8(ascii: "1"), UInt8(ascii: "}"), UInt8(ascii: ","),
                                    UInt8(ascii: " "), UInt8(ascii: "a"), UInt8(ascii: "."), 0x00, 0xC3]
                {
                    var altered = bytes
                    altered[position] = replacement
                    let text = String(decoding: altered, as: UTF8.self)
                    guard Array(text.utf8) == altered else { continue }  // not UTF-8: the parser's, tested there
                    guard let fast = scanned(text, sender: sender) else { continue }
                    accepted += 1
                    let full = fullPath(text, sender: sender)
                    #expect(full?.0 == fast.0, "\(text)")
                    #expect(full?.1 == fast.1, "\(text)")
                }
            }
        }
        #expect(accepted > 100)
    }

    /// A body the receiver's check vouches for is not parsed, yet reads, compares and is written
    /// as the parsed one; a type it does not vouch for, or a body before its type, is parsed.
    @Test func aBodyTheCheckVouchesForIsKeptAsItsBytes() throws {
        func framed(_ text: String) -> [UInt8] {
            let bytes = Array(text.utf8)
            return [0, 0, UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes
        }
        // Stands in for the schema's check: vouches for privsep.ping by parsing (counted below).
        let check: BodyBytesChecks = { type in
            guard type == "privsep.ping" else { return nil }
            return { frame, start, limits in
                guard let parsed = try? JSONParser.parseValue(in: frame, at: start, enclosingDepth: 1, limits: limits)
                else { return nil }
                return (parsed.end, parsed.nodes)
            }
        }
        let vouched = #"{"type":"privsep.ping","id":3,"body":{"seq":1,"payload":"x y"}}"#
        var receiver = FrameReceiver(sender: .helper)
        receiver.bodyChecks = check
        guard case .message(let message)? = try receiver.receive(framed(vouched)).first else {
            Issue.record("no message")
            return
        }
        #expect(message.bodyChecked)
        #expect(message.envelope.body == ["seq": 1, "payload": "x y"])
        #expect(message.envelope == (try Envelope.decode(frame: Array(vouched.utf8), sender: .helper)))
        var written: [UInt8] = []
        var forwarded = Envelope.request("privsep.ping", id: 9)
        forwarded.setBody(from: message.envelope)
        forwarded.serialize(into: &written)
        #expect(String(decoding: written, as: UTF8.self) == #"{"type":"privsep.ping","id":9,"body":{"seq":1,"payload":"x y"}}"#)
        // Setting the body replaces the bytes.
        forwarded.body = ["seq": 2]
        written = []
        forwarded.serialize(into: &written)
        #expect(String(decoding: written, as: UTF8.self) == #"{"type":"privsep.ping","id":9,"body":{"seq":2}}"#)

        for parsedFrame in [#"{"type":"a.b","id":3,"body":{"seq":1}}"#, #"{"body":{"seq":1},"type":"privsep.ping","id":3}"#] {
            var other = FrameReceiver(sender: .helper)
            other.bodyChecks = check
            guard case .message(let message)? = try other.receive(framed(parsedFrame)).first else {
                Issue.record("no message for \(parsedFrame)")
                continue
            }
            #expect(!message.bodyChecked, "\(parsedFrame)")
            #expect(message.envelope.body == ["seq": 1], "\(parsedFrame)")
        }
    }

    /// A reply's body is checked from its bytes only with the check given for its `re`, and only
    /// until the next expectation; any other reply is parsed.
    @Test func aReplyBodyIsCheckedOnlyForTheReplyExpected() throws {
        func framed(_ text: String) -> [UInt8] {
            let bytes = Array(text.utf8)
            return [0, 0, 0, UInt8(bytes.count)] + bytes
        }
        let check: BodyBytesCheck = { frame, start, limits in
            guard let parsed = try? JSONParser.parseValue(in: frame, at: start, enclosingDepth: 1, limits: limits)
            else { return nil }
            return (parsed.end, parsed.nodes)
        }
        var receiver = FrameReceiver(sender: .helper)
        func checked(_ text: String) throws -> Bool? {
            guard case .message(let message)? = try receiver.receive(framed(text)).first else { return nil }
            #expect(message.envelope.body == ["n": 1], "\(text)")
            return message.bodyChecked
        }
        #expect(try checked(#"{"re":5,"body":{"n":1}}"#) == false)
        receiver.expectReply(to: 5, check: check)
        #expect(try checked(#"{"re":5,"body":{"n":1}}"#) == true)
        #expect(try checked(#"{"re":5,"body":{"n":1},"more":true}"#) == true)
        #expect(try checked(#"{"re":6,"body":{"n":1}}"#) == false)
        #expect(try checked(#"{"body":{"n":1},"re":5}"#) == false)
        receiver.expectReply(to: 6, check: check)
        #expect(try checked(#"{"re":5,"body":{"n":1}}"#) == false)
        #expect(try checked(#"{"re":6,"body":{"n":1}}"#) == true)
        receiver.expectReply(to: 7, check: nil)
        #expect(try checked(#"{"re":7,"body":{"n":1}}"#) == false)
    }
}
