// A body checked from its bytes, without a parse tree: the broker's fast path for the bodies it
// only validates and then forwards or echoes (routed requests, events, privsep.ping).
//
// Why: parsing a body builds its members' list and its strings, and tearing them down again
// costs as much; for a body nobody reads, that was most of the broker's work on it. Most
// message bodies are plain: a flat object of strings in printable ASCII without escapes,
// integers, booleans and nulls. For those this check reads the members in place (at most
// `maxMembers`, on the stack) and walks the same ValidationPlan as `isValid`, answering only when
// it is sure: the bytes are what the strict parser would accept with the same limits, and the
// plan accepts them. Anything else (a nested value, an escape, a real, a keyword it does not
// take on, such as pattern, format, anyOf or a general node, and every failure) answers nil,
// and the caller parses the body and validates the tree, which also words the errors. The
// fuzz target `schema` and PlainBodyTests hold it to that: wherever this check vouches,
// the parser and `isValid` must agree.
import PrivSepJSON

extension Schema {
    /// Whether the bytes at `start` (a `{`) are a plain object this schema accepts, read within
    /// `limits` as a value nested in `enclosingDepth` containers: where it ends and how many
    /// values it holds (as the parser counts them); nil when it is not, or this check cannot
    /// tell (see the file comment).
    public func checkPlainObject(in bytes: UnsafeRawBufferPointer, at start: Int, enclosingDepth: Int,
                                 limits: JSONLimits) -> (end: Int, nodes: Int)?
    {
        guard vouchesForPlainObjects, let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
              start >= 0, start < bytes.count, enclosingDepth + 1 <= min(limits.maxDepth, JSONLimits.depthCeiling)
        else { return nil }
        return withUnsafeTemporaryAllocation(of: PlainMember.self, capacity: PlainBody.maxMembers) { members in
            var reader = PlainReader(base: base, count: bytes.count, index: start)
            guard let count = PlainBody.readObject(&reader, into: members, limits: limits), 1 + count <= limits.maxNodes,
                  PlainBody(plan: plan, options: options, members: UnsafeBufferPointer(rebasing: members[0 ..< count]))
                  .objectValid(0, 0)
            else { return nil }
            return (reader.index, 1 + count)
        }
    }
}

/// One member of a plain object, read in place.
struct PlainMember {
    var key: UnsafeBufferPointer<UInt8>
    var value: PlainScalar
}

/// A plain member's value.
enum PlainScalar {
    /// Printable ASCII without escapes: its length in bytes is its length in scalars.
    case string(UnsafeBufferPointer<UInt8>)
    case integer(Int64)
    case boolean
    case null
}

/// The walk of a plan over one plain object's members: true only when `PlanWalker.valid` would
/// be true for the parsed object; false for invalid and for what this walk does not take on.
struct PlainBody {
    /// More members than this and the body is parsed (message bodies have a handful).
    static let maxMembers = 16

    let plan: ValidationPlan
    let options: SchemaOptions
    let members: UnsafeBufferPointer<PlainMember>

    /// Whether some plain object could pass: the root and its allOf are objects this walk takes
    /// on, and every required property's schema takes on some plain value. A schema that never
    /// could (file.open's body always holds an array) is not tried, so its bodies are read once.
    static func vouches(for plan: ValidationPlan) -> Bool {
        eligible(plan, 0, depth: 0, asObject: true)
    }

    /// Deeper than this through allOf and $ref, and the schema is left to the tree.
    private static let eligibilityDepth = 16

    /// Whether node `index` could accept a plain object (`asObject`) or some plain value.
    private static func eligible(_ plan: ValidationPlan, _ index: Int32, depth: Int, asObject: Bool) -> Bool {
        let node = plan.nodes[index].pointee
        guard depth < eligibilityDepth else { return false }
        switch node.kind {
        case .accept: return true
        case .reject, .general: return false
        case .keywords: break
        }
        guard inPlaceEligible(plan, node, { eligible(plan, $0, depth: depth + 1, asObject: asObject) }) else { return false }
        return asObject ? objectKeywordsEligible(plan, node, depth: depth) : scalarKeywordsEligible(plan, node)
    }

    private static func objectKeywordsEligible(_ plan: ValidationPlan, _ node: PlanNode, depth: Int) -> Bool {
        guard node.types & TypeSet.object != 0, node.values.isEmpty, node.patternProperties.isEmpty else { return false }
        var i = node.properties.start
        while i < node.properties.start + node.properties.count {
            let property = plan.properties[i].pointee
            if property.required, !eligible(plan, property.child, depth: depth + 1, asObject: false) { return false }
            i += 1
        }
        return true
    }

