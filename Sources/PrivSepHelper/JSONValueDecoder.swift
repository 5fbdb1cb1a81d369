// JSONValue → Codable, without Foundation.
//
// Types are strict, as the wire is: a number is never a Bool, a string is never a number, and an
// integer type accepts only numbers whose exact value fits it (`2.0` fits Int, `2.5` and `300`
// into UInt8 do not). Every failure is a standard DecodingError whose coding path names the member.

import PrivSepJSON

/// Decodes `Decodable` values from `JSONValue` trees.
///
/// A missing member is `DecodingError.keyNotFound`; a member of the wrong JSON type is
/// `typeMismatch`; `null` where a value is required is `valueNotFound`; a number that does not
/// fit the requested type is `dataCorrupted`. Each carries the coding path of the member.
public struct JSONValueDecoder: Sendable {
    /// Context handed to `init(from:)` implementations through `Decoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    public init() {}

    /// Decodes a `T` from `value`.
    public func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        if T.self == JSONValue.self, let same = value as? T { return same }
        return try ValueDecoder(value: value, codingPath: [], userInfo: userInfo).decodeValue(T.self)
    }

    /// Decodes a `T` from a message body.
    public func decode<T: Decodable>(_ type: T.Type, from object: JSONObject) throws -> T {
        try decode(type, from: .object(object))
    }
}

/// Objects above this many members get a hash index, so decoding stays linear on hostile input.
private let indexThreshold = 16

private struct ValueDecoder: Decoder {
    let value: JSONValue
    let codingPath: [any CodingKey]
    let sendableUserInfo: [CodingUserInfoKey: any Sendable]

    init(value: JSONValue, codingPath: [any CodingKey], userInfo: [CodingUserInfoKey: any Sendable]) {
        self.value = value
        self.codingPath = codingPath
        self.sendableUserInfo = userInfo
    }

    var userInfo: [CodingUserInfoKey: Any] { sendableUserInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let object) = value else {
            throw mismatch([String: JSONValue].self, value, codingPath)
        }
        return KeyedDecodingContainer(KeyedContainer<Key>(decoder: self, object: object))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let elements) = value else {
            throw mismatch([JSONValue].self, value, codingPath)
        }
        return UnkeyedContainer(decoder: self, elements: elements)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleContainer(decoder: self) }

    func child(_ value: JSONValue, _ key: any CodingKey) -> ValueDecoder {
        ValueDecoder(value: value, codingPath: codingPath + [key], userInfo: sendableUserInfo)
    }

    /// Decodes this decoder's value as `T`, taking JSON types unchanged.
    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == JSONValue.self, let same = value as? T { return same }
        if T.self == JSONObject.self {
            guard case .object(let object) = value else { throw mismatch(T.self, value, codingPath) }
            if let same = object as? T { return same }
        }
        return try T(from: self)
    }

    // MARK: Scalars

    func bool() throws -> Bool {
        guard case .bool(let flag) = value else { throw refusal(Bool.self) }
        return flag
    }

    func string() throws -> String {
        guard case .string(let text) = value else { throw refusal(String.self) }
        return text
    }

    func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        guard case .number(let number) = value else { throw refusal(T.self) }
        if let exact = number.int64Value, number.isIntegral, let fitted = T(exactly: exact) { return fitted }
        if T.self == UInt64.self || T.self == UInt.self, let large = unsignedValue(number), let fitted = T(exactly: large) {
            return fitted
        }
        throw DecodingError.dataCorrupted(DecodingError.Context(
            codingPath: codingPath, debugDescription: "number \(number.lexeme) does not fit \(T.self)"))
    }

    func double() throws -> Double {
        guard case .number(let number) = value else { throw refusal(Double.self) }
        let result = number.doubleValue
        guard result.isFinite else {
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: codingPath, debugDescription: "number \(number.lexeme) is out of Double's range"))
        }
        return result
    }

    func float() throws -> Float {
        guard case .number(let number) = value else { throw refusal(Float.self) }
        guard let result = Float(number.lexeme), result.isFinite else {
            throw DecodingError.dataCorrupted(DecodingError.Context(
                codingPath: codingPath, debugDescription: "number \(number.lexeme) is out of Float's range"))
        }
        return result
    }

    /// `null` where a value is needed is valueNotFound; any other JSON type is typeMismatch.
    private func refusal<T>(_ type: T.Type) -> DecodingError {
        if case .null = value {
            return DecodingError.valueNotFound(T.self, DecodingError.Context(
                codingPath: codingPath, debugDescription: "expected \(T.self), found null"))
        }
        return mismatch(T.self, value, codingPath)
    }
}

