// A small ECMA-262 regular expression engine for `pattern` and `patternProperties`.
//
// Why our own: JSON Schema patterns are ECMA-262 (with the `u` flag: code points, \p{...}), which
// neither Foundation nor Swift's Regex follow exactly (\d, \w, \s differ), and neither bounds the
// work of a backtracking search. Here a pattern is parsed to a tree, compiled to a program for a
// backtracking machine with an explicit stack, and every search has a step budget: a pathological
// pattern gives "limit exceeded", never a hang. Empty-width loop iterations are cut, as ECMA-262
// requires, so `(a*)*` terminates on its own. An unanchored search would run the machine from every
// position; the bytes a match can begin with are computed once, and positions starting with any
// other byte are skipped by a byte scan (a superset, so no answer changes; only fewer steps spent).
// A pattern that is a finite automaton (no backreference, lookaround or \b) is also compiled to a
// DFA over ASCII (RegexDFA.swift), which answers searches of ASCII strings in one pass.
//
// Not supported (compile error, so a schema never silently means something else): Script=
// properties and flags.

/// Why a pattern did not compile.
struct RegexSyntaxError: Error {
    var message: String
}

/// A compiled ECMA-262 pattern. Immutable; searches are thread-safe.
final class ECMARegex: @unchecked Sendable {
    let source: String
    let stepLimit: Int
    /// Nested unbounded quantifiers: the shape of catastrophic backtracking.
    let mayBacktrackCatastrophically: Bool
    private let program: [Instruction]
    private let sets: [CharacterSet]
    private let registerCount: Int
    private let anchoredAtStart: Bool

    /// The bytes a match can begin with, for unanchored searches; nil when every start must be tried.
    let leadBytes: LeadByteSet?

    /// Answers searches of ASCII strings when the pattern allows; nil when every search runs the machine.
    private let dfa: RegexDFA?

    /// Whether searches of ASCII strings take the DFA.
    var usesDFA: Bool { dfa != nil }

    /// `leadBytePrefilter: false` tries every start position, `dfa: false` always runs the
    /// machine: only for tests that compare the paths.
    init(_ source: String, stepLimit: Int = 200_000, leadBytePrefilter: Bool = true, dfa: Bool = true) throws(RegexSyntaxError) {
        self.source = source
        self.stepLimit = stepLimit
        var parser = RegexParser(Array(source.unicodeScalars).map(\.value))
        let tree = try parser.parse()
        // Capture positions are only ever read by backreferences: without one, none are kept.
        var emitter = RegexEmitter(captureCount: parser.hasBackreference ? parser.captureCount : -1)
        try emitter.emit(tree)
        emitter.program.append(.match)
        program = emitter.program
        sets = emitter.sets
        registerCount = emitter.registerCount
        anchoredAtStart = tree.anchoredAtStart
        mayBacktrackCatastrophically = tree.nestedUnboundedRepeat(inside: false)
        wholeStringClass = ECMARegex.wholeStringClass(tree)
        // An anchored pattern is tried at position 0 only: nothing to skip.
        leadBytes = leadBytePrefilter && !tree.anchoredAtStart ? tree.leadBytes.filter : nil
        // The one-pass class check already covers its shape, on any input. A pattern flagged as
        // catastrophic gets the DFA too: on ASCII input it cannot backtrack at all, and on other
        // input the machine's step limit still bounds it (the warning stays true there).
        self.dfa = dfa && wholeStringClass == nil ? RegexDFA(tree) : nil
    }

    /// `^X{min,max}$` with X one character class: the common identifier shape, checked in one
    /// pass without the backtracking machine.
    private let wholeStringClass: (set: CharacterSet, min: Int, max: Int?)?

    private static func wholeStringClass(_ tree: RegexNode) -> (set: CharacterSet, min: Int, max: Int?)? {
        guard case .sequence(let items) = tree, items.count == 3, case .lineStart = items[0], case .lineEnd = items[2],
              case .repetition(let atom, let min, let max, _) = items[1] else { return nil }
        switch atom {
        case .set(let set): return (set, min, max)
        case .scalar(let c):
            var set = CharacterSet()
            set.ranges = [(c, c)]
            set.finish()
            return (set, min, max)
        default: return nil
        }
    }

    /// Whether the pattern matches anywhere in `string`; nil if the step budget ran out.
    func search(_ string: String) -> Bool? {
        var string = string
        if let simple = wholeStringClass {
            return string.withUTF8 { bytes in
                var count = 0
                var position = 0
                while position < bytes.count {
                    let lead = bytes[position]
                    var scalar = UInt32(lead)
                    var length = 1
                    if lead >= 0x80 {
                        length = RegexMachine.scalarLength(lead)
                        guard position + length <= bytes.count else { return false }
                        scalar &= length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07
                        for i in 1..<length { scalar = scalar << 6 | UInt32(bytes[position + i] & 0x3F) }
                    }
                    guard simple.set.contains(scalar) else { return false }
                    position += length
                    count += 1
                }
                return count >= simple.min && count <= (simple.max ?? Int.max)
            }
        }
        if let dfa, let found = string.withUTF8({ dfa.search($0) }) { return found }
        return string.withUTF8 { bytes in
            var machine = RegexMachine(program: program, sets: sets, input: bytes, registers: registerCount, budget: stepLimit)
            var start = 0
            while true {
                if let leadBytes {
                    // No match can begin at a byte outside the set, so the machine never runs there.
                    guard let next = leadBytes.firstIndex(in: bytes, from: start) else { return false }
                    start = next
                }
                switch machine.run(from: start, pc: 0) {
                case true?: return true
                case nil: return nil
                case false?: break
                }
                if anchoredAtStart || start >= bytes.count { return false }
                start += RegexMachine.scalarLength(bytes[start])
            }
        }
    }
}

