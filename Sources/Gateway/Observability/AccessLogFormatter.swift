import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Formats access log records as JSON lines. Pure, and without Foundation.
///
/// A line is written in one pass into memory reserved for its longest possible form, so the
/// buffer's capacity is checked once per line rather than once per byte: runs of string bytes
/// that need no escape are copied whole, and numbers are written as digits without a `String`.
public enum AccessLogFormatter {
    /// Appends `record` as one JSON object and a newline.
    public static func write(_ record: AccessLogRecord, into buffer: inout ByteBuffer, clock: inout UTCSecondCache) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.maximumLength(of: record)) { memory in
            var line = JSONLineWriter(memory)
            line.write("{\"time\":\"")
            clock.write(record.time, into: &line)
            line.write("\"")
            if let id = record.requestID { line.field("request_id", id) }
            line.field("method", record.method)
            line.field("path", record.path)
            if let route = record.route { line.field("route", route) }
            line.write(",\"status\":")
            line.write(decimal: record.status)
            line.field("decision", record.decision.rawValue)
            if let reason = record.reason { line.field("reason", reason) }
            if let subject = record.subject { line.field("subject", subject) }
            if let upstream = record.upstream { line.field("upstream", upstream) }
            if let client = record.client { line.field("client", client) }
            line.write(",\"duration_ms\":")
            line.write(milliseconds: record.durationSeconds)
            if let upstream = record.upstreamSeconds {
                line.write(",\"upstream_ms\":")
                line.write(milliseconds: upstream)
            }
            line.write(",\"request_bytes\":")
            line.write(decimal: record.requestBytes)
            line.write(",\"response_bytes\":")
            line.write(decimal: record.responseBytes)
            line.write("}\n")
            return line.count
        }
    }

    /// The line for `record` as a string (tests, tools).
    public static func line(_ record: AccessLogRecord) -> String {
        var buffer = ByteBuffer()
        var clock = UTCSecondCache()
        Self.write(record, into: &buffer, clock: &clock)
        return buffer.readString(length: buffer.readableBytes) ?? ""
    }

    /// Everything but the strings' contents: names and punctuation (under 200 bytes), the time
    /// (`UTCSecondCache.maximumLength`), three integers of at most 20 characters, two
    /// millisecond values of at most 20, and the quotes of ten strings. Rounded up generously.
    static let fixedLength = 512

    /// An upper bound for the length of `record`'s line: each string byte may become `\u00XX`.
    static func maximumLength(of record: AccessLogRecord) -> Int {
        var stringBytes = record.method.utf8.count + record.path.utf8.count + record.decision.rawValue.utf8.count
        stringBytes += record.requestID?.utf8Count ?? 0
        stringBytes += record.route?.utf8.count ?? 0
        stringBytes += record.reason?.utf8.count ?? 0
        stringBytes += record.subject?.utf8.count ?? 0
        stringBytes += record.upstream?.utf8.count ?? 0
        stringBytes += record.client?.utf8.count ?? 0
        return Self.fixedLength + JSONLineWriter.maximumEscapedLength * stringBytes
    }
}

/// Formats Unix times as `2026-11-22T04:30:12.345Z`, calling `gmtime_r` once per second.
public struct UTCSecondCache {
    private var second = Int.min
    private var prefix: [UInt8] = []

    /// The longest time written: a year of up to 11 characters (`tm_year` is an `Int32`), then
    /// `-MM-DDTHH:MM:SS.mmmZ`.
    static let maximumLength = 11 + 20

    public init() {}

    public mutating func write(_ time: Double, into buffer: inout ByteBuffer) {
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: Self.maximumLength) { memory in
            var line = JSONLineWriter(memory)
            self.write(time, into: &line)
            return line.count
        }
    }

    mutating func write(_ time: Double, into line: inout JSONLineWriter) {
        let whole = Int(time.rounded(.down))
        if whole != self.second {
            self.second = whole
            self.prefix = Self.format(whole)
        }
        self.prefix.withUnsafeBytes { line.write($0) }
        let millis = min(999, max(0, Int(((time - Double(whole)) * 1000).rounded(.down))))
        line.write(".")
        line.write(threeDigits: millis)
        line.write("Z")
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
