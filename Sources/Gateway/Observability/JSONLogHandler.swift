#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// A swift-log handler that writes one JSON object per line to standard error:
/// `{"ts":1700000000.123,"level":"info","label":"authgate","msg":"...","key":"value"}`.
///
/// Structured so log pipelines need no parsing rules. Callers never put tokens or secrets in
/// messages or metadata; this handler does not try to redact.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let label: String

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = "{\"ts\":\(Self.timestamp()),\"level\":\(JSONValue.quoted(event.level.rawValue))"
        line += ",\"label\":\(JSONValue.quoted(self.label)),\"msg\":\(JSONValue.quoted(event.message.description))"
        var merged = self.metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for key in merged.keys.sorted() {
            line += ",\(JSONValue.quoted(key)):\(JSONValue.quoted(merged[key]!.description))"
        }
        line += "}\n"
        var bytes = Array(line.utf8)
        // One write(2) per line keeps lines from different threads whole.
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    private static func timestamp() -> String {
        let now = WallClock.now()
        let millis = Int((now * 1000).rounded())
        let fraction = String(millis % 1000)
        return "\(millis / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }
}
