// The fast first-failure path of `Schema.isValid`: the compiled SchemaNode graph flattened once
// more, into a plan the broker can walk on every message without reference counting.
//
// Why a second form: the general evaluator (Validator.swift) reads `[Keyword]` arrays and `Check`
// enum payloads out of mutable class fields, and Swift retains and releases every array, regex
// and child node it copies out of them: about a quarter of a validation went to reference
// counting. Here every schema is one `PlanNode` of plain integers and flags, stored contiguously
// with its lists as ranges into shared pools, all in memory the plan allocates itself and never
// changes after building. Reading a node is a load, not a copy with a retain.
//
// The plan covers the keywords messages use: type, const, enum, the number, string, array and
// object assertions, $ref, allOf, anyOf, oneOf, not, if/then/else, properties,
// patternProperties, additionalProperties, prefixItems, items. A schema with any other keyword
// (contains, propertyNames, dependent*, unevaluated*) is evaluated by the general evaluator from
// that point down, and a schema graph with a $dynamicRef anywhere is left to it entirely, since
// only the general evaluator tracks the dynamic scope. Both give the same answer; the plan only
// skips the work the answer does not need.
import Glibc
import PrivSepJSON

/// A slice of one of the plan's pools.
struct PlanRange {
    var start: Int32 = 0
    var count: Int32 = 0
    var isEmpty: Bool { count == 0 }
}

/// A member name or required name: its UTF-8 bytes in the plan's byte pool.
struct PlanName {
    var offset: Int32
    var count: Int32
}

/// One `properties` entry.
struct PlanProperty {
    var name: PlanName
    var child: Int32
    /// Listed in the sibling `required`: counted during the pass instead of searched for.
    var required: Bool
}

/// One `patternProperties` entry.
struct PlanPattern {
    var regex: Int32
    var child: Int32
}

/// An `enum` or `const`. String members are also in the byte pool, so that a string instance
/// is compared in place, without building or hashing anything.
struct PlanValues {
    /// The set in the plan's `valueSets`, for every instance that is not compared by bytes.
    var set: Int32
    var strings: PlanRange
    /// Large sets are hashed: then every instance goes to the set.
    var byBytes: Bool
}

/// A numeric bound, with the integer fast case precomputed.
struct PlanBound {
    enum Kind: UInt8 { case minimum, exclusiveMinimum, maximum, exclusiveMaximum, multipleOf }
    var kind: Kind
    /// The bound as an Int64 when it is one exactly: the common integer-against-integer test
    /// then needs no decimal arithmetic.
    var integer: Int64
    var isInteger: Bool
    /// The exact bound in the plan's number pool.
    var number: Int32
}

/// One schema of the plan. Only trivial fields, so reading one costs no reference counting.
struct PlanNode {
    enum Kind: UInt8 { case accept, reject, keywords, general }
    var kind: Kind = .keywords
    /// Only assertions on the value itself: no subschemas, so no depth is counted (as in the
    /// general evaluator, which the depth limit must agree with).
    var isLeaf = true
    /// TypeSet bits; all set when there is no `type`.
    var types: UInt8 = 0x7F
    var values = PlanRange()            // enum and const, in `values`
    var bounds = PlanRange()            // in `bounds`
    var minLength = 0
    var maxLength = Int.max
    var pattern: Int32 = -1             // in `regexes`
    var format: StringFormat?
    var minItems = 0
    var maxItems = Int.max
    var uniqueItems = false
    var prefixItems = PlanRange()       // in `children`
    var items: Int32 = -1
    var minProperties = 0
    var maxProperties = Int.max
    var required = PlanRange()          // in `names`
    var properties = PlanRange()        // in `properties`
    var propertyIndex: Int32 = -1       // in `propertyIndexes`, for long `properties` lists
    var patternProperties = PlanRange() // in `patterns`
    var additionalProperties: Int32 = -1
    var requiredCount = 0
    var appliesToObjects = false
    var appliesToArrays = false
    var appliesInPlace = false
    var allOf = PlanRange()             // $ref and allOf, in `children`
    var anyOf = PlanRange()             // in `children`
    var oneOf = PlanRange()             // in `children`
    var not: Int32 = -1
    var condition: Int32 = -1
    var then: Int32 = -1
    var otherwise: Int32 = -1
    var general: Int32 = -1             // in `generalNodes`
}

