import PrivSepSandbox
// privsep-sandbox: the lean, single-threaded launcher. It applies the sandbox described by its
// options to itself and executes the program; see Sources/PrivSepSandbox/Sequence.swift.
SandboxLauncher.main(CommandLine.arguments)
