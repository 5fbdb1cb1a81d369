// Validation: a walk over the compiled SchemaNode graph.
//
// `validate` walks it with error collection on: it keeps going and records "basic" output units.
// `isValid` walks the schema's ValidationPlan instead (ValidationPlan.swift: the same keywords
// flattened so that the walk costs no reference counting), which hands the subschemas it does
// not cover to this walk with error collection off: then it stops at the first failing keyword
// and builds no strings.
// Annotations (which properties and items were evaluated) are only tracked below a schema that
// has unevaluatedProperties/Items, since nothing else reads them.
import PrivSepJSON

/// A compiled JSON Schema, ready to validate instances. Immutable and shareable between threads.
public struct Schema: Sendable {
    /// The root node; `graph` owns it and everything it reaches, which `plan` refers to
    /// without owning.
    let root: SchemaNode
    let graph: SchemaGraph
    let options: SchemaOptions
    /// The same schema flattened for `isValid` (ValidationPlan.swift).
    let plan: ValidationPlan
    /// Whether `checkPlainObject` can ever vouch for a body (PlainBody.swift); when not, it
    /// answers nil without reading the bytes.
    public let vouchesForPlainObjects: Bool

    init(root: SchemaNode, graph: SchemaGraph, options: SchemaOptions) {
        self.root = root
        self.graph = graph
        self.options = options
        plan = ValidationPlan(root: root)
        vouchesForPlainObjects = PlainBody.vouches(for: plan)
    }

    /// Whether `instance` is valid: the fast path, no error details.
    public func isValid(_ instance: JSONValue) -> Bool {
        PlanWalker(plan, options: options).valid(0, instance, 0)
    }

    /// Validates `instance` and returns every failing keyword in the "basic" output shape.
    public func validate(_ instance: JSONValue) -> ValidationResult {
        var context = EvaluationContext(options: options, collectErrors: true)
        var scratch = Evaluated()
        let valid = context.evaluate(root, instance, collect: false, &scratch)
        if !valid && context.errors.isEmpty {
            context.errors.append(OutputUnit(keywordLocation: "", absoluteKeywordLocation: root.location, instanceLocation: "",
                                             error: "instance is invalid"))
        }
        return ValidationResult(valid: valid, errors: valid ? [] : context.errors)
    }
}

/// What the keywords of one schema evaluated: the annotations unevaluated* reads. The sets stay
/// nil (no allocation, nothing to release) unless a keyword records into them.
struct Evaluated {
    var allProperties = false
    var properties: Set<String>?
    var allItems = false
    var itemPrefix = 0
    var items: Set<Int>?

    mutating func insertProperty(_ key: String) {
        if properties == nil { properties = [key] } else { properties!.insert(key) }
    }

    mutating func insertItem(_ index: Int) {
        if items == nil { items = [index] } else { items!.insert(index) }
    }

    func hasProperty(_ key: String) -> Bool { allProperties || (properties?.contains(key) ?? false) }
    func hasItem(_ index: Int) -> Bool { allItems || index < itemPrefix || (items?.contains(index) ?? false) }

    mutating func merge(_ other: Evaluated) {
        if other.allProperties {
            allProperties = true
        } else if !allProperties, let keys = other.properties {
            if properties == nil { properties = keys } else { properties!.formUnion(keys) }
        }
        if other.allItems {
            allItems = true
        } else if !allItems {
            itemPrefix = max(itemPrefix, other.itemPrefix)
            if let indices = other.items {
                if items == nil { items = indices } else { items!.formUnion(indices) }
            }
        }
    }
}

/// One step of a keyword or instance path, kept symbolic until an error needs its text.
enum PathToken {
    case key(String)
    case index(Int)
    var text: String {
        switch self {
        case .key(let key): return key
        case .index(let index): return String(index)
        }
    }
}

