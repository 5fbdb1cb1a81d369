// Fuzz target: the schema compiler and validator (PrivSepSchema). Input: a schema document, a
// NUL byte, an instance document. Compiling must succeed or throw a SchemaError; validating must
// return a result; neither may trap or run away (the options bound depth and regex steps).
// Where the check of a body from its bytes (`Schema.checkPlainObject`) vouches for the instance,
// under the default limits and under small ones, the parser must read the same value to the
// same end with the same count, and `isValid` must accept it; fatalError() if not.
import PrivSepJSON
import PrivSepSchema

private let smallLimits = JSONLimits(maxDepth: 2, maxStringBytes: 8, maxContainerCount: 3, maxNodes: 4, maxNumberLength: 4)

private func comparePlainPath(_ schema: Schema, _ instance: UnsafeRawBufferPointer) {
    guard let start = instance.firstIndex(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) else { return }
    for (limits, enclosing) in [(JSONLimits.default, 1), (smallLimits, 1), (smallLimits, 0)] {
        guard let vouched = schema.checkPlainObject(in: instance, at: start, enclosingDepth: enclosing, limits: limits) else { continue }
        guard let parsed = try? JSONParser.parseValue(in: instance, at: start, enclosingDepth: enclosing, limits: limits),
              parsed.end == vouched.end, parsed.nodes == vouched.nodes
        else { fatalError("the plain check vouched for bytes the parser refuses or reads otherwise") }
        guard schema.isValid(parsed.value) else { fatalError("the plain check vouched for an instance isValid refuses") }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSchema(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard let nul = bytes.firstIndex(of: 0), let schemaDoc = try? JSONParser.parse(Array(bytes[..<nul])) else { return 0 }
    let compiler = SchemaCompiler(options: SchemaOptions(assertFormat: true))
    guard (try? compiler.add(schemaDoc, uri: "urn:fuzz:schema")) != nil,
        let schema = try? compiler.compile("urn:fuzz:schema")
    else { return 0 }
    comparePlainPath(schema, UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes[(nul + 1)...])))
    guard let instance = try? JSONParser.parse(Array(bytes[(nul + 1)...])) else { return 0 }
    _ = schema.validate(instance)
    return 0
}
