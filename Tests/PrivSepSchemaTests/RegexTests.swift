// The fast paths of regex search and what keeps them honest: the lead-byte prefilter (which bytes
// it lets the machine start at; skipping the others never changes an answer) and the ASCII DFA
// (the same answers as the machine on every pattern of the vendored suite and hand-written corner
// cases; which patterns and inputs it leaves to the machine).
@testable import PrivSepSchema
import Foundation
import PrivSepJSON
import Testing

/// The lead-byte set of `pattern` as bytes, or nil when the search tries every start.
private func leadBytes(_ pattern: String) throws -> [UInt8]? {
    guard let set = try ECMARegex(pattern).leadBytes else { return nil }
    return (0...255).map { UInt8($0) }.filter { set.contains($0) }
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

@Test func leadBytesOfPlainPatterns() throws {
    #expect(try leadBytes("b") == bytes("b"))
    #expect(try leadBytes("abc|xyz") == bytes("ax"))
    #expect(try leadBytes("a?b") == bytes("ab"), "an optional first element lets the next one lead")
    #expect(try leadBytes("a*b*c") == bytes("abc"))
    #expect(try leadBytes("a{0}b") == bytes("b"), "a{0} matches nothing")
    #expect(try leadBytes("(?:a|b?)c") == bytes("abc"))
    #expect(try leadBytes("[0-9x]+") == bytes("0123456789x"))
    #expect(try leadBytes("\\d") == bytes("0123456789"))
    #expect(try leadBytes("/\\.{1,2}(/|$)") == bytes("/"))
}

@Test func zeroWidthAssertionsLetTheNextElementLead() throws {
    #expect(try leadBytes("(?=x)y") == bytes("y"), "a lookahead consumes nothing")
    #expect(try leadBytes("(?!a)[ab]") == bytes("ab"))
    #expect(try leadBytes("\\bfoo") == bytes("f"))
    #expect(try leadBytes("a$|b") == bytes("ab"))
    #expect(try ECMARegex("^a").leadBytes == nil, "an anchored pattern is only tried at 0")
}

@Test func leadBytesBeyondASCII() throws {
    #expect(try leadBytes("é") == [0xC3])
    #expect(try leadBytes("[α-ω€]") == [0xCE, 0xCF, 0xE2])
    #expect(try leadBytes("\\u{1F4A9}") == [0xF0])
    let negated = try #require(try leadBytes("[^a]"))
    #expect(!negated.contains(0x61))
    #expect(negated.contains(0xC3) && negated.contains(0xF0))
    #expect(!negated.contains { $0 >= 0x80 && $0 <= 0xBF }, "continuation bytes never start a scalar")
    #expect(try leadBytes("\\s")?.contains(0xC2) == true, "\\s holds U+00A0")
    #expect(try leadBytes("[\\D]")?.contains(0xC3) == true, "\\D holds é")
    #expect(try leadBytes("\\p{L}")?.contains(0xCE) == true, "\\p{L} holds α")
}

@Test func prefilterGivesUpWhereItCannotBound() throws {
    for pattern in ["a|", "x?", "$", "^", "(?=a)", "\\b", "a*", ".b", "(?<=a)b", "(a)\\1|\\1b", "[^a]|[\\s\\S]"] {
        #expect(try ECMARegex(pattern).leadBytes == nil, "\(pattern)")
    }
}

/// Every pattern against every input, with and without the prefilter: same answers.
@Test func prefilterNeverChangesAnAnswer() throws {
    let patterns = [
        "a|", "a?b", "(?=x)y", "(?=xy)x", "(?!a)[ab]", "$", "^", "a$", "\\bfoo", "\\Bo", "é", "[^a]", "[α-ω]+",
        "\\u{1F4A9}", ".b", "(?<=a)b", "(?<!a)b", "(a)\\1", "//|/\\.{1,2}(/|$)|./$", "/\\.{1,2}(/|$)",
        "^/$|^(/[^/\\u0000]+)+$", "b{0}c", "(?:)x", "x*y", "(x*)*y", "\\d+", "[\\s]",
    ]
    let inputs = [
        "", "a", "b", "ab", "ba", "xy", "y", "foo", "a foo", "afoo", "boo", "é", "café", "ae", "aé", "💩", "a💩",
        "αβγ", "Ωmega", "/", "//", "/a/./b", "/a/..", "/a/", "/tmp/mb/work/data/small.txt", "/\n/", "xxxy",
        "12", "\u{A0}", "aa", "zab", "\u{2028}b", "c",
    ]
    for pattern in patterns {
        // Without the DFA: it would answer the ASCII inputs for both.
        let filtered = try ECMARegex(pattern, dfa: false)
        let plain = try ECMARegex(pattern, leadBytePrefilter: false, dfa: false)
        for input in inputs {
            #expect(filtered.search(input) == plain.search(input), "\(pattern) on \(input.debugDescription)")
        }
    }
}

@Test func prefilterSpotChecks() throws {
    #expect(try ECMARegex("$").search("abc") == true, "an empty match at the end")
    #expect(try ECMARegex("$").search("") == true)
    #expect(try ECMARegex("a?b").search("zzb") == true)
    #expect(try ECMARegex("a?b").search("zza") == false)
    #expect(try ECMARegex("é").search("café") == true)
    #expect(try ECMARegex("[^a]").search("aé") == true)
    #expect(try ECMARegex("[^a]").search("aaa") == false)
    #expect(try ECMARegex("(?=x)y").search("xy") == false)
    #expect(try ECMARegex("./$").search("/a/") == true)
}

/// Skipped starts cost no steps: a budget too small to try every start suffices when the
/// prefilter rules them out, where the plain search runs out.
@Test func skippedStartsSpendNoSteps() throws {
    let long = String(repeating: "a.b", count: 400) + "/x"
    #expect(try ECMARegex("/x", stepLimit: 50, dfa: false).search(long) == true)
    #expect(try ECMARegex("/x", stepLimit: 50, leadBytePrefilter: false, dfa: false).search(long) == nil)
    #expect(try ECMARegex("/\\.{1,2}(/|$)", stepLimit: 50, dfa: false).search("/tmp/mb/work/data/small.txt") == false)
}

// MARK: - DFA

/// The DFA of `pattern` built directly, whatever ECMARegex would choose; nil when ineligible.
private func directDFA(_ pattern: String) throws -> RegexDFA? {
    var parser = RegexParser(Array(pattern.unicodeScalars).map(\.value))
    return RegexDFA(try parser.parse())
}

/// Patterns written to hit the corners of the NFA construction and of `^`/`$`.
private let trickyPatterns = [
    "", "(?:)", "a||b", "^", "$", "^$", "$^", "^|a", "a$|^b", "^a|b$", "a$b", "a^b", "(?:a|^)b", "(?:$|a)b",
    "^(?:$)", "(^a|b)+$", "(?:^|/)x", "x(?:/|$)", "(a|)b", "(|a)+b", "(a|b|)*c", "a{0}", "a{0}b", "b{0,0}$",
    "x{2,}", "^x{2,}$", "(ab){1,3}c", "(ab){2}$", "((a|b)*c)+d?", "(a*)*$", "^(a+)+$", "(x*)*y", "(a?){3}a{3}",
    "a??b", "a+?$", "(a|b){2,3}?", "[a-c]{3}$", "^\\d{2,4}-\\d{2}$", "[^\\d\\s]+", "\\w+\\W", "\\S\\s",
    "[\\w.-]+@", "\\D$", "[^a]", "^[^a]*$", ".", "^.$", "a.c", "^.*$", ".{3,}", "^.{2}$", "^\\s*$", "[\\n\\r]",
    "\\x41\\n", "\\cJ", "\\^\\$", "[\\]\\-]+", "\\.\\.?", "\\u0000", "[\\u0000-\\u001F]", "é", "a|é", "[^é]",
    "^aé", "\\p{L}", "\\P{L}+$", "^/$|^(/[^/\\u0000]+)+$", "/\\.{1,2}(/|$)", "//|/\\.{1,2}(/|$)|./$",
    "^[a-z][a-z0-9-]{0,9}$", "^(?:[a-z]+\\.)*[a-z]+$", "a[ab]{3}", "(?:a*b*)*c$", "(?:^a)*b", "(?:a$)*",
    "(?:$)+a?$", "(?:^|a)+$", "(?:\\n|^)x.$",
]

/// Deterministic strings over `alphabet`, lengths 0 through 9.
private func generatedStrings(_ alphabet: [Character], count: Int, seed: UInt64) -> [String] {
    var state = seed | 1
    func next() -> Int {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int(truncatingIfNeeded: state >> 33)
    }
    return (0..<count).map { _ in String((0..<(next() % 10)).map { _ in alphabet[next() % alphabet.count] }) }
}

/// The ASCII characters of the pattern's source plus line terminators and a few common ones.
private func alphabet(of pattern: String) -> [Character] {
    var characters = Set(pattern.unicodeScalars.filter(\.isASCII).map(Character.init))
    characters.formUnion(["a", "b", "0", " ", "\n", "\r", "/", ".", "_", "-", "x"])
    return characters.sorted()
}

/// Patterns of the vendored JSON-Schema-Test-Suite with the strings of their groups' data.
private func suitePatterns() throws -> [(pattern: String, strings: [String])] {
    let root = Suite.root.appendingPathComponent("tests/draft2020-12")
    guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil) else { return [] }
    var result: [(String, [String])] = []
    for case let url as URL in walker where url.pathExtension == "json" {
        guard case .array(let groups) = try Suite.parse(url) else { continue }
        // In the regex format files the data are patterns themselves.
        let dataArePatterns = url.lastPathComponent.contains("regex") && url.path.contains("/format/")
        for group in groups {
            var strings: [String] = []
            for test in group["tests"]?.arrayValue ?? [] { collectStrings(test["data"] ?? .null, into: &strings) }
            var patterns: [String] = []
            collectPatterns(group["schema"] ?? .null, into: &patterns)
            if dataArePatterns { patterns += strings }
            for pattern in patterns { result.append((pattern, strings)) }
        }
    }
    return result
}

