import Testing
@Test func placeholderSandbox() { #expect(Bool(true)) }