// MARK: - Tree

indirect enum RegexNode {
    case empty
    case scalar(UInt32)
    case dot
    case set(CharacterSet)
    case sequence([RegexNode])
    case alternation([RegexNode])
    case group(RegexNode, capture: Int?)
    case repetition(RegexNode, min: Int, max: Int?, greedy: Bool)
    case lineStart, lineEnd, wordBoundary(negated: Bool)
    case lookahead(RegexNode, negated: Bool)
    case lookbehind(RegexNode, negated: Bool)
    case backreference(Int)

    var anchoredAtStart: Bool {
        switch self {
        case .lineStart: return true
        case .sequence(let items): return items.first?.anchoredAtStart ?? false
        case .group(let inner, _): return inner.anchoredAtStart
        case .alternation(let items): return items.allSatisfy(\.anchoredAtStart)
        default: return false
        }
    }

    var canMatchEmpty: Bool {
        switch self {
        case .scalar, .dot, .set: return false
        case .sequence(let items): return items.allSatisfy(\.canMatchEmpty)
        case .alternation(let items): return items.contains(where: \.canMatchEmpty)
        case .group(let inner, _): return inner.canMatchEmpty
        case .repetition(let inner, let min, _, _): return min == 0 || inner.canMatchEmpty
        default: return true
        }
    }

    /// The one character every match must begin with, if there is one.
    var leadingCharacter: UInt32? {
        switch self {
        case .scalar(let c): return c
        case .sequence(let items): return items.first?.leadingCharacter
        case .group(let inner, _): return inner.leadingCharacter
        case .repetition(let inner, let min, _, _): return min > 0 ? inner.leadingCharacter : nil
        default: return nil
        }
    }

    /// Whether any repeated atom inside could consume `c`.
    func innerLoopsCanMatch(_ c: UInt32) -> Bool {
        switch self {
        case .sequence(let items), .alternation(let items): return items.contains { $0.innerLoopsCanMatch(c) }
        case .group(let inner, _), .lookahead(let inner, _), .lookbehind(let inner, _): return inner.innerLoopsCanMatch(c)
        case .repetition(let inner, _, _, _): return inner.canConsume(c)
        default: return false
        }
    }

    private func canConsume(_ c: UInt32) -> Bool {
        switch self {
        case .scalar(let s): return s == c
        case .dot: return c != 0x0A && c != 0x0D && c != 0x2028 && c != 0x2029
        case .set(let set): return set.contains(c)
        case .sequence(let items), .alternation(let items): return items.contains { $0.canConsume(c) }
        case .group(let inner, _), .repetition(let inner, _, _, _): return inner.canConsume(c)
        default: return false
        }
    }

    func nestedUnboundedRepeat(inside: Bool) -> Bool {
        switch self {
        case .sequence(let items), .alternation(let items):
            return items.contains { $0.nestedUnboundedRepeat(inside: inside) }
        case .group(let inner, _), .lookahead(let inner, _), .lookbehind(let inner, _):
            return inner.nestedUnboundedRepeat(inside: inside)
        case .repetition(let inner, _, let max, _):
            let unbounded = max == nil || max! > 16
            if unbounded && inside { return true }
            // An iteration that must start with a character no inner loop can consume cannot be
            // split several ways (e.g. (\.[a-z]+)+): that nesting is harmless.
            if unbounded, let lead = inner.leadingCharacter, !inner.innerLoopsCanMatch(lead) { return false }
            return inner.nestedUnboundedRepeat(inside: inside || unbounded)
        default:
            return false
        }
    }
}

// MARK: - Lead bytes

/// A set of bytes (256 bits): the UTF-8 bytes a match can begin with, and the ASCII bytes a DFA
/// edge consumes (RegexDFA.swift).
struct LeadByteSet: Hashable {
    /// Bytes 0-63, 64-127, 128-191 (UTF-8 continuation bytes) and 192-255.
    private var low: UInt64 = 0
    private var high: UInt64 = 0
    private var continuation: UInt64 = 0
    private var leading: UInt64 = 0

    @inline(__always)
    func contains(_ byte: UInt8) -> Bool {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: return low & bit != 0
        case 1: return high & bit != 0
        case 2: return continuation & bit != 0
        default: return leading & bit != 0
        }
    }

    mutating func insert(_ byte: UInt8) {
        let bit = UInt64(1) << UInt64(byte & 63)
        switch byte >> 6 {
        case 0: low |= bit
        case 1: high |= bit
        case 2: continuation |= bit
        default: leading |= bit
        }
    }

    var isEmpty: Bool { low | high | continuation | leading == 0 }

    mutating func insert(_ range: ClosedRange<UInt8>) {
        for byte in range { insert(byte) }
    }

    mutating func formUnion(_ other: LeadByteSet) {
        low |= other.low
        high |= other.high
        continuation |= other.continuation
        leading |= other.leading
    }

    /// UTF-8 continuation bytes never start a scalar, so a byte scan that stops only at members
    /// stops only where the machine could have started.
    mutating func removeContinuationBytes() {
        continuation = 0
    }

    /// Every lead byte is in: filtering would skip nothing.
    var coversEveryScalarStart: Bool {
        low == .max && high == .max && leading == .max
    }

    /// The first index at or after `start` whose byte is a member, or nil.
    @inline(__always)
    func firstIndex(in bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        var index = start
        while index < bytes.count {
            if contains(bytes[index]) { return index }
            index += 1
        }
        return nil
    }

    /// The first byte of `scalar`'s UTF-8 encoding. The machine compares decoded scalars, and
    /// UTF-8 keeps scalar order, so a scalar range maps into the range of its ends' lead bytes.
    static func utf8Lead(_ scalar: UInt32) -> UInt8 {
        switch scalar {
        case ..<0x80: return UInt8(truncatingIfNeeded: scalar)
        case ..<0x800: return 0xC0 | UInt8(truncatingIfNeeded: scalar >> 6)
        case ..<0x10000: return 0xE0 | UInt8(truncatingIfNeeded: scalar >> 12)
        default: return 0xF0 | UInt8(truncatingIfNeeded: min(scalar >> 18, 7))
        }
    }
}