/// A contiguous, immutable block the plan allocates and frees itself.
struct PlanPool<Element> {
    let base: UnsafeMutablePointer<Element>
    let count: Int

    init(_ elements: [Element]) {
        // At least one slot, so that `base` always exists.
        base = .allocate(capacity: max(elements.count, 1))
        count = elements.count
        elements.withUnsafeBufferPointer { source in
            if let start = source.baseAddress { base.initialize(from: start, count: source.count) }
        }
    }

    func free() {
        base.deinitialize(count: count)
        base.deallocate()
    }

    @inline(__always)
    subscript(_ index: Int32) -> UnsafeMutablePointer<Element> { base + Int(index) }
}

/// The flattened form of one compiled schema (see the file comment). Built once by
/// `Schema.init`, never mutated afterwards, so it may be shared between threads.
///
/// It refers to regexes and general-evaluator nodes without owning them: they belong to the
/// SchemaNode graph, which the `Schema` holding this plan keeps alive.
final class ValidationPlan: @unchecked Sendable {
    let nodes: PlanPool<PlanNode>
    let children: PlanPool<Int32>
    let bounds: PlanPool<PlanBound>
    let numbers: PlanPool<JSONNumber>
    let valueSets: PlanPool<EnumSet>
    let values: PlanPool<PlanValues>
    let names: PlanPool<PlanName>
    let properties: PlanPool<PlanProperty>
    let patterns: PlanPool<PlanPattern>
    let bytes: PlanPool<UInt8>
    let regexes: PlanPool<Unmanaged<ECMARegex>>
    let generalNodes: PlanPool<Unmanaged<SchemaNode>>
    let propertyIndexes: PlanPool<[String: Int32]>

    init(root: SchemaNode) {
        var builder = PlanBuilder()
        builder.build(root)
        nodes = PlanPool(builder.nodes)
        children = PlanPool(builder.children)
        bounds = PlanPool(builder.bounds)
        numbers = PlanPool(builder.numbers)
        valueSets = PlanPool(builder.valueSets)
        values = PlanPool(builder.values)
        names = PlanPool(builder.names)
        properties = PlanPool(builder.properties)
        patterns = PlanPool(builder.patterns)
        bytes = PlanPool(builder.bytes)
        regexes = PlanPool(builder.regexes)
        generalNodes = PlanPool(builder.generalNodes)
        propertyIndexes = PlanPool(builder.propertyIndexes)
    }

    /// Whether `key`'s UTF-8 is exactly the pooled name: member names and the strings of an
    /// `enum` compare byte for byte (the tree's walk and the plain body's share this).
    @inline(__always)
    func matches(_ key: UnsafeBufferPointer<UInt8>, _ name: PlanName) -> Bool {
        let count = key.count
        guard count == Int(name.count) else { return false }
        guard let base = key.baseAddress, count > 0 else { return true }
        let other = bytes[name.offset]
        // Member names are short: comparing in place beats a call to memcmp.
        if count <= 16 {
            for i in 0..<count where base[i] != other[i] { return false }
            return true
        }
        return memcmp(base, other, count) == 0
    }

    deinit {
        nodes.free()
        children.free()
        bounds.free()
        numbers.free()
        valueSets.free()
        values.free()
        names.free()
        properties.free()
        patterns.free()
        bytes.free()
        regexes.free()
        generalNodes.free()
        propertyIndexes.free()
    }
}

