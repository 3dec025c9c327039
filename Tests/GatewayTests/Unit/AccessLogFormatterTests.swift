import Foundation
import NIOCore
import Testing

@testable import Gateway

@Suite("Access log formatting: escapes, numbers and bounds")
struct AccessLogFormatterTests {
    func record(
        path: String = "/api/orders", method: String = "GET", subject: String? = "alice", status: Int = 200,
        duration: Double = 0.001_234_4, upstream: Double? = 0.000_9, requestBytes: Int = 0, responseBytes: Int = 512
    ) -> AccessLogRecord {
        AccessLogRecord(
            time: 1_795_321_812.345_6, requestID: "0123456789abcdef0000000000000100", method: method, path: path,
            route: "/api", status: status, decision: .allowed, reason: nil, subject: subject,
            upstream: "http://127.0.0.1:9000", client: "192.0.2.1", durationSeconds: duration,
            upstreamSeconds: upstream, requestBytes: requestBytes, responseBytes: responseBytes)
    }

    /// The JSON text the line holds for `path` (between `"path":` and `,"route":`; an unescaped
    /// `"` cannot occur inside the string, so the first `,"route":` ends it).
    func pathJSON(_ path: String) -> String {
        let line = AccessLogFormatter.line(self.record(path: path))
        let afterName = line.range(of: "\"path\":")!.upperBound
        let end = line[afterName...].range(of: ",\"route\":")!.lowerBound
        return String(line[afterName..<end])
    }

