// The broker's log lines, as written to a real pipe: both formats, from the audit's direct path
// (LogSink.write) and from swift-log (LineLogHandler), which must render the same line; and the
// audit's queue (LogSink.queue), as written to a file.

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

    @Test func queuedLinesGoOutBeforeTheNextWrittenLineInTheOrderMade() throws {
        let fd = try unlinkedFile()
        defer { close(fd) }
        let sink = LogSink(format: .json, level: .info, fd: fd)
        sink.queue(.info, "first", fields: fields)
        // Copies share the queue: the swift-log handler holds one, the broker another.
        let copy = sink
        copy.queue(.notice, "second", fields: fields)
        #expect(sink.hasQueued)
        #expect(written(fd).isEmpty)
        sink.write(.warning, "third", fields: [])
        #expect(!sink.hasQueued)
        let lines = written(fd).split(separator: "\n")
        let messages = try lines.map { try JSONParser.parse(Array($0.utf8)).objectValue?["message"] }
        #expect(messages == ["first", "second", "third"])
        sink.writeQueued()
        #expect(written(fd).split(separator: "\n").count == 3)
    }

    @Test func theQueueIsWrittenWhenItsOldestLineIsDueOrAtItsLimit() throws {
        let fd = try unlinkedFile()
        defer { close(fd) }
        let sink = LogSink(format: .text, level: .info, fd: fd)
        sink.queue(.info, "audit", fields: fields)
        // Not yet due: the line was queued after time 0 of the monotonic clock.
        sink.writeQueued(dueAt: 0)
        #expect(written(fd).isEmpty)
        sink.writeQueued(dueAt: .max)
        #expect(written(fd).split(separator: "\n").count == 1)

        var queued = 0
        while written(fd).split(separator: "\n").count == 1 && queued < 10_000 {
            sink.queue(.info, "audit", fields: fields)
            queued += 1
        }
        let text = written(fd)
        // Written by `queue` itself once the lines reached the limit, whole lines only.
        #expect(!sink.hasQueued)
        #expect(text.hasSuffix("\n"))
        #expect(text.split(separator: "\n").count == 1 + queued)
        // Every line has the same length: the write came with the first line past the limit.
        let lineLength = text.utf8.count / (1 + queued)
        #expect(queued * lineLength >= LogSink.queueLimit)
        #expect((queued - 1) * lineLength < LogSink.queueLimit)
    }
}

/// A new file, already unlinked: a log that keeps everything written to it, whatever its size.
private func unlinkedFile() throws -> Int32 {
    var template = Array("/tmp/privsep-log-test-XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    try #require(fd >= 0)
    template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    return fd
}

/// Everything written to the file `fd`.
private func written(_ fd: Int32) -> String {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    var offset: off_t = 0
    while true {
        let count = pread(fd, &chunk, chunk.count, offset)
        if count <= 0 { break }
        bytes += chunk[0..<count]
        offset += off_t(count)
    }
    return String(decoding: bytes, as: UTF8.self)
}