/// The state of one validation. A struct passed inout, so that its fields cost no dynamic
/// exclusivity checks in the hot loop.
struct EvaluationContext {
    let options: SchemaOptions
    var collectErrors: Bool
    var depth = 0
    var scope: [SchemaResource] = []
    var errors: [OutputUnit] = []
    var keywordPath: [String] = []
    var instancePath: [String] = []

    init(options: SchemaOptions, collectErrors: Bool) {
        self.options = options
        self.collectErrors = collectErrors
    }

    // MARK: Error recording (only ever called with collectErrors on)

    private mutating func record(_ node: SchemaNode, _ keyword: String?, _ message: String) {
        var keywordLocation = Pointer.string(keywordPath)
        var absolute = node.location
        if let keyword {
            keywordLocation += "/" + Pointer.escape(keyword)
            absolute += "/" + Pointer.escape(keyword)
        }
        errors.append(OutputUnit(keywordLocation: keywordLocation, absoluteKeywordLocation: absolute,
                                 instanceLocation: Pointer.string(instancePath), error: message))
    }

    @inline(__always)
    private mutating func fail(_ node: SchemaNode, _ keyword: String?, _ message: @autoclosure () -> String) -> Bool {
        if collectErrors { record(node, keyword, message()) }
        return false
    }

    // MARK: Schemas

    mutating func evaluate(_ node: SchemaNode, _ value: JSONValue, collect: Bool, _ evaluated: inout Evaluated) -> Bool {
        switch node.kind {
        case .accept:
            return true
        case .reject:
            return fail(node, nil, "false schema: no value is valid here")
        case .keywords:
            break
        }
        if node.isLeaf && !collectErrors {
            // Only assertions on this value: no subschema, so no depth, scope or annotations.
            return node.keywords.withUnsafeBufferPointer { keywords in
                for index in keywords.indices where !Self.holds(keywords[index].check, value) { return false }
                return true
            }
        }
        depth += 1
        defer { depth -= 1 }
        let limit = options.maxEvaluationDepth
        if depth > limit {
            return fail(node, nil, "evaluation depth limit \(limit) exceeded ($ref recursion or nesting too deep)")
        }
        let entered = node.isResourceRoot
        if entered { scope.append(node.resource) }
        defer { if entered { scope.removeLast() } }

        let tracking = collect || node.hasUnevaluated
        var local = Evaluated()
        // Keywords are read in place from the array's buffer: no copy, no retain per keyword.
        let valid = node.keywords.withUnsafeBufferPointer { keywords -> Bool in
            var valid = true
            for index in keywords.indices where !check(keywords[index], node, value, tracking, &local) {
                valid = false
                if !collectErrors { return false }
            }
            return valid
        }
        if valid && collect { evaluated.merge(local) }
        return valid
    }

    /// Applies `node` to a child instance (a member or an item): annotations stay with the child.
    /// Path tokens are only turned into text when errors are collected.
    @inline(__always)
    private mutating func descend(_ node: SchemaNode, _ value: JSONValue, _ keyword: String, _ sub: PathToken?, instance token: PathToken) -> Bool {
        var scratch = Evaluated()
        guard collectErrors else { return evaluate(node, value, collect: false, &scratch) }
        keywordPath.append(keyword)
        if let sub { keywordPath.append(sub.text) }
        instancePath.append(token.text)
        let valid = evaluate(node, value, collect: false, &scratch)
        keywordPath.removeLast(sub == nil ? 1 : 2)
        instancePath.removeLast()
        return valid
    }

    /// Applies `node` in place (same instance), passing annotations up when tracking.
    @inline(__always)
    private mutating func inPlace(_ node: SchemaNode, _ value: JSONValue, _ keyword: String, _ sub: PathToken?, _ tracking: Bool, _ local: inout Evaluated) -> Bool {
        guard collectErrors else { return evaluate(node, value, collect: tracking, &local) }
        keywordPath.append(keyword)
        if let sub { keywordPath.append(sub.text) }
        let valid = evaluate(node, value, collect: tracking, &local)
        keywordPath.removeLast(sub == nil ? 1 : 2)
        return valid
    }

