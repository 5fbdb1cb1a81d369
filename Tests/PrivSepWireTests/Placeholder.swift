import Testing
@Test func placeholderWire() { #expect(Bool(true)) }
