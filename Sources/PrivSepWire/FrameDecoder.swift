// Incremental frame decoder: bytes in, complete frame bodies out.
//
// The decoder keeps at most one incomplete frame (its 4-byte prefix and up to max_frame body
// bytes), so its buffer never grows past max_frame + 4 whatever a peer sends. The length is
// checked the moment its fourth byte arrives, before a single body byte is stored.

/// One complete frame body and where its length prefix began in the stream.
public struct RawFrame: Sendable {
    /// The JSON bytes (without the length prefix).
    public var body: [UInt8]
    /// The stream offset of the first byte of the length prefix.
    public var start: Int
}

/// Splits a byte stream into frames; feed it reads of any size, split anywhere.
public struct FrameDecoder: Sendable {
    /// The largest body accepted.
    public let maxFrame: Int
    private var header: UInt32 = 0
    private var headerBytes = 0
    private var bodyLength = 0
    private var body: [UInt8] = []
    private var frameStart = 0
    /// Bytes consumed so far: the stream offset of the next byte fed.
    public private(set) var offset = 0
    private var failure: WireError?

    public init(maxFrame: Int = WireLimits.defaultMaxFrame) {
        self.maxFrame = min(max(maxFrame, WireLimits.minFrame), WireLimits.maxFrameCeiling)
    }

    /// The stream offset where the frame being assembled (or the next one) begins.
    public var currentFrameStart: Int { frameStart }

    /// Whether part of a frame is buffered.
    public var isMidFrame: Bool { headerBytes > 0 }

    /// Bytes held for the incomplete frame (at most max_frame + 4).
    public var bufferedBytes: Int { headerBytes + body.count }

    /// Consumes `bytes`, returning every frame they complete, in order. A bad length prefix
    /// poisons the decoder: frames completed before it in the same call are returned and the
    /// error is thrown by the next call (`error` shows it at once).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> [RawFrame] {
        var frames: [RawFrame] = []
        try feed(bytes, into: &frames)
        return frames
    }

    /// `feed(_:)`, appending the frames to `frames`.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, into frames: inout [RawFrame]) throws(WireError) {
        if let failure { throw failure }
        let before = frames.count
        do {
            try consume(bytes, into: &frames)
        } catch {
            if frames.count == before { throw error }
        }
    }

    /// The error that poisoned the decoder, if any.
    public var error: WireError? { failure }

    private mutating func consume(_ bytes: UnsafeRawBufferPointer, into frames: inout [RawFrame]) throws(WireError) {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        var index = 0
        let count = bytes.count
        while index < count {
            if headerBytes == 0 && count - index >= 4 {
                // The whole prefix at once, as in nearly every read.
                header = UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt32.self))
                headerBytes = 4
                index += 4
                offset += 4
                try startBody()
            } else if headerBytes < 4 {
                header = header << 8 | UInt32(base[index])
                headerBytes += 1
                index += 1
                offset += 1
                if headerBytes == 4 { try startBody() }
            } else {
                let chunk = UnsafeBufferPointer(start: base + index, count: min(bodyLength - body.count, count - index))
                if body.isEmpty && chunk.count == bodyLength {
                    // The whole body at hand: one allocation of its size and one copy.
                    body = Array(chunk)
                } else {
                    if body.isEmpty { body.reserveCapacity(bodyLength) }
                    body.append(contentsOf: chunk)
                }
                index += chunk.count
                offset += chunk.count
            }
            if headerBytes == 4 && body.count == bodyLength {
                frames.append(RawFrame(body: body, start: frameStart))
                body = []
                header = 0
                headerBytes = 0
                frameStart = offset
            }
        }
    }

    /// Convenience for arrays.
    public mutating func feed(_ bytes: [UInt8]) throws(WireError) -> [RawFrame] {
        var result: Result<[RawFrame], WireError> = .success([])
        bytes.withUnsafeBytes { raw in
            do throws(WireError) { result = .success(try feed(raw)) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// The stream ended: an error if a frame was cut off.
    public mutating func finish() throws(WireError) {
        if let failure { throw failure }
        guard headerBytes == 0 else {
            let error = WireError.protocolViolation(
                .truncatedFrame,
                headerBytes < 4
                    ? "stream ended after \(headerBytes) of 4 length-prefix bytes at offset \(frameStart)"
                    : "stream ended after \(body.count) of \(bodyLength) body bytes of the frame at offset \(frameStart)")
            failure = error
            throw error
        }
    }

    private mutating func startBody() throws(WireError) {
        let length = Int(header)
        if length < WireLimits.minFrame || length > maxFrame {
            let error = WireError.protocolViolation(
                length < WireLimits.minFrame ? .frameTooShort : .frameTooLarge,
                "frame at offset \(frameStart): length prefix \(length) is outside 2...\(maxFrame)")
            failure = error
            body = []
            throw error
        }
        bodyLength = length
    }
}