private func collectStrings(_ value: JSONValue, into strings: inout [String]) {
    switch value {
    case .string(let string): strings.append(string)
    case .array(let items): for item in items { collectStrings(item, into: &strings) }
    case .object(let object):
        for member in object.members {
            strings.append(member.key)
            collectStrings(member.value, into: &strings)
        }
    default: break
    }
}

private func collectPatterns(_ schema: JSONValue, into patterns: inout [String]) {
    switch schema {
    case .array(let items): for item in items { collectPatterns(item, into: &patterns) }
    case .object(let object):
        for member in object.members {
            if member.key == "pattern", case .string(let pattern) = member.value { patterns.append(pattern) }
            if member.key == "patternProperties", case .object(let properties) = member.value {
                patterns += properties.members.map(\.key)
            }
            collectPatterns(member.value, into: &patterns)
        }
    default: break
    }
}

/// Every suite and tricky pattern, on the suite's strings and generated ASCII ones: the DFA (built
/// directly, so nested quantifiers are covered too) and ECMARegex with its DFA agree with the machine.
@Test func dfaAgreesWithTheMachine() throws {
    var cases = try suitePatterns()
    cases += trickyPatterns.map { ($0, ["", "\n", "\r", "a\n", "\nb", "/a/./b", "/a/..", "/tmp/x", "//", "é", "aé", "aéc"]) }
    var eligible = 0
    var comparisons = 0
    var dfaComparisons = 0
    for (index, (pattern, strings)) in cases.enumerated() {
        guard let machine = try? ECMARegex(pattern, stepLimit: 10_000_000, dfa: false) else { continue }
        let regex = try ECMARegex(pattern)
        let dfa = try directDFA(pattern)
        if dfa != nil { eligible += 1 }
        var inputs = strings + strings.flatMap { ["x" + $0, $0 + "\n", "\r" + $0] }
        inputs += ["", "\n", "\r", "\r\n"] + generatedStrings(alphabet(of: pattern), count: 300, seed: UInt64(index + 1))
        for input in inputs {
            guard let expected = machine.search(input) else { continue }
            comparisons += 1
            #expect(regex.search(input) == expected, "\(pattern.debugDescription) on \(input.debugDescription)")
            var copy = input
            if let dfa, let found = copy.withUTF8({ dfa.search($0) }) {
                #expect(found == expected, "DFA of \(pattern.debugDescription) on \(input.debugDescription)")
                dfaComparisons += 1
            }
        }
    }
    print("DFA differential: \(cases.count) patterns, \(eligible) with a DFA, \(comparisons) comparisons, \(dfaComparisons) answered by the DFA")
    #expect(eligible >= 100, "most patterns are automata")
    #expect(comparisons >= 40_000)
    #expect(dfaComparisons >= 30_000)
}

