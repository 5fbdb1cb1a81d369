// JSONValueEncoder / JSONValueDecoder: exact numbers, optionals, nesting, and error paths.

import PrivSepHelper
import PrivSepJSON
import Testing

private struct Scalars: Codable, Equatable {
    var int: Int
    var int8: Int8
    var int64Max: Int64
    var int64Min: Int64
    var uint64Max: UInt64
    var uint8: UInt8
    var double: Double
    var float: Float
    var flag: Bool
    var text: String
}

private struct Item: Codable, Equatable {
    var name: String
    var count: Int
}

private struct Basket: Codable, Equatable {
    var items: [Item]
    var note: String?
    var tags: [String: Int]
}

private struct NestedOptional: Codable, Equatable {
    var value: Int??
}

private struct ExplicitNull: Encodable {
    var missing: String?
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(missing, forKey: .missing)
    }
    enum CodingKeys: CodingKey { case missing }
}

private struct Free: Codable, Equatable {
    var kind: String
    var data: JSONValue
}

private class Base: Codable {
    var base = 1
}

private final class Derived: Base {
    var extra = 2
    private enum CodingKeys: String, CodingKey { case extra }
    override init() { super.init() }
    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        extra = try container.decode(Int.self, forKey: .extra)
        try super.init(from: container.superDecoder())
    }
    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(extra, forKey: .extra)
        try super.encode(to: container.superEncoder())
    }
}

private func text<T: Encodable>(_ value: T) throws -> String {
    try JSONValueEncoder().encode(value).jsonText
}

private func decode<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
    try JSONValueDecoder().decode(type, from: try JSONParser.parse(json))
}

/// The coding path of a decoding error, as "a.Index 1.b".
private func path(of error: any Error) -> String? {
    let context: DecodingError.Context
    switch error as? DecodingError {
    case .typeMismatch(_, let c)?, .valueNotFound(_, let c)?, .dataCorrupted(let c)?: context = c
    case .keyNotFound(let key, let c)?: return (c.codingPath + [key]).map(\.stringValue).joined(separator: ".")
    default: return nil
    }
    return context.codingPath.map(\.stringValue).joined(separator: ".")
}

@Suite("JSONValue Codable")
struct CodableTests {
    @Test func scalarsRoundTripExactly() throws {
        let value = Scalars(int: -3, int8: -128, int64Max: .max, int64Min: .min, uint64Max: .max, uint8: 255,
                            double: 0.1, float: 0.1, flag: true, text: "é\u{0}\"")
        let json = try text(value)
        #expect(json == #"{"int":-3,"int8":-128,"int64Max":9223372036854775807,"int64Min":-9223372036854775808,"uint64Max":18446744073709551615,"uint8":255,"double":0.1,"float":0.1,"flag":true,"text":"é\u0000\""}"#)
        #expect(try decode(Scalars.self, json) == value)
    }

    @Test func integersAreStrict() throws {
        #expect(try decode(Int.self, "2.0") == 2)
        #expect(try decode(UInt64.self, "1.8446744073709551615e19") == .max)
        #expect(path(of: #expect(throws: DecodingError.self) { try decode(UInt8.self, "256") }!) == "")
        #expect(throws: DecodingError.self) { try decode(Int.self, "2.5") }
        #expect(throws: DecodingError.self) { try decode(Int64.self, "9223372036854775808") }
        #expect(throws: DecodingError.self) { try decode(UInt64.self, "-1") }
        #expect(throws: DecodingError.self) { try decode(Int.self, "true") }
        #expect(throws: DecodingError.self) { try decode(Bool.self, "1") }
        #expect(throws: DecodingError.self) { try decode(String.self, "1") }
        #expect(throws: DecodingError.self) { try decode(Double.self, "1e400") }
    }

    @Test func nonFiniteNumbersAreRefusedWithTheirPath() throws {
        struct Reading: Encodable { var values: [Double] }
        let error = #expect(throws: EncodingError.self) { try text(Reading(values: [1, .nan])) }
        guard case .invalidValue(_, let context)? = error else { return }
        #expect(context.codingPath.map(\.stringValue) == ["values", "Index 1"])
    }

