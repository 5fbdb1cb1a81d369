// The list of subcommands, kept in one place so each subcommand file stays independent.
import ArgumentParser

extension PrivSep {
    static let allSubcommands: [ParsableCommand.Type] = [
        RunCommand.self, StatusCommand.self, TapCommand.self, RestartCommand.self, StopCommand.self,
        ValidateCommand.self, SchemaCommand.self,
        SandboxCommand.self, DoctorCommand.self,
        CheckCommand.self, GraphCommand.self, GenCommand.self,
    ]
}
