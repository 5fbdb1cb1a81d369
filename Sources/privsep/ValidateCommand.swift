// `privsep validate`: JSON Schema 2020-12 validation from the command line, one schema against
// instance files or a stream of JSON lines. Exit 0 all valid, 1 any invalid, 2 usage or schema error.
import ArgumentParser
import Glibc
import PrivSepJSON
import PrivSepSchema

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Validate JSON instances against a JSON Schema (draft 2020-12).",
        discussion: """
            With --jsonl, reads one JSON instance per line on standard input and prints exactly one \
            line per instance, `valid` or `invalid` (with --errors: the JSON Schema "basic" output \
            object instead), flushed as each line is done. With files, prints `FILE: valid` or \
            `FILE: invalid` followed by the errors (with --errors: the basic output as JSON).

            An instance that is not strict JSON (RFC 8259 + I-JSON: UTF-8, no duplicate keys, \
            depth <= 64) is invalid. Nothing is ever fetched: references to other documents resolve \
            through --map, and the 2020-12 meta-schemas are built in.

            Exit status: 0 if every instance is valid, 1 if any is invalid, 2 for a usage error or \
            a schema that cannot be loaded.
            """)

    @Option(name: .long, help: ArgumentHelp("The schema file.", valueName: "FILE"))
    var schema: String?

    @Option(name: .customLong("map"), help: ArgumentHelp(
        "Resolve $refs whose absolute URI starts with PREFIX from files under DIR (repeatable), e.g. http://localhost:1234/=remotes.",
        valueName: "PREFIX=DIR"))
    var maps: [String] = []

    @Flag(name: .customLong("assert-format"), help: "Make `format` an assertion (date-time, uuid, ipv4, hostname, email, uri, ...).")
    var assertFormat = false

    @Flag(name: .long, help: "Print the JSON Schema \"basic\" output as JSON.")
    var errors = false

    @Flag(name: .long, help: "Read one instance per line from standard input.")
    var jsonl = false

    @Argument(help: ArgumentHelp("Instance files.", valueName: "FILE"))
    var files: [String] = []

    func validate() throws {
        guard schema != nil else { throw usage("missing --schema FILE") }
        guard jsonl != !files.isEmpty else { throw usage("give either --jsonl or instance files, not both and not neither") }
        for map in maps where !map.contains("=") { throw usage("--map wants PREFIX=DIR, got \"\(map)\"") }
    }

    func run() throws {
        let compiled: Schema
        do {
            compiled = try loadSchema()
        } catch {
            SchemaCLIOutput.error("privsep validate: \(error)")
            throw ExitCode(2)
        }
        let allValid = jsonl ? validateLines(compiled) : try validateFiles(compiled)
        if !allValid { throw ExitCode(1) }
    }

    private func usage(_ message: String) -> ExitCode {
        SchemaCLIOutput.error("privsep validate: \(message)\nUsage: privsep validate --schema FILE [--map PREFIX=DIR]... [--assert-format] [--errors] (--jsonl | FILE...)")
        return ExitCode(2)
    }

    static let instanceLimits = JSONLimits.default
    static let schemaLimits = JSONLimits(maxDepth: 256, maxNumberLength: 1000)

    private func loadSchema() throws(SchemaError) -> Schema {
        let path = schema ?? ""
        let bytes = try SchemaFiles.read(path)
        let document: JSONValue
        do {
            document = try JSONParser.parse(bytes, limits: ValidateCommand.schemaLimits)
        } catch {
            throw SchemaError(location: path, pointer: "", message: "not strict JSON: \(error)")
        }
        let mapped: [(prefix: String, directory: String)] = maps.map { entry in
            let equals = entry.firstIndex(of: "=")!
            return (String(entry[..<equals]), String(entry[entry.index(after: equals)...]))
        }
        let compiler = SchemaCompiler(options: SchemaOptions(assertFormat: assertFormat))
        compiler.resolver = { uri in
            for (prefix, directory) in mapped where uri.hasPrefix(prefix) {
                let rest = uri.dropFirst(prefix.count)
                // A mapped URI names a file under DIR, never one above it.
                guard !rest.split(separator: "/").contains("..") else { return nil }
                let file = directory + "/" + rest
                guard let bytes = try? SchemaFiles.read(file) else { return nil }
                return try? JSONParser.parse(bytes, limits: ValidateCommand.schemaLimits)
            }
            return nil
        }
        let uri = "file://" + SchemaFiles.absolute(path)
        let metaCheck = try SchemaCompiler().compile("https://json-schema.org/draft/2020-12/schema").validate(document)
        if !metaCheck.valid, let first = metaCheck.errors.first {
            throw SchemaError(location: path, pointer: first.instanceLocation, message: "not a valid 2020-12 schema: \(first.error)")
        }
        try compiler.add(document, uri: uri)
        return try compiler.compile(uri)
    }

    /// One output line per input line, written (and so flushed) as soon as it is known.
    private func validateLines(_ compiled: Schema) -> Bool {
        var allValid = true
        var reader = LineReader(fd: 0, maxLine: SchemaFiles.maxFileBytes)
        while let line = reader.next() {
            var verdict: String
            switch line {
            case .tooLong:
                allValid = false
                verdict = errors ? #"{"valid":false,"errors":[{"error":"line too long"}]}"# : "invalid"
            case .line(let bytes):
                guard let instance = try? JSONParser.parse(bytes, limits: ValidateCommand.instanceLimits) else {
                    allValid = false
                    verdict = errors ? #"{"valid":false,"errors":[{"error":"not strict JSON"}]}"# : "invalid"
                    break
                }
                if errors {
                    let result = compiled.validate(instance)
                    allValid = allValid && result.valid
                    verdict = result.basicOutput.jsonText
                } else {
                    let valid = compiled.isValid(instance)
                    allValid = allValid && valid
                    verdict = valid ? "valid" : "invalid"
                }
            }
            SchemaCLIOutput.write(verdict + "\n")
        }
        return allValid
    }

    private func validateFiles(_ compiled: Schema) throws -> Bool {
        var allValid = true
        for file in files {
            let bytes: [UInt8]
            do {
                bytes = try SchemaFiles.read(file)
            } catch {
                SchemaCLIOutput.error("privsep validate: \(error)")
                throw ExitCode(2)
            }
            let result: ValidationResult
            do {
                result = compiled.validate(try JSONParser.parse(bytes, limits: ValidateCommand.instanceLimits))
            } catch {
                allValid = false
                SchemaCLIOutput.write("\(file): invalid\n  not strict JSON: \(error)\n")
                continue
            }
            allValid = allValid && result.valid
            var text = "\(file): \(result.valid ? "valid" : "invalid")\n"
            if errors {
                text += result.basicOutput.jsonText + "\n"
            } else {
                for unit in result.errors { text += "  \(unit)\n" }
            }
            SchemaCLIOutput.write(text)
        }
        return allValid
    }
}

