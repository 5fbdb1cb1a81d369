// privsep.user.lookup: passwd and group entries for helpers whose root has no /etc/passwd of
// the host, limited to the user names in the helper's `users` policy.
//
// A lookup by uid is answered only when the uid belongs to a permitted name; any other uid,
// existing or not, is privsep.denied, so a helper cannot probe which uids exist.

import Glibc
import PrivSepJSON
import PrivSepWire

enum UserService {
    /// Bounds on what one lookup may allocate.
    static let maxBuffer = 1 << 20
    static let maxGroups = 1024

    static func lookup(_ policy: ServicePolicy, _ body: JSONObject) -> ServiceDecision {
        if let name = body["name"]?.stringValue {
            guard let index = policy.userNames.firstIndex(of: name) else {
                return .denied("looking up user \(name) is not permitted", reason: "no_rule")
            }
            let rule = "\(policy.pointer)/users/\(index)"
            guard let entry = passwd(name: name) else {
                return .failed(.notFound, "no user \(name)", rule: rule)
            }
            return .granted(reply(entry), rule: rule)
        }
        guard let uid = body["uid"]?.int64Value.flatMap(UInt32.init(exactly:)) else {
            return .failed(.invalid, "name or uid is required", rule: nil)
        }
        guard let entry = passwd(uid: uid), let index = policy.userNames.firstIndex(of: entry.name) else {
            return .denied("looking up uid \(uid) is not permitted", reason: "no_rule")
        }
        return .granted(reply(entry), rule: "\(policy.pointer)/users/\(index)")
    }

    struct Entry {
        var name: String
        var uid: UInt32
        var gid: UInt32
        var gecos: String
        var home: String
        var shell: String
    }

    private static func reply(_ entry: Entry) -> JSONObject {
        var body = JSONObject()
        body["name"] = .string(entry.name)
        body["uid"] = .number(JSONNumber(Int64(entry.uid)))
        body["gid"] = .number(JSONNumber(Int64(entry.gid)))
        body["gecos"] = .string(String(entry.gecos.utf8.prefix(1024)) ?? "")
        body["home"] = .string(entry.home)
        body["shell"] = .string(entry.shell)
        body["groups"] = .array(groups(entry).map { group in
            .object(["name": .string(group.name), "gid": .number(JSONNumber(Int64(group.gid)))])
        })
        return body
    }

    static func passwd(name: String) -> Entry? {
        withPasswd { record, buffer, count, result in getpwnam_r(name, record, buffer, count, result) }
    }

    static func passwd(uid: UInt32) -> Entry? {
        withPasswd { record, buffer, count, result in getpwuid_r(uid, record, buffer, count, result) }
    }

    /// Runs a *_r lookup with a buffer that grows on ERANGE up to `maxBuffer`.
    private static func withPasswd(
        _ call: (UnsafeMutablePointer<Glibc.passwd>, UnsafeMutablePointer<CChar>, Int,
                 UnsafeMutablePointer<UnsafeMutablePointer<Glibc.passwd>?>) -> Int32
    ) -> Entry? {
        var size = 16_384
        while size <= maxBuffer {
            var record = Glibc.passwd()
            var result: UnsafeMutablePointer<Glibc.passwd>?
            var buffer = [CChar](repeating: 0, count: size)
            let status = buffer.withUnsafeMutableBufferPointer { call(&record, $0.baseAddress!, size, &result) }
            if status == ERANGE {
                size *= 2
                continue
            }
            guard status == 0, result != nil else { return nil }
            return Entry(
                name: String(cString: record.pw_name), uid: record.pw_uid, gid: record.pw_gid,
                gecos: record.pw_gecos.map { String(cString: $0) } ?? "", home: String(cString: record.pw_dir),
                shell: String(cString: record.pw_shell))
        }
        return nil
    }

    /// The user's groups (primary first), each with its name; groups without a name are left out.
    private static func groups(_ entry: Entry) -> [(name: String, gid: UInt32)] {
        var count: Int32 = Int32(maxGroups)
        var ids = [gid_t](repeating: 0, count: maxGroups)
        // On -1 (more than maxGroups) count holds the number needed; the first maxGroups are kept.
        if getgrouplist(entry.name, entry.gid, &ids, &count) < 0 { count = Int32(maxGroups) }
        var groups: [(name: String, gid: UInt32)] = []
        for gid in ids.prefix(Int(max(0, min(count, Int32(maxGroups))))) {
            guard let name = groupName(gid), !groups.contains(where: { $0.gid == gid }) else { continue }
            groups.append((name, gid))
        }
        return groups
    }

    private static func groupName(_ gid: gid_t) -> String? {
        var size = 16_384
        while size <= maxBuffer {
            var record = group()
            var result: UnsafeMutablePointer<group>?
            var buffer = [CChar](repeating: 0, count: size)
            let status = buffer.withUnsafeMutableBufferPointer { getgrgid_r(gid, &record, $0.baseAddress!, size, &result) }
            if status == ERANGE {
                size *= 2
                continue
            }
            guard status == 0, result != nil else { return nil }
            return String(cString: record.gr_name)
        }
        return nil
    }
}
