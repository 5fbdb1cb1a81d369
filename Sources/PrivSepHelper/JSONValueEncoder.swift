// Codable → JSONValue, without Foundation.
//
// Containers write into reference nodes so that a nested container handed out early can still be
// filled after its parent returned it; the tree is folded into a JSONValue once `encode` returns.
// Integers stay exact (Int64, and UInt64 beyond Int64.max as its decimal lexeme); non-finite
// floating-point values are refused, since JSON has no NaN or Infinity.

import PrivSepJSON

/// Encodes `Encodable` values into `JSONValue` trees.
///
/// Keys are used as written (no case conversion). `nil` optionals written with
/// `encodeIfPresent` (what synthesized conformances use) are omitted; an explicit `encodeNil`
/// writes `null`. Failures are `EncodingError.invalidValue` carrying the coding path.
public struct JSONValueEncoder: Sendable {
    /// Context handed to `encode(to:)` implementations through `Encoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    public init() {}

    /// Encodes `value` as a JSON value.
    public func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        if let direct = directValue(value) { return direct }
        let encoder = ValueEncoder(codingPath: [], userInfo: userInfo)
        try value.encode(to: encoder)
        guard let result = encoder.node.value() else {
            throw EncodingError.invalidValue(value, EncodingError.Context(
                codingPath: [], debugDescription: "\(T.self) did not encode any value"))
        }
        return result
    }

    /// Encodes `value`, which must produce a JSON object (as every message body is).
    public func encodeObject<T: Encodable>(_ value: T) throws -> JSONObject {
        let result = try encode(value)
        guard case .object(let object) = result else {
            throw EncodingError.invalidValue(value, EncodingError.Context(
                codingPath: [], debugDescription: "a message body must be a JSON object; \(T.self) encoded a JSON \(result.typeName)"))
        }
        return object
    }
}

/// Values that are already JSON pass through unchanged.
private func directValue<T>(_ value: T) -> JSONValue? {
    if let json = value as? JSONValue { return json }
    if let object = value as? JSONObject { return .object(object) }
    return nil
}

/// One node of the tree being built; a class so containers can fill it after handing it out.
private final class EncodingNode {
    enum Content {
        case empty
        case value(JSONValue)
        case object(keys: [String], nodes: [EncodingNode], index: [String: Int])
        case array([EncodingNode])
    }

    var content: Content = .empty

    init() {}
    init(_ value: JSONValue) { content = .value(value) }

    /// Makes this node an object (keeping members already written) and returns nothing.
    func becomeObject() {
        if case .object = content { return }
        content = .object(keys: [], nodes: [], index: [:])
    }

    func becomeArray() {
        if case .array = content { return }
        content = .array([])
    }

    /// Sets member `key`; a key written twice keeps its first position and its last value.
    func set(_ key: String, _ node: EncodingNode) {
        becomeObject()
        guard case .object(var keys, var nodes, var index) = content else { return }
        content = .empty  // keep the arrays uniquely referenced while they grow
        if let position = index[key] {
            nodes[position] = node
        } else {
            index[key] = nodes.count
            keys.append(key)
            nodes.append(node)
        }
        content = .object(keys: keys, nodes: nodes, index: index)
    }

    func append(_ node: EncodingNode) {
        becomeArray()
        guard case .array(var nodes) = content else { return }
        content = .empty
        nodes.append(node)
        content = .array(nodes)
    }

    var arrayCount: Int {
        if case .array(let nodes) = content { return nodes.count }
        return 0
    }

    /// The finished value; nil for a node nothing was written to.
    func value() -> JSONValue? {
        switch content {
        case .empty: return nil
        case .value(let value): return value
        case .object(let keys, let nodes, _):
            var members: [(key: String, value: JSONValue)] = []
            members.reserveCapacity(keys.count)
            for (key, node) in zip(keys, nodes) {
                // A member whose encoder wrote nothing becomes an empty object, as a keyed
                // container that is requested and left empty does.
                members.append((key: key, value: node.value() ?? .object(JSONObject())))
            }
            return .object(JSONObject(uniqueMembers: members))
        case .array(let nodes):
            return .array(nodes.map { $0.value() ?? .object(JSONObject()) })
        }
    }
}

