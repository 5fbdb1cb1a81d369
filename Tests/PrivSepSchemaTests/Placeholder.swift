import Testing
@Test func placeholderSchema() { #expect(Bool(true)) }