/// Turns the SchemaNode graph reachable from a root into plan nodes; the root is node 0.
struct PlanBuilder {
    var nodes: [PlanNode] = []
    var children: [Int32] = []
    var bounds: [PlanBound] = []
    var numbers: [JSONNumber] = []
    var valueSets: [EnumSet] = []
    var values: [PlanValues] = []
    var names: [PlanName] = []
    var properties: [PlanProperty] = []
    var patterns: [PlanPattern] = []
    var bytes: [UInt8] = []
    var regexes: [Unmanaged<ECMARegex>] = []
    var generalNodes: [Unmanaged<SchemaNode>] = []
    var propertyIndexes: [[String: Int32]] = []
    private var order: [SchemaNode] = []
    private var indexOf: [ObjectIdentifier: Int32] = [:]

    mutating func build(_ root: SchemaNode) {
        // Number every reachable node first (iteratively: a schema may nest deeply), so that
        // children can be named by index before they are built.
        var usesDynamicScope = false
        number(root)
        var next = 0
        while next < order.count {
            for keyword in order[next].keywords {
                if case .dynamicRef = keyword.check { usesDynamicScope = true }
                for child in Self.subschemas(of: keyword.check) { number(child.node) }
            }
            next += 1
        }
        if usesDynamicScope {
            // Only the general evaluator tracks the dynamic scope $dynamicRef resolves in.
            nodes = [general(root)]
            return
        }
        nodes.reserveCapacity(order.count)
        for node in order { nodes.append(plan(node)) }
    }

    private mutating func number(_ node: SchemaNode) {
        let id = ObjectIdentifier(node)
        guard indexOf[id] == nil else { return }
        indexOf[id] = Int32(order.count)
        order.append(node)
    }

    private func index(_ child: Subschema) -> Int32 {
        // Every subschema was numbered by `build` before any node is planned.
        indexOf[ObjectIdentifier(child.node)] ?? -1
    }

    static func subschemas(of check: Check) -> [Subschema] {
        switch check {
        case .ref(let node), .dynamicRef(let node, _), .not(let node), .contains(let node, _, _), .propertyNames(let node),
             .unevaluatedItems(let node), .unevaluatedProperties(let node):
            return [node]
        case .allOf(let nodes), .anyOf(let nodes), .oneOf(let nodes):
            return nodes
        case .conditional(let condition, let then, let otherwise):
            return [condition] + [then, otherwise].compactMap { $0 }
        case .properties(let applicator):
            return applicator.named.map(\.node) + applicator.patterns.map(\.node) + [applicator.additional].compactMap { $0 }
        case .items(let applicator):
            return applicator.prefix + [applicator.rest].compactMap { $0 }
        case .dependentSchemas(let entries):
            return entries.map(\.1)
        default:
            return []
        }
    }

    private mutating func general(_ node: SchemaNode) -> PlanNode {
        var planned = PlanNode()
        planned.kind = .general
        planned.general = Int32(generalNodes.count)
        generalNodes.append(Unmanaged.passUnretained(node))
        return planned
    }

    private mutating func range(_ nodes: [Subschema]) -> PlanRange {
        let start = Int32(children.count)
        for node in nodes { children.append(index(node)) }
        return PlanRange(start: start, count: Int32(nodes.count))
    }

    private mutating func name(_ string: String) -> PlanName {
        let start = Int32(bytes.count)
        bytes.append(contentsOf: string.utf8)
        return PlanName(offset: start, count: Int32(bytes.count) - start)
    }

    private mutating func regex(_ regex: ECMARegex) -> Int32 {
        regexes.append(Unmanaged.passUnretained(regex))
        return Int32(regexes.count - 1)
    }

