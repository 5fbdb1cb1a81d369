// Numbers keep their exact value: Int64 when they are plain integers that fit, the decimal
// lexeme otherwise; equality and hashing are by exact value.

import PrivSepJSON
import Testing

func number(_ text: String) throws -> JSONNumber {
    guard case .number(let number) = try JSONParser.parse(text) else { throw NotANumber() }
    return number
}

struct NotANumber: Error {}

@Test func int64Bounds() throws {
    let max = try number("9223372036854775807")
    #expect(max.int64Value == Int64.max)
    #expect(max == JSONNumber(Int64.max))
    let min = try number("-9223372036854775808")
    #expect(min.int64Value == Int64.min)
    #expect(min == JSONNumber(Int64.min))
    #expect(try number("1000000000000000000").int64Value == 1_000_000_000_000_000_000)
    #expect(try number("-0").int64Value == 0)
    #expect(JSONValue.number(min).jsonText == "-9223372036854775808")
    #expect(JSONValue.number(max).jsonText == "9223372036854775807")
}

@Test func integersBeyondInt64KeepTheirLexeme() throws {
    for text in ["9223372036854775808", "-9223372036854775809", "9999999999999999999", "18446744073709551616",
        "123456789012345678901234567890", "-99999999999999999999"]
    {
        let value = try number(text)
        #expect(value.int64Value == nil, "\(text)")
        #expect(value.isIntegral, "\(text)")
        #expect(value.lexeme == text)
        #expect(JSONValue.number(value).jsonText == text)
        #expect(value == JSONNumber(lexeme: text))
    }
    #expect(try number("9223372036854775808").doubleValue == 9_223_372_036_854_775_808.0)
    #expect(try number("9223372036854775808") > number("9223372036854775807"))
    #expect(try number("-9223372036854775809") < number("-9223372036854775808"))
}

@Test func equalValuesWrittenDifferently() throws {
    let groups: [[String]] = [
        ["1", "1.0", "1.00", "1e0", "1E0", "10e-1", "0.1e1", "100e-2", "1.0e+0"],
        ["100", "1e2", "1E+2", "100.0", "0.001e5", "10e1"],
        ["0", "-0", "0.0", "-0.0", "0e10", "0e-10", "-0E+5"],
        ["-1.5", "-15e-1", "-0.15e1", "-1.50"],
        ["123000", "123e3", "1.23e5", "123000.000"],
        ["9223372036854775807", "9.223372036854775807e18", "92233720368547758070e-1"],
        ["9223372036854775808", "9.223372036854775808e18", "9223372036854775808.0"],
    ]
    for group in groups {
        let numbers = try group.map(number)
        for (a, text) in zip(numbers, group) {
            #expect(a == numbers[0], "\(text) == \(group[0])")
            #expect(a.hashValue == numbers[0].hashValue, "hash \(text) == hash \(group[0])")
            #expect(JSONValue.number(a) == .number(numbers[0]))
            #expect(JSONValue.number(a).hashValue == JSONValue.number(numbers[0]).hashValue)
        }
    }
    #expect(try number("1.0").int64Value == 1)
    #expect(try number("1e2").int64Value == 100)
    #expect(try number("-0.0").int64Value == 0)
    #expect(try number("1.5").int64Value == nil)
    #expect(try number("1.5").isIntegral == false)
}

@Test func differentValuesAreDifferent() throws {
    let distinct = ["1", "1.5", "-1", "0.1", "0.01", "10", "1e400", "1e401", "1e-400", "-1e400", "9007199254740993",
        "9007199254740992", "0.30000000000000004", "0.3"]
    let numbers = try distinct.map(number)
    for i in numbers.indices {
        for j in numbers.indices where i != j {
            #expect(numbers[i] != numbers[j], "\(distinct[i]) != \(distinct[j])")
        }
    }
    #expect(Set(numbers).count == distinct.count)
    #expect(try number("1e-400") != number("0"))
    #expect(try number("1e-400") > number("0"))
    #expect(try number("-1e400") < number("-1e399"))
}

@Test func lexemeIsKeptForNonIntegers() throws {
    for text in ["1.0", "1E2", "1e+2", "-0.0", "0.5", "1e999", "-1.5e-7", "2.50"] {
        #expect(try JSONParser.parse(text).jsonText == text)
    }
    #expect(try JSONParser.parse("-0").jsonText == "0")
}

@Test func hugeExponents() throws {
    #expect(try number("1e400").doubleValue == .infinity)
    #expect(try number("-1e400").doubleValue == -.infinity)
    #expect(try number("1e-400").doubleValue == 0)
    let saturated = try number("1e99999999999999999999999999999999999999999999999999999999999999")
    #expect(saturated.lexeme.count == 64)
    #expect(try saturated > number("1e400"))
    #expect(try number("2.5e-1").doubleValue == 0.25)
}

@Test func parserAgreesWithTheLexemeInitializer() throws {
    let texts = ["0", "-0", "7", "-7", "123", "1.5", "-2.25e3", "1E-2", "9223372036854775807", "-9223372036854775808",
        "9223372036854775808", "0.000001", "123456789.123456789"]
    for text in texts {
        let fromParser = try number(text)
        let fromLexeme = try #require(JSONNumber(lexeme: text))
        #expect(fromParser == fromLexeme)
        #expect(fromParser.lexeme == fromLexeme.lexeme)
        #expect(fromParser.int64Value == fromLexeme.int64Value)
        #expect(fromParser.canonical == fromLexeme.canonical)
    }
}

@Test func numbersFromDoubles() throws {
    #expect(JSONNumber(Double.nan) == nil)
    #expect(JSONNumber(Double.infinity) == nil)
    let half = try #require(JSONNumber(0.5))
    #expect(try JSONParser.parse(JSONValue.number(half).serialized()) == .number(half))
    #expect(JSONNumber(3.0)?.int64Value == 3)
}
