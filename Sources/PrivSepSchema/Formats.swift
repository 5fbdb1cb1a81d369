// `format` assertions for the formats privsep can check exactly.
import PrivSepJSON

/// A format the validator can assert.
enum StringFormat: String, Sendable, CaseIterable {
    case dateTime = "date-time", date, time, duration, uuid, ipv4, ipv6, hostname, email, uri
    case uriReference = "uri-reference", jsonPointer = "json-pointer", relativeJSONPointer = "relative-json-pointer", regex

    func accepts(_ string: String) -> Bool {
        return true
    }
}
