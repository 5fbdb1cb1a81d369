// The frame decoder and encoder on their own: splits, hostile lengths, bounded buffering.

import PrivSepJSON
@testable import PrivSepWire
import Testing

private func frames(_ envelopes: [Envelope]) throws -> [UInt8] {
    var bytes: [UInt8] = []
    for envelope in envelopes { bytes += try envelope.encodeFrame() }
    return bytes
}

private let sample: [Envelope] = [
    .request("privsep.ping", id: 1, body: ["seq": 1, "payload": "x"]),
    .event("demo.tick"),
    .reply(to: 1, body: ["ok": true], more: true),
    .errorReply(to: 1, code: .denied, message: "no", data: ["rule": "files"]),
]

@Suite struct FramingTests {
    @Test func encodeLayout() throws {
        let bytes = try Envelope.event("a.b").encodeFrame()
        let json = Array(#"{"type":"a.b","body":{}}"#.utf8)
        #expect(bytes == [0, 0, 0, UInt8(json.count)] + json)
    }

    @Test func splitAtEveryBoundaryPair() throws {
        // Three reads, split at every pair of offsets: the same four frames every time.
        let stream = try frames(sample)
        for first in 0 ... stream.count {
            for second in first ... stream.count where (second - first) % 7 == 0 || second == stream.count {
                var decoder = FrameDecoder()
                var bodies: [[UInt8]] = []
                for part in [stream[0 ..< first], stream[first ..< second], stream[second...]] {
                    bodies += try decoder.feed(Array(part)).map(\.body)
                }
                try decoder.finish()
                let decoded = try bodies.map { try Envelope.decode(frame: $0, sender: .broker) }
                #expect(decoded == sample)
            }
        }
    }

    @Test func frameStartsAreStreamOffsets() throws {
        let stream = try frames(sample)
        var decoder = FrameDecoder()
        let result = try decoder.feed(stream)
        var expected = 0
        for frame in result {
            #expect(frame.start == expected)
            expected += 4 + frame.body.count
        }
        #expect(expected == stream.count)
        #expect(decoder.offset == stream.count)
    }

    @Test(arguments: [UInt32(0), 1, 0xFFFF_FFFF, UInt32(WireLimits.defaultMaxFrame + 1), 0x8000_0000])
    func hostileLengthRejectedAtPrefix(_ length: UInt32) {
        var decoder = FrameDecoder()
        let prefix: [UInt8] = [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
        #expect(throws: WireError.self) { _ = try decoder.feed(prefix) }
        // Nothing beyond the four prefix bytes was ever buffered.
        #expect(decoder.bufferedBytes <= 4)
        let error = decoder.error
        #expect(error?.isFatal == true)
        #expect(error?.code == (length < 2 ? .protocol : .tooLarge))
        // Poisoned: more input keeps failing with the same error.
        #expect(throws: error!) { _ = try decoder.feed([0x7B, 0x7D]) }
    }

    @Test func bufferNeverPassesMaxFramePlusPrefix() throws {
        let maxFrame = 256
        var decoder = FrameDecoder(maxFrame: maxFrame)
        let body = Array(#"{"type":"a.b","body":{"p":""#.utf8) + [UInt8](repeating: 0x78, count: 200) + Array(#""}}"#.utf8)
        let frame = [0, 0, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
        var stream: [UInt8] = []
        for _ in 0 ..< 50 { stream += frame }
        var count = 0
        var index = 0
        var step = 1
        while index < stream.count {
            let end = min(index + step, stream.count)
            count += try decoder.feed(Array(stream[index ..< end])).count
            #expect(decoder.bufferedBytes <= maxFrame + 4)
            index = end
            step = step * 3 % 997 + 1
        }
        #expect(count == 50)
    }

    @Test func maxFrameIsClamped() {
        #expect(FrameDecoder(maxFrame: 1 << 30).maxFrame == WireLimits.maxFrameCeiling)
        #expect(FrameDecoder(maxFrame: 0).maxFrame == WireLimits.minFrame)
        #expect(WireLimits(maxFrame: 64 << 20).maxFrame == 16 << 20)
    }

    @Test func encoderRefusesOversizeMessage() {
        let big = Envelope.event("a.b", body: ["s": .string(String(repeating: "x", count: 100))])
        #expect(throws: WireError.self) { _ = try big.encodeFrame(maxFrame: 64) }
        #expect((try? big.encodeFrame(maxFrame: 200)) != nil)
    }

    @Test func truncationReportedAtEnd() throws {
        let stream = try frames([sample[0]])
        for cut in 1 ..< stream.count {
            var decoder = FrameDecoder()
            #expect(try decoder.feed(Array(stream[0 ..< cut])).isEmpty)
            #expect(throws: WireError.self) { try decoder.finish() }
            #expect(decoder.error?.reason == .truncatedFrame)
        }
    }
}