    private mutating func bound(_ kind: PlanBound.Kind, _ limit: JSONNumber, into list: inout [PlanBound]) {
        let integer = limit.int64Value
        list.append(PlanBound(kind: kind, integer: integer ?? 0, isInteger: integer != nil, number: Int32(numbers.count)))
        numbers.append(limit)
    }

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    private mutating func plan(_ node: SchemaNode) -> PlanNode {
        var planned = PlanNode()
        switch node.kind {
        case .accept:
            planned.kind = .accept
            return planned
        case .reject:
            planned.kind = .reject
            return planned
        case .keywords:
            break
        }
        planned.isLeaf = node.isLeaf
        var sets: [EnumSet] = []
        var nodeBounds: [PlanBound] = []
        var allOf: [Subschema] = []
        for keyword in node.keywords {
            switch keyword.check {
            case .type(let types): planned.types = types.bits
            case .constant(let value): sets.append(EnumSet(values: [value]))
            case .enumeration(let set): sets.append(set)
            case .multipleOf(let n): bound(.multipleOf, n, into: &nodeBounds)
            case .minimum(let n): bound(.minimum, n, into: &nodeBounds)
            case .exclusiveMinimum(let n): bound(.exclusiveMinimum, n, into: &nodeBounds)
            case .maximum(let n): bound(.maximum, n, into: &nodeBounds)
            case .exclusiveMaximum(let n): bound(.exclusiveMaximum, n, into: &nodeBounds)
            case .minLength(let n): planned.minLength = n
            case .maxLength(let n): planned.maxLength = n
            case .pattern(let compiled): planned.pattern = regex(compiled)
            case .format(let format): planned.format = format
            case .minItems(let n): planned.minItems = n
            case .maxItems(let n): planned.maxItems = n
            case .uniqueItems: planned.uniqueItems = true
            case .minProperties(let n): planned.minProperties = n
            case .maxProperties(let n): planned.maxProperties = n
            case .required(let list):
                let start = Int32(names.count)
                for required in list { names.append(name(required)) }
                planned.required = PlanRange(start: start, count: Int32(list.count))
            case .ref(let target): allOf.append(target)
            case .allOf(let nodes): allOf += nodes
            case .anyOf(let nodes): planned.anyOf = range(nodes)
            case .oneOf(let nodes): planned.oneOf = range(nodes)
            case .not(let child): planned.not = index(child)
            case .conditional(let condition, let then, let otherwise):
                planned.condition = index(condition)
                planned.then = then.map(index) ?? -1
                planned.otherwise = otherwise.map(index) ?? -1
            case .properties(let applicator):
                let start = Int32(properties.count)
                for entry in applicator.named {
                    properties.append(PlanProperty(name: name(entry.key), child: index(entry.node), required: entry.required))
                }
                planned.properties = PlanRange(start: start, count: Int32(applicator.named.count))
                if let lookup = applicator.index {
                    planned.propertyIndex = Int32(propertyIndexes.count)
                    propertyIndexes.append(lookup.mapValues { Int32($0) })
                }
                let patternStart = Int32(patterns.count)
                for entry in applicator.patterns { patterns.append(PlanPattern(regex: regex(entry.regex), child: index(entry.node))) }
                planned.patternProperties = PlanRange(start: patternStart, count: Int32(applicator.patterns.count))
                planned.additionalProperties = applicator.additional.map(index) ?? -1
                planned.requiredCount = applicator.requiredCount
            case .items(let applicator):
                planned.prefixItems = range(applicator.prefix)
                planned.items = applicator.rest.map(index) ?? -1
            case .dynamicRef, .contains, .propertyNames, .dependentRequired, .dependentSchemas, .unevaluatedItems,
                 .unevaluatedProperties:
                return general(node)
            }
        }
        let valuesStart = Int32(values.count)
        for set in sets {
            let stringsStart = Int32(names.count)
            for case .string(let string) in set.values { names.append(name(string)) }
            values.append(PlanValues(set: Int32(valueSets.count), strings: PlanRange(start: stringsStart, count: Int32(names.count) - stringsStart),
                                     byBytes: set.set == nil))
            valueSets.append(set)
        }
        planned.values = PlanRange(start: valuesStart, count: Int32(sets.count))
        let boundStart = Int32(bounds.count)
        bounds += nodeBounds
        planned.bounds = PlanRange(start: boundStart, count: Int32(nodeBounds.count))
        planned.allOf = range(allOf)
        planned.appliesToObjects = planned.minProperties > 0 || planned.maxProperties < Int.max || !planned.required.isEmpty
            || !planned.properties.isEmpty || !planned.patternProperties.isEmpty || planned.additionalProperties >= 0
            || planned.requiredCount > 0
        planned.appliesInPlace = !planned.allOf.isEmpty || !planned.anyOf.isEmpty || !planned.oneOf.isEmpty || planned.not >= 0
            || planned.condition >= 0
        planned.appliesToArrays = planned.minItems > 0 || planned.maxItems < Int.max || planned.uniqueItems
            || !planned.prefixItems.isEmpty || planned.items >= 0
        return planned
    }
}

