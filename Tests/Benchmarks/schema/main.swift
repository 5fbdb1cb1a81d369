// bench-schema: validating the issue's 6-property message with our compiled validator, beside
// python jsonschema's Draft202012Validator(schema).is_valid on the same schema and instances,
// in the same run.
//
// The schema has a maxLength+pattern string, an integer range, an enum, an array with maxItems,
// a closed nested object, and additionalProperties false. Both sides validate an already parsed
// instance (the figure is validation, not parsing), valid and invalid. Ours is the median over
// repetitions of a timed batch; python's figure comes from run.sh (a python3 subprocess started
// right before this program, same machine, same files) and is passed in as arguments.
//
// Usage: bench-schema --emit DIR                write schema.json, valid.json, invalid.json to DIR
//        bench-schema [PY_VALID_NS PY_INVALID_NS]  time ours; print python's beside it with the ratio

import Glibc
import PrivSepJSON
import PrivSepSchema

let schemaText = """
    {
      "$schema": "https://json-schema.org/draft/2020-12/schema",
      "type": "object",
      "properties": {
        "name": {"type": "string", "maxLength": 32, "pattern": "^[a-z0-9_]+$"},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "role": {"enum": ["admin", "user", "guest"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
        "address": {
          "type": "object",
          "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
          "required": ["city", "zip"],
          "additionalProperties": false
        },
        "active": {"type": "boolean"}
      },
      "required": ["name", "age", "role", "tags", "address", "active"],
      "additionalProperties": false
    }
    """
let validText = #"{"name":"alice_01","age":42,"role":"admin","tags":["a","b"],"address":{"city":"Paris","zip":"75001"},"active":true}"#
// Invalid late, in the nested closed object, so neither side can stop at the first keyword.
let invalidText = #"{"name":"alice_01","age":42,"role":"admin","tags":["a","b"],"address":{"city":"Paris","zip":75001},"active":true}"#

func now() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

func fail(_ message: String) -> Never {
    let line = Array("bench-schema: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(1)
}

func writeFile(_ path: String, _ text: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { fail("cannot write \(path)") }
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

/// Nanoseconds per call of `body` over `repetitions` batches of `iterations`: the median batch,
/// and the sink (how many calls returned true).
@inline(never)
func measure(_ iterations: Int, _ repetitions: Int, _ body: () -> Bool) -> (Double, Int) {
    let (samples, sink) = sample(iterations, repetitions, body)
    return (samples[samples.count / 2], sink)
}

/// The sorted per-call figures of every batch, and the sink.
@inline(never)
func sample(_ iterations: Int, _ repetitions: Int, _ body: () -> Bool) -> ([Double], Int) {
    var samples: [Double] = []
    var sink = 0
    for _ in 0..<repetitions {
        let start = now()
        for _ in 0..<iterations where body() { sink &+= 1 }
        samples.append(Double(now() - start) / Double(iterations))
    }
    samples.sort()
    return (samples, sink)
}

func format(_ value: Double) -> String {
    let rounded = (value * 10).rounded() / 10
    return String(rounded)
}

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "--emit" {
    guard arguments.count == 2 else { fail("usage: bench-schema --emit DIR") }
    writeFile(arguments[1] + "/schema.json", schemaText)
    writeFile(arguments[1] + "/valid.json", validText)
    writeFile(arguments[1] + "/invalid.json", invalidText)
    exit(0)
}

let compiler = SchemaCompiler()
let schema: Schema
let valid: JSONValue
let invalid: JSONValue
do {
    try compiler.add(try JSONParser.parse(schemaText), uri: "https://privsep.test/bench.json")
    schema = try compiler.compile("https://privsep.test/bench.json")
    valid = try JSONParser.parse(validText)
    invalid = try JSONParser.parse(invalidText)
} catch {
    fail("setup: \(error)")
}
guard schema.isValid(valid), !schema.isValid(invalid) else { fail("the cases do not validate as expected") }

// BENCH_SCHEMA_ITERATIONS shrinks the run (e.g. to count instructions under valgrind).
let iterations = getenv("BENCH_SCHEMA_ITERATIONS").flatMap { Int(String(cString: $0)) } ?? 200_000
let repetitions = 11
// BENCH_SCHEMA_ONLY=valid|invalid runs just that case's loop, once, and exits: a profiler
// (valgrind --tool=callgrind) then sees only Schema.isValid on one instance.
if let only = getenv("BENCH_SCHEMA_ONLY").map({ String(cString: $0) }) {
    guard only == "valid" || only == "invalid" else { fail("BENCH_SCHEMA_ONLY must be valid or invalid") }
    let instance = only == "valid" ? valid : invalid
    let (ns, sink) = measure(iterations, 1) { schema.isValid(instance) }
    print("bench-schema: \(only) only, \(iterations) validations, \(format(ns)) ns/validation, \(sink) valid")
    exit(0)
}
_ = measure(iterations / 10, 1) { schema.isValid(valid) }
let (validSamples, sinkValid) = sample(iterations, repetitions) { schema.isValid(valid) }
let (invalidSamples, sinkInvalid) = sample(iterations, repetitions) { schema.isValid(invalid) }
let validNs = validSamples[repetitions / 2], invalidNs = invalidSamples[repetitions / 2]
let (detailNs, _) = measure(iterations / 10, repetitions) { schema.validate(invalid).valid }
let validBytes = Array(validText.utf8)
let (parseValidateNs, _) = measure(iterations, repetitions) {
    guard let value = try? JSONParser.parse(validBytes) else { return false }
    return schema.isValid(value)
}
guard sinkValid == iterations * repetitions, sinkInvalid == 0 else { fail("inconsistent results") }

print("bench-schema: the issue's 6-property message, \(repetitions) x \(iterations) validations, median")
// The spread over batches goes beside the median: this machine is shared, and a figure without
// its spread cannot be judged.
func spread(_ samples: [Double]) -> String { "(min \(format(samples[0])), max \(format(samples[samples.count - 1])))" }
print("  ours   valid   \(format(validNs)) ns/validation \(spread(validSamples))")
print("  ours   invalid \(format(invalidNs)) ns/validation \(spread(invalidSamples))")
print("  ours   invalid with basic output (errors collected) \(format(detailNs)) ns")
print("  ours   parse + validate (valid, \(validBytes.count) bytes) \(format(parseValidateNs)) ns")
if arguments.count == 2, let pyValid = Double(arguments[0]), let pyInvalid = Double(arguments[1]) {
    print("  python jsonschema Draft202012Validator.is_valid valid   \(format(pyValid)) ns/validation")
    print("  python jsonschema Draft202012Validator.is_valid invalid \(format(pyInvalid)) ns/validation")
    print("  ratio (python / ours): valid \(format(pyValid / validNs))x, invalid \(format(pyInvalid / invalidNs))x (goal >= 100x)")
} else {
    print("  python baseline: not given (run Tests/Benchmarks/schema/run.sh)")
}