    /// Evaluates with error collection off: for subschemas whose failures are not errors
    /// (`not`, `if`, `contains`).
    @inline(__always)
    private mutating func quietly(_ node: SchemaNode, _ value: JSONValue, collect: Bool, _ evaluated: inout Evaluated) -> Bool {
        let saved = collectErrors
        collectErrors = false
        let valid = evaluate(node, value, collect: collect, &evaluated)
        collectErrors = saved
        return valid
    }

    // MARK: Keywords

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    @inline(__always)
    private mutating func check(_ keyword: Keyword, _ node: SchemaNode, _ value: JSONValue, _ tracking: Bool, _ local: inout Evaluated) -> Bool {
        switch keyword.check {
        case .type(let types):
            return types.accepts(value) || fail(node, "type", "\(value.typeName) is not an allowed type")
        case .constant(let expected):
            return value == expected || fail(node, "const", "value is not the constant \(expected.compactText)")
        case .enumeration(let set):
            return set.contains(value) || fail(node, "enum", "value is not one of the enumerated values")
        case .multipleOf(let divisor):
            guard case .number(let number) = value else { return true }
            return Arithmetic.isMultiple(number, of: divisor) || fail(node, "multipleOf", "\(number) is not a multiple of \(divisor)")
        case .minimum(let limit):
            guard case .number(let number) = value else { return true }
            return !(number < limit) || fail(node, "minimum", "\(number) is less than \(limit)")
        case .exclusiveMinimum(let limit):
            guard case .number(let number) = value else { return true }
            return limit < number || fail(node, "exclusiveMinimum", "\(number) is not greater than \(limit)")
        case .maximum(let limit):
            guard case .number(let number) = value else { return true }
            return !(limit < number) || fail(node, "maximum", "\(number) is greater than \(limit)")
        case .exclusiveMaximum(let limit):
            guard case .number(let number) = value else { return true }
            return number < limit || fail(node, "exclusiveMaximum", "\(number) is not less than \(limit)")
        case .minLength(let limit):
            guard case .string(let string) = value else { return true }
            if string.utf8.count >= limit &* 4 { return true }
            return string.unicodeScalars.count >= limit || fail(node, "minLength", "string is shorter than \(limit) characters")
        case .maxLength(let limit):
            guard case .string(let string) = value else { return true }
            if string.utf8.count <= limit { return true }
            return string.unicodeScalars.count <= limit || fail(node, "maxLength", "string is longer than \(limit) characters")
        case .pattern(let regex):
            guard case .string(let string) = value else { return true }
            switch regex.search(string) {
            case true?: return true
            case false?: return fail(node, "pattern", "string does not match the pattern \(regex.source)")
            case nil: return fail(node, "pattern", "pattern \(regex.source) exceeded its step limit on this string")
            }
        case .format(let format):
            guard case .string(let string) = value else { return true }
            return format.accepts(string) || fail(node, "format", "string is not a valid \(format.rawValue)")
        case .minItems(let limit):
            guard case .array(let items) = value else { return true }
            return items.count >= limit || fail(node, "minItems", "array has fewer than \(limit) items")
        case .maxItems(let limit):
            guard case .array(let items) = value else { return true }
            return items.count <= limit || fail(node, "maxItems", "array has more than \(limit) items")
        case .uniqueItems:
            guard case .array(let items) = value else { return true }
            return Self.allUnique(items) || fail(node, "uniqueItems", "array items are not unique")
        case .minProperties(let limit):
            guard case .object(let object) = value else { return true }
            return object.count >= limit || fail(node, "minProperties", "object has fewer than \(limit) properties")
        case .maxProperties(let limit):
            guard case .object(let object) = value else { return true }
            return object.count <= limit || fail(node, "maxProperties", "object has more than \(limit) properties")
        case .required(let names):
            guard case .object(let object) = value else { return true }
            var valid = true
            for name in names where !Self.has(object, name) {
                valid = false
                if !collectErrors { return false }
                record(node, "required", "required property \"\(name)\" is missing")
            }
            return valid
        case .dependentRequired(let entries):
            guard case .object(let object) = value else { return true }
            var valid = true
            for (trigger, names) in entries where Self.has(object, trigger) {
                for name in names where !Self.has(object, name) {
                    valid = false
                    if !collectErrors { return false }
                    record(node, "dependentRequired", "property \"\(name)\" is required when \"\(trigger)\" is present")
                }
            }
            return valid
        case .ref(let target):
            return followReference(target.node, value, keyword.name, tracking, &local)
        case .dynamicRef(let initial, let anchor):
            var target = initial
            for resource in scope {
                if let found = resource.dynamicAnchors[anchor] {
                    target = found
                    break
                }
            }
            return followReference(target.node, value, "$dynamicRef", tracking, &local)
        case .allOf(let nodes):
            var valid = true
            for (i, child) in nodes.enumerated() where !inPlace(child.node, value, "allOf", .index(i), tracking, &local) {
                valid = false
                if !collectErrors { return false }
            }
            return valid
        case .anyOf(let nodes):
            let mark = errors.count
            var matched = false
            for (i, child) in nodes.enumerated() where inPlace(child.node, value, "anyOf", .index(i), tracking, &local) {
                matched = true
                if !tracking && !collectErrors { return true }
            }
            if matched {
                if collectErrors { errors.removeSubrange(mark...) }
                return true
            }
            return fail(node, "anyOf", "value matches none of the anyOf schemas")
        case .oneOf(let nodes):
            let mark = errors.count
            var matches = 0
            var firstMatch = -1
            var matchedAnnotations = Evaluated()
            for (i, child) in nodes.enumerated() {
                var branch = Evaluated()
                if inPlace(child.node, value, "oneOf", .index(i), tracking, &branch) {
                    matches += 1
                    if matches == 1 {
                        firstMatch = i
                        matchedAnnotations = branch
                    } else {
                        break
                    }
                }
            }
            if matches == 1 {
                if collectErrors { errors.removeSubrange(mark...) }
                if tracking { local.merge(matchedAnnotations) }
                return true
            }
            if matches > 1 {
                if collectErrors { errors.removeSubrange(mark...) }
                return fail(node, "oneOf", "value matches more than one oneOf schema (\(firstMatch) and another)")
            }
            return fail(node, "oneOf", "value matches none of the oneOf schemas")
        case .not(let child):
            var scratch = Evaluated()
            let matched = quietly(child.node, value, collect: false, &scratch)
            return !matched || fail(node, "not", "value matches the schema in not")
        case .conditional(let condition, let then, let otherwise):
            var branch = Evaluated()
            let holds = quietly(condition.node, value, collect: tracking, &branch)
            if holds {
                if tracking { local.merge(branch) }
                guard let then else { return true }
                return inPlace(then.node, value, "then", nil, tracking, &local)
            }
            guard let otherwise else { return true }
            return inPlace(otherwise.node, value, "else", nil, tracking, &local)
        case .properties(let applicator):
            guard case .object(let object) = value else { return true }
            return checkProperties(applicator, node, object, tracking, &local)
        case .items(let applicator):
            guard case .array(let items) = value else { return true }
            var valid = true
            let prefixCount = min(applicator.prefix.count, items.count)
            for i in 0..<prefixCount where !descend(applicator.prefix[i].node, items[i], "prefixItems", .index(i), instance: .index(i)) {
                valid = false
                if !collectErrors { return false }
            }
            if let rest = applicator.rest, items.count > prefixCount {
                for i in prefixCount..<items.count where !descend(rest.node, items[i], "items", nil, instance: .index(i)) {
                    valid = false
                    if !collectErrors { return false }
                }
            }
            if tracking {
                if applicator.rest != nil { local.allItems = true }
                local.itemPrefix = max(local.itemPrefix, prefixCount)
            }
            return valid
        case .contains(let child, let minimum, let maximum):
            guard case .array(let items) = value else { return true }
            var count = 0
            for (i, item) in items.enumerated() {
                var scratch = Evaluated()
                if quietly(child.node, item, collect: false, &scratch) {
                    count += 1
                    if tracking { local.insertItem(i) } else if count >= minimum && maximum == nil { break }
                    if let maximum, count > maximum, !tracking { break }
                }
            }
            if count < minimum {
                return fail(node, minimum == 1 ? "contains" : "minContains", "array contains \(count) matching items, fewer than \(minimum)")
            }
            if let maximum, count > maximum {
                return fail(node, "maxContains", "array contains more than \(maximum) matching items")
            }
            return true
        case .propertyNames(let child):
            guard case .object(let object) = value else { return true }
            var valid = true
            for (key, _) in object.members where !descend(child.node, .string(key), "propertyNames", nil, instance: .key(key)) {
                valid = false
                if !collectErrors { return false }
            }
            return valid
        case .dependentSchemas(let entries):
            guard case .object(let object) = value else { return true }
            var valid = true
            for (trigger, child) in entries where Self.has(object, trigger) {
                if !inPlace(child.node, value, "dependentSchemas", .key(trigger), tracking, &local) {
                    valid = false
                    if !collectErrors { return false }
                }
            }
            return valid
        case .unevaluatedItems(let child):
            guard case .array(let items) = value else { return true }
            if local.allItems || items.count <= local.itemPrefix { return true }
            var valid = true
            for i in local.itemPrefix..<items.count where !local.hasItem(i) {
                if !descend(child.node, items[i], "unevaluatedItems", nil, instance: .index(i)) {
                    valid = false
                    if !collectErrors { return false }
                }
            }
            if valid { local.allItems = true }
            return valid
        case .unevaluatedProperties(let child):
            guard case .object(let object) = value else { return true }
            if local.allProperties { return true }
            var valid = true
            for (key, member) in object.members where !local.hasProperty(key) {
                if !descend(child.node, member, "unevaluatedProperties", nil, instance: .key(key)) {
                    valid = false
                    if !collectErrors { return false }
                }
            }
            if valid { local.allProperties = true }
            return valid
        }
    }