/// One walk of a plan over the plan's raw pools, so that nothing it reads is retained. Nothing
/// in it changes during the walk (the depth is an argument): with no `inout self`, the optimizer
/// may borrow the instance's values instead of copying them around each call.
struct PlanWalker {
    let plan: ValidationPlan
    let options: SchemaOptions

    init(_ plan: ValidationPlan, options: SchemaOptions) {
        self.plan = plan
        self.options = options
    }

    /// Whether `value` is valid against plan node `index`, `depth` subschemas down (counted as
    /// the general evaluator counts them, so that both stop at the same depth).
    func valid(_ index: Int32, _ value: JSONValue, _ depth: Int) -> Bool {
        let node = plan.nodes[index]
        switch node.pointee.kind {
        case .accept: return true
        case .reject: return false
        case .general: return generalValid(node.pointee.general, value, depth)
        case .keywords: break
        }
        if node.pointee.isLeaf { return assertions(node, value) }
        let depth = depth + 1
        guard depth <= options.maxEvaluationDepth, assertions(node, value) else { return false }
        switch value {
        case .object(let object) where node.pointee.appliesToObjects:
            guard objectValid(node, object, depth) else { return false }
        case .array(let items) where node.pointee.appliesToArrays:
            guard arrayValid(node, items, depth) else { return false }
        default:
            break
        }
        return !node.pointee.appliesInPlace || inPlaceValid(node, value, depth)
    }

    /// A subschema outside the plan: the general evaluator, continuing at this depth.
    private func generalValid(_ index: Int32, _ value: JSONValue, _ depth: Int) -> Bool {
        var context = EvaluationContext(options: options, collectErrors: false)
        context.depth = depth
        var scratch = Evaluated()
        return plan.generalNodes[index].pointee._withUnsafeGuaranteedRef { context.evaluate($0, value, collect: false, &scratch) }
    }

    /// The assertions on the value itself, for its JSON type.
    @inline(__always)
    private func assertions(_ node: UnsafeMutablePointer<PlanNode>, _ value: JSONValue) -> Bool {
        let types = node.pointee.types
        switch value {
        case .null:
            guard types & TypeSet.null != 0 else { return false }
        case .bool:
            guard types & TypeSet.boolean != 0 else { return false }
        case .string(let string):
            guard types & TypeSet.string != 0, stringValid(node, string) else { return false }
        case .number(let number):
            guard types & TypeSet.number != 0 || (types & TypeSet.integer != 0 && number.isIntegral) else { return false }
            guard node.pointee.bounds.isEmpty || boundsHold(node.pointee.bounds, number) else { return false }
        case .array(let items):
            guard types & TypeSet.array != 0 else { return false }
            guard items.count >= node.pointee.minItems, items.count <= node.pointee.maxItems else { return false }
            guard !node.pointee.uniqueItems || EvaluationContext.allUnique(items) else { return false }
        case .object(let object):
            guard types & TypeSet.object != 0 else { return false }
            let count = object.members.count
            guard count >= node.pointee.minProperties, count <= node.pointee.maxProperties else { return false }
            guard node.pointee.required.isEmpty || hasAll(node.pointee.required, object) else { return false }
        }
        let values = node.pointee.values
        var i = values.start
        while i < values.start + values.count {
            guard valuesContain(plan.values[i], value) else { return false }
            i += 1
        }
        return true
    }

