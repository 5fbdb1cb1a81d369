// The strict I-JSON parser.
//
// RFC 8259 grammar exactly, plus the I-JSON profile (RFC 7493): the input must be valid UTF-8,
// `\u` escapes may not leave a lone surrogate, object keys must be unique after unescaping, and
// nothing but whitespace may follow the value. Every helper's bytes are hostile, so each limit
// is checked before the memory it guards is allocated, and the parser never recurses: nesting
// lives on an explicit stack, so a 100 000-deep input is a depth error, not a stack overflow.
//
// Speed matters (every broker message goes through here), hence the byte loop over a raw
// pointer, strings sliced straight out of the input when they hold no escape, and objects built
// as ordered member arrays whose duplicate check is a short linear scan (a hash set takes over
// only for large objects, so a hostile 100 000-member object stays linear).

/// Bounds on what one parse may build. Exceeding any of them is a `JSONParseError` naming the
/// limit and the byte offset where it was crossed.
public struct JSONLimits: Sendable, Hashable {
    /// Deepest nesting of arrays and objects; a top-level `[]` has depth 1. Default 64.
    /// Values above `JSONLimits.depthCeiling` are treated as the ceiling.
    public var maxDepth: Int
    /// Longest string, in UTF-8 bytes after unescaping (keys included). Default 1 MiB.
    public var maxStringBytes: Int
    /// Most elements in one array or members in one object. Default 100 000.
    public var maxContainerCount: Int
    /// Most values in the whole document (containers and scalars; keys not counted). Default 1 000 000.
    public var maxNodes: Int
    /// Longest number literal, in bytes (sign, digits, point and exponent). Default 64.
    public var maxNumberLength: Int

    /// Creates limits; every argument defaults to the value documented on its property.
    public init(
        maxDepth: Int = 64, maxStringBytes: Int = 1 << 20, maxContainerCount: Int = 100_000,
        maxNodes: Int = 1_000_000, maxNumberLength: Int = 64
    ) {
        self.maxDepth = maxDepth
        self.maxStringBytes = maxStringBytes
        self.maxContainerCount = maxContainerCount
        self.maxNodes = maxNodes
        self.maxNumberLength = maxNumberLength
    }

    /// The deepest nesting any parse allows, whatever `maxDepth` says. The parser itself does
    /// not recurse, but destroying, comparing, hashing and serializing a `JSONValue` do, once per
    /// level; 1024 levels keep those well inside even a small thread stack.
    public static let depthCeiling = 1024

    /// The limits of wire protocol v1: depth 64, strings 1 MiB, 100 000 members per container,
    /// 1 000 000 values, numbers 64 bytes.
    public static let `default` = JSONLimits()
}

/// Why a parse failed, and where.
public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The class of failure.
    public enum Kind: Sendable, Hashable, CustomStringConvertible {
        /// The bytes break the RFC 8259 grammar.
        case syntax
        /// A string holds bytes that are not valid UTF-8.
        case invalidUTF8
        /// A `\u` escape encodes half a surrogate pair.
        case loneSurrogate
        /// An object names the same key twice (compared after unescaping).
        case duplicateKey
        /// Something other than whitespace follows the value.
        case trailingData
        /// `JSONLimits.maxDepth` was exceeded.
        case depthLimit
        /// `JSONLimits.maxStringBytes` was exceeded.
        case stringLimit
        /// `JSONLimits.maxContainerCount` was exceeded.
        case containerLimit
        /// `JSONLimits.maxNodes` was exceeded.
        case nodeLimit
        /// `JSONLimits.maxNumberLength` was exceeded.
        case numberLimit
        /// The input ended inside a value.
        case unexpectedEnd

        public var description: String {
            switch self {
            case .syntax: return "syntax"
            case .invalidUTF8: return "invalid UTF-8"
            case .loneSurrogate: return "lone surrogate"
            case .duplicateKey: return "duplicate key"
            case .trailingData: return "trailing data"
            case .depthLimit: return "depth limit"
            case .stringLimit: return "string limit"
            case .containerLimit: return "container limit"
            case .nodeLimit: return "node limit"
            case .numberLimit: return "number limit"
            case .unexpectedEnd: return "unexpected end"
            }
        }
    }

    /// The class of failure.
    public let kind: Kind
    /// Byte offset into the input where the failure was detected.
    public let offset: Int
    /// A human-readable explanation, e.g. `duplicate key "id"`.
    public let reason: String

    /// Creates an error.
    public init(kind: Kind, offset: Int, reason: String) {
        self.kind = kind
        self.offset = offset
        self.reason = reason
    }

    /// `offset 17: duplicate key "id"`.
    public var description: String { "offset \(offset): \(reason)" }
}

