// Public value types of the schema module: options, errors, diagnostics and validation output.
import PrivSepJSON

/// Limits and switches for compiling and validating schemas. Every bound a hostile schema or
/// instance could push on is here.
public struct SchemaOptions: Sendable {
    /// Whether `format` asserts (2020-12 makes it an annotation unless asked). Broker message
    /// schemas turn it on.
    public var assertFormat: Bool
    /// The deepest a schema may nest (subschemas and `$ref` hops counted together) when compiling.
    public var maxCompileDepth: Int
    /// The deepest evaluation may go (each subschema applied counts one): bounds `$ref` recursion.
    public var maxEvaluationDepth: Int
    /// Work bound for one `pattern` search (backtracking steps), so no pattern can hang validation.
    public var regexStepLimit: Int
    /// The most schema documents a compile may load through the resolver.
    public var maxDocuments: Int

    /// Creates options; the defaults suit message validation.
    public init(assertFormat: Bool = false, maxCompileDepth: Int = 200, maxEvaluationDepth: Int = 400,
                regexStepLimit: Int = 200_000, maxDocuments: Int = 1000) {
        self.assertFormat = assertFormat
        self.maxCompileDepth = maxCompileDepth
        self.maxEvaluationDepth = maxEvaluationDepth
        self.regexStepLimit = regexStepLimit
        self.maxDocuments = maxDocuments
    }
}

/// A problem with a schema: the document (file or URI), the JSON pointer inside it, and the cause.
public struct SchemaError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The file path or URI of the document.
    public var location: String
    /// JSON pointer to the offending value inside the document ("" is the root).
    public var pointer: String
    /// What is wrong.
    public var message: String

    /// Creates an error.
    public init(location: String, pointer: String, message: String) {
        self.location = location
        self.pointer = pointer
        self.message = message
    }

    /// `file: /json/pointer: what is wrong`.
    public var description: String { "\(location): \(pointer.isEmpty ? "/" : pointer): \(message)" }
}

/// A finding of `schema check` that does not stop compilation.
public struct SchemaDiagnostic: Sendable, CustomStringConvertible, Equatable {
    /// How serious the finding is.
    public enum Severity: String, Sendable { case error, warning }
    /// Error or warning.
    public var severity: Severity
    /// Where, and what.
    public var problem: SchemaError

    /// `error: file: /pointer: message`.
    public var description: String { "\(severity.rawValue): \(problem)" }
}

/// One unit of the JSON Schema "basic" output format.
public struct OutputUnit: Sendable, Equatable, CustomStringConvertible {
    /// The path of keywords followed from the root, through `$ref`s, to the failing keyword.
    public var keywordLocation: String
    /// The absolute URI of the failing keyword in its schema resource.
    public var absoluteKeywordLocation: String
    /// JSON pointer into the instance.
    public var instanceLocation: String
    /// Why it failed.
    public var error: String

    /// The unit as a JSON object.
    public var json: JSONValue {
        .object(JSONObject(uniqueMembers: [
            ("keywordLocation", .string(keywordLocation)),
            ("absoluteKeywordLocation", .string(absoluteKeywordLocation)),
            ("instanceLocation", .string(instanceLocation)),
            ("error", .string(error)),
        ]))
    }

    public var description: String {
        "\(instanceLocation.isEmpty ? "/" : instanceLocation): \(error) (at \(keywordLocation.isEmpty ? "/" : keywordLocation))"
    }
}

/// The result of a full validation.
public struct ValidationResult: Sendable {
    /// Whether the instance is valid.
    public var valid: Bool
    /// The failing keywords, in evaluation order; empty when valid.
    public var errors: [OutputUnit]

    /// The "basic" output format: `{"valid": ..., "errors": [...]}`.
    public var basicOutput: JSONValue {
        var members: [(key: String, value: JSONValue)] = [("valid", .bool(valid))]
        if !valid { members.append(("errors", .array(errors.map(\.json)))) }
        return .object(JSONObject(uniqueMembers: members))
    }
}