    private static func scalarKeywordsEligible(_ plan: ValidationPlan, _ node: PlanNode) -> Bool {
        let literals = node.types & (TypeSet.null | TypeSet.boolean) != 0 && node.values.isEmpty
        var integerBounds = true
        var i = node.bounds.start
        while i < node.bounds.start + node.bounds.count {
            let bound = plan.bounds[i].pointee
            if !bound.isInteger || bound.kind == .multipleOf { integerBounds = false }
            i += 1
        }
        let integers = node.types & (TypeSet.number | TypeSet.integer) != 0 && node.values.isEmpty && integerBounds
        var valuesByBytes = true
        i = node.values.start
        while i < node.values.start + node.values.count {
            if !plan.values[i].pointee.byBytes { valuesByBytes = false }
            i += 1
        }
        let strings = node.types & TypeSet.string != 0 && node.pattern < 0 && node.format == nil && valuesByBytes
        return literals || integers || strings
    }

    private static func inPlaceEligible(_ plan: ValidationPlan, _ node: PlanNode, _ eligible: (Int32) -> Bool) -> Bool {
        guard node.anyOf.isEmpty, node.oneOf.isEmpty, node.not < 0, node.condition < 0 else { return false }
        var i = node.allOf.start
        while i < node.allOf.start + node.allOf.count {
            guard eligible(plan.children[i].pointee) else { return false }
            i += 1
        }
        return true
    }

    /// Reads a plain object's members into `members`: their count, or nil (not plain, a
    /// duplicate name, more than `maxMembers`, a limit crossed).
    static func readObject(_ reader: inout PlainReader, into members: UnsafeMutableBufferPointer<PlainMember>,
                           limits: JSONLimits) -> Int?
    {
        guard reader.take(UInt8(ascii: "{")) else { return nil }
        reader.skipWhitespace()
        if reader.take(UInt8(ascii: "}")) { return 0 }
        var count = 0
        while true {
            guard count < members.count, count < limits.maxContainerCount,
                  let key = reader.plainString(), key.count <= limits.maxStringBytes
            else { return nil }
            // The parser refuses a repeated name; so does this reading.
            for i in 0 ..< count where same(members[i].key, key) { return nil }
            reader.skipWhitespace()
            guard reader.take(UInt8(ascii: ":")) else { return nil }
            reader.skipWhitespace()
            guard let value = scalar(&reader, limits: limits) else { return nil }
            members.initializeElement(at: count, to: PlainMember(key: key, value: value))
            count += 1
            reader.skipWhitespace()
            if reader.take(UInt8(ascii: "}")) { return count }
            guard reader.take(UInt8(ascii: ",")) else { return nil }
            reader.skipWhitespace()
        }
    }

    private static func scalar(_ reader: inout PlainReader, limits: JSONLimits) -> PlainScalar? {
        guard reader.index < reader.count else { return nil }
        switch reader.base[reader.index] {
        case UInt8(ascii: "\""):
            guard let text = reader.plainString(), text.count <= limits.maxStringBytes else { return nil }
            return .string(text)
        case UInt8(ascii: "t"):
            return reader.take(word: "true") ? .boolean : nil
        case UInt8(ascii: "f"):
            return reader.take(word: "false") ? .boolean : nil
        case UInt8(ascii: "n"):
            return reader.take(word: "null") ? .null : nil
        default:
            let start = reader.index
            guard let value = reader.plainInteger(maxDigits: 18, signed: true),
                  reader.index - start <= limits.maxNumberLength
            else { return nil }
            return .integer(value)
        }
    }

    static func same(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        a.count == b.count && a.elementsEqual(b)
    }

    /// `PlanWalker.valid` for the object, node `index`, `depth` subschemas down.
    func objectValid(_ index: Int32, _ depth: Int) -> Bool {
        let node = plan.nodes[index]
        switch node.pointee.kind {
        case .accept: return true
        case .reject, .general: return false
        case .keywords: break
        }
        if node.pointee.isLeaf { return objectAssertions(node) }
        let depth = depth + 1
        guard depth <= options.maxEvaluationDepth, objectAssertions(node) else { return false }
        if node.pointee.appliesToObjects {
            guard membersValid(node, depth) else { return false }
        }
        return !node.pointee.appliesInPlace || inPlaceValid(node) { objectValid($0, depth) }
    }