/// A key for array positions and `super`.
struct IndexKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(index: Int) { stringValue = "Index \(index)"; intValue = index }
    init?(stringValue: String) { self.stringValue = stringValue; intValue = nil }
    init?(intValue: Int) { self.init(index: intValue) }
    static let superKey = IndexKey(stringValue: "super")!
}

/// Scalars to JSON, with the coding path for refusals.
private enum Scalar {
    static func number<T: BinaryInteger>(_ value: T) -> JSONValue {
        if let exact = Int64(exactly: value) { return .number(JSONNumber(exact)) }
        // Only UInt64 (and UInt on 64-bit) above Int64.max land here: keep the exact digits.
        return .number(JSONNumber(lexeme: String(value))!)
    }

    static func number(_ value: Double, path: [any CodingKey]) throws -> JSONValue {
        guard let number = JSONNumber(value) else {
            throw EncodingError.invalidValue(value, EncodingError.Context(
                codingPath: path, debugDescription: "\(value) is not representable in JSON"))
        }
        return .number(number)
    }

    static func number(_ value: Float, path: [any CodingKey]) throws -> JSONValue {
        guard value.isFinite else {
            throw EncodingError.invalidValue(value, EncodingError.Context(
                codingPath: path, debugDescription: "\(value) is not representable in JSON"))
        }
        if let exact = Int64(exactly: value), abs(value) < 1.0e15 { return .number(JSONNumber(exact)) }
        // Float's own shortest form ("0.1"), not the widened Double's ("0.10000000149011612").
        guard let number = JSONNumber(lexeme: "\(value)") else {
            throw EncodingError.invalidValue(value, EncodingError.Context(
                codingPath: path, debugDescription: "\(value) has no JSON spelling"))
        }
        return .number(number)
    }
}

/// The `Encoder` handed to `encode(to:)`.
private final class ValueEncoder: Encoder {
    let codingPath: [any CodingKey]
    let sendableUserInfo: [CodingUserInfoKey: any Sendable]
    let node: EncodingNode

    var userInfo: [CodingUserInfoKey: Any] { sendableUserInfo }