    /// What the formatter wrote byte by byte before it copied runs (the reference).
    func referenceQuoted(_ value: String) -> String {
        var out = Array("\"".utf8)
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += "\\\"".utf8
            case UInt8(ascii: "\\"): out += "\\\\".utf8
            case 0x0A: out += "\\n".utf8
            case 0x0D: out += "\\r".utf8
            case 0x09: out += "\\t".utf8
            case 0..<0x20, 0x7F:
                let hex = Array("0123456789abcdef".utf8)
                out += "\\u00".utf8
                out += [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        return String(decoding: out + "\"".utf8, as: UTF8.self)
    }

    @Test("The whole line is byte for byte the documented format")
    func golden() {
        #expect(
            AccessLogFormatter.line(self.record())
                == #"{"time":"2026-11-22T04:30:12.345Z","request_id":"0123456789abcdef0000000000000100","method":"GET","path":"/api/orders","route":"/api","status":200,"decision":"allowed","subject":"alice","upstream":"http://127.0.0.1:9000","client":"192.0.2.1","duration_ms":1.234,"upstream_ms":0.900,"request_bytes":0,"response_bytes":512}"#
                + "\n")
        var every = self.record()
        every.reason = "no_route"
        every.decision = .rejected
        every.subject = nil
        every.upstreamSeconds = nil
        #expect(
            AccessLogFormatter.line(every)
                == #"{"time":"2026-11-22T04:30:12.345Z","request_id":"0123456789abcdef0000000000000100","method":"GET","path":"/api/orders","route":"/api","status":200,"decision":"rejected","reason":"no_route","upstream":"http://127.0.0.1:9000","client":"192.0.2.1","duration_ms":1.234,"request_bytes":0,"response_bytes":512}"#
                + "\n")
    }

    @Test("Quotes, backslashes, control characters and DEL are escaped; nothing else is")
    func escapes() {
        #expect(self.pathJSON("a\"b") == #""a\"b""#)
        #expect(self.pathJSON("a\\b") == #""a\\b""#)
        #expect(self.pathJSON("\n\r\t") == #""\n\r\t""#)
        #expect(self.pathJSON("\u{0}\u{1}\u{8}\u{b}\u{c}\u{1b}\u{1f}") == #""\u0000\u0001\u0008\u000b\u000c\u001b\u001f""#)
        #expect(self.pathJSON("\u{7f}") == #""\u007f""#)
        #expect(self.pathJSON(" ~/{}[]:,'") == #"" ~/{}[]:,'""#)
        // Escapes at both ends, side by side, and between runs.
        #expect(self.pathJSON("\"\"x\\\\y\n") == #""\"\"x\\\\y\n""#)
        // Every ASCII byte, alone and in a run.
        for byte in UInt8(0)...0x7F {
            let text = String(decoding: [byte], as: UTF8.self)
            #expect(self.pathJSON(text) == self.referenceQuoted(text), "byte \(byte)")
            #expect(self.pathJSON("ab" + text + "cd") == self.referenceQuoted("ab" + text + "cd"), "byte \(byte)")
        }
    }

    @Test("Multi-byte UTF-8 is copied as it is, also next to escapes; empty strings stay empty")
    func utf8() throws {
        for text in ["é", "日本語", "🙂", "e\u{301}", "\u{2028}\u{2029}", "ä\"ö\\ü\n", "\u{7f}ß\u{7f}", "\u{10FFFF}"] {
            #expect(self.pathJSON(text) == self.referenceQuoted(text), "\(text)")
            let line = AccessLogFormatter.line(self.record(path: text, subject: text))
            let object = try #require(try JSONParser.parse(Array(line.utf8)).objectValue)
            #expect(object["path"]?.stringValue == text)
            #expect(object["subject"]?.stringValue == text)
        }
        #expect(self.pathJSON("") == #""""#)
        let empty = AccessLogFormatter.line(self.record(path: "", method: "", subject: ""))
        #expect(empty.contains(#","method":"","path":"","route":"/api""#))
        #expect(empty.contains(#","subject":"","#))
    }

    @Test("Long strings: escapes anywhere in a string longer than a small string's storage")
    func long() throws {
        let run = String(repeating: "abcdefgh", count: 100)
        for text in [run, "\"" + run, run + "\\", run + "\u{1}" + run, String(repeating: "\n", count: 300)] {
            #expect(self.pathJSON(text) == self.referenceQuoted(text))
        }
    }

    @Test("Integers as String(_:) spells them, from Int.min to Int.max")
    func integers() {
        for value in [0, 1, 9, 10, 99, 100, 499, 1_000_000, Int(Int32.max), -1, -10, Int.max, Int.min, Int.max - 1] {
            let line = AccessLogFormatter.line(self.record(status: value, requestBytes: value, responseBytes: value))
            #expect(line.contains(",\"status\":\(value),"), "\(value)")
            #expect(line.contains(",\"request_bytes\":\(value),\"response_bytes\":\(value)}\n"), "\(value)")
        }
    }

    @Test("Durations: milliseconds with three decimals; negative, zero and NaN as 0.000; huge ones do not trap")
    func durations() {
        func ms(_ seconds: Double) -> String {
            let line = AccessLogFormatter.line(self.record(duration: seconds, upstream: seconds))
            let start = line.range(of: "\"duration_ms\":")!.upperBound
            let end = line[start...].firstIndex(of: ",")!
            #expect(line.contains(",\"upstream_ms\":\(line[start..<end]),"))
            return String(line[start..<end])
        }
        #expect(ms(0) == "0.000")
        #expect(ms(-0.0) == "0.000")
        #expect(ms(-1.5) == "0.000")
        #expect(ms(-.infinity) == "0.000")
        #expect(ms(.nan) == "0.000")
        #expect(ms(0.000_000_4) == "0.000")
        #expect(ms(0.000_001) == "0.001")
        #expect(ms(0.001) == "1.000")
        #expect(ms(0.012_345_6) == "12.346")
        #expect(ms(1.5) == "1500.000")
        #expect(ms(86_400) == "86400000.000")
        #expect(ms(.infinity) == "9000000000000000.000")
        #expect(ms(1e300) == "9000000000000000.000")
    }

    @Test("The memory reserved for a line bounds its longest form")
    func bounds() {
        // Every string byte escaped as \u00XX, every optional field present, the longest numbers.
        let worst = String(repeating: "\u{1}", count: 300)
        let record = AccessLogRecord(
            time: 1_795_321_812.999_9, requestID: .given(worst), method: worst, path: worst, route: worst, status: Int.min,
            decision: .unavailable, reason: worst, subject: worst, upstream: worst, client: worst,
            durationSeconds: .infinity, upstreamSeconds: .infinity, requestBytes: Int.min, responseBytes: Int.min)
        let line = AccessLogFormatter.line(record)
        #expect(line.utf8.count <= AccessLogFormatter.maximumLength(of: record))
        // Nothing outside the strings comes near the fixed allowance.
        let empty = AccessLogRecord(
            time: -62_135_596_800, requestID: "", method: "", path: "", route: "", status: Int.min,
            decision: .unavailable, reason: "", subject: "", upstream: "", client: "", durationSeconds: .infinity,
            upstreamSeconds: .infinity, requestBytes: Int.min, responseBytes: Int.min)
        let fixed = AccessLogFormatter.line(empty)
        #expect(fixed.utf8.count - Decision.unavailable.rawValue.utf8.count <= AccessLogFormatter.fixedLength)
        #expect(fixed.hasPrefix("{\"time\":\"1-01-01T00:00:00.000Z\""))
    }

    @Test("A generated request id is written as its digits, the same line as the id given as text; a given one is escaped")
    func requestIDs() {
        var generated = self.record()
        generated.requestID = .generated(prefix: 0x0123_4567_89ab_cdef, counter: 0x100)
        let line = AccessLogFormatter.line(generated)
        #expect(line == AccessLogFormatter.line(self.record()))
        #expect(line.contains(",\"request_id\":\"0123456789abcdef0000000000000100\","))
        #expect(line.utf8.count <= AccessLogFormatter.maximumLength(of: generated))
        var quoted = self.record()
        quoted.requestID = .given("a\"b")
        #expect(AccessLogFormatter.line(quoted).contains(",\"request_id\":\"a\\\"b\","))
    }

    @Test("Lines append to what the buffer holds; times within a second share the cached date")
    func appends() {
        var buffer = ByteBuffer()
        var clock = UTCSecondCache()
        var first = self.record()
        AccessLogFormatter.write(first, into: &buffer, clock: &clock)
        first.time += 0.5
        AccessLogFormatter.write(first, into: &buffer, clock: &clock)
        first.time += 1
        AccessLogFormatter.write(first, into: &buffer, clock: &clock)
        let lines = String(buffer: buffer).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("{\"time\":\"2026-11-22T04:30:12.345Z\""))
        #expect(lines[1].hasPrefix("{\"time\":\"2026-11-22T04:30:12.845Z\""))
        #expect(lines[2].hasPrefix("{\"time\":\"2026-11-22T04:30:13.845Z\""))
    }
}
