// Fuzz target: the strict JSON parser (PrivSepJSON). Any input must parse or throw a
// JSONParseError, never trap; a value that parses must serialize to text that parses back to an
// equal value (the serializer and the parser agree).
import PrivSepJSON

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let value = try? JSONParser.parse(bytes) else { return 0 }
    let text = value.serialized()
    guard let again = try? JSONParser.parse(text) else { fatalError("serialized output does not parse: \(value.jsonText)") }
    guard again == value else { fatalError("round trip changed the value: \(value.jsonText)") }
    return 0
}
