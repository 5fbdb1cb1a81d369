// Fuzz target: the frame decoder and receiver (PrivSepWire.FrameReceiver), as the broker uses it
// (the peer is a helper). The first input byte picks the read size, so one input covers frames
// split across reads and many frames per read; the stream then ends (finish()). A first byte of
// 0xFE instead takes the rest as one frame's body and compares the receiver, which reads plain
// frames with its envelope scanner, with the full path (`Envelope.decode`): a message it delivers
// must be the envelope and body bytes the full path finds, and a frame the full path accepts
// without descriptors must be delivered as such; fatalError() if not.
import PrivSepJSON
import PrivSepWire

private let limits = WireLimits(maxFrame: 4096)

private func compareWithFullPath(_ body: UnsafeBufferPointer<UInt8>) {
    guard body.count >= 2, body.count <= limits.maxFrame else { return }
    let bytes = Array(body)
    let count = bytes.count
    let framed = [UInt8(count >> 24 & 0xFF), UInt8(count >> 16 & 0xFF), UInt8(count >> 8 & 0xFF), UInt8(count & 0xFF)] + bytes
    var receiver = FrameReceiver(sender: .helper, limits: limits)
    let outcomes = try? receiver.receive(framed)
    let full = try? Envelope.decode(frame: bytes, sender: .helper, limits: limits.json)
    if case .message(let message)? = outcomes?.first {
        guard let full, full == message.envelope else { fatalError("receiver delivered what the full path refuses or reads otherwise") }
        let span = bytes.withUnsafeBytes { try? JSONParser.parse($0, limits: limits.json, locating: "body").span }
        guard message.envelope.receivedBody.map(Array.init) == span.flatMap({ $0 }).map({ Array(bytes[$0]) }) else {
            fatalError("receiver's body bytes differ from the full path's")
        }
    } else if let full, full.fds == 0 {
        fatalError("receiver did not deliver a frame the full path accepts")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    if data[0] == 0xFE {
        compareWithFullPath(UnsafeBufferPointer(start: data + 1, count: size - 1))
        return 0
    }
    let chunk = Int(data[0]) + 1
    var receiver = FrameReceiver(sender: .helper, limits: limits)
    var offset = 1
    do {
        while offset < size {
            let end = min(size, offset + chunk)
            _ = try receiver.receive(UnsafeRawBufferPointer(start: data + offset, count: end - offset), fds: [])
            offset = end
        }
        try receiver.finish()
    } catch {
        receiver.closeAll()
    }
    return 0
}