    private func valuesContain(_ values: UnsafeMutablePointer<PlanValues>, _ value: JSONValue) -> Bool {
        guard values.pointee.byBytes, case .string(var string) = value else {
            return plan.valueSets[values.pointee.set].pointee.contains(value)
        }
        let strings = values.pointee.strings
        return string.withUTF8 { utf8 in
            var i = strings.start
            while i < strings.start + strings.count {
                if same(utf8, plan.names[i].pointee) { return true }
                i += 1
            }
            return false
        }
    }

    private func stringValid(_ node: UnsafeMutablePointer<PlanNode>, _ string: String) -> Bool {
        let minLength = node.pointee.minLength, maxLength = node.pointee.maxLength
        // Lengths count Unicode scalars; UTF-8 counts bound them (1 to 4 bytes a scalar), so the
        // scalars are only counted when the byte count cannot decide.
        if minLength > 0 {
            guard string.utf8.count >= minLength &* 4 || string.unicodeScalars.count >= minLength else { return false }
        }
        if maxLength < Int.max {
            guard string.utf8.count <= maxLength || string.unicodeScalars.count <= maxLength else { return false }
        }
        let pattern = node.pointee.pattern
        if pattern >= 0 {
            guard plan.regexes[pattern].pointee._withUnsafeGuaranteedRef({ $0.search(string) }) == true else { return false }
        }
        if let format = node.pointee.format, !format.accepts(string) { return false }
        return true
    }

    private func boundsHold(_ range: PlanRange, _ number: JSONNumber) -> Bool {
        let integer = number.int64Value
        var i = range.start
        while i < range.start + range.count {
            let bound = plan.bounds[i]
            let holds: Bool
            if bound.pointee.kind != .multipleOf, bound.pointee.isInteger, let integer {
                let limit = bound.pointee.integer
                switch bound.pointee.kind {
                case .minimum: holds = integer >= limit
                case .exclusiveMinimum: holds = integer > limit
                case .maximum: holds = integer <= limit
                case .exclusiveMaximum: holds = integer < limit
                case .multipleOf: holds = false
                }
            } else {
                let limit = plan.numbers[bound.pointee.number].pointee
                switch bound.pointee.kind {
                case .minimum: holds = !(number < limit)
                case .exclusiveMinimum: holds = limit < number
                case .maximum: holds = !(limit < number)
                case .exclusiveMaximum: holds = number < limit
                case .multipleOf: holds = Arithmetic.isMultiple(number, of: limit)
                }
            }
            guard holds else { return false }
            i += 1
        }
        return true
    }

    @inline(__always)
    private func same(_ key: UnsafeBufferPointer<UInt8>, _ name: PlanName) -> Bool {
        plan.matches(key, name)
    }

    private func hasAll(_ required: PlanRange, _ object: JSONObject) -> Bool {
        var i = required.start
        while i < required.start + required.count {
            let name = plan.names[i].pointee
            let found = object.members.withUnsafeBufferPointer { members in
                members.contains { member in
                    var key = member.key
                    return key.withUTF8 { same($0, name) }
                }
            }
            guard found else { return false }
            i += 1
        }
        return true
    }

    /// The `properties` entry for a member name, or -1. Members usually come in the schema's
    /// order, so a short list is searched from `hint` (just after the previous match) around.
    @inline(__always)
    private func lookup(_ node: UnsafeMutablePointer<PlanNode>, _ key: String, hint: inout Int32) -> Int32 {
        let range = node.pointee.properties
        if node.pointee.propertyIndex >= 0 {
            guard let found = plan.propertyIndexes[node.pointee.propertyIndex].pointee[key] else { return -1 }
            var key = key
            return key.withUTF8 { same($0, plan.properties[range.start + found].pointee.name) } ? range.start + found : -1
        }
        guard range.count > 0 else { return -1 }
        // Borrowing the bytes in place spares the retain and release (atomic, so dearer than
        // their instruction count) of the copy `withUTF8` needs; only a string not stored as
        // UTF-8 declines, and is then copied.
        if let found = key.utf8.withContiguousStorageIfAvailable({ scan(range, $0, hint: &hint) }) { return found }
        var copy = key
        return copy.withUTF8 { scan(range, $0, hint: &hint) }
    }

