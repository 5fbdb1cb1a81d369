// The broker's log lines, as written to a real pipe: both formats, from the audit's direct path
// (LogSink.write) and from swift-log (LineLogHandler), which must render the same line.

import Glibc
import Logging
import PrivSepJSON
import Testing

@testable import PrivSepBroker

/// Writes through `write` into a pipe and returns what came out.
private func captured(_ write: (Int32) -> Void) throws -> String {
    var ends: [Int32] = [0, 0]
    try #require(pipe(&ends) == 0)
    defer { close(ends[0]) }
    write(ends[1])
    close(ends[1])
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = read(ends[0], &chunk, chunk.count)
        if count <= 0 { break }
        bytes += chunk[0..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// `2026-11-27T02:14:05.123Z`: 24 bytes, digits where digits go.
private func isTimestamp(_ text: Substring) -> Bool {
    let shape = Array("dddd-dd-ddTdd:dd:dd.dddZ".utf8)
    let bytes = Array(text.utf8)
    guard bytes.count == shape.count else { return false }
    return zip(bytes, shape).allSatisfy { byte, want in
        want == UInt8(ascii: "d") ? (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) : byte == want
    }
}

private let fields: [(key: String, value: String)] = [
    ("arguments", #"{"path":"/a b"}"#), ("helper", "web"), ("rule", "none"),
]

@Suite struct LogTests {
    @Test func jsonLinesAreOneObjectWithTimeLevelMessageThenTheFieldsInOrder() throws {
        let line = try captured { fd in LogSink(format: .json, level: .info, fd: fd).write(.notice, "audit", fields: fields) }
        #expect(line.hasSuffix("}\n"))
        #expect(line.filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONParser.parse(Array(line.utf8.dropLast())).objectValue)
        #expect(object.members.map(\.key) == ["time", "level", "message", "arguments", "helper", "rule"])
        #expect(isTimestamp(Substring(object["time"]?.stringValue ?? "")))
        #expect(object["level"] == "notice")
        #expect(object["message"] == "audit")
        #expect(object["arguments"] == #"{"path":"/a b"}"#)
    }

    @Test func textLinesPutTheHelperFirstAndQuoteValuesThatNeedIt() throws {
        let line = try captured { fd in LogSink(format: .text, level: .info, fd: fd).write(.info, "audit", fields: fields) }
        let time = line.prefix(24)
        #expect(isTimestamp(time))
        #expect(line.dropFirst(24) == #" info    [web] audit arguments="{\"path\":\"/a b\"}" rule=none"# + "\n")
    }

    @Test func aHelpersTextCannotEndTheLineOrSendControlSequences() throws {
        let hostile = "done\n2026-01-01T00:00:00.000Z notice  [other] forged\u{1b}[31m"
        let line = try captured { fd in
            LogSink(format: .text, level: .info, fd: fd).write(.info, hostile, fields: [("helper", "web"), ("note", "a\rb")])
        }
        #expect(line.filter { $0 == "\n" }.count == 1)
        #expect(!line.unicodeScalars.contains("\u{1b}") && !line.unicodeScalars.contains("\r"))
        #expect(line.dropFirst(24) == #" info    [web] done\n2026-01-01T00:00:00.000Z notice  [other] forged\x1b[31m note="a\x0db""# + "\n")
    }

    @Test func swiftLogLinesHaveTheSameShapeWithKeysSorted() throws {
        let direct = try captured { fd in LogSink(format: .json, level: .info, fd: fd).write(.info, "m", fields: fields) }
        let viaLogger = try captured { fd in
            let sink = LogSink(format: .json, level: .info, fd: fd)
            let logger = Logger(label: "test") { LineLogHandler(label: $0, sink: sink) }
            logger.info("m", metadata: ["rule": "none", "helper": "web", "arguments": #"{"path":"/a b"}"#])
            logger.debug("below the level", metadata: ["helper": "web"])
        }
        // The same line but for the time.
        #expect(direct.dropFirst(34) == viaLogger.dropFirst(34))
        #expect(direct.prefix(9) == #"{"time":""#)
    }

    @Test func theSinkAcceptsItsLevelAndAbove() {
        let sink = LogSink(format: .text, level: .notice, fd: -1)
        #expect(!sink.accepts(.info))
        #expect(sink.accepts(.notice))
        #expect(sink.accepts(.critical))
    }
}
