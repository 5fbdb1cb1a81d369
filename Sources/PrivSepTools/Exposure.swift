// How exposed each helper is, in the spirit of `systemd-analyze security`: every sandbox layer a
// helper does without, and every grant that reaches outside its box, adds to a score from 0
// (everything the default profile gives, nothing more) to 10 (no isolation at all). The weights
// are documented in docs/tools.md; they rank helpers, they do not measure risk.

import PrivSepBroker
import PrivSepJSON
import PrivSepSandbox

/// One reason a helper is exposed.
public struct ExposureItem: Sendable, Equatable {
    /// What it adds to the score.
    public let weight: Double
    /// What is missing or granted, in words.
    public let what: String
    /// The config pointer (`/helpers/NAME/...`) it comes from.
    public let pointer: String
    /// Printed as a warning by `check` (the small items only show in the table).
    public let warn: Bool
    /// A rule or bind wider than needed (`broad_rule`), rather than a missing layer.
    public let broad: Bool
}

/// The exposure of one helper.
public struct HelperExposure: Sendable {
    public let helper: String
    public let items: [ExposureItem]
    /// 0.0 ... 10.0, the sum of the items' weights, capped.
    public var score: Double { min(10, items.reduce(0) { $0 + $1.weight }) }
    /// OK below 2, MEDIUM below 5, EXPOSED below 8, UNSAFE from 8.
    public var rating: String {
        switch score {
        case ..<2: return "OK"
        case ..<5: return "MEDIUM"
        case ..<8: return "EXPOSED"
        default: return "UNSAFE"
        }
    }
    /// The score with one decimal, e.g. `9.0`.
    public var scoreText: String {
        let tenths = Int((score * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

/// The scoring.
public enum Exposure {
    /// Weights, one per layer or grant (docs/tools.md has the table).
    enum Weight {
        static let profileNone = 1.0
        static let hostRoot = 2.0
        static let hostNetwork = 1.5
        static let noPIDNamespace = 1.0
        static let capabilities = 0.5
        static let sameUID = 2.5
        static let noNewPrivs = 0.5
        static let noLandlock = 1.0
        static let noSeccomp = 1.5
        static let writeBind = 1.0
        static let writeBindsMax = 2.0
        static let broadBind = 2.0
        static let broadReadBind = 1.0
        static let landlockWrite = 0.5
        static let fileWrite = 0.5
        static let broadFileRule = 1.0
        static let netRules = 0.5
    }

    public static func assess(_ policy: LoadedPolicy, helper index: Int) -> HelperExposure {
        let helper = policy.config.helpers[index]
        let spec = policy.setup.plans[index].spec
        let base = "/helpers/\(helper.name)"
        var items: [ExposureItem] = []
        func add(_ weight: Double, _ what: String, _ member: String, warn: Bool = true, broad: Bool = false) {
            items.append(ExposureItem(weight: weight, what: what, pointer: base + member, warn: warn, broad: broad))
        }
        if spec.profile == .none { add(Weight.profileNone, "profile none: development only, no isolation by default", "/sandbox/profile") }
        if !spec.isEnabled(.mountns) { add(Weight.hostRoot, "sees the host's whole filesystem (root host)", "/sandbox/root") }
        if !spec.isEnabled(.netns) { add(Weight.hostNetwork, "has the host's network (network host)", "/sandbox/network") }
        if !spec.isEnabled(.pidns) { add(Weight.noPIDNamespace, "no pid namespace: sees and may signal host processes", "/sandbox/profile") }
        if !spec.isEnabled(.caps) { add(Weight.capabilities, "capability bounding set kept", "/sandbox/profile", warn: false) }
        if !spec.isEnabled(.uid) { add(Weight.sameUID, "runs as the broker's own user", "/user") }
        if !spec.isEnabled(.nnp) { add(Weight.noNewPrivs, "no_new_privs not set", "/sandbox/profile", warn: false) }
        if !spec.isEnabled(.landlock) { add(Weight.noLandlock, "Landlock off", "/sandbox/landlock") }
        if !spec.isEnabled(.seccomp) { add(Weight.noSeccomp, "no seccomp filter", "/sandbox/seccomp") }
        items += mountItems(spec, base: base)
        if !spec.landlockWrite.isEmpty {
            add(Weight.landlockWrite, "Landlock write access to \(spec.landlockWrite.joined(separator: ", "))", "/sandbox/landlock_write", warn: false)
        }
        items += fileRuleItems(helper, base: base)
        if let net = helper.raw["net"], ServiceSection.hasRules(net) {
            add(Weight.netRules, "may have sockets made for it (net rules)", "/net", warn: false)
        }
        return HelperExposure(helper: helper.name, items: items)
    }

    /// Binds: read-write ones are write access to the host; `/` or a top-level directory is broad.
    static func mountItems(_ spec: SandboxSpec, base: String) -> [ExposureItem] {
        var items: [ExposureItem] = []
        var writeWeight = 0.0
        for mount in spec.mounts where mount.kind != .tmpfs {
            let member = mount.kind == .bind ? "/sandbox/bind" : "/sandbox/ro_bind"
            let depth = pathDepth(mount.source)
            if mount.kind == .bind {
                if depth <= 1 {
                    items.append(ExposureItem(weight: Weight.broadBind, what: "writable bind of \(mount.source): a whole top-level tree",
                                              pointer: base + member, warn: true, broad: true))
                } else {
                    let weight = min(Weight.writeBind, Weight.writeBindsMax - writeWeight)
                    writeWeight += weight
                    items.append(ExposureItem(weight: max(0, weight), what: "write access to the host's \(mount.source) (bind)",
                                              pointer: base + member, warn: true, broad: false))
                }
            } else if depth == 0 {
                items.append(ExposureItem(weight: Weight.broadReadBind, what: "read-only bind of the host's whole root /",
                                          pointer: base + member, warn: true, broad: true))
            }
        }
        return items
    }

    /// `files` rules: write access adds a little; `/`, or a recursive rule on a top-level
    /// directory, is broader than any helper needs.
    static func fileRuleItems(_ helper: HelperConfig, base: String) -> [ExposureItem] {
        guard case .array(let rules)? = helper.raw["files"] else { return [] }
        var items: [ExposureItem] = []
        var wrote = false
        for (index, rule) in rules.enumerated() {
            guard let path = rule["path"]?.stringValue else { continue }
            let access = (rule["access"]?.arrayValue ?? []).compactMap(\.stringValue)
            let recursive = rule["recursive"]?.boolValue ?? false
            let pointer = "\(base)/files/\(index)"
            let writes = access.contains { $0 != "read" }
            let depth = pathDepth(path)
            if depth == 0 || (recursive && depth == 1) {
                let what = depth == 0 ? "file rule on / (everything)" : "recursive file rule on all of \(path)"
                items.append(ExposureItem(weight: Weight.broadFileRule, what: "\(what), access \(access.joined(separator: ","))",
                                          pointer: pointer, warn: true, broad: true))
            }
            if writes && !wrote {
                wrote = true
                items.append(ExposureItem(weight: Weight.fileWrite, what: "may have files opened for writing (files rules)",
                                          pointer: pointer, warn: false, broad: false))
            }
        }
        return items
    }

    /// Number of components: `/` is 0, `/etc` 1, `/srv/www` 2.
    static func pathDepth(_ path: String) -> Int {
        path.split(separator: "/").count
    }
}