@Test func pathPatternsUseTheDFA() throws {
    let path = try ECMARegex("^/$|^(/[^/\\u0000]+)+$")
    let dots = try ECMARegex("/\\.{1,2}(/|$)")
    #expect(path.usesDFA && dots.usesDFA)
    #expect(try !ECMARegex("/\\.{1,2}(/|$)", dfa: false).usesDFA)
    // A budget the machine cannot finish in: only the DFA answers.
    let long = "/" + Array(repeating: "segment", count: 500).joined(separator: "/")
    #expect(try ECMARegex("^/$|^(/[^/\\u0000]+)+$", stepLimit: 100).search(long) == true)
    #expect(try ECMARegex("^/$|^(/[^/\\u0000]+)+$", stepLimit: 100, dfa: false).search(long) == nil)
    #expect(path.search("/") == true && path.search("/a/b") == true)
    #expect(path.search("") == false && path.search("//") == false && path.search("/a/") == false)
    #expect(path.search("/a\u{0}b") == false)
    #expect(dots.search("/a/./b") == true && dots.search("/a/..") == true && dots.search("/a/...") == false)
    #expect(dots.search("/a/.b") == false)
}

@Test func ineligiblePatternsKeepTheMachine() throws {
    let cases: [(String, String, Bool)] = [
        ("(a)\\1", "xaa", true), ("(a)\\1", "ab", false), ("(?=ab)a", "ab", true), ("(?!ab)a", "ab", false),
        ("(?<=a)b", "ab", true), ("(?<!a)b", "ab", false), ("\\bfoo", "a foo", true), ("\\bfoo", "afoo", false),
        ("\\Boo", "foo", true),
        // Past the state bound: which of the last bytes were 'a' is more than 256 states.
        ("a[ab]{10}", "bbabbbbbbbbbb", true), ("a[ab]{10}", "bbabbbbbbbbb", false),
        // Past the NFA bound once expanded.
        ("^x{1000}y", String(repeating: "x", count: 1000) + "y", true), ("^x{1000}y", String(repeating: "x", count: 999) + "y", false),
    ]
    for (pattern, input, expected) in cases {
        let regex = try ECMARegex(pattern)
        #expect(!regex.usesDFA, "\(pattern)")
        #expect(regex.search(input) == expected, "\(pattern) on \(input)")
    }
}

