import ArgumentParser
import Gateway

/// `authgate check`: validates a configuration offline, naming every problem by its JSON path.
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a configuration: exit 0 if usable, 1 with every problem named by its JSON path.")

    @Option(name: .long, help: "The configuration file.")
    var config = "gateway.json"

    func run() throws {
        let loaded = try ConfigLoader.load(path: self.config)
        for skipped in loaded.skippedKeys { Output.err("note: skipped key \(skipped)\n") }
        let keys = loaded.providers.reduce(0) { $0 + $1.keys.count }
        let admin = loaded.adminListen.map { "admin \($0)" } ?? "admin off"
        let log = loaded.accessLog.enabled ? "access log \(loaded.accessLog.path ?? "stdout")" : "access log off"
        Output.out(
            "\(self.config): OK (listen \(loaded.listen)\(loaded.tls == nil ? "" : " with TLS"), \(loaded.routes.count) routes, \(loaded.providers.count) providers, \(keys) keys; \(admin), \(log))\n"
        )
    }
}
