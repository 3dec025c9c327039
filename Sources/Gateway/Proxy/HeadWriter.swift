import NIOCore

/// A head's bytes written through one pointer, into room reserved in a `ByteBuffer` by one call
/// (`ByteBuffer.writeHead(estimate:_:)`).
///
/// Each `ByteBuffer.write…` call pays its capacity, uniqueness and exclusivity checks, some 200
/// instructions whatever its length (callgrind, BENCHMARKS.md): a forwarded head made of a
/// request line, a run of kept lines, five added lines and the blank line paid that ten times.
/// Here the checks are paid once per head and each piece is a copy.
///
/// Every write is checked against the room: one that does not fit writes nothing but is still
/// counted, so `count` is what the head needs, and `writeHead` runs the writes again in that
/// much room. A write never goes past the room, whatever the estimate was.
struct HeadWriter {
    private let base: UnsafeMutableRawPointer?
    private let capacity: Int
    /// The bytes the writes so far asked for, those that did not fit included.
    private(set) var count = 0

    init(_ room: UnsafeMutableRawBufferPointer) {
        self.base = room.baseAddress
        self.capacity = room.count
    }

    /// Every write so far was written.
    var fits: Bool { self.count <= self.capacity }

    @inline(__always)
    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        let end = self.count + bytes.count
        if end <= self.capacity, let base = self.base, let from = bytes.baseAddress {
            (base + self.count).copyMemory(from: from, byteCount: bytes.count)
        }
        self.count = end
    }

    /// A literal (a `String` is `write(string:)`, so a literal never picks that overload).
    @inline(__always)
    mutating func write(_ text: StaticString) {
        text.withUTF8Buffer { self.write(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    mutating func write(byte: UInt8) {
        if self.count < self.capacity, let base = self.base {
            base.storeBytes(of: byte, toByteOffset: self.count, as: UInt8.self)
        }
        self.count += 1
    }

    /// A string's UTF-8, read in place (`withContiguousStorageIfAvailable` needs no mutable copy,
    /// so no retain, where `withUTF8` does); a string without contiguous UTF-8 is copied out first.
    /// (The same few lines are in `RequestID.withUTF8` and `JSONLineWriter`: a shared generic
    /// helper was tried, and its closure, not inlined here, cost 1,260 instructions per request.)
    mutating func write(string text: String) {
        let written: Void? = text.utf8.withContiguousStorageIfAvailable { self.write(UnsafeRawBufferPointer($0)) }
        if written == nil { Array(text.utf8).withUnsafeBytes { self.write($0) } }
    }

    /// An integer in decimal (a `Content-Length`, a version number), without a `String`.
    mutating func write(decimal value: Int) {
        if value < 0 { self.write(byte: UInt8(ascii: "-")) }
        // 20 bytes hold UInt64.max's digits (Int.min's magnitude has 19).
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { digits in
            var rest = value.magnitude
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            self.write(UnsafeRawBufferPointer(rebasing: digits[start...]))
        }
    }

    /// `name: value` and CRLF, both strings read in place as `write(string:)` does.
    mutating func writeLine(_ name: String, _ value: String) {
        self.write(string: name)
        self.write(": ")
        self.write(string: value)
        self.write("\r\n")
    }

    /// `name: id` and CRLF: a generated id's digits without a `String` (`RequestID.withUTF8`).
    mutating func writeLine(_ name: String, _ id: RequestID) {
        self.write(string: name)
        self.write(": ")
        id.withUTF8 { self.write($0) }
        self.write("\r\n")
    }
}

extension ByteBuffer {
    /// Writes what `body` writes to its `HeadWriter`, in one reserved region: at least `estimate`
    /// bytes of room are reserved first. When the writes need more than the room held, none of
    /// them is kept, and `body` runs once more in room for all of them; so `body` must write the
    /// same bytes each time it runs (it only writes what its arguments say).
    @inline(__always)
    mutating func writeHead(estimate: Int, _ body: (inout HeadWriter) -> Void) {
        // The count comes back as the closure's result, not through a captured `var` (which a
        // debug build keeps in a heap box: an allocation per head).
        self.reserveCapacity(minimumWritableBytes: max(estimate, 0))
        let first = self.withUnsafeMutableWritableBytes { room -> (count: Int, fits: Bool) in
            var writer = HeadWriter(room)
            body(&writer)
            return (writer.count, writer.fits)
        }
        if first.fits {
            self.moveWriterIndex(forwardBy: first.count)
            return
        }
        self.reserveCapacity(minimumWritableBytes: first.count)
        let second = self.withUnsafeMutableWritableBytes { room -> (count: Int, fits: Bool) in
            var writer = HeadWriter(room)
            body(&writer)
            return (writer.count, writer.fits)
        }
        precondition(second.fits, "HeadWriter: a head's writes changed between two runs")
        self.moveWriterIndex(forwardBy: second.count)
    }
}
