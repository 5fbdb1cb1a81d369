// Runs every case of Tests/Conformance/vectors/*.json against FrameReceiver, as README.md in
// that directory specifies: the same files every client in clients/ is tested against.

import Glibc
import PrivSepJSON
import PrivSepWire
import Testing

/// One conformance case, loaded from a vector file.
struct Vector: Sendable, CustomTestStringConvertible {
    let file: String
    let name: String
    let spec: JSONObject
    var testDescription: String { "\(file):\(name)" }
}

/// Every case of every vector file; a malformed file yields a case that fails with the reason.
func loadVectors() -> [Vector] {
    let directory = testsDirectory() + "/Conformance/vectors"
    var vectors: [Vector] = []
    for fileName in listDirectory(directory) where fileName.hasSuffix(".json") {
        guard let bytes = readFile(directory + "/" + fileName),
              case .object(let document)? = try? JSONParser.parse(bytes, limits: JSONLimits(maxDepth: 256)),
              document["format"] == "privsep-wire-vectors/1",
              case .array(let cases)? = document["cases"]
        else {
            vectors.append(Vector(file: fileName, name: "(unreadable file)", spec: JSONObject()))
            continue
        }
        for entry in cases {
            guard case .object(let spec) = entry, case .string(let name)? = spec["name"] else { continue }
            vectors.append(Vector(file: fileName, name: name, spec: spec))
        }
    }
    return vectors
}

/// What a run produced, in the vector's own terms.
struct Outcome {
    var messages: [JSONValue] = []
    var error: JSONValue = .null
}

/// Feeds the vector's reads to a receiver; `byteSplit` delivers one byte per read instead (only
/// for cases without fds, whose read boundaries carry no meaning).
func run(_ spec: JSONObject, byteSplit: Bool = false, created: inout [OwnedFD]) throws -> Outcome {
    guard case .string(let hex)? = spec["input"], let input = fromHex(hex) else { throw TestFailure("bad input") }
    let sender: Sender = spec["role"]?.stringValue == "broker" ? .broker : .helper
    let maxFrame = spec["max_frame"]?.int64Value.map { Int($0) } ?? WireLimits.defaultMaxFrame
    var splits = spec["chunks"]?.arrayValue?.compactMap { $0.int64Value.map { Int($0) } } ?? []
    if byteSplit { splits = input.isEmpty ? [] : Array(1 ..< input.count) }
    var fdsAt: [Int: Int] = [:]
    for entry in spec["fds"]?.arrayValue ?? [] {
        guard let chunk = entry["chunk"]?.int64Value, let count = entry["count"]?.int64Value else {
            throw TestFailure("bad fds entry")
        }
        fdsAt[Int(chunk), default: 0] += Int(count)
    }
    var bounds = [0] + splits + [input.count]
    if input.isEmpty { bounds = [0, 0] }
    var receiver = FrameReceiver(sender: sender, limits: WireLimits(maxFrame: maxFrame))
    var outcome = Outcome()
    var failure: WireError?
    for index in 0 ..< bounds.count - 1 where failure == nil {
        var fds: [OwnedFD] = []
        for _ in 0 ..< (fdsAt[index] ?? 0) {
            let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw TestFailure("open /dev/null failed") }
            fds.append(OwnedFD(adopting: fd))
        }
        created += fds
        if input.isEmpty { break }
        do {
            for incoming in try receiver.receive(Array(input[bounds[index] ..< bounds[index + 1]]), fds: fds) {
                outcome.messages.append(describe(incoming))
            }
        } catch {
            failure = error
        }
    }
    if failure == nil {
        do { try receiver.finish() } catch { failure = error }
    }
    if let failure {
        outcome.error = ["code": .string(failure.code.rawValue), "reason": .string(failure.reason.rawValue)]
    }
    return outcome
}

/// An outcome as the vector writes it.
func describe(_ incoming: Incoming) -> JSONValue {
    switch incoming {
    case .message(let message):
        return ["envelope": message.envelope.jsonValue, "fds": .number(JSONNumber(message.fds.count))]
    case .refused(let refused):
        return ["refused": [
            "code": .string(refused.error.code.rawValue), "reason": .string(refused.error.reason.rawValue),
            "reply_to": refused.replyTo.map { .number(JSONNumber($0)) } ?? .null,
        ]]
    }
}

@Suite struct ConformanceTests {
    @Test func vectorFilesLoad() {
        let vectors = loadVectors()
        #expect(vectors.count >= 100)
        #expect(!vectors.contains { $0.name == "(unreadable file)" })
    }

    @Test(arguments: loadVectors())
    func vector(_ vector: Vector) throws {
        guard case .object(let expect)? = vector.spec["expect"] else {
            Issue.record("\(vector.testDescription): no expect")
            return
        }
        var created: [OwnedFD] = []
        let outcome = try run(vector.spec, created: &created)
        #expect(outcome.messages == (expect["messages"]?.arrayValue ?? []), "\(vector.testDescription)")
        #expect(outcome.error == (expect["error"] ?? .null), "\(vector.testDescription)")
        // Every descriptor not handed out in a delivered message must be closed already.
        let delivered = outcome.messages.reduce(0) { $0 + Int($1["fds"]?.int64Value ?? 0) }
        #expect(created.filter(\.isOpen).count == delivered, "\(vector.testDescription): unclaimed fds left open")
    }

    @Test(arguments: loadVectors().filter { $0.spec["fds"] == nil })
    func vectorOneBytePerRead(_ vector: Vector) throws {
        guard case .object(let expect)? = vector.spec["expect"] else { return }
        var created: [OwnedFD] = []
        let outcome = try run(vector.spec, byteSplit: true, created: &created)
        #expect(outcome.messages == (expect["messages"]?.arrayValue ?? []), "\(vector.testDescription)")
        #expect(outcome.error == (expect["error"] ?? .null), "\(vector.testDescription)")
    }
}
