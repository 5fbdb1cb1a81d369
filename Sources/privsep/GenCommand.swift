// placeholder, replaced below
import ArgumentParser
struct GenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gen", abstract: "Generate code and docs from schema directories.")
}
