// The broker's log: swift-log, to stderr, as human text or as one JSON object per line.
//
// Lines from the broker never interleave mid-line with each other: a line, or a batch of whole
// queued lines, is handed to a single write(2). Helper output arrives here already split into
// lines and tagged.
//
// Why audit lines are queued: the write(2) of each line cost about 1.4 us on this VM, 1.9 us of
// a 30 us file.open round trip on one CPU (docs/performance.md, ninth round). The loop writes
// the queue whenever it is about to sleep, so an idle or lightly loaded broker writes each audit
// line within microseconds of its decision; only a broker that always has the next request
// ready lets lines gather, up to `LogSink.queueLimit` bytes or `LogSink.queueDelay`.

import Glibc
import Logging
import PrivSepJSON
import PrivSepWire

/// How log lines are rendered.
public enum LogFormat: String, Sendable, CaseIterable {
    /// `2026-11-26T19:05:31.123Z info    [web] message key=value`
    case text
    /// `{"time":"...","level":"info","message":"...","helper":"web",...}`
    case json
}

/// Where and how log lines go: the format, the lowest level written, and the descriptor.
///
/// Both the swift-log handler and the broker's audit trail render through one sink, so a line
/// has the same shape whatever its source. The audit skips swift-log: an audited service call
/// would otherwise pay for a metadata dictionary, its merge and its sort on every request (a
/// third of the broker's user time per privsep.file.open, by perf). Audit lines are queued
/// (`queue`); every other line is written at once, after whatever is queued, so the log keeps
/// the order in which lines were made.
public struct LogSink: Sendable {
    /// Queued bytes past which `queue` writes at once.
    public static let queueLimit = 64 * 1024
    /// The longest a queued line waits while the loop never sleeps (`writeQueued(dueAt:)`).
    public static let queueDelay: Int64 = 50_000_000

    public let format: LogFormat
    public let level: Logger.Level
    private let fd: Int32
    /// Lines rendered but not yet written, and when the oldest was queued; shared by every copy
    /// of the sink, so that the swift-log handler's lines go out after the audit's.
    private let queued = Locked(Queue())

    private struct Queue {
        var bytes: [UInt8] = []
        var since: Int64 = 0
    }

    public init(format: LogFormat, level: Logger.Level, fd: Int32 = STDERR_FILENO) {
        self.format = format
        self.level = level
        self.fd = fd
    }

    /// Whether a line at `level` is written at all.
    public func accepts(_ level: Logger.Level) -> Bool { level >= self.level }

    /// Renders one line and writes it, after the queued lines, with a single write(2). `fields`
    /// must be sorted by key, and none may be named `time`, `level` or `message` (the JSON
    /// line's own members).
    func write(_ level: Logger.Level, _ message: String, fields: [(key: String, value: String)]) {
        queued.withLock { queue in
            render(level, message, fields, into: &queue.bytes)
            flush(&queue)
        }
    }

    /// Renders one line as `write` does, onto the queue; writes the queue once it holds
    /// `queueLimit` bytes.
    func queue(_ level: Logger.Level, _ message: String, fields: [(key: String, value: String)]) {
        queued.withLock { queue in
            if queue.bytes.isEmpty {
                if queue.bytes.capacity < LogSink.queueLimit { queue.bytes.reserveCapacity(LogSink.queueLimit + 4096) }
                queue.since = monotonicNanoseconds()
            }
            render(level, message, fields, into: &queue.bytes)
            if queue.bytes.count >= LogSink.queueLimit { flush(&queue) }
        }
    }

    /// Whether lines are queued.
    var hasQueued: Bool { queued.withLock { !$0.bytes.isEmpty } }

    /// Writes the queued lines.
    func writeQueued() {
        queued.withLock { flush(&$0) }
    }

    /// Writes the queued lines if the oldest has waited `queueDelay` at `now` (monotonic);
    /// returns whether lines are still queued.
    @discardableResult
    func writeQueued(dueAt now: Int64) -> Bool {
        queued.withLock { queue in
            if !queue.bytes.isEmpty, now - queue.since >= LogSink.queueDelay { flush(&queue) }
            return !queue.bytes.isEmpty
        }
    }

    private func render(_ level: Logger.Level, _ message: String, _ fields: [(key: String, value: String)],
                        into line: inout [UInt8])
    {
        switch format {
        case .text: renderText(level, message, fields, into: &line)
        case .json: renderJSON(level, message, fields, into: &line)
        }
    }