/// The exact value of a non-negative integral number up to UInt64.max.
private func unsignedValue(_ number: JSONNumber) -> UInt64? {
    let exact = number.canonical
    guard !exact.negative, exact.exponent >= 0, exact.digits.count + exact.exponent <= 20 else { return nil }
    var result: UInt64 = 0
    for digit in exact.digits + [UInt8](repeating: 0, count: exact.exponent) {
        let (times10, o1) = result.multipliedReportingOverflow(by: 10)
        let (sum, o2) = times10.addingReportingOverflow(UInt64(digit))
        if o1 || o2 { return nil }
        result = sum
    }
    return result
}

private func mismatch<T>(_ type: T.Type, _ value: JSONValue, _ path: [any CodingKey]) -> DecodingError {
    DecodingError.typeMismatch(T.self, DecodingError.Context(
        codingPath: path, debugDescription: "expected \(describe(T.self)), found a JSON \(value.typeName)"))
}

private func describe<T>(_ type: T.Type) -> String {
    if T.self == [String: JSONValue].self { return "an object" }
    if T.self == [JSONValue].self { return "an array" }
    return "\(T.self)"
}

private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: ValueDecoder
    let object: JSONObject
    /// Key → member position, built only for large objects (first occurrence wins).
    let index: [String: Int]?

    init(decoder: ValueDecoder, object: JSONObject) {
        self.decoder = decoder
        self.object = object
        if object.count > indexThreshold {
            var index: [String: Int] = [:]
            index.reserveCapacity(object.count)
            for (position, member) in object.members.enumerated() where index[member.key] == nil {
                index[member.key] = position
            }
            self.index = index
        } else {
            self.index = nil
        }
    }

    var codingPath: [any CodingKey] { decoder.codingPath }

    var allKeys: [Key] { object.members.compactMap { Key(stringValue: $0.key) } }

    private func member(_ key: Key) -> JSONValue? {
        if let index {
            guard let position = index[key.stringValue] else { return nil }
            return object.members[position].value
        }
        return object[key.stringValue]
    }

    private func required(_ key: Key) throws -> ValueDecoder {
        guard let value = member(key) else {
            throw DecodingError.keyNotFound(key, DecodingError.Context(
                codingPath: codingPath, debugDescription: "no member '\(key.stringValue)'"))
        }
        return decoder.child(value, key)
    }

    func contains(_ key: Key) -> Bool { member(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool {
        if case .null = try required(key).value { return true }
        return false
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try required(key).bool() }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try required(key).string() }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try required(key).double() }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try required(key).float() }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try required(key).integer(type) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try required(key).integer(type) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try required(key).integer(type) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try required(key).integer(type) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try required(key).integer(type) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try required(key).integer(type) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try required(key).integer(type) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try required(key).integer(type) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try required(key).integer(type) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try required(key).integer(type) }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try required(key).decodeValue(type)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try required(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try required(key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        decoder.child(object["super"] ?? .null, IndexKey.superKey)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        decoder.child(member(key) ?? .null, key)
    }
}