    @Test func nestedOptionals() throws {
        #expect(try text(NestedOptional(value: nil)) == "{}")
        #expect(try text(NestedOptional(value: .some(nil))) == #"{"value":null}"#)
        #expect(try text(NestedOptional(value: 4)) == #"{"value":4}"#)
        #expect(try decode(NestedOptional.self, "{}") == NestedOptional(value: nil))
        #expect(try decode(NestedOptional.self, #"{"value":null}"#) == NestedOptional(value: nil))
        #expect(try decode(NestedOptional.self, #"{"value":4}"#) == NestedOptional(value: 4))
        #expect(try text(ExplicitNull()) == #"{"missing":null}"#)
    }

    @Test func arraysOfStructsAndDictionaries() throws {
        let basket = Basket(items: [Item(name: "a", count: 1), Item(name: "b", count: 2)], note: nil, tags: ["x": 1])
        let json = try text(basket)
        #expect(json == #"{"items":[{"name":"a","count":1},{"name":"b","count":2}],"tags":{"x":1}}"#)
        #expect(try decode(Basket.self, json) == basket)
    }

    @Test func decodingErrorsNameTheMember() throws {
        let missing = #expect(throws: DecodingError.self) {
            try decode(Basket.self, #"{"items":[{"name":"a","count":1},{"count":2}],"tags":{}}"#)
        }
        #expect(path(of: missing!) == "items.Index 1.name")
        if case .keyNotFound? = missing {} else { Issue.record("expected keyNotFound, got \(String(describing: missing))") }

        let mismatch = #expect(throws: DecodingError.self) {
            try decode(Basket.self, #"{"items":[{"name":"a","count":"1"}],"tags":{}}"#)
        }
        #expect(path(of: mismatch!) == "items.Index 0.count")
        if case .typeMismatch? = mismatch {} else { Issue.record("expected typeMismatch") }

        let null = #expect(throws: DecodingError.self) {
            try decode(Basket.self, #"{"items":[{"name":null,"count":1}],"tags":{}}"#)
        }
        if case .valueNotFound? = null {} else { Issue.record("expected valueNotFound") }
        #expect(path(of: null!) == "items.Index 0.name")

        let overflow = #expect(throws: DecodingError.self) {
            try decode(Basket.self, #"{"items":[],"tags":{"big":1e30}}"#)
        }
        #expect(path(of: overflow!) == "tags.big")

        let notObject = #expect(throws: DecodingError.self) { try decode(Basket.self, "[]") }
        if case .typeMismatch? = notObject {} else { Issue.record("expected typeMismatch") }
    }

    @Test func jsonValuesPassThrough() throws {
        let free = Free(kind: "k", data: ["a": [1, "two", nil, true], "b": .number(JSONNumber(lexeme: "1.50")!)])
        let json = try text(free)
        #expect(json == #"{"kind":"k","data":{"a":[1,"two",null,true],"b":1.50}}"#)
        #expect(try decode(Free.self, json) == free)
        let object: JSONObject = ["z": 1, "a": 2]
        #expect(try JSONValueEncoder().encode(object).jsonText == #"{"z":1,"a":2}"#)
    }

    @Test func bodiesMustBeObjects() throws {
        #expect(try JSONValueEncoder().encodeObject(Item(name: "n", count: 1)) == ["name": "n", "count": 1])
        #expect(throws: EncodingError.self) { try JSONValueEncoder().encodeObject([1, 2]) }
        #expect(throws: EncodingError.self) { try JSONValueEncoder().encodeObject("text") }
    }

    @Test func superEncoderAndDecoder() throws {
        let json = try text(Derived())
        #expect(json == #"{"extra":2,"super":{"base":1}}"#)
        let decoded = try decode(Derived.self, #"{"extra":5,"super":{"base":6}}"#)
        #expect(decoded.extra == 5 && decoded.base == 6)
    }

    @Test func largeObjectsDecodeByIndex() throws {
        var object = JSONObject()
        for index in 0 ..< 2000 { object["k\(index)"] = .number(JSONNumber(index)) }
        let decoded = try JSONValueDecoder().decode([String: Int].self, from: object)
        #expect(decoded.count == 2000 && decoded["k1999"] == 1999)
    }

    @Test func floatKeepsItsShortestForm() throws {
        #expect(try text([Float(0.1), 1.5, 3]) == "[0.1,1.5,3]")
        #expect(try decode([Float].self, "[0.1,1.5,3]") == [0.1, 1.5, 3])
        #expect(try text([1e300, -0.5, 2]) == "[1e+300,-0.5,2]")
    }
}
