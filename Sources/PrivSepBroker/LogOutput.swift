// The broker's log: swift-log, to stderr, as human text or as one JSON object per line.
//
// Each line is written with a single write(2), so lines from the broker never interleave
// mid-line with each other. Helper output arrives here already split into lines and tagged.

import Glibc
import Logging
import PrivSepJSON

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
/// third of the broker's user time per privsep.file.open, by perf).
public struct LogSink: Sendable {
    public let format: LogFormat
    public let level: Logger.Level
    private let fd: Int32

    public init(format: LogFormat, level: Logger.Level, fd: Int32 = STDERR_FILENO) {
        self.format = format
        self.level = level
        self.fd = fd
    }

    /// Whether a line at `level` is written at all.
    public func accepts(_ level: Logger.Level) -> Bool { level >= self.level }

    /// Renders one line and writes it with a single write(2). `fields` must be sorted by key,
    /// and none may be named `time`, `level` or `message` (the JSON line's own members).
    func write(_ level: Logger.Level, _ message: String, fields: [(key: String, value: String)]) {
        var line: [UInt8] = []
        line.reserveCapacity(512)
        write(level, message, fields: fields, buffer: &line)
    }

    /// `write(_:_:fields:)`, rendering into `line` (emptied first, its capacity kept): for a
    /// caller that writes many lines and keeps one buffer for them.
    func write(_ level: Logger.Level, _ message: String, fields: [(key: String, value: String)],
               buffer line: inout [UInt8])
    {
        line.removeAll(keepingCapacity: true)
        switch format {
        case .text: renderText(level, message, fields, into: &line)
        case .json: renderJSON(level, message, fields, into: &line)
        }
        line.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(fd, base + offset, raw.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                offset += written
            }
        }
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
