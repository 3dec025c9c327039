import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Formats access log records as JSON lines. Pure, and without Foundation.
public enum AccessLogFormatter {
    /// Appends `record` as one JSON object and a newline.
    public static func write(_ record: AccessLogRecord, into buffer: inout ByteBuffer, clock: inout UTCSecondCache) {
        buffer.writeStaticString("{\"time\":\"")
        clock.write(record.time, into: &buffer)
        buffer.writeStaticString("\"")
        if let id = record.requestID { Self.field("request_id", id, into: &buffer) }
        Self.field("method", record.method, into: &buffer)
        Self.field("path", record.path, into: &buffer)
        if let route = record.route { Self.field("route", route, into: &buffer) }
        buffer.writeStaticString(",\"status\":")
        buffer.writeString(String(record.status))
        Self.field("decision", record.decision.rawValue, into: &buffer)
        if let reason = record.reason { Self.field("reason", reason, into: &buffer) }
        if let subject = record.subject { Self.field("subject", subject, into: &buffer) }
        if let upstream = record.upstream { Self.field("upstream", upstream, into: &buffer) }
        if let client = record.client { Self.field("client", client, into: &buffer) }
        buffer.writeStaticString(",\"duration_ms\":")
        Self.writeMilliseconds(record.durationSeconds, into: &buffer)
        if let upstream = record.upstreamSeconds {
            buffer.writeStaticString(",\"upstream_ms\":")
            Self.writeMilliseconds(upstream, into: &buffer)
        }
        buffer.writeStaticString(",\"request_bytes\":")
        buffer.writeString(String(record.requestBytes))
        buffer.writeStaticString(",\"response_bytes\":")
        buffer.writeString(String(record.responseBytes))
        buffer.writeStaticString("}\n")
    }

    /// The line for `record` as a string (tests, tools).
    public static func line(_ record: AccessLogRecord) -> String {
        var buffer = ByteBuffer()
        var clock = UTCSecondCache()
        Self.write(record, into: &buffer, clock: &clock)
        return buffer.readString(length: buffer.readableBytes) ?? ""
    }

    private static func field(_ name: StaticString, _ value: String, into buffer: inout ByteBuffer) {
        buffer.writeStaticString(",\"")
        buffer.writeStaticString(name)
        buffer.writeStaticString("\":")
        Self.writeQuoted(value, into: &buffer)
    }

    /// A JSON string: quotes, backslashes and control characters escaped, UTF-8 otherwise kept
    /// (invalid UTF-8 was already repaired when the bytes became a `String`).
    static func writeQuoted(_ value: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
            case 0x0A: buffer.writeStaticString("\\n")
            case 0x0D: buffer.writeStaticString("\\r")
            case 0x09: buffer.writeStaticString("\\t")
            case 0..<0x20, 0x7F:
                let digits: StaticString = "0123456789abcdef"
                buffer.writeStaticString("\\u00")
                buffer.writeInteger(digits.utf8Start[Int(byte >> 4)])
                buffer.writeInteger(digits.utf8Start[Int(byte & 0xF)])
            default: buffer.writeInteger(byte)
            }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    /// Milliseconds with three decimals (microsecond resolution).
    static func writeMilliseconds(_ seconds: Double, into buffer: inout ByteBuffer) {
        let micros = Int((max(0, seconds) * 1_000_000).rounded())
        buffer.writeString(String(micros / 1000))
        buffer.writeInteger(UInt8(ascii: "."))
        let fraction = micros % 1000
        buffer.writeInteger(UInt8(ascii: "0") + UInt8(fraction / 100))
        buffer.writeInteger(UInt8(ascii: "0") + UInt8(fraction / 10 % 10))
        buffer.writeInteger(UInt8(ascii: "0") + UInt8(fraction % 10))
    }
}

/// Formats Unix times as `2026-11-22T04:30:12.345Z`, calling `gmtime_r` once per second.
public struct UTCSecondCache {
    private var second = Int.min
    private var prefix: [UInt8] = []

    public init() {}

    public mutating func write(_ time: Double, into buffer: inout ByteBuffer) {
        let whole = Int(time.rounded(.down))
        if whole != self.second {
            self.second = whole
            self.prefix = Self.format(whole)
        }
        buffer.writeBytes(self.prefix)
        let millis = min(999, max(0, Int(((time - Double(whole)) * 1000).rounded(.down))))
        buffer.writeInteger(UInt8(ascii: "."))
        buffer.writeInteger(UInt8(ascii: "0") + UInt8(millis / 100))
        buffer.writeInteger(UInt8(ascii: "0") + UInt8(millis / 10 % 10))
        buffer.writeInteger(UInt8(ascii: "0") + UInt8(millis % 10))
        buffer.writeInteger(UInt8(ascii: "Z"))
    }

    /// `YYYY-MM-DDTHH:MM:SS` in UTC.
    static func format(_ seconds: Int) -> [UInt8] {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func two(_ value: Int32) -> [UInt8] { [UInt8(48 + value / 10), UInt8(48 + value % 10)] }
        let year = Int(parts.tm_year) + 1900
        var bytes = Array(String(year).utf8)
        bytes.append(UInt8(ascii: "-"))
        bytes += two(parts.tm_mon + 1)
        bytes.append(UInt8(ascii: "-"))
        bytes += two(parts.tm_mday)
        bytes.append(UInt8(ascii: "T"))
        bytes += two(parts.tm_hour)
        bytes.append(UInt8(ascii: ":"))
        bytes += two(parts.tm_min)
        bytes.append(UInt8(ascii: ":"))
        bytes += two(parts.tm_sec)
        return bytes
    }
}
