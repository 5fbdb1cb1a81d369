// Step 6 of the sequence: the program's root filesystem. Runs only in a fresh mount namespace
// (the sequence unshared CLONE_NEWNS in step 5), so nothing here is visible to the host.
//
// Layout while building (after the first pivot_root):
//   /            a small tmpfs (the "base"), mounted over /tmp of the namespace
//   /oldroot     the host's root: bind sources are resolved here
//   /newroot     a tmpfs that becomes the program's root
// then /oldroot is detached, /newroot becomes / by a second pivot_root, and / is made read-only.
#if canImport(Glibc)
import Glibc
#endif
import CPrivSep

/// mount(2) flags (fixed by the kernel ABI).
enum MountFlag {
    static let rdonly: UInt = 1
    static let nosuid: UInt = 2
    static let nodev: UInt = 4
    static let noexec: UInt = 8
    static let remount: UInt = 32
    static let noatime: UInt = 1024
    static let nodiratime: UInt = 2048
    static let bind: UInt = 4096
    static let rec: UInt = 16384
    static let `private`: UInt = 1 << 18
    static let relatime: UInt = 1 << 21
    static let detach: Int32 = 2  // umount2 MNT_DETACH
}

struct RootBuilder {
    let spec: SandboxSpec
    /// Whether the program has its own pid namespace (decides how /proc is mounted).
    let withProc: Bool

    /// Files a dynamically linked program (and a shell) needs from /etc. `alternatives` holds
    /// the symlinks Debian resolves tools through (/usr/bin/awk -> /etc/alternatives/awk).
    static let etcFiles = ["ld.so.cache", "passwd", "group", "nsswitch.conf", "hosts", "localtime", "alternatives"]
    /// Top-level entries of a merged-/usr system: either directories (bound) or symlinks (copied).
    static let systemDirs = ["bin", "sbin", "lib", "lib64", "lib32", "libx32"]
    static let devNodes = ["null", "zero", "urandom"]

    func build() throws(SandboxFailure) {
        // Nothing may propagate to or from the host's mounts.
        try mount(nil, "/", nil, MountFlag.rec | MountFlag.private, nil, what: "make / private")
        try mount("tmpfs", "/tmp", "tmpfs", MountFlag.nosuid | MountFlag.nodev, "mode=0700,size=64k", what: "base tmpfs")
        try mkdir("/tmp/newroot", 0o755)
        try mkdir("/tmp/oldroot", 0o755)
        guard cps_pivot_root("/tmp", "/tmp/oldroot") == 0 else { throw fail("/tmp", "pivot_root to the base") }
        guard Glibc.chdir("/") == 0 else { throw fail("/", "chdir") }
        try mount("tmpfs", "/newroot", "tmpfs", MountFlag.nosuid | MountFlag.nodev, "mode=0755,size=1m,nr_inodes=4096", what: "root tmpfs")

        if spec.root == .system { try buildSystem() }
        for m in spec.mounts { try add(m) }

        // The host's root leaves the namespace entirely.
        guard umount2("/oldroot", MountFlag.detach) == 0 else { throw fail("/oldroot", "detach the old root") }
        guard Glibc.chdir("/newroot") == 0 else { throw fail("/newroot", "chdir") }
        // pivot_root(".", ".") stacks the old root on top of the new one; detaching "." removes it.
        guard cps_pivot_root(".", ".") == 0 else { throw fail("/newroot", "pivot_root to the new root") }
        guard umount2(".", MountFlag.detach) == 0 else { throw fail("/", "detach the base") }
        guard Glibc.chdir("/") == 0 else { throw fail("/", "chdir") }
        try mount(nil, "/", nil, MountFlag.remount | MountFlag.bind | MountFlag.rdonly | MountFlag.nosuid | MountFlag.nodev, nil,
                  what: "remount / read-only")
    }

    // MARK: The `system` root

