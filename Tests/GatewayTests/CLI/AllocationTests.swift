import Foundation
import Testing

@testable import Gateway

/// Allocation regression test for the request path, as SwiftNIO's integration tests do it:
/// `alloc-probe` counts heap allocations per proxied request, and this test fails when a change
/// adds any beyond the committed budget (`Fixtures/allocation-budget.json`).
@Suite("Allocations per proxied request")
struct AllocationTests {
    @Test("A proxied request stays within its allocation budget")
    func withinBudget() throws {
        #if os(Linux)
        let outcome = try CommandLineTests.run("alloc-probe", [], timeout: 60)
        #expect(outcome.status == 0, "\(outcome.stderr)")
        let measured = try #require(try JSONParser.parse(outcome.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).objectValue)
        #if DEBUG
        let build = "debug"
        #else
        let build = "release"
        #endif
        let budget = try #require(try TestSupport.fixture("allocation-budget.json").objectValue?[build]?.objectValue)
        for scenario in ["authenticated_cached_token", "no_auth"] {
            let count = try #require(measured[scenario]?.doubleValue)
            let limit = try #require(budget[scenario]?.doubleValue)
            #expect(count >= 1, "\(scenario): the counter did not count")
            // A few timing-dependent allocations (a read split in two) are tolerated: the debug
            // build measured 87.21-87.28 quiet against a budget of 87 (and, before the head
            // buffers were reused, 0.4 more beside a release build than quiet). A new allocation
            // per request (+1) is not.
            #expect(count <= limit + 0.75, "\(scenario): \(count) allocations per request, budget \(limit)")
        }
        #endif
    }
}