    private mutating func followReference(_ target: SchemaNode, _ value: JSONValue, _ name: String, _ tracking: Bool, _ local: inout Evaluated) -> Bool {
        // Entering a subschema of another resource through a reference enters that resource's scope.
        let enters = !target.isResourceRoot && scope.last !== target.resource
        if enters { scope.append(target.resource) }
        defer { if enters { scope.removeLast() } }
        return inPlace(target, value, name, nil, tracking, &local)
    }

    private mutating func checkProperties(_ applicator: PropertyApplicator, _ node: SchemaNode, _ object: JSONObject, _ tracking: Bool, _ local: inout Evaluated) -> Bool {
        var valid = true
        var requiredSeen = 0
        var hint = 0
        for (key, member) in object.members {
            var matched = false
            if let i = applicator.lookup(key, hint: &hint) {
                matched = true
                if applicator.named[i].required { requiredSeen += 1 }
                if !descend(applicator.named[i].node.node, member, "properties", .key(key), instance: .key(key)) {
                    valid = false
                    if !collectErrors { return false }
                }
            }
            for pattern in applicator.patterns {
                guard let found = pattern.regex.search(key) else {
                    valid = false
                    if !collectErrors { return false }
                    record(node, "patternProperties", "pattern \(pattern.source) exceeded its step limit on key \"\(key)\"")
                    continue
                }
                guard found else { continue }
                matched = true
                if !descend(pattern.node.node, member, "patternProperties", .key(pattern.source), instance: .key(key)) {
                    valid = false
                    if !collectErrors { return false }
                }
            }
            if !matched, let additional = applicator.additional {
                if !descend(additional.node, member, "additionalProperties", nil, instance: .key(key)) {
                    valid = false
                    if !collectErrors { return false }
                }
            }
            if tracking && matched { local.insertProperty(key) }
        }
        if requiredSeen < applicator.requiredCount {
            valid = false
            if !collectErrors { return false }
            for name in applicator.requiredNames where !Self.has(object, name) {
                record(node, "required", "required property \"\(name)\" is missing")
            }
        }
        if tracking && applicator.additional != nil { local.allProperties = true }
        return valid
    }