/// The strict I-JSON parser. Stateless and thread-safe: every call parses one complete document
/// and either returns its value or throws the first error found, with its byte offset.
///
///     let value = try JSONParser.parse(bytes)              // JSONLimits.default
///     let small = try JSONParser.parse(bytes, limits: JSONLimits(maxStringBytes: 4096))
public enum JSONParser {
    /// Parses exactly one JSON value from UTF-8 `bytes`; any value may be at the top level.
    public static func parse(_ bytes: UnsafeRawBufferPointer, limits: JSONLimits = .default) throws(JSONParseError)
        -> JSONValue
    {
        guard let base = bytes.baseAddress, bytes.count > 0 else {
            throw JSONParseError(kind: .unexpectedEnd, offset: 0, reason: "empty input")
        }
        var parser = Parser(base: base.assumingMemoryBound(to: UInt8.self), count: bytes.count, limits: limits)
        return try parser.parseDocument()
    }

    /// Parses exactly one JSON value from UTF-8 `bytes` and reports where the value of the
    /// top-level object's member `member` lies in them (nil when the document is not an object
    /// or has no such member), so a caller can pass that value on without serializing it again.
    public static func parse(_ bytes: UnsafeRawBufferPointer, limits: JSONLimits = .default, locating member: String)
        throws(JSONParseError) -> (value: JSONValue, span: Range<Int>?)
    {
        guard let base = bytes.baseAddress, bytes.count > 0 else {
            throw JSONParseError(kind: .unexpectedEnd, offset: 0, reason: "empty input")
        }
        var parser = Parser(base: base.assumingMemoryBound(to: UInt8.self), count: bytes.count, limits: limits)
        parser.locatedKey = member
        let value = try parser.parseDocument()
        return (value, parser.located)
    }

    /// Parses the one value that begins at `start` in `bytes` (after any whitespace) and stops
    /// there: returns the value, the offset just past it, and how many values it holds (itself
    /// included, as `maxNodes` counts them). `enclosingDepth` containers are taken to be open
    /// around it and count against `limits.maxDepth`. For a caller that reads the document
    /// around the value itself; error offsets are offsets into `bytes`.
    public static func parseValue(in bytes: UnsafeRawBufferPointer, at start: Int, enclosingDepth: Int,
                                  limits: JSONLimits) throws(JSONParseError) -> (value: JSONValue, end: Int, nodes: Int)
    {
        guard let base = bytes.baseAddress, start >= 0, start < bytes.count else {
            throw JSONParseError(kind: .unexpectedEnd, offset: max(start, 0), reason: "unexpected end of input, expected a value")
        }
        var parser = Parser(base: base.assumingMemoryBound(to: UInt8.self), count: bytes.count, limits: limits,
                            enclosingDepth: enclosingDepth)
        parser.index = start
        let value = try parser.parseValues()
        return (value, parser.index, parser.nodes)
    }

    /// Parses exactly one JSON value from UTF-8 `bytes`.
    public static func parse(_ bytes: [UInt8], limits: JSONLimits = .default) throws(JSONParseError) -> JSONValue {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(JSONParseError) -> JSONValue in try parse(raw, limits: limits) }
        }
        return try result.get()
    }

    /// Parses exactly one JSON value from the UTF-8 of `text`.
    public static func parse(_ text: String, limits: JSONLimits = .default) throws(JSONParseError) -> JSONValue {
        var text = text
        let result = text.withUTF8 { utf8 in
            Result { () throws(JSONParseError) -> JSONValue in try parse(UnsafeRawBufferPointer(utf8), limits: limits) }
        }
        return try result.get()
    }
}