/// What a node's matches can begin with, for the lead-byte prefilter.
struct LeadBytes {
    /// Lead bytes of the first scalar a match consumes.
    var bytes = LeadByteSet()
    /// The node can match without consuming anything: what follows it contributes lead bytes too.
    var nullable = true
    /// Bytes that cannot be bounded (., backreferences, lookbehind): every start must be tried.
    var unbounded = false

    static let anything = LeadBytes(nullable: false, unbounded: true)

    static func consuming(_ bytes: LeadByteSet) -> LeadBytes {
        LeadBytes(bytes: bytes, nullable: false)
    }

    /// The set to filter starts with, or nil when a match may start anywhere, including at the
    /// end of the input (a pattern that can match the empty string).
    var filter: LeadByteSet? {
        guard !unbounded, !nullable else { return nil }
        var set = bytes
        set.removeContinuationBytes()
        return set.coversEveryScalarStart ? nil : set
    }
}

extension RegexNode {
    /// Over-approximates the lead bytes of this node's matches. Zero-width assertions (^, $, \b,
    /// lookahead) only ever reject, so they are treated as matching empty: a superset, never less.
    var leadBytes: LeadBytes {
        switch self {
        case .empty, .lineStart, .lineEnd, .wordBoundary, .lookahead:
            return LeadBytes()
        case .scalar(let c):
            var set = LeadByteSet()
            set.insert(LeadByteSet.utf8Lead(c))
            return .consuming(set)
        case .set(let set):
            return .consuming(set.leadBytes)
        case .dot, .lookbehind, .backreference:
            return .anything
        case .sequence(let items):
            var result = LeadBytes()
            for item in items {
                let lead = item.leadBytes
                result.bytes.formUnion(lead.bytes)
                result.unbounded = result.unbounded || lead.unbounded
                if !lead.nullable {
                    result.nullable = false
                    break
                }
            }
            return result
        case .alternation(let items):
            var result = LeadBytes(nullable: false)
            for item in items {
                let lead = item.leadBytes
                result.bytes.formUnion(lead.bytes)
                result.unbounded = result.unbounded || lead.unbounded
                result.nullable = result.nullable || lead.nullable
            }
            return result
        case .group(let inner, _):
            return inner.leadBytes
        case .repetition(let inner, let min, let max, _):
            // {0} and {0,0} emit nothing.
            if max == 0 { return LeadBytes() }
            var lead = inner.leadBytes
            if min == 0 { lead.nullable = true }
            return lead
        }
    }
}

extension CharacterSet {
    /// Lead bytes of the scalars this class can match. ASCII members are exact; beyond ASCII,
    /// a negated class, \D, \W, \s or a Unicode property may match any scalar.
    var leadBytes: LeadByteSet {
        var set = LeadByteSet()
        for c in 0..<UInt32(128) where contains(c) { set.insert(UInt8(truncatingIfNeeded: c)) }
        if negated || predicates.contains(where: { $0.1 || !$0.0.isASCIIOnly }) {
            set.insert(0xC0...0xFF)
            return set
        }
        for (low, high) in ranges where high >= 0x80 {
            set.insert(LeadByteSet.utf8Lead(Swift.max(low, 0x80))...LeadByteSet.utf8Lead(high))
        }
        return set
    }
}

/// A character class: ranges plus class escapes and Unicode properties.
struct CharacterSet {
    var ranges: [(UInt32, UInt32)] = []
    var predicates: [(ScalarPredicate, Bool)] = []
    var negated = false
    var asciiLow: UInt64 = 0
    var asciiHigh: UInt64 = 0
    var asciiOnly = true

    mutating func finish() {
        asciiLow = 0
        asciiHigh = 0
        for c in 0..<UInt32(128) where rawContains(c) {
            if c < 64 { asciiLow |= 1 << UInt64(c) } else { asciiHigh |= 1 << UInt64(c - 64) }
        }
    }

    private func rawContains(_ c: UInt32) -> Bool {
        for (low, high) in ranges where c >= low && c <= high { return true }
        for (predicate, negated) in predicates where predicate.test(c) != negated { return true }
        return false
    }

    func contains(_ c: UInt32) -> Bool {
        if c < 64 { return (asciiLow >> UInt64(c)) & 1 != 0 ? !negated : negated }
        if c < 128 { return (asciiHigh >> UInt64(c - 64)) & 1 != 0 ? !negated : negated }
        return rawContains(c) != negated
    }
}

/// Class escapes and \p{...} properties.
enum ScalarPredicate {
    case digit, word, space
    case category([Unicode.GeneralCategory])
    case alphabetic, whiteSpace, uppercase, lowercase, ascii, any, assigned, hexDigit, asciiHexDigit, emoji

    /// \d and \w are ASCII-only without the i flag; so is \p{ASCII}.
    var isASCIIOnly: Bool {
        switch self {
        case .digit, .word, .ascii: return true
        default: return false
        }
    }

