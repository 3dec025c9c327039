/// Writes one access log line into memory reserved for it (`AccessLogFormatter`). Every write
/// checks that it stays inside that memory: a wrong bound stops the process rather than writing
/// past the buffer.
struct JSONLineWriter {
    /// The longest form of one string byte: `\u00XX`.
    static let maximumEscapedLength = 6

    private let memory: UnsafeMutableRawBufferPointer
    /// Bytes written so far, from the start of `memory`.
    private(set) var count = 0

    init(_ memory: UnsafeMutableRawBufferPointer) {
        self.memory = memory
    }

    mutating func write(_ text: StaticString) {
        text.withUTF8Buffer { self.write(UnsafeRawBufferPointer($0)) }
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count <= self.memory.count - self.count, "access log line longer than its reserved memory")
        guard let source = bytes.baseAddress else { return }
        (self.memory.baseAddress! + self.count).copyMemory(from: source, byteCount: bytes.count)
        self.count += bytes.count
    }

    mutating func write(byte: UInt8) {
        precondition(self.count < self.memory.count, "access log line longer than its reserved memory")
        self.memory[self.count] = byte
        self.count += 1
    }

    /// `,"name":"value"`.
    mutating func field(_ name: StaticString, _ value: String) {
        self.write(",\"")
        self.write(name)
        self.write("\":")
        self.write(quoted: value)
    }

    /// `,"name":"id"`, a generated id's digits written without a `String` (escaped like any value:
    /// a given id passed `RequestID.isAcceptable`, but the writer does not rely on it).
    mutating func field(_ name: StaticString, _ id: RequestID) {
        self.write(",\"")
        self.write(name)
        self.write("\":")
        id.withUTF8 { self.write(quoted: $0) }
    }

    /// `value` as a JSON string: `"` and `\` escaped, control characters and DEL as `\n`, `\r`,
    /// `\t` or `\u00XX`, every other byte (UTF-8 included) as it is. Invalid UTF-8 was already
    /// repaired when the bytes became a `String`.
    mutating func write(quoted value: String) {
        let written: Void? = value.utf8.withContiguousStorageIfAvailable { bytes in
            self.write(quoted: UnsafeRawBufferPointer(bytes))
        }
        if written == nil {
            var contiguous = value
            contiguous.withUTF8 { self.write(quoted: UnsafeRawBufferPointer($0)) }
        }
    }

    /// `bytes` as a JSON string, escaped as `write(quoted:)` does a `String`'s.
    mutating func write(quoted bytes: UnsafeRawBufferPointer) {
        self.write(byte: UInt8(ascii: "\""))
        self.writeEscaped(bytes)
        self.write(byte: UInt8(ascii: "\""))
    }

    /// Copies the runs of bytes that need no escape whole.
    private mutating func writeEscaped(_ bytes: UnsafeRawBufferPointer) {
        var unwritten = 0
        for index in bytes.indices {
            let byte = bytes[index]
            let needsEscape = byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == 0x7F
            guard needsEscape else { continue }
            self.write(UnsafeRawBufferPointer(rebasing: bytes[unwritten..<index]))
            self.write(escaping: byte)
            unwritten = index + 1
        }
        self.write(UnsafeRawBufferPointer(rebasing: bytes[unwritten...]))
    }

    private mutating func write(escaping byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): self.write("\\\"")
        case UInt8(ascii: "\\"): self.write("\\\\")
        case 0x0A: self.write("\\n")
        case 0x0D: self.write("\\r")
        case 0x09: self.write("\\t")
        default:
            let digits: StaticString = "0123456789abcdef"
            self.write("\\u00")
            self.write(byte: digits.utf8Start[Int(byte >> 4)])
            self.write(byte: digits.utf8Start[Int(byte & 0xF)])
        }
    }

    /// `value` in decimal, as `String(value)` spells it.
    mutating func write(decimal value: Int) {
        if value < 0 { self.write(byte: UInt8(ascii: "-")) }
        var rest = value.magnitude
        var digits = 1
        var scan = rest / 10
        while scan > 0 {
            digits += 1
            scan /= 10
        }
        precondition(digits <= self.memory.count - self.count, "access log line longer than its reserved memory")
        var index = self.count + digits
        repeat {
            index -= 1
            self.memory[index] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
        } while rest > 0
        self.count += digits
    }

    /// `value` (0...999) as three digits.
    mutating func write(threeDigits value: Int) {
        precondition((0..<1000).contains(value))
        self.write(byte: UInt8(ascii: "0") + UInt8(value / 100))
        self.write(byte: UInt8(ascii: "0") + UInt8(value / 10 % 10))
        self.write(byte: UInt8(ascii: "0") + UInt8(value % 10))
    }

    /// `seconds` as milliseconds with three decimals (microsecond resolution); negative (and
    /// NaN) as `0.000`.
    mutating func write(milliseconds seconds: Double) {
        let micros = (max(0, seconds) * 1_000_000).rounded()
        // `Int(_:)` traps outside Int's range (infinity included); no duration comes near
        // 9e18 µs (285,000 years), so this only keeps a broken clock from stopping the process.
        let whole = micros < 9e18 ? Int(micros) : 9_000_000_000_000_000_000
        self.write(decimal: whole / 1000)
        self.write(byte: UInt8(ascii: "."))
        self.write(threeDigits: whole % 1000)
    }
}