private struct UnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: ValueDecoder
    let elements: [JSONValue]
    private(set) var currentIndex = 0

    init(decoder: ValueDecoder, elements: [JSONValue]) {
        self.decoder = decoder
        self.elements = elements
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }

    /// The next element's decoder; advances only once the caller's decode succeeded.
    private func next<T>(_ type: T.Type) throws -> ValueDecoder {
        let key = IndexKey(index: currentIndex)
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(T.self, DecodingError.Context(
                codingPath: codingPath + [key], debugDescription: "the array has only \(elements.count) elements"))
        }
        return decoder.child(elements[currentIndex], key)
    }

    private mutating func take<T>(_ decode: (ValueDecoder) throws -> T) throws -> T {
        let result = try decode(try next(T.self))
        currentIndex += 1
        return result
    }

    mutating func decodeNil() throws -> Bool {
        guard case .null = try next(Never.self).value else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try take { try $0.bool() } }
    mutating func decode(_ type: String.Type) throws -> String { try take { try $0.string() } }
    mutating func decode(_ type: Double.Type) throws -> Double { try take { try $0.double() } }
    mutating func decode(_ type: Float.Type) throws -> Float { try take { try $0.float() } }
    mutating func decode(_ type: Int.Type) throws -> Int { try take { try $0.integer(type) } }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try take { try $0.integer(type) } }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try take { try $0.integer(type) } }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try take { try $0.integer(type) } }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try take { try $0.integer(type) } }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try take { try $0.integer(type) } }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try take { try $0.integer(type) } }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try take { try $0.integer(type) } }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try take { try $0.integer(type) } }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try take { try $0.integer(type) } }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try take { try $0.decodeValue(type) } }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try take { try $0.container(keyedBy: type) }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try take { try $0.unkeyedContainer() }
    }

    mutating func superDecoder() throws -> any Decoder { try take { $0 } }
}

private struct SingleContainer: SingleValueDecodingContainer {
    let decoder: ValueDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool {
        if case .null = decoder.value { return true }
        return false
    }

    func decode(_ type: Bool.Type) throws -> Bool { try decoder.bool() }
    func decode(_ type: String.Type) throws -> String { try decoder.string() }
    func decode(_ type: Double.Type) throws -> Double { try decoder.double() }
    func decode(_ type: Float.Type) throws -> Float { try decoder.float() }
    func decode(_ type: Int.Type) throws -> Int { try decoder.integer(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decoder.integer(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decoder.integer(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decoder.integer(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decoder.integer(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try decoder.integer(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decoder.integer(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decoder.integer(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decoder.integer(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decoder.integer(type) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeValue(type) }
}

extension JSONValue: Decodable {
    /// Reads any JSON value; `JSONValueDecoder` hands it over unchanged.
    public init(from decoder: any Decoder) throws {
        if let direct = decoder as? ValueDecoder {
            self = direct.value
            return
        }
        if var array = try? decoder.unkeyedContainer() {
            var elements: [JSONValue] = []
            while !array.isAtEnd { elements.append(try array.decode(JSONValue.self)) }
            self = .array(elements)
            return
        }
        if let object = try? decoder.container(keyedBy: IndexKey.self) {
            var members: [(key: String, value: JSONValue)] = []
            for key in object.allKeys { members.append((key: key.stringValue, value: try object.decode(JSONValue.self, forKey: key))) }
            self = .object(JSONObject(uniqueMembers: members))
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() { self = .null }
        else if let flag = try? single.decode(Bool.self) { self = .bool(flag) }
        else if let integer = try? single.decode(Int64.self) { self = .number(JSONNumber(integer)) }
        else if let real = try? single.decode(Double.self), let number = JSONNumber(real) { self = .number(number) }
        else { self = .string(try single.decode(String.self)) }
    }
}

extension JSONObject: Decodable {
    /// Reads a JSON object.
    public init(from decoder: any Decoder) throws {
        guard case .object(let object) = try JSONValue(from: decoder) else {
            throw DecodingError.typeMismatch(JSONObject.self, DecodingError.Context(
                codingPath: decoder.codingPath, debugDescription: "expected an object"))
        }
        self = object
    }
}