    func test(_ c: UInt32) -> Bool {
        switch self {
        case .digit: return c >= 0x30 && c <= 0x39
        case .word: return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F
        case .space:
            switch c {
            case 0x09...0x0D, 0x20, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF: return true
            default: return false
            }
        case .ascii: return c < 128
        case .any: return true
        default:
            guard let scalar = Unicode.Scalar(c) else { return self == .category([.surrogate]) }
            let properties = scalar.properties
            switch self {
            case .category(let categories): return categories.contains(properties.generalCategory)
            case .alphabetic: return properties.isAlphabetic
            case .whiteSpace: return properties.isWhitespace
            case .uppercase: return properties.isUppercase
            case .lowercase: return properties.isLowercase
            case .assigned: return properties.generalCategory != .unassigned
            case .hexDigit: return properties.isHexDigit
            case .asciiHexDigit: return properties.isASCIIHexDigit
            case .emoji: return properties.isEmoji
            default: return false
            }
        }
    }

    static func == (lhs: ScalarPredicate, rhs: ScalarPredicate) -> Bool {
        if case .category(let a) = lhs, case .category(let b) = rhs { return a == b }
        return false
    }

    /// The predicate \p{name} names, or nil.
    static func property(_ name: String) -> ScalarPredicate? {
        var key = name
        for prefix in ["General_Category=", "gc="] where key.hasPrefix(prefix) { key = String(key.dropFirst(prefix.count)) }
        if let categories = generalCategories[key] { return .category(categories) }
        switch key {
        case "Alphabetic", "Alpha": return .alphabetic
        case "White_Space", "space": return .whiteSpace
        case "Uppercase", "Upper": return .uppercase
        case "Lowercase", "Lower": return .lowercase
        case "ASCII": return .ascii
        case "Any": return .any
        case "Assigned": return .assigned
        case "Hex_Digit", "Hex": return .hexDigit
        case "ASCII_Hex_Digit", "AHex": return .asciiHexDigit
        case "Emoji": return .emoji
        default: return nil
        }
    }

    static let generalCategories: [String: [Unicode.GeneralCategory]] = {
        let table: [(String, String, [Unicode.GeneralCategory])] = [
            ("Lu", "Uppercase_Letter", [.uppercaseLetter]), ("Ll", "Lowercase_Letter", [.lowercaseLetter]),
            ("Lt", "Titlecase_Letter", [.titlecaseLetter]), ("Lm", "Modifier_Letter", [.modifierLetter]),
            ("Lo", "Other_Letter", [.otherLetter]), ("Mn", "Nonspacing_Mark", [.nonspacingMark]),
            ("Mc", "Spacing_Mark", [.spacingMark]), ("Me", "Enclosing_Mark", [.enclosingMark]),
            ("Nd", "Decimal_Number", [.decimalNumber]), ("Nl", "Letter_Number", [.letterNumber]),
            ("No", "Other_Number", [.otherNumber]), ("Pc", "Connector_Punctuation", [.connectorPunctuation]),
            ("Pd", "Dash_Punctuation", [.dashPunctuation]), ("Ps", "Open_Punctuation", [.openPunctuation]),
            ("Pe", "Close_Punctuation", [.closePunctuation]), ("Pi", "Initial_Punctuation", [.initialPunctuation]),
            ("Pf", "Final_Punctuation", [.finalPunctuation]), ("Po", "Other_Punctuation", [.otherPunctuation]),
            ("Sm", "Math_Symbol", [.mathSymbol]), ("Sc", "Currency_Symbol", [.currencySymbol]),
            ("Sk", "Modifier_Symbol", [.modifierSymbol]), ("So", "Other_Symbol", [.otherSymbol]),
            ("Zs", "Space_Separator", [.spaceSeparator]), ("Zl", "Line_Separator", [.lineSeparator]),
            ("Zp", "Paragraph_Separator", [.paragraphSeparator]), ("Cc", "Control", [.control]),
            ("Cf", "Format", [.format]), ("Cs", "Surrogate", [.surrogate]), ("Co", "Private_Use", [.privateUse]),
            ("Cn", "Unassigned", [.unassigned]),
            ("L", "Letter", [.uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter]),
            ("LC", "Cased_Letter", [.uppercaseLetter, .lowercaseLetter, .titlecaseLetter]),
            ("M", "Mark", [.nonspacingMark, .spacingMark, .enclosingMark]),
            ("N", "Number", [.decimalNumber, .letterNumber, .otherNumber]),
            ("P", "Punctuation", [.connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
                                  .initialPunctuation, .finalPunctuation, .otherPunctuation]),
            ("S", "Symbol", [.mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol]),
            ("Z", "Separator", [.spaceSeparator, .lineSeparator, .paragraphSeparator]),
            ("C", "Other", [.control, .format, .surrogate, .privateUse, .unassigned]),
        ]
        var map: [String: [Unicode.GeneralCategory]] = [:]
        for (short, long, categories) in table {
            map[short] = categories
            map[long] = categories
        }
        map["digit"] = [.decimalNumber]
        map["punct"] = map["P"]
        return map
    }()
}

// MARK: - Parser

struct RegexParser {
    private let pattern: [UInt32]
    private var index = 0
    private(set) var captureCount = 0
    private(set) var hasBackreference = false
    private var groupNames: [String: Int] = [:]
    private var depth = 0
    static let maxDepth = 100

    init(_ pattern: [UInt32]) { self.pattern = pattern }

    private var current: UInt32? { index < pattern.count ? pattern[index] : nil }
    private func peek(_ offset: Int = 0) -> UInt32? { index + offset < pattern.count ? pattern[index + offset] : nil }
    private func isChar(_ c: Character) -> Bool { current == c.unicodeScalars.first!.value }

