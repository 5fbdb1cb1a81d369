// Fuzz target: the schema compiler and validator (PrivSepSchema). Input: a schema document, a
// NUL byte, an instance document. Compiling must succeed or throw a SchemaError; validating must
// return a result; neither may trap or run away (the options bound depth and regex steps).
import PrivSepJSON
import PrivSepSchema

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSchema(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard let nul = bytes.firstIndex(of: 0) else { return 0 }
    guard let schemaDoc = try? JSONParser.parse(Array(bytes[..<nul])),
        let instance = try? JSONParser.parse(Array(bytes[(nul + 1)...]))
    else { return 0 }
    let compiler = SchemaCompiler(options: SchemaOptions(assertFormat: true))
    guard (try? compiler.add(schemaDoc, uri: "urn:fuzz:schema")) != nil,
        let schema = try? compiler.compile("urn:fuzz:schema")
    else { return 0 }
    _ = schema.validate(instance)
    return 0
}
