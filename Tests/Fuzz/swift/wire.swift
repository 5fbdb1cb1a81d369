// Fuzz target: the frame decoder and receiver (PrivSepWire.FrameReceiver), as the broker uses it
// (the peer is a helper). The first input byte picks the read size, so one input covers frames
// split across reads and many frames per read; the stream then ends (finish()).
import PrivSepWire

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzWire(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let chunk = Int(data[0]) + 1
    var receiver = FrameReceiver(sender: .helper, limits: WireLimits(maxFrame: 4096))
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
