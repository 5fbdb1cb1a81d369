// bench-json: our strict parser and serializer against jansson on the same 120-byte message,
// in the same run.
//
// Each repetition times a batch of parses (and of parse + compact dump) for both libraries,
// interleaved so they share the machine's state; the figure printed is the median over the
// repetitions, in nanoseconds per message. jansson runs with default flags (json_loadb with 0,
// json_dumpb with JSON_COMPACT into a reused buffer); ours serializes into a reused array.
//
// Usage: bench-json [iterations-per-batch [repetitions]]

import CJansson
import Glibc
import PrivSepJSON

/// The issue's message, with the payload padded with `x` to exactly 120 bytes.
func benchmarkMessage() -> [UInt8] {
    let head = #"{"type":"privsep.ping","id":123,"body":{"seq":123,"payload":""#
    let tail = #""}}"#
    let padding = 120 - head.utf8.count - tail.utf8.count
    return Array((head + String(repeating: "x", count: padding) + tail).utf8)
}

func now() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

/// Runs `body` `iterations` times and returns nanoseconds per iteration.
@inline(never)
func measure(_ iterations: Int, _ body: () -> Int) -> (Double, Int) {
    var sink = 0
    let start = now()
    for _ in 0..<iterations { sink &+= body() }
    let elapsed = now() - start
    return (Double(elapsed) / Double(iterations), sink)
}

func median(_ samples: [Double]) -> Double {
    let sorted = samples.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func fail(_ message: String) -> Never {
    let line = Array("bench-json: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}

let arguments = CommandLine.arguments
let iterations = arguments.count > 1 ? Int(arguments[1]) ?? 50_000 : 50_000
let repetitions = arguments.count > 2 ? Int(arguments[2]) ?? 15 : 15
let message = benchmarkMessage()
guard message.count == 120 else { fail("message is \(message.count) bytes, not 120") }

message.withUnsafeBytes { raw in
    guard let start = raw.baseAddress else { fail("empty message") }
    let chars = start.assumingMemoryBound(to: CChar.self)
    var dumpBuffer = [CChar](repeating: 0, count: 512)
    var output: [UInt8] = []
    output.reserveCapacity(512)

    // Both sides must agree with the input before anything is timed.
    let ours: JSONValue
    do { ours = try JSONParser.parse(raw) } catch { fail("our parser rejected the message: \(error)") }
    guard ours.serialized() == message else { fail("our serialization differs from the input") }
    var error = json_error_t()
    guard let theirs = json_loadb(chars, raw.count, 0, &error) else { fail("jansson rejected the message") }
    let dumped = json_dumpb(theirs, &dumpBuffer, dumpBuffer.count, Int(JSON_COMPACT))
    guard dumped == message.count, dumpBuffer.prefix(dumped).map({ UInt8(bitPattern: $0) }) == message else {
        fail("jansson's compact dump differs from the input")
    }
    json_decref(theirs)

    func oursParse() -> Int {
        guard let value = try? JSONParser.parse(raw) else { fail("parse failed") }
        guard case .object(let object) = value else { fail("not an object") }
        return object.count
    }
    func oursParseDump() -> Int {
        guard let value = try? JSONParser.parse(raw) else { fail("parse failed") }
        output.removeAll(keepingCapacity: true)
        value.serialize(into: &output)
        return output.count
    }
    func janssonParse() -> Int {
        var error = json_error_t()
        guard let value = json_loadb(chars, raw.count, 0, &error) else { fail("jansson parse failed") }
        let size = json_object_size(value)
        json_decref(value)
        return size
    }
    func janssonParseDump() -> Int {
        var error = json_error_t()
        guard let value = json_loadb(chars, raw.count, 0, &error) else { fail("jansson parse failed") }
        let size = json_dumpb(value, &dumpBuffer, dumpBuffer.count, Int(JSON_COMPACT))
        json_decref(value)
        return size
    }

    // Warm up caches, the allocator and the branch predictors.
    for _ in 0..<2 {
        _ = measure(iterations / 5, oursParse)
        _ = measure(iterations / 5, janssonParse)
    }

    var samples: [[Double]] = Array(repeating: [], count: 4)
    var sink = 0
    for _ in 0..<repetitions {
        for (slot, body) in [oursParse, janssonParse, oursParseDump, janssonParseDump].enumerated() {
            let (perMessage, result) = measure(iterations, body)
            samples[slot].append(perMessage)
            sink &+= result
        }
    }
    let medians = samples.map(median)
    func format(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
    let pad = { (text: String, width: Int) in String(repeating: " ", count: max(0, width - text.count)) + text }
    print("bench-json: 120-byte message, \(repetitions) repetitions x \(iterations) messages, median ns/msg")
    print("  \(pad("", 12)) \(pad("privsep", 10)) \(pad("jansson", 10)) \(pad("jansson/ours", 13))")
    print("  \(pad("parse", 12)) \(pad(format(medians[0]), 10)) \(pad(format(medians[1]), 10)) \(pad(format(medians[1] / medians[0]) + "x", 13))")
    print("  \(pad("parse+dump", 12)) \(pad(format(medians[2]), 10)) \(pad(format(medians[3]), 10)) \(pad(format(medians[3] / medians[2]) + "x", 13))")
    let goal = medians[1] / medians[0] >= 3
    print("  goal (parse >= 3x faster than jansson): \(goal ? "met" : "NOT met")  [checksum \(sink & 0xFFFF)]")
}