    mutating func parse() throws(RegexSyntaxError) -> RegexNode {
        // Named groups may be referenced before they are defined: count them first.
        prescanGroups()
        let tree = try parseDisjunction()
        if index < pattern.count { throw RegexSyntaxError(message: "unmatched ')' at position \(index)") }
        return tree
    }

    private mutating func prescanGroups() {
        var count = 0
        var i = 0
        var inClass = false
        while i < pattern.count {
            let c = pattern[i]
            if c == 0x5C { i += 2; continue }
            if c == 0x5B { inClass = true } else if c == 0x5D { inClass = false }
            if !inClass && c == 0x28 {
                if i + 1 < pattern.count && pattern[i + 1] == 0x3F {
                    if i + 2 < pattern.count && pattern[i + 2] == 0x3C, i + 3 < pattern.count, pattern[i + 3] != 0x3D && pattern[i + 3] != 0x21 {
                        count += 1
                        var name = ""
                        var j = i + 3
                        while j < pattern.count && pattern[j] != 0x3E {
                            name.unicodeScalars.append(Unicode.Scalar(pattern[j]) ?? " ")
                            j += 1
                        }
                        groupNames[name] = count
                    }
                } else {
                    count += 1
                }
            }
            i += 1
        }
    }

    private mutating func parseDisjunction() throws(RegexSyntaxError) -> RegexNode {
        depth += 1
        defer { depth -= 1 }
        if depth > RegexParser.maxDepth { throw RegexSyntaxError(message: "groups nested too deeply") }
        var alternatives = [try parseAlternative()]
        while isChar("|") {
            index += 1
            alternatives.append(try parseAlternative())
        }
        return alternatives.count == 1 ? alternatives[0] : .alternation(alternatives)
    }

    private mutating func parseAlternative() throws(RegexSyntaxError) -> RegexNode {
        var items: [RegexNode] = []
        while let c = current, c != 0x7C, c != 0x29 {
            items.append(try parseTerm())
        }
        if items.isEmpty { return .empty }
        return items.count == 1 ? items[0] : .sequence(items)
    }

    private mutating func parseTerm() throws(RegexSyntaxError) -> RegexNode {
        guard let c = current else { throw RegexSyntaxError(message: "unexpected end") }
        switch c {
        case 0x5E: index += 1; return .lineStart
        case 0x24: index += 1; return .lineEnd
        case 0x5C where peek(1) == 0x62: index += 2; return .wordBoundary(negated: false)
        case 0x5C where peek(1) == 0x42: index += 2; return .wordBoundary(negated: true)
        case 0x28 where peek(1) == 0x3F && (peek(2) == 0x3D || peek(2) == 0x21):
            let negated = peek(2) == 0x21
            index += 3
            let inner = try parseDisjunction()
            try expect(0x29, "')' closing a lookahead")
            // ECMA-262 Annex B allows quantified lookaheads; the quantifier adds nothing to a zero-width test.
            _ = try parseQuantifier()
            return .lookahead(inner, negated: negated)
        case 0x28 where peek(1) == 0x3F && peek(2) == 0x3C && (peek(3) == 0x3D || peek(3) == 0x21):
            let negated = peek(3) == 0x21
            index += 4
            let inner = try parseDisjunction()
            try expect(0x29, "')' closing a lookbehind")
            return .lookbehind(inner, negated: negated)
        default:
            let atom = try parseAtom()
            guard let quantifier = try parseQuantifier() else { return atom }
            if case .lineStart = atom { throw RegexSyntaxError(message: "nothing to repeat") }
            return .repetition(atom, min: quantifier.min, max: quantifier.max, greedy: quantifier.greedy)
        }
    }

    private mutating func expect(_ c: UInt32, _ what: String) throws(RegexSyntaxError) {
        guard current == c else { throw RegexSyntaxError(message: "expected \(what) at position \(index)") }
        index += 1
    }

    private mutating func parseQuantifier() throws(RegexSyntaxError) -> (min: Int, max: Int?, greedy: Bool)? {
        guard let c = current else { return nil }
        var result: (min: Int, max: Int?)
        switch c {
        case 0x2A: result = (0, nil); index += 1
        case 0x2B: result = (1, nil); index += 1
        case 0x3F: result = (0, 1); index += 1
        case 0x7B:
            let save = index
            index += 1
            guard let low = parseDecimal() else { index = save; return nil }
            var high: Int? = low
            if isChar(",") {
                index += 1
                high = parseDecimal()
            }
            guard isChar("}") else { index = save; return nil }
            index += 1
            if let high, high < low { throw RegexSyntaxError(message: "numbers out of order in {} quantifier") }
            result = (low, high)
        default:
            return nil
        }
        var greedy = true
        if isChar("?") {
            greedy = false
            index += 1
        }
        return (result.min, result.max, greedy)
    }

    private mutating func parseDecimal() -> Int? {
        var value = 0
        var any = false
        while let c = current, c >= 0x30, c <= 0x39 {
            value = min(value * 10 + Int(c - 0x30), 1_000_000)
            any = true
            index += 1
        }
        return any ? value : nil
    }

