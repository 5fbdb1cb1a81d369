// `privsep run CONFIG`: the broker.
import ArgumentParser
import Glibc
import Logging
import PrivSepBroker

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Start the broker: spawn each configured helper in its sandbox, route, supervise.",
        discussion: """
            CONFIG is a JSON file checked against schema/config.schema.json (see privsep.json(5)). \
            The broker runs in the foreground and logs to stderr. SIGTERM or SIGINT stops it: \
            helpers get privsep.shutdown, then SIGTERM, then SIGKILL after the grace period.

            Exit status: 0 clean stop; 1 a required helper failed or the broker failed; \
            2 the config or schemas are invalid; 3 helpers had to be killed at shutdown.
            """)

    @Argument(help: "The broker configuration file.")
    var config: String

    @Option(help: "Log format: text or json (overrides the config).")
    var logFormat: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (overrides the config).")
    var logLevel: String?

    func run() throws {
        let descriptorLimit = raiseDescriptorLimit()
        let setup: BrokerSetup
        do {
            setup = try BrokerLoader.load(configPath: config, launcherPath: launcherPath())
        } catch {
            printError("privsep: \(error)")
            throw ExitCode(2)
        }
        let format = logFormat.flatMap(LogFormat.init(rawValue:)) ?? setup.config.logFormat
        let levelName = logLevel ?? setup.config.logLevel
        guard let level = Logger.Level(rawValue: levelName) else {
            printError("privsep: unknown log level \(levelName)")
            throw ExitCode(2)
        }
        let sink = LogSink(format: format, level: level)
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, sink: sink) }
        let logger = Logger(label: "privsep")
        warnIfTooFewDescriptors(limit: descriptorLimit, helpers: setup.plans.count, logger: logger)
        let broker: Broker
        do {
            broker = try Broker(setup: setup, log: sink)
        } catch {
            printError("privsep: \(error)")
            throw ExitCode(1)
        }
        let outcome = broker.run()
        if outcome.exitStatus != 0 { throw ExitCode(outcome.exitStatus) }
    }

    /// Raises the soft RLIMIT_NOFILE to the hard limit. Every helper holds five of the broker's
    /// descriptors (its socket, pidfd, stdout and stderr pipes, the launcher's error pipe) and a
    /// few more while it starts, so 1024 helpers need over 5000; the usual soft limit is 1024
    /// (systemd, login shells) under a hard limit of 512K or more, and at the soft limit the
    /// broker could start only about 200. The hard limit stays the administrator's bound: past it
    /// a helper's start fails with EMFILE and is logged and retried like any failed start.
    /// Helpers do not inherit the raised limit: the default and strict sandbox profiles set
    /// their own nofile (1024, 64); only `profile: none` passes the broker's limit on.
    /// Returns the soft limit now in force (nil if it cannot be read).
    private func raiseDescriptorLimit() -> UInt64? {
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            let raised = rlimit(rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max)
            // A failure leaves the old limit, which is only a bound on the number of helpers.
            withUnsafePointer(to: raised) { if setrlimit(resource, $0) == 0 { limit = raised } }
        }
        return UInt64(limit.rlim_cur)
    }

    /// Says at start, not after the 200th spawn, when the hard limit is too low for the config:
    /// the helpers past it would each fail to start with EMFILE.
    private func warnIfTooFewDescriptors(limit: UInt64?, helpers: Int, logger: Logger) {
        // Five per running helper; the rest is the broker's own: stdio, epoll, signalfd, the
        // control socket and its clients, one directory per files rule, a start in progress.
        let perHelper: UInt64 = 5
        let reserve: UInt64 = 64
        guard let limit, UInt64(helpers) * perHelper + reserve > limit else { return }
        let room = limit > reserve ? (limit - reserve) / perHelper : 0
        logger.warning("RLIMIT_NOFILE is \(limit): room for about \(room) helpers, the config has \(helpers); the others will fail to start with EMFILE (raise the hard limit: ulimit -Hn, or LimitNOFILE= in a systemd unit)")
    }

    /// The launcher sits beside this binary: one build, one install, no PATH lookup.
    private func launcherPath() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else { return "/usr/libexec/privsep-sandbox" }
        let exe = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = exe.lastIndex(of: "/") else { return "privsep-sandbox" }
        return String(exe[..<slash]) + "/privsep-sandbox"
    }
}
