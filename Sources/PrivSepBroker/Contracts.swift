// What the broker knows of each message type, taken from the schema directories once at start.
//
// The router asks only these questions: does the type exist, is it a request or an event, how
// many fds travel with it and with its reply, and does a body or reply match its schema. The
// compiled schemas come from PrivSepSchema; this file is the one place that adapts them.

import PrivSepJSON
import PrivSepWire

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

/// Everything the router needs to know about one message type. A class: the router passes it
/// around per message, and a reference costs one retain where a struct's copy retains each member.
public final class MessageContract: Sendable {
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
    /// `checkBody` from the body's bytes, without a tree (`Schema.checkPlainObject`); nil when
    /// the schema never vouches for a body that way.
    public let checkBodyBytes: BodyBytesCheck?
    /// `checkReply` from the reply body's bytes, likewise.
    public let checkReplyBytes: BodyBytesCheck?
    /// A reply that echoes the request's body needs no check of its own (`MessageType.replyIsBody`).
    public let replyIsBody: Bool
    /// The type's definition as written in its interface file (for privsep.introspect).
    public let definition: JSONValue

    public init(type: String, kind: Kind, fds: Int, replyFds: Int, errors: [String],
                checkBody: @escaping BodyCheck, checkReply: @escaping BodyCheck,
                checkBodyBytes: BodyBytesCheck? = nil, checkReplyBytes: BodyBytesCheck? = nil, replyIsBody: Bool = false,
                definition: JSONValue)
    {
        self.type = type
        self.kind = kind
        self.fds = fds
        self.replyFds = replyFds
        self.errors = errors
        self.checkBody = checkBody
        self.checkReply = checkReply
        self.checkBodyBytes = checkBodyBytes
        self.checkReplyBytes = checkReplyBytes
        self.replyIsBody = replyIsBody
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

    /// What a helper's receiver checks bodies by: each type's `checkBodyBytes`, by name; nil
    /// when no type's schema vouches for bodies from their bytes.
    public var bodyBytesChecks: BodyBytesChecks? {
        let checks = contracts.compactMapValues(\.checkBodyBytes)
        guard !checks.isEmpty else { return nil }
        return { type in checks[type] }
    }
}

/// A message type as the router uses it: everything it asks about a type by name, answered
/// once at load, so a message costs one lookup of its type instead of one per question (the
/// contract, the built-in handler, the server, the receivers, each helper's policy, the counters).
final class RoutedType {
    /// Its position in the broker's `TypeTable`: each helper's permissions and counters are
    /// arrays in this order.
    let index: Int
    let contract: MessageContract
    /// The broker's own handler, for the built-in requests.
    let service: BuiltinService?
    /// The broker's own handler, for the built-in events.
    let event: BuiltinEvent?
    /// The slot configured to serve it (requests; unique by config check).
    let server: Int?
    /// The slots whose configured policy receives it (events). Policies only shrink at run
    /// time (privsep.restrict), so this is a superset; delivery checks the current policy.
    let receivers: [Int]

    init(index: Int, contract: MessageContract, service: BuiltinService?, event: BuiltinEvent?,
         server: Int?, receivers: [Int])
    {
        self.index = index
        self.contract = contract
        self.service = service
        self.event = event
        self.server = server
        self.receivers = receivers
    }

    var name: String { contract.type }
}

/// The message types of one broker run, by name and by index.
struct TypeTable {
    let byName: [String: RoutedType]
    let byIndex: [RoutedType]

    /// Every contract of `catalog`, in name order (so indexes do not depend on hashing).
    init(_ catalog: ContractCatalog, resolve: (Int, MessageContract) -> RoutedType) {
        var byName: [String: RoutedType] = [:]
        var byIndex: [RoutedType] = []
        for type in catalog.contracts.keys.sorted() {
            guard let contract = catalog[type] else { continue }
            let routed = resolve(byIndex.count, contract)
            byName[type] = routed
            byIndex.append(routed)
        }
        self.byName = byName
        self.byIndex = byIndex
    }

    var count: Int { byIndex.count }

    subscript(name: String) -> RoutedType? { byName[name] }

    /// One flag per type, set for the names in `names` (names of no type are ignored: the
    /// config check has already refused them, and a restriction can only name fewer).
    func flags(_ names: Set<String>) -> [Bool] {
        var flags = [Bool](repeating: false, count: byIndex.count)
        for name in names { if let routed = byName[name] { flags[routed.index] = true } }
        return flags
    }
}
