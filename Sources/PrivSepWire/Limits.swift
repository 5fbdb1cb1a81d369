// The numeric limits of wire protocol v1, in one place.

import PrivSepJSON

/// Bounds for one connection. Every buffer, queue and count the wire layer keeps is capped here.
public struct WireLimits: Sendable {
    /// The smallest legal frame body: `{}`.
    public static let minFrame = 2
    /// The default max_frame: 1 MiB.
    public static let defaultMaxFrame = 1 << 20
    /// The largest max_frame a helper may be configured with: 16 MiB.
    public static let maxFrameCeiling = 16 << 20
    /// The most descriptors one frame may carry.
    public static let maxFdsPerFrame = 8
    /// The largest id or re: 2^53 - 1, exact in every JSON implementation.
    public static let maxId: Int64 = (1 << 53) - 1

    /// The largest frame body accepted or sent, in 2...16 MiB.
    public let maxFrame: Int
    /// JSON limits applied to each frame body (depth 64 by default).
    public var json: JSONLimits
    /// Bytes the outgoing queue may hold before `send` fails with send_queue_full.
    public var maxQueuedBytes: Int
    /// Duplicated descriptors the outgoing queue may hold.
    public var maxQueuedFds: Int
    /// Bytes asked of the kernel per read.
    public var readChunk: Int

    /// Limits with `maxFrame` clamped to 2...16 MiB; the queue holds at least two whole frames.
    public init(maxFrame: Int = WireLimits.defaultMaxFrame, json: JSONLimits = .default,
                maxQueuedBytes: Int? = nil, maxQueuedFds: Int = 64, readChunk: Int = 64 << 10)
    {
        let frame = min(max(maxFrame, WireLimits.minFrame), WireLimits.maxFrameCeiling)
        self.maxFrame = frame
        self.json = json
        self.maxQueuedBytes = max(maxQueuedBytes ?? 4 << 20, 2 * (frame + 4))
        self.maxQueuedFds = max(maxQueuedFds, WireLimits.maxFdsPerFrame)
        self.readChunk = min(max(readChunk, 4096), 1 << 20)
    }

    /// The protocol defaults: 1 MiB frames, depth 64.
    public static let `default` = WireLimits()
}

/// Message-type names: `^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`.
public enum MessageType {
    /// Whether `name` matches the pattern (at least two dot-separated segments).
    public static func isValid(_ name: String) -> Bool {
        var name = name
        // Contiguous UTF-8 (native strings already are): a byte loop, not UTF8View's iterator.
        return name.withUTF8 { isValid(utf8: $0) }
    }

    /// `isValid` on the name's UTF-8 bytes (the scanner checks them before making a String).
    static func isValid(utf8 name: UnsafeBufferPointer<UInt8>) -> Bool {
        var segments = 0
        var atSegmentStart = true
        for byte in name {
            if atSegmentStart {
                guard byte >= 0x61 && byte <= 0x7A else { return false }
                atSegmentStart = false
                segments += 1
            } else if byte == 0x2E {
                atSegmentStart = true
            } else {
                let lower = byte >= 0x61 && byte <= 0x7A
                let digit = byte >= 0x30 && byte <= 0x39
                guard lower || digit || byte == 0x5F else { return false }
            }
        }
        return !atSegmentStart && segments >= 2
    }
}