    init(codingPath: [any CodingKey], userInfo: [CodingUserInfoKey: any Sendable], node: EncodingNode = EncodingNode()) {
        self.codingPath = codingPath
        self.sendableUserInfo = userInfo
        self.node = node
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        node.becomeObject()
        return KeyedEncodingContainer(KeyedContainer<Key>(encoder: self, node: node, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        node.becomeArray()
        return UnkeyedContainer(encoder: self, node: node, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleContainer(encoder: self, node: node, codingPath: codingPath)
    }

    /// Encodes a nested value at `path` into a fresh node.
    func box<T: Encodable>(_ value: T, at path: [any CodingKey]) throws -> EncodingNode {
        if let direct = directValue(value) { return EncodingNode(direct) }
        let child = ValueEncoder(codingPath: path, userInfo: sendableUserInfo)
        try value.encode(to: child)
        return child.node
    }
}

private struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: ValueEncoder
    let node: EncodingNode
    let codingPath: [any CodingKey]

    private func put(_ value: JSONValue, _ key: Key) { node.set(key.stringValue, EncodingNode(value)) }

    mutating func encodeNil(forKey key: Key) throws { put(.null, key) }
    mutating func encode(_ value: Bool, forKey key: Key) throws { put(.bool(value), key) }
    mutating func encode(_ value: String, forKey key: Key) throws { put(.string(value), key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { put(try Scalar.number(value, path: codingPath + [key]), key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { put(try Scalar.number(value, path: codingPath + [key]), key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { put(Scalar.number(value), key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { put(Scalar.number(value), key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { put(Scalar.number(value), key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { put(Scalar.number(value), key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { put(Scalar.number(value), key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { put(Scalar.number(value), key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { put(Scalar.number(value), key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { put(Scalar.number(value), key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { put(Scalar.number(value), key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { put(Scalar.number(value), key) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        node.set(key.stringValue, try encoder.box(value, at: codingPath + [key]))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let child = EncodingNode()
        child.becomeObject()
        node.set(key.stringValue, child)
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(encoder: encoder, node: child, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let child = EncodingNode()
        child.becomeArray()
        node.set(key.stringValue, child)
        return UnkeyedContainer(encoder: encoder, node: child, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { superEncoder(named: IndexKey.superKey) }

    mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder(named: key) }

    private func superEncoder(named key: any CodingKey) -> any Encoder {
        let child = EncodingNode()
        node.set(key.stringValue, child)
        return ValueEncoder(codingPath: codingPath + [key], userInfo: encoder.sendableUserInfo, node: child)
    }
}

private struct UnkeyedContainer: UnkeyedEncodingContainer {
    let encoder: ValueEncoder
    let node: EncodingNode
    let codingPath: [any CodingKey]

    var count: Int { node.arrayCount }
    private var nextKey: IndexKey { IndexKey(index: count) }

    private func put(_ value: JSONValue) { node.append(EncodingNode(value)) }

    mutating func encodeNil() throws { put(.null) }
    mutating func encode(_ value: Bool) throws { put(.bool(value)) }
    mutating func encode(_ value: String) throws { put(.string(value)) }
    mutating func encode(_ value: Double) throws { put(try Scalar.number(value, path: codingPath + [nextKey])) }
    mutating func encode(_ value: Float) throws { put(try Scalar.number(value, path: codingPath + [nextKey])) }
    mutating func encode(_ value: Int) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: Int8) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: Int16) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: Int32) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: Int64) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: UInt) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: UInt8) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: UInt16) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: UInt32) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: UInt64) throws { put(Scalar.number(value)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        node.append(try encoder.box(value, at: codingPath + [nextKey]))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = codingPath + [nextKey]
        let child = EncodingNode()
        child.becomeObject()
        node.append(child)
        return KeyedEncodingContainer(KeyedContainer<NestedKey>(encoder: encoder, node: child, codingPath: path))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = codingPath + [nextKey]
        let child = EncodingNode()
        child.becomeArray()
        node.append(child)
        return UnkeyedContainer(encoder: encoder, node: child, codingPath: path)
    }

    mutating func superEncoder() -> any Encoder {
        let path = codingPath + [nextKey]
        let child = EncodingNode()
        node.append(child)
        return ValueEncoder(codingPath: path, userInfo: encoder.sendableUserInfo, node: child)
    }
}

private struct SingleContainer: SingleValueEncodingContainer {
    let encoder: ValueEncoder
    let node: EncodingNode
    let codingPath: [any CodingKey]

    private func put(_ value: JSONValue) { node.content = .value(value) }

    mutating func encodeNil() throws { put(.null) }
    mutating func encode(_ value: Bool) throws { put(.bool(value)) }
    mutating func encode(_ value: String) throws { put(.string(value)) }
    mutating func encode(_ value: Double) throws { put(try Scalar.number(value, path: codingPath)) }
    mutating func encode(_ value: Float) throws { put(try Scalar.number(value, path: codingPath)) }
    mutating func encode(_ value: Int) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: Int8) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: Int16) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: Int32) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: Int64) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: UInt) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: UInt8) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: UInt16) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: UInt32) throws { put(Scalar.number(value)) }
    mutating func encode(_ value: UInt64) throws { put(Scalar.number(value)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let child = try encoder.box(value, at: codingPath)
        node.content = child.content
    }
}

// JSON values embed in Codable types (e.g. a free-form `data: JSONValue?` member).
extension JSONValue: Encodable {
    /// Writes the value through any encoder; `JSONValueEncoder` takes it unchanged.
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        case .bool(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .number(let number):
            var container = encoder.singleValueContainer()
            if let exact = number.int64Value, number.isIntegral {
                try container.encode(exact)
            } else {
                try container.encode(number.doubleValue)
            }
        case .string(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .array(let elements):
            var container = encoder.unkeyedContainer()
            for element in elements { try container.encode(element) }
        case .object(let object):
            try object.encode(to: encoder)
        }
    }
}

extension JSONObject: Encodable {
    /// Writes the members in order through any encoder.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: IndexKey.self)
        for (key, value) in members {
            // IndexKey(stringValue:) never fails.
            try container.encode(value, forKey: IndexKey(stringValue: key)!)
        }
    }
}
