/// A set of byte values as a 256-entry table, for scans that test every byte of a header or a
/// token: one load per byte where a predicate with ranges or bit masks takes several branches.
struct ByteTable: Sendable {
    private let members: [Bool]

    /// The bytes for which `contains` is true (called once per byte value, here).
    init(_ contains: (UInt8) -> Bool) {
        self.members = (0...255).map { contains(UInt8($0)) }
    }

    func contains(_ byte: UInt8) -> Bool {
        self.members[Int(byte)]
    }

    /// The end of the run of members in `bytes[start..<end]`: the first offset at or after
    /// `start` whose byte is not a member, or `end`.
    @inline(__always)
    func endOfRun(in bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Int {
        var index = start
        self.members.withUnsafeBufferPointer { table in
            while index < end, table[Int(bytes[index])] { index &+= 1 }
        }
        return index
    }
}
