// The DFA fast path of ECMARegex.search.
//
// Why: the backtracking machine spends a few hundred steps on a typical path pattern, while the
// question asked of it, "is there a match anywhere", is answered by one table lookup per byte once
// the pattern is a finite automaton. Patterns are automata exactly when they use neither
// backreferences, lookaround nor \b \B; `^` and `$` are assertions on the input's ends (no `m` flag
// exists in JSON Schema), so they become edges an input position either allows or not.
//
// The alphabet is ASCII only: a string with a byte >= 0x80 goes to the machine, so classes with
// Unicode predicates are only ever evaluated here on ASCII, and a scalar beyond ASCII in a pattern
// is an edge no byte takes. Greedy and lazy quantifiers are the same automaton, since only the
// existence of a match is asked; ECMA-262's cut of empty loop iterations changes which match is
// found, never whether one exists. The whole DFA is built when the regex is compiled, within a
// bound on its states, so a search never mutates anything and is linear: it never runs out of
// budget.

extension LeadByteSet {
    /// The ASCII members of a pattern node that consumes one scalar: the bytes one NFA edge
    /// consumes. nil for any other node.
    init?(asciiOf atom: RegexNode) {
        self.init()
        switch atom {
        case .scalar(let c):
            if c < 128 { insert(UInt8(truncatingIfNeeded: c)) }
        case .dot:
            // Mirrors the machine: `.` is anything but a line terminator (U+2028/9 are not ASCII).
            for byte in UInt8(0)..<128 where byte != 0x0A && byte != 0x0D { insert(byte) }
        case .set(let set):
            for byte in UInt8(0)..<128 where set.contains(UInt32(byte)) { insert(byte) }
        default:
            return nil
        }
    }
}

/// A Thompson NFA of a pattern tree over ASCII: one start state, one accepting state, and edges
/// that consume a byte, consume nothing, or hold only at the input's start or end.
struct RegexNFA {
    /// Where an edge leads and what it takes: nothing, an input end (no byte), or one byte.
    enum Edge {
        case epsilon(Int)
        case atStart(Int)
        case atEnd(Int)
        case consume(LeadByteSet, Int)
    }

    /// Why a tree has no NFA here.
    enum Ineligible: Error {
        case unsupportedNode
        case tooLarge
    }

    /// Counted repetitions are expanded, so the state count, not the pattern length, is bounded.
    static let maxStates = 512
    /// Nodes visited while building: `(?:){1000000}` adds no state but must not loop a million times.
    static let maxVisits = 8 * maxStates

    private(set) var edges: [[Edge]] = []
    private(set) var start = 0
    private(set) var accept = 0
    private var visits = 0

    init(_ tree: RegexNode) throws(Ineligible) {
        start = try newState()
        let end = try add(tree, from: start)
        accept = end
    }

    private mutating func newState() throws(Ineligible) -> Int {
        guard edges.count < RegexNFA.maxStates else { throw .tooLarge }
        edges.append([])
        return edges.count - 1
    }

    /// Adds `node` as a path leaving `from`; returns the state where that path ends.
    private mutating func add(_ node: RegexNode, from: Int) throws(Ineligible) -> Int {
        visits += 1
        guard visits <= RegexNFA.maxVisits else { throw .tooLarge }
        switch node {
        case .empty:
            return from
        case .scalar, .dot, .set:
            let to = try newState()
            if let set = LeadByteSet(asciiOf: node), !set.isEmpty { edges[from].append(.consume(set, to)) }
            return to
        case .sequence(let items):
            var at = from
            for item in items { at = try add(item, from: at) }
            return at
        case .alternation(let items):
            let end = try newState()
            for item in items {
                let last = try add(item, from: from)
                edges[last].append(.epsilon(end))
            }
            return end
        case .group(let inner, _):
            return try add(inner, from: from)
        case .repetition(let inner, let min, let max, _):
            return try addRepetition(inner, min: min, max: max, from: from)
        case .lineStart:
            let to = try newState()
            edges[from].append(.atStart(to))
            return to
        case .lineEnd:
            let to = try newState()
            edges[from].append(.atEnd(to))
            return to
        case .wordBoundary, .lookahead, .lookbehind, .backreference:
            throw .unsupportedNode
        }
    }

