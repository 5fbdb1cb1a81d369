// What a JSON Schema says about the shape of its instances, reduced to what a generated type can
// express: scalars, constants, string enums, arrays, objects with named members, maps, or "any
// JSON". Validation stays the schema's job (the broker checks every body); generated types only
// have to be able to hold every valid instance.

import PrivSepJSON

/// The shape of a schema's instances.
indirect enum Shape: Equatable {
    case string, integer, number, boolean
    case constant(JSONValue)
    /// Every allowed value, when the schema is an `enum` of strings.
    case stringEnum([String])
    case array(Shape)
    case object(ObjectShape)
    /// An object with free member names and values of one shape.
    case map(Shape)
    /// Anything (several types, a schema that cannot be followed, or `true`).
    case any

    var isScalar: Bool {
        switch self {
        case .string, .integer, .number, .boolean, .stringEnum: return true
        case .constant(let value):
            if case .array = value { return false }
            if case .object = value { return false }
            return true
        default: return false
        }
    }
}

/// An object's members.
struct ObjectShape: Equatable {
    struct Member: Equatable {
        let name: String
        let shape: Shape
        let required: Bool
        let description: String
        /// The member's schema after following `$ref`s, for documentation.
        let schema: JSONValue
    }
    var members: [Member]
    /// Whether members beyond `members` are allowed.
    var open: Bool
}

extension SchemaSet {
    /// Deepest schema nesting followed when working out a shape; deeper is `any`.
    static let maxShapeDepth = 24

    /// The shape of `schema`, read at `base`.
    func shape(of schema: JSONValue, base: String, depth: Int = 0) -> Shape {
        guard depth < SchemaSet.maxShapeDepth, let (resolved, at) = dereference(schema, base: base) else { return .any }
        guard case .object(let node) = resolved else { return .any }
        if let constant = node["const"] { return .constant(constant) }
        if case .array(let values)? = node["enum"] {
            let strings = values.compactMap(\.stringValue)
            return strings.count == values.count ? .stringEnum(strings) : .any
        }
        for keyword in ["anyOf", "oneOf"] {
            if case .array(let branches)? = node[keyword] {
                return common(branches.map { shape(of: $0, base: at, depth: depth + 1) })
            }
        }
        if case .array(let all)? = node["allOf"], all.count == 1, node["type"] == nil, node["properties"] == nil {
            return shape(of: all[0], base: at, depth: depth + 1)
        }
        switch node["type"] {
        case .string("string")?: return .string
        case .string("integer")?: return .integer
        case .string("number")?: return .number
        case .string("boolean")?: return .boolean
        case .string("array")?:
            guard let items = node["items"] else { return .array(.any) }
            return .array(shape(of: items, base: at, depth: depth + 1))
        case .string("object")?: return objectShape(node, base: at, depth: depth)
        case nil where node["properties"] != nil: return objectShape(node, base: at, depth: depth)
        default: return .any
        }
    }

    /// Branches that all hold strings (ipv4 or ipv6 or hostname) are a string; otherwise any.
    private func common(_ shapes: [Shape]) -> Shape {
        guard let first = shapes.first else { return .any }
        if shapes.allSatisfy({ $0 == first }) { return first }
        let stringy = shapes.allSatisfy { shape in
            switch shape {
            case .string, .stringEnum: return true
            case .constant(.string): return true
            default: return false
            }
        }
        return stringy ? .string : .any
    }

    private func objectShape(_ node: JSONObject, base: String, depth: Int) -> Shape {
        let required = Set((node["required"]?.arrayValue ?? []).compactMap(\.stringValue))
        var members: [ObjectShape.Member] = []
        if case .object(let properties)? = node["properties"] {
            for (name, schema) in properties.members {
                let resolved = dereference(schema, base: base)?.schema ?? schema
                let description = schema["description"]?.stringValue ?? resolved["description"]?.stringValue ?? ""
                members.append(ObjectShape.Member(
                    name: name, shape: shape(of: schema, base: base, depth: depth + 1), required: required.contains(name),
                    description: description, schema: mergedForDocs(schema, resolved)))
            }
        }
        let additional = node["additionalProperties"] ?? node["unevaluatedProperties"]
        if members.isEmpty, let additional, additional != .bool(false) {
            if case .bool(true) = additional { return .map(.any) }
            return .map(shape(of: additional, base: base, depth: depth + 1))
        }
        let open: Bool
        switch additional {
        case .bool(false)?: open = false
        default: open = true
        }
        return .object(ObjectShape(members: members, open: open))
    }

    /// A member's own keywords over its referenced schema's (a `description` beside a `$ref`).
    private func mergedForDocs(_ schema: JSONValue, _ resolved: JSONValue) -> JSONValue {
        guard case .object(let own) = schema, case .object(var target) = resolved, own["$ref"] != nil else { return resolved }
        for (key, value) in own.members where key != "$ref" { target[key] = value }
        return .object(target)
    }
}

/// Names for generated identifiers.
enum Naming {
    /// `demo.add` → `DemoAdd`; `max_bytes` → `MaxBytes`.
    static func upperCamel(_ text: String) -> String {
        var out = ""
        var upper = true
        for character in text {
            if character.isLetter || character.isNumber {
                out += upper ? character.uppercased() : String(character)
                upper = false
            } else {
                upper = true
            }
        }
        if let first = out.first, first.isNumber { out = "T" + out }
        return out.isEmpty ? "Value" : out
    }

    /// `max_bytes` → `maxBytes`.
    static func lowerCamel(_ text: String) -> String {
        let camel = upperCamel(text)
        guard let first = camel.first else { return camel }
        return first.lowercased() + camel.dropFirst()
    }

    /// `privsep.file.open` → `privsep_file_open`; any other character becomes `_`.
    static func snake(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            let ascii = scalar.isASCII && (("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar))
            out += ascii ? String(scalar).lowercased() : "_"
        }
        if let first = out.unicodeScalars.first, ("0"..."9").contains(first) { out = "_" + out }
        return out
    }
}

extension String {
    /// The text as a C or Swift string literal body (ASCII escapes; other scalars as is).
    var literalEscaped: String {
        var out = ""
        for scalar in unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 { out += "\\u{\(String(scalar.value, radix: 16))}" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }

    /// The text on one line, for comments: newlines become spaces, `*/` cannot end a C comment.
    var commentSafe: String {
        var out = ""
        for character in self { out += character.isNewline ? " " : String(character) }
        return out.replacingOccurrences("*/", with: "* /")
    }
}
