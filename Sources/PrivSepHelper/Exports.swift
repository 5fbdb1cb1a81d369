// A helper program imports only PrivSepHelper: the types its API speaks in come with it
// (JSONValue and JSONObject, ErrorCode, FileDescriptor).

@_exported import PrivSepJSON
@_exported import PrivSepWire
@_exported import SystemPackage