    private mutating func addRepetition(_ inner: RegexNode, min: Int, max: Int?, from: Int) throws(Ineligible) -> Int {
        var at = from
        for _ in 0..<min { at = try add(inner, from: at) }
        guard let max else {
            // The loop state is entered once and returned to after each iteration; leaving it is
            // the way on. It is fresh, so no edge of what precedes the loop can repeat.
            let loop = try newState()
            edges[at].append(.epsilon(loop))
            let last = try add(inner, from: loop)
            edges[last].append(.epsilon(loop))
            return loop
        }
        guard max > min else { return at }
        let end = try newState()
        for _ in min..<max {
            edges[at].append(.epsilon(end))
            at = try add(inner, from: at)
        }
        edges[at].append(.epsilon(end))
        return end
    }
}

/// A set of NFA states, as bits.
private struct StateSet: Hashable {
    var words: [UInt64]

    init(capacity: Int) { words = Array(repeating: 0, count: (capacity + 63) / 64) }

    func contains(_ state: Int) -> Bool { words[state >> 6] & (1 << UInt64(state & 63)) != 0 }

    /// Inserts `state`; false if it was already in.
    mutating func insert(_ state: Int) -> Bool {
        let bit: UInt64 = 1 << UInt64(state & 63)
        if words[state >> 6] & bit != 0 { return false }
        words[state >> 6] |= bit
        return true
    }

    func forEach(_ body: (Int) -> Void) {
        for (index, word) in words.enumerated() {
            var bits = word
            while bits != 0 {
                body(index << 6 | bits.trailingZeroBitCount)
                bits &= bits - 1
            }
        }
    }
}

/// The deterministic automaton of an unanchored search over ASCII input: state 0 is the input's
/// start, every other state also holds the NFA start, i.e. a match may begin at any position.
/// Built whole at init; immutable afterwards.
struct RegexDFA {
    /// 256 states keep a row offset in 16 bits and the table within 64 KiB even with 128 byte
    /// classes; a pattern whose DFA needs more (e.g. `a[ab]{10}`, which remembers which of the last
    /// ten bytes were 'a') stays on the machine.
    static let maxStates = 256

    private static let acceptsNow: UInt8 = 1
    private static let acceptsAtEnd: UInt8 = 2
    /// No input leads to a match from here: a search may stop.
    private static let dead: UInt8 = 4

    /// Bytes no NFA edge tells apart share a class: the table has a column per class, not per byte.
    private let classOf: [UInt8]
    private let classCount: Int
    /// A state is the offset of its row, `index * classCount`, so that a step is one load and one
    /// add: `next[row + class]` is the next state's row.
    private let next: [UInt16]
    /// The flags of each state, at its row's offset (other entries unused).
    private let flagsAtRow: [UInt8]

    let stateCount: Int

    /// nil when the tree has no NFA here or its DFA needs more than `maxStates` states.
    init?(_ tree: RegexNode) {
        guard let nfa = try? RegexNFA(tree) else { return nil }
        let (classOf, representatives) = RegexDFA.byteClasses(nfa)
        guard let (sets, table) = RegexDFA.subsetConstruction(nfa, representatives: representatives) else { return nil }
        self.classOf = classOf
        classCount = representatives.count
        stateCount = sets.count
        next = table.map { UInt16($0) * UInt16(representatives.count) }
        let flags = RegexDFA.flags(nfa, sets: sets, table: table, classCount: representatives.count)
        var flagsAtRow = [UInt8](repeating: 0, count: table.count)
        for (state, flag) in flags.enumerated() { flagsAtRow[state * representatives.count] = flag }
        self.flagsAtRow = flagsAtRow
    }

    /// Partitions ASCII so that two bytes in one class are taken by exactly the same edges.
    private static func byteClasses(_ nfa: RegexNFA) -> (classOf: [UInt8], representatives: [UInt8]) {
        var distinct = Set<LeadByteSet>()
        for list in nfa.edges {
            for case .consume(let set, _) in list { distinct.insert(set) }
        }
        var classOf = [Int](repeating: 0, count: 128)
        var count = 1
        for set in distinct {
            // Split every class by membership in `set`: (old class, member) names the new one.
            var renamed: [Int: Int] = [:]
            for byte in 0..<128 {
                let key = classOf[byte] * 2 + (set.contains(UInt8(byte)) ? 1 : 0)
                if let name = renamed[key] {
                    classOf[byte] = name
                } else {
                    renamed[key] = renamed.count
                    classOf[byte] = renamed.count - 1
                }
            }
            count = renamed.count
        }
        var representatives = [UInt8](repeating: 0, count: count)
        for byte in (0..<128).reversed() { representatives[classOf[byte]] = UInt8(byte) }
        return (classOf.map { UInt8(truncatingIfNeeded: $0) }, representatives)
    }