    private func buildSystem() throws(SandboxFailure) {
        try bind("/usr", "/usr", readOnly: true)
        for name in RootBuilder.systemDirs {
            try copyOrBind("/" + name)
        }
        try mkdir("/newroot/etc", 0o755)
        for name in RootBuilder.etcFiles {
            try copyOrBind("/etc/" + name)
        }
        try mkdir("/newroot/dev", 0o755)
        try mount("tmpfs", "/newroot/dev", "tmpfs", MountFlag.nosuid | MountFlag.noexec, "mode=0755,size=64k,nr_inodes=64", what: "/dev tmpfs")
        for node in RootBuilder.devNodes {
            try bind("/dev/" + node, "/dev/" + node, readOnly: false)
        }
        try mkdir("/newroot/proc", 0o555)
        // subset=pid hides /proc/sys, /proc/kcore and friends (kernel >= 5.8). Without our own
        // pid namespace this proc shows the host's processes: hidepid=invisible hides those of
        // other uids. Older kernels reject the options and get a plain proc.
        let procOptions = withProc ? "subset=pid" : "subset=pid,hidepid=invisible"
        if Glibc.mount("proc", "/newroot/proc", "proc", MountFlag.nosuid | MountFlag.nodev | MountFlag.noexec, procOptions) != 0 {
            try mount("proc", "/newroot/proc", "proc", MountFlag.nosuid | MountFlag.nodev | MountFlag.noexec, nil, what: "/proc")
        }
        for (name, target) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                               ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")] {
            try symlink(target, "/newroot/dev/" + name)
        }
        try mount(nil, "/newroot/dev", nil, MountFlag.remount | MountFlag.bind | MountFlag.rdonly | MountFlag.nosuid | MountFlag.noexec, nil,
                  what: "remount /dev read-only")
        try mkdir("/newroot/tmp", 0o1777)
        try mount("tmpfs", "/newroot/tmp", "tmpfs", MountFlag.nosuid | MountFlag.nodev | MountFlag.noexec, "mode=1777,size=64m,nr_inodes=16384",
                  what: "/tmp tmpfs")
    }

    /// A host symlink is recreated as the same symlink (merged /usr: /bin -> usr/bin); a
    /// directory or file is bound read-only; a missing one is skipped.
    private func copyOrBind(_ path: String) throws(SandboxFailure) {
        var st = stat()
        guard lstat("/oldroot" + path, &st) == 0 else { return }
        if st.st_mode & S_IFMT == S_IFLNK {
            var buffer = [CChar](repeating: 0, count: 4096)
            let n = readlink("/oldroot" + path, &buffer, buffer.count - 1)
            guard n > 0 else { throw fail(path, "readlink") }
            let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            try symlink(target, "/newroot" + path)
        } else {
            try bind(path, path, readOnly: true)
        }
    }

    // MARK: Explicit mounts

    private func add(_ m: SandboxSpec.Mount) throws(SandboxFailure) {
        switch m.kind {
        case .roBind: try bind(m.source, m.destination, readOnly: true)
        case .bind: try bind(m.source, m.destination, readOnly: false)
        case .tmpfs:
            try makeDirectories("/newroot" + m.destination)
            try mount("tmpfs", "/newroot" + m.destination, "tmpfs", MountFlag.nosuid | MountFlag.nodev, "mode=0755,size=64m,nr_inodes=16384",
                      what: "--tmpfs")
        }
    }

    /// Binds host `source` at `destination` in the new root. Not recursive: submounts of the
    /// source stay out (a recursive bind could not be made read-only in one step).
    private func bind(_ source: String, _ destination: String, readOnly: Bool) throws(SandboxFailure) {
        let from = "/oldroot" + source
        let to = "/newroot" + destination
        var st = stat()
        guard fstatat(AT_FDCWD, from, &st, 0) == 0 else { throw fail(source, "bind source") }
        if st.st_mode & S_IFMT == S_IFDIR {
            try makeDirectories(to)
        } else {
            try makeDirectories(parent(of: to))
            let fd = open(to, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
            guard fd >= 0 else { throw fail(destination, "create mount point") }
            close(fd)
        }
        try mount(from, to, nil, MountFlag.bind, nil, what: "bind " + source)
        // The remount must repeat the flags the kernel locked on the source mount (in a user
        // namespace it refuses to clear them), then adds ours.
        var vfs = statvfs()
        guard statvfs(to, &vfs) == 0 else { throw fail(destination, "statvfs") }
        var flags = MountFlag.remount | MountFlag.bind | MountFlag.nosuid | lockedFlags(vfs.f_flag)
        if readOnly { flags |= MountFlag.rdonly }
        // Device nodes need their device; everything else gets nodev.
        if st.st_mode & S_IFMT != S_IFCHR { flags |= MountFlag.nodev }
        try mount(nil, to, nil, flags, nil, what: readOnly ? "remount read-only" : "remount")
    }

    private func lockedFlags(_ f: UInt) -> UInt {
        var out: UInt = 0
        // statvfs ST_* bits: RDONLY 1, NODEV 4, NOEXEC 8, NOATIME 1024, NODIRATIME 2048, RELATIME 4096.
        if f & 4 != 0 { out |= MountFlag.nodev }
        if f & 8 != 0 { out |= MountFlag.noexec }
        if f & 1024 != 0 { out |= MountFlag.noatime }
        if f & 2048 != 0 { out |= MountFlag.nodiratime }
        if f & 4096 != 0 { out |= MountFlag.relatime }
        if f & 1 != 0 { out |= MountFlag.rdonly }
        return out
    }

    // MARK: Helpers

    private func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// mkdir -p, inside /newroot only (the caller prefixes it).
    private func makeDirectories(_ path: String) throws(SandboxFailure) {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            if Glibc.mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw fail(String(current.dropFirst("/newroot".count)), "mkdir")
            }
        }
    }

    private func mkdir(_ path: String, _ mode: mode_t) throws(SandboxFailure) {
        guard Glibc.mkdir(path, mode) == 0 || errno == EEXIST else { throw fail(path, "mkdir") }
        if mode & 0o1000 != 0 { chmod(path, mode) }  // the umask drops the sticky bit's neighbours
    }

    private func symlink(_ target: String, _ path: String) throws(SandboxFailure) {
        guard Glibc.symlink(target, path) == 0 else { throw fail(path, "symlink") }
    }

    private func mount(_ source: String?, _ target: String, _ type: String?, _ flags: UInt, _ data: String?, what: String) throws(SandboxFailure) {
        let rc: Int32
        if let data {
            rc = Glibc.mount(source, target, type, flags, data)
        } else {
            rc = Glibc.mount(source, target, type, flags, nil)
        }
        guard rc == 0 else { throw fail(target, what) }
    }

    private func fail(_ path: String, _ what: String) -> SandboxFailure {
        let code = errno
        var shown = path
        if shown.hasPrefix("/newroot/") { shown = String(shown.dropFirst("/newroot".count)) }
        if shown.hasPrefix("/oldroot/") { shown = String(shown.dropFirst("/oldroot".count)) }
        return SandboxFailure(step: .mounts, errno: code, path: shown, detail: what)
    }
}