// MARK: - The parser proper

/// ASCII codes used by the grammar.
private enum Byte {
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let slash = UInt8(ascii: "/")
    static let comma = UInt8(ascii: ",")
    static let colon = UInt8(ascii: ":")
    static let minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let dot = UInt8(ascii: ".")
    static let zero = UInt8(ascii: "0")
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let lowerE = UInt8(ascii: "e")
    static let space: UInt8 = 0x20
    static let tab: UInt8 = 0x09
    static let newline: UInt8 = 0x0A
    static let carriageReturn: UInt8 = 0x0D
}

/// One open array or object. The innermost lives in `Parser.current`; its ancestors wait in
/// `Parser.outer` and `Parser.ancestors`. Each builds its own result array, so closing one moves it out, copying nothing.
/// An object's member is appended when its key is read, with a placeholder value that the
/// member's value then replaces.
private struct Frame {
    var isObject: Bool
    /// The members so far, for an object.
    var members: [(key: String, value: JSONValue)] = []
    /// The elements so far, for an array.
    var elements: [JSONValue] = []
    /// Every key so far, once the object has outgrown a linear duplicate scan.
    var keySet: Set<ByteKey>? = nil

    init(isObject: Bool) { self.isObject = isObject }
}

/// A key compared and hashed by its UTF-8 bytes, as I-JSON requires; `String`'s own `==` would
/// merge canonically equivalent but different keys such as "é" and "e\u{301}".
private struct ByteKey: Hashable {
    let string: String

    static func == (lhs: ByteKey, rhs: ByteKey) -> Bool { sameUTF8(lhs.string, rhs.string) }

