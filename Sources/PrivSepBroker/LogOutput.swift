// The broker's log: swift-log, to stderr, as human text or as one JSON object per line.
//
// Each line is written with a single write(2), so lines from the broker never interleave
// mid-line with each other. Helper output arrives here already split into lines and tagged.

import Glibc
import Logging
import PrivSepJSON

/// How log lines are rendered.
public enum LogFormat: String, Sendable, CaseIterable {
    /// `2026-11-26T19:05:31.123Z info  [helper=web] message key=value`
    case text
    /// `{"time":"...","level":"info","message":"...","helper":"web",...}`
    case json
}

/// A swift-log handler writing to a file descriptor (stderr by default).
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let format: LogFormat
    private let label: String
    private let fd: Int32

    public init(label: String, format: LogFormat, level: Logger.Level, fd: Int32 = STDERR_FILENO) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.fd = fd
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = metadata
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        let line: [UInt8]
        switch format {
        case .text: line = Array(textLine(event.level, "\(event.message)", fields).utf8)
        case .json: line = jsonLine(event.level, "\(event.message)", fields)
        }
        line.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                offset += written
            }
        }
    }

    private func textLine(_ level: Logger.Level, _ message: String, _ fields: Logger.Metadata) -> String {
        var line = "\(timestamp()) \(level.rawValue.padding(7)) "
        if let helper = fields["helper"] { line += "[\(helper)] " }
        line += message
        for key in fields.keys.sorted() where key != "helper" {
            line += " \(key)=\(quoteIfNeeded("\(fields[key]!)"))"
        }
        return line + "\n"
    }

    private func jsonLine(_ level: Logger.Level, _ message: String, _ fields: Logger.Metadata) -> [UInt8] {
        var members: [(key: String, value: JSONValue)] = [
            ("time", .string(timestamp())), ("level", .string(level.rawValue)), ("message", .string(message)),
        ]
        members.reserveCapacity(3 + fields.count)
        for (key, value) in fields.sorted(by: { $0.key < $1.key })
        where key != "time" && key != "level" && key != "message" {
            members.append((key, jsonValue(value)))
        }
        var bytes = JSONValue.object(JSONObject(uniqueMembers: members)).serialized()
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    private func jsonValue(_ value: Logger.MetadataValue) -> JSONValue {
        switch value {
        case .string(let text): return .string(text)
        case .stringConvertible(let convertible): return .string(convertible.description)
        case .array(let items): return .array(items.map(jsonValue))
        case .dictionary(let map):
            var object = JSONObject()
            for key in map.keys.sorted() { object[key] = jsonValue(map[key]!) }
            return .object(object)
        }
    }
}

private func quoteIfNeeded(_ text: String) -> String {
    let plain = !text.isEmpty && text.utf8.allSatisfy { $0 > 0x20 && $0 != UInt8(ascii: "\"") && $0 != 0x7f }
    if plain { return text }
    var quoted = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": quoted += "\\\""
        case "\\": quoted += "\\\\"
        case "\n": quoted += "\\n"
        case "\t": quoted += "\\t"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7f {
                quoted += "\\x" + String(scalar.value, radix: 16)
            } else {
                quoted.unicodeScalars.append(scalar)
            }
        }
    }
    return quoted + "\""
}

/// UTC time as RFC 3339 with milliseconds, without Foundation: written digit by digit into a
/// fixed buffer, because every log line (one per audited service call) pays for it.
func timestamp() -> String {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    var seconds = now.tv_sec
    var parts = tm()
    gmtime_r(&seconds, &parts)
    let fields: [(value: Int, width: Int, separator: UInt8)] = [
        (Int(parts.tm_year) + 1900, 4, UInt8(ascii: "-")), (Int(parts.tm_mon) + 1, 2, UInt8(ascii: "-")),
        (Int(parts.tm_mday), 2, UInt8(ascii: "T")), (Int(parts.tm_hour), 2, UInt8(ascii: ":")),
        (Int(parts.tm_min), 2, UInt8(ascii: ":")), (Int(parts.tm_sec), 2, UInt8(ascii: ".")),
        (Int(now.tv_nsec / 1_000_000), 3, UInt8(ascii: "Z")),
    ]
    return String(unsafeUninitializedCapacity: 24) { buffer in
        var position = 0
        for field in fields {
            var value = field.value
            for index in stride(from: position + field.width - 1, through: position, by: -1) {
                buffer[index] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            }
            position += field.width
            buffer[position] = field.separator
            position += 1
        }
        return position
    }
}

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
