// What the broker knows of each message type, taken from the schema directories once at start.
//
// The router asks only these questions: does the type exist, is it a request or an event, how
// many fds travel with it and with its reply, and does a body or reply match its schema. The
// compiled schemas come from PrivSepSchema; this file is the one place that adapts them.

import PrivSepJSON

/// One schema-validation failure, in the shape of JSON Schema's "basic" output.
public struct ValidationProblem: Sendable, Equatable {
    public let instanceLocation: String
    public let keywordLocation: String
    public let message: String

    public init(instanceLocation: String, keywordLocation: String, message: String) {
        self.instanceLocation = instanceLocation
        self.keywordLocation = keywordLocation
        self.message = message
    }

    var jsonValue: JSONValue {
        ["instanceLocation": .string(instanceLocation), "keywordLocation": .string(keywordLocation),
         "error": .string(message)]
    }
}

/// A compiled check of one JSON value: nil when valid, else the problems found.
public typealias BodyCheck = @Sendable (JSONValue) -> [ValidationProblem]?

/// Everything the router needs to know about one message type.
public struct MessageContract: Sendable {
    public enum Kind: String, Sendable {
        case request
        case event
    }

    public let type: String
    public let kind: Kind
    /// Descriptors that travel with the message.
    public let fds: Int
    /// Descriptors that travel with a successful reply.
    public let replyFds: Int
    /// Error codes the type documents (beyond the standard ones).
    public let errors: [String]
    public let checkBody: BodyCheck
    public let checkReply: BodyCheck
    /// The type's definition as written in its interface file (for privsep.introspect).
    public let definition: JSONValue

    public init(type: String, kind: Kind, fds: Int, replyFds: Int, errors: [String],
                checkBody: @escaping BodyCheck, checkReply: @escaping BodyCheck, definition: JSONValue)
    {
        self.type = type
        self.kind = kind
        self.fds = fds
        self.replyFds = replyFds
        self.errors = errors
        self.checkBody = checkBody
        self.checkReply = checkReply
        self.definition = definition
    }
}

/// The message types known to one broker run.
public struct ContractCatalog: Sendable {
    public private(set) var contracts: [String: MessageContract]

    public init(_ contracts: [MessageContract]) {
        var byType: [String: MessageContract] = [:]
        for contract in contracts { byType[contract.type] = contract }
        self.contracts = byType
    }

    public subscript(type: String) -> MessageContract? { contracts[type] }
}
