import NIOCore

/// Minimal JSON serialiser with stable key order (keys are written in the given order).
enum EchoJSONWriter {
    indirect enum Value {
        case string(String)
        case int(Int)
        case null
        case array([Value])
        case object([(String, Value)])
    }

    static func object(_ members: [(String, Value)]) -> ByteBuffer {
        var buffer = ByteBuffer()
        self.write(.object(members), into: &buffer)
        return buffer
    }

    static func write(_ value: Value, into buffer: inout ByteBuffer) {
        switch value {
        case .string(let string):
            self.writeString(string, into: &buffer)
        case .int(let int):
            buffer.writeString(String(int))
        case .null:
            buffer.writeStaticString("null")
        case .array(let elements):
            buffer.writeInteger(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { buffer.writeStaticString(", ") }
                self.write(element, into: &buffer)
            }
            buffer.writeInteger(UInt8(ascii: "]"))
        case .object(let members):
            buffer.writeInteger(UInt8(ascii: "{"))
            for (index, (key, member)) in members.enumerated() {
                if index > 0 { buffer.writeStaticString(", ") }
                self.writeString(key, into: &buffer)
                buffer.writeStaticString(": ")
                self.write(member, into: &buffer)
            }
            buffer.writeInteger(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Writes a quoted, escaped JSON string. `String` is always valid UTF-8, so bytes >= 0x80
    /// are copied through unchanged.
    static func writeString(_ string: String, into buffer: inout ByteBuffer) {
        var string = string
        string.withUTF8 { utf8 in
            buffer.reserveCapacity(minimumWritableBytes: utf8.count + 2)
            buffer.writeInteger(UInt8(ascii: "\""))
            var runStart = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                if runStart < index {
                    buffer.writeBytes(UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                }
                runStart = index + 1
                switch byte {
                case UInt8(ascii: "\""): buffer.writeStaticString("\\\"")
                case UInt8(ascii: "\\"): buffer.writeStaticString("\\\\")
                case UInt8(ascii: "\n"): buffer.writeStaticString("\\n")
                case UInt8(ascii: "\r"): buffer.writeStaticString("\\r")
                case UInt8(ascii: "\t"): buffer.writeStaticString("\\t")
                default:
                    buffer.writeStaticString("\\u00")
                    buffer.writeInteger(self.hexDigits[Int(byte >> 4)])
                    buffer.writeInteger(self.hexDigits[Int(byte & 0x0f)])
                }
            }
            if runStart < utf8.count {
                buffer.writeBytes(UnsafeBufferPointer(rebasing: utf8[runStart...]))
            }
            buffer.writeInteger(UInt8(ascii: "\""))
        }
    }
}
