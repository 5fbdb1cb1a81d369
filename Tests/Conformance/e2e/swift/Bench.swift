// `conformance-swift bench`: the Swift pinger of Tests/Benchmarks/clients. It waits for its
// turn from the bench coordinator (bench.clients.turn), times `rounds` privsep.ping round trips
// through the broker with PrivSepHelper, reports them (bench.clients.done), and repeats until the
// coordinator says stop.

import Glibc
import PrivSepHelper

struct Turn: Codable { var rounds: Int; var stop: Bool }
struct Done: Codable { var client: String; var rounds: Int; var ns: Int64 }
struct Seq: Codable { var seq: Int }

func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

func runBench() async -> Int32 {
    do {
        let client = try await PrivSepClient.connect(client: "bench-swift/1")
        while true {
            let turn = try await client.request("bench.clients.turn", body: Empty(), as: Turn.self)
            if turn.stop { break }
            let start = monotonicNanoseconds()
            for seq in 1...max(turn.rounds, 1) {
                _ = try await client.request("privsep.ping", body: Seq(seq: seq))
            }
            let elapsed = monotonicNanoseconds() - start
            _ = try await client.request("bench.clients.done", body: Done(client: "swift", rounds: turn.rounds, ns: elapsed))
        }
        await client.close()
        return 0
    } catch {
        say("bench-swift: \(error)")
        return 1
    }
}