    private mutating func parseAtom() throws(RegexSyntaxError) -> RegexNode {
        guard let c = current else { throw RegexSyntaxError(message: "unexpected end") }
        switch c {
        case 0x2E:
            index += 1
            return .dot
        case 0x28:
            index += 1
            var capture: Int?
            if isChar("?") {
                if peek(1) == 0x3A {
                    index += 2
                } else if peek(1) == 0x3C {
                    index += 2
                    while let n = current, n != 0x3E { index += 1 }
                    try expect(0x3E, "'>' closing a group name")
                    captureCount += 1
                    capture = captureCount
                } else {
                    throw RegexSyntaxError(message: "invalid group at position \(index)")
                }
            } else {
                captureCount += 1
                capture = captureCount
            }
            let inner = try parseDisjunction()
            try expect(0x29, "')'")
            return .group(inner, capture: capture)
        case 0x5B:
            index += 1
            return .set(try parseClass())
        case 0x5C:
            index += 1
            return try parseAtomEscape()
        case 0x2A, 0x2B, 0x3F:
            throw RegexSyntaxError(message: "nothing to repeat at position \(index)")
        case 0x7B:
            if (try? parseQuantifierProbe()) == true { throw RegexSyntaxError(message: "nothing to repeat at position \(index)") }
            index += 1
            return .scalar(c)
        case 0x29:
            throw RegexSyntaxError(message: "unmatched ')'")
        default:
            index += 1
            return .scalar(c)
        }
    }

    private mutating func parseQuantifierProbe() throws(RegexSyntaxError) -> Bool {
        let save = index
        defer { index = save }
        return try parseQuantifier() != nil
    }

    private mutating func parseAtomEscape() throws(RegexSyntaxError) -> RegexNode {
        guard let c = current else { throw RegexSyntaxError(message: "\\ at end of pattern") }
        if c >= 0x31 && c <= 0x39 {
            let number = parseDecimal() ?? 0
            guard number <= max(captureCount, groupNames.count, countAllGroups()) else {
                throw RegexSyntaxError(message: "backreference \\\(number) to a group that does not exist")
            }
            hasBackreference = true
            return .backreference(number)
        }
        if c == 0x6B {
            index += 1
            try expect(0x3C, "'<' after \\k")
            var name = ""
            while let n = current, n != 0x3E {
                name.unicodeScalars.append(Unicode.Scalar(n) ?? " ")
                index += 1
            }
            try expect(0x3E, "'>' closing \\k<name>")
            guard let number = groupNames[name] else { throw RegexSyntaxError(message: "unknown group name \(name)") }
            hasBackreference = true
            return .backreference(number)
        }
        switch try parseCharacterEscape(inClass: false) {
        case .scalar(let value): return .scalar(value)
        case .set(let set): return .set(set)
        }
    }

    private func countAllGroups() -> Int {
        var count = 0
        var i = 0
        while i < pattern.count {
            if pattern[i] == 0x5C { i += 2; continue }
            if pattern[i] == 0x28 && !(i + 1 < pattern.count && pattern[i + 1] == 0x3F && !(i + 2 < pattern.count && pattern[i + 2] == 0x3C)) {
                count += 1
            }
            i += 1
        }
        return count
    }

    enum EscapeResult { case scalar(UInt32), set(CharacterSet) }

    private mutating func parseCharacterEscape(inClass: Bool) throws(RegexSyntaxError) -> EscapeResult {
        guard let c = current else { throw RegexSyntaxError(message: "\\ at end of pattern") }
        index += 1
        func classSet(_ predicate: ScalarPredicate, _ negated: Bool) -> EscapeResult {
            var set = CharacterSet()
            set.predicates = [(predicate, negated)]
            set.finish()
            return .set(set)
        }
        switch c {
        case 0x64: return classSet(.digit, false)
        case 0x44: return classSet(.digit, true)
        case 0x77: return classSet(.word, false)
        case 0x57: return classSet(.word, true)
        case 0x73: return classSet(.space, false)
        case 0x53: return classSet(.space, true)
        case 0x74: return .scalar(0x09)
        case 0x6E: return .scalar(0x0A)
        case 0x72: return .scalar(0x0D)
        case 0x76: return .scalar(0x0B)
        case 0x66: return .scalar(0x0C)
        case 0x62 where inClass: return .scalar(0x08)
        case 0x30:
            if let n = current, n >= 0x30, n <= 0x39 { throw RegexSyntaxError(message: "octal escapes are not allowed") }
            return .scalar(0)
        case 0x63:
            guard let letter = current, (letter | 0x20) >= 0x61, (letter | 0x20) <= 0x7A else {
                throw RegexSyntaxError(message: "\\c must be followed by a letter")
            }
            index += 1
            return .scalar(letter % 32)
        case 0x78:
            guard let value = parseHex(count: 2) else { throw RegexSyntaxError(message: "invalid \\x escape") }
            return .scalar(value)
        case 0x75:
            if isChar("{") {
                index += 1
                var value: UInt32 = 0
                var digits = 0
                while let n = current, let digit = URI.hexValue(UInt8(truncatingIfNeeded: n)), n < 128 {
                    value = value &* 16 &+ UInt32(digit)
                    digits += 1
                    index += 1
                    if value > 0x10FFFF { throw RegexSyntaxError(message: "\\u{...} out of range") }
                }
                guard digits > 0, isChar("}") else { throw RegexSyntaxError(message: "invalid \\u{...} escape") }
                index += 1
                return .scalar(value)
            }
            guard let high = parseHex(count: 4) else { throw RegexSyntaxError(message: "invalid \\u escape") }
            if high >= 0xD800 && high <= 0xDBFF, current == 0x5C, peek(1) == 0x75 {
                let save = index
                index += 2
                if let low = parseHex(count: 4), low >= 0xDC00, low <= 0xDFFF {
                    return .scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
                }
                index = save
            }
            return .scalar(high)
        case 0x70, 0x50:
            try expect(0x7B, "'{' after \\p")
            var name = ""
            while let n = current, n != 0x7D {
                name.unicodeScalars.append(Unicode.Scalar(n) ?? " ")
                index += 1
            }
            try expect(0x7D, "'}' closing \\p{...}")
            guard let predicate = ScalarPredicate.property(name) else {
                throw RegexSyntaxError(message: "unsupported Unicode property \\p{\(name)}")
            }
            return classSet(predicate, c == 0x50)
        default:
            // Identity escapes: syntax characters, '/', and '-' in classes. Letters and digits with no
            // meaning are errors under the u flag.
            let isLetterOrDigit = (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A)
            if isLetterOrDigit { throw RegexSyntaxError(message: "invalid escape \\\(Unicode.Scalar(c).map(String.init) ?? "?")") }
            return .scalar(c)
        }
    }

