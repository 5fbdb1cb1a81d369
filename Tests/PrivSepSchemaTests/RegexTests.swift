// The lead-byte prefilter of unanchored regex search: which bytes it lets the machine start at,
// and that skipping the others never changes an answer.
@testable import PrivSepSchema
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
        let filtered = try ECMARegex(pattern)
        let plain = try ECMARegex(pattern, leadBytePrefilter: false)
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
    #expect(try ECMARegex("/x", stepLimit: 50).search(long) == true)
    #expect(try ECMARegex("/x", stepLimit: 50, leadBytePrefilter: false).search(long) == nil)
    #expect(try ECMARegex("/\\.{1,2}(/|$)", stepLimit: 50).search("/tmp/mb/work/data/small.txt") == false)
}
