import Foundation

/// SHA-256 (FIPS 180-4), for content hashes: the corpus archive check and the token-cache keys.
public struct SHA256 {
    private var h = Self.initialHash
    private var buffer: [UInt8] = []
    private var length: UInt64 = 0

    /// FIPS 180-4 §4.2.2 and §5.3.3 define the constants as the first 32 bits of the fractional parts of the cube
    /// roots of the first 64 primes (K) and of the square roots of the first 8 (the initial hash): computed so, with
    /// the root found in floating point and made exact in integers.
    private static let k = primes(64).map { fractionBits(of: $0, root: 3) }
    private static let initialHash = primes(8).map { fractionBits(of: $0, root: 2) }

    static func primes(_ count: Int) -> [UInt64] {
        var found: [UInt64] = []
        var n: UInt64 = 2
        while found.count < count {
            if found.allSatisfy({ n % $0 != 0 }) { found.append(n) }
            n += 1
        }
        return found
    }

    /// The 32 bits after the binary point of p^(1/root): x = ⌊p^(1/root)·2^32⌋, the largest x with
    /// x^root ≤ p·2^(32·root), taken mod 2^32.
    static func fractionBits(of p: UInt64, root: Int) -> UInt32 {
        let limit = UInt128(p) << (32 * root)
        func power(_ x: UInt128) -> UInt128 { root == 2 ? x * x : x * x * x }
        var x = UInt128(pow(Double(p), 1 / Double(root)) * 4_294_967_296)
        while power(x) > limit { x -= 1 }
        while power(x + 1) <= limit { x += 1 }
        return UInt32(truncatingIfNeeded: x)
    }

    public init() {}

    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        length &+= UInt64(bytes.count)
        buffer.append(contentsOf: bytes)
        if buffer.count >= 64 {
            let full = buffer.count / 64 * 64
            buffer.withUnsafeBufferPointer { p in
                var offset = 0
                while offset < full { compress(p.baseAddress.unsafelyUnwrapped + offset); offset += 64 }
            }
            buffer.removeFirst(full)
        }
    }

    public mutating func update(_ text: String) { update(Array(text.utf8)) }

    public mutating func finalize() -> [UInt8] {
        let bits = length &* 8
        var pad: [UInt8] = [0x80]
        while (buffer.count + pad.count) % 64 != 56 { pad.append(0) }
        for i in (0..<8).reversed() { pad.append(UInt8(truncatingIfNeeded: bits >> (UInt64(i) * 8))) }
        let savedLength = length
        update(pad)
        length = savedLength
        return h.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (24 - 8 * UInt32($0))) } }
    }

    public static func hash<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var s = SHA256()
        s.update(bytes)
        return s.finalize()
    }

    public static func hex(_ digest: [UInt8]) -> String {
        digest.map { b in
            let s = String(b, radix: 16); return s.count == 1 ? "0" + s : s
        }.joined()
    }

    @inline(__always) private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

    private mutating func compress(_ p: UnsafePointer<UInt8>) {
        var w = [UInt32](repeating: 0, count: 64)
        for i in 0..<16 {
            w[i] =
                UInt32(p[4 * i]) << 24 | UInt32(p[4 * i + 1]) << 16 | UInt32(p[4 * i + 2]) << 8 | UInt32(p[4 * i + 3])
        }
        for i in 16..<64 {
            let s0 = Self.rotr(w[i - 15], 7) ^ Self.rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = Self.rotr(w[i - 2], 17) ^ Self.rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
        for i in 0..<64 {
            let s1 = Self.rotr(e, 6) ^ Self.rotr(e, 11) ^ Self.rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = hh &+ s1 &+ ch &+ Self.k[i] &+ w[i]
            let s0 = Self.rotr(a, 2) ^ Self.rotr(a, 13) ^ Self.rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
        }
        h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
    }
}
