// privsep check: each purpose-built bad config in Tests/Tools is caught with the right finding,
// and the shipped examples pass.
import Glibc
import PrivSepTools
import Testing

@Suite struct CheckTests {
    func check(_ name: String) -> CheckReport { PolicyCheck.run(configPath: Repo.path("Tests/Tools/" + name)) }

    @Test func unknownTypeIsALoadError() {
        let report = check("bad-unknown-type.json")
        #expect(report.errors.count == 1)
        #expect(report.has(.load))
        #expect(report.errors.first?.message.contains("tools.nope") == true)
    }

    @Test func requestNobodyServesIsAnError() {
        let report = check("bad-unserved.json")
        #expect(report.has(.unserved, helper: "a"))
        #expect(report.errors.count == 1)
        // privsep.ping is the broker's: not reported.
        #expect(!report.findings.contains { $0.message.contains("privsep.ping") })
    }

    @Test func controlTypesAreNotForHelpers() {
        let report = check("bad-control.json")
        #expect(report.has(.unserved, helper: "a"))
        #expect(report.errors.first?.message.contains("privsep.control.stop") == true)
    }

    @Test func serviceNobodyCallsIsAWarning() {
        let report = check("bad-unused-service.json")
        #expect(report.errors.isEmpty)
        #expect(report.has(.unused_service, helper: "b"))
    }

    @Test func eventsNobodyReceivesOrSends() {
        #expect(check("bad-events.json").has(.unreceived_event, helper: "a"))
        #expect(check("bad-unsent-event.json").has(.unsent_event, helper: "b"))
    }

    @Test func exposureScoresRankTheSandboxes() {
        let report = check("bad-exposure.json")
        #expect(report.errors.isEmpty)
        let byName = Dictionary(uniqueKeysWithValues: report.exposure.map { ($0.helper, $0) })
        #expect(byName["dev"]?.rating == "UNSAFE")
        #expect((byName["dev"]?.score ?? 0) >= 8)
        #expect(byName["web"]?.items.contains { $0.what.contains("network") } == true)
        #expect(byName["store"]?.items.contains { $0.what.contains("/srv/store") } == true)
        #expect(byName["calm"]?.score == 0)
        #expect(byName["calm"]?.scoreText == "0.0")
        for helper in ["dev", "web", "store"] { #expect(report.has(.exposure, helper: helper)) }
        #expect(!report.has(.exposure, helper: "calm"))
        // Ordered by exposure: none > network > bind > default.
        #expect(byName["dev"]!.score > byName["web"]!.score)
        #expect(byName["web"]!.score > byName["store"]!.score)
        #expect(byName["store"]!.score > byName["calm"]!.score)
    }

    @Test func broadRulesAndBinds() {
        let report = check("bad-broad.json")
        let broad = report.findings.filter { $0.code == .broad_rule }
        #expect(broad.contains { $0.helper == "reader" && $0.message.contains("/files/0") })
        #expect(broad.contains { $0.helper == "reader" && $0.message.contains("/files/1") })
        // The narrow rule on one file is fine.
        #expect(!broad.contains { $0.message.contains("/files/2") })
        #expect(broad.contains { $0.helper == "binder" && $0.message.contains("ro_bind") })
        #expect(broad.contains { $0.helper == "binder" && $0.message.contains("/sandbox/bind") })
    }

    @Test func servicePolicyWithoutTheServiceAndTheReverse() {
        let report = check("bad-service-policy.json")
        #expect(report.has(.service_policy, helper: "a"))
        #expect(report.has(.service_policy, helper: "b"))
    }

    @Test func sharedFixedUID() {
        #expect(check("bad-shared-uid.json").has(.shared_uid, helper: "b"))
    }

    @Test func cleanConfigHasNoFindings() {
        let report = check("good.json")
        #expect(report.findings.isEmpty, "\(report.findings)")
        #expect(report.exposure.count == 2)
    }

    @Test func missingConfigIsAnErrorNotACrash() {
        let report = check("does-not-exist.json")
        #expect(report.has(.load))
    }

    @Test func shippedDemoPasses() throws {
        let path = try Repo.demoConfig()
        defer { unlink(path) }
        let report = PolicyCheck.run(configPath: path)
        #expect(report.errors.isEmpty, "\(report.errors)")
        // The demo shows a denial on purpose: demo.secret is served but nobody may send it.
        #expect(report.warnings.allSatisfy { $0.code == .unused_service && $0.message.contains("demo.secret") }, "\(report.warnings)")
        #expect(report.exposure.allSatisfy { $0.rating == "OK" })
    }
}
