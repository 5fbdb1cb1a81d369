import Testing
@Test func placeholderBroker() { #expect(Bool(true)) }