    /// `states` and everything reachable from them without consuming: epsilon edges always,
    /// start edges only at the input's start, end edges only at its end.
    private static func closure(_ nfa: RegexNFA, _ states: StateSet, atStart: Bool, atEnd: Bool) -> StateSet {
        var result = states
        var pending: [Int] = []
        states.forEach { pending.append($0) }
        while let state = pending.popLast() {
            for edge in nfa.edges[state] {
                let target: Int
                switch edge {
                case .epsilon(let to): target = to
                case .atStart(let to) where atStart: target = to
                case .atEnd(let to) where atEnd: target = to
                default: continue
                }
                if result.insert(target) { pending.append(target) }
            }
        }
        return result
    }

    private static func single(_ nfa: RegexNFA, _ state: Int) -> StateSet {
        var set = StateSet(capacity: nfa.edges.count)
        _ = set.insert(state)
        return set
    }

    /// The NFA state sets of the DFA's states and its transition table; nil past `maxStates`.
    /// At most `maxStates` × 128 transitions, each over at most `RegexNFA.maxStates` NFA states:
    /// a bounded cost (milliseconds at worst), paid once when the pattern is compiled.
    private static func subsetConstruction(_ nfa: RegexNFA, representatives: [UInt8]) -> (sets: [StateSet], table: [UInt8])? {
        let initial = closure(nfa, single(nfa, nfa.start), atStart: true, atEnd: false)
        // State 0 stays out of the index: start edges hold only at position 0, so an equal set
        // reached later is a different state (at the end of input it may accept where 0 does not).
        var sets = [initial]
        var index: [StateSet: Int] = [:]
        var table: [UInt8] = []
        var current = 0
        while current < sets.count {
            for byte in representatives {
                var moved = single(nfa, nfa.start)
                sets[current].forEach { state in
                    for case .consume(let set, let to) in nfa.edges[state] where set.contains(byte) { _ = moved.insert(to) }
                }
                let next = closure(nfa, moved, atStart: false, atEnd: false)
                if let known = index[next] {
                    table.append(UInt8(truncatingIfNeeded: known))
                    continue
                }
                guard sets.count < maxStates else { return nil }
                index[next] = sets.count
                table.append(UInt8(truncatingIfNeeded: sets.count))
                sets.append(next)
            }
            current += 1
        }
        return (sets, table)
    }

    private static func flags(_ nfa: RegexNFA, sets: [StateSet], table: [UInt8], classCount: Int) -> [UInt8] {
        var flags = [UInt8](repeating: 0, count: sets.count)
        for (state, set) in sets.enumerated() {
            if set.contains(nfa.accept) { flags[state] |= acceptsNow }
            let atEnd = closure(nfa, set, atStart: state == 0, atEnd: true)
            if atEnd.contains(nfa.accept) { flags[state] |= acceptsAtEnd }
        }
        // A state is live if it accepts or leads to a live state: grow the live set to a fixpoint.
        var live = flags.map { $0 != 0 }
        var changed = true
        while changed {
            changed = false
            for state in 0..<sets.count where !live[state] {
                let row = table[(state * classCount)..<(state * classCount + classCount)]
                if row.contains(where: { live[Int($0)] }) {
                    live[state] = true
                    changed = true
                }
            }
        }
        for state in 0..<sets.count where !live[state] { flags[state] |= dead }
        return flags
    }

    /// Whether the pattern matches anywhere in `bytes`; nil when they are not all ASCII (the
    /// machine must answer then).
    func search(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool? {
        next.withUnsafeBufferPointer { next in
            classOf.withUnsafeBufferPointer { classOf in
                flagsAtRow.withUnsafeBufferPointer { flags in
                    var row = 0
                    var position = 0
                    while true {
                        let flag = flags[row]
                        if flag != 0 {
                            if flag & RegexDFA.acceptsNow != 0 { return true }
                            // Stopping early is only right if no byte beyond ASCII follows: the
                            // DFA never saw what such a byte could have continued.
                            if flag & RegexDFA.dead != 0 { return RegexDFA.isASCII(bytes, from: position) ? false : nil }
                        }
                        guard position < bytes.count else { return flag & RegexDFA.acceptsAtEnd != 0 }
                        let byte = bytes[position]
                        if byte >= 0x80 { return nil }
                        row = Int(next[row &+ Int(classOf[Int(byte)])])
                        position += 1
                    }
                }
            }
        }
    }

    private static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Bool {
        var position = start
        while position < bytes.count {
            if bytes[position] >= 0x80 { return false }
            position += 1
        }
        return true
    }
}
