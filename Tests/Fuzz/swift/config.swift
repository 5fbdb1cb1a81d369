// Fuzz target: the broker's config loading, as `privsep run` does it: strict JSON, the config
// schema (schema/config.schema.json, built in), then ConfigReader. Every input must end in a
// value or an error naming a pointer, never a trap.
import PrivSepBroker
import PrivSepJSON
import PrivSepSchema

nonisolated(unsafe) let configSchema: Schema? = try? SchemaRegistry.builtinSchema("config.schema.json")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let schema = configSchema else { fatalError("the built-in config schema does not load") }
    guard let document = try? JSONParser.parse(UnsafeRawBufferPointer(start: data, count: size)) else { return 0 }
    guard schema.isValid(document) else { return 0 }
    _ = try? ConfigReader(file: "/fuzz/config.json").read(document)
    return 0
}