    @inline(__always)
    private func scan(_ range: PlanRange, _ utf8: UnsafeBufferPointer<UInt8>, hint: inout Int32) -> Int32 {
        var i = hint < range.count ? hint : 0
        for _ in 0..<range.count {
            if same(utf8, plan.properties[range.start + i].pointee.name) {
                hint = i + 1
                return range.start + i
            }
            i = i + 1 == range.count ? 0 : i + 1
        }
        return -1
    }

    private func objectValid(_ node: UnsafeMutablePointer<PlanNode>, _ object: JSONObject, _ depth: Int) -> Bool {
        var requiredSeen = 0
        var hint: Int32 = 0
        let patterns = node.pointee.patternProperties
        let additional = node.pointee.additionalProperties
        // Members are read in place from the array's buffer rather than copied out one by one.
        let membersValid = object.members.withUnsafeBufferPointer { members -> Bool in
            for index in members.indices {
                var matched = false
                let found = lookup(node, members[index].key, hint: &hint)
                if found >= 0 {
                    matched = true
                    let property = plan.properties[found]
                    if property.pointee.required { requiredSeen += 1 }
                    guard valid(property.pointee.child, members[index].value, depth) else { return false }
                }
                var i = patterns.start
                while i < patterns.start + patterns.count {
                    let pattern = plan.patterns[i].pointee
                    // A search over its step budget fails the instance, as in the general evaluator.
                    guard let hit = plan.regexes[pattern.regex].pointee._withUnsafeGuaranteedRef({ $0.search(members[index].key) }) else {
                        return false
                    }
                    if hit {
                        matched = true
                        guard valid(pattern.child, members[index].value, depth) else { return false }
                    }
                    i += 1
                }
                if !matched, additional >= 0, !valid(additional, members[index].value, depth) { return false }
            }
            return true
        }
        return membersValid && requiredSeen >= node.pointee.requiredCount
    }

    private func arrayValid(_ node: UnsafeMutablePointer<PlanNode>, _ items: [JSONValue], _ depth: Int) -> Bool {
        let prefix = node.pointee.prefixItems
        let prefixCount = min(Int(prefix.count), items.count)
        let rest = node.pointee.items
        return items.withUnsafeBufferPointer { items in
            for i in 0..<prefixCount where !valid(plan.children[prefix.start + Int32(i)].pointee, items[i], depth) { return false }
            if rest >= 0 {
                for i in prefixCount..<items.count where !valid(rest, items[i], depth) { return false }
            }
            return true
        }
    }

    /// $ref, allOf, anyOf, oneOf, not, if/then/else: subschemas applied to the same value.
    private func inPlaceValid(_ node: UnsafeMutablePointer<PlanNode>, _ value: JSONValue, _ depth: Int) -> Bool {
        let allOf = node.pointee.allOf
        var i = allOf.start
        while i < allOf.start + allOf.count {
            guard valid(plan.children[i].pointee, value, depth) else { return false }
            i += 1
        }
        let anyOf = node.pointee.anyOf
        if anyOf.count > 0 {
            var matched = false
            i = anyOf.start
            while i < anyOf.start + anyOf.count, !matched {
                matched = valid(plan.children[i].pointee, value, depth)
                i += 1
            }
            guard matched else { return false }
        }
        let oneOf = node.pointee.oneOf
        if oneOf.count > 0 {
            var matches = 0
            i = oneOf.start
            while i < oneOf.start + oneOf.count, matches < 2 {
                if valid(plan.children[i].pointee, value, depth) { matches += 1 }
                i += 1
            }
            guard matches == 1 else { return false }
        }
        let not = node.pointee.not
        if not >= 0, valid(not, value, depth) { return false }
        let condition = node.pointee.condition
        if condition >= 0 {
            let branch = valid(condition, value, depth) ? node.pointee.then : node.pointee.otherwise
            if branch >= 0, !valid(branch, value, depth) { return false }
        }
        return true
    }
}