    func hash(into hasher: inout Hasher) {
        var copy = string
        copy.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// Byte-wise equality of two strings' UTF-8.
@inline(__always)
func sameUTF8(_ lhs: String, _ rhs: String) -> Bool {
    // Equal bytes imply `==`, whose fast path settles the common case of different keys;
    // only canonically equivalent strings need the byte comparison.
    guard lhs.utf8.count == rhs.utf8.count, lhs == rhs else { return false }
    var a = lhs
    var b = rhs
    return a.withUTF8 { pa in
        b.withUTF8 { pb in
            for k in 0..<pa.count where pa[k] != pb[k] { return false }
            return true
        }
    }
}

/// Objects with more members than this switch from a linear duplicate scan to a hash set.
private let linearKeyScanLimit = 16

private struct Parser {
    let base: UnsafePointer<UInt8>
    let count: Int
    let limits: JSONLimits
    var index = 0
    var nodes = 0
    /// The innermost open container; meaningful only while `depth > 0`.
    var current = Frame(isObject: false)
    /// The container around `current`, while `depth > 1`. A slot of its own, so the usual message
    /// (an envelope holding a body) needs no stack allocation.
    var outer = Frame(isObject: false)
    /// The containers around `outer`, innermost last, while `depth > 2`.
    var ancestors: [Frame] = []
    var depth = 0
    /// Unescaped bytes of the string being decoded, reused between strings.
    var scratch: [UInt8] = []
    /// The top-level member whose value's byte range is wanted (`JSONParser.parse(_:limits:locating:)`).
    var locatedKey: String? = nil
    /// Where that value lies, once parsed.
    var located: Range<Int>? = nil
    /// Where the value being parsed as a top-level member began.
    var topLevelValueStart = 0

    /// `limits.maxDepth`, capped at `JSONLimits.depthCeiling`.
    let maxDepth: Int

    init(base: UnsafePointer<UInt8>, count: Int, limits: JSONLimits, enclosingDepth: Int = 0) {
        self.base = base
        self.count = count
        self.limits = limits
        maxDepth = min(limits.maxDepth, JSONLimits.depthCeiling) - enclosingDepth
    }

    // MARK: Errors

    func fail(_ kind: JSONParseError.Kind, at offset: Int, _ reason: String) -> JSONParseError {
        JSONParseError(kind: kind, offset: offset, reason: reason)
    }

    /// The error for whatever is at `offset` when `what` was due: a syntax error, or the end of input.
    func unexpected(at offset: Int, expecting what: String) -> JSONParseError {
        guard offset < count else { return fail(.unexpectedEnd, at: offset, "unexpected end of input, expected \(what)") }
        return fail(.syntax, at: offset, "unexpected \(describe(base[offset])), expected \(what)")
    }

    // MARK: Document

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        if count >= 3, base[0] == 0xEF, base[1] == 0xBB, base[2] == 0xBF {
            throw fail(.syntax, at: 0, "byte order mark is not allowed")
        }
        let value = try parseValues()
        skipWhitespace()
        if index < count {
            throw fail(.trailingData, at: index, "unexpected \(describe(base[index])) after the value")
        }
        return value
    }

    /// Parses one value, iteratively: containers push a frame instead of recursing.
    mutating func parseValues() throws(JSONParseError) -> JSONValue {
        parseValue: while true {
            skipWhitespace()
            guard index < count else { throw unexpected(at: index, expecting: "a value") }
            if depth == 1 { topLevelValueStart = index }
            nodes += 1
            if nodes > limits.maxNodes {
                throw fail(.nodeLimit, at: index, "more than \(limits.maxNodes) values (maxNodes)")
            }
            var value: JSONValue
            switch base[index] {
            case Byte.quote:
                value = .string(try parseString())
            case Byte.minus, Byte.zero...(Byte.zero + 9):
                value = .number(try parseNumber())
            case Byte.openBrace:
                try openContainer(isObject: true)
                skipWhitespace()
                if index < count, base[index] == Byte.closeBrace {
                    index += 1
                    _ = closeContainer()
                    value = .object(JSONObject())
                } else {
                    try parseKey()
                    continue parseValue
                }
            case Byte.openBracket:
                try openContainer(isObject: false)
                skipWhitespace()
                if index < count, base[index] == Byte.closeBracket {
                    index += 1
                    _ = closeContainer()
                    value = .array([])
                } else {
                    try checkContainerCount(0)
                    continue parseValue
                }
            case UInt8(ascii: "t"):
                try parseLiteral("true")
                value = .bool(true)
            case UInt8(ascii: "f"):
                try parseLiteral("false")
                value = .bool(false)
            case UInt8(ascii: "n"):
                try parseLiteral("null")
                value = .null
            default:
                throw unexpected(at: index, expecting: "a value")
            }

            // The value is complete: hand it to the enclosing container, closing as many as end here.
            while depth > 0 {
                let isObject = current.isObject
                if isObject {
                    if depth == 1, let locatedKey, sameUTF8(current.members[current.members.count - 1].key, locatedKey) {
                        located = topLevelValueStart ..< index
                    }
                    current.members[current.members.count - 1].value = consume value
                } else {
                    if current.elements.isEmpty { current.elements.reserveCapacity(4) }
                    current.elements.append(consume value)
                }
                skipWhitespace()
                guard index < count else {
                    throw unexpected(at: index, expecting: isObject ? "',' or '}'" : "',' or ']'")
                }
                let byte = base[index]
                if byte == Byte.comma {
                    index += 1
                    skipWhitespace()
                    if isObject {
                        try parseKey()
                    } else {
                        if index < count, base[index] == Byte.closeBracket {
                            throw fail(.syntax, at: index, "trailing comma before ']'")
                        }
                        try checkContainerCount(current.elements.count)
                    }
                    continue parseValue
                }
                if isObject, byte == Byte.closeBrace {
                    index += 1
                    value = .object(JSONObject(uniqueMembers: closeContainer().members))
                } else if !isObject, byte == Byte.closeBracket {
                    index += 1
                    value = .array(closeContainer().elements)
                } else {
                    throw unexpected(at: index, expecting: isObject ? "',' or '}'" : "',' or ']'")
                }
            }
            return value
        }
    }

    // MARK: Containers

    /// Opens a frame for the `[` or `{` at `index` and steps over it.
    mutating func openContainer(isObject: Bool) throws(JSONParseError) {
        if depth >= maxDepth {
            throw fail(.depthLimit, at: index, "nesting deeper than \(maxDepth) (maxDepth)")
        }
        // Frames are swapped along rather than copied, so their arrays stay uniquely owned.
        var displaced = Frame(isObject: isObject)
        swap(&displaced, &current)
        if depth > 0 {
            swap(&displaced, &outer)
            if depth > 1 {
                if ancestors.isEmpty { ancestors.reserveCapacity(8) }
                ancestors.append(displaced)
            }
        }
        depth += 1
        index += 1
    }

    /// Closes the innermost container, returning its frame and reinstating its parent.
    mutating func closeContainer() -> Frame {
        var closed = Frame(isObject: false)
        swap(&closed, &current)
        depth -= 1
        if depth > 0 {
            swap(&current, &outer)
            if depth > 1 { outer = ancestors.removeLast() }
        }
        return closed
    }

    /// Fails if a container already holding `entries` may not take another.
    @inline(__always)
    func checkContainerCount(_ entries: Int) throws(JSONParseError) {
        if entries >= limits.maxContainerCount {
            throw fail(
                .containerLimit, at: index,
                "more than \(limits.maxContainerCount) entries in one container (maxContainerCount)")
        }
    }

    /// Parses `"key"` and the `:` after it, for the innermost object, rejecting a duplicate.
    mutating func parseKey() throws(JSONParseError) {
        guard index < count, base[index] == Byte.quote else {
            if index < count, base[index] == Byte.closeBrace, !current.members.isEmpty {
                throw fail(.syntax, at: index, "trailing comma before '}'")
            }
            throw unexpected(at: index, expecting: "a string key")
        }
        let existing = current.members.count
        try checkContainerCount(existing)
        let keyOffset = index
        let key = try parseString()
        if existing < linearKeyScanLimit {
            for member in current.members where sameUTF8(member.key, key) {
                throw duplicate(key, at: keyOffset)
            }
        } else {
            if current.keySet == nil {
                var set = Set<ByteKey>(minimumCapacity: 4 * linearKeyScanLimit)
                for member in current.members { set.insert(ByteKey(string: member.key)) }
                current.keySet = set
            }
            if current.keySet?.insert(ByteKey(string: key)).inserted == false {
                throw duplicate(key, at: keyOffset)
            }
        }
        if existing == 0 { current.members.reserveCapacity(4) }
        current.members.append((key: key, value: .null))
        skipWhitespace()
        guard index < count, base[index] == Byte.colon else { throw unexpected(at: index, expecting: "':'") }
        index += 1
    }

    func duplicate(_ key: String, at offset: Int) -> JSONParseError {
        var shown = key
        if shown.utf8.count > 64 { shown = String(String.UnicodeScalarView(shown.unicodeScalars.prefix(60))) + "..." }
        return fail(.duplicateKey, at: offset, "duplicate key \(JSONValue.string(shown).jsonText)")
    }

    // MARK: Scalars

    @inline(__always)
    mutating func skipWhitespace() {
        while index < count {
            let byte = base[index]
            guard byte == Byte.space || byte == Byte.newline || byte == Byte.carriageReturn || byte == Byte.tab
            else { return }
            index += 1
        }
    }

    /// Steps over `literal` (`true`, `false`, `null`) at `index`.
    mutating func parseLiteral(_ literal: StaticString) throws(JSONParseError) {
        let start = index
        let length = literal.utf8CodeUnitCount
        let expected = literal.utf8Start
        for k in 0..<length {
            guard start + k < count else {
                throw fail(.unexpectedEnd, at: start + k, "unexpected end of input in literal")
            }
            if base[start + k] != expected[k] {
                throw fail(.syntax, at: start, "invalid literal, expected \(literal)")
            }
        }
        index = start + length
    }

    /// Parses the string whose opening quote is at `index`.
    mutating func parseString() throws(JSONParseError) -> String {
        let start = index + 1
        let maxBytes = limits.maxStringBytes
        // Bytes past `stop` would make the string too long (unless the closing quote is there).
        let stop = count - start > maxBytes ? start + maxBytes : count
        var cursor = start
        while true {
            // Eight bytes at a time to the first byte that needs a look (inputs are little-endian
            // loads, so the lowest flag is the earliest byte); one at a time near the end.
            if cursor &+ 8 <= stop {
                let mask = attentionMask(UnsafeRawPointer(base + cursor).loadUnaligned(as: UInt64.self))
                if mask == 0 {
                    cursor &+= 8
                    continue
                }
                cursor &+= mask.trailingZeroBitCount &>> 3
            } else {
                guard cursor < stop else { break }
            }
            let byte = base[cursor]
            if byte == Byte.quote {
                index = cursor + 1
                return String(decoding: UnsafeBufferPointer(start: base + start, count: cursor - start), as: UTF8.self)
            }
            if byte == Byte.backslash { return try parseEscapedString(start: start, escape: cursor) }
            if byte < 0x20 { throw controlCharacter(at: cursor) }
            if byte < 0x80 {
                cursor &+= 1
            } else {
                let next = try validateUTF8(at: cursor)
                if next > stop, next - start > maxBytes { throw stringTooLong(at: cursor) }
                cursor = next
            }
        }
        if cursor < count, cursor == stop, base[cursor] == Byte.quote {
            index = cursor + 1
            return String(decoding: UnsafeBufferPointer(start: base + start, count: cursor - start), as: UTF8.self)
        }
        if cursor >= count { throw fail(.unexpectedEnd, at: count, "unterminated string") }
        throw stringTooLong(at: start + maxBytes)
    }

    func stringTooLong(at offset: Int) -> JSONParseError {
        fail(.stringLimit, at: offset, "string longer than \(limits.maxStringBytes) bytes (maxStringBytes)")
    }

    func controlCharacter(at offset: Int) -> JSONParseError {
        fail(.syntax, at: offset, "unescaped control character \(describe(base[offset])) in string")
    }

    /// The slow path: the string has an escape at `escape`; decode it into `scratch`.
    mutating func parseEscapedString(start: Int, escape: Int) throws(JSONParseError) -> String {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(start: base + start, count: escape - start))
        let maxBytes = limits.maxStringBytes
        var cursor = escape
        while true {
            guard cursor < count else { throw fail(.unexpectedEnd, at: count, "unterminated string") }
            let byte = base[cursor]
            let characterStart = cursor
            if byte == Byte.quote {
                index = cursor + 1
                return String(decoding: scratch, as: UTF8.self)
            }
            if byte == Byte.backslash {
                cursor = try decodeEscape(at: cursor)
            } else if byte < 0x20 {
                throw controlCharacter(at: cursor)
            } else if byte < 0x80 {
                scratch.append(byte)
                cursor += 1
            } else {
                let next = try validateUTF8(at: cursor)
                scratch.append(contentsOf: UnsafeBufferPointer(start: base + cursor, count: next - cursor))
                cursor = next
            }
            if scratch.count > maxBytes { throw stringTooLong(at: characterStart) }
        }
    }