    private func objectAssertions(_ node: UnsafeMutablePointer<PlanNode>) -> Bool {
        guard node.pointee.types & TypeSet.object != 0, node.pointee.values.isEmpty,
              members.count >= node.pointee.minProperties, members.count <= node.pointee.maxProperties
        else { return false }
        let required = node.pointee.required
        var i = required.start
        while i < required.start + required.count {
            let wanted = plan.names[i].pointee
            guard members.contains(where: { plan.matches($0.key, wanted) }) else { return false }
            i += 1
        }
        return true
    }

    private func membersValid(_ node: UnsafeMutablePointer<PlanNode>, _ depth: Int) -> Bool {
        guard node.pointee.patternProperties.isEmpty else { return false }
        let properties = node.pointee.properties
        let additional = node.pointee.additionalProperties
        var requiredSeen = 0
        for member in members {
            var found: Int32 = -1
            var i = properties.start
            while i < properties.start + properties.count {
                if plan.matches(member.key, plan.properties[i].pointee.name) {
                    found = i
                    break
                }
                i += 1
            }
            if found >= 0 {
                let property = plan.properties[found]
                if property.pointee.required { requiredSeen += 1 }
                guard scalarValid(property.pointee.child, member.value, depth) else { return false }
            } else if additional >= 0 {
                guard scalarValid(additional, member.value, depth) else { return false }
            }
        }
        return requiredSeen >= node.pointee.requiredCount
    }

    /// `PlanWalker.valid` for one member's value.
    private func scalarValid(_ index: Int32, _ value: PlainScalar, _ depth: Int) -> Bool {
        let node = plan.nodes[index]
        switch node.pointee.kind {
        case .accept: return true
        case .reject, .general: return false
        case .keywords: break
        }
        if node.pointee.isLeaf { return scalarAssertions(node, value) }
        let depth = depth + 1
        guard depth <= options.maxEvaluationDepth, scalarAssertions(node, value) else { return false }
        return !node.pointee.appliesInPlace || inPlaceValid(node) { scalarValid($0, value, depth) }
    }

    private func scalarAssertions(_ node: UnsafeMutablePointer<PlanNode>, _ value: PlainScalar) -> Bool {
        let types = node.pointee.types
        switch value {
        case .null:
            return types & TypeSet.null != 0 && node.pointee.values.isEmpty
        case .boolean:
            return types & TypeSet.boolean != 0 && node.pointee.values.isEmpty
        case .integer(let integer):
            guard types & (TypeSet.number | TypeSet.integer) != 0, node.pointee.values.isEmpty else { return false }
            return integerBoundsHold(node.pointee.bounds, integer)
        case .string(let text):
            guard types & TypeSet.string != 0, text.count >= node.pointee.minLength, text.count <= node.pointee.maxLength,
                  node.pointee.pattern < 0, node.pointee.format == nil
            else { return false }
            return stringInValues(node.pointee.values, text)
        }
    }

    /// Bounds given as integers, compared as integers; any other bound is the tree's.
    private func integerBoundsHold(_ range: PlanRange, _ integer: Int64) -> Bool {
        var i = range.start
        while i < range.start + range.count {
            let bound = plan.bounds[i].pointee
            guard bound.isInteger else { return false }
            let limit = bound.integer
            switch bound.kind {
            case .minimum: guard integer >= limit else { return false }
            case .exclusiveMinimum: guard integer > limit else { return false }
            case .maximum: guard integer <= limit else { return false }
            case .exclusiveMaximum: guard integer < limit else { return false }
            case .multipleOf: return false
            }
            i += 1
        }
        return true
    }

    /// Every `enum` and `const` of the node holds the string; only lists compared by bytes.
    private func stringInValues(_ range: PlanRange, _ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = range.start
        while i < range.start + range.count {
            let values = plan.values[i].pointee
            guard values.byBytes else { return false }
            var j = values.strings.start, found = false
            while j < values.strings.start + values.strings.count, !found {
                found = plan.matches(text, plan.names[j].pointee)
                j += 1
            }
            guard found else { return false }
            i += 1
        }
        return true
    }

    /// allOf (and $ref) by `valid`; anyOf, oneOf, not and if/then/else are the tree's.
    private func inPlaceValid(_ node: UnsafeMutablePointer<PlanNode>, _ valid: (Int32) -> Bool) -> Bool {
        guard node.pointee.anyOf.isEmpty, node.pointee.oneOf.isEmpty, node.pointee.not < 0, node.pointee.condition < 0
        else { return false }
        let allOf = node.pointee.allOf
        var i = allOf.start
        while i < allOf.start + allOf.count {
            guard valid(plan.children[i].pointee) else { return false }
            i += 1
        }
        return true
    }
}