    /// The fast path's version of an assertion keyword: the same tests as `check`, with nothing
    /// to record.
    @inline(never)
    static func holds(_ check: Check, _ value: JSONValue) -> Bool {
        switch check {
        case .type(let types): return types.accepts(value)
        case .constant(let expected): return value == expected
        case .enumeration(let set): return set.contains(value)
        case .multipleOf(let divisor):
            guard case .number(let number) = value else { return true }
            return Arithmetic.isMultiple(number, of: divisor)
        case .minimum(let limit):
            guard case .number(let number) = value else { return true }
            return !(number < limit)
        case .exclusiveMinimum(let limit):
            guard case .number(let number) = value else { return true }
            return limit < number
        case .maximum(let limit):
            guard case .number(let number) = value else { return true }
            return !(limit < number)
        case .exclusiveMaximum(let limit):
            guard case .number(let number) = value else { return true }
            return number < limit
        case .minLength(let limit):
            guard case .string(let string) = value else { return true }
            return string.utf8.count >= limit &* 4 || string.unicodeScalars.count >= limit
        case .maxLength(let limit):
            guard case .string(let string) = value else { return true }
            return string.utf8.count <= limit || string.unicodeScalars.count <= limit
        case .pattern(let regex):
            guard case .string(let string) = value else { return true }
            return regex.search(string) == true
        case .format(let format):
            guard case .string(let string) = value else { return true }
            return format.accepts(string)
        case .minItems(let limit):
            guard case .array(let items) = value else { return true }
            return items.count >= limit
        case .maxItems(let limit):
            guard case .array(let items) = value else { return true }
            return items.count <= limit
        case .uniqueItems:
            guard case .array(let items) = value else { return true }
            return allUnique(items)
        case .minProperties(let limit):
            guard case .object(let object) = value else { return true }
            return object.count >= limit
        case .maxProperties(let limit):
            guard case .object(let object) = value else { return true }
            return object.count <= limit
        case .required(let names):
            guard case .object(let object) = value else { return true }
            return names.allSatisfy { has(object, $0) }
        case .dependentRequired(let entries):
            guard case .object(let object) = value else { return true }
            return entries.allSatisfy { trigger, names in !has(object, trigger) || names.allSatisfy { has(object, $0) } }
        default:
            return true
        }
    }

    static func has(_ object: JSONObject, _ name: String) -> Bool {
        for member in object.members where sameKey(member.key, name) {
            return true
        }
        return false
    }

    static func allUnique(_ items: [JSONValue]) -> Bool {
        if items.count <= 16 {
            for i in items.indices {
                for j in (i + 1)..<items.count where items[i] == items[j] { return false }
            }
            return true
        }
        var seen = Set<JSONValue>(minimumCapacity: items.count)
        for item in items where !seen.insert(item).inserted { return false }
        return true
    }
}

extension JSONValue {
    /// A short rendering for error messages.
    var compactText: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n.lexeme
        case .string(let s): return "\"" + (s.unicodeScalars.count > 40 ? String(s.unicodeScalars.prefix(40)) + "..." : s) + "\""
        case .array: return "[...]"
        case .object: return "{...}"
        }
    }
}