@Test func nonASCIIInputFallsBackToTheMachine() throws {
    let cases: [(String, String, Bool)] = [
        ("a.c", "aéc", true), ("x.y", "x\u{2028}y", false), ("^[^a]$", "é", true), ("^aé", "aé", true),
        ("^aé", "bé", false), ("\\s", "\u{A0}", true), ("^\\S$", "\u{A0}", false), ("\\p{L}", "1α", true),
        ("^/$|^(/[^/\\u0000]+)+$", "/tmp/café", true), ("/\\.{1,2}(/|$)", "/é/../x", true), ("^[a-z]+é$", "abcé", true),
        // The DFA accepts in the ASCII prefix before it reaches the non-ASCII byte.
        ("ab", "abé", true),
    ]
    for (pattern, input, expected) in cases {
        let regex = try ECMARegex(pattern)
        #expect(regex.usesDFA, "\(pattern)")
        #expect(regex.search(input) == expected, "\(pattern) on \(input)")
        var copy = input
        let direct = try #require(try directDFA(pattern))
        let answer = copy.withUTF8 { direct.search($0) }
        #expect(answer == nil || answer == expected, "the DFA answers only what the ASCII prefix decides")
    }
    // After "a" no ASCII byte leads on, yet the search must not stop: "é" is not ASCII.
    var input = "aé"
    let direct = try #require(try directDFA("^aé"))
    #expect(input.withUTF8 { direct.search($0) } == nil)
}