extension ValidateCommand {
    /// Reads lines from a descriptor with a bound on line length; the last line may lack its newline.
    struct LineReader {
        enum Line { case line([UInt8]), tooLong }

        let fd: Int32
        let maxLine: Int
        private var buffer: [UInt8] = []
        private var start = 0
        private var finished = false
        private var discarding = false
        /// Bytes before this index (from `start`) are known to hold no newline.
        private var scanned = 0

        init(fd: Int32, maxLine: Int) {
            self.fd = fd
            self.maxLine = maxLine
        }

        mutating func next() -> Line? {
            while true {
                if let newline = buffer[max(start, scanned)...].firstIndex(of: 0x0A) {
                    let line = Array(buffer[start..<newline])
                    start = newline + 1
                    scanned = start
                    if discarding {
                        discarding = false
                        return .tooLong
                    }
                    return .line(line.last == 0x0D ? Array(line.dropLast()) : line)
                }
                if finished {
                    guard start < buffer.count || discarding else { return nil }
                    let line = Array(buffer[start...])
                    start = buffer.count
                    if discarding {
                        discarding = false
                        return .tooLong
                    }
                    return .line(line)
                }
                if buffer.count - start > maxLine {
                    discarding = true
                    buffer.removeAll(keepingCapacity: true)
                    start = 0
                } else if start > 0 {
                    buffer.removeSubrange(0..<start)
                    start = 0
                }
                scanned = buffer.count
                var chunk = [UInt8](repeating: 0, count: 65536)
                let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if count < 0 {
                    if errno == EINTR { continue }
                    finished = true
                } else if count == 0 {
                    finished = true
                } else {
                    buffer.append(contentsOf: chunk[0..<count])
                }
            }
        }
    }
}

/// Unbuffered output for the schema commands.
enum SchemaCLIOutput {
    /// Writes all of `text` to standard output now (no stdio buffering: a driving program sees each
    /// line as soon as it is decided).
    static func write(_ text: String) {
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { Glibc.write(1, $0.baseAddress! + offset, $0.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }

    /// Writes a line to standard error.
    static func error(_ text: String) {
        var bytes = Array((text + "\n").utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
