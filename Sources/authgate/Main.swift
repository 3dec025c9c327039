import ArgumentParser
import Gateway

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The `authgate` command line.
struct Authgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authgate",
        abstract: "A JWT-verifying reverse proxy: authenticates requests before they reach your services.",
        subcommands: [Serve.self, Check.self, Token.self, Demo.self, Keys.self, Explain.self]
    )
}

/// A failure the user can act on: printed as `authgate: <message>`, exit status 1.
struct CLIFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Entry point with the contract's exit codes: 0 success, 1 bad config or input, 2 bad command
/// line (ArgumentParser's own default for validation errors is 64).
@main
enum Main {
    static func main() async {
        var command: any ParsableCommand
        do {
            command = try Authgate.parseAsRoot()
        } catch {
            let code = Authgate.exitCode(for: error)
            let message = Authgate.fullMessage(for: error)
            if code == .success {
                Output.out(message + "\n")
                exit(0)
            }
            Output.err(message + "\n")
            exit(2)
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            exit(0)
        } catch let failure as CLIFailure {
            Output.err("authgate: \(failure.description)\n")
            exit(1)
        } catch let error as ConfigError {
            Output.err("authgate: the configuration is not usable:\n")
            for issue in error.issues { Output.err("  \(issue)\n") }
            exit(1)
        } catch let code as ExitCode {
            exit(code.rawValue)
        } catch where Authgate.exitCode(for: error) == .success {
            // `authgate` alone or `authgate --help`: the root command's run() asks for help.
            Output.out(Authgate.fullMessage(for: error) + "\n")
            exit(0)
        } catch {
            Output.err("authgate: \(error)\n")
            exit(1)
        }
    }
}

/// Unbuffered writes to stdout/stderr (the C globals are not concurrency-safe in Swift 6).
enum Output {
    static func out(_ text: String) { Self.write(1, text) }
    static func err(_ text: String) { Self.write(2, text) }

    private static func write(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { raw in
                #if canImport(Darwin)
                Darwin.write(fd, raw.baseAddress, raw.count)
                #else
                Glibc.write(fd, raw.baseAddress, raw.count)
                #endif
            }
            if written <= 0 { return }
            offset += written
        }
    }
}