    /// Decodes the escape whose backslash is at `offset` into `scratch`; returns the next offset.
    mutating func decodeEscape(at offset: Int) throws(JSONParseError) -> Int {
        guard offset + 1 < count else { throw fail(.unexpectedEnd, at: count, "unterminated escape") }
        let decoded: UInt8
        switch base[offset + 1] {
        case Byte.quote: decoded = Byte.quote
        case Byte.backslash: decoded = Byte.backslash
        case Byte.slash: decoded = Byte.slash
        case UInt8(ascii: "b"): decoded = 0x08
        case UInt8(ascii: "f"): decoded = 0x0C
        case UInt8(ascii: "n"): decoded = 0x0A
        case UInt8(ascii: "r"): decoded = 0x0D
        case UInt8(ascii: "t"): decoded = 0x09
        case UInt8(ascii: "u"): return try decodeUnicodeEscape(at: offset)
        default:
            throw fail(.syntax, at: offset, "invalid escape \\\(describeRaw(base[offset + 1]))")
        }
        scratch.append(decoded)
        return offset + 2
    }

    /// Reads the four hex digits of the `\u` escape at `offset`.
    func hexQuad(at offset: Int) throws(JSONParseError) -> UInt32 {
        var value: UInt32 = 0
        for k in offset + 2..<offset + 6 {
            guard k < count else { throw fail(.unexpectedEnd, at: count, "unterminated \\u escape") }
            let byte = base[k]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw fail(.syntax, at: k, "invalid hex digit \(describe(byte)) in \\u escape")
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    /// Decodes a `\uXXXX` escape (and its low half, for a surrogate pair) into `scratch`.
    mutating func decodeUnicodeEscape(at offset: Int) throws(JSONParseError) -> Int {
        let unit = try hexQuad(at: offset)
        var scalar = unit
        var next = offset + 6
        if unit & 0xFC00 == 0xDC00 {
            throw fail(.loneSurrogate, at: offset, "lone low surrogate \\u\(hex4(unit))")
        }
        if unit & 0xFC00 == 0xD800 {
            guard next + 1 < count, base[next] == Byte.backslash, base[next + 1] == UInt8(ascii: "u") else {
                if next >= count || (next + 1 >= count && base[next] == Byte.backslash) {
                    throw fail(.unexpectedEnd, at: count, "unterminated surrogate pair")
                }
                throw fail(.loneSurrogate, at: offset, "high surrogate \\u\(hex4(unit)) not followed by a low surrogate")
            }
            let low = try hexQuad(at: next)
            guard low & 0xFC00 == 0xDC00 else {
                throw fail(.loneSurrogate, at: offset, "high surrogate \\u\(hex4(unit)) not followed by a low surrogate")
            }
            scalar = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            next += 6
        }
        appendUTF8(scalar)
        return next
    }

    mutating func appendUTF8(_ scalar: UInt32) {
        switch scalar {
        case 0..<0x80:
            scratch.append(UInt8(scalar))
        case 0x80..<0x800:
            scratch.append(UInt8(0xC0 | scalar >> 6))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            scratch.append(UInt8(0xE0 | scalar >> 12))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        default:
            scratch.append(UInt8(0xF0 | scalar >> 18))
            scratch.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        }
    }

    /// Validates the multi-byte UTF-8 sequence starting at `offset` (lead byte >= 0x80) and
    /// returns the offset after it. Rejects stray continuation bytes, overlong forms, UTF-16
    /// surrogates, code points above U+10FFFF and truncated sequences (RFC 3629).
    func validateUTF8(at offset: Int) throws(JSONParseError) -> Int {
        let lead = base[offset]
        let length: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; high = 0x9F
        case 0xF0: length = 4; low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; high = 0x8F
        case 0x80...0xBF:
            throw fail(.invalidUTF8, at: offset, "invalid UTF-8: unexpected continuation \(describe(lead))")
        case 0xC0, 0xC1:
            throw fail(.invalidUTF8, at: offset, "invalid UTF-8: overlong encoding \(describe(lead))")
        default:
            throw fail(.invalidUTF8, at: offset, "invalid UTF-8: \(describe(lead)) never appears in UTF-8")
        }
        guard offset + length <= count else {
            throw fail(.invalidUTF8, at: offset, "invalid UTF-8: truncated sequence")
        }
        let second = base[offset + 1]
        guard second >= low, second <= high else {
            if second & 0xC0 != 0x80 {
                throw fail(.invalidUTF8, at: offset, "invalid UTF-8: truncated sequence")
            }
            if lead == 0xED {
                throw fail(.invalidUTF8, at: offset, "invalid UTF-8: encoded UTF-16 surrogate")
            }
            if lead == 0xF4 {
                throw fail(.invalidUTF8, at: offset, "invalid UTF-8: code point above U+10FFFF")
            }
            throw fail(.invalidUTF8, at: offset, "invalid UTF-8: overlong encoding")
        }
        for k in 2..<length where base[offset + k] & 0xC0 != 0x80 {
            throw fail(.invalidUTF8, at: offset, "invalid UTF-8: truncated sequence")
        }
        return offset + length
    }

    /// Parses the number at `index` (RFC 8259: `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`).
    mutating func parseNumber() throws(JSONParseError) -> JSONNumber {
        let start = index
        var cursor = start
        let negative = base[cursor] == Byte.minus
        if negative { cursor += 1 }
        guard cursor < count else { throw fail(.unexpectedEnd, at: count, "unexpected end of input in number") }
        let integerStart = cursor
        var magnitude: UInt64 = 0
        let first = base[cursor] &- Byte.zero
        if first == 0 {
            cursor += 1
            if cursor < count, base[cursor] &- Byte.zero < 10 {
                throw fail(.syntax, at: start, "leading zero in number")
            }
        } else if first < 10 {
            while cursor < count {
                let digit = base[cursor] &- Byte.zero
                guard digit < 10 else { break }
                magnitude = magnitude &* 10 &+ UInt64(digit)
                cursor += 1
            }
        } else {
            throw unexpected(at: cursor, expecting: "a digit")
        }
        let integerDigits = cursor - integerStart
        var plain = true
        if cursor < count, base[cursor] == Byte.dot {
            plain = false
            cursor = try digits(after: cursor, what: "'.'")
        }
        if cursor < count, base[cursor] | 0x20 == Byte.lowerE {
            plain = false
            var exponentSign = cursor + 1
            if exponentSign < count, base[exponentSign] == Byte.plus || base[exponentSign] == Byte.minus {
                exponentSign += 1
            }
            cursor = try digits(after: exponentSign - 1, what: "exponent")
        }
        let length = cursor - start
        if length > limits.maxNumberLength {
            throw fail(.numberLimit, at: start + limits.maxNumberLength,
                "number longer than \(limits.maxNumberLength) bytes (maxNumberLength)")
        }
        index = cursor
        // Nineteen digits stay below 2^64, so the wrapping accumulation above was exact.
        if plain, integerDigits <= 19 {
            if !negative, magnitude <= UInt64(Int64.max) { return JSONNumber(Int64(magnitude)) }
            if negative, magnitude <= UInt64(Int64.max) { return JSONNumber(-Int64(magnitude)) }
            if negative, magnitude == UInt64(Int64.max) + 1 { return JSONNumber(Int64.min) }
        }
        return JSONNumber(validatedLexeme: UnsafeRawBufferPointer(start: base + start, count: length))
    }

    /// Steps over the marker at `offset` and the one or more digits that must follow it.
    func digits(after offset: Int, what: String) throws(JSONParseError) -> Int {
        var cursor = offset + 1
        guard cursor < count else { throw fail(.unexpectedEnd, at: count, "unexpected end of input in number") }
        guard base[cursor] &- Byte.zero < 10 else {
            throw fail(.syntax, at: cursor, "expected a digit after \(what), found \(describe(base[cursor]))")
        }
        while cursor < count, base[cursor] &- Byte.zero < 10 { cursor += 1 }
        return cursor
    }
}

/// `'x'` for printable ASCII, `0xNN` otherwise.
private func describe(_ byte: UInt8) -> String {
    if byte >= 0x20, byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
    return "byte 0x\(hex2(byte))"
}

/// The character itself for printable ASCII, `0xNN` otherwise.
private func describeRaw(_ byte: UInt8) -> String {
    if byte >= 0x20, byte < 0x7F { return String(Character(Unicode.Scalar(byte))) }
    return "0x\(hex2(byte))"
}

private func hex2(_ byte: UInt8) -> String {
    let digits = Array("0123456789ABCDEF".utf8)
    return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0xF)]], as: UTF8.self)
}

private func hex4(_ unit: UInt32) -> String {
    hex2(UInt8(unit >> 8)) + hex2(UInt8(unit & 0xFF))
}