    private mutating func parseHex(count: Int) -> UInt32? {
        var value: UInt32 = 0
        for _ in 0..<count {
            guard let c = current, c < 128, let digit = URI.hexValue(UInt8(c)) else { return nil }
            value = value * 16 + UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func parseClass() throws(RegexSyntaxError) -> CharacterSet {
        var set = CharacterSet()
        if isChar("^") {
            set.negated = true
            index += 1
        }
        while true {
            guard let c = current else { throw RegexSyntaxError(message: "unterminated character class") }
            if c == 0x5D {
                index += 1
                break
            }
            let first = try parseClassAtom()
            if isChar("-"), let next = peek(1), next != 0x5D {
                index += 1
                let second = try parseClassAtom()
                guard case .scalar(let low) = first, case .scalar(let high) = second else {
                    throw RegexSyntaxError(message: "a class escape cannot bound a range")
                }
                guard low <= high else { throw RegexSyntaxError(message: "range out of order in character class") }
                set.ranges.append((low, high))
                continue
            }
            switch first {
            case .scalar(let value): set.ranges.append((value, value))
            case .set(let inner):
                set.ranges += inner.ranges
                set.predicates += inner.predicates
            }
        }
        set.finish()
        return set
    }

    private mutating func parseClassAtom() throws(RegexSyntaxError) -> EscapeResult {
        guard let c = current else { throw RegexSyntaxError(message: "unterminated character class") }
        if c == 0x5C {
            index += 1
            if isChar("-") {
                index += 1
                return .scalar(0x2D)
            }
            return try parseCharacterEscape(inClass: true)
        }
        index += 1
        return .scalar(c)
    }
}

// MARK: - Program

enum Instruction {
    case scalar(UInt32)
    case dot
    case set(Int)
    case split(Int, Int)
    case jump(Int)
    case save(Int)
    case checkProgress(Int)
    case lineStart, lineEnd
    case wordBoundary(Bool)
    case lookahead(end: Int, negated: Bool)
    case lookbehind(end: Int, negated: Bool)
    /// Ends a lookbehind body: the body must stop exactly where the lookbehind started.
    case atLookbehindEnd
    case backreference(Int)
    case match
}

struct RegexEmitter {
    var program: [Instruction] = []
    var sets: [CharacterSet] = []
    var registerCount: Int
    static let maxProgram = 50_000

    /// Keeps capture positions when `captureCount` >= 0 (for backreferences); -1 keeps none.
    init(captureCount: Int) {
        keepCaptures = captureCount >= 0
        registerCount = keepCaptures ? (captureCount + 1) * 2 : 0
    }
    let keepCaptures: Bool

    mutating func emit(_ node: RegexNode) throws(RegexSyntaxError) {
        guard program.count < RegexEmitter.maxProgram else { throw RegexSyntaxError(message: "pattern too large once repetitions are expanded") }
        switch node {
        case .empty: break
        case .scalar(let c): program.append(.scalar(c))
        case .dot: program.append(.dot)
        case .set(let set):
            sets.append(set)
            program.append(.set(sets.count - 1))
        case .sequence(let items):
            for item in items { try emit(item) }
        case .alternation(let items):
            var jumps: [Int] = []
            for (i, item) in items.enumerated() {
                if i < items.count - 1 {
                    let split = program.count
                    program.append(.split(split + 1, 0))
                    try emit(item)
                    jumps.append(program.count)
                    program.append(.jump(0))
                    program[split] = .split(split + 1, program.count)
                } else {
                    try emit(item)
                }
            }
            for jump in jumps { program[jump] = .jump(program.count) }
        case .group(let inner, let capture):
            if let capture, keepCaptures { program.append(.save(capture * 2)) }
            try emit(inner)
            if let capture, keepCaptures { program.append(.save(capture * 2 + 1)) }
        case .repetition(let inner, let min, let max, let greedy):
            for _ in 0..<min { try emit(inner) }
            if let max {
                var exits: [Int] = []
                for _ in min..<Swift.max(min, max) {
                    let split = program.count
                    program.append(.split(0, 0))
                    exits.append(split)
                    try emit(inner)
                }
                for split in exits { program[split] = greedy ? .split(split + 1, program.count) : .split(program.count, split + 1) }
            } else {
                let loop = program.count
                program.append(.split(0, 0))
                var progress: Int?
                if inner.canMatchEmpty {
                    progress = registerCount
                    registerCount += 1
                    program.append(.save(progress!))
                }
                try emit(inner)
                if let progress { program.append(.checkProgress(progress)) }
                program.append(.jump(loop))
                program[loop] = greedy ? .split(loop + 1, program.count) : .split(program.count, loop + 1)
            }
        case .lineStart: program.append(.lineStart)
        case .lineEnd: program.append(.lineEnd)
        case .wordBoundary(let negated): program.append(.wordBoundary(negated))
        case .lookahead(let inner, let negated):
            let start = program.count
            program.append(.lookahead(end: 0, negated: negated))
            try emit(inner)
            program.append(.match)
            program[start] = .lookahead(end: program.count, negated: negated)
        case .lookbehind(let inner, let negated):
            let start = program.count
            program.append(.lookbehind(end: 0, negated: negated))
            try emit(inner)
            program.append(.atLookbehindEnd)
            program.append(.match)
            program[start] = .lookbehind(end: program.count, negated: negated)
        case .backreference(let number): program.append(.backreference(number))
        }
    }
}

// MARK: - Machine

struct RegexMachine {
    let program: [Instruction]
    let sets: [CharacterSet]
    let input: UnsafeBufferPointer<UInt8>
    var registers: [Int]
    var budget: Int
    /// Backtrack entries: pc >= 0 resumes at (pc, position); pc < 0 restores register -pc-1.
    var stack: [(pc: Int, position: Int)] = []
    /// Where each active lookbehind must end.
    var lookbehindEnds: [Int] = []

    init(program: [Instruction], sets: [CharacterSet], input: UnsafeBufferPointer<UInt8>, registers: Int, budget: Int) {
        self.program = program
        self.sets = sets
        self.input = input
        self.registers = Array(repeating: -1, count: registers)
        self.budget = budget
        // A greedy loop leaves one backtrack entry per scalar it takes: sized for a short string up
        // front, the stack is allocated once instead of regrown several times per search.
        stack.reserveCapacity(Swift.min(input.count, 256) + 16)
    }

    @inline(__always)
    static func scalarLength(_ lead: UInt8) -> Int {
        if lead < 0x80 { return 1 }
        if lead < 0xE0 { return 2 }
        if lead < 0xF0 { return 3 }
        return 4
    }

    @inline(__always)
    func decode(_ position: Int) -> (UInt32, Int) {
        let lead = input[position]
        if lead < 0x80 { return (UInt32(lead), 1) }
        let length = RegexMachine.scalarLength(lead)
        guard position + length <= input.count else { return (0xFFFD, 1) }
        var value = UInt32(lead) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
        for i in 1..<length { value = value << 6 | UInt32(input[position + i] & 0x3F) }
        return (value, length)
    }

    func isWord(before position: Int) -> Bool {
        guard position > 0 else { return false }
        return ScalarPredicate.word.test(UInt32(input[position - 1]))
    }

    func isWord(at position: Int) -> Bool {
        guard position < input.count else { return false }
        return ScalarPredicate.word.test(UInt32(input[position]))
    }

    /// Runs the program from `pc` at `start`: true on a match, nil when the budget is spent.
    mutating func run(from start: Int, pc startPC: Int) -> Bool? {
        let base = stack.count
        var pc = startPC
        var position = start
        while true {
            budget -= 1
            if budget < 0 { return nil }
            var advance = true
            switch program[pc] {
            case .scalar(let expected):
                if position < input.count {
                    let (c, length) = decode(position)
                    if c == expected {
                        position += length
                        pc += 1
                        advance = false
                    }
                }
            case .dot:
                if position < input.count {
                    let (c, length) = decode(position)
                    if c != 0x0A && c != 0x0D && c != 0x2028 && c != 0x2029 {
                        position += length
                        pc += 1
                        advance = false
                    }
                }
            case .set(let index):
                if position < input.count {
                    let (c, length) = decode(position)
                    if sets[index].contains(c) {
                        position += length
                        pc += 1
                        advance = false
                    }
                }
            case .split(let first, let second):
                stack.append((second, position))
                pc = first
                advance = false
            case .jump(let target):
                pc = target
                advance = false
            case .save(let register):
                stack.append((-register - 1, registers[register]))
                registers[register] = position
                pc += 1
                advance = false
            case .checkProgress(let register):
                if registers[register] != position {
                    pc += 1
                    advance = false
                }
            case .lineStart:
                if position == 0 {
                    pc += 1
                    advance = false
                }
            case .lineEnd:
                if position == input.count {
                    pc += 1
                    advance = false
                }
            case .wordBoundary(let negated):
                if (isWord(before: position) != isWord(at: position)) != negated {
                    pc += 1
                    advance = false
                }
            case .lookahead(let end, let negated):
                let saved = registers
                guard let matched = run(from: position, pc: pc + 1) else { return nil }
                if negated { registers = saved }
                if matched != negated {
                    pc = end
                    advance = false
                }
            case .lookbehind(let end, let negated):
                // Try every start at or before here; the body must end exactly here.
                let saved = registers
                lookbehindEnds.append(position)
                var matched = false
                var candidate = position
                while true {
                    guard let found = run(from: candidate, pc: pc + 1) else { return nil }
                    if found {
                        matched = true
                        break
                    }
                    if candidate == 0 { break }
                    candidate -= 1
                    while candidate > 0 && input[candidate] & 0xC0 == 0x80 { candidate -= 1 }
                }
                lookbehindEnds.removeLast()
                if negated || !matched { registers = saved }
                if matched != negated {
                    pc = end
                    advance = false
                }
            case .atLookbehindEnd:
                if position == lookbehindEnds.last {
                    pc += 1
                    advance = false
                }
            case .backreference(let number):
                let from = registers[number * 2]
                let to = registers[number * 2 + 1]
                if from < 0 || to < from {
                    pc += 1
                    advance = false
                } else {
                    let length = to - from
                    if position + length <= input.count,
                       (0..<length).allSatisfy({ input[from + $0] == input[position + $0] }) {
                        position += length
                        pc += 1
                        advance = false
                    }
                }
            case .match:
                stack.removeSubrange(base...)
                return true
            }
            if !advance { continue }
            // Backtrack: undo register writes until a pending branch.
            var resumed = false
            while stack.count > base {
                let entry = stack.removeLast()
                if entry.pc < 0 {
                    registers[-entry.pc - 1] = entry.position
                } else {
                    pc = entry.pc
                    position = entry.position
                    resumed = true
                    break
                }
            }
            if !resumed { return false }
        }
    }
}