    /// Writes `queue`'s bytes and empties it, keeping its capacity. A log that cannot be written
    /// (closed, full disk) loses the lines rather than stopping the broker.
    private func flush(_ queue: inout Queue) {
        queue.bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(fd, base + offset, raw.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                offset += written
            }
        }
        queue.bytes.removeAll(keepingCapacity: true)
    }

    private func renderText(_ level: Logger.Level, _ message: String, _ fields: [(key: String, value: String)],
                            into line: inout [UInt8])
    {
        appendTimestamp(to: &line)
        line.append(UInt8(ascii: " "))
        line.append(contentsOf: level.rawValue.utf8)
        let padding = max(0, 7 - level.rawValue.utf8.count)
        line.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding + 1))
        if let helper = fields.first(where: { $0.key == "helper" }) {
            line.append(UInt8(ascii: "["))
            appendEscaped(helper.value, quoting: false, to: &line)
            line.append(contentsOf: "] ".utf8)
        }
        appendEscaped(message, quoting: false, to: &line)
        for field in fields where field.key != "helper" {
            line.append(UInt8(ascii: " "))
            line.append(contentsOf: field.key.utf8)
            line.append(UInt8(ascii: "="))
            appendValue(field.value, to: &line)
        }
        line.append(UInt8(ascii: "\n"))
    }

    private func renderJSON(_ level: Logger.Level, _ message: String, _ fields: [(key: String, value: String)],
                            into line: inout [UInt8])
    {
        line.append(contentsOf: #"{"time":""#.utf8)
        appendTimestamp(to: &line)
        line.append(contentsOf: #"","level":""#.utf8)
        line.append(contentsOf: level.rawValue.utf8)
        line.append(contentsOf: #"","message":"#.utf8)
        JSONValue.serialize(string: message, into: &line)
        for field in fields {
            line.append(UInt8(ascii: ","))
            JSONValue.serialize(string: field.key, into: &line)
            line.append(UInt8(ascii: ":"))
            JSONValue.serialize(string: field.value, into: &line)
        }
        line.append(contentsOf: "}\n".utf8)
    }
}

/// The swift-log handler: metadata, sorted by key, to a `LogSink`.
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    private let sink: LogSink
    private var level: Logger.Level

    public init(label: String, sink: LogSink) {
        self.sink = sink
        self.level = sink.level
    }

    public var logLevel: Logger.Level {
        get { level }
        set { level = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        // A helper names the fields of its privsep.log: none may repeat a JSON line's own member.
        if sink.format == .json { merged = merged.filter { !LineLogHandler.lineMembers.contains($0.key) } }
        let fields = merged.map { (key: $0.key, value: "\($0.value)") }.sorted { $0.key < $1.key }
        sink.write(event.level, "\(event.message)", fields: fields)
    }

    private static let lineMembers: Set<String> = ["time", "level", "message"]
}

/// Appends a field's value: as it is when it is one word, else quoted.
private func appendValue(_ text: String, to line: inout [UInt8]) {
    let plain = !text.isEmpty && text.utf8.allSatisfy { $0 > 0x20 && $0 != UInt8(ascii: "\"") && $0 != 0x7f }
    if plain {
        line.append(contentsOf: text.utf8)
        return
    }
    line.append(UInt8(ascii: "\""))
    appendEscaped(text, quoting: true, to: &line)
    line.append(UInt8(ascii: "\""))
}

/// Appends `text` with its control characters escaped (`\n`, `\t`, `\xNN`), and with
/// `quoting` its quotes and backslashes too. Messages and values come from helpers: none may
/// end the line early, start a forged one, or reach a terminal as a control sequence.
private func appendEscaped(_ text: String, quoting: Bool, to line: inout [UInt8]) {
    func hexDigit(_ value: UInt8) -> UInt8 { value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10 }
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "\n"): line.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
        case UInt8(ascii: "\t"): line.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
        case 0..<0x20, 0x7f:
            line.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "x"), hexDigit(byte >> 4), hexDigit(byte & 0xF)])
        case UInt8(ascii: "\""), UInt8(ascii: "\\"):
            if quoting { line.append(UInt8(ascii: "\\")) }
            line.append(byte)
        default: line.append(byte)
        }
    }
}

/// Appends the UTC time as RFC 3339 with milliseconds, digit by digit and without Foundation,
/// because every log line (one per audited service call) pays for it.
func appendTimestamp(to line: inout [UInt8]) {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    var seconds = now.tv_sec
    var parts = tm()
    gmtime_r(&seconds, &parts)
    let year = Int(parts.tm_year) + 1900
    appendTwoDigits(year / 100 % 100, to: &line)
    appendTwoDigits(year % 100, then: UInt8(ascii: "-"), to: &line)
    appendTwoDigits(Int(parts.tm_mon) + 1, then: UInt8(ascii: "-"), to: &line)
    appendTwoDigits(Int(parts.tm_mday), then: UInt8(ascii: "T"), to: &line)
    appendTwoDigits(Int(parts.tm_hour), then: UInt8(ascii: ":"), to: &line)
    appendTwoDigits(Int(parts.tm_min), then: UInt8(ascii: ":"), to: &line)
    appendTwoDigits(Int(parts.tm_sec), then: UInt8(ascii: "."), to: &line)
    let milliseconds = Int(now.tv_nsec / 1_000_000)
    line.append(UInt8(ascii: "0") + UInt8(milliseconds / 100))
    appendTwoDigits(milliseconds % 100, then: UInt8(ascii: "Z"), to: &line)
}

/// Appends `value` (0...99) as two digits, then `separator` if given.
@inline(__always)
private func appendTwoDigits(_ value: Int, then separator: UInt8? = nil, to line: inout [UInt8]) {
    line.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: value / 10))
    line.append(UInt8(ascii: "0") + UInt8(truncatingIfNeeded: value % 10))
    if let separator { line.append(separator) }
}
