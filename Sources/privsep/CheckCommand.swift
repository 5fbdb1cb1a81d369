// `privsep check CONFIG`: the policy a config grants, checked with its schema directories before
// anything runs. docs/tools.md describes each finding and the exposure score.
import ArgumentParser
import PrivSepJSON
import PrivSepTools

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a broker config and its schema directories for policy mistakes and exposure.",
        discussion: """
            Errors: everything `privsep run` would refuse, and request types in may_send that no \
            helper serves and the broker does not provide. Warnings: served types nobody may send, \
            events nobody receives or nobody may send, service rules without the service (or the \
            reverse), helpers sharing a fixed uid, file rules or binds broader than needed (such \
            as /), and sandboxes weaker than the default profile (profile none, host network, \
            writable binds). Then one exposure line per helper: a score from 0.0 (the default \
            sandbox, nothing more) to 10.0 (no isolation), rated OK, MEDIUM, EXPOSED or UNSAFE.

            Exit status: 0 without errors (warnings allowed), 1 with errors (or, with --strict, \
            with warnings), 2 for a usage error.
            """)

    @Argument(help: ArgumentHelp("The broker config (JSON).", valueName: "CONFIG"))
    var config: String

    @Flag(name: .long, help: "Print only errors and warnings, not the exposure table.")
    var quiet = false

    @Flag(name: .long, help: "Exit 1 on warnings too (for CI).")
    var strict = false

    @Flag(name: .long, help: "Print the report as one JSON object: file, errors, warnings, findings, exposure.")
    var json = false

    func run() throws {
        let report = PolicyCheck.run(configPath: config)
        let failed = !report.errors.isEmpty || (strict && !report.warnings.isEmpty)
        if json {
            SchemaCLIOutput.write(report.json.jsonText + "\n")
            if failed { throw ExitCode(1) }
            return
        }
        for finding in report.findings.sorted(by: { $0.severity < $1.severity }) {
            SchemaCLIOutput.write("\(finding)\n")
        }
        if !quiet && !report.exposure.isEmpty {
            SchemaCLIOutput.write(CheckCommand.exposureTable(report.exposure))
        }
        SchemaCLIOutput.write("\(config): \(report.errors.count) errors, \(report.warnings.count) warnings\n")
        if failed { throw ExitCode(1) }
    }

    /// `HELPER  SCORE RATING  reasons`, like the overview of systemd-analyze security.
    static func exposureTable(_ exposure: [HelperExposure]) -> String {
        let width = max(6, exposure.map(\.helper.count).max() ?? 0)
        var out = "exposure (0.0 = the default sandbox, 10.0 = no isolation):\n"
        for helper in exposure {
            let name = helper.helper + String(repeating: " ", count: width - helper.helper.count)
            let rating = helper.rating + String(repeating: " ", count: 8 - helper.rating.count)
            let reasons = helper.items.map(\.what).joined(separator: "; ")
            let score = (helper.scoreText.count < 4 ? " " : "") + helper.scoreText
            out += "  \(name)  \(score) \(rating)\(reasons.isEmpty ? "default sandbox" : reasons)\n"
        }
        return out
    }
}
